//! What the workspace container is created from: the `podman create` arguments, built as
//! data, and the record of them kept on the container to tell when it is out of date.

use std::ffi::OsString;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::config::values::{Egress, Limits, WorkspaceId};
use crate::mapping::UserMapping;
use crate::network::Policy;
use crate::podman::{LABEL_CONFIG, LABEL_ID, LABEL_WORKSPACE};
use crate::seccomp::Rules;
use crate::volume::{MountForm, PersistMount};
use crate::workspace::{Names, SILO_DIR};

/// What silo does to keep the container in: 1 = `.silo/` read-only inside, the
/// system call filter, one volume per persisted path. A container with a lower number
/// was made by a silo that did less, and is reported as out of date.
pub const BOUNDARY: u32 = 1;

/// Everything a container is created from that can change afterwards. Stored as JSON in
/// the container label `io.silo.config`; a difference means the container is out of date.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    #[serde(default)]
    pub boundary: u32,
    /// The fingerprint of the image inputs.
    pub image: String,
    pub workspace: String,
    pub user: String,
    pub mapping: UserMapping,
    pub mounts: Vec<PersistMount>,
    pub ports: Vec<String>,
    /// `[network]`'s policy. Containers made before it existed had the whole network.
    #[serde(default)]
    pub network: Policy,
    pub cpus: f64,
    pub memory_mb: i64,
    pub processes: i64,
    pub seccomp: Rules,
    pub create_args: Vec<String>,
}

impl Record {
    pub fn new(
        config: &Config,
        fingerprint: &str,
        workspace: &str,
        mapping: UserMapping,
        mounts: Vec<PersistMount>,
    ) -> Record {
        let Limits {
            cpus,
            memory_mb,
            processes,
        } = config.limits;
        Record {
            boundary: BOUNDARY,
            image: fingerprint.to_owned(),
            workspace: workspace.to_owned(),
            user: config.user.to_string(),
            mapping,
            mounts,
            ports: config.ports.iter().map(ToString::to_string).collect(),
            network: Policy::of(config),
            cpus,
            memory_mb,
            processes,
            seccomp: Rules::for_container(
                config.podman,
                matches!(mapping, UserMapping::Root { .. }),
            ),
            create_args: config.create_args.clone(),
        }
    }

    /// The workspace's `.silo/` as the container sees it.
    pub fn silo_target(names: &Names) -> String {
        format!("{}/{SILO_DIR}", names.mount_target)
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
            self.boundary < current.boundary,
            "it was made by an older silo without its protections (.silo/ read-only inside, the system call filter, one volume per persisted path)".into(),
        );
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
            "the user mapping changed (silo run as another user, or the workspace changed owner?)"
                .into(),
        );
        check(
            self.seccomp != current.seccomp,
            "the system call filter changed".into(),
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
            self.network != current.network,
            format!(
                "the network policy changed from {} to {}",
                self.network.describe(),
                current.network.describe()
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

/// Limit flags: zero or negative means no limit. Podman applies no CPU or memory limit
/// without a flag, but a default pids limit (2048) unless told `-1`, unlimited.
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
    } else {
        args.push("--pids-limit=-1".to_owned());
    }
    args
}

/// The `podman create` arguments (after `podman`) for a container made from `record`, in
/// a fixed order: identity, labels, user mapping, workspace (with `.silo/` read-only over
/// it), volume mounts, the network policy's flags, ports (on the container itself only
/// with `egress = "all"`), limits, the system call filter, then the merged `create_args`
/// exactly once, and the image.
pub fn create_args(
    id: &WorkspaceId,
    names: &Names,
    record: &Record,
    mapping_args: &[String],
    form: &MountForm,
    seccomp_profile: Option<&Path>,
    network_args: &[String],
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
    // What configures the next container must not be writable by this one.
    args.push("--mount".into());
    args.push(format!(
        "type=bind,source={workspace_source}/{SILO_DIR},target={},ro",
        Record::silo_target(names)
    ));
    args.extend(["--workdir".into(), names.mount_target.clone()]);
    for mount in &record.mounts {
        for arg in form.args(mount) {
            args.extend(["--mount".into(), arg]);
        }
    }
    args.extend(network_args.iter().cloned());
    if record.network.egress == Egress::All {
        for port in &record.ports {
            args.extend(["--publish".into(), port.clone()]);
        }
    }
    args.extend(limit_args(&record.limits()));
    if let Some(profile) = seccomp_profile {
        args.extend([
            "--security-opt".into(),
            format!("seccomp={}", profile.display()),
        ]);
    }
    args.extend(record.create_args.iter().cloned());
    args.push(names.image.clone());
    args.into_iter().map(OsString::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::values::{PersistPath, UserName, WorkspaceId};
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
            egress: Egress::All,
            allow: vec![],
            limits: Limits {
                cpus: 1.5,
                memory_mb: 512,
                processes: 100,
            },
            inputs: BTreeMap::new(),
            runner: Default::default(),
        }
    }

    #[test]
    fn zero_or_negative_limits_are_unlimited() {
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
            ["--cpus=0.5", "--pids-limit=-1"]
        );
        assert_eq!(
            limit_args(&Limits {
                cpus: -1.0,
                memory_mb: -5,
                processes: 0
            }),
            ["--pids-limit=-1"]
        );
    }

    #[test]
    fn record_round_trips_and_explains_differences() {
        let config = config();
        let record = Record::new(
            &config,
            "f1",
            "/home/alice/proj",
            UserMapping::Rootless,
            vec![],
        );
        assert_eq!(Record::from_label(&record.to_label()), Some(record.clone()));
        assert!(record.differences(&record).is_empty());
        let mut other = config.clone();
        other
            .ports
            .push(crate::config::values::PortMapping::parse("9000:9000").unwrap());
        other.limits.cpus = 2.0;
        other.egress = Egress::Allow;
        other.allow = vec![crate::config::values::AllowEntry::parse("crates.io").unwrap()];
        let current = Record::new(
            &other,
            "f2",
            "/home/alice/renamed",
            UserMapping::Rootless,
            vec![],
        );
        assert_eq!(
            record.differences(&current),
            [
                "the image inputs changed (home.nix, home.user.nix, flake.lock or silo)",
                "the workspace moved from /home/alice/proj to /home/alice/renamed",
                "the ports changed from [8080:80] to [8080:80, 9000:9000]",
                "the network policy changed from all to allow [crates.io]",
                "the limits changed",
            ]
        );
    }
}
