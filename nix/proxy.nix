# The image of a workspace's network sidecars, for `[network] egress =
# "allow"`: tinyproxy, the allow-list proxy (its entrypoint), and
# silo-forward, which forwards published ports to the workspace container
# with socat. silo runs both as nobody without capabilities and mounts the
# proxy's configuration at /etc/silo-proxy.
#
# The result is an uncompressed docker-archive (`podman load -i` it),
# labelled with settings.proxyFingerprint so that silo knows when it is up
# to date without evaluating Nix.
{ pkgs, settings }:
let
  id =
    if builtins.match "[a-z0-9][a-z0-9_.-]*" settings.id != null then
      settings.id
    else
      throw "silo: settings.json: invalid id '${settings.id}'";

  socat = "${pkgs.socat}/bin/socat";

  # silo-forward ADDRESS PORT/PROTO...: each port of this container to the
  # same port of ADDRESS, until the container stops.
  forward = pkgs.writeShellScriptBin "silo-forward" ''
    target=$1
    shift
    for spec in "$@"; do
      port=''${spec%/*}
      case ''${spec#*/} in
        udp) ${socat} UDP4-RECVFROM:"$port",fork,reuseaddr UDP4-SENDTO:"$target:$port" & ;;
        *) ${socat} TCP4-LISTEN:"$port",fork,reuseaddr TCP4:"$target:$port" & ;;
      esac
    done
    wait
  '';
in
pkgs.dockerTools.buildLayeredImage {
  name = "localhost/silo-${id}-proxy";
  tag = "latest";
  compressor = "none";
  # /etc/passwd and /etc/group with nobody, /etc/nsswitch.conf for the
  # proxy's name lookups.
  contents = [
    forward
    pkgs.dockerTools.fakeNss
  ];
  config = {
    User = "65534:65534";
    Entrypoint = [
      "${pkgs.tinyproxy}/bin/tinyproxy"
      "-d"
      "-c"
      "/etc/silo-proxy/tinyproxy.conf"
    ];
    Labels = {
      "io.silo.id" = id;
      "io.silo.version" = settings.siloVersion;
      "io.silo.fingerprint" = settings.proxyFingerprint;
    };
  };
}
