"""Database clients benchmark: one row from PostgreSQL and one key from Redis through
an HTTP route, side by side in one run on this machine.

  1. GET /notes/{id} - the notes-pg example (gateway + one I/O worker, a pool of 8)
     vs FastAPI + asyncpg (uvicorn, one process, uvloop + httptools, a pool of 8)
  2. GET /cache/{key} - notes-pg's cache service (Redis, 2 pipelined connections)
     vs FastAPI + redis-py's asyncio client
  3. GET /db/pg/note/{id} - barista-worker-test's dbtest service: the async pool on the
     worker's loop vs the same read with blocking libpq on the thread pool (br_offload,
     --threadpool 4, one connection per pool thread), the approach the async client
     replaces

Each server is measured with wrk (-t2 -c$CONNECTIONS -d$DURATION, --latency) after a
short warm-up.  CPU is user + system time from /proc of the app tier only (gateway +
worker, or the uvicorn process) over the measured run, divided by the requests wrk
counted; the database server's CPU is reported apart.  wrk and the database share the
two cores with the app tier, so requests/s is capped by the machine: the CPU per
request (and requests per app-tier CPU-second) is the number to compare.

  python3 tests/bench/db/db_bench.py            # needs the release build (make build)

Environment: BENCH_DURATION (seconds, default 10), BENCH_CONNECTIONS (64), BARISTA_BIN
(build/bin), BENCH_PYTHON (the interpreter with Debian's fastapi, uvicorn, asyncpg and
redis: /usr/bin/python3).
"""

import os
import re
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import dbservers  # noqa: E402

DURATION = int(os.environ.get("BENCH_DURATION", "10"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "64"))
BIN = os.environ.get("BARISTA_BIN", os.path.join(ROOT, "build", "bin"))
PY = os.environ.get("BENCH_PYTHON", "/usr/bin/python3")
HZ = os.sysconf("SC_CLK_TCK")
WORK = tempfile.mkdtemp(prefix="barista-dbbench-")


def log(msg):
    print("[db bench %s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


def spawn(name, args, env=None):
    e = dict(os.environ)
    e.update(env or {})
    out = open(os.path.join(WORK, name + ".log"), "wb")
    return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=e,
                            start_new_session=True)


def stop(procs):
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    for p in procs:
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def group_ticks(procs):
    """utime + stime of every process in the groups of procs."""
    pgids = {p.pid for p in procs}
    total = 0
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) in pgids:  # pgrp
            total += int(fields[11]) + int(fields[12])
    return total


def children_ticks(ppid):
    """utime + stime of the postmaster's children (the database's backends)."""
    total = 0
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == ppid or int(d) == ppid:
            total += int(fields[11]) + int(fields[12])
    return total


def http_status(port, path):
    import http.client
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        c.request("GET", path)
        r = c.getresponse()
        r.read()
        return r.status
    except OSError:
        return 0


def wait_200(port, path, seconds=30):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if http_status(port, path) == 200:
            return
        time.sleep(0.1)
    raise RuntimeError("no 200 from :%d%s" % (port, path))


def wrk(port, path, seconds):
    out = subprocess.run(["wrk", "-t2", "-c%d" % CONNECTIONS, "-d%ds" % seconds, "--latency",
                          "http://127.0.0.1:%d%s" % (port, path)],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True).stdout
    reqs = int(re.search(r"(\d+) requests in", out).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"requests": reqs, "rps": rps, "p99_ms": float(p99.group(1)) * scale,
            "errors": int(non2xx.group(1)) if non2xx else 0, "raw": out}


def measure(name, procs, port, path, pg_pid):
    wait_200(port, path)
    wrk(port, path, 2)  # warm-up: connections, caches, statements
    t0, d0 = group_ticks(procs), children_ticks(pg_pid)
    r = wrk(port, path, DURATION)
    t1, d1 = group_ticks(procs), children_ticks(pg_pid)
    r["cpu_us"] = (t1 - t0) * 1e6 / HZ / max(r["requests"], 1)
    r["db_cpu_us"] = (d1 - d0) * 1e6 / HZ / max(r["requests"], 1)
    r["per_cpu_s"] = r["requests"] / max((t1 - t0) / HZ, 1e-9)
    r["name"] = name
    log("%-34s %8.0f req/s  p99 %6.2f ms  app CPU %6.1f us/req  db CPU %6.1f us/req%s" % (
        name, r["rps"], r["p99_ms"], r["cpu_us"], r["db_cpu_us"],
        "  (%d non-2xx!)" % r["errors"] if r["errors"] else ""))
    return r


def free_port():
    return dbservers.free_port()


