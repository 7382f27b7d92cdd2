//! Shared helpers for the CLI and end-to-end tests: a temporary home, configuration
//! directory and workspace, the silo binary run with a clean environment, and stand-in
//! `podman` and `nix` executables that record their command lines.

#![allow(dead_code, unused_macros)]

pub mod chroot;
pub mod real;
pub mod runner_image;

use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub const FAKE_PODMAN: &str = include_str!("fake-podman.sh");
pub const FAKE_NIX: &str = include_str!("fake-nix.sh");
/// Enough of Podman's default profile for silo to edit.
const FAKE_SECCOMP_DEFAULT: &str = r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
  {"names": ["read", "chmod", "clone", "unshare"], "action": "SCMP_ACT_ALLOW", "args": []}
]}"#;
const PASS_THROUGH: &str = include_str!("pass-through.sh");

/// The unprivileged user .ci/run creates for the rootless end-to-end tests.
pub const E2E_USER: &str = "silo-e2e";

/// One test's world: `home/`, `config/` (XDG_CONFIG_HOME), `ws/proj` (the workspace),
/// `bin/` (stand-ins), `state/` (their logs).
pub struct TestEnv {
    pub dir: tempfile::TempDir,
    pub home: PathBuf,
    pub config: PathBuf,
    pub ws: PathBuf,
    pub bin: PathBuf,
    pub state: PathBuf,
    /// Extra environment for every silo run.
    pub env: Vec<(String, String)>,
    /// Run silo (and clean up) as this user instead of the test's own.
    pub user: Option<String>,
    /// Real podman and nix are on PATH: containers and images are removed on drop.
    pub real: bool,
    /// silo's PATH is `bin/` alone, without the system's directories (and their nix).
    pub only_bin_on_path: bool,
    /// The silo binary, copied where `user` can run it.
    pub silo_bin: PathBuf,
}

impl TestEnv {
    /// A world with stand-in podman and nix on PATH (and nothing else), and a small
    /// stand-in for Podman's default seccomp profile.
    pub fn with_fakes() -> TestEnv {
        let mut env = TestEnv::empty();
        env.write_tool("podman", FAKE_PODMAN);
        env.write_tool("nix", FAKE_NIX);
        // What the stand-in podman runs as the Nix runner's nix.
        fs::write(env.state.join("runner-nix"), FAKE_NIX).expect("writing a stand-in");
        let profile = env.state.join("default-seccomp.json");
        fs::write(&profile, FAKE_SECCOMP_DEFAULT).expect("writing the profile");
        env.set("SILO_SECCOMP_DEFAULT", &profile.display().to_string());
        env
    }

    /// The system call filter silo gives a container, as podman create gets it (with a
    /// trailing space), or nothing: rootless nested Podman keeps Podman's default.
    pub fn seccomp_arg(&self, nested_podman: bool) -> String {
        let variant = match (nested_podman, is_root()) {
            (false, true) => "-no-userns-no-setuid",
            (false, false) => "-no-userns",
            (true, true) => "-no-setuid",
            (true, false) => return String::new(),
        };
        format!(
            "--security-opt seccomp={}/.local/state/silo/seccomp{variant}.json ",
            self.home.display()
        )
    }

    /// A world with no external tools at all.
    pub fn empty() -> TestEnv {
        let dir = tempfile::tempdir().expect("temporary directory");
        let root = dir.path().to_path_buf();
        let env = TestEnv {
            home: root.join("home"),
            config: root.join("config"),
            ws: root.join("ws/proj"),
            bin: root.join("bin"),
            state: root.join("state"),
            dir,
            env: Vec::new(),
            user: None,
            real: false,
            only_bin_on_path: false,
            silo_bin: PathBuf::from(env!("CARGO_BIN_EXE_silo")),
        };
        for d in [&env.home, &env.config, &env.ws, &env.bin, &env.state] {
            fs::create_dir_all(d).expect("creating test directories");
        }
        env
    }

