//! The directories between the container user's home and a persisted path, made the
//! user's before the container starts.
//!
//! The runtime creates a missing mount point with its parents as the container's root,
//! so persisting `$HOME/.local/share/containers/` left `~/.local` and `~/.local/share`
//! owned by root: home-manager's activation (which writes `~/.local/state`) then failed.
//! silo copies those directories into the new container with `podman cp`, which gives
//! them to the container's user (the image's `User`), before the first start.

use std::collections::BTreeSet;
use std::ffi::OsString;

use crate::runner::{Invocation, Tool};
use crate::volume::PersistMount;

/// The directories strictly between `home` and each target under it, parents first,
/// relative to `home` (`.local`, `.local/share` for `<home>/.local/share/containers`).
pub fn parents_under(home: &str, mounts: &[PersistMount]) -> Vec<String> {
    let mut dirs = BTreeSet::new();
    for mount in mounts {
        let Some(rest) = mount
            .target
            .strip_prefix(home)
            .and_then(|r| r.strip_prefix('/'))
        else {
            continue;
        };
        let parts: Vec<&str> = rest.split('/').collect();
        for end in 1..parts.len() {
            dirs.insert(parts[..end].join("/"));
        }
    }
    // BTreeSet order puts a directory before what is inside it.
    dirs.into_iter().collect()
}

/// A tar archive of empty directories (mode 0755), for `podman cp -`.
pub fn archive(dirs: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    for dir in dirs {
        let name = format!("{dir}/");
        // ustar: names of up to 100 bytes, or a prefix of up to 155 and a name of 100.
        let (prefix, name) = if name.len() <= 100 {
            ("", name.as_str())
        } else {
            match name[..name.len() - 1].rfind('/') {
                Some(cut) if cut <= 155 && name.len() - cut - 1 <= 100 => {
                    (&name[..cut], &name[cut + 1..])
                }
                // Deeper than a plain tar can name: left to the runtime.
                _ => continue,
            }
        };
        let mut header = [0u8; 512];
        let field = |header: &mut [u8; 512], at: usize, value: &[u8]| {
            header[at..at + value.len()].copy_from_slice(value);
        };
        field(&mut header, 0, name.as_bytes());
        field(&mut header, 100, b"0000755\0");
        field(&mut header, 108, b"0001750\0"); // uid 1000, in octal
        field(&mut header, 116, b"0001750\0");
        field(&mut header, 124, b"00000000000\0");
        field(&mut header, 136, b"00000000000\0");
        field(&mut header, 156, b"5");
        field(&mut header, 257, b"ustar\0");
        field(&mut header, 263, b"00");
        field(&mut header, 345, prefix.as_bytes());
        // The checksum counts its own field as eight spaces.
        field(&mut header, 148, b"        ");
        let sum: u32 = header.iter().map(|b| u32::from(*b)).sum();
        field(&mut header, 148, format!("{sum:06o}\0 ").as_bytes());
        out.extend_from_slice(&header);
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

/// `podman cp` of the directories into the created container's home.
pub fn copy_invocation(container: &str, home: &str, dirs: &[String]) -> Invocation {
    let args: Vec<OsString> = ["cp", "-", &format!("{container}:{home}")]
        .map(OsString::from)
        .into();
    Invocation::new(Tool::Podman, args).with_input(archive(dirs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::Scope;

    fn mount(target: &str) -> PersistMount {
        PersistMount {
            volume: "v".into(),
            scope: Scope::Shared,
            target: target.into(),
            directory: true,
        }
    }

    #[test]
    fn parents_between_home_and_the_paths() {
        let mounts = [
            mount("/home/alice/.local/share/containers"),
            mount("/home/alice/.cache/uv"),
            mount("/home/alice/.bash_history"),
            mount("/data/x"),
            mount("/home/alicex/y/z"),
        ];
        assert_eq!(
            parents_under("/home/alice", &mounts),
            [".cache", ".local", ".local/share"]
        );
    }

    #[test]
    fn the_archive_is_one_tar_reads() {
        let long = format!("{}/{}", "a".repeat(90), "b".repeat(60));
        let dirs = vec![".local".to_owned(), ".local/share".to_owned(), long.clone()];
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("dirs.tar");
        std::fs::write(&path, archive(&dirs)).unwrap();
        let out = std::process::Command::new("tar")
            .args(["-tvf"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let listing = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<&str> = listing.lines().collect();
        assert_eq!(lines.len(), 3, "{listing}");
        assert!(lines[0].starts_with("drwxr-xr-x 1000/1000"), "{listing}");
        assert!(lines[0].ends_with(" .local/"), "{listing}");
        assert!(lines[1].ends_with(" .local/share/"), "{listing}");
        assert!(lines[2].ends_with(&format!(" {long}/")), "{listing}");
    }

    #[test]
    fn command_line() {
        let inv = copy_invocation("silo-ab3f9c12", "/home/alice", &[".local".into()]);
        assert_eq!(inv.to_string(), "podman cp - silo-ab3f9c12:/home/alice");
        assert_eq!(inv.input.unwrap().len(), 512 + 1024);
    }
}
