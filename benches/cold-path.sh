#!/usr/bin/env bash
# The cost of silo's commands against the podman calls they stand for, side by side in
# one run, as medians and ratios (the target is a ratio of at most 1.2 each):
#
#   silo status                       / podman inspect <container>
#   silo start (container stopped)    / podman start <container>
#   silo stop                         / podman stop + podman rm
#   silo exec -- true                 / podman exec <container> true
#   silo list with 1, 10, 30 workspaces (when this silo has `list`): growth per workspace
#
#   benches/cold-path.sh [RUNS]     (default 15; list: 5)
#
# Builds throw-away workspaces with the offline test fixtures, like the end-to-end
# tests: needs nix, podman, busybox-static and fakeroot, and a built silo (cargo build
# --release). Its volumes and containers use their own name prefix and are removed.
set -euo pipefail
runs=${1:-15}
repo=$(cd "$(dirname "$0")/.." && pwd)
silo=$repo/target/release/silo
[[ -x $silo ]] || silo=$repo/target/debug/silo
[[ -x $silo ]] || { echo "build silo first: cargo build --release" >&2; exit 1; }

dir=$(mktemp -d)
export XDG_CONFIG_HOME=$dir/config XDG_STATE_HOME=$dir/state SILO_VOLUME_PREFIX=silobench
[[ ${USER:-root} == root ]] && export USER=bench
workspaces=()
cleanup() {
  for ws in "${workspaces[@]}"; do
    (cd "$ws" && "$silo" stop >/dev/null 2>&1; "$silo" rm >/dev/null 2>&1) || true
  done
  rm -rf "$dir"
}
trap cleanup EXIT

"$silo" user init 2>/dev/null
# The host's Nix (Debian 12's 2.8 builds the fixtures, though `auto` would pass it over).
printf '\n[nix]\nrunner = "host"\n\n[nix.inputs]\nnixpkgs = "path:%s/tests/fixtures/nixpkgs"\nhome-manager = "path:%s/tests/fixtures/home-manager"\n' \
  "$repo" "$repo" >>"$XDG_CONFIG_HOME/silo/silo.user.toml"

# A started workspace; prints its container name.
new_workspace() {
  local ws=$dir/ws/$1
  mkdir -p "$ws"
  workspaces+=("$ws")
  (cd "$ws" && "$silo" start >/dev/null 2>&1)
  echo "silo-$(sed -n 's/^id = "\(.*\)"/\1/p' "$ws/.silo/silo.toml")"
}

# median_ms SETUP COMMAND: the median of RUNS timings of COMMAND, each after SETUP
# (untimed), in milliseconds.
median_ms() {
  local setup=$1 command=$2 times=() start end
  for _ in $(seq "$runs"); do
    eval "$setup" >/dev/null 2>&1 || true
    start=$(date +%s%N)
    eval "$command" >/dev/null 2>&1
    end=$(date +%s%N)
    times+=($(((end - start) / 1000)))
  done
  printf '%s\n' "${times[@]}" | sort -n | awk '{ t[NR] = $1 } END { printf "%.1f", t[int((NR + 1) / 2)] / 1000 }'
}

row() {
  awk -v name="$1" -v s="$2" -v p="$3" -v base="$4" \
    'BEGIN { printf "%-34s %7.1f ms   %-26s %7.1f ms   ratio %.2f\n", name, s, base, p, s / p }'
}

container=$(new_workspace main)
cd "$dir/ws/main"
"$silo" exec -- true >/dev/null
echo "silo $("$silo" --version | cut -d' ' -f2), $(podman --version), medians of $runs runs"

s=$(median_ms : "$silo status")
p=$(median_ms : "podman inspect $container")
row "silo status" "$s" "$p" "podman inspect"

s=$(median_ms "podman stop -t 0 $container" "$silo start")
p=$(median_ms "podman stop -t 0 $container" "podman start $container")
row "silo start (stopped)" "$s" "$p" "podman start"

s=$(median_ms "$silo start" "$silo stop")
p=$(median_ms "$silo start" "podman stop $container && podman rm $container")
row "silo stop" "$s" "$p" "podman stop + podman rm"

"$silo" start >/dev/null 2>&1
"$silo" exec -- true >/dev/null
s=$(median_ms : "$silo exec -- true")
p=$(median_ms : "podman exec $container true")
row "silo exec -- true" "$s" "$p" "podman exec"

if "$silo" help list >/dev/null 2>&1; then
  runs=5
  declare -A listed
  count=1
  for target in 1 10 30; do
    while ((count < target)); do
      new_workspace "extra$count" >/dev/null
      count=$((count + 1))
    done
    listed[$target]=$(median_ms : "$silo list")
    printf '%-34s %7.1f ms\n' "silo list, $target workspaces" "${listed[$target]}"
  done
  awk -v a="${listed[1]}" -v b="${listed[30]}" \
    'BEGIN { printf "silo list grows by %.2f ms per workspace (1 -> 30)\n", (b - a) / 29 }'
fi
