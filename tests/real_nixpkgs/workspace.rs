//! Workspace flakes, as silo renders them, evaluated through silo and inspected with
//! `nix derivation show`.

use std::fs;
use std::path::Path;

use crate::drv::Drvs;
use crate::eval::{Eval, NIX, USER, fedora_pin, flake};

#[test]
fn workspace_flakes_evaluate_with_nixpkgs_and_home_manager_25_05() {
    let test = "workspace_flakes_evaluate_with_nixpkgs_and_home_manager_25_05";
    let Some(eval) = Eval::open(test) else {
        return;
    };
    let (plain, plain_id) = eval.workspace("plain", "init");
    let (nested, nested_id) = eval.workspace("nested", "init --podman");

    // Through silo, as users run it: evaluation completes, and Nix stops at building.
    for dir in [&plain, &nested] {
        let (ok, stderr) = eval.silo(dir, "build");
        assert!(!ok, "nothing can be built here:\n{stderr}");
        assert!(
            stderr.contains("Unable to start any build"),
            "evaluation did not complete:\n{stderr}"
        );
        assert!(
            stderr.contains("derivations will be built (`silo -v build` lists them)"),
            "{stderr}"
        );
        for noise in [
            "not writing modified lock file",
            "\n  /nix/store/",
            "warning:",
        ] {
            assert!(!stderr.contains(noise), "{noise:?} in:\n{stderr}");
        }
    }

    // What the image derivations receive, and what the home configurations pull in.
    let installables: Vec<String> = [&plain, &nested]
        .iter()
        .flat_map(|dir| {
            [
                format!("{}#packages.x86_64-linux.image", flake(dir)),
                format!("{}#homeConfigurations.{USER}.activationPackage", flake(dir)),
            ]
        })
        .chain([format!("{}#packages.x86_64-linux.proxy", flake(&plain))])
        .collect();
    let show = eval.chroot.must(
        "nix derivation show",
        &format!(
            "{NIX} derivation show --recursive --no-update-lock-file {} {}",
            eval.overrides(),
            installables.join(" ")
        ),
    );
    let drvs = Drvs::parse(&show);
    for (id, podman) in [(&plain_id, false), (&nested_id, true)] {
        check_image(&drvs, id, podman);
    }
    crate::proxy::check_proxy(&drvs, &plain_id, &plain);

    // The home configurations' settings that silo's module decides.
    for (dir, podman) in [(&plain, false), (&nested, true)] {
        let config = eval.json(
            &format!("{}#homeConfigurations.{USER}.config", flake(dir)),
            "c: { stateVersion = c.home.stateVersion; manpages = c.manual.manpages.enable; \
             systemd = c.systemd.user.enable; mime = c.xdg.mime.enable; \
             podman = c.services.podman.enable; }",
            "",
        );
        assert_eq!(
            config,
            serde_json::json!({"stateVersion": "25.05", "manpages": false, "systemd": false,
                "mime": false, "podman": podman}),
            "{}",
            dir.display()
        );
    }

    check_errors(&eval, &plain);
    check_aarch64_stop(&eval, &plain);
    eval.finish(test);
}

