//! The chain `user init -> init -> build -> volume setup -> start -> connect`, each step
//! idempotent, and stopping and removing what it made.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::container::{self, Record};
use crate::errors::{WithHint, with_hint};
use crate::home_dirs;
use crate::image::{self, BuildOptions};
use crate::lock;
use crate::migrate;
use crate::podman::{self, Attach};
use crate::runner::{CommandFailed, Invocation, Tool};
use crate::safe_fs::Dir;
use crate::session::Session;
use crate::sidecar;
use crate::state::{self, ContainerState, RunState};
use crate::volume::{self, PersistMount};
use crate::{host, mapping::UserMapping};

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
            "note: {name} is out of date: {}.\n      Recreate it with `silo stop && silo` (the workspace and the volumes keep their data).",
            state.outdated.join("; ")
        );
    }
}

/// Says, every time, when the configured limits cannot be applied on this host.
pub fn limits_warning(record: &Record) -> Option<String> {
    let limits = record.limits();
    let configured = limits.cpus > 0.0 || limits.memory_mb > 0 || limits.processes > 0;
    let rootless = record.mapping == UserMapping::Rootless;
    host::limits_unavailable(rootless)
        .filter(|_| configured)
        .map(|why| format!("the [limits] of this workspace are not applied: {why}"))
}

/// `silo volume setup` and the chain: every persisted path's volume exists (moving old
/// data into a volume created now), every persisted file exists in its volume. Returns
/// the volumes' directories on the host, by name, for Podman 4's file mounts.
pub fn volume_setup(s: &Session, mounts: &[PersistMount]) -> Result<BTreeMap<String, String>> {
    let legacy = s.volume_prefix.clone();
    let mut names: Vec<&str> = mounts.iter().map(|m| m.volume.as_str()).collect();
    names.push(&legacy);
    let found = volume::inspect(&s.runner, &names)?;
    let missing: Vec<&PersistMount> = mounts
        .iter()
        .filter(|m| !found.contains_key(&m.volume))
        .collect();
    for mount in &missing {
        volume::create(&s.runner, mount, &s.ws.root.display().to_string())?;
    }
    if let Some(old) = found.get(&legacy) {
        migrate_legacy(s, &old.mountpoint, &missing)?;
    }
    let found = if missing.is_empty() {
        found
    } else {
        let names: Vec<&str> = mounts.iter().map(|m| m.volume.as_str()).collect();
        volume::inspect(&s.runner, &names)?
    };
    let mut mountpoints = BTreeMap::new();
    for mount in mounts.iter().filter(|m| !m.directory) {
        let info = found
            .get(&mount.volume)
            .with_context(|| format!("podman does not show the volume {}", mount.volume))?;
        volume::ensure_file(&info.mountpoint, mount.file_name(), s.mapping.host_owner())?;
        mountpoints.insert(mount.volume.clone(), info.mountpoint.clone());
    }
    Ok(mountpoints)
}

/// Moves the data the seed's single volume holds for the paths whose volumes were just
/// created; on failure the new volumes are removed again, so that the next run retries.
fn migrate_legacy(s: &Session, legacy_dir: &str, created: &[&PersistMount]) -> Result<()> {
    // Looked at on the host without following anything; the copying happens in a
    // container.
    let Some(legacy) = Dir::open_optional(Path::new(legacy_dir))? else {
        return Ok(());
    };
    let to_move: Vec<&PersistMount> = created
        .iter()
        .copied()
        .filter(|m| {
            let sub = migrate::legacy_subpath(m);
            let path = Path::new(&sub);
            let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
                return false;
            };
            matches!(legacy.subpath(parent), Ok(Some(dir)) if dir.entry(&name.to_string_lossy()).ok().flatten().is_some())
        })
        .collect();
    if to_move.is_empty() {
        return Ok(());
    }
    if s.inspect_image()?.is_none() {
        bail!(
            "the volume `{}` holds data of this workspace to move into its new volumes, which needs the image {}; run `silo build` first",
            s.volume_prefix,
            s.names.image
        );
    }
    eprintln!(
        "Moving this workspace's persisted data from the volume `{}` into one volume per path...",
        s.volume_prefix
    );
    let invocation = migrate::invocation(
        &s.names.image,
        &s.mapping_args()?,
        &s.volume_prefix,
        &to_move,
    );
    match s.runner.run(&invocation) {
        Ok(out) => {
            for line in out.stdout.lines().filter(|l| !l.is_empty()) {
                eprintln!("  {line}");
            }
            Ok(())
        }
        Err(err) => {
            for mount in &to_move {
                let _ = s.runner.run(&podman::remove_volume(&mount.volume));
            }
            Err(err).context(format!(
                "moving data out of the volume `{}` failed; it is still there, and the next `silo start` tries again",
                s.volume_prefix
            ))
        }
    }
}

