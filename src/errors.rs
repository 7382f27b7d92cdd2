//! How an error reaches the user: what failed on the first line, each cause on a line
//! of its own, and advice on `hint:` lines, as jj and cargo print them.

use std::error::Error as StdError;
use std::fmt;

/// Advice attached to an error: printed on its own `hint:` line after the causes, not
/// as one of them. It sits in the chain of causes, its source being the error it
/// advises on.
#[derive(Debug)]
struct Hinted {
    hint: String,
    error: anyhow::Error,
}

impl fmt::Display for Hinted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hint)
    }
}

impl StdError for Hinted {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(self.error.as_ref())
    }
}

/// `error` with advice on what to do about it.
pub fn with_hint(error: anyhow::Error, hint: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Hinted {
        hint: hint.into(),
        error,
    })
}

/// Adds advice to an error.
pub trait WithHint<T> {
    fn hint(self, text: impl Into<String>) -> anyhow::Result<T>;
}

impl<T, E: Into<anyhow::Error>> WithHint<T> for Result<T, E> {
    fn hint(self, text: impl Into<String>) -> anyhow::Result<T> {
        self.map_err(|e| with_hint(e.into(), text))
    }
}

/// The whole error for stderr:
///
/// ```text
/// silo: cannot build the workspace image
/// caused by: nix build failed
/// caused by: `nix ... build ...` failed with exit code 1 (its output is above)
/// hint: Nix could not download ...
/// ```
pub fn render(err: &anyhow::Error) -> String {
    let mut causes = Vec::new();
    let mut hints = Vec::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if cause.downcast_ref::<Hinted>().is_some() {
            hints.push(text);
        } else if causes.last() != Some(&text) && !text.is_empty() {
            causes.push(text);
        }
    }
    let mut out = String::new();
    for (i, cause) in causes.iter().enumerate() {
        let prefix = if i == 0 { "silo: " } else { "caused by: " };
        // A cause of several lines (a list of problems) stays indented under its prefix.
        let mut lines = cause.lines();
        out.push_str(prefix);
        out.push_str(lines.next().unwrap_or_default());
        out.push('\n');
        for line in lines {
            out.push_str("  ");
            out.push_str(line);
            out.push('\n');
        }
    }
    // The innermost advice is the most specific: it comes first.
    for hint in hints.iter().rev() {
        out.push_str("hint: ");
        out.push_str(hint);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::{Context, anyhow};

    #[test]
    fn causes_on_their_own_lines_and_hints_last() {
        let err = Err::<(), _>(anyhow!("`nix build` failed with exit code 1"))
            .context("nix build failed")
            .hint("check the network")
            .context("cannot build the workspace image")
            .unwrap_err();
        assert_eq!(
            render(&err),
            "silo: cannot build the workspace image\n\
             caused by: nix build failed\n\
             caused by: `nix build` failed with exit code 1\n\
             hint: check the network\n"
        );
    }

    #[test]
    fn multi_line_causes_stay_together() {
        let err = anyhow!("invalid configuration in a.toml:\n  a.toml:1:1: x\n  a.toml:2:1: y")
            .context("cannot start the workspace");
        assert_eq!(
            render(&err),
            "silo: cannot start the workspace\n\
             caused by: invalid configuration in a.toml:\n    a.toml:1:1: x\n    a.toml:2:1: y\n"
        );
    }
}
