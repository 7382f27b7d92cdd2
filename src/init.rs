//! `silo user init` and `silo init`: create the starting files where missing, and switch
//! nested Podman on an existing workspace without disturbing the rest of its files.

use std::path::Path;

use anyhow::{Context, Result};

use crate::config::values::{UserName, WorkspaceId};
use crate::config::{UserDir, defaults, edit, file};
use crate::files::{self, Outcome};
use crate::home_nix;
use crate::workspace::Workspace;

/// The option in home.nix that `silo init --[no-]podman` sets.
pub const PODMAN_OPTION: [&str; 3] = ["silo", "podman", "enable"];

/// Whether to say so when a file already exists (explicit `init`) or stay quiet (the chain).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    Everything,
    Changes,
}

fn create(path: &Path, contents: &str, report: Report) -> Result<Outcome> {
    let outcome = files::write_new(path, contents)?;
    match outcome {
        Outcome::Created => eprintln!("Created {}", path.display()),
        Outcome::AlreadyExists => report_existing(path, report),
    }
    Ok(outcome)
}

fn report_existing(path: &Path, report: Report) {
    if report == Report::Everything {
        eprintln!("{} already exists", path.display());
    }
}

/// The container user for a new user file: the host user's name when it is a valid
/// container user name, else `dev`.
fn default_user() -> UserName {
    let host = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_default();
    match UserName::parse(&host) {
        Ok(name) => name,
        Err(why) => {
            eprintln!(
                "note: {why}; the container user is \"dev\" (change [general].user to pick another)"
            );
            UserName::parse("dev").expect("a valid name")
        }
    }
}

pub fn user_init(dir: &UserDir, report: Report) -> Result<()> {
    create(&dir.home_nix(), defaults::HOME_USER_NIX, report)?;
    // The default user name is only worked out (and explained) for a new file.
    if dir.toml().exists() {
        report_existing(&dir.toml(), report);
    } else {
        create(&dir.toml(), &defaults::user_toml(&default_user()), report)?;
    }
    create(
        &dir.devcontainer_json(),
        defaults::DEVCONTAINER_USER_JSON,
        report,
    )?;
    Ok(())
}

/// Creates the workspace files where missing; with `podman`, sets nested Podman on an
/// existing workspace.
pub fn init(
    ws: &Workspace,
    user_dir: &UserDir,
    podman: Option<bool>,
    report: Report,
) -> Result<()> {
    user_init(user_dir, report)?;
    let toml = ws.toml();
    let created = if toml.exists() {
        false
    } else {
        let id = WorkspaceId::random().context("generating a workspace id")?;
        let contents = defaults::workspace_toml(&id, podman.unwrap_or(false));
        create(&toml, &contents, report)? == Outcome::Created
    };
    if !created && podman.is_none() {
        report_existing(&toml, report);
    }
    // Only a new home.nix needs the setting from silo.toml.
    let home_created = if ws.home_nix().exists() {
        report_existing(&ws.home_nix(), report);
        false
    } else {
        // The setting home.nix starts with: the flag, else what silo.toml says.
        let enable = match podman {
            Some(enable) => enable,
            None => file::parse_workspace(&files::read(&toml)?, &toml)?.podman,
        };
        create(&ws.home_nix(), &defaults::home_nix(enable), report)? == Outcome::Created
    };
    // An existing file (either one) gets the flag by an edit in place.
    if let Some(enable) = podman.filter(|_| !(created && home_created)) {
        set_podman(ws, enable, !home_created)?;
    }
    Ok(())
}

/// Switches nested Podman in both files, or in neither when one cannot be edited.
fn set_podman(ws: &Workspace, enable: bool, edit_home_nix: bool) -> Result<()> {
    let toml_path = ws.toml();
    let toml_src = files::read(&toml_path)?;
    let toml_edit = edit::set_podman_feature(&toml_src, enable)
        .with_context(|| format!("cannot change {}", toml_path.display()))?;
    file::parse_workspace(&toml_edit.text, &toml_path)
        .with_context(|| format!("cannot change {}: fix it first", toml_path.display()))?;

    let home_path = ws.home_nix();
    let home_edit = if edit_home_nix {
        let src = files::read(&home_path)?;
        let new = home_nix::set_bool(&src, &PODMAN_OPTION, enable).with_context(|| {
            format!(
                "cannot change silo.podman.enable in {}",
                home_path.display()
            )
        })?;
        (new != src).then_some(new)
    } else {
        None
    };

    let mut changed = false;
    if let Some(text) = &home_edit {
        files::write_atomic(&home_path, text)?;
        eprintln!(
            "Set silo.podman.enable = {enable} in {}",
            home_path.display()
        );
        changed = true;
    }
    if toml_edit.feature_changed || toml_edit.create_args_replaced {
        files::write_atomic(&toml_path, &toml_edit.text)?;
        changed = true;
    }
    if toml_edit.feature_changed {
        eprintln!(
            "Set [features].podman = {enable} in {}",
            toml_path.display()
        );
    }
    if toml_edit.create_args_replaced {
        eprintln!(
            "Replaced [podman].create_args in {} with the defaults for nested Podman {}: {}",
            toml_path.display(),
            if enable { "on" } else { "off" },
            defaults::create_args(enable).join(" ")
        );
    }
    if toml_edit.create_args_custom {
        eprintln!(
            "note: [podman].create_args in {} is customised and was left alone; the defaults with nested Podman {} are: {}",
            toml_path.display(),
            if enable { "on" } else { "off" },
            defaults::create_args(enable).join(" ")
        );
    }
    if changed {
        eprintln!(
            "Nested Podman is now {}; it takes effect after `silo stop && silo`.",
            if enable { "on" } else { "off" }
        );
    } else {
        eprintln!(
            "Nested Podman is already {}.",
            if enable { "on" } else { "off" }
        );
    }
    Ok(())
}
