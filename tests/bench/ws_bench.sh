#!/usr/bin/env bash
# WebSocket benchmarks, Barista vs FastAPI/uvicorn (Debian's python3-fastapi,
# python3-uvicorn, python3-websockets, python3-uvloop), side by side in one run:
#
#   echo  - messages/s, p50/p99 and server CPU per message with 64 and 1,000
#           connections in a closed loop (tests/bench/ws_bench.c), 32-byte texts;
#   idle  - 10,000 open, idle connections: resident memory of the server processes
#           (gateway + worker; uvicorn).
#
#   tests/bench/ws_bench.sh echo barista|fastapi     one server, both connection counts
#   tests/bench/ws_bench.sh idle barista|fastapi
#
# Environment: BARISTA_BIN [build/bin], BENCH_DURATION seconds per run [5, max 10],
# BENCH_PYTHON [/usr/bin/python3].  Results go to stdout; docs/benchmarks.md keeps them.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BIN=${BARISTA_BIN:-$ROOT/build/bin}
PY=${BENCH_PYTHON:-/usr/bin/python3}
DUR=${BENCH_DURATION:-5}
MODE=${1:?echo or idle}
SERVER=${2:?barista or fastapi}
[ "$DUR" -le 10 ] || { echo "BENCH_DURATION at most 10" >&2; exit 2; }
[ -x "$BIN/ws_bench" ] || { echo "no $BIN/ws_bench: build the tests (BUILD_TESTING=ON) in that build" >&2; exit 2; }

port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# "UTIME STIME" in clock ticks, summed over the processes given that still run.
cpu_ticks() {
    local u=0 s=0 p
    for p in "$@"; do
        [ -r /proc/$p/stat ] || continue
        set -- $(sed 's/.*) //' /proc/$p/stat | awk '{print $12, $13}')
        u=$((u + $1)) s=$((s + $2))
    done
    echo "$u $s"
}
rss_kib() {
    local total=0 p
    for p in "$@"; do
        [ -r /proc/$p/status ] || continue
        total=$((total + $(awk '/^VmRSS:/ {print $2}' /proc/$p/status)))
    done
    echo $total
}

# 10,000 connections need 10,000 descriptors on each side (and the gateway as many again
# for nothing else): raise the soft limit to the hard one.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
P=$(port)
TMP=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$TMP"' EXIT
if [ "$SERVER" = barista ]; then
    "$BIN/barista-gateway" --listen 127.0.0.1:$P --local --io-workers 1 --cpu-workers 0 \
        --io-services chat --max-connections 20000 >"$TMP/gw.log" 2>&1 &
    SPID=$!
    for _ in $(seq 100); do
        curl -sf "http://127.0.0.1:$P/metrics" | grep -q 'barista_service_workers{service="chat"} 1' && break
        sleep 0.1
    done
    PIDS="$SPID $(pgrep -P $SPID | tr '\n' ' ')"
else
    (cd "$HERE" && exec "$PY" -m uvicorn ws_fastapi:app --loop uvloop --ws websockets \
        --log-level warning --host 127.0.0.1 --port $P) >"$TMP/uv.log" 2>&1 &
    SPID=$!
    for _ in $(seq 100); do
        "$PY" -c "import socket; socket.create_connection(('127.0.0.1', $P))" 2>/dev/null && break
        sleep 0.1
    done
    PIDS="$SPID"
fi
HZ=$(getconf CLK_TCK)

if [ "$MODE" = echo ]; then
    for conns in ${BENCH_CONNS:-64 1000}; do
        c0=$(cpu_ticks $PIDS)
        out=$("$BIN/ws_bench" 127.0.0.1 $P /ws/echo $conns $DUR 32 | tail -1)
        c1=$(cpu_ticks $PIDS)
        msgs=$(echo "$out" | sed 's/.* messages \([0-9]*\) .*/\1/')
        # total CPU seconds, then microseconds per message in user and kernel mode
        set -- $c0 $c1
        cpu=$(awk -v a=$(($3 + $4 - $1 - $2)) -v hz=$HZ 'BEGIN {printf "%.2f", a / hz}')
        split=$(awk -v u=$(($3 - $1)) -v s=$(($4 - $2)) -v m=$msgs -v hz=$HZ \
            'BEGIN {if (m > 0) printf "user_us_per_msg %.1f sys_us_per_msg %.1f", u * 1e6 / hz / m, s * 1e6 / hz / m}')
        per=$(awk -v m=$msgs -v c=$cpu 'BEGIN {printf "%.0f", (c > 0 ? m / c : 0)}')
        [ "${msgs:-0}" -gt 0 ] || { echo "$SERVER echo conns=$conns: no message echoed ($out)" >&2; exit 1; }
        echo "$SERVER echo conns=$conns $out server_cpu_s $cpu msgs_per_cpu_s $per $split"
    done
else
    before=$(rss_kib $PIDS)
    "$BIN/ws_bench" 127.0.0.1 $P /ws/echo 10000 $DUR --idle >"$TMP/idle.out" &
    BPID=$!
    for _ in $(seq 600); do grep -q ready "$TMP/idle.out" && break; sleep 0.1; done
    sleep 1
    during=$(rss_kib $PIDS)
    # Per process too: the first is the server (the gateway), the rest its workers.
    each=$(for p in $PIDS; do echo -n "$(rss_kib $p) "; done)
    wait $BPID || true
    echo "$SERVER idle $(grep ready "$TMP/idle.out") rss_before_kib $before rss_with_10000_kib $during per_process_kib ${each% } ($(tail -1 "$TMP/idle.out" | cut -d' ' -f1-6))"
fi
