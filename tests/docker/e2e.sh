#!/bin/bash
# The platform as its users run it: docker compose, on this machine's Docker Engine.
#
#   tests/docker/e2e.sh
#
# Builds the image (and the base image when missing), starts the compose project,
# checks every built-in route's exact answer, adds the notes example service with the
# commands of docs/workers.md ("Into compose": the SDK and runtime images, the
# example's image, its compose fragment) and shows that nothing restarted and its
# routes are documented and answer, scales cpu-worker to 3 without
# restarting anything and shows each of the three serving, kills a worker during
# requests and shows none hangs, restarts the gateway (a job accepted before the
# restart completes after it, once the jobs service exists), then stops everything
# and requires every process to have exited cleanly.  Each step is bounded; a unique
# compose project on a free port is always torn down (`down -v`), even on failure.
# Without a reachable Docker Engine it prints "docker e2e: skipped (...)" and exits 0.
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
probe="$root/tests/docker/probe.py"
t0=$SECONDS

say() { printf 'docker e2e: [%4ds] %s\n' $((SECONDS - t0)) "$*"; }
die() {
    say "FAILED: $*"
    exit 1
}

if ! timeout 20 docker info >/dev/null 2>&1; then
    echo "docker e2e: skipped (no Docker Engine reachable: docker info failed)"
    exit 0
fi
if timeout 20 docker compose version >/dev/null 2>&1; then
    compose_cmd=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
    compose_cmd=(docker-compose)
else
    echo "docker e2e: skipped (neither 'docker compose' nor docker-compose is installed)"
    exit 0
fi

project="barista-e2e-$$"
BARISTA_PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
BARISTA_TAG=e2e # one image tag for every run: rebuilds reuse its layers
export BARISTA_PORT BARISTA_TAG

# The compose files of the project: the platform's, then (once added) the example's.
files=(-f "$root/docker-compose.yml")

# compose SECONDS ARGS...: one compose command on this project, bounded in time.
compose() {
    local limit=$1
    shift
    timeout "$limit" "${compose_cmd[@]}" -p "$project" "${files[@]}" "$@"
}

storm=""
shim=""
teardown() {
    local rc=$?
    [ -z "$storm" ] || kill "$storm" 2>/dev/null || true
    if [ $rc -ne 0 ]; then
        say "logs of the failed run:"
        compose 60 logs --no-color --tail 40 2>&1 | sed 's/^/    /' || true
    fi
    compose 120 down -v --remove-orphans >/dev/null 2>&1 || say "WARNING: down -v failed"
    [ -z "$shim" ] || rm -rf "$shim"
    say "project $project removed"
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

say "base image (deploy/base-image.sh, only when missing)"
timeout 600 "$root/deploy/base-image.sh"

say "build (${compose_cmd[*]}, project $project)"
build_log="$(mktemp)"
if ! compose 1200 build >"$build_log" 2>&1; then
    tail -n 40 "$build_log" | sed 's/^/    /'
    rm -f "$build_log"
    die "build"
fi
rm -f "$build_log"

say "up -d (gateway on 127.0.0.1:$BARISTA_PORT)"
compose 180 up -d >/dev/null 2>&1 || die "up"
timeout 90 python3 "$probe" "$BARISTA_PORT" ready || die "the gateway never became ready"

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
    read -r name code <<<"$(docker inspect -f '{{.Name}} {{.State.ExitCode}}' "$c")"
    echo "    $name exited $code"
    [ "$code" -eq 0 ] || die "$name exited $code"
done
compose 120 down -v >/dev/null 2>&1 || die "down -v"
[ -z "$(compose 30 ps -q)" ] || die "containers left after down"
say "passed"
