#!/usr/bin/env bash
# Prints how long `silo list` takes with 1, 10 and 30 workspaces, beside the three podman
# listings it makes, and how much it grows per workspace (target: under 5 ms).
#
#   benches/list-scale.sh [RUNS]     (default 20)
#
# The workspaces are podman-side fixtures, not built ones: each is a directory made by
# `silo init`, an image imported from the host's static busybox and labelled like a
# workspace image (an up-to-date fingerprint is not needed: list reads the workspace's
# files either way), a created container and a private volume, all labelled for a
# temporary directory, and listed with `--under` that directory only. Everything is
# removed at the end. Needs podman and busybox-static, and a built silo
# (cargo build --release).
set -euo pipefail
runs=${1:-20}
repo=$(cd "$(dirname "$0")/.." && pwd)
silo=$repo/target/release/silo
[[ -x $silo ]] || silo=$repo/target/debug/silo
[[ -x $silo ]] || { echo "build silo first: cargo build --release" >&2; exit 1; }

dir=$(mktemp -d /tmp/silo-list-bench.XXXXXX)
export XDG_CONFIG_HOME=$dir/config XDG_STATE_HOME=$dir/state
[[ ${USER:-root} == root ]] && export USER=bench
ids=()
cleanup() {
  for id in "${ids[@]}"; do
    podman rm --force "silo-$id" >/dev/null 2>&1 || true
    podman rmi --force "localhost/silo-$id" >/dev/null 2>&1 || true
    podman volume rm --force "silobench-$id-data" >/dev/null 2>&1 || true
  done
  rm -rf "$dir"
}
trap cleanup EXIT

mkdir -p "$dir/root/bin"
cp /usr/bin/busybox "$dir/root/bin/"
ln -s busybox "$dir/root/bin/sh"
tar -C "$dir/root" -cf "$dir/bb.tar" .

add_workspace() {
  local ws=$dir/ws/w${#ids[@]}
  mkdir -p "$ws"
  (cd "$ws" && "$silo" init >/dev/null 2>&1)
  local id
  id=$(sed -n 's/^id = "\(.*\)"/\1/p' "$ws/.silo/silo.toml")
  ids+=("$id")
  podman import --quiet --change "LABEL io.silo.id=$id" --change "LABEL io.silo.fingerprint=0" \
    --change 'CMD ["/bin/sh"]' "$dir/bb.tar" "localhost/silo-$id" >/dev/null
  podman create --quiet --name "silo-$id" --label "io.silo.id=$id" \
    --label "io.silo.workspace=$ws" "localhost/silo-$id" >/dev/null
  podman volume create --label "io.silo.scope=$id" --label "io.silo.id=$id" \
    --label "io.silo.workspace=$ws" "silobench-$id-data" >/dev/null
}

# Median wall time of a command, in ms.
median_ms() {
  local times=()
  for _ in $(seq "$runs"); do
    local start end
    start=$(date +%s%N)
    "$@" >/dev/null 2>&1
    end=$(date +%s%N)
    times+=($(((end - start) / 1000)))
  done
  printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {printf "%.1f", a[int((NR+1)/2)]/1000}'
}

# A podman that answers the three listings at once from what the real one printed:
# silo's own time, without podman's.
replay() {
  mkdir -p "$dir/replay"
  podman ps --all --filter label=io.silo.id --format json >"$dir/replay/ps"
  podman images --filter label=io.silo.id --format json >"$dir/replay/images"
  podman volume ls --filter label=io.silo.scope --format json >"$dir/replay/volume"
  cat >"$dir/replay/podman" <<EOS
#!/bin/sh
exec cat "$dir/replay/\$1"
EOS
  chmod +x "$dir/replay/podman"
  PATH=$dir/replay:$PATH median_ms "$silo" list --under "$dir"
}

each_listing() {
  printf '%s/%s/%s' \
    "$(median_ms podman ps --all --filter label=io.silo.id --format json)" \
    "$(median_ms podman images --filter label=io.silo.id --format json)" \
    "$(median_ms podman volume ls --filter label=io.silo.scope --format json)"
}

podman_listings() {
  podman ps --all --filter label=io.silo.id --format json &
  podman images --filter label=io.silo.id --format json &
  podman volume ls --filter label=io.silo.scope --format json &
  wait
}

printf '%-11s %10s %19s %24s %16s\n' workspaces "silo list" "podman, 3 at once" "ps/images/volume ls" "silo's own"
declare -A list_ms own_ms
for n in 1 10 30; do
  while ((${#ids[@]} < n)); do add_workspace; done
  rows=$("$silo" list --under "$dir" | wc -l)
  ((rows == n + 1)) || { echo "silo list shows $((rows - 1)) workspaces, not $n" >&2; exit 1; }
  list_ms[$n]=$(median_ms "$silo" list --under "$dir")
  own_ms[$n]=$(replay)
  printf '%-11s %7s ms %16s ms %24s %13s ms\n' "$n" "${list_ms[$n]}" "$(median_ms podman_listings)" \
    "$(each_listing) ms" "${own_ms[$n]}"
done
awk -v a="${list_ms[1]}" -v b="${list_ms[30]}" -v c="${own_ms[1]}" -v d="${own_ms[30]}" \
  'BEGIN {printf "per workspace (1 -> 30): silo list %.2f ms, of which silo itself %.2f ms\n", (b - a) / 29, (d - c) / 29}'
