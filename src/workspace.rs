//! Paths and names of one workspace: where its files are, and what podman calls its parts.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

use crate::config::values::WorkspaceId;

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
    /// `.silo/silo.toml`, or `cwd` itself when there is none (a new workspace).
    pub fn locate(cwd: &Path) -> Workspace {
        for dir in cwd.ancestors() {
            if dir.join(".silo/silo.toml").is_file() {
                let subdir = cwd.strip_prefix(dir).unwrap_or(Path::new("")).to_path_buf();
                return Workspace {
                    root: dir.to_path_buf(),
                    subdir,
                };
            }
        }
        Workspace {
            root: cwd.to_path_buf(),
            subdir: PathBuf::new(),
        }
    }

    pub fn silo_dir(&self) -> PathBuf {
        self.root.join(".silo")
    }

    pub fn toml(&self) -> PathBuf {
        self.root.join(".silo/silo.toml")
    }

    pub fn home_nix(&self) -> PathBuf {
        self.root.join(".silo/home.nix")
    }

    pub fn devcontainer_json(&self) -> PathBuf {
        self.root.join(".silo/devcontainer.json")
    }

    /// The generated `.devcontainer.json` VS Code reads, at the project root.
    pub fn root_devcontainer_json(&self) -> PathBuf {
        self.root.join(".devcontainer.json")
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

        let ws = Workspace::locate(&root.join("src/bin"));
        assert_eq!(ws.root, root);
        assert_eq!(ws.subdir, Path::new("src/bin"));

        let fresh = Workspace::locate(dir.path());
        assert_eq!(fresh.root, dir.path());
        assert_eq!(fresh.subdir, Path::new(""));
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
