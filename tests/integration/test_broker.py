"""The broker end to end: the real gateway, real barista-worker processes, real
sockets.  Covers the built-in routes' exact answers, errors, late joiners, dead
workers (502 and retries), deadlines (504), saturation (503), rolling restarts,
rogue peers on the broker port and /readyz.  A bare ZMTP peer (zmtp_peer.py) plays
fake and rogue workers where exact protocol bytes matter."""

import hashlib
import json
import signal
import socket
import threading
import time
import unittest

import harness as h
from zmtp_peer import (CALL, GOODBYE, HEARTBEAT, REPLY, REQUEST, WELCOME, ZmtpDealer, pack,
                       ready_msg, unpack)

# Fast heartbeats so that a dead worker is noticed in well under a second (3 x 200 ms).
HEARTBEAT_MS = 200
# Bound on every wait for a condition; conditions are normally met in milliseconds.
WAIT = 20.0


class BrokerTestCase(unittest.TestCase):
    def start(self, *gw_args, workers=()):
        """Starts a gateway (broker on a free port) and one worker per entry of
        `workers` (a services list), then waits until the gateway is ready."""
        self.broker_port = h.free_port()
        self.endpoint = "tcp://127.0.0.1:%d" % self.broker_port
        self.gw = h.start_gateway(self, "--broker", self.endpoint,
                                  "--broker-heartbeat", "%dms" % HEARTBEAT_MS, *gw_args)
        procs = [self.worker(s) for s in workers]
        if workers:
            self.wait_joined(len(workers))
            self.wait_ready()
        return procs

    def worker(self, services, *args):
        return h.start_process(self, [h.binary("barista-worker"), "--services", services,
                                      "--connect", self.endpoint,
                                      "--heartbeat-ms", str(HEARTBEAT_MS)] + list(args))

    def request(self, method, path, headers=None, body=b"", timeout=h.IO_TIMEOUT):
        with self.gw.client(timeout=timeout) as c:
            return c.request(method, path, headers, body)

    def get(self, path, headers=None, timeout=h.IO_TIMEOUT):
        return self.request("GET", path, headers, timeout=timeout)

    def wait_until(self, cond, what):
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            if cond():
                return
            time.sleep(0.05)
        self.fail("timed out waiting for %s; gateway stderr:\n%s" % (what, self.gw.stderr()))

    def wait_ready(self):
        self.wait_until(lambda: self.get("/readyz").status == 200, "/readyz 200")

    def wait_joined(self, n):
        self.wait_until(lambda: self.gw.stderr().count(" joined:") >= n, "%d workers" % n)

    def wait_removed(self, n):
        self.wait_until(lambda: self.gw.stderr().count(" removed:") >= n,
                        "%d workers removed" % n)

    def in_background(self, fn):
        """Runs fn() in a thread; the returned join() gives its result or raises."""
        out = {}

        def run():
            try:
                out["value"] = fn()
            except BaseException as e:  # handed to the test thread by join()
                out["error"] = e

        t = threading.Thread(target=run, daemon=True)
        t.start()

        def join():
            t.join(WAIT + h.IO_TIMEOUT)
            self.assertFalse(t.is_alive(), "background request did not finish")
            if "error" in out:
                raise out["error"]
            return out["value"]

        return join


