"""Chaos: jobs keep flowing while workers and the gateway are killed with SIGKILL and
restarted, again and again.  Afterwards every job that got a 202 has run (its id is
in the outbox, with the address it was submitted for), nothing appears that nobody
submitted, and duplicates (at-least-once delivery) are counted and reported.

Bounded: CHAOS_SECONDS of kills, then at most SETTLE_SECONDS for the queue to drain.
The random schedule comes from a fixed seed (BARISTA_CHAOS_SEED to change it); the
seed is printed with every failure so that a run can be repeated.

The workflow chaos (issue 16) does the same to chains, chords and a declared schedule:
every acknowledged workflow ends succeeded with the exact results (a chord body's
argument is every header result, once), and the schedule's jobs in the store are
exactly its consecutive ticks, none missing and none twice.  And a 10 s task with a
2 s lease runs exactly once while its worker lives, whatever happens to the others."""

import json
import os
import random
import sqlite3
import signal
import socket
import tempfile
import threading
import time
import unittest

import harness as h

SEED = int(os.environ.get("BARISTA_CHAOS_SEED", "20261121"))
CHAOS_SECONDS = float(os.environ.get("BARISTA_CHAOS_SECONDS", "20"))
SETTLE_SECONDS = 30.0
SUBMITTERS = 4
EMAIL_WORKERS = 2
HEARTBEAT_MS = 200
# Pause between two kills, drawn from this range (seconds).
KILL_GAP = (0.4, 1.2)


class Submitter(threading.Thread):
    """POSTs email jobs with unique addresses until told to stop.  Every address it
    tried is `attempted` (a job may exist for it even without an answer); those that
    got a 202 are in `accepted` with their job id."""

    def __init__(self, n, port, stop):
        super().__init__(daemon=True)
        self.n = n
        self.port = port
        self.stop_event = stop
        self.attempted = set()
        self.accepted = {}
        self.errors = 0

    def run(self):
        client = None
        seq = 0
        while not self.stop_event.is_set():
            if client is None:
                try:
                    client = h.HttpClient(self.port, timeout=5.0)
                except OSError:
                    time.sleep(0.05)
                    continue
            seq += 1
            addr = "s%d-%d@chaos.test" % (self.n, seq)
            body = ('{"to": "%s"}' % addr).encode()
            self.attempted.add(addr)
            try:
                r = client.request("POST", "/jobs/email", [("Content-Type", "application/json")],
                                   body)
            except Exception:  # the gateway died mid-answer: any parse error
                client.close()
                client = None
                self.errors += 1
                continue
            if r.status == 202:
                self.accepted[addr] = r.json()["job_id"]
            else:
                self.errors += 1
                time.sleep(0.02)  # 404 before a worker announced email, or 503
        if client is not None:
            client.close()


class ChaosCase(unittest.TestCase):
    """A gateway, workers and what kills them; the tests are in the subclasses."""

    def setUp(self):
        self.rng = random.Random(SEED)
        self.dir = tempfile.TemporaryDirectory(prefix="barista-chaos-")
        self.addCleanup(self.dir.cleanup)
        self.db = os.path.join(self.dir.name, "jobs.db")
        self.outbox = os.path.join(self.dir.name, "outbox.txt")
        self.http_port = h.free_port()
        self.endpoint = "tcp://127.0.0.1:%d" % h.free_port()
        self.gw = None
        self.workers = [None] * EMAIL_WORKERS
        self.log = []
        self.addCleanup(self.cleanup)

    def cleanup(self):
        for w in self.workers:
            if w:
                w.close()
        if self.gw:
            self.gw.close()

    def note(self, what):
        self.log.append("%.2fs %s" % (time.monotonic() - self.t0, what))

    def start_gateway(self):
        self.gw = h.Gateway("--broker", self.endpoint, "--jobs-db", h.store_url(self.db),
                            "--broker-heartbeat", "%dms" % HEARTBEAT_MS,
                            "--jobs-lease", "10s", port=self.http_port)

    def start_worker(self, i):
        # barista-worker-test's public-email: the email task, submittable over HTTP.
        self.workers[i] = h.Process([h.binary("barista-worker-test"), "--services", "public-email",
                                     "--connect", self.endpoint,
                                     "--heartbeat-ms", str(HEARTBEAT_MS),
                                     "--outbox", self.outbox])

    def kill_gateway(self):
        self.gw.kill()
        self.gw.close()
        self.note("killed the gateway")
        self.start_gateway()
        self.note("restarted the gateway")

    def kill_worker(self, i):
        self.workers[i].kill()
        self.workers[i].close()
        self.note("killed worker %d" % i)
        self.start_worker(i)

    def outbox_lines(self):
        return h.outbox_lines(self.outbox)

    def fail_with(self, msg):
        self.fail("%s\nseed %d (BARISTA_CHAOS_SEED); events:\n  %s\ngateway stderr (last run):\n%s"
                  % (msg, SEED, "\n  ".join(self.log[-40:]), self.gw.stderr()[-4000:]))


