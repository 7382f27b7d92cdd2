//! File access that never follows a symbolic link it did not create.
//!
//! A workspace's `.silo/` can be written by a container (before silo made it read-only
//! there), by a repository someone else wrote, or by another local user, so every file
//! silo reads, writes, locks or removes under it goes through a [`Dir`]: a directory
//! opened without following links, whose entries are reached with `openat(2)` and
//! friends relative to it, again without following links. Only the path a `Dir` starts
//! from (the workspace root the user is in, the user's config directory, a volume's
//! mount point from Podman) is trusted to be what it says.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, bail};
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, RenameFlags};
use rustix::io::Errno;

/// Files silo reads are small; anything bigger is refused before it is parsed.
pub const MAX_READ: u64 = 4 << 20;

/// The prefix of silo's temporary files; a killed run can leave them behind.
const TEMP_PREFIX: &str = ".silo-tmp-";
/// Temporary files older than this belong to a run that died.
const STALE_TEMP: Duration = Duration::from_secs(60);

/// What `write_new` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Created,
    AlreadyExists,
}

/// What a directory entry is, without following it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Other,
}

impl Kind {
    fn of(file_type: FileType) -> Kind {
        match file_type {
            FileType::RegularFile => Kind::File,
            FileType::Directory => Kind::Dir,
            FileType::Symlink => Kind::Symlink,
            _ => Kind::Other,
        }
    }
}

/// Owner and mode of an entry, as `lstat` reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub kind: Kind,
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
    pub modified: SystemTime,
}

impl Meta {
    fn of(stat: &rfs::Stat) -> Meta {
        let modified = u64::try_from(stat.st_mtime)
            .map(|secs| SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
            .unwrap_or(SystemTime::UNIX_EPOCH);
        Meta {
            kind: Kind::of(FileType::from_raw_mode(stat.st_mode)),
            uid: stat.st_uid,
            gid: stat.st_gid,
            mode: stat.st_mode & 0o7777,
            modified,
        }
    }
}

/// An open directory; every operation on its entries is relative to it and refuses
/// (or replaces, never follows) a symbolic link.
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

fn errno(err: Errno) -> io::Error {
    io::Error::from(err)
}

/// One path component: no separators, not `.` or `..`.
fn check_name(name: &str) -> io::Result<&str> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?} is not a file name"),
        ));
    }
    Ok(name)
}

impl Dir {
    /// Opens a directory at a path silo trusts (links along it are followed).
    pub fn open(path: &Path) -> Result<Dir> {
        Dir::open_optional(path)?.with_context(|| format!("{} does not exist", path.display()))
    }

