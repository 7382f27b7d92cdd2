#!/bin/sh
# Stand-in for podman in CLI tests: records its argv in $SILO_TEST_STATE/podman.log (arguments
# NUL-terminated, calls separated by RS) and answers like podman from a little state kept
# in $SILO_TEST_STATE. It pins command lines; it proves nothing about podman itself.
PATH=/usr/bin:/bin
state=${SILO_TEST_STATE:?}
{ for arg; do printf '%s\0' "$arg"; done; printf '\036'; } >>"$state/podman.log"
for last; do :; done
escape() { printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g'; }

case "$1 $2" in
"--version "*)
    echo "podman version ${FAKE_PODMAN_VERSION:-5.4.2}"
    ;;
"image inspect")
    if [ -f "$state/image" ]; then cat "$state/image"; else
        echo '[]'
        echo "Error: inspecting object: $3: image not known" >&2
        exit 125
    fi
    ;;
"container inspect")
    file="$state/container-$3"
    if [ -f "$file" ]; then
        running=false status=exited
        if [ -f "$file.running" ]; then running=true status=running; fi
        printf '[{"State":{"Status":"%s","Running":%s},"Config":{"Labels":{"io.silo.config":"%s"}}}]\n' \
            "$status" "$running" "$(escape "$(cat "$file")")"
    else
        echo '[]'
        echo "Error: inspecting object: no such container $3" >&2
        exit 125
    fi
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
"rm "*) rm -f "$state/container-$2" "$state/container-$2.running" ;;
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
*) ;; # run (volume setup), image prune: succeed quietly
esac
