//! The system call filter of the workspace container: Podman's default profile plus the
//! rules silo adds to close what the default leaves open.
//!
//! - No user namespaces (`unshare`/`clone` with CLONE_NEWUSER; `clone3`, whose flags a
//!   filter cannot read, answers ENOSYS so libc falls back to `clone`): they expose
//!   kernel code that `--cap-drop=ALL` was meant to keep away. Nested Podman needs
//!   them, so a workspace with `[features].podman` keeps them.
//! - With root Podman, no set-user-ID or set-group-ID bits (`chmod`, `fchmod`,
//!   `fchmodat`, `open`/`openat`/`creat` with O_CREAT or O_TMPFILE, `mkdir`, `mknod`):
//!   the container user is a host uid there, and a setuid file it made in the workspace
//!   would be that uid's privilege for anyone on the host who can reach it.
//!
//! Podman takes a profile only as a whole file, so silo reads the default that Podman
//! ships, edits it as JSON and writes the result to the user's state directory.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::safe_fs::Dir;

/// Where distributions install Podman's default profile (containers-common).
const DEFAULT_PROFILES: [&str; 2] = [
    "/usr/share/containers/seccomp.json",
    "/etc/containers/seccomp.json",
];

const EPERM: u32 = 1;
const ENOSYS: u32 = 38;
const CLONE_NEWUSER: u64 = 0x1000_0000;
const O_CREAT: u64 = 0o100;
const O_TMPFILE_BIT: u64 = 0o2000_0000;
const S_ISUID: u64 = 0o4000;
const S_ISGID: u64 = 0o2000;

/// The rules silo adds; part of the container's record, so a change recreates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rules {
    pub no_user_namespaces: bool,
    pub no_setuid_files: bool,
}

impl Rules {
    /// The rules for a container: user namespaces blocked unless nested Podman needs
    /// them, set-id bits blocked when Podman runs as root.
    pub fn for_container(nested_podman: bool, root_podman: bool) -> Rules {
        Rules {
            no_user_namespaces: !nested_podman,
            no_setuid_files: root_podman,
        }
    }

    pub fn any(self) -> bool {
        self.no_user_namespaces || self.no_setuid_files
    }
}

/// The syscalls whose mode argument (by index) can carry set-id bits.
const MODE_SYSCALLS: [(&str, u32); 8] = [
    ("chmod", 1),
    ("fchmod", 1),
    ("fchmodat", 2),
    ("mkdir", 1),
    ("mkdirat", 2),
    ("mknod", 1),
    ("mknodat", 2),
    ("creat", 1),
];
/// Open calls: (name, index of the flags, index of the mode).
const OPEN_SYSCALLS: [(&str, u32, u32); 2] = [("open", 1, 2), ("openat", 2, 3)];

fn masked(index: u32, mask: u64, value: u64) -> Value {
    json!({ "index": index, "value": mask, "valueTwo": value, "op": "SCMP_CMP_MASKED_EQ" })
}

fn allow(name: &str, args: Vec<Value>) -> Value {
    json!({ "names": [name], "action": "SCMP_ACT_ALLOW", "args": args })
}

fn deny(name: &str, args: Vec<Value>, errno: u32) -> Value {
    json!({ "names": [name], "action": "SCMP_ACT_ERRNO", "errnoRet": errno, "args": args })
}

/// The syscalls silo takes over from the default profile for `rules`.
fn controlled(rules: Rules) -> Vec<&'static str> {
    let mut names = Vec::new();
    if rules.no_user_namespaces {
        names.extend(["unshare", "clone", "clone3"]);
    }
    if rules.no_setuid_files {
        names.extend(MODE_SYSCALLS.iter().map(|(n, _)| *n));
        names.extend(OPEN_SYSCALLS.iter().map(|(n, _, _)| *n));
        // Their flags or modes are out of a filter's reach; without them libc falls
        // back to the calls above.
        names.extend(["openat2", "fchmodat2"]);
    }
    names
}

/// The entries silo adds. Allow and deny conditions never overlap, so the result does
/// not depend on how libseccomp orders rules for one syscall.
fn added(rules: Rules) -> Vec<Value> {
    let mut out = Vec::new();
    if rules.no_user_namespaces {
        for name in ["unshare", "clone"] {
            out.push(allow(name, vec![masked(0, CLONE_NEWUSER, 0)]));
            out.push(deny(
                name,
                vec![masked(0, CLONE_NEWUSER, CLONE_NEWUSER)],
                EPERM,
            ));
        }
        out.push(deny("clone3", vec![], ENOSYS));
    }
    if rules.no_setuid_files {
        for (name, mode) in MODE_SYSCALLS {
            out.push(allow(name, vec![masked(mode, S_ISUID | S_ISGID, 0)]));
            for bit in [S_ISUID, S_ISGID] {
                out.push(deny(name, vec![masked(mode, bit, bit)], EPERM));
            }
        }
        for (name, flags, mode) in OPEN_SYSCALLS {
            // Without O_CREAT or O_TMPFILE the mode is unused (and may be garbage).
            out.push(allow(name, vec![masked(flags, O_CREAT | O_TMPFILE_BIT, 0)]));
            out.push(allow(name, vec![masked(mode, S_ISUID | S_ISGID, 0)]));
            for flag in [O_CREAT, O_TMPFILE_BIT] {
                for bit in [S_ISUID, S_ISGID] {
                    out.push(deny(
                        name,
                        vec![masked(flags, flag, flag), masked(mode, bit, bit)],
                        EPERM,
                    ));
                }
            }
        }
        for name in ["openat2", "fchmodat2"] {
            out.push(deny(name, vec![], ENOSYS));
        }
    }
    out
}

