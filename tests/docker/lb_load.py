"""Load through a load balancer while a gateway behind it is killed (scale_out.sh).

    lb_load.py PORT SECONDS MARKS

Twelve clients, each on a keep-alive connection of its own (a new one after an error),
send GET /hello, GET /sleep?ms=200 and POST /echo to 127.0.0.1:PORT for SECONDS.
Every request is logged with its start and end time (time.time(), the clock of
`date +%s.%N`).  Meanwhile scale_out.sh kills a gateway and writes two lines to the
file MARKS: the time just before `docker kill` and the time it returned.

Then the verdict, printed with the counts:

- a request in flight at the kill started before the kill returned and ended after
  it began; only those may fail (a 5xx or a dropped connection);
- every request that started after the kill returned answered 200, at least 20 of
  them, so the service kept answering;
- both gateways served before the kill (the balancer's x-served-by header), and only
  the surviving one after it.

Exit status 0 when all of that holds; otherwise the reasons on stderr and 1.
"""

import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import harness as h  # noqa: E402  (HttpClient: raw HTTP/1.1 over one connection)

REQUESTS = [("GET", "/hello", b"")] * 4 + [("GET", "/sleep?ms=200", b"")] * 4 + \
    [("POST", "/echo", b"in flight")] * 4
WANT = {"/hello": b'{"message":"hello"}', "/sleep?ms=200": b'{"slept_ms":200}',
        "/echo": b"in flight"}


def client(port, method, path, body, stop, log, lock):
    conn = None
    while time.time() < stop:
        start = time.time()
        served_by, outcome = None, None
        try:
            if conn is None:
                conn = h.HttpClient(port, timeout=30.0)
            headers = [("Content-Type", "text/plain")] if body else []
            r = conn.request(method, path, headers, body)
            served_by = r.header("x-served-by")
            if r.status == 200 and r.body == WANT[path]:
                outcome = "200"
            else:
                outcome = "%d %s" % (r.status, r.body[:60].decode(errors="replace"))
            if r.header("connection") == "close":
                conn.close()
                conn = None
        except OSError as e:
            outcome = "error: %s" % e
            if conn is not None:
                conn.close()
            conn = None
        with lock:
            log.append((start, time.time(), path, outcome, served_by))
    if conn is not None:
        conn.close()


def main(argv):
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    port, seconds, marks = int(argv[1]), float(argv[2]), argv[3]
    log, lock = [], threading.Lock()
    stop = time.time() + seconds
    threads = [threading.Thread(target=client, args=(port, m, p, b, stop, log, lock))
               for m, p, b in REQUESTS]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    with open(marks) as f:
        kill_begin, kill_end = (float(line) for line in f.read().split())
    in_flight = [r for r in log if r[0] <= kill_end and r[1] >= kill_begin]
    before = [r for r in log if r[1] < kill_begin]
    after = [r for r in log if r[0] > kill_end]
    failed = [r for r in log if r[3] != "200"]
    late = [r for r in failed if r[0] > kill_end]
    early = [r for r in failed if r[1] < kill_begin]
    print("  %d requests: %d before the kill, %d in flight at it, %d after it"
          % (len(log), len(before), len(in_flight), len(after)))
    print("  failed: %d (in flight at the kill: %d, before: %d, after: %d)"
          % (len(failed), len(failed) - len(late) - len(early), len(early), len(late)))
    for r in failed[:10]:
        print("    %s %s (%.3f s after the kill began, took %.3f s)"
              % (r[2], r[3], r[0] - kill_begin, r[1] - r[0]))
    served_before = sorted({r[4] for r in before if r[3] == "200"})
    served_after = sorted({r[4] for r in after if r[3] == "200"})
    print("  served before the kill by %s; after it by %s"
          % (", ".join(map(str, served_before)), ", ".join(map(str, served_after))))

    problems = []
    if early:
        problems.append("%d requests failed before the kill" % len(early))
    if late:
        problems.append("%d requests failed that started after the kill" % len(late))
    if sum(1 for r in after if r[3] == "200") < 20:
        problems.append("only %d requests were answered after the kill"
                        % sum(1 for r in after if r[3] == "200"))
    if len(served_before) < 2:
        problems.append("not both gateways served before the kill: %s" % served_before)
    if len(served_after) != 1:
        problems.append("not exactly one gateway served after the kill: %s" % served_after)
    for p in problems:
        print("lb_load: " + p, file=sys.stderr)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main(sys.argv)