    /// A world with the real podman and nix (recording their command lines), run as
    /// `user` when given. Err says why it cannot be had on this machine.
    pub fn with_real_tools(user: Option<&str>) -> Result<TestEnv, String> {
        let mut env = TestEnv::empty();
        env.real = true;
        // Never the user's own volumes: every volume this test makes has its own prefix.
        let prefix = format!("silotest-{}", unique_suffix(&env.dir));
        env.set("SILO_VOLUME_PREFIX", &prefix);
        for tool in ["podman", "nix"] {
            let real = find_in_path(tool).ok_or_else(|| format!("{tool} is not installed"))?;
            let script = PASS_THROUGH
                .replace("@NAME@", tool)
                .replace("@REAL@", &real.display().to_string());
            env.write_tool(tool, &script);
        }
        if let Some(user) = user {
            let ok = Command::new("id")
                .arg(user)
                .output()
                .is_ok_and(|o| o.status.success());
            if !ok {
                return Err(format!(
                    "the user {user} does not exist (.ci/run creates it)"
                ));
            }
            let bin = env.dir.path().join("silo-bin");
            fs::create_dir_all(&bin).unwrap();
            env.silo_bin = bin.join("silo");
            fs::copy(env!("CARGO_BIN_EXE_silo"), &env.silo_bin).expect("copying silo");
            env.user = Some(user.to_owned());
            env.give_to_user();
        }
        Ok(env)
    }

    /// Hands the whole test directory to the test user (tempfile makes it 0700).
    pub fn give_to_user(&self) {
        if let Some(user) = &self.user {
            let root = self.dir.path();
            fs::set_permissions(root, fs::Permissions::from_mode(0o755)).unwrap();
            let status = Command::new("chown")
                .args(["-R", &format!("{user}:{user}")])
                .arg(root)
                .status()
                .unwrap();
            assert!(status.success(), "chown failed");
        }
    }

    /// Another workspace directory beside the main one.
    pub fn workspace(&self, name: &str) -> PathBuf {
        let dir = self.dir.path().join("ws").join(name);
        fs::create_dir_all(&dir).unwrap();
        self.give_to_user();
        dir
    }

    /// Points the workspace flake's inputs at the offline fixtures (tests/fixtures), and
    /// Nix at the host's: Debian 12's Nix 2.8 builds the fixtures, though `auto` would
    /// pass it over for real nixpkgs.
    pub fn use_fixture_inputs(&self) {
        let user_toml = self.config.join("silo/silo.user.toml");
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let text = fs::read_to_string(&user_toml)
            .expect("silo.user.toml exists: run `silo user init` first")
            + &format!(
                "\n[nix]\nrunner = \"host\"\n\n[nix.inputs]\nnixpkgs = \"path:{}\"\nhome-manager = \"path:{}\"\n",
                fixtures.join("nixpkgs").display(),
                fixtures.join("home-manager").display()
            );
        fs::write(&user_toml, text).unwrap();
    }

