"""Durable background jobs end to end: the real gateway and barista-worker processes,
a real SQLite store and a real outbox file.  Covers submit -> run -> result, the
Idempotency-Key, unknown tasks and bad bodies, retries until dead, lease expiry, a
worker killed mid-job, jobs enqueued by a handler's reply (/signup), and jobs that
survive a gateway restart."""

import hashlib
import json
import os
import signal
import tempfile
import time
import unittest

import harness as h

# Fast heartbeats, so that a killed worker is noticed in well under a second.
HEARTBEAT_MS = 200
# Bound on every wait for a condition; conditions are normally met in milliseconds.
WAIT = 30.0


class JobsTestCase(unittest.TestCase):
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
        args = ("--broker", self.endpoint, "--jobs-db", self.db,
                "--broker-heartbeat", "%dms" % HEARTBEAT_MS) + args
        if checked:
            self.gw = h.start_gateway(self, *args)
        else:
            self.gw = h.Gateway(*args)
            self.addCleanup(self.gw.close)
        return self.gw

    def worker(self, services):
        return h.start_process(self, [h.binary("barista-worker"), "--services", services,
                                      "--connect", self.endpoint,
                                      "--heartbeat-ms", str(HEARTBEAT_MS),
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
        self.assertEqual(body["status_url"], "/jobs/%s" % body["job_id"])
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
        # A task is known once a worker announced it: until then a body that is not
        # JSON gets 404 (unknown task) rather than 422, and no job is made either way.
        self.wait_until(lambda: self.request("POST", "/jobs/" + task, b"{").status == 422,
                        "task %s to be announced" % task)

    def outbox_lines(self):
        try:
            with open(self.outbox) as f:
                return [line.rstrip("\n").split(" ", 1) for line in f if line.strip()]
        except FileNotFoundError:
            return []


class JobsApiTest(JobsTestCase):
    def test_submitted_jobs_run_and_show_their_result(self):
        self.start_gateway()
        self.worker("email")
        self.worker("report")
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
        self.worker("email")
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
        self.worker("email")
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

    def test_failing_job_retries_with_backoff_then_is_dead(self):
        self.start_gateway("--jobs-max-attempts", "3", "--jobs-backoff", "20ms")
        self.worker("report")
        self.wait_task_known("report")
        job = self.submit("report", {"fail": True})
        dead = self.wait_status(job, "dead")
        self.assertEqual(dead["attempts"], 3)
        self.assertEqual(dead["error"], "asked to fail")
        self.assertIsNone(dead["result"])
        fatal = self.submit("report", {"fatal": True})
        dead = self.wait_status(fatal, "dead")
        self.assertEqual(dead["attempts"], 1)

    def test_delayed_job_waits_for_its_time(self):
        self.start_gateway()
        self.worker("report")
        self.wait_task_known("report")
        job = self.submit("report", {"n": 1}, query="?delay_ms=60000")
        time.sleep(0.3)
        self.assertEqual(self.job(job)["status"], "queued")
        soon = self.submit("report", {"n": 1}, query="?delay_ms=200")
        self.wait_status(soon, "succeeded")
        self.assertEqual(self.job(job)["status"], "queued")

    def test_finished_jobs_expire_after_the_retention(self):
        self.start_gateway("--jobs-retention", "300ms")
        self.worker("report")
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
        self.worker("report")
        self.wait_task_known("report")
        for _ in range(2):
            self.submit("report", {"n": 1}, query="?delay_ms=60000")
        r = self.request("POST", "/jobs/report", b"{}")
        self.assertEqual(r.status, 503)
        self.assertEqual(r.header("Retry-After"), "1")
        self.assertIn("detail", r.json())

    def test_signup_enqueues_an_email_before_answering(self):
        self.start_gateway()
        self.worker("signup,email")
        self.wait_task_known("email")
        self.wait_until(lambda: self.request("GET", "/readyz").status == 200, "readyz")
        r = self.request("POST", "/signup", b'{"email": "new@example.com"}')
        self.assertEqual(r.status, 201, r.body)
        self.assertEqual(r.json(), {"status": "created", "email": "new@example.com"})
        lines = self.wait_until(
            lambda: [l for l in self.outbox_lines() if l[1] == "new@example.com"], "the email")
        self.assertEqual(len(lines), 1)
        # The mail is written before the worker reports the job done: wait for the
        # report rather than race it.
        self.wait_status(lines[0][0], "succeeded")
        r = self.request("POST", "/signup", b'{"name": "no email"}')
        self.assertEqual(r.status, 422)
        # signup declares its body (an email address): the gateway answers FastAPI's
        # 422 before the worker sees the request.
        self.assertEqual([(e["type"], e["loc"]) for e in r.json()["detail"]],
                         [("missing", ["body", "email"])])


class JobsFaultTest(JobsTestCase):
    def test_lease_expiry_requeues_the_job(self):
        # Each attempt sleeps past the lease: the job moves to the other worker, and
        # after the last attempt it is dead with the lease as its error.
        self.start_gateway("--jobs-lease", "300ms", "--jobs-max-attempts", "2")
        self.worker("report")
        self.worker("report")
        self.wait_task_known("report")
        job = self.submit("report", {"sleep_ms": 1500})
        dead = self.wait_status(job, "dead")
        self.assertEqual(dead["attempts"], 2)
        self.assertEqual(dead["error"], "lease expired")
        self.assertIn("lease of 300 ms expired", self.gw.stderr())

    def test_worker_killed_mid_job_gives_it_to_another(self):
        self.start_gateway()
        first = self.worker("report")
        self.wait_task_known("report")
        job = self.submit("report", {"sleep_ms": 60000, "n": 3})
        self.wait_status(job, "running")
        self.worker("report")
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
        self.worker("email")
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
        self.assertEqual(self.job(done)["status"], "succeeded")
        self.assertIn(self.job(delayed)["status"], ("queued", "running", "succeeded"))
        self.wait_status(delayed, "succeeded")
        self.assertIn([delayed, "later@example.com"], self.outbox_lines())
        # Keys survive too.
        again = self.submit("email", {"to": "key@example.com"}, [("Idempotency-Key", "k-1")])
        self.assertEqual(again, keyed)
        # Ids keep growing across the restart.
        self.assertGreater(int(self.submit("email", {"to": "x@example.com"})), int(delayed))


if __name__ == "__main__":
    unittest.main()
