//! `silo rm --all`: one workspace removed entirely (containers, images, private volumes,
//! Nix build results, its approval, the files of `.silo/`), after showing exactly what
//! and asking. Every file is removed through `safe_fs`, never through a link.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::built;
use crate::catalog::{Presence, id_in};
use crate::config::values::WorkspaceId;
use crate::gc::{Item, disk_usage};
use crate::inventory::{Inventory, tagged_name};
use crate::lock;
use crate::network::{LABEL_ROLE, NetNames};
use crate::prompt;
use crate::runner::{Invocation, Tool};
use crate::safe_fs::{Dir, Kind};
use crate::session::Ctx;
use crate::trust;
use crate::workspace::{self, SILO_TOML, Workspace};

/// Files in `.silo/` that silo writes again whenever it needs them (ignored by git).
const GENERATED: [&str; 3] = ["settings.json", "home.user.nix", "state.json"];
/// The workspace's own files (and the generated ones kept in git): kept with
/// `--keep-config`.
const OWN: [&str; 6] = [
    "silo.toml",
    "home.nix",
    "devcontainer.json",
    "flake.nix",
    "flake.lock",
    ".gitignore",
];
const LIB: &str = "lib";
const MANIFEST: &str = ".silo-manifest";
const LOCK: &str = ".lock";
const TEMP_PREFIX: &str = ".silo-tmp-";
const ROOT_DEVCONTAINER_JSON: &str = ".devcontainer.json";

/// What `silo rm --all` removes in `.silo/` and beside it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Files {
    /// Names in `.silo/` silo generates (the lock and temporary files included).
    pub generated: Vec<String>,
    /// `lib/`'s files silo wrote, relative to `lib/`.
    pub lib: Vec<PathBuf>,
    /// `lib` is a link or a file in place of silo's directory: the link itself goes.
    pub lib_is_not_a_dir: bool,
    /// The workspace's own files in `.silo/`.
    pub own: Vec<String>,
    /// `.devcontainer.json`, written by `silo devcontainer` for this workspace.
    pub devcontainer: bool,
    /// What stays, and why.
    pub kept: Vec<String>,
}

/// Sorts the entries of `.silo/` into what goes and what stays.
pub fn files(silo: &Dir, root: &Dir, id: &str, keep_config: bool) -> Result<Files> {
    let mut files = Files::default();
    for (name, kind) in silo.entries()? {
        let plain = matches!(kind, Kind::File | Kind::Symlink);
        if name == LIB {
            if kind == Kind::Dir {
                lib_files(silo, &mut files)?;
            } else {
                files.lib_is_not_a_dir = true;
            }
        } else if plain
            && (GENERATED.contains(&name.as_str()) || name == LOCK || name.starts_with(TEMP_PREFIX))
        {
            files.generated.push(name);
        } else if plain && OWN.contains(&name.as_str()) {
            if keep_config {
                continue;
            }
            files.own.push(name);
        } else if !keep_config {
            files.kept.push(format!(".silo/{name} (not silo's)"));
        }
    }
    // The lock last: it is held while the rest goes.
    files.generated.sort_by_key(|n| n == LOCK);
    if !keep_config {
        files.devcontainer = root
            .read(ROOT_DEVCONTAINER_JSON)
            .ok()
            .flatten()
            .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
            .is_some_and(|v| v["image"] == format!("localhost/silo-{id}"));
    }
    Ok(files)
}

/// The files listed in `lib/.silo-manifest` that are still plain files there.
fn lib_files(silo: &Dir, files: &mut Files) -> Result<()> {
    let Some(lib) = silo.subdir(LIB)? else {
        return Ok(());
    };
    let manifest = lib.read(MANIFEST).ok().flatten().unwrap_or_default();
    for line in manifest.lines().filter(|l| !l.is_empty()) {
        let path = PathBuf::from(line);
        let (Some(parent), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str()))
        else {
            continue;
        };
        let Ok(Some(dir)) = lib.subpath(parent) else {
            continue;
        };
        if matches!(dir.entry(name), Ok(Some(m)) if matches!(m.kind, Kind::File | Kind::Symlink)) {
            files.lib.push(path);
        }
    }
    Ok(())
}

