#!/usr/bin/env python3
"""The gateway's RSS under issue 13's job-memory attack (loopback only, ~1 minute).

N POSTs of a ~1 MiB JSON body with ?delay_ms=2592000000 (30 days) to a public task,
one after another, with no authentication: before issue 13 every payload stayed in
memory until its job ran.  Prints the gateway's RSS before and after, and the statuses
the POSTs got.  A measurement, not a test: nothing is asserted.  Standard library only.

    python3 tests/bench/jobs_memory.py [BIN_DIR] [N]     (default build/bin, 300)

The worker is barista-worker-test hosting public-email (the email task, published);
with binaries from before issue 13, where every task was public and
barista-worker-test had no public-email, set JOBS_MEMORY_WORKER=barista-worker and
JOBS_MEMORY_SERVICES=email.
"""

import http.client
import os
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..",
                                                                           "build", "bin"))
N = int(sys.argv[2]) if len(sys.argv) > 2 else 300
WORKER = os.environ.get("JOBS_MEMORY_WORKER", "barista-worker-test")
SERVICES = os.environ.get("JOBS_MEMORY_SERVICES", "public-email")
BODY = b'"' + b"x" * (1024 * 1024 - 64) + b'"'  # a JSON string just under 1 MiB


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def post(port, path, body):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        c.request("POST", path, body, {"Content-Type": "application/json"})
        r = c.getresponse()
        r.read()
        return r.status
    finally:
        c.close()


def main():
    work = tempfile.TemporaryDirectory(prefix="barista-jobs-memory-")
    http_port, broker = free_port(), "tcp://127.0.0.1:%d" % free_port()
    logs = [open(os.path.join(work.name, n), "w") for n in ("gateway.log", "worker.log")]
    gw = subprocess.Popen([os.path.join(BIN, "barista-gateway"), "--listen",
                           "127.0.0.1:%d" % http_port, "--broker", broker, "--jobs-db",
                           os.path.join(work.name, "jobs.db")],
                          stdout=subprocess.DEVNULL, stderr=logs[0])
    wk = subprocess.Popen([os.path.join(BIN, WORKER), "--services", SERVICES, "--connect",
                           broker, "--outbox", os.path.join(work.name, "outbox.txt")],
                          stdout=subprocess.DEVNULL, stderr=logs[1])
    try:
        deadline = time.monotonic() + 20
        while True:  # the task is announced once a bad body gets 422, not 404
            try:
                if post(http_port, "/jobs/email", b"{") == 422:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                sys.exit("the email task was never announced (see %s)" % work.name)
            time.sleep(0.1)
        time.sleep(0.5)
        before = rss_mib(gw.pid)
        statuses = {}
        for _ in range(N):
            s = post(http_port, "/jobs/email?delay_ms=2592000000", BODY)
            statuses[s] = statuses.get(s, 0) + 1
        time.sleep(1.0)
        after = rss_mib(gw.pid)
        print("%d POSTs of %d KiB, 30-day delay: statuses %s; gateway RSS %.0f MiB -> %.0f MiB"
              % (N, len(BODY) // 1024, statuses, before, after))
    finally:
        for p in (wk, gw):
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        for f in logs:
            f.close()
        work.cleanup()


if __name__ == "__main__":
    main()
