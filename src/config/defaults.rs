//! The files `silo user init` and `silo init` write, and the default `create_args`.

use super::values::{UserName, WorkspaceId};

/// Default `[podman].create_args` without nested Podman: drop every capability but
/// binding low ports, and forbid gaining privileges (setuid binaries).
pub const HARDENING_ARGS: [&str; 4] = [
    "--cap-drop=ALL",
    "--cap-add=NET_BIND_SERVICE",
    "--security-opt",
    "no-new-privileges",
];

/// Default `[podman].create_args` with nested Podman: rootless Podman inside needs
/// /dev/fuse for fuse-overlayfs and setuid newuidmap, so no hardening flags; SELinux
/// labels would stop the inner containers' mounts.
pub const NESTED_PODMAN_ARGS: [&str; 4] =
    ["--security-opt", "label=disable", "--device", "/dev/fuse"];

/// The default `create_args` for a workspace with nested Podman on or off.
pub fn create_args(podman: bool) -> &'static [&'static str] {
    if podman {
        &NESTED_PODMAN_ARGS
    } else {
        &HARDENING_ARGS
    }
}

/// A TOML array of strings, one per line (the strings are constants without quotes).
pub fn toml_string_array(items: &[&str]) -> String {
    if items.is_empty() {
        return "[]".to_owned();
    }
    let lines: Vec<String> = items.iter().map(|item| format!("  \"{item}\"")).collect();
    format!("[\n{}\n]", lines.join(",\n"))
}

pub fn user_toml(user: &UserName) -> String {
    format!(
        r#"# silo user configuration: applies to every workspace.
# See `silo help` and the README's configuration reference.

[general]
# The user inside every container (uid 1000, home /home/<user>).
user = "{user}"

[persistence]
# Paths kept in volumes across containers and rebuilds. A trailing slash
# marks a directory, otherwise a file; $HOME is the container user's home.
# shared_paths are shared by all workspaces, private_paths are per workspace.
# Example: shared_paths = ["$HOME/.cache/uv/"]
shared_paths = []
private_paths = []

[podman]
# Extra `podman create` arguments, before each workspace's own.
create_args = []

[network]
# Port forwardings HOST:CONTAINER, optionally IP:HOST:CONTAINER and /tcp or /udp.
ports = []
# The default network policy of workspaces that set none: "all", "none", or "allow"
# (only the hosts in allow, which workspaces add to).
egress = "all"
allow = []
"#
    )
}

pub fn workspace_toml(id: &WorkspaceId, podman: bool) -> String {
    let args = toml_string_array(create_args(podman));
    format!(
        r#"# silo workspace configuration. Changes take effect when the container is
# recreated: silo stop && silo

[general]
# The workspace id: the container and image are named silo-<id>. Keep it.
id = "{id}"

[features]
# Nested Podman; switch it with `silo init --podman` or `silo init --no-podman`.
podman = {podman}

[persistence]
# Paths kept in volumes, after the user file's (see silo.user.toml).
shared_paths = []
private_paths = []

[podman]
# `podman create` arguments, after the user file's.
create_args = {args}

[network]
# Port forwardings HOST:CONTAINER, after the user file's.
ports = []
# Where the container may connect: "all", "none", or "allow" (only the hosts in
# allow, through a proxy). Unset: silo.user.toml's egress, else "all".
# egress = "allow"
# allow = ["crates.io", "*.npmjs.org"]

[limits]
# CPUs, memory in MB, process ids. Zero or negative means unlimited.
cpus = 0
memory = 0
processes = 1024
"#
    )
}

pub const HOME_USER_NIX: &str = r#"# Your home-manager configuration, part of every silo workspace image.
# Options: https://nix-community.github.io/home-manager/options.xhtml
{ config, pkgs, ... }:
{
  # The login shell that `silo connect` opens.
  silo.shellCommand = "${pkgs.bash}/bin/bash --login";

  # home.packages = [ pkgs.git pkgs.ripgrep ];
}
"#;

pub fn home_nix(podman: bool) -> String {
    format!(
        r#"# This workspace's home-manager configuration, applied after home.user.nix.
# After editing, `silo status` shows the image as outdated; `silo stop && silo` rebuilds.
{{ config, pkgs, ... }}:
{{
  silo.podman.enable = {podman};

  # home.packages = [ pkgs.nodejs ];
}}
"#
    )
}

pub const DEVCONTAINER_USER_JSON: &str = "{}\n";

pub const DEVCONTAINER_JSON: &str = r#"{
  "customizations": {
    "vscode": {
      "extensions": []
    }
  }
}
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::file::{parse_user, parse_workspace};
    use crate::config::values::Limits;
    use std::path::Path;

    #[test]
    fn default_files_parse_to_the_seed_defaults() {
        let id = WorkspaceId::parse("ab3f9c12").unwrap();
        for podman in [false, true] {
            let ws = parse_workspace(&workspace_toml(&id, podman), Path::new("silo.toml")).unwrap();
            assert_eq!(ws.id, id);
            assert_eq!(ws.podman, podman);
            assert_eq!(ws.common.create_args, create_args(podman));
            assert_eq!(
                ws.limits,
                Limits {
                    cpus: 0.0,
                    memory_mb: 0,
                    processes: 1024
                }
            );
            assert!(ws.common.ports.is_empty() && ws.common.shared_paths.is_empty());
        }
        let user = UserName::parse("alice").unwrap();
        let file = parse_user(&user_toml(&user), Path::new("silo.user.toml")).unwrap();
        assert_eq!(file.user, Some(user));
        assert!(file.common.create_args.is_empty());
    }

    #[test]
    fn string_arrays() {
        assert_eq!(toml_string_array(&[]), "[]");
        assert_eq!(toml_string_array(&["a", "b"]), "[\n  \"a\",\n  \"b\"\n]");
    }
}
