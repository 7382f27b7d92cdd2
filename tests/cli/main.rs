//! CLI tests: the real silo binary in a temporary home and workspace, with stand-in
//! `podman` and `nix` that record their command lines. They pin what silo runs and what
//! it writes; the end-to-end tests (tests/e2e.rs) show it works with the real tools.

#[path = "../common/mod.rs"]
mod common;

mod build;
mod commands;
mod devcontainer;
mod init;
mod lifecycle;
mod network;
mod runner;
mod trust;

use common::TestEnv;

pub const HARDENING: &str =
    "--cap-drop=ALL --cap-add=NET_BIND_SERVICE --security-opt no-new-privileges";

pub use common::is_root;

/// The user-namespace flags silo uses for the user running the tests.
pub fn mapping() -> &'static str {
    if is_root() {
        "--uidmap 0:1:1000 --uidmap 1000:0:1 --uidmap 1001:1001:64535 \
         --gidmap 0:1:1000 --gidmap 1000:0:1 --gidmap 1001:1001:64535"
    } else {
        "--userns=keep-id:uid=1000,gid=1000"
    }
}

/// `podman create` as silo ran it, with the (long, JSON) config label shown as `<record>`.
pub fn create_line(env: &TestEnv) -> String {
    let creates = env.calls_starting("podman", &["create"]);
    assert_eq!(creates.len(), 1, "one podman create expected: {creates:?}");
    let (before, after) = creates[0]
        .split_once("io.silo.config=")
        .expect("a config label");
    let rest = after
        .split_once(" --")
        .map(|(_, r)| format!(" --{r}"))
        .unwrap_or_default();
    format!("{before}io.silo.config=<record>{rest}")
}

pub fn init(env: &TestEnv, args: &[&str]) {
    let mut full = vec!["init"];
    full.extend_from_slice(args);
    env.silo(&full).success();
}

/// The `nix build` command lines a stand-in nix (`nix`, or `runner-nix` in the runner)
/// recorded, without the version and store checks.
pub fn nix_builds(env: &TestEnv, tool: &str) -> Vec<String> {
    env.calls_starting(tool, &["--extra-experimental-features"])
        .into_iter()
        .filter(|c| c.contains(" build "))
        .collect()
}

/// Sets the `[nix]` table of the user file to `lines`, replacing what an earlier call
/// set (run `silo user init` first).
pub fn set_user_nix(env: &TestEnv, lines: &str) {
    let path = env.config.join("silo/silo.user.toml");
    let mut text = std::fs::read_to_string(&path).unwrap_or_default();
    if let Some(start) = text.find("\n[nix]\n") {
        let body = start + "\n[nix]\n".len();
        let end = text[body..]
            .find("\n[")
            .map_or(text.len(), |i| body + i + 1);
        text.replace_range(start..end, "");
    }
    std::fs::write(&path, format!("{text}\n[nix]\n{lines}\n")).unwrap();
}
