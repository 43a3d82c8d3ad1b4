"""Jobs that run long, are watched and controlled (issue 16), and belong to the caller
who made them (issue 18): the real gateway, real barista-worker-test processes, a real
SQLite store, real HTTP.

- A task far longer than its lease runs once: the worker renews the lease with
  JOB_PROGRESS while the handler runs, and the handler's progress shows in the status.
- DELETE /jobs/{id} cancels a queued job, and a running one through JOB_CANCEL, which
  the handler observes; POST /jobs/{id}/retry runs a dead or cancelled job again.
- GET /jobs lists jobs newest first, filtered, in pages joined by an opaque cursor.
- With authentication, a job belongs to the identity that submitted it (over HTTP or
  through a handler's reply): its worker sees that identity, and other callers get 404
  for it and never see it listed.
"""

import hashlib
import json
import os
import re
import signal
import sqlite3
import time
import unittest

import harness as h
from test_jobs import JobsTestCase
from zmtp_peer import JOB, JOB_CANCEL, JOB_RESULT, READY, WELCOME, ZmtpDealer, pack

ALICE_KEY = "alice-key-0123456789abcdef"
BOB_KEY = "bob-key-0123456789abcdef"


class LongTaskTest(JobsTestCase):
    def test_a_task_six_times_its_lease_runs_exactly_once(self):
        # The 10 s task and 2 s lease, at the same proportion: without renewal
        # the lease would run out five times over.
        self.start_gateway("--jobs-lease", "500ms", "--jobs-max-attempts", "5")
        self.worker("probe")
        self.worker("probe")  # a second worker that would take a job whose lease ran out
        self.wait_task_known("probe")
        job = self.submit("probe", {"sleep_ms": 3000})
        done = self.wait_status(job, "succeeded", "dead")
        self.assertEqual(done["status"], "succeeded", done)
        self.assertEqual(done["attempts"], 1)
        self.assertNotIn("error", done)
        self.assertEqual(done["result"]["slept_ms"], 3000)
        self.assertNotIn("expired", self.gw.stderr())

    def test_progress_reported_by_the_handler_is_in_the_status(self):
        self.start_gateway("--jobs-lease", "500ms")
        self.worker("probe")
        self.wait_task_known("probe")
        job = self.submit("probe", {"sleep_ms": 2000, "progress": True})
        seen = self.wait_until(
            lambda: (lambda j: j if j["status"] == "running" and 0 < j.get("progress", 0) < 1
                     else None)(self.job(job)), "progress while running")
        self.assertRegex(seen["note"], r"^slept \d+ ms$")
        done = self.wait_status(job, "succeeded")
        self.assertEqual(done["progress"], 1)
        self.assertEqual(done["note"], "slept 2000 ms")
        self.assertEqual(done["attempts"], 1)


