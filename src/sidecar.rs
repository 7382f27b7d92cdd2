//! The network and the sidecars of `egress = "allow"` (see `network.rs`): made with the
//! workspace container, started with it, recovered when missing, removed with it; and
//! the proxy image, built by Nix from the workspace flake and loaded like the image.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};

use crate::container::Record;
use crate::image;
use crate::network::{self, Addresses, NetNames};
use crate::podman::{self, LABEL_FINGERPRINT};
use crate::proxy;
use crate::runner::{Invocation, Tool};
use crate::safe_fs::Dir;
use crate::session::Session;

/// The network the proxy reaches the outside through: Podman's default network, or, for
/// the end-to-end tests (whose traffic must not leave the machine), the network
/// `SILO_PROXY_NETWORK` names. The port forwarder is always on the default network,
/// where Podman publishes ports.
pub fn outside() -> String {
    std::env::var("SILO_PROXY_NETWORK")
        .ok()
        .filter(|n| {
            !n.is_empty()
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        })
        .unwrap_or_else(|| network::DEFAULT_OUTSIDE.to_owned())
}

pub fn names(s: &Session) -> NetNames {
    NetNames::new(s.config.id.as_str())
}

/// Where the proxy's configuration is rendered: the user's state directory, which the
/// workspace container must not be able to write.
fn config_dir(s: &Session) -> Result<PathBuf> {
    let dir = s.state_dir()?.join("network").join(s.config.id.as_str());
    if dir.starts_with(&s.ws.root) {
        bail!(
            "the proxy's configuration would be in {}, inside the workspace the container can write; silo does not apply egress = \"allow\" to a workspace that holds silo's state directory (run it in a project directory instead)",
            dir.display()
        );
    }
    Ok(dir)
}

/// Writes the proxy's configuration for `record`'s allow list; readable by the proxy,
/// which runs as nobody.
fn write_config(s: &Session, record: &Record, addrs: &Addresses) -> Result<String> {
    let path = config_dir(s)?;
    let dir = Dir::create(&path)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("making {} readable for the proxy", path.display()))?;
    for (name, content) in proxy::files(addrs.proxy, &addrs.subnet, &record.network.entries()) {
        dir.write_if_changed(name, &content)?;
    }
    path.to_str()
        .filter(|p| !p.chars().any(|c| c == ',' || c == '"' || c.is_control()))
        .map(str::to_owned)
        .with_context(|| {
            format!(
                "{} cannot be mounted: podman's --mount syntax does not allow ',', '\"' or control characters in it",
                path.display()
            )
        })
}

/// Builds and loads the proxy image unless an up-to-date one is there.
pub fn ensure_proxy_image(s: &Session) -> Result<()> {
    let names = names(s);
    let wanted = s.inputs.proxy_fingerprint();
    let out = s
        .runner
        .capture(&podman::inspect_image(&names.proxy_image))?;
    let found = podman::parse_image(&out.stdout)?;
    if found
        .as_ref()
        .is_some_and(|i| i.labels.get(LABEL_FINGERPRINT) == Some(&wanted.0))
    {
        return Ok(());
    }
    eprintln!("Building {} (the network proxy)", names.proxy_image);
    let package = image::Package {
        attribute: "proxy",
        image: &names.proxy_image,
        fingerprint: &wanted,
    };
    // Its archive is not recorded for `silo gc`, which keeps only a workspace's newest.
    image::build_and_load(s, image::BuildOptions::default(), &package, found.is_some())
        .context("cannot build the network proxy's image")?;
    if found.is_some() {
        // The proxy image it replaced.
        image::prune(s);
    }
    Ok(())
}

/// The workspace network's addresses; a missing network is made, and one that is not
/// sealed (internal, without DNS) is replaced when nothing uses it.
fn ensure_network(s: &Session, names: &NetNames) -> Result<Addresses> {
    for attempt in 0..2 {
        let out = s.runner.capture(&network::inspect_network(names))?;
        match network::parse_network(&out.stdout)? {
            Some(info) => {
                if let Some(subnet) = info.subnet_if_sealed() {
                    return Addresses::of(subnet);
                }
                if attempt > 0 {
                    break;
                }
                eprintln!(
                    "{} is not an internal network without DNS; replacing it...",
                    names.network
                );
                s.runner
                    .run(&network::remove_network(names))
                    .with_context(|| format!("cannot replace the network {}", names.network))?;
            }
            None if attempt == 0 => {
                eprintln!("Creating the network {}...", names.network);
                let out = s.runner.capture(&network::create_network(names))?;
                if !out.success() && !out.stderr.contains("already exists") {
                    bail!(
                        "cannot create the network {}: {}",
                        names.network,
                        out.stderr.trim()
                    );
                }
            }
            None => break,
        }
    }
    bail!(
        "the network {} is not as silo makes it (internal, without DNS, one IPv4 subnet); remove it with `podman network rm {}`",
        names.network,
        names.network
    )
}

