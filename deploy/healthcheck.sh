#!/bin/bash
# barista-healthcheck [PATH]: exits 0 when the gateway in this container answers
# GET PATH (default /healthz) with 200.  Bash's /dev/tcp does the HTTP, so the image
# needs no curl or wget.  The port is the one of BARISTA_LISTEN (default 8000).
path="${1:-/healthz}"
listen="${BARISTA_LISTEN:-0.0.0.0:8000}"
exec 3<>"/dev/tcp/127.0.0.1/${listen##*:}" || exit 1
printf 'GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' "$path" >&3
read -r -t 5 _ status _ <&3 || exit 1
[ "$status" = 200 ]