/// What a container mounts from the host must still be what silo checked: podman
/// resolves the paths again at each start, and a link put in place of the workspace or
/// its `.silo/` would send the mount elsewhere.
fn check_mount_sources(s: &Session, record: &Record) -> Result<()> {
    let workspace = Path::new(&record.workspace);
    let real = workspace
        .canonicalize()
        .with_context(|| format!("reading {}", workspace.display()))?;
    if real != workspace {
        bail!(
            "{} now leads to {} through a symbolic link; silo does not mount it (recreate the container from the real directory: `silo stop`, then `silo` there)",
            workspace.display(),
            real.display()
        );
    }
    s.ws.existing_silo()?;
    Ok(())
}

/// `silo start` and the chain: builds, sets up the volumes, creates and starts the
/// container as needed, once the workspace's settings are approved. A running container
/// is never replaced; an outdated one is reported with what to run.
pub fn ensure_running(s: &Session) -> Result<ContainerState> {
    let _lock = lock::acquire(&s.silo)?;
    let name = &s.names.container;
    let (state, record) = s.container_state()?;
    check_not_a_copy(s, &state, &record)?;
    match state.run {
        RunState::Running => {
            warn_outdated(name, &state);
            sidecar::start(s, state.record.as_ref().unwrap_or(&record))?;
        }
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
            s.require_trust()?;
            warn_outdated(name, &state);
            let created_from = state.record.as_ref().unwrap_or(&record);
            // Its volumes exist: Podman does not remove a volume a container uses.
            check_mount_sources(s, created_from)?;
            sidecar::recover(s, created_from)?;
            eprintln!("Starting {name}...");
            start(s)?;
            sidecar::start(s, created_from)?;
        }
        RunState::Missing => {
            s.require_trust()?;
            image::ensure(s, BuildOptions::default(), false)?;
            let mountpoints = volume_setup(s, &record.mounts)?;
            check_mount_sources(s, &record)?;
            let (network_args, addrs) = sidecar::prepare(s, &record)?;
            create(s, &record, mountpoints, &network_args)?;
            if let Some(addrs) = &addrs {
                sidecar::create_forwarder(s, &record, addrs)?;
            }
            eprintln!("Starting {name}...");
            start(s)?;
            sidecar::start(s, &record)?;
        }
    }
    if let Some(warning) = limits_warning(state.record.as_ref().unwrap_or(&record)) {
        eprintln!("warning: {warning}");
    }
    match state.run {
        RunState::Running if state.outdated.is_empty() => {
            state::save_hint(&s.silo, &record, state.pid);
        }
        // A new container must be seen running: its first process may have died at
        // once (a broken image or create_args).
        RunState::Missing => {
            let pid = check_started(s)?;
            state::save_hint(&s.silo, &record, pid);
        }
        _ => state::clear_hint(&s.silo),
    }
    Ok(state)
}

/// The pid of a container just started, or an error with its last output when it
/// already stopped.
fn check_started(s: &Session) -> Result<u32> {
    let name = &s.names.container;
    match s.inspect_container(name)? {
        Some(info) if info.running => Ok(info.pid),
        _ => {
            let logs = s.runner.capture(&podman::logs_tail(name, 20))?;
            Err(anyhow::anyhow!(
                "{name} stopped right after it started; its last output:\n{}{}",
                logs.stdout,
                logs.stderr
            ))
            .hint("fix what it reports (home.nix, create_args), then run `silo stop && silo`")
        }
    }
}

