#!/usr/bin/env bash
# Background jobs, side by side: Barista (durable SQLite store, then PostgreSQL, email
# task) and Celery + Redis (acks_late, the same task) on this machine, in one run.  The shipped
# email task is internal (only signup enqueues it), so Barista's worker is
# barista-worker-test hosting `public-email`: the same email task, published for
# POST /jobs/email (tests/workers/test_services.h).
#
#   tests/bench/jobs_bench.sh          (as root the first time: installs Celery/Redis)
#
# For each system: wrk POSTs email jobs for BENCH_DURATION seconds with BENCH_CONNS
# connections ("accepted/s" = 202s per second), then the script waits until the
# outbox holds a line for every accepted job ("completed/s" = jobs / time from the
# first POST to the last line).  Barista runs three times: --jobs-fsync 0 (default,
# survives any process kill), 1 (fsync per group commit, survives power loss), and
# with --jobs-db postgres://... on a PostgreSQL 15 the script starts on loopback with
# the server's durable defaults (fsync on, synchronous_commit on: like fsync 1).
# "flows" runs tests/bench/jobs/flow_bench.py against a gateway with two CPU workers of
# the test `calc` task: chains of 3, a chord of 100 and a schedule at 100 Hz (its
# jitter from the task's run log); "celery-flows" the same with Celery + Redis
# (tests/bench/jobs/celery_flow.py: prefork 2, Redis as broker and result backend,
# celery beat with a 10 ms entry).
#
# Environment (defaults in brackets):
#   BENCH_DURATION   seconds of wrk per run, at most 20              [10]
#   BENCH_CONNS      wrk connections                                 [64]
#   BENCH_SYSTEMS    subset of "barista barista-fsync barista-pg celery flows
#                    celery-flows"                                   [all]
#   BARISTA_BIN      directory with barista-gateway/-worker   [<repo>/build/bin]
#   BENCH_PYTHON     interpreter with Debian's celery, fastapi, uvicorn [/usr/bin/python3]
#   BENCH_KEEP       1: keep the temp dir                            [0]
set -eu
set -o pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
DUR=${BENCH_DURATION:-10}
CONNS=${BENCH_CONNS:-64}
SYSTEMS=${BENCH_SYSTEMS:-"barista barista-fsync barista-pg celery flows celery-flows"}
BIN=${BARISTA_BIN:-$ROOT/build/bin}
PY=${BENCH_PYTHON:-/usr/bin/python3}

case $DUR in '' | *[!0-9]*) echo "BENCH_DURATION must be whole seconds" >&2; exit 2 ;; esac
[ "$DUR" -le 20 ] || { echo "BENCH_DURATION must be at most 20" >&2; exit 2; }
log() { printf '[jobs-bench %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
want() { case " $SYSTEMS " in *" $1 "*) return 0 ;; esac; return 1; }

# ---------------------------------------------------------------- packages
PKGS="wrk curl"
if want barista-pg; then
    PKGS="$PKGS postgresql-15"
fi
if want celery || want celery-flows; then
    PKGS="$PKGS python3-celery python3-redis redis-server python3-fastapi python3-uvicorn"
    PKGS="$PKGS python3-uvloop python3-httptools"
fi
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
    [ "$(id -u)" = 0 ] || { echo "missing Debian packages:$missing (run as root)" >&2; exit 1; }
    log "installing:$missing"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing >&2
fi
for b in barista-gateway barista-worker-test; do
    [ -x "$BIN/$b" ] || { echo "$BIN/$b not built (make build)" >&2; exit 1; }
done

