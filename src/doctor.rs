//! `silo doctor`: checks that Podman, Nix, the configuration files and the disk are ready
//! for silo, one line per check, each problem with the command that fixes it.

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::config::file::{parse_user, parse_workspace};
use crate::config::{DEVCONTAINER_USER_JSON_FILE, HOME_USER_NIX_FILE, USER_TOML_FILE};
use crate::init::PODMAN_OPTION;
use crate::nix::{self, NIXPKGS_MIN_VERSION};
use crate::runner::{Invocation, Output, Runner, Tool};
use crate::session::{Ctx, read_config};
use crate::trust::{self, Subject, Verdict};
use crate::workspace::{DEVCONTAINER_JSON, HOME_NIX, SILO_TOML, Workspace};
use crate::{devcontainer, home_nix, host, podman, seccomp};

/// The oldest Podman silo supports (`--userns=keep-id:uid=`).
const PODMAN_MIN_VERSION: (u32, u32) = (4, 3);
/// Free space below this is a warning, below a fifth of it a problem.
const LOW_SPACE: u64 = 5_000_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Ok,
    Warning,
    Problem,
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub check: &'static str,
    pub status: Status,
    pub detail: String,
    /// The command (or edit) that fixes it.
    pub fix: Option<String>,
}

fn ok(check: &'static str, detail: impl Into<String>) -> Check {
    Check {
        check,
        status: Status::Ok,
        detail: detail.into(),
        fix: None,
    }
}

fn warning(check: &'static str, detail: impl Into<String>, fix: Option<String>) -> Check {
    Check {
        check,
        status: Status::Warning,
        detail: detail.into(),
        fix,
    }
}

