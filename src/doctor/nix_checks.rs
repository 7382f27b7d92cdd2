//! `silo doctor`'s checks of Nix: its version against what nixpkgs needs, the store,
//! flakes, the sandbox.

use super::{Check, first_error_line, ok, problem, warning};
use crate::nix::{self, NIXPKGS_MIN_VERSION};
use crate::runner::Runner;

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

pub fn check_nix(runner: &Runner) -> Vec<Check> {
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
    let store = runner.capture(&nix::store_check(version));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nix_sandbox_setting() {
        // Captured from Nix 2.8 (`nix show-config`), Debian's nix.conf.
        let config = "experimental-features = nix-command\nsandbox = false\nsandbox-build-dir = /build\nsandbox-fallback = true\n";
        assert_eq!(sandbox_setting(config), Some("false"));
        assert_eq!(sandbox_setting("sandbox = relaxed\n"), Some("relaxed"));
        assert_eq!(sandbox_setting("sandbox-paths = \n"), None);
    }
}
