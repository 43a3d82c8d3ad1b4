#!/bin/sh
# CI: a time-boxed libFuzzer run of every fuzz target (tests/fuzz/README.md, "CI").
# Builds the targets with clang (-DBARISTA_FUZZ=ON) in build-fuzz/, runs each one for
# FUZZ_SECONDS (default 60) from a scratch copy of its committed corpus, and fails if
# any target reports a crash, leak, sanitizer error or timeout.  The corpus the run
# grows stays in build-fuzz/corpus-ci/ (not committed); a finding is left as
# build-fuzz/findings/<target>/crash-* (or leak-*, timeout-*) and printed.
#
#   tests/fuzz/run_ci.sh                 every target, FUZZ_SECONDS each
#   FUZZ_SECONDS=10 tests/fuzz/run_ci.sh fuzz_zap fuzz_http
set -eu
cd "$(dirname "$0")/../.."

secs="${FUZZ_SECONDS:-60}"
jobs="${JOBS:-2}"
build="${FUZZ_BUILD_DIR:-build-fuzz}"
# target:corpus directory under tests/fuzz/corpus
all="fuzz_decode:decode fuzz_http:http fuzz_json:json fuzz_params:params fuzz_zap:zap fuzz_worker:worker fuzz_broker:broker fuzz_contracts:contracts fuzz_ws:ws"

if ! command -v clang >/dev/null 2>&1; then
    echo "fuzz: clang is missing (deploy/install-deps.sh fuzz installs it)" >&2
    exit 1
fi

want=""
if [ $# -gt 0 ]; then
    for t in "$@"; do
        found=""
        for e in $all; do [ "${e%%:*}" = "$t" ] && found="$e"; done
        [ -n "$found" ] || { echo "fuzz: unknown target $t (known: $all)" >&2; exit 2; }
        want="$want $found"
    done
else
    want="$all"
fi

CC=clang cmake -S . -B "$build" -DBARISTA_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
targets=""
for e in $want; do targets="$targets ${e%%:*}"; done
# shellcheck disable=SC2086
cmake --build "$build" -j "$jobs" --target $targets >/dev/null

summary="$build/fuzz-summary.txt"
: >"$summary"
failed=0
for e in $want; do
    t="${e%%:*}"
    c="${e#*:}"
    work="$build/corpus-ci/$c"
    out="$build/findings/$t"
    rm -rf "$work" "$out"
    mkdir -p "$work" "$out"
    cp tests/fuzz/corpus/"$c"/* "$work"/
    log="$build/findings/$t.log"
    echo "fuzz: $t for ${secs}s from $(ls tests/fuzz/corpus/"$c" | wc -l) seeds" >&2
    rc=0
    # -timeout: one input that takes this long is a hang; -rss_limit_mb: a leak that
    # grows without bound.  Every sanitizer finding exits non-zero.
    "$build/bin/$t" -max_total_time="$secs" -max_len=4096 -timeout=25 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$out/" "$work" >"$log" 2>&1 || rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    if [ "$rc" -eq 0 ]; then
        status=ok
    else
        status="FAILED (exit $rc)"
        failed=1
        echo "---- $t: last lines of $log" >&2
        grep -E 'ERROR|SUMMARY|Test unit written|runtime error|ABORT' "$log" | head -20 >&2 || true
        tail -40 "$log" >&2
    fi
    printf '%-12s %-20s execs %-10s cov %-6s ft %-6s corpus %s -> %s\n' "$t" "$status" \
        "${execs:-?}" "${cov:-?}" "${ft:-?}" "$(ls tests/fuzz/corpus/"$c" | wc -l)" \
        "$(ls "$work" | wc -l)" >>"$summary"
done
echo "fuzz summary (${secs}s per target):"
cat "$summary"
if [ "$failed" -ne 0 ]; then
    echo "fuzz: a target found a problem; its input is in $build/findings/<target>/" >&2
    exit 1
fi
