//! `[nix] runner` and `[nix] runner_image`: where Nix runs, validated, and which file
//! said so.

use std::fmt;

use super::file::FileKind;

/// `[nix] runner`: the host's `nix`, a container of the Nix image, or whichever works.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RunnerMode {
    /// The host's Nix when it is usable, else the container.
    #[default]
    Auto,
    Host,
    Container,
}

impl RunnerMode {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(RunnerMode::Auto),
            "host" => Ok(RunnerMode::Host),
            "container" => Ok(RunnerMode::Container),
            _ => Err(format!(
                "{s:?} is not a runner: use \"auto\" (the host's Nix when it is usable, else a container), \"host\" or \"container\""
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RunnerMode::Auto => "auto",
            RunnerMode::Host => "host",
            RunnerMode::Container => "container",
        }
    }
}

/// `[nix] runner_image`: an image reference as Podman takes it,
/// `[registry/]name[:tag][@sha256:<64 hex>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef(String);

impl ImageRef {
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("the image reference {s:?} is invalid: {why}");
        if s.is_empty() || s.len() > 512 {
            return Err(bad("it must have 1 to 512 characters"));
        }
        // It becomes one argument of `podman run`: never an option.
        if !s.starts_with(|c: char| c.is_ascii_alphanumeric()) {
            return Err(bad("it must start with a letter or a digit"));
        }
        if !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/:@".contains(c))
        {
            return Err(bad(
                "use only letters, digits and . _ - / : @ (registry/name:tag or name@sha256:digest)",
            ));
        }
        if let Some((_, digest)) = s.split_once('@') {
            let hex = digest.strip_prefix("sha256:").unwrap_or("");
            let valid = hex.len() == 64
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            if !valid {
                return Err(bad(
                    "after '@' a digest sha256:<64 lowercase hex digits> must follow",
                ));
            }
        }
        Ok(ImageRef(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Images under `localhost/` exist only in local storage; Podman would try to pull
    /// them from https://localhost/.
    pub fn is_local(&self) -> bool {
        self.0.starts_with("localhost/")
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `[nix] runner` and `runner_image` of one file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunnerSettings {
    pub mode: Option<RunnerMode>,
    pub image: Option<ImageRef>,
}

/// Both files merged, key by key, the workspace file winning; each value keeps the file
/// it came from, so messages can say why the runner is what it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunnerConfig {
    pub mode: Option<(RunnerMode, FileKind)>,
    pub image: Option<(ImageRef, FileKind)>,
}

/// The workspace's value if it has one, else the user's.
fn pick<T>(user: Option<T>, workspace: Option<T>) -> Option<(T, FileKind)> {
    workspace
        .map(|v| (v, FileKind::Workspace))
        .or(user.map(|v| (v, FileKind::User)))
}

impl RunnerConfig {
    pub fn merge(user: RunnerSettings, workspace: RunnerSettings) -> RunnerConfig {
        RunnerConfig {
            mode: pick(user.mode, workspace.mode),
            image: pick(user.image, workspace.image),
        }
    }

    pub fn mode(&self) -> RunnerMode {
        self.mode.as_ref().map_or(RunnerMode::Auto, |(m, _)| *m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes() {
        for mode in [RunnerMode::Auto, RunnerMode::Host, RunnerMode::Container] {
            assert_eq!(RunnerMode::parse(mode.as_str()), Ok(mode));
        }
        let err = RunnerMode::parse("docker").unwrap_err();
        assert!(
            err.starts_with("\"docker\" is not a runner: use \"auto\""),
            "{err}"
        );
        assert!(RunnerMode::parse("Host").is_err());
    }

    #[test]
    fn image_references() {
        let digest = "a".repeat(64);
        for good in [
            "docker.io/nixos/nix:2.26.3".to_owned(),
            "localhost/silo-test-runner:nix2.26".to_owned(),
            format!("docker.io/nixos/nix@sha256:{digest}"),
            format!("registry.example:5000/mirror/nix:2.28@sha256:{digest}"),
            "nixos/nix".to_owned(),
        ] {
            assert!(ImageRef::parse(&good).is_ok(), "{good} rejected");
        }
        for bad in [
            String::new(),
            "--privileged".to_owned(),
            "-v".to_owned(),
            "nix os".to_owned(),
            "nixos/nix\n".to_owned(),
            "nixos/nix@sha256:abc".to_owned(),
            format!("nixos/nix@sha512:{digest}"),
            format!("nixos/nix@sha256:{}", "A".repeat(64)),
            "a,b".to_owned(),
            "x".repeat(513),
        ] {
            assert!(ImageRef::parse(&bad).is_err(), "{bad:?} accepted");
        }
        assert!(ImageRef::parse("localhost/x").unwrap().is_local());
        assert!(!ImageRef::parse("docker.io/nixos/nix").unwrap().is_local());
    }

    #[test]
    fn the_workspace_file_wins_key_by_key() {
        let image = |s: &str| Some(ImageRef::parse(s).unwrap());
        let merged = RunnerConfig::merge(
            RunnerSettings {
                mode: Some(RunnerMode::Container),
                image: image("localhost/mine"),
            },
            RunnerSettings {
                mode: Some(RunnerMode::Host),
                image: None,
            },
        );
        assert_eq!(merged.mode, Some((RunnerMode::Host, FileKind::Workspace)));
        assert_eq!(
            merged.image,
            Some((ImageRef::parse("localhost/mine").unwrap(), FileKind::User))
        );
        assert_eq!(RunnerConfig::default().mode(), RunnerMode::Auto);
    }
}
