# Nested rootless Podman inside the (rootless) silo container.
#
# Configuration follows containers/image_build's podman image (Containerfile,
# containers.conf, podman-containers.conf): the inner podman shares every
# namespace of the outer container except the user namespace it creates with
# newuidmap/newgidmap, does not manage cgroups, and stores images with
# fuse-overlayfs (overlay on overlay does not work).
#
# What the image provides when this is on (nix/image.nix):
#   - setuid-root copies of newuidmap/newgidmap in /usr/local/bin (the Nix
#     store cannot hold setuid files; see home-manager's podman-lib.nix),
#     from a static build that loads nothing from the user-owned store;
#   - /etc/subuid and /etc/subgid: <user>:1:999 and <user>:1001:64535, the IDs
#     of a 65536-wide outer mapping minus the user's own.
#
# What the OUTER container needs (silo's default create_args when
# silo.podman.enable is true):
#   --device /dev/fuse              for fuse-overlayfs
#   --security-opt label=disable    SELinux hosts: no relabelling inside
#   --userns=keep-id:uid=1000,gid=1000 (rootless hosts) so that the subuid
#                                   ranges above exist in the outer namespace
#   and NOT --cap-drop=ALL nor --security-opt no-new-privileges: the setuid
#   newuidmap/newgidmap must gain CAP_SETUID/CAP_SETGID in the container.
# Recommended: a volume on ~/.local/share/containers (the inner storage).
{
  config,
  lib,
  options,
  pkgs,
  ...
}:
let
  cfg = config.silo.podman;

  # services.podman.settings appeared in home-manager 25.05.
  hasSettings = options ? services.podman.settings;
  # The weekly auto-update timer needs a systemd user session, which the
  # container does not have.
  hasAutoUpdate = options ? services.podman.autoUpdate.enable;
in
{
  options.silo.podman = {
    enable = lib.mkOption {
      type = lib.types.bool;
      default = false;
      example = true;
      description = ''
        Whether to run rootless Podman inside the silo container. The
        container must then be created with `--device /dev/fuse` and without
        `no-new-privileges`; silo does this for you.
      '';
    };
  };

  config = lib.mkIf cfg.enable (
    lib.mkMerge [
      {
        assertions = [
          {
            assertion = hasSettings;
            message = ''
              silo.podman.enable needs home-manager's services.podman.settings
              (home-manager 25.05 or newer). Update the workspace's
              home-manager input with `silo update`.
            '';
          }
        ];

        services.podman.enable = true;

        home.sessionVariables = {
          BUILDAH_ISOLATION = "chroot";
          _CONTAINERS_USERNS_CONFIGURED = "";
        };
      }

      (lib.optionalAttrs hasAutoUpdate {
        services.podman.autoUpdate.enable = lib.mkDefault false;
      })

      (lib.optionalAttrs hasSettings {
        services.podman.settings = {
          storage.storage = {
            driver = "overlay";
            options.overlay = {
              mount_program = "${pkgs.fuse-overlayfs}/bin/fuse-overlayfs";
              mountopt = "nodev,fsync=0";
            };
          };

          containers = {
            containers = {
              netns = "host";
              userns = "host";
              ipcns = "host";
              utsns = "host";
              cgroupns = "host";
              cgroups = "disabled";
              log_driver = "k8s-file";
              volumes = [ "/proc:/proc" ];
            };
            engine = {
              cgroup_manager = "cgroupfs";
              events_logger = "file";
            };
          };

          registries.search = [
            "registry.fedoraproject.org"
            "quay.io"
            "docker.io"
          ];

          # Left empty on purpose: home-manager then installs skopeo's
          # default-policy.json (accept anything, as Fedora's own policy).
          policy = { };
        };
      })
    ]
  );
}
