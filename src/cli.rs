//! Command-line definitions (clap derive). No logic lives here.

use std::ffi::OsString;

use clap::{Args, Parser, Subcommand};

const AFTER_HELP: &str = "\
Without a command, silo runs the whole chain as needed and opens a shell:
  user init -> init -> build -> volume setup -> start -> connect
Each step is idempotent and runs the steps before it when needed.

Files:
  $XDG_CONFIG_HOME/silo/silo.user.toml        user-wide settings (fallback ~/.config/silo)
  $XDG_CONFIG_HOME/silo/home.user.nix         home-manager config baked into every workspace
  $XDG_CONFIG_HOME/silo/devcontainer.user.json  merged into every .devcontainer.json
  .silo/silo.toml                             workspace settings (id, ports, limits, ...)
  .silo/home.nix                              the workspace's home-manager config
  .silo/flake.nix, .silo/flake.lock           generated flake and its pinned inputs

Run `silo help` for the reference of every command.";

/// Per-workspace development containers, built with Nix and home-manager, run with Podman.
#[derive(Debug, Parser)]
#[command(name = "silo", version, about, after_help = AFTER_HELP, disable_help_subcommand = true)]
pub struct Cli {
    /// Print every external command (podman, nix) before it runs.
    #[arg(short, long, global = true)]
    pub verbose: bool,

    /// Stop and remove the container when the shell exits (only without a command).
    #[arg(long)]
    pub stop: bool,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the workspace files .silo/silo.toml and .silo/home.nix where missing.
    ///
    /// Runs `silo user init` first. On a workspace that already exists, --podman and
    /// --no-podman switch nested Podman on or off: `silo.podman.enable` in .silo/home.nix
    /// and `[features].podman` in .silo/silo.toml are changed in place, keeping the rest
    /// of both files as it was.
    Init(InitArgs),

    /// Build the workspace image with Nix and load it into Podman.
    ///
    /// Renders the workspace flake in .silo/ (flake.nix, settings.json, lib/), runs
    /// `nix build`, loads the image as localhost/silo-<id> and removes the image it
    /// replaced. Skipped when the image exists and is up to date: silo records a
    /// fingerprint of everything the image is built from (both home.nix files, the
    /// flake, flake.lock, silo's version) on the image.
    Build(BuildArgs),

    /// Create and start the workspace container (builds and sets up volumes first if needed).
    ///
    /// Does nothing when the container is already running.
    Start,

    /// Manage the volumes of the persisted paths.
    #[command(subcommand)]
    Volume(VolumeCommand),

    /// Open an interactive login shell in the running workspace container.
    ///
    /// Requires the container to exist and run. Exits with the shell's exit status.
    Connect,

    /// Run one command in the running workspace container.
    ///
    /// Runs in the workspace directory, with a TTY only when stdin and stdout are
    /// terminals; stdout, stderr and the exit status are passed through.
    /// Example: silo exec -- cargo test
    Exec(ExecArgs),

    /// Stop and remove the workspace container. Data in the workspace and the volumes stays.
    Stop,

    /// Remove the workspace image (and the stopped container first). Fails if the container runs.
    Rm,

    /// Print `Running` or `Stopped` for the workspace container.
    ///
    /// Notes about an outdated image or container, unapproved settings, dangerous
    /// create_args and limits that cannot be applied go to stderr. Exit status: 0 when
    /// the container runs, 3 when it is stopped or missing, 1 on an error.
    Status(StatusArgs),

    /// Approve the workspace's settings, so that silo applies them.
    ///
    /// silo applies what .silo/ says (create_args, ports, persisted paths, limits,
    /// [features], [nix.inputs], and for a workspace it did not create itself, home.nix
    /// and devcontainer.json) only as you created it with `silo init` or approved it: a
    /// cloned or copied workspace, one owned by another user, and any later change of
    /// those settings wait for your approval. This prints what it approves and what
    /// changed since the last approval, names dangerous create_args, and records the
    /// approval in $XDG_CONFIG_HOME/silo/trusted/ (never in the workspace). On a
    /// terminal, `silo` and `silo start` ask instead.
    Trust(TrustArgs),

