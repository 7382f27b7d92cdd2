//! The container as a boundary, attacked from inside real silo containers with the real
//! podman and nix, as root and rootless: nothing inside may reach or change the host,
//! another workspace's data, or the configuration of the next container.
//!
//! The attacks are small shell scripts (tests/probes/*.sh) and a static C program
//! (tests/probes/probe.c) for what busybox cannot do. They run only inside containers,
//! through `silo exec` (or `podman exec` for the container's root); the host side of
//! each test only prepares files and checks what it finds afterwards.

#[macro_use]
mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::real::{container_exists, must, set_workspace, silo_exec};
use common::{E2E_USER, TestEnv};

/// The probe program, compiled once per test run (statically: the fixture image has no
/// C library). Never run on the host.
fn probe_binary() -> &'static Path {
    static PROBE: OnceLock<PathBuf> = OnceLock::new();
    PROBE.get_or_init(|| {
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("silo-probe");
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/probes/probe.c");
        must(
            std::process::Command::new("cc")
                .args(["-static", "-O2", "-o"])
                .arg(&out)
                .arg(&source),
            "compiling tests/probes/probe.c (apt install gcc libc6-dev)",
        );
        out
    })
}

/// Copies the probes into a workspace, where its container sees them.
fn install_probes(env: &TestEnv, ws: &Path) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/probes");
    for script in ["silo-dir.sh", "persist.sh", "privileges.sh"] {
        fs::copy(dir.join(script), ws.join(script)).unwrap();
    }
    fs::copy(probe_binary(), ws.join("probe")).unwrap();
    fs::set_permissions(ws.join("probe"), fs::Permissions::from_mode(0o755)).unwrap();
    env.give_to_user();
}

/// Lines of a probe's output that say an attack worked.
fn allowed(out: &str) -> Vec<&str> {
    out.lines().filter(|l| l.starts_with("allowed")).collect()
}

/// Every file below a directory with its content, for before/after comparisons.
fn contents(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            let meta = fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                stack.push(path);
            } else {
                out.push((path.clone(), fs::read(&path).unwrap_or_default()));
            }
        }
    }
    out.sort();
    out
}