/// Podman's default profile with silo's rules: the controlled syscalls are removed from
/// every default entry and silo's entries added.
pub fn profile(default: &str, rules: Rules) -> Result<String> {
    let mut profile: Value =
        serde_json::from_str(default).context("Podman's default seccomp profile is not JSON")?;
    let names = controlled(rules);
    let Some(syscalls) = profile["syscalls"].as_array_mut() else {
        bail!("Podman's default seccomp profile has no \"syscalls\" list");
    };
    for entry in syscalls.iter_mut() {
        if let Some(list) = entry["names"].as_array_mut() {
            list.retain(|n| !n.as_str().is_some_and(|n| names.contains(&n)));
        }
    }
    syscalls.retain(|entry| entry["names"].as_array().is_none_or(|l| !l.is_empty()));
    syscalls.extend(added(rules));
    Ok(serde_json::to_string_pretty(&profile).expect("plain data") + "\n")
}

/// Podman's default profile as installed on this host (or where `SILO_SECCOMP_DEFAULT`
/// says, for an unusual installation).
pub fn read_default() -> Result<String> {
    if let Some(path) = std::env::var_os("SILO_SECCOMP_DEFAULT") {
        let path = PathBuf::from(path);
        return std::fs::read_to_string(&path)
            .with_context(|| format!("reading {} (SILO_SECCOMP_DEFAULT)", path.display()));
    }
    for path in DEFAULT_PROFILES {
        match std::fs::read_to_string(path) {
            Ok(text) => return Ok(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("reading {path}")),
        }
    }
    bail!(
        "Podman's default seccomp profile is missing ({}); silo builds its filter from it: install containers-common (Debian/Ubuntu: apt install golang-github-containers-common)",
        DEFAULT_PROFILES.join(" or ")
    )
}

/// Writes the profile for `rules` into `state_dir` and returns its path. Podman copies
/// a profile into the container's configuration when it creates it, so rewriting the
/// file later changes no existing container.
pub fn write(state_dir: &Path, rules: Rules) -> Result<PathBuf> {
    let text = profile(&read_default()?, rules)?;
    let mut name = String::from("seccomp");
    if rules.no_user_namespaces {
        name += "-no-userns";
    }
    if rules.no_setuid_files {
        name += "-no-setuid";
    }
    name += ".json";
    let dir = Dir::create(state_dir)?;
    dir.write_if_changed(&name, &text)?;
    Ok(dir.join(&name))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT: &str = r#"{
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 38,
        "syscalls": [
            { "names": ["read", "chmod", "clone", "unshare", "openat2"], "action": "SCMP_ACT_ALLOW", "args": [] },
            { "names": ["clone3"], "action": "SCMP_ACT_ALLOW", "args": [] },
            { "names": ["mount"], "action": "SCMP_ACT_ALLOW", "args": [], "includes": { "caps": ["CAP_SYS_ADMIN"] } }
        ]
    }"#;

    fn entries(rules: Rules) -> Vec<Value> {
        let text = profile(DEFAULT, rules).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        v["syscalls"].as_array().unwrap().clone()
    }

    fn names(entry: &Value) -> Vec<&str> {
        entry["names"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap())
            .collect()
    }

    #[test]
    fn user_namespaces_are_blocked_and_the_rest_kept() {
        let e = entries(Rules::for_container(false, false));
        assert_eq!(names(&e[0]), ["read", "chmod", "openat2"]);
        assert_eq!(names(&e[1]), ["mount"]);
        let unshare_deny = e
            .iter()
            .find(|x| names(x) == ["unshare"] && x["action"] == "SCMP_ACT_ERRNO")
            .unwrap();
        assert_eq!(unshare_deny["errnoRet"], 1);
        assert_eq!(unshare_deny["args"][0]["value"], CLONE_NEWUSER);
        assert_eq!(unshare_deny["args"][0]["valueTwo"], CLONE_NEWUSER);
        let clone3 = e.iter().find(|x| names(x) == ["clone3"]).unwrap();
        assert_eq!(
            (clone3["action"].as_str(), clone3["errnoRet"].as_u64()),
            (Some("SCMP_ACT_ERRNO"), Some(38))
        );
    }

    #[test]
    fn setuid_bits_are_blocked_for_root_podman() {
        let e = entries(Rules::for_container(true, true));
        // Nested Podman keeps user namespaces.
        assert_eq!(names(&e[0]), ["read", "clone", "unshare"]);
        let chmod: Vec<&Value> = e.iter().filter(|x| names(x) == ["chmod"]).collect();
        assert_eq!(chmod.len(), 3);
        assert_eq!(chmod[0]["action"], "SCMP_ACT_ALLOW");
        assert_eq!(chmod[0]["args"][0]["value"], 0o6000);
        assert_eq!(chmod[0]["args"][0]["valueTwo"], 0);
        let openat_denies = e
            .iter()
            .filter(|x| names(x) == ["openat"] && x["action"] == "SCMP_ACT_ERRNO")
            .count();
        assert_eq!(openat_denies, 4);
    }

    #[test]
    fn nothing_added_without_rules() {
        assert!(!Rules::for_container(true, false).any());
        assert_eq!(entries(Rules::for_container(true, false)).len(), 3);
    }

    #[test]
    fn the_installed_default_profile_can_be_edited() {
        // Where Podman is installed, its profile must be one silo can edit.
        if let Ok(default) = read_default() {
            let text = profile(&default, Rules::for_container(false, true)).unwrap();
            assert!(text.contains("SCMP_CMP_MASKED_EQ"));
        }
    }
}
