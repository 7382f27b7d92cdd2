//! The Debian 13 chroot (Nix 2.26) that tests/real_nixpkgs evaluates in and the Nix
//! runner's test image is cut from, held under a lock for as long as a test uses it, so
//! that no other test tears it down meanwhile.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Where the chroot lives unless SILO_EVAL_CHROOT says otherwise. Not the end-to-end
/// tests' /var/tmp/silo-debian13: that one is torn down by its own test.
const DEFAULT_ROOT: &str = "/var/tmp/silo-d13-eval";

/// A chroot built by ../shared/tools/debian13-chroot, locked for this test.
pub struct Chroot {
    tool: PathBuf,
    root: PathBuf,
    /// Host directories bound into the chroot at the same path.
    binds: Vec<PathBuf>,
    /// Held until drop: an exclusive flock on `<root>.lock`.
    _lock: File,
}

impl Chroot {
    /// Waits for the lock, then builds the chroot if it is not built yet (about 80 s).
    pub fn open(tool: &Path, binds: &[&Path]) -> Chroot {
        let root = PathBuf::from(
            std::env::var_os("SILO_EVAL_CHROOT").unwrap_or_else(|| DEFAULT_ROOT.into()),
        );
        let lock_path = PathBuf::from(format!("{}.lock", root.display()));
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .unwrap_or_else(|e| panic!("opening {}: {e}", lock_path.display()));
        lock.lock()
            .unwrap_or_else(|e| panic!("locking {}: {e}", lock_path.display()));
        let chroot = Chroot {
            tool: tool.to_path_buf(),
            root,
            binds: binds.iter().map(|b| b.to_path_buf()).collect(),
            _lock: lock,
        };
        let out = chroot
            .tool_command(&["setup"])
            .output()
            .expect("running the chroot tool");
        assert!(
            out.status.success(),
            "building the Debian 13 chroot in {} failed:\n{}",
            chroot.root.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        chroot
    }

    /// The chroot's root directory on the host.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn tool_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.tool);
        cmd.arg(&self.root).args(args);
        cmd
    }

    /// Runs a bash script inside, with the bound directories, a C locale, and Nix's
    /// caches kept in the chroot (the vendored tarballs are unpacked once, not per run).
    pub fn bash(&self, script: &str) -> Output {
        let mut cmd = self.tool_command(&["run"]);
        for bind in &self.binds {
            cmd.arg("-b").arg(bind);
        }
        cmd.args([
            "--",
            "env",
            "LC_ALL=C",
            "XDG_CACHE_HOME=/root/.cache",
            "bash",
            "-euo",
            "pipefail",
            "-c",
            script,
        ]);
        cmd.output().expect("running the chroot tool")
    }

    /// `bash`, failing the test with the script's output when it fails; returns stdout.
    pub fn must(&self, what: &str, script: &str) -> String {
        let out = self.bash(script);
        assert!(
            out.status.success(),
            "{what} failed:\n--- script\n{script}\n--- stdout\n{}\n--- stderr\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Chroot {
    /// Unmounts what `run` mounted, while the lock is still held, and removes the empty
    /// mount points of the bound directories (`remove_dir` never removes content).
    fn drop(&mut self) {
        let _ = self.tool_command(&["teardown"]).status();
        for bind in &self.binds {
            if let Ok(inside) = bind.strip_prefix("/") {
                let _ = std::fs::remove_dir(self.root.join(inside));
            }
        }
    }
}
