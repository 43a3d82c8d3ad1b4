"""Defects found in the review, end to end: the real gateway, a fake worker speaking
ZMTP (zmtp_peer.py) where the test must hold replies back, real HTTP sockets."""

import socket
import threading
import time
import unittest

import harness as h
from zmtp_peer import HEARTBEAT, REPLY, REQUEST, WELCOME, ZmtpDealer, pack, ready_msg

HEARTBEAT_MS = 200
# Bound on every wait for something that should happen in milliseconds.
WAIT = 20.0


class PipelinedBodiesAreBounded(unittest.TestCase):
    """A client that pipelines large requests must not make the gateway hold more than
    about max-output-bytes of them per connection: parsing pauses on the bytes held,
    not only on the answers waiting."""

    BODY = 512 * 1024  # two of these pass the 1 MiB default of --max-output-bytes
    COUNT = 8

    def setUp(self):
        self.broker_port = h.free_port()
        self.gw = h.start_gateway(self, "--broker", "tcp://127.0.0.1:%d" % self.broker_port,
                                  "--broker-heartbeat", "%dms" % HEARTBEAT_MS)

    def next_request(self, z, until):
        """The next REQUEST before `until` (monotonic), or None; answers nothing else."""
        while time.monotonic() < until:
            z.sock.settimeout(max(0.01, min(HEARTBEAT_MS / 1000, until - time.monotonic())))
            try:
                m = z.recv_msg()
            except (socket.timeout, TimeoutError):
                m = None
            z.send(pack([1, HEARTBEAT]))
            if m is not None and m[1] == REQUEST:
                return m
        return None

    def test_parsing_pauses_while_held_request_bytes_pass_the_limit(self):
        with ZmtpDealer("127.0.0.1", self.broker_port) as z:
            z.send(ready_msg("holder:1", [("holder", [("POST", "/hold", 1)])], capacity=100,
                             heartbeat_ms=HEARTBEAT_MS))
            z.recv_type(WELCOME)
            client = self.gw.client(timeout=WAIT)
            self.addCleanup(client.close)
            body = b"x" * self.BODY
            one = h.build_request("POST", "/hold", [("Content-Type", "text/plain")], body)
            sender = threading.Thread(target=lambda: client.send(one * self.COUNT), daemon=True)
            sender.start()
            held = []
            for _ in range(2):
                m = self.next_request(z, time.monotonic() + WAIT)
                self.assertIsNotNone(m, "the first requests never reached the worker")
                held.append(m)
            # Two 512 KiB requests are 1 MiB held: the third waits until they are
            # answered.  (Before the fix all eight reached the worker at once.)
            extra = self.next_request(z, time.monotonic() + 1.0)
            self.assertTrue(extra is None, "a third request was read while 1 MiB was held")
            answered = 0
            while answered < self.COUNT:
                for m in held:
                    z.send(pack([1, REPLY, m[2], 200, [], "text/plain", b"ok", []]))
                    answered += 1
                held = []
                if answered < self.COUNT:
                    m = self.next_request(z, time.monotonic() + WAIT)
                    self.assertIsNotNone(m, "parsing never resumed")
                    held.append(m)
            for _ in range(self.COUNT):
                r = client.read_response()
                self.assertEqual((r.status, r.body), (200, b"ok"))
            sender.join(WAIT)
            self.assertFalse(sender.is_alive())


if __name__ == "__main__":
    unittest.main()
