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
    in
    {
      packages = forAllSystems (pkgs: {
        silo = pkgs.rustPlatform.buildRustPackage {
          pname = "silo";
          version = (lib.importTOML ./Cargo.toml).package.version;
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
        };
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

      formatter = forAllSystems (pkgs: pkgs.nixfmt);
    };
}
