#!/bin/bash
# The platform as its users run it: docker compose, on this machine's Docker Engine.
#
#   tests/docker/e2e.sh
#
# Builds the image (and the base image when missing), starts the compose project,
# checks that the workers authenticated with the CURVE keys the stack made on first
# run and that a worker without keys cannot join, checks every built-in route's exact
# answer, adds the notes example service with the commands of docs/workers.md ("Into
# compose": the SDK and runtime images, the example's image, its compose fragment,
# which gives its pool a key through the keys service) and shows that nothing
# restarted, that the gateway took the new key in without a signal, and that its
# routes are documented and answer, scales
# cpu-worker to 3 without
# restarting anything and shows each of the three serving, kills a worker during
# requests and shows none hangs, restarts the gateway (a job accepted before the
# restart completes after it, once the jobs service exists), then stops everything
# and requires every process to have exited cleanly.  Last, tests/docker/scale_out.sh:
# two gateways behind HAProxy with PostgreSQL, one of them killed under load
# (BARISTA_E2E_SCALE_OUT=0 skips it).  Each step is bounded; a unique
# compose project on a free port is always torn down (`down -v`), even on failure.
# Without a reachable Docker Engine it prints "docker e2e: skipped (...)" and exits 0.
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
name="docker e2e"
. "$root/tests/docker/lib.sh" # say, die, compose, ...; skips without Docker

project="barista-e2e-$$"
BARISTA_PORT="$(free_port)"
BARISTA_TAG=e2e # one image tag for every run: rebuilds reuse its layers
# Replies name their worker (off by default): the scaling step tells workers apart.
BARISTA_WORKER_HEADER=1
export BARISTA_PORT BARISTA_TAG BARISTA_WORKER_HEADER

# The compose files of the project: the platform's, then (once added) the example's.
files=(-f "$root/docker-compose.yml")

storm=""
shim=""
teardown() {
    local rc=$?
    [ -z "$storm" ] || kill "$storm" 2>/dev/null || true
    [ -z "$shim" ] || rm -rf "$shim"
    compose_down $rc
    exit $rc
}
trap teardown EXIT
trap 'exit 130' INT TERM

# ids SERVICE: its containers' ids with their start times, one per line.
ids() {
    local c
    for c in $(compose 30 ps -q "$1"); do
        docker inspect -f '{{.Id}} {{.State.StartedAt}}' "$c"
    done | sort
}

say "base image (only when missing) and build (${compose_cmd[*]}, project $project)"
build_images compose 1200 build

say "up -d (gateway on 127.0.0.1:$BARISTA_PORT)"
compose 180 up -d >/dev/null 2>&1 || die "up"
timeout 90 python3 "$probe" "$BARISTA_PORT" ready || die "the gateway never became ready"

say "workers authenticated with the keys made on first run; a worker without keys is refused"
gwlog="$(compose 30 logs --no-color gateway)"
grep -qF "CURVE keys required" <<<"$gwlog" || die "the gateway does not require CURVE keys"
grep -qF "key io-worker" <<<"$gwlog" || die "the io-worker did not join with its key"
grep -qF "key cpu-worker" <<<"$gwlog" || die "the cpu-worker did not join with its key"
joined="$(grep -c " joined:" <<<"$gwlog")"
image="${BARISTA_IMAGE:-barista}:$BARISTA_TAG"
network="$(docker inspect -f '{{range $k, $v := .NetworkSettings.Networks}}{{$k}}{{end}}' \
    "$(compose 30 ps -q gateway)")"
intruder="$(docker run -d --rm --network "$network" -e BARISTA_SERVICES=hello \
    -e BARISTA_CONNECT=tcp://gateway:5555 "$image" barista-worker)" || die "docker run"
# Without CURVE its handshake fails, so the broker never hears from it: it says so
# itself by giving up on a silent broker and reconnecting.
tried=""
for _ in $(seq 40); do
    tried="$(docker logs "$intruder" 2>&1 | grep -F "reconnecting" | sed -n 1p)" && [ -n "$tried" ] &&
        break
    sleep 0.25
done
docker stop -t 5 "$intruder" >/dev/null 2>&1 || true
[ -n "$tried" ] || die "the keyless worker never tried to register"
echo "    keyless worker: $tried"
gwlog="$(compose 30 logs --no-color gateway)"
[ "$(grep -c " joined:" <<<"$gwlog")" -eq "$joined" ] || die "a worker without keys joined"
echo "    $(grep -F "CURVE keys required" <<<"$gwlog" | sed -n 1p)"

say "every built-in route answers"
timeout 60 python3 "$probe" "$BARISTA_PORT" routes || die "routes"

say "docs/workers.md, \"Into compose\": the notes example joins; nothing running restarts"
# The docs say `docker compose`; where only Compose v1 is installed, a shim in PATH
# runs `docker-compose` for it.  The project and the port come from the environment.
shim="$(mktemp -d)"
real_docker="$(command -v docker)"
printf '#!/bin/sh\nif [ "$1" = compose ] && ! "%s" compose version >/dev/null 2>&1; then\n    shift\n    exec docker-compose "$@"\nfi\nexec "%s" "$@"\n' \
    "$real_docker" "$real_docker" >"$shim/docker"
