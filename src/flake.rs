//! The persistent workspace flake in `.silo/`: what silo renders there, the lock a new
//! workspace starts from, and the fingerprint of everything an image is built from.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use serde_json::{Value, json};

use crate::config::{Config, HOME_USER_NIX_FILE, UserDir};
use crate::fingerprint::{Fingerprint, Fingerprinter};
use crate::safe_fs::{Dir, Kind};
use crate::workspace::HOME_NIX;

include!(concat!(env!("OUT_DIR"), "/library.rs"));

/// silo's version, recorded in the flake, the settings and the image labels.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// silo's own lock: a new workspace starts from these pins.
const SILO_LOCK: &str = include_str!("../flake.lock");

const TEMPLATE: &str = "nix/workspace-flake.nix";

/// Files below `.silo/` that silo writes and git must not track: copies (the user's
/// home.user.nix stays private) and state.
pub const GITIGNORE: &str = "\
# Written by silo: copies and state, regenerated as needed. Do not commit them.
/lib/
/home.user.nix
/settings.json
/state.json
/.lock
";

/// The list of library files silo wrote into `.silo/lib/`, so that a later silo removes
/// only files it wrote itself.
const MANIFEST: &str = ".silo-manifest";

/// The data the flake reads from `settings.json` (never spliced into Nix source).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    pub silo_version: String,
    pub system: String,
    pub id: String,
    pub user: String,
    pub fingerprint: String,
    /// What the network proxy's image (`#proxy`) is labelled with.
    pub proxy_fingerprint: String,
}

/// The Nix system of this machine, as the flake's outputs are keyed.
pub fn host_system() -> Result<&'static str> {
    match std::env::consts::ARCH {
        "x86_64" => Ok("x86_64-linux"),
        "aarch64" => Ok("aarch64-linux"),
        other => bail!("silo images are built for x86_64 and aarch64 Linux, not {other}"),
    }
}

/// `.silo/flake.nix`: the template with silo's version on its first line.
pub fn flake_nix() -> String {
    library_file(TEMPLATE).replace("@silo_version@", VERSION)
}

fn library_file(path: &str) -> &'static str {
    LIBRARY
        .iter()
        .find(|(p, _)| *p == path)
        .map(|(_, content)| *content)
        .unwrap_or_else(|| panic!("{path} is embedded by build.rs"))
}

/// The lock a new workspace starts with: silo's own pins of nixpkgs and home-manager.
pub fn seed_lock() -> String {
    seed_lock_from(SILO_LOCK).expect("silo's flake.lock pins nixpkgs and home-manager")
}

fn seed_lock_from(silo_lock: &str) -> Result<String> {
    let lock: Value = serde_json::from_str(silo_lock).context("parsing flake.lock")?;
    let nodes = &lock["nodes"];
    let root_inputs = &nodes[lock["root"].as_str().context("no root node")?]["inputs"];
    let node = |input: &str| -> Result<Value> {
        let name = root_inputs[input]
            .as_str()
            .with_context(|| format!("no input {input}"))?;
        Ok(nodes[name].clone())
    };
    let (nixpkgs, mut home_manager) = (node("nixpkgs")?, node("home-manager")?);
    home_manager["inputs"] = json!({ "nixpkgs": ["nixpkgs"] });
    let workspace_lock = json!({
        "nodes": {
            "home-manager": home_manager,
            "nixpkgs": nixpkgs,
            "root": { "inputs": { "home-manager": "home-manager", "nixpkgs": "nixpkgs" } }
        },
        "root": "root",
        "version": lock["version"]
    });
    Ok(serde_json::to_string_pretty(&workspace_lock)? + "\n")
}

/// Everything an image is built from, read once: the fingerprint is computed from it
/// and the flake directory is rendered from it.
#[derive(Debug, Clone)]
pub struct Inputs {
    pub system: &'static str,
    pub id: String,
    pub user: String,
    pub home_user_nix: String,
    /// Where `home_user_nix` was read from: the file the user edits.
    pub home_user_nix_path: PathBuf,
    pub home_nix: String,
    /// `.silo/flake.lock`, or the seed lock when there is none yet.
    pub lock: String,
    pub lock_exists: bool,
    /// `[nix.inputs]` as `name=ref` lines.
    pub overrides: String,
}

impl Inputs {
    pub fn read(config: &Config, user_dir: &UserDir, silo: &Dir) -> Result<Inputs> {
        let lock_file = silo.read("flake.lock")?;
        let overrides = config
            .inputs
            .iter()
            .map(|(name, flake)| format!("{name}={}\n", flake.as_str()))
            .collect();
        Ok(Inputs {
            system: host_system()?,
            id: config.id.to_string(),
            user: config.user.to_string(),
            home_user_nix: user_dir.read(HOME_USER_NIX_FILE)?.with_context(|| {
                format!(
                    "{} does not exist; run `silo user init` to create it",
                    user_dir.home_nix().display()
                )
            })?,
            home_user_nix_path: user_dir.home_nix(),
            home_nix: silo.read(HOME_NIX)?.with_context(|| {
                format!(
                    "{} does not exist; run `silo init` to create it",
                    silo.join(HOME_NIX).display()
                )
            })?,
            lock_exists: lock_file.is_some(),
            lock: lock_file.unwrap_or_else(seed_lock),
            overrides,
        })
    }

