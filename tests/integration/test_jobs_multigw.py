"""Several gateways on one PostgreSQL job queue (docs/jobs.md, "Several gateways on one
PostgreSQL queue").

Two gateways share a database and email workers registered with both.  Jobs are
POSTed through both; one gateway is killed with SIGKILL mid-load, and its clients move
to the other (what a load balancer does).  Afterwards:

- every job that got a 202, through either gateway, has run (its id is in the
  outbox): the killed gateway's jobs were adopted by the survivor once its lease ran
  out;
- the only failed requests are those that were in flight at the kill (at most one
  per client of the killed gateway), the survivor failed none;
- no job ran twice: a worker hands the results of the killed gateway's jobs it ran
  (or had just sent to it) to the survivor (JOB_HANDOFF), which applies them when it
  adopts the jobs instead of running them again.

Jobs running at workers when their gateway is killed (probe tasks sleeping 6 s, one
slot per worker) run exactly once: the survivor holds them while the workers say they
run on, and takes their results.

Two gateways sharing a declared schedule make one job per tick: each tick is claimed
in the database with its job.

And `--processes 2` on a PostgreSQL queue: two processes, both gateways of the queue,
every job runs exactly once.

The database comes from dbservers.py (BARISTA_TEST_PG_URL) or, when run alone, from a
PostgreSQL this test starts on loopback; skipped when the server is not installed.
"""

import os
import signal
import tempfile
import threading
import time
import unittest

import dbservers
import harness as h

HEARTBEAT_MS = 200
GATEWAY_LEASE = "2s"
WORKERS = 2
CONCURRENCY = 8  # each worker's slots: the window of jobs at workers at any moment
CLIENTS = 2  # per gateway
LOAD_SECONDS = 3.0  # before the kill, and again after it
SETTLE_SECONDS = 90.0

_server = None


def setUpModule():
    global _server
    if os.environ.get("BARISTA_TEST_PG_URL"):
        return
    try:
        dbservers.pg_bindir()
    except RuntimeError as e:
        raise unittest.SkipTest(str(e))
    _server = dbservers.PgServer()
    _server.start()
    os.environ["BARISTA_TEST_PG_URL"] = _server.url


def tearDownModule():
    if _server is not None:
        _server.stop()
        del os.environ["BARISTA_TEST_PG_URL"]


def pg_url(path):
    """A database of its own for the test's store at path (harness.store_url's)."""
    saved = os.environ.get("BARISTA_TEST_STORE")
    os.environ["BARISTA_TEST_STORE"] = "pg"
    try:
        return h.store_url(path)
    finally:
        if saved is None:
            del os.environ["BARISTA_TEST_STORE"]
        else:
            os.environ["BARISTA_TEST_STORE"] = saved


class Client(threading.Thread):
    """POSTs email jobs with unique addresses to `ports[0]` until told to stop.  When
    a request fails (the gateway died under it) it counts the failure and moves to the
    next port, as a load balancer would send it elsewhere."""

    def __init__(self, name, ports, stop):
        super().__init__(daemon=True)
        self.name = name
        self.ports = list(ports)
        self.stop_event = stop
        self.accepted = {}  # address -> (job id, port that accepted it)
        self.attempted = set()
        self.failed = []  # (port, what)

    def run(self):
        client = None
        seq = 0
        while not self.stop_event.is_set() and self.ports:
            port = self.ports[0]
            if client is None:
                try:
                    client = h.HttpClient(port, timeout=10.0)
                except OSError as e:
                    self.failed.append((port, "connect: %s" % e))
                    self.ports.pop(0)
                    continue
            seq += 1
            addr = "%s-%d@multigw.test" % (self.name, seq)
            self.attempted.add(addr)
            try:
                r = client.request("POST", "/jobs/email", [("Content-Type", "application/json")],
                                   ('{"to": "%s"}' % addr).encode())
            except Exception as e:  # the gateway died mid-answer
                client.close()
                client = None
                self.failed.append((port, "request: %r" % e))
                self.ports.pop(0)
                continue
            if r.status == 202:
                self.accepted[addr] = (r.json()["job_id"], port)
            else:
                self.failed.append((port, "status %d" % r.status))
        if client is not None:
            client.close()


