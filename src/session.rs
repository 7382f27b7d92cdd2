//! One workspace opened for work: its files read (never through a link), its
//! configuration validated, its names, and the questions every step asks about it.

use std::cell::OnceCell;
use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};

use crate::config::file::WorkspaceFile;
use crate::config::{self, Config, USER_TOML_FILE, UserDir};
use crate::container::Record;
use crate::errors::WithHint;
use crate::fingerprint::Fingerprint;
use crate::flake::Inputs;
use crate::init::{self, Report};
use crate::mapping::UserMapping;
use crate::podman::{self, ContainerInfo, ImageInfo};
use crate::runner::Runner;
use crate::safe_fs::Dir;
use crate::seccomp;
use crate::state::ContainerState;
use crate::trust::{self, Subject, Verdict};
use crate::volume::{self, MountForm};
use crate::workspace::{self, Names, SILO_TOML, Workspace};

/// Where the Podman version is kept between runs (in the state directory).
const PODMAN_VERSION_CACHE: &str = "podman-version";

/// What every command starts from: how to run programs, and where things are.
pub struct Ctx {
    pub runner: Runner,
    pub user_dir: UserDir,
    pub cwd: PathBuf,
}

/// One workspace, its configuration loaded, ready for the steps of the chain.
pub struct Session {
    pub runner: Runner,
    pub ws: Workspace,
    /// `.silo/`, opened without following links; every file in it is read through this.
    pub silo: Dir,
    pub user_dir: UserDir,
    pub config: Config,
    /// `.silo/silo.toml` alone: the settings that need the user's approval.
    pub workspace_file: WorkspaceFile,
    pub names: Names,
    pub inputs: Inputs,
    /// The fingerprint of `inputs`, what an up-to-date image is labelled with.
    pub fingerprint: Fingerprint,
    pub mapping: UserMapping,
    /// The prefix of the volume names (`silo`).
    pub volume_prefix: String,
    podman_version: OnceCell<(u32, u32)>,
}

/// A directory that is the home directory, the root or above the home would give the
/// container everything: `silo` does not make it a workspace on its own.
fn refuse_too_wide(dir: &std::path::Path) -> Result<()> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let too_wide = dir == std::path::Path::new("/")
        || home.as_deref().is_some_and(|home| home.starts_with(dir));
    if too_wide {
        return Err(anyhow::anyhow!(
            "{} is not a project directory: as a workspace, all of it would be mounted into the container",
            dir.display()
        ))
        .hint("run silo in a project directory, or `silo init` here first if you really mean it");
    }
    Ok(())
}

/// Whether opening a session may create missing files (the chain) or not (`status`...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Open {
    CreateMissing,
    ExistingOnly,
}

impl Session {
    pub fn open(ctx: &Ctx, open: Open) -> Result<Session> {
        let ws = Workspace::locate(&ctx.cwd)?;
        if open == Open::CreateMissing {
            let new = ws
                .silo()?
                .is_none_or(|silo| matches!(silo.entry(SILO_TOML), Ok(None)));
            if new {
                refuse_too_wide(&ws.root)?;
                eprintln!(
                    "Making {} a silo workspace: its container mounts this directory, and .silo/ holds its settings.",
                    ws.root.display()
                );
            }
            init::init(&ws, &ctx.user_dir, None, Report::Changes)?;
        }
        let silo = match ws.silo()? {
            Some(silo) if silo.entry(SILO_TOML)?.is_some() => silo,
            _ => bail!(
                "no silo workspace here: neither {} nor a directory above it has .silo/silo.toml; run `silo init` (or `silo`) to create one",
                ctx.cwd.display()
            ),
        };
        let (config, workspace_file, inputs) = read_config(&ws, &silo, &ctx.user_dir)?;
        let names = Names::new(&config.id, &ws.dir_name()?);
        // As root, the container user becomes the owner of the project directory.
        let root_meta = ws.root_dir()?.meta()?;
        Ok(Session {
            runner: ctx.runner,
            silo,
            user_dir: ctx.user_dir.clone(),
            config,
            workspace_file,
            names,
            fingerprint: inputs.fingerprint(),
            inputs,
            mapping: UserMapping::detect(root_meta.uid, root_meta.gid),
            volume_prefix: volume::prefix(),
            ws,
            podman_version: OnceCell::new(),
        })
    }

    /// The record of what the container would be created from now.
    pub fn record(&self) -> Result<Record> {
        Ok(Record::new(
            &self.config,
            &self.fingerprint.0,
            self.ws.mount_source()?,
            self.mapping,
            volume::persist_mounts(&self.config, &self.volume_prefix),
        ))
    }

    /// What the workspace's `.silo/` says now, for the trust records.
    pub fn trust_subject(&self) -> Result<Subject> {
        Subject::new(
            &self.ws,
            &self.silo,
            &self.workspace_file,
            &self.inputs.home_nix,
        )
    }

    /// Whether the workspace's settings are approved, as `silo trust` would judge them.
    pub fn trust_verdict(&self) -> Result<(trust::Store, Verdict)> {
        let store = trust::Store::new(&self.user_dir.dir);
        let verdict = store.verdict(&self.trust_subject()?)?;
        Ok((store, verdict))
    }

