#!/usr/bin/env python3
"""The cost of typed contracts end to end, in one run on one machine.

POSTs the benchmark's 1 KiB JSON body (contracts_body.h) with wrk to:

  barista  POST /typed/bench      the 10-field BenchUser schema: validated, converted
  barista  POST /typed/bench-raw  the same route without a schema (JSON to msgpack only)
  fastapi  POST /typed/bench      the same model in FastAPI + pydantic (fastapi_twin.py)
  fastapi  POST /typed/bench-raw  FastAPI parsing the JSON without a model

and reports, per case, requests per second and the server CPU per request (from
/proc/PID/stat: the gateway and the worker separately for Barista, uvicorn for
FastAPI).  The load generator shares the cores, so CPU per request is the number to
compare, not throughput.  The cases alternate for BENCH_ROUNDS rounds and each keeps
its round with the least CPU per request (the least disturbed by whatever else the
machine runs).  Benchmarks measure; nothing here asserts a time.

  python3 tests/bench/contracts_bench.py            # release build in build/
  BENCH_DURATION=5 BARISTA_BIN=build/bin python3 tests/bench/contracts_bench.py

Needs wrk and Debian's python3-fastapi/uvicorn (deploy/install-deps.sh bench).
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

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
BIN = os.environ.get("BARISTA_BIN", os.path.join(ROOT, "build", "bin"))
DUR = int(os.environ.get("BENCH_DURATION", "4"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
CONNS = int(os.environ.get("BENCH_CONNECTIONS", "32"))
PY = os.environ.get("BENCH_PYTHON", "/usr/bin/python3")
TICK = os.sysconf("SC_CLK_TCK")


def body():
    """The JSON body, read from contracts_body.h so that both benchmarks use one."""
    text = open(os.path.join(HERE, "contracts_body.h")).read()
    macro = text[text.index("#define CONTRACTS_BENCH_BODY"):text.index("#endif")]
    parts = re.findall(r'"((?:[^"\\]|\\.)*)"', macro)
    return "".join(parts).replace('\\"', '"').replace("\\\\", "\\")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("process exited: %s" % proc.args)
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("port %d never opened" % port)


def ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def wrk(port, path, lua, seconds):
    out = subprocess.run(["wrk", "-t", "2", "-c", str(CONNS), "-d", "%ds" % seconds, "-s", lua,
                          "http://127.0.0.1:%d%s" % (port, path)],
                         capture_output=True, text=True, check=True).stdout
    reqs = int(re.search(r"(\d+) requests in", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if bad:
        raise RuntimeError("%s answered %s non-2xx responses" % (path, bad.group(1)))
    return reqs


def measure(port, path, lua, pids):
    wrk(port, path, lua, 1)  # warm up
    before = [ticks(p) for p in pids]
    t0 = time.monotonic()
    n = wrk(port, path, lua, DUR)
    secs = time.monotonic() - t0
    us = [(ticks(p) - b) * 1e6 / TICK / n for p, b in zip(pids, before)]
    return n / secs, us


def main():
    for tool in ("wrk",):
        if not shutil.which(tool):
            sys.exit("contracts_bench: %s is missing (deploy/install-deps.sh bench)" % tool)
    procs = []
    tmp = tempfile.mkdtemp(prefix="barista-contracts-bench-")
    try:
        lua = os.path.join(tmp, "post.lua")
        data = body()
        with open(lua, "w") as f:
            f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                    "wrk.body = [==[%s]==]\n" % data)
        gw_port, broker = free_port(), "tcp://127.0.0.1:%d" % free_port()
        env = dict(os.environ, BARISTA_JOBS_DB=os.path.join(tmp, "jobs.db"))
        gw = subprocess.Popen([os.path.join(BIN, "barista-gateway"), "--listen",
                               "127.0.0.1:%d" % gw_port, "--broker", broker],
                              stderr=subprocess.DEVNULL, env=env, start_new_session=True)
        procs.append(gw)
        wait_port(gw_port, gw)
        worker = subprocess.Popen([os.path.join(BIN, "barista-worker-test"), "--services",
                                   "typed", "--connect", broker], stderr=subprocess.DEVNULL,
                                  start_new_session=True)
        procs.append(worker)
        fa_port = free_port()
        fa = subprocess.Popen([PY, "-m", "uvicorn", "fastapi_twin:app", "--host", "127.0.0.1",
                               "--port", str(fa_port), "--log-level", "warning",
                               "--no-access-log"],
                              cwd=os.path.join(ROOT, "tests", "integration"),
                              stderr=subprocess.DEVNULL, start_new_session=True)
        procs.append(fa)
        wait_port(fa_port, fa)
        deadline = time.monotonic() + 20
        while subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                              "http://127.0.0.1:%d/readyz" % gw_port],
                             capture_output=True, text=True).stdout != "200":
            if time.monotonic() > deadline:
                raise RuntimeError("the typed worker never joined")
            time.sleep(0.1)

        print("contracts_bench: %d-byte JSON body, 10-field model, %d connections, %d s per "
              "case" % (len(data), CONNS, DUR))
        rows = {}
        cases = (("barista schema", gw_port, "/typed/bench", [gw.pid, worker.pid]),
                 ("barista no schema", gw_port, "/typed/bench-raw", [gw.pid, worker.pid]),
                 ("fastapi schema", fa_port, "/typed/bench", [fa.pid]),
                 ("fastapi no schema", fa_port, "/typed/bench-raw", [fa.pid]))
        for _ in range(ROUNDS):
            for name, port, path, pids in cases:
                rps, us = measure(port, path, lua, pids)
                if name not in rows or sum(us) < sum(rows[name][1]):
                    rows[name] = (rps, us)
        for name, _, _, _ in cases:
            rps, us = rows[name]
            detail = (" (gateway %.1f + worker %.1f)" % (us[0], us[1])) if len(us) == 2 else ""
            print("  %-18s %9.0f req/s  %6.1f us CPU/request%s" % (name, rps, sum(us), detail))
        gs, gr = rows["barista schema"][1][0], rows["barista no schema"][1][0]
        hop = sum(rows["barista schema"][1])
        print("  validation on the gateway: %.1f us/request = %.0f%% of the hop's CPU "
              "(gateway + worker %.1f us)" % (gs - gr, 100 * (gs - gr) / hop, hop))
        print("  FastAPI / Barista CPU per validated request: %.1f x"
              % (sum(rows["fastapi schema"][1]) / hop))
    finally:
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        shutil.rmtree(tmp, True)


if __name__ == "__main__":
    main()
