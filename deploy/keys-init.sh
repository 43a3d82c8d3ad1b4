#!/bin/sh
# barista-keys-init: the compose stack's one-shot key maker (docker-compose.yml, service
# "keys"), so that the stack authenticates its workers with no step for the user.
#
# On first run it makes CURVE certificates with barista-keygen (CZMQ's zcert format):
#   /keys/gateway/gateway(_secret)       the gateway's key pair
#   /keys/POOL/worker(_secret)           one key pair per worker pool, allowed exactly
#                                        the services of $POOL_SERVICES (io-worker ->
#                                        IO_WORKER_SERVICES)
#   /keys/gateway/authorized/POOL        each pool's public certificate, authorised
#   /keys/POOL/gateway                   the gateway's public certificate, for the pool
# Each directory is its own named volume, mounted only where it is needed: no worker
# sees the gateway's secret or another pool's.  Later runs keep every key pair and
# only rewrite the pools' "services" metadata, so that a changed service list is
# allowed once the gateway reads it (at start, or `docker compose kill -s HUP gateway`).
# Runs as root to own the fresh volumes, then hands them to the image's user.
set -eu

keys=${BARISTA_KEYS_DIR:-/keys}
pools=${BARISTA_KEY_POOLS:-io-worker cpu-worker}
owner=${BARISTA_KEYS_OWNER:-10001:10001}

# cert FILE NAME [barista-keygen options]: FILE and FILE_secret made once; their
# metadata set from the options on every run.
cert() {
    file=$1
    name=$2
    shift 2
    if [ -e "${file}_secret" ]; then
        barista-keygen --update --name "$name" "$@" "$file" >/dev/null
    else
        barista-keygen --name "$name" "$@" "$file" >/dev/null
        echo "barista-keys-init: made $file"
    fi
}

mkdir -p "$keys/gateway/authorized"
cert "$keys/gateway/gateway" gateway
for pool in $pools; do
    var=$(echo "$pool" | tr 'a-z-' 'A-Z_')_SERVICES
    eval "services=\${$var:-}"
    if [ -z "$services" ]; then
        echo "barista-keys-init: $var is empty: which services may pool $pool serve?" >&2
        exit 2
    fi
    mkdir -p "$keys/$pool"
    cert "$keys/$pool/worker" "$pool" --services "$services"
    cp "$keys/$pool/worker" "$keys/gateway/authorized/$pool"
    cp "$keys/gateway/gateway" "$keys/$pool/gateway"
    chown -R "$owner" "$keys/$pool"
    chmod 0700 "$keys/$pool"
done
chown -R "$owner" "$keys/gateway"
chmod 0700 "$keys/gateway"
echo "barista-keys-init: certificates ready for the gateway and pools: $pools"