class JobsChaosTest(ChaosCase):
    def test_no_acknowledged_job_is_lost_under_repeated_kills(self):
        self.t0 = time.monotonic()
        self.start_gateway()
        for i in range(EMAIL_WORKERS):
            self.start_worker(i)
        stop = threading.Event()
        subs = [Submitter(n, self.http_port, stop) for n in range(SUBMITTERS)]
        for s in subs:
            s.start()
        kills = {"gateway": 0, "worker": 0}
        try:
            end = time.monotonic() + CHAOS_SECONDS
            while time.monotonic() < end:
                time.sleep(self.rng.uniform(*KILL_GAP))
                if self.rng.random() < 0.3:
                    self.kill_gateway()
                    kills["gateway"] += 1
                else:
                    self.kill_worker(self.rng.randrange(EMAIL_WORKERS))
                    kills["worker"] += 1
        finally:
            stop.set()
            for s in subs:
                s.join(timeout=10)
        self.note("chaos over")

        accepted = {}
        attempted = set()
        for s in subs:
            accepted.update(s.accepted)
            attempted |= s.attempted
        if len(accepted) < 100:
            self.fail_with("only %d jobs were accepted: the gateway hardly served" % len(accepted))

        # Everything is up again; every accepted job must reach the outbox.
        wanted = {job_id: addr for addr, job_id in accepted.items()}
        deadline = time.monotonic() + SETTLE_SECONDS
        missing = set(wanted)
        while time.monotonic() < deadline:
            seen = {job_id for job_id, _ in self.outbox_lines()}
            missing = set(wanted) - seen
            if not missing:
                break
            time.sleep(0.2)
        lines = self.outbox_lines()
        if missing:
            sample = sorted(missing)[:10]
            self.fail_with("%d of %d acknowledged jobs never ran, e.g. %s"
                           % (len(missing), len(wanted), sample))

        # Nothing unexpected: each line is a submitted address, under its own id.
        counts = {}
        for job_id, addr in lines:
            if addr not in attempted:
                self.fail_with("outbox line for an address nobody submitted: %s %s"
                               % (job_id, addr))
            if addr in accepted and accepted[addr] != job_id:
                self.fail_with("address %s was accepted as job %s but ran as job %s"
                               % (addr, accepted[addr], job_id))
            counts[job_id] = counts.get(job_id, 0) + 1
        duplicates = sum(n - 1 for n in counts.values())
        unacked = len([j for j in counts if j not in wanted])
        print("\nchaos: seed %d, %.0fs, %d gateway kills, %d worker kills; %d jobs accepted, "
              "%d submissions without an answer (%d of them ran anyway); %d outbox lines, "
              "%d duplicates (at-least-once), 0 lost"
              % (SEED, CHAOS_SECONDS, kills["gateway"], kills["worker"], len(accepted),
                 len(attempted) - len(accepted), unacked, len(lines), duplicates))

        # A clean stop after all that: the gateway exits 0 (no leak, no crash).
        code = self.gw.stop()
        if code != 0:
            self.fail_with("gateway exited %s after the chaos" % code)


