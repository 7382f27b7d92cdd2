//! The network policy (`[network] egress` and `allow`) and how Podman applies it.
//!
//! - `all`: the container is on Podman's default network, as any container.
//! - `none`: `--network none`; there is nothing to forward ports to, so ports are refused.
//! - `allow`: the container is alone with two sidecars on an internal network of its
//!   own (`silo-<id>-net`: no route out, no DNS) and has no resolver and no IPv6. Its
//!   only way out is the proxy `silo-<id>-proxy` (tinyproxy, see `proxy.rs`), which is
//!   also on Podman's default network and forwards only requests for allowed hosts.
//!   Published ports go through `silo-<id>-ports`, a socat forwarder on both networks.
//!   Neither sidecar has a capability, and the workspace container gets none either.
//!
//! Nothing here runs a process; `sidecar.rs` does.

use std::ffi::OsString;
use std::net::Ipv4Addr;

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::config::values::{AllowEntry, Egress, PortMapping, Protocol};
use crate::podman::LABEL_ID;
use crate::proxy;
use crate::risk;
use crate::runner::{Invocation, Tool};

/// The label telling silo's sidecars apart: `proxy` or `ports`.
pub const LABEL_ROLE: &str = "io.silo.role";

/// Podman's default network, which the sidecars use to reach the outside.
pub const DEFAULT_OUTSIDE: &str = "podman";

/// What the proxy's and the forwarder's processes run as: nobody, no capabilities.
const NOBODY: &str = "65534:65534";

/// The forwarder's program in the proxy image: `silo-forward ADDRESS PORT/PROTO...`.
pub const FORWARD: &str = "/bin/silo-forward";

/// The policy a container is created with; part of its record.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Policy {
    pub egress: Egress,
    /// The allowed entries, with `allow` only, without repetitions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
}

impl Policy {
    pub fn of(config: &Config) -> Policy {
        let mut allow: Vec<String> = Vec::new();
        if config.egress == Egress::Allow {
            for entry in config.allow.iter().map(ToString::to_string) {
                if !allow.contains(&entry) {
                    allow.push(entry);
                }
            }
        }
        Policy {
            egress: config.egress,
            allow,
        }
    }

    /// The allowed entries (a record holds only valid ones).
    pub fn entries(&self) -> Vec<AllowEntry> {
        self.allow
            .iter()
            .filter_map(|e| AllowEntry::parse(e).ok())
            .collect()
    }

    /// Whether the container needs the proxy and its own network.
    pub fn proxied(&self) -> bool {
        self.egress == Egress::Allow
    }

    /// `all`, `none` or `allow [crates.io, *.npmjs.org]`, for messages.
    pub fn describe(&self) -> String {
        match self.egress {
            Egress::Allow => format!("allow [{}]", self.allow.join(", ")),
            other => other.as_str().to_owned(),
        }
    }
}

/// The names of a workspace's network and sidecars.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetNames {
    pub id: String,
    pub workspace: String,
    pub network: String,
    pub proxy: String,
    pub ports: String,
    pub proxy_image: String,
}

impl NetNames {
    pub fn new(id: &str) -> NetNames {
        NetNames {
            id: id.to_owned(),
            workspace: format!("silo-{id}"),
            network: format!("silo-{id}-net"),
            proxy: format!("silo-{id}-proxy"),
            ports: format!("silo-{id}-ports"),
            proxy_image: format!("localhost/silo-{id}-proxy"),
        }
    }
}

/// Where the proxy and the workspace live in the workspace network: the second and
/// third address of its subnet (Podman gives the first to the bridge, when it has one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addresses {
    pub subnet: String,
    pub proxy: Ipv4Addr,
    pub workspace: Ipv4Addr,
}

impl Addresses {
    pub fn of(subnet: &str) -> Result<Addresses> {
        let parsed = subnet.split_once('/').and_then(|(addr, prefix)| {
            Some((addr.parse::<Ipv4Addr>().ok()?, prefix.parse::<u32>().ok()?))
        });
        let Some((base, _)) = parsed.filter(|(_, p)| *p <= 29) else {
            bail!(
                "the workspace network's subnet {subnet:?} is not an IPv4 subnet of at least 8 addresses"
            );
        };
        let base = u32::from(base);
        Ok(Addresses {
            subnet: subnet.to_owned(),
            proxy: Ipv4Addr::from(base + 2),
            workspace: Ipv4Addr::from(base + 3),
        })
    }

