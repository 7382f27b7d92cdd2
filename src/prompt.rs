//! Asking before removing what cannot be made again: on a terminal a question, without
//! one an explicit flag.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Context, Result, bail};

/// Whether the user can be asked: stdin and stderr are a terminal.
pub fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// Asks `question` (a `[y/N]` is added); true only for a yes.
pub fn ask(question: &str) -> Result<bool> {
    eprint!("{question} [y/N] ");
    std::io::stderr().flush().ok();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .context("reading the answer")?;
    Ok(is_yes(&answer))
}

fn is_yes(answer: &str) -> bool {
    matches!(answer.trim(), "y" | "Y" | "yes" | "Yes" | "YES")
}

/// Whether to go ahead: `yes` given, or the user says so on a terminal. Without a
/// terminal and without `yes`, an error that names `command --yes`.
pub fn confirm(question: &str, yes: bool, command: &str) -> Result<bool> {
    if yes {
        return Ok(true);
    }
    if interactive() {
        return ask(question);
    }
    bail!(
        "nothing was removed: there is no terminal to ask on; run `{command} --yes` to remove what is listed above"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_yes_is_yes() {
        for yes in ["y\n", "Y", " yes \n", "Yes"] {
            assert!(is_yes(yes), "{yes:?}");
        }
        for no in ["", "\n", "n", "no", "yess", "oui"] {
            assert!(!is_yes(no), "{no:?}");
        }
    }

    #[test]
    fn the_flag_answers_for_the_user() {
        assert!(confirm("Remove?", true, "silo gc").unwrap());
    }
}
