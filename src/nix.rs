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
/// surrounding git repository cannot hide untracked files from the build. It is a
/// URL: bytes outside the characters a URL path may hold (spaces, `#`, `?`, `[`, `]`,
/// `\\`, `%`, anything not ASCII) are percent-encoded.
pub fn flake_ref(silo_dir: &Path) -> OsString {
    use std::os::unix::ffi::OsStrExt;
    let mut r = String::from("path:");
    for &byte in silo_dir.as_os_str().as_bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/!$&'()*+,;=:@".contains(&byte) {
            r.push(char::from(byte));
        } else {
            r.push_str(&format!("%{byte:02X}"));
        }
    }
    OsString::from(r)
}

/// Nix before this version takes a percent-encoded `path:` URL literally (2.8 does;
/// 2.26 decodes it).
pub const DECODES_PATH_URLS: (u32, u32) = (2, 18);

/// Whether the workspace flake's reference needed percent-encoding.
pub fn needs_encoding(silo_dir: &Path) -> bool {
    let plain = format!("path:{}", silo_dir.display());
    flake_ref(silo_dir) != OsString::from(plain)
}

fn nix(args: impl IntoIterator<Item = OsString>) -> Invocation {
    Invocation::new(Tool::Nix, FEATURES.iter().map(OsString::from).chain(args))
}

