//! Paths and names of one workspace: where its files are, and what podman calls its parts.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::config::values::WorkspaceId;
use crate::safe_fs::Dir;

/// The workspace's own directory and its files.
pub const SILO_DIR: &str = ".silo";
pub const SILO_TOML: &str = "silo.toml";
pub const HOME_NIX: &str = "home.nix";
pub const DEVCONTAINER_JSON: &str = "devcontainer.json";

/// A project directory with (or about to get) a `.silo/` directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    /// The project directory on the host, mounted into the container.
    pub root: PathBuf,
    /// Where the command was run, relative to `root` (empty at the root).
    pub subdir: PathBuf,
}

impl Workspace {
    /// The workspace containing `cwd`: the nearest directory upwards that has
    /// `.silo/silo.toml`, or `cwd` itself when there is none (a new workspace). A
    /// `.silo` that is a symbolic link is refused rather than skipped: it may have been
    /// planted to make silo use someone else's files.
    pub fn locate(cwd: &Path) -> Result<Workspace> {
        for dir in cwd.ancestors() {
            let silo = dir.join(SILO_DIR);
            let Ok(meta) = silo.symlink_metadata() else {
                continue;
            };
            if meta.is_symlink() {
                bail!(
                    "{} is a symbolic link; silo does not use a workspace through a link (remove it, or run silo in the directory it points to)",
                    silo.display()
                );
            }
            if meta.is_dir() && silo.join(SILO_TOML).symlink_metadata().is_ok() {
                let subdir = cwd.strip_prefix(dir).unwrap_or(Path::new("")).to_path_buf();
                return Ok(Workspace {
                    root: dir.to_path_buf(),
                    subdir,
                });
            }
        }
        Ok(Workspace {
            root: cwd.to_path_buf(),
            subdir: PathBuf::new(),
        })
    }

    /// The project directory itself (the path the user is in is trusted).
    pub fn root_dir(&self) -> Result<Dir> {
        Dir::open(&self.root)
    }

    /// `.silo/`, opened without following a link; `None` when it does not exist yet.
    pub fn silo(&self) -> Result<Option<Dir>> {
        self.root_dir()?.subdir(SILO_DIR)
    }

    /// `.silo/`, which must exist.
    pub fn existing_silo(&self) -> Result<Dir> {
        self.silo()?.with_context(|| {
            format!(
                "{} does not exist; run `silo init` (or `silo`) to create the workspace",
                self.silo_dir().display()
            )
        })
    }

    pub fn silo_dir(&self) -> PathBuf {
        self.root.join(".silo")
    }

    pub fn toml(&self) -> PathBuf {
        self.root.join(".silo/silo.toml")
    }

    pub fn devcontainer_json(&self) -> PathBuf {
        self.root.join(".silo/devcontainer.json")
    }

    /// The project directory's name, checked so it can be part of a mount target.
    pub fn dir_name(&self) -> Result<String> {
        let name = self.root.file_name().and_then(|n| n.to_str());
        let Some(name) = name else {
            bail!(
                "{} cannot be a workspace: it has no directory name in UTF-8",
                self.root.display()
            )
        };
        Ok(name.to_owned())
    }

    /// The host path as a string podman's `--mount` can carry.
    pub fn mount_source(&self) -> Result<&str> {
        match self.root.to_str() {
            Some(path) if !path.chars().any(|c| c == ',' || c == '"' || c.is_control()) => Ok(path),
            _ => bail!(
                "the workspace path {} cannot be mounted: podman's --mount syntax does not allow ',', '\"' or control characters in it",
                self.root.display()
            ),
        }
    }
}

/// The text of `silo.toml` in `.silo/`; an error naming the file when it is missing.
pub fn read_toml(silo: &Dir) -> Result<String> {
    silo.read(SILO_TOML)?
        .with_context(|| format!("{} does not exist", silo.join(SILO_TOML).display()))
}

/// What the workspace's container, image and devcontainer are called.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    pub container: String,
    pub image: String,
    pub dev_container: String,
    /// Where the project directory is mounted in the container.
    pub mount_target: String,
}

impl Names {
    pub fn new(id: &WorkspaceId, dir_name: &str) -> Names {
        Names {
            container: format!("silo-{id}"),
            image: format!("localhost/silo-{id}"),
            dev_container: format!("silo-{id}-dev"),
            mount_target: format!("/workspace/{id}/{dir_name}"),
        }
    }

    /// The working directory in the container for a command run in `subdir` of the project.
    pub fn workdir(&self, subdir: &Path) -> String {
        match subdir.to_str() {
            Some(sub) if !sub.is_empty() => format!("{}/{sub}", self.mount_target),
            _ => self.mount_target.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locate_finds_the_nearest_workspace_upwards() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("proj");
        std::fs::create_dir_all(root.join(".silo")).unwrap();
        std::fs::write(root.join(".silo/silo.toml"), "").unwrap();
        std::fs::create_dir_all(root.join("src/bin")).unwrap();

        let ws = Workspace::locate(&root.join("src/bin")).unwrap();
        assert_eq!(ws.root, root);
        assert_eq!(ws.subdir, Path::new("src/bin"));

        let fresh = Workspace::locate(dir.path()).unwrap();
        assert_eq!(fresh.root, dir.path());
        assert_eq!(fresh.subdir, Path::new(""));
    }

    #[test]
    fn locate_refuses_a_linked_silo_directory() {
        let dir = tempfile::tempdir().unwrap();
        let other = dir.path().join("other");
        std::fs::create_dir_all(other.join(".silo")).unwrap();
        std::fs::write(other.join(".silo/silo.toml"), "").unwrap();
        let proj = dir.path().join("proj");
        std::fs::create_dir_all(proj.join("sub")).unwrap();
        std::os::unix::fs::symlink(other.join(".silo"), proj.join(".silo")).unwrap();
        let err = Workspace::locate(&proj.join("sub"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("is a symbolic link"), "{err}");
    }

    #[test]
    fn names() {
        let id = WorkspaceId::parse("ab3f9c12").unwrap();
        let names = Names::new(&id, "proj");
        assert_eq!(names.container, "silo-ab3f9c12");
        assert_eq!(names.image, "localhost/silo-ab3f9c12");
        assert_eq!(names.dev_container, "silo-ab3f9c12-dev");
        assert_eq!(names.mount_target, "/workspace/ab3f9c12/proj");
        assert_eq!(names.workdir(Path::new("")), "/workspace/ab3f9c12/proj");
        assert_eq!(
            names.workdir(Path::new("src/bin")),
            "/workspace/ab3f9c12/proj/src/bin"
        );
    }

    #[test]
    fn mount_source_rejects_what_podman_cannot_carry() {
        let ws = |p: &str| Workspace {
            root: PathBuf::from(p),
            subdir: PathBuf::new(),
        };
        assert_eq!(
            ws("/home/a/my proj").mount_source().unwrap(),
            "/home/a/my proj"
        );
        assert!(ws("/home/a/x,y").mount_source().is_err());
        assert!(ws("/").dir_name().is_err());
    }
}
