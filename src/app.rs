//! Dispatch: each command line to the step of the chain that implements it.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::CommandFactory;

use crate::cli::{Cli, Command, DevcontainerCommand, UserCommand, VolumeCommand};
use crate::config::UserDir;
use crate::image::{self, BuildOptions};
use crate::init::{self, Report};
use crate::lifecycle::{self, Enter};
use crate::runner::Runner;
use crate::session::{Ctx, Open, Session, state_dir};
use crate::trust::Verdict;
use crate::workspace::Workspace;
use crate::{catalog, devcontainer, doctor, gc, list, man, remove, status};

pub fn run(cli: Cli) -> Result<ExitCode> {
    let ctx = Ctx {
        runner: Runner {
            verbose: cli.verbose,
        },
        user_dir: UserDir::from_env()?,
        cwd: std::env::current_dir().context("cannot read the current directory")?,
    };
    let failure = failure_message(cli.command.as_ref());
    dispatch(&ctx, cli).context(failure)
}

/// What failed, as the first part of the error chain.
fn failure_message(command: Option<&Command>) -> &'static str {
    match command {
        None => "cannot enter the workspace",
        Some(Command::Init(_)) => "cannot initialise the workspace",
        Some(Command::User(_)) => "cannot create the user files",
        Some(Command::Build(_)) => "cannot build the workspace image",
        Some(Command::Start) => "cannot start the workspace",
        Some(Command::Volume(_)) => "cannot set up the volume",
        Some(Command::Connect) => "cannot connect to the workspace",
        Some(Command::Exec(_)) => "cannot run the command in the workspace",
        Some(Command::Stop) => "cannot stop the workspace",
        Some(Command::Rm(args)) if args.all => "cannot remove the workspace",
        Some(Command::Rm(_)) => "cannot remove the workspace image",
        Some(Command::List(_)) => "cannot list the workspaces",
        Some(Command::Gc(_)) => "cannot clean up",
        Some(Command::Doctor(_)) => "cannot check the set-up",
        Some(Command::Man(_)) => "cannot write the manual page",
        Some(Command::Status(_)) => "cannot get the workspace status",
        Some(Command::Update(_)) => "cannot update the flake inputs",
        Some(Command::Trust(_)) => "cannot approve the workspace",
        Some(Command::Devcontainer(args)) => match args.command {
            None => "cannot generate .devcontainer.json",
            Some(DevcontainerCommand::Connect) => "cannot connect to the devcontainer",
            Some(DevcontainerCommand::Stop) => "cannot stop the devcontainer",
            Some(DevcontainerCommand::Status) => "cannot get the devcontainer status",
        },
        Some(Command::Completions(_)) => "cannot print completions",
        Some(Command::Help(_)) => "cannot print help",
    }
}

