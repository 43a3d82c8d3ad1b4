"""permessage-deflate (RFC 7692) and the WebSocket limit options, end to end: the real
gateway in local mode with one I/O worker hosting `chat` (its /ws/echo route echoes).

Covered: Debian's python3-websockets, which offers permessage-deflate by default,
negotiates it and gets its messages back (long ones compressed by the gateway, seen
as RSV1 on a raw socket's frames); the answer carries server_no_context_takeover and
client_no_context_takeover and echoes server_max_window_bits; offers with unknown or
repeated parameters are declined (no extension, the connection still opens); a
compressed message that is not DEFLATE closes 1007, RSV1 on a continuation frame
1002, a zip bomb inflating past the message limit 1009.  With `--ws-deflate off`
nothing is negotiated and RSV1 is a protocol error (1002); `--ws-max-message-bytes`
closes with 1009 past it; `--ws-ping-interval`/`--ws-pong-timeout` ping a silent
client and drop it when it stays silent."""

import asyncio
import os
import struct
import sys
import unittest
import zlib

import harness as h
from test_websocket import KEY, RawWs, frame, websockets

WAIT = 60.0
HS = "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n" % KEY
PMD = HS + "Sec-WebSocket-Extensions: permessage-deflate\r\n"


def deflate(data, wbits=15):
    """A message compressed as RFC 7692 says: raw DEFLATE, the sync flush's tail cut."""
    c = zlib.compressobj(6, zlib.DEFLATED, -wbits)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def inflate(data):
    return zlib.decompressobj(-15).decompress(data + b"\x00\x00\xff\xff")


def extensions(head):
    for line in head.split("\r\n"):
        name, _, value = line.partition(":")
        if name.strip().lower() == "sec-websocket-extensions":
            return value.strip()
    return None


def start(test, *extra):
    gw = h.start_gateway(test, "--local", "--io-workers", "1", "--cpu-workers", "0",
                         "--io-services", "chat", *extra)

    def live():
        with gw.client() as c:
            text = c.request("GET", "/metrics").body.decode()
        return any(line.startswith('barista_service_workers{service="chat"')
                   and float(line.split()[-1]) == 1 for line in text.splitlines())

    test.assertTrue(h.poll_until(live, WAIT), "the chat worker never registered:\n" + gw.stderr())
    return gw


