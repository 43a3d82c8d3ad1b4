#!/bin/sh
# Installs the Debian packages Barista needs to build, test and run, when any is
# missing.  As root it runs apt-get itself; otherwise it prints the command to run.
#
#   deploy/install-deps.sh          build, test and run dependencies
#   deploy/install-deps.sh build    without the servers only tests start (the images)
#   deploy/install-deps.sh bench    the first plus the benchmark tools
#   deploy/install-deps.sh fuzz     the first plus clang and libFuzzer (tests/fuzz/run_ci.sh)
#   deploy/install-deps.sh browser  the first plus headless chromium and
#                                   python3-websockets, for the /docs browser test
#                                   (tests/integration/test_docs_browser.py; CI runs it)
set -eu

packages="gcc make cmake pkg-config python3 curl libuv1-dev libzmq3-dev libczmq-dev
libmsgpack-dev libcmocka-dev node-llhttp libjansson-dev libcurl4-openssl-dev
libsodium-dev libsqlite3-dev libjwt-dev zlib1g-dev libbrotli-dev libssl-dev openssl
libpq-dev libhiredis-dev"
# The database clients' tests start a real PostgreSQL and redis-server of their own
# (tests/integration/dbservers.py); the typed contracts' tests compare 422s with
# FastAPI's (tests/integration/fastapi_twin.py); python3-yaml reads the Kubernetes
# manifests (tests/docker/k8s_check.py).
if [ "${1:-}" != build ]; then
    packages="$packages postgresql-15 redis-server python3-fastapi python3-uvicorn python3-websockets
python3-yaml"
fi
if [ "${1:-}" = bench ]; then
    packages="$packages wrk nginx-light python3-fastapi python3-uvicorn python3-uvloop
python3-httptools python3-asyncpg python3-redis"
fi
if [ "${1:-}" = fuzz ]; then
    packages="$packages clang libclang-rt-14-dev"
fi
if [ "${1:-}" = browser ]; then
    packages="$packages chromium python3-websockets"
fi

missing=""
for p in $packages; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "barista: missing packages:$missing" >&2
    echo "barista: run: sudo apt-get update && sudo apt-get install -y$missing" >&2
    exit 1
fi
echo "barista: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
