#!/bin/bash
# The SDK as its users get it: install it, build the example service out of tree
# against the installed files only, run the example's tests, start it against a real
# gateway and check its answers over HTTP; then run the commands of docs/workers.md
# and of the example's README (tests/sdk/doctest.py).
#
#   tests/sdk/sdk_test.sh
#
# The SDK is built in build-sdk/ at the top of the source tree (Release, no sanitizer,
# BUILD_TESTING=OFF: the tree docs/workers.md tells users to make), kept between runs
# so that the next run only rebuilds what changed; the prefix and every other file go
# to a temporary directory, removed at the end.  Checks on the way:
# nothing installed carries sanitizer flags or symbols, the shared library has its
# SONAME and exports every function the installed headers declare, the headers do not
# bring in the wire protocol or msgpack-c, a program built with other flags
# (ASan + UBSan) links cleanly, and the static library links with what the CMake
# package and `pkg-config --static` name (libczmq among them).
set -euo pipefail

src="$(cd "$(dirname "$0")/../.." && pwd)"
build="$src/build-sdk"
tmp="$(mktemp -d /tmp/barista-sdk-test.XXXXXX)"
prefix="$tmp/prefix"
jobs="${BARISTA_SDK_JOBS:-2}"
pids=()
t0=$SECONDS

