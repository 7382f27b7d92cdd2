//! silo's configuration: the user file and the workspace file, validated and merged.

pub mod defaults;
pub mod edit;
pub mod file;
pub mod problems;
pub mod runner;
pub mod values;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Result, anyhow, bail};

use crate::host;
use crate::safe_fs::Dir;
use crate::workspace::{self, SILO_DIR, SILO_TOML};
use file::{UserFile, WorkspaceFile};
use runner::RunnerConfig;
use values::{
    AllowEntry, Egress, FlakeRef, Limits, PersistPath, PortMapping, UserName, WorkspaceId,
};

/// The user-wide files in `$XDG_CONFIG_HOME/silo` (fallback `~/.config/silo`).
#[derive(Debug, Clone)]
pub struct UserDir {
    pub dir: PathBuf,
}

impl UserDir {
    /// Locates the directory from the environment, following the XDG rule that a relative
    /// `XDG_CONFIG_HOME` is ignored.
    pub fn from_env() -> Result<Self> {
        Ok(UserDir {
            dir: host::xdg_dir("XDG_CONFIG_HOME", ".config")?,
        })
    }

    pub fn toml(&self) -> PathBuf {
        self.dir.join(USER_TOML_FILE)
    }

    pub fn home_nix(&self) -> PathBuf {
        self.dir.join(HOME_USER_NIX_FILE)
    }

    pub fn devcontainer_json(&self) -> PathBuf {
        self.dir.join(DEVCONTAINER_USER_JSON_FILE)
    }

    /// The directory, created when missing.
    pub fn open(&self) -> Result<Dir> {
        Dir::create(&self.dir)
    }

    /// Reads one of the user's files; `None` when it is missing. The files may be links
    /// to files of the user's (dotfile managers do that), see `Dir::read_owned`.
    pub fn read(&self, name: &str) -> Result<Option<String>> {
        match Dir::open_optional(&self.dir)? {
            Some(dir) => dir.read_owned(name, host::euid()),
            None => Ok(None),
        }
    }
}

/// The user's files in `UserDir`.
pub const USER_TOML_FILE: &str = "silo.user.toml";
pub const HOME_USER_NIX_FILE: &str = "home.user.nix";
pub const DEVCONTAINER_USER_JSON_FILE: &str = "devcontainer.user.json";

/// The merged configuration every command after `init` works from.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `[general].user`, from the user file only.
    pub user: UserName,
    /// `[general].id`, from the workspace file only.
    pub id: WorkspaceId,
    /// `[features].podman`, from the workspace file only.
    pub podman: bool,
    /// User paths first, then workspace paths (likewise below).
    pub shared_paths: Vec<PersistPath>,
    pub private_paths: Vec<PersistPath>,
    pub create_args: Vec<String>,
    pub ports: Vec<PortMapping>,
    /// `[network].egress`: the workspace file's, else the user file's, else `all`.
    pub egress: Egress,
    /// `[network].allow`: user entries first, then the workspace's (used with `allow`).
    pub allow: Vec<AllowEntry>,
    /// `[limits]`, from the workspace file only.
    pub limits: Limits,
    /// `[nix.inputs]`: the workspace file wins per input.
    pub inputs: BTreeMap<String, FlakeRef>,
    /// `[nix] runner` and `runner_image`: the workspace file wins per key.
    pub runner: RunnerConfig,
}

/// Parses both files and merges them by the seed's rules; also returns the workspace
/// file alone, whose settings need the user's approval.
pub fn parse(user: (&str, &Path), workspace: (&str, &Path)) -> Result<(Config, WorkspaceFile)> {
    let user_file = file::parse_user(user.0, user.1)?;
    let workspace_file = file::parse_workspace(workspace.0, workspace.1)?;
    let user_ports = !user_file.common.ports.is_empty();
    let user_egress = user_file.common.egress.is_some();
    let config = merge(user_file, workspace_file.clone())
        .map_err(|e| anyhow!("{}: {e}", user.1.display()))?;
    if config.egress == Egress::None && !config.ports.is_empty() {
        // Within one file this is reported at its position; here the files disagree.
        let egress_from = if workspace_file.common.egress.is_some() || !user_egress {
            workspace.1
        } else {
            user.1
        };
        let ports_from = if user_ports { user.1 } else { workspace.1 };
        let ports: Vec<String> = config.ports.iter().map(ToString::to_string).collect();
        bail!(
            "[network].egress = \"none\" in {} gives the container no network, so the ports {} of {} cannot be forwarded; remove them, or use egress = \"allow\" (with an empty allow list nothing goes out, and ports work)",
            egress_from.display(),
            ports.join(", "),
            ports_from.display()
        );
    }
    Ok((config, workspace_file))
}

/// `.silo/silo.toml` in `silo`, read and checked.
pub fn read_workspace_file(silo: &Dir) -> Result<WorkspaceFile> {
    let text = workspace::read_toml(silo)?;
    file::parse_workspace(&text, &silo.join(SILO_TOML))
}

/// The id in `<root>/.silo/silo.toml`, if that is a readable workspace file.
pub fn workspace_id_at(root: &Path) -> Option<String> {
    let silo = Dir::open_optional(root).ok()??.subdir(SILO_DIR).ok()??;
    Some(read_workspace_file(&silo).ok()?.id.to_string())
}

