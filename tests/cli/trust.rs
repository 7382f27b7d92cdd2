//! Workspace trust and the host-side file rules: what a workspace someone else wrote, or
//! a change behind the user's back, can and cannot make silo do.

use std::fs;
use std::os::unix::fs::{MetadataExt, symlink};
use std::time::{Duration, SystemTime};

use crate::common::TestEnv;
use crate::*;

/// Nothing was applied: no container made or started, no Nix run.
fn nothing_applied(env: &TestEnv) {
    assert!(env.calls_starting("podman", &["create"]).is_empty());
    assert!(env.calls_starting("podman", &["start"]).is_empty());
    assert!(
        env.calls_starting("podman", &["volume", "create"])
            .is_empty()
    );
    assert!(env.calls("nix").is_empty(), "{:?}", env.calls("nix"));
}

#[test]
fn a_change_to_silo_toml_waits_for_approval_and_names_dangerous_arguments() {
    let env = TestEnv::with_fakes();
    env.silo(&["start"]).success();
    env.silo(&["stop"]).success();
    // As a `git pull` (or the container, before .silo/ was read-only) would change it.
    env.edit(".silo/silo.toml", |text| {
        text.replace(
            "  \"--cap-drop=ALL\",",
            "  \"--cap-add=SYS_ADMIN\",\n  \"-v\", \"/:/host\",\n  \"--cap-drop=ALL\",",
        )
    });
    env.clear_calls();
    let run = env.silo(&["start"]);
    run.code_is(1)
        .stderr_has("changed since they were approved")
        .stderr_has("create_args: --cap-drop=ALL --cap-add=NET_BIND_SERVICE --security-opt no-new-privileges -> --cap-add=SYS_ADMIN -v /:/host --cap-drop=ALL")
        .stderr_has("DANGEROUS create_args")
        .stderr_has("--cap-add SYS_ADMIN: adds the capability SYS_ADMIN")
        .stderr_has("-v /:/host: mounts the host path /")
        .stderr_has("hint: review and approve these settings with `silo trust` in ");
    nothing_applied(&env);
    env.silo(&["build"]).code_is(1).stderr_has("silo trust");
    env.silo(&["volume", "setup"])
        .code_is(1)
        .stderr_has("silo trust");
    env.silo(&["devcontainer"])
        .code_is(1)
        .stderr_has("silo trust");
    nothing_applied(&env);
    assert!(!env.ws.join(".devcontainer.json").exists());

    let status = env.silo(&["status"]);
    status
        .code_is(3)
        .stderr_has("the settings of this workspace changed since they were approved")
        .stderr_has("note: dangerous create_args: --cap-add SYS_ADMIN");

    env.silo(&["trust"])
        .success()
        .stderr_has("-v /:/host: mounts the host path /")
        .stderr_has("Approved");
    env.silo(&["trust"])
        .success()
        .stderr_has("nothing changed since");
    env.silo(&["start"]).success();
    assert!(create_line(&env).contains("--cap-add=SYS_ADMIN -v /:/host --cap-drop=ALL"));

    // Revoked, it waits again.
    env.silo(&["stop"]).success();
    env.silo(&["trust", "--revoke"])
        .success()
        .stderr_has("Revoked");
    env.silo(&["start"])
        .code_is(1)
        .stderr_has("has not approved");
}

#[test]
fn on_a_terminal_silo_asks() {
    let env = TestEnv::with_fakes();
    init(&env, &[]);
    env.edit(".silo/silo.toml", |text| {
        text.replace("ports = []", "ports = [\"8080:8080\"]")
    });
    env.clear_calls();
    let no = env.silo_on_terminal(&env.ws, &["start"], "n\n");
    assert_eq!(no.code(), Some(1), "{}", no.stdout());
    assert!(
        no.stdout().contains("ports: (none) -> 8080:8080"),
        "{}",
        no.stdout()
    );
    assert!(
        no.stdout()
            .contains("Approve these settings and continue? [y/N]")
    );
    assert!(no.stdout().contains("not approved; nothing was changed"));
    nothing_applied(&env);
    let yes = env.silo_on_terminal(&env.ws, &["start"], "y\n");
    assert_eq!(yes.code(), Some(0), "{}", yes.stdout());
    assert!(create_line(&env).contains("--publish 8080:8080"));
    // Approved once: no more questions.
    env.silo(&["status"]).success().stdout_is("Running\n");
    assert!(!env.silo(&["status"]).stderr().contains("not approved"));
}