    pub fn fingerprint(&self) -> Fingerprint {
        let mut f = Fingerprinter::new();
        f.part("silo", VERSION.as_bytes());
        for (path, content) in LIBRARY {
            f.part(path, content.as_bytes());
        }
        f.part("system", self.system.as_bytes())
            .part("id", self.id.as_bytes())
            .part("user", self.user.as_bytes())
            .part("home.user.nix", self.home_user_nix.as_bytes())
            .part("home.nix", self.home_nix.as_bytes())
            .part("flake.lock", self.lock.as_bytes())
            .part("inputs", self.overrides.as_bytes());
        f.finish()
    }

    /// The fingerprint of the proxy image: what it is built from, which is neither
    /// home.nix file nor the user.
    pub fn proxy_fingerprint(&self) -> Fingerprint {
        let mut f = Fingerprinter::new();
        f.part("silo", VERSION.as_bytes());
        for (path, content) in LIBRARY {
            f.part(path, content.as_bytes());
        }
        f.part("image", b"proxy")
            .part("system", self.system.as_bytes())
            .part("id", self.id.as_bytes())
            .part("flake.lock", self.lock.as_bytes())
            .part("inputs", self.overrides.as_bytes());
        f.finish()
    }

    pub fn settings(&self) -> Settings {
        Settings {
            silo_version: VERSION.to_owned(),
            system: self.system.to_owned(),
            id: self.id.clone(),
            user: self.user.clone(),
            fingerprint: self.fingerprint().0,
            proxy_fingerprint: self.proxy_fingerprint().0,
        }
    }

    /// `.silo/settings.json` as rendered.
    pub fn settings_json(&self) -> String {
        serde_json::to_string_pretty(&self.settings()).expect("plain data") + "\n"
    }

    /// The generated files of `.silo/`, relative to it. home.nix is the user's own and
    /// is read in place; flake.lock is only written when missing.
    pub fn rendered_files(&self) -> Vec<(PathBuf, String)> {
        let mut out = vec![
            (PathBuf::from("flake.nix"), flake_nix()),
            (PathBuf::from("settings.json"), self.settings_json()),
            (PathBuf::from("home.user.nix"), self.home_user_nix.clone()),
            (PathBuf::from(".gitignore"), GITIGNORE.to_owned()),
        ];
        out.extend(
            LIBRARY
                .iter()
                .map(|(path, content)| (Path::new("lib").join(path), (*content).to_owned())),
        );
        out
    }
}

/// Writes the rendered flake into `.silo/`, touching only files whose content changed,
/// and removes library files that an earlier silo wrote and this one no longer ships.
/// Nothing is followed: a link where a generated file or directory belongs is replaced.
pub fn render(inputs: &Inputs, silo: &Dir) -> Result<()> {
    let files = inputs.rendered_files();
    for (relative, content) in &files {
        let (dir, name) = place(silo, relative)?;
        dir.write_if_changed(name, content)?;
    }
    if !inputs.lock_exists {
        silo.write_new("flake.lock", &inputs.lock)?;
    }
    let lib = ensure_dir(silo, "lib")?;
    let shipped: BTreeSet<String> = files
        .iter()
        .filter_map(|(p, _)| p.strip_prefix("lib").ok())
        .map(|p| p.display().to_string())
        .collect();
    let written = lib.read(MANIFEST).ok().flatten().unwrap_or_default();
    for stale in written.lines().filter(|l| !shipped.contains(*l)) {
        remove_written(&lib, Path::new(stale))?;
    }
    let manifest: String = shipped.iter().map(|p| format!("{p}\n")).collect();
    lib.write_if_changed(MANIFEST, &manifest)?;
    Ok(())
}

/// The directory (created as needed) and file name of a rendered file.
fn place<'a>(silo: &Dir, relative: &'a Path) -> Result<(Dir, &'a str)> {
    let name = relative
        .file_name()
        .and_then(|n| n.to_str())
        .context("a rendered file has a UTF-8 name")?;
    let mut dir = silo.try_clone()?;
    if let Some(parent) = relative.parent() {
        for part in parent.iter() {
            let part = part.to_str().context("a rendered path is UTF-8")?;
            dir = ensure_dir(&dir, part)?;
        }
    }
    Ok((dir, name))
}

