//! Workspace trust: silo applies a workspace's settings only in the state this user
//! created (`silo init`) or approved (`silo trust`, or the question on a terminal), the
//! way VS Code's Workspace Trust, `direnv allow` and git's `safe.directory` work.
//!
//! The records live in the user's config directory (`trusted/`), never in a workspace:
//! for each workspace its path, the owner of its `.silo/` and the settings that decide
//! what its container may do, kept whole so a later change can be shown line by line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

use crate::config::file::WorkspaceFile;
use crate::config::read_workspace_file;
use crate::fingerprint::Fingerprinter;
use crate::host;
use crate::safe_fs::Dir;
use crate::workspace::{DEVCONTAINER_JSON, HOME_NIX, SILO_TOML, Workspace};

mod review;
pub use review::ask;

/// How a workspace came to be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    /// `silo init` of this user wrote its silo.toml and home.nix.
    Created,
    /// The user approved a workspace someone else wrote (cloned, copied, another user's).
    Approved,
}

/// The settings of a workspace's `.silo/` that decide what its container may do.
/// Changes to the user's own files need no approval and are not part of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    pub id: String,
    pub podman: bool,
    pub shared_paths: Vec<String>,
    pub private_paths: Vec<String>,
    pub create_args: Vec<String>,
    pub ports: Vec<String>,
    pub cpus: f64,
    pub memory_mb: i64,
    pub processes: i64,
    pub inputs: BTreeMap<String, String>,
    /// `[nix] runner_image`: the image whose programs run Nix for this workspace, with
    /// the user's Podman and the Nix store volume. (`[nix] runner` only chooses between
    /// the host's Nix and the image, so it needs no approval.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner_image: Option<String>,
    /// `[network].egress` as the workspace sets it (none: the user's default applies).
    /// Records older than the network policy lack these, which reads as unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
    /// For a workspace silo did not create: home.nix, which Nix evaluates and builds on
    /// the host, and devcontainer.json, which becomes VS Code's container settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home_nix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub devcontainer_json: Option<String>,
}

impl Settings {
    pub fn of(file: &WorkspaceFile, home_nix: &str, devcontainer_json: Option<&str>) -> Settings {
        let c = &file.common;
        Settings {
            id: file.id.to_string(),
            podman: file.podman,
            shared_paths: c.shared_paths.iter().map(|p| p.raw().to_owned()).collect(),
            private_paths: c.private_paths.iter().map(|p| p.raw().to_owned()).collect(),
            create_args: c.create_args.clone(),
            ports: c.ports.iter().map(ToString::to_string).collect(),
            cpus: file.limits.cpus,
            memory_mb: file.limits.memory_mb,
            processes: file.limits.processes,
            inputs: c
                .inputs
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().to_owned()))
                .collect(),
            runner_image: c.runner.image.as_ref().map(|i| i.as_str().to_owned()),
            egress: c.egress.map(|e| e.as_str().to_owned()),
            allow: c.allow.iter().map(ToString::to_string).collect(),
            home_nix: Some(home_nix.to_owned()),
            devcontainer_json: devcontainer_json.map(str::to_owned),
        }
    }

    /// What is compared for a workspace of this origin.
    pub(super) fn for_origin(&self, origin: Origin) -> Settings {
        let mut s = self.clone();
        if origin == Origin::Created {
            s.home_nix = None;
            s.devcontainer_json = None;
        }
        s
    }
}

/// One trusted workspace, as stored in `trusted/<hash>.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub path: String,
    /// The owner of the workspace's `.silo/` when it was approved.
    pub owner: u32,
    pub origin: Origin,
    pub settings: Settings,
}

/// The workspace being judged: where it is, who owns its `.silo/`, what it says.
#[derive(Debug, Clone)]
pub struct Subject {
    pub root: PathBuf,
    pub owner: u32,
    pub settings: Settings,
}

impl Subject {
    /// Reads what a workspace's `.silo/` says (see `new`).
    pub fn read(ws: &Workspace, silo: &Dir) -> Result<Subject> {
        let workspace = read_workspace_file(silo)?;
        let home_nix = silo.read(HOME_NIX)?.unwrap_or_default();
        Subject::new(ws, silo, &workspace, &home_nix)
    }

