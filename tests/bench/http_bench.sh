#!/bin/sh
# http_bench.sh - the gateway's HTTP front against nginx returning the same constant.
#
# Expects a release build in build/ (make build); builds nothing itself.  Starts
# barista-gateway (GET /healthz -> {"status":"ok"}) and nginx (a config written to a
# temporary directory: daemon off, the same body with default_type application/json),
# then runs wrk against each, alternating, ROUNDS times, and prints requests/s and
# the ratio gateway / nginx.  nginx runs twice: with 1 worker process (one loop, like
# the gateway) and with `auto` workers (one per core).
#
#   tests/bench/http_bench.sh            # defaults below
#   DURATION=5s ROUNDS=1 tests/bench/http_bench.sh
set -eu

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${BARISTA_BIN:-$ROOT/build/bin}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-2}
GW_PORT=${GW_PORT:-18180}
NGX1_PORT=${NGX1_PORT:-18181}
NGX2_PORT=${NGX2_PORT:-18182}

command -v wrk >/dev/null || { echo "wrk not found: apt-get install wrk" >&2; exit 1; }
command -v curl >/dev/null || { echo "curl not found" >&2; exit 1; }
command -v nginx >/dev/null || { echo "nginx not found: apt-get install nginx-light" >&2; exit 1; }
[ -x "$BIN/barista-gateway" ] || { echo "no $BIN/barista-gateway: run make build" >&2; exit 1; }

TMP=$(mktemp -d)
PIDS=""
cleanup() {
    for p in $PIDS; do kill "$p" 2>/dev/null || true; done
    for p in $PIDS; do wait "$p" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

# nginx_conf <dir> <port> <workers>
nginx_conf() {
    mkdir -p "$1/logs"
    cat >"$1/nginx.conf" <<EOF
daemon off;
worker_processes $3;
pid $1/nginx.pid;
error_log $1/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path $1/body;
    proxy_temp_path $1/proxy;
    fastcgi_temp_path $1/fastcgi;
    uwsgi_temp_path $1/uwsgi;
    scgi_temp_path $1/scgi;
    server {
        listen 127.0.0.1:$2;
        location = /healthz {
            default_type application/json;
            return 200 '{"status":"ok"}';
        }
    }
}
EOF
}

# wait_ready <port>: until GET /healthz answers (10 s at most)
wait_ready() {
    i=0
    until curl -sf -o /dev/null "http://127.0.0.1:$1/healthz"; do
        i=$((i + 1))
        [ $i -lt 100 ] || { echo "port $1 never answered" >&2; exit 1; }
        sleep 0.1
    done
}

"$BIN/barista-gateway" --listen "127.0.0.1:$GW_PORT" 2>"$TMP/gateway.log" &
PIDS="$PIDS $!"
nginx_conf "$TMP/ngx1" "$NGX1_PORT" 1
nginx_conf "$TMP/ngx2" "$NGX2_PORT" auto
nginx -e "$TMP/ngx1/logs/error.log" -p "$TMP/ngx1" -c "$TMP/ngx1/nginx.conf" &
PIDS="$PIDS $!"
nginx -e "$TMP/ngx2/logs/error.log" -p "$TMP/ngx2" -c "$TMP/ngx2/nginx.conf" &
PIDS="$PIDS $!"
for p in $GW_PORT $NGX1_PORT $NGX2_PORT; do wait_ready "$p"; done

# rps <port> -> requests/s of one wrk run
rps() {
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" "http://127.0.0.1:$1/healthz" |
        awk '/^Requests\/sec:/ { print $2 }'
}

echo "machine: $(nproc) cores, $(uname -sr); wrk -t$THREADS -c$CONNECTIONS -d$DURATION, $ROUNDS rounds"
gw_sum=0; n1_sum=0; n2_sum=0
r=1
while [ $r -le "$ROUNDS" ]; do
    g=$(rps $GW_PORT); a=$(rps $NGX1_PORT); b=$(rps $NGX2_PORT)
    printf 'round %d: gateway %s  nginx(1 worker) %s  nginx(auto) %s\n' "$r" "$g" "$a" "$b"
    gw_sum=$(awk -v s="$gw_sum" -v x="$g" 'BEGIN { print s + x }')
    n1_sum=$(awk -v s="$n1_sum" -v x="$a" 'BEGIN { print s + x }')
    n2_sum=$(awk -v s="$n2_sum" -v x="$b" 'BEGIN { print s + x }')
    r=$((r + 1))
done
awk -v g="$gw_sum" -v a="$n1_sum" -v b="$n2_sum" -v n="$ROUNDS" 'BEGIN {
    printf "mean req/s: gateway %.0f  nginx(1 worker) %.0f  nginx(auto) %.0f\n", g/n, a/n, b/n
    printf "ratio gateway/nginx(1 worker) = %.2f   gateway/nginx(auto) = %.2f\n", g/a, g/b
}'
