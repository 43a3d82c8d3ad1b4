"""Streamed responses end to end: the real gateway, a real barista-worker hosting the
`clock` service, real HTTP clients (http.client, raw sockets, curl).

Covers: a chunked stream arriving complete and in order; Server-Sent Events that parse;
HTTP/1.0 clients getting a close-delimited body; gzip and brotli streams decompressing
to the same bytes, with each event flushed as it comes; a client that leaves mid-stream
reaching the worker as a cancel; a worker killed mid-stream leaving its client with a
truncated body; an idle stream cut by --stream-idle-timeout; and a client that stops
reading keeping the gateway's memory bounded (RSS compared, not time)."""

import http.client
import json
import os
import signal
import socket
import subprocess
import unittest
import zlib

import harness as h
from test_broker import HEARTBEAT_MS, WAIT, BrokerTestCase

LINE = "%09d abcdefghijklmnopqrstuvwxyz\n"

# In sanitizer builds, freed memory waits in ASan's quarantine (256 MB by default)
# before it is reused, so a stream of many chunks would grow the RSS by the quarantine,
# not by anything the gateway holds.  A small quarantine keeps RSS meaningful; it is
# ignored by builds without ASan.
os.environ.setdefault("ASAN_OPTIONS",
                      "detect_leaks=1:abort_on_error=0:quarantine_size_mb=4")


def expected_lines(n):
    return "".join(LINE % i for i in range(n)).encode()


def parse_sse(text):
    """Events of an event stream as dicts of their fields (data lines joined by LF),
    in order; a `retry` block is an event too."""
    events = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        if not block.strip():
            continue
        ev = {}
        for line in block.split("\n"):
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data" and "data" in ev:
                ev["data"] += "\n" + value
            else:
                ev[name] = value
        events.append(ev)
    return events


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for %d" % pid)


class StreamTestCase(BrokerTestCase):
    def setUp(self):
        self.procs = self.start(*self.gateway_args(), workers=["clock"])

    def gateway_args(self):
        return ()

    def conn(self, timeout=h.IO_TIMEOUT):
        c = http.client.HTTPConnection("127.0.0.1", self.gw.port, timeout=timeout)
        self.addCleanup(c.close)
        return c

    def stats(self):
        r = self.get("/clock/stats")
        self.assertEqual(r.status, 200, r)
        return r.json()

    def raw(self, request, timeout=h.IO_TIMEOUT):
        s = socket.create_connection(("127.0.0.1", self.gw.port), timeout=timeout)
        self.addCleanup(s.close)
        s.sendall(request)
        return s

    def read_until(self, s, marker, got=b""):
        while marker not in got:
            more = s.recv(65536)
            if not more:
                self.fail("connection closed before %r; got %r" % (marker, got[-200:]))
            got += more
        return got

    def read_slowly(self, path, lines):
        """GETs path?n=lines (the clock's lines, directly or relayed) on a socket that
        stops reading for 3 s, then reads it all; the gateway's RSS must stay within
        32 MiB of what it was before, meanwhile and after.  Returns (base, peak) KiB."""
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        s.settimeout(h.IO_TIMEOUT)
        s.connect(("127.0.0.1", self.gw.port))
        self.addCleanup(s.close)
        self.get("%s?n=1000" % path)  # warm up the gateway's buffers
        base = rss_kib(self.gw.pid)
        s.sendall(b"GET %s?n=%d HTTP/1.1\r\nHost: t\r\n\r\n" % (path.encode(), lines))
        got = self.read_until(s, b"\r\n\r\n")
        # Stop reading while the worker could produce the whole body many times over;
        # sample the gateway's RSS meanwhile.
        peak = base
        for _ in range(60):
            peak = max(peak, rss_kib(self.gw.pid))
            h.poll_until(lambda: False, 0.05)
        self.assertLess(peak - base, 32 * 1024,
                        "gateway RSS grew %d KiB while its client did not read" % (peak - base))
        # Then read it all: nothing was lost or reordered by the pause.
        total = len(got) - got.index(b"\r\n\r\n") - 4
        tail = got[-4096:]
        while not tail.endswith(b"\r\n0\r\n\r\n"):
            more = s.recv(1 << 20)
            self.assertTrue(more, "closed early after %d bytes" % total)
            total += len(more)
            tail = (tail + more)[-4096:]
            peak = max(peak, rss_kib(self.gw.pid))
        self.assertLess(peak - base, 32 * 1024)
        self.assertIn((LINE % (lines - 1)).encode(), tail)
        self.assertGreater(total, lines * len(LINE % 0))
        return base, peak

    def read_to_close(self, s):
        got = b""
        while True:
            try:
                more = s.recv(65536)
            except ConnectionResetError:
                break
            if not more:
                break
            got += more
        return got