/// Removes a sidecar container if it exists; returns whether it did.
fn remove_sidecar(s: &Session, name: &str) -> Result<bool> {
    if s.inspect_container(name)?.is_none() {
        return Ok(false);
    }
    eprintln!("Removing {name}...");
    s.runner
        .run(&podman_rm(name))
        .with_context(|| format!("cannot remove {name}"))?;
    Ok(true)
}

/// Sidecars hold nothing worth a graceful stop.
fn podman_rm(name: &str) -> Invocation {
    Invocation::new(Tool::Podman, ["rm", "--force", "--time", "1", name])
}

fn create_proxy(s: &Session, record: &Record, names: &NetNames, addrs: &Addresses) -> Result<()> {
    let dir = write_config(s, record, addrs)?;
    eprintln!("Creating {}...", names.proxy);
    s.runner
        .run(&network::create_proxy(names, addrs, &outside(), &dir))
        .with_context(|| format!("cannot create the proxy {}", names.proxy))?;
    Ok(())
}

/// Refuses `create_args` that would undo a policy other than `all`.
pub fn check_create_args(record: &Record) -> Result<()> {
    let conflicts = network::conflicts(&record.network, &record.create_args);
    if !conflicts.is_empty() {
        bail!(
            "[network].egress = \"{}\" cannot hold with these create_args: {}; remove them from [podman].create_args",
            record.network.egress.as_str(),
            conflicts.join("; ")
        );
    }
    Ok(())
}

/// Before the workspace container is created: for `allow`, the proxy image, the network
/// and a fresh proxy (leftover sidecars are replaced). Returns the container's network
/// flags and its addresses.
pub fn prepare(s: &Session, record: &Record) -> Result<(Vec<String>, Option<Addresses>)> {
    check_create_args(record)?;
    let names = names(s);
    if !record.network.proxied() {
        return Ok((network::workspace_args(&record.network, &names, None), None));
    }
    ensure_proxy_image(s)?;
    remove_sidecar(s, &names.ports)?;
    remove_sidecar(s, &names.proxy)?;
    let addrs = ensure_network(s, &names)?;
    create_proxy(s, record, &names, &addrs)?;
    let args = network::workspace_args(&record.network, &names, Some(&addrs));
    Ok((args, Some(addrs)))
}

/// After the workspace container is created: the port forwarder, when there are ports.
pub fn create_forwarder(s: &Session, record: &Record, addrs: &Addresses) -> Result<()> {
    if !record.network.proxied() || record.ports.is_empty() {
        return Ok(());
    }
    let names = names(s);
    let ports: Vec<_> = record
        .ports
        .iter()
        .filter_map(|p| crate::config::values::PortMapping::parse(p).ok())
        .collect();
    eprintln!("Creating {}...", names.ports);
    s.runner
        .run(&network::create_ports(
            &names,
            addrs,
            network::DEFAULT_OUTSIDE,
            &ports,
        ))
        .with_context(|| format!("cannot create the port forwarder {}", names.ports))?;
    Ok(())
}

/// For an existing workspace container: what its policy needs and is missing (the
/// proxy's configuration, the proxy, the forwarder) is made again. A missing network
/// cannot be: the container is attached to the one that was.
pub fn recover(s: &Session, record: &Record) -> Result<()> {
    if !record.network.proxied() {
        return Ok(());
    }
    let names = names(s);
    let out = s.runner.capture(&network::inspect_network(&names))?;
    let Some(subnet) = network::parse_network(&out.stdout)?
        .as_ref()
        .and_then(|i| i.subnet_if_sealed().map(str::to_owned))
    else {
        bail!(
            "the network {} of {} is missing or was changed; run `silo stop && silo` to recreate both",
            names.network,
            names.workspace
        );
    };
    let addrs = Addresses::of(&subnet)?;
    if s.inspect_container(&names.proxy)?.is_none() {
        ensure_proxy_image(s)?;
        create_proxy(s, record, &names, &addrs)?;
    } else {
        write_config(s, record, &addrs)?;
    }
    if !record.ports.is_empty() && s.inspect_container(&names.ports)?.is_none() {
        create_forwarder(s, record, &addrs)?;
    }
    Ok(())
}

