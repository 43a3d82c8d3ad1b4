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
and the target cancelled; a relay whose client stops reading keeps the gateway's
memory bounded (RSS compared, not time); and --call-gather-total bounds what every
gathering call holds together: a call past it is 503 naming the option while calls
that fit get their whole body, and barista_call_gather_bytes returns to 0 whichever
way a gathering call ends (reply, refusal, deadline, client gone, target killed)."""

import threading
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

    def metric(self, name):
        """The value of /metrics' sample `name` (which must be there)."""
        for line in self.get("/metrics").body.decode().splitlines():
            if line.startswith(name + " "):
                return int(line.split()[1])
        self.fail("no %s in /metrics" % name)

    def gathered_bytes(self):
        return self.metric("barista_call_gather_bytes")

    def wait_nothing_gathered(self):
        self.wait_until(lambda: self.gathered_bytes() == 0,
                        "barista_call_gather_bytes to return to 0 (now %d)"
                        % self.gathered_bytes())

    def hold_gathered(self, call_id, n):
        """A protocol caller whose gathered call `call_id` of N lines stays open (the
        clock's hold=1); returns the caller once the gateway counts the lines."""
        z, _ = self.peer()
        z.send(call_msg(call_id, "/clock/lines", [["n", str(n)], ["hold", "1"]]))
        self.wait_until(lambda: self.gathered_bytes() >= n * LINE_LEN,
                        "call %d's %d bytes gathered (now %d)"
                        % (call_id, n * LINE_LEN, self.gathered_bytes()))
        return z

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
        self.wait_nothing_gathered()
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


class GatherTotal(CallStreamCase):
    """--call-gather-total at 1 MiB: a call held open by the clock (hold=1) keeps its
    bytes gathered, so which calls fit beside it does not depend on timing."""

    TOTAL = 1024 * 1024

    def gateway_args(self):
        # The held call's caller is a protocol peer that sends no heartbeats: a long
        # heartbeat keeps it registered for the test.
        return ("--call-gather-total", "1m", "--broker-heartbeat", "10s")

    def hold(self, n):
        return self.hold_gathered(31, n)

    def release(self, z):
        z.send(pack([2, 7, 31]))  # CANCEL(31): the caller gives up its held call

    def test_a_call_past_the_total_is_503_and_calls_that_fit_get_their_whole_body(self):
        before = self.stats()
        held = self.hold(8000)  # 296,000 bytes: 512 KiB allocated for them, + the start
        self.assertLess(self.gathered_bytes(), self.TOTAL // 2 + 4096)
        # 740,000 bytes do not fit beside them: 503 naming the option, the clock cancelled.
        r = self.get("/relay/gather?n=20000")
        self.assertEqual(r.status, 503, r)
        detail = r.json()["detail"]
        self.assertIn("--call-gather-total", detail)
        self.assertIn("%d bytes" % self.TOTAL, detail)
        self.wait_cancelled(before)
        self.assertEqual(self.metric("barista_call_gather_refused_total"), 1)
        # 74,000 bytes fit (at most 128 KiB allocated): the whole body, twice over.
        for _ in range(2):
            r = self.get("/relay/gather?n=2000")
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json(), {"status": 200, "bytes": 2000 * LINE_LEN,
                                        "lines": 2000, "last": (LINE % 1999).rstrip("\n")})
        # Only the held call is left gathered; its caller cancelling gives its bytes back.
        self.assertGreaterEqual(self.gathered_bytes(), 8000 * LINE_LEN)
        self.release(held)
        self.wait_nothing_gathered()
        # With nothing gathered, the call refused before fits.
        r = self.get("/relay/gather?n=20000")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["bytes"], 20000 * LINE_LEN)
        self.wait_nothing_gathered()
        self.assertEqual(self.metric("barista_call_gather_refused_total"), 1)

    def test_concurrent_calls_past_the_total_are_answered_whole_or_503(self):
        # Four calls of 444,000 bytes at once: their sum is past 1 MiB.  However they
        # interleave, each gets all its bytes or the 503, and nothing stays counted.
        results = [None] * 4

        def call(i):
            results[i] = self.get("/relay/gather?n=12000", timeout=60)

        threads = [threading.Thread(target=call, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        for r in results:
            self.assertIsNotNone(r, "a call got no answer")
            if r.status == 200:
                self.assertEqual(r.json()["bytes"], 12000 * LINE_LEN, r)
            else:
                self.assertEqual(r.status, 503, r)
                self.assertIn("--call-gather-total", r.json()["detail"])
        self.wait_nothing_gathered()
        refused = sum(1 for r in results if r.status == 503)
        self.assertEqual(self.metric("barista_call_gather_refused_total"), refused)

    def test_a_start_that_finds_no_room_is_503(self):
        # 962,000 bytes held: their last growth takes the room the total leaves, so
        # the next call's start (its status and headers) finds none.
        before = self.stats()
        held = self.hold(26000)
        r = self.get("/relay/gather?n=10000")
        self.assertEqual(r.status, 503, r)
        self.assertIn("--call-gather-total", r.json()["detail"])
        self.wait_cancelled(before)
        self.release(held)
        self.wait_nothing_gathered()


class GatherRelease(CallStreamCase):
    """What a gathering call holds comes back however it ends."""

    def test_a_call_past_its_deadline_gives_its_bytes_back(self):
        before = self.stats()
        z, _ = self.peer()
        z.send(call_msg(21, "/clock/lines", [["n", "1000"], ["hold", "1"]], deadline_ms=1000))
        reply = z.recv_type(REPLY)
        self.assertEqual((reply[2], reply[3]), (21, 504), reply)
        self.assertIn("within the call's 1000 ms", detail_of(reply))
        self.wait_cancelled(before)
        self.wait_nothing_gathered()

    def test_a_call_whose_caller_cancels_gives_its_bytes_back(self):
        before = self.stats()
        z = self.hold_gathered(23, 1000)
        z.send(pack([2, 7, 23]))  # CANCEL(23)
        self.wait_cancelled(before)
        self.wait_nothing_gathered()

    def test_a_call_whose_http_client_leaves_gives_its_bytes_back(self):
        # The relay's client leaves: the relay's request is cancelled, it ends the
        # request and so abandons its call, and the gateway cancels the clock.
        before = self.stats()
        s = self.raw(b"GET /relay/gather?n=1000&hold=1 HTTP/1.1\r\nHost: t\r\n\r\n")
        self.wait_until(lambda: self.gathered_bytes() >= 1000 * LINE_LEN,
                        "the relay's call gathered")
        s.close()
        self.wait_cancelled(before)
        self.wait_nothing_gathered()

    def test_a_call_whose_caller_goes_away_gives_its_bytes_back(self):
        # The caller's connection closes: the broker forgets it once it is silent past
        # its liveness, and cancels its calls.
        before = self.stats()
        self.hold_gathered(24, 1000).close()
        self.wait_cancelled(before)
        self.wait_nothing_gathered()

    def test_a_call_whose_target_dies_gives_its_bytes_back(self):
        z = self.hold_gathered(22, 1000)
        self.procs[0].kill()  # the clock
        reply = z.recv_type(REPLY)
        self.assertEqual((reply[2], reply[3]), (22, 502), reply)
        self.wait_nothing_gathered()


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
