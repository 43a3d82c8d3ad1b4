#!/usr/bin/env bash
# Side-by-side benchmark: Barista vs nginx vs Mongrel2 vs FastAPI+uvicorn.
# One run, one machine, everything on 127.0.0.1. See README.md next to this file.
#
#   sudo tests/bench/compare/run.sh            # all scenarios, all servers
#   BENCH_DURATION=5 BENCH_SCENARIOS="1" BENCH_SERVERS="nginx fastapi" ...
#
# Environment (defaults in brackets):
#   BENCH_DURATION    seconds per measured wrk run, max 10 unless BENCH_ALLOW_LONG=1 [10]
#   BENCH_SCENARIOS   subset of "1 2 3"                                      [1 2 3]
#   BENCH_SERVERS     subset of "nginx mongrel2 fastapi barista"  [all four]
#   BENCH_SLEEP_CONNS connections for scenario 2                             [10000]
#   BENCH_WARMUP      warm-up seconds before scenario 1 and 3 runs           [1]
#   BENCH_SYSCTL      1: raise somaxconn/syn backlog if too low (restored on exit) [1]
#   BENCH_KEEP        1: keep the temp dir (configs, logs, raw wrk output)   [0]
#   BARISTA_BIN       directory with barista-gateway and barista-worker [<repo>/build/bin]
#   BENCH_PYTHON      interpreter that has Debian's fastapi/uvicorn  [/usr/bin/python3]
#   BARISTA_CPU_SCHED, BARISTA_CPU_NICE, BARISTA_CPU_CPUS  --sched, --nice and --cpus of
#                     the CPU workers [other, 10, all]
#   BARISTA_ACCESS_LOG  the gateway's --access-log [off, as nginx's access_log off here]
set -eu
set -o pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
DUR=${BENCH_DURATION:-10}
SCENARIOS=${BENCH_SCENARIOS:-"1 2 3"}
SERVERS=${BENCH_SERVERS:-"nginx mongrel2 fastapi barista"}
CONNS2=${BENCH_SLEEP_CONNS:-10000}
WARMUP=${BENCH_WARMUP:-1}
BIN=${BARISTA_BIN:-$ROOT/build/bin}
PY=${BENCH_PYTHON:-/usr/bin/python3}
HELLO_BODY='{"message":"hello"}'

case $DUR in '' | *[!0-9]*) echo "BENCH_DURATION must be whole seconds" >&2; exit 2 ;; esac
if [ "$DUR" -gt 10 ] && [ "${BENCH_ALLOW_LONG:-0}" != 1 ]; then
    echo "BENCH_DURATION=$DUR > 10 s; set BENCH_ALLOW_LONG=1 to allow" >&2
    exit 2
fi

log() { printf '[bench %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
want_server() { case " $SERVERS " in *" $1 "*) return 0 ;; esac; return 1; }
want_scenario() { case " $SCENARIOS " in *" $1 "*) return 0 ;; esac; return 1; }

# ---------------------------------------------------------------- packages
PKGS="wrk nginx-light mongrel2-core python3-fastapi python3-uvicorn python3-uvloop python3-httptools"
TOOLS="curl gcc libzmq3-dev"   # to check bodies and build the Mongrel2 handler
missing=""
for p in $PKGS $TOOLS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "missing Debian packages:$missing — run as root or install them" >&2
        exit 1
    fi
    log "installing:$missing"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing >&2
fi

# ---------------------------------------------------------------- processes
WORK=$(mktemp -d /tmp/barista-bench.XXXXXX)
PGIDS=""            # every process group this script started
WRK_PID=""          # the wrk run in progress, if any
SYSCTL_RESTORE=""   # "key=value ..." to put back on exit

stop_group() {   # stop_group PGID: TERM, wait up to 3 s, then KILL
    local g=$1 i
    kill -TERM -- "-$g" 2>/dev/null || return 0
    for i in $(seq 30); do
        kill -0 -- "-$g" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL -- "-$g" 2>/dev/null || true
}

