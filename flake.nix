{
  description = "silo: one Nix-built development container per project";

  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";
    home-manager = {
      url = "github:nix-community/home-manager";
      inputs.nixpkgs.follows = "nixpkgs";
    };
  };

  outputs =
    {
      self,
      nixpkgs,
      home-manager,
    }:
    let
      inherit (nixpkgs) lib;

      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems = f: lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});

      siloLib = import ./nix { inherit nixpkgs home-manager; };

      cargo = (lib.importTOML ./Cargo.toml).package;

      # Cargo refuses to build with a rustc older than rust-version, but only
      # after the crates are fetched; say it while evaluating, so that the
      # package stays evaluable (and checked in CI) with an older nixpkgs.
      checkRustc =
        pkgs:
        lib.warnIf (lib.versionOlder pkgs.rustc.version cargo.rust-version) ''
          silo needs rustc ${cargo.rust-version} or newer (rust-version in Cargo.toml), but this nixpkgs has ${pkgs.rustc.version}, so building silo will fail. Build it with silo's own nixpkgs pin (do not override its nixpkgs input) or another nixpkgs with rustc ${cargo.rust-version} or newer (nixos-25.11 or later).
        '';
    in
    {
      packages = forAllSystems (pkgs: {
        silo = checkRustc pkgs (
          pkgs.rustPlatform.buildRustPackage {
            pname = "silo";
            inherit (cargo) version;
            # The binary embeds nix/ and modules/ (build.rs) and flake.lock, the pins new
            # workspaces start from.
            src = lib.fileset.toSource {
              root = ./.;
              fileset = lib.fileset.unions [
                ./Cargo.toml
                ./Cargo.lock
                ./build.rs
                ./flake.lock
                ./src
                ./nix
                ./modules
              ];
            };
            cargoLock.lockFile = ./Cargo.lock;
            # The test suite needs podman and nix, which the build sandbox lacks;
            # run `cargo test` outside Nix instead.
            doCheck = false;
            meta = {
              description = "One Nix-built development container per project";
              mainProgram = "silo";
              platforms = lib.platforms.linux;
            };
          }
        );
        default = self.packages.${pkgs.stdenv.hostPlatform.system}.silo;
      });

      apps = forAllSystems (
        pkgs:
        let
          app = {
            type = "app";
            program = lib.getExe self.packages.${pkgs.stdenv.hostPlatform.system}.silo;
            meta.description = "Run silo, the per-project development container manager";
          };
        in
        {
          silo = app;
          default = app;
        }
      );

      homeModules.default = import ./modules;
      homeManagerModules = self.homeModules;

      lib = {
        inherit (siloLib) mkWorkspace;
      };

      # nixfmt (RFC 166 style) through treefmt, so that `nix fmt` without
      # arguments formats the tree. (`pkgs.nixfmt` is the old, classic nixfmt
      # in nixpkgs 25.05, with a rename warning.)
      formatter = forAllSystems (pkgs: pkgs.nixfmt-tree);
    };
}
