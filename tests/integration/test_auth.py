"""Worker authentication (ZeroMQ CURVE) end to end: real gateway, real workers, keys
made by the real barista-keygen.  With authentication on, only workers holding an
authorised key register; an unknown key is refused and logged; a worker or a raw peer
without CURVE never reaches the broker; with it off, everything works as before.
Every gateway and worker must exit 0 under ASan (the ZAP socket closed cleanly)."""

import os
import socket
import stat
import tempfile
import unittest

import harness as h
from zmtp_peer import ZmtpDealer, ready_msg

HEARTBEAT_MS = 200
# Bound on every wait for a condition; conditions are normally met in milliseconds.
WAIT = 20.0


def keygen(path):
    """Runs barista-keygen PATH; returns the public key it printed."""
    r = h.run([h.binary("barista-keygen"), path])
    if r.returncode != 0:
        raise RuntimeError("barista-keygen failed: %s" % r.stderr)
    return r.stdout.strip()


class AuthTestCase(unittest.TestCase):
    def setUp(self):
        tmp = tempfile.TemporaryDirectory(prefix="barista-auth-")
        self.addCleanup(tmp.cleanup)
        self.dir = tmp.name
        self.gw_key = os.path.join(self.dir, "gateway.key")
        self.gw_pub = keygen(self.gw_key)
        self.authorized = os.path.join(self.dir, "authorized")
        os.mkdir(self.authorized)
        self.workers = []

    def make_worker_key(self, name, authorise):
        """A worker key pair in DIR/NAME.key; its public key goes into the authorised
        directory (as DIR/authorized/NAME) when `authorise`."""
        path = os.path.join(self.dir, name + ".key")
        pub = keygen(path)
        if authorise:
            with open(os.path.join(self.authorized, name), "w") as f:
                f.write("%s %s\n" % (pub, name))
        return path, pub

    def start_gateway(self, *args, auth=True):
        self.broker_port = h.free_port()
        self.endpoint = "tcp://127.0.0.1:%d" % self.broker_port
        extra = ["--curve-secret-key-file", self.gw_key,
                 "--curve-authorized-keys", self.authorized] if auth else []
        self.gw = h.start_gateway(self, "--broker", self.endpoint,
                                  "--broker-heartbeat", "%dms" % HEARTBEAT_MS, *extra, *args)
        return self.gw

    def worker(self, services, key=None, server_key=None):
        args = [h.binary("barista-worker"), "--services", services, "--connect", self.endpoint,
                "--heartbeat-ms", str(HEARTBEAT_MS)]
        if key:
            args += ["--curve-server-key", server_key or self.gw_pub,
                     "--curve-secret-key-file", key]
        p = h.start_process(self, args)
        self.workers.append(p)
        return p

    def stop_cleanly(self, proc):
        code = proc.stop()
        self.assertEqual(code, 0, "exit %s:\n%s" % (code, proc.stderr()))

    def get(self, path):
        with self.gw.client() as c:
            return c.request("GET", path)

    def wait_until(self, cond, what):
        if h.poll_until(cond, WAIT):
            return
        self.fail("timed out waiting for %s; gateway stderr:\n%s\nworkers:\n%s"
                  % (what, self.gw.stderr(), "\n".join(w.stderr() for w in self.workers)))

    def joined(self):
        return self.gw.stderr().count(" joined:")


class KeygenTest(AuthTestCase):
    def test_writes_a_private_key_pair_file_and_prints_its_public_key(self):
        mode = stat.S_IMODE(os.stat(self.gw_key).st_mode)
        self.assertEqual(mode, 0o600)
        self.assertEqual(len(self.gw_pub), 40)
        with open(self.gw_key) as f:
            text = f.read()
        self.assertIn("public-key: %s\n" % self.gw_pub, text)
        self.assertIn("secret-key: ", text)
        again = h.run([h.binary("barista-keygen"), self.gw_key])
        self.assertNotEqual(again.returncode, 0)
        self.assertIn("File exists", again.stderr)
        with open(self.gw_key) as f:
            self.assertEqual(f.read(), text)


