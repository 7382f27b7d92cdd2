//! The runner's podman command lines, as data: nothing here runs a process.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::config::runner::ImageRef;
use crate::config::values::FlakeRef;
use crate::runner::{Invocation, Tool};

/// Where Nix's own caches (fetchers, evaluation) live in the runner: in the store volume,
/// so that they last from one run to the next as `~/.cache/nix` does on the host.
const CACHE_HOME: &str = "/nix/var/silo/cache";

/// The name of the image archive the runner copies out.
pub const ARCHIVE: &str = "image.tar";

/// The name of the lock file `nix flake update` writes in the runner.
pub const LOCK: &str = "flake.lock";

/// Labels the store volume, so that it can be told from others.
pub const VOLUME_LABEL: &str = "io.silo.role=nix-store";

/// Brings an image whose Nix lives in its store (docker.io/nixos/nix) into a store volume
/// that an older image filled: the volume's `/nix` hides the image's own, so without
/// this the old Nix would keep running. Copies the image's default profile into the
/// volume (mounted at /seed/nix) and points the volume's profile at it. Does nothing for
/// an image without a profile (Nix outside /nix) or one already in the volume.
const SEED: &str = r#"set -eu
p=$(readlink -f /nix/var/nix/profiles/default 2>/dev/null) || exit 0
[ -e "$p" ] || exit 0
q=$(readlink -f /seed/nix/var/nix/profiles/default 2>/dev/null) || q=
[ "$q" = "$p" ] && exit 0
nix --extra-experimental-features nix-command copy --no-check-sigs --to 'local?root=/seed' "$p"
nix-env --store 'local?root=/seed' -p /seed/nix/var/nix/profiles/default --set "$p"
"#;

/// The garbage collector root of a workspace's last build, in the store volume.
pub fn gc_root(id: &str) -> PathBuf {
    PathBuf::from(format!("/nix/var/nix/gcroots/silo-{id}"))
}

/// A host path the runner sees at the same path, read-only unless it is where the runner
/// hands something back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    path: PathBuf,
    writable: bool,
}

impl Bind {
    /// Checks that `--mount` can carry the path: absolute, plain components, no `,`
    /// (which separates mount options) and no control characters.
    pub fn new(path: &Path, writable: bool) -> Result<Bind, String> {
        let text = path.to_str().ok_or_else(|| {
            format!(
                "{} is not UTF-8, so the Nix runner cannot mount it",
                path.display()
            )
        })?;
        if !plain_absolute(text) || text.chars().any(|c| c == ',' || c.is_control()) {
            return Err(format!(
                "the Nix runner cannot mount {text:?}: the path must be absolute, without `.`, `..`, `,` or control characters"
            ));
        }
        Ok(Bind {
            path: path.to_path_buf(),
            writable,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn arg(&self) -> OsString {
        let path = self.path.display();
        let ro = if self.writable { "" } else { ",ro" };
        format!("--mount=type=bind,src={path},dst={path}{ro}").into()
    }
}

/// The host path behind a local flake reference (`path:`, `git+file:`, `file:`,
/// `tarball+file:` or a bare absolute path), without its query and fragment; `None` for
/// a remote one.
pub fn local_path(flake: &FlakeRef) -> Option<PathBuf> {
    let s = flake.as_str();
    let rest = ["path:", "git+file:", "file:", "tarball+file:", "hg+file:"]
        .iter()
        .find_map(|scheme| s.strip_prefix(scheme))
        .or_else(|| s.starts_with('/').then_some(s))?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let path = rest.split(['?', '#']).next().unwrap_or(rest);
    path.starts_with('/').then(|| PathBuf::from(path))
}

/// The host paths of `[nix.inputs]` the runner must see, once each.
pub fn input_paths(overrides: &BTreeMap<String, FlakeRef>) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = overrides.values().filter_map(local_path).collect();
    paths.sort();
    paths.dedup();
    paths
}

/// The runner container: its image, and the volume holding its store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    pub image: ImageRef,
    pub volume: String,
}

fn podman(args: Vec<OsString>) -> Invocation {
    Invocation::new(Tool::Podman, args)
}

/// `podman run` of a container that is removed afterwards, of an image that must be
/// there already (Podman would try to pull a missing `localhost/` image from
/// https://localhost/), with SELinux labels left alone: relabelling would change the
/// labels of the user's own files (`.silo/`, a local checkout) for the runner to read
/// them.
fn run_args() -> Vec<OsString> {
    [
        "run",
        "--rm",
        "--pull=never",
        "--security-opt=label=disable",
    ]
    .map(OsString::from)
    .into()
}

impl Container {
    /// The image's id; fails when Podman does not have it.
    pub fn image_id(&self) -> Invocation {
        podman(vec![
            "image".into(),
            "inspect".into(),
            "--format".into(),
            "{{.Id}}".into(),
            self.image.as_str().into(),
        ])
    }

    pub fn pull(&self) -> Invocation {
        podman(vec!["pull".into(), self.image.as_str().into()])
    }

