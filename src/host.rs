//! Facts about the host silo runs on: who runs it, and whether Podman can apply limits.

use std::path::Path;

/// The effective uid of this process.
pub fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

pub fn is_root() -> bool {
    euid() == 0
}

/// silo's directory of an XDG kind: `$<var>/silo`, or `$HOME/<fallback>/silo` when the
/// variable is unset or relative (the XDG rule).
pub fn xdg_dir(var: &str, fallback: &str) -> anyhow::Result<std::path::PathBuf> {
    use anyhow::Context;
    use std::path::PathBuf;
    let base = match std::env::var_os(var)
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
    {
        Some(dir) => dir,
        None => std::env::var_os("HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .with_context(|| format!("neither {var} nor HOME is set to an absolute path"))?
            .join(fallback),
    };
    Ok(base.join("silo"))
}

/// A user's name from /etc/passwd, for messages.
pub fn user_name(uid: u32) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    name_in_passwd(&passwd, uid)
}

fn name_in_passwd(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let id = fields.nth(1)?.parse::<u32>().ok()?;
        (id == uid).then(|| name.to_owned())
    })
}

/// The cgroup hierarchy the host mounts at /sys/fs/cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cgroups {
    V1,
    V2,
}

pub fn cgroups() -> Cgroups {
    // CGROUP2_SUPER_MAGIC: a unified hierarchy; anything else (tmpfs) is v1 or hybrid.
    match rustix::fs::statfs(Path::new("/sys/fs/cgroup")) {
        Ok(fs) if fs.f_type as u64 == 0x6367_7270 => Cgroups::V2,
        _ => Cgroups::V1,
    }
}

/// Why Podman cannot apply resource limits here, if it cannot: rootless Podman needs
/// cgroup v2 with the controllers delegated to the user.
pub fn limits_unavailable(rootless: bool) -> Option<String> {
    if !rootless {
        return None;
    }
    match cgroups() {
        Cgroups::V1 => Some(
            "rootless Podman cannot apply limits on cgroup v1: processes, memory and CPUs are not limited (use cgroup v2 with delegated controllers, or run as root)"
                .to_owned(),
        ),
        Cgroups::V2 => {
            let uid = euid();
            let path = format!(
                "/sys/fs/cgroup/user.slice/user-{uid}.slice/user@{uid}.service/cgroup.controllers"
            );
            let controllers = std::fs::read_to_string(&path).ok()?;
            let missing: Vec<&str> = ["pids", "memory", "cpu"]
                .into_iter()
                .filter(|c| !controllers.split_whitespace().any(|have| have == *c))
                .collect();
            (!missing.is_empty()).then(|| {
                format!(
                    "the cgroup controllers {} are not delegated to your user, so Podman cannot apply those limits (see systemd's Delegate= for user@.service)",
                    missing.join(", ")
                )
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_passwd() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\nbob:x:1001:1001::/home/bob:/bin/sh\n";
        assert_eq!(name_in_passwd(passwd, 1001).as_deref(), Some("bob"));
        assert_eq!(name_in_passwd(passwd, 0).as_deref(), Some("root"));
        assert_eq!(name_in_passwd(passwd, 7), None);
        assert_eq!(name_in_passwd("garbage\n::x\n", 0), None);
    }

    #[test]
    fn root_can_always_apply_limits() {
        assert_eq!(limits_unavailable(false), None);
    }
}
