//! `silo gc [--dry-run]`: removes what workspaces that no longer exist left behind
//! (containers, images, private volumes), images a rebuild replaced, and the Nix build
//! results no current image needs. A workspace whose directory exists, or that silo
//! cannot tell about, keeps everything but its replaced images and old build results.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Result, bail};

use crate::built;
use crate::catalog::{Catalog, Entry, Presence};
use crate::inventory::{Inventory, tagged_name};
use crate::list::human_size;
use crate::network::{LABEL_ROLE, NetNames};
use crate::prompt;
use crate::runner::{Invocation, Runner, Tool};
use crate::session::Ctx;

/// One thing to remove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Container {
        id: String,
        name: String,
    },
    Image {
        id: String,
        name: String,
        size: u64,
    },
    Volume {
        name: String,
        mountpoint: String,
    },
    Archive {
        path: String,
        size: u64,
    },
    /// The network of `[network] egress = "allow"`, `silo-<id>-net`.
    Network {
        name: String,
    },
}

impl Item {
    pub fn invocation(&self) -> Invocation {
        match self {
            // Never --force: podman refuses a container that started since, an image or
            // a volume that something uses.
            Item::Container { id, .. } => Invocation::new(Tool::Podman, ["rm", id.as_str()]),
            Item::Image { id, .. } => Invocation::new(Tool::Podman, ["rmi", id.as_str()]),
            Item::Volume { name, .. } => {
                Invocation::new(Tool::Podman, ["volume", "rm", name.as_str()])
            }
            Item::Archive { path, .. } => built::delete(path),
            Item::Network { name } => {
                Invocation::new(Tool::Podman, ["network", "rm", name.as_str()])
            }
        }
    }

    /// As listed: `container silo-ab3f9c12`.
    pub fn describe(&self, volume_size: Option<u64>) -> String {
        match self {
            Item::Container { name, .. } => format!("container {name}"),
            Item::Image { name, size, .. } => format!("image {name} ({})", human_size(*size)),
            Item::Volume { name, .. } => match volume_size {
                Some(size) => format!("volume {name} (private data, {})", human_size(size)),
                None => format!("volume {name} (private data)"),
            },
            Item::Archive { path, size } => {
                format!("Nix build result {path} ({})", human_size(*size))
            }
            Item::Network { name } => format!("network {name}"),
        }
    }
}

/// What to remove for one workspace, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub heading: String,
    pub items: Vec<Item>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub groups: Vec<Group>,
    /// What was left although it looked removable, and why.
    pub kept: Vec<String>,
}

fn short(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    &hex[..hex.len().min(12)]
}

/// The plan for the workspaces in `catalog`; pure, so that it is tested without Podman.
pub fn plan(catalog: &Catalog) -> Plan {
    let mut plan = Plan::default();
    for entry in &catalog.entries {
        let mut items = Vec::new();
        let heading = match entry.presence {
            p if p.dead() => {
                dead_workspace(&catalog.inventory, entry, &mut items, &mut plan.kept);
                let why = if p == Presence::Gone {
                    "gone"
                } else {
                    "no longer holds this workspace"
                };
                format!(
                    "Workspace {} at {} ({why}):",
                    entry.id,
                    entry.path.as_deref().unwrap_or("?")
                )
            }
            _ => {
                replaced_images(&catalog.inventory, &entry.id, &mut items);
                format!(
                    "Workspace {} at {}:",
                    entry.id,
                    entry.path.as_deref().unwrap_or("an unknown directory")
                )
            }
        };
        if let Some(builds) = catalog.builds_of(&entry.id) {
            // A live workspace keeps the current image's archive: `silo build` reuses it
            // if the image is removed from Podman.
            let archives = if entry.presence.dead() && !running(catalog, entry) {
                &builds.archives[..]
            } else {
                builds.superseded()
            };
            for path in archives {
                if let Some(size) = built::present(path) {
                    items.push(Item::Archive {
                        path: path.clone(),
                        size,
                    });
                }
            }
        }
        if !items.is_empty() {
            plan.groups.push(Group { heading, items });
        }
    }
    plan
}

