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
in
dockerTools.pullImage {
  inherit (pin)
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
