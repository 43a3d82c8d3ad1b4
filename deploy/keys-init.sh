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
# only rewrite the pools' "services" metadata when it changed.
#
# The pools are the words of BARISTA_KEY_POOLS and of every BARISTA_KEY_POOLS_*
# variable: compose merges a service's environment variable by variable, so a compose
# fragment that adds a service sets BARISTA_KEY_POOLS_<ITS NAME>, <POOL>_SERVICES and
# the pool's volume on this service, and the base file's pools stay as they are
# (workers/examples/notes/compose.yml does).  The gateway watches its authorised
# directory and reloads when a certificate appears or changes (docs/broker.md,
# "Reloading"), so a pool added to a running stack is served without a restart.
# Files the gateway or a worker may read are written aside and renamed in, so that no
# reader ever sees half of one, and left alone when their content is the same.
# Runs as root to own the fresh volumes, then hands them to the image's user.
set -eu

keys=${BARISTA_KEYS_DIR:-/keys}
owner=${BARISTA_KEYS_OWNER:-10001:10001}
pools=$(
    echo "${BARISTA_KEY_POOLS:-io-worker cpu-worker}"
    env | grep '^BARISTA_KEY_POOLS_[A-Za-z0-9_]*=' | sort | cut -d= -f2-
)

# In compose (no BARISTA_KEYS_DIR) every directory must be a volume: keys written
# into this container's own file system would vanish with it.
need_volume() {
    [ -z "${BARISTA_KEYS_DIR:-}" ] || return 0
    if ! mountpoint -q "$keys/$1"; then
        echo "barista-keys-init: no volume is mounted at $keys/$1: add \"- $1-keys:$keys/$1\" to the keys service's volumes (and $1-keys to the top-level volumes)" >&2
        exit 2
    fi
}

# install SRC DEST: DEST gets SRC's content by rename, unless it has it already.
install_file() {
    if ! cmp -s "$1" "$2"; then
        cp "$1" "$(dirname "$2")/.new.$(basename "$2")"
        mv "$(dirname "$2")/.new.$(basename "$2")" "$2"
    fi
}

# own DIR: DIR and what it holds belong to $owner; only what does not already is
# touched (a chown is a change the gateway's watch would see).
own() {
    find "$1" \( ! -user "${owner%:*}" -o ! -group "${owner#*:}" \) -exec chown -h "$owner" {} +
    chmod 0700 "$1"
}

# cert FILE NAME [barista-keygen options]: FILE and FILE_secret made once; their
# metadata set from the options on every run.
cert() {
    file=$1
    name=$2
    shift 2
    if [ ! -e "${file}_secret" ]; then
        barista-keygen --name "$name" "$@" "$file" >/dev/null
        echo "barista-keys-init: made $file"
        return
    fi
    # The update is made on a copy, compared without CZMQ's dated comment lines,
    # and renamed in only when the metadata differs.
    scratch=$(mktemp -d "$(dirname "$file")/.update.XXXXXX")
    cp -p "${file}_secret" "$scratch/cert_secret"
    barista-keygen --update --name "$name" "$@" "$scratch/cert" >/dev/null
    if ! diff -q -I '^#' "$scratch/cert" "$file" >/dev/null 2>&1 ||
        ! diff -q -I '^#' "$scratch/cert_secret" "${file}_secret" >/dev/null 2>&1; then
        mv "$scratch/cert_secret" "${file}_secret"
        mv "$scratch/cert" "$file"
        echo "barista-keys-init: updated $file ($*)"
    fi
    rm -rf "$scratch"
}

need_volume gateway
mkdir -p "$keys/gateway/authorized"
cert "$keys/gateway/gateway" gateway
done_pools=""
for pool in $pools; do
    case " $done_pools " in *" $pool "*) continue ;; esac
    case "$pool" in
    *[!a-z0-9-]* | -* | gateway)
        echo "barista-keys-init: bad pool name '$pool' (lowercase letters, digits and -; not gateway)" >&2
        exit 2
        ;;
    esac
    var=$(echo "$pool" | tr 'a-z-' 'A-Z_')_SERVICES
    eval "services=\${$var:-}"
    if [ -z "$services" ]; then
        echo "barista-keys-init: $var is empty: which services may pool $pool serve?" >&2
        exit 2
    fi
    need_volume "$pool"
    mkdir -p "$keys/$pool"
    cert "$keys/$pool/worker" "$pool" --services "$services"
    install_file "$keys/gateway/gateway" "$keys/$pool/gateway"
    own "$keys/$pool"
    install_file "$keys/$pool/worker" "$keys/gateway/authorized/$pool"
    done_pools="$done_pools $pool"
done
own "$keys/gateway"
echo "barista-keys-init: certificates ready for the gateway and pools:$done_pools"
