# A flake that is not silo's: its own home-manager configuration with silo's module
# (homeModules.default), as the README shows. tests/real_nixpkgs evaluates it with its
# inputs overridden: nixpkgs and home-manager 25.05, silo from the checkout.
{
  description = "Uses silo's home-manager module in its own configuration";

  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.05";
    home-manager = {
      url = "github:nix-community/home-manager/release-25.05";
      inputs.nixpkgs.follows = "nixpkgs";
    };
    silo = {
      url = "github:OWNER/silo";
      inputs.nixpkgs.follows = "nixpkgs";
      inputs.home-manager.follows = "home-manager";
    };
  };

  outputs =
    {
      nixpkgs,
      home-manager,
      silo,
      ...
    }:
    {
      homeConfigurations.carol = home-manager.lib.homeManagerConfiguration {
        pkgs = nixpkgs.legacyPackages.x86_64-linux;
        modules = [
          silo.homeModules.default
          {
            home.username = "carol";
            home.homeDirectory = "/home/carol";
            silo.shellCommand = "fish --login";
          }
        ];
      };
    };
}
