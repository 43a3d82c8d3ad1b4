"""The broker's defences (issue 13), end to end: the real gateway, real workers, and
fake workers (zmtp_peer.py) that misbehave on purpose - a rogue that shadows another
service's route, a worker that announces a huge capacity, a black hole that takes
requests and never answers or ignores CANCEL, a worker that registers again
mid-request.  Also the safe defaults: a broker reachable from the network without
CURVE refuses to start, and --local binds a private ipc:// socket."""

import os
import queue
import re
import socket
import stat
import threading
import time
import unittest

import harness as h
from test_broker import HEARTBEAT_MS, WAIT, BrokerTestCase
from zmtp_peer import (CANCEL, GOODBYE, HEARTBEAT, REPLY, REQUEST, WELCOME, ZmtpDealer, pack,
                       ready_msg)


class FakeWorker:
    """A fake worker on the broker port: says READY, heartbeats every HEARTBEAT_MS from
    a thread, and queues every message it receives for expect()."""

    def __init__(self, port, worker_id, services, capacity=4, version=1):
        self.z = ZmtpDealer("127.0.0.1", port)
        self.version = version
        self.z.sock.settimeout(None)  # the reader blocks; close() wakes it
        self.lock = threading.Lock()
        self.inbox = queue.Queue()
        self.stop = threading.Event()
        self.worker_id = worker_id
        self.services = services
        self.capacity = capacity
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._beat, daemon=True).start()
        self.ready()

    def ready(self):
        self.send(ready_msg(self.worker_id, self.services, capacity=self.capacity,
                            heartbeat_ms=HEARTBEAT_MS, version=self.version))

    def send(self, body):
        with self.lock:
            self.z.send(body)

    def reply(self, rid, status=200, body=b"ok"):
        self.send(pack([1, REPLY, rid, status, [], "text/plain", body, []]))

    def _read(self):
        while not self.stop.is_set():
            try:
                self.inbox.put(self.z.recv_msg())
            except (OSError, ValueError):
                self.inbox.put(None)
                return

    def _beat(self):
        while not self.stop.wait(HEARTBEAT_MS / 2000.0):
            try:
                self.send(pack([1, HEARTBEAT]))
            except OSError:
                return

    def expect(self, wanted, timeout=WAIT):
        """The next message of type `wanted` (others are skipped, HEARTBEATs dropped)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no message of type %d within %.0fs" % (wanted, timeout))
            try:
                m = self.inbox.get(timeout=left)
            except queue.Empty:
                continue
            if m is None:
                raise AssertionError("the broker closed the connection")
            if m[1] == wanted:
                return m

    def pending(self, wanted):
        """Messages of type `wanted` received and not yet taken, taken now."""
        out, keep = [], []
        while True:
            try:
                m = self.inbox.get_nowait()
            except queue.Empty:
                break
            (out if m is not None and m[1] == wanted else keep).append(m)
        for m in keep:
            self.inbox.put(m)
        return out

    def close(self):
        self.stop.set()
        try:
            self.z.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.z.close()


class SafetyTestCase(BrokerTestCase):
    def fake(self, worker_id, services, capacity=4, version=1):
        f = FakeWorker(self.broker_port, worker_id, services, capacity, version)
        self.addCleanup(f.close)
        f.expect(WELCOME)
        return f

    def requests(self, n, method, path, body=b"", headers=None, timeout=WAIT):
        """n concurrent requests in the background; the returned join() gives their
        responses in order."""
        joins = [self.in_background(lambda: self.request(method, path, headers, body,
                                                          timeout=timeout))
                 for _ in range(n)]
        return lambda: [j() for j in joins]


class SafeDefaults(unittest.TestCase):
    def test_a_network_broker_without_curve_refuses_to_start(self):
        port = h.free_port()
        endpoint = "tcp://0.0.0.0:%d" % h.free_port()
        r = h.run([h.binary("barista-gateway"), "--listen", "127.0.0.1:%d" % port,
                   "--broker", endpoint])
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertEqual(r.stderr.count("\n"), 1, r.stderr)
        self.assertIn("reachable from other hosts", r.stderr)
        self.assertIn("--insecure-broker", r.stderr)
        # Told in as many words, it starts, and says what that means.
        gw = h.start_gateway(self, "--broker", endpoint, "--insecure-broker")
        self.assertIn("admits ANY process", gw.stderr())

    def test_local_mode_binds_a_private_ipc_socket(self):
        gw = h.start_gateway(self, "--local", "--io-workers", "1", "--cpu-workers", "0",
                             "--io-services", "hello", env={"BARISTA_BROKER": "auto"})

        def hello():
            with gw.client() as c:
                return c.request("GET", "/hello").status == 200

        self.assertTrue(h.poll_until(hello, WAIT), gw.stderr())
        m = re.search(r"listening for workers on ipc://(\S+)/broker", gw.stderr())
        self.assertIsNotNone(m, gw.stderr())
        directory = m.group(1)
        mode = os.stat(directory).st_mode
        self.assertEqual(stat.S_IMODE(mode), 0o700)
        self.assertEqual(os.stat(directory).st_uid, os.getuid())
        self.assertEqual(gw.stop(), 0, gw.stderr())
        self.assertFalse(os.path.exists(directory))


class CreditCap(SafetyTestCase):
    def test_a_huge_announced_capacity_is_capped(self):
        self.start("--max-worker-credit", "2")
        f = self.fake("greedy:1", [("greedy", [("GET", "/greedy")])], capacity=1000000)
        self.wait_until(lambda: "capacity 1000000: capped at 2" in self.gw.stderr(),
                        "the cap in the log")
        join = self.requests(3, "GET", "/greedy")
        first = f.expect(REQUEST)[2]
        second = f.expect(REQUEST)[2]
        # The third waits for credit: it comes only once one is answered.
        time.sleep(0.3)
        self.assertEqual(f.pending(REQUEST), [])
        f.reply(first)
        third = f.expect(REQUEST)[2]
        f.reply(second)
        f.reply(third)
        self.assertEqual([r.status for r in join()], [200, 200, 200])


class ProtocolVersions(SafetyTestCase):
    """PROTOCOL.md 14: the broker speaks versions 1 and 2 and answers each worker in the
    version of its READY, so version-1 workers keep working unchanged."""

    def test_each_worker_is_answered_in_the_version_of_its_ready(self):
        self.start()
        old = self.fake("old:1", [("old", [("GET", "/old")])], version=1)
        new = self.fake("new:1", [("new", [("GET", "/new")])], version=2)
        for f, path, version in ((old, "/old", 1), (new, "/new", 2)):
            join = self.requests(1, "GET", path)
            req = f.expect(REQUEST)
            self.assertEqual(req[0], version, path)
            f.reply(req[2], body=b"v%d" % version)
            self.assertEqual([(r.status, r.body) for r in join()], [(200, b"v%d" % version)])

    def test_a_ready_in_an_unknown_version_is_refused_in_version_1(self):
        self.start()
        f = FakeWorker(self.broker_port, "future:1", [("future", [("GET", "/future")])],
                       version=4)
        self.addCleanup(f.close)
        bye = f.expect(GOODBYE)
        self.assertEqual(bye[0], 1)
        self.assertTrue(bye[2].startswith("refused: undecodable READY"), bye[2])


class RouteShadowing(SafetyTestCase):
    def test_a_route_overlapping_another_services_is_refused(self):
        self.start(workers=["hello"])
        f = FakeWorker(self.broker_port, "rogue:1", [("rogue", [("GET", "/hello/world")])])
        self.addCleanup(f.close)
        reason = f.expect(GOODBYE)[2]
        self.assertTrue(reason.startswith("refused: "), reason)
        self.assertIn("route GET /hello/world overlaps GET /hello/{name} of service 'hello'",
                      reason)
        self.assertIn("READY from rogue:1 refused", self.gw.stderr())
        r = self.get("/hello/world")
        self.assertEqual((r.status, r.json()), (200, {"message": "hello world"}))
        self.assertEqual(self.get("/readyz").status, 200)

    def test_a_gone_service_is_retired_and_readyz_recovers(self):
        self.start("--service-grace", "300ms", workers=["hello"])
        f = self.fake("ghost:1", [("ghost", [("GET", "/ghost")])])
        self.wait_ready()
        f.close()  # silent from now on: dead after its liveness
        self.wait_removed(1)
        # Ready means every current service has a live worker: once the ghost's grace
        # is over it is no current service any more.
        self.wait_until(lambda: "service ghost retired" in self.gw.stderr(), "the retirement")
        self.assertEqual(self.get("/readyz").status, 200)
        self.assertEqual(self.get("/ghost").status, 404)
        self.assertEqual(self.get("/hello").status, 200)
        # The route is free again.
        g = self.fake("ghost:2", [("other", [("GET", "/ghost")])])
        join = self.in_background(lambda: self.get("/ghost"))
        g.reply(g.expect(REQUEST)[2], body=b"back")
        self.assertEqual(join().body, b"back")


class BlackHole(SafetyTestCase):
    def hole(self, capacity=1000000, route=("GET", "/hole")):
        return self.fake("hole:1", [("hole", [route])], capacity=capacity)

    def test_timed_out_requests_free_their_slots_and_cancel(self):
        self.start("--max-pending", "6", "--default-timeout", "300ms", workers=["hello"])
        f = self.hole()
        statuses = [r.status for r in self.requests(6, "GET", "/hole")()]
        self.assertEqual(statuses, [504] * 6)
        # Each got its CANCEL; the table is free for every service again.
        ids = {m[2] for m in [f.expect(REQUEST) for _ in range(6)]}
        cancelled = {f.expect(CANCEL)[2] for _ in range(6)}
        self.assertEqual(ids, cancelled)
        r = self.get("/hello")
        self.assertEqual((r.status, r.json()), (200, {"message": "hello"}))
        # A late answer is stale; the worker's credit comes back and it serves again.
        for rid in ids:
            f.reply(rid, 499, b"")
        join = self.in_background(lambda: self.get("/hole"))
        f.reply(f.expect(REQUEST)[2], 200, b"late but fine")
        self.assertEqual(join().body, b"late but fine")

    def test_one_service_cannot_take_every_pending_slot(self):
        self.start("--service-max-pending", "4", "--default-timeout", "3s", workers=["hello"])
        f = self.hole()
        join = self.requests(6, "GET", "/hole")
        for _ in range(4):
            f.expect(REQUEST)
        # While the hole holds all it may, other services are served.
        r = self.get("/hello")
        self.assertEqual((r.status, r.json()), (200, {"message": "hello"}))
        results = join()
        refused = [r for r in results if r.status == 503]
        self.assertEqual(len(refused), 2)
        self.assertEqual(refused[0].json(),
                         {"detail": "Service 'hole' is overloaded: 4 requests are pending "
                                    "already"})
        self.assertEqual(sorted(r.status for r in results), [503, 503, 504, 504, 504, 504])

    def test_a_worker_ignoring_cancel_is_sent_nothing_until_it_answers(self):
        self.start("--default-timeout", "200ms", "--cancel-grace", "300ms")
        f = self.hole()
        self.assertEqual(self.get("/hole").status, 504)
        rid = f.expect(REQUEST)[2]
        f.expect(CANCEL)
        self.wait_until(lambda: "worker hole:1 is unhealthy" in self.gw.stderr(),
                        "the unhealthy mark")
        # Its service answers at once instead of feeding it more.
        r = self.get("/hole")
        self.assertEqual((r.status, r.json()),
                         (503, {"detail": "Service 'hole' is unavailable: its workers do not "
                                          "answer"}))
        self.assertEqual(self.get("/readyz").status, 503)
        self.assertEqual(f.pending(REQUEST), [])
        # Answering the CANCEL makes it healthy again.
        f.reply(rid, 499, b"")
        self.wait_until(lambda: "answered every CANCEL" in self.gw.stderr(), "the recovery")
        join = self.in_background(lambda: self.get("/hole"))
        f.reply(f.expect(REQUEST)[2])
        self.assertEqual(join().status, 200)

    def test_bytes_in_flight_at_a_worker_are_bounded(self):
        self.start("--max-worker-bytes", "64k", "--max-body-bytes", "1m")
        f = self.hole(route=("POST", "/hole", 1))
        body = b"x" * (40 * 1024)
        join = self.requests(3, "POST", "/hole", body, [("Content-Type", "text/plain")])
        first = f.expect(REQUEST)
        second = f.expect(REQUEST)
        self.assertEqual(len(first[11]), len(body))
        # 80 KiB are in flight, past 64 KiB: the third waits although credit is plenty.
        time.sleep(0.3)
        self.assertEqual(f.pending(REQUEST), [])
        f.reply(first[2])
        third = f.expect(REQUEST)
        f.reply(second[2])
        f.reply(third[2])
        self.assertEqual([r.status for r in join()], [200, 200, 200])


class ReRegistration(SafetyTestCase):
    def test_a_get_is_retried_when_its_worker_registers_again(self):
        self.start()
        f = self.fake("again:1", [("again", [("GET", "/again")])])
        join = self.in_background(lambda: self.get("/again"))
        old = f.expect(REQUEST)[2]
        # The worker restarts its state on the same connection: READY again.
        f.ready()
        f.expect(WELCOME)
        retried = f.expect(REQUEST)[2]
        self.assertEqual(retried, old)  # the same request, sent again after WELCOME
        f.reply(retried, 200, b"second time")
        r = join()
        self.assertEqual((r.status, r.body), (200, b"second time"))
        self.assertIn("registered again", self.gw.stderr())


if __name__ == "__main__":
    unittest.main()