/// The image derivation of workspace `id`: uncompressed, the user's ids, the pinned
/// Fedora base, the Nix database, the per-container activation state, and (nested
/// Podman) setuid helpers that load nothing from the store; its home configuration
/// without what lean.nix leaves out.
fn check_image(drvs: &Drvs, id: &str, podman: bool) {
    let image = drvs.root_named(&format!("silo-{id}.tar"));
    // Uncompressed: `compressor = "none"` streams the image through cat.
    assert!(
        drvs.env(image, "buildCommand").ends_with("| cat > $out"),
        "{}",
        drvs.env(image, "buildCommand")
    );
    let conf = drvs.find(image, "the image configuration", |n| {
        n == format!("silo-{id}-conf.json")
    });
    for (key, value) in [
        ("uid", "1000"),
        ("gid", "1000"),
        ("uname", USER),
        ("gname", USER),
        ("imageName", &format!("localhost/silo-{id}")),
    ] {
        assert_eq!(drvs.env(conf, key), value, "{key} of {}", drvs.name(conf));
    }
    let fedora = drvs.find(image, "the Fedora base", |n| {
        n == "docker-image-fedora-43.tar"
    });
    assert_eq!(drvs.env(conf, "fromImage"), drvs.out_path(fedora));
    let (digest, hash) = fedora_pin();
    assert_eq!(drvs.env(fedora, "imageDigest"), digest);
    assert_eq!(drvs.env(fedora, "outputHash"), hash);
    assert_eq!(drvs.env(fedora, "imageName"), "fedora");

    let layer = drvs.find(image, "the customisation layer", |n| {
        n == format!("silo-{id}-customisation-layer")
    });
    let extra = drvs.env(layer, "extraCommands");
    assert!(
        extra.contains("nix-store --load-db"),
        "no Nix database:\n{extra}"
    );
    assert!(extra.contains("opt/silo/state"), "{extra}");
    let fake_root = drvs.env(layer, "fakeRootCommands");
    assert!(
        fake_root.contains("chown -R 1000:1000 nix home/alice silo/persistence opt/silo/state"),
        "{fake_root}"
    );
    let config = drvs.find(image, "the image config", |n| {
        n == format!("silo-{id}-base.json")
    });
    let text = drvs.env(config, "text");
    for expected in [
        "\"User\":\"1000:1000\"",
        "\"Entrypoint\":[\"/opt/silo/bin/entrypoint\"]",
        &format!("\"io.silo.id\":\"{id}\""),
    ] {
        assert!(text.contains(expected), "{expected} missing from {text}");
    }

    if podman {
        let shadow = drvs.find(image, "the setuid helpers' shadow", |n| {
            n.starts_with("shadow-static-") && n.contains("-musl-")
        });
        let shadow_out = drvs.out_path(shadow);
        for tool in ["newuidmap", "newgidmap"] {
            assert!(
                fake_root.contains(&format!("cp {shadow_out}/bin/$tool usr/local/bin/$tool"))
                    && fake_root.contains(tool),
                "{tool} is not copied from {shadow_out}:\n{fake_root}"
            );
        }
        assert!(
            fake_root.contains("chmod 4755 usr/local/bin/$tool"),
            "{fake_root}"
        );
        let flags = drvs.env(shadow, "configureFlags");
        assert!(
            flags.contains("--disable-nls") && flags.contains("--disable-shared"),
            "{flags}"
        );
    } else {
        assert!(!fake_root.contains("newuidmap"), "{fake_root}");
    }

    // The home configuration: no manual, no systemd, no desktop databases, few locales.
    let generation = drvs.find(image, "the home-manager generation", |n| {
        n == "home-manager-generation"
    });
    let activation = drvs.find(generation, "the activation script", |n| {
        n == "activation-script"
    });
    let home_path = drvs.find(generation, "home-manager-path", |n| {
        n == "home-manager-path"
    });
    let pulled: Vec<&str> = drvs
        .input_names(activation)
        .into_iter()
        .chain(drvs.input_names(home_path))
        .collect();
    for left_out in [
        "home-configuration-reference-manpage",
        "sd-switch",
        "systemd",
        "shared-mime-info",
        "desktop-file-utils",
    ] {
        assert!(
            !pulled.iter().any(|n| n.starts_with(left_out)),
            "{left_out} is in {pulled:?}"
        );
    }
    assert_eq!(
        pulled.iter().any(|n| n.starts_with("podman-")),
        podman,
        "{pulled:?}"
    );
    let session_vars = drvs.find(home_path, "hm-session-vars.sh", |n| {
        n == "hm-session-vars.sh"
    });
    let locales = drvs.input(session_vars, "the locale archive", |n| {
        n.starts_with("glibc-locales-")
    });
    assert!(
        drvs.env(locales, "preBuild").contains("SUPPORTED-LOCALES="),
        "LOCALE_ARCHIVE holds every locale"
    );
}