def barista(services_bin, services, env, extra=()):
    bport, hport = free_port(), free_port()
    gw = spawn("gateway", [os.path.join(BIN, "barista-gateway"), "--listen",
                           "127.0.0.1:%d" % hport, "--broker", "tcp://127.0.0.1:%d" % bport],
               {"BARISTA_JOBS_DB": os.path.join(WORK, "jobs.db")})
    w = spawn("worker-" + services, [os.path.join(BIN, services_bin), "--services", services,
                                     "--connect", "tcp://127.0.0.1:%d" % bport, *extra], env)
    return [gw, w], hport


def fastapi(env):
    port = free_port()
    p = spawn("fastapi", [PY, "-m", "uvicorn", "fastapi_db:app", "--loop", "uvloop", "--http",
                          "httptools", "--workers", "1", "--log-level", "warning",
                          "--host", "127.0.0.1", "--port", str(port)],
              dict(env, PYTHONPATH=HERE))
    return [p], port


def main():
    for b in ("barista-gateway", "barista-worker-test", "notes-pg"):
        if not os.access(os.path.join(BIN, b), os.X_OK):
            sys.exit("no %s in %s: make build first" % (b, BIN))
    results = []
    with dbservers.PgServer() as pg, dbservers.RedisServer() as rd:
        with open(os.path.join(pg.data, "postmaster.pid")) as f:
            pg_pid = int(f.readline())
        pg.sql("CREATE TABLE notes (id bigserial PRIMARY KEY, title text NOT NULL, "
               "text text NOT NULL DEFAULT '')")
        pg.sql("INSERT INTO notes (title, text) SELECT 'note ' || i, repeat('x', 100) "
               "FROM generate_series(1, 10000) i")
        pg.sql("CREATE TABLE dbtest_notes AS SELECT * FROM notes")
        pg.sql("ALTER TABLE dbtest_notes ADD PRIMARY KEY (id)")
        for i in range(100):
            rd.command("SET", "cache:k%d" % i, "value %d" % i)
        uri = "postgresql://barista@127.0.0.1:%d/barista" % pg.port
        db_env = {"DATABASE_URL": pg.conninfo, "DB_POOL_SIZE": "8", "REDIS_HOST": "127.0.0.1",
                  "REDIS_PORT": str(rd.port), "BENCH_PG": uri,
                  "BENCH_REDIS": "127.0.0.1:%d" % rd.port, "BENCH_POOL": "8",
                  "BARISTA_TEST_PG": pg.conninfo, "BARISTA_TEST_PG_SIZE": "8",
                  "BARISTA_TEST_REDIS": "127.0.0.1:%d" % rd.port}
        cases = [
            ("barista notes-pg GET /notes/42", lambda: barista("notes-pg", "notes,cache", db_env),
             "/notes/42"),
            ("fastapi+asyncpg GET /notes/42", lambda: fastapi(db_env), "/notes/42"),
            ("barista notes-pg GET /cache/k42", lambda: barista("notes-pg", "notes,cache", db_env),
             "/cache/k42"),
            ("fastapi+redis.asyncio GET /cache/k42", lambda: fastapi(db_env), "/cache/k42"),
            ("barista async pool /db/pg/note/42",
             lambda: barista("barista-worker-test", "dbtest", db_env, ("--threadpool", "4")),
             "/db/pg/note/42"),
            ("barista br_offload+libpq note-blocking",
             lambda: barista("barista-worker-test", "dbtest", db_env, ("--threadpool", "4")),
             "/db/pg/note-blocking/42"),
        ]
        for name, start, path in cases:
            procs, port = start()
            try:
                results.append(measure(name, procs, port, path, pg_pid))
            finally:
                stop(procs)
    print("\n| case | req/s | p99 ms | app CPU µs/req | req per app CPU-s | db CPU µs/req |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print("| %s | %.0f | %.2f | %.1f | %.0f | %.1f |" % (
            r["name"], r["rps"], r["p99_ms"], r["cpu_us"], r["per_cpu_s"], r["db_cpu_us"]))
    byname = {r["name"]: r for r in results}

    def ratio(a, b):
        return byname[a]["per_cpu_s"] / byname[b]["per_cpu_s"]
    print("\nrequests per app-tier CPU-second, Barista / FastAPI: PostgreSQL %.2f x, Redis %.2f x;"
          " async pool / br_offload: %.2f x" % (
              ratio("barista notes-pg GET /notes/42", "fastapi+asyncpg GET /notes/42"),
              ratio("barista notes-pg GET /cache/k42", "fastapi+redis.asyncio GET /cache/k42"),
              ratio("barista async pool /db/pg/note/42", "barista br_offload+libpq note-blocking")))
    log("logs in %s" % WORK)


if __name__ == "__main__":
    main()
