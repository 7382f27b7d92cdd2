//! A Nix runner image for the end-to-end tests, made without a registry: a small root
//! file system with Debian 13's Nix 2.26, cut out of the Debian 13 chroot that
//! tests/real_nixpkgs evaluates in (make-runner-image.sh), then `podman import`ed into
//! the storage of each test's Podman under a name of its own.

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::Command;

use super::TestEnv;
use super::chroot::Chroot;

const SCRIPT: &str = include_str!("make-runner-image.sh");

/// What `podman import` sets in the image: the fixture builders find their tools on PATH.
const CHANGES: [&str; 4] = [
    "--change",
    "ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin",
    "--change",
    "CMD [\"/bin/sh\"]",
];

/// The image's root file system as a tar: built once (about 5 s, plus about 80 s when the
/// chroot does not exist yet) and kept in target/tmp for as long as the script is
/// unchanged, under a lock so that tests running at once build it once. Err says why it
/// cannot be had here.
pub fn tar() -> Result<PathBuf, String> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("silo-runner-image");
    fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let tar = dir.join(format!("runner-{:016x}.tar", fnv1a(SCRIPT.as_bytes())));
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("lock"))
        .map_err(|e| format!("opening the lock in {}: {e}", dir.display()))?;
    lock.lock().map_err(|e| format!("locking: {e}"))?;
    if tar.is_file() {
        return Ok(tar);
    }
    let tool = repo.join("../shared/tools/debian13-chroot");
    if !tool.exists() {
        return Err(format!("{} is missing", tool.display()));
    }
    let chroot = Chroot::open(&tool, &[]);
    chroot.must(
        "installing fakeroot in the chroot",
        "command -v fakeroot >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fakeroot >/dev/null",
    );
    let out = Command::new("sh")
        .arg(repo.join("tests/common/make-runner-image.sh"))
        .arg(chroot.root())
        .arg(&tar)
        .output()
        .map_err(|e| format!("running make-runner-image.sh: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "make-runner-image.sh failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(tar)
}

/// The 64-bit FNV-1a hash, to name the tar after the script that made it.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The runner image in the Podman of one test environment (root's, or the test user's
/// rootless storage in the test's HOME); removed when dropped.
pub struct RunnerImage<'a> {
    env: &'a TestEnv,
    pub name: String,
}

impl<'a> RunnerImage<'a> {
    pub fn import(env: &'a TestEnv) -> Result<RunnerImage<'a>, String> {
        let tar = tar()?;
        // The test user must be able to read it.
        let own = env.dir.path().join("runner.tar");
        fs::copy(&tar, &own).map_err(|e| format!("copying {}: {e}", tar.display()))?;
        env.give_to_user();
        let suffix: String = env
            .dir
            .path()
            .file_name()
            .map(|n| n.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default()
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect();
        let name = format!("localhost/silo-test-runner:{suffix}");
        let mut args = vec!["import", "--quiet"];
        args.extend(CHANGES);
        let own = own.display().to_string();
        args.extend([own.as_str(), name.as_str()]);
        let out = env.podman(&args);
        let _ = fs::remove_file(&own);
        if !out.status.success() {
            return Err(format!(
                "podman import of the runner image failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(RunnerImage { env, name })
    }
}

impl Drop for RunnerImage<'_> {
    fn drop(&mut self) {
        self.env.podman(&["rmi", "--force", &self.name]);
    }
}