    /// Like `open`, but a missing directory is `None`.
    pub fn open_optional(path: &Path) -> Result<Option<Dir>> {
        match rfs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => Ok(Some(Dir {
                fd,
                path: path.to_path_buf(),
            })),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(errno(e)).with_context(|| format!("opening {}", path.display())),
        }
    }

    /// Opens a directory at a trusted path, creating it (and its parents) if missing.
    pub fn create(path: &Path) -> Result<Dir> {
        std::fs::create_dir_all(path).with_context(|| format!("creating {}", path.display()))?;
        Dir::open(path)
    }

    /// The path of an entry, for messages.
    pub fn join(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// The directory's own owner and mode.
    pub fn meta(&self) -> Result<Meta> {
        let stat = rfs::fstat(&self.fd)
            .map_err(errno)
            .with_context(|| format!("reading {}", self.path.display()))?;
        Ok(Meta::of(&stat))
    }

    /// An entry's owner, mode and kind without following it; `None` when missing.
    pub fn entry(&self, name: &str) -> Result<Option<Meta>> {
        let name = check_name(name)?;
        match rfs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => Ok(Some(Meta::of(&stat))),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => {
                Err(errno(e)).with_context(|| format!("reading {}", self.join(name).display()))
            }
        }
    }

    /// Opens a subdirectory; a symbolic link in its place is an error.
    pub fn subdir(&self, name: &str) -> Result<Option<Dir>> {
        let name = check_name(name)?;
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        match rfs::openat(&self.fd, name, flags, Mode::empty()) {
            Ok(fd) => Ok(Some(Dir {
                fd,
                path: self.join(name),
            })),
            Err(Errno::NOENT) => Ok(None),
            Err(Errno::LOOP | Errno::NOTDIR) => bail!(
                "{} is not a directory but {}; silo does not follow links here: remove it",
                self.join(name).display(),
                self.describe(name)
            ),
            Err(e) => {
                Err(errno(e)).with_context(|| format!("opening {}", self.join(name).display()))
            }
        }
    }

    /// Opens a subdirectory, creating it when missing.
    pub fn create_subdir(&self, name: &str) -> Result<Dir> {
        if let Some(dir) = self.subdir(name)? {
            return Ok(dir);
        }
        match rfs::mkdirat(&self.fd, check_name(name)?, Mode::from_raw_mode(0o755)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => {
                return Err(errno(e))
                    .with_context(|| format!("creating {}", self.join(name).display()));
            }
        }
        self.subdir(name)?
            .with_context(|| format!("{} vanished while creating it", self.join(name).display()))
    }

    /// Creates a subdirectory that must not exist yet, with `mode`; `None` when
    /// something (even a link) has the name already.
    pub fn create_new_subdir(&self, name: &str, mode: u32) -> Result<Option<Dir>> {
        match rfs::mkdirat(&self.fd, check_name(name)?, Mode::from_raw_mode(mode)) {
            Ok(()) => self.subdir(name),
            Err(Errno::EXIST) => Ok(None),
            Err(e) => {
                Err(errno(e)).with_context(|| format!("creating {}", self.join(name).display()))
            }
        }
    }

    /// Removes an empty subdirectory (never what a link points to). Returns whether there
    /// was one.
    pub fn remove_empty_subdir(&self, name: &str) -> Result<bool> {
        match rfs::unlinkat(&self.fd, check_name(name)?, AtFlags::REMOVEDIR) {
            Ok(()) => Ok(true),
            Err(Errno::NOENT) => Ok(false),
            Err(e) => {
                Err(errno(e)).with_context(|| format!("removing {}", self.join(name).display()))
            }
        }
    }

    /// Opens the directory at a relative path, one component at a time.
    pub fn subpath(&self, relative: &Path) -> Result<Option<Dir>> {
        let mut names = components(relative)?.into_iter();
        let Some(first) = names.next() else {
            return Ok(Some(self.try_clone()?));
        };
        let Some(mut dir) = self.subdir(first)? else {
            return Ok(None);
        };
        for name in names {
            match dir.subdir(name)? {
                Some(next) => dir = next,
                None => return Ok(None),
            }
        }
        Ok(Some(dir))
    }

    /// Like `subpath`, creating what is missing.
    #[cfg(test)]
    pub fn create_subpath(&self, relative: &Path) -> Result<Dir> {
        let mut dir = self.try_clone()?;
        for name in components(relative)? {
            dir = dir.create_subdir(name)?;
        }
        Ok(dir)
    }

    /// Another handle on the same directory.
    pub fn try_clone(&self) -> Result<Dir> {
        Ok(Dir {
            fd: self
                .fd
                .try_clone()
                .with_context(|| format!("opening {}", self.path.display()))?,
            path: self.path.clone(),
        })
    }

    /// "a symbolic link" / "a directory" ..., for messages.
    fn describe(&self, name: &str) -> &'static str {
        match self.entry(name) {
            Ok(Some(meta)) => match meta.kind {
                Kind::File => "a file",
                Kind::Dir => "a directory",
                Kind::Symlink => "a symbolic link",
                Kind::Other => "a special file",
            },
            _ => "something else",
        }
    }

    /// Opens a regular file for reading without following a link.
    fn open_file(&self, name: &str) -> Result<Option<File>> {
        let name = check_name(name)?;
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
        let fd = match rfs::openat(&self.fd, name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(None),
            Err(Errno::LOOP) => bail!(
                "{} is a symbolic link; silo does not follow links here: replace it with the file itself",
                self.join(name).display()
            ),
            Err(e) => {
                return Err(errno(e))
                    .with_context(|| format!("opening {}", self.join(name).display()));
            }
        };
        self.checked_file(name, fd).map(Some)
    }

    fn checked_file(&self, name: &str, fd: OwnedFd) -> Result<File> {
        let stat = rfs::fstat(&fd)
            .map_err(errno)
            .with_context(|| format!("reading {}", self.join(name).display()))?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
            bail!("{} is not a regular file", self.join(name).display());
        }
        Ok(File::from(fd))
    }

    /// Reads a file as UTF-8; `None` when it is missing. A link or anything but a
    /// regular file is an error, and so is a file larger than `MAX_READ`.
    pub fn read(&self, name: &str) -> Result<Option<String>> {
        let Some(file) = self.open_file(name)? else {
            return Ok(None);
        };
        self.read_all(name, file).map(Some)
    }

    /// Reads one of the user's own files, which may be a link into the Nix store or to
    /// another of the user's files (home-manager and stow manage dotfiles so). The link
    /// is followed only to a regular file that belongs to the user or to root and that
    /// nobody else can write.
    pub fn read_owned(&self, name: &str, uid: u32) -> Result<Option<String>> {
        let name = check_name(name)?;
        match self.entry(name)? {
            None => Ok(None),
            Some(meta) if meta.kind != Kind::Symlink => self.read(name),
            Some(_) => {
                let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK;
                let fd = match rfs::openat(&self.fd, name, flags, Mode::empty()) {
                    Ok(fd) => fd,
                    Err(Errno::NOENT) => return Ok(None),
                    Err(e) => {
                        return Err(errno(e))
                            .with_context(|| format!("opening {}", self.join(name).display()));
                    }
                };
                let file = self.checked_file(name, fd)?;
                let stat = rfs::fstat(&file).map_err(errno)?;
                if (stat.st_uid != uid && stat.st_uid != 0) || stat.st_mode & 0o022 != 0 {
                    bail!(
                        "{} links to a file that belongs to uid {} or that others can write; silo only follows links to files of yours or root's that only the owner can write",
                        self.join(name).display(),
                        stat.st_uid
                    );
                }
                self.read_all(name, file).map(Some)
            }
        }
    }

    fn read_all(&self, name: &str, file: File) -> Result<String> {
        let mut bytes = Vec::new();
        file.take(MAX_READ + 1)
            .read_to_end(&mut bytes)
            .with_context(|| format!("reading {}", self.join(name).display()))?;
        if bytes.len() as u64 > MAX_READ {
            bail!(
                "{} is larger than {} MiB; silo does not read files that big",
                self.join(name).display(),
                MAX_READ >> 20
            );
        }
        String::from_utf8(bytes)
            .with_context(|| format!("{} is not valid UTF-8", self.join(name).display()))
    }

    /// A new temporary file in this directory, created exclusively (never through a link).
    fn temp_file(&self, mode: u32) -> Result<(String, File)> {
        self.sweep_temp_files();
        for _ in 0..16 {
            let mut random = [0u8; 8];
            rustix::rand::getrandom(&mut random, rustix::rand::GetRandomFlags::empty())
                .map_err(errno)
                .context("reading random bytes")?;
            let name = format!("{TEMP_PREFIX}{:016x}", u64::from_le_bytes(random));
            let flags =
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            match rfs::openat(&self.fd, name.as_str(), flags, Mode::from_raw_mode(mode)) {
                Ok(fd) => {
                    let file = File::from(fd);
                    // The umask must not change what the file's mode is meant to be.
                    rfs::fchmod(&file, Mode::from_raw_mode(mode)).map_err(errno)?;
                    return Ok((name, file));
                }
                Err(Errno::EXIST) => continue,
                Err(e) => {
                    return Err(errno(e)).with_context(|| {
                        format!("creating a temporary file in {}", self.path.display())
                    });
                }
            }
        }
        bail!("cannot create a temporary file in {}", self.path.display())
    }

    /// Writes `contents` to a new temporary file and hands it to `place`, which moves it
    /// to its name; the temporary file is removed when that fails.
    fn with_temp(
        &self,
        name: &str,
        contents: &[u8],
        mode: u32,
        place: impl FnOnce(&str) -> io::Result<()>,
    ) -> Result<()> {
        let (temp, mut file) = self.temp_file(mode)?;
        let written = file.write_all(contents).and_then(|()| file.sync_all());
        let placed = written.and_then(|()| place(&temp));
        if let Err(err) = placed {
            let _ = rfs::unlinkat(&self.fd, temp.as_str(), AtFlags::empty());
            return Err(err).with_context(|| format!("writing {}", self.join(name).display()));
        }
        Ok(())
    }

    /// Creates `name` with `contents` unless something (even a link) is there already;
    /// an existing entry is never touched, even when another process creates it at the
    /// same moment.
    pub fn write_new(&self, name: &str, contents: &str) -> Result<Outcome> {
        let name = check_name(name)?;
        if self.entry(name)?.is_some() {
            return Ok(Outcome::AlreadyExists);
        }
        let mut outcome = Outcome::Created;
        self.with_temp(name, contents.as_bytes(), 0o644, |temp| {
            match rfs::renameat_with(&self.fd, temp, &self.fd, name, RenameFlags::NOREPLACE) {
                Ok(()) => Ok(()),
                Err(Errno::EXIST) => {
                    outcome = Outcome::AlreadyExists;
                    rfs::unlinkat(&self.fd, temp, AtFlags::empty()).map_err(errno)
                }
                // File systems without RENAME_NOREPLACE: a hard link fails the same way.
                Err(Errno::INVAL | Errno::NOSYS) => {
                    let linked = rfs::linkat(&self.fd, temp, &self.fd, name, AtFlags::empty());
                    rfs::unlinkat(&self.fd, temp, AtFlags::empty()).map_err(errno)?;
                    match linked {
                        Ok(()) => Ok(()),
                        Err(Errno::EXIST) => {
                            outcome = Outcome::AlreadyExists;
                            Ok(())
                        }
                        Err(e) => Err(errno(e)),
                    }
                }
                Err(e) => Err(errno(e)),
            }
        })?;
        Ok(outcome)
    }

    /// Replaces `name` with `contents` atomically (a link in its place is replaced, not
    /// followed), keeping the mode of a regular file that was there.
    pub fn write_atomic(&self, name: &str, contents: &str) -> Result<()> {
        let name = check_name(name)?;
        let mode = match self.entry(name)? {
            Some(meta) if meta.kind == Kind::File => meta.mode & 0o777,
            _ => 0o644,
        };
        self.with_temp(name, contents.as_bytes(), mode, |temp| {
            rfs::renameat(&self.fd, temp, &self.fd, name).map_err(errno)
        })
    }

    /// Like `write_atomic`, but leaves a file with the right content alone (and its
    /// modification time). Returns whether it wrote.
    pub fn write_if_changed(&self, name: &str, contents: &str) -> Result<bool> {
        let same = matches!(self.open_file(name), Ok(Some(_)))
            && self.read(name).ok().flatten().as_deref() == Some(contents);
        if same {
            return Ok(false);
        }
        self.write_atomic(name, contents).map(|()| true)
    }

    /// Removes a file (or a link: the link itself). Returns whether there was one.
    pub fn remove_file(&self, name: &str) -> Result<bool> {
        let name = check_name(name)?;
        match rfs::unlinkat(&self.fd, name, AtFlags::empty()) {
            Ok(()) => Ok(true),
            Err(Errno::NOENT) => Ok(false),
            Err(e) => {
                Err(errno(e)).with_context(|| format!("removing {}", self.join(name).display()))
            }
        }
    }

    /// Removes an empty subdirectory (never a link, never anything in it). Returns
    /// whether it did: false when it is missing or not empty.
    pub fn remove_empty_dir(&self, name: &str) -> Result<bool> {
        let name = check_name(name)?;
        match rfs::unlinkat(&self.fd, name, AtFlags::REMOVEDIR) {
            Ok(()) => Ok(true),
            Err(Errno::NOENT | Errno::NOTEMPTY | Errno::EXIST) => Ok(false),
            Err(e) => {
                Err(errno(e)).with_context(|| format!("removing {}", self.join(name).display()))
            }
        }
    }

    /// Opens (creating it if missing) a regular file to lock, never through a link.
    pub fn lock_file(&self, name: &str) -> Result<File> {
        let name = check_name(name)?;
        let flags = OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = match rfs::openat(&self.fd, name, flags, Mode::from_raw_mode(0o644)) {
            Ok(fd) => fd,
            Err(Errno::LOOP) => bail!(
                "{} is a symbolic link; silo does not follow links here: remove it",
                self.join(name).display()
            ),
            Err(e) => {
                return Err(errno(e))
                    .with_context(|| format!("opening {}", self.join(name).display()));
            }
        };
        self.checked_file(name, fd)
    }

    /// Creates a file that must not exist yet, owned by `owner` (uid, gid) when given.
    pub fn create_exclusive(&self, name: &str, owner: Option<(u32, u32)>) -> Result<Outcome> {
        let name = check_name(name)?;
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        match rfs::openat(&self.fd, name, flags, Mode::from_raw_mode(0o644)) {
            Ok(fd) => {
                if let Some((uid, gid)) = owner {
                    rfs::fchown(
                        &fd,
                        Some(rfs::Uid::from_raw(uid)),
                        Some(rfs::Gid::from_raw(gid)),
                    )
                    .map_err(errno)
                    .with_context(|| {
                        format!("giving {} to uid {uid}", self.join(name).display())
                    })?;
                }
                Ok(Outcome::Created)
            }
            Err(Errno::EXIST) => Ok(Outcome::AlreadyExists),
            Err(e) => {
                Err(errno(e)).with_context(|| format!("creating {}", self.join(name).display()))
            }
        }
    }

    /// The names and kinds of the entries, sorted, without `.` and `..`.
    pub fn entries(&self) -> Result<Vec<(String, Kind)>> {
        let fd = rfs::openat(
            &self.fd,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(errno)
        .with_context(|| format!("reading {}", self.path.display()))?;
        let mut out = Vec::new();
        for entry in rfs::Dir::new(fd).map_err(errno)? {
            let entry = entry
                .map_err(errno)
                .with_context(|| format!("reading {}", self.path.display()))?;
            let name = OsStr::from_bytes(entry.file_name().to_bytes());
            if name == "." || name == ".." {
                continue;
            }
            let name = name.to_string_lossy().into_owned();
            let kind = match entry.file_type() {
                FileType::Unknown => self.entry(&name)?.map_or(Kind::Other, |m| m.kind),
                other => Kind::of(other),
            };
            out.push((name, kind));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Removes temporary files that a killed silo left here. Best effort.
    pub fn sweep_temp_files(&self) {
        let Ok(entries) = self.entries() else { return };
        let now = SystemTime::now();
        for (name, _) in entries.iter().filter(|(n, _)| n.starts_with(TEMP_PREFIX)) {
            let stale = self.entry(name).ok().flatten().is_some_and(|meta| {
                now.duration_since(meta.modified)
                    .is_ok_and(|age| age > STALE_TEMP)
            });
            if stale {
                let _ = self.remove_file(name);
            }
        }
    }
}

/// The names of a relative path, each checked to be a plain component.
fn components(relative: &Path) -> Result<Vec<&str>> {
    relative
        .iter()
        .map(|c| {
            let name = c
                .to_str()
                .with_context(|| format!("{} is not UTF-8", relative.display()))?;
            check_name(name).map_err(anyhow::Error::from)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    fn setup() -> (tempfile::TempDir, Dir) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Dir::open(tmp.path()).unwrap();
        (tmp, dir)
    }

    #[test]
    fn write_new_never_overwrites_and_never_follows() {
        let (tmp, dir) = setup();
        assert_eq!(dir.write_new("f", "one").unwrap(), Outcome::Created);
        assert_eq!(dir.write_new("f", "two").unwrap(), Outcome::AlreadyExists);
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("f")).unwrap(),
            "one"
        );
        let mode = std::fs::metadata(tmp.path().join("f"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o644);
        // A dangling link is "something there": nothing is created through it.
        symlink(tmp.path().join("target"), tmp.path().join("l")).unwrap();
        assert_eq!(dir.write_new("l", "x").unwrap(), Outcome::AlreadyExists);
        assert!(!tmp.path().join("target").exists());
    }

    #[test]
    fn write_atomic_replaces_a_link_instead_of_following_it() {
        let (tmp, dir) = setup();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("victim"), "precious").unwrap();
        symlink(outside.path().join("victim"), tmp.path().join("f")).unwrap();
        dir.write_atomic("f", "new").unwrap();
        assert_eq!(
            std::fs::read_to_string(outside.path().join("victim")).unwrap(),
            "precious"
        );
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("f")).unwrap(),
            "new"
        );
        assert!(
            !std::fs::symlink_metadata(tmp.path().join("f"))
                .unwrap()
                .is_symlink()
        );
        // No temporary file is left.
        assert_eq!(dir.entries().unwrap().len(), 1);
    }

    #[test]
    fn write_atomic_keeps_the_mode() {
        let (tmp, dir) = setup();
        std::fs::write(tmp.path().join("f"), "old").unwrap();
        std::fs::set_permissions(tmp.path().join("f"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        dir.write_atomic("f", "new").unwrap();
        let mode = std::fs::metadata(tmp.path().join("f"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(!dir.write_if_changed("f", "new").unwrap());
        assert!(dir.write_if_changed("f", "newer").unwrap());
    }

    #[test]
    fn reads_refuse_links_and_big_files() {
        let (tmp, dir) = setup();
        std::fs::write(tmp.path().join("secret"), "s").unwrap();
        symlink(tmp.path().join("secret"), tmp.path().join("l")).unwrap();
        let err = format!("{:#}", dir.read("l").unwrap_err());
        assert!(err.contains("is a symbolic link"), "{err}");
        assert_eq!(dir.read("missing").unwrap(), None);
        assert_eq!(dir.read("secret").unwrap().as_deref(), Some("s"));
        std::fs::write(tmp.path().join("big"), vec![b'a'; (MAX_READ + 1) as usize]).unwrap();
        assert!(format!("{:#}", dir.read("big").unwrap_err()).contains("larger than"));
        std::fs::create_dir(tmp.path().join("d")).unwrap();
        assert!(format!("{:#}", dir.read("d").unwrap_err()).contains("not a regular file"));
    }

    #[test]
    fn read_owned_follows_links_to_files_of_the_user_only() {
        let (tmp, dir) = setup();
        let target = tmp.path().join("real");
        std::fs::write(&target, "mine").unwrap();
        symlink(&target, tmp.path().join("l")).unwrap();
        assert_eq!(
            dir.read_owned("l", crate::host::euid()).unwrap().as_deref(),
            Some("mine")
        );
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(dir.read_owned("l", crate::host::euid()).is_err());
    }

    #[test]
    fn subdirs_are_not_followed_through_links() {
        let (tmp, dir) = setup();
        let outside = tempfile::tempdir().unwrap();
        symlink(outside.path(), tmp.path().join("lib")).unwrap();
        let err = format!("{:#}", dir.subdir("lib").unwrap_err());
        assert!(err.contains("symbolic link"), "{err}");
        assert!(dir.create_subdir("lib").is_err());
        let nested = dir.create_subpath(Path::new("a/b/c")).unwrap();
        nested.write_new("f", "x").unwrap();
        assert!(tmp.path().join("a/b/c/f").is_file());
        assert!(dir.subpath(Path::new("a/../x")).is_err());
        assert!(dir.subpath(Path::new("a/missing")).unwrap().is_none());
    }

    #[test]
    fn only_empty_directories_are_removed() {
        let (tmp, dir) = setup();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("full")).unwrap();
        std::fs::write(tmp.path().join("full/f"), "").unwrap();
        assert!(!dir.remove_empty_dir("full").unwrap());
        assert!(tmp.path().join("full/f").exists());
        std::fs::create_dir(tmp.path().join("empty")).unwrap();
        assert!(dir.remove_empty_dir("empty").unwrap());
        assert!(!dir.remove_empty_dir("empty").unwrap());
        // A link to an empty directory is neither followed nor removed.
        symlink(outside.path(), tmp.path().join("l")).unwrap();
        assert!(dir.remove_empty_dir("l").is_err());
        assert!(outside.path().exists());
        assert!(dir.remove_empty_dir("../x").is_err());
    }

    #[test]
    fn lock_file_refuses_a_link() {
        let (tmp, dir) = setup();
        let outside = tempfile::tempdir().unwrap();
        symlink(outside.path().join("made"), tmp.path().join(".lock")).unwrap();
        assert!(dir.lock_file(".lock").is_err());
        assert!(!outside.path().join("made").exists());
        std::fs::remove_file(tmp.path().join(".lock")).unwrap();
        dir.lock_file(".lock").unwrap();
        assert!(tmp.path().join(".lock").is_file());
    }

    #[test]
    fn stale_temporary_files_are_swept() {
        let (tmp, dir) = setup();
        let old = tmp.path().join(".silo-tmp-0000000000000001");
        std::fs::write(&old, "left by a killed run").unwrap();
        let file = File::options().write(true).open(&old).unwrap();
        file.set_modified(SystemTime::now() - Duration::from_secs(3600))
            .unwrap();
        let fresh = tmp.path().join(".silo-tmp-0000000000000002");
        std::fs::write(&fresh, "another run is writing this").unwrap();
        dir.write_new("f", "x").unwrap();
        assert!(!old.exists());
        assert!(fresh.exists());
    }

    #[test]
    fn names_must_be_single_components() {
        let (_tmp, dir) = setup();
        for bad in ["", ".", "..", "a/b"] {
            assert!(dir.read(bad).is_err(), "{bad:?}");
        }
    }
}
