#!/bin/sh
# Creates the base image deploy/Dockerfile builds FROM, when it is missing, from
# Debian's archive: debootstrap a minimal Debian root and `docker import` it.  This
# needs no image registry — only an apt mirror — so it works on machines whose Docker
# Engine cannot pull (air-gapped hosts, a local mirror in MIRROR).
#
#   deploy/base-image.sh                 create barista-base:bookworm if absent
#   deploy/base-image.sh --force         recreate it
#
# Environment: BARISTA_BASE_IMAGE (default barista-base:bookworm), SUITE (bookworm),
# MIRROR (the host's apt mirror, else http://deb.debian.org/debian).
# Runs as root (debootstrap needs it); installs debootstrap with apt-get if absent.
set -eu

image="${BARISTA_BASE_IMAGE:-barista-base:bookworm}"
suite="${SUITE:-bookworm}"

if [ "${1:-}" != --force ] && docker image inspect "$image" >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "base-image: $image is missing; creating it needs root (debootstrap): sudo $0" >&2
    exit 1
fi

# The mirror the host's apt already uses, so that the image reaches what the host
# reaches (a local mirror or proxy included).
if [ -z "${MIRROR:-}" ]; then
    MIRROR=$(sed -n 's/^URIs: *\([^ ]*\/debian\)$/\1/p' /etc/apt/sources.list.d/debian.sources \
        2>/dev/null | head -n 1)
    MIRROR="${MIRROR:-http://deb.debian.org/debian}"
fi

if ! command -v debootstrap >/dev/null 2>&1; then
    echo "base-image: installing debootstrap" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap \
        >/dev/null
fi

work=$(mktemp -d /tmp/barista-base.XXXXXX)
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT TERM
root="$work/root"

echo "base-image: debootstrap --variant=minbase $suite from $MIRROR" >&2
debootstrap --variant=minbase "$suite" "$root" "$MIRROR" >"$work/log" 2>&1 || {
    tail -n 20 "$work/log" >&2
    exit 1
}

# A container image needs no package caches, logs or a machine id of its own.  The
# archive may be a dated snapshot whose Release files have expired; apt inside the
# image accepts them as the host's apt does.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/log/*
: >"$root/etc/machine-id"
printf 'Acquire::Check-Valid-Until "false";\n' >"$root/etc/apt/apt.conf.d/99barista-snapshot"
printf 'deb %s %s main\n' "$MIRROR" "$suite" >"$root/etc/apt/sources.list"

echo "base-image: docker import -> $image" >&2
tar -C "$root" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["/bin/bash"]' - "$image" >/dev/null
echo "base-image: $image created" >&2
