#!/bin/bash
# deploy/stack.yml on a throwaway single-node swarm on this machine's Docker Engine.
#
#   tests/docker/swarm.sh
#
# Builds (or reuses) the images of the scale-out overlay, makes the CURVE certificates
# with barista-keys-init into a temporary directory, turns the engine into a one-node
# swarm on loopback (`docker swarm init --advertise-addr 127.0.0.1`), deploys the stack
# on a free port, and checks through the ingress routing mesh that /hello, /hash (the
# CPU pool) and /echo answer exactly and that both gateways serve (HAProxy's
# x-served-by).  Then it removes the stack, leaves the swarm (`--force`: it is the only
# manager) and removes docker_gwbridge when the swarm made it: the engine is left as
# it was found.  An engine that is already part of a swarm is not touched: the script
# says "docker swarm: skipped (...)" and exits 0, as it does without an engine.
set -euo pipefail

root="$(cd "$(dirname "$0")/../.." && pwd)"
name="docker swarm"
. "$root/tests/docker/lib.sh" # say, die, ...; skips without Docker or compose (it builds)
state="$(docker info -f '{{.Swarm.LocalNodeState}}')"
if [ "$state" != inactive ]; then
    echo "docker swarm: skipped (the engine's swarm state is '$state': not touching it)"
    exit 0
fi

stack="barista-swarm-$$"
BARISTA_PORT="$(free_port)"
BARISTA_TAG="${BARISTA_TAG:-e2e}" # the tag e2e.sh builds: its layers are reused
keys="$(mktemp -d)"
BARISTA_KEYS="$keys"
export BARISTA_PORT BARISTA_TAG BARISTA_KEYS
gwbridge_before="$(docker network ls -q -f name='^docker_gwbridge$')"
joined=""

teardown() {
    local rc=$?
    if [ -n "$joined" ]; then
        if [ $rc -ne 0 ]; then
            say "the stack's services and tasks of the failed run:"
            docker stack ps --no-trunc "$stack" 2>&1 | sed 's/^/    /' | head -n 30 || true
            for s in $(docker stack services -q "$stack" 2>/dev/null); do
                docker service logs --tail 15 "$s" 2>&1 | sed 's/^/    /' || true
            done
        fi
        timeout 60 docker stack rm "$stack" >/dev/null 2>&1 || say "WARNING: stack rm failed"
        # Its containers and network go asynchronously: wait, bounded.
        for _ in $(seq 60); do
            [ -z "$(docker ps -aq -f label=com.docker.stack.namespace="$stack")" ] &&
                [ -z "$(docker network ls -q -f label=com.docker.stack.namespace="$stack")" ] && break
            sleep 1
        done
        timeout 60 docker swarm leave --force >/dev/null 2>&1 || say "WARNING: swarm leave failed"
        if [ -z "$gwbridge_before" ]; then
            for _ in $(seq 20); do
                docker network rm docker_gwbridge >/dev/null 2>&1 && break
                sleep 1
            done
        fi
        docker volume rm "${stack}_postgres-data" >/dev/null 2>&1 || true
        say "stack removed, swarm left ($(docker info -f '{{.Swarm.LocalNodeState}}'))"
    fi
    rm -rf "$keys"
    exit $rc
}
trap teardown EXIT
trap 'exit 130' INT TERM

overlay_services
say "images: ${services[*]} (the scale-out overlay's build: cached after e2e.sh)"
build_images timeout 1200 "${compose_cmd[@]}" -p "$stack" -f "$root/docker-compose.yml" \
    -f "$root/deploy/compose.scale-out.yml" build "${services[@]}"

say "CURVE certificates (barista-keys-init into a temporary directory)"
docker run --rm -u root -v "$keys:/out" -e BARISTA_KEYS_DIR=/out \
    -e BARISTA_KEY_POOLS="io-worker cpu-worker" -e IO_WORKER_SERVICES=hello,sleep,echo \
    -e CPU_WORKER_SERVICES=hash,report "barista:$BARISTA_TAG" barista-keys-init >/dev/null ||
    die "barista-keys-init"

