//! Nix command lines (build, lock update, version) and what their failures mean.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::config::values::FlakeRef;
use crate::runner::{Invocation, Tool};

/// The oldest Nix that current nixpkgs evaluates with (its lib/minfeatures.nix).
pub const NIXPKGS_MIN_VERSION: (u32, u32) = (2, 18);

/// Passed on every call, so silo works whether or not flakes are enabled in nix.conf.
const FEATURES: [&str; 2] = ["--extra-experimental-features", "nix-command flakes"];

/// The workspace flake as Nix sees it. `path:` copies the directory as it is, so a
/// surrounding git repository cannot hide untracked files from the build.
pub fn flake_ref(silo_dir: &Path) -> OsString {
    let mut r = OsString::from("path:");
    r.push(silo_dir);
    r
}

fn nix(args: impl IntoIterator<Item = OsString>) -> Invocation {
    Invocation::new(Tool::Nix, FEATURES.iter().map(OsString::from).chain(args))
}

fn override_args(overrides: &BTreeMap<String, FlakeRef>) -> Vec<OsString> {
    overrides
        .iter()
        .flat_map(|(name, flake)| {
            [
                "--override-input".into(),
                name.into(),
                flake.as_str().into(),
            ]
        })
        .collect()
}

/// `nix build` of the workspace image. The lock file is never changed by a build:
/// only `silo update` moves pins.
pub fn build(
    silo_dir: &Path,
    overrides: &BTreeMap<String, FlakeRef>,
    no_cache: bool,
) -> Invocation {
    let mut args: Vec<OsString> = ["build", "--json", "--no-link", "--no-update-lock-file"]
        .map(OsString::from)
        .into();
    if no_cache {
        args.extend(["--option", "eval-cache", "false", "--refresh"].map(OsString::from));
    }
    args.extend(override_args(overrides));
    let mut installable = flake_ref(silo_dir);
    installable.push("#image");
    args.push(installable);
    nix(args)
}

pub fn version() -> Invocation {
    Invocation::new(Tool::Nix, ["--version"])
}

