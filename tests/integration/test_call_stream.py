"""A CALL whose target answers with a stream (PROTOCOL.md 5.15.1, 10.1), end to end:
the real gateway, the real clock worker (workers/services/clock.c, GET /clock/lines
streams numbered lines) as the target, and as callers the real relay worker
(workers/services/relay.c) and hand-written protocol peers (zmtp_peer) where exact
messages matter.

Covers: a caller that asks for no stream gets the stream gathered into one REPLY; an
answer past --call-gather-max is a 502 naming the limit and the target sees its
cancel; an older caller (no features) still gets the gathered REPLY; a streamed call
(br_call_stream) receives every chunk in order, also past the gather bound; the
gateway never sends a streaming caller more than it granted; a caller leaving
mid-stream reaches the target as a cancel; an idle streamed answer is cut with 504
and the target cancelled; and a relay whose client stops reading keeps the gateway's
memory bounded (RSS compared, not time)."""

import unittest

import harness as h
# test_stream also sets the small ASan quarantine that keeps RSS meaningful.
from test_stream import LINE, StreamTestCase, expected_lines
from zmtp_peer import CALL, REPLY, WELCOME, ZmtpDealer, pack, unpack

LINE_LEN = len(LINE % 0)

CALL_STREAM_START, CALL_STREAM_CHUNK, CALL_STREAM_END, CALL_STREAM_WINDOW = 24, 25, 26, 27
FEATURE_CALL_STREAM = 2


def call_msg(call_id, path, query, stream_window=None, deadline_ms=20000):
    """CALL [v, 9, id, service, route, method, path, params, query, headers,
    content_type, body, deadline_ms, trace, request_id, identity, cookies, actor, tick,
    stream_window] - the last four only when a window is given."""
    m = [2, CALL, call_id, "", "", "GET", path, [], query, [], "", b"", deadline_ms, ""]
    if stream_window is not None:
        m += ["", b"", [], None, None, stream_window]
    return pack(m)


def detail_of(reply):
    body = reply[6]
    return unpack(body)["detail"] if body else ""


class CallStreamCase(StreamTestCase):
    """test_stream's helpers (stats, raw, read_until), with the relay worker too."""

    def setUp(self):
        self.procs = self.start(*self.gateway_args(), workers=["clock", "relay"])

    def wait_cancelled(self, before):
        self.wait_until(lambda: self.stats()["cancelled"] > before["cancelled"],
                        "the clock's cancel (stats %r)" % self.stats())

    def peer(self, features=0):
        """A registered protocol peer; with features, it announces them in READY."""
        z = ZmtpDealer("127.0.0.1", self.broker_port, timeout=h.IO_TIMEOUT)
        self.addCleanup(z.close)
        ready = [2, 1, "caller-%d" % features, 0, 4, 1000,
                 [["caller%d" % features, 0, [["GET", "/caller%d" % features, 0, 0, "", []]]]],
                 []]
        if features:
            ready += [[], [], features]
        z.send(pack(ready))
        welcome = z.recv_type(WELCOME)
        return z, (welcome[4] if len(welcome) > 4 else 0)


class GatheredCall(CallStreamCase):
    def gateway_args(self):
        return ("--call-gather-max", "4096")

    def test_a_caller_that_asks_for_no_stream_gets_it_gathered(self):
        before = self.stats()
        r = self.get("/relay/gather?n=100")  # 3700 bytes: under the bound
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json(), {"status": 200, "bytes": 100 * LINE_LEN, "lines": 100,
                                    "last": (LINE % 99).rstrip("\n")})
        self.wait_until(lambda: self.stats()["completed"] == before["completed"] + 1,
                        "the clock's stream to complete")

    def test_a_stream_past_the_bound_is_a_502_and_the_target_is_cancelled(self):
        before = self.stats()
        r = self.get("/relay/gather?n=100000000")
        self.assertEqual(r.status, 502, r)
        detail = r.json()["detail"]
        self.assertIn("4096 bytes", detail)
        self.assertIn("--call-gather-max", detail)
        self.wait_cancelled(before)
        self.assertEqual(self.stats()["completed"], before["completed"])
        # The cancelled stream's credit came back: the clock still serves.
        self.assertEqual(self.get("/clock/lines?n=2").body, expected_lines(2))

    def test_a_gathered_stream_is_bounded_by_the_calls_deadline(self):
        # Ticks every 100 ms for 10 s: never idle, but past the call's 500 ms budget.
        before = self.stats()
        z, _ = self.peer()
        z.send(call_msg(8, "/clock", [["n", "100"], ["interval_ms", "100"]], deadline_ms=500))
        reply = z.recv_type(REPLY)
        self.assertEqual((reply[2], reply[3]), (8, 504), reply)
        self.assertIn("within the call's 500 ms", detail_of(reply))
        self.wait_cancelled(before)

    def test_an_older_caller_gets_the_gathered_reply(self):
        # A peer that announces no features, and writes no field 19, as before.
        z, features = self.peer()
        self.assertEqual(features, 0)
        z.send(call_msg(77, "/clock/lines", [["n", "50"]]))
        reply = z.recv_type(REPLY)
        self.assertEqual(reply[2], 77)
        self.assertEqual(reply[3], 200, reply)
        self.assertTrue(reply[5].startswith("text/plain"), reply[5])
        self.assertEqual(reply[6], expected_lines(50))

    def test_a_caller_that_did_not_negotiate_the_feature_is_gathered_even_when_asking(self):
        z, _ = self.peer()
        z.send(call_msg(5, "/clock/lines", [["n", "10"]], stream_window=1000))
        reply = z.recv_type(REPLY)
        self.assertEqual((reply[2], reply[3], reply[6]), (5, 200, expected_lines(10)))


