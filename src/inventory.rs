//! Everything Podman holds for silo on this machine, read in three listing calls
//! (containers, images, volumes) whatever the number of workspaces, and grouped by
//! workspace id: what `silo list`, `silo gc` and `silo rm --all` work from.
//!
//! Podman's labels are the record: a container carries `io.silo.id` and
//! `io.silo.workspace` (set at create), an image `io.silo.id` (set by the Nix image
//! function, and inherited by every container made from it, the devcontainer included),
//! a volume `io.silo.scope` and, when private, `io.silo.id` and `io.silo.workspace`.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result};
use serde::Deserialize;

use crate::podman::{LABEL_ID, LABEL_WORKSPACE};
use crate::runner::{Invocation, Runner, Tool};
use crate::volume::LABEL_SCOPE;

/// One container, as `podman ps --all --format json` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    pub id: String,
    pub name: String,
    /// Podman's word: `created`, `running`, `exited`, `paused`, ...
    pub state: String,
    pub labels: BTreeMap<String, String>,
    /// The image it was created from.
    pub image_id: String,
    /// Unix times; `None` when it never started or exited.
    pub started_at: Option<i64>,
    pub exited_at: Option<i64>,
}

impl Container {
    pub fn running(&self) -> bool {
        matches!(self.state.as_str(), "running" | "paused")
    }
}

/// One image, as `podman images --format json` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub id: String,
    /// `localhost/silo-<id>:latest`; empty for an image a rebuild replaced.
    pub names: Vec<String>,
    pub size: u64,
    pub labels: BTreeMap<String, String>,
    /// How many containers use it.
    pub containers: u64,
}

/// One volume, as `podman volume ls --format json` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    pub name: String,
    pub mountpoint: String,
    pub labels: BTreeMap<String, String>,
}

impl Volume {
    /// The workspace id of a private volume; `None` for a shared one.
    pub fn private_to(&self) -> Option<&str> {
        match self.labels.get(LABEL_SCOPE).map(String::as_str) {
            None | Some("shared") => None,
            Some(id) => Some(id),
        }
    }
}

/// `podman ps --all` of every container with a silo id (the devcontainer inherits it
/// from the image).
pub fn list_containers() -> Invocation {
    let filter = format!("label={LABEL_ID}");
    Invocation::new(
        Tool::Podman,
        ["ps", "--all", "--filter", &filter, "--format", "json"],
    )
}

/// `podman images` of every image with a silo id, replaced ones (untagged) included.
pub fn list_images() -> Invocation {
    let filter = format!("label={LABEL_ID}");
    Invocation::new(
        Tool::Podman,
        ["images", "--filter", &filter, "--format", "json"],
    )
}

