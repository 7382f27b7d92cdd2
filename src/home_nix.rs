//! Reading and setting a boolean option in a home-manager module (`home.nix`) with rnix.
//!
//! rowan 0.17 has no mutable tree, so an edit is a text range and its replacement,
//! applied to the source and re-parsed: every other byte stays as it was.
//!
//! home.nix may come from a repository someone else wrote. rnix's parser recurses once
//! per level of nesting and takes quadratic time on some long chains, so a file is
//! parsed only when its nesting is bounded, on a thread with a large stack, and for a
//! bounded time: a hostile file gives an error, never a crash or a hang.

use std::ops::Range;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use rnix::ast::{self, HasEntry};
use rowan::ast::AstNode;

use crate::config::problems::line_col;

/// Where an option stands in a module's top-level attribute set.
enum Lookup {
    /// The option's value expression.
    Found(ast::Expr),
    /// Not set: the deepest attribute set on the way, and how many keys of the path it
    /// already covers.
    Missing { set: ast::AttrSet, covered: usize },
}

/// Deeper nesting than this is refused before parsing.
const MAX_NESTING: usize = 1000;
/// Enough stack for `MAX_NESTING` levels and for the longest chains a file silo reads
/// (at most 4 MiB) can hold.
const PARSE_STACK: usize = 256 << 20;
const PARSE_TIME: Duration = Duration::from_secs(10);

/// Refuses a file nested deeper than `MAX_NESTING`: brackets, braces, parentheses,
/// interpolations, strings, and runs of prefix operators (`!`, `-`).
fn check_nesting(source: &str) -> Result<()> {
    use rnix::SyntaxKind::*;
    let (mut depth, mut deepest, mut prefix_run, mut longest_run) = (0usize, 0, 0usize, 0);
    for (kind, _) in rnix::tokenize(source) {
        match kind {
            TOKEN_L_BRACE | TOKEN_L_BRACK | TOKEN_L_PAREN | TOKEN_INTERPOL_START
            | TOKEN_STRING_START => depth += 1,
            TOKEN_R_BRACE | TOKEN_R_BRACK | TOKEN_R_PAREN | TOKEN_INTERPOL_END
            | TOKEN_STRING_END => depth = depth.saturating_sub(1),
            _ => {}
        }
        match kind {
            TOKEN_INVERT | TOKEN_SUB => prefix_run += 1,
            TOKEN_WHITESPACE | TOKEN_COMMENT => {}
            _ => prefix_run = 0,
        }
        deepest = deepest.max(depth);
        longest_run = longest_run.max(prefix_run);
    }
    if deepest.max(longest_run) > MAX_NESTING {
        bail!(
            "it nests {} levels deep; silo reads Nix files nested at most {MAX_NESTING} levels",
            deepest.max(longest_run)
        );
    }
    Ok(())
}

/// Runs `f` on `source` on its own thread, with a large stack and a time limit.
fn guarded<T: Send + 'static>(
    source: &str,
    f: impl FnOnce(&str) -> Result<T> + Send + 'static,
) -> Result<T> {
    check_nesting(source)?;
    let (tx, rx) = mpsc::channel();
    let owned = source.to_owned();
    std::thread::Builder::new()
        .name("home.nix parser".into())
        .stack_size(PARSE_STACK)
        .spawn(move || {
            let _ = tx.send(f(&owned));
        })
        .map_err(|e| anyhow!("cannot start the parser thread: {e}"))?;
    match rx.recv_timeout(PARSE_TIME) {
        Ok(result) => result,
        Err(mpsc::RecvTimeoutError::Timeout) => bail!(
            "parsing it took more than {} s; it is too unusual for silo to edit",
            PARSE_TIME.as_secs()
        ),
        Err(mpsc::RecvTimeoutError::Disconnected) => bail!("the parser failed"),
    }
}

/// The option's value: `Some(true|false)`, or `None` when the module does not set it.
pub fn get_bool(source: &str, path: &[&str]) -> Result<Option<bool>> {
    let path: Vec<String> = path.iter().map(|s| s.to_string()).collect();
    guarded(source, move |source| {
        let path: Vec<&str> = path.iter().map(String::as_str).collect();
        get_bool_unguarded(source, &path)
    })
}

/// Sets the option to `value`, inserting it when missing. Refuses (and changes nothing)
/// when the file does not parse or the option holds something other than true/false.
pub fn set_bool(source: &str, path: &[&str], value: bool) -> Result<String> {
    let path: Vec<String> = path.iter().map(|s| s.to_string()).collect();
    guarded(source, move |source| {
        let path: Vec<&str> = path.iter().map(String::as_str).collect();
        set_bool_unguarded(source, &path, value)
    })
}

