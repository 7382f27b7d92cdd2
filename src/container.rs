//! What the workspace container is created from: the `podman create` arguments, built as
//! data, and the record of them kept on the container to tell when it is out of date.

use std::ffi::OsString;

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::config::values::{Limits, PersistPath, WorkspaceId};
use crate::podman::{LABEL_CONFIG, LABEL_ID, LABEL_WORKSPACE, VOLUME, VOLUME_TARGET};
use crate::workspace::Names;

/// The image's user and group ids (fixed by the Nix image function).
pub const IMAGE_UID: u32 = 1000;

/// How the host user becomes the image user, so that files in the workspace keep their
/// host owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum UserMapping {
    /// Rootless Podman: keep-id maps the host user to the image user.
    Rootless,
    /// Podman run as root, which has no keep-id.
    Root,
}

impl UserMapping {
    /// Root or not, from the effective uid (the owner of /proc/self).
    pub fn detect() -> UserMapping {
        use std::os::unix::fs::MetadataExt;
        match std::fs::metadata("/proc/self") {
            Ok(meta) if meta.uid() == 0 => UserMapping::Root,
            _ => UserMapping::Rootless,
        }
    }

    /// The user namespace flags for a Podman version and the host user's uid.
    pub fn args(self, podman: (u32, u32), host_uid: u32) -> Result<Vec<String>, String> {
        match self {
            // keep-id with a target uid arrived in Podman 4.3.
            UserMapping::Rootless if podman >= (4, 3) => Ok(vec![format!(
                "--userns=keep-id:uid={IMAGE_UID},gid={IMAGE_UID}"
            )]),
            UserMapping::Rootless if host_uid == IMAGE_UID => {
                Ok(vec!["--userns=keep-id".to_owned()])
            }
            UserMapping::Rootless => Err(format!(
                "Podman {}.{} cannot map your uid {host_uid} to the image user {IMAGE_UID} (--userns=keep-id:uid= needs Podman 4.3 or newer); upgrade Podman",
                podman.0, podman.1
            )),
            // An explicit map puts host root at uid 1000 and the container's root at host
            // uid 1; the ids stay within host 0-65535, which Podman 4.3 can mount images with.
            UserMapping::Root => Ok(["--uidmap", "--gidmap"]
                .iter()
                .flat_map(|flag| {
                    ["0:1:1000", "1000:0:1", "1001:1001:64535"]
                        .map(|m| [flag.to_string(), m.to_owned()])
                })
                .flatten()
                .collect()),
        }
    }
}

/// Where a persisted path lives on the volume and in the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistMount {
    /// Relative to the volume's root: `shared/<path>` or `<id>/<path>`.
    pub subpath: String,
    /// Absolute, inside the container.
    pub target: String,
    pub directory: bool,
}

/// Every mount of the volume a workspace gets: its own part of the volume at
/// /silo/persistence (shared/ and <id>/, never another workspace's private part), then
/// each configured path, shared ones first.
pub fn persist_mounts(config: &Config) -> Vec<PersistMount> {
    let id = config.id.as_str();
    let mut mounts: Vec<PersistMount> = ["shared", id]
        .iter()
        .map(|part| PersistMount {
            subpath: (*part).to_owned(),
            target: format!("{VOLUME_TARGET}/{part}"),
            directory: true,
        })
        .collect();
    let paths = |paths: &[PersistPath], part: &str| -> Vec<PersistMount> {
        paths
            .iter()
            .map(|p| {
                let target = p.container_path(&config.user);
                PersistMount {
                    subpath: format!("{part}{target}"),
                    target,
                    directory: p.kind() == crate::config::values::PathKind::Directory,
                }
            })
            .collect()
    };
    mounts.extend(paths(&config.shared_paths, "shared"));
    mounts.extend(paths(&config.private_paths, id));
    mounts
}

/// How volume parts are mounted: Podman 5 mounts a volume's subpath; Podman 4 has no
/// `subpath`, so the same directory under the volume's mount point is bind-mounted, which
/// keeps the same layout on the volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountForm {
    Subpath,
    BindFromVolume { mountpoint: String },
}

impl MountForm {
    pub fn arg(&self, mount: &PersistMount) -> String {
        match self {
            MountForm::Subpath => format!(
                "type=volume,source={VOLUME},target={},subpath={}",
                mount.target, mount.subpath
            ),
            MountForm::BindFromVolume { mountpoint } => {
                format!(
                    "type=bind,source={mountpoint}/{},target={}",
                    mount.subpath, mount.target
                )
            }
        }
    }
}

