"""WebSockets end to end: the real gateway in local mode supervising two I/O workers
that host the built-in `chat` service (workers/services/chat.c), with Debian's
python3-websockets as the client - an independent implementation of RFC 6455 - and
raw sockets for what a well-behaved client never sends.

Covered: handshake errors (missing key 400, wrong version 426), subprotocol
negotiation, echo of text and binary, ping/pong, a text message whose UTF-8 sequence
is split across two frames, invalid UTF-8 -> 1007, an oversized frame -> 1009, an
unmasked frame -> 1002, close codes both ways, a broadcast reaching a client on the
other worker, a killed worker -> 1011, gateway shutdown -> 1001, and a client that
stops reading while it keeps sending: the gateway's RSS stays bounded (compared, not
timed)."""

import asyncio
import base64
import os
import signal
import socket
import struct
import sys
import unittest

import harness as h

try:
    import websockets
except ImportError:
    # Debian's python3-websockets, when the interpreter running the tests is another.
    sys.path.append("/usr/lib/python3/dist-packages")
    try:
        import websockets
    except ImportError:
        websockets = None

WAIT = 60.0
KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def frame(opcode, payload, fin=True, mask=True):
    """One client frame (masked unless told otherwise)."""
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    m = 0x80 if mask else 0
    if n < 126:
        head += bytes([m | n])
    elif n < 65536:
        head += bytes([m | 126]) + struct.pack("!H", n)
    else:
        head += bytes([m | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


class RawWs:
    """A raw socket that does the handshake and reads frames."""

    def __init__(self, port, path="/ws/echo", extra=""):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=h.IO_TIMEOUT)
        self.sock.sendall(("GET %s HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\n"
                           "Connection: Upgrade\r\n%s\r\n" % (path, extra)).encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                break
            self.buf += chunk
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        self.head = head.decode("latin-1")
        self.status = int(self.head.split()[1]) if self.head else 0

    def _need(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_frame(self):
        """(opcode, payload), or None at EOF; the first header byte stays in self.b0."""
        try:
            b0, b1 = self._need(2)
            self.b0 = b0
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._need(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._need(8))[0]
            return b0 & 0x0F, self._need(n)
        except (EOFError, ConnectionResetError):
            return None

    def read_close(self):
        """The close code of the server's close frame (skipping data frames)."""
        while True:
            f = self.read_frame()
            if f is None:
                return None
            if f[0] == 8:
                return struct.unpack("!H", f[1][:2])[0] if len(f[1]) >= 2 else 1005

    def close(self):
        self.sock.close()


@unittest.skipIf(websockets is None, "python3-websockets is not installed")
class WebSockets(unittest.TestCase):
    def setUp(self):
        # A sanitizer build keeps freed memory in quarantine (256 MB by default), which
        # would make RSS track bytes passed through rather than bytes held.
        asan = os.environ.get("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        self.gw = h.start_gateway(self, "--local", "--io-workers", "2", "--cpu-workers", "0",
                                  "--io-services", "chat",
                                  env={"ASAN_OPTIONS": asan + ":quarantine_size_mb=1"})
        self.assertTrue(h.poll_until(lambda: self.live_workers() == 2, WAIT),
                        "two chat workers never registered:\n" + self.gw.stderr())
        self.url = "ws://127.0.0.1:%d" % self.gw.port

    def live_workers(self):
        with self.gw.client() as c:
            text = c.request("GET", "/metrics").body.decode()
        for line in text.splitlines():
            if line.startswith('barista_service_workers{service="chat"'):
                return int(float(line.split()[-1]))
        return 0

    def run_async(self, coro):
        return asyncio.run(asyncio.wait_for(coro, WAIT))

    def test_handshake_errors_are_400_and_426(self):
        ws = RawWs(self.gw.port, extra="Sec-WebSocket-Version: 13\r\n")
        self.assertEqual(ws.status, 400, ws.head)
        ws.close()
        ws = RawWs(self.gw.port, extra="Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 8\r\n"
                   % KEY)
        self.assertEqual(ws.status, 426, ws.head)
        self.assertIn("Sec-WebSocket-Version: 13", ws.head)
        ws.close()
        # A room name breaking its declared bounds is refused like any parameter.
        ws = RawWs(self.gw.port, path="/chat/" + "x" * 80,
                   extra="Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n" % KEY)
        self.assertEqual(ws.status, 422, ws.head)
        ws.close()
        # WebSocket routes are no HTTP operations: not in the OpenAPI document.
        with self.gw.client() as c:
            doc = c.request("GET", "/openapi.json").json()
        self.assertNotIn("/ws/echo", doc["paths"])
        self.assertNotIn("/chat/{room}", doc["paths"])

    def test_echo_subprotocol_ping_and_close(self):
        async def go():
            async with websockets.connect(self.url + "/ws/echo",
                                          subprotocols=["nope", "echo.v1"]) as ws:
                self.assertEqual(ws.subprotocol, "echo.v1")
                await ws.send("héllo")
                self.assertEqual(await ws.recv(), "héllo")
                await ws.send(b"\x00\xff" * 1000)
                self.assertEqual(await ws.recv(), b"\x00\xff" * 1000)
                # A fragmented message, reassembled by the gateway.
                await ws.send(iter(["frag", "mented"]))
                self.assertEqual(await ws.recv(), "fragmented")
                pong = await ws.ping(b"p1")
                await pong
            self.assertEqual(ws.close_code, 1000)
            async with websockets.connect(self.url + "/ws/echo") as ws:
                await ws.send("close 4001")
                with self.assertRaises(websockets.ConnectionClosed):
                    await ws.recv()
            self.assertEqual(ws.close_code, 4001)
        self.run_async(go())

    def test_utf8_split_across_frames_and_protocol_errors(self):
        hs = "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n" % KEY
        ws = RawWs(self.gw.port, extra=hs)
        self.assertEqual(ws.status, 101, ws.head)
        ws.sock.sendall(frame(1, b"caf\xc3", fin=False) + frame(0, b"\xa9 ok"))
        self.assertEqual(ws.read_frame(), (1, "café ok".encode()))
        ws.sock.sendall(frame(1, b"bad \xc0\xaf"))
        self.assertEqual(ws.read_close(), 1007)
        ws.close()
        ws = RawWs(self.gw.port, extra=hs)
        ws.sock.sendall(frame(1, b"unmasked", mask=False))
        self.assertEqual(ws.read_close(), 1002)
        ws.close()
        ws = RawWs(self.gw.port, extra=hs)
        # A 2 MiB frame is refused from its header (the default limit is 1 MiB).
        ws.sock.sendall(bytes([0x82, 0xFF]) + struct.pack("!Q", 2 << 20) + os.urandom(4))
        self.assertEqual(ws.read_close(), 1009)
        ws.close()

    def test_broadcast_reaches_a_client_on_the_other_worker(self):
        async def go():
            async with websockets.connect(self.url + "/chat/lobby") as a, \
                       websockets.connect(self.url + "/chat/lobby") as b, \
                       websockets.connect(self.url + "/chat/elsewhere") as c:
                await a.send("/whoami")
                await b.send("/whoami")
                pa, pb = await a.recv(), await b.recv()
                self.assertNotEqual(pa, pb, "both clients on one worker")
                await a.send("hi from a")
                self.assertEqual(await b.recv(), "hi from a")
                self.assertEqual(await a.recv(), "hi from a")
                await c.send("/whoami")
                # c is in another room: the next thing it gets is its own answer.
                self.assertTrue((await c.recv()).startswith("pid "))
        self.run_async(go())
        with self.gw.client() as c:
            text = c.request("GET", "/metrics").body.decode()
        self.assertIn("barista_websocket_opened_total 3", text)

    def test_killed_worker_closes_its_connections_with_1011(self):
        async def go():
            async with websockets.connect(self.url + "/chat/k") as ws:
                await ws.send("/whoami")
                pid = int((await ws.recv()).split()[1])
                os.kill(pid, signal.SIGKILL)
                with self.assertRaises(websockets.ConnectionClosed):
                    await ws.recv()
            self.assertEqual(ws.close_code, 1011)
        self.run_async(go())

    def test_shutdown_closes_with_1001(self):
        async def go():
            async with websockets.connect(self.url + "/ws/echo") as ws:
                await ws.send("x")
                self.assertEqual(await ws.recv(), "x")
                self.gw.signal(signal.SIGTERM)
                with self.assertRaises(websockets.ConnectionClosed):
                    await ws.recv()
            self.assertEqual(ws.close_code, 1001)
        self.run_async(go())
        self.assertEqual(self.gw.wait(), 0, self.gw.stderr())

    def test_slow_reader_keeps_gateway_memory_bounded(self):
        hs = "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n" % KEY
        ws = RawWs(self.gw.port, extra=hs)
        self.assertEqual(ws.status, 101, ws.head)
        ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        before = rss_kib(self.gw.pid)
        msg = frame(2, os.urandom(64 * 1024))
        sent = 0
        ws.sock.settimeout(5)
        # 160 MiB of echo requests while reading none of the echoes: the worker's
        # answers pile up nowhere without bound (credit), and either the gateway keeps
        # reading (the worker drops echoes past its queue) or it stops (backpressure).
        try:
            for _ in range(2560):
                ws.sock.sendall(msg)
                sent += 1
        except socket.timeout:
            pass
        after = rss_kib(self.gw.pid)
        self.assertGreater(sent, 16)
        self.assertLess(after - before, 48 * 1024,
                        "gateway RSS grew from %d to %d KiB after %d messages"
                        % (before, after, sent))
        ws.close()


if __name__ == "__main__":
    unittest.main()
