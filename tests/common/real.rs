//! Helpers for the tests with the real podman and nix: a test environment or a skip
//! (a failure under SILO_E2E=1), and small steps those tests share.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::TestEnv;

/// A test environment with the real tools, or a skip (a failure under SILO_E2E=1).
#[macro_export]
macro_rules! real_env {
    ($user:expr) => {
        match $crate::common::real::real_tools($user) {
            Ok(env) => env,
            Err(why) => {
                if common::e2e_required() {
                    panic!("SILO_E2E is set, but the end-to-end test cannot run: {why}");
                }
                common::skip(&format!("{why} (set SILO_E2E=1 to make this a failure)"));
                return;
            }
        }
    };
}

/// Skips a test that must run as root (to be root, or to switch to the test user).
#[macro_export]
macro_rules! root_only {
    () => {
        if !$crate::common::real::is_root() {
            common::skip("this end-to-end test runs as root");
            return;
        }
    };
}

pub fn real_tools(user: Option<&str>) -> Result<TestEnv, String> {
    real_tools_with(user, &[])
}

/// `real_tools` with extra environment for silo and the tools, set before the first
/// podman command (Podman keeps its runtime directory from the first).
pub fn real_tools_with(user: Option<&str>, vars: &[(&str, &str)]) -> Result<TestEnv, String> {
    for (path, package) in [
        ("/usr/bin/busybox", "busybox-static"),
        ("/usr/bin/fakeroot", "fakeroot"),
    ] {
        if !Path::new(path).exists() {
            return Err(format!("{path} is missing (apt install {package})"));
        }
    }
    let mut env = TestEnv::with_real_tools(user)?;
    for (key, value) in vars {
        env.set(key, value);
    }
    // The tools must work for this user, not just exist.
    for (tool, args) in [
        (
            "podman",
            &["info", "--format", "{{.Host.OCIRuntime.Name}}"][..],
        ),
        ("nix", &["--version"][..]),
    ] {
        let out = env.tool(tool, args);
        if !out.status.success() {
            return Err(format!(
                "`{tool} {}` fails: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    if user.is_some() && !Path::new("/nix/var/nix/daemon-socket/socket").exists() {
        return Err("nix-daemon is not running (.ci/run starts it)".into());
    }
    env.silo(&["user", "init"]).success();
    env.use_fixture_inputs();
    Ok(env)
}

pub fn is_root() -> bool {
    fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// Sets `key = value` lines under a section of the workspace's silo.toml, and approves
/// the change as its user would with `silo trust`.
pub fn set_workspace(env: &TestEnv, dir: &Path, section: &str, lines: &[&str]) {
    let path = dir.join(".silo/silo.toml");
    let mut text = fs::read_to_string(&path).unwrap();
    for line in lines {
        let key = line.split('=').next().unwrap().trim();
        let header = format!("[{section}]\n");
        let start = text.find(&header).expect("section exists") + header.len();
        let end = text[start..]
            .find("\n[")
            .map_or(text.len(), |i| start + i + 1);
        let body: String = text[start..end]
            .lines()
            .filter(|l| l.split('=').next().map(str::trim) != Some(key))
            .map(|l| format!("{l}\n"))
            .collect();
        text = format!("{}{line}\n{body}{}", &text[..start], &text[end..]);
    }
    fs::write(&path, text).unwrap();
    env.give_to_user();
    env.silo_in(dir, &["trust"]).success();
}

pub fn silo_exec(env: &TestEnv, dir: &Path, script: &str) -> String {
    let run = env.silo_in(dir, &["exec", "--", "sh", "-c", script]);
    run.success();
    run.stdout()
}

pub fn container_exists(env: &TestEnv, name: &str) -> bool {
    env.podman(&["container", "exists", name]).status.success()
}

pub fn image_labels(env: &TestEnv, image: &str) -> serde_json::Value {
    let out = env.podman(&["image", "inspect", image]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    json[0]["Labels"].clone()
}

/// Runs a command, failing the test with its output when it fails.
pub fn must(cmd: &mut std::process::Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{what} failed:\n{text}");
    text
}

/// ../shared/tools/debian13-chroot, or None after saying the test is skipped (a failure
/// under SILO_E2E=1).
pub fn debian13_tool() -> Option<std::path::PathBuf> {
    let tool = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/tools/debian13-chroot");
    if tool.exists() {
        return Some(tool);
    }
    assert!(
        !super::e2e_required(),
        "SILO_E2E is set, but {} is missing",
        tool.display()
    );
    super::skip(&format!("{} is missing", tool.display()));
    None
}

/// The Debian 13 chroot (Podman 5.4, Nix 2.26) of ../shared/tools/debian13-chroot that
/// the end-to-end tests share, held under an exclusive lock (`<root>.lock`) from open
/// to drop, which tears its mounts down: no other test uses or unmounts it meanwhile.
pub struct Debian13 {
    tool: std::path::PathBuf,
    pub root: &'static str,
    _lock: fs::File,
}

impl Debian13 {
    pub const ROOT: &'static str = "/var/tmp/silo-debian13";

    /// Waits for the lock, then builds the chroot if needed (about 80 s the first time).
    pub fn open(tool: &Path) -> Debian13 {
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(format!("{}.lock", Self::ROOT))
            .expect("opening the chroot's lock file");
        lock.lock().expect("locking the chroot");
        let chroot = Debian13 {
            tool: tool.to_path_buf(),
            root: Self::ROOT,
            _lock: lock,
        };
        must(
            &mut chroot.command(&["setup"]),
            "building the Debian 13 chroot",
        );
        chroot
    }

    /// The chroot tool with `args` (`run ...`, `setup`).
    pub fn command(&self, args: &[&str]) -> std::process::Command {
        let mut cmd = std::process::Command::new(&self.tool);
        cmd.arg(self.root).args(args);
        cmd
    }

    /// Runs a command with the chroot as the root of a new mount namespace
    /// (tests/common/enter-chroot.sh), where Podman's exec sessions are isolated as on a
    /// real machine. Directories must have been bound with `run -b` before.
    pub fn enter(&self, args: &[&str]) -> std::process::Output {
        let enter = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/common/enter-chroot.sh");
        std::process::Command::new("unshare")
            .arg("--mount")
            .arg(enter)
            .arg(self.root)
            .args(args)
            .output()
            .expect("running unshare")
    }
}

impl Drop for Debian13 {
    fn drop(&mut self) {
        let _ = self.command(&["teardown"]).status();
    }
}
