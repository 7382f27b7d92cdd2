//! The chain `user init -> init -> build -> volume setup -> start -> connect`, each step
//! idempotent, and stopping and removing what it made.

use std::ffi::OsString;
use std::io::IsTerminal;

use anyhow::{Context, Result, bail};

use crate::container::{self, PersistMount, Record};
use crate::image::{self, BuildOptions};
use crate::lock;
use crate::podman::{self, Attach};
use crate::runner::{CommandFailed, Invocation, Tool};
use crate::session::Session;
use crate::state::{self, ContainerState, RunState};
use crate::volume;

/// The in-image program that `connect` and `exec` run: it waits for home-manager's
/// activation, then runs the command, or the login shell without one.
pub const ENTER: &str = "/opt/silo/bin/enter";

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
    let form = s.mount_form()?;
    let args = container::create_args(&s.config.id, &s.names, record, &s.mapping_args()?, &form);
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
    image::prune(s);
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
    remove_container(s, name)
}

fn remove_container(s: &Session, name: &str) -> Result<()> {
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
        Some(_) => remove_container(s, name)?,
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
    image::prune(s);
    Ok(())
}
