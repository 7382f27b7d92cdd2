# silo's home-manager module: the settings every silo workspace gets.
# Exported by the repository flake as `homeModules.default`; also copied into
# each workspace as `.silo/lib/modules/`.
{
  imports = [
    ./silo.nix
    ./podman.nix
    ./lean.nix
  ];
}