/// Everything a container is created from that can change afterwards. Stored as JSON in
/// the container label `io.silo.config`; a difference means the container is out of date.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The fingerprint of the image inputs.
    pub image: String,
    pub workspace: String,
    pub user: String,
    pub mapping: UserMapping,
    pub mounts: Vec<PersistMount>,
    pub ports: Vec<String>,
    pub cpus: f64,
    pub memory_mb: i64,
    pub processes: i64,
    pub create_args: Vec<String>,
}

impl Record {
    pub fn new(
        config: &Config,
        fingerprint: &str,
        workspace: &str,
        mapping: UserMapping,
    ) -> Record {
        let Limits {
            cpus,
            memory_mb,
            processes,
        } = config.limits;
        Record {
            image: fingerprint.to_owned(),
            workspace: workspace.to_owned(),
            user: config.user.to_string(),
            mapping,
            mounts: persist_mounts(config),
            ports: config.ports.iter().map(ToString::to_string).collect(),
            cpus,
            memory_mb,
            processes,
            create_args: config.create_args.clone(),
        }
    }

    pub fn limits(&self) -> Limits {
        Limits {
            cpus: self.cpus,
            memory_mb: self.memory_mb,
            processes: self.processes,
        }
    }

    pub fn to_label(&self) -> String {
        serde_json::to_string(self).expect("plain data")
    }

    pub fn from_label(label: &str) -> Option<Record> {
        serde_json::from_str(label).ok()
    }

    /// Why a container created from `self` does not match `current`, in words.
    pub fn differences(&self, current: &Record) -> Vec<String> {
        let mut why = Vec::new();
        let mut check = |changed: bool, what: String| {
            if changed {
                why.push(what);
            }
        };
        check(
            self.image != current.image,
            "the image inputs changed (home.nix, home.user.nix, flake.lock or silo)".into(),
        );
        check(
            self.workspace != current.workspace,
            format!(
                "the workspace moved from {} to {}",
                self.workspace, current.workspace
            ),
        );
        check(
            self.user != current.user,
            format!("the user changed from {} to {}", self.user, current.user),
        );
        check(
            self.mapping != current.mapping,
            "the user mapping changed (silo run as another user?)".into(),
        );
        check(
            self.mounts != current.mounts,
            "the persisted paths changed".into(),
        );
        check(
            self.ports != current.ports,
            format!(
                "the ports changed from [{}] to [{}]",
                self.ports.join(", "),
                current.ports.join(", ")
            ),
        );
        check(
            (self.cpus, self.memory_mb, self.processes)
                != (current.cpus, current.memory_mb, current.processes),
            "the limits changed".into(),
        );
        check(
            self.create_args != current.create_args,
            "the create_args changed".into(),
        );
        why
    }
}

/// A number for `--cpus`, without a needless fraction.
fn cpus_arg(cpus: f64) -> String {
    if cpus.fract() == 0.0 {
        format!("{cpus:.0}")
    } else {
        cpus.to_string()
    }
}

/// Limit flags, only for positive values: zero or negative means no limit from silo.
pub fn limit_args(limits: &Limits) -> Vec<String> {
    let mut args = Vec::new();
    if limits.cpus > 0.0 {
        args.push(format!("--cpus={}", cpus_arg(limits.cpus)));
    }
    if limits.memory_mb > 0 {
        args.push(format!("--memory={}m", limits.memory_mb));
    }
    if limits.processes > 0 {
        args.push(format!("--pids-limit={}", limits.processes));
    }
    args
}

