#!/bin/sh
# Stand-in for nix in CLI tests: records its argv in $SILO_TEST_STATE/nix.log like the podman
# stand-in (runner-nix.log when the stand-in podman runs it as the Nix runner's); `build`
# writes a fake image archive, named like a store path, that carries the fingerprint silo
# rendered into settings.json, so the fake `podman load` can label the image with it.
PATH=/usr/bin:/bin
state=${SILO_TEST_STATE:?}
{ for arg; do printf '%s\0' "$arg"; done; printf '\036'; } >>"$state/${FAKE_NIX_LOG:-nix}.log"
if [ "$1" = --version ]; then
    echo "nix (Nix) ${FAKE_NIX_VERSION:-2.26.3}"
    exit 0
fi
case " $* " in
*" store info "* | *" store ping "*)
    if [ -n "$FAKE_NIX_STORE_ERROR" ]; then
        printf '%s\n' "$FAKE_NIX_STORE_ERROR" >&2
        exit 1
    fi
    echo "Store URL: daemon"
    exit 0
    ;;
esac
if [ -n "$FAKE_NIX_ERROR" ]; then
    printf '%s\n' "$FAKE_NIX_ERROR" >&2
    exit 1
fi
for last; do :; done
# Percent-decodes a path: URL's path.
decode() {
    printf '%s' "$1" | LC_ALL=C awk '{
        hex = "0123456789ABCDEF"; out = ""
        for (i = 1; i <= length($0); i++) {
            c = substr($0, i, 1)
            if (c == "%") {
                out = out sprintf("%c", (index(hex, substr($0, i + 1, 1)) - 1) * 16 + index(hex, substr($0, i + 2, 1)) - 1)
                i += 2
            } else out = out c
        }
        printf "%s", out
    }'
}
case " $* " in
*" build "*)
    dir=${last#path:} dir=${dir%#*} package=${last##*#}
    dir=$(decode "$dir")
    field() { sed -n "s/.*\"$1\": \"\\(.*\\)\".*/\\1/p" "$dir/settings.json"; }
    mkdir -p "$state/store"
    id=$(field id | tr -d '\n')
    case $package in
    proxy)
        fingerprint=$(field proxyFingerprint | tr -d '\n')
        out="$state/store/$fingerprint$fingerprint-silo-$id-proxy.tar"
        # The fake podman load tells the proxy's image by this mark.
        printf 'proxy:%s' "$fingerprint" >"$out"
        ;;
    *)
        fingerprint=$(field fingerprint | tr -d '\n')
        out="$state/store/$fingerprint$fingerprint-silo-$id.tar"
        ;;
    esac
    [ -f "$out" ] || printf '%s' "$fingerprint" >"$out"
    printf '%s' "$id" >"$out.id"
    echo "building '/nix/store/fake-$package.drv'..." >&2
    printf '[{"drvPath":"/nix/store/fake-%s.drv","outputs":{"out":"%s"}}]\n' "$package" "$out"
    ;;
*" flake "*)
    dir=${last#path:} lock=
    dir=$(decode "$dir")
    previous=
    for arg; do
        if [ "$previous" = --output-lock-file ]; then lock=$arg; fi
        previous=$arg
    done
    if [ -n "$lock" ]; then cp "$dir/flake.lock" "$lock"; else lock=$dir/flake.lock; fi
    sed -i 's/"rev": "[0-9a-f]*"/"rev": "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567"/' "$lock"
    if [ -n "$FAKE_NIX_BAD_LOCK" ]; then echo '{"nodes": 1}' >"$lock"; fi
    ;;
*" store delete "*)
    if [ -n "$FAKE_NIX_ALIVE" ]; then
        echo "error: Cannot delete path '$last' since it is still alive. To find out why, use: nix-store --query --roots" >&2
        exit 1
    fi
    rm -f "$last" "$last.id"
    echo "1 store paths deleted, 0.00 MiB freed" >&2
    ;;
*" show-config "* | *" config show "*) printf 'sandbox = %s\nsandbox-fallback = true\n' "${FAKE_NIX_SANDBOX:-true}" ;;
*" eval "*) printf ok ;;
esac
