"""The gateway's edge end to end: request ids and trace context, the access log, CORS,
compression both ways, authentication, rate limits and client addresses behind
proxies - a real gateway, real workers (or a fake worker speaking the protocol with
exact bytes, where what reaches the worker matters) and raw HTTP over real sockets."""

import gzip
import json
import os
import re
import signal
import tempfile
import time
import unittest
import zlib

import harness as h
from test_broker import HEARTBEAT_MS, BrokerTestCase
from zmtp_peer import GOODBYE, REPLY, REQUEST, WELCOME, ZmtpDealer, pack, unpack

TRACE_RE = r"^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$"
INCOMING_TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def read(path):
    with open(path) as f:
        return f.read()


def ready_routes(worker_id, service, routes, capacity=8):
    """READY for one io service whose routes are (method, path, body, auth, scopes,
    forward_token) - the route record with the edge's optional fields."""
    rts = [[m, p, 0, body, "", [], auth, scopes, fwd] for m, p, body, auth, scopes, fwd in routes]
    return pack([1, 1, worker_id, 0, capacity, HEARTBEAT_MS, [[service, 0, rts]], []])


class EdgeTestCase(BrokerTestCase):
    def tmpdir(self):
        d = tempfile.TemporaryDirectory(prefix="barista-edge-")
        self.addCleanup(d.cleanup)
        return d.name

    def access_lines(self, path=None):
        """Access-log lines (text format) from the gateway's stderr or a file."""
        text = read(path) if path else self.gw.stderr()
        return [l for l in text.splitlines() if re.match(r"^\S+ - \S+ \[", l)]

    def wait_log(self, pred, path=None):
        found = h.poll_until(lambda: [l for l in self.access_lines(path) if pred(l)], 10.0)
        self.assertTrue(found, "no matching access-log line; stderr:\n" + self.gw.stderr())
        return found


