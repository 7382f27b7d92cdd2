//! Every silo workspace on this machine: what Podman holds, grouped by workspace id, with
//! the directory each belongs to and whether that directory still holds it. Podman's
//! labels name the directory; the trust records and the build records fill in for a
//! workspace that has only an image left.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Serialize;

use crate::built::{self, Builds};
use crate::inventory::Inventory;
use crate::runner::Runner;
use crate::safe_fs::Dir;
use crate::trust;
use crate::workspace::{SILO_DIR, SILO_TOML};

/// Whether a workspace's directory still holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Presence {
    /// The directory has `.silo/silo.toml` with this id.
    Present,
    /// The directory does not exist.
    Gone,
    /// The directory exists but holds no workspace, or one with another id.
    Replaced,
    /// silo cannot tell: no directory is known, or it cannot be read, or its silo.toml
    /// does not parse. Never treated as gone.
    Unknown,
}

impl Presence {
    /// Gone for good: what `silo gc` may clean up after.
    pub fn dead(self) -> bool {
        matches!(self, Presence::Gone | Presence::Replaced)
    }

    /// Whether a directory holds the workspace `id`. Nothing is followed inside it.
    pub fn of(root: &Path, id: &str) -> Presence {
        match std::fs::metadata(root) {
            Err(err) if err.kind() == ErrorKind::NotFound => return Presence::Gone,
            Err(_) => return Presence::Unknown,
            Ok(meta) if !meta.is_dir() => return Presence::Replaced,
            Ok(_) => {}
        }
        let silo = match Dir::open(root).and_then(|dir| dir.subdir(SILO_DIR)) {
            Ok(Some(silo)) => silo,
            Ok(None) => return Presence::Replaced,
            Err(_) => return Presence::Unknown,
        };
        match silo.read(SILO_TOML) {
            Ok(None) => Presence::Replaced,
            Ok(Some(text)) => match id_in(&text) {
                Some(found) if found == id => Presence::Present,
                Some(_) => Presence::Replaced,
                None => Presence::Unknown,
            },
            Err(_) => Presence::Unknown,
        }
    }

    /// The strongest of several directories' answers: present anywhere wins, then
    /// unknown (never gone on a guess), then replaced, then gone.
    fn combine(all: &[Presence]) -> Presence {
        [
            Presence::Present,
            Presence::Unknown,
            Presence::Replaced,
            Presence::Gone,
        ]
        .into_iter()
        .find(|p| all.contains(p))
        .unwrap_or(Presence::Unknown)
    }
}

/// `[general].id` of a silo.toml, read leniently: a file with another mistake still
/// tells which workspace it is.
pub fn id_in(silo_toml: &str) -> Option<String> {
    let table: toml::Table = silo_toml.parse().ok()?;
    Some(table.get("general")?.get("id")?.as_str()?.to_owned())
}

/// One workspace, as far as this machine knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub id: String,
    /// Where it is (or was): the directory that still holds it, else the first one
    /// named.
    pub path: Option<String>,
    /// Every directory named for this id (containers, volumes, trust and build records).
    pub paths: Vec<String>,
    pub presence: Presence,
}

impl Entry {
    /// An entry seen in one directory (for tests that make catalogs by hand).
    #[cfg(test)]
    pub fn at(id: &str, path: &str, presence: Presence) -> Entry {
        Entry {
            id: id.into(),
            path: Some(path.into()),
            paths: vec![path.into()],
            presence,
        }
    }

    /// Whether it is (or was) at or below `dir`.
    pub fn is_under(&self, dir: &Path) -> bool {
        self.paths.iter().any(|p| Path::new(p).starts_with(dir))
    }
}

/// Podman's inventory, the workspaces it belongs to, and silo's build records.
pub struct Catalog {
    pub inventory: Inventory,
    pub entries: Vec<Entry>,
    pub builds: Vec<Builds>,
}

impl Catalog {
    /// Three podman calls, then a look at each workspace's directory.
    pub fn read(runner: &Runner, user_config_dir: &Path, state_dir: &Path) -> Result<Catalog> {
        let inventory = Inventory::read(runner)?;
        let records = trust::Store::new(user_config_dir).all()?;
        let builds = built::read_all(state_dir)?;
        let mut ids = inventory.ids();
        ids.extend(builds.iter().map(|b| b.id.clone()));
        let entries = ids
            .into_iter()
            .map(|id| {
                let mut paths = inventory.paths_of(&id);
                let recorded = records
                    .iter()
                    .filter(|r| r.settings.id == id)
                    .map(|r| r.path.clone());
                let built = builds
                    .iter()
                    .filter(|b| b.id == id)
                    .map(|b| b.workspace.clone());
                for path in recorded.chain(built) {
                    if !paths.contains(&path) {
                        paths.push(path);
                    }
                }
                entry(id, paths)
            })
            .collect();
        Ok(Catalog {
            inventory,
            entries,
            builds,
        })
    }