class WorkflowSubmitter(threading.Thread):
    """POSTs workflows until told to stop: a chain of three calc steps and a chord of
    five, alternately, each with a unique number so that its results are known.
    `accepted` maps a workflow id to (member job ids, {member index: expected result})."""

    def __init__(self, n, port, stop):
        super().__init__(daemon=True)
        self.n = n
        self.port = port
        self.stop_event = stop
        self.accepted = {}

    def canvas(self, k):
        if k % 2:
            return ({"chain": [{"task": "calc", "args": {"add": k}}, {"task": "calc"},
                               {"task": "calc", "args": {"add": 1000}}]},
                    {0: k, 1: k + 1, 2: k + 1001})
        header = [{"task": "calc", "args": {"add": k + i}} for i in range(5)]
        return ({"chord": {"header": header, "body": {"task": "calc"}}},
                {5: 5 * k + 10})

    def run(self):
        client = None
        seq = 0
        while not self.stop_event.is_set():
            if client is None:
                try:
                    client = h.HttpClient(self.port, timeout=5.0)
                except OSError:
                    time.sleep(0.05)
                    continue
            seq += 1
            canvas, expect = self.canvas(self.n * 100000 + seq)
            try:
                r = client.request("POST", "/workflows", [("Content-Type", "application/json")],
                                   json.dumps(canvas).encode())
            except Exception:  # the gateway died mid-answer
                client.close()
                client = None
                continue
            if r.status == 202:
                body = r.json()
                self.accepted[body["workflow_id"]] = (body["jobs"], expect)
            else:
                time.sleep(0.05)  # 422 before a worker announced calc, or 503
            time.sleep(0.02)
        if client is not None:
            client.close()


class WorkflowChaosTest(ChaosCase):
    def start_gateway(self):
        self.gw = h.Gateway("--broker", self.endpoint, "--jobs-db", self.db,
                            "--broker-heartbeat", "%dms" % HEARTBEAT_MS,
                            "--jobs-lease", "10s", "--jobs-max-attempts", "100",
                            port=self.http_port)

    def start_worker(self, i):
        # Workers 0 and 1 run calc (the workflows), worker 2 the ticker (a schedule
        # every 200 ms, declared in READY, catch_up 1000: nothing may be skipped).
        services = "ticker" if i == 2 else "probe"
        self.workers[i] = h.Process([h.binary("barista-worker-test"), "--services", services,
                                     "--connect", self.endpoint,
                                     "--heartbeat-ms", str(HEARTBEAT_MS)],
                                    env={"BARISTA_TEST_RUNLOG": self.runlog})

    def request(self, method, path):
        with h.HttpClient(self.http_port, timeout=5.0) as c:
            return c.request(method, path, [], b"")

    def test_workflows_and_schedules_survive_repeated_kills(self):
        self.runlog = os.path.join(self.dir.name, "runs.txt")
        self.workers = [None] * 3
        self.t0 = time.monotonic()
        self.start_gateway()
        for i in range(3):
            self.start_worker(i)
        stop = threading.Event()
        subs = [WorkflowSubmitter(n, self.http_port, stop) for n in range(2)]
        for s in subs:
            s.start()
        kills = {"gateway": 0, "worker": 0}
        try:
            end = time.monotonic() + CHAOS_SECONDS
            while time.monotonic() < end:
                time.sleep(self.rng.uniform(*KILL_GAP))
                if self.rng.random() < 0.3:
                    self.kill_gateway()
                    kills["gateway"] += 1
                else:
                    self.kill_worker(self.rng.randrange(3))
                    kills["worker"] += 1
        finally:
            stop.set()
            for s in subs:
                s.join(timeout=10)
        self.note("chaos over")
        accepted = {}
        for s in subs:
            accepted.update(s.accepted)
        if len(accepted) < 20:
            self.fail_with("only %d workflows were accepted" % len(accepted))

        # Every acknowledged workflow ends succeeded, with the exact results.
        def status(fid):
            r = self.request("GET", "/workflows/" + fid)
            return r.json()["status"] if r.status == 200 else "missing"
        # A slow machine (sanitizers, a busy CI host) may take longer than
        # SETTLE_SECONDS for the backlog: the wait goes on while workflows still finish,
        # and fails once none has for SETTLE_SECONDS (or after the overall cap).
        deadline = time.monotonic() + SETTLE_SECONDS
        cap = time.monotonic() + 6 * SETTLE_SECONDS
        pending = set(accepted)
        while pending and time.monotonic() < min(deadline, cap):
            left = {f for f in pending if status(f) != "succeeded"}
            if len(left) < len(pending):
                deadline = time.monotonic() + SETTLE_SECONDS
            pending = left
            time.sleep(0.2)
        if pending:
            f = sorted(pending)[0]
            self.fail_with("%d of %d acknowledged workflows did not succeed, e.g. %s: %s"
                           % (len(pending), len(accepted), f,
                              self.request("GET", "/workflows/" + f).body[:600]))
        for fid, (jobs, expect) in accepted.items():
            for index, value in expect.items():
                got = self.request("GET", "/jobs/" + jobs[index]).json()
                if got.get("result") != value:
                    self.fail_with("workflow %s member %d: result %r, not %r"
                                   % (fid, index, got.get("result"), value))

        # The schedule: its jobs are exactly its consecutive ticks.
        db = sqlite3.connect(self.db)
        try:
            keys = [k for (k,) in db.execute(
                "SELECT idem_key FROM jobs WHERE task = 'tick' AND idem_key LIKE 'schedule:%'")]
        finally:
            db.close()
        by_schedule = {}
        for k in keys:
            _, sid, tick = k.split(":")
            by_schedule.setdefault(sid, []).append(int(tick))
        ticks = max(by_schedule.values(), key=len) if by_schedule else []
        if len(ticks) < 10:
            self.fail_with("only %d ticks of the 200 ms schedule" % len(ticks))
        ticks.sort()
        if len(set(ticks)) != len(ticks):
            self.fail_with("a tick was made twice")
        gaps = {b - a for a, b in zip(ticks, ticks[1:])}
        if gaps != {200}:
            self.fail_with("ticks missing: gaps %s" % sorted(gaps))

        runs = {}
        try:
            with open(self.runlog) as f:
                for line in f:
                    runs[line.split()[0]] = runs.get(line.split()[0], 0) + 1
        except FileNotFoundError:
            pass
        bodies = [jobs[-1] for jobs, _ in accepted.values()]
        reruns = sum(runs.get(b, 0) - 1 for b in bodies if runs.get(b, 0) > 1)
        print("\nworkflow chaos: seed %d, %.0fs, %d gateway kills, %d worker kills; %d workflows "
              "accepted, all succeeded with their results; %d schedule ticks, none missing or "
              "doubled; %d last-member reruns (at-least-once)"
              % (SEED, CHAOS_SECONDS, kills["gateway"], kills["worker"], len(accepted),
                 len(ticks), reruns))
        code = self.gw.stop()
        if code != 0:
            self.fail_with("gateway exited %s after the chaos" % code)


