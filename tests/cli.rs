//! CLI tests: the real silo binary in a temporary home and workspace, with stand-in
//! `podman` and `nix` that record their command lines. They pin what silo runs and what
//! it writes; the end-to-end tests (tests/e2e.rs) show it works with the real tools.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::TestEnv;

const HARDENING: &str =
    "--cap-drop=ALL --cap-add=NET_BIND_SERVICE --security-opt no-new-privileges";

fn is_root() -> bool {
    fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// The user-namespace flags silo uses for the user running the tests.
fn mapping() -> &'static str {
    if is_root() {
        "--uidmap 0:1:1000 --uidmap 1000:0:1 --uidmap 1001:1001:64535 \
         --gidmap 0:1:1000 --gidmap 1000:0:1 --gidmap 1001:1001:64535"
    } else {
        "--userns=keep-id:uid=1000,gid=1000"
    }
}

/// `podman create` as silo ran it, with the (long, JSON) config label shown as `<record>`.
fn create_line(env: &TestEnv) -> String {
    let creates = env.calls_starting("podman", &["create"]);
    assert_eq!(creates.len(), 1, "one podman create expected: {creates:?}");
    let (before, after) = creates[0]
        .split_once("io.silo.config=")
        .expect("a config label");
    let rest = after
        .split_once(" --")
        .map(|(_, r)| format!(" --{r}"))
        .unwrap_or_default();
    format!("{before}io.silo.config=<record>{rest}")
}

fn init(env: &TestEnv, args: &[&str]) {
    let mut full = vec!["init"];
    full.extend_from_slice(args);
    env.silo(&full).success();
}

// --- issue 2: the CLI, configuration and init ---------------------------------------

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
        "silo: cannot initialise the workspace: cannot change silo.podman.enable in {}: it is not valid Nix: unexpected `}}` at line 4, column 1",
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
    ] {
        assert!(out.contains(command), "`silo help` lacks {command:?}");
    }
    env.silo(&["help", "devcontainer", "connect"]).success();
    env.silo(&["help", "nope"])
        .failure()
        .stderr_has("no command `nope`");
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
        "silo: cannot build the workspace image: invalid configuration in {}:",
        path.display()
    ));
    let run = env.silo(&["status"]);
    run.code_is(1)
        .stderr_has("unknown field `bogus`, expected `ports`");

    env.write(
        ".silo/silo.toml",
        &env.read(".silo/silo.toml").replace("\nbogus = 1", ""),
    );
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
        .success()
        .stdout_is("Stopped\n");
    assert!(!env.ws.join("src/deep/.silo").exists());
}

// --- issue 3: the workspace flake and `silo build` -------------------------------------

#[test]
fn build_renders_the_flake_builds_with_nix_and_loads_the_image() {
    let env = TestEnv::with_fakes();
    let run = env.silo(&["build"]);
    run.success()
        .stderr_has("building '/nix/store/fake-image.drv'")
        .stderr_has("Built localhost/silo-");
    let id = env.id();
    let silo_dir = env.ws.join(".silo");

    let nix = env.calls("nix");
    assert_eq!(nix[0], ["--version"]);
    assert_eq!(
        nix[1].join(" "),
        format!(
            "--extra-experimental-features nix-command flakes build --json --no-link --no-update-lock-file path:{}#image",
            silo_dir.display()
        )
    );
    assert_eq!(nix.len(), 2);
    let store = env.state.join("store/image.tar");
    assert_eq!(
        env.calls("podman")
            .iter()
            .map(|c| c.join(" "))
            .collect::<Vec<_>>(),
        [
            format!("image inspect localhost/silo-{id}"),
            format!("load --input {}", store.display()),
            format!("image inspect localhost/silo-{id}"),
            format!("image prune --force --filter label=io.silo.id={id}"),
        ]
    );

    let flake = env.read(".silo/flake.nix");
    assert!(flake.starts_with("# Generated by silo "), "{flake}");
    assert_eq!(
        env.read(".silo/flake.lock"),
        fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/flake.lock")).unwrap()
    );
    assert_eq!(
        env.read(".silo/home.user.nix"),
        fs::read_to_string(env.config.join("silo/home.user.nix")).unwrap()
    );
    let settings: serde_json::Value =
        serde_json::from_str(&env.read(".silo/settings.json")).unwrap();
    assert_eq!(settings["id"], id.as_str());
    assert_eq!(settings["user"], "alice");
    assert!(
        silo_dir.join("lib/nix/default.nix").is_file()
            && silo_dir.join("lib/modules/default.nix").is_file()
    );
    let ignore = env.read(".silo/.gitignore");
    for ignored in ["/lib/", "/home.user.nix", "/settings.json"] {
        assert!(
            ignore.lines().any(|l| l == ignored),
            "{ignored} not ignored:\n{ignore}"
        );
    }

    // Up to date: no nix at all, and the lock stays as it was.
    env.clear_calls();
    let lock = env.read(".silo/flake.lock");
    env.silo(&["build"])
        .success()
        .stderr_has(&format!("localhost/silo-{id} is up to date"));
    assert!(env.calls("nix").is_empty(), "{:?}", env.calls("nix"));
    assert_eq!(env.read(".silo/flake.lock"), lock);
}

