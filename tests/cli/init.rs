//! The CLI, its configuration and workspace init.

use std::fs;
use std::path::Path;

use crate::common::TestEnv;
use crate::*;

#[test]
fn first_init_creates_every_file_and_the_second_changes_nothing() {
    let env = TestEnv::with_fakes();
    let run = env.silo(&["init"]);
    run.success();
    let user_dir = env.config.join("silo");
    for file in ["home.user.nix", "silo.user.toml", "devcontainer.user.json"] {
        run.stderr_has(&format!("Created {}", user_dir.join(file).display()));
    }
    for file in [".silo/silo.toml", ".silo/home.nix"] {
        run.stderr_has(&format!("Created {}", env.ws.join(file).display()));
    }
    let user_toml = fs::read_to_string(user_dir.join("silo.user.toml")).unwrap();
    assert!(user_toml.contains("user = \"alice\""), "{user_toml}");
    let toml = env.read(".silo/silo.toml");
    let id = env.id();
    assert!(
        id.len() == 8
            && id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
        "{id}"
    );
    assert!(toml.contains("podman = false"));
    assert!(toml.contains("create_args = [\n  \"--cap-drop=ALL\",\n  \"--cap-add=NET_BIND_SERVICE\",\n  \"--security-opt\",\n  \"no-new-privileges\"\n]"));
    assert!(toml.contains("processes = 1024"));
    assert!(
        env.read(".silo/home.nix")
            .contains("silo.podman.enable = false;")
    );

    let before = (env.snapshot(&env.config), env.snapshot(&env.ws));
    let run = env.silo(&["init"]);
    run.success();
    assert!(!run.stderr().contains("Created"), "{}", run.stderr());
    run.stderr_has(&format!(
        "{} already exists",
        env.ws.join(".silo/silo.toml").display()
    ));
    run.stderr_has(&format!(
        "{} already exists",
        user_dir.join("silo.user.toml").display()
    ));
    assert_eq!((env.snapshot(&env.config), env.snapshot(&env.ws)), before);
    assert!(env.calls("podman").is_empty() && env.calls("nix").is_empty());
}

#[test]
fn user_init_alone_creates_only_the_user_files() {
    let env = TestEnv::with_fakes();
    env.silo(&["user", "init"]).success();
    assert!(env.config.join("silo/home.user.nix").is_file());
    assert!(!env.ws.join(".silo").exists());
}

#[test]
fn a_host_user_that_cannot_be_the_container_user_falls_back_to_dev() {
    let mut env = TestEnv::with_fakes();
    env.set("USER", "root");
    env.silo(&["user", "init"])
        .success()
        .stderr_has("the container user is \"dev\"");
    let toml = fs::read_to_string(env.config.join("silo/silo.user.toml")).unwrap();
    assert!(toml.contains("user = \"dev\""));
}

#[test]
fn init_with_podman_creates_the_nested_podman_defaults() {
    let env = TestEnv::with_fakes();
    init(&env, &["--podman"]);
    let toml = env.read(".silo/silo.toml");
    assert!(toml.contains("podman = true"));
    assert!(toml.contains("\"label=disable\""), "{toml}");
    assert!(!toml.contains("--cap-drop=ALL"));
    assert!(
        env.read(".silo/home.nix")
            .contains("silo.podman.enable = true;")
    );
}

#[test]
fn podman_flags_conflict() {
    let env = TestEnv::with_fakes();
    let run = env.silo(&["init", "--podman", "--no-podman"]);
    run.code_is(2).stderr_has("cannot be used with");
    assert!(!env.ws.join(".silo").exists());
}

