"""Celery twin of tests/bench/jobs/flow_bench.py, for tests/bench/jobs_bench.sh: the
same `calc` task (an integer n gives n + 1, a list its sum, {"add": k} gives k) on
Redis as broker and result backend (chains and chords need one), acks_late as the
plain-jobs twin (celery_app.py), and the same three measurements:

- chain of 3: CHAINS chains at once, chains/s until the last result; one chain alone
  (median of 5);
- chord of 100: 100 header tasks and a body, from apply_async to the body's result
  (median of 3), the result checked;
- beat at 100 Hz: celery beat with one entry every 10 ms for SCHEDULE_SECONDS.  Beat
  does not tell a task which tick it is for, so the task logs when it ran and this
  reports how many ran against the 100 per second asked for, and the intervals between
  consecutive runs (10 ms asked for).

    celery -A celery_flow worker --pool prefork --concurrency 2
    celery -A celery_flow beat               (only for the schedule)
    python3 celery_flow.py chains
    python3 celery_flow.py schedule RUNLOG SECONDS

Environment: BENCH_REDIS (redis://127.0.0.1:6390/0), BENCH_RUNLOG (the beat task's
log), BENCH_BEAT (1: the app declares the 100 Hz entry).
"""
import os
import statistics
import sys
import time
from datetime import timedelta

from celery import Celery, chain, chord

REDIS = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6390/0")
RUNLOG = os.environ.get("BENCH_RUNLOG", "/tmp/celery-beat-runs.txt")
CHAINS = 200

app = Celery("flows", broker=REDIS, backend=REDIS)
app.conf.update(
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=4,
    result_expires=600,
)
if os.environ.get("BENCH_BEAT") == "1":
    app.conf.beat_schedule = {
        "tick": {"task": "tick", "schedule": timedelta(milliseconds=10)},
    }
    # The most beat sleeps between looking at its entries (default 300 s; lower it so
    # that nothing but the entry's own interval limits it).
    app.conf.beat_max_loop_interval = 0.01


def value(v):
    if isinstance(v, bool):
        return 0
    if isinstance(v, int):
        return v
    if isinstance(v, list):
        return sum(value(e) for e in v)
    return 0


@app.task(name="calc")
def calc(arg=None):
    if isinstance(arg, dict):
        return int(arg.get("add", 0))
    if isinstance(arg, list):
        return value(arg)
    return value(arg) + 1


@app.task(name="tick")
def tick():
    fd = os.open(RUNLOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, ("%d\n" % int(time.time() * 1000)).encode())
    finally:
        os.close(fd)


def one_chain():
    return chain(calc.s({"add": 1}), calc.s(), calc.s()).apply_async()


def chains():
    one_chain().get(timeout=60)  # warm up
    t0 = time.monotonic()
    results = [one_chain() for _ in range(CHAINS)]
    for r in results:
        if r.get(timeout=300) != 3:
            raise SystemExit("a chain ended wrong")
    rate = CHAINS / (time.monotonic() - t0)
    alone = []
    for _ in range(5):
        t = time.monotonic()
        one_chain().get(timeout=60)
        alone.append((time.monotonic() - t) * 1000)
    print("celery chain of 3   %6.0f chains/s (%d at once, %d tasks)   one chain alone: %.1f ms"
          " median" % (rate, CHAINS, 3 * CHAINS, statistics.median(alone)))
    times = []
    for _ in range(3):
        t = time.monotonic()
        r = chord([calc.s({"add": i}) for i in range(100)])(calc.s())
        got = r.get(timeout=300)
        times.append((time.monotonic() - t) * 1000)
        if got != sum(range(100)):
            raise SystemExit("chord body result %r" % got)
    print("celery chord of 100 %6.0f ms median from apply_async to the body's result (101 tasks;"
          " %s ms)" % (statistics.median(times), ", ".join("%.0f" % t for t in times)))


def schedule(runlog, seconds):
    with open(runlog) as f:
        runs = sorted(int(line) for line in f if line.strip())
    if len(runs) < 2:
        raise SystemExit("beat ran %d ticks" % len(runs))
    gaps = sorted(b - a for a, b in zip(runs, runs[1:]))
    p = lambda q: gaps[min(len(gaps) - 1, int(q * len(gaps)))]
    span = (runs[-1] - runs[0]) / 1000
    print("celery beat 100 Hz  %6d runs in %ds asked for (%.1f/s over %.1f s), interval p50 %d ms,"
          " p99 %d ms, max %d ms (10 ms asked for)"
          % (len(runs), seconds, (len(runs) - 1) / span if span else 0, span, p(0.5),
             p(0.99), gaps[-1]))


if __name__ == "__main__":
    if sys.argv[1] == "chains":
        chains()
    else:
        schedule(sys.argv[2], int(sys.argv[3]))