fn problem(check: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
    Check {
        check,
        status: Status::Problem,
        detail: detail.into(),
        fix: Some(fix.into()),
    }
}

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
fn check_podman(runner: &Runner) -> (Vec<Check>, Option<PodmanInfo>) {
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

fn first_error_line(out: &Output) -> String {
    out.stderr
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("no message")
        .to_owned()
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
fn check_rootless() -> Vec<Check> {
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

fn check_limits(rootless: bool) -> Check {
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

fn check_seccomp() -> Check {
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

/// `sandbox = ...` from `nix show-config` / `nix config show`.
pub fn sandbox_setting(config: &str) -> Option<&str> {
    config
        .lines()
        .find_map(|l| l.strip_prefix("sandbox = "))
        .map(str::trim)
}

/// A flake with no inputs: evaluating it copies it into the store, which proves that
/// flakes work and that the store is writable (directly or through the daemon).
const PROBE_FLAKE: &str = "{ outputs = _: { probe = \"ok\"; }; }\n";

fn check_nix(runner: &Runner) -> Vec<Check> {
    let version = match runner.capture(&nix::version()) {
        Ok(out) if out.success() => nix::parse_version(&out.stdout),
        _ => {
            return vec![problem(
                "nix",
                "Nix is not installed (or not on PATH)",
                "install Nix 2.18 or newer: https://nixos.org/download (Debian 13: apt install nix-bin)",
            )];
        }
    };
    let Some(version) = version else {
        return vec![problem(
            "nix",
            "cannot read the Nix version",
            "run `nix --version`",
        )];
    };
    let (major, minor) = version;
    let (min_major, min_minor) = NIXPKGS_MIN_VERSION;
    let mut checks = vec![if version < (2, 4) {
        problem(
            "nix",
            format!("Nix {major}.{minor} has no flakes; silo needs 2.4 or newer"),
            "install Nix 2.18 or newer: https://nixos.org/download",
        )
    } else if version < NIXPKGS_MIN_VERSION {
        warning(
            "nix",
            format!("Nix {major}.{minor} is older than current nixpkgs needs ({min_major}.{min_minor}): only a [nix.inputs] nixpkgs that accepts it builds"),
            Some("install Nix 2.18 or newer: https://nixos.org/download (Debian 13: apt install nix-bin)".into()),
        )
    } else {
        ok("nix", format!("Nix {major}.{minor}"))
    }];
    if version < (2, 4) {
        return checks;
    }
    let ping = if version >= (2, 19) { "info" } else { "ping" };
    let store = runner.capture(&nix::command(["store".into(), ping.into()]));
    checks.push(match store {
        Ok(out) if out.success() => {
            let url = out
                .stdout
                .lines()
                .chain(out.stderr.lines())
                .find_map(|l| l.strip_prefix("Store URL: "))
                .unwrap_or("?")
                .to_owned();
            ok("nix store", format!("reachable ({url})"))
        }
        Ok(out) => problem(
            "nix store",
            format!("`nix store {ping}` fails: {}", first_error_line(&out)),
            nix::hint(&out.stderr).unwrap_or_else(|| "as root: start nix-daemon, and add your user to the group nix-users (log in again)".into()),
        ),
        Err(err) => problem("nix store", format!("{err:#}"), "check the Nix installation"),
    });
    checks.push(flake_check(runner));
    let show = if version >= (2, 20) {
        ["config", "show"]
    } else {
        ["show-config", ""]
    };
    let args = show.iter().filter(|a| !a.is_empty()).map(Into::into);
    if let Ok(out) = runner.capture(&nix::command(args)) {
        checks.push(match sandbox_setting(&out.stdout) {
            Some("true") => ok("sandbox", "Nix builds in a sandbox"),
            Some(other) => warning(
                "sandbox",
                format!("Nix's sandbox is {other}: a build can read files outside the store"),
                Some("sandbox = true in /etc/nix/nix.conf (then restart nix-daemon)".into()),
            ),
            None => warning("sandbox", "cannot read Nix's sandbox setting", None),
        });
    }
    checks
}

fn flake_check(runner: &Runner) -> Check {
    let dir = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(e) => {
            return warning(
                "flakes",
                format!("cannot create a temporary flake: {e}"),
                None,
            );
        }
    };
    if let Err(e) = std::fs::write(dir.path().join("flake.nix"), PROBE_FLAKE) {
        return warning(
            "flakes",
            format!("cannot write a temporary flake: {e}"),
            None,
        );
    }
    let mut reference = nix::flake_ref(dir.path());
    reference.push("#probe");
    let args = [
        "eval".into(),
        "--raw".into(),
        "--no-write-lock-file".into(),
        reference,
    ];
    match runner.capture(&nix::command(args)) {
        Ok(out) if out.success() && out.stdout.trim() == "ok" => ok(
            "flakes",
            "a flake evaluates (and its source reaches the store)",
        ),
        Ok(out) => problem(
            "flakes",
            format!("evaluating a flake fails: {}", first_error_line(&out)),
            nix::hint(&out.stderr).unwrap_or_else(|| {
                "check that your user may write to the Nix store, or use nix-daemon".into()
            }),
        ),
        Err(err) => problem("flakes", format!("{err:#}"), "check the Nix installation"),
    }
}

/// The user's files and the workspace's, parsed as silo parses them.
fn check_config(ctx: &Ctx) -> Vec<Check> {
    let dir = &ctx.user_dir;
    let mut checks = Vec::new();
    let fix_user = |path: PathBuf| format!("edit {}", path.display());
    match dir.read(USER_TOML_FILE) {
        Ok(None) => checks.push(ok(
            "config",
            format!(
                "{} not created yet (`silo user init` or `silo` creates it)",
                dir.toml().display()
            ),
        )),
        Ok(Some(text)) => checks.push(match parse_user(&text, &dir.toml()) {
            Ok(_) => ok("config", format!("{} parses", dir.toml().display())),
            Err(err) => problem("config", format!("{err:#}"), fix_user(dir.toml())),
        }),
        Err(err) => checks.push(problem("config", format!("{err:#}"), fix_user(dir.toml()))),
    }
    if let Ok(Some(text)) = dir.read(HOME_USER_NIX_FILE)
        && let Err(err) = home_nix::get_bool(&text, &PODMAN_OPTION)
    {
        checks.push(warning(
            "config",
            format!("{}: {err:#}", dir.home_nix().display()),
            Some(fix_user(dir.home_nix())),
        ));
    }
    if let Ok(Some(text)) = dir.read(DEVCONTAINER_USER_JSON_FILE)
        && let Err(err) = devcontainer::parse_source(&text, &dir.devcontainer_json())
    {
        checks.push(problem(
            "config",
            format!("{err:#}"),
            fix_user(dir.devcontainer_json()),
        ));
    }
    checks.extend(check_workspace(ctx));
    checks
}

/// The workspace silo would use here, if there is one.
fn check_workspace(ctx: &Ctx) -> Vec<Check> {
    let Ok(ws) = Workspace::locate(&ctx.cwd) else {
        return Vec::new();
    };
    let Ok(Some(silo)) = ws.silo() else {
        return Vec::new();
    };
    if !matches!(silo.entry(SILO_TOML), Ok(Some(_))) {
        return Vec::new();
    }
    let toml = ws.toml();
    let mut checks = Vec::new();
    let file = match silo
        .read(SILO_TOML)
        .and_then(|t| parse_workspace(&t.unwrap_or_default(), &toml))
    {
        Ok(file) => file,
        Err(err) => {
            return vec![problem(
                "workspace",
                format!("{err:#}"),
                format!("edit {}", toml.display()),
            )];
        }
    };
    match read_config(&ws, &silo, &ctx.user_dir) {
        Ok(_) => checks.push(ok(
            "workspace",
            format!("{} ({}) parses", ws.root.display(), file.id),
        )),
        Err(err) => checks.push(problem(
            "workspace",
            format!("{err:#}"),
            "fix the file named above, or run `silo user init`",
        )),
    }
    if let Ok(Some(text)) = silo.read(HOME_NIX)
        && let Err(err) = home_nix::get_bool(&text, &PODMAN_OPTION)
    {
        checks.push(warning(
            "workspace",
            format!("{}: {err:#}", silo.join(HOME_NIX).display()),
            None,
        ));
    }
    if let Ok(Some(text)) = silo.read(DEVCONTAINER_JSON)
        && let Err(err) = devcontainer::parse_source(&text, &ws.devcontainer_json())
    {
        checks.push(problem(
            "workspace",
            format!("{err:#}"),
            format!("edit {}", ws.devcontainer_json().display()),
        ));
    }
    let home_nix = silo.read(HOME_NIX).ok().flatten().unwrap_or_default();
    let store = trust::Store::new(&ctx.user_dir.dir);
    let verdict = Subject::new(&ws, &silo, &file, &home_nix).and_then(|s| store.verdict(&s));
    checks.push(match verdict {
        Ok(Verdict::Trusted(origin)) => ok("trust", format!("the workspace's settings are {}", match origin {
            trust::Origin::Created => "yours (created by silo init)",
            trust::Origin::Approved => "approved",
        })),
        Ok(Verdict::Review(_)) => warning(
            "trust",
            "the workspace's settings are not approved (or changed since): silo does not apply them",
            Some(format!("review and approve them: cd {} && silo trust", ws.root.display())),
        ),
        Err(err) => problem("trust", format!("{err:#}"), "see the message"),
    });
    checks
}

/// Free space where Podman keeps images and where Nix keeps its store.
fn check_disk(graph_root: Option<&str>) -> Vec<Check> {
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

/// Every check, in the order shown.
pub fn checks(ctx: &Ctx) -> Vec<Check> {
    let (mut checks, info) = check_podman(&ctx.runner);
    let rootless = info
        .as_ref()
        .map_or(!host::is_root(), |i| i.host.security.rootless);
    if rootless {
        checks.extend(check_rootless());
    }
    checks.push(check_limits(rootless));
    checks.push(check_seccomp());
    checks.extend(check_nix(&ctx.runner));
    checks.extend(check_config(ctx));
    checks.extend(check_disk(
        info.as_ref().map(|i| i.store.graph_root.as_str()),
    ));
    checks
}

/// The report: `ok      what`, with `        fix: ...` under a warning or problem.
pub fn render(checks: &[Check]) -> String {
    let mut out = String::new();
    for c in checks {
        let word = match c.status {
            Status::Ok => "ok",
            Status::Warning => "warning",
            Status::Problem => "problem",
        };
        out.push_str(&format!("{word:<8} {:<10} {}\n", c.check, c.detail));
        if let Some(fix) = &c.fix {
            out.push_str(&format!("{:<8} {:<10} fix: {fix}\n", "", ""));
        }
    }
    out
}

/// `silo doctor [--json]`: 0 when nothing is a problem, 1 otherwise.
pub fn run(ctx: &Ctx, json: bool) -> Result<std::process::ExitCode> {
    let checks = checks(ctx);
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&checks).expect("plain data")
        );
    } else {
        print!("{}", render(&checks));
    }
    let problems = checks
        .iter()
        .filter(|c| c.status == Status::Problem)
        .count();
    let warnings = checks
        .iter()
        .filter(|c| c.status == Status::Warning)
        .count();
    if !json {
        eprintln!(
            "{problems} problem{}, {warnings} warning{}",
            if problems == 1 { "" } else { "s" },
            if warnings == 1 { "" } else { "s" }
        );
    }
    Ok(if problems == 0 {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn podman_info_as_root_and_rootless() {
        // Captured from Podman 4.3.1 on Debian 12 (cgroup v1, runc), as root and as an
        // unprivileged user.
        let root = parse_info(include_str!("../tests/fixtures/podman-4.3/info-root.json")).unwrap();
        assert_eq!(root.version.version, "4.3.1");
        assert_eq!(root.host.oci_runtime.name, "runc");
        assert_eq!(root.host.cgroup_version, "v1");
        assert!(!root.host.security.rootless);
        assert_eq!(root.store.graph_root, "/var/lib/containers/storage");
        let user = parse_info(include_str!(
            "../tests/fixtures/podman-4.3/info-rootless.json"
        ))
        .unwrap();
        assert!(user.host.security.rootless);
        assert_eq!(
            user.store.graph_root,
            "/home/silo-e2e/.local/share/containers/storage"
        );
        assert_eq!(podman_info().to_string(), "podman info --format json");
        // Podman 5.4.2 (Debian 13 chroot, as root).
        let five = parse_info(include_str!("../tests/fixtures/podman-5.4/info-root.json")).unwrap();
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
    fn nix_sandbox_setting() {
        // Captured from Nix 2.8 (`nix show-config`), Debian's nix.conf.
        let config = "experimental-features = nix-command\nsandbox = false\nsandbox-build-dir = /build\nsandbox-fallback = true\n";
        assert_eq!(sandbox_setting(config), Some("false"));
        assert_eq!(sandbox_setting("sandbox = relaxed\n"), Some("relaxed"));
        assert_eq!(sandbox_setting("sandbox-paths = \n"), None);
    }

    #[test]
    fn disk_thresholds() {
        assert_eq!(disk_check("x", "/", 10_000_000_000).status, Status::Ok);
        assert_eq!(disk_check("x", "/", 3_000_000_000).status, Status::Warning);
        assert_eq!(disk_check("x", "/", 500_000_000).status, Status::Problem);
    }

    #[test]
    fn report_lines() {
        let checks = [
            ok("podman", "Podman 4.3.1"),
            problem(
                "network",
                "/dev/net/tun is missing",
                "as root: modprobe tun",
            ),
        ];
        assert_eq!(
            render(&checks),
            "\
ok       podman     Podman 4.3.1
problem  network    /dev/net/tun is missing
                    fix: as root: modprobe tun
"
        );
        let json = serde_json::to_value(&checks[1]).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"check": "network", "status": "problem",
                "detail": "/dev/net/tun is missing", "fix": "as root: modprobe tun"})
        );
    }
}
