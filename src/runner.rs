//! The one place that spawns external programs (podman, nix), built on duct.
//!
//! Every command line is data (`Invocation`), printed with `--verbose`, and every
//! failure carries the command line, its exit code and its stderr.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};

use anyhow::{Context, Result};

/// The external programs silo drives. Found through `PATH`, so tests can substitute them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    Podman,
    Nix,
}

impl Tool {
    pub fn program(self) -> &'static str {
        match self {
            Tool::Podman => "podman",
            Tool::Nix => "nix",
        }
    }

    fn install_hint(self) -> &'static str {
        match self {
            Tool::Podman => {
                "install Podman (Debian/Ubuntu: apt install podman; Fedora: dnf install podman)"
            }
            Tool::Nix => {
                "install Nix (Debian/Ubuntu: apt install nix-bin; elsewhere: https://nixos.org/download)"
            }
        }
    }
}

/// One command line, built as data so that it can be tested without running it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub tool: Tool,
    pub args: Vec<OsString>,
    /// What the command reads on stdin (nothing when `None`).
    pub input: Option<Vec<u8>>,
}

impl Invocation {
    pub fn new<I, S>(tool: Tool, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        Invocation {
            tool,
            args: args.into_iter().map(Into::into).collect(),
            input: None,
        }
    }

    /// The same command reading `input` on its stdin.
    pub fn with_input(mut self, input: Vec<u8>) -> Self {
        self.input = Some(input);
        self
    }

    /// The arguments as strings, for tests and messages.
    #[cfg(test)]
    pub fn args_lossy(&self) -> Vec<String> {
        self.args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }
}

impl fmt::Display for Invocation {
    /// Shell-quoted, so the line can be copied into a terminal; a script passed as an
    /// argument is shortened to its first line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.tool.program())?;
        for arg in &self.args {
            match arg.to_str().and_then(|s| s.split_once('\n')) {
                Some((first, _)) => {
                    write!(f, " {}", shell_quote(OsStr::new(&format!("{first}..."))))?
                }
                None => write!(f, " {}", shell_quote(arg))?,
            }
        }
        Ok(())
    }
}

fn shell_quote(arg: &OsStr) -> String {
    let s = arg.to_string_lossy();
    // `#` starts a comment only at the start of a word.
    let plain = !s.is_empty()
        && !s.starts_with('#')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@%+#".contains(c));
    if plain {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// What a finished command printed, and how it exited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// A command that ran and failed. Callers downcast to it to recognise known failures.
#[derive(Debug)]
pub struct CommandFailed {
    pub command: String,
    pub code: Option<i32>,
    pub stderr: String,
    /// The stderr was already shown on the terminal as it happened.
    pub stderr_shown: bool,
}

impl fmt::Display for CommandFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.code {
            Some(code) => write!(f, "`{}` failed with exit code {code}", self.command)?,
            None => write!(f, "`{}` was killed by a signal", self.command)?,
        }
        let stderr = self.stderr.trim();
        if self.stderr_shown {
            write!(f, " (its output is above)")
        } else if stderr.is_empty() {
            Ok(())
        } else {
            write!(f, ": {stderr}")
        }
    }
}

impl std::error::Error for CommandFailed {}

/// Runs invocations. `verbose` prints each command line to stderr before it runs.
#[derive(Debug, Clone, Copy)]
pub struct Runner {
    pub verbose: bool,
}

/// How many trailing lines of a streamed stderr are kept for error messages.
const STREAM_TAIL_LINES: usize = 60;

impl Runner {
    fn expression(&self, inv: &Invocation, parsed: bool) -> duct::Expression {
        if self.verbose {
            eprintln!("+ {inv}");
        }
        let expr = duct::cmd(inv.tool.program(), &inv.args).unchecked();
        // Output that silo parses must not be translated.
        if parsed {
            expr.env("LC_ALL", "C")
        } else {
            expr
        }
    }

    fn spawn_error(inv: &Invocation, err: io::Error) -> anyhow::Error {
        if err.kind() == io::ErrorKind::NotFound {
            anyhow::anyhow!(
                "{} is not installed or not on PATH; {}",
                inv.tool.program(),
                inv.tool.install_hint()
            )
        } else {
            anyhow::Error::new(err).context(format!("cannot run `{inv}`"))
        }
    }

