#!/bin/bash
# compose_net_bench.sh - GET /hello through compose: the published port (Docker's
# userland proxy) vs the gateway on the host's network (deploy/compose.host-network.yml),
# the same image, one run.
#
#   tests/bench/compose_net_bench.sh                # defaults below
#   DURATION=5s ROUNDS=1 tests/bench/compose_net_bench.sh
#
# Uses the image tag BARISTA_TAG (default e2e, the one tests/docker/e2e.sh builds; it
# builds only when the image is missing).  Starts the gateway and the io pool only
# (compose project barista-netbench-PID on free ports), runs
# `wrk -tTHREADS -cCONNECTIONS -dDURATION` on 127.0.0.1:PORT/hello ROUNDS times against
# each of: the published port, the container's own address on the compose network (no
# proxy, still NAT-free bridge routing), then - after recreating the gateway on the
# host's network - the host port.  Prints requests/s per round, the means, the commit,
# the time and the load average.  Every project it starts is removed (`down -v`).
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-2}
command -v wrk >/dev/null || { echo "wrk not found: apt-get install wrk" >&2; exit 1; }
command -v docker-compose >/dev/null && compose_cmd=(docker-compose) || compose_cmd=(docker compose)

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
project="barista-netbench-$$"
BARISTA_PORT="$(free_port)"
BARISTA_BROKER_PORT="$(free_port)"
BARISTA_TAG="${BARISTA_TAG:-e2e}"
export BARISTA_PORT BARISTA_BROKER_PORT BARISTA_TAG
files=(-f "$root/docker-compose.yml")
compose() { timeout 300 "${compose_cmd[@]}" -p "$project" "${files[@]}" "$@"; }
cleanup() { compose down -v --remove-orphans >/dev/null 2>&1 || true; }
trap cleanup EXIT
trap 'exit 130' INT TERM

docker image inspect "barista:$BARISTA_TAG" >/dev/null 2>&1 || compose build gateway >/dev/null

# wait_hello HOST PORT: until /hello answers (the io worker has registered).
wait_hello() {
    for _ in $(seq 120); do
        [ "$(curl -s -m 2 "http://$1:$2/hello" 2>/dev/null)" = '{"message":"hello"}' ] && return 0
        sleep 0.5
    done
    echo "compose_net_bench: /hello never answered on $1:$2" >&2
    exit 1
}

# bench NAME HOST PORT: ROUNDS runs of wrk; prints each and the mean.
declare -A mean
bench() {
    local sum=0 r rps
    for r in $(seq "$ROUNDS"); do
        rps=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" "http://$2:$3/hello" |
            awk '/^Requests\/sec/ { printf "%d", $2 }')
        echo "  $1 round $r: $rps requests/s"
        sum=$((sum + rps))
    done
    mean[$1]=$((sum / ROUNDS))
}

echo "compose_net_bench: $(date -u '+%F %H:%M UTC'), commit $(git -C "$root" rev-parse --short HEAD), wrk -t$THREADS -c$CONNECTIONS -d$DURATION x $ROUNDS"
echo "  load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
compose up -d gateway io-worker >/dev/null 2>&1
wait_hello 127.0.0.1 "$BARISTA_PORT"
ip="$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$(compose ps -q gateway)")"
wait_hello "$ip" 8000
bench published 127.0.0.1 "$BARISTA_PORT"
bench container "$ip" 8000

compose rm -sf gateway >/dev/null 2>&1 # frees BARISTA_PORT for the host-network one
files+=(-f "$root/deploy/compose.host-network.yml")
compose up -d gateway-host io-worker >/dev/null 2>&1 # the workers are recreated too
wait_hello 127.0.0.1 "$BARISTA_PORT"
bench host 127.0.0.1 "$BARISTA_PORT"
echo "  load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '  means: published port %d, container address %d, host network %d requests/s; host / published %s\n' \
    "${mean[published]}" "${mean[container]}" "${mean[host]}" \
    "$(python3 -c "print('%.2f' % (${mean[host]} / max(1, ${mean[published]})))")"