class BuiltinRoutes(BrokerTestCase):
    def setUp(self):
        self.start(workers=["hello,sleep,echo", "hash"])

    def test_hello_and_hello_name(self):
        r = self.get("/hello")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("content-type"), "application/json")
        self.assertEqual(r.body, b'{"message":"hello"}')
        r = self.get("/hello/J%C3%BCrgen%20X")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json(), {"message": "hello J\u00fcrgen X"})
        r = self.request("HEAD", "/hello")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("content-length"), "19")

    def test_sleep_answers_and_validates(self):
        r = self.get("/sleep?ms=30")
        self.assertEqual((r.status, r.json()), (200, {"slept_ms": 30}))
        # "+30" passes the gateway's validation, so the worker must take it too.
        r = self.get("/sleep?ms=%2B30")
        self.assertEqual((r.status, r.json()), (200, {"slept_ms": 30}))
        r = self.get("/sleep")
        self.assertEqual(r.status, 422)
        self.assertEqual(r.json(), {"detail": [{"type": "missing", "loc": ["query", "ms"],
                                                "msg": "Field required", "input": None}]})
        r = self.get("/sleep?ms=abc")
        self.assertEqual(r.status, 422)
        self.assertEqual(r.json()["detail"][0]["type"], "int_parsing")
        self.assertEqual(r.json()["detail"][0]["input"], "abc")
        r = self.get("/sleep?ms=60001")
        self.assertEqual(r.status, 422)
        self.assertEqual(r.json()["detail"][0]["type"], "less_than_equal")

    def test_echo_returns_body_and_content_type(self):
        cases = [(b"hello there", "text/plain"),
                 (bytes(range(256)), "application/octet-stream"),
                 (b'{"a":[1,2,{"b":null}]}', "application/json")]
        for body, ctype in cases:
            r = self.request("POST", "/echo", [("Content-Type", ctype)], body)
            self.assertEqual(r.status, 200)
            self.assertEqual(r.body, body)
            self.assertEqual(r.header("content-type"), ctype)

    def test_hash_digest_matches_hashlib(self):
        d = b"barista"
        for _ in range(1000):
            d = hashlib.sha256(d).digest()
        r = self.get("/hash?n=1000&data=barista")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json(), {"digest": d.hex(), "n": 1000})

    def test_unknown_path_and_wrong_method(self):
        r = self.get("/nope")
        self.assertEqual((r.status, r.json()), (404, {"detail": "Not Found"}))
        r = self.request("DELETE", "/hello")
        self.assertEqual(r.status, 405)
        self.assertIn("GET", r.header("allow"))

    def test_many_concurrent_requests_all_answered(self):
        results = []

        def client(n):
            with self.gw.client() as c:
                for i in range(50):
                    r = c.request("GET", "/hello/c%d-%d" % (n, i))
                    results.append((r.status, r.json()["message"] == "hello c%d-%d" % (n, i)))

        joins = [self.in_background(lambda n=n: client(n)) for n in range(8)]
        for j in joins:
            j()
        self.assertEqual(len(results), 400)
        self.assertTrue(all(r == (200, True) for r in results))


class Membership(BrokerTestCase):
    def test_readyz_503_without_workers_then_200(self):
        self.start()
        r = self.get("/readyz")
        self.assertEqual(r.status, 503)
        self.assertEqual(r.header("retry-after"), "1")
        self.worker("hello")
        self.wait_ready()

    def test_late_worker_adds_its_routes(self):
        self.start(workers=["hello"])
        self.assertEqual(self.get("/hash?n=1&data=x").status, 404)
        self.worker("hash")
        self.wait_joined(2)
        r = self.get("/hash?n=1&data=x")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json()["digest"], hashlib.sha256(b"x").hexdigest())

    def test_routes_answer_503_once_the_last_worker_is_gone(self):
        (w,) = self.start(workers=["hello"])
        w.kill()
        self.wait_removed(1)
        r = self.get("/hello")
        self.assertEqual(r.status, 503)
        self.assertEqual(r.header("retry-after"), "1")
        self.assertEqual(r.json(),
                         {"detail": "Service 'hello' is unavailable: no live worker"})
        self.assertEqual(self.get("/readyz").status, 503)