    /// The subject for a parsed silo.toml and home.nix, and who owns the workspace: the
    /// owner of `.silo/` or of silo.toml, whichever is not the user running silo.
    pub fn new(
        ws: &Workspace,
        silo: &Dir,
        workspace: &WorkspaceFile,
        home_nix: &str,
    ) -> Result<Subject> {
        let devcontainer = silo.read(DEVCONTAINER_JSON)?;
        let me = host::euid();
        let toml_owner = silo.entry(SILO_TOML)?.map_or(me, |m| m.uid);
        let owner = [silo.meta()?.uid, toml_owner]
            .into_iter()
            .find(|uid| *uid != me)
            .unwrap_or(me);
        Ok(Subject {
            root: ws.root.clone(),
            owner,
            settings: Settings::of(workspace, home_nix, devcontainer.as_deref()),
        })
    }
}

/// Whether silo may apply a workspace's settings.
#[derive(Debug, Clone)]
pub enum Verdict {
    Trusted(Origin),
    Review(Box<Review>),
}

/// What approving a workspace would approve, and what changed since the last approval.
#[derive(Debug, Clone)]
pub struct Review {
    pub subject: Subject,
    /// The last approval: of this path, or of the path this workspace moved from.
    pub previous: Option<Record>,
    /// The directory this workspace (same id) was approved in before, now gone.
    pub moved_from: Option<String>,
}

/// The records in the user's config directory.
pub struct Store {
    dir: PathBuf,
}

impl Store {
    pub fn new(user_config_dir: &Path) -> Store {
        Store {
            dir: user_config_dir.join("trusted"),
        }
    }

    fn key(path: &Path) -> String {
        let mut f = Fingerprinter::new();
        f.part("path", path.as_os_str().as_encoded_bytes());
        format!("{}.json", f.finish())
    }

    fn open(&self) -> Result<Option<Dir>> {
        Dir::open_optional(&self.dir)
    }

    pub fn get(&self, root: &Path) -> Result<Option<Record>> {
        let Some(dir) = self.open()? else {
            return Ok(None);
        };
        let Some(text) = dir.read(&Store::key(root))? else {
            return Ok(None);
        };
        // A record that cannot be read approves nothing.
        Ok(serde_json::from_str::<Record>(&text)
            .ok()
            .filter(|r| Path::new(&r.path) == root))
    }

    /// Every record that can be read.
    pub fn all(&self) -> Result<Vec<Record>> {
        let Some(dir) = self.open()? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for (name, _) in dir.entries()? {
            if name.ends_with(".json")
                && let Ok(Some(text)) = dir.read(&name)
                && let Ok(record) = serde_json::from_str::<Record>(&text)
            {
                out.push(record);
            }
        }
        Ok(out)
    }

    pub fn put(&self, record: &Record) -> Result<()> {
        let dir = Dir::create(&self.dir)?;
        let text = serde_json::to_string_pretty(record).expect("plain data") + "\n";
        dir.write_atomic(&Store::key(Path::new(&record.path)), &text)
    }

    pub fn remove(&self, root: &Path) -> Result<bool> {
        match self.open()? {
            Some(dir) => dir.remove_file(&Store::key(root)),
            None => Ok(false),
        }
    }

    /// Judges a workspace against its record. A workspace that moved needs approval
    /// again (its path is what its container mounts), shown as changes to the approval
    /// it had where it was.
    pub fn verdict(&self, subject: &Subject) -> Result<Verdict> {
        let previous = self.get(&subject.root)?;
        if let Some(record) = &previous
            && record.owner == subject.owner
            && record.settings == subject.settings.for_origin(record.origin)
        {
            return Ok(Verdict::Trusted(record.origin));
        }
        let moved = match previous {
            Some(_) => None,
            None => self
                .all()?
                .into_iter()
                .find(|r| r.settings.id == subject.settings.id && !Path::new(&r.path).exists()),
        };
        Ok(Verdict::Review(Box::new(Review {
            subject: subject.clone(),
            moved_from: moved.as_ref().map(|r| r.path.clone()),
            previous: previous.or(moved),
        })))
    }

    /// Records a workspace `silo init` just created.
    pub fn created(&self, subject: &Subject) -> Result<()> {
        self.check_id_is_free(subject)?;
        self.put(&Record {
            path: subject.root.display().to_string(),
            owner: subject.owner,
            origin: Origin::Created,
            settings: subject.settings.for_origin(Origin::Created),
        })
    }

