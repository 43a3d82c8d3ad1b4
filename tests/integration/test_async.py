"""The async actor toolkit end to end: the real gateway, real barista-worker
processes, real HTTP.  Covers the dashboard's gather (latency follows the slowest
branch; partial results when a branch times out or its service has no worker), the
fetch service against a local upstream this test starts (success, slow, refused),
thread-pool offload keeping /hello responsive while a blocking call runs, and the
watchdog naming a route that blocks the loop (barista-worker-test's `stall` service)."""

import http.server
import threading
import time
import unittest

import harness as h
from test_broker import HEARTBEAT_MS, WAIT, BrokerTestCase
from zmtp_peer import CANCEL, HEARTBEAT, REQUEST, WELCOME, ZmtpDealer, pack, ready_msg

# The dashboard's slowest branch: GET /sleep?ms=100.
SLOWEST_S = 0.100
# "Well before" bound for latencies (sanitizer builds run several times slower).
WIDE_S = 2.0


class Upstream:
    """A local HTTP upstream in a thread: / answers at once, /slow after 3 s."""

    def __init__(self):
        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_GET(self):
                if self.path.startswith("/slow"):
                    time.sleep(3)
                body = b'{"upstream":"ok"}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except BrokenPipeError:
                    pass  # the worker gave up on a slow answer, as it should

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path="/"):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class AsyncTestCase(BrokerTestCase):
    def worker(self, services, *args, binary="barista-worker", env=None):
        """A worker (of `binary`) that must drain and exit 0 when the test ends."""
        p = h.start_process(self, [h.binary(binary), "--services", services,
                                   "--connect", self.endpoint,
                                   "--heartbeat-ms", str(HEARTBEAT_MS)] + list(args), env=env)
        self.addCleanup(self.stop_cleanly, p)
        return p

    def stop_cleanly(self, p):
        """Sanitizer findings and leaks make a worker exit non-zero."""
        if p.poll() is None:
            code = p.stop()
            self.assertEqual(code, 0, "worker exited %s:\n%s" % (code, p.stderr()))

    def timed_get(self, path):
        t0 = time.monotonic()
        r = self.get(path)
        return r, time.monotonic() - t0


class Dashboard(AsyncTestCase):
    def setUp(self):
        self.start()
        self.io = self.worker("hello,sleep,dashboard")
        self.cpu = self.worker("hash")
        self.wait_joined(2)
        self.wait_ready()

    def test_gathers_all_three_branches_into_one_object(self):
        r = self.get("/dashboard")
        self.assertEqual(r.status, 200, r.body)
        body = r.json()
        self.assertEqual(body["hello"], {"message": "hello"})
        self.assertEqual(body["sleep"], {"slept_ms": 100})
        self.assertEqual(body["hash"]["n"], 1000)
        self.assertEqual(len(body["hash"]["digest"]), 64)

    def test_latency_follows_the_slowest_branch_not_the_sum(self):
        self.get("/dashboard")  # warm up connections
        for _ in range(5):
            r, took = self.timed_get("/dashboard")
            self.assertEqual(r.status, 200)
            self.assertEqual(r.json()["sleep"], {"slept_ms": 100})
            # A wide bound only: tests do not time (tests/bench/async_bench.py measures).
            self.assertLess(took, SLOWEST_S + WIDE_S)

    def test_a_branch_past_the_gather_deadline_is_an_error_and_the_rest_returns(self):
        r, took = self.timed_get("/dashboard?timeout_ms=50")
        self.assertEqual(r.status, 200, r.body)
        body = r.json()
        self.assertEqual(body["hello"], {"message": "hello"})
        self.assertEqual(body["sleep"]["error"]["status"], 504)
        # The gather's own 504 or the broker's for the call: both name the 50 ms.
        self.assertIn("50 ms", body["sleep"]["error"]["detail"])
        self.assertLess(took, WIDE_S)
        # The cancelled sleep leaves the worker healthy.
        self.assertEqual(self.get("/sleep?ms=1").status, 200)

    def test_a_branch_whose_service_has_no_worker_is_an_error(self):
        self.stop_cleanly(self.cpu)
        self.wait_until(lambda: " removed:" in self.gw.stderr(), "hash worker removed")
        r = self.get("/dashboard")
        self.assertEqual(r.status, 200, r.body)
        body = r.json()
        self.assertEqual(body["sleep"], {"slept_ms": 100})
        self.assertIn(body["hash"]["error"]["status"], (503, 504))
        self.assertTrue(body["hash"]["error"]["detail"])

    def test_timeout_ms_is_validated(self):
        self.assertEqual(self.get("/dashboard?timeout_ms=0").status, 422)
        self.assertEqual(self.get("/dashboard?timeout_ms=abc").status, 422)


