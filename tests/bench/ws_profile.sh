#!/bin/sh
# ws_profile.sh - user-space instructions (callgrind) per echoed WebSocket message,
# gateway and chat worker apart.  Counts, unlike messages/s, hardly depend on how
# loaded the machine is, so before/after compares are readable on a shared machine.
#
#   tests/bench/ws_profile.sh            BIN (build/bin), CONNS (64), SECONDS_RUN (5)
#
# Both processes run under callgrind from their start; after a 2 s warm-up the counters
# are zeroed (callgrind_control -z), tests/bench/ws_bench.c runs CONNS connections in a
# closed loop for SECONDS_RUN seconds (32-byte texts), then the counters are dumped.
# Per message = instructions counted (every thread: ZeroMQ's I/O thread included) /
# messages echoed.  How much one ZeroMQ message carries depends on how many echoes are
# in flight per loop turn, so compare runs with the same CONNS.
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${BIN:-$ROOT/build/bin}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
HP=$(free_port)
BP=$(free_port)
CONNS=${CONNS:-64}
SECS=${SECONDS_RUN:-5}
OUT=$(mktemp -d /tmp/ws-profile.XXXXXX)
PIDS=""
cleanup() {
    for p in $PIDS; do kill "$p" 2>/dev/null || true; done
    sleep 1
    for p in $PIDS; do kill -9 "$p" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM
CG="valgrind --tool=callgrind --separate-threads=no"
cd "$OUT"
$CG --callgrind-out-file="$OUT/cg.gateway" "$BIN/barista-gateway" --listen 127.0.0.1:$HP \
    --broker tcp://127.0.0.1:$BP >"$OUT/gw.log" 2>&1 &
PIDS="$PIDS $!"
GW=$!
sleep 2
$CG --callgrind-out-file="$OUT/cg.worker" "$BIN/barista-worker" --services chat \
    --connect tcp://127.0.0.1:$BP >"$OUT/wk.log" 2>&1 &
PIDS="$PIDS $!"
WK=$!
for _ in $(seq 600); do
    curl -sf "http://127.0.0.1:$HP/metrics" 2>/dev/null |
        grep -q 'barista_service_workers{service="chat"} 1' && break
    sleep 0.1
done
"$BIN/ws_bench" 127.0.0.1 $HP /ws/echo "$CONNS" 2 32 >/dev/null
callgrind_control -z $GW >/dev/null
callgrind_control -z $WK >/dev/null
out=$("$BIN/ws_bench" 127.0.0.1 $HP /ws/echo "$CONNS" "$SECS" 32 | tail -1)
callgrind_control -d $GW >/dev/null
callgrind_control -d $WK >/dev/null
sleep 1
msgs=$(echo "$out" | sed 's/.* messages \([0-9]*\) .*/\1/')
ir() { cat "$OUT"/$1* | awk '/^summary:/ {s += $2} END {print s + 0}'; }
g=$(ir cg.gateway.)
w=$(ir cg.worker.)
echo "conns $CONNS messages $msgs gateway_ir $g worker_ir $w" \
    "gateway_ir_per_msg $((g / msgs)) worker_ir_per_msg $((w / msgs)) ($out; files in $OUT)"
