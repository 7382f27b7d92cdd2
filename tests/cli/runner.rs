//! Nix in the runner container: when silo uses it, the podman command lines it runs, what
//! it leaves on the host, and `silo update` through it.

use std::fs;
use std::os::unix::fs::MetadataExt;

use crate::common::TestEnv;
use crate::*;

const IMAGE: &str = "localhost/silo-test-runner:1";
const DEFAULT_IMAGE: &str =
    "docker.io/nixos/nix@sha256:7a007c766426c1877758ddc5cb87a965ac131fc78c582ce0083d922d51ae945c";

/// A world without nix, whose podman has the runner images `images`.
fn podman_only(images: &[&str]) -> TestEnv {
    let env = TestEnv::with_fakes();
    env.remove_tool("nix");
    fs::write(env.state.join("images"), images.join("\n") + "\n").unwrap();
    env.silo(&["user", "init"]).success();
    env
}

fn status_nix(env: &TestEnv) -> serde_json::Value {
    // Exit status 3: the container does not run.
    let run = env.silo(&["status", "--json"]);
    run.code_is(3);
    serde_json::from_str::<serde_json::Value>(&run.stdout()).unwrap()["nix"].clone()
}

/// The podman calls, joined, with the scratch directories' random names as `run-X`.
fn podman_lines(env: &TestEnv) -> Vec<String> {
    env.calls("podman")
        .iter()
        .map(|c| mask_scratch(&c.join(" ")))
        .collect()
}

fn mask_scratch(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(at) = rest.find("/run-") {
        let (head, tail) = rest.split_at(at + "/run-".len());
        out.push_str(head);
        rest = tail;
        if tail.len() >= 16 && tail[..16].bytes().all(|b| b.is_ascii_hexdigit()) {
            out.push('X');
            rest = &tail[16..];
        }
    }
    out + rest
}