class CallContext(AsyncTestCase):
    """A bare ZMTP peer plays the sleep service, to see what a call carries."""

    TRACE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

    def setUp(self):
        self.start()
        self.worker("hello,dashboard")
        self.worker("hash")
        self.wait_joined(2)
        self.z = ZmtpDealer("127.0.0.1", self.broker_port)
        self.addCleanup(self.z.close)
        self.z.send(ready_msg("fake:sleep", [("sleep", [("GET", "/sleep")])],
                              heartbeat_ms=HEARTBEAT_MS))
        self.z.recv_type(WELCOME)
        stop = threading.Event()

        def beat():  # stays alive for the broker while the test waits
            while not stop.wait(HEARTBEAT_MS / 2000):
                self.z.send(pack([1, HEARTBEAT]))

        beater = threading.Thread(target=beat, daemon=True)
        beater.start()
        self.addCleanup(beater.join)
        self.addCleanup(stop.set)

    def test_callee_gets_the_shrunk_deadline_and_the_trace_and_a_cancel_when_late(self):
        out = {}

        def ask():
            with self.gw.client() as c:
                out["r"] = c.request("GET", "/dashboard?timeout_ms=1500",
                                     [("traceparent", self.TRACE)])

        t = threading.Thread(target=ask, daemon=True)
        t.start()
        req = self.z.recv_type(REQUEST)
        rid, path, query, deadline, trace = req[2], req[6], req[8], req[12], req[13]
        self.assertEqual((path, query), ("/sleep", [["ms", "100"]]))
        self.assertTrue(0 < deadline <= 1500, deadline)
        self.assertEqual(trace, self.TRACE)
        # No answer: at the gather's deadline the call is cancelled downstream.
        self.assertEqual(self.z.recv_type(CANCEL)[2], rid)
        t.join(WAIT)
        r = out["r"]
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json()["sleep"]["error"]["status"], 504)
        self.assertEqual(r.json()["hello"], {"message": "hello"})

    def test_calls_are_cancelled_when_their_request_is(self):
        c = self.gw.client()
        c.send(b"GET /dashboard HTTP/1.1\r\nHost: x\r\n\r\n")
        rid = self.z.recv_type(REQUEST)[2]
        c.close()  # the client leaves: the dashboard request is cancelled
        self.assertEqual(self.z.recv_type(CANCEL)[2], rid)


