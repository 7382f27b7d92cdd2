#!/bin/sh
# make-runner-image.sh CHROOT OUT.tar: a small root file system for a test Nix runner
# image (`podman import`), cut out of a Debian 13 chroot built by
# ../shared/tools/debian13-chroot: Nix 2.26 and what the fixture builders run (sh, GNU
# coreutils, tar, sed, grep, gzip, fakeroot, /usr/bin/busybox). About 80 MB. The
# chroot must have fakeroot installed; nothing in it is changed.
set -eu
root=$1 out=$2
pkgs="nix-bin fakeroot busybox-static coreutils tar sed grep gzip dash bash findutils diffutils mawk base-files"
# The Depends/Pre-Depends closure (of each alternative, the installed one), without Perl
# (nix-bin needs it only for nix-channel's helpers) and the PAM and passwd stack.
chroot "$root" sh -c '
  todo="$*" seen=" "
  while [ -n "$todo" ]; do
    next=
    for p in $todo; do
      case $seen in *" $p "*) continue ;; esac
      seen="$seen$p "
      for alt in $(dpkg-query -Wf "\${Pre-Depends},\${Depends}" "$p" | sed "s/([^)]*)//g; s/:any//g; s/ //g" | tr , " "); do
        for a in $(echo "$alt" | tr "|" " "); do
          if dpkg-query -Wf "\${Status}" "$a" 2>/dev/null | grep -q "ok installed"; then next="$next $a"; break; fi
        done
      done
    done
    todo=$next
  done
  for p in $seen; do
    case $p in perl*|libperl*|lib*-perl|passwd|libpam*|libsemanage*|libsepol*|debconf|libdebconfclient*|login.defs|libaudit*|libcap-ng*|libdb5*|libgdbm*) continue ;; esac
    dpkg -L "$p"
  done' sh $pkgs |
  grep -v -E '^/usr/share/(doc|man|info|locale|lintian|bash-completion|fish|zsh|bug)(/|$)' >"$out.list"
# Links and files no package lists: the merged-/usr links, the alternatives of awk and
# fakeroot, and getopt (util-linux is Essential, so nothing depends on it; fakeroot runs it).
printf '%s\n' /bin /lib /lib64 /sbin /etc/passwd /etc/group /etc/nsswitch.conf /etc/ld.so.cache \
  /etc/alternatives /etc/alternatives/awk /usr/bin/awk /etc/alternatives/fakeroot /usr/bin/fakeroot \
  /usr/bin/getopt >>"$out.list"
sed 's|^/||' "$out.list" | grep -v -e '^$' -e '^\.$' | sort -u >"$out.files"
stage=$out.stage
rm -rf "$stage"
mkdir -p "$stage"
tar -C "$root" --no-recursion -cf - -T "$out.files" | tar -C "$stage" -xf -
mkdir -p "$stage/etc/nix" "$stage/tmp" "$stage/var/tmp" "$stage/root" "$stage/proc" "$stage/sys" \
  "$stage/dev" "$stage/run" "$stage/nix"
# Others must be able to enter the root (non-root build users, rootless mappings).
chmod 755 "$stage"
chmod 1777 "$stage/tmp" "$stage/var/tmp"
chmod 700 "$stage/root"
# Single-user Nix as the container's root: no daemon, no build users, no sandbox (the
# fixture builders use the image's /bin/sh and /usr/bin), no binary cache or registry.
printf '%s\n' 'build-users-group =' 'sandbox = false' 'experimental-features = nix-command flakes' \
  'substituters =' 'flake-registry =' >"$stage/etc/nix/nix.conf"
tar -C "$stage" --numeric-owner --owner=0 --group=0 -cf "$out.tmp" .
mv "$out.tmp" "$out"
rm -rf "$stage" "$out.list" "$out.files"
