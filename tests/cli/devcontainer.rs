//! `silo devcontainer` and .devcontainer.json.

use std::fs;

use crate::common::TestEnv;
use crate::*;

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
    env.edit(".silo/silo.toml", |text| {
        text.replace("ports = []", "ports = [\"127.0.0.1:8080:80\"]")
            .replace("private_paths = []", "private_paths = [\"/data/\"]")
            .replace("memory = 0", "memory = 512")
    });
    env.silo(&["trust"]).success();
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
    run_args.extend(["--memory=512m", "--pids-limit=1024"].map(String::from));
    run_args.extend(env.seccomp_arg(false).split_whitespace().map(String::from));
    run_args.push("--env=A=1".into());
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
                format!("type=bind,source=${{localWorkspaceFolder}}/.silo,target=/workspace/{id}/proj/.silo,ro"),
                format!("type=volume,source={},target=/data", data_volume(&env)),
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
    // The image is built first, and the persisted paths' volumes exist.
    assert_eq!(env.calls_starting("podman", &["load"]).len(), 1);
    assert_eq!(env.calls_starting("podman", &["volume", "create"]).len(), 1);
}

/// The volume podman was asked to create for `/data`.
fn data_volume(env: &TestEnv) -> String {
    let creates = env.calls_starting("podman", &["volume", "create"]);
    let name = creates[0].rsplit(' ').next().unwrap().to_owned();
    assert!(
        name.starts_with(&format!("silo-{}-data-", env.id())),
        "{name}"
    );
    name
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
        .stderr_has(&format!(
            "silo: cannot generate .devcontainer.json\ncaused by: invalid JSON in {} at line 4, column 5: key must be a string",
            path.display()
        ));
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
