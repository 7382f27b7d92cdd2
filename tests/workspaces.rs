//! `silo list`, `silo gc` and `silo rm --all` with the real podman and nix, as root and
//! rootless. Every run is confined to the test's own workspaces: `--under` the test's
//! directory, volumes with the test's own prefix, build records in the test's home; the
//! machine's other containers, images and volumes are never touched.

#[macro_use]
mod common;

use std::fs;
use std::path::Path;

use common::real::container_exists;
use common::{E2E_USER, TestEnv};

fn exists(env: &TestEnv, what: &str, name: &str) -> bool {
    env.podman(&[what, "exists", name]).status.success()
}

/// The archives the build record of `id` lists, oldest first.
fn recorded_archives(env: &TestEnv, id: &str) -> Vec<String> {
    let path = env.home.join(format!(".local/state/silo/builds/{id}.json"));
    let Ok(text) = fs::read_to_string(path) else {
        return Vec::new();
    };
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json["archives"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect()
}

fn private_volumes(env: &TestEnv, id: &str) -> Vec<String> {
    let out = env.podman(&[
        "volume",
        "ls",
        "--quiet",
        "--filter",
        &format!("label=io.silo.scope={id}"),
    ]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

fn list_gc_and_rm_all(env: &TestEnv) {
    env.edit_user_toml(|text| text.replace("private_paths = []", "private_paths = [\"/data/\"]"));
    env.give_to_user();
    let under = env.dir.path().display().to_string();

    // A: running, rebuilt once (its first archive is superseded).
    env.silo(&["start"]).success();
    let a = env.id();
    env.edit(".silo/home.nix", |t| {
        t.replace(
            "{\n  silo.podman.enable",
            "{\n  home.sessionVariables.GC = \"1\";\n  silo.podman.enable",
        )
    });
    env.silo(&["build"]).success();
    let a_archives = recorded_archives(env, &a);
    assert_eq!(a_archives.len(), 2, "{a_archives:?}");
    // B: started and stopped; its image and private volume stay.
    let b_dir = env.workspace("b");
    env.silo_in(&b_dir, &["start"]).success();
    env.silo_in(&b_dir, &["stop"]).success();
    let b = common::id_of(&b_dir).unwrap();
    let b_archive = recorded_archives(env, &b).pop().unwrap();
    assert_eq!(private_volumes(env, &b).len(), 1);

    let run = env.silo_in(Path::new("/"), &["-v", "list", "--under", &under]);
    run.success();
    assert_eq!(
        run.stderr().matches("+ podman ").count(),
        3,
        "{}",
        run.stderr()
    );
    let out = run.stdout();
    let line = |id: &str| {
        out.lines()
            .find(|l| l.starts_with(id))
            .unwrap_or_else(|| panic!("{id} missing:\n{out}"))
            .to_owned()
    };
    // A's container was created before the rebuild; the image is what home.nix says.
    assert!(line(&a).contains(" running    up to date "), "{out}");
    assert!(line(&a).ends_with(&env.ws.display().to_string()), "{out}");
    assert!(line(&b).contains(" missing    up to date "), "{out}");
    assert!(
        line(&b).contains("  1        "),
        "one private volume: {out}"
    );

    // B's directory goes away.
    fs::remove_dir_all(&b_dir).unwrap();
    let json: serde_json::Value = serde_json::from_str(
        &env.silo_in(Path::new("/"), &["list", "--json", "--under", &under])
            .success()
            .stdout(),
    )
    .unwrap();
    let rows = json["workspaces"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{json:#}");
    let row_b = rows.iter().find(|r| r["id"] == b.as_str()).unwrap();
    assert_eq!(row_b["workspace"]["state"], "gone");
    assert!(row_b["image"]["size"].as_u64().unwrap() > 0);

    // gc --dry-run lists what B left and A's superseded archive, and removes nothing.
    let run = env.silo_in(Path::new("/"), &["gc", "--dry-run", "--under", &under]);
    run.success();
    let plan = run.stdout();
    for expected in [
        format!("Workspace {b} at {} (gone):", b_dir.display()),
        format!("  image localhost/silo-{b} ("),
        format!("  Nix build result {b_archive} ("),
        format!("  Nix build result {} (", a_archives[0]),
        format!("Workspace {a} at {}:", env.ws.display()),
    ] {
        assert!(plan.contains(&expected), "{expected:?} missing:\n{plan}");
    }
    assert!(plan.contains(&format!("  volume {}", private_volumes(env, &b)[0])));
    assert!(
        !plan.contains(&a_archives[1]),
        "A's current archive stays:\n{plan}"
    );
    assert!(exists(env, "image", &format!("localhost/silo-{b}")));
    assert!(Path::new(&b_archive).exists());

    env.silo_in(Path::new("/"), &["gc", "--yes", "--under", &under])
        .success()
        .stderr_has("Removed; freed about");
    assert!(!exists(env, "image", &format!("localhost/silo-{b}")));
    assert!(private_volumes(env, &b).is_empty());
    assert!(
        !Path::new(&b_archive).exists(),
        "B's archive left the store"
    );
    assert!(
        !Path::new(&a_archives[0]).exists(),
        "A's old archive left the store"
    );
    // A keeps everything it uses.
    assert!(Path::new(&a_archives[1]).exists());
    assert!(container_exists(env, &format!("silo-{a}")));
    assert!(exists(env, "image", &format!("localhost/silo-{a}")));
    assert_eq!(private_volumes(env, &a).len(), 1);
    env.silo_in(Path::new("/"), &["gc", "--dry-run", "--under", &under])
        .success()
        .stderr_has("Nothing to clean up.");

    // rm --all removes A whole, its running container included.
    env.silo(&["rm", "--all"])
        .code_is(1)
        .stderr_has("run `silo rm --all --yes`");
    env.silo(&["rm", "--all", "--yes"]).success();
    assert!(!container_exists(env, &format!("silo-{a}")));
    assert!(!exists(env, "image", &format!("localhost/silo-{a}")));
    assert!(private_volumes(env, &a).is_empty());
    assert!(!Path::new(&a_archives[1]).exists());
    assert!(!env.ws.join(".silo").exists());
    env.silo_in(Path::new("/"), &["list", "--under", &under])
        .success()
        .stdout_is("");
}

#[test]
fn list_gc_and_rm_all_as_root() {
    root_only!();
    let env = real_env!(None);
    list_gc_and_rm_all(&env);
}

#[test]
fn list_gc_and_rm_all_rootless() {
    root_only!();
    let env = real_env!(Some(E2E_USER));
    list_gc_and_rm_all(&env);
}

#[test]
fn doctor_on_this_machine() {
    root_only!();
    for user in [None, Some(E2E_USER)] {
        let env = real_env!(user);
        let run = env.silo_in(Path::new("/"), &["doctor"]);
        let out = run.stdout();
        // The machine the tests run on has what they need.
        for check in ["podman", "seccomp", "nix store", "flakes"] {
            assert!(
                out.lines()
                    .any(|l| l.starts_with("ok") && l[9..].starts_with(check)),
                "{check} is not ok for {user:?}:\n{out}{}",
                run.stderr()
            );
        }
        if user.is_some() {
            assert!(
                out.contains("ok       network    /dev/net/tun is usable"),
                "{out}"
            );
            assert!(out.contains("ok       rootless   /etc/subuid: "), "{out}");
        }
    }
}
