//! `silo build` and `silo update`: render the workspace flake, build the image with Nix,
//! load it into Podman; move the flake's pins on request.

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::built;
use crate::config::runner::ImageRef;
use crate::config::values::FLAKE_INPUTS;
use crate::errors::{WithHint, with_hint};
use crate::fingerprint::Fingerprint;
use crate::flake;
use crate::home_nix;
use crate::init::PODMAN_OPTION;
use crate::nix::{self, Link};
use crate::nix_log;
use crate::nix_runner::{self, Place};
use crate::podman::{self, LABEL_FINGERPRINT};
use crate::progress;
use crate::runner::CommandFailed;
use crate::session::Session;
use crate::state::ImageState;

#[derive(Debug, Clone, Copy, Default)]
pub struct BuildOptions {
    /// Build even when the image is up to date (refused while the container exists).
    pub rebuild: bool,
    /// Re-evaluate without the eval cache and re-fetch inputs.
    pub no_cache: bool,
    /// Print Nix's whole evaluation trace on failure.
    pub show_trace: bool,
}

/// Adds the known-failure hint of a failed nix command to its error.
fn explain_nix(err: anyhow::Error) -> anyhow::Error {
    let hint = err
        .downcast_ref::<CommandFailed>()
        .and_then(|f| nix::hint(&f.stderr));
    match hint {
        Some(hint) => with_hint(err, hint),
        None => err,
    }
}

/// The host's Nix version (asked now unless `known`), checked for the workspace's path,
/// with a note when it is older than nixpkgs needs.
fn host_nix_version(s: &Session, known: Option<(u32, u32)>) -> Result<(u32, u32)> {
    let version = match known {
        Some(version) => version,
        None => check_nix(s)?,
    };
    check_flake_path(s, version)?;
    if version < nix::NIXPKGS_MIN_VERSION && !s.config.inputs.contains_key("nixpkgs") {
        let (major, minor) = nix::NIXPKGS_MIN_VERSION;
        eprintln!(
            "note: Nix {}.{} is older than current nixpkgs needs ({major}.{minor}); if evaluation fails, upgrade Nix or set [nix] runner = \"container\" in silo.user.toml",
            version.0, version.1
        );
    }
    Ok(version)
}

/// A failure of Nix in the runner: Nix's own hints, except that a Nix too old is the
/// image's; a failure of Podman before Nix ran says so.
fn explain_runner(err: anyhow::Error, image: &ImageRef) -> anyhow::Error {
    let Some(failed) = err.downcast_ref::<CommandFailed>() else {
        return err;
    };
    // Podman's own exit codes: it failed, or the command could not run in the image.
    if let Some(code @ 125..=127) = failed.code {
        return with_hint(
            err,
            format!(
                "Podman could not run nix in a container of {image} (exit code {code}: Podman failed, or the image has no runnable nix); its message is above"
            ),
        );
    }
    if nix::hint(&failed.stderr).is_some_and(|h| h.starts_with("this nixpkgs needs a newer Nix")) {
        return with_hint(
            err,
            format!(
                "this nixpkgs needs a newer Nix than the runner image {image} has: set [nix] runner_image to a newer nixos/nix in silo.user.toml"
            ),
        );
    }
    explain_nix(err)
}

/// Nix older than 2.4 has no flakes at all; say so before it prints something cryptic.
fn check_nix(s: &Session) -> Result<(u32, u32)> {
    let out = s.runner.run(&nix::version())?;
    let version = nix::parse_version(&out.stdout)
        .with_context(|| format!("cannot read the Nix version from {:?}", out.stdout.trim()))?;
    if version < (2, 4) {
        bail!(
            "Nix {}.{} is too old: silo needs Nix 2.4 or newer (flakes)",
            version.0,
            version.1
        );
    }
    Ok(version)
}

