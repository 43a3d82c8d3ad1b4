"""Workers that serve several brokers (docs/workers.md, "Several brokers").

Two gateways, each with its own broker port, and workers registered with both: both
gateways serve, a kill -9 of one costs only its own in-flight requests while the other
keeps serving, and the worker registers again when the gateway comes back.  A CPU
worker's one slot is shared between the brokers: it never runs two requests at once
(the test-only `peak` service counts how many of its requests run together).
"""

import signal
import socket
import threading
import unittest

from harness import (Gateway, HttpClient, binary, free_port, poll_until, start_process)

HB_MS = "200"


def fetch(port, path, timeout=30):
    """GET path on a new connection: the Response, or None when the connection failed."""
    try:
        with HttpClient(port, timeout=timeout) as c:
            return c.request("GET", path)
    except OSError:
        return None


def get(port, path, timeout=30):
    """GET path: (status, json or None, the answering worker), or (None, None, None)
    when the connection failed."""
    r = fetch(port, path, timeout)
    if r is None:
        return None, None, None
    try:
        body = r.json()
    except ValueError:
        body = None
    return r.status, body, r.header("x-barista-worker")


def inflight(port):
    """The gateway's barista_broker_inflight gauge (requests at workers now), or 0."""
    r = fetch(port, "/metrics")
    for line in (r.body.decode() if r else "").splitlines():
        if line.startswith("barista_broker_inflight "):
            return float(line.split()[1])
    return 0


def consecutive_ports():
    """A free loopback port whose next one is free too (process i binds base + i)."""
    for _ in range(100):
        base = free_port()
        if base >= 65535:
            continue
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", base + 1))
            return base
        except OSError:
            continue
    raise RuntimeError("no two consecutive free ports")


def endpoints(*ports):
    return ",".join("tcp://127.0.0.1:%d" % p for p in ports)


