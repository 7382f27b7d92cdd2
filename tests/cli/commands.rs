//! The commands around the chain: list, gc, rm --all, doctor, man, completions.

use std::fs;
use std::path::Path;

use crate::common::TestEnv;

/// The three listing calls `list`, `gc` and `rm --all` make, whatever the number of
/// workspaces.
const LISTINGS: [&str; 3] = [
    "images --filter label=io.silo.id --format json",
    "ps --all --filter label=io.silo.id --format json",
    "volume ls --filter label=io.silo.scope --format json",
];

fn sorted_calls(env: &TestEnv) -> Vec<String> {
    let mut calls: Vec<String> = env.calls("podman").iter().map(|c| c.join(" ")).collect();
    calls.sort();
    calls
}

/// A second workspace beside the main one, started with a private path, and its id.
fn second_workspace(env: &TestEnv, name: &str, start: bool) -> (std::path::PathBuf, String) {
    let dir = env.workspace(name);
    env.silo_in(&dir, &["init"]).success();
    let toml = dir.join(".silo/silo.toml");
    let text = fs::read_to_string(&toml)
        .unwrap()
        .replace("private_paths = []", "private_paths = [\"/data/\"]");
    fs::write(&toml, text).unwrap();
    env.silo_in(&dir, &["trust"]).success();
    env.silo_in(&dir, &[if start { "start" } else { "build" }])
        .success();
    let id = common_id(&dir);
    (dir, id)
}

fn common_id(dir: &Path) -> String {
    crate::common::id_of(dir).expect("an id")
}

