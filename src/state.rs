//! The workspace's state as podman reports it, the decisions taken on it, and the hint
//! that lets `silo` and `silo connect` skip asking podman when nothing has changed.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::container::Record;
use crate::fingerprint::Fingerprint;
use crate::podman::{ContainerInfo, ImageInfo, LABEL_CONFIG, LABEL_FINGERPRINT};
use crate::safe_fs::Dir;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImageState {
    Missing,
    UpToDate,
    Outdated,
}

impl ImageState {
    pub fn of(image: Option<&ImageInfo>, fingerprint: &Fingerprint) -> ImageState {
        match image {
            None => ImageState::Missing,
            Some(info) if info.labels.get(LABEL_FINGERPRINT) == Some(&fingerprint.0) => {
                ImageState::UpToDate
            }
            Some(_) => ImageState::Outdated,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunState {
    Missing,
    Stopped,
    Running,
}

/// The container as found, and how it compares with the current configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerState {
    pub run: RunState,
    /// Why the container no longer matches the configuration (empty: up to date).
    pub outdated: Vec<String>,
    /// The record the container was created with, when it has one.
    pub record: Option<Record>,
    /// The host pid of its first process, when it runs.
    pub pid: u32,
}

impl ContainerState {
    pub fn of(info: Option<&ContainerInfo>, current: &Record) -> ContainerState {
        let Some(info) = info else {
            return ContainerState {
                run: RunState::Missing,
                outdated: Vec::new(),
                record: None,
                pid: 0,
            };
        };
        let record = info
            .labels
            .get(LABEL_CONFIG)
            .and_then(|label| Record::from_label(label));
        let outdated = match &record {
            Some(record) => record.differences(current),
            None => vec!["it was not created by this version of silo".to_owned()],
        };
        let run = if info.running {
            RunState::Running
        } else {
            RunState::Stopped
        };
        ContainerState {
            run,
            outdated,
            record,
            pid: info.pid,
        }
    }

    /// The workspace directory the container mounts no longer exists: it cannot start.
    pub fn workspace_moved(&self) -> bool {
        self.record
            .as_ref()
            .is_some_and(|r| !Path::new(&r.workspace).is_dir())
    }

    /// Another directory that is still a workspace with this id made the container: the
    /// project was copied, `.silo/` and all. Returns that directory.
    pub fn owned_by_copy(&self, current: &Record, id: &str) -> Option<&str> {
        let created_in = &self.record.as_ref()?.workspace;
        if *created_in == current.workspace {
            return None;
        }
        let same_id = crate::config::workspace_id_at(Path::new(created_in))? == id;
        same_id.then_some(created_in.as_str())
    }
}

/// Remembers that the running container was created from a given record during this
/// boot, with its first process. When the current record and boot match and that
/// process still runs (same pid, same start time), the container is running and up to
/// date, so `silo` execs straight away without asking podman; a container stopped or
/// killed behind silo's back fails this check, and silo asks podman instead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hint {
    pub record: String,
    pub boot: String,
    pub pid: u32,
    pub started: u64,
}

const HINT: &str = "state.json";

/// Identifies this boot: containers do not survive a reboot running.
pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// When a process started (clock ticks after boot), from /proc/<pid>/stat; `None` when
/// it does not exist.
pub fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The name in parentheses may hold spaces; the fields after it are plain.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

pub fn hint_matches(silo: &Dir, record: &Record) -> bool {
    let Ok(Some(text)) = silo.read(HINT) else {
        return false;
    };
    let Ok(hint) = serde_json::from_str::<Hint>(&text) else {
        return false;
    };
    !hint.boot.is_empty()
        && hint.boot == boot_id()
        && hint.record == record.to_label()
        && hint.pid != 0
        && process_start(hint.pid) == Some(hint.started)
}

/// Best effort: a hint that cannot be written only costs the fast path. Without the
/// container's pid there is no hint.
pub fn save_hint(silo: &Dir, record: &Record, pid: u32) {
    let Some(started) = process_start(pid).filter(|_| pid != 0) else {
        clear_hint(silo);
        return;
    };
    let hint = Hint {
        record: record.to_label(),
        boot: boot_id(),
        pid,
        started,
    };
    let text = serde_json::to_string(&hint).expect("plain data");
    let _ = silo.write_if_changed(HINT, &text);
}

pub fn clear_hint(silo: &Dir) {
    let _ = silo.remove_file(HINT);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::UserMapping;
    use crate::seccomp::Rules;
    use std::collections::BTreeMap;

    fn record() -> Record {
        Record {
            boundary: crate::container::BOUNDARY,
            image: "f1".into(),
            workspace: "/nonexistent/proj".into(),
            user: "alice".into(),
            mapping: UserMapping::Rootless,
            mounts: Vec::new(),
            ports: Vec::new(),
            network: crate::network::Policy::default(),
            cpus: 0.0,
            memory_mb: 0,
            processes: 1024,
            seccomp: Rules::for_container(false, false),
            create_args: Vec::new(),
        }
    }

    fn info(running: bool, labels: &[(&str, &str)]) -> ContainerInfo {
        ContainerInfo {
            running,
            pid: u32::from(running),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn image_states() {
        let fp = Fingerprint("f1".into());
        let image = |labels: BTreeMap<String, String>| ImageInfo { labels };
        assert_eq!(ImageState::of(None, &fp), ImageState::Missing);
        let up = image(BTreeMap::from([(
            LABEL_FINGERPRINT.to_owned(),
            "f1".to_owned(),
        )]));
        assert_eq!(ImageState::of(Some(&up), &fp), ImageState::UpToDate);
        let old = image(BTreeMap::from([(
            LABEL_FINGERPRINT.to_owned(),
            "f0".to_owned(),
        )]));
        assert_eq!(ImageState::of(Some(&old), &fp), ImageState::Outdated);
        assert_eq!(
            ImageState::of(Some(&image(BTreeMap::new())), &fp),
            ImageState::Outdated
        );
    }

    #[test]
    fn container_states() {
        let current = record();
        let label = current.to_label();
        let state = ContainerState::of(Some(&info(true, &[(LABEL_CONFIG, &label)])), &current);
        assert_eq!((state.run, state.outdated.len()), (RunState::Running, 0));
        assert!(state.workspace_moved());

        let mut newer = record();
        newer.ports = vec!["8080:8080".into()];
        let state = ContainerState::of(Some(&info(false, &[(LABEL_CONFIG, &label)])), &newer);
        assert_eq!(state.run, RunState::Stopped);
        assert_eq!(state.outdated, ["the ports changed from [] to [8080:8080]"]);

        let foreign = ContainerState::of(Some(&info(true, &[])), &current);
        assert_eq!(
            foreign.outdated,
            ["it was not created by this version of silo"]
        );
        assert_eq!(ContainerState::of(None, &current).run, RunState::Missing);
    }

    #[test]
    fn a_copied_workspace_is_recognised() {
        let dir = tempfile::tempdir().unwrap();
        let original = dir.path().join("original");
        std::fs::create_dir_all(original.join(".silo")).unwrap();
        std::fs::write(
            original.join(".silo/silo.toml"),
            "[general]\nid = \"ab3f9c12\"\n",
        )
        .unwrap();
        let mut created = record();
        created.workspace = original.display().to_string();
        let state = ContainerState::of(
            Some(&info(true, &[(LABEL_CONFIG, &created.to_label())])),
            &record(),
        );
        assert_eq!(
            state.owned_by_copy(&record(), "ab3f9c12"),
            Some(created.workspace.as_str())
        );
        assert_eq!(state.owned_by_copy(&record(), "zzzzzzzz"), None);
        assert_eq!(state.owned_by_copy(&created, "ab3f9c12"), None);
    }

    #[test]
    fn hint_round_trip() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Dir::open(tmp.path()).unwrap();
        let rec = record();
        assert!(!hint_matches(&dir, &rec));
        save_hint(&dir, &rec, std::process::id());
        assert!(hint_matches(&dir, &rec));
        let mut other = rec.clone();
        other.processes = 5;
        assert!(!hint_matches(&dir, &other));
        clear_hint(&dir);
        assert!(!hint_matches(&dir, &rec));
        // A process that is gone (or another one with its pid) does not match.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        save_hint(&dir, &rec, pid);
        child.wait().unwrap();
        assert!(!hint_matches(&dir, &rec));
        save_hint(&dir, &rec, 0);
        assert!(!hint_matches(&dir, &rec));
    }
}