fn get_bool_unguarded(source: &str, path: &[&str]) -> Result<Option<bool>> {
    let (set, path) = module_set(source, path)?;
    match lookup(&set, &path, 0)? {
        Lookup::Found(value) => plain_bool(&value, &path).map(Some),
        Lookup::Missing { .. } => Ok(None),
    }
}

fn set_bool_unguarded(source: &str, path: &[&str], value: bool) -> Result<String> {
    let (set, full_path) = module_set(source, path)?;
    let (range, text) = match lookup(&set, &full_path, 0)? {
        Lookup::Found(expr) => {
            plain_bool(&expr, &full_path)?;
            (to_range(expr.syntax().text_range()), value.to_string())
        }
        Lookup::Missing { set, covered } => {
            let entry = format!("{} = {value};", full_path[covered..].join("."));
            insertion(source, &set, &entry)
        }
    };
    let mut edited = source.to_owned();
    edited.replace_range(range, &text);
    // The edit must read back as intended, or nothing is written.
    match get_bool_unguarded(&edited, path) {
        Ok(Some(v)) if v == value => Ok(edited),
        _ => bail!(
            "editing {} did not give a valid file; set it by hand",
            path.join(".")
        ),
    }
}

/// The module's top-level attribute set, and the option path within it: a module with
/// `config` or `options` at the top keeps its settings under `config`.
fn module_set(source: &str, path: &[&str]) -> Result<(ast::AttrSet, Vec<String>)> {
    let parse = rnix::Root::parse(source);
    if let Some(err) = parse.errors().first() {
        bail!("it is not valid Nix: {}", describe_parse_error(source, err));
    }
    let mut expr = parse.tree().expr().ok_or_else(|| anyhow!("it is empty"))?;
    let set = loop {
        expr = match expr {
            ast::Expr::AttrSet(set) => break set,
            ast::Expr::Lambda(lambda) => lambda.body(),
            ast::Expr::LetIn(let_in) => let_in.body(),
            ast::Expr::With(with) => with.body(),
            ast::Expr::Paren(paren) => paren.expr(),
            _ => None,
        }
        .ok_or_else(|| {
            anyhow!("it is not a home-manager module of the form `{{ ... }}: {{ ... }}`")
        })?;
    };
    let full_module = set.attrpath_values().any(|apv| {
        matches!(attr_keys(&apv).as_deref(), Some([first, ..]) if first == "config" || first == "options")
    });
    let prefix = if full_module { Some("config") } else { None };
    Ok((
        set,
        prefix
            .into_iter()
            .chain(path.iter().copied())
            .map(str::to_owned)
            .collect(),
    ))
}

/// The keys of an entry's attribute path; `None` when one is dynamic (`${...}`).
fn attr_keys(apv: &ast::AttrpathValue) -> Option<Vec<String>> {
    apv.attrpath()?
        .attrs()
        .map(|attr| match attr {
            ast::Attr::Ident(ident) => ident.ident_token().map(|t| t.text().to_owned()),
            ast::Attr::Str(s) => match s.normalized_parts().as_slice() {
                [ast::InterpolPart::Literal(text)] => Some(text.clone()),
                [] => Some(String::new()),
                _ => None,
            },
            ast::Attr::Dynamic(_) => None,
        })
        .collect()
}

fn lookup(set: &ast::AttrSet, path: &[String], covered: usize) -> Result<Lookup> {
    let mut found = Vec::new();
    let mut deepest = Lookup::Missing {
        set: set.clone(),
        covered,
    };
    let rest = &path[covered..];
    for apv in set.attrpath_values() {
        let Some(keys) = attr_keys(&apv) else {
            continue;
        };
        if keys.len() > rest.len() || keys[..] != rest[..keys.len()] {
            continue;
        }
        let value = apv
            .value()
            .ok_or_else(|| anyhow!("{} has no value", keys.join(".")))?;
        if keys.len() == rest.len() {
            found.push(value);
            continue;
        }
        let ast::Expr::AttrSet(inner) = value else {
            bail!(
                "{} is set to an expression, not an attribute set {{ ... }}, so {} cannot be changed automatically",
                path[..covered + keys.len()].join("."),
                path.join(".")
            );
        };
        match lookup(&inner, path, covered + keys.len())? {
            Lookup::Found(value) => found.push(value),
            missing @ Lookup::Missing { covered: c, .. } => {
                if matches!(deepest, Lookup::Missing { covered: d, .. } if c > d) {
                    deepest = missing;
                }
            }
        }
    }
    match found.len() {
        0 => Ok(deepest),
        1 => Ok(Lookup::Found(found.remove(0))),
        _ => bail!("{} is set more than once", path.join(".")),
    }
}

fn plain_bool(expr: &ast::Expr, path: &[String]) -> Result<bool> {
    if let ast::Expr::Ident(ident) = expr {
        match ident.syntax().text().to_string().as_str() {
            "true" => return Ok(true),
            "false" => return Ok(false),
            _ => {}
        }
    }
    bail!(
        "{} is set to `{}`, not to true or false, so it cannot be changed automatically; edit it by hand",
        path.join("."),
        expr.syntax().text()
    )
}

