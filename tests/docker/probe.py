"""HTTP checks for the docker end-to-end test (e2e.sh), standard library only.

    probe.py PORT ready                 wait until every route of ROUTES answers
    probe.py PORT routes                every built-in route's exact answer (ROUTES)
    probe.py PORT workers N             /hash until N distinct workers have answered
    probe.py PORT storm SECONDS         requests from many threads; none may hang
    probe.py PORT job-submit            POST a job; prints its id, or "skip" on 404
    probe.py PORT job-wait ID           until the job has completed
    probe.py PORT notes                 the notes example's routes: in /openapi.json, and
                                        their answers (after the docs' first POST)

Exit status 0 when the check holds; otherwise a one-line reason on stderr and 1.
"""

import hashlib
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import harness as h  # noqa: E402  (HttpClient: raw HTTP/1.1 over one connection)


def sha256_rounds(data, n):
    digest = hashlib.sha256(data.encode()).digest()
    for _ in range(n - 1):
        digest = hashlib.sha256(digest).digest()
    return digest.hex()


def as_json(value):
    return json.dumps(value, separators=(",", ":")).encode()


# Every built-in route and its exact answer: (method, path, content type of the body,
# body, status, expected body).  Adding a route is one line.
ROUTES = [
    ("GET", "/healthz", None, b"", 200, b'{"status":"ok"}'),
    ("GET", "/readyz", None, b"", 200, b'{"status":"ready"}'),
    ("GET", "/hello", None, b"", 200, b'{"message":"hello"}'),
    ("GET", "/hello/barista", None, b"", 200, b'{"message":"hello barista"}'),
    ("GET", "/sleep?ms=20", None, b"", 200, b'{"slept_ms":20}'),
    ("POST", "/echo", "text/plain", b"brewed", 200, b"brewed"),
    ("GET", "/hash?n=3&data=abc", None, b"", 200,
     as_json({"digest": sha256_rounds("abc", 3), "n": 3})),
    ("GET", "/dashboard", None, b"", 200,
     as_json({"hello": {"message": "hello"}, "sleep": {"slept_ms": 100},
              "hash": {"digest": sha256_rounds("dashboard", 1000), "n": 1000}})),
    ("GET", "/fetch", None, b"", 200,
     as_json({"status": 200, "content_type": "application/json", "body": '{"status":"ok"}'})),
    ("POST", "/signup", "application/json", b'{"email":"ada@example.com"}', 201,
     b'{"status":"created","email":"ada@example.com"}'),
    ("GET", "/no/such/route", None, b"", 404, b'{"detail":"Not Found"}'),
]

# The job the restart check submits, and the statuses that mean it completed.
# The job that must survive `docker compose restart gateway`: delayed so that it is
# still queued when the gateway goes down.
JOB_TASK = "report"
JOB_QUERY = "?delay_ms=3000"
JOB_BODY = b'{"n":1000}'
JOB_DONE = {"succeeded"}
JOB_FAILED = {"dead"}

WAIT = 60.0  # bound on every wait for a condition


def fail(fmt, *args):
    print("probe: " + fmt % args, file=sys.stderr)
    sys.exit(1)


def request(port, method, path, ctype=None, body=b"", timeout=h.IO_TIMEOUT):
    headers = [("Content-Type", ctype)] if ctype else []
    with h.HttpClient(port, timeout=timeout) as c:
        return c.request(method, path, headers, body)


def wait_until(what, cond):
    deadline = time.monotonic() + WAIT
    last = None
    while time.monotonic() < deadline:
        try:
            if cond():
                return
        except OSError as e:  # the gateway is (re)starting: connection refused or reset
            last = e
        time.sleep(0.2)
    fail("timed out after %.0f s waiting for %s (last error: %s)", WAIT, what, last)


def run_threads(fns):
    """Runs each function in a thread of its own and waits for all of them."""
    threads = [threading.Thread(target=fn) for fn in fns]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def check_ready(port):
    """/readyz is vacuously ready before any worker has joined (no route announced
    yet), so the platform is up when every route of ROUTES that should answer 200
    does."""
    def up():
        for method, path, ctype, body, status, _ in ROUTES:
            if status == 200 and request(port, method, path, ctype, body).status != 200:
                return False
        return True

    wait_until("every route to answer 200", up)


def check_routes(port):
    bad = 0
    for method, path, ctype, body, status, want in ROUTES:
        r = request(port, method, path, ctype, body)
        ok = r.status == status and r.body == want
        print("  %-4s %-22s %d %s" % (method, path, r.status, "ok" if ok else "WRONG"))
        if not ok:
            print("       want %d %r, got %d %r" % (status, want, r.status, r.body))
            bad += 1
    if bad:
        fail("%d of %d routes answered wrongly", bad, len(ROUTES))


def check_workers(port, n):
    """Concurrent /hash requests (more than workers, so that each is busy in turn)
    until n distinct x-barista-worker values have answered."""
    seen = {}
    errors = []
    lock = threading.Lock()

    def one():
        try:
            r = request(port, "GET", "/hash?n=200000&data=scale")
        except OSError as e:
            with lock:
                errors.append(str(e))
            return
        with lock:
            if r.status != 200:
                errors.append("%d %r" % (r.status, r.body))
            who = r.header("x-barista-worker")
            seen[who] = seen.get(who, 0) + 1

    deadline = time.monotonic() + WAIT
    while len(seen) < n and not errors and time.monotonic() < deadline:
        run_threads([one] * (2 * n))
    for who, count in sorted(seen.items()):
        print("  worker %s served %d requests" % (who, count))
    if errors:
        fail("/hash failed during the scale check: %s", errors[0])
    if len(seen) < n:
        fail("only %d of %d workers served /hash", len(seen), n)