class RequestIds(EdgeTestCase):
    def setUp(self):
        self.start(workers=["hello,echo"])

    def test_every_answer_carries_a_request_id_and_a_traceparent(self):
        for method, path in (("GET", "/hello"), ("GET", "/healthz"), ("GET", "/nope"),
                             ("DELETE", "/hello")):
            r = self.request(method, path)
            self.assertRegex(r.header("x-request-id"), r"^[0-9a-f]{32}$", (method, path))
            self.assertRegex(r.header("traceparent"), TRACE_RE)
            # A fresh id is the new trace's id, so logs and traces join up.
            self.assertEqual(r.header("x-request-id"), r.header("traceparent")[3:35])
        a, b = self.get("/hello"), self.get("/hello")
        self.assertNotEqual(a.header("x-request-id"), b.header("x-request-id"))

    def test_a_valid_client_id_is_kept_and_a_bad_one_replaced(self):
        r = self.get("/hello", [("X-Request-ID", "client-id.42:a/b")])
        self.assertEqual(r.header("x-request-id"), "client-id.42:a/b")
        for bad in ("has space", "x" * 129, "quote\"d", ""):
            r = self.get("/hello", [("X-Request-ID", bad)])
            self.assertRegex(r.header("x-request-id"), r"^[0-9a-f]{32}$", bad)

    def test_a_valid_traceparent_is_propagated_and_answered(self):
        r = self.get("/hello", [("traceparent", INCOMING_TRACE)])
        self.assertEqual(r.header("traceparent"), INCOMING_TRACE)
        self.assertEqual(r.header("x-request-id"), INCOMING_TRACE[3:35])
        for bad in ("00-" + "0" * 32 + "-00f067aa0ba902b7-01", "zz-nope", INCOMING_TRACE.upper()):
            r = self.get("/hello", [("traceparent", bad)])
            self.assertNotEqual(r.header("traceparent")[3:35], INCOMING_TRACE[3:35])
            self.assertRegex(r.header("traceparent"), TRACE_RE)

    def test_a_refused_request_still_gets_an_id(self):
        with self.gw.client() as c:
            c.send(b"GET /hello HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
            r = c.read_response()
        self.assertEqual(r.status, 400)
        self.assertRegex(r.header("x-request-id"), r"^[0-9a-f]{32}$")

    def test_request_id_trace_and_identity_reach_the_worker(self):
        with ZmtpDealer("127.0.0.1", self.broker_port) as z:
            z.send(ready_routes("fake:ids", "ids", [("GET", "/ids", 0, 0, "", False)]))
            z.recv_type(WELCOME)
            join = self.in_background(lambda: self.get(
                "/ids", [("X-Request-ID", "rid-1"), ("traceparent", INCOMING_TRACE)]))
            req = z.recv_type(REQUEST)
            self.assertGreaterEqual(len(req), 16)
            trace, request_id, identity = req[13], req[14], req[15]
            self.assertEqual(request_id, "rid-1")
            self.assertEqual(identity, b"")
            z.send(pack([1, REPLY, req[2], 200, [], "text/plain", b"ok", []]))
            r = join()
            self.assertEqual(r.header("traceparent"), trace)
            self.assertEqual(trace, INCOMING_TRACE)
            z.send(pack([1, GOODBYE, "done"]))

    def test_the_access_log_line_names_the_request(self):
        self.get("/hello/abc?x=1", [("X-Request-ID", "log-me-1")])
        line = self.wait_log(lambda l: "rid=log-me-1" in l)[0]
        self.assertRegex(line, r'^127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d \+0000\] '
                               r'"GET /hello/abc\?x=1 HTTP/1\.1" 200 \d+ rid=log-me-1 '
                               r'route="/hello/\{name\}" service=hello worker=\S+ in=0 '
                               r'dur_ms=[\d.]+ wait_ms=[\d.]+$')
        self.assertNotIn("worker=-", line)
        r = self.get("/sleep-nowhere", [("X-Request-ID", "log-me-2")])
        self.assertEqual(r.status, 404)
        line = self.wait_log(lambda l: "rid=log-me-2" in l)[0]
        self.assertIn('" 404 ', line)
        self.assertIn('reason="Not Found"', line)


class AccessLog(EdgeTestCase):
    def test_json_lines_to_a_file_reopened_on_sighup(self):
        d = self.tmpdir()
        path = os.path.join(d, "access.log")
        self.start("--access-log", path, "--access-log-format", "json", workers=["hello"])
        self.get("/hello", [("X-Request-ID", "json-1")])
        lines = h.poll_until(lambda: [json.loads(l) for l in read(path).splitlines() if "json-1" in l], 10)
        self.assertTrue(lines)
        rec = lines[0]
        self.assertEqual((rec["request_id"], rec["method"], rec["path"], rec["route"],
                          rec["service"], rec["status"], rec["client"]),
                         ("json-1", "GET", "/hello", "/hello", "hello", 200, "127.0.0.1"))
        for key in ("ts", "worker", "bytes_in", "bytes_out", "duration_ms", "queue_wait_ms"):
            self.assertIn(key, rec)
        self.assertGreater(rec["bytes_out"], 0)
        self.assertNotIn("json-1", self.gw.stderr())
        # logrotate: move the file, signal, and the next line goes to a new file.
        os.rename(path, path + ".1")
        self.gw.signal(signal.SIGHUP)
        h.poll_until(lambda: os.path.exists(path), 10)
        self.assertTrue(os.path.exists(path))
        self.get("/hello", [("X-Request-ID", "json-2")])
        self.assertTrue(h.poll_until(lambda: "json-2" in read(path), 10))
        self.assertNotIn("json-2", read(path + ".1"))

    def test_off_switch_and_sampling(self):
        self.start("--access-log", "off", workers=["hello"])
        self.get("/hello", [("X-Request-ID", "silent-1")])
        self.get("/nope", [("X-Request-ID", "silent-2")])
        time.sleep(0.3)
        self.assertNotIn("silent-", self.gw.stderr())

    def test_sampling_keeps_errors(self):
        self.start("--access-log-sample", "1000", workers=["hello"])
        for i in range(20):
            self.get("/hello", [("X-Request-ID", "ok-%d" % i)])
        self.get("/nope", [("X-Request-ID", "err-1")])
        self.wait_log(lambda l: "rid=err-1" in l)
        oks = [l for l in self.access_lines() if "rid=ok-" in l]
        self.assertLessEqual(len(oks), 1)

    def test_bad_values_exit_2_with_one_line(self):
        for args in (["--access-log-format", "xml"], ["--access-log-sample", "0"],
                     ["--access-log", "/nonexistent-dir/x/access.log"]):
            r = h.run([h.binary("barista-gateway"), "--listen", "127.0.0.1:%d" % h.free_port(),
                       "--broker", "tcp://127.0.0.1:*"] + args, timeout=30)
            self.assertNotEqual(r.returncode, 0, args)
            self.assertTrue(r.stderr.strip(), args)
            if args[0] != "--access-log":
                self.assertEqual(r.returncode, 2, args)
                self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)


