#!/usr/bin/env python3
"""A bounded chaos burst against the release build (loopback only, ~30 s at most).

2,000 concurrent keep-alive connections each send rounds of pipelined requests
(GET /hello, GET /sleep?ms=20, POST /echo) while I/O workers are killed with SIGKILL
and restarted.  Checks that the gateway survives, that every request gets exactly one
well-formed answer (any status: 502/503/504 are answers), and reports the gateway's
RSS before, at the peak and after the connections are gone.  Standard library only.

    python3 tests/bench/review_stress.py [BIN_DIR]      (default build/bin)
    env: STRESS_CONNS (2000), STRESS_ROUNDS (2), STRESS_TRIM=1 (RSS after malloc_trim)
"""

import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import time

CONNS = int(os.environ.get("STRESS_CONNS", "2000"))
PIPELINE = 4
DURATION = 10.0       # seconds of load per round
ROUNDS = int(os.environ.get("STRESS_ROUNDS", "2"))  # RSS after round 2 tells growth from reuse
KILL_EVERY = 1.5      # seconds between worker kills
IO_WORKERS = 3
READ_TIMEOUT = 20.0   # a request unanswered this long counts as hung


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


REQS = [b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /sleep?ms=20 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"]


async def read_response(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    close = False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection" and value.strip().lower() == b"close":
            close = True
    if length:
        await reader.readexactly(length)
    return status, close


async def client(port, stop_at, stats):
    while time.monotonic() < stop_at:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            stats["connect_errors"] += 1
            await asyncio.sleep(0.1)
            continue
        try:
            while time.monotonic() < stop_at:
                batch = [random.choice(REQS) for _ in range(PIPELINE)]
                writer.write(b"".join(batch))
                stats["sent"] += len(batch)
                closed = False
                for _ in batch:
                    status, close = await asyncio.wait_for(read_response(reader), READ_TIMEOUT)
                    stats["answered"] += 1
                    stats.setdefault(status, 0)
                    stats[status] += 1
                    if close:
                        closed = True
                        break
                if closed:
                    break
        except asyncio.TimeoutError:
            stats["hung"] += 1
        except (OSError, asyncio.IncompleteReadError) as e:
            stats["conn_errors"] += 1
            stats["last_error"] = repr(e)
        finally:
            writer.close()


def start_worker(bin_dir, endpoint):
    return subprocess.Popen([os.path.join(bin_dir, "barista-worker"), "--services",
                             "hello,sleep,echo", "--connect", endpoint, "--heartbeat-ms", "200",
                             "--concurrency", "512"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def chaos(bin_dir, endpoint, workers, stop_at, stats):
    while time.monotonic() < stop_at:
        await asyncio.sleep(KILL_EVERY)
        i = random.randrange(len(workers))
        workers[i].send_signal(signal.SIGKILL)
        workers[i].wait()
        workers[i] = start_worker(bin_dir, endpoint)
        stats["kills"] += 1


async def main(bin_dir):
    port, bport = free_port(), free_port()
    endpoint = "tcp://127.0.0.1:%d" % bport
    errlog = open("/tmp/review_stress_gateway.log", "wb")
    gw = subprocess.Popen([os.path.join(bin_dir, "barista-gateway"), "--listen",
                           "127.0.0.1:%d" % port, "--broker", endpoint, "--broker-heartbeat",
                           "200ms", "--default-timeout", "5s"],
                          stdout=subprocess.DEVNULL, stderr=errlog)
    workers = [start_worker(bin_dir, endpoint) for _ in range(IO_WORKERS)]
    try:
        for _ in range(100):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                time.sleep(0.1)
        await asyncio.sleep(1.0)
        base = rss_kib(gw.pid)
        ok = True
        for rnd in range(ROUNDS):
            stats = {"sent": 0, "answered": 0, "hung": 0, "conn_errors": 0, "connect_errors": 0,
                     "kills": 0}
            stop_at = time.monotonic() + DURATION
            peak = [base]

            async def watch():
                while time.monotonic() < stop_at + READ_TIMEOUT and gw.poll() is None:
                    peak[0] = max(peak[0], rss_kib(gw.pid))
                    await asyncio.sleep(0.2)

            watcher = asyncio.ensure_future(watch())
            t0 = time.monotonic()
            await asyncio.gather(chaos(bin_dir, endpoint, workers, stop_at, stats),
                                 *[client(port, stop_at, stats) for _ in range(CONNS)])
            elapsed = time.monotonic() - t0
            watcher.cancel()
            await asyncio.sleep(3.0)
            alive = gw.poll() is None
            after = rss_kib(gw.pid) if alive else -1
            print("round %d: gateway alive: %s" % (rnd + 1, alive))
            print("elapsed %.1f s, worker kills %d" % (elapsed, stats.pop("kills")))
            print("requests sent %d, answered %d (%.0f/s), hung %d" %
                  (stats["sent"], stats["answered"], stats["answered"] / elapsed, stats["hung"]))
            print("statuses: %s" % {k: v for k, v in stats.items() if isinstance(k, int)})
            print("connection errors %d, connect errors %d %s" %
                  (stats["conn_errors"], stats["connect_errors"], stats.get("last_error", "")))
            print("gateway RSS: baseline %d KiB, peak %d KiB, after %d KiB" % (base, peak[0], after))
            ok = ok and alive and stats["hung"] == 0 and stats["conn_errors"] == 0
            if not alive:
                break
        if alive and os.environ.get("STRESS_TRIM"):
            # What the allocator keeps versus what is still in use: ask glibc to hand
            # free pages back (needs gdb and ptrace rights).
            subprocess.run(["gdb", "-p", str(gw.pid), "-batch", "-ex",
                            "call (int)malloc_trim(0)"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=30)
            print("gateway RSS after malloc_trim(0): %d KiB" % rss_kib(gw.pid))
        return 0 if ok else 1
    finally:
        for w in workers:
            w.send_signal(signal.SIGKILL)
            w.wait()
        gw.send_signal(signal.SIGTERM)
        try:
            rc = gw.wait(15)
            print("gateway exit code %s" % rc)
        except subprocess.TimeoutExpired:
            gw.kill()
            print("gateway did not exit after SIGTERM")


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "build/bin")))
