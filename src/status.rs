//! `silo status`: the container's state on stdout (`Running`/`Stopped`, or JSON), notes
//! about an outdated image or container on stderr.

use anyhow::Result;
use serde::Serialize;

use crate::container::{PersistMount, Record};
use crate::session::Session;
use crate::state::{ContainerState, ImageState, RunState};

#[derive(Serialize)]
struct Status<'a> {
    id: &'a str,
    workspace: &'a str,
    user: &'a str,
    container: ContainerStatus<'a>,
    image: ImageStatus<'a>,
    ports: &'a [String],
    paths: &'a [PersistMount],
}

#[derive(Serialize)]
struct ContainerStatus<'a> {
    name: &'a str,
    state: RunState,
    /// Why the container no longer matches the configuration; empty when it does.
    outdated: &'a [String],
}

#[derive(Serialize)]
struct ImageStatus<'a> {
    name: &'a str,
    state: ImageState,
}

/// The JSON `silo status --json` prints.
fn to_json(s: &Session, container: &ContainerState, image: ImageState, record: &Record) -> String {
    let status = Status {
        id: s.config.id.as_str(),
        workspace: &record.workspace,
        user: s.config.user.as_str(),
        container: ContainerStatus {
            name: &s.names.container,
            state: container.run,
            outdated: &container.outdated,
        },
        image: ImageStatus {
            name: &s.names.image,
            state: image,
        },
        ports: &record.ports,
        paths: &record.mounts,
    };
    serde_json::to_string_pretty(&status).expect("plain data")
}

pub fn print(s: &Session, json: bool) -> Result<()> {
    let (container, record) = s.container_state()?;
    let image = ImageState::of(s.inspect_image()?.as_ref(), &s.fingerprint);
    if json {
        println!("{}", to_json(s, &container, image, &record));
        return Ok(());
    }
    println!(
        "{}",
        if container.run == RunState::Running {
            "Running"
        } else {
            "Stopped"
        }
    );
    match image {
        ImageState::Missing => eprintln!(
            "note: the image {} does not exist yet; `silo build` builds it",
            s.names.image
        ),
        ImageState::Outdated => eprintln!(
            "note: the image {} is outdated: home.nix, home.user.nix, flake.lock or silo changed since it was built; `silo build` rebuilds it",
            s.names.image
        ),
        ImageState::UpToDate => {}
    }
    if container.run == RunState::Missing {
        eprintln!("note: the container {} does not exist", s.names.container);
    } else if !container.outdated.is_empty() {
        eprintln!(
            "note: the container {} is out of date: {}; `silo stop && silo` recreates it",
            s.names.container,
            container.outdated.join("; ")
        );
    }
    Ok(())
}
