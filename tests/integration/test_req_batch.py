"""REQUEST and REPLY batched per loop turn (PROTOCOL.md 5.16, feature 8 REQ_BATCH).

With hand-written workers (zmtp_peer), deterministically: a worker with capacity 1
holds one request while the gateway queues the rest; its CREDIT(n) makes the gateway
dispatch n queued requests in one loop turn, which a worker that announced bits 1 and 8
receives as one WS_BATCH and may answer with one WS_BATCH of REPLYs; a worker that did
not announce bit 8 gets them one frame each, as before.  A worker that dies with a batch
in flight has its requests retried on another worker, or answered 502 when there is
none.

With real barista-worker processes: many concurrent requests through one worker travel
batched both ways (the /metrics counters prove frames of several messages were sent and
received), a worker started with BARISTA_REQ_BATCH=0 is served message by message, and
kill -9 of a worker with batched requests in flight answers every client."""

import struct
import threading
import unittest

import harness as h
from test_broker import BrokerTestCase
from test_ws_batch import split
from zmtp_peer import CREDIT, HEARTBEAT, REPLY, REQUEST, WELCOME, ZmtpDealer, pack

WS_BATCH = 35
FEATURE_WS_BATCH, FEATURE_REQ_BATCH = 1, 8
HEARTBEAT_MS = 200
WAIT = 20.0
QUEUED = 7


def route(path):
    return ["GET", path, 0, 0, "", []]


def ready(worker_id, path, features, capacity):
    fields = [2, 1, worker_id, 0, capacity, HEARTBEAT_MS, [["raw", 0, [route(path)]]], []]
    if features:
        fields += [[], [], features]
    return pack(fields)


def reply(rid):
    return pack([2, REPLY, rid, 200, [], "text/plain", b"r%d" % rid, []])


def batch(inner):
    """A WS_BATCH frame written as the gateway writes it: bin 32 whatever the size."""
    return b"\x93\x02\x23\xc6" + struct.pack(">I", len(inner)) + inner


class Case(BrokerTestCase):
    """BrokerTestCase's helpers (get, wait_until, in_background) with a gateway
    started by each class as it needs."""

    def start_gateway(self, *args):
        self.broker_port = h.free_port()
        self.endpoint = "tcp://127.0.0.1:%d" % self.broker_port
        self.gw = h.start_gateway(self, "--broker", self.endpoint, *args)

    def metric(self, name):
        for line in self.get("/metrics").body.decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return 0.0


class HandWrittenWorkers(Case):
    def setUp(self):
        # A short heartbeat: a silent worker is found dead quickly.
        self.start_gateway("--broker-heartbeat", "%dms" % HEARTBEAT_MS)

    def register(self, name, path, features, capacity=1):
        z = ZmtpDealer("127.0.0.1", self.broker_port, timeout=WAIT)
        self.addCleanup(z.close)
        z.send(ready(name, path, features, capacity))
        # WELCOME follows the registration, routes included: no request is needed (or
        # wanted: it would take the worker's one credit) to see the route there.
        welcome = z.recv_type(WELCOME)
        return z, welcome

    def next_msg(self, z):
        """The next message that is not a HEARTBEAT."""
        while True:
            m = z.recv_msg()
            if m[1] != HEARTBEAT:
                return m

    def queue_behind_one(self, z, path):
        """Sends 1 + QUEUED requests: the worker (capacity 1) gets the first, the gateway
        queues the rest.  Returns the joins and the first REQUEST."""
        joins = [self.in_background(lambda: self.get(path, timeout=WAIT))
                 for _ in range(1 + QUEUED)]
        first = self.next_msg(z)
        self.assertEqual(first[1], REQUEST)
        self.wait_until(lambda: self.metric("barista_broker_queued") == QUEUED,
                        "%d queued requests" % QUEUED)
        return joins, first

    def test_worker_announcing_req_batch_gets_a_turns_requests_in_one_frame(self):
        z, welcome = self.register("rb", "/rb", FEATURE_WS_BATCH | FEATURE_REQ_BATCH)
        self.assertEqual(welcome[4:], [FEATURE_WS_BATCH | FEATURE_REQ_BATCH])
        joins, first = self.queue_behind_one(z, "/rb")
        # The credit lets the gateway dispatch every queued request in one turn.
        z.send(pack([2, CREDIT, QUEUED]))
        m = self.next_msg(z)
        self.assertEqual(m[1], WS_BATCH, m)
        inner = split(m[2])
        self.assertEqual([x[1] for x in inner], [REQUEST] * QUEUED)
        self.assertEqual({x[6] for x in inner}, {"/rb"})
        ids = [first[2]] + [x[2] for x in inner]
        self.assertEqual(len(set(ids)), 1 + QUEUED)
        # Every answer in one WS_BATCH: each client gets its own.
        z.send(batch(b"".join(reply(rid) for rid in ids)))
        bodies = sorted(j().body for j in joins)
        self.assertEqual(bodies, sorted(b"r%d" % rid for rid in ids))
        self.assertGreaterEqual(self.metric("barista_broker_batches_out_total"), 1)
        self.assertGreaterEqual(self.metric("barista_broker_batched_out_total"), QUEUED)
        self.assertGreaterEqual(self.metric("barista_broker_batches_in_total"), 1)
        self.assertGreaterEqual(self.metric("barista_broker_batched_in_total"), 1 + QUEUED)
        self.assertEqual(self.metric("barista_broker_replies_total"), 1 + QUEUED)

    def test_worker_without_the_feature_gets_one_request_per_frame(self):
        z, welcome = self.register("plain", "/plain", FEATURE_WS_BATCH)
        self.assertEqual(welcome[4:], [FEATURE_WS_BATCH])
        joins, first = self.queue_behind_one(z, "/plain")
        # A batched REPLY from a worker that did not agree is refused, not delivered.
        z.send(batch(reply(first[2]) + reply(first[2])))
        self.wait_until(lambda: self.metric("barista_broker_bad_messages_total") >= 1,
                        "the batch refused")
        self.assertEqual(self.metric("barista_broker_replies_total"), 0)
        z.send(pack([2, CREDIT, QUEUED]))
        got = [self.next_msg(z) for _ in range(QUEUED)]
        self.assertEqual([m[1] for m in got], [REQUEST] * QUEUED)
        for rid in [first[2]] + [m[2] for m in got]:
            z.send(reply(rid))
        self.assertEqual([j().status for j in joins], [200] * (1 + QUEUED))
        self.assertEqual(self.metric("barista_broker_batches_out_total"), 0)

    def test_a_batch_in_flight_at_a_dead_worker_is_retried_on_another(self):
        z1, _ = self.register("dies", "/retry", FEATURE_WS_BATCH | FEATURE_REQ_BATCH)
        joins, first = self.queue_behind_one(z1, "/retry")
        z1.send(pack([2, CREDIT, QUEUED]))
        self.assertEqual(self.next_msg(z1)[1], WS_BATCH)
        z2, _ = self.register("lives", "/retry", FEATURE_WS_BATCH | FEATURE_REQ_BATCH,
                              capacity=64)
        z1.close()  # silent from now on: the gateway's liveness check removes it
        seen = []
        while len(seen) < 1 + QUEUED:
            m = self.next_msg(z2)
            if m[1] == WS_BATCH:
                seen += split(m[2])
            elif m[1] == REQUEST:
                seen.append(m)
        self.assertEqual([m[1] for m in seen], [REQUEST] * (1 + QUEUED))
        z2.send(batch(b"".join(reply(m[2]) for m in seen)))
        self.assertEqual([j().status for j in joins], [200] * (1 + QUEUED))
        self.assertGreaterEqual(self.metric("barista_broker_retries_total"), 1 + QUEUED)

    def test_a_batch_in_flight_at_a_dead_worker_is_answered_502_without_another(self):
        z, _ = self.register("alone", "/alone", FEATURE_WS_BATCH | FEATURE_REQ_BATCH)
        joins, _ = self.queue_behind_one(z, "/alone")
        z.send(pack([2, CREDIT, QUEUED]))
        self.assertEqual(self.next_msg(z)[1], WS_BATCH)
        z.close()
        for j in joins:
            r = j()
            self.assertEqual(r.status, 502, r.body)
            self.assertEqual(r.json(),
                             {"detail": "Bad Gateway: worker died while handling the request"})


