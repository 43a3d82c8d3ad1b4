#!/usr/bin/python3
"""Server-Sent Events at scale: STREAMS concurrent streams each getting 10 events/s
(Barista's GET /clock?interval_ms=100 through the gateway and one I/O worker) side by
side with FastAPI's StreamingResponse doing the same (an async generator sleeping
100 ms between events; Debian's python3-fastapi and python3-uvicorn).

The client (asyncio, in this process) opens every stream, reads them all and counts
events.  Reported per server: events received, the server's CPU time (user + system of
every server process, from /proc) per event, and its peak RSS while the streams run.

    tests/bench/sse_bench.py                       # 1000 streams, 10 s
    BARISTA_BIN=build/bin STREAMS=1000 SECONDS=10 tests/bench/sse_bench.py

Needs /usr/bin/python3 with fastapi and uvicorn (Debian).
"""
import asyncio
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from edge_bench import cpu_ticks, free_port, wait_port  # noqa: E402  (the same helpers)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
BIN = os.path.abspath(os.environ.get("BARISTA_BIN", os.path.join(ROOT, "build", "bin")))
STREAMS = int(os.environ.get("STREAMS", "1000"))
SECONDS = int(os.environ.get("SECONDS", "10"))
EVENTS = SECONDS * 10

FASTAPI_APP = r'''
import asyncio
from fastapi import FastAPI
from fastapi.responses import StreamingResponse

app = FastAPI()


@app.get("/clock")
async def clock(n: int = 5, interval_ms: int = 200):
    async def events():
        yield "retry: 1000\n\n"
        for i in range(n):
            yield 'id: %d\nevent: tick\ndata: {"seq":%d,"n":%d}\n\n' % (i, i, n)
            if i + 1 < n:
                await asyncio.sleep(interval_ms / 1000)
    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"cache-control": "no-cache"})
'''


def rss_kib(pids):
    total = 0
    for p in pids:
        try:
            with open("/proc/%d/status" % p) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def children(pid):
    """pid and its descendants (uvicorn has none with one worker; kept general)."""
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True,
                         text=True).stdout.split()
    return [pid] + [int(p) for p in out]


async def one_stream(port, path, counts):
    try:
        r, w = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        counts["failed"] += 1
        return
    w.write(("GET %s HTTP/1.1\r\nHost: b\r\n\r\n" % path).encode())
    events = 0
    tail = b""
    try:
        while True:
            data = await r.read(65536)
            if not data:
                break
            tail += data
            events += tail.count(b"event: tick")
            tail = tail[-16:]
            if tail.endswith(b"0\r\n\r\n"):
                break
    except OSError:
        counts["failed"] += 1
    counts["events"] += events
    w.close()


async def run_streams(port, pids):
    counts = {"events": 0, "failed": 0}
    path = "/clock?n=%d&interval_ms=100" % EVENTS
    peak = [0]

    async def sample():
        while True:
            peak[0] = max(peak[0], rss_kib(pids))
            await asyncio.sleep(0.2)

    sampler = asyncio.ensure_future(sample())
    t0, c0 = time.monotonic(), cpu_ticks(pids)
    await asyncio.gather(*(one_stream(port, path, counts) for _ in range(STREAMS)))
    t1, c1 = time.monotonic(), cpu_ticks(pids)
    sampler.cancel()
    hz = os.sysconf("SC_CLK_TCK")
    return counts, t1 - t0, (c1 - c0) / hz, peak[0]


def report(name, counts, wall, cpu, peak):
    per = cpu / counts["events"] * 1e6 if counts["events"] else float("nan")
    print("%-8s streams=%d events=%d failed=%d wall=%.1fs cpu=%.2fs (%.1f%% of a core) "
          "cpu/event=%.1fus peak_rss=%.1fMB" % (name, STREAMS, counts["events"],
                                                 counts["failed"], wall, cpu,
                                                 100 * cpu / wall, per, peak / 1024))
    sys.stdout.flush()


def bench_barista():
    port = free_port()
    broker = "tcp://127.0.0.1:%d" % free_port()
    tmp = tempfile.mkdtemp(prefix="sse-bench-")
    gw = subprocess.Popen([os.path.join(BIN, "barista-gateway"), "--listen",
                           "127.0.0.1:%d" % port, "--broker", broker, "--jobs-db",
                           os.path.join(tmp, "jobs.db"), "--max-connections", "20000",
                           "--access-log", "off"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wk = subprocess.Popen([os.path.join(BIN, "barista-worker"), "--services", "clock",
                           "--connect", broker, "--concurrency", str(STREAMS * 2)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port)) as s:
                    s.sendall(b"GET /clock?n=1&interval_ms=0 HTTP/1.0\r\n\r\n")
                    if s.recv(20).startswith(b"HTTP/1.1 200"):
                        break
            except OSError:
                pass
            time.sleep(0.2)
        report("barista", *asyncio.run(run_streams(port, [gw.pid, wk.pid])))
    finally:
        for p in (wk, gw):
            p.send_signal(signal.SIGTERM)
            p.wait(30)
        shutil.rmtree(tmp, ignore_errors=True)


def bench_fastapi():
    port = free_port()
    tmp = tempfile.mkdtemp(prefix="sse-bench-")
    with open(os.path.join(tmp, "sse_app.py"), "w") as f:
        f.write(FASTAPI_APP)
    srv = subprocess.Popen(["/usr/bin/python3", "-m", "uvicorn", "sse_app:app", "--port",
                            str(port), "--log-level", "warning", "--no-access-log"],
                           cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        report("fastapi", *asyncio.run(run_streams(port, children(srv.pid))))
    finally:
        srv.send_signal(signal.SIGTERM)
        srv.wait(30)
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    bench_barista()
    bench_fastapi()


if __name__ == "__main__":
    main()