chmod +x "$shim/docker"
before="$(ids gateway; ids io-worker; ids cpu-worker)"
notes_log="$(mktemp)"
if ! COMPOSE_PROJECT_NAME="$project" BARISTA_DOC_HTTP_PORT="$BARISTA_PORT" PATH="$shim:$PATH" \
    timeout 1500 python3 "$root/tests/sdk/doctest.py" "$root/docs/workers.md" docker "$root" --no-files \
    >"$notes_log" 2>&1; then
    tail -n 40 "$notes_log" | sed 's/^/    /'
    rm -f "$notes_log"
    die "the docs' compose commands"
fi
rm -f "$notes_log"
files+=(-f "$root/workers/examples/notes/compose.yml")
after="$(ids gateway; ids io-worker; ids cpu-worker)"
[ "$before" = "$after" ] || die "adding the notes service restarted a container"
timeout 60 python3 "$probe" "$BARISTA_PORT" notes || die "the notes routes"
# The fragment's pool got a key of its own from the keys service, and the running
# gateway took it in by watching its directory: nobody sent it a signal.
gwlog="$(compose 30 logs --no-color gateway)"
grep -F " joined:" <<<"$gwlog" | grep -qF "key notes" || die "the notes workers did not join with the pool's key"
grep -qF "the authorised keys changed: reloading" <<<"$gwlog" ||
    die "the gateway did not reload its keys when the notes key appeared"
! grep -qF "SIGHUP" <<<"$gwlog" || die "the gateway was sent SIGHUP"
echo "    $(grep -F " joined:" <<<"$gwlog" | grep -F "key notes" | sed -n 1p)"

say "scale cpu-worker to 3; nothing running restarts"
before="$(ids gateway; ids io-worker; ids cpu-worker)"
compose 180 up -d --scale cpu-worker=3 >/dev/null 2>&1 || die "up --scale cpu-worker=3"
after="$(ids gateway; ids io-worker; ids cpu-worker)"
while read -r line; do
    grep -qxF "$line" <<<"$after" || die "scaling restarted a container: $line"
done <<<"$before"
[ "$(compose 30 ps -q cpu-worker | wc -l)" -eq 3 ] || die "not 3 cpu-worker containers"
timeout 90 python3 "$probe" "$BARISTA_PORT" workers 3 || die "the three cpu workers"

say "docker kill one cpu-worker during requests: every request answered"
timeout 60 python3 "$probe" "$BARISTA_PORT" storm 6 &
storm=$!
sleep 2
victim="$(compose 30 ps -q cpu-worker | sed -n 1p)" # sed, not head: no SIGPIPE
docker kill "$victim" >/dev/null || die "docker kill"
say "killed ${victim:0:12}"
wait "$storm" || die "requests hung or failed while a worker was killed"
storm=""
# The broker notices a lost worker by a failed send or by missed heartbeats: seconds.
for _ in $(seq 40); do
    noticed="$(compose 30 logs --no-color gateway | grep -F "${victim:0:12}" | grep -F removed)" &&
        break
    sleep 0.5
done
[ -n "$noticed" ] || die "the gateway did not notice the killed worker"
echo "    $noticed"
docker rm -f -v "$victim" >/dev/null # it exited with 137, as killed; the clean-stop check skips it

say "docker compose restart gateway"
job="$(timeout 30 python3 "$probe" "$BARISTA_PORT" job-submit)" || die "job submit"
compose 60 restart gateway >/dev/null 2>&1 || die "restart gateway"
timeout 90 python3 "$probe" "$BARISTA_PORT" ready || die "not ready after the gateway restart"
timeout 60 python3 "$probe" "$BARISTA_PORT" routes >/dev/null || die "routes after the restart"
say "workers rejoined; every route answers again"
[ "$job" != skip ] || die "POST /jobs answered 404: the jobs API is missing"
timeout 90 python3 "$probe" "$BARISTA_PORT" job-wait "$job" || die "job $job after the restart"
say "job $job, accepted before the restart, completed after it"

say "stop: every process exits cleanly within its grace period"
running="$(compose 30 ps -q)"
compose 120 stop >/dev/null 2>&1 || die "stop"
for c in $running; do
    read -r cname code <<<"$(docker inspect -f '{{.Name}} {{.State.ExitCode}}' "$c")"
    echo "    $cname exited $code"
    [ "$code" -eq 0 ] || die "$cname exited $code"
done
compose 120 down -v >/dev/null 2>&1 || die "down -v"
[ -z "$(compose 30 ps -q)" ] || die "containers left after down"

if [ "${BARISTA_E2E_SCALE_OUT:-1}" != 0 ]; then
    say "the scale-out overlay: two gateways, HAProxy, PostgreSQL (tests/docker/scale_out.sh)"
    BARISTA_TAG="$BARISTA_TAG" "$root/tests/docker/scale_out.sh" || die "scale-out"
else
    say "the scale-out overlay: skipped (BARISTA_E2E_SCALE_OUT=0)"
fi
say "passed"