class MultiGatewayCase(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory(prefix="barista-multigw-")
        self.addCleanup(self.dir.cleanup)
        self.db = pg_url(os.path.join(self.dir.name, "jobs.db"))
        self.outbox = os.path.join(self.dir.name, "outbox.txt")

    def outbox_lines(self):
        return h.outbox_lines(self.outbox)

    def worker(self, endpoints):
        return h.start_process(self, [h.binary("barista-worker-test"), "--services",
                                      "public-email", "--connect", endpoints, "--heartbeat-ms",
                                      str(HEARTBEAT_MS), "--concurrency", str(CONCURRENCY),
                                      "--outbox", self.outbox])

    def wait_email(self, port):
        """Until POST /jobs/email is accepted on port (a worker announced the task)."""
        def ok():
            try:
                with h.HttpClient(port) as c:
                    r = c.request("POST", "/jobs/email", [("Content-Type", "application/json")],
                                  b'{"to": "warmup@multigw.test"}')
                    return r.status == 202 and r.json()["job_id"]
            except OSError:
                return None
        job = h.poll_until(ok, 30)
        self.assertTrue(job, "no worker announced email on port %d" % port)
        return job

    def wait_ran(self, wanted, what):
        """Until every job id of `wanted` is in the outbox; the ids still missing."""
        missing = set(wanted)
        deadline = time.monotonic() + SETTLE_SECONDS
        while missing and time.monotonic() < deadline:
            missing = set(wanted) - {job_id for job_id, _ in self.outbox_lines()}
            time.sleep(0.2)
        self.assertFalse(missing, "%d of %d %s never ran, e.g. %s"
                         % (len(missing), len(wanted), what, sorted(missing)[:5]))


class TwoGatewaysTest(MultiGatewayCase):
    def gateway(self, broker_port, http_port):
        gw = h.Gateway("--broker", "tcp://127.0.0.1:%d" % broker_port, "--jobs-db", self.db,
                       "--broker-heartbeat", "%dms" % HEARTBEAT_MS, "--jobs-lease", "30s",
                       "--jobs-gateway-lease", GATEWAY_LEASE, port=http_port)
        self.addCleanup(gw.close)
        return gw

    def two_gateways(self):
        """Gateways a and b on one database, and the worker endpoint list of both."""
        brokers = [h.free_port(), h.free_port()]
        a = self.gateway(brokers[0], h.free_port())
        b = self.gateway(brokers[1], h.free_port())
        return a, b, ",".join("tcp://127.0.0.1:%d" % p for p in brokers)

    def test_a_killed_gateways_jobs_run_on_the_other_and_none_is_lost(self):
        a, b, endpoints = self.two_gateways()
        for _ in range(WORKERS):
            self.worker(endpoints)
        warm = [self.wait_email(a.port), self.wait_email(b.port)]
        # Both gateways are in the queue, each with its own lease.
        rows = h.store_sql(self.db, "SELECT count(*) FROM barista_gateways"
                                    " WHERE lease_until > clock_timestamp()")
        self.assertEqual(rows, [["2"]])

        stop = threading.Event()
        clients = ([Client("a%d" % i, [a.port, b.port], stop) for i in range(CLIENTS)] +
                   [Client("b%d" % i, [b.port], stop) for i in range(CLIENTS)])
        for c in clients:
            c.start()
        time.sleep(LOAD_SECONDS)
        a.kill()
        time.sleep(LOAD_SECONDS)
        stop.set()
        for c in clients:
            c.join(timeout=30)
        a_stderr = a.stderr()

        accepted = {}
        attempted = set()
        for c in clients:
            accepted.update(c.accepted)
            attempted |= c.attempted
        by_a = {job for job, port in accepted.values() if port == a.port}
        by_b = {job for job, port in accepted.values() if port == b.port}
        after_kill_on_b = sum(1 for c in clients[:CLIENTS] for _, p in c.accepted.values()
                              if p == b.port)
        self.assertGreater(len(by_a), 20, "gateway a hardly served before the kill")
        self.assertGreater(len(by_b), 20, "gateway b hardly served")
        self.assertGreater(after_kill_on_b, 0, "a's clients were not served by b after the kill")

        # Failures: only requests in flight at the kill, one per client of a at most.
        b_failures = [f for c in clients for f in c.failed if f[0] == b.port]
        self.assertEqual(b_failures, [], "the surviving gateway failed requests")
        for c in clients[:CLIENTS]:
            self.assertLessEqual(len(c.failed), 1, "%s: %s" % (c.name, c.failed))

        # Nothing acknowledged is lost: a's jobs run on b once a's lease ran out.
        self.wait_ran(set(warm) | by_a | by_b, "acknowledged jobs")
        self.assertIn("jobs adopted", b.stderr())

        counts = {}
        for job_id, addr in self.outbox_lines():
            if addr != "warmup@multigw.test" and addr not in attempted:
                self.fail("outbox line for an address nobody submitted: %s %s" % (job_id, addr))
            counts[job_id] = counts.get(job_id, 0) + 1
        twice = {job for job, n in counts.items() if n > 1}
        print("\ntwo gateways: %d jobs through a (killed after %.0fs), %d through b; "
              "%d failed requests at the kill; %d jobs ran twice; 0 lost"
              % (len(by_a), LOAD_SECONDS, len(by_b), sum(len(c.failed) for c in clients),
                 len(twice)))
        self.assertFalse(twice & (by_b | {warm[1]}),
                         "jobs of the surviving gateway ran twice")
        # a's jobs done by workers when it died (or just before: their results may not
        # have reached it) were handed to b, which did not run them again.
        self.assertEqual(sorted(twice), [], "jobs of the killed gateway ran twice")
        self.assertNotIn("AddressSanitizer", a_stderr)
        self.assertEqual(b.stop(), 0)

    def test_jobs_running_when_their_gateway_dies_run_once(self):
        runlog = os.path.join(self.dir.name, "runs.txt")
        a, b, endpoints = self.two_gateways()
        # CPU workers (one slot each) that serve a first: a's jobs all run at once.
        nworkers = 4
        for _ in range(nworkers):
            h.start_process(self, [h.binary("barista-worker-test"), "--services", "probe",
                                   "--connect", endpoints, "--prefer-first-broker",
                                   "--heartbeat-ms", str(HEARTBEAT_MS)],
                            env={"BARISTA_TEST_RUNLOG": runlog})

        def post(port, body):
            with h.HttpClient(port) as c:
                r = c.request("POST", "/jobs/probe", [("Content-Type", "application/json")],
                              body)
                return r.json()["job_id"] if r.status == 202 else None

        def status(port, job):
            try:
                with h.HttpClient(port) as c:
                    r = c.request("GET", "/jobs/" + job)
                    return r.json()["status"] if r.status == 200 else None
            except OSError:
                return None

        self.assertTrue(h.poll_until(lambda: post(a.port, b'{}'), 30), "no probe worker at a")
        jobs = [post(a.port, b'{"sleep_ms": 6000, "log": true}') for _ in range(nworkers)]
        self.assertNotIn(None, jobs)
        running = h.poll_until(
            lambda: all(status(a.port, j) == "running" for j in jobs), 30)
        self.assertTrue(running, "a's jobs did not all start: %s"
                        % {j: status(a.port, j) for j in jobs})
        # b answers GET /jobs/{id} of a's jobs from the store (their rows say queued:
        # a JOB is not written); an id nobody made is still unknown.
        with h.HttpClient(b.port) as c:
            r = c.request("GET", "/jobs/" + jobs[0])
            self.assertEqual(r.status, 200, r.body)
            self.assertEqual((r.json()["id"], r.json()["task"], r.json()["status"]),
                             (jobs[0], "probe", "queued"))
            forged = jobs[0][:16] + "0" * (len(jobs[0]) - 16)
            self.assertEqual(c.request("GET", "/jobs/" + forged).status, 404)
        a.kill()

        def runs():
            counts = {}
            if os.path.exists(runlog):
                with open(runlog) as f:
                    for line in f:
                        job = line.split()[0]
                        counts[job] = counts.get(job, 0) + 1
            return counts
        # Every job ends, on b (it adopted a's), and each ran once.
        ok = h.poll_until(lambda: all(status(b.port, j) == "succeeded" for j in jobs),
                          SETTLE_SECONDS)
        self.assertTrue(ok, "a's jobs did not all succeed on b: %s"
                        % {j: status(b.port, j) for j in jobs})
        counts = runs()
        held = b.stderr().count("runs on at a worker of a gateway gone")
        print("\njobs running at workers when their gateway was killed: %d (%d held by b at "
              "adoption); runs per job: %s" % (len(jobs), held,
                                               sorted(counts.get(j, 0) for j in jobs)))
        self.assertEqual({j: counts.get(j, 0) for j in jobs}, {j: 1 for j in jobs})
        self.assertEqual(b.stop(), 0)

    def test_cancel_and_retry_through_the_gateway_that_does_not_hold_the_job(self):
        a, b, endpoints = self.two_gateways()
        h.start_process(self, [h.binary("barista-worker-test"), "--services", "probe",
                               "--connect", endpoints, "--prefer-first-broker",
                               "--heartbeat-ms", str(HEARTBEAT_MS)])

        def call(port, method, path, body=None):
            with h.HttpClient(port) as c:
                headers = [("Content-Type", "application/json")] if body is not None else []
                return c.request(method, path, headers, b"" if body is None else body)

        def status(port, job):
            r = call(port, "GET", "/jobs/" + job)
            return r.json()["status"] if r.status == 200 else None

        def accepted(port, body):
            r = call(port, "POST", "/jobs/probe", body)
            return r.json()["job_id"] if r.status == 202 else None

        def until(gw, want, what):
            self.assertTrue(h.poll_until(lambda: status(gw.port, job) == want, SETTLE_SECONDS),
                            "%s: %s" % (what, status(gw.port, job)))

        self.assertTrue(h.poll_until(lambda: accepted(a.port, b'{}'), 30), "no probe worker at a")
        # A job a holds runs (its handler sleeps until it is cancelled).
        job = accepted(a.port, b'{"sleep_ms": 600000}')
        self.assertTrue(job)
        until(a, "running", "the job did not start")
        # b does not hold it: a retry of a job that is not over is refused from its row,
        # an id nobody made is unknown, and a cancel is recorded for a (202).
        r = call(b.port, "POST", "/jobs/%s/retry" % job)
        self.assertEqual(r.status, 409, r.body)
        forged = job[:16] + "0" * (len(job) - 16)
        self.assertEqual(call(b.port, "DELETE", "/jobs/" + forged).status, 404)
        self.assertEqual(call(b.port, "POST", "/jobs/%s/retry" % forged).status, 404)
        r = call(b.port, "DELETE", "/jobs/" + job)
        self.assertEqual(r.status, 202, r.body)
        self.assertEqual((r.json()["id"], r.json()["cancel_requested"]), (job, True))
        # a applies it: the running handler sees the cancel and the job ends cancelled.
        until(a, "cancelled", "the cancel through b did not reach a")
        until(b, "cancelled", "the cancelled job's row")
        self.assertEqual(call(b.port, "DELETE", "/jobs/" + job).status, 409)
        # A retry through b runs it again at a; and a second cancel through b ends it.
        r = call(b.port, "POST", "/jobs/%s/retry" % job)
        self.assertEqual(r.status, 202, r.body)
        self.assertEqual((r.json()["job_id"], r.json()["retry_requested"]), (job, True))
        until(a, "running", "the retry through b did not reach a")
        until(b, "queued", "the retried job's row")
        self.assertEqual(call(b.port, "DELETE", "/jobs/" + job).status, 202)
        until(a, "cancelled", "the second cancel through b did not reach a")
        self.assertEqual(h.store_sql(self.db, "SELECT count(*) FROM barista_jobs"
                                              " WHERE request <> 0"), [["0"]])
        self.assertEqual(a.stop(), 0)
        self.assertEqual(b.stop(), 0)

    def test_two_gateways_make_one_job_per_tick_of_a_shared_schedule(self):
        a, b, endpoints = self.two_gateways()
        # The ticker declares "fast": every 200 ms, to every gateway it registers with.
        h.start_process(self, [h.binary("barista-worker-test"), "--services", "ticker",
                               "--connect", endpoints, "--heartbeat-ms", str(HEARTBEAT_MS)])
        keys = "SELECT convert_from(idem_key, 'UTF8') FROM barista_jobs WHERE idem_key <> ''"
        self.assertTrue(h.poll_until(lambda: len(h.store_sql(self.db, keys)) >= 30, 60),
                        "the schedule made no jobs")
        time.sleep(1.0)
        rows = h.store_sql(self.db, keys)
        by_schedule = {}
        for (key,) in rows:  # schedule:<id>:<tick>
            _, sid, tick = key.split(":")
            by_schedule.setdefault(sid, []).append(int(tick))
        self.assertEqual(len(by_schedule), 1, "jobs of several schedules: %s" % by_schedule.keys())
        ticks = sorted(next(iter(by_schedule.values())))
        owners = h.store_sql(self.db, "SELECT count(DISTINCT owner) FROM barista_jobs"
                                      " WHERE idem_key <> ''")
        gaps = [t2 - t1 for t1, t2 in zip(ticks, ticks[1:])]
        print("\nshared schedule: %d jobs, tick gaps %d..%d ms, made by %s gateway(s)"
              % (len(ticks), min(gaps), max(gaps), owners[0][0]))
        self.assertEqual(len(set(ticks)), len(ticks), "a tick made twice")
        # One job per 200 ms tick: no two ticks closer than the interval.
        self.assertGreaterEqual(min(gaps), 200, "two jobs within one interval")
        self.assertEqual(a.stop(), 0)
        self.assertEqual(b.stop(), 0)


    def test_a_schedule_made_or_deleted_on_one_gateway_reaches_the_other(self):
        a, b, endpoints = self.two_gateways()
        self.worker(endpoints)
        self.wait_email(a.port)
        self.wait_email(b.port)

        def call(port, method, path, body=None):
            with h.HttpClient(port) as c:
                headers = [("Content-Type", "application/json")] if body is not None else []
                return c.request(method, path, headers, b"" if body is None else body)

        def listed(port):
            r = call(port, "GET", "/schedules")
            return {s["id"] for s in r.json()["items"]} if r.status == 200 else set()

        def made(n):
            r = call(a.port, "POST", "/schedules",
                     ('{"task": "email", "payload": {"to": "tick%d@multigw.test"},'
                      ' "interval_ms": 200}' % n).encode())
            self.assertEqual(r.status, 201, r.body)
            return r.json()["id"]

        kept, dropped = made(1), made(2)
        self.assertTrue(h.poll_until(lambda: {kept, dropped} <= listed(b.port), SETTLE_SECONDS),
                        "b does not list the schedules made on a: %s" % listed(b.port))
        self.assertEqual(call(a.port, "DELETE", "/schedules/" + dropped).status, 204)
        self.assertTrue(h.poll_until(lambda: dropped not in listed(b.port), SETTLE_SECONDS),
                        "b still lists the schedule deleted on a")
        self.assertIn(kept, listed(b.port))
        self.assertNotIn(dropped, listed(a.port))

        def ticks(sid):
            return int(h.store_sql(self.db, "SELECT count(*) FROM barista_jobs WHERE"
                                            " convert_from(idem_key, 'UTF8') LIKE"
                                            " 'schedule:%s:%%'" % sid)[0][0])

        self.assertEqual(a.stop(), 0)
        before, dropped_before = ticks(kept), ticks(dropped)
        # Only b runs now: the kept schedule's ticks keep coming, made by b; the deleted
        # one makes none (b dropped it, and did not take it back from a stale read).
        self.assertTrue(h.poll_until(lambda: ticks(kept) >= before + 5, SETTLE_SECONDS),
                        "no ticks after a stopped: %d" % ticks(kept))
        self.assertEqual(ticks(dropped), dropped_before)
        stored = [sid for (sid,) in h.store_sql(self.db, "SELECT convert_from(id, 'UTF8')"
                                                          " FROM barista_job_schedules")]
        self.assertIn(kept, stored)
        self.assertNotIn(dropped, stored)
        self.assertEqual(b.stop(), 0)

class ProcessesOnPostgresTest(MultiGatewayCase):
    def test_two_processes_share_the_queue_and_run_each_job_once(self):
        base = h.free_port()
        while base + 1 > 65535 or not self.port_free(base + 1):
            base = h.free_port()
        gw = h.Gateway("--processes", "2", "--broker", "tcp://127.0.0.1:%d" % base, "--jobs-db",
                       self.db, "--broker-heartbeat", "%dms" % HEARTBEAT_MS,
                       "--jobs-gateway-lease", GATEWAY_LEASE)
        self.addCleanup(gw.close)
        self.worker("tcp://127.0.0.1:%d,tcp://127.0.0.1:%d" % (base, base + 1))
        h.poll_until(lambda: h.store_sql(self.db, "SELECT count(*) FROM barista_gateways WHERE"
                                                  " lease_until > clock_timestamp()") == [["2"]],
                     30)
        self.assertEqual(h.store_sql(self.db, "SELECT count(DISTINCT tag) FROM barista_gateways"
                                              " WHERE lease_until > clock_timestamp()"), [["2"]])
        self.wait_email(gw.port)
        stop = threading.Event()
        # The kernel spreads connections over the two processes by a hash of the
        # client's port: with 4 connections all went to one process 1 time in 8 (seen
        # under load); with 12, 1 time in 2048.
        clients = [Client("p%d" % i, [gw.port], stop) for i in range(12)]
        for c in clients:
            c.start()
        time.sleep(LOAD_SECONDS)
        stop.set()
        for c in clients:
            c.join(timeout=30)
            self.assertEqual(c.failed, [])
        wanted = {job for c in clients for job, _ in c.accepted.values()}
        self.assertGreater(len(wanted), 20)
        self.wait_ran(wanted, "jobs")
        counts = {}
        for job_id, _ in self.outbox_lines():
            counts[job_id] = counts.get(job_id, 0) + 1
        self.assertEqual([j for j, n in counts.items() if n > 1], [], "jobs ran twice")
        # Both processes took jobs: each owns some rows.
        owners = h.store_sql(self.db, "SELECT count(DISTINCT owner) FROM barista_jobs")
        self.assertEqual(owners, [["2"]])
        self.assertEqual(gw.stop(), 0)

    @staticmethod
    def port_free(port):
        import socket
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return True
            except OSError:
                return False


if __name__ == "__main__":
    unittest.main()