#[test]
fn init_podman_on_an_existing_workspace_edits_only_that_setting() {
    let env = TestEnv::with_fakes();
    init(&env, &[]);
    let home = "# my workspace\n{ config, pkgs, ... }:\n{\n  silo = {\n    podman.enable = false; # not yet\n  };\n\n  home.packages = [ pkgs.jq ];\n}\n";
    env.write(".silo/home.nix", home);
    let toml_before = env.read(".silo/silo.toml");
    let before = env.snapshot(&env.ws);

    let run = env.silo(&["init", "--podman"]);
    run.success()
        .stderr_has("Set silo.podman.enable = true")
        .stderr_has("Set [features].podman = true");
    assert_eq!(
        env.read(".silo/home.nix"),
        home.replace("podman.enable = false", "podman.enable = true")
    );
    let expected_toml = toml_before.replace("podman = false", "podman = true").replace(
        "[\n  \"--cap-drop=ALL\",\n  \"--cap-add=NET_BIND_SERVICE\",\n  \"--security-opt\",\n  \"no-new-privileges\"\n]",
        "[\n  \"--security-opt\",\n  \"label=disable\",\n  \"--device\",\n  \"/dev/fuse\"\n]",
    );
    assert_eq!(env.read(".silo/silo.toml"), expected_toml);
    let after = env.snapshot(&env.ws);
    let changed: Vec<_> = after
        .iter()
        .filter(|f| !before.contains(f))
        .map(|(p, _)| p.clone())
        .collect();
    assert_eq!(
        changed,
        [Path::new(".silo/home.nix"), Path::new(".silo/silo.toml")]
    );

    // And back again: both files return to what they were, byte for byte.
    env.silo(&["init", "--no-podman"]).success();
    assert_eq!(env.read(".silo/home.nix"), home);
    assert_eq!(env.read(".silo/silo.toml"), toml_before);
    env.silo(&["init", "--no-podman"])
        .success()
        .stderr_has("Nested Podman is already off");
}

#[test]
fn init_podman_inserts_a_missing_setting() {
    let env = TestEnv::with_fakes();
    init(&env, &[]);
    env.write(
        ".silo/home.nix",
        "{ pkgs, ... }:\n{\n  home.packages = [ pkgs.jq ];\n}\n",
    );
    env.silo(&["init", "--podman"]).success();
    assert_eq!(
        env.read(".silo/home.nix"),
        "{ pkgs, ... }:\n{\n  home.packages = [ pkgs.jq ];\n  silo.podman.enable = true;\n}\n"
    );
}

#[test]
fn init_podman_refuses_a_broken_home_nix_and_writes_nothing() {
    let env = TestEnv::with_fakes();
    init(&env, &[]);
    env.write(
        ".silo/home.nix",
        "{ ... }:\n{\n  silo.podman.enable = \n}\n",
    );
    let before = env.snapshot(&env.ws);
    let run = env.silo(&["init", "--podman"]);
    run.code_is(1).stderr_has(&format!(
        "silo: cannot initialise the workspace\n\
         caused by: cannot change silo.podman.enable in {}\n\
         caused by: it is not valid Nix: unexpected `}}` at line 4, column 1",
        env.ws.join(".silo/home.nix").display()
    ));
    assert_eq!(env.snapshot(&env.ws), before);

    env.write(
        ".silo/home.nix",
        "{ lib, ... }: { silo.podman.enable = lib.mkForce false; }\n",
    );
    env.silo(&["init", "--podman"])
        .code_is(1)
        .stderr_has("not to true or false");
    assert!(env.read(".silo/silo.toml").contains("podman = false"));
}

#[test]
fn customised_create_args_are_kept_with_a_note() {
    let env = TestEnv::with_fakes();
    init(&env, &[]);
    let toml = env.read(".silo/silo.toml").replace(
        "\"--cap-drop=ALL\",",
        "\"--cap-drop=ALL\",\n  \"--env=X=1\",",
    );
    env.write(".silo/silo.toml", &toml);
    env.silo(&["init", "--podman"])
        .success()
        .stderr_has("is customised and was left alone");
    assert!(env.read(".silo/silo.toml").contains("--env=X=1"));
}

#[test]
fn help_prints_the_full_reference() {
    let env = TestEnv::with_fakes();
    let run = env.silo(&["help"]);
    run.success();
    let out = run.stdout();
    for command in [
        "silo init",
        "silo build",
        "silo start",
        "silo volume setup",
        "silo connect",
        "silo exec",
        "silo stop",
        "silo rm",
        "silo status",
        "silo update",
        "silo user init",
        "silo devcontainer connect",
        "silo devcontainer stop",
        "silo devcontainer status",
        "--rebuild",
        "--no-cache",
        "--podman",
        "--no-podman",
        "--update",
        "--stop",
        "--json",
        "silo trust",
        "--revoke",
    ] {
        assert!(out.contains(command), "`silo help` lacks {command:?}");
    }
    let one = env.silo(&["help", "build"]);
    one.success();
    assert!(
        one.stdout().contains("Usage: silo build [OPTIONS]"),
        "{}",
        one.stdout()
    );
    assert!(one.stdout().contains("-v, --verbose"), "{}", one.stdout());
    env.silo(&["help", "devcontainer", "connect"]).success();
    // A usage error, like any unknown argument.
    env.silo(&["help", "nope"])
        .code_is(2)
        .stderr_has("invalid value 'nope' for '[COMMAND]...'");
    env.silo(&["build", "--help"]).success();
}

