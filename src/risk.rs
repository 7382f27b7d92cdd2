//! Which `podman create` arguments weaken the container's boundary, in words a user can
//! judge: shown when a workspace's settings are approved and by `silo status`.

/// One dangerous argument and what it gives the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Danger {
    /// The argument as written (flag and value).
    pub arg: String,
    pub why: String,
}

impl std::fmt::Display for Danger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.arg, self.why)
    }
}

/// Flags whose value is the next argument when not written `--flag=value`.
const VALUE_FLAGS: &[&str] = &[
    "--cap-add",
    "--device",
    "--device-cgroup-rule",
    "-v",
    "--volume",
    "--mount",
    "--volumes-from",
    "--security-opt",
    "--userns",
    "--uidmap",
    "--gidmap",
    "--subuidname",
    "--subgidname",
    "--pid",
    "--network",
    "--net",
    "--ipc",
    "--uts",
    "--cgroupns",
    "--pod",
    "--group-add",
    "--env-file",
    "--pidfile",
    "--cidfile",
    "--conmon-pidfile",
    "--log-opt",
    "--rootfs",
    "--annotation",
    "--cgroup-parent",
    "--cgroups",
    "--label",
    "-l",
    "-p",
    "--publish",
    "--init-path",
    "--sysctl",
];

/// One flag of a `podman create` command line with its value, if it takes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag {
    pub name: String,
    pub value: Option<String>,
}

impl Flag {
    /// The flag as written, with its value.
    pub fn shown(&self) -> String {
        match &self.value {
            Some(v) => format!("{} {v}", self.name),
            None => self.name.clone(),
        }
    }
}

/// The flags of `args`, in order, each with its value (`--flag=value`, `--flag value`
/// for flags that take one, `-vSRC:DST`).
pub fn flags(args: &[String]) -> Vec<Flag> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_str();
        i += 1;
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with('-') => (flag, Some(value.to_owned())),
            _ => (arg, None),
        };
        let (flag, value) = match short_with_value(flag, inline.is_none()) {
            Some((short, rest)) => (short, Some(rest.to_owned())),
            None if inline.is_some() => (flag, inline),
            None if VALUE_FLAGS.contains(&flag) && i < args.len() => {
                i += 1;
                (flag, Some(args[i - 1].clone()))
            }
            None => (flag, None),
        };
        out.push(Flag {
            name: flag.to_owned(),
            value,
        });
    }
    out
}

/// The dangerous arguments among `args`, in order.
pub fn dangers(args: &[String]) -> Vec<Danger> {
    flags(args)
        .into_iter()
        .filter_map(|flag| {
            judge(&flag.name, flag.value.as_deref()).map(|why| Danger {
                arg: flag.shown(),
                why,
            })
        })
        .collect()
}

/// `-vSRC:DST` and `-pPORTS`: a short flag with its value attached.
fn short_with_value(arg: &str, no_inline: bool) -> Option<(&str, &str)> {
    let rest = arg.strip_prefix('-').filter(|r| !r.starts_with('-'))?;
    let (letter, value) = rest.split_at_checked(1)?;
    (no_inline && !value.is_empty() && matches!(letter, "v" | "p" | "l"))
        .then(|| (&arg[..2], value))
}

fn judge(flag: &str, value: Option<&str>) -> Option<String> {
    let value = value.unwrap_or("");
    let why = match flag {
        "--privileged" if !matches!(value, "false") => {
            "gives the container every capability and the host's devices".to_owned()
        }
        "--cap-add" => {
            let caps: Vec<&str> = value
                .split(',')
                .map(|c| c.trim())
                .filter(|c| {
                    let name = c.to_ascii_uppercase();
                    name.trim_start_matches("CAP_") != "NET_BIND_SERVICE"
                })
                .collect();
            if caps.is_empty() {
                return None;
            }
            format!("adds the capability {}", caps.join(", "))
        }
        "--device" if value.is_empty() => "gives the container a host device".to_owned(),
        "--device" => format!(
            "gives the container the host device {}",
            value.split(':').next().unwrap_or(value)
        ),
        "--device-cgroup-rule" => "lets the container use host devices".to_owned(),
        "-v" | "--volume" => volume_danger(value.split(':').next().unwrap_or(value)),
        "--mount" => return mount_danger(value),
        "--volumes-from" => format!("mounts every volume of the container {value}"),
        "--security-opt" => return security_opt_danger(value),
        "--userns" if value == "host" => {
            "uses the host's user namespace: the container's root is the user who runs podman"
                .to_owned()
        }
        "--userns" | "--uidmap" | "--gidmap" | "--subuidname" | "--subgidname" => {
            "replaces silo's user mapping".to_owned()
        }
        "--pid" | "--network" | "--net" | "--ipc" | "--uts" | "--cgroupns" => {
            let what = flag.trim_start_matches("--");
            if value == "host" {
                format!("shares the host's {what} namespace")
            } else if let Some(other) = value.strip_prefix("container:") {
                format!("joins the {what} namespace of the container {other}")
            } else {
                return None;
            }
        }
        "--pod" => format!("joins the pod {value}"),
        "--group-add" if value == "keep-groups" => {
            "keeps the host user's supplementary groups".to_owned()
        }
        "--env-host" if value != "false" => {
            "copies the host's whole environment (tokens, keys) into the container".to_owned()
        }
        "--env-file" => format!("reads the host file {value} into the container"),
        "--init-path" => format!("runs the host file {value} in the container"),
        "--pidfile" | "--cidfile" | "--conmon-pidfile" => {
            format!("writes the host file {value}")
        }
        "--log-opt" if value.starts_with("path=") => {
            format!("writes the host file {}", &value[5..])
        }
        "--rootfs" => format!("uses the host directory {value} as the root file system"),
        "--annotation" if value.starts_with("run.oci.") || value.starts_with("io.podman.") => {
            "changes how the runtime sets up the container".to_owned()
        }
        "--cgroup-parent" => format!("places the container in the cgroup {value}"),
        "--cgroups" if value == "disabled" => {
            "gives the container no cgroup: limits do not apply".to_owned()
        }
        "--label" | "-l" if value.starts_with("io.silo.") => {
            "overrides a label silo uses to know what the container was made from".to_owned()
        }
        "-p" | "--publish" => format!("publishes the port {value} outside [network].ports"),
        "-P" | "--publish-all" => {
            "publishes every port the image exposes on all host addresses".to_owned()
        }
        _ => return None,
    };
    Some(why)
}