class StreamedCall(CallStreamCase):
    def test_chunks_arrive_complete_and_in_order(self):
        n = 30000  # 1.1 MB: several windows of the call and of the client
        r = self.get("/relay/lines?n=%d" % n)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, expected_lines(n))

    def test_a_stream_longer_than_any_gathered_reply_is_counted_in_order(self):
        n = 300000  # 11 MB: past the 8 MiB a gathered reply may carry
        r = self.get("/relay/summary?n=%d" % n, timeout=120)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json(), {"status": 200, "complete": True, "bytes": n * LINE_LEN,
                                    "lines": n, "in_order": True})
        # The same route gathered is refused with the bound named.
        r = self.get("/relay/gather?n=%d" % n, timeout=120)
        self.assertEqual(r.status, 502, r)
        self.assertIn("8388608 bytes", r.json()["detail"])

    def test_a_plain_answer_reaches_a_streamed_call_as_head_chunk_and_end(self):
        # A route that replies once: a streaming caller gets that REPLY as it is.
        z, _ = self.peer(FEATURE_CALL_STREAM)
        z.send(call_msg(6, "/clock/stats", [], stream_window=4096))
        reply = z.recv_type(REPLY)
        self.assertEqual((reply[2], reply[3]), (6, 200))
        self.assertIn("started", unpack(reply[6]))
        # Through the SDK: the broker's own 503 once the clock is gone is the head.
        self.procs[0].kill()
        self.wait_removed(1)
        r = self.get("/relay/summary?n=5")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["status"], 503, r)
        self.assertGreater(r.json()["bytes"], 0)  # its {"detail"}, as one chunk

    def test_the_gateway_sends_a_caller_no_more_than_it_granted(self):
        z, features = self.peer(FEATURE_CALL_STREAM)
        self.assertEqual(features & FEATURE_CALL_STREAM, FEATURE_CALL_STREAM)
        z.send(call_msg(9, "/clock/lines", [["n", "2000"]], stream_window=1000))
        start = z.recv_msg()
        self.assertEqual(start[1], CALL_STREAM_START, start)
        self.assertEqual((start[2], start[3]), (9, 200))
        got, granted = b"", 1000
        while True:
            m = z.recv_msg()
            if m[1] == CALL_STREAM_END:
                self.assertEqual((m[2], m[3]), (9, ""))
                break
            self.assertEqual((m[1], m[2]), (CALL_STREAM_CHUNK, 9), m)
            got += m[3]
            self.assertLessEqual(len(got), granted, "sent past the caller's window")
            if len(got) == granted:  # everything granted arrived: grant 3000 more
                z.send(pack([2, CALL_STREAM_WINDOW, 9, 3000]))
                granted += 3000
        self.assertEqual(got, expected_lines(2000))

    def test_a_caller_leaving_mid_stream_cancels_the_target(self):
        before = self.stats()
        s = self.raw(b"GET /relay/lines?n=100000000 HTTP/1.1\r\nHost: t\r\n\r\n")
        self.read_until(s, (LINE % 1000).encode())
        s.close()
        # The relay's client left: the relay request is cancelled, its call with it,
        # and the gateway cancels the clock's stream.
        self.wait_cancelled(before)
        self.assertEqual(self.get("/relay/lines?n=3").body, expected_lines(3))

    def test_a_protocol_caller_cancelling_reaches_the_target(self):
        before = self.stats()
        z, _ = self.peer(FEATURE_CALL_STREAM)
        z.send(call_msg(11, "/clock/lines", [["n", "100000000"]], stream_window=4096))
        self.assertEqual(z.recv_msg()[1], CALL_STREAM_START)
        self.assertEqual(z.recv_msg()[1], CALL_STREAM_CHUNK)
        z.send(pack([2, 7, 11]))  # CANCEL(11)
        self.wait_cancelled(before)

    def test_a_relay_whose_client_stops_reading_keeps_the_gateway_bounded(self):
        # 111 MB through the relay's stream, its streamed call and the clock's stream:
        # the relay pauses its call, the gateway stops granting the clock.
        base, peak = self.read_slowly("/relay/lines", 3000000)
        print("\nrelay of 111 MB to a slow client: gateway RSS %d KiB -> peak %d KiB (+%d)"
              % (base, peak, peak - base))


class IdleStreamedCall(CallStreamCase):
    def gateway_args(self):
        return ("--stream-idle-timeout", "300ms")

    def test_an_idle_gathered_stream_is_a_504_and_the_target_is_cancelled(self):
        before = self.stats()
        z, _ = self.peer()
        # Two events a minute apart: the first starts the stream, then it idles.
        z.send(call_msg(3, "/clock", [["n", "2"], ["interval_ms", "60000"]]))
        reply = z.recv_type(REPLY)
        self.assertEqual((reply[2], reply[3]), (3, 504), reply)
        self.assertIn("--stream-idle-timeout", detail_of(reply))
        self.wait_cancelled(before)

    def test_an_idle_streamed_call_ends_cut_and_the_target_is_cancelled(self):
        before = self.stats()
        z, _ = self.peer(FEATURE_CALL_STREAM)
        z.send(call_msg(4, "/clock", [["n", "2"], ["interval_ms", "60000"]],
                        stream_window=65536))
        self.assertEqual(z.recv_msg()[1], CALL_STREAM_START)
        while True:
            m = z.recv_msg()
            if m[1] == CALL_STREAM_END:
                break
        self.assertEqual(m[2], 4)
        self.assertIn("--stream-idle-timeout", m[3])
        self.wait_cancelled(before)


if __name__ == "__main__":
    unittest.main()
