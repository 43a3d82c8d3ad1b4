"""A CALL whose target answers with a stream (PROTOCOL.md 5.15, 10.1): a worker's CALL
gets one REPLY, so the gateway cannot pass a streamed response on.  What it does
instead is a clear error: REPLY 502 "the service answered with a stream" to the
caller, and the stream's request is cancelled at the target, which sees the cancel.

The target is the real clock worker (workers/services/clock.c, GET /clock/lines
streams its body); the caller is a hand-written worker (zmtp_peer) that sends the
CALL itself."""

import json
import unittest

import harness as h
from zmtp_peer import CALL, REPLY, WELCOME, ZmtpDealer, _unpack, pack

WAIT = 20.0


class CallReceivingAStream(unittest.TestCase):
    def setUp(self):
        self.broker_port = h.free_port()
        endpoint = "tcp://127.0.0.1:%d" % self.broker_port
        self.gw = h.start_gateway(self, "--broker", endpoint)
        h.start_process(self, [h.binary("barista-worker"), "--services", "clock",
                               "--connect", endpoint])
        self.assertTrue(h.poll_until(lambda: self.get("/clock/stats")[0] == 200, WAIT),
                        "the clock worker never registered:\n" + self.gw.stderr())

    def get(self, path):
        with self.gw.client() as c:
            r = c.request("GET", path)
            return r.status, r.body

    def stats(self):
        status, body = self.get("/clock/stats")
        return json.loads(body) if status == 200 else {}

    def test_call_to_a_streaming_route_is_answered_502_and_the_stream_cancelled(self):
        before = self.stats()
        with ZmtpDealer("127.0.0.1", self.broker_port, timeout=WAIT) as z:
            z.send(pack([2, 1, "caller", 0, 4, 1000,
                         [["caller", 0, [["GET", "/caller", 0, 0, "", []]]]], []]))
            z.recv_type(WELCOME)
            # [v, CALL, id, service, route, method, path, params, query, headers,
            #  content_type, body, deadline_ms, trace]
            z.send(pack([2, CALL, 77, "", "", "GET", "/clock/lines", [], [["n", "100000"]],
                         [], "", b"", 10000, ""]))
            reply = z.recv_type(REPLY)
        self.assertEqual(reply[2], 77)
        self.assertEqual(reply[3], 502)
        self.assertIn(b"answered with a stream", reply[6] if isinstance(reply[6], bytes)
                      else reply[6].encode())
        # The stream started at the clock worker and was cancelled there.
        self.assertTrue(h.poll_until(
            lambda: self.stats().get("cancelled", 0) > before.get("cancelled", 0), WAIT),
            "the clock worker never saw the cancel: %r" % self.stats())


if __name__ == "__main__":
    unittest.main()
