#!/usr/bin/env python3
"""processes_bench.py - GET /hello through 1 vs 2 gateway processes (--processes).

With 2 processes it runs twice: each process's worker serving its own process only
(the private ipc:// broker), and every worker registered with both processes (a
tcp:// broker, port + i per process: docs/workers.md, "Several brokers").

Expects a release build in build/ (make build).  For each process count, alternating
ROUNDS times, starts `barista-gateway --local --processes P` with one I/O worker per
gateway process (hosting hello only, no CPU workers), runs wrk for DURATION against
/hello, and prints requests/s and the CPU time (user + system) every process of the
gateway's tree spent per request: parent, gateway processes and workers, read from
/proc before and after the run.  CPU per request does not depend on how the scheduler
shared the cores, so it is the number to project a many-core host from.

    tests/bench/processes_bench.py                    # defaults below
    DURATION=5s ROUNDS=1 tests/bench/processes_bench.py
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("BARISTA_BIN", os.path.join(ROOT, "build", "bin"))
DURATION = os.environ.get("DURATION", "5s")
CONNECTIONS = int(os.environ.get("CONNECTIONS", "64"))
THREADS = int(os.environ.get("THREADS", "2"))
ROUNDS = int(os.environ.get("ROUNDS", "2"))
TICK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tree(pid):
    """pid and every descendant (Linux /proc children lists)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            with open("/proc/%d/task/%d/children" % (p, p)) as f:
                todo.extend(int(c) for c in f.read().split())
        except FileNotFoundError:
            pass
    return out


def cpu_seconds(pids):
    """user + system seconds of the given processes (fields 14 and 15 of stat)."""
    ticks = 0
    for p in pids:
        try:
            with open("/proc/%d/stat" % p) as f:
                stat = f.read()
        except FileNotFoundError:
            continue
        utime, stime = stat[stat.rindex(")") + 2:].split()[11:13]
        ticks += int(utime) + int(stime)
    return ticks / TICK


def ready(port, want_processes, pid):
    """Waits until every gateway process of the tree answers /hello."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        gateways = [p for p in tree(pid) if p != pid and "barista-gateway" in
                    open("/proc/%d/cmdline" % p, "rb").read().decode(errors="replace")]
        if len(gateways) >= want_processes or want_processes == 1:
            try:
                ok = subprocess.run(["curl", "-sf", "http://127.0.0.1:%d/hello" % port],
                                    capture_output=True, timeout=5).returncode == 0
            except subprocess.TimeoutExpired:
                ok = False
            if ok:
                time.sleep(1)  # the other process's worker registering
                return True
        time.sleep(0.2)
    return False


def consecutive_ports(n):
    """A free port with n - 1 free ports after it."""
    for _ in range(100):
        base = free_port()
        try:
            for i in range(1, n):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", base + i))
            return base
        except OSError:
            continue
    sys.exit("no %d consecutive free ports" % n)


def one_run(processes, shared):
    port = free_port()
    tmp = tempfile.mkdtemp(prefix="barista-bench-")
    args = [os.path.join(BIN, "barista-gateway"), "--local", "--processes", str(processes),
            "--listen", "127.0.0.1:%d" % port, "--cpu-workers", "0", "--io-services",
            "hello", "--access-log", "off", "--log-level", "warn",
            "--jobs-db", os.path.join(tmp, "jobs.db")]
    if shared:
        args += ["--broker", "tcp://127.0.0.1:%d" % consecutive_ports(processes)]
    gw = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          stdin=subprocess.DEVNULL)
    try:
        if not ready(port, processes, gw.pid):
            sys.exit("gateway with --processes %d did not start" % processes)
        pids = tree(gw.pid)
        before = cpu_seconds(pids)
        out = subprocess.run(["wrk", "-t", str(THREADS), "-c", str(CONNECTIONS), "-d", DURATION,
                              "http://127.0.0.1:%d/hello" % port],
                             capture_output=True, text=True, check=True).stdout
        used = cpu_seconds(pids) - before
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
        total = int(re.search(r"(\d+) requests in", out).group(1))
        errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        return rps, used * 1e6 / total, int(errors.group(1)) if errors else 0
    finally:
        gw.send_signal(signal.SIGTERM)
        gw.wait(timeout=60)
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    if not shutil.which("wrk"):
        sys.exit("wrk not found: apt-get install wrk")
    with open("/proc/loadavg") as f:
        print("load average at start: %s" % " ".join(f.read().split()[:3]))
    print("| processes | each worker serves | req/s | CPU µs/request (gateway tree) | non-2xx |")
    print("|---:|---|---:|---:|---:|")
    for _ in range(ROUNDS):
        for processes, shared in ((1, False), (2, False), (2, True)):
            rps, us, errors = one_run(processes, shared)
            print("| %d | %s | %.0f | %.1f | %d |" %
                  (processes, "every process" if shared else "its process", rps, us, errors),
                  flush=True)
    with open("/proc/loadavg") as f:
        print("load average at end: %s" % " ".join(f.read().split()[:3]))


if __name__ == "__main__":
    main()