class ControlTest(JobsTestCase):
    heartbeat_ms = 1000  # attempts are counted: no worker may be thought dead

    def setUp(self):
        super().setUp()
        self.start_gateway()
        self.worker("probe")
        self.wait_task_known("probe")

    def test_a_queued_job_is_cancelled_and_can_be_retried(self):
        job = self.submit("probe", {"sleep_ms": 0}, query="?delay_ms=600000")
        r = self.request("DELETE", "/jobs/" + job)
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json()["status"], "cancelled")
        self.assertEqual(self.job(job)["status"], "cancelled")
        r = self.request("DELETE", "/jobs/" + job)
        self.assertEqual((r.status, r.json()), (409, {"detail": "Job already finished"}))
        self.assertEqual(self.metric("barista_jobs_cancelled_total"), 1)
        # Retried, it runs now (its delay is over: a retry is for now).
        r = self.request("POST", "/jobs/%s/retry" % job)
        self.assertEqual(r.status, 202, r.body)
        self.assertEqual(r.json(), {"job_id": job, "status_url": "/jobs/" + job})
        done = self.wait_status(job, "succeeded")
        self.assertEqual(done["attempts"], 1)
        r = self.request("POST", "/jobs/%s/retry" % job)
        self.assertEqual(r.status, 409, r.body)

    def test_a_running_job_gets_the_cancel_and_stops(self):
        job = self.submit("probe", {"sleep_ms": 60000})
        self.wait_status(job, "running")
        r = self.request("DELETE", "/jobs/" + job)
        self.assertEqual(r.status, 202, r.body)
        self.assertEqual(r.json()["status"], "running")
        self.assertIs(r.json()["cancel_requested"], True)
        done = self.wait_status(job, "cancelled", "succeeded", "dead", "failed")
        self.assertEqual(done["status"], "cancelled", done)
        # The handler saw the cancel: it stopped sleeping and said so.
        self.assertEqual(done["error"], "cancelled while sleeping")
        self.assertEqual(done["attempts"], 1)

    def test_a_dead_job_is_retried_with_a_fresh_attempt_count(self):
        job = self.submit("probe", {"fatal": True})
        self.assertEqual(self.wait_status(job, "dead")["attempts"], 1)
        r = self.request("POST", "/jobs/%s/retry" % job)
        self.assertEqual(r.status, 202, r.body)
        self.wait_until(lambda: self.metric("barista_jobs_dead_total") == 2, "the second death")
        again = self.wait_status(job, "dead")
        self.assertEqual((again["attempts"], again["error"]), (1, "asked to fail for good"))

    def test_a_version_1_worker_is_never_sent_job_cancel(self):
        # A worker speaking version 1 has no JOB_CANCEL (a version-2 type): cancelling
        # its running job ends the job when its attempt ends, and nothing of version 2
        # reaches it.  The second job's JOB, sent after the DELETE, arrives behind
        # anything the DELETE sent (one connection keeps order).
        old = ZmtpDealer("127.0.0.1", self.broker_port)
        self.addCleanup(old.close)
        old.send(pack([1, READY, "old", 1, 2, 10000, [], ["legacy"], ["legacy"]]))
        old.recv_type(WELCOME)
        self.wait_task_known("legacy")
        job = self.submit("legacy", {})
        self.assertEqual(old.recv_type(JOB)[2], job)
        r = self.request("DELETE", "/jobs/" + job)
        self.assertEqual(r.status, 202, r.body)
        second = self.submit("legacy", {})
        while True:
            m = old.recv_msg()
            self.assertEqual(m[0], 1)
            self.assertNotEqual(m[1], JOB_CANCEL)
            if m[1] == JOB:
                break
        self.assertEqual(m[2], second)
        old.send(pack([1, JOB_RESULT, job, 1, b"", "gave up"]))
        done = self.wait_status(job, "cancelled")
        self.assertEqual(done["error"], "gave up")

    def test_metrics_per_task_count_and_time_the_jobs(self):
        ok = [self.submit("probe", {"sleep_ms": 20}) for _ in range(3)]
        dead = self.submit("probe", {"fatal": True})
        waiting = self.submit("probe", {}, query="?delay_ms=600000")
        for job in ok:
            self.wait_status(job, "succeeded")
        self.wait_status(dead, "dead")
        text = self.request("GET", "/metrics").body.decode()

        def sample(name, **labels):
            lab = ",".join('%s="%s"' % kv for kv in labels.items())
            m = re.search(r"^%s\{%s\} (\S+)$" % (re.escape(name), re.escape(lab)), text, re.M)
            self.assertIsNotNone(m, "%s{%s} in\n%s" % (name, lab, text))
            return float(m.group(1))

        self.assertEqual(sample("barista_jobs_task_ended_total", task="probe",
                                outcome="succeeded"), 3)
        self.assertEqual(sample("barista_jobs_task_ended_total", task="probe", outcome="dead"), 1)
        self.assertEqual(sample("barista_jobs_task", task="probe", state="queued"), 1)
        self.assertEqual(sample("barista_jobs_task", task="probe", state="running"), 0)
        # Every JOB sent is in the queue-latency histogram, every answer in run time.
        self.assertEqual(sample("barista_jobs_queue_latency_seconds_count", task="probe"), 4)
        self.assertEqual(sample("barista_jobs_run_seconds_count", task="probe"), 4)
        self.assertEqual(sample("barista_jobs_run_seconds_bucket", task="probe", le="+Inf"), 4)
        self.assertGreaterEqual(sample("barista_jobs_run_seconds_sum", task="probe"), 0.06)
        # Buckets are cumulative: each one holds at least the one before.
        counts = [float(v) for v in re.findall(
            r'^barista_jobs_run_seconds_bucket\{task="probe",le="[^"]+"\} (\S+)$', text, re.M)]
        self.assertEqual(counts, sorted(counts))
        self.assertIn("# TYPE barista_jobs_run_seconds histogram", text)
        self.request("DELETE", "/jobs/" + waiting)

    def test_eta_is_an_absolute_time(self):
        now = time.time()
        later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 600))
        past = time.strftime("%Y-%m-%dT%H:%M:%S.250%%2B01:00", time.gmtime(now - 60 + 3600))
        waiting = self.submit("probe", {}, query="?eta=" + later)
        ran = self.submit("probe", {}, query="?eta=" + past)
        by_ms = self.submit("probe", {}, query="?eta=%d" % int((now - 5) * 1000))
        self.wait_status(ran, "succeeded")
        self.wait_status(by_ms, "succeeded")
        self.assertEqual(self.job(waiting)["status"], "queued")
        far = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 40 * 86400))
        for query in ("?eta=tomorrow", "?eta=2026-13-01T00:00:00Z", "?eta=" + far,
                      "?eta=%s&delay_ms=5" % later):
            r = self.request("POST", "/jobs/probe" + query, b"{}")
            self.assertEqual(r.status, 422, (query, r.body))

    def test_control_of_an_unknown_job_is_404(self):
        missing = "0" * 36
        for method, path in (("DELETE", "/jobs/" + missing),
                             ("POST", "/jobs/%s/retry" % missing),
                             ("GET", "/jobs/" + missing)):
            r = self.request(method, path)
            self.assertEqual((r.status, r.json()), (404, {"detail": "Job not found"}), path)

    def test_jobs_are_listed_newest_first_in_pages(self):
        ids = [self.submit("probe", {"sleep_ms": 0}, query="?delay_ms=600000")
               for _ in range(5)]
        r = self.request("GET", "/jobs?task=probe&limit=2")
        self.assertEqual(r.status, 200, r.body)
        page = r.json()
        self.assertEqual([j["id"] for j in page["items"]], ids[::-1][:2])
        self.assertEqual(page["items"][0]["status"], "queued")
        seen = [j["id"] for j in page["items"]]
        while page["next_cursor"]:
            page = self.request("GET", "/jobs?task=probe&limit=2&cursor=" +
                                page["next_cursor"]).json()
            seen += [j["id"] for j in page["items"]]
        self.assertEqual(seen, ids[::-1])
        # Filters: a status, and a task with no jobs.
        self.request("DELETE", "/jobs/" + ids[2])
        r = self.request("GET", "/jobs?status=cancelled")
        self.assertEqual([j["id"] for j in r.json()["items"]], [ids[2]])
        self.assertIsNone(r.json()["next_cursor"])
        self.assertEqual(self.request("GET", "/jobs?task=nothing").json(),
                         {"items": [], "next_cursor": None})

    def test_bad_list_parameters_are_422(self):
        r = self.request("GET", "/jobs?status=lost")
        self.assertEqual(r.status, 422, r.body)
        self.assertEqual(r.json()["detail"][0]["loc"], ["query", "status"])
        r = self.request("GET", "/jobs?limit=0")
        self.assertEqual(r.status, 422, r.body)
        self.assertEqual(r.json()["detail"][0]["loc"], ["query", "limit"])
        self.assertEqual(self.request("GET", "/jobs?cursor=zzzzzzzzzzzzzzzz").status, 422)

    def test_openapi_documents_the_control_routes(self):
        paths = json.loads(self.request("GET", "/openapi.json").body)["paths"]
        self.assertIn("get", paths["/jobs"])
        self.assertIn("delete", paths["/jobs/{id}"])
        self.assertIn("post", paths["/jobs/{id}/retry"])
        self.assertIn("409", paths["/jobs/{id}"]["delete"]["responses"])


