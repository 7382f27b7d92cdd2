//! The persisted paths: one named volume for each, mounted as a volume.
//!
//! The seed kept every workspace's data in one volume `silo` (`shared/<path>` and
//! `<id>/<path>`) and mounted parts of it. Whoever can write a link into such a volume
//! chooses what a later mount of a part of it resolves to: on Podman 4 (a bind mount of
//! the volume's directory, resolved on the host) any host path; on Podman 5 (`subpath`)
//! anything inside the volume, every workspace's private data included. So each
//! persisted path gets a volume of its own, mounted whole: a volume's root is never
//! resolved through anything a container wrote, one workspace's private volumes are
//! never mounted in another, and Podman sees every volume a container uses as in use.
//!
//! A persisted file is a file in a volume of its own that the container never sees as a
//! directory: Podman 5 mounts it with `subpath`; Podman 4 (no `subpath`) bind-mounts it
//! from the volume's directory on the host, after checking it is a regular file, and
//! mounts the volume itself read-only so that Podman counts it as in use.

use std::collections::BTreeMap;
use std::ffi::OsString;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::config::values::{PathKind, PersistPath};
use crate::fingerprint::Fingerprinter;
use crate::podman::{LABEL_ID, LABEL_WORKSPACE};
use crate::runner::{Invocation, Runner, Tool};
use crate::safe_fs::{Dir, Kind};

/// Labels on the volumes silo creates.
pub const LABEL_SCOPE: &str = "io.silo.scope";
pub const LABEL_PATH: &str = "io.silo.path";
pub const LABEL_KIND: &str = "io.silo.kind";

/// Where a Podman 4 container sees the volumes of its persisted files (read-only).
pub const FILE_VOLUMES_TARGET: &str = "/silo/persistence";

/// The prefix of every volume name, `silo` unless a test sets another.
pub fn prefix() -> String {
    std::env::var("SILO_VOLUME_PREFIX")
        .ok()
        .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        .unwrap_or_else(|| "silo".to_owned())
}

/// Shared by every workspace of this user, or private to one workspace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    Shared,
    Private(String),
}

impl Scope {
    fn label(&self) -> &str {
        match self {
            Scope::Shared => "shared",
            Scope::Private(id) => id,
        }
    }
}

/// One persisted path: its volume and where it appears in the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistMount {
    pub volume: String,
    pub scope: Scope,
    /// Absolute, inside the container.
    pub target: String,
    pub directory: bool,
}

impl PersistMount {
    /// A persisted file's name inside its volume: the target's last component.
    pub fn file_name(&self) -> &str {
        self.target.rsplit('/').next().unwrap_or(&self.target)
    }
}

/// `<prefix>-<shared|id>-<path as a name>-<hash>`: readable in `podman volume ls`, and
/// distinct for distinct paths (the hash tells `/a-b` from `/a/b`).
pub fn volume_name(prefix: &str, scope: &Scope, target: &str) -> String {
    let slug: String = target
        .trim_start_matches('/')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(60)
        .collect();
    let mut f = Fingerprinter::new();
    f.part("target", target.as_bytes());
    let hash = f.finish().0;
    format!("{prefix}-{}-{slug}-{}", scope.label(), &hash[..6])
}

/// The volumes of a workspace's persisted paths, shared ones first.
pub fn persist_mounts(config: &Config, prefix: &str) -> Vec<PersistMount> {
    let mount = |path: &PersistPath, scope: Scope| {
        let target = path.container_path(&config.user);
        PersistMount {
            volume: volume_name(prefix, &scope, &target),
            scope,
            target,
            directory: path.kind() == PathKind::Directory,
        }
    };
    let id = config.id.to_string();
    config
        .shared_paths
        .iter()
        .map(|p| mount(p, Scope::Shared))
        .chain(
            config
                .private_paths
                .iter()
                .map(|p| mount(p, Scope::Private(id.clone()))),
        )
        .collect()
}

/// How this Podman mounts persisted files: `subpath` (5.x) or a bind of the file in the
/// volume's directory on the host (4.x), by volume name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountForm {
    Subpath,
    Bind {
        mountpoints: BTreeMap<String, String>,
    },
}