    /// Update the workspace flake's pinned inputs (all, or the named ones) and show what changed.
    ///
    /// INPUT is `nixpkgs` or `home-manager`. The next `silo build` then rebuilds the image.
    Update(UpdateArgs),

    /// Manage the user-wide files.
    #[command(subcommand)]
    User(UserCommand),

    /// Generate .devcontainer.json for VS Code, or manage the devcontainer silo-<id>-dev.
    Devcontainer(DevcontainerArgs),

    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(CompletionsArgs),

    /// Show the full command reference, or the help of one command.
    Help(HelpArgs),
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Enable Podman inside the container.
    #[arg(long, conflicts_with = "no_podman")]
    pub podman: bool,

    /// Disable Podman inside the container.
    #[arg(long)]
    pub no_podman: bool,
}

impl InitArgs {
    /// The requested nested-Podman setting, if either flag was given.
    pub fn podman(&self) -> Option<bool> {
        match (self.podman, self.no_podman) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        }
    }
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Rebuild even if the image is up to date. Aborts if the workspace container exists.
    #[arg(long)]
    pub rebuild: bool,

    /// Do not trust cached results of earlier builds: re-evaluate without Nix's
    /// evaluation cache and re-fetch the flake inputs (`--option eval-cache false
    /// --refresh`). Store paths that were already built are reused, as their content is
    /// fixed by their inputs.
    #[arg(long)]
    pub no_cache: bool,

    /// When evaluation fails, print Nix's whole trace (`nix build --show-trace`), not
    /// only its last steps.
    #[arg(long)]
    pub show_trace: bool,
}

#[derive(Debug, Subcommand)]
pub enum VolumeCommand {
    /// Create the volumes of the configured shared and private paths.
    ///
    /// Each persisted path has a named volume of its own (silo-shared-<path>-<hash> or
    /// silo-<id>-<path>-<hash>); a persisted file is created in its volume, owned by
    /// the container user. Data of these paths in the old single volume `silo` is moved
    /// into them (in a short-lived container of the workspace image). Safe to re-run.
    Setup,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The command and its arguments.
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    pub command: Vec<OsString>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print a JSON object: container and image state, id, ports, paths.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct TrustArgs {
    /// Forget the approval: silo asks (or refuses) again before applying the settings.
    #[arg(long)]
    pub revoke: bool,
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// The inputs to update (default: all).
    #[arg(value_name = "INPUT")]
    pub inputs: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create home.user.nix, silo.user.toml and devcontainer.user.json where missing.
    Init,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct DevcontainerArgs {
    /// Replace an existing .devcontainer.json.
    #[arg(long)]
    pub update: bool,

    #[command(subcommand)]
    pub command: Option<DevcontainerCommand>,
}

#[derive(Debug, Subcommand)]
pub enum DevcontainerCommand {
    /// Open a login shell in the running devcontainer silo-<id>-dev.
    Connect,
    /// Stop and remove the devcontainer silo-<id>-dev.
    Stop,
    /// Print `Running` or `Stopped` for the devcontainer silo-<id>-dev.
    Status,
}

#[derive(Debug, Args)]
pub struct HelpArgs {
    /// The command to show, e.g. `build` or `devcontainer connect`.
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to generate completions for.
    pub shell: clap_complete::Shell,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn podman_flags_conflict() {
        let err = Cli::try_parse_from(["silo", "init", "--podman", "--no-podman"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
    }

    #[test]
    fn exec_takes_everything_after_the_separator() {
        let cli = Cli::try_parse_from(["silo", "exec", "--", "ls", "-la", "--color"]).unwrap();
        match cli.command {
            Some(Command::Exec(args)) => assert_eq!(args.command, ["ls", "-la", "--color"]),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn devcontainer_update_conflicts_with_subcommands() {
        assert!(Cli::try_parse_from(["silo", "devcontainer", "--update", "stop"]).is_err());
        assert!(Cli::try_parse_from(["silo", "devcontainer", "--update"]).is_ok());
    }
}
