//! The network policy (`[network] egress` and `allow`): the command lines of the
//! network, the proxy, the port forwarder and the workspace container, their order, and
//! what silo refuses.

use crate::common::TestEnv;
use crate::*;

/// A workspace whose silo.toml has `network` under [network] (approved), with calls
/// cleared.
fn workspace(network: &str) -> TestEnv {
    let env = TestEnv::with_fakes();
    init(&env, &[]);
    env.edit(".silo/silo.toml", |text| {
        text.replace("ports = []\n", &format!("{network}\n"))
    });
    env.silo(&["trust"]).success();
    env.clear_calls();
    env
}

/// The podman calls, the config label shortened, without `--version`.
fn podman_calls(env: &TestEnv) -> Vec<String> {
    env.calls("podman")
        .into_iter()
        .filter(|c| c[0] != "--version")
        .map(|c| {
            c.iter()
                .map(|a| {
                    if a.starts_with("io.silo.config=") {
                        "io.silo.config=<record>".to_owned()
                    } else {
                        a.clone()
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

fn state_dir(env: &TestEnv) -> String {
    format!("{}/.local/state/silo", env.home.display())
}

#[test]
fn allow_creates_network_proxy_workspace_and_forwarder_in_order() {
    let env = workspace(
        "ports = [\"127.0.0.1:8080:80\"]\negress = \"allow\"\nallow = [\"crates.io\", \"*.npmjs.org\"]",
    );
    env.silo(&["start"]).success();
    let id = env.id();
    let ws = env.ws.display().to_string();
    let state = state_dir(&env);
    let calls = podman_calls(&env);
    let proxy_build: Vec<String> = env
        .calls_starting("nix", &["--extra-experimental-features"])
        .into_iter()
        .filter(|c| c.ends_with("#proxy"))
        .collect();
    assert_eq!(proxy_build.len(), 1, "{proxy_build:?}");
    let from = calls
        .iter()
        .position(|c| {
            c.starts_with("load --input ") && c.ends_with(&format!("-silo-{id}-proxy.tar"))
        })
        .expect("the proxy image is loaded");
    assert_eq!(
        calls[from + 1..],
        [
            format!("image inspect localhost/silo-{id}-proxy"),
            format!("container inspect silo-{id}-ports"),
            format!("container inspect silo-{id}-proxy"),
            format!("network inspect silo-{id}-net"),
            format!(
                "network create --internal --disable-dns --label io.silo.id={id} silo-{id}-net"
            ),
            format!("network inspect silo-{id}-net"),
            format!(
                "create --name silo-{id}-proxy --label io.silo.id={id} --label io.silo.role=proxy \
                 --user 65534:65534 --cap-drop all --security-opt no-new-privileges --read-only \
                 --sysctl net.ipv4.ip_forward=0 --sysctl net.ipv6.conf.all.forwarding=0 \
                 --network silo-{id}-net:ip=10.89.7.2 --network podman \
                 --mount type=bind,source={state}/network/{id},target=/etc/silo-proxy,ro,relabel=private \
                 localhost/silo-{id}-proxy"
            ),
            format!(
                "create --name silo-{id} --hostname silo-{id} --init --label io.silo.id={id} \
                 --label io.silo.workspace={ws} --label io.silo.config=<record> {} \
                 --mount type=bind,source={ws},target=/workspace/{id}/proj,relabel=shared \
                 --mount type=bind,source={ws}/.silo,target=/workspace/{id}/proj/.silo,ro \
                 --workdir /workspace/{id}/proj \
                 --network silo-{id}-net:ip=10.89.7.3 --dns none --requires silo-{id}-proxy \
                 --sysctl net.ipv6.conf.all.disable_ipv6=1 --sysctl net.ipv6.conf.default.disable_ipv6=1 \
                 --env http_proxy=http://10.89.7.2:3128 --env HTTP_PROXY=http://10.89.7.2:3128 \
                 --env https_proxy=http://10.89.7.2:3128 --env HTTPS_PROXY=http://10.89.7.2:3128 \
                 --env all_proxy=http://10.89.7.2:3128 --env ALL_PROXY=http://10.89.7.2:3128 \
                 --env no_proxy=localhost,127.0.0.1,::1 --env NO_PROXY=localhost,127.0.0.1,::1 \
                 --pids-limit=1024 {}{HARDENING} localhost/silo-{id}",
                mapping(),
                env.seccomp_arg(false)
            ),
            format!(
                "create --name silo-{id}-ports --label io.silo.id={id} --label io.silo.role=ports \
                 --user 65534:65534 --cap-drop all --security-opt no-new-privileges --read-only \
                 --sysctl net.ipv4.ip_forward=0 --sysctl net.ipv6.conf.all.forwarding=0 \
                 --sysctl net.ipv4.ip_unprivileged_port_start=0 --init \
                 --network silo-{id}-net --network podman --requires silo-{id} \
                 --publish 127.0.0.1:8080:80 \
                 --entrypoint /bin/silo-forward localhost/silo-{id}-proxy 10.89.7.3 80/tcp"
            ),
            format!("start silo-{id}"),
            format!("container inspect silo-{id}-proxy"),
            format!("container inspect silo-{id}-ports"),
            format!("start silo-{id}-ports"),
            // A container that dies at once is reported.
            format!("container inspect silo-{id}"),
        ]
    );
    // The proxy's configuration, outside the workspace.
    let dir = std::path::Path::new(&state).join("network").join(&id);
    assert_eq!(
        std::fs::read_to_string(dir.join("allow.ere")).unwrap(),
        "# Rendered by silo from [network].allow; one pattern per entry.\n^crates\\.io$\n^([a-z0-9_-]+\\.)+npmjs\\.org$\n"
    );
    let conf = std::fs::read_to_string(dir.join("tinyproxy.conf")).unwrap();
    assert!(
        conf.contains("Listen 10.89.7.2\nAllow 10.89.7.0/24\n"),
        "{conf}"
    );

    // Up to date: the next start builds nothing and creates nothing.
    env.clear_calls();
    env.silo(&["start"]).success();
    assert!(
        env.calls_starting("nix", &["--extra-experimental-features"])
            .is_empty()
    );
    assert!(env.calls_starting("podman", &["create"]).is_empty());

    // exec and connect print nothing of the policy.
    let run = env.silo(&["exec", "--", "true"]);
    run.success();
    assert_eq!(run.stderr(), "");

    let status: serde_json::Value =
        serde_json::from_str(&env.silo(&["status", "--json"]).success().stdout()).unwrap();
    assert_eq!(
        status["network"],
        serde_json::json!({
            "egress": "allow",
            "allow": ["crates.io", "*.npmjs.org"],
            "sidecars": [
                {"name": format!("silo-{id}-proxy"), "state": "running"},
                {"name": format!("silo-{id}-ports"), "state": "running"},
            ]
        })
    );

    // stop: the container, the forwarder that requires it and the proxy in one call,
    // then the network.
    env.clear_calls();
    env.silo(&["stop"]).success();
    assert_eq!(
        podman_calls(&env),
        [
            format!("rm --force --ignore --time 10 --depend silo-{id} silo-{id}-proxy"),
            format!("network rm silo-{id}-net"),
        ]
    );
    for name in ["", "-proxy", "-ports"] {
        assert!(
            !env.state
                .join(format!("container-silo-{id}{name}"))
                .exists()
        );
    }
    assert!(!dir.join("allow.ere").exists());

    // rm also removes the proxy image.
    env.silo(&["start"]).success();
    env.silo(&["stop"]).success();
    env.clear_calls();
    env.silo(&["rm"]).success();
    assert!(
        podman_calls(&env).contains(&format!("rmi localhost/silo-{id}-proxy")),
        "{:?}",
        podman_calls(&env)
    );
}

#[test]
fn none_has_no_network_and_refuses_ports() {
    let env = workspace("ports = []\negress = \"none\"");
    env.silo(&["start"]).success();
    let id = env.id();
    let create = env.calls_starting("podman", &["create"]);
    assert_eq!(create.len(), 1);
    assert!(
        create[0].contains(
            "--workdir /workspace/{id}/proj --network none --pids-limit"
                .replace("{id}", &id)
                .as_str()
        ),
        "{}",
        create[0]
    );
    assert!(env.calls_starting("podman", &["network"]).is_empty());
    env.silo(&["stop"]).success();

    env.edit(".silo/silo.toml", |t| {
        t.replace("ports = []", "ports = [\"8080:80\"]")
    });
    env.silo(&["trust"])
        .failure()
        .stderr_has("[network].egress = \"none\" gives the container no network, so the ports (8080:80...) cannot be forwarded");

    // Ports from the user file are refused the same way.
    env.edit(".silo/silo.toml", |t| {
        t.replace("ports = [\"8080:80\"]", "ports = []")
    });
    env.edit_user_toml(|user| user.replace("ports = []", "ports = [\"3000:3000\"]"));
    env.silo(&["start"])
        .failure()
        .stderr_has("so the ports 3000:3000 of ");
}

#[test]
fn create_args_that_undo_the_policy_are_refused() {
    let env = workspace("ports = []\negress = \"allow\"");
    env.edit(".silo/silo.toml", |t| {
        t.replace(
            "\"no-new-privileges\"",
            "\"no-new-privileges\",\n  \"--network=host\"",
        )
    });
    env.silo(&["trust"]).success();
    env.silo(&["start"]).failure().stderr_has(
        "[network].egress = \"allow\" cannot hold with these create_args: --network host chooses the container's network",
    );
    assert!(env.calls_starting("podman", &["create"]).is_empty());
}

#[test]
fn the_user_files_default_applies_and_a_change_outdates_the_container() {
    let env = workspace("ports = []");
    // The user's own default needs no approval.
    env.edit_user_toml(|user| {
        user.replace(
            "egress = \"all\"\nallow = []",
            "egress = \"allow\"\nallow = [\"github.com\"]",
        )
    });
    env.silo(&["start"]).success();
    assert_eq!(env.calls_starting("podman", &["create"]).len(), 2);
    let status: serde_json::Value =
        serde_json::from_str(&env.silo(&["status", "--json"]).stdout()).unwrap();
    assert_eq!(
        status["network"]["allow"],
        serde_json::json!(["github.com"])
    );

    // The workspace adds to the list; the running container is out of date.
    env.edit(".silo/silo.toml", |t| {
        t.replace("ports = []", "ports = []\nallow = [\"crates.io\"]")
    });
    env.silo(&["status"])
        .success()
        .stderr_has("the settings of this workspace changed since they were approved");
    env.silo(&["trust"])
        .success()
        .stderr_has("[network].allow: (none) -> crates.io");
    env.silo(&["status"]).success().stderr_has(
        "the network policy changed from allow [github.com] to allow [github.com, crates.io]",
    );
}

#[test]
fn a_missing_proxy_is_made_again() {
    let env = workspace("ports = []\negress = \"allow\"");
    env.silo(&["start"]).success();
    env.silo(&["stop"]).success();
    // The container is kept stopped, its proxy removed behind silo's back.
    env.silo(&["start"]).success();
    let id = env.id();
    for file in [
        format!("container-silo-{id}.running"),
        format!("container-silo-{id}-proxy"),
    ] {
        std::fs::remove_file(env.state.join(file)).unwrap();
    }
    std::fs::remove_file(env.state.join(format!("container-silo-{id}-proxy.running"))).ok();
    env.clear_calls();
    env.silo(&["start"]).success();
    let creates = env.calls_starting("podman", &["create"]);
    assert_eq!(creates.len(), 1, "{creates:?}");
    assert!(creates[0].starts_with(&format!("create --name silo-{id}-proxy ")));
    assert!(
        env.state
            .join(format!("container-silo-{id}-proxy.running"))
            .exists()
    );
}
