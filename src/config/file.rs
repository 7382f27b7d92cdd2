//! Parsing one configuration file: strict TOML, per-file key rules, validated values,
//! and errors that name the file, the line and the key.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use super::problems::{Problems, type_error};
use super::runner::{ImageRef, RunnerMode, RunnerSettings};
use super::values::{
    AllowEntry, Egress, FlakeRef, Limits, PersistPath, PortMapping, UserName, WorkspaceId,
};

/// Which of the two files is being read: they allow different keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// `$XDG_CONFIG_HOME/silo/silo.user.toml`
    User,
    /// `.silo/silo.toml`
    Workspace,
}

impl FileKind {
    pub fn name(self) -> &'static str {
        match self {
            FileKind::User => "silo.user.toml",
            FileKind::Workspace => ".silo/silo.toml",
        }
    }

    fn other(self) -> FileKind {
        match self {
            FileKind::User => FileKind::Workspace,
            FileKind::Workspace => FileKind::User,
        }
    }
}

// The raw shape shared by both files. Unknown keys are rejected by serde; which file may
// hold which key is checked afterwards, so the message can say where the key belongs.

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    general: Option<RawGeneral>,
    features: Option<Spanned<RawFeatures>>,
    persistence: Option<RawPersistence>,
    podman: Option<RawPodman>,
    network: Option<RawNetwork>,
    limits: Option<Spanned<RawLimits>>,
    nix: Option<RawNix>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGeneral {
    user: Option<Spanned<String>>,
    id: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFeatures {
    podman: Option<Spanned<bool>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPersistence {
    shared_paths: Option<Vec<Spanned<String>>>,
    private_paths: Option<Vec<Spanned<String>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPodman {
    create_args: Option<Vec<Spanned<String>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNetwork {
    ports: Option<Vec<Spanned<String>>>,
    egress: Option<Spanned<String>>,
    allow: Option<Vec<Spanned<String>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    cpus: Option<Spanned<f64>>,
    memory: Option<Spanned<i64>>,
    processes: Option<Spanned<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNix {
    runner: Option<Spanned<String>>,
    runner_image: Option<Spanned<String>>,
    inputs: Option<RawInputs>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInputs {
    nixpkgs: Option<Spanned<String>>,
    #[serde(rename = "home-manager")]
    home_manager: Option<Spanned<String>>,
}

/// The settings both files may hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CommonSettings {
    pub shared_paths: Vec<PersistPath>,
    pub private_paths: Vec<PersistPath>,
    pub create_args: Vec<String>,
    pub ports: Vec<PortMapping>,
    /// `[network].egress`, when the file sets it.
    pub egress: Option<Egress>,
    /// `[network].allow`.
    pub allow: Vec<AllowEntry>,
    /// `[nix.inputs]`: input name -> flake reference.
    pub inputs: BTreeMap<String, FlakeRef>,
    /// `[nix] runner` and `runner_image`.
    pub runner: RunnerSettings,
}

/// `silo.user.toml`, validated.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserFile {
    pub user: Option<UserName>,
    pub common: CommonSettings,
}

/// `.silo/silo.toml`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkspaceFile {
    pub id: WorkspaceId,
    pub podman: bool,
    pub limits: Limits,
    pub common: CommonSettings,
}

fn parse_raw(source: &str, path: &Path) -> anyhow::Result<RawFile> {
    toml::from_str(source).map_err(|err| {
        let mut problems = Problems::new(source);
        let message = err
            .span()
            .and_then(|span| type_error(err.message().trim_end(), source, span.start))
            .unwrap_or_else(|| err.message().trim_end().to_owned());
        problems.add(err.span(), message);
        problems
            .into_result(path)
            .expect_err("one problem was added")
    })
}

/// Reads the user file from its text.
pub fn parse_user(source: &str, path: &Path) -> anyhow::Result<UserFile> {
    let raw = parse_raw(source, path)?;
    let mut problems = Problems::new(source);
    let kind = FileKind::User;
    let general = raw.general.unwrap_or_default();
    if let Some(id) = &general.id {
        wrong_file(&mut problems, kind, "[general].id", id.span());
    }
    if let Some(features) = &raw.features {
        wrong_file(&mut problems, kind, "[features]", features.span());
    }
    if let Some(limits) = &raw.limits {
        wrong_file(&mut problems, kind, "[limits]", limits.span());
    }
    let user = general
        .user
        .and_then(|u| check(&mut problems, &u, UserName::parse));
    let common = common_settings(
        &mut problems,
        raw.persistence,
        raw.podman,
        raw.network,
        raw.nix,
    );
    problems.into_result(path)?;
    Ok(UserFile { user, common })
}

/// Reads the workspace file from its text.
pub fn parse_workspace(source: &str, path: &Path) -> anyhow::Result<WorkspaceFile> {
    let raw = parse_raw(source, path)?;
    let mut problems = Problems::new(source);
    let kind = FileKind::Workspace;
    let general = raw.general.unwrap_or_default();
    if let Some(user) = &general.user {
        wrong_file(&mut problems, kind, "[general].user", user.span());
    }
    let id = match &general.id {
        Some(id) => check(&mut problems, id, WorkspaceId::parse),
        None => {
            problems.add(
                None,
                "[general].id is missing (run `silo init` in a new directory to get one)",
            );
            None
        }
    };
    let podman = raw
        .features
        .and_then(|f| f.into_inner().podman)
        .map(Spanned::into_inner)
        .unwrap_or(false);
    let limits = raw.limits.map(Spanned::into_inner).unwrap_or_default();
    let limits = Limits {
        cpus: limits.cpus.map_or(0.0, Spanned::into_inner),
        memory_mb: limits.memory.map_or(0, Spanned::into_inner),
        processes: limits.processes.map_or(0, Spanned::into_inner),
    };
    if !limits.cpus.is_finite() {
        problems.add(None, "[limits].cpus must be a finite number");
    }
    let common = common_settings(
        &mut problems,
        raw.persistence,
        raw.podman,
        raw.network,
        raw.nix,
    );
    problems.into_result(path)?;
    let id = id.expect("a missing or invalid id is reported as a problem");
    Ok(WorkspaceFile {
        id,
        podman,
        limits,
        common,
    })
}

fn wrong_file(problems: &mut Problems, kind: FileKind, key: &str, span: Range<usize>) {
    problems.add(
        Some(span),
        format!(
            "{key} is not allowed in {}; it belongs in {}",
            kind.name(),
            kind.other().name()
        ),
    );
}

/// Validates one value, recording the problem at its position.
fn check<T>(
    problems: &mut Problems,
    value: &Spanned<String>,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Option<T> {
    parse(value.get_ref())
        .map_err(|e| problems.add(Some(value.span()), e))
        .ok()
}

fn check_all<T>(
    problems: &mut Problems,
    key: &str,
    values: Option<Vec<Spanned<String>>>,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Vec<T> {
    values
        .unwrap_or_default()
        .iter()
        .filter_map(|v| {
            parse(v.get_ref())
                .map_err(|e| problems.add(Some(v.span()), format!("{key}: {e}")))
                .ok()
        })
        .collect()
}

fn common_settings(
    problems: &mut Problems,
    persistence: Option<RawPersistence>,
    podman: Option<RawPodman>,
    network: Option<RawNetwork>,
    nix: Option<RawNix>,
) -> CommonSettings {
    let persistence = persistence.unwrap_or_default();
    let shared_paths = check_all(
        problems,
        "[persistence].shared_paths",
        persistence.shared_paths,
        PersistPath::parse,
    );
    let private_paths = check_all(
        problems,
        "[persistence].private_paths",
        persistence.private_paths,
        PersistPath::parse,
    );
    let create_args = check_all(
        problems,
        "[podman].create_args",
        podman.and_then(|p| p.create_args),
        |arg| {
            if arg.contains('\0') {
                Err("an argument must not contain a NUL character".to_owned())
            } else {
                Ok(arg.to_owned())
            }
        },
    );
    let network = network.unwrap_or_default();
    let ports = check_all(
        problems,
        "[network].ports",
        network.ports,
        PortMapping::parse,
    );
    let egress = network.egress.as_ref().and_then(|e| {
        check(problems, e, |s| {
            Egress::parse(s).map_err(|e| format!("[network].egress: {e}"))
        })
    });
    if let (Some(e), Some(Egress::None), Some(first)) = (&network.egress, egress, ports.first()) {
        problems.add(
            Some(e.span()),
            format!(
                "[network].egress = \"none\" gives the container no network, so the ports ({first}...) cannot be forwarded; remove them, or use egress = \"allow\" (with an empty allow list nothing goes out, and ports work)"
            ),
        );
    }
    let allow = check_all(
        problems,
        "[network].allow",
        network.allow,
        AllowEntry::parse,
    );
    let nix = nix.unwrap_or_default();
    let runner = RunnerSettings {
        mode: nix.runner.and_then(|v| {
            check(problems, &v, |s| {
                RunnerMode::parse(s).map_err(|e| format!("[nix].runner: {e}"))
            })
        }),
        image: nix.runner_image.and_then(|v| {
            check(problems, &v, |s| {
                ImageRef::parse(s).map_err(|e| format!("[nix].runner_image: {e}"))
            })
        }),
    };
    let raw_inputs = nix.inputs.unwrap_or_default();
    let mut inputs = BTreeMap::new();
    for (name, value) in [
        ("nixpkgs", raw_inputs.nixpkgs),
        ("home-manager", raw_inputs.home_manager),
    ] {
        if let Some(value) = value {
            let key = format!("[nix.inputs].{name}");
            if let Some(flake) = check(problems, &value, |s| {
                FlakeRef::parse(s).map_err(|e| format!("{key}: {e}"))
            }) {
                inputs.insert(name.to_owned(), flake);
            }
        }
    }
    CommonSettings {
        shared_paths,
        private_paths,
        create_args,
        ports,
        egress,
        allow,
        inputs,
        runner,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(src: &str) -> anyhow::Result<UserFile> {
        parse_user(src, Path::new("/cfg/silo.user.toml"))
    }

    fn workspace(src: &str) -> anyhow::Result<WorkspaceFile> {
        parse_workspace(src, Path::new("/ws/.silo/silo.toml"))
    }

    fn err(result: anyhow::Result<impl std::fmt::Debug>) -> String {
        format!("{:#}", result.expect_err("expected an error"))
    }

    #[test]
    fn line_and_column() {
        use super::super::problems::line_col;
        let src = "ab\ncd\n";
        assert_eq!(line_col(src, 0), (1, 1));
        assert_eq!(line_col(src, 4), (2, 2));
        assert_eq!(line_col(src, 6), (3, 1));
    }

    #[test]
    fn seed_user_example_parses() {
        let file = user(
            r#"
[general]
user = "alice"

[persistence]
shared_paths = [
  "$HOME/.cache/uv/"
]
private_paths = [
  "$HOME/.local/share/fish/fish_history"
]

[podman]
create_args = []

[network]
ports = []
"#,
        )
        .unwrap();
        assert_eq!(file.user.unwrap().as_str(), "alice");
        assert_eq!(file.common.shared_paths[0].raw(), "$HOME/.cache/uv/");
        assert_eq!(
            file.common.private_paths[0].raw(),
            "$HOME/.local/share/fish/fish_history"
        );
    }

    #[test]
    fn user_file_network_section_parses() {
        // The original tool documented [network] for the user file but could not parse it.
        let file =
            user("[general]\nuser = \"alice\"\n[network]\nports = [\"3000:3000\"]\n").unwrap();
        assert_eq!(file.common.ports[0].to_string(), "3000:3000");
    }

    #[test]
    fn seed_workspace_example_parses() {
        let file = workspace(
            r#"
[general]
id = "ab3f9c12"

[features]
podman = false

[persistence]
shared_paths = []
private_paths = []

[podman]
create_args = [
  "--cap-drop=ALL",
  "--cap-add=NET_BIND_SERVICE",
  "--security-opt",
  "no-new-privileges"
]

[network]
ports = [ "8080:8080" ]

[limits]
cpus = 0
memory = 0
processes = 1024
"#,
        )
        .unwrap();
        assert_eq!(file.id.as_str(), "ab3f9c12");
        assert!(!file.podman);
        assert_eq!(file.common.create_args.len(), 4);
        assert_eq!(
            file.limits,
            Limits {
                cpus: 0.0,
                memory_mb: 0,
                processes: 1024
            }
        );
    }

    #[test]
    fn fractional_cpus() {
        let file = workspace("[general]\nid = \"ab3f9c12\"\n[limits]\ncpus = 1.5\n").unwrap();
        assert_eq!(file.limits.cpus, 1.5);
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        assert_eq!(
            err(user("[general]\nuser = \"alice\"\ncolour = \"red\"\n")),
            "invalid configuration in /cfg/silo.user.toml:\n  /cfg/silo.user.toml:3:1: unknown field `colour`, expected `user` or `id`"
        );
        assert!(
            err(workspace("[generl]\nid = \"ab3f9c12\"\n"))
                .contains(":1:2: unknown field `generl`")
        );
    }

    #[test]
    fn wrong_type_names_line() {
        let msg = err(workspace(
            "[general]\nid = \"ab3f9c12\"\n[limits]\nmemory = \"2g\"\n",
        ));
        assert!(
            msg.contains(
                "/ws/.silo/silo.toml:4:10: [limits].memory: expected a whole number, found the string \"2g\""
            ),
            "{msg}"
        );
        let msg = err(workspace(
            "[general]\nid = \"ab3f9c12\"\n[features]\npodman = \"yes\"\n",
        ));
        assert!(
            msg.contains(
                ":4:10: [features].podman: expected true or false, found the string \"yes\""
            ),
            "{msg}"
        );
        let msg = err(user("[network]\nports = \"8080:80\"\n"));
        assert!(
            msg.contains(
                ":2:9: [network].ports: expected a list [ ... ], found the string \"8080:80\""
            ),
            "{msg}"
        );
        let msg = err(user(
            "[persistence]\nshared_paths = [\n  \"$HOME/.a/\",\n  2,\n]\n",
        ));
        assert!(
            msg.contains(":4:3: [persistence].shared_paths: expected a string in quotes, found the whole number 2"),
            "{msg}"
        );
        let msg = err(workspace("[limits]\ncpus = true\n"));
        assert!(
            msg.contains("[limits].cpus: expected a number, found true"),
            "{msg}"
        );
    }

    #[test]
    fn keys_in_the_wrong_file() {
        assert_eq!(
            err(user(
                "[general]\nuser = \"alice\"\nid = \"ab3f9c12\"\n[features]\npodman = true\n[limits]\ncpus = 2\n"
            )),
            "invalid configuration in /cfg/silo.user.toml:\n  \
             /cfg/silo.user.toml:3:6: [general].id is not allowed in silo.user.toml; it belongs in .silo/silo.toml\n  \
             /cfg/silo.user.toml:4:1: [features] is not allowed in silo.user.toml; it belongs in .silo/silo.toml\n  \
             /cfg/silo.user.toml:6:1: [limits] is not allowed in silo.user.toml; it belongs in .silo/silo.toml"
        );
        assert_eq!(
            err(workspace("[general]\nid = \"ab3f9c12\"\nuser = \"bob\"\n")),
            "invalid configuration in /ws/.silo/silo.toml:\n  \
             /ws/.silo/silo.toml:3:8: [general].user is not allowed in .silo/silo.toml; it belongs in silo.user.toml"
        );
    }

    #[test]
    fn invalid_values_are_all_reported() {
        let msg = err(workspace(
            "[general]\nid = \"AB\"\n[network]\nports = [\"80\", \"8080:80\", \"1:99999\"]\n\
             [persistence]\nshared_paths = [\"rel/x\"]\nprivate_paths = [\"/a/../b/\"]\n",
        ));
        assert!(
            msg.contains("silo.toml:2:6: the workspace id \"AB\" must be 8 characters"),
            "{msg}"
        );
        assert!(
            msg.contains("silo.toml:4:10: [network].ports: the port mapping \"80\" is invalid"),
            "{msg}"
        );
        assert!(
            msg.contains("silo.toml:4:27: [network].ports: the port mapping \"1:99999\""),
            "{msg}"
        );
        assert!(
            msg.contains(
                "silo.toml:6:17: [persistence].shared_paths: the persisted path \"rel/x\""
            ),
            "{msg}"
        );
        assert!(
            msg.contains(
                "silo.toml:7:18: [persistence].private_paths: the persisted path \"/a/../b/\""
            ),
            "{msg}"
        );
    }

    #[test]
    fn missing_id() {
        assert!(err(workspace("[features]\npodman = true\n")).contains("[general].id is missing"));
    }

    #[test]
    fn invalid_user_name() {
        let msg = err(user("[general]\nuser = \"Alice Smith\"\n"));
        assert!(
            msg.contains(
                "silo.user.toml:2:8: the user name \"Alice Smith\" is not a valid Unix user name"
            ),
            "{msg}"
        );
    }

    #[test]
    fn negative_and_zero_limits_are_accepted() {
        let file = workspace(
            "[general]\nid = \"ab3f9c12\"\n[limits]\ncpus = -1\nmemory = 0\nprocesses = -5\n",
        )
        .unwrap();
        assert_eq!(
            file.limits,
            Limits {
                cpus: -1.0,
                memory_mb: 0,
                processes: -5
            }
        );
    }

    #[test]
    fn nix_runner() {
        let file = user(
            "[nix.inputs]\nnixpkgs = \"path:/n\"\n[nix]\nrunner = \"container\"\nrunner_image = \"localhost/r:1\"\n",
        )
        .unwrap();
        assert_eq!(file.common.runner.mode, Some(RunnerMode::Container));
        assert_eq!(file.common.runner.image.unwrap().as_str(), "localhost/r:1");
        assert_eq!(file.common.inputs["nixpkgs"].as_str(), "path:/n");
        let msg = err(workspace(
            "[general]\nid = \"ab3f9c12\"\n[nix]\nrunner = \"docker\"\nrunner_image = \"--privileged\"\n",
        ));
        assert!(
            msg.contains("silo.toml:4:10: [nix].runner: \"docker\" is not a runner: use \"auto\""),
            "{msg}"
        );
        assert!(
            msg.contains("silo.toml:5:16: [nix].runner_image: the image reference \"--privileged\" is invalid"),
            "{msg}"
        );
        let msg = err(user("[nix]\nrunner = true\n"));
        assert!(msg.contains("silo.user.toml:2:10: [nix].runner"), "{msg}");
    }

    #[test]
    fn nix_inputs() {
        let file = user("[nix.inputs]\nnixpkgs = \"path:/src/nixpkgs\"\nhome-manager = \"github:me/home-manager\"\n").unwrap();
        assert_eq!(file.common.inputs["nixpkgs"].as_str(), "path:/src/nixpkgs");
        assert_eq!(
            file.common.inputs["home-manager"].as_str(),
            "github:me/home-manager"
        );
        let msg = err(user("[nix.inputs]\nnixpkgs-unstable = \"github:x/y\"\n"));
        assert!(
            msg.contains(
                ":2:1: unknown field `nixpkgs-unstable`, expected `nixpkgs` or `home-manager`"
            ),
            "{msg}"
        );
        let msg = err(user("[nix.inputs]\nnixpkgs = \"path:./nixpkgs\"\n"));
        assert!(msg.contains(":2:11: [nix.inputs].nixpkgs: the flake reference \"path:./nixpkgs\" is a relative path"), "{msg}");
    }

    #[test]
    fn empty_files() {
        assert_eq!(user("").unwrap(), UserFile::default());
        assert!(err(workspace("")).contains("[general].id is missing"));
    }

    #[test]
    fn syntax_error() {
        let msg = err(user("[general\nuser = 1\n"));
        assert!(
            msg.starts_with(
                "invalid configuration in /cfg/silo.user.toml:\n  /cfg/silo.user.toml:1:"
            ),
            "{msg}"
        );
    }
    #[test]
    fn network_policy() {
        let file = workspace(
            "[general]\nid = \"ab3f9c12\"\n[network]\negress = \"allow\"\nallow = [\"crates.io\", \"*.NPMJS.org\", \"10.0.0.0/8\"]\n",
        )
        .unwrap();
        assert_eq!(file.common.egress, Some(Egress::Allow));
        let allow: Vec<String> = file.common.allow.iter().map(ToString::to_string).collect();
        assert_eq!(allow, ["crates.io", "*.npmjs.org", "10.0.0.0/8"]);
        let file = user("[network]\nallow = [\"github.com\"]\n").unwrap();
        assert_eq!(file.common.egress, None);

        let msg = err(workspace(
            "[general]\nid = \"ab3f9c12\"\n[network]\negress = \"some\"\nallow = [\"ok.org\", \"http://x\"]\n",
        ));
        assert!(
            msg.contains(
                "silo.toml:4:10: [network].egress: egress \"some\" is not one of \"all\", \"none\" or \"allow\""
            ),
            "{msg}"
        );
        assert!(
            msg.contains("silo.toml:5:20: [network].allow: the allowed host \"http://x\" is invalid: write the host name alone"),
            "{msg}"
        );
        let msg = err(workspace(
            "[general]\nid = \"ab3f9c12\"\n[network]\nports = [\"8080:80\"]\negress = \"none\"\n",
        ));
        assert!(
            msg.contains("silo.toml:5:10: [network].egress = \"none\" gives the container no network, so the ports (8080:80...) cannot be forwarded"),
            "{msg}"
        );
    }
}