    /// Before anything applies the workspace's settings (build, volumes, create, start):
    /// they must be as this user created or approved them. On a terminal silo asks;
    /// otherwise it refuses and names `silo trust`.
    pub fn require_trust(&self) -> Result<()> {
        let (store, verdict) = self.trust_verdict()?;
        let Verdict::Review(review) = verdict else {
            return Ok(());
        };
        if crate::prompt::interactive() {
            if trust::ask(&review)? {
                store.approve(&review)?;
                return Ok(());
            }
            bail!("not approved; nothing was changed");
        }
        Err(anyhow::anyhow!("{}Nothing was applied.", review.render())).hint(format!(
            "review and approve these settings with `silo trust` in {}",
            self.ws.root.display()
        ))
    }

    pub fn inspect_container(&self, name: &str) -> Result<Option<ContainerInfo>> {
        let out = self.runner.capture(&podman::inspect_container(name))?;
        podman::parse_container(&out.stdout)
            .with_context(|| format!("inspecting {name}: {}", out.stderr.trim()))
    }

    pub fn inspect_image(&self) -> Result<Option<ImageInfo>> {
        let out = self
            .runner
            .capture(&podman::inspect_image(&self.names.image))?;
        podman::parse_image(&out.stdout)
            .with_context(|| format!("inspecting {}: {}", self.names.image, out.stderr.trim()))
    }

    /// Podman's version, asked once per installed podman: it is kept in the state
    /// directory with the program's path, size and modification time.
    pub fn podman_version(&self) -> Result<(u32, u32)> {
        if let Some(v) = self.podman_version.get() {
            return Ok(*v);
        }
        let key = podman::program_identity();
        let cache = self.state_dir().ok().and_then(|d| Dir::create(&d).ok());
        let cached = cache
            .as_ref()
            .and_then(|dir| dir.read(PODMAN_VERSION_CACHE).ok().flatten())
            .and_then(|text| podman::cached_version(&text, key.as_deref()?));
        let version = match cached {
            Some(version) => version,
            None => {
                let out = self.runner.run(&podman::version())?;
                let version = podman::parse_version(&out.stdout).with_context(|| {
                    format!(
                        "cannot read the Podman version from {:?}",
                        out.stdout.trim()
                    )
                })?;
                if let (Some(dir), Some(key)) = (&cache, &key) {
                    let _ = dir.write_atomic(
                        PODMAN_VERSION_CACHE,
                        &format!("{key}\t{}.{}\n", version.0, version.1),
                    );
                }
                version
            }
        };
        Ok(*self.podman_version.get_or_init(|| version))
    }

    pub fn mapping_args(&self) -> Result<Vec<String>> {
        self.mapping
            .args(self.podman_version()?, crate::host::euid())
            .map_err(anyhow::Error::msg)
    }

    /// How this Podman mounts persisted files: subpath (5.x) or a bind from the volumes'
    /// directories on the host (4.x).
    pub fn mount_form(&self, mountpoints: BTreeMap<String, String>) -> Result<MountForm> {
        Ok(if podman::supports_subpath(self.podman_version()?) {
            MountForm::Subpath
        } else {
            MountForm::Bind { mountpoints }
        })
    }

    /// The container's state and the image, from one podman call (for `status`).
    pub fn inspect_both(&self) -> Result<(ContainerState, Record, Option<ImageInfo>)> {
        let record = self.record()?;
        let out = self.runner.capture(&podman::inspect_both(
            &self.names.container,
            &self.names.image,
        ))?;
        let (container, image) = podman::parse_both(&out.stdout).with_context(|| {
            format!("inspecting {}: {}", self.names.container, out.stderr.trim())
        })?;
        Ok((
            ContainerState::of(container.as_ref(), &record),
            record,
            image,
        ))
    }

    pub fn container_state(&self) -> Result<(ContainerState, Record)> {
        let record = self.record()?;
        let info = self.inspect_container(&self.names.container)?;
        Ok((ContainerState::of(info.as_ref(), &record), record))
    }

    /// Where silo keeps what it generates for this user (the system call filter).
    pub fn state_dir(&self) -> Result<PathBuf> {
        state_dir()
    }

    /// The system call filter for `rules`, written into the state directory; none when
    /// the rules leave Podman's default filter as it is.
    pub fn seccomp_profile(&self, rules: seccomp::Rules) -> Result<Option<PathBuf>> {
        if !rules.any() {
            return Ok(None);
        }
        seccomp::write(&self.state_dir()?, rules).map(Some)
    }
}

/// A workspace's settings merged with the user's, and everything its image is built
/// from: what a session starts from, and what `silo list` reads to tell whether an image
/// is up to date.
pub fn read_config(
    ws: &Workspace,
    silo: &Dir,
    user_dir: &UserDir,
) -> Result<(Config, WorkspaceFile, Inputs)> {
    let user_toml = user_dir.read(USER_TOML_FILE)?.with_context(|| {
        format!(
            "{} does not exist; run `silo user init`",
            user_dir.toml().display()
        )
    })?;
    let workspace_toml = workspace::read_toml(silo)?;
    let (config, workspace_file) = config::parse(
        (&user_toml, &user_dir.toml()),
        (&workspace_toml, &ws.toml()),
    )?;
    let inputs = Inputs::read(&config, user_dir, silo)?;
    Ok((config, workspace_file, inputs))
}

/// Where silo keeps what it generates for this user: the system call filters, the
/// record of its Nix build results (`$XDG_STATE_HOME/silo`, fallback
/// `~/.local/state/silo`).
pub fn state_dir() -> Result<PathBuf> {
    crate::host::xdg_dir("XDG_STATE_HOME", ".local/state")
}