/// A workspace path with spaces, `#`, non-ASCII ... goes to Nix percent-encoded, which
/// old Nix does not decode.
fn check_flake_path(s: &Session, version: (u32, u32)) -> Result<()> {
    if version < nix::DECODES_PATH_URLS && nix::needs_encoding(&s.ws.silo_dir()) {
        let (major, minor) = nix::DECODES_PATH_URLS;
        return Err(anyhow::anyhow!(
            "Nix {}.{} cannot build a flake at {}: its path has characters a URL must encode, and this Nix does not decode them",
            version.0,
            version.1,
            s.ws.silo_dir().display()
        ))
        .hint(format!(
            "upgrade Nix to {major}.{minor} or newer, or move the workspace to a path of letters, digits and - . _ ~ /"
        ));
    }
    Ok(())
}

/// `silo build`: the image built when needed, under the workspace lock.
pub fn build_command(s: &Session, options: BuildOptions) -> Result<()> {
    let _lock = crate::lock::acquire(&s.silo)?;
    // Nix evaluates and builds what home.nix says, on this machine.
    s.require_trust()?;
    ensure(s, options, true)
}

/// Builds the image when it is missing or outdated, or always with `rebuild`. `explicit`
/// is true for `silo build`, which also reports an up-to-date image.
pub fn ensure(s: &Session, options: BuildOptions, explicit: bool) -> Result<()> {
    let image = &s.names.image;
    let state = ImageState::of(s.inspect_image()?.as_ref(), &s.fingerprint);
    if options.rebuild {
        if let Some(info) = s.inspect_container(&s.names.container)? {
            bail!(
                "cannot rebuild {image}: the container {} exists ({}); run `silo stop` first",
                s.names.container,
                if info.running { "running" } else { "stopped" }
            );
        }
    } else if state == ImageState::UpToDate {
        if explicit {
            eprintln!("{image} is up to date");
        }
        return Ok(());
    }
    match state {
        ImageState::Outdated => {
            eprintln!("{image} is outdated (its inputs changed); rebuilding it")
        }
        _ => eprintln!("Building {image}"),
    }
    build(s, options, state != ImageState::Missing)
}

/// An image the workspace flake builds and Podman loads: the workspace image, or the
/// network proxy's (`egress = "allow"`).
pub struct Package<'a> {
    /// The flake's package: `image` or `proxy`.
    pub attribute: &'static str,
    /// What Podman calls the loaded image.
    pub image: &'a str,
    /// What it must be labelled with.
    pub fingerprint: &'a Fingerprint,
}

/// `had_image`: an image of this workspace exists already (a failed build keeps it).
fn build(s: &Session, options: BuildOptions, had_image: bool) -> Result<()> {
    let package = Package {
        attribute: "image",
        image: &s.names.image,
        fingerprint: &s.fingerprint,
    };
    warn_podman_disagreement(s);
    let host_archive = build_and_load(s, options, &package, had_image)?;
    // `silo gc` deletes the archive once a newer image replaces this one.
    if let Some(archive) = host_archive {
        let workspace = s.ws.root.display().to_string();
        let state_dir = s.state_dir()?;
        if let Err(err) = built::record(&state_dir, s.config.id.as_str(), &workspace, &archive) {
            eprintln!(
                "note: cannot record the build result {}: {err:#}",
                archive.display()
            );
        }
    }
    prune(s);
    eprintln!("Built {}", s.names.image);
    Ok(())
}

