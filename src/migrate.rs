//! Moving persisted data out of the seed's single volume `silo` (`shared/<path>` and
//! `<id>/<path>`) into the per-path volumes, once: when a path's volume is created and
//! the old volume has data for it.
//!
//! The old volume was writable by every workspace, so its content is hostile: it is
//! read only inside a short-lived container (no network, no capabilities), a path with
//! a link anywhere along it is not moved, and links inside are copied as links.

use std::ffi::OsString;

use crate::runner::{Invocation, Tool};
use crate::volume::{PersistMount, Scope};

const LEGACY_TARGET: &str = "/silo/legacy";
const NEW_TARGET: &str = "/silo/new";

/// Moves each `KIND:OLD:INDEX[:NAME]` argument: `d` copies the directory OLD's content
/// into new volume INDEX, `f` copies the file OLD to NAME in it; then the old copy is
/// removed. Prints `moved OLD` or `skipped OLD: why` per entry.
const SCRIPT: &str = r#"set -u
old=/silo/legacy new=/silo/new status=0
has_link() {
  p=$old rest=$1
  while [ -n "$rest" ]; do
    part=${rest%%/*}
    if [ "$part" = "$rest" ]; then rest=; else rest=${rest#*/}; fi
    p=$p/$part
    if [ -L "$p" ]; then return 0; fi
  done
  return 1
}
for entry do
  kind=${entry%%:*} entry=${entry#*:}
  sub=${entry%%:*} entry=${entry#*:}
  index=${entry%%:*} name=${entry#*:}
  src=$old/$sub
  if has_link "$sub"; then echo "skipped $sub: a link on the way (not moved)"; continue; fi
  if [ "$kind" = d ] && [ -d "$src" ]; then
    cp -a "$src/." "$new/$index/" || { status=1; echo "failed $sub"; continue; }
  elif [ "$kind" = f ] && [ -f "$src" ]; then
    cp -a "$src" "$new/$index/$name" || { status=1; echo "failed $sub"; continue; }
  else
    continue
  fi
  rm -rf "$src" 2>/dev/null || echo "kept $sub: could not remove the old copy"
  echo "moved $sub"
done
exit $status
"#;

/// Where a persisted path lived in the old volume.
pub fn legacy_subpath(mount: &PersistMount) -> String {
    let part = match &mount.scope {
        Scope::Shared => "shared",
        Scope::Private(id) => id,
    };
    format!("{part}{}", mount.target)
}

/// The container that moves the old data of `mounts` (volumes created just now).
pub fn invocation(
    image: &str,
    mapping_args: &[String],
    legacy_volume: &str,
    mounts: &[&PersistMount],
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
    args.push("--mount".into());
    args.push(format!("type=volume,source={legacy_volume},target={LEGACY_TARGET}").into());
    for (i, mount) in mounts.iter().enumerate() {
        args.push("--mount".into());
        args.push(
            format!(
                "type=volume,source={},target={NEW_TARGET}/{i}",
                mount.volume
            )
            .into(),
        );
    }
    args.extend(
        [
            "--entrypoint",
            "/bin/sh",
            image,
            "-c",
            SCRIPT,
            "silo-migrate",
        ]
        .map(OsString::from),
    );
    for (i, mount) in mounts.iter().enumerate() {
        let sub = legacy_subpath(mount);
        let entry = if mount.directory {
            format!("d:{sub}:{i}")
        } else {
            format!("f:{sub}:{i}:{}", mount.file_name())
        };
        args.push(entry.into());
    }
    Invocation::new(Tool::Podman, args)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn mount(scope: Scope, target: &str, directory: bool) -> PersistMount {
        PersistMount {
            volume: format!("v{}", target.len()),
            scope,
            target: target.to_owned(),
            directory,
        }
    }

    #[test]
    fn command_line() {
        let dir = mount(Scope::Shared, "/home/a/.cache/uv", true);
        let file = mount(Scope::Private("ab3f9c12".into()), "/home/a/.hist", false);
        let inv = invocation(
            "localhost/silo-ab3f9c12",
            &["--userns=keep-id".into()],
            "silo",
            &[&dir, &file],
        );
        let mut args = inv.args_lossy();
        let script = args.iter().position(|a| a == SCRIPT).unwrap();
        args[script] = "SCRIPT".into();
        assert_eq!(
            args.join(" "),
            "run --rm --network=none --cap-drop=ALL --security-opt no-new-privileges --userns=keep-id \
             --mount type=volume,source=silo,target=/silo/legacy \
             --mount type=volume,source=v17,target=/silo/new/0 \
             --mount type=volume,source=v13,target=/silo/new/1 \
             --entrypoint /bin/sh localhost/silo-ab3f9c12 -c SCRIPT silo-migrate \
             d:shared/home/a/.cache/uv:0 f:ab3f9c12/home/a/.hist:1:.hist"
        );
    }

    /// The script on this machine's sh, with the two mount points as directories.
    fn run(root: &std::path::Path, entries: &[&str]) -> String {
        let script = SCRIPT
            .replace(LEGACY_TARGET, &root.join("legacy").display().to_string())
            .replace(NEW_TARGET, &root.join("new").display().to_string());
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(script)
            .arg("migrate")
            .args(entries)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    #[test]
    fn moves_data_and_refuses_planted_links() {
        let tmp = tempfile::tempdir().unwrap();
        let legacy = tmp.path().join("legacy");
        let new = tmp.path().join("new");
        std::fs::create_dir_all(legacy.join("shared/home/a/.cache/uv")).unwrap();
        std::fs::write(legacy.join("shared/home/a/.cache/uv/pkg"), "cached").unwrap();
        std::fs::create_dir_all(legacy.join("ab3f9c12/home/a")).unwrap();
        std::fs::write(legacy.join("ab3f9c12/home/a/.hist"), "ls\n").unwrap();
        // Another workspace's secret, and a link planted in the shared area towards it.
        std::fs::create_dir_all(legacy.join("victim00/data")).unwrap();
        std::fs::write(legacy.join("victim00/data/secret"), "s").unwrap();
        std::fs::create_dir_all(legacy.join("shared/srv")).unwrap();
        symlink("../victim00/data", legacy.join("shared/srv/data")).unwrap();
        for i in 0..3 {
            std::fs::create_dir_all(new.join(i.to_string())).unwrap();
        }
        let out = run(
            tmp.path(),
            &[
                "d:shared/home/a/.cache/uv:0",
                "f:ab3f9c12/home/a/.hist:1:.hist",
                "d:shared/srv/data:2",
                "d:shared/missing:2",
            ],
        );
        assert_eq!(
            out,
            "moved shared/home/a/.cache/uv\nmoved ab3f9c12/home/a/.hist\n\
             skipped shared/srv/data: a link on the way (not moved)\n"
        );
        assert_eq!(
            std::fs::read_to_string(new.join("0/pkg")).unwrap(),
            "cached"
        );
        assert_eq!(
            std::fs::read_to_string(new.join("1/.hist")).unwrap(),
            "ls\n"
        );
        assert!(!legacy.join("shared/home/a/.cache/uv").exists());
        assert!(std::fs::read_dir(new.join("2")).unwrap().next().is_none());
        assert!(legacy.join("victim00/data/secret").exists());
    }
}
