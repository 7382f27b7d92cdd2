//! `silo devcontainer`: generate `.devcontainer.json` for VS Code and the Dev Containers
//! CLI from three merged sources, and act on the devcontainer they create.

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde_json::{Map, Value, json};

use crate::config::{DEVCONTAINER_USER_JSON_FILE, defaults};
use crate::container::{self, Record};
use crate::image::{self, BuildOptions};
use crate::lifecycle::{self, ENTER, Enter};
use crate::safe_fs::Outcome;
use crate::session::Session;
use crate::volume::MountForm;
use crate::workspace::{DEVCONTAINER_JSON, SILO_DIR};

/// The generated file VS Code reads, at the project root.
const ROOT_DEVCONTAINER_JSON: &str = ".devcontainer.json";

/// Merges `later` into `earlier`: objects key by key, arrays concatenated in order,
/// anything else replaced by the later value.
pub fn merge(earlier: Value, later: Value) -> Value {
    match (earlier, later) {
        (Value::Object(mut a), Value::Object(b)) => {
            for (key, value) in b {
                let merged = match a.remove(&key) {
                    Some(old) => merge(old, value),
                    None => value,
                };
                a.insert(key, merged);
            }
            Value::Object(a)
        }
        (Value::Array(mut a), Value::Array(b)) => {
            a.extend(b);
            Value::Array(a)
        }
        (_, later) => later,
    }
}

/// A source file: missing counts as `{}`.
fn read_source(text: Option<String>, path: &Path) -> Result<Value> {
    match text {
        Some(text) => parse_source(&text, path),
        None => Ok(Value::Object(Map::new())),
    }
}

/// A source's text: a JSON object (comments and trailing commas allowed, as in any
/// devcontainer.json), or an error naming the file and position.
pub fn parse_source(text: &str, path: &Path) -> Result<Value> {
    let value: Value = serde_json::from_str(&crate::jsonc::strip(text)).map_err(|e| {
        anyhow::anyhow!(
            "invalid JSON in {} at line {}, column {}: {e}",
            path.display(),
            e.line(),
            e.column()
        )
    })?;
    if !value.is_object() {
        bail!("{} must contain a JSON object {{ ... }}", path.display());
    }
    Ok(value)
}

/// silo's part of `.devcontainer.json`: the same image, user mapping, mounts, limits and
/// `create_args` as the silo container, under the name `silo-<id>-dev`.
pub fn silo_part(
    s: &Session,
    record: &Record,
    mapping_args: &[String],
    form: &MountForm,
    seccomp_profile: Option<&Path>,
) -> Value {
    let names = &s.names;
    let mut run_args: Vec<String> = vec![
        "--name".into(),
        names.dev_container.clone(),
        "--hostname".into(),
        names.dev_container.clone(),
    ];
    run_args.extend(mapping_args.iter().cloned());
    run_args.extend(container::limit_args(&record.limits()));
    if let Some(profile) = seccomp_profile {
        run_args.extend([
            "--security-opt".into(),
            format!("seccomp={}", profile.display()),
        ]);
    }
    run_args.extend(crate::network::devcontainer_args(&record.network));
    run_args.extend(record.create_args.iter().cloned());
    // `.silo/` read-only over the workspace, as in the silo container.
    let mut mounts = vec![format!(
        "type=bind,source=${{localWorkspaceFolder}}/{SILO_DIR},target={},ro",
        Record::silo_target(names)
    )];
    mounts.extend(record.mounts.iter().flat_map(|m| form.args(m)));
    let ports: Vec<u16> = if record.network.egress == crate::config::values::Egress::All {
        s.config.ports.iter().map(|p| p.container).collect()
    } else {
        Vec::new()
    };
    let user = s.config.user.as_str();
    json!({
        "name": names.dev_container,
        "image": names.image,
        "containerUser": user,
        "remoteUser": user,
        // The user mapping in runArgs already gives the host user's files to the image user.
        "updateRemoteUserUID": false,
        // Keep the image's entrypoint: it activates home-manager.
        "overrideCommand": false,
        "init": true,
        "workspaceMount": format!("type=bind,source=${{localWorkspaceFolder}},target={},relabel=shared", names.mount_target),
        "workspaceFolder": names.mount_target,
        "mounts": mounts,
        "forwardPorts": ports,
        "runArgs": run_args,
        "customizations": {
            "vscode": {
                "settings": {
                    "terminal.integrated.defaultProfile.linux": "silo",
                    "terminal.integrated.profiles.linux": { "silo": { "path": ENTER } }
                }
            }
        }
    })
}

