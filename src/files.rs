//! Writing files without ever leaving one half-written: temporary file + rename.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{Context, Result};

/// What `write_new` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Created,
    AlreadyExists,
}

fn temp_beside(path: &Path) -> Result<tempfile::NamedTempFile> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    tempfile::Builder::new()
        .prefix(".silo-tmp-")
        .tempfile_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))
}

fn fill(tmp: &mut tempfile::NamedTempFile, contents: &[u8], mode: u32) -> io::Result<()> {
    tmp.write_all(contents)?;
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(mode))?;
    tmp.as_file().sync_all()
}

/// Creates `path` with `contents` unless it exists; an existing file is never touched,
/// even when another process creates it at the same moment.
pub fn write_new(path: &Path, contents: &str) -> Result<Outcome> {
    if path.exists() {
        return Ok(Outcome::AlreadyExists);
    }
    let mut tmp = temp_beside(path)?;
    fill(&mut tmp, contents.as_bytes(), 0o644)
        .with_context(|| format!("writing {}", path.display()))?;
    match tmp.persist_noclobber(path) {
        Ok(_) => Ok(Outcome::Created),
        Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => Ok(Outcome::AlreadyExists),
        Err(e) => Err(e.error).with_context(|| format!("creating {}", path.display())),
    }
}

/// Replaces `path` with `contents` atomically, keeping the permissions of the old file.
pub fn write_atomic(path: &Path, contents: &str) -> Result<()> {
    let mode = fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(0o644);
    let mut tmp = temp_beside(path)?;
    fill(&mut tmp, contents.as_bytes(), mode)
        .with_context(|| format!("writing {}", path.display()))?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("replacing {}", path.display()))?;
    Ok(())
}

/// Like `write_atomic`, but leaves the file (and its modification time) alone when the
/// content is already right. Returns whether it wrote.
pub fn write_if_changed(path: &Path, contents: &str) -> Result<bool> {
    match fs::read(path) {
        Ok(old) if old == contents.as_bytes() => Ok(false),
        _ => write_atomic(path, contents).map(|()| true),
    }
}

/// Reads a file as UTF-8, naming the file in the error.
pub fn read(path: &Path) -> Result<String> {
    fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// Reads a file that may be missing.
pub fn read_optional(path: &Path) -> Result<Option<String>> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_new_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/file.txt");
        assert_eq!(write_new(&path, "one").unwrap(), Outcome::Created);
        assert_eq!(write_new(&path, "two").unwrap(), Outcome::AlreadyExists);
        assert_eq!(fs::read_to_string(&path).unwrap(), "one");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o644
        );
    }

    #[test]
    fn write_atomic_keeps_mode_and_leaves_no_temporary_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("file");
        fs::write(&path, "old").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        write_atomic(&path, "new").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "new");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn write_if_changed_reports_whether_it_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("file");
        assert!(write_if_changed(&path, "a").unwrap());
        assert!(!write_if_changed(&path, "a").unwrap());
        assert!(write_if_changed(&path, "b").unwrap());
    }
}
