#!/bin/bash
# The scale-out overlay as its users run it: two gateways behind HAProxy, PostgreSQL,
# workers registered with both (deploy/compose.scale-out.yml), on this machine's
# Docker Engine.
#
#   tests/docker/scale_out.sh            (tests/docker/e2e.sh runs it at its end)
#
# Brings the overlay up under a unique project on free ports, waits until both
# gateways serve every route, submits jobs to the first gateway directly, then sends
# load through HAProxy (tests/docker/lb_load.py) and `docker kill -s KILL`s the first
# gateway in the middle of it.  Passes when only the requests in flight at the kill
# failed, every later one was answered by the other gateway, and every job the killed
# gateway had accepted completed, and keyed actors (the counters, routed by key) kept
# their counts and answered through the other gateway.  The jobs: with both gateways
# on one PostgreSQL queue (the overlay's default) the other gateway adopts and runs
# them, read through it; with BARISTA_SCALE_OUT_SHARED_JOBS=0 (a queue per gateway)
# they complete once the killed gateway is started again.  Each
# step is bounded; the project is always torn down (`down -v`).
# Without a Docker Engine it prints "docker scale-out: skipped (...)" and exits 0.
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
name="docker scale-out"
. "$root/tests/docker/lib.sh" # say, die, compose, ...; skips without Docker
BARISTA_TAG="${BARISTA_TAG:-e2e}" # the tag e2e.sh builds: its layers are reused
project="barista-scale-$$"
BARISTA_PORT="$(free_port)"
BARISTA_PORT_2="$(free_port)"
BARISTA_LB_PORT="$(free_port)"
export BARISTA_PORT BARISTA_PORT_2 BARISTA_LB_PORT BARISTA_TAG
shared="${BARISTA_SCALE_OUT_SHARED_JOBS:-1}"
if [ "$shared" = 0 ]; then
    export BARISTA_JOBS_DB_2=barista_jobs_2 # gateway-2 on a queue of its own
fi

files=(-f "$root/docker-compose.yml" -f "$root/deploy/compose.scale-out.yml")
load=""
marks="$(mktemp)"
teardown() {
    local rc=$?
    [ -z "$load" ] || kill "$load" 2>/dev/null || true
    rm -f "$marks"
    compose_down $rc
    exit $rc
}
trap teardown EXIT
trap 'exit 130' INT TERM

# The platform image is the one e2e.sh has just built: a cache hit here.
overlay_services
say "base image and build of ${services[*]} (cached after the first: project $project)"
build_images compose 1200 build "${services[@]}"

say "up -d: postgres, gateway on :$BARISTA_PORT, gateway-2 on :$BARISTA_PORT_2, HAProxy on :$BARISTA_LB_PORT"
compose 240 up -d >/dev/null 2>&1 || die "up"
timeout 120 python3 "$probe" "$BARISTA_PORT" ready || die "gateway never became ready"
timeout 120 python3 "$probe" "$BARISTA_PORT_2" ready || die "gateway-2 never became ready"
timeout 120 python3 "$probe" "$BARISTA_LB_PORT" ready || die "HAProxy never served every route"
timeout 60 python3 "$probe" "$BARISTA_LB_PORT" routes >/dev/null || die "the routes through HAProxy"
gwlog="$(compose 30 logs --no-color gateway gateway-2)"
grep -qiF "postgres" <<<"$gwlog" || echo "    (the gateways' logs do not name PostgreSQL)"

say "keyed actors through HAProxy: each key at one gateway, no 409"
timeout 120 python3 "$probe" "$BARISTA_LB_PORT" counters-bump 3 || die "counters before the kill"
timeout 60 python3 "$probe" "$BARISTA_LB_PORT" counters-expect 3 || die "counters before the kill"

say "jobs accepted by gateway (its own port), still queued or running at the kill"
jobs=()
for _ in 1 2 3 4; do
    job="$(timeout 30 python3 "$probe" "$BARISTA_PORT" job-submit)" || die "job submit"
    [ "$job" != skip ] || die "POST /jobs answered 404"
    jobs+=("$job")
done
echo "    ${jobs[*]}"

say "load through HAProxy for 14 s; kill -9 of gateway after 5 s"
victim="$(compose 30 ps -q gateway)"
timeout 120 python3 "$root/tests/docker/lb_load.py" "$BARISTA_LB_PORT" 14 "$marks" &
load=$!
sleep 5
date +%s.%N >"$marks"
docker kill -s KILL "$victim" >/dev/null || die "docker kill"
date +%s.%N >>"$marks"
say "killed gateway ${victim:0:12}"
wait "$load" || die "failed requests beyond those in flight at the kill, or the service stopped answering"
load=""

say "the killed gateway's counters moved to gateway-2 with their counts"
timeout 60 python3 "$probe" "$BARISTA_LB_PORT" counters-expect 3 || die "counters after the kill"
timeout 120 python3 "$probe" "$BARISTA_LB_PORT" counters-bump 1 || die "counters after the kill"
timeout 60 python3 "$probe" "$BARISTA_LB_PORT" counters-expect 4 || die "counters after the kill"

if [ "$shared" = 1 ]; then
    say "the killed gateway's jobs complete on the shared queue, read through gateway-2"
    for job in "${jobs[@]}"; do
        timeout 90 python3 "$probe" "$BARISTA_PORT_2" job-wait "$job" || die "job $job lost"
    done
else
    say "the killed gateway's jobs wait in its own queue: start it again; they complete"
    compose 60 start gateway >/dev/null 2>&1 || die "start gateway"
    # The jobs are `report`, a CPU task: the slot of cpu-worker moved to gateway-2 when
    # gateway died, and goes home by itself once gateway is back (no restart of the
    # worker: at whatever address the container got, gateway is its first endpoint).
    for job in "${jobs[@]}"; do
        timeout 90 python3 "$probe" "$BARISTA_PORT" job-wait "$job" || die "job $job lost"
    done
fi

say "passed"