/// What a broken home.nix or home.user.nix looks like through silo.
fn check_errors(eval: &Eval, dir: &Path) {
    let home_nix = dir.join(".silo/home.nix");
    let good = fs::read_to_string(&home_nix).unwrap();
    let shown = |text: &str| -> String {
        fs::write(&home_nix, text).unwrap();
        let (ok, stderr) = eval.silo(dir, "build");
        assert!(!ok);
        stderr
    };

    // A syntax error is reported in the user's file, at the user's line and column.
    let stderr = shown(
        "# A workspace\n{ pkgs, ... }:\n{\n  silo.podman.enable = false;\n  home.packages = [\n    pkgs.hello pkgs.(\n  ];\n}\n",
    );
    assert!(stderr.contains("at .silo/home.nix:6:21:"), "{stderr}");
    assert!(!stderr.contains("-source/home.nix"), "{stderr}");
    assert!(stderr.contains("run `silo build --show-trace`"), "{stderr}");

    // A stateVersion this home-manager does not know: the hint says so (and not that the
    // function header is wrong, which the trace's module arguments used to suggest).
    let stderr = shown("{ ... }:\n{\n  home.stateVersion = \"25.11\";\n}\n");
    assert!(
        stderr.contains("- In `.silo/home.nix': \"25.11\""),
        "{stderr}"
    );
    // The first hint is Nix's error's (the build log's path follows it).
    let hint = stderr
        .lines()
        .find(|l| l.starts_with("hint: "))
        .unwrap_or_default();
    assert!(
        hint.contains("home.stateVersion names a release this home-manager does not know"),
        "{stderr}"
    );
    assert!(!stderr.contains("function header"), "{stderr}");

    // --show-trace reaches Nix.
    fs::write(
        &home_nix,
        "{ ... }:\n{\n  home.stateVersion = \"25.11\";\n}\n",
    )
    .unwrap();
    let (_, stderr) = eval.silo(dir, "-v build --show-trace");
    assert!(stderr.contains(" --show-trace "), "{stderr}");
    assert!(!stderr.contains("stack trace truncated"), "{stderr}");
    fs::write(&home_nix, &good).unwrap();

    // An error in home.user.nix names the user's own file, not the copy in .silo.
    let user_nix = eval.user_file("home.user.nix");
    let user_good = fs::read_to_string(&user_nix).unwrap();
    fs::write(&user_nix, "{ ... }:\n{\n  silo.shellCommand = 42;\n}\n").unwrap();
    let (_, stderr) = eval.silo(dir, "build");
    fs::write(&user_nix, user_good).unwrap();
    assert!(
        stderr.contains(&format!("- In `{}': 42", user_nix.display())),
        "{stderr}"
    );
}

/// aarch64's Fedora pin has no verified hash: evaluating it stops with the command that
/// computes one.
fn check_aarch64_stop(eval: &Eval, dir: &Path) {
    let arm = eval.dir().join("arm/.silo");
    fs::create_dir_all(arm.parent().unwrap()).unwrap();
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(dir.join(".silo"))
        .arg(&arm)
        .status()
        .unwrap();
    assert!(status.success());
    let settings = fs::read_to_string(arm.join("settings.json")).unwrap();
    fs::write(
        arm.join("settings.json"),
        settings.replace("x86_64-linux", "aarch64-linux"),
    )
    .unwrap();
    let out = eval.chroot.bash(&format!(
        "{NIX} eval --no-update-lock-file {} 'path:{}#packages.aarch64-linux.image.drvPath'",
        eval.overrides(),
        arm.display()
    ));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("the Fedora base image for aarch64-linux has no verified hash yet")
            && stderr.contains("nix-prefetch-docker")
            && stderr.contains("--arch arm64"),
        "{stderr}"
    );
}
