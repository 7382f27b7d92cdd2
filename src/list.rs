//! `silo list [--json]`: every silo workspace on this machine, from Podman's labels:
//! where it is and whether that directory still holds it, its container and image, its
//! private data, and when it was last used.

use std::path::Path;

use anyhow::Result;
use serde::Serialize;

use crate::catalog::{Catalog, Entry, Presence};
use crate::config::UserDir;
use crate::fingerprint::Fingerprint;
use crate::inventory::{Inventory, tagged_name};
use crate::podman::ImageInfo;
use crate::runner::Runner;
use crate::session::read_config;
use crate::state::{ImageState, RunState};
use crate::workspace::Workspace;

/// What `silo list` can say about an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImageLook {
    Missing,
    UpToDate,
    Outdated,
    /// The image exists, but its workspace's files cannot be read here.
    Unknown,
}

#[derive(Debug, Serialize)]
pub struct Row {
    pub id: String,
    pub workspace: WorkspaceJson,
    pub container: ContainerJson,
    pub image: ImageJson,
    /// The workspace's private volumes.
    pub volumes: Vec<String>,
    /// Unix time: now for a running container, else when its container last started or
    /// stopped; `null` when no container is left to tell.
    pub last_used: Option<i64>,
}

#[derive(Debug, Serialize)]
pub struct WorkspaceJson {
    pub path: Option<String>,
    pub state: Presence,
}

#[derive(Debug, Serialize)]
pub struct ContainerJson {
    pub name: String,
    pub state: RunState,
}

#[derive(Debug, Serialize)]
pub struct ImageJson {
    pub name: String,
    pub state: ImageLook,
    /// Bytes, as Podman counts them (layers shared with other images included).
    pub size: u64,
    /// Images a rebuild replaced that are still there.
    pub replaced: usize,
    pub replaced_size: u64,
}

#[derive(Serialize)]
struct Listing<'a> {
    workspaces: &'a [Row],
    shared_volumes: Vec<&'a str>,
}

/// One row per workspace. `fingerprint` gives the current fingerprint of a workspace
/// whose directory holds it (None when its files cannot be read).
pub fn rows(
    catalog: &Catalog,
    now: i64,
    fingerprint: &mut dyn FnMut(&Entry) -> Option<Fingerprint>,
) -> Vec<Row> {
    let inv = &catalog.inventory;
    let mut rows: Vec<Row> = catalog
        .entries
        .iter()
        .filter(|e| has_podman_objects(inv, &e.id))
        .map(|e| row(inv, e, now, fingerprint))
        .collect();
    rows.sort_by(|a, b| (&a.workspace.path, &a.id).cmp(&(&b.workspace.path, &b.id)));
    rows
}

fn has_podman_objects(inv: &Inventory, id: &str) -> bool {
    inv.containers_of(id).next().is_some()
        || inv.images_of(id).next().is_some()
        || inv.volumes_of(id).next().is_some()
}

fn row(
    inv: &Inventory,
    e: &Entry,
    now: i64,
    fingerprint: &mut dyn FnMut(&Entry) -> Option<Fingerprint>,
) -> Row {
    let id = &e.id;
    let container_name = format!("silo-{id}");
    let main = inv.containers_of(id).find(|c| c.name == container_name);
    let run = match main {
        None => RunState::Missing,
        Some(c) if c.running() => RunState::Running,
        Some(_) => RunState::Stopped,
    };
    let tagged = tagged_name(id);
    let (current, replaced): (Vec<_>, Vec<_>) =
        inv.images_of(id).partition(|i| i.names.contains(&tagged));
    let image = current.first();
    let state = match image {
        None => ImageLook::Missing,
        Some(image) if e.presence == Presence::Present => match fingerprint(e) {
            Some(fp) => {
                let info = ImageInfo {
                    labels: image.labels.clone(),
                };
                match ImageState::of(Some(&info), &fp) {
                    ImageState::UpToDate => ImageLook::UpToDate,
                    _ => ImageLook::Outdated,
                }
            }
            None => ImageLook::Unknown,
        },
        Some(_) => ImageLook::Unknown,
    };
    let containers: Vec<_> = inv.containers_of(id).collect();
    let last_used = if containers.iter().any(|c| c.running()) {
        Some(now)
    } else {
        containers
            .iter()
            .flat_map(|c| [c.started_at, c.exited_at])
            .flatten()
            .max()
    };
    Row {
        id: id.clone(),
        workspace: WorkspaceJson {
            path: e.path.clone(),
            state: e.presence,
        },
        container: ContainerJson {
            name: container_name,
            state: run,
        },
        image: ImageJson {
            name: format!("localhost/silo-{id}"),
            state,
            size: image.map_or(0, |i| i.size),
            replaced: replaced.len(),
            replaced_size: replaced.iter().map(|i| i.size).sum(),
        },
        volumes: inv.volumes_of(id).map(|v| v.name.clone()).collect(),
        last_used,
    }
}