class Cors(EdgeTestCase):
    ORIGIN = "https://app.example"

    def setUp(self):
        self.start("--cors-origins", "https://app.example, https://other.example",
                   "--cors-expose", "x-request-id", workers=["hello,echo"])

    def preflight(self, origin, method="POST", headers=None, path="/echo"):
        hdrs = [("Origin", origin), ("Access-Control-Request-Method", method)]
        if headers:
            hdrs.append(("Access-Control-Request-Headers", headers))
        return self.request("OPTIONS", path, hdrs)

    def test_preflight_is_answered_at_the_gateway(self):
        r = self.preflight(self.ORIGIN, "POST", "Content-Type, X-Request-ID")
        self.assertEqual(r.status, 204)
        self.assertEqual(r.header("access-control-allow-origin"), self.ORIGIN)
        self.assertIn("POST", r.header("access-control-allow-methods"))
        self.assertIn("content-type", r.header("access-control-allow-headers"))
        self.assertEqual(r.header("access-control-max-age"), "600")
        self.assertEqual(r.header("vary"), "Origin")
        self.assertIsNone(r.header("x-barista-worker"))  # no worker hop
        # Also for a path no worker serves: the gateway answers preflights itself.
        self.assertEqual(self.preflight(self.ORIGIN, "GET", path="/anything").status, 204)

    def test_preflight_variants_refused(self):
        r = self.preflight("https://evil.example")
        self.assertEqual((r.status, r.json()), (400, {"detail": "Disallowed CORS origin"}))
        self.assertIsNone(r.header("access-control-allow-origin"))
        r = self.preflight(self.ORIGIN, "TRACE")
        self.assertEqual(r.json(), {"detail": "Disallowed CORS method"})
        r = self.preflight(self.ORIGIN, "POST", "x-secret")
        self.assertEqual(r.json(), {"detail": "Disallowed CORS headers"})
        # OPTIONS without Access-Control-Request-Method is no preflight: routed as usual.
        r = self.request("OPTIONS", "/hello", [("Origin", self.ORIGIN)])
        self.assertEqual(r.status, 405)

    def test_simple_requests_get_allow_origin_and_vary(self):
        r = self.get("/hello", [("Origin", "https://other.example")])
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("access-control-allow-origin"), "https://other.example")
        self.assertEqual(r.header("access-control-expose-headers"), "x-request-id")
        self.assertEqual(r.header("vary"), "Origin")
        self.assertIsNone(r.header("access-control-allow-credentials"))
        r = self.get("/hello", [("Origin", "https://evil.example")])
        self.assertIsNone(r.header("access-control-allow-origin"))
        self.assertEqual(r.header("vary"), "Origin")
        r = self.get("/hello")
        self.assertEqual(r.header("vary"), "Origin")

    def test_any_origin_with_and_without_credentials(self):
        gw = h.start_gateway(self, "--broker", "tcp://127.0.0.1:*", "--cors-origins", "*")
        with gw.client() as c:
            r = c.request("GET", "/healthz", [("Origin", "https://x.example")])
        self.assertEqual(r.header("access-control-allow-origin"), "*")
        self.assertIsNone(r.header("vary"))
        gw = h.start_gateway(self, "--broker", "tcp://127.0.0.1:*", "--cors-origins", "*",
                             "--cors-credentials")
        with gw.client() as c:
            r = c.request("GET", "/healthz", [("Origin", "https://x.example")])
        self.assertEqual(r.header("access-control-allow-origin"), "https://x.example")
        self.assertEqual(r.header("access-control-allow-credentials"), "true")
        self.assertEqual(r.header("vary"), "Origin")