    pub fn proxy_url(&self) -> String {
        format!("http://{}:{}", self.proxy, proxy::PORT)
    }
}

/// What silo reads from `podman network inspect`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct NetworkInfo {
    #[serde(default)]
    pub subnets: Option<Vec<Subnet>>,
    #[serde(default)]
    pub internal: bool,
    #[serde(default)]
    pub dns_enabled: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Subnet {
    pub subnet: String,
}

impl NetworkInfo {
    /// The network as silo makes it: internal, without DNS, one IPv4 subnet.
    pub fn subnet_if_sealed(&self) -> Option<&str> {
        let subnets = self.subnets.as_deref().unwrap_or_default();
        match subnets {
            [one] if self.internal && !self.dns_enabled && !one.subnet.contains(':') => {
                Some(&one.subnet)
            }
            _ => None,
        }
    }
}

/// `podman network inspect` prints `[]` (and fails) for a missing network.
pub fn parse_network(stdout: &str) -> Result<Option<NetworkInfo>> {
    let trimmed = stdout.trim();
    if trimmed.is_empty() {
        return Ok(None);
    }
    let mut list: Vec<NetworkInfo> = serde_json::from_str(trimmed)
        .map_err(|e| anyhow::anyhow!("unexpected output of podman network inspect: {e}"))?;
    Ok((!list.is_empty()).then(|| list.remove(0)))
}

fn podman<S: Into<OsString>>(args: impl IntoIterator<Item = S>) -> Invocation {
    Invocation::new(Tool::Podman, args)
}

pub fn inspect_network(names: &NetNames) -> Invocation {
    podman(["network", "inspect", names.network.as_str()])
}

/// The workspace's own network: internal (no route out), without DNS (no resolver that
/// forwards names, no gateway address on the bridge).
pub fn create_network(names: &NetNames) -> Invocation {
    podman([
        "network",
        "create",
        "--internal",
        "--disable-dns",
        "--label",
        &format!("{LABEL_ID}={}", names.id),
        &names.network,
    ])
}

/// Stops and removes the workspace container, the port forwarder that requires it
/// (`--depend`) and the proxy, in one call; missing ones are no error (without
/// `--ignore`, Podman 4.3 removes none of the names when one is missing, and succeeds).
pub fn stop_and_remove(workspace: &str, proxy: &str) -> Invocation {
    podman([
        "rm", "--force", "--ignore", "--time", "10", "--depend", workspace, proxy,
    ])
}

pub fn remove_network(names: &NetNames) -> Invocation {
    podman(["network", "rm", names.network.as_str()])
}

/// The sidecars' common flags: nobody, no capabilities, no privilege gain, a read-only
/// root, no forwarding between their two networks.
fn sidecar_args(names: &NetNames, name: &str, role: &str) -> Vec<String> {
    [
        "create",
        "--name",
        name,
        "--label",
        &format!("{LABEL_ID}={}", names.id),
        "--label",
        &format!("{LABEL_ROLE}={role}"),
        "--user",
        NOBODY,
        "--cap-drop",
        "all",
        "--security-opt",
        "no-new-privileges",
        "--read-only",
        "--sysctl",
        "net.ipv4.ip_forward=0",
        "--sysctl",
        "net.ipv6.conf.all.forwarding=0",
    ]
    .map(str::to_owned)
    .into()
}

/// The proxy: on the workspace network at its fixed address and on `outside` (Podman's
/// default network unless a test says otherwise), its configuration from `config_dir`.
pub fn create_proxy(
    names: &NetNames,
    addrs: &Addresses,
    outside: &str,
    config_dir: &str,
) -> Invocation {
    let mut args = sidecar_args(names, &names.proxy, "proxy");
    args.extend([
        "--network".into(),
        format!("{}:ip={}", names.network, addrs.proxy),
        "--network".into(),
        outside.to_owned(),
        "--mount".into(),
        format!(
            "type=bind,source={config_dir},target={},ro,relabel=private",
            proxy::CONFIG_TARGET
        ),
        names.proxy_image.clone(),
    ]);
    podman(args)
}