/// `(major, minor)` from `nix (Nix) 2.8.0`.
pub fn parse_version(stdout: &str) -> Option<(u32, u32)> {
    let version = stdout.split_whitespace().last()?;
    let mut parts = version.split(['.', 'p', '-']);
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// Updating lock entries: Nix 2.19 turned `nix flake lock --update-input` into
/// `nix flake update INPUT...`.
pub fn update(version: (u32, u32), silo_dir: &Path, inputs: &[String]) -> Invocation {
    let flake = flake_ref(silo_dir);
    let mut args: Vec<OsString> = vec!["flake".into()];
    if version >= (2, 19) {
        args.push("update".into());
        args.extend(inputs.iter().map(OsString::from));
        args.extend(["--flake".into(), flake]);
    } else if inputs.is_empty() {
        args.extend(["update".into(), flake]);
    } else {
        args.push("lock".into());
        for input in inputs {
            args.extend(["--update-input".into(), input.into()]);
        }
        args.push(flake);
    }
    nix(args)
}

/// The output path from `nix build --json`: `[{"drvPath": ..., "outputs": {"out": ...}}]`.
pub fn parse_build_output(stdout: &str) -> Result<PathBuf> {
    let results: serde_json::Value = serde_json::from_str(stdout)
        .with_context(|| format!("unexpected output of nix build: {stdout:?}"))?;
    match results[0]["outputs"]["out"].as_str() {
        Some(path) => Ok(PathBuf::from(path)),
        None => bail!("nix build printed no output path: {stdout:?}"),
    }
}

/// What to do about a known Nix failure, recognised from its stderr.
pub fn hint(stderr: &str) -> Option<&'static str> {
    let known: [(&str, &str); 8] = [
        (
            "requires Nix >=",
            "this nixpkgs needs a newer Nix than the one installed: upgrade Nix (current nixpkgs needs 2.18 or newer; Debian 12 has 2.8, Debian 13 has 2.26)",
        ),
        (
            "is disabled",
            "Nix refused an experimental feature although silo enables nix-command and flakes on the command line; Nix 2.4 or newer is needed",
        ),
        (
            "requires lock file changes",
            ".silo/flake.lock lacks an input: run `silo update` to add it (or delete the file to start again from silo's pins)",
        ),
        (
            "daemon-socket",
            "cannot reach nix-daemon: start it (systemctl start nix-daemon) and make sure your user may use it (Debian: add it to the group nix-users, then log in again)",
        ),
        (
            "hash mismatch in fixed-output derivation",
            "a pinned hash does not match what was downloaded; if it is the Fedora base image, refresh nix/fedora.json (see nix/fedora.nix)",
        ),
        (
            "unable to download",
            "Nix could not download an input or a store path: check the network and the substituters in nix.conf",
        ),
        (
            "Could not resolve host",
            "Nix could not download an input or a store path: check the network and the substituters in nix.conf",
        ),
        (
            "while evaluating the module argument",
            "home.nix or home.user.nix uses a module argument that is not available; check the function header `{ config, pkgs, ... }:`",
        ),
    ];
    known
        .iter()
        .find(|(needle, _)| stderr.contains(needle))
        .map(|(_, hint)| *hint)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overrides() -> BTreeMap<String, FlakeRef> {
        BTreeMap::from([
            (
                "nixpkgs".to_owned(),
                FlakeRef::parse("path:/fx/nixpkgs").unwrap(),
            ),
            (
                "home-manager".to_owned(),
                FlakeRef::parse("github:me/hm").unwrap(),
            ),
        ])
    }

    #[test]
    fn build_command_line() {
        let dir = Path::new("/p/.silo");
        assert_eq!(
            build(dir, &BTreeMap::new(), false).to_string(),
            "nix --extra-experimental-features 'nix-command flakes' build --json --no-link --no-update-lock-file path:/p/.silo#image"
        );
        assert_eq!(
            build(dir, &overrides(), true).to_string(),
            "nix --extra-experimental-features 'nix-command flakes' build --json --no-link --no-update-lock-file \
             --option eval-cache false --refresh \
             --override-input home-manager github:me/hm --override-input nixpkgs path:/fx/nixpkgs path:/p/.silo#image"
        );
    }

    #[test]
    fn update_command_line_depends_on_the_nix_version() {
        let dir = Path::new("/p/.silo");
        let f = "nix --extra-experimental-features 'nix-command flakes' flake";
        assert_eq!(
            update((2, 8), dir, &[]).to_string(),
            format!("{f} update path:/p/.silo")
        );
        assert_eq!(
            update((2, 8), dir, &["nixpkgs".into(), "home-manager".into()]).to_string(),
            format!("{f} lock --update-input nixpkgs --update-input home-manager path:/p/.silo")
        );
        assert_eq!(
            update((2, 26), dir, &[]).to_string(),
            format!("{f} update --flake path:/p/.silo")
        );
        assert_eq!(
            update((2, 26), dir, &["nixpkgs".into()]).to_string(),
            format!("{f} update nixpkgs --flake path:/p/.silo")
        );
    }

    #[test]
    fn versions() {
        assert_eq!(parse_version("nix (Nix) 2.8.0\n"), Some((2, 8)));
        assert_eq!(parse_version("nix (Nix) 2.26.3\n"), Some((2, 26)));
        assert_eq!(
            parse_version("nix (Determinate Nix 3.1.0) 2.26.3"),
            Some((2, 26))
        );
        assert_eq!(
            parse_version("nix (Nix) 2.19pre20231012_dirty"),
            Some((2, 19))
        );
        assert_eq!(parse_version("garbage"), None);
    }

    #[test]
    fn build_output() {
        // Captured from Nix 2.8 and 2.26 (which adds timing fields).
        let nix28 =
            r#"[{"drvPath":"/nix/store/mh3r-x.drv","outputs":{"out":"/nix/store/zr2k-x"}}]"#;
        let nix226 = r#"[{"drvPath":"/nix/store/mh3r-x.drv","outputs":{"out":"/nix/store/zr2k-x"},"startTime":0,"stopTime":0}]"#;
        for out in [nix28, nix226] {
            assert_eq!(
                parse_build_output(out).unwrap(),
                Path::new("/nix/store/zr2k-x")
            );
        }
        assert!(parse_build_output("[]").is_err());
        assert!(parse_build_output("not json").is_err());
    }

    #[test]
    fn known_failures() {
        // Captured from Nix 2.8.
        let disabled = "error: experimental Nix feature 'nix-command' is disabled; use '--extra-experimental-features nix-command' to override";
        assert!(
            hint(disabled)
                .unwrap()
                .starts_with("Nix refused an experimental feature")
        );
        let lock = "error: flake 'path:/p/.silo' requires lock file changes but they're not allowed due to '--no-update-lock-file'";
        assert!(hint(lock).unwrap().contains("silo update"));
        let daemon = "error: cannot connect to socket at '/nix/var/nix/daemon-socket/socket': Connection refused";
        assert!(hint(daemon).unwrap().contains("nix-users"));
        // nixpkgs' own check (lib/minfeatures.nix) on an old Nix.
        let old = "error: This version of Nixpkgs requires Nix >= 2.18, please upgrade:";
        assert!(hint(old).unwrap().contains("upgrade Nix"));
        assert_eq!(hint("error: attribute 'foo' missing"), None);
    }
}
