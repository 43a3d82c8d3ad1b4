#!/bin/sh
# conns_50k.sh - CONNS concurrent connections (default 50,000), each in a closed loop of
# GET /sleep?ms=1000 for SECONDS_ seconds, and the memory per connection of the gateway
# and of the I/O worker.
#
#   tests/bench/conns_50k.sh        CONNS=50000 PROCS=4 CLIENTS=4 SECONDS_=20 BIN=build/bin
#
# Limits: one process holds at most `ulimit -Hn` descriptors (20,000 on a container
# without CAP_SYS_RESOURCE), so the gateway runs as PROCS processes (--processes, one
# SO_REUSEPORT listener each, each its own broker port) and the load as CLIENTS
# conns_client processes, client i bound to source address 127.0.0.(i+2): one source
# address has only ip_local_port_range's ~28,000 ports towards one destination.  The
# script raises the soft `ulimit -n` (its own processes only), gives the gateway
# --max-connections CONNS / PROCS + 1000, and raises net.core.somaxconn to 4096 when it
# is lower (as root; restored on exit).  One I/O worker registers with every gateway
# process (--connect a,b,...) with room for every connection's request.
#
# Memory: the sum over the processes of VmRSS before the load, the highest sum of VmRSS
# sampled each second during it, and the sum of VmHWM (each process's own peak, so an
# upper bound of the simultaneous peak); per connection = (sampled peak - before) / the
# most connections established at once (ss, sampled each second).
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${BIN:-$ROOT/build/bin}
CONNS=${CONNS:-50000}
PROCS=${PROCS:-4}
CLIENTS=${CLIENTS:-4}
SECS=${SECONDS_:-20}
URLPATH=${URLPATH:-/sleep?ms=1000}
DIR=$(mktemp -d /tmp/conns-50k.XXXXXX)
cd "$DIR" # the gateway keeps its jobs store in the working directory
PIDS=""
SOMAXCONN_OLD=""
cleanup() {
    for p in $PIDS; do kill "$p" 2>/dev/null || true; done
    sleep 1
    for p in $PIDS; do kill -9 "$p" 2>/dev/null || true; done
    if [ -n "$SOMAXCONN_OLD" ]; then echo "$SOMAXCONN_OLD" >/proc/sys/net/core/somaxconn; fi
    rm -rf "$DIR"
}
trap cleanup EXIT INT TERM

. "$ROOT/tests/bench/hop_lib.sh"

per_gw=$(((CONNS + PROCS - 1) / PROCS + 1000))
per_client=$(((CONNS + CLIENTS - 1) / CLIENTS))
hard=$(ulimit -Hn)
need=$((per_gw > per_client ? per_gw : per_client))
need=$((need + 300)) # the gateway wants --max-connections + 256 descriptors
if [ "$hard" != unlimited ] && [ "$hard" -lt "$need" ]; then
    echo "conns_50k: ulimit -Hn is $hard, each process needs $need: raise PROCS and CLIENTS" >&2
    exit 1
fi
ulimit -n "$need"
somax=$(cat /proc/sys/net/core/somaxconn)
if [ "$somax" -lt 4096 ] && [ -w /proc/sys/net/core/somaxconn ]; then
    SOMAXCONN_OLD=$somax
    echo 4096 >/proc/sys/net/core/somaxconn
fi