/// Builds `package` with Nix (on the host or in the Nix runner) and loads it into
/// Podman; returns the archive when it is in the host's store.
pub fn build_and_load(
    s: &Session,
    options: BuildOptions,
    package: &Package,
    had_image: bool,
) -> Result<Option<std::path::PathBuf>> {
    let choice = nix_runner::choose(&s.runner, &s.config.runner);
    if let Place::Host { version } = choice.place {
        host_nix_version(s, version)?;
    }
    let silo_dir = s.ws.silo_dir();
    flake::render(&s.inputs, &s.silo)?;
    let first_build = "a first build downloads or builds everything; later builds reuse it";
    let runner = match &choice.place {
        Place::Host { .. } => {
            eprintln!("Running nix build ({first_build})...");
            None
        }
        Place::Container { image } => {
            let runner = nix_runner::run::prepare(s, image)?;
            eprintln!(
                "Running nix build in a container of {image} ({}; {first_build})...",
                choice.why
            );
            Some((runner, image))
        }
    };
    let mut display = progress::Display::new();
    // On a terminal, one status line from Nix's structured log; elsewhere, or with
    // -v, Nix's own lines.
    let live = display.is_tty() && !s.runner.verbose;
    let flags = nix::BuildFlags {
        no_cache: options.no_cache,
        show_trace: options.show_trace,
        json_log: live,
    };
    let mut sources = nix_log::Sources::new(
        nix_log::shown_silo_dir(&silo_dir, &s.ws.subdir),
        s.inputs.home_user_nix_path.clone(),
        s.inputs.settings_json(),
    );
    // The same command line in the runner, but for a GC root in its store volume (one
    // per package, so that building one keeps the other).
    let command = match &runner {
        None => nix::build_package(
            &silo_dir,
            &s.config.inputs,
            flags,
            Link::None,
            package.attribute,
        ),
        Some((runner, _)) => {
            if let Some(store) = runner.store_on_host() {
                sources = sources.in_store(store);
            }
            let mut root = runner.gc_root().into_os_string();
            if package.attribute != "image" {
                root.push(format!("-{}", package.attribute));
            }
            runner.command(&nix::build_package(
                &silo_dir,
                &s.config.inputs,
                flags,
                Link::GcRoot(std::path::Path::new(&root)),
                package.attribute,
            ))?
        }
    };
    let log_name = match package.attribute {
        "image" => s.config.id.to_string(),
        other => format!("{}-{other}", s.config.id),
    };
    let mut filter = nix_log::Filter::new(sources, !s.config.inputs.is_empty(), s.runner.verbose);
    let state_dir = s.state_dir()?;
    let mut log = progress::StepLog::create(&state_dir, &format!("build-{log_name}"));
    let mut nix_progress = progress::NixProgress::default();
    let built = s.runner.stream_handled(&command, &mut |line| {
        log.line(line);
        let text = if live {
            match nix_progress.event(line) {
                progress::NixEvent::Message(text) => text,
                progress::NixEvent::Progress => {
                    display.status(&nix_progress.summary());
                    return None;
                }
                progress::NixEvent::Nothing => return None,
            }
        } else {
            line.to_owned()
        };
        // Nix colours its messages on a terminal; silo shows them plain (and
        // recognises them by their text).
        let mut kept = Vec::new();
        for line in progress::strip_ansi(&text).lines() {
            if let Some(shown) = filter.line(line) {
                display.message(&shown);
                kept.push(shown);
            }
        }
        (!kept.is_empty()).then(|| kept.join("\n"))
    });
    display.finish();
    let stdout = built
        .map_err(|err| match &runner {
            None => explain_nix(err),
            Some((_, image)) => explain_runner(err, image),
        })
        .map_err(|err| match log.path() {
            Some(path) => with_hint(err, format!("the whole build log: {}", path.display())),
            None => err,
        })
        .context(if had_image {
            "nix build failed; the previous image and container are untouched"
        } else {
            "nix build failed"
        })?;
    let archive = nix::parse_build_output(&stdout)?;
    // An archive in the host's store is recorded for `silo gc` (the runner's store
    // volume keeps a GC root of its own instead).
    let host_archive = runner.is_none().then(|| archive.clone());
    // The runner's archive is copied to a scratch directory, removed after the load.
    let copied = match &runner {
        None => None,
        Some((runner, _)) => Some(runner.copy_out(&archive)?),
    };
    let archive = copied.as_ref().map_or(archive, |c| c.path.clone());

    eprintln!("Loading {} into Podman...", archive.display());
    let mut load_log = progress::StepLog::create(&state_dir, &format!("load-{log_name}"));
    let mut layers = 0;
    let loaded = s
        .runner
        .stream_handled(&podman::load(&archive), &mut |line| {
            load_log.line(line);
            // Podman's copy steps are progress, not news.
            if podman::is_load_progress(line) {
                if line.starts_with("Copying blob") {
                    layers += 1;
                    display.status(&format!("Loading into Podman: layers copied: {layers}"));
                }
                return None;
            }
            display.message(line);
            Some(line.to_owned())
        })
        .context("podman load failed");
    display.finish();
    let loaded = loaded?;
    let name = podman::parse_loaded(&loaded).unwrap_or_default();
    let out = s.runner.capture(&podman::inspect_image(package.image))?;
    let info = podman::parse_image(&out.stdout)?.with_context(|| {
        format!("podman loaded {name:?}, but {} does not exist; is the image named by the workspace flake?", package.image)
    })?;
    let expected = package.fingerprint;
    if info.labels.get(LABEL_FINGERPRINT) != Some(&expected.0) {
        bail!(
            "the loaded image {} is not labelled {LABEL_FINGERPRINT}={expected}; the workspace flake in .silo/ does not build what silo rendered",
            package.image
        );
    }
    Ok(host_archive)
}

