# silo's Nix library: turns a workspace's settings and home-manager modules
# into a home-manager configuration and the OCI image built from it.
#
# Used by the per-workspace flake (.silo/flake.nix, from ./workspace-flake.nix)
# as `import ./lib/nix { inherit nixpkgs home-manager; }`, and by silo's own
# flake as `lib.mkWorkspace`. Relative paths only reach ../modules, which sits
# beside this directory both in the repository and in .silo/lib/.
{ nixpkgs, home-manager }:
{
  # settings: the parsed .silo/settings.json,
  #   { siloVersion, system, id, user, fingerprint, proxyFingerprint }.
  # modules: the user's home-manager modules, applied after silo's own
  #   (home.user.nix, then the project's home.nix).
  mkWorkspace =
    {
      settings,
      modules ? [ ],
    }:
    let
      pkgs = import nixpkgs {
        inherit (settings) system;
        config.allowUnfree = true;
      };

      home = home-manager.lib.homeManagerConfiguration {
        inherit pkgs;
        modules = [
          ../modules
          {
            home.username = settings.user;
            home.homeDirectory = "/home/${settings.user}";
          }
        ]
        ++ modules;
      };

      image = import ./image.nix {
        inherit pkgs home settings;
        inputs = { inherit nixpkgs home-manager; };
      };
      # The network proxy of `[network] egress = "allow"` (built only then).
      proxy = import ./proxy.nix { inherit pkgs settings; };
    in
    {
      inherit
        image
        home
        pkgs
        proxy
        ;
    };

  homeModule = ../modules;
}