    /// Runs a tool (podman, nix) as the test's user, with the HOME silo's runs get:
    /// rootless Podman keeps its storage there. For checks and clean-up.
    pub fn tool(&self, tool: &str, args: &[&str]) -> Output {
        let path = find_in_path(tool).unwrap_or_else(|| PathBuf::from(tool));
        let mut cmd = match &self.user {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args([
                    "-u",
                    user,
                    "--",
                    "env",
                    "-i",
                    "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
                ]);
                c.arg(format!("HOME={}", self.home.display()));
                // A test that gives Podman a runtime directory of its own.
                c.args(
                    self.env
                        .iter()
                        .filter(|(k, _)| k == "XDG_RUNTIME_DIR")
                        .map(|(k, v)| format!("{k}={v}")),
                );
                c.arg(path);
                c
            }
            None => Command::new(path),
        };
        cmd.args(args)
            .current_dir("/")
            .output()
            .expect("running a tool")
    }

    pub fn podman(&self, args: &[&str]) -> Output {
        self.tool("podman", args)
    }

    pub fn write_tool(&self, name: &str, script: &str) {
        let path = self.bin.join(name);
        fs::write(&path, script).expect("writing a stand-in");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod");
    }

    pub fn remove_tool(&self, name: &str) {
        fs::remove_file(self.bin.join(name)).expect("removing a stand-in");
    }

    pub fn set(&mut self, key: &str, value: &str) -> &mut Self {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// The environment silo runs with: the test's home and config, stand-ins on PATH.
    fn vars(&self) -> Vec<(String, String)> {
        let path = if self.real && !self.only_bin_on_path {
            format!(
                "{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                self.bin.display()
            )
        } else {
            self.bin.display().to_string()
        };
        let mut vars: Vec<(String, String)> = vec![
            ("PATH".into(), path),
            ("HOME".into(), self.home.display().to_string()),
            ("XDG_CONFIG_HOME".into(), self.config.display().to_string()),
            (
                "USER".into(),
                self.user.clone().unwrap_or_else(|| "alice".into()),
            ),
            ("SILO_TEST_STATE".into(), self.state.display().to_string()),
        ];
        vars.extend(self.env.iter().cloned());
        vars
    }

    pub fn command(&self, dir: &Path, args: &[&str]) -> Command {
        let vars = self.vars();
        let mut cmd = match &self.user {
            // runuser keeps nothing of the caller's environment with `env -i`.
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--", "env", "-i"]);
                c.args(vars.iter().map(|(k, v)| format!("{k}={v}")));
                c.arg(&self.silo_bin);
                c
            }
            None => {
                let mut c = Command::new(&self.silo_bin);
                c.env_clear().envs(vars.iter().map(|(k, v)| (k, v)));
                c
            }
        };
        cmd.args(args).current_dir(dir);
        cmd
    }

    /// Runs silo in the workspace.
    pub fn silo(&self, args: &[&str]) -> Run {
        self.silo_in(&self.ws, args)
    }

    pub fn silo_in(&self, dir: &Path, args: &[&str]) -> Run {
        let output = self.command(dir, args).output().expect("running silo");
        Run::new(args, output)
    }

    /// Runs silo with `input` on its stdin (a pipe, so no TTY), e.g. for a shell.
    pub fn silo_with_input(&self, dir: &Path, args: &[&str], input: &str) -> Run {
        let mut child = self
            .command(dir, args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running silo");
        let mut stdin = child.stdin.take().expect("a stdin pipe");
        stdin.write_all(input.as_bytes()).expect("writing stdin");
        drop(stdin);
        Run::new(args, child.wait_with_output().expect("waiting for silo"))
    }

    /// Runs silo with a terminal (a pseudo-terminal from util-linux `script`) as stdin,
    /// stdout and stderr, typing `input`; output arrives merged in `stdout`.
    pub fn silo_on_terminal(&self, dir: &Path, args: &[&str], input: &str) -> Run {
        assert!(self.user.is_none(), "only for the test's own user");
        let line = std::iter::once(self.silo_bin.display().to_string())
            .chain(args.iter().map(|a| a.to_string()))
            .collect::<Vec<_>>()
            .join(" ");
        let script = find_in_path("script").expect("script(1) from util-linux");
        let mut child = Command::new(script)
            .args(["-qec", &line, "/dev/null"])
            .env_clear()
            .envs(self.vars())
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running script(1) (util-linux)");
        let mut stdin = child.stdin.take().expect("a stdin pipe");
        stdin.write_all(input.as_bytes()).expect("typing");
        drop(stdin);
        Run::new(args, child.wait_with_output().expect("waiting for script"))
    }

    /// Runs `count` silo processes with the same arguments in the workspace at once.
    pub fn silo_at_once(&self, count: usize, args: &[&str]) -> Vec<Run> {
        let children: Vec<_> = (0..count)
            .map(|_| {
                self.command(&self.ws, args)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("running silo")
            })
            .collect();
        children
            .into_iter()
            .map(|child| Run::new(args, child.wait_with_output().expect("waiting for silo")))
            .collect()
    }

    /// The command lines a stand-in was called with, oldest first.
    pub fn calls(&self, tool: &str) -> Vec<Vec<String>> {
        let log = fs::read(self.state.join(format!("{tool}.log"))).unwrap_or_default();
        log.split(|b| *b == 0x1e)
            .filter(|call| !call.is_empty())
            .map(|call| {
                call.split(|b| *b == 0)
                    .filter(|arg| !arg.is_empty())
                    .map(|arg| String::from_utf8_lossy(arg).into_owned())
                    .collect()
            })
            .collect()
    }

    /// The calls whose first arguments are `prefix`, each joined with spaces.
    pub fn calls_starting(&self, tool: &str, prefix: &[&str]) -> Vec<String> {
        self.calls(tool)
            .into_iter()
            .filter(|c| c.len() >= prefix.len() && c[..prefix.len()] == *prefix)
            .map(|c| c.join(" "))
            .collect()
    }

    pub fn clear_calls(&self) {
        for tool in ["podman", "nix", "runner-nix"] {
            let _ = fs::remove_file(self.state.join(format!("{tool}.log")));
        }
    }

    pub fn read(&self, path: impl AsRef<Path>) -> String {
        let path = path.as_ref();
        fs::read_to_string(self.ws.join(path))
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
    }

    pub fn write(&self, path: impl AsRef<Path>, contents: &str) {
        let path = self.ws.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, contents).unwrap();
        self.give_to_user();
    }

    /// Rewrites a workspace file through `change`.
    pub fn edit(&self, path: impl AsRef<Path>, change: impl FnOnce(String) -> String) {
        let path = path.as_ref();
        self.write(path, &change(self.read(path)));
    }

    /// Rewrites the user's silo.user.toml through `change`.
    pub fn edit_user_toml(&self, change: impl FnOnce(String) -> String) {
        let path = self.config.join("silo/silo.user.toml");
        let text =
            fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        fs::write(&path, change(text)).unwrap();
    }

    /// The workspace id from .silo/silo.toml.
    pub fn id(&self) -> String {
        let toml = self.read(".silo/silo.toml");
        let line = toml
            .lines()
            .find(|l| l.starts_with("id = "))
            .expect("an id line");
        line.trim_start_matches("id = ")
            .trim_matches('"')
            .to_owned()
    }

    /// Every file below a directory with its content, for before/after comparisons.
    pub fn snapshot(&self, dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for entry in fs::read_dir(&d).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    out.push((
                        path.strip_prefix(dir).unwrap().to_path_buf(),
                        fs::read(&path).unwrap(),
                    ));
                }
            }
        }
        out.sort();
        out
    }
}

