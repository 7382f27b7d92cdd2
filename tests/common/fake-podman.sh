#!/bin/sh
# Stand-in for podman in CLI tests: records its argv in $SILO_TEST_STATE/podman.log (arguments
# NUL-terminated, calls separated by RS) and answers like podman from a little state kept
# in $SILO_TEST_STATE. It pins command lines; it proves nothing about podman itself.
#
# State: image-ID (the image localhost/silo-ID, as `image inspect` prints it), replaced-FP
# (an image a rebuild replaced, untagged), container-NAME (its io.silo.config label; .id,
# .ws and .image hold its io.silo.id, io.silo.workspace and image id; .running when it
# runs), volumes/NAME/_data (and volumes/NAME/labels, its labels as JSON members).
PATH=/usr/bin:/bin
state=${SILO_TEST_STATE:?}
# silo runs its listings at the same time: one call's record is written whole.
{
    flock 9
    { for arg; do printf '%s\0' "$arg"; done; printf '\036'; } >>"$state/podman.log"
} 9>>"$state/podman.log.lock"
for last; do :; done
escape() { printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g'; }
# A container as inspect shows it: a running one has pid 1, a process that exists.
container_json() {
    running=false status=exited pid=0
    if [ -f "$state/container-$1.running" ]; then running=true status=running pid=1; fi
    printf '{"State":{"Status":"%s","Running":%s,"Pid":%s},"Config":{"Labels":{"io.silo.config":"%s"}}}' \
        "$status" "$running" "$pid" "$(escape "$(cat "$state/container-$1")")"
}
# The workspace id of an image name: localhost/silo-ID[:latest] -> ID.
image_id() { n=${1#localhost/silo-}; printf '%s' "${n%:latest}"; }
# A JSON field of a file: "Field":"value".
field() { sed -n "s/.*\"$1\":\"\\([^\"]*\\)\".*/\\1/p" "$2"; }

case "$1 $2" in
"--version "*)
    echo "podman version ${FAKE_PODMAN_VERSION:-5.4.2}"
    ;;
"info --format")
    rootless=false
    if [ "$(id -u)" != 0 ]; then rootless=true; fi
    printf '{"host":{"cgroupVersion":"v2","ociRuntime":{"name":"crun"},"security":{"rootless":%s}},"store":{"graphRoot":"%s"},"version":{"Version":"%s"}}\n' \
        "$rootless" "$state" "${FAKE_PODMAN_VERSION:-5.4.2}"
    ;;
"image inspect")
    file="$state/image-$(image_id "$3")"
    if [ "$3" = --format ]; then
        # The Nix runner's image: those in $state/images exist (pulled or given).
        if grep -qxF "$5" "$state/images" 2>/dev/null; then
            echo "sha256:$(printf '%s' "$5" | cksum | cut -d' ' -f1)"
        else
            echo "Error: $5: image not known" >&2
            exit 125
        fi
    elif [ -f "$file" ]; then cat "$file"; else
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
        image="$state/image-$(image_id "$name")"
        if [ -f "$state/container-$name" ]; then
            printf '%s%s' "$sep" "$(container_json "$name")"
        elif [ -f "$image" ] && [ "${name#localhost/}" != "$name" ]; then
            printf '%s%s' "$sep" "$(sed 's/^\[//; s/\]$//' "$image")"
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
    fingerprint=$(cat "$3") id=$(cat "$3.id") key=$(cat "$3.id")
    # The network proxy's image, localhost/silo-ID-proxy: its archive says so.
    case $fingerprint in proxy:*) fingerprint=${fingerprint#proxy:} key=$key-proxy ;; esac
    old="$state/image-$key"
    if [ -f "$old" ]; then
        previous=$(field io.silo.fingerprint "$old")
        if [ "$previous" != "$fingerprint" ]; then mv "$old" "$state/replaced-$previous"; fi
    fi
    printf '[{"Id":"img-%s","Labels":{"io.silo.fingerprint":"%s","io.silo.id":"%s"}}]\n' \
        "$fingerprint" "$fingerprint" "$id" >"$state/image-$key"
    echo "Loaded image: localhost/silo-$key:latest"
    ;;
"create --name")
    label= previous= id= ws=
    for arg; do
        if [ "$previous" = --label ]; then
            case $arg in
            io.silo.config=*) label=${arg#io.silo.config=} ;;
            io.silo.id=*) id=${arg#io.silo.id=} ;;
            io.silo.workspace=*) ws=${arg#io.silo.workspace=} ;;
            esac
        fi
        previous=$arg
    done
    printf '%s' "$label" >"$state/container-$3"
    printf '%s' "$id" >"$state/container-$3.id"
    printf '%s' "$ws" >"$state/container-$3.ws"
    field Id "$state/image-$(image_id "$last")" >"$state/container-$3.image"
    previous=
    for arg; do
        if [ "$previous" = --requires ]; then printf '%s' "$arg" >"$state/container-$3.requires"; fi
        previous=$arg
    done
    ;;
"start "*)
    if [ -n "$FAKE_START_ERROR" ]; then echo "$FAKE_START_ERROR" >&2; exit 125; fi
    touch "$state/container-$2.running"
    # What --requires starts with it.
    requires=$(cat "$state/container-$2.requires" 2>/dev/null) || true
    if [ -n "$requires" ]; then touch "$state/container-$requires.running"; fi
    ;;
