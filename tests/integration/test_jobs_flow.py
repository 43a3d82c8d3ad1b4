"""Workflows (issue 16): chains, groups and chords of jobs over the real gateway, real
barista-worker-test processes running the `calc` task, a real store (SQLite, or
PostgreSQL under BARISTA_TEST_STORE=pg: integration_test_jobs_flow_pg), real HTTP.

calc's argument: an integer n gives n + 1; a list gives its sum; {"add": k} gives k;
[value, {"add": k}] (a step with its own args after its parents' results) gives
value + k; "fail" ends it dead.

- A chain passes each result on; a chord's body gets the group's results in order.
- A dead member fails the rest of its chain and the chord, with its error; a
  cancelled workflow cancels its pending members.
- Bad canvases get 422 with a FastAPI-style detail.
- Durability: kill -9 of the gateway while chords run; after the restart every chord
  body ran exactly once (counted in the workers' run log).
- Through the SDK (barista-worker-test's `flow` service): a handler asks for a chain
  and answers with its id; a task asks for a chord, linked to its job.
- Retrying a dead member (POST /jobs/{id}/retry) puts the members that died with it
  back to waiting: the chain goes on, and a chord's body runs exactly once.
"""

import os
import signal
import unittest

from test_jobs import JobsTestCase


class FlowTestCase(JobsTestCase):
    heartbeat_ms = 1000

    def setUp(self):
        super().setUp()
        self.runlog = os.path.join(self.dir.name, "runs.txt")
        os.environ["BARISTA_TEST_RUNLOG"] = self.runlog
        self.addCleanup(os.environ.pop, "BARISTA_TEST_RUNLOG", None)

    def post_flow(self, canvas, expect=202):
        import json
        r = self.request("POST", "/workflows", json.dumps(canvas).encode())
        self.assertEqual(r.status, expect, r.body)
        return r.json()

    def flow(self, flow_id):
        r = self.request("GET", "/workflows/" + flow_id)
        self.assertEqual(r.status, 200, r.body)
        return r.json()

    def wait_flow(self, flow_id, *statuses):
        return self.wait_until(
            lambda: (lambda f: f if f["status"] in statuses else None)(self.flow(flow_id)),
            "workflow %s to be %s" % (flow_id, "/".join(statuses)))

    def runs(self):
        try:
            with open(self.runlog) as f:
                return [line.split()[0] for line in f if line.strip()]
        except FileNotFoundError:
            return []


