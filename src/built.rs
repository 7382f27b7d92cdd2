//! The Nix build results silo leaves behind: every `silo build` leaves the uncompressed
//! image archive in the Nix store, with no GC root (Podman holds the image once it is
//! loaded). silo records each archive it built, per workspace, in the user's state
//! directory (`builds/<id>.json`), so that `silo gc` and `silo rm --all` can delete
//! the ones no current image needs with `nix store delete`, which deletes a path only
//! when nothing keeps it alive (a GC root, another path referring to it).

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::runner::Invocation;
use crate::safe_fs::{Dir, Kind};

const DIR: &str = "builds";

/// The archives built for one workspace, oldest first: the last is the current
/// image's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Builds {
    pub id: String,
    /// The workspace directory they were built for.
    pub workspace: String,
    pub archives: Vec<String>,
}

impl Builds {
    /// Every archive but the current one (the last: the image built last, which
    /// `silo build` reuses while it stays in the store).
    pub fn superseded(&self) -> &[String] {
        let keep = usize::from(!self.archives.is_empty());
        &self.archives[..self.archives.len() - keep]
    }
}

fn file_name(id: &str) -> String {
    format!("{id}.json")
}

/// Adds an archive to a workspace's record (once; a rebuild that Nix answered from the
/// store gives the same path again, which becomes the current one).
pub fn record(state_dir: &Path, id: &str, workspace: &str, archive: &Path) -> Result<()> {
    let dir = Dir::create(&state_dir.join(DIR))?;
    let name = file_name(id);
    let mut builds = read_file(&dir, &name).unwrap_or_default();
    let archive = archive.display().to_string();
    builds.id = id.to_owned();
    builds.workspace = workspace.to_owned();
    builds.archives.retain(|a| *a != archive);
    builds.archives.push(archive);
    write(&dir, &builds)
}

fn write(dir: &Dir, builds: &Builds) -> Result<()> {
    let text = serde_json::to_string_pretty(builds).expect("plain data") + "\n";
    dir.write_atomic(&file_name(&builds.id), &text)
}

fn read_file(dir: &Dir, name: &str) -> Option<Builds> {
    let text = dir.read(name).ok()??;
    serde_json::from_str(&text).ok()
}

/// Every workspace's record; one that cannot be read counts as none.
pub fn read_all(state_dir: &Path) -> Result<Vec<Builds>> {
    let Some(dir) = Dir::open_optional(&state_dir.join(DIR))? else {
        return Ok(Vec::new());
    };
    Ok(dir
        .entries()?
        .into_iter()
        .filter(|(name, kind)| *kind == Kind::File && name.ends_with(".json"))
        .filter_map(|(name, _)| read_file(&dir, &name))
        .collect())
}

/// Keeps only `kept` of a workspace's archives in its record (the record goes when none
/// is left).
pub fn forget(state_dir: &Path, id: &str, kept: &[String]) -> Result<()> {
    let Some(dir) = Dir::open_optional(&state_dir.join(DIR))? else {
        return Ok(());
    };
    let name = file_name(id);
    let Some(mut builds) = read_file(&dir, &name) else {
        return Ok(());
    };
    builds.archives.retain(|a| kept.contains(a));
    if builds.archives.is_empty() {
        dir.remove_file(&name)?;
        Ok(())
    } else {
        write(&dir, &builds)
    }
}

/// A recorded archive that is still in the store, and its size. Only a plain store path
/// (`<store>/<hash>-<name>`, nothing below it) is looked at or deleted.
pub fn present(archive: &str) -> Option<u64> {
    let path = Path::new(archive);
    let name = path.file_name()?.to_str()?;
    let plain = path.is_absolute()
        && !archive.contains("/../")
        && !archive.contains("/./")
        && name.len() > 33
        && name.as_bytes()[32] == b'-';
    if !plain {
        return None;
    }
    let meta = std::fs::symlink_metadata(path).ok()?;
    Some(if meta.is_file() { meta.len() } else { 0 })
}

/// `nix store delete PATH`: deletes it only when it is not alive.
pub fn delete(archive: &str) -> Invocation {
    crate::nix::command([
        "store".into(),
        "delete".into(),
        PathBuf::from(archive).into(),
    ])
}

/// Nix refused because something still keeps the path alive.
pub fn still_alive(stderr: &str) -> bool {
    stderr.contains("still alive") || stderr.contains("is alive")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_keep_the_current_archive_last() {
        let tmp = tempfile::tempdir().unwrap();
        let state = tmp.path();
        let a = Path::new("/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-silo-ab3f9c12.tar");
        let b = Path::new("/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-silo-ab3f9c12.tar");
        record(state, "ab3f9c12", "/p", a).unwrap();
        record(state, "ab3f9c12", "/p", b).unwrap();
        // Nix answered a rebuild of the first from the store.
        record(state, "ab3f9c12", "/p", a).unwrap();
        let all = read_all(state).unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].archives.last().map(String::as_str), a.to_str());
        assert_eq!(all[0].superseded(), [b.display().to_string()]);
        assert_eq!(all[0].workspace, "/p");

        forget(state, "ab3f9c12", &[a.display().to_string()]).unwrap();
        assert_eq!(read_all(state).unwrap()[0].archives.len(), 1);
        forget(state, "ab3f9c12", &[]).unwrap();
        assert!(read_all(state).unwrap().is_empty());
        assert_eq!(Builds::default().superseded(), [] as [String; 0]);
    }

    #[test]
    fn only_plain_store_paths_are_touched() {
        let tmp = tempfile::tempdir().unwrap();
        let name = format!("{}-silo-ab3f9c12.tar", "a".repeat(32));
        std::fs::write(tmp.path().join(&name), "12345").unwrap();
        let path = tmp.path().join(&name).display().to_string();
        assert_eq!(present(&path), Some(5));
        for bad in [
            "relative/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-x".to_owned(),
            format!("{}/../{name}", tmp.path().display()),
            tmp.path().join("short-name").display().to_string(),
        ] {
            assert_eq!(present(&bad), None, "{bad}");
        }
        assert_eq!(
            delete("/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-silo-ab3f9c12.tar").to_string(),
            "nix --extra-experimental-features 'nix-command flakes' store delete /nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-silo-ab3f9c12.tar"
        );
    }

    #[test]
    fn a_live_path_is_recognised() {
        // Captured from Nix 2.8.
        assert!(still_alive(
            "error: Cannot delete path '/nix/store/49ig4mrjif65dklz19j3vcibiiq4nhzy-silo-gc-probe-live' since it is still alive. To find out why, use: nix-store --query --roots"
        ));
        assert!(!still_alive("error: path '/nix/store/x' is not valid"));
    }
}