/// Removes the files of `files` (the lib files, then their emptied directories, then
/// the rest, the lock last); returns what could not be removed.
fn remove_files(silo: &Dir, root: &Dir, files: &Files) -> Vec<String> {
    let mut failed = Vec::new();
    let mut note = |what: String, result: Result<bool>| {
        if let Err(err) = result {
            failed.push(format!("{what}: {err:#}"));
        }
    };
    if files.lib_is_not_a_dir {
        note(".silo/lib".into(), silo.remove_file(LIB));
    }
    if let Ok(Some(lib)) = silo.subdir(LIB) {
        let mut dirs: Vec<PathBuf> = Vec::new();
        for path in &files.lib {
            let parent = path.parent().unwrap_or(Path::new(""));
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if let Ok(Some(dir)) = lib.subpath(parent) {
                note(
                    format!(".silo/lib/{}", path.display()),
                    dir.remove_file(name),
                );
            }
            for ancestor in parent.ancestors().filter(|a| !a.as_os_str().is_empty()) {
                if !dirs.iter().any(|d| d == ancestor) {
                    dirs.push(ancestor.to_path_buf());
                }
            }
        }
        // Deepest first, so that a directory is empty when its turn comes.
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for dir in dirs {
            let (parent, name) = (
                dir.parent().unwrap_or(Path::new("")),
                dir.file_name().and_then(|n| n.to_str()).unwrap_or_default(),
            );
            if let Ok(Some(p)) = lib.subpath(parent) {
                let _ = p.remove_empty_dir(name);
            }
        }
        note(".silo/lib/.silo-manifest".into(), lib.remove_file(MANIFEST));
        let _ = silo.remove_empty_dir(LIB);
    }
    for name in files.own.iter().chain(&files.generated) {
        note(format!(".silo/{name}"), silo.remove_file(name));
    }
    if files.devcontainer {
        note(
            ROOT_DEVCONTAINER_JSON.into(),
            root.remove_file(ROOT_DEVCONTAINER_JSON),
        );
    }
    failed
}

/// A container goes even when it runs: it is stopped first (10 s, then killed), and so
/// do the containers that require it (with `egress = "allow"`: the workspace container
/// requires the proxy, the port forwarder the workspace container), whatever the order.
fn remove_container(id: &str) -> Invocation {
    Invocation::new(
        Tool::Podman,
        ["rm", "--force", "--time", "10", "--depend", id],
    )
}