class PolicyTest(JobsTestCase):
    """Per-task policy declared by the service (br_task_spec, sent as TASK_POLICY):
    probe-strict has max_attempts 1 and a 1 s timeout, probe-slow a rate of 4 per
    second; the gateway's own options (5 attempts, no timeout, no rate) stay for the
    other tasks."""

    heartbeat_ms = 1000

    def setUp(self):
        super().setUp()
        self.start_gateway("--jobs-max-attempts", "5", "--jobs-backoff", "10ms")
        self.worker("probe")
        self.worker("probe")
        self.wait_task_known("probe-slow")
        self.wait_until(lambda: "task probe-slow: max attempts" in self.gw.stderr(),
                        "the worker's TASK_POLICY")

    def test_max_attempts_of_the_task_beat_the_gateways(self):
        strict = self.submit("probe-strict", {"fail": True})
        plain = self.submit("probe", {"fail": True})
        dead = self.wait_status(strict, "dead")
        self.assertEqual((dead["attempts"], dead["error"]), (1, "asked to fail"))
        self.assertEqual(self.wait_status(plain, "dead")["attempts"], 5)

    def test_an_attempt_past_the_tasks_timeout_is_cancelled_and_fails(self):
        job = self.submit("probe-strict", {"sleep_ms": 60000})
        dead = self.wait_status(job, "dead", "succeeded")
        self.assertEqual((dead["status"], dead["error"]), ("dead", "timed out"))
        self.assertIn("ran past its timeout of 1000 ms", self.gw.stderr())

    def test_the_rate_limit_holds_across_workers(self):
        # 12 jobs at 4 per second with a bucket of 4: the last one cannot be sent
        # before 2 s have passed, however fast the two workers are (a lower bound: a
        # busy machine only makes it later).
        start = time.monotonic()
        jobs = [self.submit("probe-slow", {"sleep_ms": 0}) for _ in range(12)]
        for job in jobs:
            self.wait_status(job, "succeeded")
        self.assertGreaterEqual(time.monotonic() - start, 1.9)