class WorkflowTest(FlowTestCase):
    def setUp(self):
        super().setUp()
        self.start_gateway()
        self.worker("probe")
        self.wait_task_known("calc")

    def test_a_chain_passes_each_result_to_the_next(self):
        made = self.post_flow({"chain": [{"task": "calc", "args": {"add": 5}},
                                         {"task": "calc"},
                                         {"task": "calc", "args": {"add": 10}}]})
        self.assertRegex(made["workflow_id"], r"^[0-9a-f]{32}$")
        self.assertEqual(made["status_url"], "/workflows/" + made["workflow_id"])
        self.assertEqual(len(made["jobs"]), 3)
        done = self.wait_flow(made["workflow_id"], "succeeded", "dead")
        self.assertEqual(done["status"], "succeeded", done)
        self.assertEqual([m["parents"] for m in done["jobs"]], [[], [0], [1]])
        # 5, then 5 + 1, then 6 + 10.
        results = [self.job(j)["result"] for j in made["jobs"]]
        self.assertEqual(results, [5, 6, 16])
        self.assertEqual(self.job(made["jobs"][2])["workflow_id"], made["workflow_id"])
        self.assertEqual(sorted(self.runs()), sorted(made["jobs"]))

    def test_a_chord_gives_its_body_the_group_results_in_order(self):
        header = [{"task": "calc", "args": {"add": k, "sleep_ms": (10 - k) * 20}}
                  for k in range(10)]
        made = self.post_flow({"chord": {"header": header,
                                         "body": {"task": "calc", "args": {"add": 1000}}}})
        self.assertEqual(len(made["jobs"]), 11)
        done = self.wait_flow(made["workflow_id"], "succeeded", "dead")
        self.assertEqual(done["status"], "succeeded", done)
        self.assertEqual(done["jobs"][10]["parents"], list(range(10)))
        # The body's own args come after the list of results: sum(0..9) + 1000.
        self.assertEqual(self.job(made["jobs"][10])["result"], 1045)
        self.assertEqual(len(self.runs()), 11)

    def test_a_group_runs_side_by_side_and_a_chain_after_it_gets_the_list(self):
        made = self.post_flow({"chain": [
            {"group": [{"task": "calc", "args": {"add": 1}},
                       {"chain": [{"task": "calc", "args": {"add": 2}}, {"task": "calc"}]}]},
            {"task": "calc"}]})
        done = self.wait_flow(made["workflow_id"], "succeeded", "dead")
        self.assertEqual(done["status"], "succeeded", done)
        # Members: 1 | 2 -> 3 ; then [1, 3] summed.
        self.assertEqual([self.job(j)["result"] for j in made["jobs"]], [1, 2, 3, 4])
        self.assertEqual(done["jobs"][3]["parents"], [0, 2])

    def test_a_dead_member_fails_the_rest_of_the_chain_and_the_chord(self):
        made = self.post_flow({"chain": [
            {"chord": {"header": [{"task": "calc", "args": {"add": 1}},
                                  {"task": "calc", "args": {"fail": True}}],
                       "body": {"task": "calc"}}},
            {"task": "calc"}]})
        done = self.wait_flow(made["workflow_id"], "dead")
        statuses = [m["status"] for m in done["jobs"]]
        self.assertEqual(statuses, ["succeeded", "dead", "dead", "dead"])
        failed = made["jobs"][1]
        body = self.job(made["jobs"][2])
        self.assertEqual(body["error"],
                         "parent %s (calc) failed: calc asked to fail" % failed)
        self.assertEqual(body["attempts"], 0)
        self.assertIn("parent %s (calc) failed" % made["jobs"][2],
                      self.job(made["jobs"][3])["error"])
        # Neither the body nor the step after it ever ran.
        self.assertEqual(self.runs(), made["jobs"][:1])

    def test_cancelling_a_workflow_cancels_its_pending_members(self):
        made = self.post_flow({"chain": [{"task": "calc", "args": {"sleep_ms": 60000}},
                                         {"task": "calc"}, {"task": "calc"}]})
        self.wait_status(made["jobs"][0], "running")
        self.assertEqual(self.flow(made["workflow_id"])["status"], "running")
        r = self.request("DELETE", "/workflows/" + made["workflow_id"])
        self.assertEqual(r.status, 202, r.body)
        # The waiting members are cancelled at once, the running one when it stops.
        self.assertEqual(r.json(), {"workflow_id": made["workflow_id"], "cancelled": 2,
                                    "cancelling": 1})
        done = self.wait_flow(made["workflow_id"], "cancelled")
        self.wait_until(lambda: all(m["status"] == "cancelled"
                                    for m in self.flow(made["workflow_id"])["jobs"]),
                        "every member cancelled")
        self.assertEqual(self.job(made["jobs"][1])["error"], "cancelled")
        self.assertEqual(self.job(made["jobs"][2])["error"],
                         "parent %s (calc) was cancelled" % made["jobs"][1])
        self.assertEqual(self.job(made["jobs"][0])["error"], "cancelled while sleeping")
        self.assertEqual(self.runs(), [])
        del done

    def test_a_waiting_member_shows_as_waiting_and_is_listed(self):
        made = self.post_flow({"chain": [{"task": "calc", "args": {"sleep_ms": 60000}},
                                         {"task": "calc"}]})
        self.assertEqual(self.job(made["jobs"][1])["status"], "waiting")
        r = self.request("GET", "/jobs?status=waiting")
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual([i["id"] for i in r.json()["items"]], [made["jobs"][1]])
        # Cancelling the waiting member alone cancels it (and nothing else).
        r = self.request("DELETE", "/jobs/" + made["jobs"][1])
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(self.job(made["jobs"][1])["status"], "cancelled")
        self.assertEqual(self.job(made["jobs"][0])["status"], "running")

    def test_bad_canvases_are_422_and_make_nothing(self):
        bad = [
            ({}, "a workflow step has exactly one of task, chain, group and chord"),
            ({"chain": []}, '"chain" is empty'),
            ({"group": 3}, "a group must be a list of steps"),
            ({"task": "calc", "chain": []},
             "a workflow step has exactly one of task, chain, group and chord"),
            ({"task": "calc", "retries": 3},
             'unknown key "retries" in a workflow step (task, args, chain, group, chord)'),
            ({"chord": {"header": [{"task": "calc"}]}},
             '"chord" needs a header (a list of steps) and a body (a step)'),
            ({"chain": [{"task": "calc"}, {"task": "nope"}]},
             'Unknown task "nope" in the workflow'),
            ({"group": [{"task": "calc"}] * 1001}, "a workflow has at most 1000 members"),
            ([1], "a workflow step must be an object"),
        ]
        for canvas, detail in bad:
            self.assertEqual(self.post_flow(canvas, expect=422), {"detail": detail}, canvas)
        r = self.request("POST", "/workflows", b"{")
        self.assertEqual(r.status, 422, r.body)
        r = self.request("GET", "/workflows/" + "0" * 32)
        self.assertEqual((r.status, r.json()), (404, {"detail": "Workflow not found"}))
        r = self.request("GET", "/jobs")
        self.assertEqual(r.json()["items"], [])


