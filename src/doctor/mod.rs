//! `silo doctor`: checks that Podman, Nix, the configuration files and the disk are ready
//! for silo, one line per check, each problem with the command that fixes it.

mod host_checks;
mod nix_checks;

use std::path::PathBuf;

use anyhow::Result;
use serde::Serialize;

use crate::config::file::parse_user;
use crate::config::{
    DEVCONTAINER_USER_JSON_FILE, HOME_USER_NIX_FILE, USER_TOML_FILE, read_workspace_file,
};
use crate::init::PODMAN_OPTION;
use crate::runner::Output;
use crate::session::{Ctx, read_config};
use crate::trust::{self, Subject, Verdict};
use crate::workspace::{DEVCONTAINER_JSON, HOME_NIX, SILO_TOML, Workspace};
use crate::{devcontainer, home_nix, host};
use host_checks::{check_disk, check_limits, check_podman, check_rootless, check_seccomp};
use nix_checks::check_nix;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Ok,
    Warning,
    Problem,
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub check: &'static str,
    pub status: Status,
    pub detail: String,
    /// The command (or edit) that fixes it.
    pub fix: Option<String>,
}

pub(super) fn ok(check: &'static str, detail: impl Into<String>) -> Check {
    Check {
        check,
        status: Status::Ok,
        detail: detail.into(),
        fix: None,
    }
}

pub(super) fn warning(
    check: &'static str,
    detail: impl Into<String>,
    fix: Option<String>,
) -> Check {
    Check {
        check,
        status: Status::Warning,
        detail: detail.into(),
        fix,
    }
}

pub(super) fn problem(
    check: &'static str,
    detail: impl Into<String>,
    fix: impl Into<String>,
) -> Check {
    Check {
        check,
        status: Status::Problem,
        detail: detail.into(),
        fix: Some(fix.into()),
    }
}

pub(super) fn first_error_line(out: &Output) -> String {
    out.stderr
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("no message")
        .to_owned()
}

/// The user's files and the workspace's, parsed as silo parses them.
fn check_config(ctx: &Ctx) -> Vec<Check> {
    let dir = &ctx.user_dir;
    let mut checks = Vec::new();
    let fix_user = |path: PathBuf| format!("edit {}", path.display());
    match dir.read(USER_TOML_FILE) {
        Ok(None) => checks.push(ok(
            "config",
            format!(
                "{} not created yet (`silo user init` or `silo` creates it)",
                dir.toml().display()
            ),
        )),
        Ok(Some(text)) => checks.push(match parse_user(&text, &dir.toml()) {
            Ok(_) => ok("config", format!("{} parses", dir.toml().display())),
            Err(err) => problem("config", format!("{err:#}"), fix_user(dir.toml())),
        }),
        Err(err) => checks.push(problem("config", format!("{err:#}"), fix_user(dir.toml()))),
    }
    if let Ok(Some(text)) = dir.read(HOME_USER_NIX_FILE)
        && let Err(err) = home_nix::get_bool(&text, &PODMAN_OPTION)
    {
        checks.push(warning(
            "config",
            format!("{}: {err:#}", dir.home_nix().display()),
            Some(fix_user(dir.home_nix())),
        ));
    }
    if let Ok(Some(text)) = dir.read(DEVCONTAINER_USER_JSON_FILE)
        && let Err(err) = devcontainer::parse_source(&text, &dir.devcontainer_json())
    {
        checks.push(problem(
            "config",
            format!("{err:#}"),
            fix_user(dir.devcontainer_json()),
        ));
    }
    checks.extend(check_workspace(ctx));
    checks
}