#[test]
fn editing_home_nix_makes_the_image_outdated_until_rebuilt() {
    let env = TestEnv::with_fakes();
    env.silo(&["build"]).success();
    env.silo(&["status"]).success().stdout_is("Stopped\n");
    assert!(!env.silo(&["status"]).stderr().contains("outdated"));

    env.write(
        ".silo/home.nix",
        &env.read(".silo/home.nix")
            .replace("# home.packages", "home.packages"),
    );
    env.silo(&["status"]).success().stderr_has("is outdated");
    let json: serde_json::Value =
        serde_json::from_str(&env.silo(&["status", "--json"]).stdout()).unwrap();
    assert_eq!(json["image"]["state"], "outdated");

    env.clear_calls();
    env.silo(&["build"])
        .success()
        .stderr_has("is outdated (its inputs changed); rebuilding it");
    assert_eq!(
        env.calls_starting("nix", &["--extra-experimental-features"])
            .len(),
        1
    );
    let json: serde_json::Value =
        serde_json::from_str(&env.silo(&["status", "--json"]).stdout()).unwrap();
    assert_eq!(json["image"]["state"], "up-to-date");

    // The user-wide file counts too.
    let user_nix = env.config.join("silo/home.user.nix");
    fs::write(&user_nix, fs::read_to_string(&user_nix).unwrap() + "\n").unwrap();
    env.silo(&["status"]).success().stderr_has("is outdated");
}

#[test]
fn nix_inputs_from_both_files_reach_every_nix_build() {
    let env = TestEnv::with_fakes();
    init(&env, &[]);
    let user_toml = env.config.join("silo/silo.user.toml");
    let text = fs::read_to_string(&user_toml).unwrap()
        + "\n[nix.inputs]\nnixpkgs = \"github:me/nixpkgs\"\nhome-manager = \"path:/src/home-manager\"\n";
    fs::write(&user_toml, text).unwrap();
    env.write(
        ".silo/silo.toml",
        &(env.read(".silo/silo.toml") + "\n[nix.inputs]\nnixpkgs = \"path:/src/nixpkgs\"\n"),
    );
    env.silo(&["build", "--no-cache"]).success();
    let build = env.calls_starting("nix", &["--extra-experimental-features"]);
    assert!(
        build[0].contains(
            "build --json --no-link --no-update-lock-file --option eval-cache false --refresh \
             --override-input home-manager path:/src/home-manager --override-input nixpkgs path:/src/nixpkgs path:"
        ),
        "{build:?}"
    );

    env.write(
        ".silo/silo.toml",
        &(env.read(".silo/silo.toml") + "flakes = \"github:x/y\"\n"),
    );
    env.silo(&["build"])
        .code_is(1)
        .stderr_has("unknown field `flakes`, expected `nixpkgs` or `home-manager`");
}

