"""The HTTP front's hardening (issue 13, items 6-10), end to end: a real barista-gateway
on a loopback port, raw bytes over real sockets.  Each test failed before the fix it
names: obs-fold with an empty first line, bare LF where llhttp 8.1 is lenient, HTTP/1.0
with Transfer-Encoding, chunk extensions and framing, whitespace in the head, and the
budget for request bodies held by all connections together."""

import socket
import time
import unittest

from harness import build_request, poll_until, start_gateway

HEALTHZ = build_request("GET", "/healthz")
# Bound on every wait for something that should happen in well under a second.
WAIT = 10.0


def refused_alone(test, c, status=400):
    """Reads one answer: `status`, FastAPI-shaped, Connection: close; then the server
    closes without answering anything that followed on the connection."""
    r = c.read_response()
    test.assertEqual(r.status, status, r.body)
    test.assertIsInstance(r.json()["detail"], str)
    test.assertEqual(r.header("connection"), "close")
    test.assertTrue(c.closed_by_server(), "something followed the refusal")
    return r


class ObsFoldWithEmptyFirstLine(unittest.TestCase):
    """Item 6: `Name:` CRLF SP value is one folded header to llhttp, which reports it as a
    single piece, so the gateway's piece counting never saw it."""

    def setUp(self):
        self.gw = start_gateway(self)

    def test_folded_transfer_encoding_never_frames_a_body(self):
        with self.gw.client() as c:
            # Were it read as chunked, the body would end at 0 CRLF CRLF and the
            # GET after it would be answered as a second request.
            c.send(b"POST /healthz HTTP/1.1\r\nHost: t\r\nTransfer-Encoding:\r\n chunked\r\n\r\n"
                   b"5\r\nhello\r\n0\r\n\r\n" + HEALTHZ)
            r = refused_alone(self, c)
            self.assertIn("folding", r.json()["detail"])

    def test_folded_host_is_refused(self):
        with self.gw.client() as c:
            c.send(b"GET /healthz HTTP/1.1\r\nHost:\r\n evil.example\r\n\r\n" + HEALTHZ)
            refused_alone(self, c)

    def test_fold_after_a_blank_value_with_a_tab_is_refused(self):
        with self.gw.client() as c:
            c.send(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-A: \t \r\n\tb\r\n\r\n" + HEALTHZ)
            refused_alone(self, c)


class BareLineFeed(unittest.TestCase):
    """Item 7: a bare LF ending the request line or the head was accepted."""

    def setUp(self):
        self.gw = start_gateway(self)

    def test_bare_lf_after_the_request_line_is_refused(self):
        with self.gw.client() as c:
            c.send(b"GET /healthz HTTP/1.1\nHost: t\r\n\r\n" + HEALTHZ)
            r = refused_alone(self, c)
            self.assertIn("LF", r.json()["detail"])

    def test_bare_lf_ending_the_head_is_refused(self):
        with self.gw.client() as c:
            c.send(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\n" + HEALTHZ)
            refused_alone(self, c)

    def test_bare_lf_ending_the_trailers_is_refused(self):
        with self.gw.client() as c:
            c.send(b"POST /healthz HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"1\r\nx\r\n0\r\nX-T: 1\r\n\n" + HEALTHZ)
            refused_alone(self, c)

    def test_bare_lf_at_the_start_of_a_read_is_refused(self):
        # The scanner carries "the last byte was CR" from one read to the next.
        with self.gw.client() as c:
            c.send(b"GET /healthz HTTP/1.1")
            time.sleep(0.05)
            c.send(b"\nHost: t\r\n\r\n" + HEALTHZ)
            refused_alone(self, c)

    def test_crlf_split_between_reads_is_fine(self):
        with self.gw.client() as c:
            for piece in (b"GET /healthz HTTP/1.1\r", b"\nHost: t\r", b"\n\r", b"\n"):
                c.send(piece)
                time.sleep(0.05)
            self.assertEqual(c.read_response().status, 200)
            self.assertEqual(c.request("GET", "/healthz").status, 200)

    def test_empty_lines_before_a_request_are_skipped_when_crlf(self):
        with self.gw.client() as c:
            c.send(b"\r\n\r\n" + HEALTHZ)
            self.assertEqual(c.read_response().status, 200)


class Http10TransferEncoding(unittest.TestCase):
    """Item 8: HTTP/1.0 with Transfer-Encoding: chunked was decoded and kept alive."""

    def test_http10_chunked_is_400_and_closes(self):
        gw = start_gateway(self)
        with gw.client() as c:
            c.send(b"POST /healthz HTTP/1.0\r\nTransfer-Encoding: chunked\r\n"
                   b"Connection: keep-alive\r\n\r\n0\r\n\r\n" + HEALTHZ)
            r = refused_alone(self, c)
            self.assertIn("HTTP/1.0", r.json()["detail"])

    def test_http10_proxy_connection_is_not_connection(self):
        # llhttp reads Proxy-Connection as Connection; a proxy in front need not.
        gw = start_gateway(self)
        with gw.client() as c:
            c.send(b"GET /healthz HTTP/1.0\r\nProxy-Connection: keep-alive\r\n\r\n" + HEALTHZ)
            r = c.read_response()
            self.assertEqual((r.status, r.header("connection")), (200, "close"))
            self.assertTrue(c.closed_by_server())

    def test_http10_close_beside_keep_alive_closes(self):
        gw = start_gateway(self)
        with gw.client() as c:
            c.send(b"GET /healthz HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n" + HEALTHZ)
            r = c.read_response()
            self.assertEqual((r.status, r.header("connection")), (200, "close"))
            self.assertTrue(c.closed_by_server())


class ChunkLines(unittest.TestCase):
    """Item 9: chunk extensions (and zeros padding a chunk size) were unlimited, and
    every read of them kept the body timer going."""

    HEAD = b"POST /healthz HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"

    def test_extensions_past_the_default_limit_are_refused(self):
        gw = start_gateway(self)
        with gw.client() as c:
            c.send(self.HEAD + b"1;" + b"e" * 8192 + b"\r\nx\r\n0\r\n\r\n" + HEALTHZ)
            r = refused_alone(self, c)
            self.assertIn("chunk", r.json()["detail"])

    def test_extension_bytes_count_exactly_across_chunks(self):
        # --max-chunk-ext-bytes counts every byte from ';' to the line's CR, summed
        # over the chunks of one request.
        gw = start_gateway(self, "--max-chunk-ext-bytes", "1k")
        with gw.client() as c:
            body = b"1;" + b"a" * 511 + b"\r\nx\r\n" + b"1;" + b"b" * 511 + b"\r\ny\r\n0\r\n\r\n"
            c.send(self.HEAD + body + HEALTHZ)  # 512 + 512 = 1024 bytes: at the limit
            self.assertEqual(c.read_response().status, 405)
            self.assertEqual(c.read_response().status, 200)
        with gw.client() as c:
            body = b"1;" + b"a" * 511 + b"\r\nx\r\n" + b"1;" + b"b" * 512 + b"\r\ny\r\n0\r\n\r\n"
            c.send(self.HEAD + body + HEALTHZ)  # 1025 bytes
            refused_alone(self, c)

    def test_zeros_padding_a_chunk_size_count_too(self):
        gw = start_gateway(self, "--max-chunk-ext-bytes", "1k")
        with gw.client() as c:
            c.send(self.HEAD + b"0" * 1000 + b"1\r\nx\r\n0\r\n\r\n" + HEALTHZ)
            self.assertEqual(c.read_response().status, 405)
            self.assertEqual(c.read_response().status, 200)
        with gw.client() as c:
            c.send(self.HEAD + b"0" * 100000 + b"1\r\nx\r\n0\r\n\r\n" + HEALTHZ)
            refused_alone(self, c)

    def test_chunk_framing_alone_does_not_extend_the_body_timeout(self):
        gw = start_gateway(self, "--body-timeout", "500ms")
        with gw.client() as c:
            c.send(self.HEAD + b"1;")
            got = None
            c.sock.settimeout(0.1)
            # Up to 5 s of one extension byte every 100 ms (50 bytes, far below the
            # limit): each read used to re-arm the 500 ms timer, so no 408 came.
            for _ in range(50):
                try:
                    c.send(b"e")
                except OSError:
                    break
                try:
                    got = c.sock.recv(65536)
                    break
                except socket.timeout:
                    pass
            self.assertIsNotNone(got, "no answer while framing kept arriving")
            self.assertTrue(got.startswith(b"HTTP/1.1 408 "), got)

    def test_body_bytes_keep_a_slow_chunked_upload_alive(self):
        gw = start_gateway(self, "--body-timeout", "500ms")
        with gw.client() as c:
            c.send(self.HEAD)
            for _ in range(12):  # 1.2 s in all, 100 ms between data bytes
                c.send(b"1\r\nx\r\n")
                time.sleep(0.1)
            c.send(b"0\r\n\r\n")
            self.assertEqual(c.read_response().status, 405)


class HeadBytes(unittest.TestCase):
    """Item 9: whitespace before a header value was not counted toward the limit; now
    --max-header-bytes bounds every byte of the head."""

    def head(self, spaces):
        # 23 + 12 + 4 + spaces + 3 + 2 = 44 + spaces bytes.
        return (b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-A:" + b" " * spaces + b"v\r\n\r\n")

    def test_whitespace_before_a_value_counts(self):
        gw = start_gateway(self, "--max-header-bytes", "1k")
        with gw.client() as c:
            c.send(self.head(980))  # 1024 bytes
            self.assertEqual(c.read_response().status, 200)
        with gw.client() as c:
            c.send(self.head(981))
            refused_alone(self, c, 431)
        with gw.client() as c:
            c.send(self.head(5000))
            refused_alone(self, c, 431)


class BodyBuffer(unittest.TestCase):
    """Item 10: request bodies held by all connections together have a budget
    (--max-body-buffer); past it a body is answered 503 + Retry-After instead of being
    buffered."""

    BUDGET = 64 * 1024

    def post(self, n):
        return build_request("POST", "/healthz", [("Content-Type", "text/plain")], b"x" * n)

    def test_bodies_past_the_budget_get_503_and_come_back_once_freed(self):
        gw = start_gateway(self, "--max-body-buffer", "64k")
        holder = gw.client()
        self.addCleanup(holder.close)
        # 60 KiB of a 100 KB body, held: the request is never complete.
        holder.send(b"POST /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n"
                    + b"h" * (60 * 1024))

        def refused():
            with gw.client() as c:
                c.send(self.post(10000))
                r = c.read_response()
                if r.status == 503:
                    return r
                self.assertEqual(r.status, 405)  # read before the holder's bytes
                return None

        r = poll_until(refused, WAIT)
        self.assertIsNotNone(r, "a body past the budget was buffered")
        self.assertEqual(r.header("retry-after"), "1")
        self.assertEqual(r.header("connection"), "close")
        self.assertIn("retry", r.json()["detail"])
        # Bodyless requests are unaffected.
        with gw.client() as c:
            self.assertEqual(c.request("GET", "/healthz").status, 200)
        holder.close()

        def served():
            with gw.client() as c:
                c.send(self.post(10000))
                return c.read_response().status == 405

        self.assertTrue(poll_until(served, WAIT), "the holder's budget never came back")

    def test_answered_bodies_give_their_budget_back(self):
        gw = start_gateway(self, "--max-body-buffer", "64k")
        with gw.client() as c:
            for _ in range(20):  # 20 x 40 KB through a 64 KiB budget, one at a time
                c.send(self.post(40000))
                self.assertEqual(c.read_response().status, 405)


if __name__ == "__main__":
    unittest.main()