fn running(catalog: &Catalog, entry: &Entry) -> bool {
    catalog
        .inventory
        .containers_of(&entry.id)
        .any(|c| c.running())
}

/// Everything of a workspace that is gone, unless a container of it still runs (the
/// user may be in it: a renamed directory stays mounted).
fn dead_workspace(inv: &Inventory, entry: &Entry, items: &mut Vec<Item>, kept: &mut Vec<String>) {
    let id = &entry.id;
    let running: Vec<&str> = inv
        .containers_of(id)
        .filter(|c| c.running())
        .map(|c| c.name.as_str())
        .collect();
    if !running.is_empty() {
        kept.push(format!(
            "workspace {id}: {} still running although {} is gone; stop it (`podman stop {}`) and run `silo gc` again",
            running.join(", "),
            entry.path.as_deref().unwrap_or("its directory"),
            running.join(" ")
        ));
        replaced_images(inv, id, items);
        return;
    }
    let removed: Vec<&str> = inv.containers_of(id).map(|c| c.id.as_str()).collect();
    // What requires another container goes first: the port forwarder, then the
    // workspace's containers, then the proxy they require.
    let mut containers: Vec<_> = inv.containers_of(id).collect();
    containers.sort_by_key(|c| match c.labels.get(LABEL_ROLE).map(String::as_str) {
        Some("ports") => 0,
        Some("proxy") => 2,
        _ => 1,
    });
    for c in &containers {
        items.push(Item::Container {
            id: c.id.clone(),
            name: c.name.clone(),
        });
    }
    if containers
        .iter()
        .any(|c| c.labels.get(LABEL_ROLE).map(String::as_str) == Some("proxy"))
    {
        items.push(Item::Network {
            name: NetNames::new(id).network,
        });
    }
    let tagged = tagged_name(id);
    for image in inv.images_of(id) {
        let users = inv.containers.iter().filter(|c| c.image_id == image.id);
        if users.clone().any(|c| !removed.contains(&c.id.as_str())) {
            kept.push(format!(
                "image {} of workspace {id}: a container of another workspace uses it",
                short(&image.id)
            ));
            continue;
        }
        let name = if image.names.contains(&tagged) {
            format!("localhost/silo-{id}")
        } else if let Some(other) = image.names.first() {
            // The network proxy's image.
            other.trim_end_matches(":latest").to_owned()
        } else {
            format!("{} (replaced by a rebuild)", short(&image.id))
        };
        items.push(Item::Image {
            id: image.id.clone(),
            name,
            size: image.size,
        });
    }
    for volume in inv.volumes_of(id) {
        items.push(Item::Volume {
            name: volume.name.clone(),
            mountpoint: volume.mountpoint.clone(),
        });
    }
}

/// Images a rebuild replaced (no name left) that no container uses.
fn replaced_images(inv: &Inventory, id: &str, items: &mut Vec<Item>) {
    for image in inv.images_of(id) {
        let used = image.containers > 0 || inv.containers.iter().any(|c| c.image_id == image.id);
        if image.names.is_empty() && !used {
            items.push(Item::Image {
                id: image.id.clone(),
                name: format!("{} (replaced by a rebuild)", short(&image.id)),
                size: image.size,
            });
        }
    }
}

/// The plan as shown, with the space it frees (volume sizes from `volume_size`).
pub fn render(plan: &Plan, volume_size: &mut dyn FnMut(&str) -> Option<u64>) -> (String, u64) {
    let mut out = String::new();
    let mut total = 0;
    for group in &plan.groups {
        let _ = writeln!(out, "{}", group.heading);
        for item in &group.items {
            let size = match item {
                Item::Volume { mountpoint, .. } => volume_size(mountpoint),
                _ => None,
            };
            total += match item {
                Item::Image { size, .. } | Item::Archive { size, .. } => *size,
                Item::Volume { .. } => size.unwrap_or(0),
                Item::Container { .. } | Item::Network { .. } => 0,
            };
            let _ = writeln!(out, "  {}", item.describe(size));
        }
    }
    (out, total)
}

