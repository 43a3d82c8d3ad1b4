"""A bare ZeroMQ peer for integration tests, standard library only.

ZmtpDealer speaks just enough ZMTP 3.0 (NULL mechanism, DEALER socket type) to
connect to the broker's ROUTER and exchange single-frame messages; `pack`/`unpack`
handle the msgpack subset Barista's protocol uses.  Tests use it to play a rogue or
fake worker with exact bytes.
"""

import socket
import struct


def pack(v):
    """msgpack encoding of None, bool, int, float, str, bytes, list/tuple, dict."""
    if v is None:
        return b"\xc0"
    if v is True:
        return b"\xc3"
    if v is False:
        return b"\xc2"
    if isinstance(v, int):
        if 0 <= v < 128:
            return bytes([v])
        if -32 <= v < 0:
            return struct.pack("b", v)
        if 0 <= v < 1 << 8:
            return b"\xcc" + struct.pack(">B", v)
        if 0 <= v < 1 << 16:
            return b"\xcd" + struct.pack(">H", v)
        if 0 <= v < 1 << 32:
            return b"\xce" + struct.pack(">I", v)
        if v >= 0:
            return b"\xcf" + struct.pack(">Q", v)
        return b"\xd3" + struct.pack(">q", v)
    if isinstance(v, float):
        return b"\xcb" + struct.pack(">d", v)
    if isinstance(v, str):
        b = v.encode("utf-8")
        if len(b) < 32:
            return bytes([0xA0 | len(b)]) + b
        if len(b) < 1 << 8:
            return b"\xd9" + bytes([len(b)]) + b
        return b"\xda" + struct.pack(">H", len(b)) + b
    if isinstance(v, (bytes, bytearray)):
        if len(v) < 1 << 8:
            return b"\xc4" + bytes([len(v)]) + bytes(v)
        return b"\xc6" + struct.pack(">I", len(v)) + bytes(v)
    if isinstance(v, (list, tuple)):
        head = bytes([0x90 | len(v)]) if len(v) < 16 else b"\xdc" + struct.pack(">H", len(v))
        return head + b"".join(pack(x) for x in v)
    if isinstance(v, dict):
        head = bytes([0x80 | len(v)]) if len(v) < 16 else b"\xde" + struct.pack(">H", len(v))
        return head + b"".join(pack(k) + pack(x) for k, x in v.items())
    raise TypeError("cannot pack %r" % (v,))


def unpack(data):
    """Decodes one msgpack value (the subset above); bin becomes bytes."""
    value, end = _unpack(data, 0)
    if end != len(data):
        raise ValueError("trailing bytes")
    return value


def _unpack(d, i):
    t = d[i]
    i += 1
    if t < 0x80:
        return t, i
    if t >= 0xE0:
        return t - 256, i
    if 0xA0 <= t < 0xC0:
        n = t & 0x1F
        return d[i:i + n].decode("utf-8", "replace"), i + n
    if 0x90 <= t < 0xA0:
        return _unpack_seq(d, i, t & 0x0F)
    if 0x80 <= t < 0x90:
        return _unpack_map(d, i, t & 0x0F)
    fixed = {0xC0: None, 0xC2: False, 0xC3: True}
    if t in fixed:
        return fixed[t], i
    ints = {0xCC: ">B", 0xCD: ">H", 0xCE: ">I", 0xCF: ">Q", 0xD0: ">b", 0xD1: ">h",
            0xD2: ">i", 0xD3: ">q", 0xCA: ">f", 0xCB: ">d"}
    if t in ints:
        size = struct.calcsize(ints[t])
        return struct.unpack(ints[t], d[i:i + size])[0], i + size
    lens = {0xD9: (">B", str), 0xDA: (">H", str), 0xDB: (">I", str),
            0xC4: (">B", bytes), 0xC5: (">H", bytes), 0xC6: (">I", bytes)}
    if t in lens:
        fmt, kind = lens[t]
        size = struct.calcsize(fmt)
        n = struct.unpack(fmt, d[i:i + size])[0]
        i += size
        raw = bytes(d[i:i + n])
        return (raw.decode("utf-8", "replace") if kind is str else raw), i + n
    if t in (0xDC, 0xDD):
        fmt = ">H" if t == 0xDC else ">I"
        size = struct.calcsize(fmt)
        return _unpack_seq(d, i + size, struct.unpack(fmt, d[i:i + size])[0])
    if t in (0xDE, 0xDF):
        fmt = ">H" if t == 0xDE else ">I"
        size = struct.calcsize(fmt)
        return _unpack_map(d, i + size, struct.unpack(fmt, d[i:i + size])[0])
    raise ValueError("unsupported msgpack type 0x%02x" % t)