#[test]
fn a_workspace_silo_did_not_create_is_shown_whole_home_nix_included() {
    let env = TestEnv::with_fakes();
    init(&env, &[]);
    // A repository someone else wrote: their .silo/ with their id and home.nix.
    let cloned = env.workspace("cloned");
    fs::create_dir_all(cloned.join(".silo")).unwrap();
    let toml = env.read(".silo/silo.toml").replace(&env.id(), "clone001");
    fs::write(cloned.join(".silo/silo.toml"), toml).unwrap();
    fs::write(
        cloned.join(".silo/home.nix"),
        "{ pkgs, ... }:\n{\n  home.packages = [ pkgs.hello ];\n}\n",
    )
    .unwrap();
    env.clear_calls();
    let run = env.silo_in(&cloned, &["start"]);
    run.code_is(1)
        .stderr_has("silo has not approved the workspace")
        .stderr_has("(it was not created by `silo init` here)")
        .stderr_has("id                 clone001")
        .stderr_has("      |   home.packages = [ pkgs.hello ];");
    nothing_applied(&env);
    env.silo_in(&cloned, &["trust"]).success();
    env.silo_in(&cloned, &["start"]).success();

    // Approved (not created): a later change of home.nix needs approval too.
    env.silo_in(&cloned, &["stop"]).success();
    fs::write(
        cloned.join(".silo/home.nix"),
        "{ pkgs, ... }:\n{\n  home.packages = [ pkgs.hello pkgs.evil ];\n}\n",
    )
    .unwrap();
    env.silo_in(&cloned, &["start"])
        .code_is(1)
        .stderr_has("      -   home.packages = [ pkgs.hello ];")
        .stderr_has("      +   home.packages = [ pkgs.hello pkgs.evil ];");
}

#[test]
fn a_copied_id_is_refused() {
    let env = TestEnv::with_fakes();
    init(&env, &[]);
    let copy = env.workspace("copy");
    fs::create_dir_all(copy.join(".silo")).unwrap();
    fs::copy(env.ws.join(".silo/silo.toml"), copy.join(".silo/silo.toml")).unwrap();
    fs::copy(env.ws.join(".silo/home.nix"), copy.join(".silo/home.nix")).unwrap();
    env.silo_in(&copy, &["trust"])
        .code_is(1)
        .stderr_has(&format!(
            "the workspace at {} already has the id {}",
            env.ws.display(),
            env.id()
        ));
}