#[test]
fn rebuild_refuses_while_the_container_exists() {
    let env = TestEnv::with_fakes();
    env.silo(&["start"]).success();
    let id = env.id();
    env.silo(&["build", "--rebuild"])
        .code_is(1)
        .stderr_has(&format!("cannot rebuild localhost/silo-{id}: the container silo-{id} exists (running); run `silo stop` first"));
    env.silo(&["stop"]).success();
    env.clear_calls();
    env.silo(&["build", "--rebuild"]).success();
    assert_eq!(
        env.calls_starting("nix", &["--extra-experimental-features"])
            .len(),
        1
    );
}

#[test]
fn a_failed_build_keeps_the_previous_image_and_explains() {
    let mut env = TestEnv::with_fakes();
    env.silo(&["build"]).success();
    let image = fs::read_to_string(env.state.join("image")).unwrap();
    env.write(".silo/home.nix", &(env.read(".silo/home.nix") + "\n"));
    env.set("FAKE_NIX_ERROR", "error: experimental Nix feature 'flakes' is disabled; add '--extra-experimental-features flakes' to enable it");
    let run = env.silo(&["build"]);
    run.code_is(1)
        .stderr_has("error: experimental Nix feature 'flakes' is disabled")
        .stderr_has("silo: cannot build the workspace image: nix build failed; the previous image and container are untouched: Nix refused an experimental feature although silo enables nix-command and flakes on the command line; Nix 2.4 or newer is needed: `nix --extra-experimental-features 'nix-command flakes' build");
    assert_eq!(fs::read_to_string(env.state.join("image")).unwrap(), image);
    assert!(env.calls_starting("podman", &["load"]).len() == 1);
}

#[test]
fn missing_tools_are_named() {
    let env = TestEnv::with_fakes();
    env.remove_tool("nix");
    env.silo(&["build"]).code_is(1).stderr_has(
        "nix is not installed or not on PATH; install Nix (Debian/Ubuntu: apt install nix-bin",
    );
    env.remove_tool("podman");
    env.silo(&["status"])
        .code_is(1)
        .stderr_has("podman is not installed or not on PATH; install Podman");
}

#[test]
fn update_moves_pins_and_says_what_changed() {
    let mut env = TestEnv::with_fakes();
    env.silo(&["build"]).success();
    let run = env.silo(&["update", "nixpkgs"]);
    run.success()
        .stderr_has("nixpkgs: ")
        .stderr_has(" -> 0a1b2c3 (")
        .stderr_has("now outdated");
    let update = env.calls_starting(
        "nix",
        &[
            "--extra-experimental-features",
            "nix-command flakes",
            "flake",
        ],
    );
    assert_eq!(
        update,
        [format!(
            "--extra-experimental-features nix-command flakes flake update nixpkgs --flake path:{}",
            env.ws.join(".silo").display()
        )]
    );
    env.silo(&["status"]).success().stderr_has("is outdated");

    env.clear_calls();
    env.set("FAKE_NIX_VERSION", "2.8.0");
    env.silo(&["update"]).success();
    let update = env.calls_starting(
        "nix",
        &[
            "--extra-experimental-features",
            "nix-command flakes",
            "flake",
        ],
    );
    assert_eq!(
        update,
        [format!(
            "--extra-experimental-features nix-command flakes flake lock --update-input nixpkgs --update-input home-manager path:{}",
            env.ws.join(".silo").display()
        )]
    );
    env.silo(&["update", "nixos"])
        .code_is(1)
        .stderr_has("unknown input \"nixos\"");
    env.write(
        ".silo/silo.toml",
        &(env.read(".silo/silo.toml") + "\n[nix.inputs]\nnixpkgs = \"path:/src/nixpkgs\"\n"),
    );
    env.silo(&["update", "nixpkgs"])
        .code_is(1)
        .stderr_has("nixpkgs is overridden by [nix.inputs] (path:/src/nixpkgs)");
}

// --- issue 4: the container lifecycle --------------------------------------------------

