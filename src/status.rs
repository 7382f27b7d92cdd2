//! `silo status`: the container's state on stdout (`Running`/`Stopped`, or JSON), notes
//! about an outdated image or container, unapproved settings, dangerous arguments and
//! limits that cannot be applied on stderr.

use anyhow::Result;
use serde::Serialize;

use crate::container::Record;
use crate::host;
use crate::lifecycle;
use crate::nix_runner;
use crate::risk::{self, Danger};
use crate::session::Session;
use crate::sidecar;
use crate::state::{ImageState, RunState};
use crate::trust::{Origin, Verdict};
use crate::volume::PersistMount;

#[derive(Serialize)]
struct Status<'a> {
    id: &'a str,
    workspace: &'a str,
    user: &'a str,
    container: ContainerStatus<'a>,
    image: ImageStatus<'a>,
    ports: &'a [String],
    paths: &'a [PersistMount],
    trust: TrustStatus,
    isolation: Isolation,
    limits: LimitsStatus,
    /// Where Nix runs for this workspace, and why.
    nix: nix_runner::Report,
    network: NetworkStatus<'a>,
}

/// The network policy in force (the container's, when it exists) and its sidecars.
#[derive(Serialize)]
struct NetworkStatus<'a> {
    egress: &'a str,
    allow: &'a [String],
    /// The proxy and the port forwarder, with `allow`.
    sidecars: Vec<SidecarStatus>,
}

