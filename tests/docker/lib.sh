# Shared by the docker tests (e2e.sh, scale_out.sh, swarm.sh): sourced after `root`
# and `name` (the prefix of their lines) are set.
t0=$SECONDS

say() { printf '%s: [%4ds] %s\n' "$name" $((SECONDS - t0)) "$*"; }
die() {
    say "FAILED: $*"
    exit 1
}

# Exits 0 with "NAME: skipped (...)" without a Docker Engine or a compose to drive it;
# otherwise sets compose_cmd (Compose v2, else v1).
need_docker_compose() {
    if ! timeout 20 docker info >/dev/null 2>&1; then
        echo "$name: skipped (no Docker Engine reachable: docker info failed)"
        exit 0
    fi
    if timeout 20 docker compose version >/dev/null 2>&1; then
        compose_cmd=(docker compose)
    elif command -v docker-compose >/dev/null 2>&1; then
        compose_cmd=(docker-compose)
    else
        echo "$name: skipped (neither 'docker compose' nor docker-compose is installed)"
        exit 0
    fi
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# build_images COMMAND...: the base image when missing, then COMMAND (a compose
# build), its output shown only when it fails.
build_images() {
    timeout 600 "$root/deploy/base-image.sh"
    local log
    log="$(mktemp)"
    if ! "$@" >"$log" 2>&1; then
        tail -n 40 "$log" | sed 's/^/    /'
        rm -f "$log"
        die "build"
    fi
    rm -f "$log"
}

# compose SECONDS ARGS...: one compose command on the project `project` with the
# compose files of `files`, bounded in time.
compose() {
    local limit=$1
    shift
    timeout "$limit" "${compose_cmd[@]}" -p "$project" "${files[@]}" "$@"
}

# compose_down RC: the project's logs when RC is not 0, then `down -v`, and says so.
compose_down() {
    if [ "$1" -ne 0 ]; then
        say "logs of the failed run:"
        compose 60 logs --no-color --tail 40 2>&1 | sed 's/^/    /' || true
    fi
    compose 120 down -v --remove-orphans >/dev/null 2>&1 || say "WARNING: down -v failed"
    say "project $project removed"
}

# The images of the scale-out overlay to build, in `services`: postgres and lb (they
# build nothing of Barista's, so they are cache hits after the first), and the
# platform unless BARISTA_REUSE_IMAGE=1 (take barista:TAG as it is).
overlay_services() {
    services=(postgres lb)
    [ "${BARISTA_REUSE_IMAGE:-0}" = 1 ] || services+=(gateway)
}

probe="$root/tests/docker/probe.py"
need_docker_compose