/// Runs `silo start` in a fresh workspace whose silo.toml and silo.user.toml get `extra`
/// appended (TOML), and returns the `podman create` line.
fn create_with(
    user_extra: &str,
    workspace_extra: &str,
    podman_version: &str,
    init_args: &[&str],
) -> (TestEnv, String) {
    let mut env = TestEnv::with_fakes();
    env.set("FAKE_PODMAN_VERSION", podman_version);
    init(&env, init_args);
    let user_toml = env.config.join("silo/silo.user.toml");
    let user = fs::read_to_string(&user_toml).unwrap();
    fs::write(&user_toml, apply(&user, user_extra)).unwrap();
    env.write(
        ".silo/silo.toml",
        &apply(&env.read(".silo/silo.toml"), workspace_extra),
    );
    env.silo(&["start"]).success();
    let line = create_line(&env);
    (env, line)
}

/// Replaces `key = ...` lines (or appends) with the given TOML lines.
fn apply(toml: &str, lines: &str) -> String {
    let mut out = toml.to_owned();
    for line in lines.lines().filter(|l| !l.is_empty()) {
        let key = line.split('=').next().unwrap().trim();
        let existing = out
            .lines()
            .find(|l| l.split('=').next().map(str::trim) == Some(key))
            .map(str::to_owned);
        match existing {
            Some(old) if !key.starts_with('[') => out = out.replacen(&old, line, 1),
            _ => out = format!("{out}\n{line}\n"),
        }
    }
    out
}

fn expected_create(env: &TestEnv, middle: &str, tail: &str) -> String {
    let id = env.id();
    let ws = env.ws.display();
    format!(
        "create --name silo-{id} --hostname silo-{id} --init --label io.silo.id={id} --label io.silo.workspace={ws} \
         --label io.silo.config=<record> {} --mount type=bind,source={ws},target=/workspace/{id}/proj,relabel=shared \
         --workdir /workspace/{id}/proj \
         --mount type=volume,source=silo,target=/silo/persistence/shared,subpath=shared \
         --mount type=volume,source=silo,target=/silo/persistence/{id},subpath={id}{middle} --pids-limit=1024 {tail}localhost/silo-{id}",
        mapping()
    )
}

#[test]
fn create_defaults() {
    let (env, line) = create_with("", "", "5.4.2", &[]);
    assert_eq!(line, expected_create(&env, "", &format!("{HARDENING} ")));
    // The hardening flags appear exactly once.
    assert_eq!(line.matches("--cap-drop=ALL").count(), 1);
}

#[test]
fn create_with_persisted_paths_ports_and_limits() {
    let (env, line) = create_with(
        "shared_paths = [\"$HOME/.cache/uv/\"]\nprivate_paths = [\"$HOME/.bash_history\"]\nports = [\"3000:3000\"]\ncreate_args = [\"--env=FROM=user\"]",
        "shared_paths = [\"/opt/cache/\"]\nprivate_paths = [\"/data/\"]\nports = [\"127.0.0.1:8080:80\", \"5353:53/udp\"]\ncpus = 1.5\nmemory = 2048\nprocesses = 500",
        "5.4.2",
        &[],
    );
    let id = env.id();
    let middle = format!(
        " --mount type=volume,source=silo,target=/home/alice/.cache/uv,subpath=shared/home/alice/.cache/uv \
         --mount type=volume,source=silo,target=/opt/cache,subpath=shared/opt/cache \
         --mount type=volume,source=silo,target=/home/alice/.bash_history,subpath={id}/home/alice/.bash_history \
         --mount type=volume,source=silo,target=/data,subpath={id}/data \
         --publish 3000:3000 --publish 127.0.0.1:8080:80 --publish 5353:53/udp --cpus=1.5 --memory=2048m"
    );
    let expected = expected_create(&env, &middle, &format!("--env=FROM=user {HARDENING} "))
        .replace("--pids-limit=1024", "--pids-limit=500");
    assert_eq!(line, expected);

    // Volume setup created the file and the directories, shared and private.
    let setup = env.calls_starting("podman", &["run"]);
    assert_eq!(setup.len(), 1);
    assert!(
        setup[0].ends_with(&format!(
            "silo-volume-setup d:/silo/persistence/shared d:/silo/persistence/{id} \
         d:/silo/persistence/shared/home/alice/.cache/uv d:/silo/persistence/shared/opt/cache \
         f:/silo/persistence/{id}/home/alice/.bash_history d:/silo/persistence/{id}/data"
        )),
        "{}",
        setup[0]
    );
}

