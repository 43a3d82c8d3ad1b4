"""Keyed actors' timers, reminders and direct calls, end to end: the real gateway, real
barista-worker processes hosting the built-in `counter` service (its `ticker` and
`counter` actor types), real HTTP.

- A volatile timer ticks as turns of its key (its state counts the ticks), a one-shot
  timer ticks once, a stopped timer stops, and a timer ends with its activation: when
  the key moves to another worker, its timer is gone while its reminder goes on.
- Reminders fire after a gateway restart (SIGKILL, then a new gateway on the same
  actors store) and after their actor moved (its worker killed): the ticks go on, run
  by the worker that holds the key now.  integration_test_actor_timers_pg runs all
  of it with the actor store on PostgreSQL (BARISTA_TEST_STORE=pg).
- A CALL naming an actor by type and key (no route) runs in the key's turn, on the
  type's on_call; an unknown type is 404.
- /metrics has the per-type turn-latency histogram and /actorz the per-type summary."""

import os
import signal
import tempfile
import unittest

import harness as h

HEARTBEAT_MS = 200


class Cluster:
    """A gateway (restartable, on one port and broker endpoint) with its own actor
    store, and barista-worker processes."""

    def __init__(self, test):
        self.test = test
        self.dir = tempfile.TemporaryDirectory(prefix="barista-actor-timers-")
        test.addCleanup(self.dir.cleanup)
        self.endpoint = "tcp://127.0.0.1:%d" % h.free_port()
        self.port = h.free_port()
        self.gw = None
        self.workers = []
        test.addCleanup(self.close)
        self.start_gateway()

    def start_gateway(self):
        self.gw = h.Gateway("--broker", self.endpoint,
                            "--actors-db", h.store_url(os.path.join(self.dir.name, "actors.db")),
                            "--broker-heartbeat", "%dms" % HEARTBEAT_MS, port=self.port)

    def stop_gateway(self):
        """SIGTERM: the gateway must exit cleanly (sanitizers, leaks)."""
        code = self.gw.stop()
        err = self.gw.stderr()
        self.gw.close()
        self.test.assertEqual(code, 0, "gateway exited %s:\n%s" % (code, err))

    def start_worker(self):
        w = h.Process([h.binary("barista-worker"), "--services", "counter,sleep",
                       "--connect", self.endpoint, "--heartbeat-ms", str(HEARTBEAT_MS)])
        self.workers.append(w)
        return w

    def close(self):
        for w in self.workers:
            w.close()
        if self.gw is not None and self.gw.poll() is None:
            self.stop_gateway()
        elif self.gw is not None:
            self.gw.close()

    def request(self, method, path, timeout=10.0):
        with self.gw.client(timeout=timeout) as c:
            headers = [("Content-Length", "0")] if method in ("POST", "DELETE") else []
            return c.request(method, path, headers)

    def get(self, path):
        return self.request("GET", path)

    def live_workers(self):
        try:
            r = self.get("/actorz")
        except OSError:
            return 0
        return len([w for s in r.json()["services"] for w in s["workers"] if w["live"]])

    def wait_workers(self, n):
        if not h.poll_until(lambda: self.live_workers() >= n, 30.0):
            raise AssertionError("fewer than %d workers joined" % n)

    def ticker(self, key):
        r = self.get("/tickers/" + key)
        self.test.assertEqual(r.status, 200, r.body)
        return r.json()

    def wait_ticker(self, key, cond, what, timeout=30.0):
        """Polls the ticker until cond(state) holds; fails with `what` otherwise."""
        last = {}

        def ok():
            try:
                last["s"] = self.ticker(key)
            except OSError:
                return False
            return cond(last["s"])
        if not h.poll_until(ok, timeout, interval=0.1):
            raise AssertionError("%s: ticker %s is %s" % (what, key, last.get("s")))
        return last["s"]


