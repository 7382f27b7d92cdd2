//! The chain `user init -> init -> build -> volume setup -> start -> connect`, each step
//! idempotent, and stopping and removing what it made.

use std::cell::OnceCell;
use std::ffi::OsString;
use std::io::IsTerminal;
use std::os::unix::fs::MetadataExt;

use anyhow::{Context, Result, bail};

use crate::app::Ctx;
use crate::config::{self, Config};
use crate::container::{self, MountForm, PersistMount, Record, UserMapping};
use crate::flake::Inputs;
use crate::image::{self, BuildOptions};
use crate::init::{self, Report};
use crate::lock;
use crate::podman::{self, Attach, ContainerInfo, ImageInfo};
use crate::runner::{CommandFailed, Invocation, Runner, Tool};
use crate::state::{self, ContainerState, RunState};
use crate::volume;
use crate::workspace::{Names, Workspace};

/// The in-image program that `connect` and `exec` run: it waits for home-manager's
/// activation, then runs the command, or the login shell without one.
pub const ENTER: &str = "/opt/silo/bin/enter";

/// One workspace, its configuration loaded, ready for the steps of the chain.
pub struct Session {
    pub runner: Runner,
    pub ws: Workspace,
    pub config: Config,
    pub names: Names,
    pub inputs: Inputs,
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
            inputs,
            mapping: UserMapping::detect(),
            podman_version: OnceCell::new(),
        })
    }

    /// The record of what the container would be created from now.
    pub fn record(&self) -> Result<Record> {
        Ok(Record::new(
            &self.config,
            &self.inputs.fingerprint().0,
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

    pub fn container_state(&self) -> Result<(ContainerState, Record)> {
        let record = self.record()?;
        let info = self.inspect_container(&self.names.container)?;
        Ok((ContainerState::of(info.as_ref(), &record), record))
    }
}

/// Refuses to touch a container that a copy of this workspace (same id) made.
fn check_not_a_copy(s: &Session, state: &ContainerState, record: &Record) -> Result<()> {
    if let Some(other) = state.owned_by_copy(record, s.config.id.as_str()) {
        bail!(
            "the container {} belongs to the workspace at {other}, which has the same id {} (was this project copied with its .silo/?); give this one its own id: set [general].id in {} to another 8 characters from a-z and 0-9",
            s.names.container,
            s.config.id,
            s.ws.toml().display()
        );
    }
    Ok(())
}

fn warn_outdated(name: &str, state: &ContainerState) {
    if !state.outdated.is_empty() {
        eprintln!(
            "note: {name} is out of date: {}.\n      Recreate it with `silo stop && silo` (the workspace and the volume keep their data).",
            state.outdated.join("; ")
        );
    }
}

/// `silo volume setup`: creates the persisted paths on the volume.
pub fn volume_setup(s: &Session, mounts: &[PersistMount]) -> Result<()> {
    if s.inspect_image()?.is_none() {
        bail!(
            "the image {} does not exist; run `silo build` first",
            s.names.image
        );
    }
    volume::setup(&s.runner, &s.names.image, &s.mapping_args()?, mounts)
}

/// `silo start` and the chain: builds, sets up the volume, creates and starts the
/// container as needed. A running container is never replaced; an outdated one is
/// reported with what to run.
pub fn ensure_running(s: &Session) -> Result<()> {
    let silo_dir = s.ws.silo_dir();
    let _lock = lock::acquire(&silo_dir)?;
    let name = &s.names.container;
    let (state, record) = s.container_state()?;
    check_not_a_copy(s, &state, &record)?;
    match state.run {
        RunState::Running => warn_outdated(name, &state),
        RunState::Stopped => {
            if state.workspace_moved() {
                let old = state
                    .record
                    .as_ref()
                    .map(|r| r.workspace.as_str())
                    .unwrap_or_default();
                bail!(
                    "{name} mounts {old}, which no longer exists (was the workspace moved or renamed?); run `silo stop && silo` to recreate it for {}",
                    s.ws.root.display()
                );
            }
            warn_outdated(name, &state);
            // The paths the container was created with must exist on the volume.
            let mounts = state.record.as_ref().map_or(&record.mounts, |r| &r.mounts);
            volume_setup(s, mounts)?;
            eprintln!("Starting {name}...");
            start(s)?;
        }
        RunState::Missing => {
            image::ensure(s, BuildOptions::default(), false)?;
            volume_setup(s, &record.mounts)?;
            create(s, &record)?;
            eprintln!("Starting {name}...");
            start(s)?;
        }
    }
    if state.outdated.is_empty() || state.run == RunState::Missing {
        state::save_hint(&silo_dir, &record);
    }
    Ok(())
}

fn create(s: &Session, record: &Record) -> Result<()> {
    let version = s.podman_version()?;
    let form = if podman::supports_subpath(version) {
        MountForm::Subpath
    } else {
        MountForm::BindFromVolume {
            mountpoint: volume::ensure_mountpoint(&s.runner)?,
        }
    };
    let args = container::create_args(
        &s.config,
        &s.names,
        s.ws.mount_source()?,
        record,
        &s.mapping_args()?,
        &form,
    );
    eprintln!("Creating {}...", s.names.container);
    let out = s
        .runner
        .run(&Invocation::new(Tool::Podman, args))
        .with_context(|| format!("cannot create the container {}", s.names.container))?;
    // Podman's warnings, e.g. that rootless cgroup v1 ignores the limits.
    for line in out.stderr.lines().filter(|l| !l.trim().is_empty()) {
        eprintln!("podman: {line}");
    }
    Ok(())
}

fn start(s: &Session) -> Result<()> {
    s.runner
        .run(&podman::start(&s.names.container))
        .map_err(|err| {
            let hint = err
                .downcast_ref::<CommandFailed>()
                .and_then(|f| podman::start_hint(&f.stderr));
            let err = err.context(format!("cannot start {}", s.names.container));
            match hint {
                Some(hint) => err.context(hint),
                None => err,
            }
        })?;
    Ok(())
}

/// `podman exec` of `enter` in a container, in the directory matching where silo was run,
/// with a TTY when silo has one.
pub fn exec_invocation(s: &Session, container: &str, what: &Enter) -> Invocation {
    let mut command = vec![OsString::from(ENTER)];
    if let Enter::Command(args) = what {
        command.extend(args.iter().cloned());
    }
    let tty = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let term = std::env::var("TERM").ok();
    podman::exec(
        container,
        &s.names.workdir(&s.ws.subdir),
        Attach { tty },
        term.as_deref(),
        &command,
    )
}

/// What to run in the container.
pub enum Enter {
    Shell,
    Command(Vec<OsString>),
}

/// `silo`, `silo connect` and `silo exec`: runs in the container and returns the exit
/// status. With `start`, runs the chain first when needed; otherwise the container must
/// already run.
pub fn enter(s: &Session, what: &Enter, start: bool) -> Result<i32> {
    let invocation = exec_invocation(s, &s.names.container, what);
    let name = &s.names.container;

    // Fast path: nothing changed since silo last saw the container running.
    let record = s.record()?;
    if state::hint_matches(&s.ws.silo_dir(), &record) {
        let code = s.runner.interactive(&invocation)?;
        if !podman::exec_could_not_start(code) {
            return Ok(code);
        }
        // The command may have exited with that code itself: ask podman.
        let (state, _) = s.container_state()?;
        if state.run == RunState::Running {
            return Ok(code);
        }
        state::clear_hint(&s.ws.silo_dir());
        if start {
            eprintln!("{name} was stopped or removed outside silo; starting it again.");
        }
    }

    if start {
        ensure_running(s)?;
    } else {
        let (state, record) = s.container_state()?;
        check_not_a_copy(s, &state, &record)?;
        match state.run {
            RunState::Missing => bail!("{name} does not exist; run `silo` or `silo start` first"),
            RunState::Stopped => bail!("{name} is not running; run `silo start` first"),
            RunState::Running => warn_outdated(name, &state),
        }
        if state.outdated.is_empty() {
            state::save_hint(&s.ws.silo_dir(), &record);
        }
    }
    s.runner.interactive(&invocation)
}

/// `silo stop`: stops and removes the container; the workspace and the volume keep their data.
pub fn stop(s: &Session) -> Result<()> {
    let silo_dir = s.ws.silo_dir();
    let _lock = lock::acquire(&silo_dir)?;
    state::clear_hint(&silo_dir);
    stop_and_remove(s, &s.names.container)?;
    prune_images(s);
    Ok(())
}

/// Stops (if running) and removes a container; a missing one is not an error.
pub fn stop_and_remove(s: &Session, name: &str) -> Result<()> {
    let Some(info) = s.inspect_container(name)? else {
        eprintln!("{name} does not exist");
        return Ok(());
    };
    if info.running {
        eprintln!("Stopping {name}...");
        s.runner
            .run(&podman::stop(name))
            .with_context(|| format!("cannot stop {name}"))?;
    } else {
        eprintln!("{name} is not running");
    }
    eprintln!("Removing {name}...");
    s.runner
        .run(&podman::remove_container(name))
        .with_context(|| format!("cannot remove {name}"))?;
    Ok(())
}

/// `silo rm`: removes the image, and the stopped container first.
pub fn remove(s: &Session) -> Result<()> {
    let silo_dir = s.ws.silo_dir();
    let _lock = lock::acquire(&silo_dir)?;
    let name = &s.names.container;
    match s.inspect_container(name)? {
        Some(info) if info.running => bail!("{name} is running; stop it first with `silo stop`"),
        Some(_) => {
            eprintln!("Removing {name}...");
            s.runner
                .run(&podman::remove_container(name))
                .with_context(|| format!("cannot remove {name}"))?;
        }
        None => {}
    }
    state::clear_hint(&silo_dir);
    let image = &s.names.image;
    if s.inspect_image()?.is_some() {
        eprintln!("Removing {image}...");
        s.runner
            .run(&podman::remove_image(image))
            .with_context(|| format!("cannot remove {image}"))?;
    } else {
        eprintln!("{image} does not exist");
    }
    prune_images(s);
    Ok(())
}

/// Removes this workspace's untagged images (replaced by a rebuild) that no container uses.
pub fn prune_images(s: &Session) {
    if let Err(err) = s.runner.run(&podman::prune_images(s.config.id.as_str())) {
        eprintln!("note: could not remove old images of this workspace: {err:#}");
    }
}