#[test]
fn zero_and_negative_limits_add_no_flags() {
    let (env, line) = create_with("", "cpus = 0\nmemory = -1\nprocesses = 0", "5.4.2", &[]);
    assert_eq!(
        line,
        expected_create(&env, "", &format!("{HARDENING} ")).replace(" --pids-limit=1024", "")
    );
    for flag in ["--cpus", "--memory", "--pids-limit"] {
        assert!(!line.contains(flag), "{flag} in {line}");
    }
}

#[test]
fn create_with_nested_podman() {
    let (env, line) = create_with("", "", "5.4.2", &["--podman"]);
    assert_eq!(
        line,
        expected_create(&env, "", "--security-opt label=disable --device /dev/fuse ")
    );
}

#[test]
fn podman_4_binds_the_same_directories_of_the_volume() {
    let (env, line) = create_with("shared_paths = [\"$HOME/.npm/\"]", "", "4.3.1", &[]);
    let id = env.id();
    let volume = "/fake/volumes/silo/_data";
    let expected = expected_create(
        &env,
        &format!(
            " --mount type=bind,source={volume}/shared/home/alice/.npm,target=/home/alice/.npm"
        ),
        &format!("{HARDENING} "),
    )
    .replace(
        "--mount type=volume,source=silo,target=/silo/persistence/shared,subpath=shared",
        &format!("--mount type=bind,source={volume}/shared,target=/silo/persistence/shared"),
    )
    .replace(
        &format!("--mount type=volume,source=silo,target=/silo/persistence/{id},subpath={id}"),
        &format!("--mount type=bind,source={volume}/{id},target=/silo/persistence/{id}"),
    );
    assert_eq!(line, expected);
    // The volume exists before its directory is bind-mounted.
    assert!(
        !env.calls_starting("podman", &["volume", "create", "silo"])
            .is_empty()
    );
}

#[test]
fn start_is_idempotent_and_connect_needs_a_running_container() {
    let env = TestEnv::with_fakes();
    init(&env, &[]);
    let id = env.id();
    env.silo(&["connect"]).code_is(1).stderr_has(&format!(
        "silo-{id} does not exist; run `silo` or `silo start` first"
    ));
    env.silo(&["exec", "--", "true"])
        .code_is(1)
        .stderr_has("does not exist");
    env.silo(&["start"])
        .success()
        .stderr_has(&format!("silo-{id} is running"));
    env.clear_calls();
    env.silo(&["start"]).success();
    assert!(env.calls_starting("podman", &["create"]).is_empty());
    assert!(env.calls_starting("podman", &["start"]).is_empty());
    assert!(env.calls("nix").is_empty());

    // Stopped behind silo's back: connect says what to run, start starts it again.
    fs::remove_file(env.state.join(format!("container-silo-{id}.running"))).unwrap();
    env.silo(&["connect"])
        .code_is(1)
        .stderr_has("is not running; run `silo start` first");
    env.silo(&["start"])
        .success()
        .stderr_has(&format!("Starting silo-{id}"));
}

#[test]
fn exec_passes_the_command_and_its_exit_status() {
    let mut env = TestEnv::with_fakes();
    env.silo(&["start"]).success();
    let id = env.id();
    env.clear_calls();
    env.set("FAKE_EXEC_STATUS", "3");
    let run = env.silo(&["exec", "--", "ls", "-la", "--color"]);
    run.code_is(3).stdout_is("fake exec\n");
    let exec = env.calls_starting("podman", &["exec"]);
    assert_eq!(
        exec,
        [format!(
            "exec --interactive --workdir /workspace/{id}/proj silo-{id} /opt/silo/bin/enter ls -la --color"
        )]
    );
    // Up to date and running: the exec needs no other podman call at all.
    assert_eq!(env.calls("podman").len(), 1, "{:?}", env.calls("podman"));
    assert!(env.calls("nix").is_empty());

    // From a subdirectory, the command runs in the matching directory.
    fs::create_dir_all(env.ws.join("src")).unwrap();
    env.clear_calls();
    env.silo_in(&env.ws.join("src"), &["exec", "--", "pwd"]);
    assert!(
        env.calls_starting("podman", &["exec"])[0]
            .contains(&format!("--workdir /workspace/{id}/proj/src "))
    );
}