/// The port forwarder: published ports on `outside`, each forwarded to the same port of
/// the workspace container. No fixed address: with Podman 4.3, a container with both a
/// fixed address and ports whose start fails keeps its address allocated for good.
pub fn create_ports(
    names: &NetNames,
    addrs: &Addresses,
    outside: &str,
    ports: &[PortMapping],
) -> Invocation {
    let mut args = sidecar_args(names, &names.ports, "ports");
    // Listening on a port below 1024 takes no capability in its own network namespace.
    if ports.iter().any(|p| p.container < 1024) {
        args.extend([
            "--sysctl".into(),
            "net.ipv4.ip_unprivileged_port_start=0".into(),
        ]);
    }
    args.extend([
        "--init".into(),
        "--network".into(),
        names.network.clone(),
        "--network".into(),
        outside.to_owned(),
        "--requires".into(),
        names.workspace.clone(),
    ]);
    for port in ports {
        args.extend(["--publish".into(), port.to_string()]);
    }
    args.extend([
        "--entrypoint".into(),
        FORWARD.into(),
        names.proxy_image.clone(),
        addrs.workspace.to_string(),
    ]);
    let mut targets: Vec<String> = Vec::new();
    for port in ports {
        let proto = match port.protocol {
            Some(Protocol::Udp) => "udp",
            _ => "tcp",
        };
        let target = format!("{}/{proto}", port.container);
        if !targets.contains(&target) {
            targets.push(target);
        }
    }
    args.extend(targets);
    podman(args)
}

/// The proxy variables, in both spellings programs read.
fn proxy_env(url: &str) -> Vec<String> {
    let mut env = Vec::new();
    for name in ["http_proxy", "https_proxy", "all_proxy"] {
        for key in [name.to_owned(), name.to_uppercase()] {
            env.push(format!("{key}={url}"));
        }
    }
    for key in ["no_proxy", "NO_PROXY"] {
        env.push(format!("{key}=localhost,127.0.0.1,::1"));
    }
    env
}

/// The workspace container's network flags for a policy (`addrs` with `allow` only).
pub fn workspace_args(policy: &Policy, names: &NetNames, addrs: Option<&Addresses>) -> Vec<String> {
    match (policy.egress, addrs) {
        (Egress::All, _) => Vec::new(),
        (Egress::None, _) => vec!["--network".into(), "none".into()],
        (Egress::Allow, addrs) => {
            let Some(addrs) = addrs else {
                return vec!["--network".into(), "none".into()];
            };
            let mut args: Vec<String> = vec![
                "--network".into(),
                format!("{}:ip={}", names.network, addrs.workspace),
                "--dns".into(),
                "none".into(),
                "--requires".into(),
                names.proxy.clone(),
                // The bridge's IPv6 link-local address would reach the host.
                "--sysctl".into(),
                "net.ipv6.conf.all.disable_ipv6=1".into(),
                "--sysctl".into(),
                "net.ipv6.conf.default.disable_ipv6=1".into(),
            ];
            for env in proxy_env(&addrs.proxy_url()) {
                args.extend(["--env".into(), env]);
            }
            args
        }
    }
}

/// The devcontainer's network flags. VS Code makes that container without silo's
/// sidecars, so with `allow` it gets no network rather than the whole of it.
pub fn devcontainer_args(policy: &Policy) -> Vec<String> {
    match policy.egress {
        Egress::All => Vec::new(),
        Egress::None | Egress::Allow => vec!["--network=none".into()],
    }
}

