#!/bin/sh
# Builds the two images a service's own Dockerfile starts from, from deploy/Dockerfile:
#
#   barista-sdk:TAG       headers, libraries, pkg-config and CMake files, compilers
#   barista-runtime:TAG   the slim base a service runs on
#
#   deploy/images.sh            (make images)
#
# TAG is BARISTA_TAG (default local), the tag docker-compose.yml gives the platform
# image too; the base image is BARISTA_BASE_IMAGE (default barista-base:bookworm, made
# by deploy/base-image.sh when missing).  The stages share their layers with the
# platform image's build, so after `make up` this is mostly cache.
set -eu
cd "$(dirname "$0")/.."
tag="${BARISTA_TAG:-local}"
base="${BARISTA_BASE_IMAGE:-barista-base:bookworm}"
[ "$base" != barista-base:bookworm ] || sh deploy/base-image.sh
for target in sdk runtime; do
    echo "images: barista-$target:$tag" >&2
    docker build -q -f deploy/Dockerfile --build-arg BASE="$base" --target "$target" \
        -t "barista-$target:$tag" . >/dev/null
done