class Failures(BrokerTestCase):
    def test_kill9_mid_request_answers_502_before_the_deadline(self):
        (w,) = self.start(workers=["sleep"])
        started = time.monotonic()
        join = self.in_background(lambda: self.get("/sleep?ms=3000", timeout=WAIT))
        time.sleep(0.3)
        w.kill()
        r = join()
        elapsed = time.monotonic() - started
        self.assertEqual(r.status, 502)
        self.assertEqual(r.json(),
                         {"detail": "Bad Gateway: worker died while handling the request"})
        # The sleep route's deadline is 65 s; the answer comes from liveness (~0.6 s).
        self.assertLess(elapsed, 20.0)

    def test_kill9_mid_get_is_retried_on_another_worker(self):
        w1, w2 = self.start(workers=["sleep", "sleep"])
        # Least-loaded dispatch spreads these over both workers.
        joins = [self.in_background(lambda: self.get("/sleep?ms=1500", timeout=WAIT))
                 for _ in range(4)]
        time.sleep(0.4)
        w1.kill()
        for j in joins:
            r = j()
            self.assertEqual((r.status, r.json()), (200, {"slept_ms": 1500}))
        self.assertIn("removed", self.gw.stderr())

    def test_deadline_shorter_than_the_work_answers_504(self):
        self.start("--max-timeout", "300ms", workers=["sleep"])
        r = self.get("/sleep?ms=3000")
        self.assertEqual(r.status, 504)
        self.assertTrue(r.json()["detail"].startswith("Gateway Timeout"))
        # The worker was told to stop; its 499 returns the credit and it serves on.
        r = self.get("/sleep?ms=5")
        self.assertEqual((r.status, r.json()), (200, {"slept_ms": 5}))

    def test_saturation_answers_503_with_retry_after(self):
        self.start("--queue-limit", "1")
        self.worker("sleep", "--concurrency", "1")
        self.wait_ready()
        busy = self.in_background(lambda: self.get("/sleep?ms=1500", timeout=WAIT))
        time.sleep(0.3)
        queued = self.in_background(lambda: self.get("/sleep?ms=10", timeout=WAIT))
        time.sleep(0.3)
        r = self.get("/sleep?ms=10")
        self.assertEqual(r.status, 503)
        self.assertEqual(r.header("retry-after"), "1")
        self.assertIn("overloaded", r.json()["detail"])
        self.assertEqual(busy().status, 200)
        self.assertEqual(queued().status, 200)

    def test_rolling_restart_under_load_loses_nothing(self):
        (old,) = self.start(workers=["hello,sleep"])
        stop = threading.Event()
        statuses = []

        def load():
            with self.gw.client() as c:
                while not stop.is_set():
                    statuses.append(c.request("GET", "/sleep?ms=20").status)
                    statuses.append(c.request("GET", "/hello").status)

        joins = [self.in_background(load) for _ in range(4)]
        time.sleep(0.5)
        self.worker("hello,sleep")
        self.wait_joined(2)
        old.signal(signal.SIGTERM)
        self.assertEqual(old.wait(), 0)
        time.sleep(0.5)
        stop.set()
        for j in joins:
            j()
        self.assertGreater(len(statuses), 20)
        self.assertEqual([s for s in statuses if s != 200], [])


class GatewayStop(BrokerTestCase):
    def test_sigterm_drains_in_flight_requests_then_says_goodbye(self):
        (w,) = self.start(workers=["sleep"])
        join = self.in_background(lambda: self.get("/sleep?ms=800", timeout=WAIT))
        time.sleep(0.3)
        self.gw.signal(signal.SIGTERM)
        r = join()
        self.assertEqual((r.status, r.json()), (200, {"slept_ms": 800}))
        self.assertEqual(self.gw.wait(), 0, self.gw.stderr())
        # The worker heard GOODBYE and is looking for a gateway again, not dead.
        self.assertIsNone(w.poll())


