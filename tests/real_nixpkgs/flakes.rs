//! silo's own flake, and a flake that uses its home-manager module.

use std::fs;
use std::path::Path;

use crate::drv::Drvs;
use crate::eval::{Eval, NIX, REPO, copy_repo};

#[test]
fn silos_own_flake_evaluates_with_nixpkgs_25_05() {
    let test = "silos_own_flake_evaluates_with_nixpkgs_25_05";
    let Some(eval) = Eval::open(test) else {
        return;
    };
    let repo = eval.dir().join("repo");
    copy_repo(&repo);
    let flake = format!("path:{}", repo.display());

    // The package, for both systems; nixpkgs 25.05's rustc (1.86) is too old to build
    // it, which evaluation says.
    let (stdout, stderr) = eval.nix_eval(
        &format!("{flake}#packages"),
        "p: { x86 = p.x86_64-linux.silo.drvPath; arm = p.aarch64-linux.silo.drvPath; \
         default = p.x86_64-linux.default.drvPath; }",
        "",
    );
    let drvs: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert!(
        drvs["x86"].as_str().unwrap().ends_with("-silo-0.1.0.drv"),
        "{drvs}"
    );
    assert_eq!(drvs["x86"], drvs["default"]);
    assert_ne!(drvs["x86"], drvs["arm"]);
    assert!(
        stderr.contains("silo needs rustc 1.89 or newer (rust-version in Cargo.toml), but this nixpkgs has 1.86.0"),
        "{stderr}"
    );

    // Its source is exactly the files the binary is built from.
    let show = eval.chroot.must(
        "nix derivation show",
        &format!(
            "{NIX} derivation show --no-update-lock-file {} '{flake}#packages.x86_64-linux.silo'",
            eval.overrides()
        ),
    );
    let drvs = Drvs::parse(&show);
    let silo = drvs.root_named("silo-0.1.0");
    assert_eq!(drvs.env(silo, "pname"), "silo");
    let listing = eval.chroot.must(
        "listing the package source",
        &format!("ls -A {}", drvs.env(silo, "src")),
    );
    assert_eq!(
        listing.split_whitespace().collect::<Vec<_>>(),
        [
            "Cargo.lock",
            "Cargo.toml",
            "build.rs",
            "flake.lock",
            "modules",
            "nix",
            "src"
        ]
    );

    // apps run the package; the formatter is RFC-style nixfmt (through treefmt). Its
    // derivation cannot be evaluated here: the vendored nixpkgs stubs Hackage, and
    // nixfmt is a Haskell program.
    let apps = eval.json(
        &format!("{flake}#apps.x86_64-linux"),
        "builtins.mapAttrs (n: a: { inherit (a) type program; })",
        "",
    );
    for name in ["silo", "default"] {
        assert_eq!(apps[name]["type"], "app", "{apps}");
        assert!(
            apps[name]["program"]
                .as_str()
                .unwrap()
                .ends_with("-silo-0.1.0/bin/silo"),
            "{apps}"
        );
    }
    let formatter = eval.json(
        &format!("{flake}#formatter.x86_64-linux"),
        "f: { inherit (f) name type; main = f.meta.mainProgram; }",
        "",
    );
    assert_eq!(
        formatter,
        serde_json::json!({"name": "nixfmt-tree", "type": "derivation", "main": "treefmt"})
    );
    let library = eval.json(
        &format!("{flake}#."),
        "f: { lib = builtins.attrNames f.lib; modules = builtins.attrNames f.homeModules; \
         alias = f.homeManagerModules == f.homeModules; }",
        "",
    );
    assert_eq!(
        library,
        serde_json::json!({"lib": ["mkWorkspace"], "modules": ["default"], "alias": true})
    );
    eval.finish(test);
}

#[test]
fn another_flake_uses_the_home_manager_module() {
    let test = "another_flake_uses_the_home_manager_module";
    let Some(eval) = Eval::open(test) else {
        return;
    };
    let repo = eval.dir().join("repo");
    copy_repo(&repo);
    let consumer = eval.dir().join("consumer");
    fs::create_dir_all(&consumer).unwrap();
    fs::copy(
        Path::new(REPO).join("tests/real_nixpkgs/consumer/flake.nix"),
        consumer.join("flake.nix"),
    )
    .unwrap();
    let home = eval.json(
        &format!("path:{}#homeConfigurations.carol", consumer.display()),
        "h: { drv = h.activationPackage.drvPath; state = h.config.home.stateVersion; \
         shell = h.config.silo.shellCommand; podman = h.config.silo.podman.enable; \
         packages = map (p: p.name) h.config.home.packages; }",
        &format!("--override-input silo path:{}", repo.display()),
    );
    assert!(
        home["drv"]
            .as_str()
            .unwrap()
            .ends_with("-home-manager-generation.drv"),
        "{home}"
    );
    assert_eq!(home["state"], "25.05");
    assert_eq!(home["shell"], "fish --login");
    assert_eq!(home["podman"], false);
    assert!(
        home["packages"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("silo-shell")),
        "{home}"
    );

    // silo's modules against home-manager's own option declarations (the check
    // README's Development section describes), with the vendored sources.
    let path = |url: &str| -> String {
        let meta = eval.chroot.must(
            "nix flake metadata",
            &format!("{NIX} flake metadata --json '{url}'"),
        );
        let meta: serde_json::Value = serde_json::from_str(&meta).unwrap();
        meta["path"].as_str().unwrap().to_owned()
    };
    let (nixpkgs, home_manager) = (path(&eval.nixpkgs), path(&eval.home_manager));
    let checks = eval.chroot.must(
        "eval-real-modules.nix",
        &format!(
            "nix-instantiate --eval --strict --json {}/tests/fixtures/eval-real-modules.nix \
             --arg nixpkgsLib {nixpkgs}/lib --arg homeManager {home_manager}",
            repo.display()
        ),
    );
    let checks: Vec<String> = serde_json::from_str(&checks).unwrap();
    assert!(checks.len() > 30, "{checks:?}");
    eval.finish(test);
}