/// `silo devcontainer [--update]`.
pub fn generate(s: &Session, update: bool) -> Result<()> {
    // VS Code applies what this file says: the settings must be approved first.
    s.require_trust()?;
    image::ensure(s, BuildOptions::default(), false)?;
    if s.silo
        .write_new(DEVCONTAINER_JSON, defaults::DEVCONTAINER_JSON)?
        == Outcome::Created
    {
        eprintln!("Created {}", s.silo.join(DEVCONTAINER_JSON).display());
        let (store, _) = s.trust_verdict()?;
        store.absorb_created_devcontainer_json(&s.trust_subject()?)?;
    }
    let root = s.ws.root_dir()?;
    let target = root.join(ROOT_DEVCONTAINER_JSON);
    let existed = root.entry(ROOT_DEVCONTAINER_JSON)?.is_some();
    if existed && !update {
        eprintln!(
            "{} already exists; `silo devcontainer --update` replaces it",
            target.display()
        );
        return Ok(());
    }
    let sources = [
        read_source(
            s.user_dir.read(DEVCONTAINER_USER_JSON_FILE)?,
            &s.user_dir.devcontainer_json(),
        )?,
        read_source(s.silo.read(DEVCONTAINER_JSON)?, &s.ws.devcontainer_json())?,
    ];
    let record = s.record()?;
    let mountpoints = lifecycle::volume_setup(s, &record.mounts)?;
    let form = s.mount_form(mountpoints)?;
    let profile = s.seccomp_profile(record.seccomp)?;
    let silo = silo_part(s, &record, &s.mapping_args()?, &form, profile.as_deref());
    let merged = sources
        .into_iter()
        .chain([silo])
        .reduce(merge)
        .expect("three sources");
    let text = format!(
        "{GENERATED}{}\n",
        serde_json::to_string_pretty(&merged).expect("plain data")
    );
    root.write_atomic(ROOT_DEVCONTAINER_JSON, &text)
        .with_context(|| format!("writing {}", target.display()))?;
    eprintln!(
        "{} {}",
        if existed { "Updated" } else { "Created" },
        target.display()
    );
    if !existed {
        eprintln!(
            "note: it holds settings of this machine and user; keep it out of git (add it to .gitignore), the project's part belongs in .silo/devcontainer.json"
        );
    }
    if record.network.proxied() {
        eprintln!(
            "note: egress = \"allow\" needs silo's proxy, which VS Code's container does not get: it has no network (--network=none)"
        );
    }
    Ok(())
}

/// The first lines of the generated file (devcontainer.json is JSON with comments).
const GENERATED: &str = "\
// Generated by silo (`silo devcontainer --update` regenerates it) from
// devcontainer.user.json, .silo/devcontainer.json and silo's own part. It holds
// settings of this machine and user (the user mapping, the system call filter's path,
// Podman 4's volume paths): do not commit it; put project settings in
// .silo/devcontainer.json.
";

/// `silo devcontainer connect`: a login shell in the running devcontainer.
pub fn connect(s: &Session) -> Result<i32> {
    let name = &s.names.dev_container;
    match s.inspect_container(name)? {
        None => bail!(
            "{name} does not exist; VS Code creates it (Dev Containers: Reopen in Container), or run `devcontainer up --docker-path podman --workspace-folder {}`",
            s.ws.root.display()
        ),
        Some(info) if !info.running => {
            bail!("{name} is not running; start it from VS Code or with `podman start {name}`")
        }
        Some(_) => s
            .runner
            .interactive(&lifecycle::exec_invocation(s, name, &Enter::Shell)),
    }
}

/// `silo devcontainer stop`: stops and removes the devcontainer.
pub fn stop(s: &Session) -> Result<()> {
    lifecycle::stop_and_remove(s, &s.names.dev_container)
}

/// `silo devcontainer status`: `Running` or `Stopped`.
pub fn status(s: &Session) -> Result<()> {
    let running = s
        .inspect_container(&s.names.dev_container)?
        .is_some_and(|i| i.running);
    println!("{}", if running { "Running" } else { "Stopped" });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_merge_recursively_arrays_concatenate_scalars_override() {
        let user = json!({"a": 1, "o": {"x": [1], "keep": true}, "list": ["u"], "s": "user"});
        let project = json!({"o": {"x": [2], "y": 3}, "list": ["p"], "s": "project"});
        let silo = json!({"list": ["silo"], "s": "silo", "o": {"y": 4}});
        let merged = [user, project, silo].into_iter().reduce(merge).unwrap();
        assert_eq!(
            merged,
            json!({"a": 1, "o": {"x": [1, 2], "keep": true, "y": 4}, "list": ["u", "p", "silo"], "s": "silo"})
        );
    }

    #[test]
    fn different_kinds_take_the_later_value() {
        assert_eq!(
            merge(json!({"k": [1]}), json!({"k": {"a": 1}})),
            json!({"k": {"a": 1}})
        );
        assert_eq!(
            merge(json!({"k": {"a": 1}}), json!({"k": null})),
            json!({"k": null})
        );
    }

    #[test]
    fn sources() {
        let dir = tempfile::tempdir().unwrap();
        let read = |path: &Path| read_source(std::fs::read_to_string(path).ok(), path);
        assert_eq!(read(&dir.path().join("missing.json")).unwrap(), json!({}));
        // Comments and trailing commas are fine, as in any devcontainer.json.
        let jsonc = dir.path().join("jsonc.json");
        std::fs::write(&jsonc, "{\n  // mine\n  \"a\": [1,],\n}\n").unwrap();
        assert_eq!(read(&jsonc).unwrap(), json!({"a": [1]}));
        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, "{\n  // note\n  \"a\": 1\n  \"b\": 2\n}\n").unwrap();
        let msg = read(&bad).unwrap_err().to_string();
        assert!(
            msg.starts_with(&format!(
                "invalid JSON in {} at line 4, column 3",
                bad.display()
            )),
            "{msg}"
        );
        let list = dir.path().join("list.json");
        std::fs::write(&list, "[]").unwrap();
        assert!(
            read(&list)
                .unwrap_err()
                .to_string()
                .contains("must contain a JSON object")
        );
    }
}
