#!/usr/bin/python3
"""Calling a streaming service from a handler (issue 14): the clock's GET /clock/lines
(37-byte numbered lines) read by an HTTP client directly, and through the relay
service's three ways of calling it (workers/services/relay.c):

    direct    GET /clock/lines?n=N     client <- gateway <- clock
    relayed   GET /relay/lines?n=N     client <- gateway <- relay <- (streamed call) <- clock
    summary   GET /relay/summary?n=N   the relay counts the streamed call's lines
    gathered  GET /relay/gather?n=G    the gateway gathers the clock's stream into one
                                       REPLY for the relay (G lines, under 8 MiB)

Reported per way: MB/s of the clock's bytes, and the server CPU (gateway + both
workers, user + system from /proc) per MB.  First, a slow client: GET /relay/lines of
SLOW_LINES lines (and the same of /clock/lines directly) read after a pause of 3 s,
with the gateway's RSS before and at its
peak - what a relay to a client that stops reading costs the gateway.

    BARISTA_BIN=build-rel/bin tests/bench/call_stream_bench.py
    N=1000000 ROUNDS=3 BARISTA_BIN=build-rel/bin tests/bench/call_stream_bench.py
"""
import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from edge_bench import cpu_ticks, free_port, wait_port  # noqa: E402  (the same helpers)
from sse_bench import BIN, rss_kib  # noqa: E402

N = int(os.environ.get("N", "1000000"))
G = int(os.environ.get("G", "200000"))
ROUNDS = int(os.environ.get("ROUNDS", "3"))
SLOW_LINES = int(os.environ.get("SLOW_LINES", "3000000"))
LINE_LEN = 37
HZ = os.sysconf("SC_CLK_TCK")


def get(port, path, pause=0.0, watch=None):
    """GETs path over HTTP/1.1 and reads the chunked body to its end; returns the
    bytes of the whole answer (headers and framing included) and the peak RSS of
    `watch` sampled while reading."""
    s = socket.create_connection(("127.0.0.1", port))
    if pause:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    s.sendall(b"GET %s HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n" % path.encode())
    total, peak, tail = 0, 0, b""
    if pause:
        end = time.monotonic() + pause
        while time.monotonic() < end:
            peak = max(peak, rss_kib([watch]))
            time.sleep(0.05)
    while True:
        more = s.recv(1 << 20)
        if not more:
            break
        total += len(more)
        tail = (tail + more)[-64:]
        if watch:
            peak = max(peak, rss_kib([watch]))
    s.close()
    return total, peak, tail


def main():
    bport, hport = free_port(), free_port()
    endpoint = "tcp://127.0.0.1:%d" % bport
    procs = [subprocess.Popen([os.path.join(BIN, "barista-gateway"), "--listen",
                               "127.0.0.1:%d" % hport, "--broker", endpoint],
                              stderr=subprocess.DEVNULL)]
    wait_port(hport)
    for svc in ("clock", "relay"):
        procs.append(subprocess.Popen([os.path.join(BIN, "barista-worker"), "--services", svc,
                                       "--connect", endpoint], stderr=subprocess.DEVNULL))
    pids = [p.pid for p in procs]
    try:
        deadline = time.monotonic() + 20
        while get(hport, "/relay/summary?n=1")[2].find(b'"lines":1') < 0:
            if time.monotonic() > deadline:
                raise RuntimeError("the relay never answered")
            time.sleep(0.1)
        print("load before: %s" % open("/proc/loadavg").read().strip())
        for path in ("/clock/lines", "/relay/lines"):
            get(hport, path + "?n=1000")  # warm up the gateway's buffers
            base = rss_kib([procs[0].pid])
            total, peak, tail = get(hport, "%s?n=%d" % (path, SLOW_LINES), pause=3.0,
                                    watch=procs[0].pid)
            print("slow client of %s: %.1f MB after a 3 s pause; gateway RSS %d KiB, peak %d "
                  "KiB (+%d KiB); complete: %s" % (path, total / 1e6, base, peak, peak - base,
                                                   tail.endswith(b"\r\n0\r\n\r\n")))
        ways = [("direct", "/clock/lines?n=%d" % N, N), ("relayed", "/relay/lines?n=%d" % N, N),
                ("summary", "/relay/summary?n=%d" % N, N),
                ("gathered", "/relay/gather?n=%d" % G, G)]
        print("%-9s %10s %8s %12s" % ("way", "MB", "MB/s", "CPU ms/MB"))
        for name, path, lines in ways:
            mb = lines * LINE_LEN / 1e6
            rounds = ROUNDS * (N // G if name == "gathered" else 1)
            t0, c0 = time.monotonic(), cpu_ticks(pids)
            for _ in range(rounds):
                get(hport, path)
            wall, cpu = time.monotonic() - t0, (cpu_ticks(pids) - c0) / HZ
            print("%-9s %10.1f %8.1f %12.2f" % (name, mb * rounds, mb * rounds / wall,
                                               cpu * 1000 / (mb * rounds)))
        print("load after: %s" % open("/proc/loadavg").read().strip())
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait()


if __name__ == "__main__":
    main()
