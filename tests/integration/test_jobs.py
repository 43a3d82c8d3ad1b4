"""Durable background jobs end to end: the real gateway and worker processes, a real
SQLite store and a real outbox file.  Covers submit -> run -> result, the
Idempotency-Key (one job per key and task), unknown, internal and retired tasks, bad
bodies, retries until dead, lease expiry, a worker killed mid-job, jobs enqueued by a
handler's reply (/signup), random job ids, delayed payloads kept out of memory, and
jobs that survive a gateway restart.

The workers are barista-worker-test: barista-worker plus the test-only job services
(tests/workers/test_services.h) - `public-email`, the email task published so that
HTTP clients may submit it, and `probe`, a task that sleeps and fails on demand.  The
shipped services are used where their own behaviour is tested."""

import hashlib
import json
import os
import re
import signal
import tempfile
import time
import unittest

import harness as h
from zmtp_peer import JOB, READY, WELCOME, ZmtpDealer, pack

# Fast heartbeats, so that a killed worker is noticed in well under a second.
HEARTBEAT_MS = 200
# Bound on every wait for a condition; conditions are normally met in milliseconds.
WAIT = 30.0


class JobsTestCase(unittest.TestCase):
    # The heartbeat of the gateway and the workers; a test that counts attempts and
    # needs no quick death detection raises it, so that a loaded machine does not
    # declare a busy worker dead (and run its job again).
    heartbeat_ms = HEARTBEAT_MS

    def setUp(self):
        self.dir = tempfile.TemporaryDirectory(prefix="barista-jobs-test-")
        self.addCleanup(self.dir.cleanup)
        self.db = os.path.join(self.dir.name, "jobs.db")
        self.outbox = os.path.join(self.dir.name, "outbox.txt")
        self.broker_port = h.free_port()
        self.endpoint = "tcp://127.0.0.1:%d" % self.broker_port

    def start_gateway(self, *args, checked=True):
        """A gateway on this test's store and broker port.  checked: its exit code
        must be 0 at cleanup (off for one the test kills)."""
        args = ("--broker", self.endpoint, "--jobs-db", h.store_url(self.db),
                "--broker-heartbeat", "%dms" % self.heartbeat_ms) + args
        if checked:
            self.gw = h.start_gateway(self, *args)
        else:
            self.gw = h.Gateway(*args)
            self.addCleanup(self.gw.close)
        return self.gw

    def worker(self, services, binary="barista-worker-test"):
        return h.start_process(self, [h.binary(binary), "--services", services,
                                      "--connect", self.endpoint,
                                      "--heartbeat-ms", str(self.heartbeat_ms),
                                      "--outbox", self.outbox])

    def request(self, method, path, body=b"", headers=None):
        hdrs = list(headers or [])
        if body:
            hdrs.append(("Content-Type", "application/json"))
        with self.gw.client() as c:
            return c.request(method, path, hdrs, body)

    def submit(self, task, payload, headers=None, query=""):
        r = self.request("POST", "/jobs/%s%s" % (task, query), json.dumps(payload).encode(),
                         headers)
        self.assertEqual(r.status, 202, r.body)
        body = r.json()
        # Ids are 36 hex digits, time-ordered and random (issue 13): the status URL
        # carries one.
        self.assertRegex(body["job_id"], r"^[0-9a-f]{36}$")
        self.assertEqual(body["status_url"], "/jobs/%s" % body["job_id"])
        self.assertEqual(r.header("Location"), body["status_url"])
        return body["job_id"]

    def job(self, job_id):
        r = self.request("GET", "/jobs/%s" % job_id)
        self.assertEqual(r.status, 200, r.body)
        return r.json()

    def wait_until(self, cond, what):
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            v = cond()
            if v:
                return v
            time.sleep(0.05)
        self.fail("timed out waiting for %s; gateway stderr:\n%s" % (what, self.gw.stderr()))

    def wait_status(self, job_id, *statuses):
        return self.wait_until(lambda: (lambda j: j if j["status"] in statuses else None)(
            self.job(job_id)), "job %s to be %s" % (job_id, "/".join(statuses)))

    def wait_task_known(self, task):
        # A public task is known once a worker announced it: until then a body that is
        # not JSON gets 404 (unknown task) rather than 422, and no job is made either way.
        self.wait_until(lambda: self.request("POST", "/jobs/" + task, b"{").status == 422,
                        "task %s to be announced" % task)

    def metric(self, name):
        text = self.request("GET", "/metrics").body.decode()
        m = re.search(r"^%s (\S+)$" % re.escape(name), text, re.M)
        return float(m.group(1)) if m else None

    def outbox_lines(self):
        try:
            with open(self.outbox) as f:
                return [line.rstrip("\n").split(" ", 1) for line in f if line.strip()]
        except FileNotFoundError:
            return []