#[test]
fn silo_runs_the_chain_connects_and_stops_with_stop() {
    let env = TestEnv::with_fakes();
    let run = env.silo(&["--stop"]);
    run.success();
    let id = env.id();
    let order: Vec<String> = env
        .calls("podman")
        .iter()
        .map(|c| c.iter().take(2).cloned().collect::<Vec<_>>().join(" "))
        .filter(|c| !c.ends_with("inspect"))
        .collect();
    assert_eq!(
        order,
        [
            "load --input",
            "image prune",
            "--version",
            "run --rm",
            "create --name",
            &format!("start silo-{id}"),
            "exec --interactive",
            "stop --time",
            &format!("rm silo-{id}"),
            "image prune"
        ]
        .map(String::from)
    );
    assert!(!env.state.join(format!("container-silo-{id}")).exists());
}

#[test]
fn an_outdated_container_is_reported_and_never_replaced() {
    let env = TestEnv::with_fakes();
    env.silo(&["start"]).success();
    let id = env.id();
    env.write(
        ".silo/silo.toml",
        &env.read(".silo/silo.toml")
            .replace("ports = []", "ports = [\"8080:8080\"]"),
    );
    env.clear_calls();
    let run = env.silo(&["status"]);
    run.success().stdout_is("Running\n").stderr_has(&format!(
        "the container silo-{id} is out of date: the ports changed from [] to [8080:8080]; `silo stop && silo` recreates it"
    ));
    env.silo(&["exec", "--", "true"])
        .success()
        .stderr_has("Recreate it with `silo stop && silo`");
    env.silo(&["start"]).success().stderr_has("is out of date");
    assert!(env.calls_starting("podman", &["create"]).is_empty());
    assert!(env.calls_starting("podman", &["rm"]).is_empty());
    let json: serde_json::Value =
        serde_json::from_str(&env.silo(&["status", "--json"]).stdout()).unwrap();
    assert_eq!(json["container"]["state"], "running");
    assert_eq!(
        json["container"]["outdated"][0],
        "the ports changed from [] to [8080:8080]"
    );
    assert_eq!(json["ports"][0], "8080:8080");
}

#[test]
fn stop_and_rm() {
    let env = TestEnv::with_fakes();
    env.silo(&["start"]).success();
    let id = env.id();
    env.silo(&["rm"]).code_is(1).stderr_has(&format!(
        "silo-{id} is running; stop it first with `silo stop`"
    ));
    env.silo(&["stop"])
        .success()
        .stderr_has(&format!("Stopping silo-{id}"))
        .stderr_has(&format!("Removing silo-{id}"));
    env.silo(&["status"])
        .success()
        .stdout_is("Stopped\n")
        .stderr_has("does not exist");
    env.silo(&["stop"])
        .success()
        .stderr_has(&format!("silo-{id} does not exist"));
    env.silo(&["rm"])
        .success()
        .stderr_has(&format!("Removing localhost/silo-{id}"));
    assert!(!env.state.join("image").exists());
    env.silo(&["rm"]).success().stderr_has("does not exist");
}

#[test]
fn a_taken_port_is_explained() {
    let mut env = TestEnv::with_fakes();
    env.set(
        "FAKE_START_ERROR",
        "Error: rootlessport listen tcp 0.0.0.0:8080: bind: address already in use",
    );
    env.silo(&["start"])
        .code_is(1)
        .stderr_has("a forwarded port is already in use on the host");
}