say() { printf 'sdk: [%4ds] %s\n' $((SECONDS - t0)) "$*"; }
die() {
    say "FAILED: $*"
    exit 1
}
cleanup() {
    local rc=$?
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    if [ $rc -ne 0 ]; then
        for log in "$tmp"/*.log; do
            [ -f "$log" ] && { echo "--- $log"; tail -n 30 "$log"; }
        done
    fi
    rm -rf "$tmp"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

say "SDK build ($build) and install into a temporary prefix"
cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF \
    -DBARISTA_SANITIZE=OFF >"$tmp/configure.log" 2>&1 || die "configure"
cmake --build "$build" -j "$jobs" >"$tmp/build.log" 2>&1 || die "build"
cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" 2>&1 || die "install"
libdir="$prefix/lib"
export PKG_CONFIG_PATH="$libdir/pkgconfig"

say "installed artifacts: no sanitizer, SONAME, exports, self-contained headers"
! grep -rl -- '-fsanitize' "$libdir/cmake" "$libdir/pkgconfig" || die "-fsanitize in the package files"
for lib in "$libdir"/libbarista-*.so "$libdir"/libbarista-*.a; do
    ! nm -A "$lib" 2>/dev/null | grep -q '__asan_\|__ubsan_' || die "$lib is instrumented"
done
readelf -d "$libdir/libbarista-worker.so" | grep -q 'SONAME.*libbarista-worker.so.0' ||
    die "no SONAME libbarista-worker.so.0"
# libpq, libcurl and hiredis are loaded when a service first uses them (barista/dl.h),
# never linked: a service that uses none of them never maps them.
! readelf -d "$libdir/libbarista-worker.so" | grep -E 'NEEDED.*(libpq|libcurl|libhiredis)' ||
    die "libbarista-worker.so links libpq, libcurl or hiredis"
python3 - "$prefix/include/barista" "$libdir" <<'EOF' || die "exports"
import re, subprocess, sys, os
inc, lib = sys.argv[1], sys.argv[2]
declared = {"worker": set(), "testing": set()}
for name in os.listdir(inc):
    text = re.sub(r"/\*.*?\*/", "", open(os.path.join(inc, name)).read(), flags=re.S)
    text = re.sub(r"static inline[^{]*\{[^}]*\}", "", text)
    for m in re.finditer(r"^[a-z_][\w \*]*?\b(br_\w+)\s*\(", text, flags=re.M):
        declared["testing" if name == "testing.h" else "worker"].add(m.group(1))
for which, names in declared.items():
    so = os.path.join(lib, "libbarista-%s.so" % which)
    out = subprocess.run(["nm", "-D", "--defined-only", so], capture_output=True, text=True).stdout
    exported = {l.split()[-1].split("@")[0] for l in out.splitlines() if l.strip()}
    missing = sorted(names - exported)
    if missing:
        sys.exit("%s does not export %s" % (so, ", ".join(missing)))
    print("sdk: %s exports all %d functions its headers declare" % (os.path.basename(so), len(names)))
EOF
[ ! -e "$prefix/include/barista/proto.h" ] || die "proto.h is installed"
cat >"$tmp/headers.c" <<'EOF'
#include <barista/pg.h>
#include <barista/redis.h>
#include <barista/testing.h>
#include <barista/worker.h>
/* Neither the wire protocol nor msgpack-c comes along: these names are free. */
typedef int br_msg, msgpack_packer, br_decoder;
int main(void) { return 0; }
EOF
cc -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror -pedantic -c "$tmp/headers.c" -o "$tmp/headers.o" \
    $(pkg-config --cflags barista-testing) || die "the public headers"

notes="$tmp/notes"
cp -r "$src/workers/examples/notes" "$notes"
rm -rf "$notes/build"

say "example: CMake build (find_package(Barista)), its tests"
cmake -S "$notes" -B "$tmp/notes-cmake" -DCMAKE_PREFIX_PATH="$prefix" >"$tmp/notes-cmake.log" 2>&1 &&
    cmake --build "$tmp/notes-cmake" >>"$tmp/notes-cmake.log" 2>&1 || die "notes with CMake"
ctest --test-dir "$tmp/notes-cmake" --output-on-failure >"$tmp/notes-ctest.log" 2>&1 ||
    die "the example's tests"
grep -h "tests passed" "$tmp/notes-ctest.log" | sed 's/^/    /'

say "example: built with ASan+UBSan against the plain SDK, tests again"
cmake -S "$notes" -B "$tmp/notes-asan" -DCMAKE_PREFIX_PATH="$prefix" \
    -DCMAKE_C_FLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer" \
    >"$tmp/notes-asan.log" 2>&1 && cmake --build "$tmp/notes-asan" >>"$tmp/notes-asan.log" 2>&1 ||
    die "notes with other flags"
ctest --test-dir "$tmp/notes-asan" --output-on-failure >>"$tmp/notes-asan.log" 2>&1 ||
    die "the example's tests under ASan"

say "example notes-pg: CMake build against the prefix, its tests against a real PostgreSQL and Redis"
notes_pg="$tmp/notes-pg"
cp -r "$src/workers/examples/notes-pg" "$notes_pg"
rm -rf "$notes_pg/build"
cmake -S "$notes_pg" -B "$tmp/notes-pg-cmake" -DCMAKE_PREFIX_PATH="$prefix" >"$tmp/notes-pg.log" 2>&1 &&
    cmake --build "$tmp/notes-pg-cmake" >>"$tmp/notes-pg.log" 2>&1 || die "notes-pg with CMake"
python3 "$src/tests/integration/dbservers.py" --pg --redis -- \
    ctest --test-dir "$tmp/notes-pg-cmake" --output-on-failure >>"$tmp/notes-pg.log" 2>&1 ||
    die "notes-pg's tests"
! grep -q "Skipped" "$tmp/notes-pg.log" || die "notes-pg's tests were skipped"
grep -h "tests passed" "$tmp/notes-pg.log" | sed 's/^/    /'
# The archive holds the protocol's objects, whose CURVE certificates are CZMQ's: a
# static link needs libczmq among the private dependencies the package files name.
say "example: linked statically, with CMake (Barista::worker_static) and pkg-config"
mkdir -p "$tmp/static"
cp "$notes/main.c" "$notes/notes.c" "$tmp/static/"
cat >"$tmp/static/CMakeLists.txt" <<'EOF'
cmake_minimum_required(VERSION 3.18)
project(notes_static LANGUAGES C)
find_package(Barista 0.1 REQUIRED)
add_executable(notes-static main.c notes.c)
target_link_libraries(notes-static PRIVATE Barista::worker_static)
EOF
cmake -S "$tmp/static" -B "$tmp/static-cmake" -DCMAKE_PREFIX_PATH="$prefix" >"$tmp/static.log" 2>&1 &&
    cmake --build "$tmp/static-cmake" >>"$tmp/static.log" 2>&1 || die "notes with Barista::worker_static"
# With pkg-config: the archive, then the private requirements' libraries (Debian's
# `pkg-config --static libzmq` names a libprotokit.a that no package ships).
private="$(pkg-config --print-requires-private barista-worker | awk '{print $1}')"
grep -qx libczmq <<<"$private" || die "barista-worker.pc does not require libczmq"
cc -o "$tmp/static/notes-pc" "$notes/main.c" "$notes/notes.c" $(pkg-config --cflags barista-worker) \
    -L"$libdir" -l:libbarista-worker.a $(pkg-config --libs $private libuv) -lm \
    >>"$tmp/static.log" 2>&1 || die "notes with pkg-config and the archive"
for bin in "$tmp/static-cmake/notes-static" "$tmp/static/notes-pc"; do
    ! readelf -d "$bin" | grep -q 'NEEDED.*libbarista' || die "$bin needs a shared libbarista"
    readelf -d "$bin" | grep -q 'NEEDED.*libczmq' || die "$bin does not link libczmq"
    "$bin" --list >>"$tmp/static.log" 2>&1 || die "$bin --list"
done


http_port=$(free_port)
broker_port=$(free_port)
export BARISTA_DOC_HTTP_PORT=$http_port BARISTA_DOC_BROKER_PORT=$broker_port PREFIX="$prefix"
export BARISTA_SRC="$src"

say "a gateway from the prefix on 127.0.0.1:$http_port (broker $broker_port)"
BARISTA_JOBS_DB="$tmp/jobs.db" "$prefix/bin/barista-gateway" --listen "127.0.0.1:$http_port" \
    --broker "tcp://127.0.0.1:$broker_port" >"$tmp/gateway.log" 2>&1 &
pids+=($!)

say "the README's commands: the CMake build, the one-line pkg-config build, run, answers"
python3 "$src/tests/sdk/doctest.py" "$notes/README.md" sdk "$notes" --check \
    --keep="$tmp/notes.pids" >"$tmp/readme.log" 2>&1 || die "README.md"
pids+=($(cat "$tmp/notes.pids"))
grep 'blocks of phase' "$tmp/readme.log" | sed 's/^/    /'

say "its routes are in /openapi.json; 404 and 422 come back FastAPI-shaped"
python3 - "$http_port" <<'EOF' || die "HTTP checks"
import json, sys, urllib.request, urllib.error
base = "http://127.0.0.1:%s" % sys.argv[1]
def call(method, path, body=None):
    req = urllib.request.Request(base + path, method=method,
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())
paths = call("GET", "/openapi.json")[1]["paths"]
for p in ("/notes", "/notes/{id}", "/notes/wordcount"):
    assert p in paths, "%s missing from /openapi.json: %s" % (p, sorted(paths))
assert call("GET", "/notes/999") == (404, {"detail": "Note not found"})
status, body = call("POST", "/notes", {"text": "no title"})
assert status == 422 and body["detail"][0]["loc"] == ["body", "title"], body
status, body = call("GET", "/notes?limit=1")
assert status == 200 and len(body) == 1 and body[0]["id"] == 1, body
print("sdk: /openapi.json lists the notes routes; 404, 422 and ?limit= answer as expected")
EOF

say "docs/workers.md: its commands"
BARISTA_DOC_HTTP_PORT=$(free_port) BARISTA_DOC_BROKER_PORT=$(free_port) python3 "$src/tests/sdk/doctest.py" "$src/docs/workers.md" sdk "$tmp/docs" --check \
    >"$tmp/docs.log" 2>&1 || die "docs/workers.md"
grep 'blocks of phase' "$tmp/docs.log" | sed 's/^/    /'
say "passed"
