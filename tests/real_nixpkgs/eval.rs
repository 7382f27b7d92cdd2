//! One test's world: the locked chroot, a work directory with the silo binary and the
//! user's files, and the Nix and silo command lines run in it.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::chroot::Chroot;
use crate::common;

pub const REPO: &str = env!("CARGO_MANIFEST_DIR");
pub const USER: &str = "alice";
const NIXPKGS_TARBALL: &str = "nixpkgs-25.05.tar.xz";
const HOME_MANAGER_TARBALL: &str = "home-manager-25.05.tar.xz";

/// Every Nix call: pure, offline, no import-from-derivation.
pub const NIX: &str = "nix --extra-experimental-features 'nix-command flakes' \
    --option allow-import-from-derivation false --option substituters ''";

/// One test's world inside the chroot: a work directory with the silo binary, the user's
/// files (with `[nix.inputs]` on the vendored tarballs) and the workspaces.
pub struct Eval {
    pub chroot: Chroot,
    work: tempfile::TempDir,
    pub nixpkgs: String,
    pub home_manager: String,
    started: Instant,
}

impl Eval {
    /// The world, or None (with the reason printed) when this machine cannot have it.
    pub fn open(test: &str) -> Option<Eval> {
        let repo = Path::new(REPO);
        let tool = repo.join("../shared/tools/debian13-chroot");
        let vendor = repo.join("../shared/vendor");
        let root = fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
        let missing = [
            tool.clone(),
            vendor.join(NIXPKGS_TARBALL),
            vendor.join(HOME_MANAGER_TARBALL),
        ]
        .into_iter()
        .find(|p| !p.exists());
        if !root {
            common::skip(&format!("{test} runs as root (it mounts a chroot)"));
            return None;
        }
        if let Some(path) = missing {
            assert!(
                !common::e2e_required(),
                "SILO_E2E is set, but {} is missing",
                path.display()
            );
            common::skip(&format!("{} is missing", path.display()));
            return None;
        }
        let started = Instant::now();
        let vendor = vendor.canonicalize().expect("the vendor directory");
        let work = tempfile::Builder::new()
            .prefix("silo-real-nixpkgs-")
            .tempdir_in("/var/tmp")
            .expect("a work directory");
        fs::copy(env!("CARGO_BIN_EXE_silo"), work.path().join("silo")).expect("copying silo");
        let chroot = Chroot::open(&tool, &[work.path(), &vendor]);
        let url = |file: &str| format!("tarball+file://{}", vendor.join(file).display());
        let eval = Eval {
            chroot,
            nixpkgs: url(NIXPKGS_TARBALL),
            home_manager: url(HOME_MANAGER_TARBALL),
            work,
            started,
        };
        eval.chroot.must(
            "silo user init",
            &format!(
                "{} user init\nprintf '\\n[nix.inputs]\\nnixpkgs = \"%s\"\\nhome-manager = \"%s\"\\n' '{}' '{}' >>{}",
                eval.silo_env(&eval.dir()),
                eval.nixpkgs,
                eval.home_manager,
                eval.user_file("silo.user.toml").display()
            ),
        );
        Some(eval)
    }

    pub fn dir(&self) -> PathBuf {
        self.work.path().to_path_buf()
    }

    pub fn user_file(&self, name: &str) -> PathBuf {
        self.dir().join("cfg/silo").join(name)
    }

    /// `cd DIR && silo` with the test's user files, and a Nix that evaluates but builds
    /// nothing.
    fn silo_env(&self, dir: &Path) -> String {
        let work = self.dir();
        format!(
            "mkdir -p {dir} {home} && cd {dir} && \
             XDG_CONFIG_HOME={cfg} HOME={home} USER={USER} \
             NIX_CONFIG=$'max-jobs = 0\\nallow-import-from-derivation = false\\nsubstituters =' {silo}",
            dir = dir.display(),
            cfg = work.join("cfg").display(),
            home = work.join("home").display(),
            silo = work.join("silo").display(),
        )
    }

    /// `silo ARGS` in `dir`; its exit status and stderr.
    pub fn silo(&self, dir: &Path, args: &str) -> (bool, String) {
        let out = self.chroot.bash(&format!("{} {args}", self.silo_env(dir)));
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// A new workspace `name`, created with `silo ARGS`; returns its directory and id.
    pub fn workspace(&self, name: &str, init: &str) -> (PathBuf, String) {
        let dir = self.dir().join(name);
        let (ok, stderr) = self.silo(&dir, init);
        assert!(ok, "silo {init} in {name}: {stderr}");
        let id = common::id_of(&dir).expect("the workspace's id");
        (dir, id)
    }

    /// `--override-input` for both inputs, as [nix.inputs] makes silo pass them.
    pub fn overrides(&self) -> String {
        format!(
            "--override-input nixpkgs {} --override-input home-manager {}",
            self.nixpkgs, self.home_manager
        )
    }

    /// `nix eval --json FLAKE#ATTR --apply APPLY` (stdout, stderr).
    pub fn nix_eval(&self, installable: &str, apply: &str, extra: &str) -> (String, String) {
        let out = self.chroot.bash(&format!(
            "{NIX} eval --json --no-update-lock-file {} {extra} '{installable}' --apply '{apply}'",
            self.overrides()
        ));
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            out.status.success(),
            "nix eval {installable} failed:\n{stderr}"
        );
        (String::from_utf8_lossy(&out.stdout).into_owned(), stderr)
    }

    pub fn json(&self, installable: &str, apply: &str, extra: &str) -> serde_json::Value {
        let (stdout, _) = self.nix_eval(installable, apply, extra);
        serde_json::from_str(&stdout).expect("nix eval --json prints JSON")
    }

    pub fn finish(self, test: &str) {
        eprintln!("{test}: {:.1} s", self.started.elapsed().as_secs_f64());
    }
}

/// The flake of a workspace, as silo addresses it.
pub fn flake(dir: &Path) -> String {
    format!("path:{}/.silo", dir.display())
}

/// The Fedora pin for x86_64-linux from nix/fedora.json: (imageDigest, hash).
pub fn fedora_pin() -> (String, String) {
    let pins: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(Path::new(REPO).join("nix/fedora.json")).unwrap())
            .unwrap();
    let pin = &pins["x86_64-linux"];
    (
        pin["imageDigest"].as_str().unwrap().to_owned(),
        pin["hash"].as_str().unwrap().to_owned(),
    )
}

/// The files of silo's own flake (its package's fileset, and what the fixtures test
/// with), copied: a `path:` flake of the checkout would copy target/ into the store.
pub fn copy_repo(to: &Path) {
    let repo = Path::new(REPO);
    for entry in [
        "flake.nix",
        "flake.lock",
        "Cargo.toml",
        "Cargo.lock",
        "build.rs",
        "src",
        "nix",
        "modules",
        "tests/fixtures/eval-real-modules.nix",
    ] {
        let target = to.join(entry);
        fs::create_dir_all(target.parent().unwrap()).unwrap();
        let status = std::process::Command::new("cp")
            .arg("-r")
            .arg(repo.join(entry))
            .arg(&target)
            .status()
            .unwrap();
        assert!(status.success(), "copying {entry}");
    }
}
