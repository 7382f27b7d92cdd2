//! The persistent workspace flake in `.silo/`: what silo renders there, the lock a new
//! workspace starts from, and the fingerprint of everything an image is built from.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use serde_json::{Value, json};

use crate::config::Config;
use crate::files;
use crate::fingerprint::{Fingerprint, Fingerprinter};

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

/// The data the flake reads from `settings.json` (never spliced into Nix source).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    pub silo_version: String,
    pub system: String,
    pub id: String,
    pub user: String,
    pub fingerprint: String,
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
    pub home_nix: String,
    /// `.silo/flake.lock`, or the seed lock when there is none yet.
    pub lock: String,
    pub lock_exists: bool,
    /// `[nix.inputs]` as `name=ref` lines.
    pub overrides: String,
}

impl Inputs {
    pub fn read(config: &Config, home_user_nix: &Path, silo_dir: &Path) -> Result<Inputs> {
        let lock_file = files::read_optional(&silo_dir.join("flake.lock"))?;
        let home_nix = silo_dir.join("home.nix");
        let overrides = config
            .inputs
            .iter()
            .map(|(name, flake)| format!("{name}={}\n", flake.as_str()))
            .collect();
        Ok(Inputs {
            system: host_system()?,
            id: config.id.to_string(),
            user: config.user.to_string(),
            home_user_nix: files::read_optional(home_user_nix)?.with_context(|| {
                format!(
                    "{} does not exist; run `silo user init` to create it",
                    home_user_nix.display()
                )
            })?,
            home_nix: files::read_optional(&home_nix)?.with_context(|| {
                format!(
                    "{} does not exist; run `silo init` to create it",
                    home_nix.display()
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

    pub fn settings(&self) -> Settings {
        Settings {
            silo_version: VERSION.to_owned(),
            system: self.system.to_owned(),
            id: self.id.clone(),
            user: self.user.clone(),
            fingerprint: self.fingerprint().0,
        }
    }

    /// The generated files of `.silo/`, relative to it. home.nix is the user's own and
    /// is read in place; flake.lock is only written when missing.
    pub fn rendered_files(&self) -> Vec<(PathBuf, String)> {
        let settings = serde_json::to_string_pretty(&self.settings()).expect("plain data") + "\n";
        let mut out = vec![
            (PathBuf::from("flake.nix"), flake_nix()),
            (PathBuf::from("settings.json"), settings),
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

/// Writes the rendered flake into `silo_dir`, touching only files whose content changed,
/// and removes library files that this silo no longer ships.
pub fn render(inputs: &Inputs, silo_dir: &Path) -> Result<()> {
    let files = inputs.rendered_files();
    for (relative, content) in &files {
        files::write_if_changed(&silo_dir.join(relative), content)?;
    }
    if !inputs.lock_exists {
        files::write_new(&silo_dir.join("flake.lock"), &inputs.lock)?;
    }
    let wanted: BTreeSet<PathBuf> = files.into_iter().map(|(p, _)| silo_dir.join(p)).collect();
    remove_stale(&silo_dir.join("lib"), &wanted)
}

fn remove_stale(dir: &Path, wanted: &BTreeSet<PathBuf>) -> Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    for entry in entries {
        let path = entry
            .with_context(|| format!("reading {}", dir.display()))?
            .path();
        if path.is_dir() {
            remove_stale(&path, wanted)?;
        } else if !wanted.contains(&path) {
            fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        }
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
        assert_eq!(
            serde_json::to_string_pretty(&settings).unwrap(),
            format!(
                "{{\n  \"siloVersion\": \"{VERSION}\",\n  \"system\": \"x86_64-linux\",\n  \"id\": \"ab3f9c12\",\n  \"user\": \"alice\",\n  \"fingerprint\": \"0123456789abcdef\"\n}}"
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
    fn render_writes_only_changes_and_removes_stale_library_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut inp = inputs();
        inp.lock_exists = false;
        std::fs::create_dir_all(dir.path().join("lib/nix")).unwrap();
        std::fs::write(dir.path().join("lib/nix/old.nix"), "{ }").unwrap();
        render(&inp, dir.path()).unwrap();
        assert!(!dir.path().join("lib/nix/old.nix").exists());
        assert_eq!(
            std::fs::read_to_string(dir.path().join("flake.lock")).unwrap(),
            seed_lock()
        );
        // An existing lock is never replaced.
        std::fs::write(dir.path().join("flake.lock"), "{}").unwrap();
        render(&inp, dir.path()).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("flake.lock")).unwrap(),
            "{}"
        );
    }
}