class RoguePeers(BrokerTestCase):
    def setUp(self):
        self.start(workers=["hello"])

    def test_garbage_on_the_broker_port_does_not_disturb_service(self):
        # Raw junk, and a ZMTP greeting followed by junk.
        for junk in (b"GET / HTTP/1.1\r\n\r\n" * 10,
                     b"\xff" + b"\x00" * 8 + b"\x7f\x03\x00" + b"\xee" * 500):
            with socket.create_connection(("127.0.0.1", self.broker_port)) as s:
                s.sendall(junk)
        with ZmtpDealer("127.0.0.1", self.broker_port) as z:
            for body in (b"\x00\x01\x02", b"\xdd\xff\xff\xff\xff", pack([4, HEARTBEAT]),
                         pack([1, 99]), pack([1, REPLY, 5]), pack("not an array"),
                         b"\xc1" * 1000):
                z.send(body)
            z.send(b"part one", more=True)
            z.send(b"part two")
            z.send(pack([1, REPLY, 77, 200, [], "", b"", []]))
            self.assertEqual(z.recv_type(GOODBYE)[2], "unknown worker")
            # A READY claiming a route another service owns is refused.
            z.send(ready_msg("evil:1", [("evil", [("GET", "/hello")])]))
            self.assertIn("owned by service 'hello'", z.recv_type(GOODBYE)[2])
        r = self.get("/hello")
        self.assertEqual((r.status, r.body), (200, b'{"message":"hello"}'))
        self.assertEqual(self.get("/readyz").status, 200)

    def test_fake_worker_gets_requests_and_its_replies_are_converted(self):
        with ZmtpDealer("127.0.0.1", self.broker_port) as z:
            z.send(ready_msg("fake:1", [("ghost", [("POST", "/ghost/{name}", 1)])],
                             heartbeat_ms=HEARTBEAT_MS))
            self.assertEqual(len(z.recv_type(WELCOME)[2]), 32)
            join = self.in_background(lambda: self.request(
                "POST", "/ghost/a%20b?x=1&y=%C3%A9",
                [("Content-Type", "text/plain"), ("Connection", "keep-alive"),
                 ("X-Custom", "v")], b"payload"))
            req = z.recv_type(REQUEST)
            (rid, service, route, method, path, params, query, headers, ctype, body,
             deadline, trace) = req[2:14]
            self.assertEqual((service, route, method, path),
                             ("ghost", "/ghost/{name}", "POST", "/ghost/a%20b"))
            self.assertEqual(params, [["name", "a b"]])
            self.assertEqual(query, [["x", "1"], ["y", "\u00e9"]])
            names = [n for n, _ in headers]
            self.assertIn(["x-custom", "v"], headers)
            self.assertNotIn("connection", names)
            self.assertNotIn("content-length", names)
            self.assertEqual((ctype, body), ("text/plain", b"payload"))
            self.assertTrue(0 < deadline <= 30000)
            self.assertEqual(len(trace), 55)
            z.send(pack([1, REPLY, rid, 201, [["x-ghost", "1"], ["transfer-encoding", "x"]],
                         "application/msgpack", pack({"ok": True, "n": [1, 2.5]}), []]))
            r = join()
            self.assertEqual(r.status, 201)
            self.assertEqual(r.json(), {"ok": True, "n": [1, 2.5]})
            self.assertEqual(r.header("content-type"), "application/json")
            self.assertEqual(r.header("x-ghost"), "1")
            self.assertIsNone(r.header("transfer-encoding"))
            # A client that accepts msgpack gets the worker's bytes.
            join = self.in_background(lambda: self.request(
                "POST", "/ghost/m", [("Accept", "application/msgpack")]))
            rid = z.recv_type(REQUEST)[2]
            z.send(pack([1, REPLY, rid, 200, [], "application/msgpack", pack([1, "x"]), []]))
            r = join()
            self.assertEqual(r.header("content-type"), "application/msgpack")
            self.assertEqual(unpack(r.body), [1, "x"])
            # More headers than the gateway keeps on its stack: every one still arrives.
            join = self.in_background(lambda: self.request("POST", "/ghost/many"))
            rid = z.recv_type(REQUEST)[2]
            many = [["x-h%02d" % i, "v%d" % i] for i in range(40)]
            z.send(pack([1, REPLY, rid, 200, many, "text/plain", b"ok", []]))
            r = join()
            self.assertEqual(r.body, b"ok")
            for name, value in many:
                self.assertEqual(r.header(name), value)
        # The fake worker went silent: its route stays and answers 503.
        self.wait_removed(1)
        r = self.request("POST", "/ghost/x")
        self.assertEqual(r.status, 503)
        self.assertEqual(r.json(),
                         {"detail": "Service 'ghost' is unavailable: no live worker"})

    def test_msgpack_route_converts_json_and_refuses_bad_bodies(self):
        with ZmtpDealer("127.0.0.1", self.broker_port) as z:
            z.send(ready_msg("fake:2", [("conv", [("POST", "/conv", 2)])],
                             heartbeat_ms=HEARTBEAT_MS))
            z.recv_type(WELCOME)
            r = self.request("POST", "/conv", [("Content-Type", "application/json")],
                             b'{"a": [1, 2')
            self.assertEqual(r.status, 422)
            detail = r.json()["detail"][0]
            self.assertEqual((detail["type"], detail["loc"][0], detail["msg"]),
                             ("json_invalid", "body", "JSON decode error"))
            self.assertIsInstance(detail["loc"][1], int)
            self.assertIn("error", detail["ctx"])
            r = self.request("POST", "/conv", [("Content-Type", "text/plain")], b"x")
            self.assertEqual(r.status, 415)
            join = self.in_background(lambda: self.request(
                "POST", "/conv", [("Content-Type", "application/json")],
                b'{"a": [1, "two", null, true]}'))
            req = z.recv_type(REQUEST)
            self.assertEqual(req[10], "application/msgpack")
            self.assertEqual(unpack(req[11]), {"a": [1, "two", None, True]})
            z.send(pack([1, REPLY, req[2], 200, [], "text/plain", b"ok", []]))
            self.assertEqual(join().body, b"ok")
            z.send(pack([1, GOODBYE, "done"]))



