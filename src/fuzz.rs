//! Property tests (bounded in time) for everything silo parses from files someone else
//! may have written: the two TOML files, the devcontainer JSON sources, and home.nix
//! through the editor. Random mutations of real files must give a value or an error,
//! never a panic; an edit of home.nix must read back as asked or be refused.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::config::defaults;
use crate::config::file::{parse_user, parse_workspace};
use crate::config::values::{UserName, WorkspaceId};
use crate::home_nix;

/// How long each property runs in `cargo test`.
const BUDGET: Duration = Duration::from_secs(2);

/// xorshift64*: deterministic, so a failure can be replayed from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Pieces that matter to the three grammars.
const PIECES: &[&str] = &[
    "[",
    "]",
    "{",
    "}",
    "(",
    ")",
    "\"",
    "'",
    "''",
    "${",
    "=",
    ";",
    ":",
    ",",
    ".",
    "\n",
    "#",
    "\\",
    "true",
    "false",
    "-1",
    "1e309",
    "nan",
    "inf",
    "[[a]]",
    "[general]",
    "x.y.z",
    "id",
    "user",
    "\u{0}",
    "\u{7f}",
    "é",
    "\u{feff}",
    "/*",
    "*/",
    "...",
    "rec",
    "let",
    "in",
    "with",
    "@",
    "$HOME",
    "..",
    "//",
    "--privileged",
];

/// One random change: insert a piece, delete or duplicate a range, or swap bytes.
fn mutate(rng: &mut Rng, text: &str) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(bytes.len() + 1);
        match rng.below(4) {
            0 => {
                let piece = PIECES[rng.below(PIECES.len())].as_bytes();
                bytes.splice(at..at, piece.iter().copied());
            }
            1 if !bytes.is_empty() => {
                let end = (at + rng.below(16)).min(bytes.len());
                bytes.drain(at.min(end)..end);
            }
            2 if !bytes.is_empty() => {
                let end = (at + rng.below(32)).min(bytes.len());
                let copy: Vec<u8> = bytes[at.min(end)..end].to_vec();
                bytes.splice(at..at, copy);
            }
            _ if bytes.len() > 1 => {
                let other = rng.below(bytes.len());
                let at = at.min(bytes.len() - 1);
                bytes.swap(at, other);
            }
            _ => {}
        }
    }
    // Files are read as UTF-8 (invalid bytes are refused before parsing).
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Runs `check` on mutations of `seeds` until the time budget is spent; returns how
/// many inputs were tried. A panic fails the test with the input.
fn property(seeds: &[String], mut check: impl FnMut(&str)) -> usize {
    let mut rng = Rng(0x5ee0_51a0_0000_0001);
    let start = Instant::now();
    let mut tried = 0;
    let mut current = seeds[0].clone();
    while start.elapsed() < BUDGET {
        // Mostly build on the last input, sometimes restart from a seed.
        if rng.below(8) == 0 {
            current = seeds[rng.below(seeds.len())].clone();
        }
        current = mutate(&mut rng, &current);
        if current.len() > 16 << 10 {
            current = seeds[rng.below(seeds.len())].clone();
        }
        let input = current.clone();
        if catch_unwind(AssertUnwindSafe(|| check(&input))).is_err() {
            panic!("panicked on input {input:?}");
        }
        tried += 1;
    }
    tried
}

fn user() -> UserName {
    UserName::parse("alice").unwrap()
}

#[test]
fn toml_files_never_panic() {
    let id = WorkspaceId::parse("ab3f9c12").unwrap();
    let seeds = vec![
        defaults::workspace_toml(&id, false),
        defaults::workspace_toml(&id, true),
        defaults::user_toml(&user()),
        "[nix.inputs]\nnixpkgs = \"path:/x\"\n[limits]\ncpus = 1.5\n".to_owned(),
    ];
    let tried = property(&seeds, |text| {
        let _ = parse_workspace(text, Path::new("silo.toml"));
        let _ = parse_user(text, Path::new("silo.user.toml"));
    });
    assert!(tried > 100, "only {tried} inputs in the time budget");
}

#[test]
fn devcontainer_sources_never_panic() {
    let seeds = vec![
        defaults::DEVCONTAINER_JSON.to_owned(),
        r#"{"runArgs": ["--env=A=1"], "customizations": {"vscode": {"settings": {"a": [1, {"b": null}]}}}}"#
            .to_owned(),
    ];
    let tried = property(&seeds, |text| {
        if let Ok(value) = crate::devcontainer::parse_source(text, Path::new("d.json")) {
            let _ = crate::devcontainer::merge(value.clone(), value);
        }
    });
    assert!(tried > 100, "only {tried} inputs in the time budget");
}

#[test]
fn home_nix_edits_read_back_or_are_refused() {
    const PATH: [&str; 3] = ["silo", "podman", "enable"];
    let seeds = vec![
        defaults::home_nix(false),
        defaults::HOME_USER_NIX.to_owned(),
        "{ config, ... }:\n{\n  config.silo = { podman.enable = true; };\n  # a comment\n}\n"
            .to_owned(),
    ];
    let tried = property(&seeds, |text| {
        for value in [true, false] {
            if let Ok(edited) = home_nix::set_bool(text, &PATH, value) {
                assert_eq!(
                    home_nix::get_bool(&edited, &PATH).unwrap(),
                    Some(value),
                    "the edit of {text:?} gave {edited:?}"
                );
            }
        }
    });
    assert!(tried > 20, "only {tried} inputs in the time budget");
}
