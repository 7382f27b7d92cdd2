//! `silo doctor`'s checks of Podman and the host: version, runtime, the rootless set-up,
//! cgroups and limits, the seccomp profile, disk space.

use std::path::Path;

use serde::Deserialize;

use super::{Check, first_error_line, ok, problem, warning};
use crate::runner::{Invocation, Runner, Tool};
use crate::{host, podman, seccomp};

/// The oldest Podman silo supports (`--userns=keep-id:uid=`).
const PODMAN_MIN_VERSION: (u32, u32) = (4, 3);
/// Free space below this is a warning, below a fifth of it a problem.
const LOW_SPACE: u64 = 5_000_000_000;
/// What silo reads from `podman info --format json`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PodmanInfo {
    pub host: InfoHost,
    pub store: InfoStore,
    pub version: InfoVersion,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InfoHost {
    pub cgroup_version: String,
    pub oci_runtime: InfoRuntime,
    pub security: InfoSecurity,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct InfoRuntime {
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct InfoSecurity {
    pub rootless: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InfoStore {
    pub graph_root: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InfoVersion {
    pub version: String,
}

pub fn podman_info() -> Invocation {
    Invocation::new(Tool::Podman, ["info", "--format", "json"])
}

pub fn parse_info(stdout: &str) -> Option<PodmanInfo> {
    serde_json::from_str(stdout).ok()
}

/// Podman: installed, recent enough, working (`podman info`), and its runtime.
pub fn check_podman(runner: &Runner) -> (Vec<Check>, Option<PodmanInfo>) {
    let out = match runner.capture(&podman_info()) {
        Ok(out) => out,
        Err(_) => {
            return (
                vec![problem(
                    "podman",
                    "Podman is not installed (or not on PATH)",
                    "apt install podman uidmap slirp4netns (Debian/Ubuntu), dnf install podman (Fedora)",
                )],
                None,
            );
        }
    };
    let Some(info) = out.success().then(|| parse_info(&out.stdout)).flatten() else {
        let why = first_error_line(&out);
        return (
            vec![problem(
                "podman",
                format!("`podman info` fails: {why}"),
                "run `podman info` and fix what it says (for rootless Podman: `podman system migrate` after changing /etc/subuid)",
            )],
            None,
        );
    };
    let mut checks = Vec::new();
    let version = podman::parse_version(&info.version.version);
    let shown = format!(
        "Podman {} (runtime {}, cgroup {}, {})",
        info.version.version,
        info.host.oci_runtime.name,
        info.host.cgroup_version,
        if info.host.security.rootless {
            "rootless"
        } else {
            "as root"
        }
    );
    checks.push(match version {
        Some(v) if v >= PODMAN_MIN_VERSION => ok("podman", shown),
        _ => problem(
            "podman",
            format!(
                "{shown}: silo needs Podman {}.{} or newer",
                PODMAN_MIN_VERSION.0, PODMAN_MIN_VERSION.1
            ),
            "upgrade Podman (Debian 12 and Ubuntu 24.04 have 4.3 or newer)",
        ),
    });
    let hybrid = Path::new("/sys/fs/cgroup/unified").is_dir();
    if info.host.oci_runtime.name == "crun" && info.host.cgroup_version == "v1" && hybrid {
        checks.push(warning(
            "runtime",
            "crun fails to start containers on hybrid cgroups (cgroup v1 with a v2 hierarchy beside it)",
            Some("in /etc/containers/containers.conf: [engine] runtime = \"runc\" (apt install runc)".into()),
        ));
    }
    (checks, Some(info))
}

/// How many subordinate ids `/etc/subuid` (or subgid) gives the user, by name or uid.
pub fn subordinate_ids(file: &str, user: &str, uid: u32) -> u64 {
    file.lines()
        .filter_map(|line| {
            let mut fields = line.trim().split(':');
            let (who, _start, count) = (fields.next()?, fields.next()?, fields.next()?);
            (who == user || who == uid.to_string())
                .then(|| count.parse::<u64>().ok())
                .flatten()
        })
        .sum()
}

/// Rootless Podman's needs: subordinate ids, the setuid helpers, `/dev/net/tun`.
pub fn check_rootless() -> Vec<Check> {
    let uid = host::euid();
    let user = host::user_name(uid).unwrap_or_else(|| uid.to_string());
    let mut checks = Vec::new();
    for (file, what) in [("/etc/subuid", "uids"), ("/etc/subgid", "gids")] {
        let count = subordinate_ids(
            &std::fs::read_to_string(file).unwrap_or_default(),
            &user,
            uid,
        );
        let fix = format!(
            "as root: usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {user}, then podman system migrate"
        );
        checks.push(match count {
            0 => problem("rootless", format!("{file} gives {user} no subordinate {what}: rootless Podman cannot map the container's users"), fix),
            n if n < 65_536 => warning("rootless", format!("{file} gives {user} only {n} subordinate {what}; images with higher ids fail to unpack"), Some(fix)),
            n => ok("rootless", format!("{file}: {n} subordinate {what} for {user}")),
        });
    }
    for helper in ["newuidmap", "newgidmap"] {
        if !["/usr/bin", "/bin", "/usr/sbin"]
            .iter()
            .any(|d| Path::new(d).join(helper).exists())
        {
            checks.push(problem(
                "rootless",
                format!("{helper} is missing: rootless Podman needs it to map users"),
                "apt install uidmap (Debian/Ubuntu), dnf install shadow-utils (Fedora)",
            ));
        }
    }
    checks.push(tun_check(
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/net/tun")
            .map(drop),
    ));
    checks
}

/// Rootless networking (slirp4netns, pasta) opens `/dev/net/tun`.
fn tun_check(opened: std::io::Result<()>) -> Check {
    match opened {
        Ok(()) => ok("network", "/dev/net/tun is usable"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => problem(
            "network",
            "/dev/net/tun is missing: rootless containers have no network",
            "as root: modprobe tun",
        ),
        Err(e) => problem(
            "network",
            format!("/dev/net/tun cannot be opened ({e}): rootless containers have no network"),
            "as root: chmod 666 /dev/net/tun",
        ),
    }
}

pub fn check_limits(rootless: bool) -> Check {
    let version = match host::cgroups() {
        host::Cgroups::V1 => "v1",
        host::Cgroups::V2 => "v2",
    };
    match host::limits_unavailable(rootless) {
        None => ok("limits", format!("cgroup {version}: [limits] are applied")),
        Some(why) => warning(
            "limits",
            why,
            Some("boot with cgroup v2 (systemd.unified_cgroup_hierarchy=1) and delegate the controllers to users, or run silo as root".into()),
        ),
    }
}

pub fn check_seccomp() -> Check {
    let rules = seccomp::Rules::for_container(false, host::is_root());
    match seccomp::read_default().and_then(|text| seccomp::profile(&text, rules)) {
        Ok(_) => ok(
            "seccomp",
            "Podman's default seccomp profile is there; silo adds its rules to it",
        ),
        Err(err) => problem(
            "seccomp",
            format!("{err:#}"),
            "apt install golang-github-containers-common (Debian/Ubuntu), or set SILO_SECCOMP_DEFAULT to the profile's path",
        ),
    }
}

/// Free space where Podman keeps images and where Nix keeps its store.
pub fn check_disk(graph_root: Option<&str>) -> Vec<Check> {
    let mut places = vec![("/nix/store".to_owned(), "the Nix store")];
    if let Some(root) = graph_root {
        places.insert(0, (root.to_owned(), "Podman's storage"));
    }
    places
        .into_iter()
        .filter_map(|(path, what)| {
            let fs = rustix::fs::statvfs(Path::new(&path)).ok()?;
            Some(disk_check(
                what,
                &path,
                fs.f_bavail.saturating_mul(fs.f_frsize),
            ))
        })
        .collect()
}

fn disk_check(what: &str, path: &str, free: u64) -> Check {
    let shown = format!("{} free for {what} ({path})", crate::list::human_size(free));
    let fix =
        "silo gc (old images, build results, data of removed workspaces), then nix-collect-garbage"
            .to_owned();
    if free < LOW_SPACE / 5 {
        problem("disk", shown, fix)
    } else if free < LOW_SPACE {
        warning("disk", shown, Some(fix))
    } else {
        ok("disk", shown)
    }
}

#[cfg(test)]
mod tests {
    use super::super::Status;
    use super::*;

    #[test]
    fn podman_info_as_root_and_rootless() {
        // Captured from Podman 4.3.1 on Debian 12 (cgroup v1, runc), as root and as an
        // unprivileged user.
        let root = parse_info(include_str!(
            "../../tests/fixtures/podman-4.3/info-root.json"
        ))
        .unwrap();
        assert_eq!(root.version.version, "4.3.1");
        assert_eq!(root.host.oci_runtime.name, "runc");
        assert_eq!(root.host.cgroup_version, "v1");
        assert!(!root.host.security.rootless);
        assert_eq!(root.store.graph_root, "/var/lib/containers/storage");
        let user = parse_info(include_str!(
            "../../tests/fixtures/podman-4.3/info-rootless.json"
        ))
        .unwrap();
        assert!(user.host.security.rootless);
        assert_eq!(
            user.store.graph_root,
            "/home/silo-e2e/.local/share/containers/storage"
        );
        assert_eq!(podman_info().to_string(), "podman info --format json");
        // Podman 5.4.2 (Debian 13 chroot, as root).
        let five = parse_info(include_str!(
            "../../tests/fixtures/podman-5.4/info-root.json"
        ))
        .unwrap();
        assert_eq!(five.version.version, "5.4.2");
        assert_eq!(five.host.oci_runtime.name, "runc");
    }

    #[test]
    fn subordinate_ids_by_name_or_uid() {
        let file = "silo-e2e:100000:65536\n1002:200000:1000\nbob:300000:65536\n";
        assert_eq!(subordinate_ids(file, "silo-e2e", 1001), 65_536);
        assert_eq!(subordinate_ids(file, "carol", 1002), 1000);
        assert_eq!(subordinate_ids(file, "dave", 1003), 0);
        assert_eq!(subordinate_ids("garbage\n::\n", "x", 1), 0);
    }

    #[test]
    fn tun_states() {
        use std::io::{Error, ErrorKind};
        assert_eq!(tun_check(Ok(())).status, Status::Ok);
        let missing = tun_check(Err(Error::from(ErrorKind::NotFound)));
        assert_eq!(missing.fix.as_deref(), Some("as root: modprobe tun"));
        let denied = tun_check(Err(Error::from(ErrorKind::PermissionDenied)));
        assert_eq!(
            denied.fix.as_deref(),
            Some("as root: chmod 666 /dev/net/tun")
        );
    }

    #[test]
    fn disk_thresholds() {
        assert_eq!(disk_check("x", "/", 10_000_000_000).status, Status::Ok);
        assert_eq!(disk_check("x", "/", 3_000_000_000).status, Status::Warning);
        assert_eq!(disk_check("x", "/", 500_000_000).status, Status::Problem);
    }
}