    /// Runs to completion with stdout and stderr captured; a non-zero exit is not an error.
    pub fn capture(&self, inv: &Invocation) -> Result<Output> {
        let expr = self.expression(inv, true);
        let expr = match &inv.input {
            Some(input) => expr.stdin_bytes(input.clone()),
            None => expr.stdin_null(),
        };
        let out = expr
            .stdout_capture()
            .stderr_capture()
            .run()
            .map_err(|e| Self::spawn_error(inv, e))?;
        Ok(Output {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    /// Runs to completion with output captured; a non-zero exit is a `CommandFailed` error.
    pub fn run(&self, inv: &Invocation) -> Result<Output> {
        let out = self.capture(inv)?;
        if out.success() {
            Ok(out)
        } else {
            Err(CommandFailed {
                command: inv.to_string(),
                code: out.code,
                stderr: out.stderr,
                stderr_shown: false,
            }
            .into())
        }
    }

    /// Runs a long command: its stderr (progress) is shown live, its stdout is captured.
    /// On failure the error keeps the last lines of stderr so they can be recognised.
    pub fn stream(&self, inv: &Invocation) -> Result<String> {
        self.stream_filtered(inv, &mut |line| Some(line.to_owned()))
    }

    /// `stream`, showing each stderr line as `filter` makes it (None leaves it out); the
    /// error keeps the lines as shown.
    pub fn stream_filtered(
        &self,
        inv: &Invocation,
        filter: &mut dyn FnMut(&str) -> Option<String>,
    ) -> Result<String> {
        let mut stderr = io::stderr();
        self.stream_handled(inv, &mut |line| {
            let shown = filter(line)?;
            let _ = writeln!(stderr, "{shown}");
            Some(shown)
        })
    }

    /// Runs a long command, handing each stderr line to `handle`, which shows what it
    /// wants and returns the text to keep for the error (None keeps nothing); stdout is
    /// captured and returned.
    pub fn stream_handled(
        &self,
        inv: &Invocation,
        handle: &mut dyn FnMut(&str) -> Option<String>,
    ) -> Result<String> {
        let stdout_file = tempfile::NamedTempFile::new().context("creating a temporary file")?;
        let mut reader = self
            .expression(inv, true)
            .stdin_null()
            .stdout_path(stdout_file.path())
            .stdout_stderr_swap()
            .reader()
            .map_err(|e| Self::spawn_error(inv, e))?;
        let tail = collect_lines(&mut reader, handle)
            .with_context(|| format!("reading the output of `{inv}`"))?;
        let status = reader
            .try_wait()
            .with_context(|| format!("waiting for `{inv}`"))?
            .map(|out| out.status)
            .context("the process did not exit after closing its output")?;
        if !status.success() {
            return Err(CommandFailed {
                command: inv.to_string(),
                code: status.code(),
                stderr: tail,
                stderr_shown: true,
            }
            .into());
        }
        let mut stdout = String::new();
        stdout_file
            .reopen()
            .and_then(|mut f| f.read_to_string(&mut stdout))
            .with_context(|| format!("reading the output of `{inv}`"))?;
        Ok(stdout)
    }

    /// Runs with the terminal attached (stdin, stdout, stderr inherited) and returns the
    /// exit code; a process killed by a signal reports 128 + signal, like a shell.
    pub fn interactive(&self, inv: &Invocation) -> Result<i32> {
        let out = self
            .expression(inv, false)
            .run()
            .map_err(|e| Self::spawn_error(inv, e))?;
        Ok(exit_code(&out.status))
    }
}

fn exit_code(status: &std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1)
}

/// Hands each line of `input` to `handle` as it arrives and returns the last few texts
/// it kept.
fn collect_lines(
    input: impl Read,
    handle: &mut dyn FnMut(&str) -> Option<String>,
) -> io::Result<String> {
    let mut tail = VecDeque::with_capacity(STREAM_TAIL_LINES);
    let mut reader = BufReader::new(input);
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        let text = String::from_utf8_lossy(&line);
        let Some(mut kept) = handle(text.trim_end_matches(['\n', '\r'])) else {
            continue;
        };
        kept.push('\n');
        if tail.len() == STREAM_TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(kept);
    }
    Ok(tail.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_quotes_only_what_needs_it() {
        let inv = Invocation::new(
            Tool::Podman,
            [
                "create",
                "--name",
                "silo-ab3f9c12",
                "--label",
                "a b",
                "it's",
                "",
            ],
        );
        assert_eq!(
            inv.to_string(),
            r#"podman create --name silo-ab3f9c12 --label 'a b' 'it'\''s' ''"#
        );
        let script = Invocation::new(
            Tool::Podman,
            ["run", "-c", "set -eu\nfor x do\n  :\ndone\n", "arg"],
        );
        assert_eq!(script.to_string(), "podman run -c 'set -eu...' arg");
    }

    #[test]
    fn failure_message_names_command_code_and_stderr() {
        let err = CommandFailed {
            command: "podman rmi x".into(),
            code: Some(125),
            stderr: "Error: image is in use\n".into(),
            stderr_shown: false,
        };
        assert_eq!(
            err.to_string(),
            "`podman rmi x` failed with exit code 125: Error: image is in use"
        );
        let shown = CommandFailed {
            stderr_shown: true,
            ..err
        };
        assert_eq!(
            shown.to_string(),
            "`podman rmi x` failed with exit code 125 (its output is above)"
        );
    }

    #[test]
    fn collect_lines_hands_over_everything_and_keeps_the_tail() {
        let input: String = (0..100).map(|i| format!("line {i}\n")).collect();
        let mut seen = String::new();
        let tail = collect_lines(input.as_bytes(), &mut |l| {
            seen.push_str(l);
            seen.push('\n');
            Some(l.to_owned())
        })
        .unwrap();
        assert_eq!(seen, input);
        assert!(tail.starts_with("line 40\n"));
        assert!(tail.ends_with("line 99\n"));
    }

    #[test]
    fn collect_lines_keeps_what_the_handler_returns() {
        let tail = collect_lines("a\nskip\nb".as_bytes(), &mut |l| {
            (l != "skip").then(|| l.to_uppercase())
        })
        .unwrap();
        assert_eq!(tail, "A\nB\n");
    }

    #[test]
    fn missing_program_is_reported_with_a_hint() {
        let inv = Invocation::new(Tool::Nix, ["--version"]);
        let err = Runner::spawn_error(&inv, io::Error::from(io::ErrorKind::NotFound));
        assert_eq!(
            err.to_string(),
            "nix is not installed or not on PATH; install Nix (Debian/Ubuntu: apt install nix-bin; elsewhere: https://nixos.org/download)"
        );
    }
}