class LongTaskChaosTest(ChaosCase):
    def test_a_10s_task_with_a_2s_lease_runs_once_while_other_workers_die(self):
        # The numbers: a task of 10 s under a lease of 2 s.  Its worker lives
        # (and renews the lease); a second calc worker waits to take the job should the
        # lease ever run out, and email workers are killed around it meanwhile.
        self.runlog = os.path.join(self.dir.name, "runs.txt")
        self.t0 = time.monotonic()
        self.gw = h.Gateway("--broker", self.endpoint, "--jobs-db", self.db,
                            "--broker-heartbeat", "%dms" % HEARTBEAT_MS,
                            "--jobs-lease", "2s", "--jobs-max-attempts", "5",
                            port=self.http_port)
        calc = [h.Process([h.binary("barista-worker-test"), "--services", "probe",
                           "--connect", self.endpoint, "--heartbeat-ms", str(HEARTBEAT_MS)],
                          env={"BARISTA_TEST_RUNLOG": self.runlog}) for _ in range(2)]
        for p in calc:
            self.addCleanup(p.close)
        for i in range(EMAIL_WORKERS):
            self.start_worker(i)
        with h.HttpClient(self.http_port, timeout=5.0) as c:
            deadline = time.monotonic() + 30
            while True:
                r = c.request("POST", "/jobs/calc", [("Content-Type", "application/json")],
                              b'{"sleep_ms": 10000}')
                if r.status == 202 or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            self.assertEqual(r.status, 202, r.body)
            job = r.json()["job_id"]
            kills = 0
            while True:
                got = c.request("GET", "/jobs/" + job, [], b"").json()
                if got["status"] in ("succeeded", "dead") or time.monotonic() > deadline + 30:
                    break
                time.sleep(self.rng.uniform(*KILL_GAP))
                self.kill_worker(self.rng.randrange(EMAIL_WORKERS))
                kills += 1
        self.assertEqual(got["status"], "succeeded", got)
        self.assertEqual(got["attempts"], 1, got)
        with open(self.runlog) as f:
            self.assertEqual([line.split()[0] for line in f], [job])
        self.assertGreater(kills, 0)
        self.assertNotIn("expired", self.gw.stderr())


if __name__ == "__main__":
    unittest.main()
