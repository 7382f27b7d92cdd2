//! End-to-end tests with the real `nix` and the real `podman` of this machine, as root
//! and as an unprivileged user (rootless Podman, Nix through the daemon).
//!
//! No binary cache or registry is reachable in CI, so the workspace flake's inputs are
//! pointed (through `[nix.inputs]`, the code path users have) at the fixture flakes in
//! tests/fixtures, which build a real, small image from the host's static busybox with
//! silo's own nix/ and modules/. Without the tools these tests skip with a reason;
//! with SILO_E2E=1 (CI) a missing tool is a failure.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{E2E_USER, TestEnv};

/// A test environment with the real tools, or a skip (a failure under SILO_E2E=1).
macro_rules! real_env {
    ($user:expr) => {
        match real_tools($user) {
            Ok(env) => env,
            Err(why) => {
                if common::e2e_required() {
                    panic!("SILO_E2E is set, but the end-to-end test cannot run: {why}");
                }
                eprintln!(
                    "skipping the end-to-end test: {why} (set SILO_E2E=1 to make this a failure)"
                );
                return;
            }
        }
    };
}

/// Skips a test that must run as root (to be root, or to switch to the test user).
macro_rules! root_only {
    () => {
        if !is_root() {
            eprintln!("skipping: this end-to-end test runs as root");
            return;
        }
    };
}