#[test]
fn configuration_errors_print_the_whole_chain() {
    let env = TestEnv::with_fakes();
    init(&env, &[]);
    let toml = env
        .read(".silo/silo.toml")
        .replace("ports = []", "ports = [\"80\"]\nbogus = 1");
    env.write(".silo/silo.toml", &toml);
    let path = env.ws.join(".silo/silo.toml");
    let run = env.silo(&["build"]);
    run.code_is(1).stderr_has(&format!(
        "silo: cannot build the workspace image\ncaused by: invalid configuration in {}:",
        path.display()
    ));
    let run = env.silo(&["status"]);
    run.code_is(1)
        .stderr_has("unknown field `bogus`, expected one of `ports`, `egress`, `allow`");

    env.edit(".silo/silo.toml", |text| text.replace("\nbogus = 1", ""));
    env.silo(&["status"])
        .code_is(1)
        .stderr_has("[network].ports: the port mapping \"80\" is invalid");
}

#[test]
fn commands_outside_a_workspace_say_what_to_run() {
    let env = TestEnv::with_fakes();
    env.silo(&["status"])
        .code_is(1)
        .stderr_has("no silo workspace here")
        .stderr_has("run `silo init`");
    env.silo(&["connect"])
        .code_is(1)
        .stderr_has("no silo workspace here");
    assert!(!env.ws.join(".silo").exists());
}

#[test]
fn a_subdirectory_belongs_to_the_workspace_above() {
    let env = TestEnv::with_fakes();
    init(&env, &[]);
    fs::create_dir_all(env.ws.join("src/deep")).unwrap();
    env.silo_in(&env.ws.join("src/deep"), &["status"])
        .code_is(3)
        .stdout_is("Stopped\n");
    assert!(!env.ws.join("src/deep/.silo").exists());
}

#[test]
fn missing_home_nix_files_say_what_to_run() {
    let env = TestEnv::with_fakes();
    init(&env, &[]);
    fs::remove_file(env.ws.join(".silo/home.nix")).unwrap();
    env.silo(&["status"])
        .code_is(1)
        .stderr_has("home.nix does not exist; run `silo init` to create it");
    fs::remove_file(env.config.join("silo/home.user.nix")).unwrap();
    env.silo(&["init"]).success();
    env.silo(&["status"]).code_is(3);
}

#[test]
fn init_podman_with_only_home_nix_present_keeps_both_files_in_agreement() {
    let env = TestEnv::with_fakes();
    env.write(
        ".silo/home.nix",
        "{ ... }:\n{\n  silo.podman.enable = false;\n}\n",
    );
    env.silo(&["init", "--podman"]).success();
    assert!(env.read(".silo/silo.toml").contains("podman = true"));
    assert_eq!(
        env.read(".silo/home.nix"),
        "{ ... }:\n{\n  silo.podman.enable = true;\n}\n"
    );
}

#[test]
fn silo_says_when_it_makes_a_directory_a_workspace_and_never_the_home() {
    let env = TestEnv::with_fakes();
    env.silo(&["build"]).success().stderr_has(&format!(
        "Making {} a silo workspace: its container mounts this directory",
        env.ws.display()
    ));
    // Not again once it is one.
    assert!(!env.silo(&["build"]).stderr().contains("Making"));
    for dir in [env.home.clone(), env.home.parent().unwrap().to_path_buf()] {
        env.silo_in(&dir, &["start"])
            .code_is(1)
            .stderr_has("is not a project directory: as a workspace, all of it would be mounted")
            .stderr_has("hint: run silo in a project directory");
        assert!(!dir.join(".silo").exists());
    }
    // Asked for explicitly, it is made.
    env.silo_in(&env.home, &["init"]).success();
    env.silo_in(&env.home, &["build"]).success();
}