fn merge(user: UserFile, workspace: WorkspaceFile) -> std::result::Result<Config, String> {
    let name = user
        .user
        .ok_or("[general].user is missing; set it to the user name for the containers")?;
    let (u, w) = (user.common, workspace.common);
    let mut inputs = u.inputs;
    inputs.extend(w.inputs);
    let runner = RunnerConfig::merge(u.runner, w.runner);
    Ok(Config {
        user: name,
        id: workspace.id,
        podman: workspace.podman,
        shared_paths: concat(u.shared_paths, w.shared_paths),
        private_paths: concat(u.private_paths, w.private_paths),
        create_args: concat(u.create_args, w.create_args),
        ports: concat(u.ports, w.ports),
        egress: w.egress.or(u.egress).unwrap_or_default(),
        allow: concat(u.allow, w.allow),
        limits: workspace.limits,
        inputs,
        runner,
    })
}

/// User values first, then workspace values.
fn concat<T>(user: Vec<T>, workspace: Vec<T>) -> Vec<T> {
    user.into_iter().chain(workspace).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use file::{parse_user, parse_workspace};

    fn merged(user: &str, workspace: &str) -> std::result::Result<Config, String> {
        let user = parse_user(user, Path::new("u.toml")).unwrap();
        let workspace = parse_workspace(workspace, Path::new("w.toml")).unwrap();
        merge(user, workspace)
    }

    #[test]
    fn lists_concatenate_user_first_and_scalars_come_from_their_file() {
        let config = merged(
            r#"
[general]
user = "alice"
[persistence]
shared_paths = ["$HOME/.cache/uv/"]
private_paths = ["$HOME/.bash_history"]
[podman]
create_args = ["--env=A=1"]
[network]
ports = ["3000:3000"]
[nix.inputs]
nixpkgs = "github:me/nixpkgs"
home-manager = "github:me/home-manager"
"#,
            r#"
[general]
id = "ab3f9c12"
[features]
podman = true
[persistence]
shared_paths = ["$HOME/.npm/"]
private_paths = ["/data/"]
[podman]
create_args = ["--env=B=2"]
[network]
ports = ["8080:8080"]
[limits]
cpus = 2
memory = 512
processes = 100
[nix.inputs]
nixpkgs = "path:/src/nixpkgs"
"#,
        )
        .unwrap();
        let raws =
            |paths: &[PersistPath]| paths.iter().map(|p| p.raw().to_owned()).collect::<Vec<_>>();
        assert_eq!(config.user.as_str(), "alice");
        assert_eq!(config.id.as_str(), "ab3f9c12");
        assert!(config.podman);
        assert_eq!(
            raws(&config.shared_paths),
            ["$HOME/.cache/uv/", "$HOME/.npm/"]
        );
        assert_eq!(
            raws(&config.private_paths),
            ["$HOME/.bash_history", "/data/"]
        );
        assert_eq!(config.create_args, ["--env=A=1", "--env=B=2"]);
        let ports: Vec<String> = config.ports.iter().map(ToString::to_string).collect();
        assert_eq!(ports, ["3000:3000", "8080:8080"]);
        assert_eq!(
            config.limits,
            Limits {
                cpus: 2.0,
                memory_mb: 512,
                processes: 100
            }
        );
        assert_eq!(config.inputs["nixpkgs"].as_str(), "path:/src/nixpkgs");
        assert_eq!(
            config.inputs["home-manager"].as_str(),
            "github:me/home-manager"
        );
    }

    #[test]
    fn user_is_required() {
        let err = merged("", "[general]\nid = \"ab3f9c12\"\n").unwrap_err();
        assert!(err.starts_with("[general].user is missing"), "{err}");
    }

    #[test]
    fn user_dir_follows_xdg_rules() {
        // Only the pure part: the file names below the directory.
        let dir = UserDir {
            dir: PathBuf::from("/x/silo"),
        };
        assert_eq!(dir.toml(), Path::new("/x/silo/silo.user.toml"));
        assert_eq!(dir.home_nix(), Path::new("/x/silo/home.user.nix"));
        assert_eq!(
            dir.devcontainer_json(),
            Path::new("/x/silo/devcontainer.user.json")
        );
    }
    #[test]
    fn egress_workspace_wins_and_allow_lists_concatenate() {
        let user = "[general]\nuser = \"alice\"\n[network]\negress = \"allow\"\nallow = [\"github.com\"]\n";
        let config = merged(
            user,
            "[general]\nid = \"ab3f9c12\"\n[network]\nallow = [\"crates.io\"]\n",
        )
        .unwrap();
        assert_eq!(config.egress, Egress::Allow);
        let allow: Vec<String> = config.allow.iter().map(ToString::to_string).collect();
        assert_eq!(allow, ["github.com", "crates.io"]);
        let config = merged(
            user,
            "[general]\nid = \"ab3f9c12\"\n[network]\negress = \"none\"\n",
        )
        .unwrap();
        assert_eq!(config.egress, Egress::None);
        let config = merged(
            "[general]\nuser = \"alice\"\n",
            "[general]\nid = \"ab3f9c12\"\n",
        )
        .unwrap();
        assert_eq!(config.egress, Egress::All);
    }

    #[test]
    fn no_network_refuses_ports_from_the_other_file() {
        let err = parse(
            (
                "[general]\nuser = \"alice\"\n[network]\nports = [\"3000:3000\"]\n",
                Path::new("/cfg/silo.user.toml"),
            ),
            (
                "[general]\nid = \"ab3f9c12\"\n[network]\negress = \"none\"\n",
                Path::new("/ws/.silo/silo.toml"),
            ),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "[network].egress = \"none\" in /ws/.silo/silo.toml gives the container no network, so the ports 3000:3000 of /cfg/silo.user.toml cannot be forwarded; remove them, or use egress = \"allow\" (with an empty allow list nothing goes out, and ports work)"
        );
    }
}