/// The workspace silo would use here, if there is one.
fn check_workspace(ctx: &Ctx) -> Vec<Check> {
    let Ok(ws) = Workspace::locate(&ctx.cwd) else {
        return Vec::new();
    };
    let Ok(Some(silo)) = ws.silo() else {
        return Vec::new();
    };
    if !matches!(silo.entry(SILO_TOML), Ok(Some(_))) {
        return Vec::new();
    }
    let toml = ws.toml();
    let mut checks = Vec::new();
    let file = match read_workspace_file(&silo) {
        Ok(file) => file,
        Err(err) => {
            return vec![problem(
                "workspace",
                format!("{err:#}"),
                format!("edit {}", toml.display()),
            )];
        }
    };
    match read_config(&ws, &silo, &ctx.user_dir) {
        Ok(_) => checks.push(ok(
            "workspace",
            format!("{} ({}) parses", ws.root.display(), file.id),
        )),
        Err(err) => checks.push(problem(
            "workspace",
            format!("{err:#}"),
            "fix the file named above, or run `silo user init`",
        )),
    }
    if let Ok(Some(text)) = silo.read(HOME_NIX)
        && let Err(err) = home_nix::get_bool(&text, &PODMAN_OPTION)
    {
        checks.push(warning(
            "workspace",
            format!("{}: {err:#}", silo.join(HOME_NIX).display()),
            None,
        ));
    }
    if let Ok(Some(text)) = silo.read(DEVCONTAINER_JSON)
        && let Err(err) = devcontainer::parse_source(&text, &ws.devcontainer_json())
    {
        checks.push(problem(
            "workspace",
            format!("{err:#}"),
            format!("edit {}", ws.devcontainer_json().display()),
        ));
    }
    let home_nix = silo.read(HOME_NIX).ok().flatten().unwrap_or_default();
    let store = trust::Store::new(&ctx.user_dir.dir);
    let verdict = Subject::new(&ws, &silo, &file, &home_nix).and_then(|s| store.verdict(&s));
    checks.push(match verdict {
        Ok(Verdict::Trusted(origin)) => ok("trust", format!("the workspace's settings are {}", match origin {
            trust::Origin::Created => "yours (created by silo init)",
            trust::Origin::Approved => "approved",
        })),
        Ok(Verdict::Review(_)) => warning(
            "trust",
            "the workspace's settings are not approved (or changed since): silo does not apply them",
            Some(format!("review and approve them: cd {} && silo trust", ws.root.display())),
        ),
        Err(err) => problem("trust", format!("{err:#}"), "see the message"),
    });
    checks
}

/// Every check, in the order shown.
pub fn checks(ctx: &Ctx) -> Vec<Check> {
    let (mut checks, info) = check_podman(&ctx.runner);
    let rootless = info
        .as_ref()
        .map_or(!host::is_root(), |i| i.host.security.rootless);
    if rootless {
        checks.extend(check_rootless());
    }
    checks.push(check_limits(rootless));
    checks.push(check_seccomp());
    checks.extend(check_nix(&ctx.runner));
    checks.extend(check_config(ctx));
    checks.extend(check_disk(
        info.as_ref().map(|i| i.store.graph_root.as_str()),
    ));
    checks
}

/// The report: `ok      what`, with `        fix: ...` under a warning or problem.
pub fn render(checks: &[Check]) -> String {
    let mut out = String::new();
    for c in checks {
        let word = match c.status {
            Status::Ok => "ok",
            Status::Warning => "warning",
            Status::Problem => "problem",
        };
        out.push_str(&format!("{word:<8} {:<10} {}\n", c.check, c.detail));
        if let Some(fix) = &c.fix {
            out.push_str(&format!("{:<8} {:<10} fix: {fix}\n", "", ""));
        }
    }
    out
}

/// `silo doctor [--json]`: 0 when nothing is a problem, 1 otherwise.
pub fn run(ctx: &Ctx, json: bool) -> Result<std::process::ExitCode> {
    let checks = checks(ctx);
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&checks).expect("plain data")
        );
    } else {
        print!("{}", render(&checks));
    }
    let problems = checks
        .iter()
        .filter(|c| c.status == Status::Problem)
        .count();
    let warnings = checks
        .iter()
        .filter(|c| c.status == Status::Warning)
        .count();
    if !json {
        eprintln!(
            "{problems} problem{}, {warnings} warning{}",
            if problems == 1 { "" } else { "s" },
            if warnings == 1 { "" } else { "s" }
        );
    }
    Ok(if problems == 0 {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_lines() {
        let checks = [
            ok("podman", "Podman 4.3.1"),
            problem(
                "network",
                "/dev/net/tun is missing",
                "as root: modprobe tun",
            ),
        ];
        assert_eq!(
            render(&checks),
            "\
ok       podman     Podman 4.3.1
problem  network    /dev/net/tun is missing
                    fix: as root: modprobe tun
"
        );
        let json = serde_json::to_value(&checks[1]).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"check": "network", "status": "problem",
                "detail": "/dev/net/tun is missing", "fix": "as root: modprobe tun"})
        );
    }
}