class Compression(EdgeTestCase):
    def setUp(self):
        self.start("--compress-min-bytes", "256", "--max-inflated-bytes", "64k",
                   workers=["hello,echo"])

    def echo(self, body, headers=()):
        return self.request("POST", "/echo", [("Content-Type", "application/json")] +
                            list(headers), body)

    BODY = json.dumps({"items": ["value %d" % i for i in range(400)]}).encode()

    def test_gzip_when_accepted(self):
        r = self.echo(self.BODY, [("Accept-Encoding", "gzip")])
        self.assertEqual(r.header("content-encoding"), "gzip")
        self.assertEqual(r.header("vary"), "Accept-Encoding")
        self.assertLess(len(r.body), len(self.BODY))
        self.assertEqual(gzip.decompress(r.body), self.BODY)
        self.assertEqual(int(r.header("content-length")), len(r.body))

    def test_brotli_preferred_and_q_values_honoured(self):
        r = self.echo(self.BODY, [("Accept-Encoding", "gzip, br")])
        self.assertEqual(r.header("content-encoding"), "br")
        r = self.echo(self.BODY, [("Accept-Encoding", "br;q=0.2, gzip;q=0.8")])
        self.assertEqual(r.header("content-encoding"), "gzip")
        for ae in ("gzip;q=0", "gzip;q=0, br;q=0", "identity", "*;q=0", "compress"):
            r = self.echo(self.BODY, [("Accept-Encoding", ae)])
            self.assertIsNone(r.header("content-encoding"), ae)
            self.assertEqual(r.body, self.BODY, ae)
            self.assertEqual(r.header("vary"), "Accept-Encoding", ae)
        r = self.echo(self.BODY, [("Accept-Encoding", "*")])
        self.assertEqual(r.header("content-encoding"), "br")

    def test_never_small_bodies_compressed_types_or_ranges(self):
        r = self.echo(b'{"a":1}', [("Accept-Encoding", "gzip")])
        self.assertIsNone(r.header("content-encoding"))
        self.assertIsNone(r.header("vary"))
        png = b"\x89PNG" + bytes(range(256)) * 8
        r = self.request("POST", "/echo", [("Content-Type", "image/png"),
                                           ("Accept-Encoding", "gzip")], png)
        self.assertIsNone(r.header("content-encoding"))
        self.assertEqual(r.body, png)
        r = self.echo(self.BODY, [("Accept-Encoding", "gzip"), ("Range", "bytes=0-10")])
        self.assertIsNone(r.header("content-encoding"))

    def test_gzip_request_body_is_inflated_for_the_worker(self):
        r = self.echo(gzip.compress(self.BODY), [("Content-Encoding", "gzip")])
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, self.BODY)

    def test_zip_bomb_is_413_and_bad_bodies_400_415(self):
        bomb = gzip.compress(b"\0" * (10 * 1024 * 1024))
        self.assertLess(len(bomb), 64 * 1024)
        r = self.echo(bomb, [("Content-Encoding", "gzip")])
        self.assertEqual(r.status, 413)
        self.assertIn("inflates past 65536 bytes", r.json()["detail"])
        r = self.echo(b"not gzip at all", [("Content-Encoding", "gzip")])
        self.assertEqual(r.status, 400)
        r = self.echo(gzip.compress(self.BODY)[:-9], [("Content-Encoding", "gzip")])
        self.assertEqual(r.status, 400)
        r = self.echo(zlib.compress(self.BODY), [("Content-Encoding", "deflate")])
        self.assertEqual(r.status, 415)
        # The connection stays usable after refusals.
        self.assertEqual(self.get("/hello").status, 200)

    def test_content_encoding_is_not_forwarded_after_inflating(self):
        with ZmtpDealer("127.0.0.1", self.broker_port) as z:
            z.send(ready_routes("fake:z", "zz", [("POST", "/zz", 1, 0, "", False)]))
            z.recv_type(WELCOME)
            join = self.in_background(lambda: self.request(
                "POST", "/zz", [("Content-Type", "text/plain"), ("Content-Encoding", "gzip")],
                gzip.compress(b"plain text")))
            req = z.recv_type(REQUEST)
            names = [n for n, _ in req[9]]
            self.assertNotIn("content-encoding", names)
            self.assertEqual(req[11], b"plain text")
            z.send(pack([1, REPLY, req[2], 200, [], "text/plain", b"ok", []]))
            self.assertEqual(join().status, 200)
            z.send(pack([1, GOODBYE, "done"]))


if __name__ == "__main__":
    unittest.main()