@unittest.skipIf(websockets is None, "python3-websockets is not installed")
class Deflate(unittest.TestCase):
    def setUp(self):
        self.gw = start(self)

    def test_python_websockets_negotiates_and_round_trips(self):
        text = "barista " * 4000 + "é"

        async def go():
            async with websockets.connect("ws://127.0.0.1:%d/ws/echo" % self.gw.port) as ws:
                self.assertEqual([e.name for e in ws.extensions], ["permessage-deflate"])
                for msg in ("short", text, b"\x00" * 70000, os.urandom(3000)):
                    await ws.send(msg)
                    self.assertEqual(await ws.recv(), msg)
            self.assertEqual(ws.close_code, 1000)

        asyncio.run(asyncio.wait_for(go(), WAIT))

    def test_answer_and_compressed_frames_on_the_wire(self):
        ws = RawWs(self.gw.port, extra=PMD)
        self.assertEqual(ws.status, 101, ws.head)
        self.assertEqual(extensions(ws.head), "permessage-deflate; server_no_context_takeover; "
                         "client_no_context_takeover")
        body = b"abcabcabc" * 1000
        # A compressed message in two fragments: RSV1 on the first frame only.
        z = deflate(body)
        first = bytearray(frame(2, z[:10], fin=False))
        first[0] |= 0x40
        ws.sock.sendall(bytes(first) + frame(0, z[10:]))
        op, payload = ws.read_frame()
        self.assertEqual(op, 2)
        self.assertTrue(ws.b0 & 0x40, "a long echo goes out compressed")
        self.assertEqual(inflate(payload), body)
        # A short one goes out as it is; an uncompressed one is still fine from the client.
        ws.sock.sendall(frame(1, b"tiny"))
        self.assertEqual(ws.read_frame(), (1, b"tiny"))
        self.assertFalse(ws.b0 & 0x40)
        ws.close()
        # server_max_window_bits is echoed; 8 is accepted (the gateway then never
        # compresses: zlib cannot make an 8-bit window).
        for bits, compressed in (("10", True), ("8", False)):
            ws = RawWs(self.gw.port, extra=HS + "Sec-WebSocket-Extensions: permessage-deflate; "
                       "client_max_window_bits; server_max_window_bits=%s\r\n" % bits)
            self.assertIn("server_max_window_bits=" + bits, extensions(ws.head))
            ws.sock.sendall(frame(2, body))
            op, payload = ws.read_frame()
            self.assertEqual(bool(ws.b0 & 0x40), compressed)
            self.assertEqual(inflate(payload) if compressed else payload, body)
            ws.close()

    def test_bad_offers_are_declined(self):
        for offer in ("permessage-deflate; server_max_window_bits=16",
                      "permessage-deflate; no_such_param",
                      "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
                      "permessage-deflate; server_no_context_takeover=1",
                      "x-webkit-deflate-frame"):
            ws = RawWs(self.gw.port, extra=HS + "Sec-WebSocket-Extensions: %s\r\n" % offer)
            self.assertEqual(ws.status, 101, ws.head)
            self.assertIsNone(extensions(ws.head), offer)
            ws.close()
        # The first acceptable offer of a list wins.
        ws = RawWs(self.gw.port, extra=HS + "Sec-WebSocket-Extensions: foo, permessage-deflate; "
                   "server_max_window_bits=99, permessage-deflate; server_max_window_bits=\"12\"\r\n")
        self.assertIn("server_max_window_bits=12", extensions(ws.head))
        ws.close()

    def test_bad_compressed_frames_close_the_connection(self):
        def send_compressed(ws, payload, opcode=1):
            f = bytearray(frame(opcode, payload))
            f[0] |= 0x40
            ws.sock.sendall(bytes(f))

        # Not DEFLATE (a reserved block type): the payload is invalid -> 1007.
        ws = RawWs(self.gw.port, extra=PMD)
        send_compressed(ws, b"\xff\xff\xff\xff")
        self.assertEqual(ws.read_close(), 1007)
        ws.close()
        # Valid DEFLATE, invalid UTF-8 in a text message -> 1007.
        ws = RawWs(self.gw.port, extra=PMD)
        send_compressed(ws, deflate(b"bad \xc0\xaf"))
        self.assertEqual(ws.read_close(), 1007)
        ws.close()
        # RSV1 on a continuation frame -> 1002.
        ws = RawWs(self.gw.port, extra=PMD)
        ws.sock.sendall(frame(1, b"ab", fin=False))
        send_compressed(ws, deflate(b"cd"), opcode=0)
        self.assertEqual(ws.read_close(), 1002)
        ws.close()
        # 2 KiB that inflate to 4 MiB (the limit is 1 MiB) -> 1009.
        bomb = deflate(b"\x00" * (4 << 20))
        self.assertLess(len(bomb), 8192)
        ws = RawWs(self.gw.port, extra=PMD)
        send_compressed(ws, bomb, opcode=2)
        self.assertEqual(ws.read_close(), 1009)
        ws.close()


class Options(unittest.TestCase):
    def setUp(self):
        self.gw = start(self, "--ws-deflate", "off", "--ws-max-message-bytes", "1k",
                        "--ws-ping-interval", "300ms", "--ws-pong-timeout", "300ms")

    def test_deflate_off_and_limits(self):
        ws = RawWs(self.gw.port, extra=PMD)
        self.assertEqual(ws.status, 101, ws.head)
        self.assertIsNone(extensions(ws.head))
        f = bytearray(frame(1, deflate(b"hello")))
        f[0] |= 0x40
        ws.sock.sendall(bytes(f))
        self.assertEqual(ws.read_close(), 1002)
        ws.close()
        ws = RawWs(self.gw.port, extra=HS)
        ws.sock.sendall(frame(2, b"x" * 1024))
        self.assertEqual(ws.read_frame(), (2, b"x" * 1024))
        ws.sock.sendall(frame(2, b"x" * 1025))
        self.assertEqual(ws.read_close(), 1009)
        ws.close()

    def test_silent_client_is_pinged_then_dropped(self):
        ws = RawWs(self.gw.port, extra=HS)
        self.assertEqual(ws.status, 101, ws.head)
        self.assertEqual(ws.read_frame(), (9, b""))
        # No pong: the next read ends the connection, without a close frame.
        self.assertIsNone(ws.read_frame())
        ws.close()


if __name__ == "__main__":
    unittest.main()
