#!/bin/sh
# Stand-in for podman in CLI tests: records its argv in $SILO_TEST_STATE/podman.log (arguments
# NUL-terminated, calls separated by RS) and answers like podman from a little state kept
# in $SILO_TEST_STATE. It pins command lines; it proves nothing about podman itself.
PATH=/usr/bin:/bin
state=${SILO_TEST_STATE:?}
{ for arg; do printf '%s\0' "$arg"; done; printf '\036'; } >>"$state/podman.log"
for last; do :; done
escape() { printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g'; }
# A container as inspect shows it: a running one has pid 1, a process that exists.
container_json() {
    running=false status=exited pid=0
    if [ -f "$state/container-$1.running" ]; then running=true status=running pid=1; fi
    printf '{"State":{"Status":"%s","Running":%s,"Pid":%s},"Config":{"Labels":{"io.silo.config":"%s"}}}' \
        "$status" "$running" "$pid" "$(escape "$(cat "$state/container-$1")")"
}

case "$1 $2" in
"--version "*)
    echo "podman version ${FAKE_PODMAN_VERSION:-5.4.2}"
    ;;
"image inspect")
    if [ "$3" = --format ]; then
        # The Nix runner's image: those in $state/images exist (pulled or given).
        if grep -qxF "$5" "$state/images" 2>/dev/null; then
            echo "sha256:$(printf '%s' "$5" | cksum | cut -d' ' -f1)"
        else
            echo "Error: $5: image not known" >&2
            exit 125
        fi
    elif [ -f "$state/image" ]; then cat "$state/image"; else
        echo '[]'
        echo "Error: inspecting object: $3: image not known" >&2
        exit 125
    fi
    ;;
"container inspect")
    if [ -f "$state/container-$3" ]; then
        printf '[%s]\n' "$(container_json "$3")"
    else
        echo '[]'
        echo "Error: inspecting object: no such container $3" >&2
        exit 125
    fi
    ;;
"inspect "*)
    # The container and the image together, as `podman inspect NAME...` prints them.
    shift
    status=0 sep=
    printf '['
    for name; do
        if [ -f "$state/container-$name" ]; then
            printf '%s%s' "$sep" "$(container_json "$name")"
        elif [ -f "$state/image" ] && [ "${name#localhost/}" != "$name" ]; then
            printf '%s%s' "$sep" "$(cat "$state/image" | sed 's/^\[//; s/\]$//')"
        else
            echo "Error: inspecting object: no such object: \"$name\"" >&2
            status=125
            continue
        fi
        sep=,
    done
    echo ']'
    exit $status
    ;;
"load --input")
    fingerprint=$(cat "$3") id=$(cat "$3.id")
    printf '[{"Id":"img-%s","Labels":{"io.silo.fingerprint":"%s","io.silo.id":"%s"}}]\n' \
        "$fingerprint" "$fingerprint" "$id" >"$state/image"
    echo "Loaded image: localhost/silo-$id:latest"
    ;;
"create --name")
    label= previous=
    for arg; do
        if [ "$previous" = --label ]; then
            case $arg in io.silo.config=*) label=${arg#io.silo.config=} ;; esac
        fi
        previous=$arg
    done
    printf '%s' "$label" >"$state/container-$3"
    ;;
"start "*)
    if [ -n "$FAKE_START_ERROR" ]; then echo "$FAKE_START_ERROR" >&2; exit 125; fi
    touch "$state/container-$2.running"
    ;;
"stop "*) rm -f "$state/container-$last.running" ;;
"rm "*)
    # `rm --force --time N NAME` names what it removed; a missing container is fine.
    if [ -f "$state/container-$last" ]; then
        rm -f "$state/container-$last" "$state/container-$last.running"
        echo "$last"
    fi
    ;;
"rmi "*) rm -f "$state/image" ;;
"exec "*)
    # The container is the first argument after `--workdir DIR`.
    container= previous=
    for arg; do
        if [ "$previous" = --workdir ]; then previous=done; continue; fi
        if [ "$previous" = done ]; then container=$arg; break; fi
        previous=$arg
    done
    if [ ! -f "$state/container-$container" ]; then
        echo "Error: no container with name or ID \"$container\" found: no such container" >&2
        exit 125
    fi
    if [ ! -f "$state/container-$container.running" ]; then
        echo "Error: can only create exec sessions on running containers: container state improper" >&2
        exit 255
    fi
    echo "fake exec"
    exit "${FAKE_EXEC_STATUS:-0}"
    ;;
"volume inspect")
    if [ "$3" = --format ]; then
        if [ -d "$state/volumes/$5" ]; then echo "$state/volumes/$5/_data"; else
            echo "Error: inspecting object: no such volume $5" >&2
            exit 125
        fi
        exit 0
    fi
    # Volumes live in $state/volumes/NAME/_data; a missing one fails the whole call.
    shift 2
    status=0 sep=
    printf '['
    for name; do
        if [ -d "$state/volumes/$name" ]; then
            printf '%s{"Name":"%s","Mountpoint":"%s/volumes/%s/_data"}' "$sep" "$name" "$state" "$name"
            sep=,
        else
            echo "Error: inspecting object: no such volume $name" >&2
            status=125
        fi
    done
    echo ']'
    exit $status
    ;;
"volume create")
    mkdir -p "$state/volumes/$last/_data" && echo "$last"
    ;;
"volume rm") rm -rf "$state/volumes/$3" ;;
"pull "*)
    if [ -n "$FAKE_PULL_ERROR" ]; then echo "$FAKE_PULL_ERROR" >&2; exit 125; fi
    echo "Trying to pull $2..." >&2
    echo "$2" >>"$state/images"
    ;;
"run --rm")
    # The Nix runner (`run --rm --pull=never`): its options are one word each.
    [ "$3" = --pull=never ] || exit 0
    shift 3
    while [ $# -gt 0 ]; do
        case $1 in
        -*) shift ;;
        *) break ;;
        esac
    done
    image=$1
    shift
    if ! grep -qxF "$image" "$state/images" 2>/dev/null; then
        echo "Error: $image: image not known" >&2
        exit 125
    fi
    case $1 in
    nix)
        shift
        FAKE_NIX_LOG=runner-nix FAKE_NIX_VERSION=${FAKE_RUNNER_NIX_VERSION:-2.28.4} \
            exec sh "$state/runner-nix" "$@"
        ;;
    cp) cp "$3" "$4" && cp "$3.id" "$4.id" && chmod 444 "$4" ;;
    esac
    ;;
*) ;; # run (volume setup), image prune: succeed quietly
esac