/// The bytes below a directory, links not followed; what cannot be read is not counted.
pub fn disk_usage(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.path().symlink_metadata() else {
                continue;
            };
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                total += meta.len();
            }
        }
    }
    total
}

/// `silo gc`.
pub fn run(
    ctx: &Ctx,
    state_dir: &Path,
    under: Option<&Path>,
    dry_run: bool,
    yes: bool,
) -> Result<()> {
    let mut catalog = Catalog::read(&ctx.runner, &ctx.user_dir.dir, state_dir)?;
    catalog.retain_under(under);
    let plan = plan(&catalog);
    for note in &plan.kept {
        eprintln!("note: kept {note}");
    }
    if plan.groups.is_empty() {
        eprintln!("Nothing to clean up.");
        return Ok(());
    }
    let (text, total) = render(&plan, &mut |mp| Some(disk_usage(Path::new(mp))));
    print!("{text}");
    let about = format!("about {}", human_size(total));
    if dry_run {
        eprintln!("Would free {about}; nothing was removed (--dry-run).");
        return Ok(());
    }
    if plan
        .groups
        .iter()
        .any(|g| g.items.iter().any(|i| matches!(i, Item::Volume { .. })))
    {
        eprintln!(
            "A workspace you moved or renamed and have not opened since looks gone: answer no and run `silo` in its new place first, or its private data is lost."
        );
    }
    if !prompt::confirm(&format!("Remove all of this ({about})?"), yes, "silo gc")? {
        bail!("nothing was removed");
    }
    let failures = remove(&ctx.runner, &plan, state_dir);
    if failures > 0 {
        bail!(
            "{failures} of the items above could not be removed (see the notes); the rest was removed"
        );
    }
    eprintln!("Removed; freed {about}.");
    Ok(())
}

/// Removes every item in order (containers before the images and volumes they use);
/// returns how many failed.
fn remove(runner: &Runner, plan: &Plan, state_dir: &Path) -> usize {
    let mut failures = 0;
    let rank = |i: &Item| match i {
        Item::Container { .. } => 0,
        // Once no container uses it.
        Item::Network { .. } => 1,
        Item::Image { .. } => 2,
        Item::Volume { .. } => 3,
        Item::Archive { .. } => 4,
    };
    let mut items: Vec<&Item> = plan.groups.iter().flat_map(|g| &g.items).collect();
    items.sort_by_key(|i| rank(i));
    let mut deleted: Vec<String> = Vec::new();
    for item in items {
        let result = runner.capture(&item.invocation());
        match result {
            Ok(out) if out.success() => {
                eprintln!("Removed {}", item.describe(None));
                if let Item::Archive { path, .. } = item {
                    deleted.push(path.clone());
                }
            }
            Ok(out) => {
                failures += 1;
                let why = if matches!(item, Item::Archive { .. }) && built::still_alive(&out.stderr)
                {
                    "Nix keeps it alive (a GC root refers to it: `nix-store --query --roots PATH` tells which)".to_owned()
                } else {
                    out.stderr.trim().to_owned()
                };
                eprintln!("note: cannot remove {}: {why}", item.describe(None));
            }
            Err(err) => {
                failures += 1;
                eprintln!("note: cannot remove {}: {err:#}", item.describe(None));
            }
        }
    }
    forget_deleted(state_dir, &deleted);
    failures
}

