"""WS_BATCH (PROTOCOL.md 5.16, 14) between the real gateway and a hand-written worker
(zmtp_peer): a worker that announces BR_FEATURE_WS_BATCH in READY gets it confirmed in
WELCOME, receives a burst of a client's messages as one WS_BATCH and may answer with
one; a version-2 worker that announces nothing never sees a WS_BATCH and is served
message by message, as before.

The client writes its whole burst with one send, so the gateway reads it in one loop
turn: that is what makes the gateway batch (nothing here depends on timing beyond
that one loopback write arriving in one piece, which a 300-byte write does)."""

import socket
import struct
import unittest

import harness as h
from test_websocket import RawWs, frame
from zmtp_peer import HEARTBEAT, WELCOME, ZmtpDealer, _unpack, pack

WS_OPEN, WS_MESSAGE, WS_CLOSE, WS_CREDIT, WS_GROUP, WS_BATCH = range(30, 36)
FEATURE_WS_BATCH = 1
BURST = 12
WAIT = 20.0


def ws_route(path):
    """A route record up to field 14 (websocket = true)."""
    return ["GET", path, 0, 0, "", [], 0, "", False, None, [], False, None, None, True]


def ready(worker_id, path, features):
    fields = [2, 1, worker_id, 0, 4, 1000, [["raw", 0, [ws_route(path)]]], []]
    if features:
        fields += [[], [], features]
    return pack(fields)


def split(batch):
    """The messages of a WS_BATCH's bytes, decoded."""
    out, i = [], 0
    while i < len(batch):
        m, i = _unpack(batch, i)
        out.append(m)
    return out


class WsBatch(unittest.TestCase):
    def setUp(self):
        self.broker_port = h.free_port()
        self.gw = h.start_gateway(self, "--broker", "tcp://127.0.0.1:%d" % self.broker_port)

    def status(self, path):
        with self.gw.client() as c:
            return c.request("GET", path).status

    def register(self, path, features):
        z = ZmtpDealer("127.0.0.1", self.broker_port, timeout=WAIT)
        self.addCleanup(z.close)
        z.send(ready("raw-%s" % path.strip("/"), path, features))
        welcome = z.recv_type(WELCOME)
        self.assertTrue(h.poll_until(lambda: self.status(path) != 404, WAIT),
                        "route never appeared:\n" + self.gw.stderr())
        return z, welcome

    def recv_ws(self, z, want):
        """Reads until `want` WebSocket messages arrived; returns them and how many
        arrived inside a WS_BATCH."""
        got, batched = [], 0
        while len([m for m in got if m[1] == WS_MESSAGE]) < want:
            m = z.recv_msg()
            if m[1] == WS_BATCH:
                inner = split(m[2])
                batched += len(inner)
                got += inner
            elif m[1] != HEARTBEAT:
                got.append(m)
        return got, batched

    def burst(self, path):
        ws = RawWs(self.gw.port, path, "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                   "Sec-WebSocket-Version: 13\r\n")
        self.addCleanup(ws.close)
        self.assertEqual(ws.status, 101, ws.head)
        ws.sock.sendall(b"".join(frame(1, b"m%02d" % i) for i in range(BURST)))
        return ws

    def test_worker_announcing_batches_gets_them_and_may_send_them(self):
        z, welcome = self.register("/ws/batched", FEATURE_WS_BATCH)
        self.assertEqual(welcome[4:], [FEATURE_WS_BATCH])
        ws = self.burst("/ws/batched")
        opened = z.recv_type(WS_OPEN)
        conn = opened[2]
        got, batched = self.recv_ws(z, BURST)
        texts = [m[4] for m in got if m[1] == WS_MESSAGE and m[2] == conn]
        self.assertEqual(texts, [b"m%02d" % i for i in range(BURST)])
        self.assertGreater(batched, 1, "the burst was not batched: %r" % got)
        # The answer: every echo, the credit for what was handled, in one WS_BATCH.
        inner = b"".join(pack([2, WS_MESSAGE, conn, False, b"e%02d" % i]) for i in range(BURST))
        inner += pack([2, WS_CREDIT, conn, BURST])
        z.send(b"\x93\x02\x23\xc6" + struct.pack(">I", len(inner)) + inner)
        echoed = [ws.read_frame() for _ in range(BURST)]
        self.assertEqual(echoed, [(1, b"e%02d" % i) for i in range(BURST)])
        # A WS_CLOSE inside a batch closes the client with its code.
        close = pack([2, WS_CLOSE, conn, 4003, "bye"])
        z.send(pack([2, WS_BATCH, close + pack([2, WS_CREDIT, conn, 1])]))
        self.assertEqual(ws.read_close(), 4003)

    def test_worker_announcing_nothing_never_sees_a_batch(self):
        z, welcome = self.register("/ws/plain", 0)
        self.assertEqual(welcome[4:], [])
        ws = self.burst("/ws/plain")
        conn = z.recv_type(WS_OPEN)[2]
        got, batched = self.recv_ws(z, BURST)
        self.assertEqual(batched, 0)
        texts = [m[4] for m in got if m[1] == WS_MESSAGE and m[2] == conn]
        self.assertEqual(texts, [b"m%02d" % i for i in range(BURST)])
        for i in range(BURST):
            z.send(pack([2, WS_MESSAGE, conn, False, b"e%02d" % i]))
        echoed = [ws.read_frame() for _ in range(BURST)]
        self.assertEqual(echoed, [(1, b"e%02d" % i) for i in range(BURST)])

    def test_a_batch_with_a_forbidden_or_broken_message_is_cut_there(self):
        z, _ = self.register("/ws/hostile", FEATURE_WS_BATCH)
        ws = self.burst("/ws/hostile")
        conn = z.recv_type(WS_OPEN)[2]
        self.recv_ws(z, BURST)
        # A nested WS_BATCH is refused (and what follows it dropped); the message
        # before it is delivered.  Then a truncated tail: the good head still counts.
        nested = pack([2, WS_BATCH, pack([2, WS_MESSAGE, conn, False, b"lost"])])
        z.send(pack([2, WS_BATCH, pack([2, WS_MESSAGE, conn, False, b"one"]) + nested
                     + pack([2, WS_MESSAGE, conn, False, b"lost too"])]))
        z.send(pack([2, WS_BATCH, pack([2, WS_MESSAGE, conn, False, b"two"]) + b"\x95\x02"]))
        self.assertEqual(ws.read_frame(), (1, b"one"))
        self.assertEqual(ws.read_frame(), (1, b"two"))
        # The gateway is still serving the connection.
        z.send(pack([2, WS_MESSAGE, conn, False, b"three"]))
        self.assertEqual(ws.read_frame(), (1, b"three"))


if __name__ == "__main__":
    unittest.main()