class JobsStoreLibraryTest(JobsTestCase):
    """libpq is loaded when a PostgreSQL store is opened (proto/include/barista/dl.h),
    never by a gateway on the SQLite stores."""

    def test_libpq_is_mapped_only_with_a_postgresql_store(self):
        gw = self.start_gateway()
        with gw.client() as c:
            self.assertEqual(c.request("GET", "/healthz").status, 200)
        self.assertEqual(h.maps_library(gw.pid, "libpq.so.5"), h.store_is_pg())

    def test_a_postgresql_store_without_libpq_stops_the_gateway_with_the_reason(self):
        prefix = h.without_library("libpq.so.5")
        if not prefix:
            self.skipTest("cannot hide libpq.so.5 here (unshare -rm refused)")
        # Nothing listens on port 1: libpq is never asked to connect, loading it fails first.
        url = "postgresql://127.0.0.1:1/barista"
        sqlite = os.path.join(self.dir.name, "other.db")
        for option, other in (("--jobs-db", "--actors-db"), ("--actors-db", "--jobs-db")):
            r = h.run(prefix + [h.binary("barista-gateway"), "--listen",
                                "127.0.0.1:%d" % h.free_port(), "--broker", self.endpoint,
                                option, url, other, sqlite])
            self.assertGreater(r.returncode, 0, r.stderr)  # an exit, not a signal
            self.assertIn("postgres: cannot load libpq.so.5 (PostgreSQL client): ", r.stderr)
            self.assertNotIn("Sanitizer", r.stderr)