class ScheduleTest(JobsTestCase):
    def schedule(self, **body):
        r = self.request("POST", "/schedules", json.dumps(body).encode())
        self.assertEqual(r.status, 201, r.body)
        return r.json()

    def ticks_in_store(self, sid):
        """The tick of every job the store holds for schedule sid, from the job rows'
        idempotency keys (schedule:<id>:<tick ms>)."""
        if h.store_is_pg():
            keys = [k for (k,) in h.store_sql(
                h.store_url(self.db),
                "SELECT convert_from(idem_key, 'UTF8') FROM barista_jobs WHERE "
                "convert_from(idem_key, 'UTF8') LIKE 'schedule:%s:%%'" % sid)]
            return [int(k.rsplit(":", 1)[1]) for k in keys]
        db = sqlite3.connect(self.db)
        try:
            keys = [k for (k,) in db.execute("SELECT idem_key FROM jobs WHERE idem_key LIKE ?",
                                             ("schedule:%s:%%" % sid,))]
        finally:
            db.close()
        return [int(k.rsplit(":", 1)[1]) for k in keys]

    def test_an_interval_schedule_makes_one_job_per_tick_across_a_kill(self):
        gw = self.start_gateway(checked=False)
        self.worker("probe")
        self.wait_task_known("probe")
        s = self.schedule(task="probe", payload={"sleep_ms": 0}, interval_ms=200, catch_up=1000)
        self.assertEqual(s["interval_ms"], 200)
        self.assertEqual(s["next_run_ms"] - s["last_tick_ms"], 200)
        listed = self.request("GET", "/schedules").json()["items"]
        self.assertEqual([x["id"] for x in listed], [s["id"]])
        self.wait_until(lambda: len(self.ticks_in_store(s["id"])) >= 5, "five ticks")
        gw.signal(signal.SIGKILL)
        gw.wait()
        gw.close()
        time.sleep(0.5)  # ticks pass while no gateway runs: they are made up
        self.start_gateway()
        self.wait_task_known("probe")
        before = len(self.ticks_in_store(s["id"]))
        self.wait_until(lambda: len(self.ticks_in_store(s["id"])) >= before + 5, "more ticks")
        r = self.request("DELETE", "/schedules/" + s["id"])
        self.assertEqual(r.status, 204, r.body)
        self.assertEqual(self.request("DELETE", "/schedules/" + s["id"]).status, 404)
        ticks = sorted(self.ticks_in_store(s["id"]))
        # One job per tick: no tick twice, none missing between the first and the last.
        self.assertEqual(len(ticks), len(set(ticks)))
        first = ticks[0]
        self.assertEqual(ticks, list(range(first, ticks[-1] + 1, 200)))
        self.assertEqual(first, s["last_tick_ms"] + 200)

    def test_a_cron_schedule_says_when_it_runs_next(self):
        self.start_gateway()
        self.worker("probe")
        self.wait_task_known("probe")
        s = self.schedule(task="probe", cron="0 3 * * *")
        next_run = time.gmtime(s["next_run_ms"] / 1000)
        self.assertEqual((next_run.tm_hour, next_run.tm_min, next_run.tm_sec), (3, 0, 0))
        self.assertLess(s["next_run_ms"] - time.time() * 1000, 86400 * 1000 + 60000)
        for body in ({"task": "probe", "cron": "61 * * * *"},
                     {"task": "probe", "interval_ms": 5},
                     {"task": "probe"},
                     {"task": "probe", "cron": "* * * * *", "interval_ms": 1000},
                     {"task": "nothing", "interval_ms": 1000}):
            r = self.request("POST", "/schedules", json.dumps(body).encode())
            self.assertEqual(r.status, 422, (body, r.body))


