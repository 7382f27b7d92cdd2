//! What approving a workspace would approve, in words: everything the first time, what
//! changed since otherwise, and which create_args weaken the container's isolation.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::Result;

use super::{Review, Settings};
use crate::host;
use crate::risk;

impl Review {
    /// A text for the user: whose workspace, what would be applied, what changed, and
    /// which arguments weaken the boundary.
    pub fn render(&self) -> String {
        let s = &self.subject;
        let mut out = String::new();
        let who = if s.owner == host::euid() {
            String::new()
        } else {
            format!(
                " It belongs to {} (uid {}), not to you.",
                host::user_name(s.owner).unwrap_or_else(|| "another user".into()),
                s.owner
            )
        };
        let current = match &self.previous {
            Some(previous) => s.settings.for_origin(previous.origin),
            None => s.settings.clone(),
        };
        match &self.previous {
            None => {
                let _ = writeln!(
                    out,
                    "silo has not approved the workspace {} (it was not created by `silo init` here).{who}",
                    s.root.display()
                );
                let _ = writeln!(out, "It would apply these settings from .silo/:");
                out += &describe(&current);
            }
            Some(previous) => {
                match &self.moved_from {
                    Some(old) => {
                        let _ = writeln!(
                            out,
                            "The workspace {} was approved at {old}, which no longer exists; it moved here?{who}",
                            s.root.display()
                        );
                    }
                    None => {
                        let _ = writeln!(
                            out,
                            "The settings of the workspace {} changed since they were approved.{who}",
                            s.root.display()
                        );
                    }
                }
                if previous.owner != s.owner {
                    let _ = writeln!(
                        out,
                        "  owner of .silo/: uid {} -> uid {}",
                        previous.owner, s.owner
                    );
                }
                out += &changes(&previous.settings, &current);
            }
        }
        let dangers = risk::dangers(&current.create_args);
        if !dangers.is_empty() {
            let _ = writeln!(
                out,
                "DANGEROUS create_args, they weaken the container's isolation:"
            );
            for danger in dangers {
                let _ = writeln!(out, "  {danger}");
            }
        }
        out
    }
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "(none)".to_owned()
    } else {
        items.join(" ")
    }
}

fn inputs(map: &BTreeMap<String, String>) -> String {
    if map.is_empty() {
        return "(none)".to_owned();
    }
    map.iter()
        .map(|(k, v)| format!("{k} = {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn egress(s: &Settings) -> String {
    match &s.egress {
        Some(egress) => egress.clone(),
        None => "(not set: your default from silo.user.toml)".to_owned(),
    }
}

fn limits(s: &Settings) -> String {
    format!(
        "cpus {}, memory {} MB, processes {}",
        s.cpus, s.memory_mb, s.processes
    )
}

/// Every setting, for a workspace approved for the first time.
fn describe(s: &Settings) -> String {
    let mut out = String::new();
    let rows = [
        ("id", s.id.clone()),
        ("[features].podman", s.podman.to_string()),
        ("shared_paths", list(&s.shared_paths)),
        ("private_paths", list(&s.private_paths)),
        ("create_args", list(&s.create_args)),
        ("ports", list(&s.ports)),
        ("[network].egress", egress(s)),
        ("[network].allow", list(&s.allow)),
        ("[limits]", limits(s)),
        ("[nix.inputs]", inputs(&s.inputs)),
    ];
    for (key, value) in rows {
        let _ = writeln!(out, "  {key:<18} {value}");
    }
    if let Some(image) = &s.runner_image {
        let _ = writeln!(
            out,
            "  {:<18} {image} (runs Nix for this workspace)",
            "[nix].runner_image"
        );
    }
    for (name, text) in [
        ("home.nix", &s.home_nix),
        ("devcontainer.json", &s.devcontainer_json),
    ] {
        if let Some(text) = text {
            let _ = writeln!(out, "  {name} (Nix builds it on this machine):");
            for line in text.lines() {
                let _ = writeln!(out, "    | {line}");
            }
        }
    }
    out
}

/// Only what differs, for a workspace approved before.
fn changes(old: &Settings, new: &Settings) -> String {
    let mut out = String::new();
    let mut scalar = |key: &str, a: String, b: String| {
        if a != b {
            let _ = writeln!(out, "  {key}: {a} -> {b}");
        }
    };
    scalar("id", old.id.clone(), new.id.clone());
    scalar(
        "[features].podman",
        old.podman.to_string(),
        new.podman.to_string(),
    );
    scalar("[network].egress", egress(old), egress(new));
    scalar("[limits]", limits(old), limits(new));
    scalar("[nix.inputs]", inputs(&old.inputs), inputs(&new.inputs));
    let image = |i: &Option<String>| i.clone().unwrap_or_else(|| "(silo's default)".into());
    scalar(
        "[nix].runner_image",
        image(&old.runner_image),
        image(&new.runner_image),
    );
    for (key, a, b) in [
        ("shared_paths", &old.shared_paths, &new.shared_paths),
        ("private_paths", &old.private_paths, &new.private_paths),
        ("create_args", &old.create_args, &new.create_args),
        ("ports", &old.ports, &new.ports),
        ("[network].allow", &old.allow, &new.allow),
    ] {
        if a != b {
            let _ = writeln!(out, "  {key}: {} -> {}", list(a), list(b));
        }
    }
    for (name, a, b) in [
        ("home.nix", &old.home_nix, &new.home_nix),
        (
            "devcontainer.json",
            &old.devcontainer_json,
            &new.devcontainer_json,
        ),
    ] {
        if a != b {
            let _ = writeln!(out, "  {name}:");
            out += &line_diff(a.as_deref().unwrap_or(""), b.as_deref().unwrap_or(""));
        }
    }
    out
}

/// The lines removed (`-`) and added (`+`), by longest common subsequence; very long
/// files are summarised.
fn line_diff(old: &str, new: &str) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    if a.len() * b.len() > 4_000_000 {
        return format!("    ({} lines before, {} now)\n", a.len(), b.len());
    }
    // lcs[i][j]: the longest common subsequence of a[i..] and b[j..].
    let mut lcs = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            let _ = writeln!(out, "    - {}", a[i]);
            i += 1;
        } else {
            let _ = writeln!(out, "    + {}", b[j]);
            j += 1;
        }
    }
    out
}

/// Asks on the terminal whether to approve; true when the user answers yes.
pub fn ask(review: &Review) -> Result<bool> {
    eprint!("{}", review.render());
    crate::prompt::ask("Approve these settings and continue?")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_runner_image_is_shown_only_when_set() {
        let mut s = Settings {
            id: "ab3f9c12".into(),
            podman: false,
            shared_paths: vec![],
            private_paths: vec![],
            create_args: vec![],
            ports: vec![],
            cpus: 0.0,
            memory_mb: 0,
            processes: 0,
            inputs: BTreeMap::new(),
            runner_image: None,
            egress: None,
            allow: vec![],
            home_nix: None,
            devcontainer_json: None,
        };
        assert!(!describe(&s).contains("runner_image"));
        s.runner_image = Some("localhost/evil:1".into());
        let text = describe(&s);
        assert!(
            text.contains("[nix].runner_image localhost/evil:1 (runs Nix for this workspace)"),
            "{text}"
        );
    }

    #[test]
    fn line_diff_shows_removed_and_added_lines() {
        assert_eq!(
            line_diff("a\nb\nc\n", "a\nx\nc\nd\n"),
            "    - b\n    + x\n    + d\n"
        );
        assert_eq!(line_diff("same\n", "same\n"), "");
    }
}
