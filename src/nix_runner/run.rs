//! Running Nix in the runner container: the image and the store volume made ready, the
//! `nix` command of nix.rs run in it, and what it produced brought out to the host
//! through a scratch directory of the user's.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};

use super::args::{self, ARCHIVE, Bind, Container, LOCK};
use crate::config::runner::ImageRef;
use crate::errors::with_hint;
use crate::nix;
use crate::runner::{CommandFailed, Invocation};
use crate::safe_fs::{Dir, Kind};
use crate::scratch::Scratch;
use crate::session::Session;

/// Where scratch directories and the record of the seeded image live (below the cache
/// and state directories).
const PURPOSE: &str = "nix-runner";

/// The runner, ready to run Nix: its image is in Podman's storage, its store volume
/// exists and holds the image's Nix.
pub struct Prepared<'a> {
    s: &'a Session,
    container: Container,
    /// The volume's directory on the host, when Podman says (to name the user's files in
    /// Nix's messages).
    mountpoint: Option<PathBuf>,
}

/// Makes the runner ready: pulls its image when Podman lacks it (never a `localhost/`
/// one, which only a local build or load can provide), creates the store volume, and
/// brings the volume up to the image's Nix after an image change.
pub fn prepare<'a>(s: &'a Session, image: &ImageRef) -> Result<Prepared<'a>> {
    let container = Container {
        image: image.clone(),
        volume: super::volume_name(&s.volume_prefix),
    };
    let id = image_id(s, &container)?;
    let (created, mountpoint) = ensure_volume(s, &container)?;
    // A new volume is filled from the image when it is first mounted at /nix.
    if !created && seeded_image(s, &container.volume).as_deref() != Some(id.as_str()) {
        eprintln!(
            "Bringing the Nix runner's store ({}) up to the image {}...",
            container.volume, container.image
        );
        s.runner
            .run(&container.seed())
            .context("cannot bring the Nix runner's store volume up to its image's Nix")?;
    }
    if let Err(err) = record_seeded_image(s, &container.volume, &id) {
        eprintln!("note: cannot record the Nix runner's image: {err:#}");
    }
    Ok(Prepared {
        s,
        container,
        mountpoint,
    })
}

/// The image's id, pulling it first when it is missing and can be pulled.
fn image_id(s: &Session, container: &Container) -> Result<String> {
    let image = &container.image;
    let out = s.runner.capture(&container.image_id())?;
    if out.success() {
        return Ok(out.stdout.trim().to_owned());
    }
    if image.is_local() {
        return Err(anyhow!(
            "the Nix runner image {image} is not in Podman's storage: {}",
            out.stderr.trim()
        ))
        .map_err(|e| {
            with_hint(
                e,
                "build or load it (podman load, podman import), or set [nix] runner_image in silo.user.toml to an image Podman can pull",
            )
        });
    }
    eprintln!(
        "Pulling the Nix runner image {image} (once; later builds reuse it and its store volume)..."
    );
    s.runner
        .stream(&container.pull())
        .map_err(|e| {
            with_hint(
                e,
                "check the network and Podman's registries; or point [nix] runner_image in silo.user.toml at a mirror or an image in Podman's storage, or install Nix 2.18 or newer on this host (see the README)",
            )
        })
        .with_context(|| format!("cannot pull the Nix runner image {image}"))?;
    let out = s.runner.run(&container.image_id())?;
    Ok(out.stdout.trim().to_owned())
}

/// Creates the store volume when missing; returns whether it did, and the volume's
/// directory on the host when Podman says.
fn ensure_volume(s: &Session, container: &Container) -> Result<(bool, Option<PathBuf>)> {
    let mountpoint = || -> Result<Option<PathBuf>> {
        let out = s.runner.capture(&container.volume_inspect())?;
        let path = PathBuf::from(out.stdout.trim());
        Ok((out.success() && path.is_absolute()).then_some(path))
    };
    if let Some(path) = mountpoint()? {
        return Ok((false, Some(path)));
    }
    let created = match s.runner.run(&container.volume_create()) {
        Ok(_) => true,
        // Another silo created it meanwhile.
        Err(err)
            if err
                .downcast_ref::<CommandFailed>()
                .is_some_and(|f| f.stderr.contains("already exists")) =>
        {
            false
        }
        Err(err) => {
            return Err(err)
                .with_context(|| format!("cannot create the volume {}", container.volume));
        }
    };
    Ok((created, mountpoint()?))
}

/// The state directory's record of which image last filled the volume.
fn record_dir(s: &Session) -> Result<Dir> {
    Dir::create(&s.state_dir()?)?.create_subdir(PURPOSE)
}

fn seeded_image(s: &Session, volume: &str) -> Option<String> {
    let text = record_dir(s)
        .ok()?
        .read(&format!("{volume}.image"))
        .ok()??;
    Some(text.trim().to_owned())
}