    /// Records the approval of what `review` shows.
    pub fn approve(&self, review: &Review) -> Result<Record> {
        self.check_id_is_free(&review.subject)?;
        let origin = match &review.previous {
            Some(previous) if previous.owner == review.subject.owner => previous.origin,
            _ => Origin::Approved,
        };
        let record = Record {
            path: review.subject.root.display().to_string(),
            owner: review.subject.owner,
            origin,
            settings: review.subject.settings.for_origin(origin),
        };
        self.put(&record)?;
        Ok(record)
    }

    /// Keeps a workspace approved when the only change since its approval is the
    /// devcontainer.json that silo itself just created.
    pub fn absorb_created_devcontainer_json(&self, subject: &Subject) -> Result<()> {
        let Verdict::Review(review) = self.verdict(subject)? else {
            return Ok(());
        };
        let Some(previous) = &review.previous else {
            return Ok(());
        };
        let mut approved = previous.settings.clone();
        let mut now = subject.settings.for_origin(previous.origin);
        if approved.devcontainer_json.is_none()
            && review.moved_from.is_none()
            && previous.owner == subject.owner
        {
            approved.devcontainer_json = None;
            now.devcontainer_json = None;
            if approved == now {
                self.approve(&review)?;
            }
        }
        Ok(())
    }

    /// Private data is kept by workspace id, so two workspaces must not share one: a
    /// copied `.silo/` (or one written to claim another workspace's id) is refused. A
    /// record whose directory is gone was a workspace that moved; it is dropped.
    fn check_id_is_free(&self, subject: &Subject) -> Result<()> {
        let root = subject.root.display().to_string();
        for other in self.all()? {
            if other.settings.id != subject.settings.id || other.path == root {
                continue;
            }
            let still_there = crate::config::workspace_id_at(Path::new(&other.path))
                .is_some_and(|id| id == subject.settings.id);
            if still_there {
                bail!(
                    "the workspace at {} already has the id {}; a copied .silo/ must get its own id (its private data is kept by id): set [general].id in {} to another 8 characters from a-z and 0-9",
                    other.path,
                    subject.settings.id,
                    subject.root.join(".silo/silo.toml").display()
                );
            }
            eprintln!(
                "note: the workspace with id {} moved from {} to {}",
                subject.settings.id, other.path, root
            );
            self.remove(Path::new(&other.path))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            id: "ab3f9c12".into(),
            podman: false,
            shared_paths: vec![],
            private_paths: vec!["/data/".into()],
            create_args: vec!["--cap-drop=ALL".into()],
            ports: vec![],
            cpus: 0.0,
            memory_mb: 0,
            processes: 1024,
            inputs: BTreeMap::new(),
            runner_image: None,
            egress: None,
            allow: vec![],
            home_nix: Some("{ ... }:\n{\n}\n".into()),
            devcontainer_json: None,
        }
    }

    fn subject(dir: &Path, settings: Settings) -> Subject {
        Subject {
            root: dir.join("proj"),
            owner: host::euid(),
            settings,
        }
    }

    #[test]
    fn a_created_workspace_is_trusted_until_its_settings_change() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::new(tmp.path());
        let s = subject(tmp.path(), settings());
        assert!(matches!(store.verdict(&s).unwrap(), Verdict::Review(_)));
        store.created(&s).unwrap();
        assert!(matches!(store.verdict(&s).unwrap(), Verdict::Trusted(_)));

        // home.nix of a workspace silo created is the user's to edit.
        let mut edited = s.clone();
        edited.settings.home_nix = Some("{ }".into());
        assert!(matches!(
            store.verdict(&edited).unwrap(),
            Verdict::Trusted(_)
        ));

