#!/usr/bin/env bash
# Prints how much `silo exec -- true` costs over `podman exec <container> true` on a
# running workspace, over repeated runs, and their ratio. A third command,
# `podman exec <container> /opt/silo/bin/enter true`, separates the in-container part
# (the enter program) from silo's own work on the host, and a fourth run of
# `silo exec -- true` with podman replaced by a program that exits at once gives silo's
# own time precisely.
#
#   benches/exec-overhead.sh [RUNS]     (default 50)
#
# With hyperfine installed the figures are medians (podman exec's times vary a lot
# here); without it, means of a plain loop. Builds a throw-away workspace with the
# offline test fixtures, like the end-to-end tests, so it needs nix, podman,
# busybox-static and fakeroot, and a built silo (cargo build --release).
set -euo pipefail
runs=${1:-50}
repo=$(cd "$(dirname "$0")/.." && pwd)
silo=$repo/target/release/silo
[[ -x $silo ]] || silo=$repo/target/debug/silo
[[ -x $silo ]] || { echo "build silo first: cargo build --release" >&2; exit 1; }

dir=$(mktemp -d)
export XDG_CONFIG_HOME=$dir/config
[[ ${USER:-root} == root ]] && export USER=bench
mkdir -p "$dir/ws/bench"
cd "$dir/ws/bench"
cleanup() {
  "$silo" stop >/dev/null 2>&1 || true
  "$silo" rm >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT

"$silo" user init 2>/dev/null
# The host's Nix (Debian 12's 2.8 builds the fixtures, though `auto` would pass it over).
printf '\n[nix]\nrunner = "host"\n\n[nix.inputs]\nnixpkgs = "path:%s/tests/fixtures/nixpkgs"\nhome-manager = "path:%s/tests/fixtures/home-manager"\n' \
  "$repo" "$repo" >>"$XDG_CONFIG_HOME/silo/silo.user.toml"
"$silo" start 2>/dev/null
container=silo-$(sed -n 's/^id = "\(.*\)"/\1/p' .silo/silo.toml)
# Warm every path once (activation, page cache, silo's fast-path hint).
"$silo" exec -- true
podman exec "$container" true

commands=("podman exec $container true" "podman exec $container /opt/silo/bin/enter true" "$silo exec -- true")
echo "silo $("$silo" --version | cut -d' ' -f2), $(podman --version), $runs runs each"
if command -v hyperfine >/dev/null; then
  kind=median
  hyperfine --shell=none --warmup 3 --runs "$runs" --export-json "$dir/bench.json" "${commands[@]}" >/dev/null
  figures=$(sed -n 's/.*"median": \([0-9.e-]*\).*/\1/p' "$dir/bench.json" | tr '\n' ' ')
else
  kind=mean
  figures=
  for command in "${commands[@]}"; do
    start=$(date +%s%N)
    for _ in $(seq "$runs"); do $command >/dev/null; done
    end=$(date +%s%N)
    figures="$figures $(awk -v t=$((end - start)) -v n="$runs" 'BEGIN { print t / n / 1e9 }')"
  done
fi
read -r podman enter silo_time <<<"$figures"

# silo alone: the same fast path, with a podman that does nothing.
mkdir -p "$dir/stub"
printf '#!/bin/sh\nexit 0\n' >"$dir/stub/podman"
chmod +x "$dir/stub/podman"
own=$(PATH="$dir/stub:$PATH" bash -c '
  start=$(date +%s%N)
  for _ in $(seq '"$runs"'); do "$0" exec -- true; done
  end=$(date +%s%N)
  awk -v t=$((end - start)) -v n='"$runs"' "BEGIN { print t / n / 1e9 }"' "$silo")
awk -v p="$podman" -v e="$enter" -v s="$silo_time" -v o="$own" -v kind="$kind" 'BEGIN {
  printf "%s of podman exec <container> true:                     %6.1f ms\n", kind, p * 1000
  printf "%s of podman exec <container> /opt/silo/bin/enter true: %6.1f ms\n", kind, e * 1000
  printf "%s of silo exec -- true:                                %6.1f ms\n", kind, s * 1000
  printf "mean of silo exec -- true with a podman that exits at once:  %6.1f ms\n", o * 1000
  printf "silo exec / podman exec: %.3f (%+.1f ms)\n", s / p, (s - p) * 1000
}'