fn to_range(range: rowan::TextRange) -> Range<usize> {
    usize::from(range.start())..usize::from(range.end())
}

/// Where and how to add `entry` to `set`: on its own line after the last entry (after any
/// comment on that line), with the same indentation; inline for a one-line set.
fn insertion(source: &str, set: &ast::AttrSet, entry: &str) -> (Range<usize>, String) {
    let open = set
        .l_curly_token()
        .map_or(0, |t| usize::from(t.text_range().end()));
    let close = set
        .r_curly_token()
        .map_or(source.len(), |t| usize::from(t.text_range().start()));
    match set.entries().last() {
        Some(last) => {
            let start = usize::from(last.syntax().text_range().start());
            let end = usize::from(last.syntax().text_range().end());
            match source[end..].find('\n').map(|i| end + i + 1) {
                Some(line_end) if line_end <= close => (
                    line_end..line_end,
                    format!("{}{entry}\n", indentation(source, start)),
                ),
                _ => (end..end, format!(" {entry}")),
            }
        }
        None => {
            let inner = &source[open..close];
            match inner.find('\n') {
                Some(nl) => {
                    let indent = format!("{}  ", indentation(source, close));
                    let at = open + nl + 1;
                    (at..at, format!("{indent}{entry}\n"))
                }
                None => (open..close, format!(" {entry} ")),
            }
        }
    }
}