/// `podman volume ls` of every volume silo made for a persisted path.
pub fn list_volumes() -> Invocation {
    let filter = format!("label={LABEL_SCOPE}");
    Invocation::new(
        Tool::Podman,
        ["volume", "ls", "--filter", &filter, "--format", "json"],
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawContainer {
    id: String,
    #[serde(default)]
    names: Vec<String>,
    #[serde(default)]
    state: String,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
    #[serde(default, rename = "ImageID")]
    image_id: String,
    #[serde(default)]
    started_at: i64,
    #[serde(default)]
    exited_at: i64,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawImage {
    id: String,
    #[serde(default)]
    names: Option<Vec<String>>,
    #[serde(default)]
    size: u64,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    containers: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawVolume {
    name: String,
    #[serde(default)]
    mountpoint: String,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
}

/// Podman prints nothing (or `null`) rather than `[]` for an empty list in some versions.
fn parse_list<T: for<'de> Deserialize<'de>>(stdout: &str, what: &str) -> Result<Vec<T>> {
    let trimmed = stdout.trim();
    if trimmed.is_empty() || trimmed == "null" {
        return Ok(Vec::new());
    }
    serde_json::from_str(trimmed).with_context(|| format!("unexpected output of podman {what}"))
}

/// A time Podman has not set is Go's zero time (year 1) or 0.
fn unix_time(t: i64) -> Option<i64> {
    (t > 0).then_some(t)
}

pub fn parse_containers(stdout: &str) -> Result<Vec<Container>> {
    Ok(parse_list::<RawContainer>(stdout, "ps")?
        .into_iter()
        .map(|c| Container {
            name: c.names.into_iter().next().unwrap_or_else(|| c.id.clone()),
            id: c.id,
            state: c.state.to_ascii_lowercase(),
            labels: c.labels.unwrap_or_default(),
            image_id: c.image_id,
            started_at: unix_time(c.started_at),
            exited_at: unix_time(c.exited_at),
        })
        .collect())
}

pub fn parse_images(stdout: &str) -> Result<Vec<Image>> {
    Ok(parse_list::<RawImage>(stdout, "images")?
        .into_iter()
        .map(|i| Image {
            id: i.id,
            names: i.names.unwrap_or_default(),
            size: i.size,
            labels: i.labels.unwrap_or_default(),
            containers: i.containers,
        })
        .collect())
}

pub fn parse_volumes(stdout: &str) -> Result<Vec<Volume>> {
    Ok(parse_list::<RawVolume>(stdout, "volume ls")?
        .into_iter()
        .map(|v| Volume {
            name: v.name,
            mountpoint: v.mountpoint,
            labels: v.labels.unwrap_or_default(),
        })
        .collect())
}

/// What Podman holds for silo.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inventory {
    pub containers: Vec<Container>,
    pub images: Vec<Image>,
    pub volumes: Vec<Volume>,
}

impl Inventory {
    /// The three listings, run at the same time: the answer costs about one call.
    pub fn read(runner: &Runner) -> Result<Inventory> {
        let run = |inv: Invocation| {
            let out = runner.run(&inv)?;
            Ok::<String, anyhow::Error>(out.stdout)
        };
        let (containers, images, volumes) = std::thread::scope(|scope| {
            let containers = scope.spawn(|| run(list_containers()));
            let images = scope.spawn(|| run(list_images()));
            let volumes = run(list_volumes());
            let join = |h: std::thread::ScopedJoinHandle<'_, Result<String>>| {
                h.join()
                    .unwrap_or_else(|_| anyhow::bail!("a podman listing panicked"))
            };
            (join(containers), join(images), volumes)
        });
        Ok(Inventory {
            containers: parse_containers(&containers.context("listing silo's containers")?)?,
            images: parse_images(&images.context("listing silo's images")?)?,
            volumes: parse_volumes(&volumes.context("listing silo's volumes")?)?,
        })
    }

    /// Every workspace id Podman knows of, from any of the three.
    pub fn ids(&self) -> BTreeSet<String> {
        let containers = self
            .containers
            .iter()
            .filter_map(|c| c.labels.get(LABEL_ID));
        let images = self.images.iter().filter_map(|i| i.labels.get(LABEL_ID));
        let volumes = self.volumes.iter().filter_map(|v| v.private_to());
        containers
            .chain(images)
            .map(String::as_str)
            .chain(volumes)
            .map(str::to_owned)
            .collect()
    }

    pub fn containers_of<'a>(&'a self, id: &'a str) -> impl Iterator<Item = &'a Container> {
        self.containers
            .iter()
            .filter(move |c| c.labels.get(LABEL_ID).map(String::as_str) == Some(id))
    }

    pub fn images_of<'a>(&'a self, id: &'a str) -> impl Iterator<Item = &'a Image> {
        self.images
            .iter()
            .filter(move |i| i.labels.get(LABEL_ID).map(String::as_str) == Some(id))
    }

    /// The private volumes of a workspace.
    pub fn volumes_of<'a>(&'a self, id: &'a str) -> impl Iterator<Item = &'a Volume> {
        self.volumes
            .iter()
            .filter(move |v| v.private_to() == Some(id))
    }

    pub fn shared_volumes(&self) -> impl Iterator<Item = &Volume> {
        self.volumes
            .iter()
            .filter(|v| v.labels.get(LABEL_SCOPE).map(String::as_str) == Some("shared"))
    }

    /// The workspace directories Podman's labels name for an id: the container's first,
    /// then the private volumes'.
    pub fn paths_of(&self, id: &str) -> Vec<String> {
        let containers = self
            .containers_of(id)
            .filter_map(|c| c.labels.get(LABEL_WORKSPACE));
        let volumes = self
            .volumes_of(id)
            .filter_map(|v| v.labels.get(LABEL_WORKSPACE));
        let mut out: Vec<String> = Vec::new();
        for path in containers.chain(volumes) {
            if !out.contains(path) {
                out.push(path.clone());
            }
        }
        out
    }
}

/// The name the workspace image is loaded as (`localhost/silo-<id>`), as `podman images`
/// lists it.
pub fn tagged_name(id: &str) -> String {
    format!("localhost/silo-{id}:latest")
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured from Podman 4.3.1 (Debian 12, as root): `podman ps -a --filter
    // label=io.silo.id --format json` with one created and one running container;
    // `podman images ...` after a re-import replaced an image (the replaced one has no
    // `Names` and `"Dangling": true`); `podman volume ls ...` with a private and a shared
    // volume. Rootless Podman 4.3.1 prints the same fields.
    const PS: &str = include_str!("../tests/fixtures/podman-4.3/ps.json");
    const IMAGES: &str = include_str!("../tests/fixtures/podman-4.3/images.json");
    const VOLUMES: &str = include_str!("../tests/fixtures/podman-4.3/volume-ls.json");

    fn inventory() -> Inventory {
        Inventory {
            containers: parse_containers(PS).unwrap(),
            images: parse_images(IMAGES).unwrap(),
            volumes: parse_volumes(VOLUMES).unwrap(),
        }
    }

    #[test]
    fn command_lines() {
        assert_eq!(
            list_containers().to_string(),
            "podman ps --all --filter label=io.silo.id --format json"
        );
        assert_eq!(
            list_images().to_string(),
            "podman images --filter label=io.silo.id --format json"
        );
        assert_eq!(
            list_volumes().to_string(),
            "podman volume ls --filter label=io.silo.scope --format json"
        );
    }

    #[test]
    fn containers_from_podman_4_3() {
        let containers = parse_containers(PS).unwrap();
        assert_eq!(containers.len(), 2);
        let created = &containers[0];
        assert_eq!(created.name, "silo-capt0001");
        assert_eq!(created.state, "created");
        assert!(!created.running());
        // Go's zero time, -62135596800, is no time.
        assert_eq!((created.started_at, created.exited_at), (None, None));
        assert_eq!(created.labels[LABEL_WORKSPACE], "/tmp/cap/gone");
        assert!(created.image_id.starts_with("4af8c6455ad6"));
        let running = &containers[1];
        assert_eq!(running.name, "silo-capt0002");
        assert!(running.running());
        assert_eq!(running.started_at, Some(1_795_902_028));
        // A container inherits the image's labels unless it sets its own.
        assert_eq!(running.labels[LABEL_ID], "capt0002");
        assert_eq!(running.labels["io.silo.fingerprint"], "00112233aabbccdd");
    }

    #[test]
    fn images_from_podman_4_3() {
        let images = parse_images(IMAGES).unwrap();
        assert_eq!(images.len(), 2);
        let replaced = &images[0];
        assert!(replaced.names.is_empty());
        assert_eq!((replaced.size, replaced.containers), (1_987_758, 2));
        let current = &images[1];
        assert_eq!(current.names, [tagged_name("capt0001")]);
        assert_eq!(current.labels["io.silo.fingerprint"], "ffff");
    }

    #[test]
    fn volumes_from_podman_4_3() {
        let volumes = parse_volumes(VOLUMES).unwrap();
        assert_eq!(volumes.len(), 2);
        assert_eq!(volumes[0].private_to(), Some("capt0001"));
        assert_eq!(
            volumes[0].mountpoint,
            "/var/lib/containers/storage/volumes/capt-silo-capt0001-data-aaaaaa/_data"
        );
        assert_eq!(volumes[1].private_to(), None);
    }

    #[test]
    fn podman_5_4_prints_the_same_fields() {
        // Captured from Podman 5.4.2 (Debian 13, as root) with the same objects as the
        // 4.3.1 captures; the order of the keys differs, the fields silo reads do not.
        let containers =
            parse_containers(include_str!("../tests/fixtures/podman-5.4/ps.json")).unwrap();
        let states: Vec<(&str, &str, bool)> = containers
            .iter()
            .map(|c| (c.name.as_str(), c.state.as_str(), c.started_at.is_some()))
            .collect();
        assert_eq!(
            states,
            [
                ("silo-capt0001", "created", false),
                ("silo-capt0002", "running", true)
            ]
        );
        let images =
            parse_images(include_str!("../tests/fixtures/podman-5.4/images.json")).unwrap();
        assert!(images[0].names.is_empty() && images[0].containers == 2);
        assert_eq!(images[1].names, [tagged_name("capt0001")]);
        let volumes =
            parse_volumes(include_str!("../tests/fixtures/podman-5.4/volume-ls.json")).unwrap();
        assert_eq!(volumes[0].private_to(), Some("capt0001"));
        assert_eq!(volumes[1].private_to(), None);
    }

    #[test]
    fn empty_listings() {
        for empty in ["", "[]", "null\n", "[]\n"] {
            assert!(parse_containers(empty).unwrap().is_empty());
            assert!(parse_images(empty).unwrap().is_empty());
            assert!(parse_volumes(empty).unwrap().is_empty());
        }
        assert!(parse_images("Error: something").is_err());
    }

    #[test]
    fn grouped_by_workspace() {
        let inv = inventory();
        assert_eq!(
            inv.ids().into_iter().collect::<Vec<_>>(),
            ["capt0001", "capt0002"]
        );
        assert_eq!(inv.containers_of("capt0001").count(), 1);
        assert_eq!(inv.images_of("capt0001").count(), 2);
        assert_eq!(inv.images_of("capt0002").count(), 0);
        assert_eq!(inv.volumes_of("capt0001").count(), 1);
        assert_eq!(inv.shared_volumes().count(), 1);
        assert_eq!(inv.paths_of("capt0001"), ["/tmp/cap/gone"]);
        assert_eq!(inv.paths_of("capt0002"), ["/tmp/cap/ws2"]);
        assert!(inv.paths_of("nope").is_empty());
    }
}