cleanup() {
    local rc=$? g kv
    trap - EXIT INT TERM
    [ -z "$WRK_PID" ] || kill "$WRK_PID" 2>/dev/null || true
    for g in $PGIDS; do stop_group "$g"; done
    for kv in $SYSCTL_RESTORE; do sysctl -q -w "$kv" >/dev/null 2>&1 || true; done
    if [ "${BENCH_KEEP:-0}" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# spawn NAME CMD...: start CMD in its own session/process group, output to
# $WORK/NAME.log; the pid (= pgid) is left in SPAWNED and remembered for cleanup.
spawn() {
    local name=$1
    shift
    setsid "$@" >"$WORK/$name.log" 2>&1 </dev/null &
    SPAWNED=$!
    PGIDS="$PGIDS $SPAWNED"
}

SERVER_GROUPS=""    # groups of the server currently under test
stop_server() {
    local g keep=""
    for g in $SERVER_GROUPS; do stop_group "$g"; done
    for g in $PGIDS; do case " $SERVER_GROUPS " in *" $g "*) ;; *) keep="$keep $g" ;; esac; done
    PGIDS=$keep
    SERVER_GROUPS=""
}

free_port() {
    "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# peak RSS (MiB) of the current server: sum of VmHWM over every process in its groups
server_peak_rss_mb() {
    local g p kb total=0
    for g in $SERVER_GROUPS; do
        for p in $(ps -e -o pid=,pgid= | awk -v g="$g" '$2 == g { print $1 }'); do
            kb=$(awk '/^VmHWM:/ { print $2 }' "/proc/$p/status" 2>/dev/null || true)
            total=$((total + ${kb:-0}))
        done
    done
    awk -v k="$total" 'BEGIN { printf "%.1f", k / 1024 }'
}

# CPU time (clock ticks) used so far by every process of the current server, as
# "USER SYSTEM".  CPU per request does not depend on how the scheduler shared the two
# cores with wrk and other work, which req/s on a busy machine does; the split shows
# how much of it is the kernel's (the sockets), which no user-space change removes.
server_cpu_ticks() {
    local g p us u=0 s=0
    for g in $SERVER_GROUPS; do
        for p in $(ps -e -o pid=,pgid= | awk -v g="$g" '$2 == g { print $1 }'); do
            # fields after the ")" that ends the command name: utime is the 12th, stime the 13th
            us=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{ print $12, $13 }' || true)
            set -- ${us:-0 0}
            u=$((u + $1)) s=$((s + $2))
        done
    done
    echo "$u $s"
}

# cpu_us_per_request "U0 S0" "U1 S1" WRK_OUTPUT -> "TOTAL µs/request (user U, system S)"
cpu_us_per_request() {
    awk -v a="$1" -v b="$2" -v hz="$(getconf CLK_TCK)" '/ requests in / { n = $1 }
        END {
            split(a, x, " "); split(b, y, " ")
            if (n <= 0) { print "n/a"; exit }
            u = (y[1] - x[1]) * 1000000 / hz / n; s = (y[2] - x[2]) * 1000000 / hz / n
            printf "%.1f µs/request (user %.1f, system %.1f)", u + s, u, s
        }' "$3"
}

http_code() { curl -s --noproxy '*' -o /dev/null -w '%{http_code}' --max-time 2 "$1" 2>/dev/null || true; }

wait_http_200() {   # wait_http_200 URL SECONDS
    local i
    for i in $(seq $(($2 * 10))); do
        [ "$(http_code "$1")" = 200 ] && return 0
        sleep 0.1
    done
    return 1
}

# check_json URL EXPECTED_JSON: status 200, JSON content type, same JSON value
check_json() {
    local url=$1 want=$2 got code ctype
    got=$(curl -s --noproxy '*' --max-time 5 -o "$WORK/body" -w '%{http_code} %{content_type}' "$url" || true)
    code=${got%% *}
    ctype=${got#* }
    if [ "$code" != 200 ]; then
        log "CHECK FAILED $url: status '$code'"
        return 1
    fi
    case $ctype in application/json*) ;; *) log "CHECK FAILED $url: content type '$ctype'"; return 1 ;; esac
    if ! "$PY" -c 'import json,sys; sys.exit(json.load(open(sys.argv[1])) != json.loads(sys.argv[2]))' \
        "$WORK/body" "$want"; then
        log "CHECK FAILED $url: body $(head -c 200 "$WORK/body") != $want"
        return 1
    fi
    return 0
}