/// `silo rm --all [--keep-config] [--yes]`.
pub fn all(ctx: &Ctx, state_dir: &Path, keep_config: bool, yes: bool) -> Result<()> {
    let ws = Workspace::locate(&ctx.cwd)?;
    let silo = match ws.silo()? {
        Some(silo) if silo.entry(SILO_TOML)?.is_some() => silo,
        _ => bail!(
            "no silo workspace here: neither {} nor a directory above it has .silo/silo.toml",
            ctx.cwd.display()
        ),
    };
    let id = id_in(&workspace::read_toml(&silo)?)
        .and_then(|id| WorkspaceId::parse(&id).ok())
        .with_context(|| {
            format!(
                "{} has no valid [general].id, so silo cannot tell which containers, images and volumes are this workspace's; remove .silo/ yourself",
                ws.toml().display()
            )
        })?;
    let id = id.as_str();
    let root_path = ws.root.display().to_string();
    let _lock = lock::acquire(&silo)?;

    let inventory = Inventory::read(&ctx.runner)?;
    let store = trust::Store::new(&ctx.user_dir.dir);
    check_not_shared(&inventory, &store, id, &root_path)?;

    let mut items = podman_items(&inventory, id);
    if let Some(builds) = built::read_all(state_dir)?.into_iter().find(|b| b.id == id) {
        for path in &builds.archives {
            if let Some(size) = built::present(path) {
                items.push(Item::Archive {
                    path: path.clone(),
                    size,
                });
            }
        }
    }
    let approved = store.get(&ws.root)?.is_some() && !keep_config;
    let root = ws.root_dir()?;
    let files = files(&silo, &root, id, keep_config)?;

    print!(
        "{}",
        describe(&ws.root, id, &items, approved, &files, &mut |mp| {
            Some(disk_usage(Path::new(mp)))
        })
    );
    for kept in &files.kept {
        eprintln!("note: kept {kept}");
    }
    if !prompt::confirm("Remove all of this?", yes, "silo rm --all")? {
        bail!("nothing was removed");
    }

    // Podman's objects first: a workspace whose files are gone but whose containers
    // remain would be harder to find again.
    let mut failed = Vec::new();
    for item in items.iter().filter(|i| !matches!(i, Item::Archive { .. })) {
        let invocation = match item {
            Item::Container { id, .. } => remove_container(id),
            other => other.invocation(),
        };
        match ctx.runner.run(&invocation) {
            Ok(_) => eprintln!("Removed {}", item.describe(None)),
            Err(err) => failed.push(format!("{}: {err:#}", item.describe(None))),
        }
    }
    if !failed.is_empty() {
        bail!(
            "could not remove {}; the workspace's files are untouched, so `silo rm --all` can be run again",
            failed.join("; ")
        );
    }
    for item in items.iter().filter(|i| matches!(i, Item::Archive { .. })) {
        match ctx.runner.capture(&item.invocation()) {
            Ok(out) if out.success() => eprintln!("Removed {}", item.describe(None)),
            Ok(out) if built::still_alive(&out.stderr) => eprintln!(
                "note: kept {}: a Nix GC root refers to it",
                item.describe(None)
            ),
            Ok(out) => eprintln!(
                "note: cannot remove {}: {}",
                item.describe(None),
                out.stderr.trim()
            ),
            Err(err) => eprintln!("note: cannot remove {}: {err:#}", item.describe(None)),
        }
    }
    built::forget(state_dir, id, &[])?;
    crate::sidecar::remove_config(state_dir, id)?;
    if approved {
        store.remove(&ws.root)?;
        eprintln!("Removed the approval of {root_path}");
    }
    let failed = remove_files(&silo, &root, &files);
    if !keep_config && root.remove_empty_dir(crate::workspace::SILO_DIR)? {
        eprintln!("Removed {}", ws.silo_dir().display());
    } else {
        eprintln!("Removed silo's files in {}", ws.silo_dir().display());
    }
    if !failed.is_empty() {
        bail!("could not remove {}", failed.join("; "));
    }
    Ok(())
}

/// Every container, image and private volume of the workspace, and its network.
fn podman_items(inv: &Inventory, id: &str) -> Vec<Item> {
    let tagged = tagged_name(id);
    let containers = inv.containers_of(id).map(|c| Item::Container {
        id: c.id.clone(),
        name: if c.running() {
            format!("{} (running: it is stopped)", c.name)
        } else {
            c.name.clone()
        },
    });
    let images = inv.images_of(id).map(|i| Item::Image {
        id: i.id.clone(),
        name: if i.names.contains(&tagged) {
            format!("localhost/silo-{id}")
        } else if let Some(other) = i.names.first() {
            // The network proxy's image.
            other.trim_end_matches(":latest").to_owned()
        } else {
            format!("{} (replaced by a rebuild)", &i.id[..i.id.len().min(12)])
        },
        size: i.size,
    });
    // The network of `egress = "allow"`, once its containers are gone.
    let network = inv
        .containers_of(id)
        .any(|c| c.labels.get(LABEL_ROLE).map(String::as_str) == Some("proxy"))
        .then(|| Item::Network {
            name: NetNames::new(id).network,
        });
    let volumes = inv.volumes_of(id).map(|v| Item::Volume {
        name: v.name.clone(),
        mountpoint: v.mountpoint.clone(),
    });
    containers
        .chain(network)
        .chain(images)
        .chain(volumes)
        .collect()
}