    /// The volume's directory on the host; fails when the volume does not exist.
    pub fn volume_inspect(&self) -> Invocation {
        podman(vec![
            "volume".into(),
            "inspect".into(),
            "--format".into(),
            "{{.Mountpoint}}".into(),
            self.volume.as_str().into(),
        ])
    }

    pub fn volume_create(&self) -> Invocation {
        podman(vec![
            "volume".into(),
            "create".into(),
            "--label".into(),
            VOLUME_LABEL.into(),
            self.volume.as_str().into(),
        ])
    }

    /// See `SEED`.
    pub fn seed(&self) -> Invocation {
        let mut args = run_args();
        args.push("--network=none".into());
        args.push(format!("--volume={}:/seed/nix", self.volume).into());
        args.extend([self.image.as_str(), "sh", "-c", SEED].map(OsString::from));
        podman(args)
    }

    /// The image's own Nix version (no volume: the image's `/nix` as it was built).
    pub fn version(&self) -> Invocation {
        let mut args = run_args();
        args.push("--network=none".into());
        args.extend([self.image.as_str(), "nix", "--version"].map(OsString::from));
        podman(args)
    }

    /// A `nix` command line of nix.rs, unchanged, in the runner: the store volume at
    /// /nix, each bind at its own path. The network is Podman's default: Nix fetches
    /// inputs and substitutes from binary caches.
    pub fn nix(&self, nix: &Invocation, binds: &[Bind]) -> Invocation {
        debug_assert_eq!(nix.tool, Tool::Nix);
        let mut args = run_args();
        args.push(format!("--volume={}:/nix", self.volume).into());
        args.push(format!("--env=XDG_CACHE_HOME={CACHE_HOME}").into());
        for (i, bind) in binds.iter().enumerate() {
            if !binds[..i].contains(bind) {
                args.push(bind.arg());
            }
        }
        args.push(self.image.as_str().into());
        args.push("nix".into());
        args.extend(nix.args.iter().cloned());
        podman(args)
    }

