#!/bin/sh
# sleep_memory.sh - peak RSS of the gateway and one I/O worker while CONNS connections
# each wait on GET /sleep?ms=1000 (scenario 2 of tests/bench/compare/run.sh), and the
# memory per connection: (peak - RSS before the load) / CONNS.
#
#   tests/bench/sleep_memory.sh            CONNS=10000 SECONDS_=6 BIN=build/bin
#
# With SECONDS_=10 it is also scenario 2 of the comparison: steady_rps and little_rps come
# from tests/bench/compare/steady.lua, as in that script's table.
#
# BROKER picks the hop (default tcp://127.0.0.1:PORT).  wrk needs one fd per
# connection: run with `ulimit -n` above CONNS + 1000.  It reads VmHWM from
# /proc/PID/status (the kernel's own peak), so no sampling can miss the top.  It also
# samples /proc/PID/smaps_rollup every 0.2 s during the load and prints each process's
# peak private (anonymous) and PSS memory next to its RSS: RSS counts the shared
# libraries' pages in full in each process (RssFile), which no connection changes.
# Environment (e.g. MALLOC_ARENA_MAX) reaches both processes.
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=$(cd "${BIN:-$ROOT/build/bin}" && pwd) # absolute: the run happens in a temporary directory
CONNS=${CONNS:-10000}
SECS=${SECONDS_:-6}
DIR=$(mktemp -d /tmp/sleep-memory.XXXXXX)
cd "$DIR" # the gateway keeps its jobs store in the working directory
PIDS=""
cleanup() {
    for p in $PIDS; do kill "$p" 2>/dev/null || true; done
    sleep 1
    rm -rf "$DIR"
}
trap cleanup EXIT INT TERM

. "$ROOT/tests/bench/hop_lib.sh"
kb() { sed -n "s/^$2:[[:space:]]*\([0-9]*\) kB/\1/p" "/proc/$1/status"; }

port=$(free_port)
broker=${BROKER:-tcp://127.0.0.1:$(free_port)}
"$BIN/barista-gateway" --listen "127.0.0.1:$port" --broker "$broker" \
    --max-connections $((CONNS + 1000)) >$DIR/gateway.log 2>&1 &
GW=$!
"$BIN/barista-worker" --services hello,sleep --connect "$broker" --concurrency 16384 \
    >$DIR/worker.log 2>&1 &
WK=$!
PIDS="$GW $WK"
wait_http "http://127.0.0.1:$port/sleep?ms=1" sleep_memory
gw0=$(kb "$GW" VmRSS)
wk0=$(kb "$WK" VmRSS)
for p in "$GW" "$WK"; do
    echo "$p before: RssAnon $(kb "$p" RssAnon) kB, RssFile $(kb "$p" RssFile) kB"
done
# rollup P: "Rss Pss Pss_Anon" of P in kB, one line.
rollup() { awk '$1 == "Rss:" || $1 == "Pss:" || $1 == "Pss_Anon:" { printf "%s ", $2 }' "/proc/$1/smaps_rollup"; }
(while :; do echo "g $(rollup "$GW")"; echo "w $(rollup "$WK")"; sleep 0.2; done) >"$DIR/samples" 2>/dev/null &
SAMPLER=$!
PIDS="$PIDS $SAMPLER"
uptime
wrk -t2 -c"$CONNS" -d"${SECS}s" --timeout 5s --latency -s "$ROOT/tests/bench/compare/steady.lua" \
    "http://127.0.0.1:$port/sleep?ms=1000" -- "$CONNS" >$DIR/wrk 2>&1
uptime
kill "$SAMPLER" 2>/dev/null || true
for p in "$GW" "$WK"; do
    echo "$p after: RssAnon $(kb "$p" RssAnon) kB, RssFile $(kb "$p" RssFile) kB"
done
gw1=$(kb "$GW" VmHWM)
wk1=$(kb "$WK" VmHWM)
grep -E 'requests in|Requests/sec|50%|99%|Socket errors|Non-2xx|steady_rps|little_rps' "$DIR/wrk" || true
awk -v g0="$gw0" -v g1="$gw1" -v w0="$wk0" -v w1="$wk1" -v n="$CONNS" 'BEGIN {
    printf "gateway: %.1f MiB before, %.1f MiB peak: %.0f bytes per connection\n", g0/1024, g1/1024, (g1-g0)*1024/n
    printf "worker:  %.1f MiB before, %.1f MiB peak: %.0f bytes per request in flight\n", w0/1024, w1/1024, (w1-w0)*1024/n
    printf "together: %.1f MiB peak (%.1f MB)\n", (g1+w1)/1024, (g1+w1)*1024/1e6 }'
awk '{ if ($3 > pss[$1]) pss[$1] = $3; if ($4 > anon[$1]) anon[$1] = $4 } END {
    printf "sampled peak PSS: gateway %.1f MiB, worker %.1f MiB; private anonymous: gateway %.1f MiB, worker %.1f MiB\n",
        pss["g"]/1024, pss["w"]/1024, anon["g"]/1024, anon["w"]/1024 }' "$DIR/samples"