fn volume_danger(source: &str) -> String {
    if source.starts_with('/') || source.starts_with('.') || source.starts_with('~') {
        format!("mounts the host path {source}")
    } else {
        format!("mounts the volume {source} (another workspace's data?)")
    }
}

fn mount_danger(spec: &str) -> Option<String> {
    let mut kind = "volume";
    let mut source = "";
    for part in spec.split(',') {
        let (key, value) = part.split_once('=').unwrap_or((part, ""));
        match key {
            "type" => kind = value,
            "source" | "src" => source = value,
            _ => {}
        }
    }
    match kind {
        "bind" | "glob" => Some(format!("mounts the host path {source}")),
        "volume" if !source.is_empty() => Some(volume_danger(source)),
        "devpts" => Some("mounts a devpts file system".to_owned()),
        _ => None,
    }
}

fn security_opt_danger(value: &str) -> Option<String> {
    let (key, setting) = value.split_once('=').unwrap_or((value, ""));
    let why = match (key, setting) {
        ("seccomp", "unconfined") => "turns off system call filtering".to_owned(),
        ("seccomp", profile) => {
            format!("replaces silo's system call filter with {profile}")
        }
        ("apparmor", "unconfined") => "turns off AppArmor confinement".to_owned(),
        ("label", "disable") => "turns off SELinux confinement".to_owned(),
        ("label", s) if s.starts_with("type:") => format!("runs with the SELinux type {}", &s[5..]),
        ("systempaths", "unconfined") => "exposes the host's /proc and /sys paths".to_owned(),
        ("unmask", paths) => format!("unmasks {paths} in /proc and /sys"),
        ("no-new-privileges", "false") => "allows gaining privileges through setuid".to_owned(),
        _ => return None,
    };
    Some(why)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(args: &[&str]) -> Vec<String> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        dangers(&args).iter().map(ToString::to_string).collect()
    }

    #[test]
    fn the_defaults_are_safe() {
        assert!(
            shown(&[
                "--cap-drop=ALL",
                "--cap-add=NET_BIND_SERVICE",
                "--security-opt",
                "no-new-privileges",
                "--env=A=1",
                "--tmpfs",
                "/tmp",
                "--read-only"
            ])
            .is_empty()
        );
    }

    #[test]
    fn each_kind_of_danger_is_named() {
        assert_eq!(
            shown(&[
                "--privileged",
                "-v",
                "/:/host",
                "--cap-add",
                "SYS_ADMIN,NET_BIND_SERVICE",
                "--device=/dev/kvm:/dev/kvm",
                "--security-opt",
                "seccomp=unconfined",
                "--security-opt=label=disable",
                "--userns=host",
                "--pid=host",
                "--network",
                "host",
                "--mount",
                "type=bind,source=/etc,target=/x",
                "-vsilo:/all",
                "--label",
                "io.silo.config={}",
                "--net=container:other",
            ]),
            [
                "--privileged: gives the container every capability and the host's devices",
                "-v /:/host: mounts the host path /",
                "--cap-add SYS_ADMIN,NET_BIND_SERVICE: adds the capability SYS_ADMIN",
                "--device /dev/kvm:/dev/kvm: gives the container the host device /dev/kvm",
                "--security-opt seccomp=unconfined: turns off system call filtering",
                "--security-opt label=disable: turns off SELinux confinement",
                "--userns host: uses the host's user namespace: the container's root is the user who runs podman",
                "--pid host: shares the host's pid namespace",
                "--network host: shares the host's network namespace",
                "--mount type=bind,source=/etc,target=/x: mounts the host path /etc",
                "-v silo:/all: mounts the volume silo (another workspace's data?)",
                "--label io.silo.config={}: overrides a label silo uses to know what the container was made from",
                "--net container:other: joins the net namespace of the container other",
            ]
        );
    }

    #[test]
    fn net_bind_service_alone_is_fine() {
        assert!(shown(&["--cap-add", "net_bind_service"]).is_empty());
        assert!(shown(&["--cap-add=CAP_NET_BIND_SERVICE"]).is_empty());
        assert_eq!(
            shown(&["--cap-add=ALL"]),
            ["--cap-add ALL: adds the capability ALL"]
        );
    }

    #[test]
    fn a_flag_at_the_end_without_value_does_not_panic() {
        assert_eq!(
            shown(&["--device"]),
            ["--device: gives the container a host device"]
        );
        assert!(shown(&["--mount"]).is_empty());
        assert!(shown(&["-"]).is_empty());
    }
}
