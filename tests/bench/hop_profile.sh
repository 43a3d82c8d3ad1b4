#!/bin/sh
# hop_profile.sh - the hop path profile: user-space instructions (callgrind) and system
# calls (strace -c) per proxied request, gateway and I/O worker apart.  Counts, unlike
# req/s, do not depend on how loaded the machine is, so before/after compares are
# readable on a shared machine.
#
#   tests/bench/hop_profile.sh [callgrind|strace|both]      (default both)
#
# Environment: BIN (build/bin), N (20000 measured requests), CONNS (64), URLPATH
# (/hello), BROKER (tcp://127.0.0.1:PORT; ipc://DIR/broker to compare), GATEWAY_ARGS
# (e.g. "--access-log off"), OUT (a temp dir, kept: callgrind.out.* for
# callgrind_annotate, *.strace).
#
# Each process runs under the tool from its start; after a 500-request warm-up the
# counters are zeroed (callgrind_control -z) or strace attaches, N requests run
# (tests/bench/hop_client, exact count), then the counters are dumped.  Per request =
# counted / N; idle work inside the window (timers) is a few thousand instructions in
# all, well under 0.1 % of the total.
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${BIN:-$ROOT/build/bin}
N=${N:-20000}
CONNS=${CONNS:-64}
URLPATH=${URLPATH:-/hello}
MODE=${1:-both}
OUT=${OUT:-$(mktemp -d /tmp/hop-profile.XXXXXX)}
mkdir -p "$OUT"
cd "$OUT" # the gateway keeps its jobs store in the working directory
PIDS=""

. "$ROOT/tests/bench/hop_lib.sh"

cleanup() {
    for p in $PIDS; do kill "$p" 2>/dev/null || true; done
    sleep 1
    for p in $PIDS; do kill -9 "$p" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM

# start TOOL-PREFIX...: starts the gateway and one I/O worker under the prefix.
start() {
    port=$(free_port)
    broker=${BROKER:-tcp://127.0.0.1:$(free_port)}
    # shellcheck disable=SC2086
    $1 "$OUT/$2.gateway" "$BIN/barista-gateway" --listen "127.0.0.1:$port" --broker "$broker" \
        ${GATEWAY_ARGS:-} >"$OUT/$2.gateway.log" 2>&1 &
    GW=$!
    # shellcheck disable=SC2086
    $1 "$OUT/$2.worker" "$BIN/barista-worker" --services hello,sleep --connect "$broker" \
        --concurrency 16384 >"$OUT/$2.worker.log" 2>&1 &
    WK=$!
    PIDS="$GW $WK"
    wait_http "http://127.0.0.1:$port$URLPATH" hop_profile
    "$BIN/hop_client" "$port" "$URLPATH" "$CONNS" 500 >/dev/null
}

stop() {
    kill "$GW" "$WK" 2>/dev/null || true
    wait "$GW" "$WK" 2>/dev/null || true
    PIDS=""
}

# The prefixes exec, so that $! is the tool's (and the server's) pid.
cg() {
    f=$1
    shift
    exec valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$f.%p" "$@"
}
st() {
    shift
    exec "$@"
}

# Sum of the "totals:" of the dumps of one process (one file per thread), per request.
per_request() {
    for f in "$@"; do sed -n 's/^totals: *//p' "$f"; done |
        awk -v n="$N" '{ s += $1; print "    thread " NR ": " int($1 / n) " instr/request" } END { print "    total: " int(s / n) " instr/request" }'
}

if [ "$MODE" = callgrind ] || [ "$MODE" = both ]; then
    start cg cg
    callgrind_control -z "$GW" >/dev/null
    callgrind_control -z "$WK" >/dev/null
    "$BIN/hop_client" "$port" "$URLPATH" "$CONNS" "$N"
    callgrind_control -d "$GW" >/dev/null
    callgrind_control -d "$WK" >/dev/null
    stop
    echo "callgrind, $N requests of $URLPATH, $CONNS connections ($broker):"
    for who in gateway worker; do
        pid=$([ $who = gateway ] && echo "$GW" || echo "$WK")
        echo "  $who (dumps $OUT/cg.$who.$pid.1-*):"
        # shellcheck disable=SC2046
        per_request $(ls "$OUT/cg.$who.$pid".1-* 2>/dev/null)
    done
fi

if [ "$MODE" = strace ] || [ "$MODE" = both ]; then
    start st st
    for who in gateway worker; do
        pid=$([ $who = gateway ] && echo "$GW" || echo "$WK")
        strace -c -f -p "$pid" -o "$OUT/$who.strace" 2>/dev/null &
        eval "ST_$who=\$!"
    done
    sleep 1
    "$BIN/hop_client" "$port" "$URLPATH" "$CONNS" "$N"
    # shellcheck disable=SC2154
    kill -INT "$ST_gateway" "$ST_worker"
    wait "$ST_gateway" "$ST_worker" 2>/dev/null || true
    stop
    echo "strace -c -f, $N requests of $URLPATH, $CONNS connections ($broker):"
    for who in gateway worker; do
        echo "  $who ($OUT/$who.strace): system calls per request"
        awk -v n="$N" '$1 ~ /^[0-9.]+$/ && NF >= 5 { printf "    %-16s %6.2f\n", $NF, $4 / n }' "$OUT/$who.strace"
    done
fi
echo "raw output: $OUT"