class StreamTest(StreamTestCase):
    def test_sse_events_arrive_in_order_and_parse(self):
        c = self.conn()
        c.request("GET", "/clock?n=5&interval_ms=20")
        r = c.getresponse()
        self.assertEqual(r.status, 200)
        self.assertEqual(r.getheader("content-type"), "text/event-stream")
        self.assertEqual(r.getheader("transfer-encoding"), "chunked")
        self.assertEqual(r.getheader("cache-control"), "no-cache")
        self.assertIsNone(r.getheader("content-length"))
        events = parse_sse(r.read().decode())
        self.assertEqual(events[0], {"retry": "1000"})
        ticks = events[1:]
        self.assertEqual([e["id"] for e in ticks], ["0", "1", "2", "3", "4"])
        self.assertTrue(all(e["event"] == "tick" for e in ticks))
        self.assertEqual([json.loads(e["data"]) for e in ticks],
                         [{"seq": i, "n": 5} for i in range(5)])
        # The connection carries the next request after a complete stream.
        c.request("GET", "/clock/stats")
        r = c.getresponse()
        self.assertEqual(json.loads(r.read())["completed"], 1)

    def test_chunked_stream_arrives_complete_and_in_order(self):
        c = self.conn()
        c.request("GET", "/clock/lines?n=50000")
        r = c.getresponse()
        self.assertEqual(r.status, 200)
        self.assertEqual(r.getheader("transfer-encoding"), "chunked")
        self.assertEqual(r.read(), expected_lines(50000))

    def test_http10_client_gets_a_close_delimited_body(self):
        s = self.raw(b"GET /clock/lines?n=300 HTTP/1.0\r\n\r\n")
        got = self.read_to_close(s)
        head, _, body = got.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 200"), head)
        self.assertNotIn(b"transfer-encoding", head.lower())
        self.assertNotIn(b"content-length", head.lower())
        self.assertEqual(body, expected_lines(300))

    def test_head_gets_the_headers_only(self):
        c = self.conn()
        c.request("HEAD", "/clock/lines?n=10")
        r = c.getresponse()
        self.assertEqual(r.status, 200)
        self.assertEqual(r.read(), b"")
        c.request("GET", "/clock/lines?n=3")
        self.assertEqual(c.getresponse().read(), expected_lines(3))

    def test_gzip_stream_decompresses_to_the_same_bytes(self):
        c = self.conn()
        c.request("GET", "/clock/lines?n=20000", headers={"Accept-Encoding": "gzip"})
        r = c.getresponse()
        self.assertEqual(r.getheader("content-encoding"), "gzip")
        self.assertIn("Accept-Encoding", r.getheader("vary", ""))
        body = r.read()
        self.assertLess(len(body), len(expected_lines(20000)) // 4)
        self.assertEqual(zlib.decompress(body, 16 + zlib.MAX_WBITS), expected_lines(20000))

    def test_brotli_stream_decompresses_to_the_same_bytes(self):
        out = subprocess.run(
            ["curl", "-sS", "--compressed", "-H", "Accept-Encoding: br", "-D", "-",
             "http://127.0.0.1:%d/clock/lines?n=5000" % self.gw.port],
            capture_output=True, timeout=WAIT, check=True).stdout
        head, _, body = out.partition(b"\r\n\r\n")
        self.assertIn(b"content-encoding: br", head.lower())
        self.assertEqual(body, expected_lines(5000))

    def test_gzip_event_is_flushed_before_the_next_one(self):
        # The second event comes a minute after the first: the first must decompress
        # on its own, so the compressor flushed it.
        s = self.raw(b"GET /clock?n=2&interval_ms=60000 HTTP/1.1\r\nHost: t\r\n"
                     b"Accept-Encoding: gzip\r\n\r\n")
        got = self.read_until(s, b"\r\n\r\n")
        head, _, rest = got.partition(b"\r\n\r\n")
        self.assertIn(b"content-encoding: gzip", head.lower())
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        plain = b""
        buf = rest
        while b"id: 0" not in plain or not plain.endswith(b"\n\n"):
            # Take whole chunks off buf, reading more when a chunk is incomplete.
            line_end = buf.find(b"\r\n")
            if line_end < 0 or len(buf) < line_end + 2 + int(buf[:line_end], 16) + 2:
                more = s.recv(65536)
                self.assertTrue(more, "closed before the first event; got %r" % plain)
                buf += more
                continue
            size = int(buf[:line_end], 16)
            plain += d.decompress(buf[line_end + 2:line_end + 2 + size])
            buf = buf[line_end + 2 + size + 2:]
        self.assertIn(b"event: tick\n", plain)

    def test_client_leaving_mid_stream_cancels_the_worker(self):
        s = self.raw(b"GET /clock?n=100000&interval_ms=20 HTTP/1.1\r\nHost: t\r\n\r\n")
        self.read_until(s, b"id: 1\n")
        s.close()
        self.wait_until(lambda: self.stats()["cancelled"] == 1, "the worker's cancel")
        st = self.stats()
        self.assertEqual(st["started"], 1)
        self.assertEqual(st["completed"], 0)
        # The cancelled stream's credit came back: the worker still serves.
        self.assertEqual(self.get("/clock/lines?n=2").body, expected_lines(2))

    def test_worker_killed_mid_stream_truncates_the_body(self):
        s = self.raw(b"GET /clock?n=100000&interval_ms=20 HTTP/1.1\r\nHost: t\r\n\r\n")
        got = self.read_until(s, b"id: 2\n")
        self.procs[0].kill()
        got += self.read_to_close(s)
        self.assertTrue(got.startswith(b"HTTP/1.1 200"), got[:100])
        self.assertIn(b"Transfer-Encoding: chunked", got)
        # No terminating chunk: the client can tell the body is incomplete.
        self.assertFalse(got.endswith(b"\r\n0\r\n\r\n"), got[-100:])
        c = self.conn()
        c.request("GET", "/clock?n=100000&interval_ms=20")
        # http.client sees the same: a started stream whose worker is gone never ends
        # cleanly (here the service has no worker left: 503 before any byte).
        r = c.getresponse()
        self.assertEqual(r.status, 503)

    def test_slow_reader_keeps_gateway_memory_bounded(self):
        self.read_slowly("/clock/lines", 3000000)  # 111 MB: more than any buffer on the way


class StreamIdleTest(StreamTestCase):
    def gateway_args(self):
        return ("--stream-idle-timeout", "300ms")

    def test_idle_stream_is_cut_and_its_worker_cancelled(self):
        s = self.raw(b"GET /clock?n=2&interval_ms=60000 HTTP/1.1\r\nHost: t\r\n\r\n")
        got = self.read_until(s, b"id: 0\n")
        got += self.read_to_close(s)
        self.assertNotIn(b"id: 1\n", got)
        self.assertFalse(got.endswith(b"0\r\n\r\n"), got[-60:])
        self.wait_until(lambda: self.stats()["cancelled"] == 1, "the worker's cancel")


if __name__ == "__main__":
    unittest.main()
