//! Where Nix runs: the host's `nix`, or the same `nix` command in a container of a pinned
//! Nix image (the "runner"), for hosts with Podman only or with a Nix too old for
//! nixpkgs. `[nix] runner` chooses; this module decides and says why.

pub mod args;
pub mod run;

use serde::Serialize;

use crate::config::file::FileKind;
use crate::config::runner::{ImageRef, RunnerConfig, RunnerMode};
use crate::nix;
use crate::runner::Runner;

/// The Nix image the runner uses unless `[nix] runner_image` names another:
/// `docker.io/nixos/nix:2.35.2`, by the digest of its multi-platform index (amd64 and
/// arm64). To move it on, with network access:
///
/// ```sh
/// skopeo inspect --format '{{.Digest}}' docker://docker.io/nixos/nix:<version>
/// skopeo inspect --raw docker://docker.io/nixos/nix:<version> | jq '.manifests[].platform'
/// ```
///
/// The first gives the digest to put here (and the version in this comment and the
/// README); the second must list linux/amd64 and linux/arm64 (2.22.0 once shipped
/// without arm64). Then build a workspace with `[nix] runner = "container"`.
pub const DEFAULT_IMAGE: &str =
    "docker.io/nixos/nix@sha256:7a007c766426c1877758ddc5cb87a965ac131fc78c582ce0083d922d51ae945c";

/// What `nix --version` and `nix store info` said about the host's Nix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostNix {
    /// No `nix` on PATH.
    Missing,
    /// `nix --version` failed or printed no version; what it printed.
    Unreadable(String),
    /// The version, and whether Nix can use its store (else the first line of its error).
    Found {
        version: (u32, u32),
        store: Result<(), String>,
    },
}

/// Where Nix runs for this workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// The host's `nix`; its version when silo asked already.
    Host { version: Option<(u32, u32)> },
    /// A container of this image, the store in a named volume.
    Container { image: ImageRef },
}

/// Where Nix runs, and why, in words for `silo status --json` and messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub place: Place,
    pub why: String,
}

/// What `silo status --json` says about the runner.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `host` or `container`.
    pub runner: &'static str,
    pub why: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The named volume that holds the runner's Nix store.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume: Option<String>,
}

impl Choice {
    pub fn report(&self, volume_prefix: &str) -> Report {
        match &self.place {
            Place::Host { .. } => Report {
                runner: "host",
                why: self.why.clone(),
                image: None,
                volume: None,
            },
            Place::Container { image } => Report {
                runner: "container",
                why: self.why.clone(),
                image: Some(image.to_string()),
                volume: Some(volume_name(volume_prefix)),
            },
        }
    }
}

/// The volume holding the runner's store: `silo-nix`, or `<prefix>-nix` with the test
/// prefix (see `volume::prefix`), so that tests never touch the user's.
pub fn volume_name(prefix: &str) -> String {
    format!("{prefix}-nix")
}

/// `[nix] runner = "host" in silo.user.toml`, for messages.
fn setting(mode: RunnerMode, file: FileKind) -> String {
    format!("[nix] runner = \"{}\" in {}", mode.as_str(), file.name())
}

/// The runner image: `[nix] runner_image`, or silo's pinned default.
fn image(config: &RunnerConfig) -> ImageRef {
    match &config.image {
        Some((image, _)) => image.clone(),
        None => ImageRef::parse(DEFAULT_IMAGE).expect("the default image is a valid reference"),
    }
}

/// Decides where Nix runs. `host` is what the host's Nix is like; it is only asked for
/// with `auto` (see `needs_probe`).
pub fn decide(config: &RunnerConfig, host: Option<&HostNix>) -> Choice {
    let container = |why: String| Choice {
        place: Place::Container {
            image: image(config),
        },
        why,
    };
    match &config.mode {
        Some((RunnerMode::Host, file)) => {
            return Choice {
                place: Place::Host { version: None },
                why: setting(RunnerMode::Host, *file),
            };
        }
        Some((RunnerMode::Container, file)) => {
            return container(setting(RunnerMode::Container, *file));
        }
        Some((RunnerMode::Auto, _)) | None => {}
    }
    let (major, minor) = nix::NIXPKGS_MIN_VERSION;
    match host {
        None | Some(HostNix::Missing) => container("auto: there is no nix on PATH".to_owned()),
        Some(HostNix::Unreadable(out)) => container(format!(
            "auto: `nix --version` printed no version ({out:?})"
        )),
        Some(HostNix::Found { version, .. }) if *version < nix::NIXPKGS_MIN_VERSION => {
            container(format!(
                "auto: the host's Nix {}.{} is older than {major}.{minor}, which nixpkgs needs",
                version.0, version.1
            ))
        }
        Some(HostNix::Found {
            version,
            store: Err(error),
        }) => container(format!(
            "auto: the host's Nix {}.{} cannot use its store ({error})",
            version.0, version.1
        )),
        Some(HostNix::Found {
            version,
            store: Ok(()),
        }) => Choice {
            place: Place::Host {
                version: Some(*version),
            },
            why: format!(
                "auto: the host's Nix {}.{} is {major}.{minor} or newer and can use its store",
                version.0, version.1
            ),
        },
    }
}

/// Whether deciding needs to ask the host's Nix (only `auto` does).
pub fn needs_probe(config: &RunnerConfig) -> bool {
    config.mode() == RunnerMode::Auto
}