class RealWorkers(Case):
    CLIENTS = 32
    EACH = 20

    def setUp(self):
        # Default heartbeats: the load of these tests on a shared 2-core machine under
        # ASan must not make a live worker look silent.
        self.start_gateway()

    def worker(self, services, env=None):
        return h.start_process(self, [h.binary("barista-worker"), "--services", services,
                                      "--connect", self.endpoint], env=env)

    def wait_ready(self, joined):
        self.wait_until(lambda: self.gw.stderr().count(" joined:") >= joined, "workers")
        self.wait_until(lambda: self.get("/readyz").status == 200, "/readyz 200")

    def load(self, path):
        """CLIENTS connections, EACH requests on each, all at once; the statuses."""
        statuses = []
        lock = threading.Lock()

        def client():
            with self.gw.client(timeout=WAIT) as c:
                for _ in range(self.EACH):
                    r = c.request("GET", path)
                    with lock:
                        statuses.append(r.status)

        threads = [threading.Thread(target=client, daemon=True) for _ in range(self.CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(WAIT + h.IO_TIMEOUT)
        return statuses

    def test_many_concurrent_requests_through_one_worker_travel_batched(self):
        self.worker("hello")
        self.wait_ready(1)

        def batched_both_ways():
            self.assertEqual(self.load("/hello"), [200] * (self.CLIENTS * self.EACH))
            return (self.metric("barista_broker_batches_out_total") > 0 and
                    self.metric("barista_broker_batches_in_total") > 0)

        # Concurrent clients put several requests in one of the gateway's loop turns
        # almost always; rounds are repeated until it happened both ways.
        self.assertTrue(any(batched_both_ways() for _ in range(20)),
                        "no frame of several requests or replies in 20 rounds")
        self.assertGreater(self.metric("barista_broker_batched_out_total"),
                           self.metric("barista_broker_batches_out_total"))

    def test_a_worker_started_without_the_feature_is_served_one_message_per_frame(self):
        self.worker("hello", env={"BARISTA_REQ_BATCH": "0"})
        self.wait_ready(1)
        self.assertEqual(self.load("/hello"), [200] * (self.CLIENTS * self.EACH))
        self.assertEqual(self.metric("barista_broker_batches_out_total"), 0)
        self.assertEqual(self.metric("barista_broker_batches_in_total"), 0)

    def test_kill9_with_requests_in_flight_answers_every_client(self):
        w1 = self.worker("sleep")
        self.worker("sleep")
        self.wait_ready(2)
        n = 24
        joins = [self.in_background(lambda: self.get("/sleep?ms=1500", timeout=WAIT))
                 for _ in range(n)]
        self.wait_until(lambda: self.metric("barista_broker_inflight") == n, "%d in flight" % n)
        w1.kill()
        for j in joins:
            r = j()
            self.assertEqual((r.status, r.json()), (200, {"slept_ms": 1500}))
        self.assertIn("removed", self.gw.stderr())


if __name__ == "__main__":
    unittest.main()