class ServiceCalls(BrokerTestCase):
    """A fake worker makes service-to-service CALLs to real workers."""

    def setUp(self):
        self.start(workers=["hello,sleep"])

    def call(self, z, cid, path, query=(), deadline_ms=5000):
        z.send(pack([1, CALL, cid, "", "", "GET", path, [], [list(q) for q in query], [], "",
                     b"", deadline_ms, ""]))
        reply = z.recv_type(REPLY)
        self.assertEqual(reply[2], cid)
        return reply[3], reply[5], reply[6]  # status, content type, body

    def test_call_reaches_a_real_service_and_errors_come_back_as_replies(self):
        with ZmtpDealer("127.0.0.1", self.broker_port) as z:
            z.send(ready_msg("caller:1", [("caller", [])], heartbeat_ms=HEARTBEAT_MS))
            z.recv_type(WELCOME)
            status, ctype, body = self.call(z, 41, "/hello/bob")
            self.assertEqual(status, 200)
            value = unpack(body) if ctype == "application/msgpack" else json.loads(body)
            self.assertEqual(value, {"message": "hello bob"})
            # The broker's own errors are msgpack too: workers never parse JSON
            # (PROTOCOL.md 10.1).
            status, ctype, body = self.call(z, 42, "/sleep", [("ms", "2000")], deadline_ms=200)
            self.assertEqual((status, ctype), (504, "application/msgpack"))
            self.assertTrue(unpack(body)["detail"].startswith("Gateway Timeout"))
            status, ctype, body = self.call(z, 43, "/sleep")
            self.assertEqual((status, ctype), (422, "application/msgpack"))
            self.assertEqual(unpack(body)["detail"][0]["type"], "missing")
            self.assertEqual(unpack(body)["detail"][0]["loc"], ["query", "ms"])
            status, ctype, body = self.call(z, 44, "/healthz")
            self.assertEqual((status, ctype, unpack(body)),
                             (404, "application/msgpack", {"detail": "Not Found"}))
            status, ctype, body = self.call(z, 45, "/hello/%zz")
            self.assertEqual((status, ctype, unpack(body)),
                             (400, "application/msgpack",
                              {"detail": "Malformed path: bad percent-encoding"}))
            z.send(pack([1, GOODBYE, "done"]))
        # The real worker served on after the cancelled sleep.
        self.assertEqual(self.get("/sleep?ms=5").status, 200)


class WorkerHeader(BrokerTestCase):
    def test_no_worker_header_by_default(self):
        # Issue 13: host:pid of the worker is internal topology; clients never see it
        # unless the operator asks.
        self.start()
        self.worker("hello", "--id", "io-one")
        self.wait_ready()
        r = self.get("/hello")
        self.assertEqual(r.status, 200)
        self.assertIsNone(r.header("x-barista-worker"))

    def test_reply_names_the_worker_that_answered(self):
        self.start("--worker-header")
        self.worker("hello", "--id", "io-one")
        self.worker("hash", "--id", "cpu-one")
        self.wait_joined(2)
        self.wait_ready()
        self.assertEqual(self.get("/hello").header("x-barista-worker"), "io-one")
        self.assertEqual(self.get("/hash?n=1&data=a").header("x-barista-worker"), "cpu-one")
        # The gateway's own answers come from no worker.
        self.assertIsNone(self.get("/healthz").header("x-barista-worker"))


if __name__ == "__main__":
    unittest.main()