# Swarm's virtual IPs and its ingress routing mesh are IPVS: a kernel without it (no
# /proc/net/ip_vs once the module is loaded, as on this project's machines) gets the
# stack's fallbacks, names resolving to the tasks and HAProxy's port published on the
# node itself.
modprobe ip_vs >/dev/null 2>&1 || true
if [ -e /proc/net/ip_vs ]; then
    mesh="the ingress routing mesh"
else
    export BARISTA_ENDPOINT_MODE=dnsrr BARISTA_PUBLISH_MODE=host
    mesh="the node's own port (no IPVS in this kernel: endpoint_mode dnsrr, publish mode host)"
fi

say "docker swarm init on loopback"
joined=1
timeout 60 docker swarm init --advertise-addr 127.0.0.1 --listen-addr 127.0.0.1:2377 >/dev/null ||
    die "swarm init"

say "docker stack deploy $stack (HAProxy on port $BARISTA_PORT)"
timeout 120 docker stack deploy -c "$root/deploy/stack.yml" "$stack" >/dev/null || die "stack deploy"

# Swarm has no depends_on: every service starts at once, and a gateway exits (Swarm
# starts a new task, at a new address) until PostgreSQL answers.  Wait until every
# service runs all its replicas and has stayed so for three looks in a row (not a
# fixed sleep); then the routes through HAProxy, retried until they answer.
say "every service runs its replicas"
steady=0
for _ in $(seq 240); do
    if docker stack services --format '{{.Replicas}}' "$stack" 2>/dev/null |
        awk -F'[/ ]' 'NF < 2 || $1 != $2 || $2 == 0 {bad = 1} END {exit (NR == 0 || bad)}'; then
        steady=$((steady + 1))
        [ $steady -lt 3 ] || break
    else
        steady=0
    fi
    sleep 1
done
[ $steady -ge 3 ] || die "the stack's services never all ran: $(docker stack services \
    --format '{{.Name}} {{.Replicas}}' "$stack" | tr '\n' ' ')"
docker stack services --format '{{.Name}} {{.Replicas}}' "$stack" | sort | sed 's/^/    /'
# Gateways that exited first (PostgreSQL not up yet) left tasks behind (Swarm keeps 5):
# the case where a CPU slot moved to the gateway that was up and has to come back.
for svc in gateway gateway-2; do
    echo "    $svc: $(docker service ps -q "${stack}_$svc" | wc -l) task(s) so far"
done

say "through $mesh: /hello, /hash, /echo; both gateways serve"
python3 - "$BARISTA_PORT" <<'EOF' || die "the stack did not serve through $mesh"
import hashlib, json, sys, time, urllib.request

port = int(sys.argv[1])
want = {
    "/hello": b'{"message":"hello"}',
    "/hash?n=1&data=abc": json.dumps({"digest": hashlib.sha256(b"abc").hexdigest(), "n": 1},
                                     separators=(",", ":")).encode(),
}
deadline = time.monotonic() + 240
served, last = set(), None
while time.monotonic() < deadline:
    try:
        ok = True
        for path, body in want.items():
            with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=5) as r:
                got = r.read()
                served.add(r.headers.get("x-served-by"))
            ok = ok and got == body
            last = "%s: %r" % (path, got)
        req = urllib.request.Request("http://127.0.0.1:%d/echo" % port, data=b"swarm",
                                     headers={"Content-Type": "text/plain"})
        with urllib.request.urlopen(req, timeout=5) as r:
            ok = ok and r.read() == b"swarm"
        if ok and {"gateway-1", "gateway-2"} <= served:
            print("    /hello, /hash and /echo answered; served by %s" % ", ".join(sorted(served)))
            sys.exit(0)
    except OSError as e:  # not up yet: refused, reset, 404 or 503 until workers join
        last = str(e)
    time.sleep(1)
print("    last: %s; served by %s" % (last, served), file=sys.stderr)
sys.exit(1)
EOF
say "passed"