class WorkflowDurabilityTest(FlowTestCase):
    heartbeat_ms = 300  # workers find the restarted gateway soon

    def test_chords_fire_exactly_once_across_gateway_kills(self):
        # Chords are submitted whose header members wait on two gates (files the test
        # creates).  Gate A opens and its members succeed; the gateway is killed (-9)
        # with every chord half done, restarted, killed again, restarted; then gate B
        # opens.  Every acknowledged workflow ends succeeded with the right results,
        # and every chord body and the step after it succeeded exactly once.  The
        # gates make it deterministic: no body can run before the last restart (an
        # attempt at a closed gate fails and is retried after a short backoff).
        gate_a = os.path.join(self.dir.name, "gate-a")
        gate_b = os.path.join(self.dir.name, "gate-b")
        opts = ("--jobs-max-attempts", "1000", "--jobs-backoff", "20ms",
                "--jobs-backoff-cap", "100ms")
        self.start_gateway(*opts, checked=False)
        self.worker("probe")
        self.worker("probe")
        self.wait_task_known("calc")
        flows = []
        for i in range(6):
            header = [{"task": "calc", "args": {"add": k, "gate": gate_a if k < 3 else gate_b}}
                      for k in range(6)]
            flows.append(self.post_flow({"chain": [
                {"chord": {"header": header, "body": {"task": "calc"}}},
                {"task": "calc", "args": {"add": 100 * i}}]}))
        open(gate_a, "w").close()
        for made in flows:
            for member in made["jobs"][:3]:
                self.wait_status(member, "succeeded")
        for _ in range(2):
            os.kill(self.gw.proc.pid, signal.SIGKILL)
            self.gw.proc.wait()
            self.start_gateway(*opts, checked=False)
            self.wait_task_known("calc")
            # On PostgreSQL the killed gateway's jobs come to its successor when the
            # killed one's lease runs out (docs/jobs.md): until then their workflows are
            # unknown (a job is shown from the store meanwhile).
            for made in flows:
                self.wait_until(lambda: self.request("GET", "/workflows/%s"
                                                     % made["workflow_id"]).status == 200,
                                "the restarted gateway to hold the workflow")
                self.assertEqual(self.job(made["jobs"][6])["status"], "waiting")
        open(gate_b, "w").close()
        for made in flows:
            done = self.wait_flow(made["workflow_id"], "succeeded", "dead", "cancelled")
            self.assertEqual(done["status"], "succeeded", done)
        runs = self.runs()
        for i, made in enumerate(flows):
            self.assertEqual(self.job(made["jobs"][6])["result"], 15)
            self.assertEqual(self.job(made["jobs"][7])["result"], 15 + 100 * i)
            for member in made["jobs"][6:]:
                self.assertEqual(runs.count(member), 1, member)
            # A header member running when the gateway died runs again: at-least-once.
            for member in made["jobs"][:6]:
                self.assertGreaterEqual(runs.count(member), 1, member)


class WorkflowSdkTest(FlowTestCase):
    """Workflows a handler and a task ask for with br_req_workflow_submit and
    br_job_workflow_submit (WORKFLOW, PROTOCOL.md 5.21)."""

    def setUp(self):
        super().setUp()
        self.start_gateway()
        self.worker("probe")
        self.worker("flow")
        self.wait_task_known("calc")
        self.wait_task_known("fanout")
        self.wait_until(lambda: self.request("POST", "/flow/chain", b"{}").status == 202,
                        "the flow service to be registered")
        self.wait_until(lambda: not [j for j in self.request("GET", "/jobs").json()["items"]
                                     if j["status"] not in ("succeeded",)],
                        "the probing chain to end")
        self.probed = len(self.runs())

    def test_a_handler_asks_for_a_chain_and_answers_with_its_id(self):
        r = self.request("POST", "/flow/chain", b'{"n": 5}')
        self.assertEqual(r.status, 202, r.body)
        flow_id = r.json()["workflow_id"]
        self.assertRegex(flow_id, r"^[0-9a-f]{32}$")
        done = self.wait_flow(flow_id, "succeeded", "dead")
        self.assertEqual(done["status"], "succeeded", done)
        self.assertNotIn("parent_job", done)
        self.assertEqual([m["parents"] for m in done["jobs"]], [[], [0], [1]])
        self.assertEqual([self.job(m["id"])["result"] for m in done["jobs"]], [5, 6, 16])
        # A task that does not exist: the gateway's 422 reaches the handler, which
        # passes it on.
        r = self.request("POST", "/flow/chain", b'{"task": "nope"}')
        self.assertEqual((r.status, r.json()),
                         (422, {"detail": 'Unknown task "nope" in the workflow'}))

    def test_a_task_asks_for_a_chord_linked_to_its_job(self):
        parent = self.submit("fanout", {"n": 10})
        done = self.wait_status(parent, "succeeded", "dead")
        self.assertEqual(done["status"], "succeeded", done)
        flow_id = done["result"]["workflow_id"]
        flow = self.wait_flow(flow_id, "succeeded", "dead")
        self.assertEqual(flow["status"], "succeeded", flow)
        self.assertEqual(flow["parent_job"], parent)
        self.assertEqual(flow["size"], 11)
        self.assertEqual(flow["jobs"][10]["parents"], list(range(10)))
        # sum(0..9) + 1000, the body once.
        body = flow["jobs"][10]["id"]
        self.assertEqual(self.job(body)["result"], 1045)
        self.assertEqual(self.job(body)["workflow_id"], flow_id)
        self.assertEqual(self.runs()[self.probed:].count(body), 1)


