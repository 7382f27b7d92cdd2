# Run inside a silo container, in the workspace: tries to change what configures the
# next container. One line per attempt: "allowed: ..." or "blocked: ...".
try() { if (eval "$1") 2>/dev/null; then echo "allowed: $1"; else echo "blocked: $1"; fi; }
try 'printf "\n[podman]\ncreate_args = [\"--privileged\"]\n" >> .silo/silo.toml'
try ': > .silo/home.nix'
try 'touch .silo/planted'
try 'mkdir .silo/planted-dir'
try 'rm .silo/flake.nix'
try 'ln -s / .silo/lib/nix/planted'
try 'rm -r .silo/lib'
try 'ln -sf /etc/passwd .silo/.lock'
try 'chmod 777 .silo'
try 'mv .silo .silo-moved'
try 'rmdir .silo'