/// The attacks of the issue, against one workspace and a second one beside it.
fn attack(env: &TestEnv) {
    // Root and rootless run at once: each its own tag (file names, paths).
    let tag = format!(
        "b{}{}",
        std::process::id(),
        if env.user.is_some() { "u" } else { "r" }
    );
    env.edit_user_toml(|text| {
        text.replace(
            "shared_paths = []",
            &format!("shared_paths = [\"$HOME/.cache/probe-{tag}/\"]"),
        )
        .replace(
            "private_paths = []",
            "private_paths = [\"/data/\", \"$HOME/.probe_history\"]",
        )
    });
    env.give_to_user();
    env.silo(&["init"]).success();
    install_probes(env, &env.ws);
    let start = env.silo(&["start"]);
    start.success();
    let start_err = start.stderr();
    let id = env.id();
    let name = format!("silo-{id}");

    // Limits that cannot be applied are said, every time.
    let rootless = env.user.is_some();
    let cgroup_v1 = !Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    if rootless && cgroup_v1 {
        assert!(start_err.contains("are not applied"), "{start_err}");
        env.silo(&["status"])
            .success()
            .stderr_has("are not applied");
    }

    // 1. The configuration of the next container cannot be written from inside.
    let before = contents(&env.ws.join(".silo"));
    let out = silo_exec(env, &env.ws, "sh silo-dir.sh");
    assert_eq!(out.lines().count(), 11, "{out}");
    assert!(allowed(&out).is_empty(), "{out}");
    assert_eq!(contents(&env.ws.join(".silo")), before, ".silo/ changed");

    // 2. Persisted paths cannot be turned into host paths, nor reach another
    //    workspace's data, whatever the container does to its volumes.
    let marker = std::env::temp_dir().join(format!("silo-host-marker-{tag}"));
    fs::write(&marker, "host").unwrap();
    let out = silo_exec(env, &env.ws, &format!("sh persist.sh {tag}"));
    assert!(out.ends_with("planted\n"), "{out}");
    assert!(allowed(&out).is_empty(), "{out}");
    env.silo(&["stop"]).success();
    env.silo(&["start"]).success();
    let out = silo_exec(
        env,
        &env.ws,
        &format!(
            "cat /data/secret-{tag} ~/.probe_history; find / -name silo-host-marker-{tag} 2>/dev/null; true"
        ),
    );
    assert_eq!(
        out,
        format!("secret-{tag}\nhistory\n"),
        "host /tmp leaked in"
    );
    fs::remove_file(&marker).unwrap();

    // A second workspace shares the volume the first planted links in.
    let other = env.workspace("other");
    env.silo_in(&other, &["start"]).success();
    let out = silo_exec(
        env,
        &other,
        &format!(
            "ls -a ~/.cache/probe-{tag}/ | tr '\\n' ' '; find / -name 'secret-{tag}' 2>/dev/null; wc -c < ~/.probe_history; ls /data; true"
        ),
    );
    assert_eq!(
        out, ". .. root up 0\n",
        "the other workspace's data is visible"
    );

    // 3 and 7. Privileges: capabilities, no-new-privileges, the system call filter, no
    // user namespaces, no host processes or environment, no set-id files for root.
    let out = silo_exec(env, &env.ws, "sh privileges.sh");
    let has = |line: &str| assert!(out.lines().any(|l| l == line), "{line:?} not in:\n{out}");
    // Podman gives a non-root user the added capability too; nothing else.
    has("CapEff: 0000000000000400");
    has("CapBnd: 0000000000000400");
    has("NoNewPrivs: 1");
    has("Seccomp: 2");
    has("host secret in env: 0");
    has("host secret in pid 1: 0");
    has("unshare -U: blocked");
    has("clone userns: blocked: Operation not permitted");
    has("setcap as user: blocked: Operation not permitted");
    let pid1 = out.lines().find_map(|l| l.strip_prefix("pid1: ")).unwrap();
    assert!(
        ["catatonit", "podman-init", "tini"].contains(&pid1),
        "{out}"
    );
    let processes: usize = out
        .lines()
        .find_map(|l| l.strip_prefix("processes: "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(processes < 10, "host processes visible? {out}");
    if !rootless {
        has("chmod u+s: blocked");
        has("chmod g+s: blocked");
        has("open 04755: blocked: Operation not permitted");
    }
    // Container root, with the capabilities the default create_args leave.
    let as_root = |script: &str| {
        let out = env.podman(&[
            "exec",
            "--user",
            "0",
            "--workdir",
            &format!("/workspace/{id}/proj"),
            &name,
            "sh",
            "-c",
            script,
        ]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // (The workspace is the user's, not the container root's: root works in /tmp.)
    assert_eq!(
        as_root("touch /tmp/setcap-root && ./probe setcap /tmp/setcap-root"),
        "blocked: Operation not permitted\n"
    );
    if !rootless {
        assert_eq!(
            as_root(
                "./probe open-setuid /tmp/setuid-root; touch /tmp/s; chmod 6755 /tmp/s || echo no"
            ),
            "blocked: Operation not permitted\nno\n"
        );
    }
    no_host_privilege_in(&env.ws);

    // 6. Podman knows every volume is in use. (Not `podman volume prune`: it would
    // remove other volumes of this machine.)
    for volume in volumes_of(env, &id) {
        let rm = env.podman(&["volume", "rm", &volume]);
        assert!(
            !rm.status.success(),
            "podman volume rm {volume} removed a volume in use"
        );
    }
    assert_eq!(
        silo_exec(env, &env.ws, &format!("cat /data/secret-{tag}")),
        format!("secret-{tag}\n"),
        "data lost to a volume rm or prune"
    );
    env.silo(&["stop"]).success();
    env.silo_in(&other, &["stop"]).success();
}

/// The volumes a workspace's persisted paths live in (by its test's prefix).
fn volumes_of(env: &TestEnv, id: &str) -> Vec<String> {
    let prefix = format!("{}-", env.volume_prefix().unwrap());
    let out = env.podman(&["volume", "ls", "--quiet"]);
    let names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|n| n.starts_with(&prefix) && (n.contains(id) || n.contains("-shared-")))
        .map(str::to_owned)
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    names
}

/// No file the container made in the workspace is a set-user-ID or set-group-ID file of
/// host root, or carries file capabilities that hold on the host.
fn no_host_privilege_in(ws: &Path) {
    for entry in fs::read_dir(ws).unwrap() {
        let path = entry.unwrap().path();
        let meta = fs::symlink_metadata(&path).unwrap();
        let setid = meta.mode() & 0o6000 != 0;
        assert!(
            !(setid && (meta.uid() == 0 || meta.gid() == 0)),
            "{} is a set-id file of host root: {:o}",
            path.display(),
            meta.mode()
        );
        let mut value = [0u8; 64];
        if let Ok(len) = rustix::fs::lgetxattr(&path, "security.capability", &mut value) {
            // Namespaced (v3) capabilities name the root they hold for; only host root
            // (0) would matter here, and v2 holds everywhere.
            let version = value[3];
            let root = u32::from_le_bytes([value[20], value[21], value[22], value[23]]);
            assert!(
                len >= 24 && version == 3 && root != 0,
                "{} carries file capabilities for the host",
                path.display()
            );
        }
    }
}

#[test]
fn attacks_from_inside_as_root() {
    root_only!();
    let mut env = real_env!(None);
    // In silo's environment, to show it does not reach the container.
    env.set("SILO_PROBE_HOST_SECRET", "1");
    attack(&env);
}

#[test]
fn attacks_from_inside_rootless() {
    root_only!();
    let mut env = real_env!(Some(E2E_USER));
    env.set("SILO_PROBE_HOST_SECRET", "1");
    attack(&env);
}

/// Root podman: the pids limit holds against a fork burst, and the container recovers.
#[test]
fn a_fork_burst_hits_the_pids_limit_as_root() {
    root_only!();
    let env = real_env!(None);
    env.silo(&["init"]).success();
    set_workspace(&env, &env.ws, "limits", &["processes = 48"]);
    env.silo(&["start"]).success();
    // Once the limit is reached nothing can fork, so the count is read with builtins.
    let out = silo_exec(
        &env,
        &env.ws,
        "(i=0; while [ $i -lt 300 ]; do sleep 5 & i=$((i+1)); done) >/dev/null 2>&1; \
         for f in /sys/fs/cgroup/pids/pids.current /sys/fs/cgroup/pids.current; do \
         [ -r $f ] && read n < $f && echo $n && break; done; true",
    );
    let running: usize = out.trim().parse().unwrap();
    // The burst ran into the limit: far fewer than 300 processes, at most the limit.
    assert!(
        (20..=48).contains(&running),
        "{running} processes with a limit of 48"
    );
    // When the sleeps end, the container takes commands again.
    let start = std::time::Instant::now();
    while !env.silo(&["exec", "--", "true"]).output.status.success() {
        assert!(
            start.elapsed().as_secs() < 30,
            "the container did not recover"
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

/// A workspace owned by another user: refused until approved, then the container user
/// is that user on the host (not root).
#[test]
fn another_users_workspace_maps_to_its_owner() {
    root_only!();
    let env = real_env!(None);
    env.silo(&["init"]).success();
    fs::remove_dir_all(env.config.join("silo/trusted")).unwrap();
    must(
        std::process::Command::new("chown")
            .args(["-R", &format!("{E2E_USER}:{E2E_USER}")])
            .arg(&env.ws),
        "giving the workspace to the test user",
    );
    let run = env.silo(&["start"]);
    run.code_is(1)
        .stderr_has(&format!("It belongs to {E2E_USER} (uid "))
        .stderr_has("silo trust");
    assert!(!container_exists(&env, &format!("silo-{}", env.id())));
    env.silo(&["trust"]).success().stderr_has(E2E_USER);
    env.silo(&["start"]).success();
    silo_exec(&env, &env.ws, "touch made-inside; id -u");
    let owner = fs::metadata(&env.ws).unwrap().uid();
    assert_ne!(owner, 0);
    assert_eq!(
        fs::metadata(env.ws.join("made-inside")).unwrap().uid(),
        owner
    );
}

/// Nested Podman needs user namespaces: they stay allowed, and `status --json` says
/// what that gives up.
#[test]
fn nested_podman_says_what_it_gives_up() {
    root_only!();
    let env = real_env!(Some(E2E_USER));
    env.silo(&["init", "--podman"]).success();
    install_probes(&env, &env.ws);
    env.silo(&["start"]).success();
    let out = silo_exec(&env, &env.ws, "./probe clone-userns");
    assert_eq!(out, "allowed\n");
    let json: serde_json::Value =
        serde_json::from_str(&env.silo(&["status", "--json"]).stdout()).unwrap();
    assert_eq!(json["isolation"]["user_namespaces_blocked"], false);
    let gives_up = json["isolation"]["gives_up"].to_string();
    for what in [
        "user namespaces",
        "capabilities",
        "no-new-privileges",
        "/dev/fuse",
    ] {
        assert!(gives_up.contains(what), "{what} missing from {gives_up}");
    }
}

/// Data of the seed's single volume moves into the per-path volumes on first use; a
/// path with a link planted on the way (towards another workspace's data) does not.
#[test]
fn data_of_the_single_volume_moves_into_its_own_volumes() {
    root_only!();
    let env = real_env!(None);
    env.silo(&["init"]).success();
    env.silo(&["build"]).success();
    let id = env.id();
    let legacy = env.volume_prefix().unwrap().to_owned();
    let tag = format!("m{}", std::process::id());
    let image = format!("localhost/silo-{id}");
    must(
        std::process::Command::new("podman").args([
            "run",
            "--rm",
            "--user",
            "0",
            "--mount",
            &format!("type=volume,source={legacy},target=/v"),
            "--entrypoint",
            "/bin/sh",
            &image,
            "-c",
            &format!(
                "mkdir -p /v/shared/home/alice/.cache/{tag} /v/{id}/data /v/victim00/data /v/shared/srv \
                 && echo cached > /v/shared/home/alice/.cache/{tag}/pkg && echo mine > /v/{id}/data/f \
                 && echo secret > /v/victim00/data/secret && ln -s ../victim00/data /v/shared/srv/data"
            ),
        ]),
        "writing data in the old layout",
    );
    env.edit_user_toml(|text| {
        text.replace(
            "shared_paths = []",
            &format!("shared_paths = [\"$HOME/.cache/{tag}/\", \"/srv/data/\"]"),
        )
        .replace("private_paths = []", "private_paths = [\"/data/\"]")
    });
    let run = env.silo(&["start"]);
    run.success()
        .stderr_has(&format!("moved shared/home/alice/.cache/{tag}"))
        .stderr_has(&format!("moved {id}/data"))
        .stderr_has("skipped shared/srv/data: a link on the way (not moved)");
    let out = silo_exec(
        &env,
        &env.ws,
        &format!("cat ~/.cache/{tag}/pkg /data/f; ls -A /srv/data"),
    );
    assert_eq!(out, "cached\nmine\n");
    // The moved data left the old volume; the other workspace's data stayed there.
    let left = env.podman(&[
        "run",
        "--rm",
        "--mount",
        &format!("type=volume,source={legacy},target=/v"),
        "--entrypoint",
        "/bin/sh",
        &image,
        "-c",
        "find /v -type f | sort",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&left.stdout),
        "/v/victim00/data/secret\n"
    );
    // Once moved, never again.
    env.silo(&["stop"]).success();
    let again = env.silo(&["start"]);
    again.success();
    assert!(!again.stderr().contains("Moving"), "{}", again.stderr());
}