def _unpack_seq(d, i, n):
    out = []
    for _ in range(n):
        v, i = _unpack(d, i)
        out.append(v)
    return out, i


def _unpack_map(d, i, n):
    out = {}
    for _ in range(n):
        k, i = _unpack(d, i)
        v, i = _unpack(d, i)
        out[k] = v
    return out, i


# Protocol message types (proto.h).
READY, WELCOME, REQUEST, REPLY, CREDIT, HEARTBEAT, CANCEL, GOODBYE, CALL = range(1, 10)


def ready_msg(worker_id, services, kind=0, capacity=4, heartbeat_ms=1000, version=1):
    """READY for services given as [(name, [(method, path[, body_mode]), ...])]: no
    timeout, no declared params; body_mode 0 NONE (default), 1 RAW, 2 MSGPACK.  The
    envelope's version is the protocol version the worker speaks (PROTOCOL.md 14)."""
    svcs = [[name, kind, [[r[0], r[1], 0, r[2] if len(r) > 2 else 0, "", []] for r in routes]]
            for name, routes in services]
    return pack([version, READY, worker_id, kind, capacity, heartbeat_ms, svcs, []])


class ZmtpDealer:
    """A ZMTP 3.0 DEALER over one TCP connection: send()/recv() single frames."""

    def __init__(self, host, port, timeout=10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        greeting = (b"\xff" + b"\x00" * 8 + b"\x7f" + b"\x03\x00" + b"NULL".ljust(20, b"\x00")
                    + b"\x00" + b"\x00" * 31)
        self.sock.sendall(greeting)
        self._read_exact(64)
        self._send_frame(b"\x05READY" + self._prop("Socket-Type", b"DEALER"), command=True)
        while True:  # the ROUTER's READY command
            flags, body = self._read_frame()
            if flags & 0x04:
                break

    @staticmethod
    def _prop(name, value):
        return bytes([len(name)]) + name.encode() + struct.pack(">I", len(value)) + value

    def _send_frame(self, body, command=False, more=False):
        flags = (0x04 if command else 0) | (0x01 if more else 0)
        if len(body) > 255:
            head = bytes([flags | 0x02]) + struct.pack(">Q", len(body))
        else:
            head = bytes([flags, len(body)])
        self.sock.sendall(head + body)

    def _read_exact(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("broker closed the connection")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _read_frame(self):
        flags = self._read_exact(1)[0]
        if flags & 0x02:
            size = struct.unpack(">Q", self._read_exact(8))[0]
        else:
            size = self._read_exact(1)[0]
        return flags, self._read_exact(size)

    def send(self, body, more=False):
        """Sends one message frame (raw bytes)."""
        self._send_frame(body, more=more)

    def recv(self):
        """The next message frame's bytes (commands such as PING are skipped)."""
        while True:
            flags, body = self._read_frame()
            if not flags & 0x04:
                return body

    def recv_msg(self):
        """The next message, decoded: [version, type, fields...]."""
        return unpack(self.recv())

    def recv_type(self, wanted):
        """Reads messages until one of type `wanted` (HEARTBEATs etc. skipped)."""
        while True:
            m = self.recv_msg()
            if m[1] == wanted:
                return m

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
