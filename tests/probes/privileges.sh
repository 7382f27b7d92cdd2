# Run inside a silo container, in the workspace, as its user: what the process may do.
# Prints "name: value" lines. ./probe is probe.c, compiled by the test.
grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status | tr -d '\t' | sed 's/:/: /'
echo "pid1: $(cat /proc/1/comm)"
echo "processes: $(ps -o pid | tail -n +2 | wc -l)"
echo "host secret in env: $(env | grep -c SILO_PROBE_HOST_SECRET)"
echo "host secret in pid 1: $(tr '\0' '\n' </proc/1/environ 2>/dev/null | grep -c SILO_PROBE_HOST_SECRET)"
if unshare -U true 2>/dev/null; then echo "unshare -U: allowed"; else echo "unshare -U: blocked"; fi
echo "clone userns: $(./probe clone-userns)"
rm -f setuid-chmod setuid-open setgid-chmod setcap-user
touch setuid-chmod setgid-chmod setcap-user
if chmod 4755 setuid-chmod 2>/dev/null; then echo "chmod u+s: allowed"; else echo "chmod u+s: blocked"; fi
if chmod 2755 setgid-chmod 2>/dev/null; then echo "chmod g+s: allowed"; else echo "chmod g+s: blocked"; fi
echo "open 04755: $(./probe open-setuid setuid-open)"
echo "setcap as user: $(./probe setcap setcap-user)"
