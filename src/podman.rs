//! Podman command lines and the parsing of what podman prints. Nothing here runs a process.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Deserialize;

use crate::runner::{Invocation, Tool};

/// Labels silo puts on images (by the Nix image function) and containers (at create).
pub const LABEL_ID: &str = "io.silo.id";
pub const LABEL_FINGERPRINT: &str = "io.silo.fingerprint";
pub const LABEL_WORKSPACE: &str = "io.silo.workspace";
pub const LABEL_CONFIG: &str = "io.silo.config";

fn podman<S: Into<OsString>>(args: impl IntoIterator<Item = S>) -> Invocation {
    Invocation::new(Tool::Podman, args)
}

pub fn version() -> Invocation {
    podman(["--version"])
}

/// `(major, minor)` from `podman version 4.3.1`.
pub fn parse_version(stdout: &str) -> Option<(u32, u32)> {
    let version = stdout.split_whitespace().last()?;
    let mut parts = version.split(['.', '-']);
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// The podman program on PATH as `path size mtime`: a different program (an upgrade)
/// gives a different identity.
pub fn program_identity() -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let path = std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("podman"))
        .find(|p| p.is_file())?;
    let meta = std::fs::metadata(&path).ok()?;
    Some(format!(
        "{} {} {}.{}",
        path.display(),
        meta.size(),
        meta.mtime(),
        meta.mtime_nsec()
    ))
}

/// The version kept for the program `identity`, if the cache holds it.
pub fn cached_version(cache: &str, identity: &str) -> Option<(u32, u32)> {
    let (key, version) = cache.trim_end().rsplit_once('\t')?;
    if key != identity {
        return None;
    }
    let (major, minor) = version.split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// Volume `subpath` mounts arrived in Podman 5.0.
pub fn supports_subpath(version: (u32, u32)) -> bool {
    version >= (5, 0)
}

/// What silo reads from `podman container inspect`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    pub running: bool,
    /// The host pid of the container's first process (0 when not running).
    pub pid: u32,
    pub labels: BTreeMap<String, String>,
}

