"""The jobs page (GET /jobs/ui) in a real browser: Debian's headless chromium, driven
over the DevTools protocol as the /docs test does, loads the page from the real
gateway with real workers; what it shows - queues per task, running jobs with their
progress, dead jobs with their errors, schedules with their next run - is checked
against the API, and its retry and cancel buttons are clicked and their effect read
back from the API.  With BARISTA_JOBS_SCREENSHOT set, a screenshot is written there
(docs/jobs-page.png was made so).

chromium and python3-websockets come from `deploy/install-deps.sh browser`; without
them the test skips, except in CI (CI set), where it fails."""

import json
import os
import time
import unittest

from test_docs_browser import Browser, require_browser
from test_jobs import JobsTestCase


class JobsPageInABrowser(JobsTestCase):
    def setUp(self):
        super().setUp()
        require_browser(self)
        self.start_gateway("--jobs-backoff", "10ms")
        self.worker("probe")
        self.worker("probe")
        self.wait_task_known("probe")

    def page(self):
        b = Browser(self)
        b.call("Page.enable")
        b.call("Page.navigate", url="http://127.0.0.1:%d/jobs/ui" % self.gw.port)
        b.wait_for("document.body && document.body.dataset.ready === 'yes'", "the page")
        return b

    def refreshed(self, b, cond_js, what):
        """Waits until the page's data satisfies cond_js (the page polls every 2 s)."""
        return b.wait_for(cond_js, what, timeout=30)

    def cells(self, b, table, key):
        return b.eval("Array.from(document.querySelectorAll('#%s tr[data-%s]'))"
                      ".map(function (tr) { return [tr.dataset.%s].concat("
                      "Array.from(tr.cells).map(function (c) { return c.textContent; })); })"
                      % (table, key, key))

    def test_the_page_shows_what_the_api_says_and_its_buttons_work(self):
        for _ in range(3):
            self.wait_status(self.submit("probe", {"sleep_ms": 0}), "succeeded")
        dead = self.submit("probe", {"fatal": True})
        self.wait_status(dead, "dead")
        running = self.submit("probe", {"sleep_ms": 60000, "progress": True})
        self.wait_until(lambda: self.job(running).get("progress", 0) > 0, "progress")
        r = self.request("POST", "/schedules",
                         json.dumps({"task": "probe", "cron": "30 4 * * *"}).encode())
        self.assertEqual(r.status, 201, r.body)
        schedule = r.json()

        b = self.page()
        stats = {t["task"]: t for t in self.request("GET", "/jobs/stats").json()["tasks"]}
        rows = {r[0]: r[1:] for r in self.cells(b, "tasks", "task")}
        self.assertIn("probe", rows)
        # task, queued, running, succeeded, failed, dead, cancelled, ...
        shown = [int(x) for x in rows["probe"][1:7]]
        api = [stats["probe"][k] for k in ("queued", "running", "succeeded", "failed", "dead",
                                           "cancelled")]
        self.assertEqual(shown, api)
        self.assertEqual(shown[1:3], [1, 3])  # one running, three succeeded

        running_rows = self.cells(b, "running", "id")
        self.assertEqual([r[0] for r in running_rows], [running])
        self.assertRegex(running_rows[0][4], r"^\d+% slept \d+ ms$")
        failures = {r[0]: r for r in self.cells(b, "failures", "id")}
        self.assertIn(dead, failures)
        self.assertEqual(failures[dead][3], "dead")
        self.assertEqual(failures[dead][5], "asked to fail for good")
        schedules = self.cells(b, "schedules", "id")
        self.assertEqual(schedules[0][0], schedule["id"])
        self.assertEqual(schedules[0][4],
                         time.strftime("%Y-%m-%dT%H:%M:%S.000Z",
                                       time.gmtime(schedule["next_run_ms"] / 1000)))
        if os.environ.get("BARISTA_JOBS_SCREENSHOT"):
            b.screenshot(os.environ["BARISTA_JOBS_SCREENSHOT"])

        # Retry the dead job and cancel the running one from the page.
        b.eval("document.querySelector('#failures tr[data-id=\"%s\"] button.retry').click()" % dead)
        self.wait_until(lambda: self.metric("barista_jobs_dead_total") == 2, "the retried death")
        b.eval("document.querySelector('#running tr[data-id=\"%s\"] button.cancel').click()"
               % running)
        done = self.wait_status(running, "cancelled")
        self.assertEqual(done["error"], "cancelled while sleeping")
        self.refreshed(b, "document.querySelectorAll('#running tr[data-id]').length === 0",
                       "the running list to empty")


if __name__ == "__main__":
    unittest.main()
