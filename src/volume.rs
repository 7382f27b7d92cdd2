//! `silo volume setup`: create the persisted paths on the volume `silo`, owned by the
//! container user, with a short-lived container of the workspace image.

use std::ffi::OsString;

use anyhow::{Context, Result};

use crate::container::PersistMount;
use crate::podman::{self, VOLUME, VOLUME_TARGET};
use crate::runner::{Invocation, Runner, Tool};

/// Creates each `d:<dir>` and `f:<file>` argument if missing; refuses a path that exists
/// as the other kind. Paths arrive as arguments, never inside the script text.
const SETUP_SCRIPT: &str = r#"set -eu
for entry do
  kind=${entry%%:*}
  path=${entry#*:}
  if [ "$kind" = d ]; then
    if [ -e "$path" ] && [ ! -d "$path" ]; then
      echo "silo: $path is configured as a directory (trailing slash) but exists as a file" >&2
      exit 1
    fi
    mkdir -p "$path"
  else
    if [ -d "$path" ]; then
      echo "silo: $path is configured as a file (no trailing slash) but exists as a directory" >&2
      exit 1
    fi
    mkdir -p "${path%/*}"
    [ -e "$path" ] || : > "$path"
  fi
done
"#;

/// The `podman run` that prepares the volume for `mounts`: the image's user, the same user
/// mapping as the workspace container, no network, no capabilities.
pub fn setup_invocation(
    image: &str,
    mapping_args: &[String],
    mounts: &[PersistMount],
) -> Invocation {
    let mut args: Vec<OsString> = [
        "run",
        "--rm",
        "--network=none",
        "--cap-drop=ALL",
        "--security-opt",
        "no-new-privileges",
    ]
    .map(OsString::from)
    .into();
    args.extend(mapping_args.iter().map(OsString::from));
    args.extend(
        [
            "--mount".to_owned(),
            format!("type=volume,source={VOLUME},target={VOLUME_TARGET}"),
            "--entrypoint".to_owned(),
            "/bin/sh".to_owned(),
            image.to_owned(),
            "-c".to_owned(),
            SETUP_SCRIPT.to_owned(),
            "silo-volume-setup".to_owned(),
        ]
        .map(OsString::from),
    );
    for mount in mounts {
        let kind = if mount.directory { 'd' } else { 'f' };
        args.push(format!("{kind}:{VOLUME_TARGET}/{}", mount.subpath).into());
    }
    Invocation::new(Tool::Podman, args)
}

/// The host directory of the volume, creating the volume if needed (Podman 4 bind-mounts
/// parts of it; two workspaces may create it at the same moment).
pub fn ensure_mountpoint(runner: &Runner) -> Result<String> {
    let inspect = || -> Result<Option<String>> {
        podman::parse_volume_mountpoint(&runner.capture(&podman::inspect_volume(VOLUME))?.stdout)
    };
    if let Some(mountpoint) = inspect()? {
        return Ok(mountpoint);
    }
    let created = runner.run(&podman::create_volume(VOLUME));
    match (inspect()?, created) {
        (Some(mountpoint), _) => Ok(mountpoint),
        (None, Err(e)) => Err(e).context("creating the volume `silo`"),
        (None, Ok(_)) => anyhow::bail!("podman created the volume `silo` but does not show it"),
    }
}

/// Runs the setup container.
pub fn setup(
    runner: &Runner,
    image: &str,
    mapping_args: &[String],
    mounts: &[PersistMount],
) -> Result<()> {
    runner
        .run(&setup_invocation(image, mapping_args, mounts))
        .context("setting up the persisted paths on the volume `silo`")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setup_command_line() {
        let mounts = [
            PersistMount {
                subpath: "shared".into(),
                target: "/silo/persistence/shared".into(),
                directory: true,
            },
            PersistMount {
                subpath: "ab3f9c12/data".into(),
                target: "/data".into(),
                directory: false,
            },
        ];
        let args = setup_invocation(
            "localhost/silo-ab3f9c12",
            &["--userns=keep-id:uid=1000,gid=1000".to_owned()],
            &mounts,
        )
        .args_lossy();
        let script_at = args.iter().position(|a| a == "-c").unwrap() + 1;
        assert_eq!(args[script_at], SETUP_SCRIPT);
        let mut shown = args.clone();
        shown[script_at] = "SCRIPT".into();
        assert_eq!(
            shown.join(" "),
            "run --rm --network=none --cap-drop=ALL --security-opt no-new-privileges \
             --userns=keep-id:uid=1000,gid=1000 --mount type=volume,source=silo,target=/silo/persistence \
             --entrypoint /bin/sh localhost/silo-ab3f9c12 -c SCRIPT silo-volume-setup \
             d:/silo/persistence/shared f:/silo/persistence/ab3f9c12/data"
        );
    }

    #[test]
    fn script_creates_files_and_directories_idempotently() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().display().to_string();
        let run = |entries: &[String]| {
            std::process::Command::new("/bin/sh")
                .arg("-c")
                .arg(SETUP_SCRIPT)
                .arg("setup")
                .args(entries)
                .output()
                .unwrap()
        };
        let entries = [
            format!("d:{root}/shared/home/a/.cache/uv"),
            format!("f:{root}/id/home/a/.history"),
        ];
        for _ in 0..2 {
            let out = run(&entries);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert!(dir.path().join("shared/home/a/.cache/uv").is_dir());
        assert!(dir.path().join("id/home/a/.history").is_file());
        let out = run(&[format!("d:{root}/id/home/a/.history")]);
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("configured as a directory"));
    }
}
