//! silo's production Nix (nix/, modules/, flake.nix) evaluated against real nixpkgs and
//! home-manager: the 25.05 sources vendored in ../shared/vendor, with Nix 2.26 in the
//! Debian 13 chroot of ../shared/tools/debian13-chroot, offline and with
//! import-from-derivation disabled. Nothing is built: `silo build` runs with
//! `max-jobs = 0`, so it gets as far as Nix refusing to start the first build.
//!
//! The fixture end-to-end tests (tests/e2e.rs) build and run images; these prove that
//! the code users get evaluates with the real dockerTools and home-manager, and that the
//! image derivation receives what silo means. Root only (the chroot mounts); without the
//! chroot tool or the vendored sources they skip, and with SILO_E2E=1 that is a failure.

#[path = "../common/mod.rs"]
mod common;

use common::chroot;

mod drv;
mod eval;
mod flakes;
mod proxy;
mod workspace;
