//! Command-line definitions (clap derive). No logic lives here.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::builder::PossibleValuesParser;
use clap::{Args, Parser, Subcommand};

use crate::config::values::FLAKE_INPUTS;

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
    ///
    /// With `[network] egress = "allow"` the proxy silo-<id>-proxy, the port forwarder
    /// silo-<id>-ports and the network silo-<id>-net go too.
    Stop,

    /// Remove the workspace image (and the stopped container first). Fails if the container runs.
    ///
    /// With --all, remove the whole workspace: every container and image of its id (the
    /// devcontainer included), its private volumes (the data of private_paths), the Nix
    /// build results silo recorded for it, its approval, .devcontainer.json when silo
    /// wrote it, and .silo/ with the workspace's own files in it (silo.toml, home.nix,
    /// devcontainer.json, flake.nix, flake.lock; usually kept in git). It shows exactly
    /// what it removes and asks first; without a terminal it needs --yes. Shared volumes
    /// stay, and so do files in .silo/ that silo does not know.
    Rm(RmArgs),

    /// Print `Running` or `Stopped` for the workspace container.
    ///
    /// Notes about an outdated image or container, unapproved settings, dangerous
    /// create_args and limits that cannot be applied go to stderr. Exit status: 0 when
    /// the container runs, 3 when it is stopped or missing, 1 on an error.
    /// --json also shows the network policy in force: egress, allow, and the state of
    /// the proxy and the port forwarder.
    Status(StatusArgs),

    /// Approve the workspace's settings, so that silo applies them.
    ///
    /// silo applies what .silo/ says (create_args, ports, persisted paths, limits,
    /// [features], [nix.inputs], [network] egress and allow, and for a workspace it did
    /// not create itself, home.nix and devcontainer.json) only as you created it with `silo init` or approved it: a
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

    /// List every silo workspace on this machine (your user's Podman), from Podman's labels.
    ///
    /// One line per workspace: its id, its container (running, stopped, missing), its
    /// image (up to date, outdated, missing, or unknown when the workspace's files cannot
    /// be read) and size, how many private volumes it has, when it was last used, and its
    /// directory, marked (gone) when it no longer exists and (no longer this workspace)
    /// when it no longer holds .silo/silo.toml with that id.
    List(ListArgs),

    /// Remove what workspaces that no longer exist left behind.
    ///
    /// For each workspace whose directory is gone, or no longer holds .silo/silo.toml with
    /// its id: its containers (unless running), images and private volumes. For every
    /// workspace: images a rebuild replaced that no container uses, and the Nix build
    /// results (image archives) silo recorded that no current image needs. A workspace
    /// whose directory exists, or that silo cannot tell about, is never touched; shared
    /// volumes stay. Shows what it removes and asks first; without a terminal it needs
    /// --yes. A workspace you moved or renamed and have not opened since looks gone: run
    /// `silo` in its new place first.
    Gc(GcArgs),

    /// Check that Podman, Nix and the configuration are ready for silo.
    ///
    /// One line per check (ok, warning or problem) on stdout, each problem with the
    /// command that fixes it. Exits 0 when nothing is a problem, 1 otherwise.
    Doctor(DoctorArgs),

    /// Manage the user-wide files.
    #[command(subcommand)]
    User(UserCommand),

    /// Generate .devcontainer.json for VS Code, or manage the devcontainer silo-<id>-dev.
    Devcontainer(DevcontainerArgs),

    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    ///
    /// They complete commands, options, the shells here, the inputs of `silo update`
    /// and the commands of `silo help`. Install, e.g. for bash:
    /// silo completions bash > ~/.local/share/bash-completion/completions/silo
    Completions(CompletionsArgs),

    /// Print silo's manual page (roff), or write one page per command into a directory.
    ///
    /// Install: silo man --dir ~/.local/share/man/man1 (then `man silo`, `man silo-build`).
    Man(ManArgs),

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
    /// Print a JSON object: container and image state, id, ports, paths, trust,
    /// isolation, limits, network policy.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Remove the whole workspace (see above); asks first.
    #[arg(long)]
    pub all: bool,

    /// With --all: keep the workspace's own files in .silo/ (silo.toml, home.nix,
    /// devcontainer.json, flake.nix, flake.lock, .gitignore) and its approval; remove
    /// only what silo generates again.
    #[arg(long, requires = "all")]
    pub keep_config: bool,

    /// With --all: remove without asking (needed without a terminal).
    #[arg(short, long, requires = "all")]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print a JSON object: {workspaces: [{id, workspace: {path, state}, container:
    /// {name, state}, image: {name, state, size, replaced, replaced_size}, volumes,
    /// last_used}], shared_volumes}.
    #[arg(long)]
    pub json: bool,

    /// Only workspaces whose directory is (or was) at or below DIR.
    #[arg(long, value_name = "DIR", value_hint = clap::ValueHint::DirPath)]
    pub under: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct GcArgs {
    /// Print what would be removed, and remove nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,

    /// Remove without asking (needed without a terminal).
    #[arg(short, long, conflicts_with = "dry_run")]
    pub yes: bool,

    /// Only workspaces whose directory is (or was) at or below DIR.
    #[arg(long, value_name = "DIR", value_hint = clap::ValueHint::DirPath)]
    pub under: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Print a JSON array: [{check, status, detail, fix}], status ok, warning or problem.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write silo.1 and one page per command (silo-build.1, ...) into DIR instead.
    #[arg(long, value_name = "DIR", value_hint = clap::ValueHint::DirPath)]
    pub dir: Option<PathBuf>,
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
    #[arg(value_name = "INPUT", value_parser = PossibleValuesParser::new(FLAKE_INPUTS))]
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
    #[arg(value_parser = PossibleValuesParser::new(HELP_TOPICS), hide_possible_values = true)]
    pub command: Vec<String>,
}

/// The words `silo help` takes, for completion: every command and subcommand name (a
/// test keeps the list in step with the commands).
const HELP_TOPICS: [&str; 20] = [
    "init",
    "build",
    "start",
    "volume",
    "connect",
    "exec",
    "stop",
    "rm",
    "status",
    "trust",
    "update",
    "list",
    "gc",
    "doctor",
    "user",
    "devcontainer",
    "completions",
    "man",
    "help",
    // `volume setup`; the other subcommands share their names with commands.
    "setup",
];

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
    fn help_topics_are_the_command_names() {
        fn names(cmd: &clap::Command, out: &mut std::collections::BTreeSet<String>) {
            for sub in cmd.get_subcommands() {
                out.insert(sub.get_name().to_owned());
                names(sub, out);
            }
        }
        let mut expected = std::collections::BTreeSet::new();
        names(&Cli::command(), &mut expected);
        let topics: std::collections::BTreeSet<String> =
            HELP_TOPICS.iter().map(|t| t.to_string()).collect();
        assert_eq!(topics, expected);
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
