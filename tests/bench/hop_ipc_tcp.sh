#!/bin/sh
# hop_ipc_tcp.sh - the gateway-worker hop over tcp://127.0.0.1 vs ipc:// (what
# `--local` picks), alternated in one run: server CPU per proxied GET /hello (user +
# system time of the gateway and the I/O worker, all threads, over a fixed number of
# requests) and wrk's req/s.
#
#   tests/bench/hop_ipc_tcp.sh          ROUNDS=3 N=50000 DURATION=5 BIN=build/bin
#
# CPU time per request is the number to read on a busy machine (it does not count time
# spent waiting for a core); req/s is printed as the ratio within each round.
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${BIN:-$ROOT/build/bin}
ROUNDS=${ROUNDS:-3}
N=${N:-50000}
DURATION=${DURATION:-5}
DIR=$(mktemp -d /tmp/hop-ipc-tcp.XXXXXX)
cd "$DIR" # the gateway keeps its jobs store in the working directory
PIDS=""
cleanup() {
    for p in $PIDS; do kill "$p" 2>/dev/null || true; done
    rm -rf "$DIR"
}
trap cleanup EXIT INT TERM

. "$ROOT/tests/bench/hop_lib.sh"
# utime + stime of a process, all threads, in clock ticks.
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)

run() {
    port=$(free_port)
    if [ "$1" = ipc ]; then broker="ipc://$DIR/broker"; else broker="tcp://127.0.0.1:$(free_port)"; fi
    "$BIN/barista-gateway" --listen "127.0.0.1:$port" --broker "$broker" --access-log off \
        >"$DIR/gateway.log" 2>&1 &
    gw=$!
    "$BIN/barista-worker" --services hello --connect "$broker" >"$DIR/worker.log" 2>&1 &
    wk=$!
    PIDS="$gw $wk"
    wait_http "http://127.0.0.1:$port/hello" "hop_ipc_tcp ($1)"
    "$BIN/hop_client" "$port" /hello 64 2000 >/dev/null
    g0=$(ticks "$gw")
    w0=$(ticks "$wk")
    "$BIN/hop_client" "$port" /hello 64 "$N" >/dev/null
    g1=$(ticks "$gw")
    w1=$(ticks "$wk")
    rps=$(wrk -t2 -c64 -d"${DURATION}s" "http://127.0.0.1:$port/hello" | awk '/Requests\/sec/ { print $2 }')
    kill "$gw" "$wk"
    wait "$gw" "$wk" 2>/dev/null || true
    PIDS=""
    awk -v h="$1" -v g=$((g1 - g0)) -v w=$((w1 - w0)) -v n="$N" -v hz="$HZ" -v rps="$rps" 'BEGIN {
        printf "%s %.2f %.2f %.2f %.0f\n", h, g * 1e6 / hz / n, w * 1e6 / hz / n, (g + w) * 1e6 / hz / n, rps }'
}

echo "round hop gateway_us worker_us server_us_per_request req_s"
r=1
while [ $r -le "$ROUNDS" ]; do
    t=$(run tcp)
    i=$(run ipc)
    echo "$r $t"
    echo "$r $i"
    echo "$t $i" | awk -v r="$r" '{ printf "%s ipc/tcp: CPU per request %.2f, req/s %.2f\n", r, $9 / $4, $10 / $5 }'
    r=$((r + 1))
done