class ActorTimersTest(unittest.TestCase):
    def test_timers_tick_as_turns_stop_and_end_with_their_activation(self):
        cl = Cluster(self)
        cl.start_worker()
        cl.wait_workers(1)
        r = cl.request("POST", "/tickers/t1/timers/beat?due_ms=50&period_ms=100")
        self.assertEqual(r.status, 200, r.body)
        s = cl.wait_ticker("t1", lambda s: s["timer_ticks"] >= 3, "a periodic timer ticks")
        self.assertEqual(s["last"], "beat")
        self.assertEqual(s["reminder_ticks"], 0)
        # Stopped: at most the tick already at the worker still lands.
        r = cl.request("DELETE", "/tickers/t1/timers/beat")
        self.assertEqual(r.status, 200, r.body)
        stopped = r.json()["timer_ticks"]
        # A one-shot timer of another key ticks once; by the time it did, a stopped
        # timer that still ran would have ticked several times (period 100 ms).
        cl.request("POST", "/tickers/t2/timers/once?due_ms=300")
        cl.wait_ticker("t2", lambda s: s["timer_ticks"] == 1, "a one-shot timer ticks")
        cl.request("POST", "/tickers/t2/timers/late?due_ms=600")
        cl.wait_ticker("t2", lambda s: s["timer_ticks"] == 2, "a second one-shot timer ticks")
        self.assertLessEqual(cl.ticker("t1")["timer_ticks"], stopped + 1,
                             "a stopped timer kept ticking")
        self.assertEqual(cl.ticker("t2")["timer_ticks"], 2, "a one-shot timer ticked twice")

        # A timer ends with its activation: the key moves (its worker is killed); its
        # reminder goes on at the new worker, its timer does not.
        cl.start_worker()
        cl.wait_workers(2)
        r = cl.request("POST", "/tickers/t3/timers/beat?due_ms=50&period_ms=100")
        self.assertEqual(r.status, 200, r.body)
        r = cl.request("POST", "/tickers/t3/reminders/keep?due_ms=50&period_ms=200")
        self.assertEqual(r.status, 200, r.body)
        s = cl.wait_ticker("t3", lambda s: s["timer_ticks"] >= 2 and s["reminder_ticks"] >= 1,
                           "timer and reminder tick")
        victim = [w for w in cl.workers if w.pid == s["last_pid"]]
        self.assertEqual(len(victim), 1, "the last tick ran on neither worker")
        victim[0].kill()
        # Once the reminder ticked at the new worker, the key has moved: from then on
        # the timer's count no longer grows.
        moved = cl.wait_ticker(
            "t3", lambda x: x["last_pid"] != s["last_pid"] and x["last"] == "keep",
            "the reminder ticks at the key's new worker")
        after = cl.wait_ticker("t3", lambda x: x["reminder_ticks"] >= moved["reminder_ticks"] + 3,
                               "the reminder goes on ticking")
        self.assertEqual(after["timer_ticks"], moved["timer_ticks"],
                         "a timer outlived its activation")
        cl.request("DELETE", "/tickers/t3/reminders/keep")

    def test_reminders_fire_after_a_gateway_restart_and_after_their_actor_moved(self):
        cl = Cluster(self)
        cl.start_worker()
        cl.start_worker()
        cl.wait_workers(2)
        r = cl.request("POST", "/tickers/r1/reminders/nightly?due_ms=100&period_ms=200")
        self.assertEqual(r.status, 200, r.body)
        # A one-shot reminder due after the gateway's death.
        r = cl.request("POST", "/tickers/r2/reminders/later?due_ms=2500")
        self.assertEqual(r.status, 200, r.body)
        before = cl.wait_ticker("r1", lambda s: s["reminder_ticks"] >= 2, "a reminder ticks")
        self.assertEqual(before["last"], "nightly")
        self.assertEqual(cl.ticker("r2")["reminder_ticks"], 0)

        # The gateway dies without a word (its claims are left leased: they are tried
        # again when the lease runs out) and a new one starts on the same store.
        cl.gw.kill()
        cl.gw.close()
        cl.start_gateway()
        cl.wait_workers(2)
        s = cl.wait_ticker("r1", lambda s: s["reminder_ticks"] > before["reminder_ticks"],
                           "the reminder fires after the gateway restart", timeout=60.0)
        cl.wait_ticker("r2", lambda s: s["reminder_ticks"] == 1,
                       "the one-shot reminder fires after the gateway restart", timeout=60.0)

        # The worker that holds r1 dies: the key moves, the reminder fires there.
        holder = [w for w in cl.workers if w.pid == s["last_pid"]]
        self.assertEqual(len(holder), 1)
        holder[0].kill()
        moved = cl.wait_ticker("r1", lambda x: x["last_pid"] != s["last_pid"] and
                               x["reminder_ticks"] > s["reminder_ticks"],
                               "the reminder fires where its actor moved", timeout=60.0)
        self.assertEqual(moved["last"], "nightly")
        # A graceful restart too (SIGTERM: the gateway must exit 0).
        cl.stop_gateway()
        cl.start_gateway()
        cl.wait_workers(1)
        cl.wait_ticker("r1", lambda x: x["reminder_ticks"] > moved["reminder_ticks"],
                       "the reminder fires after a graceful restart", timeout=60.0)
        # Unset: gone for good (and a one-shot one ran only once).
        r = cl.request("DELETE", "/tickers/r1/reminders/nightly")
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(cl.ticker("r2")["reminder_ticks"], 1)
        m = cl.get("/metrics").body.decode()
        self.assertIn("barista_actors_reminder_ticks_total", m)

    def test_a_call_naming_type_and_key_runs_in_the_actors_turn(self):
        cl = Cluster(self)
        cl.start_worker()
        cl.wait_workers(1)
        for i in (1, 2, 3):
            r = cl.request("POST", "/counter-calls/c1")
            self.assertEqual(r.status, 200, r.body)
            self.assertEqual(r.json(), {"id": "c1", "count": i})
        # The same actor as its routes see it.
        self.assertEqual(cl.get("/counters/c1").json()["count"], 3)
        r = cl.request("POST", "/counters/c1/increment")
        self.assertEqual(r.json()["count"], 4)
        # An actor type nobody serves: 404 with a detail.
        r = cl.request("POST", "/counter-calls/c1?type=nope")
        self.assertEqual(r.status, 404, r.body)
        self.assertIn("nope", r.json()["detail"])
        # A type without on_call: 404, and its state is untouched.
        r = cl.request("POST", "/counter-calls/x?type=ticker")
        self.assertEqual(r.status, 404, r.body)
        self.assertIn("on_call", r.json()["detail"])

        # Observability: the per-type histogram and the per-type placement summary.
        m = cl.get("/metrics").body.decode()
        self.assertIn('barista_actor_type_turn_seconds_bucket{type="counter",le="+Inf"}', m)
        self.assertIn('barista_actor_type_turn_seconds_count{type="counter"}', m)
        self.assertIn('barista_actor_type_inflight{type="counter"}', m)
        types = {t["type"]: t for t in cl.get("/actorz").json()["types"]}
        self.assertIn("counter", types)
        self.assertGreaterEqual(types["counter"]["turns"], 5)
        self.assertEqual(types["counter"]["active"], 1)


if __name__ == "__main__":
    unittest.main()