#[test]
fn status_json_describes_the_workspace() {
    let env = TestEnv::with_fakes();
    init(&env, &[]);
    env.write(
        ".silo/silo.toml",
        &env.read(".silo/silo.toml")
            .replace("private_paths = []", "private_paths = [\"/data/\"]"),
    );
    let run = env.silo(&["status", "--json"]);
    run.success();
    let json: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
    let id = env.id();
    assert_eq!(json["id"], id.as_str());
    assert_eq!(json["container"]["name"], format!("silo-{id}"));
    assert_eq!(json["container"]["state"], "missing");
    assert_eq!(json["image"]["state"], "missing");
    assert_eq!(json["paths"][2]["target"], "/data");
    assert_eq!(json["paths"][2]["subpath"], format!("{id}/data"));
}

// --- issue 5: .devcontainer.json ---------------------------------------------------------

#[test]
fn devcontainer_json_merges_three_sources_with_silos_part_last() {
    let env = TestEnv::with_fakes();
    init(&env, &[]);
    fs::write(
        env.config.join("silo/devcontainer.user.json"),
        r#"{"name": "mine", "customizations": {"vscode": {"extensions": ["user.ext"], "settings": {"editor.tabSize": 2}}}, "runArgs": ["--env=FROM_USER=1"]}"#,
    )
    .unwrap();
    let user_toml = env.config.join("silo/silo.user.toml");
    let text = fs::read_to_string(&user_toml)
        .unwrap()
        .replace("create_args = []", "create_args = [\"--env=A=1\"]");
    fs::write(&user_toml, text).unwrap();
    env.write(
        ".silo/silo.toml",
        &env.read(".silo/silo.toml")
            .replace("ports = []", "ports = [\"127.0.0.1:8080:80\"]")
            .replace("private_paths = []", "private_paths = [\"/data/\"]")
            .replace("memory = 0", "memory = 512"),
    );
    let run = env.silo(&["devcontainer"]);
    run.success()
        .stderr_has(&format!(
            "Created {}",
            env.ws.join(".silo/devcontainer.json").display()
        ))
        .stderr_has(&format!(
            "Created {}",
            env.ws.join(".devcontainer.json").display()
        ));
    assert_eq!(
        env.read(".silo/devcontainer.json"),
        "{\n  \"customizations\": {\n    \"vscode\": {\n      \"extensions\": []\n    }\n  }\n}\n"
    );
    let id = env.id();
    let text = env.read(".devcontainer.json");
    assert!(
        text.ends_with("}\n") && text.starts_with("{\n  \""),
        "{text}"
    );
    let generated: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut run_args = vec![
        "--env=FROM_USER=1".to_owned(),
        "--name".into(),
        format!("silo-{id}-dev"),
        "--hostname".into(),
        format!("silo-{id}-dev"),
    ];
    run_args.extend(mapping().split(' ').map(String::from));
    run_args.extend(["--memory=512m", "--pids-limit=1024", "--env=A=1"].map(String::from));
    run_args.extend(HARDENING.split(' ').map(String::from));
    assert_eq!(
        generated,
        serde_json::json!({
            "name": format!("silo-{id}-dev"),
            "image": format!("localhost/silo-{id}"),
            "containerUser": "alice",
            "remoteUser": "alice",
            "updateRemoteUserUID": false,
            "overrideCommand": false,
            "init": true,
            "workspaceMount": format!("type=bind,source=${{localWorkspaceFolder}},target=/workspace/{id}/proj,relabel=shared"),
            "workspaceFolder": format!("/workspace/{id}/proj"),
            "mounts": [
                "type=volume,source=silo,target=/silo/persistence/shared,subpath=shared",
                format!("type=volume,source=silo,target=/silo/persistence/{id},subpath={id}"),
                format!("type=volume,source=silo,target=/data,subpath={id}/data"),
            ],
            "forwardPorts": [80],
            "runArgs": run_args,
            "customizations": {"vscode": {
                "extensions": ["user.ext"],
                "settings": {
                    "editor.tabSize": 2,
                    "terminal.integrated.defaultProfile.linux": "silo",
                    "terminal.integrated.profiles.linux": {"silo": {"path": "/opt/silo/bin/enter"}}
                }
            }}
        })
    );
    // The image is built first, and the persisted paths exist on the volume.
    assert_eq!(env.calls_starting("podman", &["load"]).len(), 1);
    assert_eq!(env.calls_starting("podman", &["run"]).len(), 1);
}