/// What silo reads from `podman image inspect`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    pub labels: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawContainer {
    state: RawState,
    config: RawConfig,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawState {
    running: bool,
    #[serde(default)]
    pid: u32,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawConfig {
    labels: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawImage {
    labels: Option<BTreeMap<String, String>>,
}

pub fn inspect_container(name: &str) -> Invocation {
    podman(["container", "inspect", name])
}

pub fn inspect_image(name: &str) -> Invocation {
    podman(["image", "inspect", name])
}

/// `inspect` prints a JSON array, empty when the object does not exist (with exit 125).
fn parse_first<T: for<'de> Deserialize<'de>>(stdout: &str, what: &str) -> Result<Option<T>> {
    let trimmed = stdout.trim();
    if trimmed.is_empty() {
        return Ok(None);
    }
    let mut list: Vec<T> = serde_json::from_str(trimmed)
        .with_context(|| format!("unexpected output of podman {what} inspect"))?;
    Ok(if list.is_empty() {
        None
    } else {
        Some(list.remove(0))
    })
}

pub fn parse_container(stdout: &str) -> Result<Option<ContainerInfo>> {
    Ok(
        parse_first::<RawContainer>(stdout, "container")?.map(|c| ContainerInfo {
            running: c.state.running,
            pid: c.state.pid,
            labels: c.config.labels.unwrap_or_default(),
        }),
    )
}

pub fn parse_image(stdout: &str) -> Result<Option<ImageInfo>> {
    Ok(
        parse_first::<RawImage>(stdout, "image")?.map(|i| ImageInfo {
            labels: i.labels.unwrap_or_default(),
        }),
    )
}

/// One `podman inspect` of the container and the image together (what `status` needs).
pub fn inspect_both(container: &str, image: &str) -> Invocation {
    podman(["inspect", container, image])
}

/// The container and the image from `inspect_both`: podman prints what exists (and
/// fails for the rest); a container has a `State`, an image does not. A missing
/// container's name can match the image (`silo-x` is short for `localhost/silo-x`).
pub fn parse_both(stdout: &str) -> Result<(Option<ContainerInfo>, Option<ImageInfo>)> {
    let trimmed = stdout.trim();
    if trimmed.is_empty() {
        return Ok((None, None));
    }
    let list: Vec<serde_json::Value> =
        serde_json::from_str(trimmed).context("unexpected output of podman inspect")?;
    let mut container = None;
    let mut image = None;
    for value in list {
        if value.get("State").is_some() {
            let raw: RawContainer =
                serde_json::from_value(value).context("unexpected container in podman inspect")?;
            container.get_or_insert(ContainerInfo {
                running: raw.state.running,
                pid: raw.state.pid,
                labels: raw.config.labels.unwrap_or_default(),
            });
        } else {
            let raw: RawImage =
                serde_json::from_value(value).context("unexpected image in podman inspect")?;
            image.get_or_insert(ImageInfo {
                labels: raw.labels.unwrap_or_default(),
            });
        }
    }
    Ok((container, image))
}

pub fn load(archive: &Path) -> Invocation {
    let mut args: Vec<OsString> = vec!["load".into(), "--input".into()];
    args.push(archive.into());
    podman(args)
}

/// The lines `podman load` prints while it copies (progress, not news).
pub fn is_load_progress(line: &str) -> bool {
    [
        "Getting image source signatures",
        "Copying blob",
        "Copying config",
        "Writing manifest",
        "Storing signatures",
    ]
    .iter()
    .any(|prefix| line.starts_with(prefix))
}

/// The image name from `podman load` output: `Loaded image: x` (Podman 4.3+) or
/// `Loaded image(s): x,y` (older).
pub fn parse_loaded(stdout: &str) -> Option<String> {
    stdout.lines().find_map(|line| {
        let names = line
            .strip_prefix("Loaded image: ")
            .or_else(|| line.strip_prefix("Loaded image(s): "))?;
        names.split(',').next().map(|s| s.trim().to_owned())
    })
}

/// Removes this workspace's untagged images that no container uses.
pub fn prune_images(id: &str) -> Invocation {
    podman([
        "image",
        "prune",
        "--force",
        "--filter",
        &format!("label={LABEL_ID}={id}"),
    ])
}

pub fn remove_image(name: &str) -> Invocation {
    podman(["rmi", name])
}

pub fn start(name: &str) -> Invocation {
    podman(["start", name])
}

/// Stops gently (the init process forwards SIGTERM; after 10 s podman kills) and
/// removes, in one call; a missing container is no error.
pub fn stop_and_remove(name: &str) -> Invocation {
    podman(["rm", "--force", "--time", "10", name])
}

pub fn remove_container(name: &str) -> Invocation {
    podman(["rm", name])
}

/// The last lines a container printed.
pub fn logs_tail(name: &str, lines: u32) -> Invocation {
    podman(["logs", "--tail", &lines.to_string(), name])
}

pub fn remove_volume(name: &str) -> Invocation {
    podman(["volume", "rm", name])
}

/// How `podman exec` attaches the terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attach {
    pub tty: bool,
}

/// `podman exec` in the container's working directory; `term` is passed on with a TTY.
pub fn exec(
    container: &str,
    workdir: &str,
    attach: Attach,
    term: Option<&str>,
    command: &[OsString],
) -> Invocation {
    let mut args: Vec<OsString> = vec!["exec".into(), "--interactive".into()];
    if attach.tty {
        args.push("--tty".into());
        if let Some(term) = term {
            args.extend(["--env".into(), format!("TERM={term}").into()]);
        }
    }
    args.extend(["--workdir".into(), workdir.into(), container.into()]);
    args.extend(command.iter().cloned());
    podman(args)
}

/// A failed `podman exec` that never started the command: the container is missing or
/// not running. (The command's own exit codes pass through unchanged otherwise.)
pub fn exec_could_not_start(code: i32) -> bool {
    code == 125 || code == 255
}

/// What to do about a known `podman start` failure, recognised from its stderr.
pub fn start_hint(stderr: &str) -> Option<&'static str> {
    if stderr.contains("address already in use") {
        Some(
            "a forwarded port is already in use on the host: free it, or change [network].ports and run `silo stop && silo`",
        )
    } else if stderr.contains("statfs") && stderr.contains("no such file or directory") {
        Some(
            "a directory the container mounts no longer exists on the host: run `silo stop && silo` to recreate the container",
        )
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(parse_version("podman version 4.3.1\n"), Some((4, 3)));
        assert_eq!(parse_version("podman version 5.4.2"), Some((5, 4)));
        assert_eq!(parse_version("podman version 5.0.0-dev"), Some((5, 0)));
        assert!(!supports_subpath((4, 9)));
        assert!(supports_subpath((5, 0)));
    }

    #[test]
    fn version_cache() {
        assert_eq!(
            cached_version("/usr/bin/podman 1 2.3\t4.3\n", "/usr/bin/podman 1 2.3"),
            Some((4, 3))
        );
        assert_eq!(
            cached_version("/usr/bin/podman 1 2.3\t4.3\n", "/usr/bin/podman 9 2.3"),
            None
        );
        assert_eq!(cached_version("garbage", "x"), None);
    }

    #[test]
    fn container_inspect() {
        // Trimmed from Podman 4.3.1.
        let out = r#"[
     {
          "Id": "bcf1996df916",
          "State": { "OciVersion": "1.0.2-dev", "Status": "running", "Running": true, "Pid": 42 },
          "Image": "179a0e7e8e53",
          "Config": { "Hostname": "silo-ab3f9c12", "Labels": { "io.silo.id": "ab3f9c12" } }
     }
]"#;
        let info = parse_container(out).unwrap().unwrap();
        assert!(info.running);
        assert_eq!(info.labels["io.silo.id"], "ab3f9c12");
        // A missing container: podman prints `[]` and exits 125.
        assert_eq!(parse_container("[]\n").unwrap(), None);
        let stopped =
            r#"[{"State": {"Status": "exited", "Running": false}, "Config": {"Labels": null}}]"#;
        let info = parse_container(stopped).unwrap().unwrap();
        assert!(!info.running && info.labels.is_empty());
    }

    #[test]
    fn container_and_image_in_one_inspect() {
        // Trimmed from Podman 4.3.1's `podman inspect pb-c localhost/bb`.
        let both = r#"[{"Id": "b163ce1c0cdb", "Name": "pb-c", "State": {"Status": "running", "Running": true, "Pid": 4242}, "Config": {"Labels": {"io.silo.id": "x"}}}, {"Id": "fd37a2156c4c", "RepoTags": ["localhost/bb:latest"], "Labels": {"io.silo.fingerprint": "f1"}}]"#;
        let (container, image) = parse_both(both).unwrap();
        let container = container.unwrap();
        assert!(container.running);
        assert_eq!(container.pid, 4242);
        assert_eq!(image.unwrap().labels["io.silo.fingerprint"], "f1");
        // A missing container: its name resolved to the image, twice the image.
        let images = r#"[{"Id": "fd37", "RepoTags": [], "Labels": null}, {"Id": "fd37", "RepoTags": [], "Labels": null}]"#;
        let (container, image) = parse_both(images).unwrap();
        assert!(container.is_none() && image.is_some());
        assert_eq!(parse_both("").unwrap(), (None, None));
        assert!(parse_both("Error").is_err());
    }

    #[test]
    fn image_inspect() {
        let out = r#"[{"Id": "9c1f", "Labels": {"io.silo.fingerprint": "0123"}, "Size": 1}]"#;
        let info = parse_image(out).unwrap().unwrap();
        assert_eq!(info.labels["io.silo.fingerprint"], "0123");
        assert_eq!(parse_image("[]").unwrap(), None);
        assert!(parse_image("Error").is_err());
    }

    #[test]
    fn loaded_image_names() {
        assert_eq!(
            parse_loaded("Loaded image: localhost/silo-ab3f9c12:latest\n").as_deref(),
            Some("localhost/silo-ab3f9c12:latest")
        );
        assert_eq!(
            parse_loaded("Loaded image(s): localhost/a:latest,localhost/b:1\n").as_deref(),
            Some("localhost/a:latest")
        );
        assert_eq!(parse_loaded("nothing"), None);
    }

    #[test]
    fn exec_command_lines() {
        let cmd = [OsString::from("/opt/silo/bin/enter")];
        assert_eq!(
            exec(
                "silo-x",
                "/workspace/x/p",
                Attach { tty: true },
                Some("xterm-256color"),
                &cmd
            )
            .to_string(),
            "podman exec --interactive --tty --env TERM=xterm-256color --workdir /workspace/x/p silo-x /opt/silo/bin/enter"
        );
        let cmd = ["/opt/silo/bin/enter", "ls", "-la"].map(OsString::from);
        assert_eq!(
            exec("silo-x", "/w", Attach { tty: false }, Some("xterm"), &cmd).to_string(),
            "podman exec --interactive --workdir /w silo-x /opt/silo/bin/enter ls -la"
        );
    }

    #[test]
    fn start_failures() {
        // Captured from rootless Podman 4.3.1.
        let port = "Error: rootlessport listen tcp 0.0.0.0:8080: bind: address already in use";
        assert!(start_hint(port).unwrap().contains("[network].ports"));
        let gone = "Error: statfs /home/a/old-name: no such file or directory";
        assert!(start_hint(gone).unwrap().contains("silo stop && silo"));
        assert_eq!(start_hint("Error: something else"), None);
    }

    #[test]
    fn simple_command_lines() {
        assert_eq!(
            prune_images("ab3f9c12").to_string(),
            "podman image prune --force --filter label=io.silo.id=ab3f9c12"
        );
        assert_eq!(
            load(Path::new("/nix/store/x-image.tar.gz")).to_string(),
            "podman load --input /nix/store/x-image.tar.gz"
        );
        assert_eq!(
            stop_and_remove("silo-x").to_string(),
            "podman rm --force --time 10 silo-x"
        );
    }
}