/// Asks the host's Nix its version and, when it is new enough, whether it can use its
/// store (a daemon it may talk to, or a store it may write): about 0.1 s.
pub fn probe(runner: &Runner) -> HostNix {
    let out = match runner.capture(&nix::version()) {
        Ok(out) => out,
        // Not on PATH, or not executable: no usable Nix either way.
        Err(_) => return HostNix::Missing,
    };
    let version = out
        .success()
        .then(|| nix::parse_version(&out.stdout))
        .flatten();
    let Some(version) = version else {
        return HostNix::Unreadable(format!("{}{}", out.stdout, out.stderr).trim().to_owned());
    };
    if version < nix::NIXPKGS_MIN_VERSION {
        return HostNix::Found {
            version,
            store: Ok(()),
        };
    }
    let store = match runner.capture(&nix::store_check(version)) {
        Ok(out) if out.success() => Ok(()),
        Ok(out) => Err(first_error_line(&out.stderr)),
        Err(err) => Err(format!("{err:#}")),
    };
    HostNix::Found { version, store }
}

/// The line of Nix's stderr that says what went wrong.
fn first_error_line(stderr: &str) -> String {
    let lines = stderr.lines().map(str::trim).filter(|l| !l.is_empty());
    let mut lines = lines.peekable();
    let first = lines.peek().copied().unwrap_or("it failed").to_owned();
    stderr
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("error:"))
        .map(|l| l.trim_start_matches("error:").trim().to_owned())
        .unwrap_or(first)
}

/// Where Nix runs for this configuration, asking the host's Nix when `auto` needs it.
pub fn choose(runner: &Runner, config: &RunnerConfig) -> Choice {
    let host = needs_probe(config).then(|| probe(runner));
    decide(config, host.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(mode: Option<RunnerMode>, image: Option<&str>) -> RunnerConfig {
        RunnerConfig {
            mode: mode.map(|m| (m, FileKind::User)),
            image: image.map(|i| (ImageRef::parse(i).unwrap(), FileKind::Workspace)),
        }
    }

    fn found(version: (u32, u32), store: Result<(), &str>) -> HostNix {
        HostNix::Found {
            version,
            store: store.map_err(str::to_owned),
        }
    }

    #[test]
    fn auto_uses_a_usable_host_nix() {
        let choice = decide(&config(None, None), Some(&found((2, 26), Ok(()))));
        assert_eq!(
            choice.place,
            Place::Host {
                version: Some((2, 26))
            }
        );
        assert_eq!(
            choice.why,
            "auto: the host's Nix 2.26 is 2.18 or newer and can use its store"
        );
    }

    #[test]
    fn auto_falls_back_to_the_container() {
        let default = Place::Container {
            image: ImageRef::parse(DEFAULT_IMAGE).unwrap(),
        };
        let cases = [
            (HostNix::Missing, "auto: there is no nix on PATH"),
            (
                found((2, 8), Ok(())),
                "auto: the host's Nix 2.8 is older than 2.18, which nixpkgs needs",
            ),
            (
                found(
                    (2, 26),
                    Err(
                        "cannot connect to socket at '/nix/var/nix/daemon-socket/socket': Permission denied",
                    ),
                ),
                "auto: the host's Nix 2.26 cannot use its store (cannot connect to socket at '/nix/var/nix/daemon-socket/socket': Permission denied)",
            ),
            (
                HostNix::Unreadable("garbage".into()),
                "auto: `nix --version` printed no version (\"garbage\")",
            ),
        ];
        for (host, why) in cases {
            let choice = decide(&config(Some(RunnerMode::Auto), None), Some(&host));
            assert_eq!(choice.place, default, "{host:?}");
            assert_eq!(choice.why, why);
        }
        let local = decide(
            &config(None, Some("localhost/runner:1")),
            Some(&HostNix::Missing),
        );
        assert_eq!(
            local.place,
            Place::Container {
                image: ImageRef::parse("localhost/runner:1").unwrap()
            }
        );
    }

    #[test]
    fn a_configured_runner_is_used_without_asking() {
        let host = decide(&config(Some(RunnerMode::Host), None), None);
        assert_eq!(host.place, Place::Host { version: None });
        assert_eq!(host.why, "[nix] runner = \"host\" in silo.user.toml");
        let container = decide(&config(Some(RunnerMode::Container), None), None);
        assert_eq!(
            container.why,
            "[nix] runner = \"container\" in silo.user.toml"
        );
        assert!(!needs_probe(&config(Some(RunnerMode::Host), None)));
        assert!(needs_probe(&config(Some(RunnerMode::Auto), None)));
        assert!(needs_probe(&config(None, None)));
    }

    #[test]
    fn the_default_image_is_pinned_by_digest() {
        let image = ImageRef::parse(DEFAULT_IMAGE).unwrap();
        assert!(image.as_str().starts_with("docker.io/nixos/nix@sha256:"));
        assert!(!image.is_local());
    }

    #[test]
    fn store_errors_are_shortened_to_their_message() {
        // Nix 2.8 as a user outside nix-users, with the daemon running.
        let denied = "error: cannot connect to socket at '/nix/var/nix/daemon-socket/socket': Permission denied\n";
        assert_eq!(
            first_error_line(denied),
            "cannot connect to socket at '/nix/var/nix/daemon-socket/socket': Permission denied"
        );
        assert_eq!(first_error_line("something odd\n"), "something odd");
        assert_eq!(first_error_line(""), "it failed");
    }

    #[test]
    fn reports() {
        let choice = decide(
            &config(Some(RunnerMode::Container), Some("localhost/r:1")),
            None,
        );
        let json = serde_json::to_value(choice.report("silo")).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "runner": "container",
                "why": "[nix] runner = \"container\" in silo.user.toml",
                "image": "localhost/r:1",
                "volume": "silo-nix"
            })
        );
        let host = decide(&config(Some(RunnerMode::Host), None), None);
        assert_eq!(
            serde_json::to_value(host.report("silo")).unwrap(),
            serde_json::json!({"runner": "host", "why": "[nix] runner = \"host\" in silo.user.toml"})
        );
    }
}
