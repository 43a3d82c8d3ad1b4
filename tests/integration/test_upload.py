"""Streamed request bodies end to end: the real gateway, a real barista-worker hosting
the `upload` service (POST /upload/hash answers {"bytes", "sha256"} of the body it
received piece by piece), real clients (http.client, raw sockets, curl).

Covers: a 300 MiB body hashed correctly while the gateway's RSS stays flat (compared
with its RSS before, not timed); chunked bodies; curl's Expect: 100-continue; the
route's cap answered 413 before (Content-Length) and while (chunked) the body is read;
and the connection serving the next request after a streamed body."""

import hashlib
import http.client
import os
import subprocess
import tempfile
import threading
import unittest

import harness as h
from test_broker import WAIT, BrokerTestCase

# See test_stream.py: ASan's quarantine would otherwise dominate RSS.
os.environ.setdefault("ASAN_OPTIONS",
                      "detect_leaks=1:abort_on_error=0:quarantine_size_mb=4")

MIB = 1024 * 1024


def blocks(total, size=MIB):
    """total bytes of a fixed pseudo-random pattern, in pieces of `size`."""
    seed = hashlib.sha256(b"barista").digest() * (size // 32)
    sent = 0
    i = 0
    while sent < total:
        n = min(size, total - sent)
        piece = bytes([i & 0xff]) + seed[1:n]
        yield piece[:n]
        sent += n
        i += 1


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


class UploadTestCase(BrokerTestCase):
    def setUp(self):
        self.procs = self.start(*self.gateway_args(), workers=["upload"])

    def gateway_args(self):
        return ()

    def post(self, body_iter, length=None, timeout=120):
        c = http.client.HTTPConnection("127.0.0.1", self.gw.port, timeout=timeout)
        self.addCleanup(c.close)
        headers = {"Content-Type": "application/octet-stream"}
        if length is not None:
            headers["Content-Length"] = str(length)
        c.request("POST", "/upload/hash", body=body_iter, headers=headers,
                  encode_chunked=length is None)
        r = c.getresponse()
        return c, r, r.read()


class UploadTest(UploadTestCase):
    def test_300_mib_body_is_hashed_with_flat_gateway_memory(self):
        total = 300 * MIB
        digest = hashlib.sha256()
        base = rss_kib(self.gw.pid)
        peak = [base]
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                peak[0] = max(peak[0], rss_kib(self.gw.pid))
                stop.wait(0.05)

        t = threading.Thread(target=sample, daemon=True)
        t.start()

        def body():
            for piece in blocks(total):
                digest.update(piece)
                yield piece

        try:
            _, r, data = self.post(body(), length=total, timeout=600)
        finally:
            stop.set()
            t.join()
        self.assertEqual(r.status, 200, data)
        import json
        got = json.loads(data)
        self.assertEqual(got, {"bytes": total, "sha256": digest.hexdigest()})
        self.assertLess(peak[0] - base, 32 * 1024,
                        "gateway RSS grew %d KiB for a %d MiB body" % (peak[0] - base,
                                                                       total // MIB))

    def test_chunked_body_and_the_next_request_on_the_connection(self):
        pieces = [b"a" * 1000, b"b" * 70000, b"", b"c" * 5]
        c, r, data = self.post(iter([p for p in pieces if p]))
        self.assertEqual(r.status, 200, data)
        want = hashlib.sha256(b"".join(pieces)).hexdigest()
        self.assertIn(want.encode(), data)
        c.request("POST", "/upload/hash", body=b"xyz",
                  headers={"Content-Type": "application/octet-stream"})
        r = c.getresponse()
        self.assertIn(hashlib.sha256(b"xyz").hexdigest().encode(), r.read())

    def test_curl_with_expect_100_continue(self):
        with tempfile.NamedTemporaryFile() as f:
            for piece in blocks(3 * MIB):
                f.write(piece)
            f.flush()
            with open(f.name, "rb") as g:
                want = hashlib.sha256(g.read()).hexdigest()
            out = subprocess.run(
                ["curl", "-sS", "-v", "--data-binary", "@" + f.name, "-H",
                 "Content-Type: application/octet-stream",
                 "http://127.0.0.1:%d/upload/hash" % self.gw.port],
                capture_output=True, timeout=WAIT * 3)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn(b"Expect: 100-continue", out.stderr)
        self.assertIn(b"100 Continue", out.stderr)
        self.assertIn(want.encode(), out.stdout)


    def test_curl_form_gives_fields_and_hashes_streamed_files(self):
        with tempfile.TemporaryDirectory() as d:
            big = os.path.join(d, "big.bin")
            with open(big, "wb") as f:
                for piece in blocks(20 * MIB):
                    f.write(piece)
            with open(big, "rb") as f:
                big_sha = hashlib.sha256(f.read()).hexdigest()
            note = os.path.join(d, "note.txt")
            with open(note, "wb") as f:
                f.write(b"two\nlines\r\n")
            out = subprocess.run(
                ["curl", "-sS", "-F", "title=Hello, form", "-F", "big=@" + big,
                 "-F", "note=@%s;type=text/plain" % note, "-F", "empty=",
                 "http://127.0.0.1:%d/upload/form" % self.gw.port],
                capture_output=True, timeout=WAIT * 3)
        self.assertEqual(out.returncode, 0, out.stderr)
        import json
        parts = json.loads(out.stdout)["parts"]
        self.assertEqual(parts, [
            {"name": "title", "value": "Hello, form"},
            {"name": "big", "filename": "big.bin", "content_type": "application/octet-stream",
             "bytes": 20 * MIB, "sha256": big_sha},
            {"name": "note", "filename": "note.txt", "content_type": "text/plain",
             "bytes": 11, "sha256": hashlib.sha256(b"two\nlines\r\n").hexdigest()},
            {"name": "empty", "value": ""},
        ])

    def test_form_that_is_not_multipart_is_415(self):
        c = http.client.HTTPConnection("127.0.0.1", self.gw.port, timeout=h.IO_TIMEOUT)
        self.addCleanup(c.close)
        c.request("POST", "/upload/form", body=b"a=1",
                  headers={"Content-Type": "application/x-www-form-urlencoded"})
        r = c.getresponse()
        self.assertEqual(r.status, 415, r.read())


class UploadCapTest(UploadTestCase):
    def gateway_args(self):
        return ("--stream-body-max", "1m")

    def test_content_length_over_the_cap_is_413_before_the_body(self):
        s = h.HttpClient(self.gw.port)
        self.addCleanup(s.close)
        s.send(b"POST /upload/hash HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % (2 * MIB))
        r = s.read_response()
        self.assertEqual(r.status, 413)

    def test_chunked_body_over_the_cap_is_413(self):
        _, r, data = self.post(blocks(2 * MIB, 64 * 1024))
        self.assertEqual(r.status, 413, data)
        # The worker let the request go (its credit came back): it still serves.
        _, r, data = self.post(iter([b"ok"]), length=2)
        self.assertEqual(r.status, 200, data)


if __name__ == "__main__":
    unittest.main()
