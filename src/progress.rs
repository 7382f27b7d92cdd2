//! Progress of long steps (the Nix build, `podman load`): on a terminal one status line
//! that updates in place, with messages printed above it; elsewhere plain lines. Every
//! line the tools print also goes to a log file, named when a step fails.

use std::collections::HashMap;
use std::fs::File;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::safe_fs::Dir;

/// Redraws of the status line, at most this often.
const REDRAW: Duration = Duration::from_millis(100);

/// Where stderr goes: a terminal with one status line, or plain lines.
pub struct Display {
    tty: bool,
    width: usize,
    status_shown: bool,
    last_draw: Option<Instant>,
}

impl Display {
    /// A status line only on a terminal that can redraw one (not `TERM=dumb`).
    pub fn new() -> Display {
        let tty =
            std::io::stderr().is_terminal() && std::env::var("TERM").map_or(true, |t| t != "dumb");
        let width = std::env::var("COLUMNS")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(80);
        Display {
            tty,
            width,
            status_shown: false,
            last_draw: None,
        }
    }

    pub fn is_tty(&self) -> bool {
        self.tty
    }

    fn clear(&mut self, err: &mut impl Write) {
        if self.status_shown {
            let _ = write!(err, "\r\x1b[K");
            self.status_shown = false;
        }
    }

    /// A line that stays: above the status line on a terminal.
    pub fn message(&mut self, text: &str) {
        let mut err = std::io::stderr().lock();
        self.clear(&mut err);
        let _ = writeln!(err, "{text}");
        self.last_draw = None;
    }

    /// The status line (terminal only), cut to the terminal's width.
    pub fn status(&mut self, text: &str) {
        if !self.tty {
            return;
        }
        if self.last_draw.is_some_and(|t| t.elapsed() < REDRAW) {
            return;
        }
        let mut err = std::io::stderr().lock();
        let shown: String = text.chars().take(self.width.saturating_sub(1)).collect();
        let _ = write!(err, "\r\x1b[K{shown}");
        let _ = err.flush();
        self.status_shown = true;
        self.last_draw = Some(Instant::now());
    }

    /// Removes the status line.
    pub fn finish(&mut self) {
        let mut err = std::io::stderr().lock();
        self.clear(&mut err);
        let _ = err.flush();
    }
}

/// Removes terminal colour codes: silo's output has none, whatever `NO_COLOR` says.
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// What one line of `nix --log-format internal-json` means to the display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NixEvent {
    /// A message for the user (warnings, errors, "these paths will be built").
    Message(String),
    /// The progress changed; `NixProgress::summary` says how.
    Progress,
    /// Nothing to show (build log lines, activities of no interest).
    Nothing,
}

/// Nix's activity types and result types (src/libutil/logging.hh).
const ACT_FILE_TRANSFER: u64 = 101;
const ACT_COPY_PATHS: u64 = 103;
const ACT_BUILDS: u64 = 104;
const ACT_BUILD: u64 = 105;
const RES_PROGRESS: u64 = 105;

/// The state of a Nix build, from its internal-json log.
#[derive(Debug, Default)]
pub struct NixProgress {
    /// Activity id -> type.
    activities: HashMap<u64, u64>,
    /// Running builds: activity id -> derivation name.
    building: HashMap<u64, String>,
    builds_done: u64,
    builds_expected: u64,
    /// Bytes downloaded and expected, per transfer or copy activity.
    bytes: HashMap<u64, (u64, u64)>,
}

impl NixProgress {
    pub fn event(&mut self, line: &str) -> NixEvent {
        let Some(json) = line.strip_prefix("@nix ") else {
            // Not JSON (Nix prints some lines plainly): show it as it is.
            return NixEvent::Message(line.to_owned());
        };
        let Ok(v) = serde_json::from_str::<Value>(json) else {
            return NixEvent::Message(line.to_owned());
        };
        let id = v["id"].as_u64().unwrap_or(0);
        match v["action"].as_str() {
            Some("msg") => NixEvent::Message(v["msg"].as_str().unwrap_or_default().to_owned()),
            Some("start") => {
                let kind = v["type"].as_u64().unwrap_or(0);
                self.activities.insert(id, kind);
                if kind == ACT_BUILD {
                    let drv = v["fields"][0].as_str().unwrap_or_default();
                    self.building.insert(id, derivation_name(drv));
                    return NixEvent::Progress;
                }
                NixEvent::Nothing
            }
            Some("stop") => {
                self.building.remove(&id);
                NixEvent::Progress
            }
            Some("result") if v["type"].as_u64() == Some(RES_PROGRESS) => {
                let fields = &v["fields"];
                let done = fields[0].as_u64().unwrap_or(0);
                let expected = fields[1].as_u64().unwrap_or(0);
                match self.activities.get(&id).copied() {
                    Some(ACT_BUILDS) => {
                        self.builds_done = done;
                        self.builds_expected = expected;
                    }
                    Some(ACT_FILE_TRANSFER | ACT_COPY_PATHS) => {
                        self.bytes.insert(id, (done, expected));
                    }
                    _ => return NixEvent::Nothing,
                }
                NixEvent::Progress
            }
            _ => NixEvent::Nothing,
        }
    }