    /// Only the workspaces at or below `dir` (all without one).
    pub fn retain_under(&mut self, dir: Option<&Path>) {
        if let Some(dir) = dir {
            self.entries.retain(|e| e.is_under(dir));
        }
    }

    pub fn builds_of(&self, id: &str) -> Option<&Builds> {
        self.builds.iter().find(|b| b.id == id)
    }
}

fn entry(id: String, paths: Vec<String>) -> Entry {
    let each: Vec<Presence> = paths
        .iter()
        .map(|p| Presence::of(Path::new(p), &id))
        .collect();
    let presence = Presence::combine(&each);
    let path = paths
        .iter()
        .zip(&each)
        .find(|(_, p)| **p == presence)
        .or_else(|| paths.iter().zip(&each).next())
        .map(|(path, _)| path.clone());
    Entry {
        id,
        path,
        paths,
        presence,
    }
}

/// An absolute form of a directory given on the command line, for `--under`.
pub fn absolute(dir: &Path, cwd: &Path) -> PathBuf {
    let joined = cwd.join(dir);
    joined.canonicalize().unwrap_or(joined)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workspace(dir: &Path, toml: &str) {
        std::fs::create_dir_all(dir.join(".silo")).unwrap();
        std::fs::write(dir.join(".silo/silo.toml"), toml).unwrap();
    }

    #[test]
    fn presence_of_a_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let id = "ab3f9c12";
        assert_eq!(Presence::of(&root.join("gone"), id), Presence::Gone);
        std::fs::write(root.join("file"), "").unwrap();
        assert_eq!(Presence::of(&root.join("file"), id), Presence::Replaced);
        std::fs::create_dir(root.join("plain")).unwrap();
        assert_eq!(Presence::of(&root.join("plain"), id), Presence::Replaced);

        workspace(&root.join("ws"), "[general]\nid = \"ab3f9c12\"\n");
        assert_eq!(Presence::of(&root.join("ws"), id), Presence::Present);
        assert_eq!(
            Presence::of(&root.join("ws"), "zzzzzzzz"),
            Presence::Replaced
        );
        // A mistake elsewhere in the file does not hide the id.
        workspace(
            &root.join("typo"),
            "[general]\nid = \"ab3f9c12\"\n[limits]\ncpus = \"x\"\n",
        );
        assert_eq!(Presence::of(&root.join("typo"), id), Presence::Present);
        // A file silo cannot read as TOML, or one without an id: silo cannot tell.
        workspace(&root.join("broken"), "[general\nid = ");
        assert_eq!(Presence::of(&root.join("broken"), id), Presence::Unknown);
        workspace(&root.join("noid"), "[general]\n");
        assert_eq!(Presence::of(&root.join("noid"), id), Presence::Unknown);
        // A .silo that is a link is not followed.
        std::fs::create_dir(root.join("linked")).unwrap();
        std::os::unix::fs::symlink(root.join("ws/.silo"), root.join("linked/.silo")).unwrap();
        assert_eq!(Presence::of(&root.join("linked"), id), Presence::Unknown);
    }

    #[test]
    fn the_strongest_answer_wins() {
        use Presence::*;
        assert_eq!(Presence::combine(&[Gone, Present]), Present);
        assert_eq!(Presence::combine(&[Gone, Unknown, Replaced]), Unknown);
        assert_eq!(Presence::combine(&[Gone, Replaced]), Replaced);
        assert_eq!(Presence::combine(&[Gone]), Gone);
        // No directory known at all: silo cannot tell.
        assert_eq!(Presence::combine(&[]), Unknown);
        assert!(Gone.dead() && Replaced.dead() && !Unknown.dead() && !Present.dead());
    }

    #[test]
    fn an_entry_points_at_where_the_workspace_is() {
        let tmp = tempfile::tempdir().unwrap();
        let moved = tmp.path().join("new");
        workspace(&moved, "[general]\nid = \"ab3f9c12\"\n");
        let old = tmp.path().join("old").display().to_string();
        let e = entry(
            "ab3f9c12".into(),
            vec![old.clone(), moved.display().to_string()],
        );
        assert_eq!(e.presence, Presence::Present);
        assert_eq!(e.path.as_deref(), Some(moved.to_str().unwrap()));
        assert!(e.is_under(tmp.path()));
        assert!(!e.is_under(Path::new("/elsewhere")));
        let gone = entry("ab3f9c12".into(), vec![old.clone()]);
        assert_eq!((gone.presence, gone.path), (Presence::Gone, Some(old)));
        let unknown = entry("ab3f9c12".into(), vec![]);
        assert_eq!((unknown.presence, unknown.path), (Presence::Unknown, None));
    }
}