def check_storm(port, seconds):
    """Eight clients loop on /hash and /sleep for `seconds` while e2e.sh kills a worker.
    Every request must get an answer well before its socket timeout: a success, or
    the prompt 502/503 a lost worker means.  A timeout is a hang and fails."""
    allowed = {200, 502, 503}
    counts = {}
    errors = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client(path):
        while time.monotonic() < stop:
            try:
                r = request(port, "GET", path, timeout=20.0)
                status = r.status
                # Failures are counted with their detail, so the report says why.
                key = "%d" % status if status == 200 else "%d %s" % (status, r.body.decode())
            except OSError as e:
                status = key = "error: %s" % e
            key = "%s %s" % (path.split("?")[0], key)
            with lock:
                counts[key] = counts.get(key, 0) + 1
                if status not in allowed:
                    errors.append(key)

    paths = ["/hash?n=300000&data=storm"] * 4 + ["/sleep?ms=300"] * 4
    run_threads([lambda p=p: client(p) for p in paths])
    for key, count in sorted(counts.items()):
        print("  %5d x %s" % (count, key))
    if errors:
        fail("%d requests failed or hung, first: %s", len(errors), errors[0])


def job_submit(port):
    r = request(port, "POST", "/jobs/" + JOB_TASK + JOB_QUERY, "application/json", JOB_BODY)
    if r.status == 404:
        print("skip")
        return
    if r.status != 202:
        fail("POST /jobs/%s answered %d: %r", JOB_TASK, r.status, r.body)
    print(r.json()["job_id"])


def job_wait(port, job_id):
    state = {}

    def done():
        r = request(port, "GET", "/jobs/%s" % job_id)
        if r.status != 200:
            return False
        state.update(r.json())
        if state.get("status") in JOB_FAILED:
            fail("job %s failed: %r", job_id, state)
        return state.get("status") in JOB_DONE

    wait_until("job %s to complete" % job_id, done)
    print("  job %s: %s after %s attempts" % (job_id, state.get("status"), state.get("attempts")))


COUNTER_KEYS = ["so-%d" % i for i in range(16)]


def counters_bump(port, times):
    """Increments every key of COUNTER_KEYS `times` times through `port` (HAProxy):
    every answer is 200 with the count one above the last, whichever gateway holds
    the key; prints how the keys spread over the gateways."""
    served = {}
    for key in COUNTER_KEYS:
        before = request(port, "GET", "/counters/" + key)
        if before.status != 200:
            fail("GET /counters/%s answered %d: %r", key, before.status, before.body)
        count = before.json()["count"]
        for _ in range(times):
            r = request(port, "POST", "/counters/%s/increment" % key)
            if r.status != 200 or r.json() != {"id": key, "count": count + 1}:
                fail("POST /counters/%s/increment after %d: %d %r", key, count, r.status,
                     r.body)
            count += 1
            by = r.header("x-served-by") or "?"
            served[by] = served.get(by, 0) + 1
    print("  %d counters, increments served by %s" % (
        len(COUNTER_KEYS), ", ".join("%s: %d" % kv for kv in sorted(served.items()))))


def counters_expect(port, count):
    """Every key of COUNTER_KEYS reads `count` through `port`."""
    for key in COUNTER_KEYS:
        r = request(port, "GET", "/counters/" + key)
        if r.status != 200 or r.json() != {"id": key, "count": count}:
            fail("GET /counters/%s: want count %d, got %d %r", key, count, r.status, r.body)
    print("  every counter reads %d" % count)


def check_notes(port):
    """The notes example (workers/examples/notes), added to the running stack: its
    routes are documented and answer, on the io pool and the cpu pool."""
    paths = request(port, "GET", "/openapi.json").json()["paths"]
    for p in ("/notes", "/notes/{id}", "/notes/wordcount"):
        if p not in paths:
            fail("%s is not in /openapi.json (%s)", p, ", ".join(sorted(paths)))
    checks = [
        ("POST", "/notes", b'{"title":"bread","text":"rye"}', 201,
         {"id": 2, "title": "bread", "text": "rye"}),
        ("GET", "/notes/1", b"", 200, {"id": 1, "title": "milk", "text": ""}),
        ("GET", "/notes/3", b"", 404, {"detail": "Note not found"}),
        ("GET", "/notes?limit=1", b"", 200, [{"id": 1, "title": "milk", "text": ""}]),
        ("POST", "/notes/wordcount", b'{"text":"a b c"}', 200, {"words": 3}),
    ]
    for method, path, body, status, want in checks:
        r = request(port, method, path, "application/json" if body else None, body)
        ok = r.status == status and r.json() == want
        print("  %-4s %-22s %d %s" % (method, path, r.status, "ok" if ok else "WRONG"))
        if not ok:
            fail("%s %s: want %d %r, got %d %r", method, path, status, want, r.status, r.body)


def main(argv):
    if len(argv) < 3:
        fail("usage: probe.py PORT CHECK [ARG]")
    port, check, args = int(argv[1]), argv[2], argv[3:]
    checks = {
        "ready": lambda: check_ready(port),
        "routes": lambda: check_routes(port),
        "workers": lambda: check_workers(port, int(args[0])),
        "storm": lambda: check_storm(port, float(args[0])),
        "job-submit": lambda: job_submit(port),
        "job-wait": lambda: job_wait(port, args[0]),
        "notes": lambda: check_notes(port),
        "counters-bump": lambda: counters_bump(port, int(args[0])),
        "counters-expect": lambda: counters_expect(port, int(args[0])),
    }
    if check not in checks:
        fail("unknown check %r", check)
    checks[check]()


if __name__ == "__main__":
    main(sys.argv)
