"""The gateway's edge end to end: request ids and trace context, the access log, CORS,
compression both ways, authentication, rate limits and client addresses behind
proxies - a real gateway, real workers (or a fake worker speaking the protocol with
exact bytes, where what reaches the worker matters) and raw HTTP over real sockets."""

import base64
import gzip
import hashlib
import hmac
import json
import subprocess
import threading
import os
import re
import signal
import tempfile
import time
import unittest
import zlib

import harness as h
from test_broker import HEARTBEAT_MS, BrokerTestCase
from zmtp_peer import (GOODBYE, HEARTBEAT, REPLY, REQUEST, WELCOME, ZmtpDealer, pack,
                       unpack)

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


# ---------------------------------------------------------------------------------------
# Tokens made here with the standard library and the openssl command line tool, so that
# the gateway is checked against an independent implementation.

def b64u(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64u_json(obj):
    return b64u(json.dumps(obj, separators=(",", ":")).encode())


def openssl(*args, data=None):
    r = subprocess.run(["openssl"] + list(args), input=data, capture_output=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError("openssl %s: %s" % (" ".join(args), r.stderr.decode()))
    return r.stdout


def der_to_raw(sig):
    """An ECDSA DER signature (SEQUENCE of two INTEGERs) as JWS's r || s, 32 bytes each."""
    assert sig[0] == 0x30
    i = 2 if sig[1] < 0x80 else 3
    out = b""
    for _ in range(2):
        assert sig[i] == 0x02
        n = sig[i + 1]
        out += sig[i + 2:i + 2 + n].lstrip(b"\0").rjust(32, b"\0")
        i += 2 + n
    return out


def make_token(alg, claims, key=None, header=None):
    """A compact JWS.  key: bytes for HS256, a PEM private key path for RS256/ES256."""
    head = {"alg": alg, "typ": "JWT"}
    head.update(header or {})
    signing_input = (b64u_json(head) + "." + b64u_json(claims)).encode()
    if alg in ("HS256", "HS512"):
        digest = hashlib.sha256 if alg == "HS256" else hashlib.sha512
        sig = hmac.new(key, signing_input, digest).digest()
    elif alg == "none":
        sig = b""
    else:
        sig = openssl("dgst", "-sha256", "-sign", key, data=signing_input)
        if alg == "ES256":
            sig = der_to_raw(sig)
    return signing_input.decode() + "." + b64u(sig)


class FakeWorker:
    """A worker speaking the protocol from a thread: it answers every REQUEST 200 with
    a msgpack map of what it received (identity, header names, request id)."""

    def __init__(self, test, port, service, routes):
        self.z = ZmtpDealer("127.0.0.1", port, timeout=60)
        self.z.send(ready_routes("fake:" + service, service, routes, capacity=64))
        self.z.recv_type(WELCOME)
        self.stop = threading.Event()
        self.serve = threading.Thread(target=self._serve, daemon=True)
        self.beat = threading.Thread(target=self._beat, daemon=True)
        self.serve.start()
        self.beat.start()
        test.addCleanup(self.close)

    def _beat(self):
        while not self.stop.wait(HEARTBEAT_MS / 2000):
            try:
                self.z.send(pack([1, HEARTBEAT]))
            except OSError:
                return

    def _serve(self):
        while not self.stop.is_set():
            try:
                m = self.z.recv_msg()
            except (OSError, ConnectionError, ValueError):
                return
            if m[1] != REQUEST:
                continue
            identity = unpack(m[15]) if len(m) > 15 and m[15] else None
            body = pack({"identity": identity, "headers": [n for n, _ in m[9]],
                         "request_id": m[14] if len(m) > 14 else None})
            self.z.send(pack([1, REPLY, m[2], 200, [], "application/msgpack", body, []]))

    def close(self):
        self.stop.set()
        try:
            self.z.send(pack([1, GOODBYE, "done"]))
        except OSError:
            pass
        self.z.close()


NONE, OPTIONAL, REQUIRED = 1, 2, 3
SECRET = b"s" * 40


class Auth(EdgeTestCase):
    ROUTES = [("GET", "/open", 0, NONE, "", False),
              ("GET", "/opt", 0, OPTIONAL, "", False),
              ("GET", "/req", 0, REQUIRED, "", False),
              ("GET", "/admin", 0, REQUIRED, "admin", False),
              ("GET", "/fwd", 0, REQUIRED, "", True),
              ("GET", "/dflt", 0, 0, "", False)]

    def setUp(self):
        d = self.tmpdir()
        self.secret = os.path.join(d, "secret")
        with open(self.secret, "wb") as f:
            f.write(SECRET + b"\n")
        self.rsa = os.path.join(d, "rsa.pem")
        self.rsa_pub = os.path.join(d, "rsa.pub")
        openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                "-out", self.rsa)
        openssl("pkey", "-in", self.rsa, "-pubout", "-out", self.rsa_pub)
        self.ec = os.path.join(d, "ec.pem")
        openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-out", self.ec)
        # The EC public key as a JWK in a JWKS file, picked by kid.
        der = openssl("pkey", "-in", self.ec, "-pubout", "-outform", "DER")
        point = der[-65:]
        self.jwks = os.path.join(d, "jwks.json")
        with open(self.jwks, "w") as f:
            json.dump({"keys": [{"kty": "EC", "crv": "P-256", "kid": "ec-1", "use": "sig",
                                 "x": b64u(point[1:33]), "y": b64u(point[33:])}]}, f)
        self.api_key = "k-" + "z" * 30
        self.keys_file = os.path.join(d, "api-keys")
        with open(self.keys_file, "w") as f:
            f.write("# name sha256 scopes\n")
            f.write("robot %s read admin\n" % hashlib.sha256(self.api_key.encode()).hexdigest())
        self.start("--jwt-secret-file", self.secret, "--jwt-public-key-file", self.rsa_pub,
                   "--jwks-file", self.jwks, "--jwt-issuer", "https://issuer.example",
                   "--jwt-audience", "barista", "--api-keys-file", self.keys_file,
                   "--auth-default", "required")
        self.fake = FakeWorker(self, self.broker_port, "guarded", self.ROUTES)

    def claims(self, **kw):
        c = {"sub": "alice", "iss": "https://issuer.example", "aud": "barista",
             "exp": int(time.time()) + 600, "scope": "read write"}
        c.update(kw)
        return {k: v for k, v in c.items() if v is not None}

    def call(self, path, token=None, headers=()):
        hdrs = list(headers)
        if token:
            hdrs.append(("Authorization", "Bearer " + token))
        return self.get(path, hdrs)

    def assert_401(self, r, why):
        self.assertEqual(r.status, 401, r.body)
        self.assertEqual(r.json(), {"detail": "Could not validate credentials: " + why})
        self.assertEqual(r.header("www-authenticate"),
                         'Bearer error="invalid_token", error_description="%s"' % why)

    def test_valid_tokens_of_each_algorithm_reach_the_worker_as_an_identity(self):
        for alg, key, hdr in (("HS256", SECRET, None), ("RS256", self.rsa, None),
                              ("ES256", self.ec, {"kid": "ec-1"})):
            r = self.call("/req", make_token(alg, self.claims(role="x"), key, hdr))
            self.assertEqual(r.status, 200, (alg, r.body))
            ident = r.json()["identity"]
            self.assertEqual((ident["kind"], ident["sub"], ident["scopes"]),
                             ("jwt", "alice", ["read", "write"]), alg)
            self.assertEqual(ident["claims"]["role"], "x")
            # The raw token stays at the gateway unless the route asks for it.
            self.assertNotIn("authorization", r.json()["headers"])
        r = self.call("/fwd", make_token("HS256", self.claims(), SECRET))
        self.assertIn("authorization", r.json()["headers"])

    def test_bad_tokens_are_401(self):
        now = int(time.time())
        self.assert_401(self.call("/req", make_token("HS256", self.claims(exp=now - 300),
                                                     SECRET)), "token expired")
        self.assert_401(self.call("/req", make_token("HS256", self.claims(nbf=now + 300),
                                                     SECRET)), "token not valid yet")
        self.assert_401(self.call("/req", make_token("HS256", self.claims(aud="other"),
                                                     SECRET)), "wrong audience")
        self.assert_401(self.call("/req", make_token("HS256", self.claims(iss="evil"),
                                                     SECRET)), "wrong issuer")
        self.assert_401(self.call("/req", make_token("HS256", self.claims(exp=None),
                                                     SECRET)), "token has no exp")
        self.assert_401(self.call("/req", make_token("HS256", self.claims(), b"x" * 40)),
                        "signature verification failed")
        self.assert_401(self.call("/req", make_token("none", self.claims())),
                        "unsigned tokens are refused")
        self.assert_401(self.call("/req", make_token("HS512", self.claims(), SECRET)),
                        "unsupported algorithm")
        self.assert_401(self.call("/req", "not.a.token"), "malformed token")
        # A token whose payload was changed after signing.
        t = make_token("RS256", self.claims(), self.rsa).split(".")
        t[1] = b64u_json(self.claims(sub="mallory"))
        self.assert_401(self.call("/req", ".".join(t)), "signature verification failed")

    def test_key_confusion_is_refused(self):
        # HS256 "signed" with the RSA public key's PEM bytes as the HMAC secret: a
        # verifier that let the token pick the algorithm would accept it.
        with open(self.rsa_pub, "rb") as f:
            pem = f.read()
        self.assert_401(self.call("/req", make_token("HS256", self.claims(), pem)),
                        "signature verification failed")
        # An ES256 token naming the RSA key's family does not verify either.
        self.assert_401(self.call("/req", make_token("RS256", self.claims(), self.ec)),
                        "signature verification failed")

    def test_modes_missing_credentials_and_scopes(self):
        r = self.call("/req")
        self.assertEqual((r.status, r.json()), (401, {"detail": "Not authenticated"}))
        self.assertEqual(r.header("www-authenticate"), "Bearer")
        self.assertEqual(self.call("/dflt").status, 401)  # --auth-default required
        r = self.call("/opt")
        self.assertEqual((r.status, r.json()["identity"]), (200, None))
        r = self.call("/opt", make_token("HS256", self.claims(), SECRET))
        self.assertEqual(r.json()["identity"]["sub"], "alice")
        self.assertEqual(self.call("/opt", "garbage").status, 401)
        # NONE does not look at credentials at all.
        r = self.call("/open", "garbage")
        self.assertEqual((r.status, r.json()["identity"]), (200, None))
        r = self.call("/admin", make_token("HS256", self.claims(), SECRET))
        self.assertEqual((r.status, r.json()), (403, {"detail": "Not enough permissions"}))
        self.assertEqual(r.header("www-authenticate"),
                         'Bearer error="insufficient_scope", scope="admin"')
        r = self.call("/admin", make_token("HS256", self.claims(scope="read admin"), SECRET))
        self.assertEqual(r.status, 200)
        # The gateway's probes stay open.
        self.assertEqual(self.call("/healthz").status, 200)
        self.assertEqual(self.call("/readyz").status, 200)

    def test_api_keys_hashed_at_rest(self):
        with open(self.keys_file) as f:
            self.assertNotIn(self.api_key, f.read())
        r = self.call("/admin", headers=[("X-API-Key", self.api_key)])
        self.assertEqual(r.status, 200, r.body)
        ident = r.json()["identity"]
        self.assertEqual((ident["kind"], ident["sub"], ident["scopes"]),
                         ("api_key", "robot", ["read", "admin"]))
        self.assertNotIn("x-api-key", r.json()["headers"])
        self.assert_401(self.call("/req", headers=[("X-API-Key", self.api_key + "x")]),
                        "unknown API key")

    def test_openapi_names_the_security_schemes(self):
        doc = self.get("/openapi.json").json()
        schemes = doc["components"]["securitySchemes"]
        self.assertEqual(schemes["bearerAuth"], {"type": "http", "scheme": "bearer",
                                                 "bearerFormat": "JWT"})
        self.assertEqual(schemes["apiKeyAuth"]["name"], "X-API-Key")
        admin = doc["paths"]["/admin"]["get"]
        self.assertEqual(admin["security"], [{"bearerAuth": ["admin"]}, {"apiKeyAuth": []}])
        self.assertIn("401", admin["responses"])
        self.assertIn("403", admin["responses"])
        self.assertEqual(doc["paths"]["/opt"]["get"]["security"][-1], {})
        # --auth-default required: the document's own requirement, which /dflt follows
        # (no requirement of its own) and the open routes lift with an empty list.
        self.assertEqual(doc["security"], [{"bearerAuth": []}, {"apiKeyAuth": []}])
        self.assertNotIn("security", doc["paths"]["/dflt"]["get"])
        self.assertEqual(doc["paths"]["/open"]["get"]["security"], [])
        for path in ("/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"):
            self.assertEqual(doc["paths"][path]["get"]["security"], [], path)
        self.assertNotIn("security", doc["paths"]["/jobs/{id}"]["get"])
        self.assertIn("id='token'", self.get("/docs").body.decode())

    def test_subject_in_the_access_log(self):
        self.call("/req", make_token("HS256", self.claims(sub="bob"), SECRET),
                  [("X-Request-ID", "sub-1")])
        line = self.wait_log(lambda l: "rid=sub-1" in l)[0]
        self.assertTrue(line.startswith("127.0.0.1 - bob ["), line)

    def test_bad_key_files_exit_with_one_line(self):
        short = os.path.join(self.tmpdir(), "short")
        with open(short, "w") as f:
            f.write("tooshort")
        for args in (["--jwt-secret-file", short], ["--jwt-public-key-file", short],
                     ["--jwks-file", short], ["--api-keys-file", self.rsa_pub],
                     ["--auth-default", "maybe"]):
            r = h.run([h.binary("barista-gateway"), "--listen", "127.0.0.1:%d" % h.free_port(),
                       "--broker", "tcp://127.0.0.1:*"] + args, timeout=30)
            self.assertNotEqual(r.returncode, 0, args)
            self.assertIn(args[0], r.stderr, args)


class RateLimits(EdgeTestCase):
    def test_per_ip_limit_across_pipelined_requests(self):
        self.start("--rate-limit-ip", "2", "--rate-limit-burst", "2", workers=["hello"])
        time.sleep(2.2)  # the bucket refills after start()'s /readyz polls
        with self.gw.client() as c:
            c.send(b"".join(h.build_request("GET", "/hello") for _ in range(8)))
            rs = [c.read_response() for _ in range(8)]
        codes = [r.status for r in rs]
        self.assertEqual(codes[:4], [200] * 4, codes)
        self.assertIn(429, codes[4:])
        limited = rs[codes.index(429)]
        self.assertEqual(limited.json(), {"detail": "Too Many Requests"})
        self.assertGreaterEqual(int(limited.header("retry-after")), 1)
        self.assertEqual(limited.header("ratelimit-limit"), "4")
        self.assertEqual(limited.header("ratelimit-remaining"), "0")
        self.assertIsNotNone(limited.header("ratelimit-reset"))
        self.assertEqual(rs[0].header("ratelimit-remaining"), "3")
        # Tokens come back with time.
        time.sleep(1.2)
        self.assertEqual(self.get("/hello").status, 200)

    def test_per_route_limit_spares_other_routes(self):
        self.start("--rate-limit-route", "1", "--rate-limit-burst", "1", workers=["hello"])
        self.assertEqual(self.get("/hello").status, 200)
        self.assertEqual(self.get("/hello").status, 429)
        self.assertEqual(self.get("/hello/x").status, 200)


class TrustedProxies(EdgeTestCase):
    def client_in_log(self, rid, headers):
        self.get("/hello", [("X-Request-ID", rid)] + headers)
        return self.wait_log(lambda l: "rid=%s " % rid in l)[0].split(" ")[0]

    def test_forwarded_for_is_believed_only_from_trusted_proxies(self):
        self.start("--trusted-proxies", "127.0.0.1, 10.0.0.0/8", workers=["hello"])
        self.assertEqual(self.client_in_log("p1", [("X-Forwarded-For", "203.0.113.7")]),
                         "203.0.113.7")
        # Trusted hops on the right are skipped; the first untrusted one is the client.
        self.assertEqual(self.client_in_log(
            "p2", [("X-Forwarded-For", "198.51.100.1, 203.0.113.9, 10.1.2.3")]), "203.0.113.9")
        self.assertEqual(self.client_in_log(
            "p3", [("Forwarded", 'for=192.0.2.60;proto=http, for="[2001:db8::17]:4711"')]),
            "2001:db8::17")
        self.assertEqual(self.client_in_log("p4", [("X-Forwarded-For", "garbage")]),
                         "127.0.0.1")

    def test_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored(self):
        self.start("--trusted-proxies", "10.0.0.0/8", "--rate-limit-ip", "1",
                   "--rate-limit-burst", "1", workers=["hello"])
        time.sleep(1.1)  # the bucket refills after start()'s /readyz polls
        self.assertEqual(self.client_in_log("s1", [("X-Forwarded-For", "203.0.113.7")]),
                         "127.0.0.1")
        # A client cannot escape its rate-limit bucket by naming another address.
        r = self.get("/hello", [("X-Forwarded-For", "198.51.100.99")])
        self.assertEqual(r.status, 429)

    def test_bad_proxy_list_exits_2(self):
        r = h.run([h.binary("barista-gateway"), "--listen", "127.0.0.1:%d" % h.free_port(),
                   "--broker", "tcp://127.0.0.1:*", "--trusted-proxies", "10.0.0.0/99"],
                  timeout=30)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("--trusted-proxies", r.stderr)


class CallsCarryIdentity(EdgeTestCase):
    """A real worker's CALLs carry its request's id and verified identity on: the
    dashboard (real) calls /sleep, served by a fake worker that sees the REQUEST."""

    def test_request_id_and_identity_travel_through_calls(self):
        d = self.tmpdir()
        secret = os.path.join(d, "secret")
        with open(secret, "wb") as f:
            f.write(SECRET)
        self.start("--jwt-secret-file", secret, "--auth-default", "optional")
        self.worker("dashboard")
        self.wait_joined(1)
        with ZmtpDealer("127.0.0.1", self.broker_port) as z:
            z.send(ready_routes("fake:sleep", "sleep", [("GET", "/sleep", 0, 0, "", False)]))
            z.recv_type(WELCOME)
            token = make_token("HS256", {"sub": "carol", "exp": int(time.time()) + 600,
                                         "scope": "read"}, SECRET)
            join = self.in_background(lambda: self.get(
                "/dashboard?timeout_ms=2000",
                [("X-Request-ID", "dash-1"), ("Authorization", "Bearer " + token)]))
            req = z.recv_type(REQUEST)
            self.assertEqual(req[6], "/sleep")
            self.assertEqual(req[14], "dash-1")
            ident = unpack(req[15])
            self.assertEqual((ident["kind"], ident["sub"], ident["scopes"]),
                             ("jwt", "carol", ["read"]))
            z.send(pack([1, REPLY, req[2], 200, [], "application/msgpack",
                         pack({"slept_ms": 100}), []]))
            r = join()
            self.assertEqual(r.status, 200, r.body)
            self.assertEqual(r.header("x-request-id"), "dash-1")
            z.send(pack([1, GOODBYE, "done"]))


if __name__ == "__main__":
    unittest.main()
