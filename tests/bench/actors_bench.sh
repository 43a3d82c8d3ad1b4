#!/bin/sh
# actors_bench.sh - keyed actor messages/s against a stateless route, same gateway,
# same worker process, same machine.
#
# Starts barista-gateway (its own actor store in a temporary directory) and one
# barista-worker hosting `hello` and `counter`, then runs wrk for DURATION on each of:
#
#   stateless        GET  /hello/x                      no actor
#   actor-hot        GET  /counters/hot                 one key: turns one at a time
#   actor-10k        GET  /counters/k<random 1..10000>  no state change
#   commit-hot       POST /counters/hot/increment       one key, one commit per turn
#   commit-10k       POST /counters/k<random>/increment 10,000 keys, a commit per turn
#
# and prints requests/s and latency percentiles (wrk --latency).  Then, paced at about
# RATE turns/s (PACED_CONNECTIONS connections, each waiting PACED_CONNECTIONS * 1000 /
# RATE ms between requests - wrk's delay(), an approximation of a constant rate):
#
#   paced-10k    POST /counters/k<random>/increment at ~RATE/s: its p99, and the
#                gateway's RSS right after
#
# Expects a release build in build/ (make build), or BARISTA_BIN.  About 6 x DURATION.
#
#   tests/bench/actors_bench.sh
#   DURATION=5s CONNECTIONS=64 RATE=10000 tests/bench/actors_bench.sh
set -eu

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${BARISTA_BIN:-$ROOT/build/bin}
DURATION=${DURATION:-8s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-1}
KEYS=${KEYS:-10000}
RATE=${RATE:-10000}
PACED_CONNECTIONS=${PACED_CONNECTIONS:-100}
GW_PORT=${GW_PORT:-18190}
BROKER_PORT=${BROKER_PORT:-18191}

command -v wrk >/dev/null || { echo "wrk not found: apt-get install wrk" >&2; exit 1; }
command -v curl >/dev/null || { echo "curl not found" >&2; exit 1; }
[ -x "$BIN/barista-gateway" ] || { echo "no $BIN/barista-gateway: run make build" >&2; exit 1; }

TMP=$(mktemp -d)
PIDS=""
cleanup() {
    for p in $PIDS; do kill "$p" 2>/dev/null || true; done
    for p in $PIDS; do wait "$p" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

"$BIN/barista-gateway" --listen "127.0.0.1:$GW_PORT" --broker "tcp://127.0.0.1:$BROKER_PORT" \
    --actors-db "$TMP/actors.db" --jobs-db "$TMP/jobs.db" --log-level warn \
    >"$TMP/gateway.log" 2>&1 &
PIDS="$PIDS $!"
"$BIN/barista-worker" --services hello,counter --connect "tcp://127.0.0.1:$BROKER_PORT" \
    >"$TMP/worker.log" 2>&1 &
PIDS="$PIDS $!"
i=0
until curl -sf -XPOST "http://127.0.0.1:$GW_PORT/counters/ready/increment" >/dev/null; do
    i=$((i + 1))
    [ $i -lt 100 ] || { echo "gateway or worker did not start" >&2; cat "$TMP"/*.log >&2; exit 1; }
    sleep 0.1
done

# script <method> <path format with %d> <keys> [delay ms]: a wrk script picking a
# random key (and pausing `delay` ms before each request).
script() {
    cat >"$TMP/s.lua" <<EOF
local n = $3
math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
request = function()
  return wrk.format("$1", string.format("$2", math.random(n)), {["Content-Length"] = "0"})
end
EOF
    [ -z "${4:-}" ] || echo "delay = function() return $4 end" >>"$TMP/s.lua"
}

# run <name> <method> <path format> <keys> [connections] [delay ms]
run() {
    script "$2" "$3" "$4" "${6:-}"
    out=$(wrk -t "$THREADS" -c "${5:-$CONNECTIONS}" -d "$DURATION" --latency -s "$TMP/s.lua" \
        "http://127.0.0.1:$GW_PORT")
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    p50=$(echo "$out" | awk '$1 == "50%" {print $2}')
    p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
    errs=$(echo "$out" | awk '/Non-2xx/ {print $4}')
    printf '%-11s %10s req/s   p50 %8s   p99 %8s   non-2xx %s\n' "$1" "$rps" "$p50" "$p99" \
        "${errs:-0}"
}

echo "wrk -t $THREADS -c $CONNECTIONS -d $DURATION, $KEYS keys"
run stateless GET "/hello/x%d" 1
run actor-hot GET "/counters/hot%d" 1
run actor-10k GET "/counters/k%d" "$KEYS"
run commit-hot POST "/counters/hot%d/increment" 1
run commit-10k POST "/counters/k%d/increment" "$KEYS"
run paced-10k POST "/counters/k%d/increment" "$KEYS" "$PACED_CONNECTIONS" \
    $((PACED_CONNECTIONS * 1000 / RATE))
for p in $PIDS; do
    [ "$(cat /proc/$p/comm 2>/dev/null)" = "barista-gateway" ] && grep VmRSS /proc/$p/status | sed 's/^/gateway after paced: /'
done
curl -s "http://127.0.0.1:$GW_PORT/metrics" | grep -E '^barista_actors_(turns|commits|activations|store_transactions)_total|^barista_actors_fenced' || true
for p in $PIDS; do
    [ "$(cat /proc/$p/comm 2>/dev/null)" = "barista-gateway" ] && grep VmHWM /proc/$p/status | sed 's/^/gateway /'
    [ "$(cat /proc/$p/comm 2>/dev/null)" = "barista-worker" ] && grep VmHWM /proc/$p/status | sed 's/^/worker  /'
done