fn create(
    s: &Session,
    record: &Record,
    mountpoints: BTreeMap<String, String>,
    network_args: &[String],
) -> Result<()> {
    let form = s.mount_form(mountpoints)?;
    let profile = s.seccomp_profile(record.seccomp)?;
    let args = container::create_args(
        &s.config.id,
        &s.names,
        record,
        &s.mapping_args()?,
        &form,
        profile.as_deref(),
        network_args,
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
    // The directories above persisted paths in the home are the user's, not root's.
    let home = s.config.user.home();
    let dirs = home_dirs::parents_under(&home, &record.mounts);
    if !dirs.is_empty()
        && let Err(err) = s.runner.run(&home_dirs::copy_invocation(
            &s.names.container,
            &home,
            &dirs,
        ))
    {
        let _ = s.runner.run(&podman::remove_container(&s.names.container));
        return Err(err).context(format!(
            "cannot give the directories above the persisted paths in {home} to the container user"
        ));
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
                Some(hint) => with_hint(err, hint),
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
    if state::hint_matches(&s.silo, &record) {
        let code = s.runner.interactive(&invocation)?;
        if !podman::exec_could_not_start(code) {
            return Ok(code);
        }
        // The command may have exited with that code itself: ask podman.
        let (state, _) = s.container_state()?;
        if state.run == RunState::Running {
            return Ok(code);
        }
        state::clear_hint(&s.silo);
        if start {
            eprintln!("{name} was stopped or removed outside silo; starting it again.");
        }
    }

    let state = if start {
        ensure_running(s)?
    } else {
        let (state, record) = s.container_state()?;
        check_not_a_copy(s, &state, &record)?;
        match state.run {
            RunState::Missing => bail!("{name} does not exist; run `silo` or `silo start` first"),
            RunState::Stopped => bail!("{name} is not running; run `silo start` first"),
            RunState::Running => warn_outdated(name, &state),
        }
        if state.outdated.is_empty() {
            state::save_hint(&s.silo, &record, state.pid);
        }
        state
    };
    // Renamed or moved while it runs: the container mounts the old path, and the
    // working directory silo would ask for does not exist in it.
    if state.run == RunState::Running
        && let Some(old) = state.record.as_ref().map(|r| r.workspace.as_str())
        && old != s.ws.mount_source()?
    {
        return Err(anyhow::anyhow!(
            "{name} was made for the workspace at {old}, which is now at {}",
            s.ws.root.display()
        ))
        .hint("run `silo stop && silo` to recreate it for the new path");
    }
    s.runner.interactive(&invocation)
}

/// `silo stop`: stops and removes the container; the workspace and the volume keep their data.
pub fn stop(s: &Session) -> Result<()> {
    let _lock = lock::acquire(&s.silo)?;
    state::clear_hint(&s.silo);
    // The proxy of `egress = "allow"` goes with it, and so does what requires the
    // container (the port forwarder); then the network, when there was one.
    let names = sidecar::names(s);
    let removed = stop_and_remove_with(s, &s.names.container, Some(&names.proxy))?;
    if removed > 1 || s.record()?.network.proxied() {
        sidecar::remove_network(s)?;
    }
    Ok(())
}

/// Stops (if running) and removes a container, in one podman call (it waits 10 s for
/// the container to stop before killing it); a missing one is not an error.
pub fn stop_and_remove(s: &Session, name: &str) -> Result<()> {
    stop_and_remove_with(s, name, None).map(drop)
}

/// `stop_and_remove`, also removing `proxy` and whatever requires `name`; returns how
/// many containers Podman removed.
fn stop_and_remove_with(s: &Session, name: &str, proxy: Option<&str>) -> Result<usize> {
    let invocation = match proxy {
        Some(proxy) => crate::network::stop_and_remove(name, proxy),
        None => podman::stop_and_remove(name),
    };
    let out = s
        .runner
        .run(&invocation)
        .with_context(|| format!("cannot stop and remove {name}"))?;
    // Podman names what it removed, and says nothing of a container that was not there.
    let removed = out.stdout.lines().filter(|l| !l.trim().is_empty()).count();
    if removed == 0 {
        eprintln!("{name} does not exist");
    } else {
        eprintln!("Stopped and removed {name}");
    }
    Ok(removed)
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
    let _lock = lock::acquire(&s.silo)?;
    let name = &s.names.container;
    match s.inspect_container(name)? {
        Some(info) if info.running => bail!("{name} is running; stop it first with `silo stop`"),
        Some(_) => {
            sidecar::remove_forwarder(s)?;
            remove_container(s, name)?;
        }
        None => {}
    }
    sidecar::remove_rest(s)?;
    sidecar::remove_image(s)?;
    state::clear_hint(&s.silo);
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