/// After the workspace container started (which starts the proxy it requires): the
/// forwarder, and the proxy should it have been stopped alone; missing ones are made
/// again first.
pub fn start(s: &Session, record: &Record) -> Result<()> {
    if !record.network.proxied() {
        return Ok(());
    }
    let names = names(s);
    let mut wanted = vec![names.proxy.as_str()];
    if !record.ports.is_empty() {
        wanted.push(names.ports.as_str());
    }
    let inspect = |wanted: &[&str]| -> Result<Vec<Option<bool>>> {
        wanted
            .iter()
            .map(|name| Ok(s.inspect_container(name)?.map(|i| i.running)))
            .collect()
    };
    let mut running = inspect(&wanted)?;
    if running.iter().any(Option::is_none) {
        recover(s, record)?;
        running = inspect(&wanted)?;
    }
    for (name, running) in wanted.iter().zip(running) {
        if running == Some(false) {
            s.runner.run(&podman::start(name)).map_err(|err| {
                let hint = err
                    .downcast_ref::<crate::runner::CommandFailed>()
                    .and_then(|f| podman::start_hint(&f.stderr));
                let err = err.context(format!("cannot start {name}"));
                match hint {
                    Some(hint) => err.context(hint),
                    None => err,
                }
            })?;
        }
    }
    Ok(())
}

/// Before the workspace container is removed: the forwarder, which requires it.
pub fn remove_forwarder(s: &Session) -> Result<()> {
    remove_sidecar(s, &names(s).ports).map(drop)
}

/// After the workspace container is removed: the proxy, the network and the proxy's
/// configuration.
pub fn remove_rest(s: &Session) -> Result<()> {
    let names = names(s);
    remove_sidecar(s, &names.ports)?;
    remove_sidecar(s, &names.proxy)?;
    remove_network(s)
}

/// The workspace network (when it exists) and the proxy's configuration.
pub fn remove_network(s: &Session) -> Result<()> {
    let names = names(s);
    let out = s.runner.capture(&network::remove_network(&names))?;
    if out.success() {
        eprintln!("Removed the network {}", names.network);
    } else if !out.stderr.contains("network not found") {
        bail!(
            "cannot remove the network {}: {}",
            names.network,
            out.stderr.trim()
        );
    }
    remove_config(&s.state_dir()?, s.config.id.as_str())
}

/// Removes the proxy's configuration of the workspace `id` from the state directory.
pub fn remove_config(state_dir: &std::path::Path, id: &str) -> Result<()> {
    let Some(network) = Dir::open_optional(&state_dir.join("network"))? else {
        return Ok(());
    };
    if let Some(dir) = network.subdir(id)? {
        for (name, _) in proxy::files(std::net::Ipv4Addr::UNSPECIFIED, "", &[]) {
            dir.remove_file(name)?;
        }
        network.remove_empty_dir(id)?;
    }
    Ok(())
}

/// `silo rm`: the proxy image.
pub fn remove_image(s: &Session) -> Result<()> {
    let image = names(s).proxy_image;
    let out = s.runner.capture(&podman::inspect_image(&image))?;
    if podman::parse_image(&out.stdout)?.is_some() {
        eprintln!("Removing {image}...");
        s.runner
            .run(&podman::remove_image(&image))
            .with_context(|| format!("cannot remove {image}"))?;
    }
    Ok(())
}

/// What `silo status` shows of the sidecars: (name, running) of those that exist.
pub fn states(s: &Session) -> Result<Vec<(String, bool)>> {
    let names = names(s);
    let mut out = Vec::new();
    for name in [names.proxy, names.ports] {
        if let Some(info) = s.inspect_container(&name)? {
            out.push((name, info.running));
        }
    }
    Ok(out)
}
