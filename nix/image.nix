# The workspace image: the pinned Fedora base, the Nix store closure of the
# home-manager configuration (owned by the user, registered in the Nix
# database so `nix` and `home-manager switch` work inside), the user's
# accounts, and silo's two scripts:
#
#   /opt/silo/bin/entrypoint  config.Entrypoint; activates home-manager when
#                             this image's configuration is not active yet,
#                             then execs the command (config.Cmd: sleep).
#   /opt/silo/bin/enter       run by `silo connect` / `silo exec` through
#                             `podman exec`; waits for the activation, loads
#                             the session variables, execs the command or the
#                             login shell (silo-shell).
#
# The result is an uncompressed docker-archive (`podman load -i` it).
#
# State of the activation, in /opt/silo/state/ (the container's own layer):
#   activated       store path of the last activation package that succeeded
#   failed          store path of an activation package that failed
#   activation.log  output of the last activation
# It lives outside $HOME on purpose: the home directory (or ~/.local/state)
# may be a persisted path that outlives the container, while what activation
# creates (~/.nix-profile, the files it links) does not. A new container must
# activate again; a restarted one keeps its layer and skips it.
{
  pkgs,
  home,
  settings,
  inputs,
}:
let
  inherit (pkgs) lib;

  # settings.json is written by silo, which validates these; check again
  # because they end up in file names and shell scripts.
  validated =
    name: regex: value:
    if builtins.isString value && builtins.match regex value != null then
      value
    else
      throw "silo: settings.json: invalid ${name} '${toString value}' (must match ${regex})";

  user = validated "user" "[a-z_][a-z0-9_-]{0,31}" settings.user;
  id = validated "id" "[a-z0-9][a-z0-9_.-]*" settings.id;

  uid = 1000;
  gid = 1000;
  homeDirectory = "/home/${user}";

  hm = home.activationPackage;
  inherit (home.config.home) profileDirectory;
  podman = home.config.silo.podman.enable;

  fedora = import ./fedora.nix {
    inherit (pkgs) dockerTools;
    inherit (settings) system;
  };

  # `rev` for locked git/github inputs; path: inputs (the offline tests)
  # have none, their content hash identifies them instead.
  inputVersion = input: input.rev or input.narHash or "unknown";

  coreutils = "${pkgs.coreutils}/bin";
  stateDir = "/opt/silo/state";
  logShown = "${stateDir}/activation.log";

  # newuidmap/newgidmap run setuid root, so nothing they load may be writable
  # by the user, who owns /nix/store here: a static (musl) build loads no
  # shared libraries, and without NLS it reads no message catalogs from the
  # store either. /etc/subuid, /etc/login.defs and /etc/nsswitch.conf are the
  # base image's or root's.
  idmapTools = pkgs.pkgsStatic.shadow.overrideAttrs (old: {
    configureFlags = (old.configureFlags or [ ]) ++ [ "--disable-nls" ];
  });

  entrypoint = pkgs.writeShellScript "silo-entrypoint" ''
    # silo entrypoint: activate this image's home-manager configuration once
    # (a restart with the same image skips it), then exec the command.
    # A failed activation is recorded and the container keeps running so
    # that the user can get in and look.
    cu=${coreutils}
    hm=${hm}
    state=${stateDir}

    if [ "$("$cu/cat" "$state/activated" 2>/dev/null)" != "$hm" ]; then
      "$cu/mkdir" -p "$state"
      "$cu/rm" -f "$state/failed"
      echo "silo: activating home-manager ($hm)" >&2
      if "$hm/activate" >"$state/activation.log" 2>&1; then
        printf '%s\n' "$hm" >"$state/activated.tmp" &&
          "$cu/mv" -f "$state/activated.tmp" "$state/activated"
        echo "silo: home-manager activated" >&2
      else
        status=$?
        printf '%s\n' "$hm" >"$state/failed.tmp" &&
          "$cu/mv" -f "$state/failed.tmp" "$state/failed"
        echo "silo: home-manager activation failed (exit $status); see ${logShown}" >&2
      fi
    fi

    if [ "$#" -eq 0 ]; then
      set -- "$cu/sleep" infinity
    fi
    exec "$@"
  '';

  enter = pkgs.writeShellScript "silo-enter" ''
    # silo enter [CMD ARGS...]: run CMD (default: the login shell) in the
    # home-manager environment once the entrypoint has activated it.
    # Exit status: CMD's own (exec); 124 if the activation did not finish
    # within 300 s.
    cu=${coreutils}
    hm=${hm}
    state=${stateDir}
    profile=${lib.escapeShellArg profileDirectory}

    # Builtins only on the way in: no process is started when the
    # configuration is active, so entering costs podman's exec and little else.
    holds() { [ -r "$1" ] && read -r line <"$1" && [ "$line" = "$hm" ]; }

    if ! holds "$state/activated"; then
      start=$("$cu/date" +%s)
      ticks=0
      while ! holds "$state/activated"; do
        if holds "$state/failed"; then
          echo "silo: warning: home-manager activation failed, the environment may be incomplete; its last lines:" >&2
          "$cu/tail" -n 12 "$state/activation.log" >&2
          echo "silo: the whole log is ${logShown}; fix home.nix, then run \`silo stop && silo\`." >&2
          break
        fi
        elapsed=$(($("$cu/date" +%s) - start))
        if [ "$elapsed" -ge 300 ]; then
          echo "silo: home-manager activation did not finish within 300 s (log: ${logShown})." >&2
          echo "silo: check it with \`podman logs\`, or restart the workspace." >&2
          exit 124
        fi
        # Announce once, after about a second.
        if [ "$ticks" -eq 5 ]; then
          echo "silo: waiting for home-manager activation (log: ${logShown})" >&2
        fi
        ticks=$((ticks + 1))
        "$cu/sleep" 0.2
      done
    fi

    if [ -r "$profile/etc/profile.d/hm-session-vars.sh" ]; then
      # shellcheck source=/dev/null
      . "$profile/etc/profile.d/hm-session-vars.sh"
    fi

    if [ "$#" -eq 0 ]; then
      if [ -x "$profile/bin/silo-shell" ]; then
        exec "$profile/bin/silo-shell"
      fi
      echo "silo: warning: $profile/bin/silo-shell is missing; starting /bin/sh instead." >&2
      exec /bin/sh -l
    fi
    exec "$@"
  '';

  # The only `contents`: everything lives under /opt/silo, so that nothing
  # shadows Fedora's /bin, /lib, /lib64 and /sbin symlinks (nixpkgs#129007).
  # Its closure is what includeNixDB registers, so it also names the store
  # paths the image's config and scripts use.
  root = pkgs.runCommand "silo-root-${id}" { } ''
    mkdir -p $out/opt/silo/bin
    ln -s ${entrypoint} $out/opt/silo/bin/entrypoint
    ln -s ${enter} $out/opt/silo/bin/enter
    ln -s ${hm} $out/opt/silo/home-manager
    ln -s ${pkgs.nix} $out/opt/silo/nix
    ln -s ${pkgs.coreutils} $out/opt/silo/coreutils
    ${lib.optionalString podman "ln -s ${idmapTools} $out/opt/silo/shadow"}
  '';

  # A file in the top layer replaces the base image's file, so the user's
  # entries are appended to Fedora's own /etc/passwd and /etc/group, taken
  # from the base image archive (docker-archive: manifest.json lists the
  # layers bottom-up; a later layer's copy wins; layers may be gzipped).
  accounts = pkgs.runCommand "silo-accounts-${user}" { base = fedora; } ''
    tar -xf "$base" manifest.json
    # Layer names contain no quotes, commas or brackets.
    layers=$(tr -d '\n' <manifest.json |
      sed -n 's/.*"Layers"[[:space:]]*:[[:space:]]*\[\([^]]*\)\].*/\1/p' |
      tr ',' '\n' | sed 's/^[[:space:]]*"//; s/"[[:space:]]*$//')
    [ -n "$layers" ] || { echo "silo: no layers in the manifest.json of $base" >&2; exit 1; }

    for layer in $layers; do
      tar -xOf "$base" "$layer" >layer
      if [ "$(od -An -N2 -tx1 layer | tr -d ' \n')" = 1f8b ]; then
        gzip -dc layer >layer.tar
      else
        mv layer layer.tar
      fi
      tar -tf layer.tar >members
      for file in passwd group; do
        member=$(grep -E "^(\./)?etc/$file\$" members | tail -n 1 || true)
        if [ -n "$member" ]; then
          tar -xOf layer.tar "$member" >"$file"
        elif grep -qE "^(\./)?etc/\.wh\.$file\$" members; then
          rm -f "$file"
        fi
      done
      rm -f layer layer.tar members
    done

    for file in passwd group; do
      if [ ! -s "$file" ]; then
        echo "silo: the base image $base has no /etc/$file" >&2
        exit 1
      fi
      if grep -q '^${user}:' "$file"; then
        echo "silo: the user name '${user}' already exists in the base image's /etc/$file;" >&2
        echo "silo: choose another user name (\"user\" in silo.user.toml)." >&2
        exit 1
      fi
      cut -d: -f3 "$file" >ids
      if grep -qx '${toString uid}' ids; then
        echo "silo: the base image's /etc/$file already has id ${toString uid}, which silo needs for '${user}'." >&2
        exit 1
      fi
      # Keep the last line intact if the base file lacks a final newline.
      if [ -n "$(tail -c 1 "$file")" ]; then echo >>"$file"; fi
    done

    mkdir $out
    { cat passwd; echo '${user}:x:${toString uid}:${toString gid}::${homeDirectory}:/bin/sh'; } >$out/passwd
    { cat group; echo '${user}:x:${toString gid}:'; } >$out/group
  '';

  # Sub-id ranges for nested rootless podman: everything a 65536-wide outer
  # mapping holds except root (0) and the user's own id.
  subuid = pkgs.writeText "silo-subuid" "${user}:1:999\n${user}:1001:64535\n";
  subgid = pkgs.writeText "silo-subgid" "${user}:1:999\n${user}:1001:64535\n";

  nixConf = pkgs.writeText "silo-nix.conf" ''
    experimental-features = nix-command flakes
    # A sandbox needs user namespaces that a rootless container rarely grants.
    sandbox = false
    # Single-user Nix: the store belongs to ${user}, there are no build users.
    build-users-group =
  '';

  # Uncompressed: Podman 4.3 (Debian 12) cannot `podman load` a gzipped
  # docker-archive; `compressor` exists since nixpkgs PR #292760 (2024).
  image = pkgs.dockerTools.buildLayeredImage {
    name = "localhost/silo-${id}";
    tag = "latest";
    compressor = "none";
    fromImage = fedora;
    contents = [ root ];

    # Single-user Nix owned by the image user: the store layers are written
    # with these ids, the Nix database (for the closure of `contents`) is added
    # to the customisation layer, which fakeRootCommands chowns below.
    includeNixDB = true;
    inherit uid gid;
    uname = user;
    gname = user;

    extraCommands = ''
      mkdir -p etc/nix home/${user} silo/persistence opt/silo/state \
        nix/var/nix/profiles/per-user/${user} nix/var/nix/gcroots/per-user/${user}
      cp ${accounts}/passwd etc/passwd
      cp ${accounts}/group etc/group
      cp ${subuid} etc/subuid
      cp ${subgid} etc/subgid
      cp ${nixConf} etc/nix/nix.conf
      chmod 0644 etc/passwd etc/group etc/subuid etc/subgid etc/nix/nix.conf
      chmod 0755 etc etc/nix home home/${user} silo silo/persistence opt/silo/state
    '';

    fakeRootCommands = ''
      chown -R ${toString uid}:${toString gid} nix home/${user} silo/persistence opt/silo/state
    ''
    + lib.optionalString podman ''
      # newuidmap/newgidmap must be setuid root for rootless podman, which the
      # Nix store cannot provide: root-owned copies of the static build (see
      # idmapTools). /usr/local/bin comes before Fedora's /usr/bin (whose
      # copies lack their file capabilities) on PATH.
      mkdir -p usr/local/bin
      chmod 0755 usr usr/local usr/local/bin
      for tool in newuidmap newgidmap; do
        cp ${idmapTools}/bin/$tool usr/local/bin/$tool
        chown 0:0 usr/local/bin/$tool
        chmod 4755 usr/local/bin/$tool
      done
    '';

    config = {
      User = "${toString uid}:${toString gid}";
      WorkingDir = homeDirectory;
      Entrypoint = [ "/opt/silo/bin/entrypoint" ];
      Cmd = [
        "${pkgs.coreutils}/bin/sleep"
        "infinity"
      ];
      # Merged over Fedora's Env by dockerTools (the only inherited key).
      Env = [
        "PATH=${profileDirectory}/bin:/opt/silo/bin:${pkgs.nix}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin"
        "USER=${user}"
        "HOME=${homeDirectory}"
        "NIX_SSL_CERT_FILE=/etc/pki/tls/certs/ca-bundle.crt"
        "LANG=C.UTF-8"
      ];
      Labels = {
        "io.silo.id" = id;
        "io.silo.user" = user;
        "io.silo.version" = settings.siloVersion;
        # Opaque to Nix: silo compares it with its own to know whether the
        # image is up to date.
        "io.silo.fingerprint" = settings.fingerprint;
        "io.silo.nixpkgs" = inputVersion inputs.nixpkgs;
        "io.silo.home-manager" = inputVersion inputs.home-manager;
        "org.opencontainers.image.base.name" = fedora.baseName;
      };
    };
  };
in
image