    /// Copies a store path out of the volume to `<dir>/image.tar` (a copy, not a stream
    /// through a pipe: about ten times faster for a large image).
    pub fn copy_out(&self, store_path: &Path, dir: &Bind) -> Invocation {
        let mut args = run_args();
        args.push("--network=none".into());
        args.push(format!("--volume={}:/nix:ro", self.volume).into());
        args.push(dir.arg());
        args.extend([self.image.as_str(), "cp", "--"].map(OsString::from));
        args.push(store_path.into());
        args.push(dir.path().join(ARCHIVE).into());
        podman(args)
    }
}

/// `/a/b`: absolute, no empty, `.` or `..` components (`Path::components` would hide
/// some of them).
fn plain_absolute(text: &str) -> bool {
    text.strip_prefix('/')
        .is_some_and(|rest| rest.split('/').all(|c| !matches!(c, "" | "." | "..")))
}

/// Checks a store path from `nix build --json` before it reaches a command line.
pub fn store_path(path: &Path) -> Result<&Path, String> {
    if path.to_str().is_some_and(plain_absolute) {
        Ok(path)
    } else {
        Err(format!(
            "nix build in the runner printed {}, which is not a store path",
            path.display()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nix::{self, BuildFlags, Link};

    fn container() -> Container {
        Container {
            image: ImageRef::parse("localhost/silo-test-runner:nix2.26").unwrap(),
            volume: "silo-nix".into(),
        }
    }

    fn flake(s: &str) -> FlakeRef {
        FlakeRef::parse(s).unwrap()
    }

    #[test]
    fn the_build_runs_the_host_command_line_in_the_container() {
        let silo = Path::new("/home/u/p/.silo");
        let overrides = BTreeMap::from([
            ("nixpkgs".to_owned(), flake("path:/src/nixpkgs")),
            ("home-manager".to_owned(), flake("github:me/hm")),
        ]);
        let mut binds = vec![Bind::new(silo, false).unwrap()];
        binds.extend(
            input_paths(&overrides)
                .iter()
                .map(|p| Bind::new(p, false).unwrap()),
        );
        let root = gc_root("ab3f9c12");
        let build = nix::build(silo, &overrides, BuildFlags::default(), Link::GcRoot(&root));
        assert_eq!(
            container().nix(&build, &binds).to_string(),
            "podman run --rm --pull=never --security-opt=label=disable --volume=silo-nix:/nix \
             --env=XDG_CACHE_HOME=/nix/var/silo/cache \
             --mount=type=bind,src=/home/u/p/.silo,dst=/home/u/p/.silo,ro \
             --mount=type=bind,src=/src/nixpkgs,dst=/src/nixpkgs,ro \
             localhost/silo-test-runner:nix2.26 \
             nix --extra-experimental-features 'nix-command flakes' build --json \
             --out-link /nix/var/nix/gcroots/silo-ab3f9c12 --no-update-lock-file \
             --override-input home-manager github:me/hm --override-input nixpkgs path:/src/nixpkgs \
             path:/home/u/p/.silo#image"
        );
    }

    #[test]
    fn the_lock_update_writes_to_a_scratch_directory() {
        let silo = Path::new("/home/u/p/.silo");
        let out = Bind::new(Path::new("/home/u/.cache/silo/nix-runner/run-1"), true).unwrap();
        let update = nix::update(
            (2, 26),
            silo,
            &["nixpkgs".into()],
            Some(&out.path().join(LOCK)),
        );
        assert_eq!(
            container()
                .nix(&update, &[Bind::new(silo, false).unwrap(), out])
                .to_string(),
            "podman run --rm --pull=never --security-opt=label=disable --volume=silo-nix:/nix \
             --env=XDG_CACHE_HOME=/nix/var/silo/cache \
             --mount=type=bind,src=/home/u/p/.silo,dst=/home/u/p/.silo,ro \
             --mount=type=bind,src=/home/u/.cache/silo/nix-runner/run-1,dst=/home/u/.cache/silo/nix-runner/run-1 \
             localhost/silo-test-runner:nix2.26 \
             nix --extra-experimental-features 'nix-command flakes' flake update nixpkgs \
             --output-lock-file /home/u/.cache/silo/nix-runner/run-1/flake.lock --flake path:/home/u/p/.silo"
        );
    }

    #[test]
    fn the_other_steps() {
        let c = container();
        let out = Bind::new(Path::new("/c/run-1"), true).unwrap();
        assert_eq!(
            c.copy_out(Path::new("/nix/store/zr2k-silo-ab3f9c12.tar"), &out)
                .to_string(),
            "podman run --rm --pull=never --security-opt=label=disable --network=none \
             --volume=silo-nix:/nix:ro --mount=type=bind,src=/c/run-1,dst=/c/run-1 \
             localhost/silo-test-runner:nix2.26 cp -- /nix/store/zr2k-silo-ab3f9c12.tar /c/run-1/image.tar"
        );
        assert_eq!(
            c.seed().to_string(),
            "podman run --rm --pull=never --security-opt=label=disable --network=none \
             --volume=silo-nix:/seed/nix localhost/silo-test-runner:nix2.26 sh -c 'set -eu...'"
        );
        assert_eq!(
            c.version().to_string(),
            "podman run --rm --pull=never --security-opt=label=disable --network=none \
             localhost/silo-test-runner:nix2.26 nix --version"
        );
        assert_eq!(
            c.image_id().to_string(),
            "podman image inspect --format '{{.Id}}' localhost/silo-test-runner:nix2.26"
        );
        assert_eq!(
            c.volume_inspect().to_string(),
            "podman volume inspect --format '{{.Mountpoint}}' silo-nix"
        );
        assert_eq!(
            c.volume_create().to_string(),
            "podman volume create --label io.silo.role=nix-store silo-nix"
        );
        assert_eq!(
            c.pull().to_string(),
            "podman pull localhost/silo-test-runner:nix2.26"
        );
    }

    #[test]
    fn local_inputs_are_found_and_remote_ones_left_alone() {
        let cases = [
            ("path:/src/nixpkgs", Some("/src/nixpkgs")),
            ("path:/src/nixpkgs?narHash=sha256-x", Some("/src/nixpkgs")),
            ("git+file:///src/hm?ref=main", Some("/src/hm")),
            ("git+file:/src/hm", Some("/src/hm")),
            (
                "tarball+file:///v/nixpkgs-25.05.tar.xz",
                Some("/v/nixpkgs-25.05.tar.xz"),
            ),
            ("file:///v/hm.tar.gz#x", Some("/v/hm.tar.gz")),
            ("/src/nixpkgs", Some("/src/nixpkgs")),
            ("github:NixOS/nixpkgs/nixos-25.05", None),
            ("git+https://example.org/x.git", None),
            ("nixpkgs", None),
        ];
        for (reference, expected) in cases {
            assert_eq!(
                local_path(&flake(reference)),
                expected.map(PathBuf::from),
                "{reference}"
            );
        }
        let overrides = BTreeMap::from([
            ("nixpkgs".to_owned(), flake("path:/src/x")),
            ("home-manager".to_owned(), flake("path:/src/x?dir=hm")),
        ]);
        assert_eq!(input_paths(&overrides), [PathBuf::from("/src/x")]);
    }

    #[test]
    fn paths_mount_cannot_carry_are_refused() {
        for bad in [
            "relative", "/a,b", "/a/../b", "/a/./b", "/a//b", "/a/", "/", "/a\nb",
        ] {
            assert!(Bind::new(Path::new(bad), false).is_err(), "{bad:?}");
        }
        assert!(Bind::new(Path::new("/a:b/c d"), false).is_ok());
        assert!(store_path(Path::new("/nix/store/x-silo.tar")).is_ok());
        assert!(store_path(Path::new("/nix/store/../../etc/shadow")).is_err());
        assert!(store_path(Path::new("x")).is_err());
    }
}
