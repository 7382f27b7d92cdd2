//! `silo user init` and `silo init`: create the starting files where missing, and switch
//! nested Podman on an existing workspace without disturbing the rest of its files.

use anyhow::{Context, Result};

use crate::config::values::{UserName, WorkspaceId};
use crate::config::{
    DEVCONTAINER_USER_JSON_FILE, HOME_USER_NIX_FILE, USER_TOML_FILE, UserDir, defaults, edit, file,
    read_workspace_file,
};
use crate::home_nix;
use crate::safe_fs::{Dir, Outcome};
use crate::trust::{self, Subject, Verdict};
use crate::workspace::{self, HOME_NIX, SILO_DIR, SILO_TOML, Workspace};

/// The option in home.nix that `silo init --[no-]podman` sets.
pub const PODMAN_OPTION: [&str; 3] = ["silo", "podman", "enable"];

/// Whether to say so when a file already exists (explicit `init`) or stay quiet (the chain).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    Everything,
    Changes,
}

fn create(dir: &Dir, name: &str, contents: &str, report: Report) -> Result<Outcome> {
    let outcome = dir.write_new(name, contents)?;
    match outcome {
        Outcome::Created => eprintln!("Created {}", dir.join(name).display()),
        Outcome::AlreadyExists => report_existing(dir, name, report),
    }
    Ok(outcome)
}

fn report_existing(dir: &Dir, name: &str, report: Report) {
    if report == Report::Everything {
        eprintln!("{} already exists", dir.join(name).display());
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

pub fn user_init(user_dir: &UserDir, report: Report) -> Result<()> {
    let dir = user_dir.open()?;
    create(&dir, HOME_USER_NIX_FILE, defaults::HOME_USER_NIX, report)?;
    // The default user name is only worked out (and explained) for a new file.
    if dir.entry(USER_TOML_FILE)?.is_some() {
        report_existing(&dir, USER_TOML_FILE, report);
    } else {
        create(
            &dir,
            USER_TOML_FILE,
            &defaults::user_toml(&default_user()),
            report,
        )?;
    }
    create(
        &dir,
        DEVCONTAINER_USER_JSON_FILE,
        defaults::DEVCONTAINER_USER_JSON,
        report,
    )?;
    Ok(())
}

/// Creates the workspace files where missing; with `podman`, sets nested Podman on an
/// existing workspace. A workspace whose silo.toml and home.nix this run created is
/// recorded as trusted: the user made it.
pub fn init(
    ws: &Workspace,
    user_dir: &UserDir,
    podman: Option<bool>,
    report: Report,
) -> Result<()> {
    user_init(user_dir, report)?;
    let silo = ws.root_dir()?.create_subdir(SILO_DIR)?;
    let created = if silo.entry(SILO_TOML)?.is_some() {
        false
    } else {
        let id = WorkspaceId::random().context("generating a workspace id")?;
        let contents = defaults::workspace_toml(&id, podman.unwrap_or(false));
        create(&silo, SILO_TOML, &contents, report)? == Outcome::Created
    };
    if !created && podman.is_none() {
        report_existing(&silo, SILO_TOML, report);
    }
    // Only a new home.nix needs the setting from silo.toml.
    let home_created = if silo.entry(HOME_NIX)?.is_some() {
        report_existing(&silo, HOME_NIX, report);
        false
    } else {
        // The setting home.nix starts with: the flag, else what silo.toml says.
        let enable = match podman {
            Some(enable) => enable,
            None => read_workspace_file(&silo)?.podman,
        };
        create(&silo, HOME_NIX, &defaults::home_nix(enable), report)? == Outcome::Created
    };
    let store = trust::Store::new(&user_dir.dir);
    if created && home_created {
        store.created(&Subject::read(ws, &silo)?)?;
    }
    // An existing file (either one) gets the flag by an edit in place.
    if let Some(enable) = podman.filter(|_| !(created && home_created)) {
        // An edit the user asked for keeps an approved workspace approved.
        let trusted = matches!(
            store.verdict(&Subject::read(ws, &silo)?)?,
            Verdict::Trusted(_)
        );
        set_podman(&silo, enable, !home_created)?;
        if trusted && let Verdict::Review(review) = store.verdict(&Subject::read(ws, &silo)?)? {
            store.approve(&review)?;
        }
    }
    Ok(())
}

/// Switches nested Podman in both files, or in neither when one cannot be edited.
fn set_podman(silo: &Dir, enable: bool, edit_home_nix: bool) -> Result<()> {
    let toml_path = silo.join(SILO_TOML);
    let toml_src = workspace::read_toml(silo)?;
    let toml_edit = edit::set_podman_feature(&toml_src, enable)
        .with_context(|| format!("cannot change {}", toml_path.display()))?;
    file::parse_workspace(&toml_edit.text, &toml_path)
        .with_context(|| format!("cannot change {}: fix it first", toml_path.display()))?;

    let home_path = silo.join(HOME_NIX);
    let home_edit = if edit_home_nix {
        let src = silo
            .read(HOME_NIX)?
            .with_context(|| format!("{} does not exist", home_path.display()))?;
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
        silo.write_atomic(HOME_NIX, text)?;
        eprintln!(
            "Set silo.podman.enable = {enable} in {}",
            home_path.display()
        );
        changed = true;
    }
    if toml_edit.feature_changed || toml_edit.create_args_replaced {
        silo.write_atomic(SILO_TOML, &toml_edit.text)?;
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