class JobsApiTest(JobsTestCase):
    def test_submitted_jobs_run_and_show_their_result(self):
        self.start_gateway()
        self.worker("public-email")
        self.worker("report", binary="barista-worker")
        self.wait_task_known("email")
        self.wait_task_known("report")
        mail = self.submit("email", {"to": "ada@example.com"})
        report = self.submit("report", {"n": 5})
        done = self.wait_status(report, "succeeded")
        digest = hashlib.sha256(report.encode()).digest()
        for _ in range(4):
            digest = hashlib.sha256(digest).digest()
        self.assertEqual(done, {"id": report, "task": "report", "status": "succeeded",
                                "attempts": 1, "result": {"digest": digest.hex(), "n": 5}})
        self.assertEqual(self.wait_status(mail, "succeeded")["attempts"], 1)
        self.assertIn([mail, "ada@example.com"], self.outbox_lines())

    def test_idempotency_key_returns_the_same_job(self):
        self.start_gateway()
        self.worker("public-email")
        self.wait_task_known("email")
        key = [("Idempotency-Key", "order-42")]
        first = self.submit("email", {"to": "once@example.com"}, key)
        second = self.submit("email", {"to": "once@example.com"}, key)
        self.assertEqual(first, second)
        self.wait_status(first, "succeeded")
        other = self.submit("email", {"to": "once@example.com"})
        self.assertNotEqual(other, first)
        self.wait_status(other, "succeeded")
        lines = self.outbox_lines()
        self.assertEqual(lines.count([first, "once@example.com"]), 1)

    def test_unknown_task_is_404_and_bad_input_is_422(self):
        self.start_gateway()
        self.worker("public-email")
        self.wait_task_known("email")
        r = self.request("POST", "/jobs/no-such-task", b"{}")
        self.assertEqual(r.status, 404)
        self.assertEqual(r.json(), {"detail": "Unknown task"})
        r = self.request("POST", "/jobs/email", b"{not json")
        self.assertEqual(r.status, 422)
        self.assertEqual(r.json()["detail"][0]["type"], "json_invalid")
        r = self.request("POST", "/jobs/email?delay_ms=soon", b"{}")
        self.assertEqual(r.status, 422)
        self.assertEqual(r.json()["detail"][0]["loc"], ["query", "delay_ms"])
        r = self.request("POST", "/jobs/email?delay_ms=2592000001", b"{}")
        self.assertEqual(r.status, 422)
        self.assertEqual(r.json()["detail"][0]["type"], "less_than_equal")
        # The query is read as on every worker route: a bad escape is a 400.
        self.assertEqual(self.request("POST", "/jobs/email?delay_ms=%zz", b"{}").status, 400)
        self.assertEqual(self.request("GET", "/jobs/999999").status, 404)
        self.assertEqual(self.request("GET", "/jobs/abc").status, 404)
        self.assertEqual(self.request("GET", "/jobs/not-an-id").status, 404)
        self.assertEqual(self.request("GET", "/jobs/" + "a" * 37).status, 404)

    def test_failing_job_retries_with_backoff_then_is_dead(self):
        self.start_gateway("--jobs-max-attempts", "3", "--jobs-backoff", "20ms")
        self.worker("probe")
        self.wait_task_known("probe")
        job = self.submit("probe", {"fail": True})
        dead = self.wait_status(job, "dead")
        self.assertEqual(dead["attempts"], 3)
        self.assertEqual(dead["error"], "asked to fail")
        self.assertIsNone(dead["result"])
        fatal = self.submit("probe", {"fatal": True})
        dead = self.wait_status(fatal, "dead")
        self.assertEqual(dead["attempts"], 1)
        self.assertEqual(dead["error"], "asked to fail for good")

    def test_delayed_job_waits_for_its_time(self):
        self.start_gateway()
        self.worker("report", binary="barista-worker")
        self.wait_task_known("report")
        job = self.submit("report", {"n": 1}, query="?delay_ms=60000")
        time.sleep(0.3)
        self.assertEqual(self.job(job)["status"], "queued")
        soon = self.submit("report", {"n": 1}, query="?delay_ms=200")
        self.wait_status(soon, "succeeded")
        self.assertEqual(self.job(job)["status"], "queued")

    def test_finished_jobs_expire_after_the_retention(self):
        self.start_gateway("--jobs-retention", "300ms")
        self.worker("report", binary="barista-worker")
        self.wait_task_known("report")
        job = self.submit("report", {"n": 1}, [("Idempotency-Key", "short-lived")])
        self.wait_status(job, "succeeded")
        self.wait_until(lambda: self.request("GET", "/jobs/%s" % job).status == 404,
                        "the job to expire")
        # Its key went with it: the same key makes a new job.
        again = self.submit("report", {"n": 1}, [("Idempotency-Key", "short-lived")])
        self.assertNotEqual(again, job)

    def test_task_limit_answers_503(self):
        self.start_gateway("--jobs-task-limit", "2")
        self.worker("report", binary="barista-worker")
        self.wait_task_known("report")
        for _ in range(2):
            self.submit("report", {"n": 1}, query="?delay_ms=60000")
        r = self.request("POST", "/jobs/report", b"{}")
        self.assertEqual(r.status, 503)
        self.assertEqual(r.header("Retry-After"), "1")
        self.assertIn("detail", r.json())

    def test_signup_enqueues_an_email_before_answering(self):
        self.start_gateway()
        self.worker("signup,email", binary="barista-worker")
        self.wait_until(lambda: self.request("GET", "/readyz").status == 200, "readyz")
        r = self.request("POST", "/signup", b'{"email": "new@example.com"}')
        self.assertEqual(r.status, 201, r.body)
        self.assertEqual(r.json(), {"status": "created", "email": "new@example.com"})
        lines = self.wait_until(
            lambda: [l for l in self.outbox_lines() if l[1] == "new@example.com"], "the email")
        self.assertEqual(len(lines), 1)
        # The line is written before the worker's JOB_RESULT: wait for the latter.
        self.wait_status(lines[0][0], "succeeded")
        r = self.request("POST", "/signup", b'{"name": "no email"}')
        self.assertEqual(r.status, 422)
        # signup declares its body (an email address): the gateway answers FastAPI's
        # 422 before the worker sees the request.
        self.assertEqual([(e["type"], e["loc"]) for e in r.json()["detail"]],
                         [("missing", ["body", "email"])])