#[test]
fn devcontainer_json_is_kept_unless_updated_and_invalid_sources_write_nothing() {
    let env = TestEnv::with_fakes();
    env.silo(&["devcontainer"]).success();
    env.write(".devcontainer.json", "{ \"mine\": true }\n");
    env.silo(&["devcontainer"])
        .success()
        .stderr_has("already exists; `silo devcontainer --update` replaces it");
    assert_eq!(env.read(".devcontainer.json"), "{ \"mine\": true }\n");

    env.write(
        ".silo/devcontainer.json",
        "{\n  \"customizations\": {\n    \"vscode\": []\n  },,\n}\n",
    );
    let path = env.ws.join(".silo/devcontainer.json");
    env.silo(&["devcontainer", "--update"])
        .code_is(1)
        .stderr_has(&format!("silo: cannot generate .devcontainer.json: invalid JSON in {} at line 4, column 5: key must be a string", path.display()));
    assert_eq!(env.read(".devcontainer.json"), "{ \"mine\": true }\n");

    env.write(".silo/devcontainer.json", "{}\n");
    env.silo(&["devcontainer", "--update"])
        .success()
        .stderr_has("Updated");
    assert!(env.read(".devcontainer.json").contains("\"image\""));
}

#[test]
fn devcontainer_commands_act_on_the_dev_container_only() {
    let env = TestEnv::with_fakes();
    init(&env, &[]);
    let id = env.id();
    env.silo(&["devcontainer", "status"])
        .success()
        .stdout_is("Stopped\n");
    env.silo(&["devcontainer", "connect"])
        .code_is(1)
        .stderr_has(&format!("silo-{id}-dev does not exist; VS Code creates it"));
    env.silo(&["devcontainer", "stop"])
        .success()
        .stderr_has(&format!("silo-{id}-dev does not exist"));
    assert!(
        env.calls_starting("podman", &["create"]).is_empty(),
        "silo never creates the devcontainer"
    );
}

#[test]
fn a_moved_or_copied_workspace_is_explained() {
    let env = TestEnv::with_fakes();
    env.silo(&["start"]).success();
    let id = env.id();

    // Copied with its .silo/: the container belongs to the original.
    let copy = env.ws.with_file_name("copy");
    let status = std::process::Command::new("cp")
        .arg("-r")
        .arg(&env.ws)
        .arg(&copy)
        .status()
        .unwrap();
    assert!(status.success());
    env.silo_in(&copy, &["start"])
        .code_is(1)
        .stderr_has(&format!(
            "the container silo-{id} belongs to the workspace at {}, which has the same id {id}",
            env.ws.display()
        ));
    env.silo_in(&copy, &["exec", "--", "true"])
        .code_is(1)
        .stderr_has("give this one its own id");
    fs::remove_dir_all(&copy).unwrap();

    // Renamed while the container was stopped: it cannot start; say what to run.
    fs::remove_file(env.state.join(format!("container-silo-{id}.running"))).unwrap();
    let moved = env.ws.with_file_name("renamed");
    fs::rename(&env.ws, &moved).unwrap();
    env.silo_in(&moved, &["start"]).code_is(1).stderr_has(&format!(
        "silo-{id} mounts {}, which no longer exists (was the workspace moved or renamed?); run `silo stop && silo`",
        env.ws.display()
    ));
    env.silo_in(&moved, &["stop"]).success();
    env.silo_in(&moved, &["start"]).success();
    assert!(create_line_count(&env) == 2);
}

fn create_line_count(env: &TestEnv) -> usize {
    env.calls_starting("podman", &["create"]).len()
}

#[test]
fn two_starts_at_once_create_one_container() {
    let env = TestEnv::with_fakes();
    init(&env, &[]);
    let children: Vec<_> = (0..2)
        .map(|_| {
            env.command(&env.ws, &["start"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(create_line_count(&env), 1);
    assert_eq!(
        env.calls_starting("nix", &["--extra-experimental-features"])
            .len(),
        1,
        "one build"
    );
}