expected_hash() {   # expected_hash N DATA -> the contract's JSON
    "$PY" -c 'import hashlib,json,sys
n=int(sys.argv[1]); d=sys.argv[2].encode()
for _ in range(n): d=hashlib.sha256(d).digest()
print(json.dumps({"digest":d.hex(),"n":n}))' "$1" "$2"
}

check_hello() { check_json "$BASE/hello" "$HELLO_BODY"; }
HAS_HASH=0           # set by start_*: does the server under test serve /hash?
check_contract() {   # the FastAPI-style services: hello, sleep, hash
    check_hello &&
        check_json "$BASE/sleep?ms=10" '{"slept_ms":10}' &&
        { [ "$HAS_HASH" = 0 ] || check_json "$BASE/hash?n=3&data=x" "$(expected_hash 3 x)"; }
}

# ---------------------------------------------------------------- servers
# Each start_* sets BASE and SERVER_GROUPS, and returns non-zero if the server
# did not come up.

start_nginx() {   # start_nginx 1|auto
    local dir="$WORK/nginx-$1" port
    port=$(free_port)
    mkdir -p "$dir/tmp"
    cat >"$dir/nginx.conf" <<EOF
worker_processes $1;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
worker_rlimit_nofile 65536;
events { worker_connections 16384; }
http {
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    server {
        listen 127.0.0.1:$port;
        default_type application/json;
        location = /hello { return 200 '$HELLO_BODY'; }
    }
}
EOF
    spawn "nginx-$1" nginx -e "$dir/error.log" -p "$dir" -c "$dir/nginx.conf" -g 'daemon off;'
    SERVER_GROUPS=$SPAWNED
    BASE="http://127.0.0.1:$port"
    wait_http_200 "$BASE/hello" 10
}

M2_HANDLER=""
build_m2handler() {
    [ -n "$M2_HANDLER" ] && return 0
    gcc -O2 -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror \
        -o "$WORK/m2handler" "$HERE/m2handler.c" -lzmq
    M2_HANDLER="$WORK/m2handler"
}

start_mongrel2() {
    local dir="$WORK/mongrel2" port sport rport uuid
    build_m2handler
    port=$(free_port)
    sport=$(free_port)   # Mongrel2 PUSHes requests here (send_spec)
    rport=$(free_port)   # Mongrel2 SUBscribes to replies here (recv_spec)
    uuid=$("$PY" -c 'import uuid; print(uuid.uuid4())')
    mkdir -p "$dir/logs" "$dir/run" "$dir/tmp"
    # chroot is the config dir (Mongrel2 chroots when run as root); logs and
    # the pid file are relative to it.
    cat >"$dir/mongrel2.conf" <<EOF
hello = Handler(send_spec='tcp://127.0.0.1:$sport',
                send_ident='$("$PY" -c 'import uuid; print(uuid.uuid4())')',
                recv_spec='tcp://127.0.0.1:$rport', recv_ident='',
                protocol='json')

main = Server(uuid="$uuid", name="bench", default_host="localhost",
              bind_addr="127.0.0.1", port=$port, chroot="./",
              access_log="/logs/access.log", error_log="/logs/error.log",
              pid_file="/run/mongrel2.pid",
              hosts=[Host(name="localhost", routes={'/hello': hello})])

settings = {"server.daemonize": 0, "zeromq.threads": 1}
servers = [main]
EOF
    (cd "$dir" && LOGNAME=${LOGNAME:-root} m2sh load -config mongrel2.conf -db config.sqlite >"$WORK/m2sh.log" 2>&1) || {
        log "m2sh load failed: $(tail -3 "$WORK/m2sh.log")"
        return 1
    }
    spawn mongrel2 sh -c 'cd "$1" && exec mongrel2 config.sqlite "$2"' sh "$dir" "$uuid"
    SERVER_GROUPS=$SPAWNED
    spawn m2handler "$M2_HANDLER" "tcp://127.0.0.1:$sport" "tcp://127.0.0.1:$rport" bench-handler
    SERVER_GROUPS="$SERVER_GROUPS $SPAWNED"
    BASE="http://127.0.0.1:$port"
    wait_http_200 "$BASE/hello" 10
}

