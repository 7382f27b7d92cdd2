# The pinned Fedora base image of every silo workspace image.
#
# The pins live in ./fedora.json, one entry per Nix system:
#   { "<system>": { imageName, imageDigest, hash, finalImageName,
#                   finalImageTag, os, arch } }
# Refresh them (per architecture) with:
#   nix run nixpkgs#nix-prefetch-docker -- --image-name fedora --image-tag 43 --arch amd64 --os linux
#   nix run nixpkgs#nix-prefetch-docker -- --image-name fedora --image-tag 43 --arch arm64 --os linux
# and copy imageDigest / hash from its output into fedora.json.
{ dockerTools, system }:
let
  pins = builtins.fromJSON (builtins.readFile ./fedora.json);
  pin =
    pins.${system} or (throw ''
      silo: no Fedora base image is pinned for system '${system}' (nix/fedora.json
      has: ${builtins.concatStringsSep ", " (builtins.attrNames pins)}).
      Set "system" in .silo/settings.json to one of those.
    '');
  # lib.fakeHash: a pin whose image digest is known but whose archive hash could not
  # be computed yet (no registry was reachable where it was written).
  placeholder = "sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
  checked =
    if pin.hash == placeholder then
      throw ''
        silo: the Fedora base image for ${system} has no verified hash yet in silo's
        nix/fedora.json. Compute it on a machine that reaches the registry with
          nix run nixpkgs#nix-prefetch-docker -- --image-name ${pin.imageName} --image-tag ${pin.finalImageTag} --image-digest ${pin.imageDigest} --arch ${pin.arch} --os ${pin.os}
        and put the printed hash into nix/fedora.json of silo's source.
      ''
    else
      pin;
in
dockerTools.pullImage {
  inherit (checked)
    imageName
    imageDigest
    hash
    finalImageName
    finalImageTag
    os
    arch
    ;
}
// {
  # For the image's org.opencontainers.image.base.name label.
  baseName = "${pin.imageName}@${pin.imageDigest}";
}
