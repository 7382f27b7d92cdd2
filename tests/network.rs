//! The network policy end to end, with the real podman and nix, as root and rootless:
//! two busybox httpd test servers on an internal network of their own, one allowed by
//! name and one not, reached (or not) from a real silo container; attacks on the policy
//! from inside it (tests/probes/network.sh); published ports; `none` and `all`; and one
//! check under Podman 5.4 in the Debian 13 chroot.
//!
//! No traffic leaves the machine: the servers' network is internal, and the proxy uses
//! it (SILO_PROXY_NETWORK) instead of Podman's default network to reach the outside.

#[macro_use]
mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use common::real::{container_exists, must, set_workspace, silo_exec};
use common::{E2E_USER, TestEnv};

/// The test servers and their network, named after the test's volume prefix, removed on
/// drop.
struct Servers<'a> {
    env: &'a TestEnv,
    network: String,
    image: String,
    ok: String,
    no: String,
    ok_ip: String,
    no_ip: String,
}

/// The names of a test's servers and their network: (network, ok, no).
fn server_names(env: &TestEnv) -> (String, String, String) {
    let prefix = env.volume_prefix().expect("a test prefix").to_owned();
    (
        format!("{prefix}-srv"),
        format!("{prefix}-ok"),
        format!("{prefix}-no"),
    )
}