impl MountForm {
    /// The `--mount` values for one persisted path.
    pub fn args(&self, mount: &PersistMount) -> Vec<String> {
        let volume = &mount.volume;
        let target = &mount.target;
        if mount.directory {
            return vec![format!("type=volume,source={volume},target={target}")];
        }
        let name = mount.file_name();
        match self {
            MountForm::Subpath => vec![format!(
                "type=volume,source={volume},target={target},subpath={name}"
            )],
            MountForm::Bind { mountpoints } => {
                let dir = mountpoints.get(volume).map_or("", String::as_str);
                vec![
                    format!("type=volume,source={volume},target={FILE_VOLUMES_TARGET}/{volume},ro"),
                    format!("type=bind,source={dir}/{name},target={target}"),
                ]
            }
        }
    }
}

/// What `podman volume inspect` says about one volume.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VolumeInfo {
    pub name: String,
    pub mountpoint: String,
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
}

pub fn inspect_invocation(names: &[&str]) -> Invocation {
    let mut args = vec!["volume", "inspect"];
    args.extend(names);
    Invocation::new(Tool::Podman, args)
}

/// `podman volume inspect` of several names prints those that exist (and fails for the
/// others).
pub fn parse_inspect(stdout: &str) -> Result<Vec<VolumeInfo>> {
    let trimmed = stdout.trim();
    if trimmed.is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_str(trimmed).context("unexpected output of podman volume inspect")
}

pub fn create_invocation(mount: &PersistMount, workspace: &str) -> Invocation {
    let kind = if mount.directory { "directory" } else { "file" };
    let mut args: Vec<OsString> = vec!["volume".into(), "create".into()];
    let mut label = |key: &str, value: &str| {
        args.push("--label".into());
        args.push(format!("{key}={value}").into());
    };
    label(LABEL_SCOPE, mount.scope.label());
    label(LABEL_PATH, &mount.target);
    label(LABEL_KIND, kind);
    if let Scope::Private(id) = &mount.scope {
        label(LABEL_ID, id);
        label(LABEL_WORKSPACE, workspace);
    }
    args.push(mount.volume.clone().into());
    Invocation::new(Tool::Podman, args)
}

/// The volumes that exist, by name.
pub fn inspect(runner: &Runner, names: &[&str]) -> Result<BTreeMap<String, VolumeInfo>> {
    if names.is_empty() {
        return Ok(BTreeMap::new());
    }
    let out = runner.capture(&inspect_invocation(names))?;
    let found = parse_inspect(&out.stdout).with_context(|| out.stderr.trim().to_owned())?;
    Ok(found.into_iter().map(|v| (v.name.clone(), v)).collect())
}

/// Creates a missing volume; another silo creating it at the same moment is fine.
pub fn create(runner: &Runner, mount: &PersistMount, workspace: &str) -> Result<()> {
    let out = runner.capture(&create_invocation(mount, workspace))?;
    if out.success() || out.stderr.contains("already exists") {
        return Ok(());
    }
    bail!(
        "cannot create the volume {} for {}: {}",
        mount.volume,
        mount.target,
        out.stderr.trim()
    )
}