class WorkflowRetryTest(FlowTestCase):
    """POST /jobs/{id}/retry of a dead member: it runs again, and the members that
    died with it wait again, so the workflow goes on (one attempt per job here, so
    that a closed gate kills a member at once)."""

    def setUp(self):
        super().setUp()
        self.start_gateway("--jobs-max-attempts", "1")
        self.worker("probe")
        self.wait_task_known("calc")

    def gate(self, name):
        return os.path.join(self.dir.name, name)

    def retry(self, job_id, expect=202):
        r = self.request("POST", "/jobs/%s/retry" % job_id)
        self.assertEqual(r.status, expect, r.body)
        return r.json()

    def test_retrying_a_dead_chain_member_lets_the_chain_go_on(self):
        made = self.post_flow({"chain": [{"task": "calc", "args": {"add": 1,
                                                                   "gate": self.gate("g")}},
                                         {"task": "calc"},
                                         {"task": "calc", "args": {"add": 10}}]})
        done = self.wait_flow(made["workflow_id"], "dead")
        self.wait_until(lambda: [m["status"] for m in self.flow(made["workflow_id"])["jobs"]]
                        == ["dead"] * 3, "the chain to be dead")
        # A member that died because of its parent never had its argument: 409.
        self.assertEqual(self.retry(made["jobs"][1], 409)["detail"],
                         "A workflow member runs after its parents succeeded: retry the "
                         "parent that failed")
        open(self.gate("g"), "w").close()
        self.retry(made["jobs"][0])
        flow = self.flow(made["workflow_id"])
        self.assertEqual([m["status"] for m in flow["jobs"]][1:], ["waiting", "waiting"])
        self.assertNotIn("error", self.job(made["jobs"][2]))
        done = self.wait_flow(made["workflow_id"], "succeeded", "dead")
        self.assertEqual(done["status"], "succeeded", done)
        self.assertEqual([self.job(j)["result"] for j in made["jobs"]], [1, 2, 12])
        self.assertEqual(sorted(self.runs()), sorted(made["jobs"]))

    def test_a_chord_fires_once_after_its_dead_members_are_retried(self):
        # Two header members die (gates a and b): the body dies with the first.
        header = [{"task": "calc", "args": {"add": k}} for k in range(5)]
        header[1]["args"]["gate"] = self.gate("a")
        header[3]["args"]["gate"] = self.gate("b")
        made = self.post_flow({"chord": {"header": header,
                                         "body": {"task": "calc", "args": {"add": 1000}}}})
        body = made["jobs"][5]
        self.wait_until(lambda: sorted(m["status"] for m in self.flow(made["workflow_id"])["jobs"])
                        == ["dead"] * 3 + ["succeeded"] * 3, "the chord to be dead")
        # The first retried member succeeds, but the other is still dead: the body,
        # waiting again meanwhile, dies again - with the other's error.
        open(self.gate("a"), "w").close()
        self.retry(made["jobs"][1])
        self.wait_status(made["jobs"][1], "succeeded")
        dead = self.wait_status(body, "dead")
        self.assertIn("parent %s (calc) failed" % made["jobs"][3], dead["error"])
        self.assertEqual(dead["attempts"], 0)
        open(self.gate("b"), "w").close()
        self.retry(made["jobs"][3])
        done = self.wait_flow(made["workflow_id"], "succeeded", "dead")
        self.assertEqual(done["status"], "succeeded", done)
        self.assertEqual(self.job(body)["result"], sum(range(5)) + 1000)
        runs = self.runs()
        self.assertEqual(runs.count(body), 1)
        self.assertEqual(sorted(runs), sorted(made["jobs"]))


if __name__ == "__main__":
    unittest.main()