fn dispatch(ctx: &Ctx, cli: Cli) -> Result<ExitCode> {
    let open = |mode| Session::open(ctx, mode);
    let Some(command) = cli.command else {
        let s = open(Open::CreateMissing)?;
        let code = lifecycle::enter(&s, &Enter::Shell, true)?;
        if cli.stop {
            lifecycle::stop(&s)?;
        }
        return Ok(exit_code(code));
    };
    if cli.stop {
        bail!("--stop only applies to `silo` without a command");
    }
    match command {
        Command::Init(args) => {
            let ws = Workspace::locate(&ctx.cwd)?;
            init::init(&ws, &ctx.user_dir, args.podman(), Report::Everything)?;
        }
        Command::User(UserCommand::Init) => init::user_init(&ctx.user_dir, Report::Everything)?,
        Command::Build(args) => {
            let options = BuildOptions {
                rebuild: args.rebuild,
                no_cache: args.no_cache,
                show_trace: args.show_trace,
            };
            image::build_command(&open(Open::CreateMissing)?, options)?;
        }
        Command::Start => {
            let s = open(Open::CreateMissing)?;
            lifecycle::ensure_running(&s)?;
            eprintln!("{} is running", s.names.container);
        }
        Command::Volume(VolumeCommand::Setup) => {
            let s = open(Open::ExistingOnly)?;
            s.require_trust()?;
            lifecycle::volume_setup(&s, &s.record()?.mounts)?;
            eprintln!("Volume setup complete");
        }
        Command::Connect => {
            return Ok(exit_code(lifecycle::enter(
                &open(Open::ExistingOnly)?,
                &Enter::Shell,
                false,
            )?));
        }
        Command::Exec(args) => {
            let s = open(Open::ExistingOnly)?;
            return Ok(exit_code(lifecycle::enter(
                &s,
                &Enter::Command(args.command),
                false,
            )?));
        }
        Command::Stop => lifecycle::stop(&open(Open::ExistingOnly)?)?,
        Command::Rm(args) if args.all => {
            remove::all(ctx, &state_dir()?, args.keep_config, args.yes)?
        }
        Command::Rm(_) => lifecycle::remove(&open(Open::ExistingOnly)?)?,
        Command::List(args) => {
            let under = args.under.map(|d| catalog::absolute(&d, &ctx.cwd));
            list::print(
                &ctx.runner,
                &ctx.user_dir,
                &state_dir()?,
                under.as_deref(),
                args.json,
            )?
        }
        Command::Gc(args) => {
            let under = args.under.map(|d| catalog::absolute(&d, &ctx.cwd));
            gc::run(ctx, &state_dir()?, under.as_deref(), args.dry_run, args.yes)?
        }
        Command::Doctor(args) => return doctor::run(ctx, args.json),
        Command::Man(args) => man::run(args.dir.as_deref())?,
        Command::Status(args) => {
            // Like `systemctl status`: 3 when the container does not run.
            if !status::print(&open(Open::ExistingOnly)?, args.json)? {
                return Ok(ExitCode::from(3));
            }
        }
        Command::Update(args) => image::update(&open(Open::ExistingOnly)?, &args.inputs)?,
        Command::Trust(args) => trust(&open(Open::ExistingOnly)?, args.revoke)?,
        Command::Devcontainer(args) => match args.command {
            None => {
                let s = open(Open::CreateMissing)?;
                devcontainer::generate(&s, args.update)?;
            }
            Some(DevcontainerCommand::Connect) => {
                return Ok(exit_code(devcontainer::connect(&open(
                    Open::ExistingOnly,
                )?)?));
            }
            Some(DevcontainerCommand::Stop) => devcontainer::stop(&open(Open::ExistingOnly)?)?,
            Some(DevcontainerCommand::Status) => devcontainer::status(&open(Open::ExistingOnly)?)?,
        },
        Command::Completions(args) => {
            clap_complete::generate(
                args.shell,
                &mut Cli::command(),
                "silo",
                &mut std::io::stdout(),
            );
        }
        Command::Help(args) => print_help(&args.command)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// `silo trust [--revoke]`.
fn trust(s: &Session, revoke: bool) -> Result<()> {
    let (store, verdict) = s.trust_verdict()?;
    let root = s.ws.root.display();
    if revoke {
        if store.remove(&s.ws.root)? {
            eprintln!(
                "Revoked the approval of {root}; silo asks again before applying its settings."
            );
        } else {
            eprintln!("{root} was not approved.");
        }
        return Ok(());
    }
    match verdict {
        Verdict::Trusted(_) => eprintln!("{root} is approved; nothing changed since."),
        Verdict::Review(review) => {
            eprint!("{}", review.render());
            store.approve(&review)?;
            eprintln!("Approved: silo applies these settings from now on.");
        }
    }
    Ok(())
}

/// A command line silo cannot make sense of: exit status 2, as clap's own usage errors.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// An exit status from the container, as silo's own.
fn exit_code(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

/// `silo help`: every command's full help, one after the other; `silo help CMD...`: one.
fn print_help(path: &[String]) -> Result<()> {
    let mut cli = Cli::command();
    // Built, the commands know their full name (`silo build`) and the global options.
    cli.build();
    if !path.is_empty() {
        let mut cmd = &mut cli;
        for name in path {
            cmd = cmd.find_subcommand_mut(name).ok_or_else(|| {
                anyhow::Error::new(UsageError(format!(
                    "no command `{}`; `silo help` lists them all",
                    path.join(" ")
                )))
            })?;
        }
        println!("{}", cmd.render_long_help());
        return Ok(());
    }
    println!("{}", cli.render_long_help());
    let mut stack: Vec<(String, clap::Command)> = cli
        .get_subcommands()
        .map(|c| (c.get_name().to_owned(), c.clone()))
        .collect();
    stack.reverse();
    while let Some((path, mut cmd)) = stack.pop() {
        if cmd.get_name() == "help" {
            continue;
        }
        println!("\n{}\nsilo {path}\n", "=".repeat(72));
        println!("{}", cmd.render_long_help());
        for sub in cmd.get_subcommands().collect::<Vec<_>>().into_iter().rev() {
            stack.push((format!("{path} {}", sub.get_name()), sub.clone()));
        }
    }
    Ok(())
}