/// The whitespace at the start of the line containing `offset`.
fn indentation(source: &str, offset: usize) -> &str {
    let line_start = source[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line = &source[line_start..];
    &line[..line.len() - line.trim_start_matches([' ', '\t']).len()]
}

/// A parse error with its line and column instead of byte offsets.
fn describe_parse_error(source: &str, err: &rnix::ParseError) -> String {
    use rnix::ParseError as E;
    let at = |range: &rowan::TextRange| {
        let (line, col) = line_col(source, usize::from(range.start()));
        format!("line {line}, column {col}")
    };
    match err {
        E::Unexpected(r) | E::UnexpectedExtra(r) | E::UnexpectedDoubleBind(r) => {
            format!("unexpected `{}` at {}", &source[to_range(*r)], at(r))
        }
        E::UnexpectedWanted(_, r, _) => {
            format!("unexpected `{}` at {}", &source[to_range(*r)], at(r))
        }
        E::DuplicatedArgs(r, name) => format!("argument `{name}` is duplicated at {}", at(r)),
        E::UnexpectedEOF | E::UnexpectedEOFWanted(_) => "unexpected end of file".to_owned(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATH: [&str; 3] = ["silo", "podman", "enable"];

    fn set(src: &str, value: bool) -> String {
        set_bool(src, &PATH, value).unwrap()
    }

    fn err(src: &str) -> String {
        format!("{:#}", set_bool(src, &PATH, true).unwrap_err())
    }

    #[test]
    fn dotted_path() {
        let src = "# my workspace\n{ config, pkgs, ... }:\n{\n  silo.podman.enable = false; # nested\n\n  home.packages = [ pkgs.jq ];\n}\n";
        assert_eq!(get_bool(src, &PATH).unwrap(), Some(false));
        assert_eq!(
            set(src, true),
            src.replace("enable = false;", "enable = true;")
        );
        assert_eq!(set(src, false), src);
    }

    #[test]
    fn nested_sets() {
        let src = "{ ... }:\n{\n  silo = {\n    # the shell\n    shellCommand = \"bash\";\n    podman.enable = true;\n  };\n}\n";
        assert_eq!(get_bool(src, &PATH).unwrap(), Some(true));
        assert_eq!(
            set(src, false),
            src.replace("enable = true", "enable = false")
        );

        let src = "{ ... }: {\n  silo.podman = { enable = false; };\n}\n";
        assert_eq!(
            set(src, true),
            "{ ... }: {\n  silo.podman = { enable = true; };\n}\n"
        );

        let src = "{ ... }: { \"silo\".podman.\"enable\" = true; }";
        assert_eq!(get_bool(src, &PATH).unwrap(), Some(true));
    }

    #[test]
    fn wrappers_around_the_set() {
        let src =
            "{ pkgs, ... }:\nlet x = 1; in\nwith pkgs; ({\n  silo.podman.enable = false;\n})\n";
        assert_eq!(set(src, true), src.replace("false", "true"));
    }

    #[test]
    fn full_module_with_config() {
        let src = "{ lib, ... }: {\n  options = { };\n  config = {\n    silo.podman.enable = false;\n  };\n}\n";
        assert_eq!(set(src, true), src.replace("false", "true"));
        let src = "{ lib, ... }: {\n  imports = [ ];\n  config.silo.podman.enable = true;\n  options = { };\n}\n";
        assert_eq!(get_bool(src, &PATH).unwrap(), Some(true));
    }

    #[test]
    fn inserted_after_the_last_entry_keeping_comments() {
        let src = "# header comment\n{ config, pkgs, ... }:\n{\n  # packages\n  home.packages = [ pkgs.jq ]; # trailing\n\n  # end\n}\n";
        assert_eq!(
            set(src, true),
            "# header comment\n{ config, pkgs, ... }:\n{\n  # packages\n  home.packages = [ pkgs.jq ]; # trailing\n  silo.podman.enable = true;\n\n  # end\n}\n"
        );
    }

    #[test]
    fn inserted_into_the_deepest_existing_set() {
        let src = "{ ... }:\n{\n  silo = {\n    shellCommand = \"fish\";\n  };\n}\n";
        assert_eq!(
            set(src, true),
            "{ ... }:\n{\n  silo = {\n    shellCommand = \"fish\";\n    podman.enable = true;\n  };\n}\n"
        );
        let src = "{ ... }: { silo = { shellCommand = \"fish\"; }; }";
        assert_eq!(
            set(src, false),
            "{ ... }: { silo = { shellCommand = \"fish\"; podman.enable = false; }; }"
        );
    }

    #[test]
    fn inserted_into_empty_sets() {
        assert_eq!(
            set("{ ... }: { }\n", true),
            "{ ... }: { silo.podman.enable = true; }\n"
        );
        assert_eq!(
            set("{ ... }:\n{\n}\n", true),
            "{ ... }:\n{\n  silo.podman.enable = true;\n}\n"
        );
        assert_eq!(
            set("{ ... }: {\n  silo = {\n  };\n}\n", false),
            "{ ... }: {\n  silo = {\n    podman.enable = false;\n  };\n}\n"
        );
    }

    #[test]
    fn missing_is_none() {
        assert_eq!(
            get_bool("{ ... }: { home.stateVersion = \"25.11\"; }", &PATH).unwrap(),
            None
        );
    }

    #[test]
    fn parse_errors_are_refused_with_position() {
        assert_eq!(
            err("{ ... }:\n{\n  silo.podman.enable = ;\n}\n"),
            "it is not valid Nix: unexpected `;` at line 3, column 24"
        );
        assert!(err("{ ... }: {").starts_with("it is not valid Nix: unexpected end of file"));
    }

    #[test]
    fn non_boolean_values_are_refused() {
        assert_eq!(
            err("{ lib, ... }: { silo.podman.enable = lib.mkDefault true; }"),
            "silo.podman.enable is set to `lib.mkDefault true`, not to true or false, so it cannot be changed automatically; edit it by hand"
        );
        assert!(
            err("{ cfg, ... }: { silo.podman = cfg.podman; }")
                .starts_with("silo.podman is set to an expression")
        );
        assert!(
            err("{ ... }: { silo.podman.enable = true; silo.podman = { enable = false; }; }")
                .contains("set more than once")
        );
    }

    #[test]
    fn non_module_files_are_refused() {
        assert!(err("[ 1 2 ]").contains("not a home-manager module"));
        assert!(err("").contains("not valid Nix") || err("").contains("empty"));
    }

    #[test]
    fn generated_home_nix_round_trips() {
        for podman in [false, true] {
            let src = crate::config::defaults::home_nix(podman);
            assert_eq!(get_bool(&src, &PATH).unwrap(), Some(podman));
            assert_eq!(
                set(&src, !podman),
                crate::config::defaults::home_nix(!podman)
            );
        }
    }

    #[test]
    fn deep_or_long_input_is_refused_not_a_crash() {
        let deep = format!(
            "{{ ... }}: {{ x = {}{}; }}",
            "[".repeat(60_000),
            "]".repeat(60_000)
        );
        let err = format!("{:#}", set_bool(&deep, &PATH, true).unwrap_err());
        assert!(err.contains("nests 60001 levels deep"), "{err}");
        let nots = format!("{{ ... }}: {{ x = {}true; }}", "! ".repeat(5_000));
        assert!(
            get_bool(&nots, &PATH)
                .unwrap_err()
                .to_string()
                .contains("levels deep")
        );
        // Close to the limit is parsed (on the parser thread's own stack).
        let fine = format!(
            "{{ ... }}: {{ x = {}{}; silo.podman.enable = false; }}",
            "[".repeat(900),
            "]".repeat(900)
        );
        assert_eq!(get_bool(&fine, &PATH).unwrap(), Some(false));
        // Strings that look like brackets do not count.
        let text = format!("{{ ... }}: {{ x = \"{}\"; }}", "[".repeat(5_000));
        assert_eq!(get_bool(&text, &PATH).unwrap(), None);
    }
}