fn record_seeded_image(s: &Session, volume: &str, id: &str) -> Result<()> {
    record_dir(s)?.write_if_changed(&format!("{volume}.image"), &format!("{id}\n"))?;
    Ok(())
}

/// What the runner's Nix sees of the host, each at its own path and read-only: the
/// workspace flake and the local checkouts of `[nix.inputs]`.
fn read_only_binds(s: &Session) -> Result<Vec<Bind>> {
    let mut binds = vec![Bind::new(&s.ws.silo_dir(), false).map_err(anyhow::Error::msg)?];
    for path in args::input_paths(&s.config.inputs) {
        if !path.exists() {
            bail!(
                "[nix.inputs] points to {}, which does not exist on this host",
                path.display()
            );
        }
        binds.push(Bind::new(&path, false).map_err(anyhow::Error::msg)?);
    }
    Ok(binds)
}

/// An image archive copied out of the runner's store; removed with its directory when
/// dropped (after `podman load`).
pub struct Archive {
    pub path: PathBuf,
    _scratch: Scratch,
}

impl Prepared<'_> {
    /// The store as the host sees it, for `nix_log::Sources::in_store`.
    pub fn store_on_host(&self) -> Option<PathBuf> {
        self.mountpoint.as_ref().map(|m| m.join("store"))
    }

    /// A `nix` command line of nix.rs as the runner runs it, seeing the workspace flake
    /// and the local checkouts of `[nix.inputs]`.
    pub fn command(&self, nix: &Invocation) -> Result<Invocation> {
        Ok(self.container.nix(nix, &read_only_binds(self.s)?))
    }

    /// The workspace's GC root in the store volume.
    pub fn gc_root(&self) -> PathBuf {
        args::gc_root(self.s.config.id.as_str())
    }

    /// Copies the built archive out of the store volume into a scratch directory.
    pub fn copy_out(&self, store_path: &Path) -> Result<Archive> {
        let store_path = args::store_path(store_path).map_err(anyhow::Error::msg)?;
        let scratch = Scratch::create(PURPOSE)?;
        let out = Bind::new(&scratch.path(), true).map_err(anyhow::Error::msg)?;
        eprintln!("Copying the image archive out of the Nix runner's store...");
        self.s
            .runner
            .run(&self.container.copy_out(store_path, &out))
            .context("cannot copy the image archive out of the Nix runner's store")?;
        match scratch.dir().entry(ARCHIVE)? {
            Some(meta) if meta.kind == Kind::File => {}
            _ => bail!(
                "the Nix runner left no image archive at {}",
                scratch.dir().join(ARCHIVE).display()
            ),
        }
        Ok(Archive {
            path: scratch.dir().join(ARCHIVE),
            _scratch: scratch,
        })
    }

    /// The version of the image's Nix.
    pub fn nix_version(&self) -> Result<(u32, u32)> {
        let out = self.s.runner.run(&self.container.version())?;
        nix::parse_version(&out.stdout).with_context(|| {
            format!(
                "cannot read the Nix version of {} from {:?}",
                self.container.image,
                out.stdout.trim()
            )
        })
    }

    /// `nix flake update` of these inputs in the runner, which sees `.silo/` read-only
    /// and writes the new lock to a scratch directory; returns the new lock's text,
    /// checked to be a lock file (None when Nix wrote none).
    pub fn update(&self, inputs: &[String]) -> Result<Option<String>> {
        let version = self.nix_version()?;
        let scratch = Scratch::create(PURPOSE)?;
        let out = Bind::new(&scratch.path(), true).map_err(anyhow::Error::msg)?;
        let update = nix::update(
            version,
            &self.s.ws.silo_dir(),
            inputs,
            Some(&out.path().join(LOCK)),
        );
        let mut binds = read_only_binds(self.s)?;
        binds.push(out);
        self.s.runner.stream(&self.container.nix(&update, &binds))?;
        let Some(text) = scratch.dir().read(LOCK)? else {
            return Ok(None);
        };
        check_lock(&text)
            .with_context(|| format!("the Nix runner wrote an invalid lock file: {text:?}"))?;
        Ok(Some(text))
    }
}

/// A flake lock file: a JSON object with `nodes`, a `root` and a `version`.
fn check_lock(text: &str) -> Result<()> {
    let lock: serde_json::Value = serde_json::from_str(text)?;
    if !(lock["nodes"].is_object() && lock["root"].is_string() && lock["version"].is_number()) {
        bail!("it lacks nodes, root or version");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_files_are_checked() {
        let lock =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/flake.lock")).unwrap();
        assert!(check_lock(&lock).is_ok());
        assert!(check_lock("{}").is_err());
        assert!(check_lock("not json").is_err());
        assert!(check_lock("[1]").is_err());
    }
}