#[test]
fn links_planted_in_silo_dir_are_never_followed() {
    let env = TestEnv::with_fakes();
    init(&env, &[]);
    let victim = env.dir.path().join("victim");
    fs::create_dir_all(victim.join("sub")).unwrap();
    fs::write(victim.join("precious.nix"), "keep").unwrap();
    fs::write(victim.join("sub/precious"), "keep").unwrap();
    fs::write(victim.join("flake.nix"), "keep").unwrap();
    let silo = env.ws.join(".silo");
    // Links where silo's generated directory and files go, and a clean-up list that
    // names the victim's files.
    fs::create_dir_all(silo.join("lib")).unwrap();
    symlink(&victim, silo.join("lib/nix")).unwrap();
    symlink(&victim, silo.join("lib/modules")).unwrap();
    symlink(victim.join("flake.nix"), silo.join("flake.nix")).unwrap();
    fs::write(
        silo.join("lib/.silo-manifest"),
        "nix/precious.nix\nmodules/sub/precious\n../../victim/precious.nix\n",
    )
    .unwrap();
    env.silo(&["build"]).success();
    for file in ["precious.nix", "sub/precious", "flake.nix"] {
        assert_eq!(
            fs::read_to_string(victim.join(file)).unwrap(),
            "keep",
            "{file}"
        );
    }
    assert!(silo.join("lib/nix").symlink_metadata().unwrap().is_dir());
    assert!(
        !silo
            .join("flake.nix")
            .symlink_metadata()
            .unwrap()
            .is_symlink()
    );

    // A link as the lock: refused, and nothing created where it points.
    fs::remove_file(silo.join(".lock")).unwrap();
    symlink(victim.join("made-by-silo"), silo.join(".lock")).unwrap();
    env.silo(&["build", "--rebuild"])
        .code_is(1)
        .stderr_has(".silo/.lock is a symbolic link");
    assert!(!victim.join("made-by-silo").exists());
    fs::remove_file(silo.join(".lock")).unwrap();

    // Files read through a link are refused.
    fs::rename(silo.join("silo.toml"), victim.join("silo.toml")).unwrap();
    symlink(victim.join("silo.toml"), silo.join("silo.toml")).unwrap();
    env.silo(&["status"])
        .code_is(1)
        .stderr_has(".silo/silo.toml is a symbolic link");
    fs::remove_file(silo.join("silo.toml")).unwrap();
    fs::rename(victim.join("silo.toml"), silo.join("silo.toml")).unwrap();

    // .silo itself as a link.
    let other = env.workspace("other");
    symlink(&silo, other.join(".silo")).unwrap();
    env.silo_in(&other, &["status"]).code_is(1).stderr_has(
        "/other/.silo is a symbolic link; silo does not use a workspace through a link",
    );
}

#[test]
fn temporary_files_of_a_killed_run_are_removed() {
    let env = TestEnv::with_fakes();
    init(&env, &[]);
    let left = env.ws.join(".silo/.silo-tmp-0123456789abcdef");
    fs::write(&left, "half-written").unwrap();
    fs::File::options()
        .write(true)
        .open(&left)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(600))
        .unwrap();
    env.silo(&["build"]).success();
    assert!(!left.exists());
}

#[test]
fn a_deeply_nested_home_nix_is_an_error_not_a_crash() {
    let env = TestEnv::with_fakes();
    init(&env, &[]);
    let deep = format!(
        "{{ ... }}: {{ x = {}{}; }}",
        "[".repeat(60_000),
        "]".repeat(60_000)
    );
    env.write(".silo/home.nix", &deep);
    env.silo(&["init", "--podman"])
        .code_is(1)
        .stderr_has("home.nix\ncaused by: it nests 60001 levels deep");
    assert_eq!(env.read(".silo/home.nix"), deep);
    assert!(env.read(".silo/silo.toml").contains("podman = false"));
}

#[test]
fn another_users_workspace_is_refused_until_approved_then_maps_to_its_owner() {
    if !is_root() {
        crate::common::skip("needs root to give the workspace to another uid");
        return;
    }
    let env = TestEnv::with_fakes();
    init(&env, &[]);
    // Another user's project (the trust record of root's init is forgotten).
    fs::remove_dir_all(env.config.join("silo/trusted")).unwrap();
    let chown = std::process::Command::new("chown")
        .args(["-R", "12345:12346"])
        .arg(&env.ws)
        .status()
        .unwrap();
    assert!(chown.success());
    env.clear_calls();
    env.silo(&["start"])
        .code_is(1)
        .stderr_has("It belongs to another user (uid 12345), not to you.");
    nothing_applied(&env);
    env.silo(&["trust"])
        .success()
        .stderr_has("(uid 12345), not to you");
    env.silo(&["start"]).success();
    let line = create_line(&env);
    assert!(line.contains("--uidmap 1000:12345:1"), "{line}");
    assert!(line.contains("--gidmap 1000:12346:1"), "{line}");
    assert!(
        !line.contains(":0:"),
        "no container id may be host root: {line}"
    );
    // What silo wrote into the workspace stays the owner's.
    assert_eq!(fs::metadata(env.ws.join(".silo")).unwrap().uid(), 12345);
}
