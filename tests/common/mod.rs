//! Shared helpers for the CLI and end-to-end tests: a temporary home, configuration
//! directory and workspace, the silo binary run with a clean environment, and stand-in
//! `podman` and `nix` executables that record their command lines.

#![allow(dead_code)]

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const FAKE_PODMAN: &str = include_str!("fake-podman.sh");
pub const FAKE_NIX: &str = include_str!("fake-nix.sh");

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
}

impl TestEnv {
    /// A world with stand-in podman and nix on PATH (and nothing else).
    pub fn with_fakes() -> TestEnv {
        let env = TestEnv::empty();
        env.write_tool("podman", FAKE_PODMAN);
        env.write_tool("nix", FAKE_NIX);
        env
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
        };
        for d in [&env.home, &env.config, &env.ws, &env.bin, &env.state] {
            fs::create_dir_all(d).expect("creating test directories");
        }
        env
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

    pub fn command(&self, dir: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_silo"));
        cmd.args(args)
            .current_dir(dir)
            .env_clear()
            .env("PATH", &self.bin)
            .env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", &self.config)
            .env("USER", "alice")
            .env("FAKE_STATE", &self.state);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs silo in the workspace.
    pub fn silo(&self, args: &[&str]) -> Run {
        self.silo_in(&self.ws, args)
    }

    pub fn silo_in(&self, dir: &Path, args: &[&str]) -> Run {
        let output = self.command(dir, args).output().expect("running silo");
        Run {
            args: args.iter().map(|s| s.to_string()).collect(),
            output,
        }
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
        for tool in ["podman", "nix"] {
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

/// The result of one silo run, with assertions that print everything on failure.
pub struct Run {
    pub args: Vec<String>,
    pub output: Output,
}

impl Run {
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

/// Whether end-to-end tests must run (CI sets SILO_E2E=1): a missing tool is then a failure.
pub fn e2e_required() -> bool {
    std::env::var_os("SILO_E2E").is_some_and(|v| v != OsStr::new("0") && !v.is_empty())
}
