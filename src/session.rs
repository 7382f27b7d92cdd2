//! One workspace opened for work: its configuration loaded and validated, its names,
//! and the questions every step asks podman about it.

use std::cell::OnceCell;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};

use crate::config::{self, Config, UserDir};
use crate::container::{MountForm, Record, UserMapping};
use crate::fingerprint::Fingerprint;
use crate::flake::Inputs;
use crate::init::{self, Report};
use crate::podman::{self, ContainerInfo, ImageInfo};
use crate::runner::Runner;
use crate::state::ContainerState;
use crate::volume;
use crate::workspace::{Names, Workspace};

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
    pub config: Config,
    pub names: Names,
    pub inputs: Inputs,
    /// The fingerprint of `inputs`, what an up-to-date image is labelled with.
    pub fingerprint: Fingerprint,
    pub mapping: UserMapping,
    podman_version: OnceCell<(u32, u32)>,
}

/// Whether opening a session may create missing files (the chain) or not (`status`...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Open {
    CreateMissing,
    ExistingOnly,
}

impl Session {
    pub fn open(ctx: &Ctx, open: Open) -> Result<Session> {
        let ws = Workspace::locate(&ctx.cwd);
        match open {
            Open::CreateMissing => init::init(&ws, &ctx.user_dir, None, Report::Changes)?,
            Open::ExistingOnly => {
                if !ws.toml().is_file() {
                    bail!(
                        "no silo workspace here: neither {} nor a directory above it has .silo/silo.toml; run `silo init` (or `silo`) to create one",
                        ctx.cwd.display()
                    );
                }
                if !ctx.user_dir.toml().is_file() {
                    bail!(
                        "{} does not exist; run `silo user init`",
                        ctx.user_dir.toml().display()
                    );
                }
            }
        }
        let config = config::load(&ctx.user_dir.toml(), &ws.toml())?;
        let names = Names::new(&config.id, &ws.dir_name()?);
        let inputs = Inputs::read(&config, &ctx.user_dir.home_nix(), &ws.silo_dir())?;
        Ok(Session {
            runner: ctx.runner,
            ws,
            config,
            names,
            fingerprint: inputs.fingerprint(),
            inputs,
            mapping: UserMapping::detect(),
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

    pub fn podman_version(&self) -> Result<(u32, u32)> {
        if let Some(v) = self.podman_version.get() {
            return Ok(*v);
        }
        let out = self.runner.run(&podman::version())?;
        let version = podman::parse_version(&out.stdout).with_context(|| {
            format!(
                "cannot read the Podman version from {:?}",
                out.stdout.trim()
            )
        })?;
        Ok(*self.podman_version.get_or_init(|| version))
    }

    pub fn mapping_args(&self) -> Result<Vec<String>> {
        let host_uid = std::fs::metadata("/proc/self")
            .map(|m| m.uid())
            .unwrap_or(0);
        self.mapping
            .args(self.podman_version()?, host_uid)
            .map_err(anyhow::Error::msg)
    }

    /// How this Podman mounts the volume's parts: subpath (5.x) or bind (4.x).
    pub fn mount_form(&self) -> Result<MountForm> {
        Ok(if podman::supports_subpath(self.podman_version()?) {
            MountForm::Subpath
        } else {
            MountForm::BindFromVolume {
                mountpoint: volume::ensure_mountpoint(&self.runner)?,
            }
        })
    }

    pub fn container_state(&self) -> Result<(ContainerState, Record)> {
        let record = self.record()?;
        let info = self.inspect_container(&self.names.container)?;
        Ok((ContainerState::of(info.as_ref(), &record), record))
    }
}