class MultiBrokerTest(unittest.TestCase):
    def gateway(self, broker_port, http_port=None):
        gw = Gateway("--broker", "tcp://127.0.0.1:%d" % broker_port, "--worker-header",
                     "--broker-heartbeat", HB_MS + "ms", port=http_port)
        self.addCleanup(gw.close)
        return gw

    def worker(self, connect, services, *extra, program="barista-worker"):
        return start_process(self, [binary(program), "--services", services, "--connect",
                                    connect, "--heartbeat-ms", HB_MS, *extra])

    def serves(self, gw, path, timeout=60):
        return poll_until(lambda: get(gw.port, path)[0] == 200, timeout, interval=0.1)

    def test_both_gateways_serve_and_a_killed_one_costs_only_its_requests(self):
        b1, b2 = free_port(), free_port()
        gw1, gw2 = self.gateway(b1), self.gateway(b2)
        w = self.worker(endpoints(b1, b2), "hello,sleep")
        self.assertTrue(self.serves(gw1, "/hello"), w.stderr())
        self.assertTrue(self.serves(gw2, "/hello"), w.stderr())

        # Load on both: sleeps in flight at each gateway when gw1 dies.
        results = {1: [], 2: []}
        lock = threading.Lock()

        def call(which, port):
            status, _, _ = get(port, "/sleep?ms=1500")
            with lock:
                results[which].append(status)

        threads = [threading.Thread(target=call, args=(1, gw1.port)) for _ in range(6)]
        threads += [threading.Thread(target=call, args=(2, gw2.port)) for _ in range(6)]
        for t in threads:
            t.start()
        # Kill gw1 once its sleeps are at the worker.
        self.assertTrue(poll_until(lambda: inflight(gw1.port) >= 6, 30, interval=0.02))
        self.assertTrue(poll_until(lambda: inflight(gw2.port) >= 6, 30, interval=0.02))
        gw1.proc.send_signal(signal.SIGKILL)
        gw1.wait()
        for t in threads:
            t.join(60)
        # Every request at the surviving gateway was answered; gw1's were its own loss.
        self.assertEqual(results[2], [200] * 6, w.stderr())
        self.assertEqual(len(results[1]), 6)
        for _ in range(20):
            self.assertEqual(get(gw2.port, "/hello")[0], 200)

        # gw1 comes back on the same ports: the worker registers with it again.
        gw1b = self.gateway(b1, http_port=gw1.port)
        self.assertTrue(self.serves(gw1b, "/hello"), w.stderr())
        self.assertEqual(get(gw2.port, "/hello")[0], 200)
        self.assertGreaterEqual(
            w.stderr().count("at tcp://127.0.0.1:%d" % b1), 2,
            "registered with the first gateway twice:\n" + w.stderr())
        self.assertIsNone(w.poll(), "the worker kept running")

    def test_a_cpu_worker_never_runs_two_requests_at_once(self):
        b1, b2 = free_port(), free_port()
        gw1, gw2 = self.gateway(b1), self.gateway(b2)
        # Each worker prefers a different gateway for its one slot.
        wa = self.worker(endpoints(b1, b2), "peak", "--prefer-first-broker",
                         program="barista-worker-test")
        wb = self.worker(endpoints(b2, b1), "peak", "--prefer-first-broker",
                         program="barista-worker-test")
        self.assertTrue(self.serves(gw1, "/peak?ms=0"), wa.stderr())
        self.assertTrue(self.serves(gw2, "/peak?ms=0"), wb.stderr())

        replies = []
        lock = threading.Lock()

        def call(port):
            status, body, worker = get(port, "/peak?ms=50")
            with lock:
                replies.append((status, body, worker))

        def burst(ports):
            threads = [threading.Thread(target=call, args=(p,)) for p in ports]
            for t in threads:
                t.start()
            for t in threads:
                t.join(120)

        # More at once than there are slots: the brokers queue what has no credit.
        burst([gw1.port, gw2.port] * 6)
        self.assertEqual(len(replies), 12)
        for status, body, _ in replies:
            self.assertEqual(status, 200, (status, body))
            self.assertEqual(body["peak"], 1, "two requests ran at once in one worker")

        # gw1 dies: the slot of the worker that preferred it moves to gw2, and still
        # only one request runs at a time in each worker.
        gw1.proc.send_signal(signal.SIGKILL)
        gw1.wait()
        # wa moves its slot once it has found gw1 silent (liveness, a few heartbeats):
        # a burst sent before that is all served by wb.
        lost = "broker tcp://127.0.0.1:%d silent" % b1
        self.assertTrue(poll_until(lambda: lost in wa.stderr(), 30),
                        "the worker found the killed gateway gone:\n" + wa.stderr())
        replies.clear()
        burst([gw2.port] * 12)
        self.assertEqual([s for s, _, _ in replies], [200] * 12, wa.stderr())
        for _, body, _ in replies:
            self.assertEqual(body["peak"], 1)
        # Both workers served gw2's burst: the slot that was gw1's moved there.
        self.assertEqual(len({w for _, _, w in replies}), 2,
                         "the lost gateway's CPU slot moved to gw2:\n" + wa.stderr())

    def test_a_cpu_slot_goes_back_to_its_broker_when_that_returns(self):
        b1, b2 = free_port(), free_port()
        gw1, gw2 = self.gateway(b1), self.gateway(b2)
        # wa's one slot belongs at gw1, wb's at gw2.
        wa = self.worker(endpoints(b1, b2), "peak", "--prefer-first-broker", "--id", "wa",
                         program="barista-worker-test")
        wb = self.worker(endpoints(b2, b1), "peak", "--prefer-first-broker", "--id", "wb",
                         program="barista-worker-test")
        self.assertTrue(self.serves(gw1, "/peak?ms=0"), wa.stderr())
        self.assertTrue(self.serves(gw2, "/peak?ms=0"), wb.stderr())

        # gw1 dies: wa's slot moves to gw2 once wa has found gw1 silent.
        gw1.proc.send_signal(signal.SIGKILL)
        gw1.wait()
        lost = "broker tcp://127.0.0.1:%d silent" % b1
        self.assertTrue(poll_until(lambda: lost in wa.stderr(), 30), wa.stderr())

        # gw1 returns: wa registers there and hands its slot back from gw2 once it is
        # free; without that gw1 would have no CPU capacity at all while gw2 lives.
        gw1b = self.gateway(b1, http_port=gw1.port)
        self.assertTrue(self.serves(gw1b, "/peak?ms=0"), wa.stderr())
        self.assertIn("more than its share now", wa.stderr())

        replies = []
        lock = threading.Lock()

        def call(port):
            status, body, worker = get(port, "/peak?ms=50")
            with lock:
                replies.append((port, status, body, worker))

        threads = [threading.Thread(target=call, args=(p,)) for p in [gw1b.port, gw2.port] * 6]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        self.assertEqual(len(replies), 12)
        for port, status, body, worker in replies:
            self.assertEqual(status, 200, (status, body, wa.stderr()))
            self.assertEqual(body["peak"], 1, "two requests ran at once in one worker")
            # Each gateway is served by the worker whose slot belongs there.
            self.assertEqual(worker, "wa" if port == gw1b.port else "wb")

    def test_local_workers_of_every_process_register_with_every_process(self):
        base = consecutive_ports()
        gw = Gateway("--local", "--processes", "2", "--broker", "tcp://127.0.0.1:%d" % base,
                     "--io-workers", "1", "--cpu-workers", "1", "--io-services", "hello",
                     "--cpu-services", "hash")
        self.addCleanup(gw.close)

        def workers_everywhere():
            # Whichever process answers, it has both processes' workers.
            for _ in range(10):
                r = fetch(gw.port, "/metrics")
                text = r.body.decode() if r else ""
                if ('barista_broker_workers{kind="io"} 2' not in text or
                        'barista_broker_workers{kind="cpu"} 2' not in text):
                    return False
            return True

        self.assertTrue(poll_until(workers_everywhere, 60, interval=0.2), gw.stderr())
        # Each CPU worker's one slot prefers its own process: both processes serve hash.
        for _ in range(20):
            self.assertEqual(get(gw.port, "/hash?n=1&data=x")[0], 200)
        self.assertEqual(gw.stop(), 0, gw.stderr())


if __name__ == "__main__":
    unittest.main()