/// The fingerprint of the workspace at `e.path` as `silo status` computes it: its files
/// and the user's, read without evaluating Nix.
fn current_fingerprint(e: &Entry, user_dir: &UserDir) -> Option<Fingerprint> {
    let ws = Workspace {
        root: e.path.as_ref()?.into(),
        subdir: Default::default(),
    };
    let silo = ws.silo().ok()??;
    let (_, _, inputs) = read_config(&ws, &silo, user_dir).ok()?;
    Some(inputs.fingerprint())
}

/// `silo list`: the table, or JSON, on stdout.
pub fn print(
    runner: &Runner,
    user_dir: &UserDir,
    state_dir: &Path,
    under: Option<&Path>,
    json: bool,
) -> Result<()> {
    let mut catalog = Catalog::read(runner, &user_dir.dir, state_dir)?;
    catalog.retain_under(under);
    let now = unix_now();
    let rows = rows(&catalog, now, &mut |e| current_fingerprint(e, user_dir));
    if json {
        let listing = Listing {
            workspaces: &rows,
            shared_volumes: catalog
                .inventory
                .shared_volumes()
                .map(|v| v.name.as_str())
                .collect(),
        };
        println!(
            "{}",
            serde_json::to_string_pretty(&listing).expect("plain data")
        );
        return Ok(());
    }
    if rows.is_empty() {
        eprintln!("No silo workspaces here: Podman has no container, image or volume of one.");
        return Ok(());
    }
    print!("{}", table(&rows, now));
    Ok(())
}

pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The table `silo list` prints, columns aligned.
pub fn table(rows: &[Row], now: i64) -> String {
    let mut lines = vec![[
        "ID".to_owned(),
        "CONTAINER".to_owned(),
        "IMAGE".to_owned(),
        "SIZE".to_owned(),
        "VOLUMES".to_owned(),
        "LAST USED".to_owned(),
        "WORKSPACE".to_owned(),
    ]];
    for r in rows {
        let size = match r.image.state {
            ImageLook::Missing => "-".to_owned(),
            _ => human_size(r.image.size),
        };
        let last = match (r.container.state, r.last_used) {
            (RunState::Running, _) => "now".to_owned(),
            (_, Some(t)) => ago(now - t),
            (_, None) => "-".to_owned(),
        };
        let path = r.workspace.path.as_deref().unwrap_or("?");
        let note = match r.workspace.state {
            Presence::Present => "",
            Presence::Gone => " (gone)",
            Presence::Replaced => " (no longer this workspace)",
            Presence::Unknown => " (cannot tell)",
        };
        lines.push([
            r.id.clone(),
            word(r.container.state).to_owned(),
            image_word(r.image.state).to_owned(),
            size,
            r.volumes.len().to_string(),
            last,
            format!("{path}{note}"),
        ]);
    }
    let widths: Vec<usize> = (0..6)
        .map(|i| {
            lines
                .iter()
                .map(|l| l[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for line in &lines {
        for (i, cell) in line.iter().enumerate() {
            if i < 6 {
                out.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            } else {
                out.push_str(cell);
            }
        }
        out.push('\n');
    }
    out
}

fn word(state: RunState) -> &'static str {
    match state {
        RunState::Running => "running",
        RunState::Stopped => "stopped",
        RunState::Missing => "missing",
    }
}

fn image_word(state: ImageLook) -> &'static str {
    match state {
        ImageLook::Missing => "missing",
        ImageLook::UpToDate => "up to date",
        ImageLook::Outdated => "outdated",
        ImageLook::Unknown => "unknown",
    }
}

/// `1.99 MB`, `312 MB`, `1.2 GB`: decimal units with three significant digits, as
/// Podman prints sizes.
pub fn human_size(bytes: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 999.5 && unit + 1 < units.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        return format!("{bytes} B");
    }
    let digits = if value >= 99.95 {
        0
    } else if value >= 9.995 {
        1
    } else {
        2
    };
    format!("{value:.digits$} {}", units[unit])
}

/// `3 minutes ago`, `2 days ago`.
fn ago(seconds: i64) -> String {
    let s = seconds.max(0);
    let (n, unit) = match s {
        0..60 => return "just now".to_owned(),
        60..3600 => (s / 60, "minute"),
        3600..86_400 => (s / 3600, "hour"),
        _ => (s / 86_400, "day"),
    };
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::{parse_containers, parse_images, parse_volumes};

    const PS: &str = include_str!("../tests/fixtures/podman-4.3/ps.json");
    const IMAGES: &str = include_str!("../tests/fixtures/podman-4.3/images.json");
    const VOLUMES: &str = include_str!("../tests/fixtures/podman-4.3/volume-ls.json");

    fn catalog(entries: Vec<Entry>) -> Catalog {
        Catalog {
            inventory: Inventory {
                containers: parse_containers(PS).unwrap(),
                images: parse_images(IMAGES).unwrap(),
                volumes: parse_volumes(VOLUMES).unwrap(),
            },
            entries,
            builds: Vec::new(),
        }
    }

    #[test]
    fn rows_from_podman_4_3() {
        let catalog = catalog(vec![
            Entry::at("capt0001", "/tmp/cap/gone", Presence::Gone),
            Entry::at("capt0002", "/tmp/cap/ws2", Presence::Present),
            // Known only from a build record: nothing in Podman, no row.
            Entry::at("nothing0", "/tmp/cap/n", Presence::Present),
        ]);
        let now = 1_795_902_028 + 7200;
        let mut asked = Vec::new();
        let rows = rows(&catalog, now, &mut |e| {
            asked.push(e.id.clone());
            Some(Fingerprint("00112233aabbccdd".into()))
        });
        // Only a workspace whose directory holds it is read (and capt0002 has no image).
        assert!(asked.is_empty(), "{asked:?}");
        assert_eq!(rows.len(), 2);
        let gone = &rows[0];
        assert_eq!(gone.id, "capt0001");
        assert_eq!(gone.container.state, RunState::Stopped);
        assert_eq!(gone.image.state, ImageLook::Unknown);
        assert_eq!(gone.image.size, 1_987_718);
        assert_eq!(
            (gone.image.replaced, gone.image.replaced_size),
            (1, 1_987_758)
        );
        assert_eq!(gone.volumes, ["capt-silo-capt0001-data-aaaaaa"]);
        assert_eq!(gone.last_used, None);
        let running = &rows[1];
        assert_eq!(running.container.state, RunState::Running);
        assert_eq!(running.image.state, ImageLook::Missing);
        assert_eq!(running.last_used, Some(now));

        assert_eq!(
            table(&rows, now),
            "\
ID        CONTAINER  IMAGE    SIZE     VOLUMES  LAST USED  WORKSPACE
capt0001  stopped    unknown  1.99 MB  1        -          /tmp/cap/gone (gone)
capt0002  running    missing  -        0        now        /tmp/cap/ws2
"
        );
    }

    #[test]
    fn image_state_from_the_fingerprint() {
        let catalog = catalog(vec![Entry::at("capt0001", "/w", Presence::Present)]);
        let state = |fp: Option<&str>| {
            rows(&catalog, 0, &mut |_| fp.map(|f| Fingerprint(f.into())))[0]
                .image
                .state
        };
        // The tagged image is labelled "ffff"; the replaced one "0011...".
        assert_eq!(state(Some("ffff")), ImageLook::UpToDate);
        assert_eq!(state(Some("00112233aabbccdd")), ImageLook::Outdated);
        assert_eq!(state(None), ImageLook::Unknown);
    }

    #[test]
    fn json_shape() {
        let catalog = catalog(vec![Entry::at("capt0001", "/w", Presence::Present)]);
        let rows = rows(&catalog, 0, &mut |_| Some(Fingerprint("ffff".into())));
        let json = serde_json::to_value(&rows[0]).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "id": "capt0001",
                "workspace": {"path": "/w", "state": "present"},
                "container": {"name": "silo-capt0001", "state": "stopped"},
                "image": {"name": "localhost/silo-capt0001", "state": "up-to-date",
                          "size": 1_987_718, "replaced": 1, "replaced_size": 1_987_758},
                "volumes": ["capt-silo-capt0001-data-aaaaaa"],
                "last_used": null
            })
        );
    }

    #[test]
    fn sizes_and_ages() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(999), "999 B");
        assert_eq!(human_size(1_987_758), "1.99 MB");
        assert_eq!(human_size(78_300_000), "78.3 MB");
        assert_eq!(human_size(312_400_000), "312 MB");
        assert_eq!(human_size(1_234_000_000), "1.23 GB");
        assert_eq!(ago(5), "just now");
        assert_eq!(ago(60), "1 minute ago");
        assert_eq!(ago(7200), "2 hours ago");
        assert_eq!(ago(3 * 86_400 + 5), "3 days ago");
        assert_eq!(ago(-5), "just now");
    }
}
