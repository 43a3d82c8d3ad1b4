#!/bin/sh
# barista-postgres: the PostgreSQL server of the scale-out stack (the `postgres` stage of
# deploy/Dockerfile, Debian's postgresql-15), as the image's command.
#
# On first start - an empty data directory, PGDATA (default
# /var/lib/postgresql/data, a volume) - it runs initdb with the superuser
# BARISTA_PG_USER (default barista) whose password is BARISTA_PG_PASSWORD (required),
# allows password logins (scram-sha-256) from any address, and creates each database of
# BARISTA_PG_DATABASES (space-separated, default barista).  Later starts keep what is
# there.  Then it runs the server in the foreground, listening on every address, so
# that SIGTERM (forwarded by `init: true`) is a fast shutdown of the server itself.
set -eu

bindir=/usr/lib/postgresql/15/bin
data="${PGDATA:-/var/lib/postgresql/data}"
user="${BARISTA_PG_USER:-barista}"

if [ ! -s "$data/PG_VERSION" ]; then
    if [ -z "${BARISTA_PG_PASSWORD:-}" ]; then
        echo "barista-postgres: set BARISTA_PG_PASSWORD (the password of $user)" >&2
        exit 1
    fi
    pwfile=$(mktemp)
    printf '%s\n' "$BARISTA_PG_PASSWORD" >"$pwfile"
    "$bindir/initdb" -D "$data" -U "$user" --pwfile="$pwfile" --auth-local=peer \
        --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >/dev/null
    rm -f "$pwfile"
    echo "host all all all scram-sha-256" >>"$data/pg_hba.conf"
    for db in ${BARISTA_PG_DATABASES:-barista}; do
        # Single-user mode needs no listening server and no password; its log is
        # shown only when it fails.
        if ! echo "CREATE DATABASE \"$db\" OWNER \"$user\";" |
            "$bindir/postgres" --single -D "$data" -j postgres >"$data/single.log" 2>&1; then
            cat "$data/single.log" >&2
            exit 1
        fi
        rm -f "$data/single.log"
        echo "barista-postgres: created database $db" >&2
    done
fi
exec "$bindir/postgres" -D "$data" -c listen_addresses='*' -c unix_socket_directories=/tmp