class JobsSecurityTest(JobsTestCase):
    """Issue 13's job items, each against the real processes."""

    def rogue(self, name, tasks, public):
        """A peer that registers with READY announcing `tasks` (of which `public`
        marked public) and no service, the way the issue's attacker did."""
        d = ZmtpDealer("127.0.0.1", self.broker_port)
        self.addCleanup(d.close)
        d.send(pack([1, READY, name, 0, 0, 1000, [], tasks, public]))  # no credit
        d.recv_type(WELCOME)
        return d

    def test_task_no_worker_runs_is_404_and_a_readys_tasks_do_not_last(self):
        # Item 5: tasks exist while a registered worker announces them.
        self.start_gateway("--jobs-task-grace", "300ms")
        junk = ["junk-%d-%d" % (i // 16, i % 16) for i in range(128)]
        rogue = self.rogue("rogue:1", junk, junk)
        # While it is registered its public tasks are submittable (it runs them)...
        self.wait_task_known("junk-3-7")
        queued = self.submit("junk-3-7", {"x": 1})
        # ...but one READY brings at most 64 tasks.
        self.assertEqual(self.request("POST", "/jobs/junk-7-15", b"{}").status, 404)
        rogue.close()
        # Gone (heartbeats stop), then retired after the grace period: no worker runs
        # the task, so it is 404 again - and stays so after a gateway restart.
        self.wait_until(lambda: self.request("POST", "/jobs/junk-3-7", b"{}").status == 404,
                        "the rogue's tasks to retire")
        r = self.request("POST", "/jobs/junk-3-7", b"{}")
        self.assertEqual(r.json(), {"detail": "Unknown task"})
        # The job it took waits for a worker of its task, still readable.
        self.assertEqual(self.job(queued)["status"], "queued")
        self.assertIn("task junk-3-7 retired", self.gw.stderr())
        # A real task still joins.
        self.worker("public-email")
        self.wait_task_known("email")

    def test_a_reply_cannot_enqueue_a_task_that_does_not_exist(self):
        self.start_gateway()
        self.worker("signup", binary="barista-worker")  # without the email task
        self.wait_until(lambda: self.request("GET", "/readyz").status == 200, "readyz")
        r = self.request("POST", "/signup", b'{"email": "new@example.com"}')
        self.assertEqual(r.status, 503, r.body)
        self.assertIn("background jobs could not be stored", r.json()["detail"])
        self.assertIn("task email refused: no such task", self.gw.stderr())

    def test_email_is_internal_and_report_is_public(self):
        # Item 14, with the shipped services: the README's POST /jobs/report works,
        # email is only enqueued by signup.
        self.start_gateway()
        self.worker("signup,email", binary="barista-worker")
        self.worker("report", binary="barista-worker")
        self.wait_task_known("report")
        # /readyz is 200 as soon as one worker is in; signup's may still be registering.
        self.wait_until(lambda: self.request("GET", "/signup").status == 405, "the signup route")
        r = self.request("POST", "/jobs/email", b'{"to": "x@example.com"}')
        self.assertEqual(r.status, 404)
        self.assertEqual(r.json(), {"detail": "Unknown task"})
        self.assertEqual(self.request("POST", "/signup", b'{"email": "y@example.com"}').status,
                         201)
        self.wait_until(lambda: [l for l in self.outbox_lines() if l[1] == "y@example.com"],
                        "the signup's email")
        self.assertEqual([l for l in self.outbox_lines() if l[1] == "x@example.com"], [])
        self.wait_status(self.submit("report", {"n": 2}), "succeeded")

    def test_report_has_no_test_switches(self):
        # Item 15: the shipped, public report task neither fails nor sleeps on demand.
        self.start_gateway()
        self.worker("report", binary="barista-worker")
        self.wait_task_known("report")
        done = self.wait_status(self.submit("report", {"n": 1, "fail": True, "fatal": True}),
                                "succeeded", "dead")
        self.assertEqual(done["status"], "succeeded")
        self.assertEqual(done["attempts"], 1)

    def test_idempotency_keys_are_scoped_per_task(self):
        # Item 12: the same key on two tasks makes two jobs.
        self.start_gateway()
        self.worker("public-email")
        self.worker("probe")
        self.wait_task_known("email")
        self.wait_task_known("probe")
        key = [("Idempotency-Key", "order-42")]
        probe = self.submit("probe", {}, key)
        mail = self.submit("email", {"to": "keyed@example.com"}, key)
        self.assertNotEqual(probe, mail)
        self.assertEqual(self.submit("email", {"to": "keyed@example.com"}, key), mail)
        self.assertEqual(self.submit("probe", {}, key), probe)
        self.assertEqual(self.job(mail)["task"], "email")
        self.wait_status(mail, "succeeded")
        self.assertIn([mail, "keyed@example.com"], self.outbox_lines())

    def test_job_ids_are_random_and_never_reused(self):
        # Item 13: after retention deleted a job and the gateway restarted, a new job
        # does not get its id, and an old status URL is 404, not someone else's job.
        gw = self.start_gateway("--jobs-retention", "200ms", checked=False)
        self.worker("report", binary="barista-worker")
        self.wait_task_known("report")
        first = self.submit("report", {"n": 1})
        self.wait_status(first, "succeeded")
        self.wait_until(lambda: self.request("GET", "/jobs/" + first).status == 404,
                        "the job to expire")
        gw.signal(signal.SIGTERM)
        gw.wait()
        gw.close()
        self.start_gateway("--jobs-retention", "200ms")
        self.wait_task_known("report")
        ids = {self.submit("report", {"n": 1}) for _ in range(20)}
        self.assertEqual(len(ids), 20)
        self.assertNotIn(first, ids)
        self.assertEqual(self.request("GET", "/jobs/" + first).status, 404)

    def test_delayed_payloads_wait_in_the_store_not_in_memory(self):
        # Item 11: a delayed job's payload leaves memory once it is durable, and comes
        # back whole when the job is due.
        self.start_gateway()
        self.worker("public-email")
        self.wait_task_known("email")
        pad = "p" * (512 * 1024)
        later = [self.submit("email", {"to": "later%d@example.com" % i, "pad": pad},
                             query="?delay_ms=2592000000") for i in range(8)]
        self.assertEqual(self.metric("barista_jobs_memory_bytes"), 0)
        soon = self.submit("email", {"to": "soon@example.com", "pad": pad},
                           query="?delay_ms=300")
        self.wait_status(soon, "succeeded")
        self.assertIn([soon, "soon@example.com"], self.outbox_lines())
        for job in later:
            self.assertEqual(self.job(job)["status"], "queued")
        self.assertEqual(self.metric("barista_jobs_memory_bytes"), 0)

    def test_task_bytes_limit_answers_503(self):
        self.start_gateway("--jobs-task-bytes", "1m")
        self.worker("public-email")
        self.wait_task_known("email")
        pad = "p" * (300 * 1024)
        for i in range(3):
            self.submit("email", {"to": "b%d@example.com" % i, "pad": pad},
                        query="?delay_ms=60000")
        r = self.request("POST", "/jobs/email?delay_ms=60000",
                         json.dumps({"to": "over@example.com", "pad": pad}).encode())
        self.assertEqual(r.status, 503)
        self.assertEqual(r.header("Retry-After"), "1")
        self.assertIn("bytes", r.json()["detail"])


class JobsFaultTest(JobsTestCase):
    def test_lease_expiry_requeues_the_job(self):
        # A worker that takes the job and then neither renews its lease (JOB_PROGRESS)
        # nor answers - alive as far as heartbeats go (it announced a 10 s interval),
        # stuck as far as the job goes: the lease runs out and the job runs again on a
        # real worker.  (A real worker renews while its handler runs: test_jobs_control.)
        self.start_gateway("--jobs-lease", "300ms", "--jobs-max-attempts", "2")
        stuck = ZmtpDealer("127.0.0.1", self.broker_port)
        self.addCleanup(stuck.close)
        stuck.send(pack([1, READY, "stuck", 1, 1, 10000, [], ["probe"], ["probe"]]))
        stuck.recv_type(WELCOME)
        self.wait_task_known("probe")
        job = self.submit("probe", {"sleep_ms": 0})
        self.assertEqual(stuck.recv_type(JOB)[2], job)
        queued = self.wait_until(
            lambda: (lambda j: j if j.get("error") == "lease expired" else None)(self.job(job)),
            "the lease to run out")
        self.assertEqual(queued["attempts"], 1)
        self.assertIn("lease of 300 ms expired", self.gw.stderr())
        self.worker("probe")
        done = self.wait_status(job, "succeeded")
        self.assertEqual(done["attempts"], 2)

    def test_worker_killed_mid_job_gives_it_to_another(self):
        self.start_gateway()
        first = self.worker("probe")
        self.wait_task_known("probe")
        job = self.submit("probe", {"sleep_ms": 60000})
        self.wait_status(job, "running")
        self.worker("probe")
        time.sleep(0.2)
        # The new worker is idle; the job is still leased to the first one.
        first.proc.send_signal(signal.SIGKILL)
        first.wait()
        running = self.wait_until(
            lambda: (lambda j: j if j["attempts"] == 2 else None)(self.job(job)),
            "the job's second attempt")
        self.assertEqual(running["status"], "running")

    def test_jobs_survive_a_gateway_restart(self):
        gw = self.start_gateway(checked=False)
        self.worker("public-email")
        self.wait_task_known("email")
        delayed = self.submit("email", {"to": "later@example.com"}, query="?delay_ms=1500")
        keyed = self.submit("email", {"to": "key@example.com"}, [("Idempotency-Key", "k-1")])
        done = self.submit("email", {"to": "now@example.com"})
        self.wait_status(done, "succeeded")
        gw.signal(signal.SIGKILL)
        gw.wait()
        gw.close()
        # Same store, same broker port: the worker comes back by itself.
        self.start_gateway()
        # On PostgreSQL the killed gateway's jobs come to its successor once the killed
        # one's gateway lease runs out (docs/jobs.md); on SQLite at once.
        self.wait_until(lambda: self.request("GET", "/jobs/%s" % done).status == 200,
                        "the restarted gateway to hold the jobs")
        self.assertEqual(self.job(done)["status"], "succeeded")
        self.assertIn(self.job(delayed)["status"], ("queued", "running", "succeeded"))
        self.wait_status(delayed, "succeeded")
        self.assertIn([delayed, "later@example.com"], self.outbox_lines())
        # Keys survive too.
        again = self.submit("email", {"to": "key@example.com"}, [("Idempotency-Key", "k-1")])
        self.assertEqual(again, keyed)
        # A new id is none of the old ones.
        self.assertNotIn(self.submit("email", {"to": "x@example.com"}), (delayed, keyed, done))


if __name__ == "__main__":
    unittest.main()