    /// `[3/10 built, 12.3 MiB downloaded] building hello-2.12`
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if self.builds_expected > 0 {
            parts.push(format!(
                "{}/{} built",
                self.builds_done, self.builds_expected
            ));
        }
        let downloaded: u64 = self.bytes.values().map(|(done, _)| done).sum();
        if downloaded > 0 {
            parts.push(format!("{} downloaded", size(downloaded)));
        }
        let mut names: Vec<&String> = self.building.values().collect();
        names.sort();
        let doing = match names.as_slice() {
            [] => "evaluating".to_owned(),
            [one] => format!("building {one}"),
            [first, rest @ ..] => format!("building {first} and {} more", rest.len()),
        };
        if parts.is_empty() {
            doing
        } else {
            format!("[{}] {doing}", parts.join(", "))
        }
    }
}

/// `hello-2.12` from `/nix/store/<hash>-hello-2.12.drv`.
fn derivation_name(drv: &str) -> String {
    let base = drv.rsplit('/').next().unwrap_or(drv);
    let base = base.strip_suffix(".drv").unwrap_or(base);
    match base.split_once('-') {
        Some((hash, name)) if hash.len() == 32 => name.to_owned(),
        _ => base.to_owned(),
    }
}

/// `12.3 MiB`
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// The log of one step, kept in the state directory (`logs/<name>.log`), replaced by
/// the next run of the same step.
pub struct StepLog {
    file: Option<File>,
    path: PathBuf,
}

impl StepLog {
    /// Best effort: without a log file the step still runs.
    pub fn create(state_dir: &Path, name: &str) -> StepLog {
        let dir = state_dir.join("logs");
        let path = dir.join(format!("{name}.log"));
        let file = Dir::create(&dir)
            .and_then(|d| {
                d.write_atomic(&format!("{name}.log"), "")?;
                Ok(d)
            })
            .ok()
            .and_then(|_| File::options().append(true).open(&path).ok());
        StepLog { file, path }
    }

    pub fn line(&mut self, line: &str) {
        if let Some(file) = self.file.as_mut() {
            let _ = writeln!(file, "{}", strip_ansi(line));
        }
    }

    /// The path, when there is a log to read.
    pub fn path(&self) -> Option<&Path> {
        self.file.as_ref().map(|_| self.path.as_path())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nix_progress_from_internal_json() {
        // Shaped as Nix 2.26 prints them.
        let lines = [
            r#"@nix {"action":"start","id":10,"level":4,"parent":0,"text":"","type":104,"fields":[]}"#,
            r#"@nix {"action":"result","id":10,"type":105,"fields":[1,4,1,0]}"#,
            r#"@nix {"action":"start","id":11,"level":3,"parent":10,"text":"building '/nix/store/0123456789abcdfghijklmnpqrsvwxyz-hello-2.12.drv'","type":105,"fields":["/nix/store/0123456789abcdfghijklmnpqrsvwxyz-hello-2.12.drv","",1,1]}"#,
            r#"@nix {"action":"start","id":12,"level":5,"parent":0,"text":"downloading","type":101,"fields":["https://cache"]}"#,
            r#"@nix {"action":"result","id":12,"type":105,"fields":[5242880,10485760,0,0]}"#,
            r#"@nix {"action":"result","id":11,"type":101,"fields":["a build log line"]}"#,
        ];
        let mut p = NixProgress::default();
        let events: Vec<NixEvent> = lines.iter().map(|l| p.event(l)).collect();
        assert_eq!(
            events,
            [
                NixEvent::Nothing,
                NixEvent::Progress,
                NixEvent::Progress,
                NixEvent::Nothing,
                NixEvent::Progress,
                NixEvent::Nothing
            ]
        );
        assert_eq!(
            p.summary(),
            "[1/4 built, 5.0 MiB downloaded] building hello-2.12"
        );
        assert_eq!(
            p.event(r#"@nix {"action":"msg","level":0,"msg":"error: boom"}"#),
            NixEvent::Message("error: boom".into())
        );
        p.event(r#"@nix {"action":"stop","id":11}"#);
        assert_eq!(p.summary(), "[1/4 built, 5.0 MiB downloaded] evaluating");
        assert_eq!(
            p.event("plain line"),
            NixEvent::Message("plain line".into())
        );
    }

    #[test]
    fn sizes_and_plain_text() {
        assert_eq!(size(512), "512 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(3 << 30), "3.0 GiB");
        assert_eq!(strip_ansi("\x1b[31;1merror:\x1b[0m x"), "error: x");
    }
}