class Fetch(AsyncTestCase):
    def start_fetch(self, path, *gw_args):
        self.upstream = Upstream()
        self.addCleanup(self.upstream.close)
        self.start(*gw_args)
        self.w = self.worker("fetch,hello", "--upstream-url", self.upstream.url(path))
        self.wait_joined(1)
        self.wait_ready()

    def test_returns_the_upstreams_status_and_body(self):
        self.start_fetch("/data")
        for _ in range(3):  # the connection is reused
            r = self.get("/fetch")
            self.assertEqual(r.status, 200, r.body)
            self.assertEqual(r.json(), {"status": 200, "content_type": "application/json",
                                        "body": '{"upstream":"ok"}'})

    def test_a_slow_upstream_is_a_504_with_detail_before_the_deadline(self):
        self.start_fetch("/slow", "--default-timeout", "1s")
        r, took = self.timed_get("/fetch")
        self.assertEqual(r.status, 504, r.body)
        # The worker gives up 100 ms early to name the upstream; on a loaded machine the
        # gateway's own 504 may still be first.  Either way a 504 with a reason.
        detail = r.json()["detail"]
        self.assertTrue("upstream timed out" in detail or "within 1000 ms" in detail, detail)
        self.assertLess(took, 3.0)
        self.assertEqual(self.get("/hello").status, 200)

    def test_a_refused_upstream_is_a_502_with_detail(self):
        self.start_fetch("/data")
        self.upstream.close()
        r = self.get("/fetch")
        self.assertEqual(r.status, 502, r.body)
        self.assertIn("upstream unreachable", r.json()["detail"])

    def test_libcurl_is_mapped_from_the_first_fetch_on_and_not_before(self):
        # libcurl is loaded on first use (proto/include/barista/dl.h): a worker that
        # never fetched has not mapped it, nor libpq nor hiredis, which it never uses.
        self.start_fetch("/data")
        self.assertEqual(self.get("/hello").status, 200)
        for soname in ("libcurl.so.4", "libpq.so.5", "libhiredis.so.0.14"):
            self.assertFalse(h.maps_library(self.w.pid, soname), soname)
        r = self.get("/fetch")
        self.assertEqual(r.status, 200, r.body)
        self.assertTrue(h.maps_library(self.w.pid, "libcurl.so.4"))
        self.assertFalse(h.maps_library(self.w.pid, "libpq.so.5"))
        self.assertFalse(h.maps_library(self.w.pid, "libhiredis.so.0.14"))

    def test_without_libcurl_a_fetch_fails_cleanly_and_the_log_names_the_library(self):
        prefix = h.without_library("libcurl.so.4")
        if not prefix:
            self.skipTest("cannot hide libcurl.so.4 here (unshare -rm refused)")
        self.upstream = Upstream()
        self.addCleanup(self.upstream.close)
        self.start()
        w = h.start_process(self, prefix + [h.binary("barista-worker"), "--services", "fetch,hello",
                                            "--connect", self.endpoint,
                                            "--heartbeat-ms", str(HEARTBEAT_MS),
                                            "--upstream-url", self.upstream.url("/data")])
        self.addCleanup(self.stop_cleanly, w)
        self.wait_joined(1)
        self.wait_ready()
        for _ in range(2):  # the second fetch fails the same way, without a new attempt
            r = self.get("/fetch")
            self.assertEqual(r.status, 502, r.body)
        self.assertEqual(self.get("/hello").status, 200)  # the rest of the worker goes on
        self.assertIsNone(w.poll())
        err = w.stderr()
        self.assertEqual(err.count("cannot load libcurl.so.4 (HTTP client): "), 1, err)
        self.assertFalse(h.maps_library(w.pid, "libcurl.so.4"))

    def test_without_an_upstream_it_says_so(self):
        self.start()
        self.worker("fetch", env={"BARISTA_UPSTREAM_URL": ""})
        self.wait_joined(1)
        self.wait_ready()
        r = self.get("/fetch?url=http://example.com/")
        self.assertEqual(r.status, 503)
        self.assertIn("no upstream configured", r.json()["detail"])


class OffloadAndWatchdog(AsyncTestCase):
    def setUp(self):
        self.start()
        self.w = self.worker("hello,stall", "--threadpool", "2", "--stall-ms", "150",
                             binary="barista-worker-test")
        self.wait_joined(1)
        self.wait_ready()

    def test_pool_size_is_logged(self):
        self.assertIn("thread pool: 2 threads", self.w.stderr())

    def test_offload_keeps_hello_responsive_during_a_blocking_call(self):
        done = {}

        def blocking():
            done["r"] = self.get("/stall/offload?ms=1500")

        t = threading.Thread(target=blocking, daemon=True)
        t.start()
        time.sleep(0.2)  # the blocking call is running now
        r, took = self.timed_get("/hello")
        self.assertEqual(r.status, 200)
        self.assertLess(took, 1.0, "hello waited for the blocking call")
        self.assertTrue(t.is_alive(), "the blocking call ended before /hello was asked")
        t.join(WAIT)
        self.assertEqual((done["r"].status, done["r"].json()), (200, {"offloaded_ms": 1500}))
        # The blocking call ran off the loop (a line naming the route would mean the
        # handler or its continuation blocked).
        self.assertNotIn("stall: GET /stall/offload", self.w.stderr())

    def test_a_route_that_blocks_the_loop_trips_the_watchdog(self):
        r = self.get("/stall/block?ms=300")
        self.assertEqual(r.status, 200)
        self.wait_until(lambda: "stall: GET /stall/block blocked the loop for" in self.w.stderr(),
                        "the watchdog's line")
        # Once: the loop-level measure does not repeat what the handler's run logged.
        self.assertEqual(self.w.stderr().count("stall: GET /stall/block"), 1, self.w.stderr())

    def test_a_callback_of_the_handlers_own_that_blocks_is_caught_by_the_loop_measure(self):
        r = self.get("/stall/later?ms=300")
        self.assertEqual(r.status, 200)
        self.wait_until(lambda: "stall: the loop was blocked for" in self.w.stderr(),
                        "the watchdog's loop-level line")
        self.assertIn("last route: GET /stall/later", self.w.stderr())


if __name__ == "__main__":
    unittest.main()