/// Makes sure a persisted file exists in its volume, created on the host without
/// following anything, owned by the host uid of the container user, and is a regular
/// file (the container never sees the volume's directory, so nothing else should be
/// there; a Podman 4 bind mount would follow a link).
pub fn ensure_file(mountpoint: &str, name: &str, owner: Option<(u32, u32)>) -> Result<()> {
    let dir = Dir::open(std::path::Path::new(mountpoint))?;
    dir.create_exclusive(name, owner)?;
    match dir.entry(name)?.map(|m| m.kind) {
        Some(Kind::File) => Ok(()),
        _ => bail!(
            "{} is not a regular file; it is not used as a persisted file (remove it, or the volume, to start again)",
            dir.join(name).display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::values::{Limits, UserName, WorkspaceId};

    fn config() -> Config {
        Config {
            user: UserName::parse("alice").unwrap(),
            id: WorkspaceId::parse("ab3f9c12").unwrap(),
            podman: false,
            shared_paths: vec![PersistPath::parse("$HOME/.cache/uv/").unwrap()],
            private_paths: vec![
                PersistPath::parse("/data/").unwrap(),
                PersistPath::parse("$HOME/.bash_history").unwrap(),
            ],
            create_args: vec![],
            ports: vec![],
            egress: crate::config::values::Egress::All,
            allow: vec![],
            limits: Limits::default(),
            inputs: BTreeMap::new(),
            runner: Default::default(),
        }
    }

    #[test]
    fn one_volume_per_path() {
        let mounts = persist_mounts(&config(), "silo");
        let shown: Vec<(&str, &str, bool)> = mounts
            .iter()
            .map(|m| (m.volume.as_str(), m.target.as_str(), m.directory))
            .collect();
        assert_eq!(
            shown,
            [
                (
                    "silo-shared-home-alice-.cache-uv-e32539",
                    "/home/alice/.cache/uv",
                    true
                ),
                ("silo-ab3f9c12-data-8c4eb8", "/data", true),
                (
                    "silo-ab3f9c12-home-alice-.bash_history-9cdc8a",
                    "/home/alice/.bash_history",
                    false
                ),
            ]
        );
        assert_eq!(mounts[2].file_name(), ".bash_history");
    }

    #[test]
    fn names_tell_similar_paths_apart() {
        let shared = Scope::Shared;
        assert_ne!(
            volume_name("silo", &shared, "/a-b"),
            volume_name("silo", &shared, "/a/b")
        );
        let long = format!("/{}", "x".repeat(200));
        assert!(volume_name("silo", &shared, &long).len() < 90);
    }

    #[test]
    fn mount_forms() {
        let mounts = persist_mounts(&config(), "silo");
        assert_eq!(
            MountForm::Subpath.args(&mounts[0]),
            [
                "type=volume,source=silo-shared-home-alice-.cache-uv-e32539,target=/home/alice/.cache/uv"
            ]
        );
        assert_eq!(
            MountForm::Subpath.args(&mounts[2]),
            [
                "type=volume,source=silo-ab3f9c12-home-alice-.bash_history-9cdc8a,target=/home/alice/.bash_history,subpath=.bash_history"
            ]
        );
        let bind = MountForm::Bind {
            mountpoints: BTreeMap::from([(
                mounts[2].volume.clone(),
                "/var/lib/containers/storage/volumes/v/_data".to_owned(),
            )]),
        };
        assert_eq!(bind.args(&mounts[0]), MountForm::Subpath.args(&mounts[0]));
        assert_eq!(
            bind.args(&mounts[2]),
            [
                "type=volume,source=silo-ab3f9c12-home-alice-.bash_history-9cdc8a,target=/silo/persistence/silo-ab3f9c12-home-alice-.bash_history-9cdc8a,ro",
                "type=bind,source=/var/lib/containers/storage/volumes/v/_data/.bash_history,target=/home/alice/.bash_history"
            ]
        );
    }

    #[test]
    fn create_labels_the_volume() {
        let mounts = persist_mounts(&config(), "silo");
        assert_eq!(
            create_invocation(&mounts[1], "/home/alice/proj").to_string(),
            "podman volume create --label io.silo.scope=ab3f9c12 --label io.silo.path=/data \
             --label io.silo.kind=directory --label io.silo.id=ab3f9c12 \
             --label io.silo.workspace=/home/alice/proj silo-ab3f9c12-data-8c4eb8"
        );
        assert_eq!(
            create_invocation(&mounts[0], "/home/alice/proj").to_string(),
            "podman volume create --label io.silo.scope=shared --label io.silo.path=/home/alice/.cache/uv \
             --label io.silo.kind=directory silo-shared-home-alice-.cache-uv-e32539"
        );
    }

    #[test]
    fn inspect_output() {
        let out = r#"[{"Name": "a", "Mountpoint": "/v/a/_data", "Labels": {"io.silo.scope": "shared"}},
                      {"Name": "b", "Mountpoint": "/v/b/_data", "Labels": null}]"#;
        let found = parse_inspect(out).unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!(found[1].mountpoint, "/v/b/_data");
        assert!(parse_inspect("").unwrap().is_empty());
        assert!(parse_inspect("[]").unwrap().is_empty());
    }

    #[test]
    fn a_persisted_file_is_never_a_link() {
        let tmp = tempfile::tempdir().unwrap();
        let mp = tmp.path().to_str().unwrap();
        ensure_file(mp, ".hist", None).unwrap();
        assert!(tmp.path().join(".hist").is_file());
        ensure_file(mp, ".hist", None).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", tmp.path().join("planted")).unwrap();
        let err = format!("{:#}", ensure_file(mp, "planted", None).unwrap_err());
        assert!(err.contains("is not a regular file"), "{err}");
    }
}