#[derive(Serialize)]
struct SidecarStatus {
    name: String,
    state: RunState,
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

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
enum TrustState {
    /// Created by this user's `silo init`, settings unchanged since (or approved since).
    Created,
    /// Approved with `silo trust` (or on a terminal).
    Approved,
    /// Not approved yet, or changed since the approval: silo does not apply it.
    NotApproved,
}

#[derive(Serialize)]
struct TrustStatus {
    state: TrustState,
    /// The owner of `.silo/`.
    owner: u32,
}

#[derive(Serialize)]
struct DangerJson {
    arg: String,
    why: String,
}

/// What keeps the container in, and what this workspace's settings give up.
#[derive(Serialize)]
struct Isolation {
    /// `.silo/` is mounted read-only in the container.
    silo_dir_read_only: bool,
    user_namespaces_blocked: bool,
    setuid_files_blocked: bool,
    /// In words: each protection this workspace does without.
    gives_up: Vec<String>,
    dangerous_args: Vec<DangerJson>,
}

#[derive(Serialize)]
struct LimitsStatus {
    applied: bool,
    /// Why the configured limits are not applied, when they are not.
    #[serde(skip_serializing_if = "Option::is_none")]
    why: Option<String>,
}

/// What the container's settings give up against silo's defaults.
fn gives_up(record: &Record) -> Vec<String> {
    let mut out = Vec::new();
    if !record.seccomp.no_user_namespaces {
        out.push(
            "user namespaces: code in the container can create them (nested Podman needs them), which reaches kernel code that --cap-drop=ALL otherwise keeps away"
                .to_owned(),
        );
    }
    let drops_all = record
        .create_args
        .iter()
        .any(|a| a.eq_ignore_ascii_case("--cap-drop=ALL"));
    if !drops_all {
        out.push(
            "capabilities: the container keeps Podman's default set (no --cap-drop=ALL in create_args)"
                .to_owned(),
        );
    }
    let no_new_privileges = record
        .create_args
        .iter()
        .any(|a| a.contains("no-new-privileges") && !a.ends_with("=false"));
    if !no_new_privileges {
        out.push(
            "no-new-privileges: setuid programs in the container can gain privileges (inside it)"
                .to_owned(),
        );
    }
    out.extend(
        risk::dangers(&record.create_args)
            .iter()
            .map(ToString::to_string),
    );
    out
}

fn isolation(record: &Record, dangers: &[Danger]) -> Isolation {
    Isolation {
        silo_dir_read_only: true,
        user_namespaces_blocked: record.seccomp.no_user_namespaces,
        setuid_files_blocked: record.seccomp.no_setuid_files,
        gives_up: gives_up(record),
        dangerous_args: dangers
            .iter()
            .map(|d| DangerJson {
                arg: d.arg.clone(),
                why: d.why.clone(),
            })
            .collect(),
    }
}

/// Prints the status; returns whether the container runs (the exit status follows it).
pub fn print(s: &Session, json: bool) -> Result<bool> {
    let (container, record, image) = s.inspect_both()?;
    let image = ImageState::of(image.as_ref(), &s.fingerprint);
    let (_, verdict) = s.trust_verdict()?;
    let trust = match &verdict {
        Verdict::Trusted(Origin::Created) => TrustState::Created,
        Verdict::Trusted(Origin::Approved) => TrustState::Approved,
        Verdict::Review(_) => TrustState::NotApproved,
    };
    let owner = match &verdict {
        Verdict::Review(review) => review.subject.owner,
        Verdict::Trusted(_) => s.silo.meta()?.uid,
    };
    // What protects the container is what it was created with, when it exists.
    let effective = container.record.as_ref().unwrap_or(&record);
    let dangers = risk::dangers(&effective.create_args);
    let limits_warning = lifecycle::limits_warning(effective);
    let sidecars = if effective.network.proxied() {
        let names = sidecar::names(s);
        let found = sidecar::states(s)?;
        let mut wanted = vec![names.proxy];
        if !effective.ports.is_empty() {
            wanted.push(names.ports);
        }
        wanted
            .into_iter()
            .map(|name| {
                let state = match found.iter().find(|(n, _)| *n == name) {
                    Some((_, true)) => RunState::Running,
                    Some((_, false)) => RunState::Stopped,
                    None => RunState::Missing,
                };
                SidecarStatus { name, state }
            })
            .collect()
    } else {
        Vec::new()
    };
    if json {
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
            trust: TrustStatus {
                state: trust,
                owner,
            },
            isolation: isolation(effective, &dangers),
            limits: LimitsStatus {
                applied: limits_warning.is_none(),
                why: limits_warning,
            },
            nix: nix_runner::choose(&s.runner, &s.config.runner).report(&s.volume_prefix),
            network: NetworkStatus {
                egress: effective.network.egress.as_str(),
                allow: &effective.network.allow,
                sidecars,
            },
        };
        println!(
            "{}",
            serde_json::to_string_pretty(&status).expect("plain data")
        );
        return Ok(container.run == RunState::Running);
    }
    println!(
        "{}",
        if container.run == RunState::Running {
            "Running"
        } else {
            "Stopped"
        }
    );
    if let Verdict::Review(review) = &verdict {
        let whose = if owner == host::euid() {
            String::new()
        } else {
            format!(
                " (its .silo/ belongs to {}, uid {owner})",
                host::user_name(owner).unwrap_or_else(|| "another user".into())
            )
        };
        let what = if review.previous.is_some() {
            "changed since they were approved"
        } else {
            "are not approved"
        };
        eprintln!(
            "note: the settings of this workspace {what}{whose}; silo does not apply them until you run `silo trust`"
        );
    }
    for danger in &dangers {
        eprintln!("note: dangerous create_args: {danger}");
    }
    if let Some(warning) = limits_warning {
        eprintln!("warning: {warning}");
    }
    if let Err(err) = sidecar::check_create_args(&record) {
        eprintln!("note: {err}");
    }
    if container.run == RunState::Running {
        for sidecar in sidecars.iter().filter(|c| c.state != RunState::Running) {
            eprintln!(
                "note: {} is not running, so the network policy's {} does not work; `silo start` starts it",
                sidecar.name,
                if sidecar.name.ends_with("-proxy") {
                    "proxy"
                } else {
                    "port forwarding"
                }
            );
        }
    }
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
    Ok(container.run == RunState::Running)
}