class AuthOnTest(AuthTestCase):
    def test_authorised_worker_registers_and_serves(self):
        key, pub = self.make_worker_key("io-1", authorise=True)
        self.start_gateway()
        w = self.worker("hello", key)
        self.wait_until(lambda: self.joined() == 1, "the authorised worker to join")
        r = self.get("/hello")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json(), {"message": "hello"})
        self.assertIn("CURVE keys required", self.gw.stderr())
        self.assertNotIn("refused", self.gw.stderr())
        self.stop_cleanly(w)

    def test_server_key_may_come_from_a_file(self):
        key, _ = self.make_worker_key("io-1", authorise=True)
        pub_file = os.path.join(self.dir, "gateway.pub")
        with open(pub_file, "w") as f:
            f.write(self.gw_pub + "\n")
        self.start_gateway()
        w = self.worker("hello", key, server_key="@" + pub_file)
        self.wait_until(lambda: self.get("/hello").status == 200, "/hello through the worker")
        self.stop_cleanly(w)

    def test_unknown_key_never_registers_and_is_logged(self):
        good, _ = self.make_worker_key("io-1", authorise=True)
        bad, bad_pub = self.make_worker_key("stranger", authorise=False)
        self.start_gateway()
        intruder = self.worker("echo", bad)
        self.wait_until(lambda: "unknown key " + bad_pub in self.gw.stderr(),
                        "the refusal naming the stranger's key")
        # An authorised worker joining afterwards shows the broker was serving all along.
        w = self.worker("hello", good)
        self.wait_until(lambda: self.get("/hello").status == 200, "/hello")
        r = self.get("/echo")
        self.assertEqual(r.status, 404)
        self.assertEqual(self.joined(), 1)
        self.assertNotIn("READY", self.gw.stderr())
        # The worker says why it cannot register.
        self.wait_until(lambda: "the broker refused our CURVE key " + bad_pub
                        in intruder.stderr(), "the stranger's own explanation")
        self.stop_cleanly(intruder)
        self.stop_cleanly(w)

    def check_never_registers(self, key, server_key, explains=None):
        """A worker hosting echo with these CURVE options (key None: no CURVE) never
        registers, while an authorised one started after it does; its log says
        `explains` when given."""
        good, _ = self.make_worker_key("io-1", authorise=True)
        self.start_gateway()
        outsider = self.worker("echo", key, server_key=server_key)
        w = self.worker("hello", good)
        self.wait_until(lambda: self.get("/hello").status == 200, "/hello")
        self.assertEqual(self.get("/echo").status, 404)
        self.assertEqual(self.joined(), 1)
        if explains:
            self.wait_until(lambda: explains in outsider.stderr(), "the worker's explanation")
        self.stop_cleanly(outsider)
        self.stop_cleanly(w)

    def test_worker_without_curve_cannot_register(self):
        self.check_never_registers(None, None)

    def test_worker_trusting_the_wrong_server_key_cannot_register(self):
        key, _ = self.make_worker_key("io-2", authorise=True)
        self.check_never_registers(key, keygen(os.path.join(self.dir, "other.key")),
                                   explains="CURVE handshake with tcp://127.0.0.1:")

    def test_raw_peers_without_curve_are_dropped_unprocessed(self):
        self.start_gateway()
        # A ZMTP peer speaking the NULL mechanism is disconnected in the greeting.
        with self.assertRaises(OSError):
            with ZmtpDealer("127.0.0.1", self.broker_port, timeout=WAIT) as z:
                z.send(ready_msg("rogue:1", [("rogue", [("GET", "/rogue")])]))
                z.recv()
        # Plain TCP garbage: the connection is closed, nothing reaches the broker.
        with socket.create_connection(("127.0.0.1", self.broker_port), timeout=WAIT) as s:
            try:
                s.sendall(b"\xff" + os.urandom(4096))
                while s.recv(65536):
                    pass
            except ConnectionResetError:
                pass
        self.assertEqual(self.get("/rogue").status, 404)
        err = self.gw.stderr()
        self.assertNotIn("dropped a message", err)
        self.assertNotIn("joined", err)
        self.assertEqual(self.get("/healthz").status, 200)

    def test_local_mode_authorises_its_own_workers(self):
        self.start_gateway("--local", "--io-workers", "1", "--cpu-workers", "0",
                           "--io-services", "hello")
        self.wait_until(lambda: self.get("/hello").status == 200, "/hello from a local worker")
        self.assertIn("with CURVE", self.gw.stderr())


class AuthConfigTest(AuthTestCase):
    def test_gateway_refuses_half_a_configuration(self):
        port = h.free_port()
        for args in (["--curve-secret-key-file", self.gw_key],
                     ["--curve-authorized-keys", self.authorized]):
            r = h.run([h.binary("barista-gateway"), "--listen", "127.0.0.1:%d" % port,
                       "--broker", "tcp://127.0.0.1:*"] + args)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("go together", r.stderr)

    def test_gateway_refuses_a_bad_authorised_key(self):
        with open(os.path.join(self.authorized, "broken"), "w") as f:
            f.write("# fine\nnot-a-key\n")
        r = h.run([h.binary("barista-gateway"), "--listen", "127.0.0.1:%d" % h.free_port(),
                   "--broker", "tcp://127.0.0.1:*", "--curve-secret-key-file", self.gw_key,
                   "--curve-authorized-keys", self.authorized])
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("broken:2:", r.stderr)

    def test_worker_refuses_half_or_bad_key_options(self):
        key, _ = self.make_worker_key("io-1", authorise=False)
        base = [h.binary("barista-worker"), "--services", "hello"]
        for args, why in ((["--curve-server-key", self.gw_pub], "go together"),
                          (["--curve-secret-key-file", key], "go together"),
                          (["--curve-server-key", "short", "--curve-secret-key-file", key],
                           "--curve-server-key"),
                          (["--curve-server-key", self.gw_pub, "--curve-secret-key-file",
                            os.path.join(self.dir, "missing.key")], "missing.key")):
            r = h.run(base + args)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn(why, r.stderr)


class AuthOffTest(AuthTestCase):
    def test_without_keys_workers_register_as_before(self):
        self.start_gateway(auth=False)
        w = self.worker("hello")
        self.wait_until(lambda: self.get("/hello").status == 200, "/hello")
        self.assertNotIn("CURVE", self.gw.stderr())
        self.stop_cleanly(w)

    def test_a_curve_worker_cannot_join_a_plain_gateway(self):
        key, _ = self.make_worker_key("io-1", authorise=True)
        self.start_gateway(auth=False)
        curve = self.worker("echo", key)
        plain = self.worker("hello")
        self.wait_until(lambda: self.get("/hello").status == 200, "/hello")
        self.assertEqual(self.get("/echo").status, 404)
        self.wait_until(lambda: "CURVE handshake with" in curve.stderr(),
                        "the CURVE worker's explanation")
        self.stop_cleanly(curve)
        self.stop_cleanly(plain)


if __name__ == "__main__":
    unittest.main()
