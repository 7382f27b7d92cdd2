//! Private scratch directories in the user's cache directory, for what a container hands
//! back to silo (the Nix runner's image archive and lock file): created fresh, read and
//! removed without following a link, whatever the container left in them.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, bail};

use crate::safe_fs::{Dir, Kind};

/// Scratch directories older than this belong to a run that was killed.
const STALE: Duration = Duration::from_secs(24 * 3600);

/// How deep a scratch directory may nest before silo stops removing it.
const MAX_DEPTH: usize = 16;

/// `$XDG_CACHE_HOME/silo` (fallback `~/.cache/silo`): not /tmp, which is a small tmpfs
/// on some systems, and an image archive can take gigabytes.
pub fn cache_dir() -> Result<PathBuf> {
    crate::host::xdg_dir("XDG_CACHE_HOME", ".cache")
}

/// A directory only this user can enter, removed with everything in it when dropped.
pub struct Scratch {
    parent: Dir,
    name: String,
    dir: Dir,
}

impl Scratch {
    /// A new directory in `<cache>/<purpose>/`; what killed runs left there is removed.
    pub fn create(purpose: &str) -> Result<Scratch> {
        let parent = Dir::create(&cache_dir()?.join(purpose))?;
        sweep(&parent);
        for _ in 0..16 {
            let mut random = [0u8; 8];
            rustix::rand::getrandom(&mut random, rustix::rand::GetRandomFlags::empty())
                .map_err(std::io::Error::from)
                .context("reading random bytes")?;
            let name = format!("run-{:016x}", u64::from_le_bytes(random));
            if let Some(dir) = parent.create_new_subdir(&name, 0o700)? {
                return Ok(Scratch { parent, name, dir });
            }
        }
        bail!("cannot create a directory in {}", parent.join("").display())
    }

    pub fn path(&self) -> PathBuf {
        self.parent.join(&self.name)
    }

    pub fn dir(&self) -> &Dir {
        &self.dir
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Err(err) = remove_tree(&self.parent, &self.name, 0) {
            eprintln!("note: could not remove {}: {err:#}", self.path().display());
        }
    }
}

/// Removes the scratch directories of runs that died.
fn sweep(parent: &Dir) {
    let Ok(entries) = parent.entries() else {
        return;
    };
    let now = SystemTime::now();
    for (name, _) in entries.iter().filter(|(n, _)| n.starts_with("run-")) {
        let stale = parent.entry(name).ok().flatten().is_some_and(|meta| {
            now.duration_since(meta.modified)
                .is_ok_and(|age| age > STALE)
        });
        if stale {
            let _ = remove_tree(parent, name, 0);
        }
    }
}

/// Removes `name` in `parent` and everything below it; a link is removed, never followed.
fn remove_tree(parent: &Dir, name: &str, depth: usize) -> Result<()> {
    let Some(meta) = parent.entry(name)? else {
        return Ok(());
    };
    if meta.kind != Kind::Dir {
        parent.remove_file(name)?;
        return Ok(());
    }
    if depth >= MAX_DEPTH {
        bail!("{} nests too deep", parent.join(name).display());
    }
    if let Some(dir) = parent.subdir(name)? {
        for (entry, _) in dir.entries()? {
            remove_tree(&dir, &entry, depth + 1)?;
        }
    }
    parent.remove_empty_subdir(name)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    #[test]
    fn removes_everything_and_follows_no_link() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("precious"), "x").unwrap();
        let parent = Dir::open(tmp.path()).unwrap();
        let scratch = Scratch {
            dir: parent.create_new_subdir("run-1", 0o700).unwrap().unwrap(),
            parent,
            name: "run-1".into(),
        };
        let path = scratch.path();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o700
        );
        std::fs::create_dir_all(path.join("a/b")).unwrap();
        std::fs::write(path.join("a/b/image.tar"), "archive").unwrap();
        std::fs::set_permissions(
            path.join("a/b/image.tar"),
            std::fs::Permissions::from_mode(0o444),
        )
        .unwrap();
        symlink(outside.path(), path.join("a/to-dir")).unwrap();
        symlink(outside.path().join("precious"), path.join("to-file")).unwrap();
        drop(scratch);
        assert!(!path.exists());
        assert_eq!(
            std::fs::read_to_string(outside.path().join("precious")).unwrap(),
            "x"
        );
    }

    #[test]
    fn a_new_name_is_never_an_existing_one() {
        let tmp = tempfile::tempdir().unwrap();
        let parent = Dir::open(tmp.path()).unwrap();
        assert!(parent.create_new_subdir("d", 0o700).unwrap().is_some());
        assert!(parent.create_new_subdir("d", 0o700).unwrap().is_none());
        symlink(tmp.path(), tmp.path().join("l")).unwrap();
        assert!(parent.create_new_subdir("l", 0o700).unwrap().is_none());
    }
}
