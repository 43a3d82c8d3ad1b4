"""Workflows and schedules on a running Barista gateway (tests/bench/jobs_bench.sh runs
it against a gateway whose CPU workers host the test `probe` service, task `calc`).

  flow_bench.py HTTP_PORT RUNLOG DB

- chain of 3: CHAINS chains submitted at once; chains/s from the first POST to the
  last chain succeeded, and the end-to-end time of one chain alone (median of 5).
- chord of 100: one chord of 100 header jobs and a body; POST to body succeeded
  (median of 3), and the body's result is checked (the sum of the headers').
- a schedule at 100 Hz (interval 10 ms) for SCHEDULE_SECONDS: for each tick's job,
  jitter = when its run ended (calc's run log, wall clock) - its tick (from the job's
  idempotency key in the store); p50, p99, max, and the tick count against the
  seconds it ran.  The gateway checks ticks on its 50 ms timer, so up to 50 ms is the
  design, not noise.

Standard library only; prints one line per measurement.
"""

import http.client
import json
import sqlite3
import statistics
import sys
import time

CHAINS = 200
SCHEDULE_SECONDS = 10


def request(port, method, path, body=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        c.request(method, path, json.dumps(body) if body is not None else None,
                  {"Content-Type": "application/json"} if body is not None else {})
        r = c.getresponse()
        return r.status, json.loads(r.read() or b"null")
    finally:
        c.close()


def post_flow(port, canvas):
    status, body = request(port, "POST", "/workflows", canvas)
    if status != 202:
        raise SystemExit("POST /workflows: %d %s" % (status, body))
    return body


def wait_flows(port, ids, timeout=300):
    deadline = time.monotonic() + timeout
    pending = list(ids)
    while pending:
        if time.monotonic() > deadline:
            raise SystemExit("%d workflows not done" % len(pending))
        status, body = request(port, "GET", "/workflows/" + pending[0])
        if body["status"] in ("dead", "cancelled"):
            raise SystemExit("workflow %s ended %s" % (pending[0], body["status"]))
        if body["status"] == "succeeded":
            pending.pop(0)
        else:
            time.sleep(0.005)


CHAIN = {"chain": [{"task": "calc", "args": {"add": 1}}, {"task": "calc"}, {"task": "calc"}]}


def chains(port):
    t0 = time.monotonic()
    ids = [post_flow(port, CHAIN)["workflow_id"] for _ in range(CHAINS)]
    wait_flows(port, ids)
    rate = CHAINS / (time.monotonic() - t0)
    alone = []
    for _ in range(5):
        t = time.monotonic()
        wait_flows(port, [post_flow(port, CHAIN)["workflow_id"]])
        alone.append((time.monotonic() - t) * 1000)
    print("chain of 3      %6.0f chains/s (%d at once, %d jobs)   one chain alone: %.1f ms median"
          % (rate, CHAINS, 3 * CHAINS, statistics.median(alone)))


def chords(port):
    header = [{"task": "calc", "args": {"add": i}} for i in range(100)]
    times = []
    for _ in range(3):
        t = time.monotonic()
        made = post_flow(port, {"chord": {"header": header, "body": {"task": "calc"}}})
        wait_flows(port, [made["workflow_id"]])
        times.append((time.monotonic() - t) * 1000)
        _, body = request(port, "GET", "/jobs/" + made["jobs"][-1])
        if body["result"] != sum(range(100)):
            raise SystemExit("chord body result %r" % body["result"])
    print("chord of 100    %6.0f ms median from POST to the body's result (101 jobs; %s ms)"
          % (statistics.median(times), ", ".join("%.0f" % t for t in times)))


def schedule(port, runlog, db):
    status, s = request(port, "POST", "/schedules",
                        {"task": "calc", "interval_ms": 10, "payload": {"add": 1}})
    if status != 201:
        raise SystemExit("POST /schedules: %d %s" % (status, s))
    time.sleep(SCHEDULE_SECONDS)
    request(port, "DELETE", "/schedules/" + s["id"])
    time.sleep(1)  # the last jobs run
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT public_id, idem_key FROM jobs WHERE idem_key LIKE ?",
                            ("schedule:%s:%%" % s["id"],)).fetchall()
    finally:
        conn.close()
    tick_of = {jid: int(key.rsplit(":", 1)[1]) for jid, key in rows}
    ran = {}
    with open(runlog) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3 and parts[0] in tick_of:
                ran.setdefault(parts[0], int(parts[2]))
    jitter = sorted(ran[j] - tick_of[j] for j in ran)
    if not jitter:
        raise SystemExit("no scheduled job ran")
    p = lambda q: jitter[min(len(jitter) - 1, int(q * len(jitter)))]
    print("schedule 100 Hz %6d ticks in %ds (%d ran), jitter p50 %d ms, p99 %d ms, max %d ms"
          % (len(tick_of), SCHEDULE_SECONDS, len(ran), p(0.5), p(0.99), jitter[-1]))


def main():
    port, runlog, db = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    # Warm up: the workers announced calc, and one chain ran.
    for _ in range(200):
        status, _ = request(port, "POST", "/workflows", CHAIN)
        if status == 202:
            break
        time.sleep(0.1)
    chains(port)
    chords(port)
    schedule(port, runlog, db)


if __name__ == "__main__":
    main()
