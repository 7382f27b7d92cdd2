#!/bin/bash
# enter-chroot.sh ROOT CMD [ARG...]: run CMD with ROOT as the root of a new mount
# namespace. Run under `unshare --mount`. Unlike chroot(2), pivot_root leaves the
# process allowed to create user namespaces, which Podman needs for --userns and
# --uidmap. ROOT is a directory built by ../shared/tools/debian13-chroot, whose
# `run` has already mounted /proc, /sys, /dev and the bound host directories in it.
set -euo pipefail
root=$1
shift
mount --make-rprivate /
mount --rbind "$root" "$root"
cd "$root"
mkdir -p .oldroot
pivot_root . .oldroot
umount -l /.oldroot
exec /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
    PODMAN_IGNORE_CGROUPSV1_WARNING=1 "$@"