"stop "*) rm -f "$state/container-$last.running" ;;
"rm "*)
    # `rm --force --time N [--depend] NAME...` names what it removed; a missing container
    # is fine. --depend also removes the containers that require one removed.
    names= depend= skip=
    shift
    for arg; do
        if [ -n "$skip" ]; then skip=; continue; fi
        case $arg in
        --time) skip=1 ;;
        --depend) depend=1 ;;
        -*) ;;
        *) names="$names $arg" ;;
        esac
    done
    if [ -n "$depend" ]; then
        more=1
        while [ -n "$more" ]; do
            more=
            for file in "$state"/container-*.requires; do
                [ -f "$file" ] || continue
                name=${file#"$state"/container-}
                name=${name%.requires}
                case " $names " in *" $name "*) continue ;; esac
                case " $names " in *" $(cat "$file") "*) names="$name $names" more=1 ;; esac
            done
        done
    fi
    for name in $names; do
        if [ -f "$state/container-$name.running" ] && [ "$1" != --force ]; then
            echo "Error: cannot remove container $name as it is running" >&2
            exit 2
        fi
    done
    for name in $names; do
        if [ -f "$state/container-$name" ]; then
            rm -f "$state/container-$name" "$state/container-$name".*
            echo "$name"
        fi
    done
    ;;
"rmi "*)
    # By name (localhost/silo-ID) or by image id (img-FINGERPRINT).
    for file in "$state/image-$(image_id "$last")" "$state"/image-* "$state"/replaced-*; do
        [ -f "$file" ] || continue
        case $last in
        localhost/*) ;;
        *) [ "$(field Id "$file")" = "$last" ] || continue ;;
        esac
        rm -f "$file"
        exit 0
    done
    echo "Error: $last: image not known" >&2
    exit 1
    ;;
"image prune")
    # Only with a label filter, as silo runs it: the replaced images of one workspace.
    for file in "$state"/replaced-*; do
        [ -f "$file" ] || continue
        case " $* " in *" label=io.silo.id=$(field io.silo.id "$file") "*) rm -f "$file" ;; esac
    done
    ;;
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
"ps --all")
    # As Podman 4.3 prints it (the fields silo reads), for every container with an id.
    sep=
    printf '['
    for file in "$state"/container-*; do
        case $file in *.running | *.id | *.ws | *.image) continue ;; esac
        [ -f "$file" ] || continue
        name=${file#"$state"/container-} status=exited started=1700000000
        if [ -f "$file.running" ]; then status=running; fi
        printf '%s{"Id":"%s","Names":["%s"],"State":"%s","ImageID":"%s","StartedAt":%s,"ExitedAt":-62135596800,"Labels":{"io.silo.id":"%s","io.silo.workspace":"%s","io.silo.config":"%s"}}' \
            "$sep" "$name" "$name" "$status" "$(cat "$file.image" 2>/dev/null)" "$started" "$(cat "$file.id")" \
            "$(escape "$(cat "$file.ws")")" "$(escape "$(cat "$file")")"
        sep=,
    done
    echo ']'
    ;;
"images --filter")
    sep=
    printf '['
    for file in "$state"/image-* "$state"/replaced-*; do
        [ -f "$file" ] || continue
        image=$(field Id "$file") id=$(field io.silo.id "$file") users=0
        for c in "$state"/container-*.image; do
            if [ -f "$c" ] && [ "$(cat "$c")" = "$image" ]; then users=$((users + 1)); fi
        done
        case $file in
        */image-*) names="\"Names\":[\"localhost/silo-$id:latest\"]," ;;
        *) names='"Dangling":true,' ;;
        esac
        printf '%s{"Id":"%s",%s"Size":4344856,"Containers":%s,"Labels":{"io.silo.fingerprint":"%s","io.silo.id":"%s"}}' \
            "$sep" "$image" "$names" "$users" "$(field io.silo.fingerprint "$file")" "$id"
        sep=,
    done
    echo ']'
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
    mkdir -p "$state/volumes/$last/_data"
    labels= previous= sep=
    for arg; do
        if [ "$previous" = --label ]; then
            labels="$labels$sep\"$(escape "${arg%%=*}")\":\"$(escape "${arg#*=}")\""
            sep=,
        fi
        previous=$arg
    done
    printf '%s' "$labels" >"$state/volumes/$last/labels"
    echo "$last"
    ;;
"volume ls")
    sep=
    printf '['
    for dir in "$state"/volumes/*; do
        # --filter label=io.silo.scope
        grep -q '"io.silo.scope"' "$dir/labels" 2>/dev/null || continue
        name=${dir#"$state"/volumes/}
        printf '%s{"Name":"%s","Mountpoint":"%s/_data","Labels":{%s}}' "$sep" "$name" "$dir" "$(cat "$dir/labels")"
        sep=,
    done
    echo ']'
    ;;
"volume rm") rm -rf "${state:?}/volumes/$3" ;;
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
"network inspect")
    if [ -f "$state/network-$3" ]; then
        printf '[{"name":"%s","subnets":[{"subnet":"10.89.7.0/24"}],"internal":true,"dns_enabled":false}]\n' "$3"
    else
        echo '[]'
        echo "Error: inspecting object: network $3: unable to find network with name or ID $3: network not found" >&2
        exit 125
    fi
    ;;
"network create") touch "$state/network-$last" && echo "$last" ;;
"network rm")
    if [ ! -f "$state/network-$3" ]; then
        echo "Error: unable to find network with name or ID $3: network not found" >&2
        exit 1
    fi
    rm -f "$state/network-$3" && echo "$3"
    ;;
*) ;; # run (volume setup): succeed quietly
esac
