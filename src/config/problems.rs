//! Reporting the problems of a configuration file: every problem at once, each with its
//! file, line, column and key, in words rather than serde's.

use std::fmt::Write as _;
use std::ops::Range;
use std::path::Path;

/// Collects every problem of one file before reporting, so one run shows them all.
pub struct Problems<'a> {
    source: &'a str,
    list: Vec<(Option<Range<usize>>, String)>,
}

impl<'a> Problems<'a> {
    pub fn new(source: &'a str) -> Problems<'a> {
        Problems {
            source,
            list: Vec::new(),
        }
    }

    pub fn add(&mut self, span: Option<Range<usize>>, message: impl Into<String>) {
        self.list.push((span, message.into()));
    }

    pub fn into_result(self, path: &Path) -> anyhow::Result<()> {
        if self.list.is_empty() {
            return Ok(());
        }
        let mut msg = format!("invalid configuration in {}:", path.display());
        for (span, problem) in &self.list {
            match span {
                Some(span) => {
                    let (line, col) = line_col(self.source, span.start);
                    write!(msg, "\n  {}:{line}:{col}: {problem}", path.display())
                }
                None => write!(msg, "\n  {}: {problem}", path.display()),
            }
            .expect("writing to a String");
        }
        Err(anyhow::anyhow!(msg))
    }
}

/// 1-based line and column of a byte offset.
pub fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let before = &source[..offset.min(source.len())];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rfind('\n')
        .map_or(before.len(), |nl| before.len() - nl - 1)
        + 1;
    (line, col)
}

/// serde's "invalid type: string \"lots\", expected i64" as a user reads it:
/// `[limits].processes: expected a whole number, found the string "lots"`.
pub fn type_error(message: &str, source: &str, at: usize) -> Option<String> {
    let rest = message.strip_prefix("invalid type: ")?;
    let (found, expected) = rest.rsplit_once(", expected ")?;
    let expected = match expected {
        "i64" | "u64" | "i32" | "u32" => "a whole number",
        "f64" => "a number",
        "a boolean" => "true or false",
        "a sequence" => "a list [ ... ]",
        "a string" => "a string in quotes",
        e if e.starts_with("struct ") || e == "a map" => "a table",
        other => other,
    };
    let value = |prefix: &str| {
        found
            .strip_prefix(prefix)
            .map(|v| v.trim_matches('`').to_owned())
    };
    let found = if let Some(v) = found.strip_prefix("string ") {
        format!("the string {v}")
    } else if let Some(v) = value("integer ") {
        format!("the whole number {v}")
    } else if let Some(v) = value("floating point ") {
        format!("the number {v}")
    } else if let Some(v) = value("boolean ") {
        v
    } else if found == "sequence" {
        "a list".to_owned()
    } else if found == "map" {
        "a table".to_owned()
    } else {
        found.to_owned()
    };
    Some(format!(
        "{}: expected {expected}, found {found}",
        key_at(source, at)
    ))
}

/// `[section].key` for the value at byte offset `at`: the nearest `key =` at or above
/// it, in the nearest `[section]` above that.
fn key_at(source: &str, at: usize) -> String {
    let before = &source[..at.min(source.len())];
    let mut key = None;
    let mut section = None;
    let current_line = before.rsplit('\n').next().unwrap_or_default();
    let earlier = before[..before.len() - current_line.len()].lines().rev();
    for line in std::iter::once(current_line).chain(earlier) {
        let line = line.trim_start();
        if line.starts_with('[') {
            section = Some(line.trim_end().trim_matches(['[', ']']).trim().to_owned());
            break;
        }
        if key.is_none()
            && !line.starts_with('#')
            && let Some((name, _)) = line.split_once('=')
        {
            key = Some(name.trim().trim_matches('"').to_owned());
        }
    }
    match (section, key) {
        (Some(section), Some(key)) => format!("[{section}].{key}"),
        (Some(section), None) => format!("[{section}]"),
        (None, Some(key)) => key,
        (None, None) => "the file".to_owned(),
    }
}