/// Any nix command line, with the features silo always enables.
pub fn command(args: impl IntoIterator<Item = OsString>) -> Invocation {
    nix(args)
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

/// How `nix build` is asked to work, beside what it builds.
#[derive(Debug, Clone, Copy, Default)]
pub struct BuildFlags {
    /// Re-evaluate without the evaluation cache and re-fetch inputs.
    pub no_cache: bool,
    /// Print the whole evaluation trace of an error.
    pub show_trace: bool,
    /// Log as JSON lines (`--log-format internal-json`), for silo's progress display.
    pub json_log: bool,
}

/// What `nix build` leaves behind besides the store path.
#[derive(Debug, Clone, Copy)]
pub enum Link<'a> {
    /// Nothing: the host's store is the user's to collect (Podman has the image).
    None,
    /// A garbage collector root at this path, so that collecting the Nix runner's store
    /// keeps each workspace's last build and the next one stays incremental.
    GcRoot(&'a Path),
}

/// `nix build` of the workspace image. The lock file is never changed by a build:
/// only `silo update` moves pins.
#[cfg(test)]
pub fn build(
    silo_dir: &Path,
    overrides: &BTreeMap<String, FlakeRef>,
    flags: BuildFlags,
    link: Link,
) -> Invocation {
    build_package(silo_dir, overrides, flags, link, "image")
}

/// `nix build` of one package of the workspace flake (`image`, `proxy`).
pub fn build_package(
    silo_dir: &Path,
    overrides: &BTreeMap<String, FlakeRef>,
    flags: BuildFlags,
    link: Link,
    package: &str,
) -> Invocation {
    let mut args: Vec<OsString> = vec!["build".into(), "--json".into()];
    match link {
        Link::None => args.push("--no-link".into()),
        Link::GcRoot(path) => args.extend(["--out-link".into(), path.into()]),
    }
    args.push("--no-update-lock-file".into());
    if flags.no_cache {
        args.extend(["--option", "eval-cache", "false", "--refresh"].map(OsString::from));
    }
    if flags.show_trace {
        args.push("--show-trace".into());
    }
    if flags.json_log {
        args.extend(["--log-format", "internal-json"].map(OsString::from));
    }
    args.extend(override_args(overrides));
    let mut installable = flake_ref(silo_dir);
    installable.push("#");
    installable.push(package);
    args.push(installable);
    nix(args)
}

pub fn version() -> Invocation {
    Invocation::new(Tool::Nix, ["--version"])
}

/// Whether Nix can use its store (a daemon it may talk to, or a store it may write):
/// `nix store info`, called `nix store ping` before Nix 2.19.
pub fn store_check(version: (u32, u32)) -> Invocation {
    let command = if version >= (2, 19) { "info" } else { "ping" };
    nix(["store", command].map(OsString::from))
}

/// `(major, minor)` from `nix (Nix) 2.8.0`.
pub fn parse_version(stdout: &str) -> Option<(u32, u32)> {
    let version = stdout.split_whitespace().last()?;
    let mut parts = version.split(['.', 'p', '-']);
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// Updating lock entries: Nix 2.19 turned `nix flake lock --update-input` into
/// `nix flake update INPUT...`. With `output`, Nix writes the new lock there instead of
/// into the flake (the Nix runner sees `.silo/` read-only).
pub fn update(
    version: (u32, u32),
    silo_dir: &Path,
    inputs: &[String],
    output: Option<&Path>,
) -> Invocation {
    let flake = flake_ref(silo_dir);
    let mut args: Vec<OsString> = vec!["flake".into()];
    if version >= (2, 19) {
        args.push("update".into());
        args.extend(inputs.iter().map(OsString::from));
    } else if inputs.is_empty() {
        args.push("update".into());
    } else {
        args.push("lock".into());
        for input in inputs {
            args.extend(["--update-input".into(), input.into()]);
        }
    }
    if let Some(output) = output {
        args.extend(["--output-lock-file".into(), output.into()]);
    }
    if version >= (2, 19) {
        args.push("--flake".into());
    }
    args.push(flake);
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

/// Known Nix failures: a text in one of Nix's error messages, and what to do.
const KNOWN: [(&str, &str); 7] = [
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
        "Could not resolve host",
        "Nix could not download an input or a store path: check the network, a proxy, and the substituters in nix.conf; to build offline, point the flake inputs at local checkouts with [nix.inputs] in silo.user.toml",
    ),
    (
        "option `home.stateVersion' is not of type",
        "home.stateVersion names a release this home-manager does not know: remove it from home.nix or home.user.nix (silo then uses home-manager's own release, up to the newest silo was tested with) or choose one of the values listed",
    ),
];

/// What to do about a known Nix failure. Only Nix's error messages are read, the last
/// first: a trace line mentions everything evaluation passed through, not what failed.
pub fn hint(stderr: &str) -> Option<String> {
    let messages = crate::nix_log::error_messages(stderr);
    if let Some(hint) = messages.first().and_then(|m| module_argument(m, stderr)) {
        return Some(hint);
    }
    if let Some(hint) = messages.iter().find_map(|m| unreachable(m)) {
        return Some(hint);
    }
    messages.iter().find_map(|message| {
        KNOWN
            .iter()
            .find(|(needle, _)| message.contains(needle))
            .map(|(_, hint)| (*hint).to_owned())
    })
}

/// A download that failed: name the host and the way to build without it.
fn unreachable(message: &str) -> Option<String> {
    let start = message.find("unable to download '")? + "unable to download '".len();
    let url = &message[start..start + message[start..].find('\'')?];
    let host = url
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split(['/', ':']).next())
        .filter(|h| !h.is_empty())
        .unwrap_or(url);
    Some(format!(
        "Nix could not reach {host} (for {url}): check the network, a proxy, and the substituters in nix.conf; to build without {host}, point the flake inputs at a mirror or a local checkout with [nix.inputs] in silo.user.toml (e.g. nixpkgs = \"path:/src/nixpkgs\")"
    ))
}

/// A home.nix header asking for a module argument nobody provides: home-manager passes
/// arguments lazily, so the error is the missing attribute, and the trace says whose.
fn module_argument(message: &str, stderr: &str) -> Option<String> {
    let quoted = |text: &str, after: &str| -> Option<String> {
        let start = text.find(after)? + after.len();
        let len = text[start..].find('\'')?;
        Some(text[start..start + len].to_owned())
    };
    let name = quoted(message, "error: attribute '")
        .filter(|_| {
            message
                .lines()
                .next()
                .is_some_and(|l| l.ends_with("' missing"))
        })
        .filter(|name| {
            stderr.contains(&format!("while evaluating the module argument `{name}' in"))
        })
        // The fixture's module system (and old nixpkgs) call the module function instead.
        .or_else(|| quoted(message, "called without required argument '"))?;
    Some(format!(
        "home.nix or home.user.nix asks for the module argument `{name}`, which home-manager does not provide: remove it from the function header `{{ config, pkgs, ... }}:` (packages are `pkgs.{name}`)"
    ))
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
            build(dir, &BTreeMap::new(), BuildFlags::default(), Link::None).to_string(),
            "nix --extra-experimental-features 'nix-command flakes' build --json --no-link --no-update-lock-file path:/p/.silo#image"
        );
        let all = BuildFlags {
            no_cache: true,
            show_trace: true,
            json_log: true,
        };
        assert_eq!(
            build(dir, &overrides(), all, Link::None).to_string(),
            "nix --extra-experimental-features 'nix-command flakes' build --json --no-link --no-update-lock-file \
             --option eval-cache false --refresh --show-trace --log-format internal-json \
             --override-input home-manager github:me/hm --override-input nixpkgs path:/fx/nixpkgs path:/p/.silo#image"
        );
        let root = Path::new("/nix/var/nix/gcroots/silo-ab3f9c12");
        assert_eq!(
            build(
                dir,
                &BTreeMap::new(),
                BuildFlags::default(),
                Link::GcRoot(root)
            )
            .to_string(),
            "nix --extra-experimental-features 'nix-command flakes' build --json \
             --out-link /nix/var/nix/gcroots/silo-ab3f9c12 --no-update-lock-file path:/p/.silo#image"
        );
    }

    #[test]
    fn update_command_line_depends_on_the_nix_version() {
        let dir = Path::new("/p/.silo");
        let f = "nix --extra-experimental-features 'nix-command flakes' flake";
        assert_eq!(
            update((2, 8), dir, &[], None).to_string(),
            format!("{f} update path:/p/.silo")
        );
        assert_eq!(
            update(
                (2, 8),
                dir,
                &["nixpkgs".into(), "home-manager".into()],
                None
            )
            .to_string(),
            format!("{f} lock --update-input nixpkgs --update-input home-manager path:/p/.silo")
        );
        assert_eq!(
            update((2, 26), dir, &[], None).to_string(),
            format!("{f} update --flake path:/p/.silo")
        );
        assert_eq!(
            update((2, 26), dir, &["nixpkgs".into()], None).to_string(),
            format!("{f} update nixpkgs --flake path:/p/.silo")
        );
        let out = Some(Path::new("/c/x/flake.lock"));
        assert_eq!(
            update((2, 26), dir, &["nixpkgs".into()], out).to_string(),
            format!("{f} update nixpkgs --output-lock-file /c/x/flake.lock --flake path:/p/.silo")
        );
        assert_eq!(
            update((2, 8), dir, &["nixpkgs".into()], out).to_string(),
            format!(
                "{f} lock --update-input nixpkgs --output-lock-file /c/x/flake.lock path:/p/.silo"
            )
        );
    }

    #[test]
    fn store_check_command_line() {
        let f = "nix --extra-experimental-features 'nix-command flakes'";
        assert_eq!(store_check((2, 18)).to_string(), format!("{f} store ping"));
        assert_eq!(store_check((2, 26)).to_string(), format!("{f} store info"));
    }

    #[test]
    fn flake_refs_are_urls() {
        assert_eq!(
            flake_ref(Path::new("/home/a/proj/.silo")),
            "path:/home/a/proj/.silo"
        );
        assert_eq!(
            flake_ref(Path::new("/tmp/my proj#1?x[y]\\z%/é/.silo")),
            "path:/tmp/my%20proj%231%3Fx%5By%5D%5Cz%25/%C3%A9/.silo"
        );
        assert!(!needs_encoding(Path::new("/a/b-c_d.e~f/.silo")));
        assert!(needs_encoding(Path::new("/a b/.silo")));
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
        // Offline, Nix 2.8 (2.26 adds "Could not resolve host: github.com").
        let offline = "error: unable to download 'https://api.github.com/repos/NixOS/nixpkgs/commits/ffb3c9b7': Couldn't resolve host name (6)\n(use '--show-trace' to show detailed location information)";
        let h = hint(offline).unwrap();
        assert!(
            h.starts_with("Nix could not reach api.github.com (for https://api.github.com/repos/NixOS/nixpkgs/commits/ffb3c9b7)"),
            "{h}"
        );
        assert!(h.contains("[nix.inputs]"), "{h}");
    }

    /// The end of Nix 2.26's output for a home.nix setting home.stateVersion = "25.11"
    /// with home-manager 25.05: its trace passes through a module argument.
    const STATE_VERSION: &str = "error:
       … while evaluating the module argument `pkgs' in \"/nix/store/y3s3hn0rcpkidimi3nrfw7icwl8fc6ay-source/modules/services/mako.nix\":

       … while evaluating the module argument `pkgsPath' in \"/nix/store/y3s3hn0rcpkidimi3nrfw7icwl8fc6ay-source/modules/misc/nixpkgs.nix\":

       … while evaluating the option `home.stateVersion':

       (stack trace truncated; use '--show-trace' to show the full, detailed trace)

       error: A definition for option `home.stateVersion' is not of type `one of \"18.09\", \"19.03\", \"19.09\", \"20.03\", \"20.09\", \"21.03\", \"21.05\", \"21.11\", \"22.05\", \"22.11\", \"23.05\", \"23.11\", \"24.05\", \"24.11\", \"25.05\"'. Definition values:
       - In `/nix/store/g2g79pf4abbj9cn310ha8f10v5ap90cc-source/home.nix': \"25.11\"
";

    #[test]
    fn hints_follow_the_error_not_the_trace() {
        let hint_text = hint(STATE_VERSION).unwrap();
        assert!(
            hint_text.starts_with("home.stateVersion names a release"),
            "{hint_text}"
        );
        // A plain evaluation error whose trace passes through module arguments.
        let cut = STATE_VERSION.find("       error: A definition").unwrap();
        let thrown = format!("{}       error: broken on purpose\n", &STATE_VERSION[..cut]);
        assert!(thrown.contains("module argument `pkgs'"));
        assert_eq!(hint(&thrown), None, "{thrown}");
    }

    #[test]
    fn a_module_argument_nobody_provides() {
        // Nix 2.26, nixpkgs 25.05: `{ foo, ... }: { home.packages = [ foo ]; }`.
        let real = "       … while evaluating definitions from `/nix/store/vws0-source/home.nix':

       … while evaluating the module argument `foo' in \"/nix/store/vws0-source/home.nix\":

       (stack trace truncated; use '--show-trace' to show the full, detailed trace)

       error: attribute 'foo' missing
       at /nix/store/qybx-source/lib/modules.nix:652:66:
          651|       extraArgs = mapAttrs (
";
        let expected = "home.nix or home.user.nix asks for the module argument `foo`, which home-manager does not provide: remove it from the function header `{ config, pkgs, ... }:` (packages are `pkgs.foo`)";
        assert_eq!(hint(real).as_deref(), Some(expected));
        // Nix 2.8 with the fixture's module system.
        let fixture = "error: anonymous function at /nix/store/kxsm-source/home.nix:1:1 called without required argument 'foo'\n\n       at /nix/store/sarj-source/lib.nix:364:17:\n";
        assert_eq!(hint(fixture).as_deref(), Some(expected));
        // A missing package is not a module argument.
        let package =
            "       … while evaluating definitions from `/nix/store/i379-source/home.nix':

       error: attribute 'nosuchpackage' missing
       at /nix/store/i379-source/home.nix:3:21:
";
        assert_eq!(hint(package), None);
    }

    #[test]
    fn a_build_failure_is_explained_by_an_earlier_error() {
        // Nix 2.26: the last error is only the consequence.
        let build = "error: builder for '/nix/store/5jrd-bash-5.2.tar.gz.drv' failed with exit code 1;
       last 1 log lines:
       >        error: unable to download 'https://ftpmirror.gnu.org/bash/bash-5.2.tar.gz': Could not resolve hostname (6) Could not resolve host: ftpmirror.gnu.org
       For full logs, run:
         nix log /nix/store/5jrd-bash-5.2.tar.gz.drv
error: 1 dependencies of derivation '/nix/store/cp6m-silo-4tavscb7.tar.drv' failed to build
";
        assert!(hint(build).unwrap().contains("check the network"));
    }
}