# ---------------------------------------------------------------- processes
WORK=$(mktemp -d /tmp/barista-jobs-bench.XXXXXX)
PIDS=""
start() { # start LOGNAME CMD...: runs CMD in its own process group, logs to WORK
    local name=$1; shift
    setsid "$@" >"$WORK/$name.log" 2>&1 &
    PIDS="$PIDS $!"
    disown $!
}
stop_all() {
    for p in $PIDS; do kill -TERM -- "-$p" 2>/dev/null || true; done
    sleep 1
    for p in $PIDS; do kill -KILL -- "-$p" 2>/dev/null || true; done
    PIDS=""
}
cleanup() {
    stop_all
    if [ "${BENCH_KEEP:-0}" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_http() { # wait_http URL: until it answers at all (any status)
    for _ in $(seq 1 100); do
        curl -s -o /dev/null "$1" && return 0
        sleep 0.1
    done
    echo "no answer from $1" >&2
    return 1
}
lines() { [ -f "$1" ] && wc -l <"$1" || echo 0; }
now() { date +%s.%N; }

# measure NAME URL OUTBOX: prints "NAME accepted/s completed/s"
measure() {
    local name=$1 url=$2 outbox=$3
    local before t0 t1 total n m
    before=$(lines "$outbox")
    t0=$(now)
    wrk -t2 -c"$CONNS" -d"${DUR}s" -s "$HERE/jobs/post_job.lua" "$url" >"$WORK/$name.wrk"
    local accepted
    accepted=$(awk '/^Requests\/sec/ {print $2}' "$WORK/$name.wrk")
    local non2xx
    non2xx=$(awk '/Non-2xx/ {print $NF}' "$WORK/$name.wrk")
    total=$(awk '/requests in/ {print $1}' "$WORK/$name.wrk")
    total=$((total - ${non2xx:-0}))
    # Completed: until the outbox holds every accepted job (at most 120 s more).
    for _ in $(seq 1 1200); do
        n=$(($(lines "$outbox") - before))
        [ "$n" -ge "$total" ] && break
        sleep 0.1
    done
    t1=$(now)
    m=$(($(lines "$outbox") - before))
    "$PY" -c "import sys; a,t,m,t0,t1=sys.argv[1:]; print('%-14s accepted %8.0f/s  completed %8.0f/s  (%s of %s jobs done, %s non-2xx)' % ('$name', float(a), int(m)/(float(t1)-float(t0)), m, t, '${non2xx:-0}'))" \
        "$accepted" "$total" "$m" "$t0" "$t1"
}

run_barista() { # run_barista NAME FSYNC [DB]
    local name=$1 fsync=$2 db=${3:-$WORK/$1.db} http broker
    http=$(port); broker=$(port)
    log "$name: gateway + 1 io worker (public-email), --jobs-fsync $fsync"
    BARISTA_OUTBOX="$WORK/$name.outbox" start "$name-gateway" "$BIN/barista-gateway" --local \
        --worker-bin "$BIN/barista-worker-test" \
        --io-services public-email --io-workers 1 --cpu-workers 0 \
        --listen "127.0.0.1:$http" --broker "tcp://127.0.0.1:$broker" \
        --jobs-db "$db" --jobs-fsync "$fsync"
    wait_http "http://127.0.0.1:$http/healthz"
    # Wait for the worker to announce the task (404 until then).
    for _ in $(seq 1 100); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
            -d '{"to":"warmup@example.com"}' "http://127.0.0.1:$http/jobs/email")" = 202 ] && break
        sleep 0.1
    done
    for _ in $(seq 1 100); do
        [ "$(lines "$WORK/$name.outbox")" -ge 1 ] && break
        sleep 0.1
    done
    measure "$name" "http://127.0.0.1:$http/jobs/email" "$WORK/$name.outbox"
    stop_all
}

run_barista_pg() { # a PostgreSQL 15 cluster in WORK (as user postgres when root)
    local bindir pgport as=""
    bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
    pgport=$(port)
    mkdir -p "$WORK/pg"
    if [ "$(id -u)" = 0 ]; then
        chmod 755 "$WORK" && chown postgres: "$WORK/pg" && as="runuser -u postgres --"
    fi
    $as "$bindir/initdb" -D "$WORK/pg/data" -U barista -A trust -E UTF8 --locale=C >/dev/null
    log "barista-pg: postgres $("$bindir/postgres" --version | awk '{print $3}') on port $pgport" \
        "(fsync on, synchronous_commit on)"
    start postgres $as "$bindir/postgres" -D "$WORK/pg/data" -p "$pgport" -k "$WORK/pg" \
        -c listen_addresses=127.0.0.1
    for _ in $(seq 1 100); do
        "$bindir/pg_isready" -q -h 127.0.0.1 -p "$pgport" && break
        sleep 0.1
    done
    "$bindir/psql" -X -q -h 127.0.0.1 -p "$pgport" -U barista -d postgres -c "CREATE DATABASE barista"
    local pgpid=$PIDS
    PIDS=""
    run_barista barista-pg 0 "postgres://barista@127.0.0.1:$pgport/barista"
    PIDS=$pgpid
    stop_all
}

# A Redis for Celery (durable as Barista's default: AOF, fsync every second), named by
# BENCH_REDIS, with the Celery apps of tests/bench/jobs on PYTHONPATH.
start_redis() {
    local redis
    redis=$(port)
    start redis redis-server --port "$redis" --bind 127.0.0.1 --save '' --appendonly yes \
        --appendfsync everysec --dir "$WORK"
    sleep 0.5
    export BENCH_REDIS="redis://127.0.0.1:$redis/0" PYTHONPATH="$HERE/jobs"
}

run_celery() {
    local http
    http=$(port)
    log "celery: redis-server (appendonly, fsync everysec) + celery worker (prefork 2, acks_late," \
        "prefetch ${BENCH_CELERY_PREFETCH:-4}) + uvicorn (FastAPI)"
    start_redis
    export BENCH_OUTBOX="$WORK/celery.outbox"
    start celery-worker "$PY" -m celery -A celery_app worker --pool prefork --concurrency 2 \
        --loglevel warning
    start uvicorn "$PY" -m uvicorn celery_app:api --loop uvloop --http httptools --workers 1 \
        --log-level warning --host 127.0.0.1 --port "$http"
    wait_http "http://127.0.0.1:$http/docs"
    sleep 2 # the celery worker connects
    measure celery "http://127.0.0.1:$http/jobs/email" "$WORK/celery.outbox"
    stop_all
}

run_flows() {
    local http broker
    http=$(port); broker=$(port)
    log "flows: gateway + 2 cpu workers (probe: task calc)"
    BARISTA_TEST_RUNLOG="$WORK/flows.runs" start flows-gateway "$BIN/barista-gateway" --local \
        --worker-bin "$BIN/barista-worker-test" \
        --cpu-services probe --cpu-workers 2 --io-workers 0 \
        --listen "127.0.0.1:$http" --broker "tcp://127.0.0.1:$broker" \
        --jobs-db "$WORK/flows.db"
    wait_http "http://127.0.0.1:$http/healthz"
    "$PY" "$HERE/jobs/flow_bench.py" "$http" "$WORK/flows.runs" "$WORK/flows.db"
    stop_all
}

run_celery_flows() {
    log "celery-flows: redis-server (appendonly, fsync everysec) + celery worker (prefork 2," \
        "acks_late), Redis result backend; then celery beat, 10 ms entry, ${DUR}s"
    start_redis
    export BENCH_RUNLOG="$WORK/beat.runs"
    start celery-flow-worker "$PY" -m celery -A celery_flow worker --pool prefork \
        --concurrency 2 --loglevel warning
    sleep 2 # the worker connects
    (cd "$WORK" && "$PY" "$HERE/jobs/celery_flow.py" chains)
    BENCH_BEAT=1 start celery-beat "$PY" -m celery -A celery_flow beat --loglevel warning \
        --schedule "$WORK/beat-schedule"
    sleep "$DUR"
    stop_all
    "$PY" "$HERE/jobs/celery_flow.py" schedule "$WORK/beat.runs" "$DUR"
}

log "$(nproc) cores, ${DUR}s per run, $CONNS connections; load: $(cut -d' ' -f1-3 /proc/loadavg)"
want barista && run_barista barista 0
want barista-fsync && run_barista barista-fsync 1
want barista-pg && run_barista_pg
want celery && run_celery
want flows && run_flows
want celery-flows && run_celery_flows
