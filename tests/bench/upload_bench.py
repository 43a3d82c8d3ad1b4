#!/usr/bin/python3
"""A streamed upload: SIZE_MIB (512) MiB sent with curl (`-T -`, chunked, from a pipe)
to POST /upload/hash through the gateway and one I/O worker, which hashes it as it
streams.  Reported: throughput, the answer's byte count and digest check, and the
gateway's and the worker's RSS before and at their peak (sampled every 20 ms).

    BARISTA_BIN=build/bin tests/bench/upload_bench.py
    SIZE_MIB=1024 tests/bench/upload_bench.py
"""
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from edge_bench import free_port, wait_port  # noqa: E402  (the same helpers)
from sse_bench import BIN, rss_kib  # noqa: E402

SIZE_MIB = int(os.environ.get("SIZE_MIB", "512"))


def main():
    port, broker = free_port(), "tcp://127.0.0.1:%d" % free_port()
    tmp = tempfile.mkdtemp(prefix="upload-bench-")
    gw = subprocess.Popen([os.path.join(BIN, "barista-gateway"), "--listen",
                           "127.0.0.1:%d" % port, "--broker", broker, "--jobs-db",
                           os.path.join(tmp, "jobs.db"), "--access-log", "off"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wk = subprocess.Popen([os.path.join(BIN, "barista-worker"), "--services", "upload",
                           "--connect", broker],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        time.sleep(1.5)  # the worker's READY
        before = (rss_kib([gw.pid]), rss_kib([wk.pid]))
        peak = list(before)
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                peak[0] = max(peak[0], rss_kib([gw.pid]))
                peak[1] = max(peak[1], rss_kib([wk.pid]))
                stop.wait(0.02)

        t = threading.Thread(target=sample, daemon=True)
        t.start()
        size = SIZE_MIB * 1024 * 1024
        t0 = time.monotonic()
        feed = subprocess.Popen(["head", "-c", str(size), "/dev/zero"], stdout=subprocess.PIPE)
        out = subprocess.run(["curl", "-sS", "-X", "POST", "-T", "-", "-H",
                              "Content-Type: application/octet-stream",
                              "http://127.0.0.1:%d/upload/hash" % port],
                             stdin=feed.stdout, capture_output=True, timeout=600)
        wall = time.monotonic() - t0
        stop.set()
        t.join()
        got = json.loads(out.stdout)
        want = hashlib.sha256()
        zeros = bytes(1 << 20)
        for _ in range(SIZE_MIB):
            want.update(zeros)
        ok = got == {"bytes": size, "sha256": want.hexdigest()}
        print("upload %d MiB: %.1f s, %.0f MiB/s, answer %s; gateway RSS %.1f -> peak %.1f MB, "
              "worker RSS %.1f -> peak %.1f MB" % (SIZE_MIB, wall, SIZE_MIB / wall,
                                                 "correct" if ok else "WRONG %r" % got,
                                                 before[0] / 1024, peak[0] / 1024,
                                                 before[1] / 1024, peak[1] / 1024))
    finally:
        for p in (wk, gw):
            p.send_signal(signal.SIGTERM)
            p.wait(30)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
