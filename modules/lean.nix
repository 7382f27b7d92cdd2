# What the image leaves out by default: parts of home-manager's default
# configuration that a desktop session needs and a development container
# does not. Everything is set with `mkDefault`, so a home.nix turns any of it
# back on, e.g. `manual.manpages.enable = true;`.
#
# Each setting is guarded by the option's existence, so the module also
# evaluates with a home-manager that lacks (or has renamed) one of them; the
# real-nixpkgs check (tests/real_nixpkgs.rs) proves they take effect with
# the home-manager silo is tested with.
{
  lib,
  options,
  pkgs,
  ...
}:
{
  config = lib.mkMerge [
    # home-manager's own manual page (home-configuration.nix(5)).
    (lib.optionalAttrs (options ? manual.manpages.enable) {
      manual.manpages.enable = lib.mkDefault false;
    })

    # The user's systemd manager: the container runs none, yet activation
    # would call systemctl (pulling in systemd and sd-switch) and write units
    # for a D-Bus session and a tray. Quadlets (services.podman.containers)
    # need it back on together with a systemd inside the container.
    (lib.optionalAttrs (options ? systemd.user.enable) {
      systemd.user.enable = lib.mkDefault false;
    })

    # The MIME and desktop-entry databases of a graphical session
    # (shared-mime-info, desktop-file-utils).
    (lib.optionalAttrs (options ? xdg.mime.enable) {
      xdg.mime.enable = lib.mkDefault false;
    })

    # home-manager points LOCALE_ARCHIVE_2_27 at every glibc locale (about
    # 220 MB). The image's LANG is C.UTF-8, built into glibc; this archive
    # adds en_US.UTF-8 (nixpkgs' glibcLocalesUtf8, in the binary cache).
    # (Only `options` may decide which attributes exist: testing `pkgs` here
    # would make the configuration depend on itself.)
    (lib.optionalAttrs (options ? i18n.glibcLocales) {
      i18n.glibcLocales = lib.mkDefault (pkgs.glibcLocalesUtf8 or pkgs.glibcLocales);
    })
  ];
}