impl Drop for TestEnv {
    /// Removes what the real tools made for this test's workspaces.
    fn drop(&mut self) {
        if !self.real {
            return;
        }
        let Ok(entries) = fs::read_dir(self.dir.path().join("ws")) else {
            return;
        };
        for ws in entries.flatten() {
            if let Some(id) = id_of(&ws.path()) {
                let (c, dev, image) = (
                    format!("silo-{id}"),
                    format!("silo-{id}-dev"),
                    format!("localhost/silo-{id}"),
                );
                let (ports, proxy) = (format!("silo-{id}-ports"), format!("silo-{id}-proxy"));
                // The forwarder requires the container, which requires the proxy.
                for name in [&ports, &c, &dev, &proxy] {
                    self.podman(&["rm", "--force", "--time", "0", name]);
                }
                self.podman(&["network", "rm", &format!("silo-{id}-net")]);
                self.podman(&["rmi", "--force", &image, &format!("{image}-proxy")]);
            }
        }
        self.remove_test_volumes();
    }
}

impl TestEnv {
    /// The volume-name prefix of this test (real tools only).
    pub fn volume_prefix(&self) -> Option<&str> {
        self.env
            .iter()
            .find(|(k, _)| k == "SILO_VOLUME_PREFIX")
            .map(|(_, v)| v.as_str())
    }

