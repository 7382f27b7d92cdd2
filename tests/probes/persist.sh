# Run inside a silo container: tries to turn persisted paths into host paths. $1 is the
# test's tag. The workspace persists /data/ and $HOME/.probe_history (private) and
# $HOME/.cache/probe-$1/ (shared). One line per attempt: "allowed: ..." or "blocked: ...".
tag=$1
try() { if (eval "$1") 2>/dev/null; then echo "allowed: $1"; else echo "blocked: $1"; fi; }
echo "secret-$tag" > "/data/secret-$tag"
echo history >> ~/.probe_history
# Replace a persisted path (a mount point) with a link to a host path.
try 'mv /data /data.old'
try 'rmdir /data'
try 'mv ~/.probe_history ~/.probe_history.old'
try 'ln -sf /tmp ~/.probe_history'
try "mv ~/.cache/probe-$tag ~/.cache/probe-$tag.old"
# Podman 4 shows the volumes of persisted files read-only here.
for volume in /silo/persistence/*; do
  [ -e "$volume" ] || continue
  try "ln -sf /tmp $volume/.probe_history"
  try "rm $volume/.probe_history"
  try "touch $volume/planted"
done
# Links inside the volumes belong to the container; they must mean nothing on the host
# or to another workspace.
ln -sfn /tmp /data/to-tmp
ln -sfn ../../../.. "$HOME/.cache/probe-$tag/up"
ln -sfn / "$HOME/.cache/probe-$tag/root"
echo planted