port=$(free_port)
# The gateway binds bport .. bport + PROCS - 1: a run of free ports.
bport=$(python3 -c '
import socket, sys
n = int(sys.argv[1])
for base in range(20000, 32000, n):
    socks = []
    try:
        for i in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", base + i))
            socks.append(s)
    except OSError:
        continue
    finally:
        for s in socks:
            s.close()
    print(base)
    break' "$PROCS")
endpoints=""
i=0
while [ $i -lt "$PROCS" ]; do
    endpoints="$endpoints${endpoints:+,}tcp://127.0.0.1:$((bport + i))"
    i=$((i + 1))
done
"$BIN/barista-gateway" --listen "127.0.0.1:$port" --broker "tcp://127.0.0.1:$bport" \
    --processes "$PROCS" --max-connections "$per_gw" --access-log off >"$DIR/gateway.log" 2>&1 &
GW=$!
PIDS="$GW"
"$BIN/barista-worker" --services hello,sleep --connect "$endpoints" \
    --concurrency $((CONNS + 1000)) >"$DIR/worker.log" 2>&1 &
WK=$!
PIDS="$PIDS $WK"
wait_http "http://127.0.0.1:$port/sleep?ms=1" conns_50k
# Every gateway process must have the worker before the load starts.
sleep 2

gw_pids() { echo "$GW" $(pgrep -P "$GW" -x barista-gateway || true); }
sum() { # sum FIELD PID...: the kB of a /proc/PID/status field over the processes
    f=$1
    shift
    for p in "$@"; do sed -n "s/^$f:[[:space:]]*\([0-9]*\) kB/\1/p" "/proc/$p/status"; done |
        awk '{ s += $1 } END { print s + 0 }'
}
GWS=$(gw_pids)
gw0=$(sum VmRSS $GWS)
wk0=$(sum VmRSS "$WK")
gwa0=$(sum RssAnon $GWS)
wka0=$(sum RssAnon "$WK")

i=0
CPIDS=""
while [ $i -lt "$CLIENTS" ]; do
    n=$((CONNS / CLIENTS + (i < CONNS % CLIENTS ? 1 : 0)))
    "$BIN/conns_client" "$port" "$URLPATH" "$n" "$SECS" "127.0.0.$((i + 2))" \
        >"$DIR/client.$i" 2>&1 &
    CPIDS="$CPIDS $!"
    i=$((i + 1))
done
PIDS="$PIDS $CPIDS"
gwp=$gw0 wkp=$wk0 gwap=$gwa0 wkap=$wka0 open=0
t0=$(date +%s)
while kill -0 $CPIDS 2>/dev/null; do
    sleep 1
    g=$(sum VmRSS $GWS) w=$(sum VmRSS "$WK") ga=$(sum RssAnon $GWS) wa=$(sum RssAnon "$WK")
    [ "$g" -gt "$gwp" ] && gwp=$g
    [ "$w" -gt "$wkp" ] && wkp=$w
    [ "$ga" -gt "$gwap" ] && gwap=$ga
    [ "$wa" -gt "$wkap" ] && wkap=$wa
    o=$(ss -Htn state established "( sport = :$port )" 2>/dev/null | wc -l)
    [ "$o" -gt "$open" ] && open=$o
done
t1=$(date +%s)
gwh=$(sum VmHWM $GWS)
wkh=$(sum VmHWM "$WK")
status=0
for c in $CPIDS; do wait "$c" || status=1; done
cat "$DIR"/client.*
awk '{ pk += $4; f += $6; r += $8; x += $10; c += $12 } END {
    printf "clients: %d connected, %d failed, %d requests, %d non-2xx, %d closed by the server\n", pk, f, r, x, c }' \
    "$DIR"/client.*
echo "most established at once (ss, sampled each second): $open; run $((t1 - t0)) s"
awk -v g0="$gw0" -v gp="$gwp" -v gh="$gwh" -v ga0="$gwa0" -v gap="$gwap" \
    -v w0="$wk0" -v wp="$wkp" -v wh="$wkh" -v wa0="$wka0" -v wap="$wkap" -v n="$open" -v np="$PROCS" 'BEGIN {
    printf "gateway (%d processes): RSS %.1f MiB before, %.1f MiB sampled peak (VmHWM sum %.1f): %.0f bytes per connection; anonymous %.1f -> %.1f MiB: %.0f bytes\n",
        np, g0/1024, gp/1024, gh/1024, (gp-g0)*1024/n, ga0/1024, gap/1024, (gap-ga0)*1024/n
    printf "worker: RSS %.1f MiB before, %.1f MiB sampled peak (VmHWM %.1f): %.0f bytes per connection; anonymous %.1f -> %.1f MiB: %.0f bytes\n",
        w0/1024, wp/1024, wh/1024, (wp-w0)*1024/n, wa0/1024, wap/1024, (wap-wa0)*1024/n
    printf "together: %.1f MiB sampled peak\n", (gp+wp)/1024 }'
# What the processes said about each other (a worker found silent, requests retried).
for f in worker gateway; do
    grep -E 'warn|error|silent|lost|removed|reconnect' "$DIR/$f.log" | sort | uniq -c | sort -rn |
        head -8 | sed "s/^/$f: /" || true
done
exit $status