/// Drops deleted archives from the build records (best effort: a stale line is
/// skipped next time, as the path is no longer in the store).
fn forget_deleted(state_dir: &Path, deleted: &[String]) {
    let Ok(all) = built::read_all(state_dir) else {
        return;
    };
    for builds in all {
        if builds.archives.iter().any(|a| deleted.contains(a)) {
            let kept: Vec<String> = builds
                .archives
                .iter()
                .filter(|a| !deleted.contains(a))
                .cloned()
                .collect();
            let _ = built::forget(state_dir, &builds.id, &kept);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::built::Builds;
    use crate::inventory::{Container, Image, Volume};
    use std::collections::BTreeMap;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn container(id: &str, ws: &str, state: &str, image: &str) -> Container {
        Container {
            id: format!("c-{id}-{state}"),
            name: format!("silo-{id}"),
            state: state.into(),
            labels: labels(&[("io.silo.id", id), ("io.silo.workspace", ws)]),
            image_id: image.into(),
            started_at: None,
            exited_at: None,
        }
    }

    fn image(id: &str, image_id: &str, tagged: bool, containers: u64) -> Image {
        Image {
            id: image_id.into(),
            names: if tagged {
                vec![tagged_name(id)]
            } else {
                vec![]
            },
            size: 1000,
            labels: labels(&[("io.silo.id", id)]),
            containers,
        }
    }

    fn volume(name: &str, scope: &str) -> Volume {
        Volume {
            name: name.into(),
            mountpoint: format!("/v/{name}/_data"),
            labels: labels(&[("io.silo.scope", scope)]),
        }
    }

    fn catalog() -> Catalog {
        Catalog {
            inventory: Inventory {
                containers: vec![
                    container("dead0001", "/gone", "exited", "img-dead"),
                    container("live0001", "/live", "running", "img-live"),
                    container("busy0001", "/moved", "running", "img-busy"),
                ],
                images: vec![
                    image("dead0001", "img-dead", true, 1),
                    image("dead0001", "img-dead-old", false, 0),
                    image("live0001", "img-live", true, 1),
                    image("live0001", "img-live-old", false, 0),
                    image("busy0001", "img-busy", true, 1),
                    image("nopath01", "img-nopath-old", false, 0),
                    image("nopath01", "img-nopath", true, 0),
                ],
                volumes: vec![
                    volume("silo-dead0001-data-aaaaaa", "dead0001"),
                    volume("silo-live0001-data-bbbbbb", "live0001"),
                    volume("silo-busy0001-data-cccccc", "busy0001"),
                    volume("silo-shared-x-dddddd", "shared"),
                ],
            },
            entries: vec![
                Entry::at("dead0001", "/gone", Presence::Gone),
                Entry::at("live0001", "/live", Presence::Present),
                Entry::at("busy0001", "/moved", Presence::Gone),
                Entry {
                    id: "nopath01".into(),
                    path: None,
                    paths: vec![],
                    presence: Presence::Unknown,
                },
            ],
            builds: vec![],
        }
    }

    fn shown(plan: &Plan) -> String {
        render(plan, &mut |_| Some(5)).0
    }

    #[test]
    fn only_dead_workspaces_lose_their_data() {
        let plan = plan(&catalog());
        assert_eq!(
            shown(&plan),
            "\
Workspace dead0001 at /gone (gone):
  container silo-dead0001
  image localhost/silo-dead0001 (1.00 kB)
  image img-dead-old (replaced by a rebuild) (1.00 kB)
  volume silo-dead0001-data-aaaaaa (private data, 5 B)
Workspace live0001 at /live:
  image img-live-old (replaced by a rebuild) (1.00 kB)
Workspace nopath01 at an unknown directory:
  image img-nopath-o (replaced by a rebuild) (1.00 kB)
"
        );
        // A running container of a gone workspace keeps everything of it.
        assert_eq!(plan.kept.len(), 1);
        assert!(plan.kept[0].starts_with("workspace busy0001: silo-busy0001 still running"));
        assert_eq!(render(&plan, &mut |_| Some(5)).1, 4005);
    }

    #[test]
    fn a_dead_workspaces_sidecars_go_in_order_and_then_its_network() {
        let with_role = |suffix: &str, role: &str| {
            let mut c = container("dead0002", "/gone2", "exited", "img-proxy");
            c.name = format!("silo-dead0002{suffix}");
            c.id = format!("c{suffix}");
            c.labels.insert(LABEL_ROLE.into(), role.into());
            c
        };
        let proxy = with_role("-proxy", "proxy");
        let ports = with_role("-ports", "ports");
        let mut proxy_image = image("dead0002", "img-proxy", false, 2);
        proxy_image.names = vec!["localhost/silo-dead0002-proxy:latest".into()];
        let catalog = Catalog {
            inventory: Inventory {
                containers: vec![
                    proxy,
                    container("dead0002", "/gone2", "exited", "img-dead2"),
                    ports,
                ],
                images: vec![proxy_image, image("dead0002", "img-dead2", true, 1)],
                volumes: vec![],
            },
            entries: vec![Entry::at("dead0002", "/gone2", Presence::Gone)],
            builds: vec![],
        };
        let plan = plan(&catalog);
        let shown: Vec<String> = plan.groups[0]
            .items
            .iter()
            .map(|i| i.describe(None))
            .collect();
        assert_eq!(
            shown,
            [
                "container silo-dead0002-ports",
                "container silo-dead0002",
                "container silo-dead0002-proxy",
                "network silo-dead0002-net",
                "image localhost/silo-dead0002-proxy (1.00 kB)",
                "image localhost/silo-dead0002 (1.00 kB)",
            ]
        );
        assert_eq!(
            Item::Network {
                name: "silo-dead0002-net".into()
            }
            .invocation()
            .to_string(),
            "podman network rm silo-dead0002-net"
        );
    }

    #[test]
    fn removal_command_lines() {
        let items = [
            Item::Container {
                id: "c1".into(),
                name: "silo-x".into(),
            },
            Item::Image {
                id: "sha256:abc".into(),
                name: "x".into(),
                size: 0,
            },
            Item::Volume {
                name: "silo-x-data-aaaaaa".into(),
                mountpoint: String::new(),
            },
        ];
        let lines: Vec<String> = items.iter().map(|i| i.invocation().to_string()).collect();
        assert_eq!(
            lines,
            [
                "podman rm c1",
                "podman rmi sha256:abc",
                "podman volume rm silo-x-data-aaaaaa"
            ]
        );
    }

    #[test]
    fn build_results_no_image_needs() {
        let tmp = tempfile::tempdir().unwrap();
        let archive = |n: char| {
            let path = tmp
                .path()
                .join(format!("{}-silo-x.tar", n.to_string().repeat(32)));
            std::fs::write(&path, "1234").unwrap();
            path.display().to_string()
        };
        let (a, b, c, d) = (archive('a'), archive('b'), archive('c'), archive('d'));
        let missing = tmp.path().join(format!("{}-silo-x.tar", "e".repeat(32)));
        let mut catalog = catalog();
        catalog.builds = vec![
            Builds {
                id: "live0001".into(),
                workspace: "/live".into(),
                archives: vec![a.clone(), b.clone()],
            },
            Builds {
                id: "dead0001".into(),
                workspace: "/gone".into(),
                archives: vec![missing.display().to_string(), c.clone(), d.clone()],
            },
        ];
        let plan = plan(&catalog);
        let archives: Vec<&str> = plan
            .groups
            .iter()
            .flat_map(|g| &g.items)
            .filter_map(|i| match i {
                Item::Archive { path, .. } => Some(path.as_str()),
                _ => None,
            })
            .collect();
        // The live workspace keeps its current archive (b); the dead one loses all that
        // are still in the store.
        assert_eq!(archives, [c.as_str(), d.as_str(), a.as_str()]);
    }

    #[test]
    fn disk_usage_does_not_follow_links() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("d")).unwrap();
        std::fs::write(tmp.path().join("d/f"), "12345").unwrap();
        std::os::unix::fs::symlink("/usr", tmp.path().join("l")).unwrap();
        assert_eq!(disk_usage(tmp.path()), 5 + "/usr".len() as u64);
    }
}
