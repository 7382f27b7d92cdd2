//! The container lifecycle: start, exec, connect, stop, rm, status.

use std::fs;

use crate::common::TestEnv;
use crate::*;

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
    env.edit_user_toml(|user| apply(&user, user_extra));
    env.write(
        ".silo/silo.toml",
        &apply(&env.read(".silo/silo.toml"), workspace_extra),
    );
    // A hand edit of silo.toml is applied once approved.
    env.silo(&["trust"]).success();
    env.clear_calls();
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

/// `podman create` as silo runs it: `middle` after the workspace mounts (volumes,
/// ports, limits), `tail` after the system call filter (create_args).
fn expected_create(env: &TestEnv, middle: &str, tail: &str) -> String {
    let id = env.id();
    let ws = env.ws.display();
    format!(
        "create --name silo-{id} --hostname silo-{id} --init --label io.silo.id={id} --label io.silo.workspace={ws} \
         --label io.silo.config=<record> {} --mount type=bind,source={ws},target=/workspace/{id}/proj,relabel=shared \
         --mount type=bind,source={ws}/.silo,target=/workspace/{id}/proj/.silo,ro \
         --workdir /workspace/{id}/proj{middle} --pids-limit=1024 {}{tail}localhost/silo-{id}",
        mapping(),
        env.seccomp_arg(tail.contains("/dev/fuse"))
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
    let [uv, cache, history, data] = volumes(&env);
    let middle = format!(
        " --mount type=volume,source={uv},target=/home/alice/.cache/uv \
         --mount type=volume,source={cache},target=/opt/cache \
         --mount type=volume,source={history},target=/home/alice/.bash_history,subpath=.bash_history \
         --mount type=volume,source={data},target=/data \
         --publish 3000:3000 --publish 127.0.0.1:8080:80 --publish 5353:53/udp --cpus=1.5 --memory=2048m"
    );
    let expected = expected_create(&env, &middle, &format!("--env=FROM=user {HARDENING} "))
        .replace("--pids-limit=1024", "--pids-limit=500");
    assert_eq!(line, expected);

    // One volume per path, labelled; the persisted file exists in its volume.
    let creates = env.calls_starting("podman", &["volume", "create"]);
    assert_eq!(
        creates,
        [
            format!(
                "volume create --label io.silo.scope=shared --label io.silo.path=/home/alice/.cache/uv --label io.silo.kind=directory {uv}"
            ),
            format!(
                "volume create --label io.silo.scope=shared --label io.silo.path=/opt/cache --label io.silo.kind=directory {cache}"
            ),
            format!(
                "volume create --label io.silo.scope={id} --label io.silo.path=/home/alice/.bash_history --label io.silo.kind=file --label io.silo.id={id} --label io.silo.workspace={} {history}",
                env.ws.display()
            ),
            format!(
                "volume create --label io.silo.scope={id} --label io.silo.path=/data --label io.silo.kind=directory --label io.silo.id={id} --label io.silo.workspace={} {data}",
                env.ws.display()
            ),
        ]
    );
    assert!(
        env.state
            .join(format!("volumes/{history}/_data/.bash_history"))
            .is_file()
    );
    // No container is needed to prepare them.
    assert!(env.calls_starting("podman", &["run"]).is_empty());
}

/// The volume names of the paths `create_with_persisted_paths_ports_and_limits` sets,
/// as podman was asked to create them.
fn volumes(env: &TestEnv) -> [String; 4] {
    let id = env.id();
    let names: Vec<String> = env
        .calls_starting("podman", &["volume", "create"])
        .iter()
        .map(|c| c.rsplit(' ').next().unwrap().to_owned())
        .collect();
    assert_eq!(names.len(), 4, "{names:?}");
    assert!(
        names[0].starts_with("silo-shared-home-alice-.cache-uv-"),
        "{names:?}"
    );
    assert!(names[1].starts_with("silo-shared-opt-cache-"), "{names:?}");
    assert!(
        names[2].starts_with(&format!("silo-{id}-home-alice-.bash_history-")),
        "{names:?}"
    );
    assert!(
        names[3].starts_with(&format!("silo-{id}-data-")),
        "{names:?}"
    );
    names.try_into().unwrap()
}

#[test]
fn zero_and_negative_limits_are_unlimited() {
    let (env, line) = create_with("", "cpus = 0\nmemory = -1\nprocesses = 0", "5.4.2", &[]);
    // Podman limits processes to 2048 unless told -1; CPUs and memory need no flag.
    assert_eq!(
        line,
        expected_create(&env, "", &format!("{HARDENING} "))
            .replace(" --pids-limit=1024", " --pids-limit=-1")
    );
    for flag in ["--cpus", "--memory"] {
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
fn podman_4_binds_persisted_files_and_mounts_their_volumes_read_only() {
    let (env, line) = create_with(
        "shared_paths = [\"$HOME/.npm/\"]\nprivate_paths = [\"$HOME/.hist\"]",
        "",
        "4.3.1",
        &[],
    );
    let creates = env.calls_starting("podman", &["volume", "create"]);
    let name = |i: usize| creates[i].rsplit(' ').next().unwrap().to_owned();
    let (npm, hist) = (name(0), name(1));
    let dir = env.state.join(format!("volumes/{hist}/_data"));
    let expected = expected_create(
        &env,
        &format!(
            " --mount type=volume,source={npm},target=/home/alice/.npm \
             --mount type=volume,source={hist},target=/silo/persistence/{hist},ro \
             --mount type=bind,source={}/.hist,target=/home/alice/.hist",
            dir.display()
        ),
        &format!("{HARDENING} "),
    );
    assert_eq!(line, expected);
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
            "create --name",
            &format!("start silo-{id}"),
            "exec --interactive",
            "rm --force",
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
    env.edit(".silo/silo.toml", |text| {
        text.replace("ports = []", "ports = [\"8080:8080\"]")
    });
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
        .stderr_has(&format!("Stopped and removed silo-{id}"));
    // One podman call: stop (10 s, then kill) and remove, with the network proxy and
    // what requires the container, should there be any.
    assert_eq!(
        env.calls_starting("podman", &["rm"]),
        [format!(
            "rm --force --ignore --time 10 --depend silo-{id} silo-{id}-proxy"
        )]
    );
    assert!(env.calls_starting("podman", &["network"]).is_empty());
    env.silo(&["status"])
        .code_is(3)
        .stdout_is("Stopped\n")
        .stderr_has("does not exist");
    env.silo(&["stop"])
        .success()
        .stderr_has(&format!("silo-{id} does not exist"));
    env.silo(&["rm"])
        .success()
        .stderr_has(&format!("Removing localhost/silo-{id}"));
    assert!(!env.state.join(format!("image-{id}")).exists());
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
    env.edit(".silo/silo.toml", |text| {
        text.replace("private_paths = []", "private_paths = [\"/data/\"]")
    });
    let json = |env: &TestEnv| -> serde_json::Value {
        let run = env.silo(&["status", "--json"]);
        run.code_is(3);
        serde_json::from_str(&run.stdout()).unwrap()
    };
    assert_eq!(json(&env)["trust"]["state"], "not-approved");
    env.silo(&["trust"]).success();
    let json = json(&env);
    let id = env.id();
    assert_eq!(json["id"], id.as_str());
    assert_eq!(json["container"]["name"], format!("silo-{id}"));
    assert_eq!(json["container"]["state"], "missing");
    assert_eq!(json["image"]["state"], "missing");
    assert_eq!(json["paths"][0]["target"], "/data");
    assert!(
        json["paths"][0]["volume"]
            .as_str()
            .unwrap()
            .starts_with(&format!("silo-{id}-data-"))
    );
    assert_eq!(json["trust"]["state"], "created");
    assert_eq!(json["isolation"]["user_namespaces_blocked"], true);
    assert_eq!(json["isolation"]["silo_dir_read_only"], true);
    assert_eq!(json["isolation"]["gives_up"], serde_json::json!([]));
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
    // Its path is what the container mounts: a moved workspace is approved again.
    env.silo_in(&moved, &["start"])
        .code_is(1)
        .stderr_has(&format!(
            "was approved at {}, which no longer exists; it moved here?",
            env.ws.display()
        ));
    env.silo_in(&moved, &["trust"]).success();
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
    for run in env.silo_at_once(2, &["start"]) {
        run.success();
    }
    assert_eq!(create_line_count(&env), 1);
    assert_eq!(nix_builds(&env, "nix").len(), 1, "one build");
}

#[test]
fn volume_setup_creates_what_is_missing_without_an_image() {
    let env = TestEnv::with_fakes();
    init(&env, &[]);
    env.edit(".silo/silo.toml", |text| {
        text.replace("private_paths = []", "private_paths = [\"/data/\"]")
    });
    env.silo(&["trust"]).success();
    env.silo(&["volume", "setup"])
        .success()
        .stderr_has("Volume setup complete");
    env.silo(&["volume", "setup"]).success();
    assert_eq!(env.calls_starting("podman", &["volume", "create"]).len(), 1);
    assert!(env.calls_starting("podman", &["run"]).is_empty());
    assert!(env.calls("nix").is_empty());
}
