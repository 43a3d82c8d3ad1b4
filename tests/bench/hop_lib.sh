# hop_lib.sh - shared by hop_profile.sh, hop_ipc_tcp.sh and sleep_memory.sh (sourced).

# A free TCP port on 127.0.0.1.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# wait_http URL WHO: waits up to a minute for URL to answer 2xx; exits otherwise.
wait_http() {
    i=0
    until curl -fs "$1" >/dev/null 2>&1; do
        i=$((i + 1))
        [ $i -lt 300 ] || { echo "$2: no answer from $1" >&2; exit 1; }
        sleep 0.2
    done
}
