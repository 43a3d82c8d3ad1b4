#!/bin/sh
# run.sh - every benchmark once, short by default (what `make bench` runs).
#
# Expects the release build in build/ (make build).  Runs, one after another:
#   1. http_bench.sh       the gateway's own HTTP front (/healthz) vs nginx
#   2. compare/run.sh      issue 4: /hello, 10,000 x /sleep?ms=1000, /hello under /hash,
#                          Barista vs nginx, Mongrel2 and FastAPI (needs root to install
#                          missing Debian packages; see compare/README.md)
#   3. db/db_bench.py      issue 20: PostgreSQL and Redis through a worker vs FastAPI +
#                          asyncpg / redis.asyncio, and vs br_offload + blocking libpq
#   4. proto_bench, json_bench, workers_bench   micro benchmarks from build/bin
# and prints where each result file is.  docs/benchmarks.md records the numbers.
#
#   sh tests/bench/run.sh                        # ~3 minutes
#   BENCH_DURATION=10 sh tests/bench/run.sh      # the documented 10 s runs
#   BENCH_ONLY="micro" sh tests/bench/run.sh     # any of: http compare db micro
#
# Environment: BENCH_DURATION (seconds per wrk run, default 5), BENCH_ONLY (default
# "http compare db micro"), BENCH_OUT (result directory, default build/bench/<UTC time>);
# compare/run.sh's own variables (BENCH_SCENARIOS, BENCH_SERVERS, ...) pass through.
set -eu

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${BARISTA_BIN:-$ROOT/build/bin}
DUR=${BENCH_DURATION:-5}
ONLY=${BENCH_ONLY:-"http compare db micro"}
OUT=${BENCH_OUT:-$ROOT/build/bench/$(date -u +%Y%m%dT%H%M%SZ)}

want() { case " $ONLY " in *" $1 "*) return 0 ;; esac; return 1; }
say() { printf '[bench] %s\n' "$*" >&2; }

for b in barista-gateway barista-worker proto_bench json_bench workers_bench; do
    [ -x "$BIN/$b" ] || { echo "no $BIN/$b: run make build first" >&2; exit 1; }
done
mkdir -p "$OUT"
STATUS=0

if want http; then
    say "HTTP front: http_bench.sh (${DUR}s per run, 1 round)"
    DURATION="${DUR}s" ROUNDS=${ROUNDS:-1} BARISTA_BIN="$BIN" \
        sh "$ROOT/tests/bench/http_bench.sh" >"$OUT/http.txt" 2>&1 || STATUS=1
    tail -n 6 "$OUT/http.txt"
fi

if want compare; then
    say "issue 4 comparison: compare/run.sh (${DUR}s per run)"
    BENCH_DURATION=$DUR BARISTA_BIN="$BIN" BENCH_TABLE="$OUT/compare.md" \
        bash "$ROOT/tests/bench/compare/run.sh" >"$OUT/compare.log" 2>&1 || STATUS=1
    [ -f "$OUT/compare.md" ] && cat "$OUT/compare.md"
fi

if want db; then
    say "issue 20 database clients: db/db_bench.py (${DUR}s per run)"
    BENCH_DURATION=$DUR BARISTA_BIN="$BIN" /usr/bin/python3 "$ROOT/tests/bench/db/db_bench.py" \
        >"$OUT/db.md" 2>"$OUT/db.log" || STATUS=1
    cat "$OUT/db.md"
fi

if want micro; then
    say "micro benchmarks: proto_bench, json_bench, workers_bench"
    {
        echo "## proto_bench"
        "$BIN/proto_bench"
        echo "## json_bench"
        "$BIN/json_bench"
        echo "## workers_bench hello 100000 64"
        "$BIN/workers_bench" hello 100000 64 2>/dev/null
        echo "## workers_bench sleep 10000 1000"
        "$BIN/workers_bench" sleep 10000 1000 2>/dev/null
    } >"$OUT/micro.txt" 2>&1 || STATUS=1
    cat "$OUT/micro.txt"
fi

say "results in $OUT:"
ls -1 "$OUT" | sed 's/^/  /' >&2
exit $STATUS