/// A subdirectory silo owns (in `.silo/lib/`): anything else in its place, a planted
/// link for example, is removed (the link itself, not what it points to).
fn ensure_dir(parent: &Dir, name: &str) -> Result<Dir> {
    if let Some(meta) = parent.entry(name)?
        && meta.kind != Kind::Dir
    {
        parent.remove_file(name)?;
    }
    parent.create_subdir(name)
}

/// Removes a library file an earlier silo wrote, if it is still a plain file.
fn remove_written(lib: &Dir, relative: &Path) -> Result<()> {
    let (Some(parent), Some(name)) = (relative.parent(), relative.file_name()) else {
        return Ok(());
    };
    let Some(name) = name.to_str() else {
        return Ok(());
    };
    // A manifest line that is not a plain relative path was not written by silo.
    let Ok(Some(dir)) = lib.subpath(parent) else {
        return Ok(());
    };
    if dir.entry(name)?.is_some_and(|m| m.kind == Kind::File) {
        dir.remove_file(name)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> Inputs {
        Inputs {
            system: "x86_64-linux",
            id: "ab3f9c12".into(),
            user: "alice".into(),
            home_user_nix: "{ ... }: { }\n".into(),
            home_user_nix_path: PathBuf::from("/home/u/.config/silo/home.user.nix"),
            home_nix: crate::config::defaults::home_nix(false),
            lock: seed_lock(),
            lock_exists: true,
            overrides: String::new(),
        }
    }

    #[test]
    fn flake_nix_says_it_is_generated_and_names_the_version() {
        let flake = flake_nix();
        let first = flake.lines().next().unwrap();
        assert_eq!(
            first,
            format!(
                "# Generated by silo {VERSION}. Do not edit: edit home.nix instead; `silo build` rewrites this file."
            )
        );
        assert!(!flake.contains("@silo_version@"));
    }

    #[test]
    fn flake_nix_golden() {
        let expected = r#"{
  description = "silo workspace";
  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";
    home-manager = {
      url = "github:nix-community/home-manager";
      inputs.nixpkgs.follows = "nixpkgs";
    };
  };
  outputs =
    {
      self,
      nixpkgs,
      home-manager,
    }:
    let
      settings = builtins.fromJSON (builtins.readFile ./settings.json);
      silo = import ./lib/nix { inherit nixpkgs home-manager; };
      workspace = silo.mkWorkspace {
        inherit settings;
        modules = [
          ./home.user.nix
          ./home.nix
        ];
      };
    in
    {
      packages.${settings.system} = {
        image = workspace.image;
        proxy = workspace.proxy;
        default = workspace.image;
      };
      homeConfigurations.${settings.user} = workspace.home;
    };
}
"#;
        let flake = flake_nix();
        let (first, rest) = flake.split_once('\n').unwrap();
        assert!(first.starts_with(&format!("# Generated by silo {VERSION}.")));
        assert_eq!(rest, expected);
    }

    #[test]
    fn every_rendered_nix_file_parses() {
        for (path, content) in inputs().rendered_files() {
            if path.extension().is_some_and(|e| e == "nix") {
                let parse = rnix::Root::parse(&content);
                assert!(
                    parse.errors().is_empty(),
                    "{}: {:?}",
                    path.display(),
                    parse.errors()
                );
            }
        }
    }

    #[test]
    fn rendered_layout() {
        let paths: Vec<String> = inputs()
            .rendered_files()
            .into_iter()
            .map(|(p, _)| p.display().to_string())
            .collect();
        for expected in [
            "flake.nix",
            "settings.json",
            "home.user.nix",
            ".gitignore",
            "lib/nix/default.nix",
            "lib/modules/default.nix",
        ] {
            assert!(
                paths.contains(&expected.to_owned()),
                "{expected} missing from {paths:?}"
            );
        }
    }

    #[test]
    fn settings_json_golden() {
        let mut settings = inputs().settings();
        settings.fingerprint = "0123456789abcdef".into();
        settings.proxy_fingerprint = "fedcba9876543210".into();
        assert_eq!(
            serde_json::to_string_pretty(&settings).unwrap(),
            format!(
                "{{\n  \"siloVersion\": \"{VERSION}\",\n  \"system\": \"x86_64-linux\",\n  \"id\": \"ab3f9c12\",\n  \"user\": \"alice\",\n  \"fingerprint\": \"0123456789abcdef\",\n  \"proxyFingerprint\": \"fedcba9876543210\"\n}}"
            )
        );
    }

    #[test]
    fn seed_lock_keeps_silos_pins_for_the_two_inputs() {
        let silo_lock = r#"{
  "nodes": {
    "home-manager": { "inputs": { "nixpkgs": ["nixpkgs"] }, "locked": { "rev": "h1", "type": "github" }, "original": { "type": "github" } },
    "nixpkgs": { "locked": { "rev": "n1", "type": "github" }, "original": { "ref": "nixos-unstable", "type": "github" } },
    "rust-overlay": { "locked": { "rev": "r1" } },
    "root": { "inputs": { "home-manager": "home-manager", "nixpkgs": "nixpkgs", "rust-overlay": "rust-overlay" } }
  },
  "root": "root",
  "version": 7
}"#;
        let seed: Value = serde_json::from_str(&seed_lock_from(silo_lock).unwrap()).unwrap();
        assert_eq!(seed["nodes"]["nixpkgs"]["locked"]["rev"], "n1");
        assert_eq!(seed["nodes"]["home-manager"]["locked"]["rev"], "h1");
        assert_eq!(
            seed["nodes"]["home-manager"]["inputs"]["nixpkgs"],
            json!(["nixpkgs"])
        );
        assert!(seed["nodes"].get("rust-overlay").is_none());
        assert_eq!(
            seed["nodes"]["root"]["inputs"],
            json!({"home-manager": "home-manager", "nixpkgs": "nixpkgs"})
        );
        assert_eq!(seed["version"], 7);
    }

    #[test]
    fn silos_own_lock_seeds_unchanged() {
        // silo's flake has exactly the workspace flake's inputs, so the seed is its lock.
        let ours: Value = serde_json::from_str(SILO_LOCK).unwrap();
        let seed: Value = serde_json::from_str(&seed_lock()).unwrap();
        assert_eq!(seed, ours);
    }

    #[test]
    fn fingerprint_follows_every_input() {
        let base = inputs();
        let fp = base.fingerprint();
        assert_eq!(fp, inputs().fingerprint());
        let changed: [fn(&mut Inputs); 6] = [
            |i| i.home_nix.push(' '),
            |i| i.home_user_nix.push(' '),
            |i| i.lock.push(' '),
            |i| i.user = "bob".into(),
            |i| i.overrides = "nixpkgs=path:/x\n".into(),
            |i| i.system = "aarch64-linux",
        ];
        for change in changed {
            let mut other = inputs();
            change(&mut other);
            assert_ne!(other.fingerprint(), fp);
        }
        // Whether the lock is on disk yet does not change what is built.
        let mut unwritten = inputs();
        unwritten.lock_exists = false;
        assert_eq!(unwritten.fingerprint(), fp);
    }

    #[test]
    fn render_writes_only_changes_and_removes_only_what_it_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let silo = Dir::open(dir.path()).unwrap();
        let mut inp = inputs();
        inp.lock_exists = false;
        std::fs::create_dir_all(dir.path().join("lib/nix")).unwrap();
        std::fs::write(dir.path().join("lib/nix/old.nix"), "{ }").unwrap();
        std::fs::write(dir.path().join("lib/nix/mine.txt"), "not silo's").unwrap();
        std::fs::write(
            dir.path().join("lib/.silo-manifest"),
            "nix/old.nix\n../../x\n",
        )
        .unwrap();
        render(&inp, &silo).unwrap();
        assert!(!dir.path().join("lib/nix/old.nix").exists());
        assert!(dir.path().join("lib/nix/mine.txt").exists());
        assert_eq!(
            std::fs::read_to_string(dir.path().join("flake.lock")).unwrap(),
            seed_lock()
        );
        // An existing lock is never replaced.
        std::fs::write(dir.path().join("flake.lock"), "{}").unwrap();
        render(&inp, &silo).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("flake.lock")).unwrap(),
            "{}"
        );
    }

    #[test]
    fn render_never_follows_a_planted_link() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("victim.nix"), "precious").unwrap();
        std::fs::write(outside.path().join("flake.nix"), "precious").unwrap();
        std::fs::create_dir_all(dir.path().join("lib")).unwrap();
        // Links in place of a library directory, a generated file, and a stale entry.
        std::os::unix::fs::symlink(outside.path(), dir.path().join("lib/nix")).unwrap();
        std::os::unix::fs::symlink(
            outside.path().join("flake.nix"),
            dir.path().join("flake.nix"),
        )
        .unwrap();
        std::fs::write(dir.path().join("lib/.silo-manifest"), "nix/victim.nix\n").unwrap();
        render(&inputs(), &Dir::open(dir.path()).unwrap()).unwrap();
        assert_eq!(
            std::fs::read_to_string(outside.path().join("victim.nix")).unwrap(),
            "precious"
        );
        assert_eq!(
            std::fs::read_to_string(outside.path().join("flake.nix")).unwrap(),
            "precious"
        );
        assert!(
            dir.path()
                .join("lib/nix")
                .symlink_metadata()
                .unwrap()
                .is_dir()
        );
        assert!(dir.path().join("lib/nix/default.nix").is_file());
        assert_eq!(
            std::fs::read_to_string(dir.path().join("flake.nix")).unwrap(),
            flake_nix()
        );
    }
}