start_fastapi() {
    local port
    port=$(free_port)
    spawn fastapi "$PY" -m uvicorn fastapi_app:app --app-dir "$HERE" \
        --host 127.0.0.1 --port "$port" --loop uvloop --http httptools \
        --workers 1 --log-level warning
    SERVER_GROUPS=$SPAWNED
    BASE="http://127.0.0.1:$port"
    wait_http_200 "$BASE/hello" 20
}

have_barista() { [ -x "$BIN/barista-gateway" ] && [ -x "$BIN/barista-worker" ]; }

# >>> The one place to adapt when the gateway's flags settle. <<<
# start_barista NCPU: gateway + one I/O worker (hello,sleep) + NCPU CPU workers
# (hash). Flags as of the http and worker branches: gateway --listen (also
# BARISTA_LISTEN) and --broker (announced, also BARISTA_BROKER); worker
# --services, --connect, --concurrency (io in-flight cap, default 1024: too
# low for scenario 2's 10,000 connections, hence BARISTA_IO_CONCURRENCY).
# CPU workers nice themselves (--nice, default 10). Local mode (the gateway
# spawning workers) is not used: we start the workers so the process list,
# and the RSS sum, are explicit.
start_barista() {
    local ncpu=${1:-0} port bport broker i
    port=$(free_port)
    bport=$(free_port)
    broker="tcp://127.0.0.1:$bport"
    # The access log as nginx's here (access_log off) unless BARISTA_ACCESS_LOG says
    # otherwise (- for stderr, as the gateway's default).
    spawn barista-gateway env BARISTA_LISTEN="127.0.0.1:$port" BARISTA_BROKER="$broker" \
        "$BIN/barista-gateway" --listen "127.0.0.1:$port" --broker "$broker" \
        --access-log "${BARISTA_ACCESS_LOG:-off}"
    SERVER_GROUPS=$SPAWNED
    spawn barista-io "$BIN/barista-worker" --services hello,sleep --connect "$broker" \
        --concurrency "${BARISTA_IO_CONCURRENCY:-16384}"
    SERVER_GROUPS="$SERVER_GROUPS $SPAWNED"
    for i in $(seq "$ncpu"); do
        spawn "barista-cpu$i" "$BIN/barista-worker" --services hash --connect "$broker" \
            --sched "${BARISTA_CPU_SCHED:-other}" --nice "${BARISTA_CPU_NICE:-10}" \
            --cpus "${BARISTA_CPU_CPUS:-all}"
        SERVER_GROUPS="$SERVER_GROUPS $SPAWNED"
    done
    BASE="http://127.0.0.1:$port"
    # ready = /readyz 200; fall back to /hello if /readyz is not there (yet)
    for i in $(seq 150); do
        case $(http_code "$BASE/readyz") in
            200) break ;;
            404) wait_http_200 "$BASE/hello" 15 && break; return 1 ;;
        esac
        sleep 0.1
    done
    wait_http_200 "$BASE/hello" 5 || return 1
    if [ "$ncpu" != 0 ]; then
        wait_http_200 "$BASE/hash?n=1&data=x" 10 || return 1
        sleep 1   # let every CPU worker announce itself, not just the first
    fi
}

