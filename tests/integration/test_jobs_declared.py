"""Schedules a service declares with its tasks (READY.schedules, issue 16): the real
gateway and barista-worker-test processes hosting the `ticker` service, whose task
`tick` declares "fast" (every 200 ms, catch_up 1000) and "nightly" (cron 0 3 * * *).

- However many workers declare them and however often they (and the gateway)
  restart, there is exactly one schedule per declared name, with the same id.
- Exactly one job per tick: the store's jobs of "fast" carry the keys of consecutive
  ticks, 200 ms apart, none missing and none twice, across a gateway kill -9 (every
  missed tick is within its catch-up).
"""

import os
import signal
import sqlite3
import unittest

from test_jobs import JobsTestCase


class DeclaredScheduleTest(JobsTestCase):
    heartbeat_ms = 300

    def schedules(self):
        r = self.request("GET", "/schedules")
        self.assertEqual(r.status, 200, r.body)
        return {s["id"]: s for s in r.json()["items"]}

    def ticks(self, sid):
        db = sqlite3.connect(self.db)
        try:
            keys = [k for (k,) in db.execute("SELECT idem_key FROM jobs WHERE idem_key LIKE ?",
                                             ("schedule:%s:%%" % sid,))]
        finally:
            db.close()
        return [int(k.rsplit(":", 1)[1]) for k in keys]

    def test_declared_schedules_exist_once_and_tick_once_across_kills(self):
        self.start_gateway(checked=False)
        self.worker("ticker")
        self.worker("ticker")
        found = self.wait_until(lambda: (lambda s: s if len(s) == 2 else None)(self.schedules()),
                                "the two declared schedules")
        by_kind = {("cron" in s): s for s in found.values()}
        fast, nightly = by_kind[False], by_kind[True]
        self.assertEqual((fast["task"], fast["interval_ms"], fast["catch_up"]), ("tick", 200, 1000))
        self.assertEqual(fast["payload"], {"add": 1})
        self.assertEqual((nightly["task"], nightly["cron"], nightly["catch_up"]),
                         ("tick", "0 3 * * *", 0))
        self.wait_until(lambda: len(self.ticks(fast["id"])) >= 5, "five ticks")
        # The gateway dies and comes back; a third worker declares the same again.
        os.kill(self.gw.proc.pid, signal.SIGKILL)
        self.gw.proc.wait()
        self.start_gateway(checked=False)
        self.worker("ticker")
        before = len(self.ticks(fast["id"]))
        self.wait_until(lambda: len(self.ticks(fast["id"])) >= before + 5, "five more ticks")
        self.assertEqual(set(self.schedules()), {fast["id"], nightly["id"]})
        ticks = sorted(self.ticks(fast["id"]))
        self.assertEqual(len(ticks), len(set(ticks)), "a tick made twice")
        self.assertEqual({b - a for a, b in zip(ticks, ticks[1:])}, {200},
                         "ticks missing between %d and %d" % (ticks[0], ticks[-1]))
        # The ticks' jobs ran (the task's handler logs nothing without a run log; the
        # store says they succeeded).
        db = sqlite3.connect(self.db)
        try:
            ok = db.execute("SELECT count(*) FROM jobs WHERE status = 2 AND task = 'tick'")
            self.assertGreater(ok.fetchone()[0], 0)
        finally:
            db.close()


if __name__ == "__main__":
    unittest.main()