/// Nested Podman needs both the image (home.nix) and the container (create_args, chosen
/// by `[features].podman`); a hand edit of only one of them leaves it half set up.
fn warn_podman_disagreement(s: &Session) {
    let in_home_nix = home_nix::get_bool(&s.inputs.home_nix, &PODMAN_OPTION)
        .ok()
        .flatten();
    if let Some(enabled) = in_home_nix.filter(|enabled| *enabled != s.config.podman) {
        eprintln!(
            "note: .silo/home.nix sets silo.podman.enable = {enabled} but .silo/silo.toml has [features].podman = {}; run `silo init --{}podman` to make them agree (it also sets the matching create_args)",
            s.config.podman,
            if enabled { "" } else { "no-" }
        );
    }
}

/// `silo update [INPUT...]`: updates pins in `.silo/flake.lock` through Nix and says
/// what changed. Inputs overridden by `[nix.inputs]` do not use their pin, so they are
/// not updated.
pub fn update(s: &Session, requested: &[String]) -> Result<()> {
    for input in requested {
        if !FLAKE_INPUTS.contains(&input.as_str()) {
            bail!(
                "unknown input {input:?}: the workspace flake's inputs are {}",
                FLAKE_INPUTS.join(" and ")
            );
        }
    }
    let overridden = |input: &str| s.config.inputs.get(input).map(|f| f.as_str().to_owned());
    if let Some(input) = requested.iter().find(|i| overridden(i).is_some()) {
        bail!(
            "{input} is overridden by [nix.inputs] ({}), so its pin in flake.lock is not used; remove the override to update it",
            overridden(input).unwrap_or_default()
        );
    }
    let targets: Vec<String> = if requested.is_empty() {
        FLAKE_INPUTS
            .iter()
            .filter(|i| overridden(i).is_none())
            .map(|i| (*i).to_owned())
            .collect()
    } else {
        requested.to_vec()
    };
    if targets.is_empty() {
        bail!("every input is overridden by [nix.inputs]; there is no pin to update");
    }
    let choice = nix_runner::choose(&s.runner, &s.config.runner);
    let host_version = match choice.place {
        Place::Host { version } => Some(host_nix_version(s, version)?),
        Place::Container { .. } => None,
    };
    let silo_dir = s.ws.silo_dir();
    let _lock = crate::lock::acquire(&s.silo)?;
    flake::render(&s.inputs, &s.silo)?;
    let read_lock = || -> Result<String> {
        s.silo
            .read("flake.lock")?
            .with_context(|| format!("{} does not exist", silo_dir.join("flake.lock").display()))
    };
    let before = read_lock()?;
    let unchanged = "updating .silo/flake.lock failed; it is unchanged";
    // Naming every input lets old and new Nix update exactly these.
    match (&choice.place, host_version) {
        (Place::Container { image }, _) => {
            let runner = nix_runner::run::prepare(s, image)?;
            eprintln!(
                "Running nix flake update in a container of {image} ({})...",
                choice.why
            );
            let lock = runner
                .update(&targets)
                .map_err(|e| explain_runner(e, image))
                .context(unchanged)?;
            // Written here, never by the container: atomically, replacing (not following)
            // whatever is at .silo/flake.lock.
            if let Some(lock) = lock.filter(|lock| *lock != before) {
                s.silo
                    .write_atomic("flake.lock", &lock)
                    .context(unchanged)?;
            }
        }
        (_, version) => {
            let version = version.expect("the host's Nix version is known");
            s.runner
                .stream(&nix::update(version, &silo_dir, &targets, None))
                .map_err(explain_nix)
                .context(unchanged)?;
        }
    }
    let after = read_lock()?;
    for line in lock_changes(&before, &after, &targets)? {
        eprintln!("{line}");
    }
    if before != after {
        eprintln!("The image is now outdated; `silo build` (or `silo stop && silo`) rebuilds it.");
    }
    Ok(())
}