/// The `podman create` arguments (after `podman`) for a container made from `record`, in
/// a fixed order: identity, labels, user mapping, workspace, volume mounts, ports,
/// limits, then the merged `create_args` exactly once, and the image.
pub fn create_args(
    id: &WorkspaceId,
    names: &Names,
    record: &Record,
    mapping_args: &[String],
    form: &MountForm,
) -> Vec<OsString> {
    let workspace_source = &record.workspace;
    let mut args: Vec<String> = vec![
        "create".into(),
        "--name".into(),
        names.container.clone(),
        "--hostname".into(),
        names.container.clone(),
        // PID 1 reaps orphaned processes; without it zombies fill the pids limit.
        "--init".into(),
        "--label".into(),
        format!("{LABEL_ID}={id}"),
        "--label".into(),
        format!("{LABEL_WORKSPACE}={workspace_source}"),
        "--label".into(),
        format!("{LABEL_CONFIG}={}", record.to_label()),
    ];
    args.extend(mapping_args.iter().cloned());
    args.push("--mount".into());
    args.push(format!(
        "type=bind,source={workspace_source},target={},relabel=shared",
        names.mount_target
    ));
    args.extend(["--workdir".into(), names.mount_target.clone()]);
    for mount in &record.mounts {
        args.extend(["--mount".into(), form.arg(mount)]);
    }
    for port in &record.ports {
        args.extend(["--publish".into(), port.clone()]);
    }
    args.extend(limit_args(&record.limits()));
    args.extend(record.create_args.iter().cloned());
    args.push(names.image.clone());
    args.into_iter().map(OsString::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::values::{UserName, WorkspaceId};
    use std::collections::BTreeMap;

    fn config() -> Config {
        Config {
            user: UserName::parse("alice").unwrap(),
            id: WorkspaceId::parse("ab3f9c12").unwrap(),
            podman: false,
            shared_paths: vec![PersistPath::parse("$HOME/.cache/uv/").unwrap()],
            private_paths: vec![PersistPath::parse("/data").unwrap()],
            create_args: vec!["--cap-drop=ALL".into()],
            ports: vec![crate::config::values::PortMapping::parse("8080:80").unwrap()],
            limits: Limits {
                cpus: 1.5,
                memory_mb: 512,
                processes: 100,
            },
            inputs: BTreeMap::new(),
        }
    }

    #[test]
    fn persist_mounts_follow_the_seed_layout() {
        let mounts = persist_mounts(&config());
        let pairs: Vec<(&str, &str, bool)> = mounts
            .iter()
            .map(|m| (m.subpath.as_str(), m.target.as_str(), m.directory))
            .collect();
        assert_eq!(
            pairs,
            [
                ("shared", "/silo/persistence/shared", true),
                ("ab3f9c12", "/silo/persistence/ab3f9c12", true),
                ("shared/home/alice/.cache/uv", "/home/alice/.cache/uv", true),
                ("ab3f9c12/data", "/data", false),
            ]
        );
    }

    #[test]
    fn mount_forms() {
        let m = &persist_mounts(&config())[2];
        assert_eq!(
            MountForm::Subpath.arg(m),
            "type=volume,source=silo,target=/home/alice/.cache/uv,subpath=shared/home/alice/.cache/uv"
        );
        let bind = MountForm::BindFromVolume {
            mountpoint: "/var/lib/containers/storage/volumes/silo/_data".into(),
        };
        assert_eq!(
            bind.arg(m),
            "type=bind,source=/var/lib/containers/storage/volumes/silo/_data/shared/home/alice/.cache/uv,target=/home/alice/.cache/uv"
        );
    }

    #[test]
    fn user_mappings() {
        assert_eq!(
            UserMapping::Rootless.args((4, 3), 1234).unwrap(),
            ["--userns=keep-id:uid=1000,gid=1000"]
        );
        assert_eq!(
            UserMapping::Rootless.args((5, 4), 1000).unwrap(),
            ["--userns=keep-id:uid=1000,gid=1000"]
        );
        assert_eq!(
            UserMapping::Rootless.args((4, 2), 1000).unwrap(),
            ["--userns=keep-id"]
        );
        assert!(
            UserMapping::Rootless
                .args((3, 4), 1001)
                .unwrap_err()
                .contains("needs Podman 4.3")
        );
        assert_eq!(
            UserMapping::Root.args((4, 3), 0).unwrap().join(" "),
            "--uidmap 0:1:1000 --uidmap 1000:0:1 --uidmap 1001:1001:64535 \
             --gidmap 0:1:1000 --gidmap 1000:0:1 --gidmap 1001:1001:64535"
        );
    }

    #[test]
    fn limits_only_when_positive() {
        assert_eq!(
            limit_args(&Limits {
                cpus: 2.0,
                memory_mb: 1024,
                processes: 1024
            }),
            ["--cpus=2", "--memory=1024m", "--pids-limit=1024"]
        );
        assert_eq!(
            limit_args(&Limits {
                cpus: 0.5,
                memory_mb: 0,
                processes: -1
            }),
            ["--cpus=0.5"]
        );
        assert!(
            limit_args(&Limits {
                cpus: -1.0,
                memory_mb: -5,
                processes: 0
            })
            .is_empty()
        );
    }

    #[test]
    fn record_round_trips_and_explains_differences() {
        let config = config();
        let record = Record::new(&config, "f1", "/home/alice/proj", UserMapping::Rootless);
        assert_eq!(Record::from_label(&record.to_label()), Some(record.clone()));
        assert!(record.differences(&record).is_empty());
        let mut other = config.clone();
        other
            .ports
            .push(crate::config::values::PortMapping::parse("9000:9000").unwrap());
        other.limits.cpus = 2.0;
        let current = Record::new(&other, "f2", "/home/alice/renamed", UserMapping::Rootless);
        assert_eq!(
            record.differences(&current),
            [
                "the image inputs changed (home.nix, home.user.nix, flake.lock or silo)",
                "the workspace moved from /home/alice/proj to /home/alice/renamed",
                "the ports changed from [8080:80] to [8080:80, 9000:9000]",
                "the limits changed",
            ]
        );
    }
}
