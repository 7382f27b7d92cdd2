//! silo: per-workspace development containers built with Nix and home-manager, run with Podman.

mod app;
mod built;
mod catalog;
mod cli;
mod config;
mod container;
mod devcontainer;
mod doctor;
mod errors;
mod fingerprint;
mod flake;
#[cfg(test)]
mod fuzz;
mod gc;
mod home_dirs;
mod home_nix;
mod host;
mod image;
mod init;
mod inventory;
mod jsonc;
mod lifecycle;
mod list;
mod lock;
mod man;
mod mapping;
mod migrate;
mod network;
mod nix;
mod nix_log;
mod nix_runner;
mod podman;
mod progress;
mod prompt;
mod proxy;
mod remove;
mod risk;
mod runner;
mod safe_fs;
mod scratch;
mod seccomp;
mod session;
mod sidecar;
mod state;
mod status;
mod trust;
mod volume;
mod workspace;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match app::run(cli) {
        Ok(code) => code,
        Err(err) => {
            // What failed, each cause on its own line, then the advice.
            eprint!("{}", errors::render(&err));
            if err
                .chain()
                .any(|e| e.downcast_ref::<app::UsageError>().is_some())
            {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