impl<'a> Servers<'a> {
    fn start(env: &'a TestEnv) -> Servers<'a> {
        let (network, ok, no) = server_names(env);
        let image = format!("localhost/{network}-busybox");
        // An image of the host's static busybox, made without a registry.
        let root = env.dir.path().join("busybox-root");
        fs::create_dir_all(root.join("bin")).unwrap();
        fs::copy("/usr/bin/busybox", root.join("bin/busybox")).unwrap();
        std::os::unix::fs::symlink("busybox", root.join("bin/sh")).unwrap();
        let tar = env.dir.path().join("busybox.tar");
        must(
            std::process::Command::new("tar")
                .arg("-C")
                .arg(&root)
                .arg("-cf")
                .arg(&tar)
                .arg("."),
            "packing busybox",
        );
        env.give_to_user();
        let mut servers = Servers {
            env,
            network,
            image,
            ok,
            no,
            ok_ip: String::new(),
            no_ip: String::new(),
        };
        servers.podman(&["import", tar.to_str().unwrap(), &servers.image]);
        servers.podman(&["network", "create", "--internal", &servers.network]);
        let mut ips = Vec::new();
        for name in [&servers.ok, &servers.no] {
            let page = format!("hello-from-{}", &name[name.len() - 2..]);
            servers.podman(&[
                "run",
                "--detach",
                "--name",
                name,
                "--network",
                &servers.network,
                &servers.image,
                "/bin/sh",
                "-c",
                &format!(
                    "mkdir -p /www && echo {page} >/www/index.html && exec /bin/busybox httpd -f -p 80 -h /www"
                ),
            ]);
            let ip = servers.podman(&[
                "inspect",
                name,
                "--format",
                "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
            ]);
            ips.push(ip.trim().to_owned());
        }
        servers.ok_ip = ips[0].clone();
        servers.no_ip = ips[1].clone();
        servers
    }

    fn podman(&self, args: &[&str]) -> String {
        let out = self.env.podman(args);
        assert!(
            out.status.success(),
            "podman {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Servers<'_> {
    fn drop(&mut self) {
        self.env
            .podman(&["rm", "--force", "--time", "0", &self.ok, &self.no]);
        self.env.podman(&["network", "rm", &self.network]);
        self.env.podman(&["rmi", "--force", &self.image]);
    }
}

fn retry<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < timeout, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// What the host reads from a published port, if it answers.
fn fetch(port: u16) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream.write_all(b"GET / HTTP/1.0\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}

/// The lines of a probe's output that say an attack got through.
fn got_through(out: &str) -> Vec<&str> {
    out.lines().filter(|l| l.starts_with("allowed")).collect()
}

/// What the probe must show for a policy that holds.
fn assert_policy_holds(out: &str, servers_no: &str) {
    assert!(
        got_through(out).is_empty(),
        "the policy was bypassed:\n{out}"
    );
    for line in [
        "answer: hello-from-ok",
        "answer through CONNECT: hello-from-ok",
        "answer upper case: hello-from-ok",
        "answer after all that: hello-from-ok",
        &format!(
            "refusal: silo: http://{servers_no}/ is not allowed by this workspace's network policy."
        ),
        "refusal: To allow it, add its host name to `allow` under [network] in .silo/silo.toml (with egress = \"allow\"), then run `silo stop && silo`.",
    ] {
        assert!(out.lines().any(|l| l == line), "{line:?} missing:\n{out}");
    }
    // Refused at once, not after a timeout.
    let ms: u64 = out
        .lines()
        .find_map(|l| {
            l.strip_prefix("refused in ")?
                .strip_suffix(" ms")?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no timing:\n{out}"));
    assert!(ms < 1500, "the refusal took {ms} ms:\n{out}");
    assert!(
        out.lines().filter(|l| l.starts_with("denied: ")).count() >= 25,
        "{out}"
    );
}

/// The whole policy in one workspace of `env`: allow (with attacks, ports, status),
/// none, all.
fn policy(mut env: TestEnv) {
    let (network, _, _) = server_names(&env);
    env.set("SILO_PROXY_NETWORK", &network);
    let env = env;
    let servers = Servers::start(&env);
    env.silo(&["init"]).success();
    let id = env.id();
    fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/probes/network.sh"),
        env.ws.join("network.sh"),
    )
    .unwrap();
    env.give_to_user();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    set_workspace(
        &env,
        &env.ws,
        "network",
        &[
            "egress = \"allow\"",
            &format!("allow = [\"{}\"]", servers.ok),
            &format!("ports = [\"127.0.0.1:{port}:8080\"]"),
        ],
    );
    env.silo(&["start"]).success();

    // A host service the container must not reach (listening on every address).
    let host = TcpListener::bind("0.0.0.0:0").unwrap();
    let host_port = host.local_addr().unwrap().port().to_string();
    let probe = format!(
        "sh network.sh {} {} {} {} {host_port}",
        servers.ok, servers.no, servers.ok_ip, servers.no_ip
    );
    let out = silo_exec(&env, &env.ws, &probe);
    assert_policy_holds(&out, &servers.no);
    // As the container's root, with the capabilities Podman gives it.
    let name = format!("silo-{id}");
    let workdir = format!("/workspace/{id}/proj");
    let out = env.podman(&[
        "exec",
        "--user",
        "0",
        "--workdir",
        &workdir,
        &name,
        "sh",
        "-c",
        &probe,
    ]);
    let out = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_policy_holds(&out, &servers.no);
    let running = env.podman(&[
        "inspect",
        &format!("silo-{id}-proxy"),
        "--format",
        "{{.State.Running}}",
    ]);
    assert_eq!(String::from_utf8_lossy(&running.stdout).trim(), "true");

    // Published ports work through the forwarder.
    silo_exec(
        &env,
        &env.ws,
        "mkdir -p /tmp/www && echo silo-port-ok > /tmp/www/index.html && httpd -p 8080 -h /tmp/www",
    );
    let body = retry(
        "the published port answers",
        Duration::from_secs(10),
        || fetch(port).filter(|r| r.contains("silo-port-ok")),
    );
    assert!(body.starts_with("HTTP/1."), "{body}");

    let status: serde_json::Value =
        serde_json::from_str(&env.silo(&["status", "--json"]).success().stdout()).unwrap();
    assert_eq!(status["network"]["egress"], "allow");
    assert_eq!(status["network"]["allow"][0], servers.ok.as_str());
    assert_eq!(status["network"]["sidecars"][0]["state"], "running");
    assert_eq!(status["network"]["sidecars"][1]["state"], "running");

    // none: no network at all; ports are refused.
    set_workspace(
        &env,
        &env.ws,
        "network",
        &["egress = \"none\"", "ports = []"],
    );
    env.silo(&["stop"]).success();
    for gone in [
        name.clone(),
        format!("silo-{id}-proxy"),
        format!("silo-{id}-ports"),
    ] {
        assert!(!container_exists(&env, &gone), "{gone} is left");
    }
    assert!(
        !env.podman(&["network", "exists", &format!("silo-{id}-net")])
            .status
            .success()
    );
    env.silo(&["start"]).success();
    let out = silo_exec(
        &env,
        &env.ws,
        &format!(
            "for a in {} {}; do timeout 5 nc -w 2 $a 80 </dev/null && echo reached $a; done 2>&1; ip route; echo end",
            servers.ok_ip, servers.no_ip
        ),
    );
    assert!(!out.contains("reached"), "{out}");
    assert!(out.contains("Network is unreachable"), "{out}");
    assert!(out.ends_with("end\n") && !out.contains(" dev "), "{out}");
    env.edit(".silo/silo.toml", |t| {
        t.replace(
            "ports = []",
            &format!("ports = [\"127.0.0.1:{port}:8080\"]"),
        )
    });
    env.silo(&["start"])
        .failure()
        .stderr_has("gives the container no network, so the ports");
    env.edit(".silo/silo.toml", |t| {
        t.replace(
            &format!("ports = [\"127.0.0.1:{port}:8080\"]"),
            "ports = []",
        )
    });

    // all: the container reaches both (here on the servers' network, which
    // create_args adds: rootless containers on the default network cannot reach it).
    env.edit(".silo/silo.toml", |t| {
        t.replace(
            "\"no-new-privileges\"\n]",
            &format!(
                "\"no-new-privileges\",\n  \"--network={}\"\n]",
                servers.network
            ),
        )
    });
    set_workspace(&env, &env.ws, "network", &["egress = \"all\""]);
    env.silo(&["stop"]).success();
    env.silo(&["start"]).success();
    let out = silo_exec(
        &env,
        &env.ws,
        &format!(
            "for a in {} {}; do (printf 'GET / HTTP/1.0\\r\\n\\r\\n'; sleep 1) | timeout 5 nc $a 80 | tail -n 1; done",
            servers.ok_ip, servers.no_ip
        ),
    );
    assert_eq!(out, "hello-from-ok\nhello-from-no\n");
    env.silo(&["stop"]).success();
    assert!(!container_exists(&env, &name), "{name} is left");
    drop(host);
}

#[test]
fn network_policy_as_root() {
    root_only!();
    policy(real_env!(None));
}

/// A runtime directory of the test's own for rootless Podman, whose aardvark-dns (the
/// test servers' names) and network namespace belong to this test alone: one
/// aardvark-dns serves every network of a runtime directory, and one left over in the
/// shared directory (from a run whose network namespace is gone) answers nothing.
/// Dropped after the test environment: then it stops Podman's pause process there.
struct RuntimeDir(tempfile::TempDir);

impl RuntimeDir {
    fn new(user: &str) -> RuntimeDir {
        let dir = tempfile::Builder::new()
            .prefix("silo-net-run-")
            .tempdir()
            .unwrap();
        must(
            std::process::Command::new("chown")
                .arg(user)
                .arg(dir.path()),
            "giving the runtime directory to the test user",
        );
        RuntimeDir(dir)
    }
}

impl Drop for RuntimeDir {
    fn drop(&mut self) {
        let pid =
            fs::read_to_string(self.0.path().join("libpod/tmp/pause.pid")).unwrap_or_default();
        if let Ok(pid) = pid.trim().parse::<u32>() {
            let _ = std::process::Command::new("kill")
                .arg(pid.to_string())
                .status();
        }
    }
}

#[test]
fn network_policy_rootless() {
    root_only!();
    let runtime = RuntimeDir::new(E2E_USER);
    let dir = runtime.0.path().to_str().unwrap();
    let env = match common::real::real_tools_with(Some(E2E_USER), &[("XDG_RUNTIME_DIR", dir)]) {
        Ok(env) => env,
        Err(why) => {
            assert!(
                !common::e2e_required(),
                "SILO_E2E is set, but the end-to-end test cannot run: {why}"
            );
            eprintln!("skipping the end-to-end test: {why}");
            return;
        }
    };
    policy(env);
}

/// Inside Debian 13 (Podman 5.4): servers, a workspace with `allow`, the probe.
const DEBIAN13_SCRIPT: &str = r#"set -eu
dir=$1 fixtures=$2 probe=$3
export XDG_CONFIG_HOME=$dir/cfg USER=alice HOME=$dir/home SILO_VOLUME_PREFIX=silotest-d13net
export SILO_PROXY_NETWORK=silotest-d13net-srv
mkdir -p "$dir/ws/proj" "$HOME" "$dir/bb/bin"
echo "podman: $(podman --version)"
cp /usr/bin/busybox "$dir/bb/bin/" && ln -sf busybox "$dir/bb/bin/sh"
tar -C "$dir/bb" -cf "$dir/bb.tar" .
podman import "$dir/bb.tar" localhost/silotest-d13net-busybox >/dev/null
podman network create --internal "$SILO_PROXY_NETWORK" >/dev/null
for n in ok no; do
  podman run -d --name silotest-d13net-$n --network "$SILO_PROXY_NETWORK" localhost/silotest-d13net-busybox \
    /bin/sh -c "mkdir -p /www && echo hello-from-$n >/www/index.html && exec /bin/busybox httpd -f -p 80 -h /www" >/dev/null
done
ip() { podman inspect "$1" --format '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}'; }
cd "$dir/ws/proj"
silo=$dir/silo
"$silo" user init 2>/dev/null
printf '\n[nix.inputs]\nnixpkgs = "path:%s/nixpkgs"\nhome-manager = "path:%s/home-manager"\n' "$fixtures" "$fixtures" >>"$XDG_CONFIG_HOME/silo/silo.user.toml"
"$silo" init 2>/dev/null
sed -i 's/^ports = \[\]$/ports = []\negress = "allow"\nallow = ["silotest-d13net-ok"]/' .silo/silo.toml
"$silo" trust >/dev/null 2>&1
"$silo" start 2>"$dir/start.log" || { cat "$dir/start.log"; exit 1; }
cp "$probe" network.sh
"$silo" exec -- sh network.sh silotest-d13net-ok silotest-d13net-no "$(ip silotest-d13net-ok)" "$(ip silotest-d13net-no)" 9
"$silo" stop 2>/dev/null
"$silo" rm 2>/dev/null
echo done
"#;

/// Podman 5.4 from Debian 13, in the chroot the end-to-end tests share (under its lock).
#[test]
fn network_policy_under_podman5_in_debian13() {
    root_only!();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let Some(tool) = common::real::debian13_tool() else {
        return;
    };
    let chroot = common::real::Debian13::open(&tool);
    must(
        &mut chroot.command(&[
            "run",
            "--",
            "sh",
            "-c",
            "command -v fakeroot && command -v tinyproxy && command -v socat || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fakeroot tinyproxy-bin socat >/dev/null",
        ]),
        "installing fakeroot, tinyproxy-bin and socat in the chroot",
    );
    let dir = tempfile::Builder::new()
        .prefix("silo-d13net-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let dir_path = dir.path().to_str().unwrap().to_owned();
    fs::copy(env!("CARGO_BIN_EXE_silo"), dir.path().join("silo")).unwrap();
    fs::write(dir.path().join("script.sh"), DEBIAN13_SCRIPT).unwrap();
    let repo_str = repo.canonicalize().unwrap().display().to_string();
    must(
        &mut chroot.command(&["run", "-b", &repo_str, "-b", &dir_path, "--", "true"]),
        "binding into the chroot",
    );
    let cleanup = format!(
        "podman rm -f -t 0 silotest-d13net-ok silotest-d13net-no; podman network rm silotest-d13net-srv; \
         podman rmi -f localhost/silotest-d13net-busybox; cd {dir_path}/ws/proj 2>/dev/null && \
         XDG_CONFIG_HOME={dir_path}/cfg HOME={dir_path}/home USER=alice {dir_path}/silo stop; true"
    );
    let _ = chroot.enter(&["bash", "-c", &cleanup]);
    let out = chroot.enter(&[
        "bash",
        &format!("{dir_path}/script.sh"),
        &dir_path,
        &format!("{repo_str}/tests/fixtures"),
        &format!("{repo_str}/tests/probes/network.sh"),
    ]);
    let _ = chroot.enter(&["bash", "-c", &cleanup]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "the script failed:\n{text}");
    assert!(text.contains("podman: podman version 5."), "{text}");
    assert_policy_holds(&text, "silotest-d13net-no");
    assert!(text.contains("done"), "{text}");
}