/// One line per input: its pin before and after.
fn lock_changes(before: &str, after: &str, inputs: &[String]) -> Result<Vec<String>> {
    let parse = |text: &str| -> Result<Value> {
        serde_json::from_str(text).context("parsing .silo/flake.lock")
    };
    let (before, after) = (parse(before)?, parse(after)?);
    Ok(inputs
        .iter()
        .map(|input| {
            let (old, new) = (describe_pin(&before, input), describe_pin(&after, input));
            if old == new {
                format!("{input}: unchanged at {new}")
            } else {
                format!("{input}: {old} -> {new}")
            }
        })
        .collect())
}

/// `1a2b3c4 (2026-08-19)` for the node a root input points to.
fn describe_pin(lock: &Value, input: &str) -> String {
    let nodes = &lock["nodes"];
    let root = lock["root"].as_str().unwrap_or("root");
    let Some(node) = nodes[root]["inputs"][input].as_str() else {
        return "not locked".to_owned();
    };
    let locked = &nodes[node]["locked"];
    let id = locked["rev"]
        .as_str()
        .map(|rev| rev.chars().take(7).collect::<String>())
        .or_else(|| locked["narHash"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned());
    match locked["lastModified"].as_i64() {
        Some(time) => format!("{id} ({})", civil_date(time)),
        None => id,
    }
}

/// `YYYY-MM-DD` of a Unix time (days-to-civil, proleptic Gregorian).
fn civil_date(unix: i64) -> String {
    let z = unix.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// Removes this workspace's untagged images (replaced by a rebuild) that no container uses.
pub fn prune(s: &Session) {
    if let Err(err) = s.runner.run(&podman::prune_images(s.config.id.as_str())) {
        eprintln!("note: could not remove old images of this workspace: {err:#}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(civil_date(0), "1970-01-01");
        assert_eq!(civil_date(1_787_135_253), "2026-08-19");
        assert_eq!(civil_date(951_782_400), "2000-02-29");
    }

    #[test]
    fn lock_changes_name_old_and_new_pins() {
        let lock = |rev: &str, time: i64| {
            format!(
                r#"{{"nodes": {{"nixpkgs": {{"locked": {{"rev": "{rev}", "lastModified": {time}}}}},
                    "home-manager": {{"locked": {{"rev": "hm00000000", "lastModified": 0}}}},
                    "root": {{"inputs": {{"nixpkgs": "nixpkgs", "home-manager": "home-manager"}}}}}},
                    "root": "root", "version": 7}}"#
            )
        };
        let changes = lock_changes(
            &lock("ffb3c9b700e7", 1_787_135_253),
            &lock("0a1b2c3d4e5f", 1_790_000_000),
            &["nixpkgs".to_owned(), "home-manager".to_owned()],
        )
        .unwrap();
        assert_eq!(
            changes,
            [
                "nixpkgs: ffb3c9b (2026-08-19) -> 0a1b2c3 (2026-09-21)",
                "home-manager: unchanged at hm00000 (1970-01-01)"
            ]
        );
    }
}