fn scratch_entries(env: &TestEnv) -> Vec<String> {
    match fs::read_dir(env.home.join(".cache/silo/nix-runner")) {
        Ok(dir) => dir
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[test]
fn without_nix_the_build_runs_the_same_command_in_the_runner() {
    let env = podman_only(&[IMAGE, "localhost/silo-test-runner:2"]);
    set_user_nix(&env, &format!("runner_image = \"{IMAGE}\""));
    let run = env.silo(&["build"]);
    run.success()
        .stderr_has(&format!(
            "Running nix build in a container of {IMAGE} (auto: there is no nix on PATH; a first build downloads or builds everything; later builds reuse it)..."
        ))
        .stderr_has("building '/nix/store/fake-image.drv'")
        .stderr_has("Copying the image archive out of the Nix runner's store...")
        .stderr_has("Built localhost/silo-");
    let id = env.id();
    let silo = env.ws.join(".silo");
    let silo = silo.display();
    let settings: serde_json::Value =
        serde_json::from_str(&env.read(".silo/settings.json")).unwrap();
    let fingerprint = settings["fingerprint"].as_str().unwrap();
    let store = env
        .state
        .join(format!("store/{fingerprint}{fingerprint}-silo-{id}.tar"));
    let cache = env.home.join(".cache/silo/nix-runner");
    let cache = cache.display();
    let volumes = env.state.join("volumes");
    assert_eq!(
        podman_lines(&env),
        [
            format!("image inspect localhost/silo-{id}"),
            format!("image inspect --format {{{{.Id}}}} {IMAGE}"),
            "volume inspect --format {{.Mountpoint}} silo-nix".to_owned(),
            "volume create --label io.silo.role=nix-store silo-nix".to_owned(),
            "volume inspect --format {{.Mountpoint}} silo-nix".to_owned(),
            format!(
                "run --rm --pull=never --security-opt=label=disable --volume=silo-nix:/nix \
                 --env=XDG_CACHE_HOME=/nix/var/silo/cache \
                 --mount=type=bind,src={silo},dst={silo},ro {IMAGE} \
                 nix --extra-experimental-features nix-command flakes build --json \
                 --out-link /nix/var/nix/gcroots/silo-{id} --no-update-lock-file path:{silo}#image"
            ),
            format!(
                "run --rm --pull=never --security-opt=label=disable --network=none \
                 --volume=silo-nix:/nix:ro --mount=type=bind,src={cache}/run-X,dst={cache}/run-X \
                 {IMAGE} cp -- {} {cache}/run-X/image.tar",
                store.display()
            ),
            format!("load --input {cache}/run-X/image.tar"),
            format!("image inspect localhost/silo-{id}"),
            format!("image prune --force --filter label=io.silo.id={id}"),
        ]
    );
    // The host has no nix; the runner's ran the build, the same command line as the
    // host's would but for the GC root.
    assert!(env.calls("nix").is_empty());
    assert_eq!(nix_builds(&env, "runner-nix").len(), 1);
    assert!(volumes.join("silo-nix").is_dir());
    // The archive's directory is gone after the load; the seeded image is recorded.
    assert_eq!(scratch_entries(&env), Vec::<String>::new());
    let record = env.home.join(".local/state/silo/nix-runner/silo-nix.image");
    assert!(fs::read_to_string(&record).unwrap().starts_with("sha256:"));
    assert_eq!(
        status_nix(&env),
        serde_json::json!({
            "runner": "container",
            "why": "auto: there is no nix on PATH",
            "image": IMAGE,
            "volume": "silo-nix"
        })
    );

    // Up to date: no Nix anywhere, no container.
    env.clear_calls();
    env.silo(&["build"]).success().stderr_has("is up to date");
    assert!(env.calls("runner-nix").is_empty());
    assert!(env.calls_starting("podman", &["run"]).is_empty());

    // After an edit the volume is reused as it is (same image: nothing to seed).
    env.edit(".silo/home.nix", |text| text + "\n");
    env.clear_calls();
    env.silo(&["build"]).success();
    let runs = env.calls_starting("podman", &["run"]);
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert!(
        env.calls_starting("podman", &["volume", "create"])
            .is_empty()
    );

    // Another image on the same volume brings the volume's Nix up to it first.
    set_user_nix(&env, "runner_image = \"localhost/silo-test-runner:2\"");
    env.edit(".silo/home.nix", |text| text + "\n");
    env.clear_calls();
    env.silo(&["build"])
        .success()
        .stderr_has("Bringing the Nix runner's store (silo-nix) up to the image localhost/silo-test-runner:2...");
    let runs = env.calls_starting("podman", &["run"]);
    assert_eq!(runs.len(), 3, "{runs:?}");
    assert!(
        runs[0].starts_with(
            "run --rm --pull=never --security-opt=label=disable --network=none \
             --volume=silo-nix:/seed/nix localhost/silo-test-runner:2 sh -c set -eu"
        ),
        "{}",
        runs[0]
    );
}

#[test]
fn a_host_nix_that_cannot_serve_is_passed_over_unless_forced() {
    let mut env = TestEnv::with_fakes();
    init(&env, &[]);
    assert_eq!(
        status_nix(&env),
        serde_json::json!({
            "runner": "host",
            "why": "auto: the host's Nix 2.26 is 2.18 or newer and can use its store"
        })
    );
    env.set("FAKE_NIX_VERSION", "2.8.0");
    assert_eq!(
        status_nix(&env)["why"],
        "auto: the host's Nix 2.8 is older than 2.18, which nixpkgs needs"
    );
    env.set("FAKE_NIX_VERSION", "2.26.3");
    env.set(
        "FAKE_NIX_STORE_ERROR",
        "error: cannot connect to socket at '/nix/var/nix/daemon-socket/socket': Permission denied",
    );
    let nix = status_nix(&env);
    assert_eq!(nix["runner"], "container");
    assert_eq!(nix["image"], DEFAULT_IMAGE);
    assert_eq!(
        nix["why"],
        "auto: the host's Nix 2.26 cannot use its store (cannot connect to socket at '/nix/var/nix/daemon-socket/socket': Permission denied)"
    );
    // Forced either way, nothing is asked.
    set_user_nix(&env, "runner = \"host\"");
    env.clear_calls();
    assert_eq!(
        status_nix(&env),
        serde_json::json!({"runner": "host", "why": "[nix] runner = \"host\" in silo.user.toml"})
    );
    assert!(env.calls("nix").is_empty());
    env.edit(".silo/silo.toml", |text| {
        text + "\n[nix]\nrunner = \"container\"\n"
    });
    assert_eq!(
        status_nix(&env)["why"],
        "[nix] runner = \"container\" in .silo/silo.toml"
    );
    assert!(env.calls("nix").is_empty());
    env.edit(".silo/silo.toml", |text| {
        text.replace("\"container\"", "\"docker\"")
    });
    env.silo(&["status"])
        .code_is(1)
        .stderr_has("[nix].runner: \"docker\" is not a runner: use \"auto\"");
}

#[test]
fn the_default_image_is_pulled_once_and_a_local_one_never() {
    let env = podman_only(&[]);
    env.silo(&["build"]).success().stderr_has(&format!(
        "Pulling the Nix runner image {DEFAULT_IMAGE} (once;"
    ));
    assert_eq!(
        env.calls_starting("podman", &["pull"]),
        [format!("pull {DEFAULT_IMAGE}")]
    );
    env.edit(".silo/home.nix", |text| text + "\n");
    env.clear_calls();
    env.silo(&["build"]).success();
    assert!(env.calls_starting("podman", &["pull"]).is_empty());

    // Without a registry.
    let mut env = podman_only(&[]);
    env.set("FAKE_PULL_ERROR", "Error: initializing source docker://nixos/nix: pinging container registry registry-1.docker.io: no such host");
    env.silo(&["build"])
        .code_is(1)
        .stderr_has(&format!(
            "caused by: cannot pull the Nix runner image {DEFAULT_IMAGE}\n"
        ))
        .stderr_has("hint: check the network and Podman's registries; or point [nix] runner_image");
    let env = podman_only(&[]);
    set_user_nix(&env, "runner_image = \"localhost/missing:1\"");

    env.silo(&["build"])
        .code_is(1)
        .stderr_has("caused by: the Nix runner image localhost/missing:1 is not in Podman's storage: Error: localhost/missing:1: image not known")
        .stderr_has("hint: build or load it (podman load, podman import), or set [nix] runner_image");
    assert!(env.calls_starting("podman", &["pull"]).is_empty());
    assert!(env.calls_starting("podman", &["run"]).is_empty());
}

#[test]
fn local_inputs_are_mounted_read_only_at_the_same_path() {
    let env = podman_only(&[IMAGE]);
    let checkout = env.dir.path().join("src/nixpkgs");
    fs::create_dir_all(&checkout).unwrap();
    set_user_nix(&env, &format!("runner_image = \"{IMAGE}\""));
    env.edit_user_toml(|text| {
        text + &format!(
            "\n[nix.inputs]\nnixpkgs = \"path:{}?narHash=x\"\nhome-manager = \"github:me/hm\"\n",
            checkout.display()
        )
    });
    let silo = env.ws.join(".silo");
    env.silo(&["-v", "build"]).success().stderr_has(&format!(
        "+ podman run --rm --pull=never --security-opt=label=disable --volume=silo-nix:/nix \
         --env=XDG_CACHE_HOME=/nix/var/silo/cache --mount=type=bind,src={0},dst={0},ro \
         --mount=type=bind,src={1},dst={1},ro localhost/silo-test-runner:1 nix",
        silo.display(),
        checkout.display()
    ));
    let build = nix_builds(&env, "runner-nix");
    assert!(
        build[0].contains(&format!(
            "--override-input home-manager github:me/hm --override-input nixpkgs path:{}?narHash=x",
            checkout.display()
        )),
        "{build:?}"
    );

    fs::remove_dir(&checkout).unwrap();
    env.edit(".silo/home.nix", |text| text + "\n");
    env.silo(&["build"]).code_is(1).stderr_has(&format!(
        "[nix.inputs] points to {}, which does not exist on this host",
        checkout.display()
    ));
}

#[test]
fn update_in_the_runner_replaces_the_lock_which_silo_writes() {
    let mut env = podman_only(&[IMAGE]);
    set_user_nix(&env, &format!("runner_image = \"{IMAGE}\""));
    env.silo(&["build"]).success();
    let lock_path = env.ws.join(".silo/flake.lock");
    let before = fs::read_to_string(&lock_path).unwrap();
    env.clear_calls();
    env.silo(&["update", "nixpkgs"])
        .success()
        .stderr_has(&format!(
            "Running nix flake update in a container of {IMAGE} (auto: there is no nix on PATH)..."
        ))
        .stderr_has(" -> 0a1b2c3 (")
        .stderr_has("now outdated");
    let cache = env.home.join(".cache/silo/nix-runner");
    let runs: Vec<String> = podman_lines(&env)
        .into_iter()
        .filter(|l| l.starts_with("run "))
        .collect();
    let silo = env.ws.join(".silo");
    assert_eq!(
        runs,
        [
            format!(
                "run --rm --pull=never --security-opt=label=disable --network=none {IMAGE} nix --version"
            ),
            format!(
                "run --rm --pull=never --security-opt=label=disable --volume=silo-nix:/nix \
                 --env=XDG_CACHE_HOME=/nix/var/silo/cache \
                 --mount=type=bind,src={1},dst={1},ro --mount=type=bind,src={0},dst={0} {IMAGE} \
                 nix --extra-experimental-features nix-command flakes flake update nixpkgs \
                 --output-lock-file {0}/flake.lock --flake path:{1}",
                cache.join("run-X").display(),
                silo.display()
            ),
        ]
    );
    let after = fs::read_to_string(&lock_path).unwrap();
    assert_ne!(after, before);
    assert!(after.contains("0a1b2c3d4e5f60718293a4b5c6d7e8f901234567"));
    let meta = fs::symlink_metadata(&lock_path).unwrap();
    assert!(meta.is_file());
    assert_eq!(
        meta.uid(),
        fs::metadata(env.ws.join(".silo")).unwrap().uid()
    );
    assert_eq!(scratch_entries(&env), Vec::<String>::new());

    // A lock that is not one is refused, and .silo/flake.lock stays as it was.
    env.set("FAKE_NIX_BAD_LOCK", "1");
    env.silo(&["update"])
        .code_is(1)
        .stderr_has("caused by: updating .silo/flake.lock failed; it is unchanged")
        .stderr_has("caused by: the Nix runner wrote an invalid lock file");
    assert_eq!(fs::read_to_string(&lock_path).unwrap(), after);
    assert_eq!(scratch_entries(&env), Vec::<String>::new());
}

#[test]
fn a_workspace_choosing_the_runner_image_needs_approval() {
    let env = podman_only(&[IMAGE]);
    init(&env, &[]);
    env.edit(".silo/silo.toml", |text| {
        text + &format!("\n[nix]\nrunner_image = \"{IMAGE}\"\n")
    });
    env.silo(&["build"])
        .code_is(1)
        .stderr_has(&format!("[nix].runner_image: (silo's default) -> {IMAGE}"));
    assert!(env.calls_starting("podman", &["run"]).is_empty());
    env.silo(&["trust"]).success();
    env.silo(&["build"]).success();
    assert_eq!(nix_builds(&env, "runner-nix").len(), 1);
    // Choosing only where Nix runs needs no approval.
    env.edit(".silo/silo.toml", |text| text + "runner = \"container\"\n");
    assert!(
        !env.silo(&["status"])
            .code_is(3)
            .stderr()
            .contains("not approved")
    );
}

#[test]
fn the_network_proxy_builds_in_the_runner_too_with_a_root_of_its_own() {
    let env = podman_only(&[IMAGE]);
    set_user_nix(&env, &format!("runner_image = \"{IMAGE}\""));
    init(&env, &[]);
    env.edit(".silo/silo.toml", |t| {
        t.replace("ports = []\n", "ports = []\negress = \"allow\"\n")
    });
    env.silo(&["trust"]).success();
    env.silo(&["start"]).success();
    let id = env.id();
    let silo = env.ws.join(".silo");
    let silo = silo.display();
    let builds: Vec<String> = podman_lines(&env)
        .into_iter()
        .filter(|l| l.contains(" build --json "))
        .map(|l| l[l.find("--out-link").unwrap()..].to_owned())
        .collect();
    assert_eq!(
        builds,
        [
            format!(
                "--out-link /nix/var/nix/gcroots/silo-{id} --no-update-lock-file path:{silo}#image"
            ),
            format!(
                "--out-link /nix/var/nix/gcroots/silo-{id}-proxy --no-update-lock-file path:{silo}#proxy"
            ),
        ]
    );
    assert!(env.calls("nix").is_empty());
    let status: serde_json::Value =
        serde_json::from_str(&env.silo(&["status", "--json"]).stdout()).unwrap();
    assert_eq!(status["network"]["sidecars"][0]["state"], "running");
}
