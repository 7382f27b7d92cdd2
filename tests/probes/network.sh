#!/bin/sh
# network.sh OK NO OK_IP NO_IP HOST_PORT: attacks the network policy from inside a workspace
# container with egress = "allow" whose allow list holds the test server OK only (the
# other test server is NO). Prints "denied: ..." for each attempt that failed and
# "allowed: ..." for each that got through (the test wants none), and "answer: ..."
# for what the allowed server said. Traffic goes to the test's servers and the proxy
# only, and never leaves the machine.
ok=$1 no=$2 ok_ip=$3 no_ip=$4 host_port=$5
proxy=${http_proxy#http://}
host=${proxy%:*} port=${proxy##*:}
ms() { read -r up _ </proc/uptime; echo $((${up%.*}${up#*.} * 10)); }

# The proxy's whole answer to a raw request (the client keeps its side open a moment).
ask() { (printf "$1"; sleep 1) | timeout 5 nc "$host" "$port" 2>&1 | tr -d '\r'; }
# One attempt through the proxy: a 200 means it got through.
try() {
    status=$(ask "$2" | head -n 1)
    case $status in
    *" 200 "*) echo "allowed: $1 ($status)" ;;
    *) echo "denied: $1 (${status:-no answer})" ;;
    esac
}
# One attempt to connect without the proxy: nc exits 0 when it connected.
direct() {
    if out=$(timeout 5 nc -w 2 "$2" "$3" </dev/null 2>&1); then
        echo "allowed: $1"
    else
        echo "denied: $1 (${out:-timed out})"
    fi
}

echo "answer: $(ask "GET http://$ok/ HTTP/1.0\r\n\r\n" | tail -n 1)"
tunnel=$( (printf "CONNECT $ok:80 HTTP/1.1\r\n\r\n"; sleep 1; printf "GET / HTTP/1.0\r\n\r\n"; sleep 1) |
    timeout 5 nc "$host" "$port" 2>&1 | tr -d '\r' | tail -n 1)
echo "answer through CONNECT: $tunnel"
echo "answer upper case: $(ask "GET http://$(echo "$ok" | tr a-z A-Z)/ HTTP/1.0\r\n\r\n" | tail -n 1)"
# The time to the first line of the refusal (the client stays a while after it).
start=$(ms)
(printf "GET http://$no/ HTTP/1.0\r\n\r\n"; sleep 1) | timeout 5 nc "$host" "$port" |
    { read -r _ && echo "refused in $(($(ms) - start)) ms"; cat >/dev/null; }
refusal=$(ask "GET http://$no/ HTTP/1.0\r\n\r\n")
echo "$refusal" | sed -n 's/^silo: /refusal: silo: /p; s/^To allow it/refusal: To allow it/p'

try "denied name, plain HTTP" "GET http://$no/ HTTP/1.0\r\n\r\n"
try "denied name, CONNECT" "CONNECT $no:80 HTTP/1.1\r\n\r\n"
try "denied address, CONNECT" "CONNECT $no_ip:80 HTTP/1.1\r\n\r\n"
try "denied address, plain HTTP" "GET http://$no_ip/ HTTP/1.0\r\n\r\n"
try "allowed server by address" "CONNECT $ok_ip:80 HTTP/1.1\r\n\r\n"
try "allowed name as a prefix" "CONNECT $ok.$no:80 HTTP/1.1\r\n\r\n"
try "allowed name as user info" "GET http://$ok@$no/ HTTP/1.0\r\n\r\n"
try "allowed Host header, denied URL" "GET http://$no/ HTTP/1.1\r\nHost: $ok\r\n\r\n"
try "denied Host header" "GET / HTTP/1.1\r\nHost: $no\r\n\r\n"
try "trailing dot" "CONNECT $no.:80 HTTP/1.1\r\n\r\n"
try "the proxy itself" "CONNECT localhost:$port HTTP/1.1\r\n\r\n"
try "the proxy's statistics page" "GET http://tinyproxy.stats/ HTTP/1.0\r\n\r\n"

direct "direct to the denied server" "$no_ip" 80
direct "direct to the allowed server" "$ok_ip" 80
direct "the host at the workspace network's first address" "${host%.*}.1" "$host_port"
direct "the host at the default network's gateway" 10.88.0.1 "$host_port"
if [ -e /etc/resolv.conf ]; then echo "allowed: a resolver is configured"; else echo "denied: no resolver"; fi
if nslookup "$no" >/dev/null 2>&1; then echo "allowed: name lookup"; else echo "denied: name lookup"; fi
if nslookup "$no" "${host%.*}.1" >/dev/null 2>&1; then echo "allowed: name lookup at the bridge"; else echo "denied: name lookup at the bridge"; fi

# Change the policy from inside.
if ip route add default via "$host" 2>/dev/null; then echo "allowed: add a route"; else echo "denied: add a route"; fi
if ip addr add 10.254.0.9/24 dev eth0 2>/dev/null; then echo "allowed: add an address"; else echo "denied: add an address"; fi
if ip link set eth0 down 2>/dev/null; then echo "allowed: take the link down"; else echo "denied: take the link down"; fi
if echo 0 2>/dev/null >/proc/sys/net/ipv6/conf/all/disable_ipv6; then echo "allowed: turn IPv6 on"; else echo "denied: turn IPv6 on"; fi
if [ -n "$(ip -6 addr 2>/dev/null)" ]; then echo "allowed: an IPv6 address"; else echo "denied: an IPv6 address"; fi
if pidof tinyproxy >/dev/null 2>&1 || kill -9 $(pidof tinyproxy) 2>/dev/null; then echo "allowed: see the proxy"; else echo "denied: see or kill the proxy"; fi
if ls /etc/silo-proxy >/dev/null 2>&1; then echo "allowed: read the proxy's configuration"; else echo "denied: read the proxy's configuration"; fi
if echo 'egress = "all"' 2>/dev/null >>.silo/silo.toml; then echo "allowed: edit .silo/silo.toml"; else echo "denied: edit .silo/silo.toml"; fi

# It still holds.
try "denied name, after all that" "CONNECT $no:80 HTTP/1.1\r\n\r\n"
echo "answer after all that: $(ask "GET http://$ok/ HTTP/1.0\r\n\r\n" | tail -n 1)"
