//! `silo man`: the manual page, generated from the command-line definitions with
//! clap_mangen, on stdout or as one page per command in a directory.

use std::path::Path;

use anyhow::{Context, Result};
use clap::CommandFactory;

use crate::cli::Cli;
use crate::safe_fs::Dir;

fn render(page: clap_mangen::Man) -> Result<String> {
    let mut out = Vec::new();
    page.render(&mut out).context("rendering the manual page")?;
    String::from_utf8(out).context("the manual page is not UTF-8")
}

fn page(cmd: clap::Command) -> clap_mangen::Man {
    clap_mangen::Man::new(cmd).source(format!("silo {}", env!("CARGO_PKG_VERSION")))
}

/// The page `silo.1`.
pub fn silo_1() -> Result<String> {
    let mut cmd = Cli::command();
    cmd.build();
    render(page(cmd))
}

/// Every page: `silo.1`, then `silo-build.1`, `silo-devcontainer-connect.1`, ...
pub fn pages() -> Result<Vec<(String, String)>> {
    fn walk(cmd: clap::Command, out: &mut Vec<(String, String)>) -> Result<()> {
        let man = page(cmd.clone());
        out.push((man.get_filename(), render(man)?));
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            walk(sub.clone(), out)?;
        }
        Ok(())
    }
    let mut cmd = Cli::command();
    cmd.build();
    let mut out = Vec::new();
    walk(cmd, &mut out)?;
    Ok(out)
}

/// `silo man [--dir DIR]`.
pub fn run(dir: Option<&Path>) -> Result<()> {
    let Some(dir) = dir else {
        print!("{}", silo_1()?);
        return Ok(());
    };
    let target = Dir::create(dir)?;
    let pages = pages()?;
    for (name, text) in &pages {
        target.write_atomic(name, text)?;
    }
    eprintln!(
        "Wrote {} manual pages to {} (silo.1, silo-build.1, ...)",
        pages.len(),
        dir.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_page_per_command() {
        let pages = pages().unwrap();
        let names: Vec<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names[0], "silo.1");
        for expected in [
            "silo-build.1",
            "silo-gc.1",
            "silo-devcontainer-connect.1",
            "silo-volume-setup.1",
        ] {
            assert!(names.contains(&expected), "{expected} missing: {names:?}");
        }
        let main = &pages[0].1;
        assert!(main.starts_with(".ie \\n(.g .ds Aq \\(aq"), "{main}");
        assert!(main.contains(".TH silo 1"), "{main}");
        assert!(main.contains("silo\\-gc(1)"), "{main}");
    }
}
