# The login shell of `silo connect`, what home-manager needs to manage itself
# inside the container (`home-manager switch --flake ...`), and the default
# home.stateVersion.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  cfg = config.silo;

  # The newest home.stateVersion whose defaults silo has been checked with.
  # home.stateVersion is an enum of the releases a home-manager knows, so the
  # default follows the home-manager in use (25.05 accepts nothing newer than
  # "25.05") and stops at this cap on newer ones. A home.nix that sets its own
  # value wins. On Linux the defaults of 25.05 and 25.11 are the same (at the
  # pinned home-manager only Darwin settings depend on 25.11); 26.05 moves
  # zsh's and docker's files under XDG directories.
  testedStateVersion = "25.11";
  inherit (config.home.version) release;
  stateVersion =
    if builtins.compareVersions release testedStateVersion < 0 then release else testedStateVersion;

  # A stable name for the login shell: the image's `enter` script runs
  # `silo-shell` from the home-manager profile, so changing the shell is a
  # `home-manager switch` away and needs no new image.
  siloShell = pkgs.writeShellScriptBin "silo-shell" ''
    exec ${cfg.shellCommand} "$@"
  '';
in
{
  options.silo = {
    shellCommand = lib.mkOption {
      type = lib.types.str;
      default = "${pkgs.bash}/bin/bash --login";
      defaultText = lib.literalExpression ''"''${pkgs.bash}/bin/bash --login"'';
      example = lib.literalExpression ''"''${pkgs.zsh}/bin/zsh --login"'';
      description = ''
        Command line of the login shell that {command}`silo connect` starts
        (as the executable {command}`silo-shell`). It is pasted into a shell
        script after `exec`, so quote arguments as in a shell.
      '';
    };
  };

  config = {
    home.packages = [ siloShell ];

    # Activation finds nix-env / `nix profile` through this package; the image
    # has no Nix on PATH outside the store paths it names.
    nix.package = lib.mkDefault pkgs.nix;

    # Puts the `home-manager` command in the profile so that
    # `home-manager switch --flake` works inside the container.
    programs.home-manager.enable = lib.mkDefault true;

    home.stateVersion = lib.mkDefault stateVersion;
  };
}