/// Another directory that still holds a workspace with this id (a copy of `.silo/`)
/// shares its containers and private data: nothing is removed then.
fn check_not_shared(inv: &Inventory, store: &trust::Store, id: &str, root: &str) -> Result<()> {
    let recorded = store
        .all()?
        .into_iter()
        .filter(|r| r.settings.id == id)
        .map(|r| r.path);
    for path in inv.paths_of(id).into_iter().chain(recorded) {
        if path != root && Presence::of(Path::new(&path), id) == Presence::Present {
            bail!(
                "the workspace at {path} has the same id {id}, and its containers and private data are the same; nothing was removed (give one of them its own id: set [general].id in its .silo/silo.toml)"
            );
        }
    }
    Ok(())
}

/// What `silo rm --all` is about to remove, as shown before asking.
pub fn describe(
    root: &Path,
    id: &str,
    items: &[Item],
    approved: bool,
    files: &Files,
    volume_size: &mut dyn FnMut(&str) -> Option<u64>,
) -> String {
    let mut out = format!("This removes the workspace {id} at {}:\n", root.display());
    for item in items {
        let size = match item {
            Item::Volume { mountpoint, .. } => volume_size(mountpoint),
            _ => None,
        };
        let _ = writeln!(out, "  {}", item.describe(size));
    }
    if approved {
        let _ = writeln!(out, "  its approval (silo trust)");
    }
    let mut generated: Vec<String> = files.generated.clone();
    if !files.lib.is_empty() || files.lib_is_not_a_dir {
        generated.push(format!("lib/ ({} files)", files.lib.len()));
    }
    if !generated.is_empty() {
        let _ = writeln!(
            out,
            "  files silo generated in .silo/: {}",
            generated.join(", ")
        );
    }
    if !files.own.is_empty() {
        let _ = writeln!(
            out,
            "  YOUR FILES in .silo/ (usually kept in git; keep them with --keep-config): {}",
            files.own.join(", ")
        );
    }
    if files.devcontainer {
        let _ = writeln!(out, "  .devcontainer.json (written by silo devcontainer)");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn silo_dir() -> (tempfile::TempDir, Dir, Dir) {
        let tmp = tempfile::tempdir().unwrap();
        let s = tmp.path().join(".silo");
        std::fs::create_dir_all(s.join("lib/modules")).unwrap();
        for f in [
            "silo.toml",
            "home.nix",
            "flake.nix",
            "flake.lock",
            ".gitignore",
            "settings.json",
            "home.user.nix",
            ".lock",
            "notes.md",
        ] {
            std::fs::write(s.join(f), "x").unwrap();
        }
        std::fs::write(s.join("lib/image.nix"), "x").unwrap();
        std::fs::write(s.join("lib/modules/default.nix"), "x").unwrap();
        std::fs::write(s.join("lib/mine.nix"), "not silo's").unwrap();
        std::fs::write(
            s.join("lib/.silo-manifest"),
            "image.nix\nmodules/default.nix\ngone.nix\n",
        )
        .unwrap();
        std::fs::write(
            tmp.path().join(".devcontainer.json"),
            r#"{"image": "localhost/silo-ab3f9c12"}"#,
        )
        .unwrap();
        let silo = Dir::open(&s).unwrap();
        let root = Dir::open(tmp.path()).unwrap();
        (tmp, silo, root)
    }

    #[test]
    fn what_goes_and_what_stays() {
        let (tmp, silo, root) = silo_dir();
        let f = files(&silo, &root, "ab3f9c12", false).unwrap();
        assert_eq!(f.generated, ["home.user.nix", "settings.json", ".lock"]);
        assert_eq!(
            f.own,
            [
                ".gitignore",
                "flake.lock",
                "flake.nix",
                "home.nix",
                "silo.toml"
            ]
        );
        assert_eq!(
            f.lib,
            [
                PathBuf::from("image.nix"),
                PathBuf::from("modules/default.nix")
            ]
        );
        assert!(f.devcontainer);
        assert_eq!(f.kept, [".silo/notes.md (not silo's)"]);

        let failed = remove_files(&silo, &root, &f);
        assert!(failed.is_empty(), "{failed:?}");
        let left: Vec<String> = silo.entries().unwrap().into_iter().map(|e| e.0).collect();
        assert_eq!(left, ["lib", "notes.md"]);
        let lib: Vec<String> = silo
            .subdir("lib")
            .unwrap()
            .unwrap()
            .entries()
            .unwrap()
            .into_iter()
            .map(|e| e.0)
            .collect();
        assert_eq!(lib, ["mine.nix"]);
        assert!(!tmp.path().join(".devcontainer.json").exists());
    }

    #[test]
    fn keep_config_keeps_the_workspace_files() {
        let (tmp, silo, root) = silo_dir();
        let f = files(&silo, &root, "ab3f9c12", true).unwrap();
        assert!(f.own.is_empty() && !f.devcontainer && f.kept.is_empty());
        remove_files(&silo, &root, &f);
        let left: Vec<String> = silo.entries().unwrap().into_iter().map(|e| e.0).collect();
        assert_eq!(
            left,
            [
                ".gitignore",
                "flake.lock",
                "flake.nix",
                "home.nix",
                "lib",
                "notes.md",
                "silo.toml"
            ]
        );
        assert!(tmp.path().join(".devcontainer.json").exists());
    }

    #[test]
    fn links_are_removed_never_followed() {
        let (tmp, silo, root) = silo_dir();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("precious"), "data").unwrap();
        std::fs::create_dir(outside.path().join("lib")).unwrap();
        std::fs::write(outside.path().join("lib/image.nix"), "data").unwrap();
        let s = tmp.path().join(".silo");
        std::fs::remove_file(s.join("home.nix")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("precious"), s.join("home.nix")).unwrap();
        std::fs::remove_dir_all(s.join("lib")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("lib"), s.join("lib")).unwrap();
        let f = files(&silo, &root, "ab3f9c12", false).unwrap();
        assert!(f.lib_is_not_a_dir && f.lib.is_empty());
        assert!(f.own.contains(&"home.nix".to_owned()));
        assert!(remove_files(&silo, &root, &f).is_empty());
        assert!(s.join("home.nix").symlink_metadata().is_err());
        assert!(s.join("lib").symlink_metadata().is_err());
        assert_eq!(
            std::fs::read_to_string(outside.path().join("precious")).unwrap(),
            "data"
        );
        assert!(outside.path().join("lib/image.nix").exists());
    }

    #[test]
    fn another_devcontainer_json_stays() {
        let (tmp, silo, root) = silo_dir();
        std::fs::write(
            tmp.path().join(".devcontainer.json"),
            r#"{"image": "mcr.microsoft.com/devcontainers/base"}"#,
        )
        .unwrap();
        assert!(!files(&silo, &root, "ab3f9c12", false).unwrap().devcontainer);
    }

    #[test]
    fn the_question_shows_everything() {
        let (tmp, silo, root) = silo_dir();
        let f = files(&silo, &root, "ab3f9c12", false).unwrap();
        let items = [
            Item::Container {
                id: "c1".into(),
                name: "silo-ab3f9c12 (running: it is stopped)".into(),
            },
            Item::Volume {
                name: "silo-ab3f9c12-data-8c4eb8".into(),
                mountpoint: "/v".into(),
            },
        ];
        let text = describe(tmp.path(), "ab3f9c12", &items, true, &f, &mut |_| {
            Some(2_000)
        });
        assert_eq!(
            text,
            format!(
                "\
This removes the workspace ab3f9c12 at {}:
  container silo-ab3f9c12 (running: it is stopped)
  volume silo-ab3f9c12-data-8c4eb8 (private data, 2.00 kB)
  its approval (silo trust)
  files silo generated in .silo/: home.user.nix, settings.json, .lock, lib/ (2 files)
  YOUR FILES in .silo/ (usually kept in git; keep them with --keep-config): .gitignore, flake.lock, flake.nix, home.nix, silo.toml
  .devcontainer.json (written by silo devcontainer)
",
                tmp.path().display()
            )
        );
        assert_eq!(
            remove_container("abc").to_string(),
            "podman rm --force --time 10 --depend abc"
        );
    }
}
