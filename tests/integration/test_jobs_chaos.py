"""Chaos: jobs keep flowing while workers and the gateway are killed with SIGKILL and
restarted, again and again.  Afterwards every job that got a 202 has run (its id is
in the outbox, with the address it was submitted for), nothing appears that nobody
submitted, and duplicates (at-least-once delivery) are counted and reported.

Bounded: CHAOS_SECONDS of kills, then at most SETTLE_SECONDS for the queue to drain.
The random schedule comes from a fixed seed (BARISTA_CHAOS_SEED to change it); the
seed is printed with every failure so that a run can be repeated."""

import os
import random
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


class JobsChaosTest(unittest.TestCase):
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
        try:
            with open(self.outbox) as f:
                return [l.rstrip("\n").split(" ", 1) for l in f if l.endswith("\n")]
        except FileNotFoundError:
            return []

    def fail_with(self, msg):
        self.fail("%s\nseed %d (BARISTA_CHAOS_SEED); events:\n  %s\ngateway stderr (last run):\n%s"
                  % (msg, SEED, "\n  ".join(self.log[-40:]), self.gw.stderr()[-4000:]))

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


if __name__ == "__main__":
    unittest.main()