fn archives(env: &TestEnv) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(env.state.join("store"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".tar"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn list_shows_every_workspace_from_podmans_labels() {
    let env = TestEnv::with_fakes();
    env.silo(&["start"]).success();
    let id = env.id();
    // Built, never started: only the image and the trust record know it.
    let (other, other_id) = second_workspace(&env, "other", false);

    env.clear_calls();
    let run = env.silo_in(Path::new("/"), &["list"]);
    run.success();
    assert_eq!(sorted_calls(&env), LISTINGS, "one call of each kind");
    let out = run.stdout();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[0].starts_with("ID        CONTAINER  IMAGE       SIZE     VOLUMES  LAST USED"),
        "{out}"
    );
    let line_of = |id: &str| *lines.iter().find(|l| l.starts_with(id)).unwrap();
    let main = line_of(&id);
    assert!(
        main.contains(" running    up to date  4.34 MB  0        now "),
        "{main}"
    );
    assert!(main.ends_with(&env.ws.display().to_string()), "{main}");
    let second = line_of(&other_id);
    assert!(
        second.contains(" missing    up to date  4.34 MB  0 "),
        "{second}"
    );
    assert!(second.ends_with(&other.display().to_string()), "{second}");

    // An edit of home.nix makes the image outdated; a removed directory is gone.
    env.edit(".silo/home.nix", |t| t + "\n");
    fs::remove_dir_all(&other).unwrap();
    let out = env.silo_in(Path::new("/"), &["list"]).success().stdout();
    assert!(out.contains(" running    outdated "), "{out}");
    assert!(
        out.contains(&format!("{} (gone)", other.display())),
        "{out}"
    );

    let json: serde_json::Value =
        serde_json::from_str(&env.silo(&["list", "--json"]).success().stdout()).unwrap();
    let rows = json["workspaces"].as_array().unwrap();
    let row = rows.iter().find(|r| r["id"] == id.as_str()).unwrap();
    assert_eq!(row["workspace"]["state"], "present");
    assert_eq!(row["container"]["state"], "running");
    assert_eq!(row["image"]["state"], "outdated");
    assert_eq!(row["image"]["size"], 4_344_856);
    let gone = rows.iter().find(|r| r["id"] == other_id.as_str()).unwrap();
    assert_eq!(gone["workspace"]["state"], "gone");
    assert_eq!(gone["image"]["state"], "unknown");
    assert_eq!(gone["volumes"], serde_json::json!([]));
    assert_eq!(json["shared_volumes"], serde_json::json!([]));

    // --under keeps what is (or was) below a directory.
    let out = env
        .silo_in(
            Path::new("/"),
            &["list", "--under", &other.display().to_string()],
        )
        .success()
        .stdout();
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(out.contains(&other_id) && !out.contains(&id), "{out}");
    env.silo(&["list", "--under", "/nowhere"])
        .success()
        .stdout_is("")
        .stderr_has("No silo workspaces here");
}

#[test]
fn gc_removes_only_what_workspaces_that_are_gone_left() {
    let env = TestEnv::with_fakes();
    env.silo(&["start"]).success();
    let id = env.id();
    // A rebuild leaves the previous archive behind.
    env.edit(".silo/home.nix", |t| t + "\n");
    env.silo(&["build"]).success();
    // The build record lists them oldest first.
    let record: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(env.home.join(format!(".local/state/silo/builds/{id}.json"))).unwrap(),
    )
    .unwrap();
    let live_archives: Vec<String> = record["archives"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            Path::new(a.as_str().unwrap())
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(live_archives.len(), 2);
    let (other, other_id) = second_workspace(&env, "other", true);
    env.silo_in(&other, &["stop"]).success();
    let other_volume = env
        .calls_starting("podman", &["volume", "create"])
        .last()
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .to_owned();
    fs::remove_dir_all(&other).unwrap();
    // An image a rebuild replaced, which no container uses.
    fs::write(
        env.state.join("replaced-0000"),
        format!(
            r#"[{{"Id":"img-0000","Labels":{{"io.silo.fingerprint":"0000","io.silo.id":"{id}"}}}}]"#
        ),
    )
    .unwrap();

    env.clear_calls();
    let run = env.silo(&["gc", "--dry-run"]);
    run.success().stderr_has("nothing was removed (--dry-run)");
    let out = run.stdout();
    let other_archive = archives(&env)
        .into_iter()
        .find(|a| a.ends_with(&format!("-silo-{other_id}.tar")))
        .unwrap();
    let store = env.state.join("store");
    let expected = format!(
        "\
Workspace {id} at {ws}:
  image img-0000 (replaced by a rebuild) (4.34 MB)
  Nix build result {old} (16 B)
Workspace {other_id} at {other} (gone):
  image localhost/silo-{other_id} (4.34 MB)
  volume {other_volume} (private data, 0 B)
  Nix build result {other_archive} (16 B)
",
        ws = env.ws.display(),
        old = store.join(&live_archives[0]).display(),
        other = other.display(),
        other_archive = store.join(&other_archive).display(),
    );
    // The two workspaces in the order of their ids.
    let mut want: Vec<String> = expected
        .split("Workspace ")
        .filter(|s| !s.is_empty())
        .map(|s| format!("Workspace {s}"))
        .collect();
    want.sort();
    assert_eq!(out, want.concat());
    assert_eq!(sorted_calls(&env), LISTINGS, "a dry run only looks");

    // Without a terminal, gc needs --yes.
    env.silo(&["gc"])
        .code_is(1)
        .stderr_has("nothing was removed: there is no terminal to ask on; run `silo gc --yes`");
    assert!(env.state.join(format!("image-{other_id}")).exists());

    let image: serde_json::Value = serde_json::from_str(
        &fs::read_to_string(env.state.join(format!("image-{other_id}"))).unwrap(),
    )
    .unwrap();
    let other_image = image[0]["Id"].as_str().unwrap().to_owned();

    env.clear_calls();
    env.silo(&["gc", "--yes"])
        .success()
        .stderr_has("Removed; freed about");
    let mut removals: Vec<String> = env
        .calls("podman")
        .iter()
        .map(|c| c.join(" "))
        .filter(|c| !LISTINGS.contains(&c.as_str()))
        .collect();
    removals.sort();
    let mut expected = [
        "rmi img-0000".to_owned(),
        format!("rmi {other_image}"),
        format!("volume rm {other_volume}"),
    ];
    expected.sort();
    assert_eq!(removals, expected);
    let deletes = env.calls_starting("nix", &["--extra-experimental-features"]);
    assert_eq!(deletes.len(), 2, "{deletes:?}");
    assert_eq!(archives(&env), [live_archives[1].clone()]);
    // The live workspace keeps its image, container and current archive.
    assert!(env.state.join(format!("image-{id}")).exists());
    assert!(
        env.state
            .join(format!("container-silo-{id}.running"))
            .exists()
    );
    env.silo(&["gc", "--dry-run"])
        .success()
        .stdout_is("")
        .stderr_has("Nothing to clean up.");
}

#[test]
fn gc_keeps_a_workspace_it_cannot_tell_about_and_a_running_one() {
    let env = TestEnv::with_fakes();
    let (other, other_id) = second_workspace(&env, "other", true);
    // The directory is renamed while its container runs: the container stays, with
    // its data.
    fs::rename(&other, other.with_file_name("renamed")).unwrap();
    let run = env.silo(&["gc", "--dry-run"]);
    run.success().stderr_has(&format!(
        "note: kept workspace {other_id}: silo-{other_id} still running"
    ));
    assert_eq!(run.stdout(), "");
    // A silo.toml silo cannot parse: it cannot tell, so it keeps everything.
    let renamed = other.with_file_name("renamed");
    env.silo_in(&renamed, &["stop"]).success();
    fs::rename(&renamed, &other).unwrap();
    fs::write(other.join(".silo/silo.toml"), "[general\nid = ").unwrap();
    let run = env.silo(&["gc", "--dry-run"]);
    run.success().stderr_has("Nothing to clean up.");
}

#[test]
fn rm_all_removes_one_workspace_after_showing_it() {
    let env = TestEnv::with_fakes();
    let (dir, id) = second_workspace(&env, "proj2", true);
    let (_, keep_id) = second_workspace(&env, "keep", true);
    fs::write(dir.join(".silo/notes.md"), "mine").unwrap();
    let volume = env
        .calls_starting("podman", &["volume", "create"])
        .iter()
        .map(|c| c.rsplit(' ').next().unwrap().to_owned())
        .find(|v| v.contains(&id))
        .unwrap();

    // Without a terminal and without --yes: shown, nothing removed.
    env.clear_calls();
    let run = env.silo_in(&dir, &["rm", "--all"]);
    run.code_is(1)
        .stderr_has("run `silo rm --all --yes` to remove what is listed above")
        .stderr_has("note: kept .silo/notes.md (not silo's)");
    let shown = run.stdout();
    for line in [
        format!("This removes the workspace {id} at {}:", dir.display()),
        format!("  container silo-{id} (running: it is stopped)"),
        format!("  image localhost/silo-{id} (4.34 MB)"),
        format!("  volume {volume} (private data, 0 B)"),
        "  its approval (silo trust)".to_owned(),
        "  files silo generated in .silo/: home.user.nix, settings.json, state.json, .lock, lib/ (".to_owned(),
        "  YOUR FILES in .silo/ (usually kept in git; keep them with --keep-config): .gitignore, flake.lock, flake.nix, home.nix, silo.toml".to_owned(),
    ] {
        assert!(shown.contains(&line), "{line:?} missing:\n{shown}");
    }
    assert!(shown.contains("  Nix build result "), "{shown}");
    assert_eq!(sorted_calls(&env), LISTINGS);
    assert!(dir.join(".silo/silo.toml").exists());

    // On a terminal, "n" keeps everything.
    let no = env.silo_on_terminal(&dir, &["rm", "--all"], "n\n");
    no.code_is(1);
    assert!(
        no.stdout().contains("Remove all of this? [y/N]"),
        "{}",
        no.stdout()
    );
    assert!(env.state.join(format!("container-silo-{id}")).exists());

    env.clear_calls();
    env.silo_in(&dir, &["rm", "--all", "--yes"])
        .success()
        .stderr_has(&format!(
            "Removed silo's files in {}",
            dir.join(".silo").display()
        ));
    let mut removals: Vec<String> = env
        .calls("podman")
        .iter()
        .map(|c| c.join(" "))
        .filter(|c| !LISTINGS.contains(&c.as_str()))
        .collect();
    removals.sort();
    assert_eq!(removals.len(), 3, "{removals:?}");
    assert_eq!(
        removals[0],
        format!("rm --force --time 10 --depend silo-{id}")
    );
    assert!(removals[1].starts_with("rmi img-"), "{removals:?}");
    assert_eq!(removals[2], format!("volume rm {volume}"));
    assert!(!archives(&env).iter().any(|a| a.contains(&id)));
    // Only the user's note is left, in .silo/.
    let left: Vec<String> = fs::read_dir(dir.join(".silo"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["notes.md"]);
    assert!(
        !env.config
            .join("silo/trusted")
            .read_dir()
            .unwrap()
            .any(|e| {
                fs::read_to_string(e.unwrap().path())
                    .unwrap()
                    .contains(&dir.display().to_string())
            }),
        "the approval is gone"
    );
    // The other workspace is untouched.
    assert!(
        env.state
            .join(format!("container-silo-{keep_id}.running"))
            .exists()
    );
    assert!(env.state.join(format!("image-{keep_id}")).exists());
}

#[test]
fn rm_all_keep_config_keeps_the_workspace_files_and_approval() {
    let env = TestEnv::with_fakes();
    env.silo(&["start"]).success();
    let id = env.id();
    let kept = || -> Vec<String> {
        [
            "silo.toml",
            "home.nix",
            "flake.nix",
            "flake.lock",
            ".gitignore",
        ]
        .iter()
        .map(|f| env.read(Path::new(".silo").join(f)))
        .collect()
    };
    let before = kept();
    env.silo(&["rm", "--all", "--keep-config", "--yes"])
        .success()
        .stderr_has("Removed silo's files in");
    assert_eq!(before, kept());
    assert!(!env.ws.join(".silo/lib").exists());
    assert!(!env.ws.join(".silo/settings.json").exists());
    assert!(!env.state.join(format!("image-{id}")).exists());
    // Still approved: silo starts it again without asking.
    env.silo(&["start"]).success();
    // --keep-config and --yes only go with --all.
    env.silo(&["rm", "--yes"]).code_is(2);
}

#[test]
fn doctor_checks_each_part_and_fails_on_a_problem() {
    let mut env = TestEnv::with_fakes();
    let run = env.silo(&["doctor"]);
    run.success().stderr_has("0 problems");
    let out = run.stdout();
    for line in [
        "ok       podman     Podman 5.4.2 (runtime crun, cgroup v2,",
        "ok       seccomp    Podman's default seccomp profile is there",
        "ok       nix        Nix 2.26",
        "ok       nix store  reachable (daemon)",
        "ok       flakes     a flake evaluates",
        "ok       sandbox    Nix builds in a sandbox",
    ] {
        assert!(out.contains(line), "{line:?} missing:\n{out}");
    }
    env.set("FAKE_NIX_VERSION", "2.3.16");
    env.set("FAKE_NIX_SANDBOX", "false");
    let run = env.silo(&["doctor"]);
    run.code_is(1).stderr_has("1 problem,");
    let out = run.stdout();
    assert!(
        out.contains("problem  nix        Nix 2.3 has no flakes; silo needs 2.4 or newer\n                    fix: install Nix 2.18 or newer"),
        "{out}"
    );
    env.set("FAKE_NIX_VERSION", "2.8.0");
    let json: serde_json::Value =
        serde_json::from_str(&env.silo(&["doctor", "--json"]).success().stdout()).unwrap();
    let sandbox = json
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "sandbox")
        .unwrap();
    assert_eq!(sandbox["status"], "warning");
    // In a workspace: its files and whether its settings are approved.
    env.silo(&["init"]).success();
    env.edit(".silo/silo.toml", |t| {
        t.replace("processes = 1024", "processes = 10")
    });
    let out = env.silo(&["doctor"]).success().stdout();
    assert!(
        out.contains("warning  trust      the workspace's settings are not approved"),
        "{out}"
    );
    env.edit(".silo/silo.toml", |t| t + "bogus = 1\n");
    env.silo(&["doctor"]).code_is(1);
}

#[test]
fn man_pages_and_completions() {
    let env = TestEnv::with_fakes();
    let page = env.silo(&["man"]).success().stdout();
    assert!(page.contains(".TH silo 1"), "{page}");
    assert!(page.contains("silo\\-gc(1)"), "{page}");
    let dir = env.dir.path().join("man1");
    env.silo(&["man", "--dir", &dir.display().to_string()])
        .success()
        .stderr_has("manual pages");
    for page in [
        "silo.1",
        "silo-list.1",
        "silo-rm.1",
        "silo-devcontainer-status.1",
    ] {
        assert!(dir.join(page).is_file(), "{page}");
    }
    let bash = env.silo(&["completions", "bash"]).success().stdout();
    // The inputs of `silo update`, the commands of `silo help`, the shells.
    assert!(bash.contains("nixpkgs home-manager"), "update inputs");
    assert!(
        bash.contains("init build start volume connect"),
        "help topics"
    );
    assert!(bash.contains("bash elvish fish powershell zsh"), "shells");
    // zsh too; clap's fish, elvish and PowerShell scripts complete no argument values.
    let zsh = env.silo(&["completions", "zsh"]).success().stdout();
    assert!(zsh.contains("nixpkgs"), "update inputs in zsh");
}