class OwnerTest(JobsTestCase):
    heartbeat_ms = 1000

    def setUp(self):
        super().setUp()
        keys = os.path.join(self.dir.name, "keys.txt")
        with open(keys, "w") as f:
            for name, key in (("alice", ALICE_KEY), ("bob", BOB_KEY)):
                f.write("%s %s\n" % (name, hashlib.sha256(key.encode()).hexdigest()))
        self.start_gateway("--api-keys-file", keys, "--auth-default", "optional")
        self.worker("probe")
        self.wait_task_known("probe")

    @staticmethod
    def as_(key):
        return [("X-API-Key", key)] if key else []

    def test_a_job_belongs_to_the_identity_that_submitted_it(self):
        job = self.submit("probe", {"sleep_ms": 0}, self.as_(ALICE_KEY))
        done = self.wait_until(
            lambda: (lambda r: r.json() if r.status == 200 and r.json()["status"] == "succeeded"
                     else None)(self.request("GET", "/jobs/" + job, headers=self.as_(ALICE_KEY))),
            "alice's job to succeed")
        # The worker saw who caused the job.
        self.assertEqual(done["result"]["sub"], "alice")
        for other in (BOB_KEY, None):
            for method, path in (("GET", "/jobs/" + job), ("DELETE", "/jobs/" + job),
                                 ("POST", "/jobs/%s/retry" % job)):
                r = self.request(method, path, headers=self.as_(other))
                self.assertEqual((r.status, r.json()), (404, {"detail": "Job not found"}),
                                 (method, path, other))
            listed = self.request("GET", "/jobs", headers=self.as_(other)).json()["items"]
            self.assertNotIn(job, [j["id"] for j in listed])
        listed = self.request("GET", "/jobs", headers=self.as_(ALICE_KEY)).json()["items"]
        self.assertEqual([j["id"] for j in listed], [job])

    def test_anonymous_jobs_stay_visible_to_anyone_with_the_id(self):
        job = self.submit("probe", {"sleep_ms": 0})
        self.assertEqual(self.wait_status(job, "succeeded")["result"]["sub"], "")
        r = self.request("GET", "/jobs/" + job, headers=self.as_(BOB_KEY))
        self.assertEqual(r.status, 200, r.body)

    def test_a_handlers_job_carries_the_identity_of_its_request(self):
        r = self.request("POST", "/probe/enqueue", json.dumps({"sleep_ms": 0}).encode(),
                         self.as_(ALICE_KEY) + [("X-Probe-Key", "from-a-reply")])
        self.assertEqual(r.status, 201, r.body)
        listed = self.request("GET", "/jobs?task=probe",
                              headers=self.as_(ALICE_KEY)).json()["items"]
        self.assertEqual(len(listed), 1, listed)
        job = listed[0]["id"]
        self.assertEqual(self.request("GET", "/jobs/" + job,
                                      headers=self.as_(BOB_KEY)).status, 404)
        done = self.wait_until(
            lambda: (lambda j: j if j["status"] == "succeeded" else None)(
                self.request("GET", "/jobs/" + job, headers=self.as_(ALICE_KEY)).json()),
            "the reply's job to succeed")
        self.assertEqual(done["result"]["sub"], "alice")


if __name__ == "__main__":
    unittest.main()