fn real_tools(user: Option<&str>) -> Result<TestEnv, String> {
    for (path, package) in [
        ("/usr/bin/busybox", "busybox-static"),
        ("/usr/bin/fakeroot", "fakeroot"),
    ] {
        if !Path::new(path).exists() {
            return Err(format!("{path} is missing (apt install {package})"));
        }
    }
    let env = TestEnv::with_real_tools(user)?;
    // The tools must work for this user, not just exist.
    for (tool, args) in [
        (
            "podman",
            &["info", "--format", "{{.Host.OCIRuntime.Name}}"][..],
        ),
        ("nix", &["--version"][..]),
    ] {
        let out = env.tool(tool, args);
        if !out.status.success() {
            return Err(format!(
                "`{tool} {}` fails: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    if user.is_some() && !Path::new("/nix/var/nix/daemon-socket/socket").exists() {
        return Err("nix-daemon is not running (.ci/run starts it)".into());
    }
    env.silo(&["user", "init"]).success();
    env.use_fixture_inputs();
    Ok(env)
}

fn is_root() -> bool {
    fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// Sets `key = value` lines under a section of the workspace's silo.toml, and approves
/// the change as its user would with `silo trust`.
fn set_workspace(env: &TestEnv, dir: &Path, section: &str, lines: &[&str]) {
    let path = dir.join(".silo/silo.toml");
    let mut text = fs::read_to_string(&path).unwrap();
    for line in lines {
        let key = line.split('=').next().unwrap().trim();
        let header = format!("[{section}]\n");
        let start = text.find(&header).expect("section exists") + header.len();
        let end = text[start..]
            .find("\n[")
            .map_or(text.len(), |i| start + i + 1);
        let body: String = text[start..end]
            .lines()
            .filter(|l| l.split('=').next().map(str::trim) != Some(key))
            .map(|l| format!("{l}\n"))
            .collect();
        text = format!("{}{line}\n{body}{}", &text[..start], &text[end..]);
    }
    fs::write(&path, text).unwrap();
    env.give_to_user();
    env.silo_in(dir, &["trust"]).success();
}

fn silo_exec(env: &TestEnv, dir: &Path, script: &str) -> String {
    let run = env.silo_in(dir, &["exec", "--", "sh", "-c", script]);
    run.success();
    run.stdout()
}

fn container_exists(env: &TestEnv, name: &str) -> bool {
    env.podman(&["container", "exists", name]).status.success()
}

fn image_labels(env: &TestEnv, image: &str) -> serde_json::Value {
    let out = env.podman(&["image", "inspect", image]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    json[0]["Labels"].clone()
}

#[test]
fn build_is_reused_until_home_nix_changes() {
    let env = real_env!(None);
    let run = env.silo(&["build"]);
    run.success();
    let id = env.id();
    let image = format!("localhost/silo-{id}");
    let labels = image_labels(&env, &image);
    assert_eq!(labels["io.silo.id"], id.as_str());
    assert_eq!(labels["io.silo.user"], "alice");
    let settings: serde_json::Value =
        serde_json::from_str(&env.read(".silo/settings.json")).unwrap();
    assert_eq!(labels["io.silo.fingerprint"], settings["fingerprint"]);
    let lock = env.read(".silo/flake.lock");
    assert_eq!(
        lock,
        fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/flake.lock")).unwrap()
    );
    assert!(
        env.read(".silo/flake.nix")
            .starts_with("# Generated by silo")
    );

    // Up to date: nix does not run at all.
    env.clear_calls();
    env.silo(&["build"]).success().stderr_has("is up to date");
    assert!(
        env.calls("nix").is_empty(),
        "nix ran: {:?}",
        env.calls("nix")
    );

    // Editing home.nix makes the image outdated, and the next build rebuilds it.
    let home = env.read(".silo/home.nix").replace(
        "{\n  silo.podman.enable",
        "{\n  home.sessionVariables.E2E = \"1\";\n  silo.podman.enable",
    );
    env.write(".silo/home.nix", &home);
    env.silo(&["status"]).success().stderr_has("is outdated");
    env.silo(&["build"]).success().stderr_has("rebuilding");
    let rebuilt = image_labels(&env, &image);
    assert_ne!(
        rebuilt["io.silo.fingerprint"],
        labels["io.silo.fingerprint"]
    );
    assert!(!env.silo(&["status"]).stderr().contains("outdated"));
    assert_eq!(env.read(".silo/flake.lock"), lock, "the lock file changed");

    // The replaced image was removed, not left dangling.
    let dangling = env.podman(&[
        "images",
        "--quiet",
        "--filter",
        "dangling=true",
        "--filter",
        &format!("label=io.silo.id={id}"),
    ]);
    assert_eq!(String::from_utf8_lossy(&dangling.stdout).trim(), "");

    // A build that fails keeps the image, and shows Nix's error.
    env.write(
        ".silo/home.nix",
        &home.replace(
            "silo.podman.enable",
            "home.packages = [ (throw \"broken on purpose\") ];\n  silo.podman.enable",
        ),
    );
    let run = env.silo(&["build"]);
    run.code_is(1)
        .stderr_has("nix build failed; the previous image and container are untouched");
    run.stderr_has("broken on purpose");
    assert_eq!(
        image_labels(&env, &image)["io.silo.fingerprint"],
        rebuilt["io.silo.fingerprint"]
    );
}

/// The whole chain in one workspace of `env`, checks that hold as root and rootless.
fn chain(env: &TestEnv) {
    let tag = format!("e2e{}", std::process::id());
    // Persisted paths: a directory shared by all workspaces, a private directory and a
    // private file.
    let user_toml = env.config.join("silo/silo.user.toml");
    let text = fs::read_to_string(&user_toml)
        .unwrap()
        .replace(
            "shared_paths = []",
            &format!("shared_paths = [\"$HOME/.cache/{tag}/\"]"),
        )
        .replace(
            "private_paths = []",
            "private_paths = [\"/data/\", \"$HOME/.e2e_history\"]",
        );
    fs::write(&user_toml, text).unwrap();
    env.give_to_user();

    env.silo(&["start"]).success();
    let id = env.id();
    let name = format!("silo-{id}");
    assert!(container_exists(env, &name));

    // The workspace is mounted at /workspace/<id>/<dir>, the working directory, and the
    // host user's files are the container user's.
    fs::write(env.ws.join("from-host"), "x").unwrap();
    env.give_to_user();
    let out = silo_exec(
        env,
        &env.ws,
        "pwd; id -u; stat -c %u from-host; touch from-container",
    );
    assert_eq!(out, format!("/workspace/{id}/proj\n1000\n1000\n"));
    let host_uid = fs::metadata(env.ws.join("from-host")).unwrap().uid();
    assert_eq!(
        fs::metadata(env.ws.join("from-container")).unwrap().uid(),
        host_uid
    );

    // Written into persisted paths, kept across stop and start.
    silo_exec(
        env,
        &env.ws,
        &format!(
            "echo shared > ~/.cache/{tag}/f; echo private > /data/f; echo history >> ~/.e2e_history"
        ),
    );
    env.silo(&["stop"]).success();
    assert!(!container_exists(env, &name));
    env.silo(&["start"]).success();
    let out = silo_exec(
        env,
        &env.ws,
        &format!("cat ~/.cache/{tag}/f /data/f ~/.e2e_history"),
    );
    assert_eq!(out, "shared\nprivate\nhistory\n");

    // A second workspace sees the shared path, not the private ones.
    let other = env.workspace("other");
    env.silo_in(&other, &["start"]).success();
    let out = silo_exec(
        env,
        &other,
        &format!("cat ~/.cache/{tag}/f; ls /data; wc -c < ~/.e2e_history"),
    );
    assert_eq!(out, "shared\n0\n");
    let other_id = common::id_of(&other).unwrap();
    // Only this workspace's own volumes are mounted (Podman 4 shows its persisted
    // files' volumes read-only under /silo/persistence).
    let out = silo_exec(env, &other, "ls /silo/persistence");
    let own = format!("{}-{other_id}-", env.volume_prefix().unwrap());
    for name in out.lines() {
        assert!(
            name.starts_with(&own),
            "another workspace's volume is visible: {out}"
        );
    }

    // `silo` runs the chain and the shell; with --stop the container goes afterwards.
    let output = env
        .silo_with_input(
            &other,
            &["--stop"],
            "echo in-the-shell $PWD
exit 7
",
        )
        .output;
    assert_eq!(
        output.status.code(),
        Some(7),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("in-the-shell /workspace/{other_id}/other\n")
    );
    assert!(!container_exists(env, &format!("silo-{other_id}")));

    // rm refuses a running container, then removes container and image.
    env.silo(&["rm"]).code_is(1).stderr_has("stop it first");
    env.silo(&["stop"]).success();
    env.silo(&["rm"]).success();
    assert!(
        !env.podman(&["image", "exists", &format!("localhost/silo-{id}")])
            .status
            .success()
    );
}

#[test]
fn chain_as_root() {
    root_only!();
    let env = real_env!(None);
    chain(&env);
}

#[test]
fn chain_rootless() {
    root_only!();
    let env = real_env!(Some(E2E_USER));
    chain(&env);
}

/// A free port on the host.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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

#[test]
fn ports_limits_and_orphans_as_root() {
    root_only!();
    let env = real_env!(None);
    env.silo(&["init"]).success();
    let port = free_port();
    set_workspace(
        &env,
        &env.ws,
        "network",
        &[&format!("ports = [\"127.0.0.1:{port}:8080\"]")],
    );
    set_workspace(
        &env,
        &env.ws,
        "limits",
        &["cpus = 1", "memory = 256", "processes = 64"],
    );
    env.silo(&["start"]).success();

    // A forwarded port answers from the host.
    silo_exec(
        &env,
        &env.ws,
        "mkdir -p /tmp/www && echo silo-port-ok > /tmp/www/index.html && httpd -p 8080 -h /tmp/www",
    );
    let body = retry(
        "the forwarded port answers",
        Duration::from_secs(10),
        || {
            let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
            stream.write_all(b"GET / HTTP/1.0\r\n\r\n").ok()?;
            let mut response = String::new();
            stream.read_to_string(&mut response).ok()?;
            response.contains("silo-port-ok").then_some(response)
        },
    );
    assert!(body.starts_with("HTTP/1."), "{body}");

    // The limits are visible in the container's cgroups (v1 or v2 names).
    let out = silo_exec(
        &env,
        &env.ws,
        "cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max; \
         cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max; \
         cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null || cut -d' ' -f1 /sys/fs/cgroup/cpu.max",
    );
    assert_eq!(out, "64\n268435456\n100000\n");

    // A burst of abandoned background jobs hits the pids limit; once they end, PID 1
    // (podman's --init) has reaped them and the container takes commands again.
    env.silo(&[
        "exec",
        "--",
        "sh",
        "-c",
        "i=0; while [ $i -lt 100 ]; do (sleep 2 &) 2>/dev/null; i=$((i+1)); done; true",
    ]);
    std::thread::sleep(Duration::from_secs(3));
    let zombies = retry(
        "the container takes commands after the burst",
        Duration::from_secs(20),
        || {
            let run = env.silo(&[
                "exec",
                "--",
                "sh",
                "-c",
                "ps -o stat | grep -c '^Z' || true",
            ]);
            run.output.status.success().then(|| run.stdout())
        },
    );
    assert_eq!(zombies.trim(), "0", "zombies left behind");
}

/// Runs a command, failing the test with its output when it fails.
fn must(cmd: &mut std::process::Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{what} failed:\n{text}");
    text
}

/// The script run inside Debian 13: the chain with persisted paths, and what it left on
/// the volume. `$1` is the test directory (bound at the same path).
const DEBIAN13_SCRIPT: &str = r#"set -eu
dir=$1 tag=$2 fixtures=$3
export XDG_CONFIG_HOME=$dir/cfg USER=alice HOME=$dir/home
mkdir -p "$dir/ws/proj" "$HOME"
cd "$dir/ws/proj"
echo "nix: $(nix --version)"
echo "podman: $(podman --version)"
silo=$dir/silo
"$silo" user init 2>/dev/null
cfg=$XDG_CONFIG_HOME/silo/silo.user.toml
sed -i "s|^shared_paths = \[\]|shared_paths = [\"\$HOME/.cache/$tag/\"]|; s|^private_paths = \[\]|private_paths = [\"/data/\", \"\$HOME/.hist\"]|" "$cfg"
printf '\n[nix.inputs]\nnixpkgs = "path:%s/nixpkgs"\nhome-manager = "path:%s/home-manager"\n' "$fixtures" "$fixtures" >>"$cfg"
"$silo" --verbose start 2>"$dir/start.log" || { cat "$dir/start.log"; exit 1; }
grep '^+ podman create' "$dir/start.log"
"$silo" exec -- sh -c "echo one > /data/f; echo two > ~/.cache/$tag/f; echo three >> ~/.hist"
"$silo" stop 2>/dev/null
"$silo" start 2>/dev/null
echo "persisted: $("$silo" exec -- sh -c "cat /data/f ~/.cache/$tag/f ~/.hist" | tr '\n' ' ')"
id=$(sed -n 's/^id = "\(.*\)"/\1/p' .silo/silo.toml)
for v in $(podman volume ls --quiet --filter label=io.silo.path); do
  case $v in silo-$id-*|silo-shared-home-alice-.cache-$tag-*)
    echo "volume: $(podman volume inspect "$v" --format '{{index .Labels "io.silo.path"}}') $(cd "$(podman volume inspect "$v" --format '{{.Mountpoint}}')" && find . -type f | sort | tr '\n' ' ')" ;;
  esac
done
"$silo" stop 2>/dev/null
"$silo" rm 2>/dev/null
echo done
"#;

/// Podman 5 (volume `subpath` mounts) and Nix 2.26, from Debian 13 in the chroot that
/// ../shared/tools/debian13-chroot builds (about a minute the first time).
#[test]
fn podman5_and_nix226_in_debian13() {
    root_only!();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tool = repo.join("../shared/tools/debian13-chroot");
    if !tool.exists() {
        assert!(
            !common::e2e_required(),
            "SILO_E2E is set, but {} is missing",
            tool.display()
        );
        eprintln!("skipping: {} is missing", tool.display());
        return;
    }
    let root = "/var/tmp/silo-debian13";
    let chroot = |args: &[&str]| {
        let mut cmd = std::process::Command::new(&tool);
        cmd.arg(root).args(args);
        cmd
    };
    must(&mut chroot(&["setup"]), "building the Debian 13 chroot");
    // The fixture's layer builder uses fakeroot, which the chroot lacks.
    must(
        &mut chroot(&[
            "run",
            "--",
            "sh",
            "-c",
            "command -v fakeroot || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fakeroot >/dev/null",
        ]),
        "installing fakeroot in the chroot",
    );
    struct Teardown<'a>(&'a dyn Fn(&[&str]) -> std::process::Command);
    impl Drop for Teardown<'_> {
        fn drop(&mut self) {
            let _ = (self.0)(&["teardown"]).status();
        }
    }
    let _teardown = Teardown(&chroot);

    let dir = tempfile::Builder::new()
        .prefix("silo-debian13-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let dir_path = dir.path().to_str().unwrap().to_owned();
    fs::copy(env!("CARGO_BIN_EXE_silo"), dir.path().join("silo")).unwrap();
    fs::write(dir.path().join("script.sh"), DEBIAN13_SCRIPT).unwrap();
    let repo_str = repo.canonicalize().unwrap().display().to_string();
    must(
        &mut chroot(&["run", "-b", &repo_str, "-b", &dir_path, "--", "true"]),
        "binding into the chroot",
    );

    let tag = format!("d13{}", std::process::id());
    let fixtures = format!("{repo_str}/tests/fixtures");
    let enter = repo.join("tests/common/enter-chroot.sh");
    let script = format!("{dir_path}/script.sh");
    let out = must(
        std::process::Command::new("unshare")
            .arg("--mount")
            .arg(&enter)
            .args([root, "bash", &script, &dir_path, &tag, &fixtures]),
        "the chain under Podman 5 and Nix 2.26",
    );
    let id = common::id_of(&dir.path().join("ws/proj")).expect("an id");
    assert!(out.contains("nix: nix (Nix) 2.26"), "{out}");
    assert!(out.contains("podman: podman version 5."), "{out}");
    // Podman 5 mounts each path's volume, a persisted file through `subpath`.
    for mount in [
        format!("--mount type=volume,source=silo-shared-home-alice-.cache-{tag}-"),
        format!("--mount type=volume,source=silo-{id}-data-"),
        format!("--mount type=volume,source=silo-{id}-home-alice-.hist-"),
        ",target=/home/alice/.hist,subpath=.hist".to_owned(),
    ] {
        assert!(out.contains(&mount), "{mount} missing:\n{out}");
    }
    assert!(out.contains("persisted: one two three "), "{out}");
    // Each path in a volume of its own.
    let mut volumes: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("volume: "))
        .map(str::trim)
        .collect();
    volumes.sort();
    let mut expected = vec![
        "/data ./f".to_owned(),
        "/home/alice/.hist ./.hist".to_owned(),
        format!("/home/alice/.cache/{tag} ./f"),
    ];
    expected.sort();
    assert_eq!(volumes, expected, "{out}");
    assert!(out.contains("done"), "{out}");
}

/// The Dev Containers CLI (`devcontainer`), from PATH or where .ci/run installs it.
fn devcontainer_cli() -> Option<std::path::PathBuf> {
    common::find_in_path("devcontainer")
        .or_else(|| {
            Some(
                Path::new("/var/cache/silo-ci/devcontainers/node_modules/.bin/devcontainer")
                    .to_path_buf(),
            )
        })
        .filter(|p| p.exists())
}

/// The generated .devcontainer.json works with the reference client: it reads it,
/// creates silo-<id>-dev with podman, and runs commands in it as the right user.
#[test]
fn devcontainer_with_the_reference_cli() {
    root_only!();
    let env = real_env!(None);
    let Some(cli) = devcontainer_cli() else {
        assert!(
            !common::e2e_required(),
            "SILO_E2E is set, but the devcontainer CLI is missing (.ci/run installs it)"
        );
        eprintln!("skipping: the devcontainer CLI is missing (npm install @devcontainers/cli)");
        return;
    };
    let podman = common::find_in_path("podman").unwrap();
    // `devcontainer SUBCOMMAND --docker-path podman --workspace-folder WS [CMD...]`
    let dc = |args: &[&str]| -> std::process::Output {
        std::process::Command::new(&cli)
            .arg(args[0])
            .args([
                "--docker-path",
                podman.to_str().unwrap(),
                "--workspace-folder",
                env.ws.to_str().unwrap(),
            ])
            .args(&args[1..])
            .current_dir(&env.ws)
            .output()
            .expect("running the devcontainer CLI")
    };

    fs::write(
        env.config.join("silo/devcontainer.user.json"),
        r#"{ "customizations": { "vscode": { "extensions": ["user.ext"] } }, "remoteEnv": { "FROM_USER": "1" } }"#,
    )
    .unwrap();
    let user_toml = env.config.join("silo/silo.user.toml");
    let text = fs::read_to_string(&user_toml)
        .unwrap()
        .replace("private_paths = []", "private_paths = [\"/data/\"]");
    fs::write(&user_toml, text).unwrap();
    env.silo(&["init"]).success();
    env.write(
        ".silo/devcontainer.json",
        r#"{ "customizations": { "vscode": { "extensions": ["project.ext"] } } }"#,
    );
    env.silo(&["devcontainer"]).success().stderr_has("Created");
    let id = env.id();
    let dev = format!("silo-{id}-dev");

    // The reference client reads the file as silo wrote it.
    let out = dc(&["read-configuration"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let config = &read["configuration"];
    assert_eq!(config["image"], format!("localhost/silo-{id}"));
    assert_eq!(config["remoteUser"], "alice");
    assert_eq!(config["workspaceFolder"], format!("/workspace/{id}/proj"));
    assert_eq!(
        config["customizations"]["vscode"]["extensions"],
        serde_json::json!(["user.ext", "project.ext"])
    );
    let mounts = config["mounts"].as_array().unwrap();
    assert!(
        mounts
            .iter()
            .any(|m| m.as_str().unwrap().ends_with("target=/data")),
        "{mounts:?}"
    );
    let run_args: Vec<&str> = config["runArgs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(
        run_args.windows(2).any(|w| w == ["--name", dev.as_str()]),
        "{run_args:?}"
    );
    for arg in ["--cap-drop=ALL", "--pids-limit=1024"] {
        assert!(
            run_args.contains(&arg),
            "{arg} missing from runArgs {run_args:?}"
        );
    }

    // It creates the devcontainer with podman; commands run in the workspace as the user.
    let out = dc(&["up"]);
    assert!(
        out.status.success(),
        "devcontainer up failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(container_exists(&env, &dev));
    let out = dc(&[
        "exec",
        "sh",
        "-c",
        "id -un; pwd; echo $FROM_USER; touch from-devcontainer",
    ]);
    assert!(
        out.status.success(),
        "devcontainer exec failed ({:?}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("alice\n/workspace/{id}/proj\n1\n")
    );
    assert_eq!(
        fs::metadata(env.ws.join("from-devcontainer"))
            .unwrap()
            .uid(),
        0,
        "owned by the host user"
    );

    // silo acts on the container the client made.
    env.silo(&["devcontainer", "status"])
        .success()
        .stdout_is("Running\n");
    let output = env
        .silo_with_input(
            &env.ws,
            &["devcontainer", "connect"],
            "hostname
exit 4
",
        )
        .output;
    assert_eq!(output.status.code(), Some(4));
    assert_eq!(String::from_utf8_lossy(&output.stdout), format!("{dev}\n"));
    env.silo(&["devcontainer", "stop"]).success();
    assert!(!container_exists(&env, &dev));
    env.silo(&["devcontainer", "status"])
        .success()
        .stdout_is("Stopped\n");

    // An existing file is kept without --update and replaced with it.
    set_workspace(&env, &env.ws, "network", &["ports = [\"3000:3000\"]"]);
    let before = env.read(".devcontainer.json");
    env.silo(&["devcontainer"])
        .success()
        .stderr_has("already exists");
    assert_eq!(env.read(".devcontainer.json"), before);
    env.silo(&["devcontainer", "--update"])
        .success()
        .stderr_has("Updated");
    let updated: serde_json::Value = serde_json::from_str(&env.read(".devcontainer.json")).unwrap();
    assert_eq!(updated["forwardPorts"], serde_json::json!([3000]));
}

/// Offline `nix flake check`: every .nix file of the repository parses, and the library
/// with silo's module evaluates against the fixtures (nothing is built).
#[test]
fn nix_library_parses_and_evaluates() {
    let Some(instantiate) = common::find_in_path("nix-instantiate") else {
        assert!(
            !common::e2e_required(),
            "SILO_E2E is set, but nix-instantiate is missing"
        );
        eprintln!("skipping: nix-instantiate is missing");
        return;
    };
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![repo.join("flake.nix")];
    let mut dirs = vec![
        repo.join("nix"),
        repo.join("modules"),
        repo.join("tests/fixtures"),
    ];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "nix") {
                files.push(path);
            }
        }
    }
    assert!(files.len() > 10, "{files:?}");
    for file in &files {
        must(
            std::process::Command::new(&instantiate)
                .arg("--parse")
                .arg(file),
            &format!("parsing {}", file.display()),
        );
    }

    let out = std::process::Command::new(&instantiate)
        .args(["--eval", "--strict", "--json"])
        .arg(repo.join("tests/fixtures/eval-library.nix"))
        .arg("--arg")
        .arg("repo")
        .arg(repo)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let eval: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(eval["off"]["podman"]["enable"], false);
    assert_eq!(eval["on"]["podman"]["enable"], true);
    assert_eq!(eval["podmanService"], true);
    assert!(
        eval["off"]["shellCommand"]
            .as_str()
            .unwrap()
            .ends_with("/bin/bash --login"),
        "{eval}"
    );
    assert_eq!(eval["image"], "silo-ab3f9c12.tar");
}

/// Two terminals running silo on the same new workspace at once: one builds and
/// creates, the other waits and joins; neither fails with a podman name conflict.
#[test]
fn two_silos_at_once_do_not_race() {
    root_only!();
    let env = real_env!(None);
    env.silo(&["init"]).success();
    let mut stderr = String::new();
    for run in env.silo_at_once(2, &["start"]) {
        run.success();
        stderr += &run.stderr();
    }
    assert_eq!(stderr.matches("Creating silo-").count(), 1, "{stderr}");
    assert!(
        stderr.contains("Waiting for another silo command on this workspace"),
        "{stderr}"
    );
    let name = format!("silo-{}", env.id());
    assert!(container_exists(&env, &name));
    assert_eq!(silo_exec(&env, &env.ws, "echo joined"), "joined\n");
}

/// What the image function itself writes, seen through silo in a container with nested
/// Podman on: accounts, Nix, ownership, Fedora's symlinks, the nested-Podman helpers,
/// the labels, and one activation per container even across restarts.
#[test]
fn the_image_as_silo_runs_it() {
    root_only!();
    let env = real_env!(None);
    env.silo(&["init", "--podman"]).success();
    env.silo(&["start"]).success();
    let id = env.id();
    let name = format!("silo-{id}");
    let script = r#"
        grep -c '^root:x:0:0:' /etc/passwd
        grep '^alice:' /etc/passwd
        grep '^alice:' /etc/group
        cat /etc/subuid /etc/subgid
        cat /etc/nix/nix.conf | grep -v '^ *#'
        stat -c '%u:%g %a' /silo/persistence /home/alice /nix/store /usr/local/bin/newuidmap /usr/local/bin/newgidmap
        for dir in /bin /lib /lib64 /sbin; do readlink $dir; done
        command -v nix | cut -d/ -f1-3
        echo "isolation=$BUILDAH_ISOLATION"
        grep -c fuse-overlayfs ~/.config/containers/storage.conf
    "#;
    let out = silo_exec(&env, &env.ws, script);
    let expected = "1
alice:x:1000:1000::/home/alice:/bin/sh
alice:x:1000:
alice:1:999
alice:1001:64535
alice:1:999
alice:1001:64535
experimental-features = nix-command flakes
sandbox = false
build-users-group =
1000:1000 755
1000:1000 755
1000:1000 755
0:0 4755
0:0 4755
usr/bin
usr/lib
usr/lib64
usr/sbin
/nix/store
isolation=chroot
1
";
    assert_eq!(out, expected);

    let labels = image_labels(&env, &format!("localhost/silo-{id}"));
    assert_eq!(labels["io.silo.user"], "alice");
    assert_eq!(labels["io.silo.version"], env!("CARGO_PKG_VERSION"));
    // The fixture inputs are path: flakes, recorded by their content hash.
    assert!(
        labels["io.silo.nixpkgs"]
            .as_str()
            .unwrap()
            .starts_with("sha256-"),
        "{labels}"
    );
    assert!(
        labels["io.silo.home-manager"]
            .as_str()
            .unwrap()
            .starts_with("sha256-"),
        "{labels}"
    );
    assert!(
        labels["org.opencontainers.image.base.name"]
            .as_str()
            .unwrap()
            .contains("@sha256:"),
        "{labels}"
    );

    // Activation happens once per container: a restart keeps the activated home.
    let activations = || {
        let logs = env.podman(&["logs", &name]);
        String::from_utf8_lossy(&logs.stderr)
            .matches("silo: activating home-manager")
            .count()
            + String::from_utf8_lossy(&logs.stdout)
                .matches("silo: activating home-manager")
                .count()
    };
    assert_eq!(activations(), 1);
    assert!(
        env.podman(&["restart", "--time", "1", &name])
            .status
            .success()
    );
    assert_eq!(silo_exec(&env, &env.ws, "echo back"), "back\n");
    assert_eq!(activations(), 1);
}