/// The `create_args` that would undo a policy other than `all`, each with why.
pub fn conflicts(policy: &Policy, create_args: &[String]) -> Vec<String> {
    if policy.egress == Egress::All {
        return Vec::new();
    }
    let mut out = Vec::new();
    for flag in risk::flags(create_args) {
        let value = flag.value.as_deref().unwrap_or("");
        let why = match flag.name.as_str() {
            "--network" | "--net" | "--pod" => "chooses the container's network",
            "-p" | "--publish" | "-P" | "--publish-all" => {
                "publishes ports outside [network].ports"
            }
            "--sysctl" if value.starts_with("net.") => "changes the network settings",
            "--privileged" if value != "false" => "gives the container NET_ADMIN",
            "--cap-add"
                if value.split(',').any(|c| {
                    let c = c.trim().to_ascii_uppercase();
                    matches!(
                        c.trim_start_matches("CAP_"),
                        "NET_ADMIN" | "NET_RAW" | "ALL"
                    )
                }) =>
            {
                "lets the container change its network"
            }
            _ => continue,
        };
        out.push(format!("{} {why}", flag.shown()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::values::{Limits, UserName, WorkspaceId};
    use std::collections::BTreeMap;

    fn names() -> NetNames {
        NetNames::new("ab3f9c12")
    }

    fn addrs() -> Addresses {
        Addresses::of("10.89.3.0/24").unwrap()
    }

    fn config(egress: Egress, allow: &[&str]) -> Config {
        Config {
            user: UserName::parse("alice").unwrap(),
            id: WorkspaceId::parse("ab3f9c12").unwrap(),
            podman: false,
            shared_paths: vec![],
            private_paths: vec![],
            create_args: vec![],
            ports: vec![],
            egress,
            allow: allow
                .iter()
                .map(|a| AllowEntry::parse(a).unwrap())
                .collect(),
            limits: Limits::default(),
            inputs: BTreeMap::new(),
            runner: Default::default(),
        }
    }

    #[test]
    fn policies() {
        let p = Policy::of(&config(Egress::Allow, &["a.org", "*.b.org", "a.org"]));
        assert_eq!(p.allow, ["a.org", "*.b.org"]);
        assert_eq!(p.describe(), "allow [a.org, *.b.org]");
        assert_eq!(p.entries().len(), 2);
        // An allow list does not matter without `allow`.
        let p = Policy::of(&config(Egress::All, &["a.org"]));
        assert_eq!((p.describe(), p.allow.len()), ("all".to_owned(), 0));
        // Records made before the policy existed had the whole network.
        let old: Policy = serde_json::from_str("{\"egress\": \"none\"}").unwrap();
        assert_eq!(old.egress, Egress::None);
        assert_eq!(
            serde_json::to_string(&Policy::default()).unwrap(),
            "{\"egress\":\"all\"}"
        );
    }

    #[test]
    fn addresses_in_the_subnet() {
        let a = addrs();
        assert_eq!(a.proxy, Ipv4Addr::new(10, 89, 3, 2));
        assert_eq!(a.workspace, Ipv4Addr::new(10, 89, 3, 3));
        assert_eq!(a.proxy_url(), "http://10.89.3.2:3128");
        assert!(Addresses::of("10.89.3.0/30").is_err());
        assert!(Addresses::of("fd00::/64").is_err());
        assert!(Addresses::of("garbage").is_err());
    }

    #[test]
    fn network_inspect_output() {
        // Trimmed from Podman 4.3.1.
        let out = r#"[{"name": "silo-ab3f9c12-net", "driver": "bridge",
            "subnets": [{"subnet": "10.89.0.0/24"}], "ipv6_enabled": false,
            "internal": true, "dns_enabled": false, "labels": {"io.silo.id": "ab3f9c12"}}]"#;
        let info = parse_network(out).unwrap().unwrap();
        assert_eq!(info.subnet_if_sealed(), Some("10.89.0.0/24"));
        assert_eq!(parse_network("[]").unwrap(), None);
        assert_eq!(parse_network("").unwrap(), None);
        let open = r#"[{"subnets": [{"subnet": "10.89.0.0/24", "gateway": "10.89.0.1"}],
            "internal": false, "dns_enabled": true}]"#;
        assert_eq!(
            parse_network(open).unwrap().unwrap().subnet_if_sealed(),
            None
        );
    }

    #[test]
    fn network_command_lines() {
        assert_eq!(
            create_network(&names()).to_string(),
            "podman network create --internal --disable-dns --label io.silo.id=ab3f9c12 silo-ab3f9c12-net"
        );
        assert_eq!(
            remove_network(&names()).to_string(),
            "podman network rm silo-ab3f9c12-net"
        );
    }

    #[test]
    fn sidecar_command_lines() {
        assert_eq!(
            create_proxy(
                &names(),
                &addrs(),
                "podman",
                "/home/a/.local/state/silo/network/ab3f9c12"
            )
            .to_string(),
            "podman create --name silo-ab3f9c12-proxy --label io.silo.id=ab3f9c12 --label io.silo.role=proxy \
             --user 65534:65534 --cap-drop all --security-opt no-new-privileges --read-only \
             --sysctl net.ipv4.ip_forward=0 --sysctl net.ipv6.conf.all.forwarding=0 \
             --network silo-ab3f9c12-net:ip=10.89.3.2 --network podman \
             --mount type=bind,source=/home/a/.local/state/silo/network/ab3f9c12,target=/etc/silo-proxy,ro,relabel=private \
             localhost/silo-ab3f9c12-proxy"
        );
        let ports: Vec<PortMapping> = [
            "127.0.0.1:8080:80",
            "9000:9000/tcp",
            "8081:80",
            "5353:53/udp",
        ]
        .iter()
        .map(|p| PortMapping::parse(p).unwrap())
        .collect();
        assert_eq!(
            create_ports(&names(), &addrs(), "podman", &ports).to_string(),
            "podman create --name silo-ab3f9c12-ports --label io.silo.id=ab3f9c12 --label io.silo.role=ports \
             --user 65534:65534 --cap-drop all --security-opt no-new-privileges --read-only \
             --sysctl net.ipv4.ip_forward=0 --sysctl net.ipv6.conf.all.forwarding=0 \
             --sysctl net.ipv4.ip_unprivileged_port_start=0 --init \
             --network silo-ab3f9c12-net --network podman --requires silo-ab3f9c12 \
             --publish 127.0.0.1:8080:80 --publish 9000:9000/tcp --publish 8081:80 --publish 5353:53/udp \
             --entrypoint /bin/silo-forward localhost/silo-ab3f9c12-proxy 10.89.3.3 80/tcp 9000/tcp 53/udp"
        );
        let high = [PortMapping::parse("3000:3000").unwrap()];
        let line = create_ports(&names(), &addrs(), "srv", &high).to_string();
        assert!(!line.contains("ip_unprivileged_port_start"), "{line}");
        assert!(line.contains("--network srv "), "{line}");
    }

    #[test]
    fn workspace_flags_per_policy() {
        let allow = Policy::of(&config(Egress::Allow, &["a.org"]));
        assert_eq!(
            workspace_args(&allow, &names(), Some(&addrs())).join(" "),
            "--network silo-ab3f9c12-net:ip=10.89.3.3 --dns none --requires silo-ab3f9c12-proxy \
             --sysctl net.ipv6.conf.all.disable_ipv6=1 --sysctl net.ipv6.conf.default.disable_ipv6=1 \
             --env http_proxy=http://10.89.3.2:3128 --env HTTP_PROXY=http://10.89.3.2:3128 \
             --env https_proxy=http://10.89.3.2:3128 --env HTTPS_PROXY=http://10.89.3.2:3128 \
             --env all_proxy=http://10.89.3.2:3128 --env ALL_PROXY=http://10.89.3.2:3128 \
             --env no_proxy=localhost,127.0.0.1,::1 --env NO_PROXY=localhost,127.0.0.1,::1"
        );
        let none = Policy::of(&config(Egress::None, &[]));
        assert_eq!(workspace_args(&none, &names(), None), ["--network", "none"]);
        let all = Policy::of(&config(Egress::All, &[]));
        assert!(workspace_args(&all, &names(), None).is_empty());
    }

    #[test]
    fn create_args_that_undo_the_policy() {
        let args: Vec<String> = [
            "--cap-drop=ALL",
            "--network=host",
            "-p",
            "8080:80",
            "--sysctl",
            "net.ipv6.conf.all.disable_ipv6=0",
            "--sysctl=kernel.msgmax=1",
            "--cap-add",
            "NET_BIND_SERVICE,net_admin",
            "--privileged=false",
            "--pod=other",
        ]
        .map(str::to_owned)
        .into();
        let allow = Policy::of(&config(Egress::Allow, &[]));
        assert_eq!(
            conflicts(&allow, &args),
            [
                "--network host chooses the container's network",
                "-p 8080:80 publishes ports outside [network].ports",
                "--sysctl net.ipv6.conf.all.disable_ipv6=0 changes the network settings",
                "--cap-add NET_BIND_SERVICE,net_admin lets the container change its network",
                "--pod other chooses the container's network",
            ]
        );
        let all = Policy::of(&config(Egress::All, &[]));
        assert!(conflicts(&all, &args).is_empty());
    }
}