# start NAME: dispatch; on failure log the server's output and return 1
start() {
    local ok=0
    HAS_HASH=0
    case $1 in fastapi | barista+*) HAS_HASH=1 ;; esac
    case $1 in
        nginx-1w) start_nginx 1 || ok=1 ;;
        nginx-auto) start_nginx auto || ok=1 ;;
        mongrel2) start_mongrel2 || ok=1 ;;
        fastapi) start_fastapi || ok=1 ;;
        barista) start_barista 0 || ok=1 ;;
        barista+2cpu) start_barista 2 || ok=1 ;;
    esac
    if [ $ok != 0 ]; then
        log "$1 did not come up; last log lines:"
        tail -n 5 "$WORK"/*.log >&2 2>/dev/null || true
        stop_server
    fi
    return $ok
}

# ---------------------------------------------------------------- wrk
# parse_wrk FILE -> "RPS P50_MS P99_MS ERRORS" (ERRORS = socket errors + non-2xx)
parse_wrk() {
    awk '
    function ms(v) {
        if (v ~ /us$/) return v * 0.001
        if (v ~ /ms$/) return v + 0
        if (v ~ /m$/)  return v * 60000
        if (v ~ /s$/)  return v * 1000
        return v + 0
    }
    /^Requests\/sec:/ { rps = $2 }
    /^ +50%/ { p50 = ms($2) }
    /^ +99%/ { p99 = ms($2) }
    /Socket errors:/ { gsub(",", ""); err += $4 + $6 + $8 + $10 }
    /Non-2xx or 3xx responses:/ { err += $5 }
    END { printf "%.0f %.2f %.2f %d\n", rps, p50, p99, err }' "$1"
}

# run_wrk OUT ARGS...: wrk in the background + wait, so that a TERM/INT trap
# runs at once instead of after the current wrk run (bash defers traps while
# a foreground child runs); cleanup kills it.
WRK_PID=""
run_wrk() {
    local out=$1
    shift
    wrk "$@" >"$out" 2>&1 &
    WRK_PID=$!
    wait "$WRK_PID" || true
    WRK_PID=""
}

RESULTS="$WORK/results"
: >"$RESULTS"
FAILED=0
# row SCENARIO NAME RPS P50 P99 ERRORS RATIO NOTE
row() {
    printf '%s|%s|%s|%s|%s|%s|%s|%s\n' "$@" >>"$RESULTS"
    printf '  -> %-14s %9s req/s  p50 %8s ms  p99 %8s ms  errors %s  ratio %s  %s\n' "$2" "$3" "$4" "$5" "$6" "$7" "$8" >&2
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

declare -A HELLO_RPS=()

# ---------------------------------------------------------------- scenarios
# 1: GET /hello, wrk -t2 -c64
scenario1() {
    local name=$1 out="$WORK/s1-$1.txt"
    start "$name" || { row 1 "$name" - - - - - "did not start"; FAILED=1; return 0; }
    if ! check_hello; then
        row 1 "$name" - - - - - "wrong response"; FAILED=1; stop_server; return 0
    fi
    case $name in fastapi | barista) check_contract || { row 1 "$name" - - - - - "wrong response"; FAILED=1; stop_server; return 0; } ;; esac
    [ "$WARMUP" -gt 0 ] && run_wrk /dev/null -t2 -c64 -d"${WARMUP}s" "$BASE/hello"
    log "scenario 1: $name /hello ${DUR}s"
    local t0 cpu
    t0=$(server_cpu_ticks)
    run_wrk "$out" -t2 -c64 -d"${DUR}s" --latency "$BASE/hello"
    cpu=$(cpu_us_per_request "$t0" "$(server_cpu_ticks)" "$out")
    stop_server
    set -- $(parse_wrk "$out")
    HELLO_RPS[$name]=$1
    row 1 "$name" "$1" "$2" "$3" "$4" "" "wrk -t2 -c64; server CPU $cpu"
}

# 2: 10,000 connections on /sleep?ms=1000
scenario2() {
    local name=$1 out="$WORK/s2-$1.txt" rss steady little
    start "$name" || { row 2 "$name" - - - - - "did not start"; FAILED=1; return 0; }
    check_contract || { row 2 "$name" - - - - - "wrong response"; FAILED=1; stop_server; return 0; }
    log "scenario 2: $name /sleep?ms=1000 with $CONNS2 connections ${DUR}s"
    run_wrk "$out" -t2 -c"$CONNS2" -d"${DUR}s" --latency --timeout 5s -s "$HERE/steady.lua" \
        "$BASE/sleep?ms=1000" -- "$CONNS2"
    rss=$(server_peak_rss_mb)
    stop_server
    steady=$(awk '/^steady_rps/ { print $2; w = $4 } END { if (!w) print "n/a" }' "$out")
    little=$(awk '/^little_rps/ { print $2; w = 1 } END { if (!w) print "n/a" }' "$out")
    set -- $(parse_wrk "$out")
    # req/s column: steady state (whole seconds 2..D-1, see steady.lua);
    # wrk's own figure, capped at conns*(D-1)/D by the first idle second, in notes
    row 2 "$name" "$steady" "$2" "$3" "$4" "$(ratio "$steady" "$CONNS2")" \
        "peak RSS ${rss} MiB (gateway+worker / uvicorn, sum VmHWM); wrk overall $1/s; Little $little/s"
}

# 3: /hello while /hash?n=20000 saturates the CPU side
scenario3() {
    local name=$1 label=$2 out="$WORK/s3-$1.txt" bg="$WORK/wrk-hash-$1.log" hpid base_rps
    start "$name" || { row 3 "$label" - - - - - "did not start"; FAILED=1; return 0; }
    check_contract || { row 3 "$label" - - - - - "wrong response"; FAILED=1; stop_server; return 0; }
    base_rps=${HELLO_RPS[$label]:-}
    if [ -z "$base_rps" ]; then   # scenario 1 not run: measure unloaded here
        [ "$WARMUP" -gt 0 ] && run_wrk /dev/null -t2 -c64 -d"${WARMUP}s" "$BASE/hello"
        log "scenario 3: $label unloaded /hello ${DUR}s (no scenario 1 figure)"
        run_wrk "$WORK/s3-$name-unloaded.txt" -t2 -c64 -d"${DUR}s" --latency "$BASE/hello"
        set -- $(parse_wrk "$WORK/s3-$name-unloaded.txt")
        base_rps=$1
    fi
    log "scenario 3: $label /hello under /hash?n=20000 load ${DUR}s"
    spawn "wrk-hash-$name" wrk -t1 -c8 -d"$((DUR + 2))s" "$BASE/hash?n=20000&data=x"
    hpid=$SPAWNED
    sleep 1
    run_wrk "$out" -t2 -c64 -d"${DUR}s" --latency "$BASE/hello"
    wait "$hpid" || true
    stop_server
    local hash
    hash=$(parse_wrk "$bg")
    set -- $(parse_wrk "$out")
    row 3 "$label" "$1" "$2" "$3" "$4" "$(ratio "$1" "$base_rps")" "vs unloaded ${base_rps}/s; /hash ${hash%% *}/s (wrk -t1 -c8)"
}

# ---------------------------------------------------------------- run
ulimit -Hn 65536 2>/dev/null || true
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
if want_scenario 2 && [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((CONNS2 + 1000)) ]; then
    log "WARNING: ulimit -n $(ulimit -n) is too low for $CONNS2 connections (wrk and each server need one fd per connection)"
fi

tune_sysctl() {   # tune_sysctl KEY MIN: raise KEY to MIN if lower, restore on exit
    local cur
    cur=$(sysctl -n "$1" 2>/dev/null || echo "")
    [ -n "$cur" ] || return 0
    if [ "$cur" -lt "$2" ]; then
        if [ "${BENCH_SYSCTL:-1}" = 1 ] && sysctl -q -w "$1=$2" >/dev/null 2>&1; then
            SYSCTL_RESTORE="$SYSCTL_RESTORE $1=$cur"
            log "sysctl $1: $cur -> $2 (restored on exit)"
        else
            log "WARNING: sysctl $1=$cur < $2 and not changed; scenario 2 connects may queue"
        fi
    fi
}
if want_scenario 2; then
    tune_sysctl net.core.somaxconn 16384
    tune_sysctl net.ipv4.tcp_max_syn_backlog 16384
    # ephemeral ports: wrk needs CONNS2 source ports towards one destination
    read -r lo hi < <(sysctl -n net.ipv4.ip_local_port_range)
    if [ $((hi - lo)) -lt $((CONNS2 + 2000)) ]; then
        log "WARNING: ip_local_port_range $lo-$hi is small for $CONNS2 connections"
    fi
fi

BARISTA=0
if want_server barista; then
    if have_barista; then
        BARISTA=1
    else
        log "NOTE: $BIN/barista-gateway or barista-worker missing: running the competitors only"
    fi
fi

pkgver() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo "?"; }
{
    echo "machine: $(nproc) cores ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)), kernel $(uname -r), load avg $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "versions: wrk $(pkgver wrk), nginx $(pkgver nginx-light), mongrel2 $(pkgver mongrel2-core), uvicorn $(pkgver python3-uvicorn), fastapi $(pkgver python3-fastapi), uvloop $(pkgver python3-uvloop), httptools $(pkgver python3-httptools)"
    if [ $BARISTA = 1 ]; then
        echo "barista: $BIN, built $(date -u -r "$BIN/barista-gateway" '+%F %H:%M UTC')$(git -C "$BIN" rev-parse --short HEAD 2>/dev/null | sed 's/^/, checkout /')"
    else
        echo "barista: not run (binaries missing in $BIN)"
    fi
    echo "duration ${DUR}s per run, ulimit -n $(ulimit -n), somaxconn $(sysctl -n net.core.somaxconn), port range $(sysctl -n net.ipv4.ip_local_port_range | tr '\t' '-')"
} | tee "$WORK/header" >&2
load1=$(cut -d' ' -f1 /proc/loadavg)
if awk -v l="$load1" 'BEGIN { exit !(l > 1.0) }'; then
    log "WARNING: load average $load1 at start: other work shares these 2 cores, numbers will be low and noisy"
fi

S1_ORDER=""
want_server nginx && S1_ORDER="$S1_ORDER nginx-1w"
want_server mongrel2 && S1_ORDER="$S1_ORDER mongrel2"
[ $BARISTA = 1 ] && S1_ORDER="$S1_ORDER barista"
want_server fastapi && S1_ORDER="$S1_ORDER fastapi"
want_server nginx && S1_ORDER="$S1_ORDER nginx-auto"

if want_scenario 1; then
    for s in $S1_ORDER; do scenario1 "$s"; done
fi
if want_scenario 2; then
    [ $BARISTA = 1 ] && scenario2 barista
    want_server fastapi && scenario2 fastapi
fi
if want_scenario 3; then
    want_server fastapi && scenario3 fastapi fastapi
    [ $BARISTA = 1 ] && scenario3 barista+2cpu barista
fi

# ---------------------------------------------------------------- table
# Scenario 1 ratio: req/s relative to nginx with worker_processes 1.
# Scenario 2 ratio: steady-state req/s relative to the ideal CONNS2 req/s.
# Scenario 3 ratio: loaded /hello req/s relative to unloaded /hello.
ref=${HELLO_RPS[nginx-1w]:-0}
{
    echo
    cat "$WORK/header"
    echo "load avg at end: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
    echo "| scen. | server | req/s | p50 ms | p99 ms | errors | ratio | notes |"
    echo "|---|---|---:|---:|---:|---:|---:|---|"
    while IFS='|' read -r sc name rps p50 p99 err rat note; do
        if [ "$sc" = 1 ] && [ -z "$rat" ]; then
            rat="$(ratio "$rps" "$ref") × nginx-1w"
        fi
        case $sc in
            1) sc="1 /hello" ;;
            2) sc="2 /sleep ${CONNS2}c" ;;
            3) sc="3 /hello+hash" ;;
        esac
        echo "| $sc | $name | $rps | $p50 | $p99 | $err | $rat | $note |"
    done <"$RESULTS"
    if [ $BARISTA = 1 ] && want_scenario 1 && [ -n "${HELLO_RPS[barista]:-}" ]; then
        b=${HELLO_RPS[barista]}
        echo
        echo "Barista /hello targets:"
        for t in "nginx-1w 0.55" "nginx-auto 0.55" "mongrel2 3" "fastapi 7"; do
            set -- $t
            [ -n "${HELLO_RPS[$1]:-}" ] || continue
            r=$(ratio "$b" "${HELLO_RPS[$1]}")
            ok=$(awk -v r="$r" -v t="$2" 'BEGIN { print (r >= t) ? "ok" : "MISSED" }')
            echo "  barista / $1 = $r (target >= $2) $ok"
        done
    fi
    [ $BARISTA = 1 ] || echo "Barista: NOT MEASURED — $BIN/barista-gateway and barista-worker not found."
} | tee "$WORK/table.md"
[ -n "${BENCH_TABLE:-}" ] && cp "$WORK/table.md" "$BENCH_TABLE"
exit $FAILED