        let mut changed = s.clone();
        changed.settings.create_args.push("--privileged".into());
        let Verdict::Review(review) = store.verdict(&changed).unwrap() else {
            panic!("a change was trusted");
        };
        let text = review.render();
        assert!(text.contains("changed since they were approved"), "{text}");
        assert!(
            text.contains("create_args: --cap-drop=ALL -> --cap-drop=ALL --privileged"),
            "{text}"
        );
        assert!(text.contains("DANGEROUS create_args"), "{text}");
        assert!(
            text.contains("--privileged: gives the container every capability"),
            "{text}"
        );
        store.approve(&review).unwrap();
        assert!(matches!(
            store.verdict(&changed).unwrap(),
            Verdict::Trusted(_)
        ));
    }

    #[test]
    fn an_unknown_workspace_shows_everything_including_home_nix() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::new(tmp.path());
        let s = subject(tmp.path(), settings());
        let Verdict::Review(review) = store.verdict(&s).unwrap() else {
            panic!("trusted without a record");
        };
        let text = review.render();
        assert!(text.contains("has not approved the workspace"), "{text}");
        assert!(text.contains("private_paths      /data/"), "{text}");
        assert!(text.contains("    | {"), "{text}");
        store.approve(&review).unwrap();
        // Approved, not created: home.nix is part of what was approved.
        let mut edited = s.clone();
        edited.settings.home_nix = Some("{ ... }:\n{\n  home.packages = [ evil ];\n}\n".into());
        let Verdict::Review(review) = store.verdict(&edited).unwrap() else {
            panic!("an edited home.nix was trusted");
        };
        assert!(
            review
                .render()
                .contains("    +   home.packages = [ evil ];")
        );
    }

    #[test]
    fn a_copied_id_is_refused_and_a_moved_one_is_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::new(&tmp.path().join("cfg"));
        let original = tmp.path().join("original");
        std::fs::create_dir_all(original.join(".silo")).unwrap();
        std::fs::write(
            original.join(".silo/silo.toml"),
            "[general]\nid = \"ab3f9c12\"\n",
        )
        .unwrap();
        store
            .created(&Subject {
                root: original.clone(),
                owner: host::euid(),
                settings: settings(),
            })
            .unwrap();
        let copy = subject(tmp.path(), settings());
        let Verdict::Review(review) = store.verdict(&copy).unwrap() else {
            panic!()
        };
        let err = format!("{:#}", store.approve(&review).unwrap_err());
        assert!(err.contains("already has the id ab3f9c12"), "{err}");

        std::fs::remove_dir_all(&original).unwrap();
        store.approve(&review).unwrap();
        assert!(store.get(&original).unwrap().is_none());
    }

    #[test]
    fn the_runner_image_of_a_workspace_needs_approval() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::new(tmp.path());
        let s = subject(tmp.path(), settings());
        store.created(&s).unwrap();
        let mut changed = s.clone();
        changed.settings.runner_image = Some("localhost/evil:1".into());
        let Verdict::Review(review) = store.verdict(&changed).unwrap() else {
            panic!("a new runner image was trusted");
        };
        let text = review.render();
        assert!(
            text.contains("[nix].runner_image: (silo's default) -> localhost/evil:1"),
            "{text}"
        );
        store.approve(&review).unwrap();
        assert!(matches!(
            store.verdict(&changed).unwrap(),
            Verdict::Trusted(_)
        ));
        // A record written before the key existed still approves a workspace without it.
        let old = r#"{"path": "/p", "owner": 0, "origin": "created", "settings": {"id": "ab3f9c12",
            "podman": false, "shared_paths": [], "private_paths": [], "create_args": [],
            "ports": [], "cpus": 0.0, "memory_mb": 0, "processes": 0, "inputs": {}}}"#;
        let record: Record = serde_json::from_str(old).unwrap();
        assert_eq!(record.settings.runner_image, None);
    }
    #[test]
    fn the_network_policy_needs_approval() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::new(tmp.path());
        let s = subject(tmp.path(), settings());
        store.created(&s).unwrap();
        let mut opened = s.clone();
        opened.settings.egress = Some("allow".into());
        opened.settings.allow = vec!["crates.io".into()];
        let Verdict::Review(review) = store.verdict(&opened).unwrap() else {
            panic!("a new network policy was trusted");
        };
        let text = review.render();
        assert!(
            text.contains(
                "  [network].egress: (not set: your default from silo.user.toml) -> allow\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("  [network].allow: (none) -> crates.io\n"),
            "{text}"
        );
        store.approve(&review).unwrap();
        let mut wider = opened.clone();
        wider.settings.allow.push("*.evil.example".into());
        assert!(matches!(store.verdict(&wider).unwrap(), Verdict::Review(_)));

        // A record written before the network policy existed still approves.
        let old = r#"{"path": "/p", "owner": 0, "origin": "created", "settings": {"id": "ab3f9c12",
            "podman": false, "shared_paths": [], "private_paths": [], "create_args": [], "ports": [],
            "cpus": 0.0, "memory_mb": 0, "processes": 0, "inputs": {}}}"#;
        let record: Record = serde_json::from_str(old).unwrap();
        assert_eq!(
            (record.settings.egress, record.settings.allow.len()),
            (None, 0)
        );
    }
}