    /// Removes the volumes named with this test's prefix.
    fn remove_test_volumes(&self) {
        let Some(prefix) = self.volume_prefix().map(str::to_owned) else {
            return;
        };
        let out = self.podman(&["volume", "ls", "--quiet"]);
        for name in String::from_utf8_lossy(&out.stdout).lines() {
            if name == prefix || name.starts_with(&format!("{prefix}-")) {
                self.podman(&["volume", "rm", "--force", name]);
            }
        }
    }
}

/// A short suffix that differs between test environments (from the temp dir's name).
fn unique_suffix(dir: &tempfile::TempDir) -> String {
    dir.path()
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect()
}

/// The workspace id in `<dir>/.silo/silo.toml`.
pub fn id_of(dir: &Path) -> Option<String> {
    let toml = fs::read_to_string(dir.join(".silo/silo.toml")).ok()?;
    let line = toml.lines().find(|l| l.starts_with("id = "))?;
    Some(
        line.trim_start_matches("id = ")
            .trim_matches('"')
            .to_owned(),
    )
}

pub fn find_in_path(tool: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .chain(["/usr/sbin", "/usr/bin", "/sbin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(tool))
        .find(|p| p.is_file())
}

/// The result of one silo run, with assertions that print everything on failure.
pub struct Run {
    pub args: Vec<String>,
    pub output: Output,
}

impl Run {
    fn new(args: &[&str], output: Output) -> Run {
        Run {
            args: args.iter().map(|s| s.to_string()).collect(),
            output,
        }
    }

    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    pub fn code(&self) -> Option<i32> {
        self.output.status.code()
    }

    fn describe(&self) -> String {
        format!(
            "silo {}\nexit: {:?}\n--- stdout\n{}--- stderr\n{}",
            self.args.join(" "),
            self.code(),
            self.stdout(),
            self.stderr()
        )
    }

    #[track_caller]
    pub fn success(&self) -> &Self {
        assert!(
            self.output.status.success(),
            "expected success:\n{}",
            self.describe()
        );
        self
    }

    #[track_caller]
    pub fn failure(&self) -> &Self {
        assert!(
            !self.output.status.success(),
            "expected failure:\n{}",
            self.describe()
        );
        self
    }

    #[track_caller]
    pub fn code_is(&self, code: i32) -> &Self {
        assert_eq!(
            self.code(),
            Some(code),
            "unexpected exit code:\n{}",
            self.describe()
        );
        self
    }

    #[track_caller]
    pub fn stderr_has(&self, needle: &str) -> &Self {
        assert!(
            self.stderr().contains(needle),
            "stderr lacks {needle:?}:\n{}",
            self.describe()
        );
        self
    }

    #[track_caller]
    pub fn stdout_is(&self, expected: &str) -> &Self {
        assert_eq!(
            self.stdout(),
            expected,
            "unexpected stdout:\n{}",
            self.describe()
        );
        self
    }
}

/// A generated .devcontainer.json without its leading `//` comment lines.
pub fn without_line_comments(text: &str) -> String {
    text.lines()
        .skip_while(|l| l.starts_with("//"))
        .map(|l| format!("{l}\n"))
        .collect()
}

pub fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// Says that a test is skipped and why, where it shows: written straight to the
/// process's stderr, which the test harness does not capture (it captures `eprintln!`).
pub fn skip(why: &str) {
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
}

/// Whether end-to-end tests must run (CI sets SILO_E2E=1): a missing tool is then a failure.
pub fn e2e_required() -> bool {
    std::env::var_os("SILO_E2E").is_some_and(|v| v != OsStr::new("0") && !v.is_empty())
}
