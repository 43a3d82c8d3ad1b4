"""Worker authentication (ZeroMQ CURVE) end to end: real gateway, real workers, CZMQ
certificates made by the real barista-keygen.  With authentication on, only workers
holding an authorised key register, and only for the services their certificate
allows; an unknown key is refused and logged; a worker or a raw peer without CURVE
never reaches the broker; SIGHUP reloads the authorised certificates, and so does a
change in their directory (--curve-watch, on by default); with it off,
everything works as before.  Every gateway and worker must exit 0 under ASan (the ZAP
socket closed cleanly)."""

import os
import shutil
import signal
import socket
import stat
import tempfile
import unittest

import harness as h
from zmtp_peer import ZmtpDealer, ready_msg

HEARTBEAT_MS = 200
# Bound on every wait for a condition; conditions are normally met in milliseconds.
WAIT = 20.0


def keygen(path, *args):
    """Runs barista-keygen [ARGS] PATH (PATH and PATH_secret); returns the public key
    it printed."""
    r = h.run([h.binary("barista-keygen")] + list(args) + [path])
    if r.returncode != 0:
        raise RuntimeError("barista-keygen failed: %s" % r.stderr)
    return r.stdout.strip()


class AuthTestCase(unittest.TestCase):
    def setUp(self):
        tmp = tempfile.TemporaryDirectory(prefix="barista-auth-")
        self.addCleanup(tmp.cleanup)
        self.dir = tmp.name
        self.gw_cert = os.path.join(self.dir, "gateway")
        self.gw_pub = keygen(self.gw_cert)
        self.gw_key = self.gw_cert + "_secret"
        self.authorized = os.path.join(self.dir, "authorized")
        os.mkdir(self.authorized)
        self.workers = []

    def make_worker_key(self, name, authorise, services="*"):
        """A worker certificate DIR/NAME (+ DIR/NAME_secret) allowed `services`; its
        public certificate is copied into the authorised directory when `authorise`.
        Returns the secret certificate's path and the public key."""
        path = os.path.join(self.dir, name)
        pub = keygen(path, "--name", name, "--services", services)
        if authorise:
            self.authorise(name)
        return path + "_secret", pub

    def authorise(self, name):
        shutil.copy(os.path.join(self.dir, name), os.path.join(self.authorized, name))

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
        # A worker handles SIGTERM once it says it is connecting (a sanitizer build
        # starts slowly): stopping it before would kill it, not drain it.
        self.wait_until(lambda: proc.poll() is not None or "connecting to" in proc.stderr(),
                        "the worker to start")
        code = proc.stop()
        self.assertEqual(code, 0, "exit %s:\n%s" % (code, proc.stderr()))

    def get(self, path):
        with self.gw.client() as c:
            return c.request("GET", path)

    def echo(self):
        with self.gw.client() as c:
            return c.request("POST", "/echo", [("Content-Type", "text/plain")], b"x")

    def wait_until(self, cond, what):
        if h.poll_until(cond, WAIT):
            return
        self.fail("timed out waiting for %s; gateway stderr:\n%s\nworkers:\n%s"
                  % (what, self.gw.stderr(), "\n".join(w.stderr() for w in self.workers)))

    def joined(self):
        return self.gw.stderr().count(" joined:")


class KeygenTest(AuthTestCase):
    def test_writes_a_czmq_certificate_pair_and_prints_its_public_key(self):
        self.assertEqual(stat.S_IMODE(os.stat(self.gw_key).st_mode), 0o600)
        self.assertEqual(len(self.gw_pub), 40)
        with open(self.gw_key) as f:
            secret = f.read()
        with open(self.gw_cert) as f:
            public = f.read()
        # CZMQ's zcert format (ZPL): what every CZMQ program reads.
        self.assertIn('public-key = "%s"' % self.gw_pub, public)
        self.assertNotIn("secret-key", public)
        self.assertIn('public-key = "%s"' % self.gw_pub, secret)
        self.assertIn('secret-key = "', secret)
        again = h.run([h.binary("barista-keygen"), self.gw_cert])
        self.assertNotEqual(again.returncode, 0)
        self.assertIn("File exists", again.stderr)
        with open(self.gw_key) as f:
            self.assertEqual(f.read(), secret)

    def test_metadata_names_the_services_and_update_keeps_the_keys(self):
        path = os.path.join(self.dir, "io")
        pub = keygen(path, "--name", "io", "--services", "hello,echo")
        with open(path) as f:
            text = f.read()
        self.assertIn('services = "hello,echo"', text)
        self.assertIn('name = "io"', text)
        self.assertEqual(keygen(path, "--update", "--services", "*"), pub)
        with open(path) as f:
            self.assertIn('services = "*"', f.read())
        with open(path + "_secret") as f:
            self.assertIn('services = "*"', f.read())
        for bad in (["--services", "a,,b"], ["--services", "a b"], ["--name", ""], ["--nope"],
                    []):
            r = h.run([h.binary("barista-keygen")] + bad + ([os.path.join(self.dir, "x")]
                                                            if bad else []))
            self.assertEqual(r.returncode, 2, (bad, r.stderr))
            self.assertEqual(r.stderr.count("\n"), 1, r.stderr)


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

    def test_server_key_may_come_from_a_certificate(self):
        key, _ = self.make_worker_key("io-1", authorise=True)
        self.start_gateway()
        w = self.worker("hello", key, server_key="@" + self.gw_cert)
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

    def test_a_key_serves_only_the_services_its_certificate_names(self):
        key, pub = self.make_worker_key("io-1", authorise=True, services="hello")
        self.start_gateway()
        # Asking for one service too many: the whole READY is refused, with the reason.
        greedy = self.worker("hello,echo", key)
        self.wait_until(lambda: "refused: key io-1 may not serve service 'echo' (its "
                        "certificate allows: hello)" in greedy.stderr(),
                        "the worker's refusal")
        self.assertIn("READY from", self.gw.stderr())
        self.assertIn("may not serve service 'echo'", self.gw.stderr())
        self.assertEqual(self.get("/hello").status, 404)
        self.assertEqual(self.joined(), 0)
        self.stop_cleanly(greedy)
        w = self.worker("hello", key)
        self.wait_until(lambda: self.get("/hello").status == 200, "/hello")
        self.stop_cleanly(w)

    def test_sighup_reloads_the_authorised_certificates(self):
        old_key, old_pub = self.make_worker_key("io-1", authorise=True, services="hello")
        new_key, new_pub = self.make_worker_key("io-2", authorise=False, services="echo")
        # Without the watch, so that only the signal can have reloaded.
        self.start_gateway("--curve-watch", "0")
        old = self.worker("hello", old_key)
        new = self.worker("echo", new_key)
        self.wait_until(lambda: self.get("/hello").status == 200, "/hello")
        self.wait_until(lambda: "unknown key " + new_pub in self.gw.stderr(),
                        "the newcomer's refusal")
        # Swap: io-2 in, io-1 out, then SIGHUP.
        self.authorise("io-2")
        os.unlink(os.path.join(self.authorized, "io-1"))
        self.gw.signal(signal.SIGHUP)
        self.wait_until(lambda: "reloaded: 1 authorised worker certificates" in self.gw.stderr(),
                        "the reload")
        self.wait_until(lambda: self.echo().status == 200, "/echo from io-2")
        self.wait_until(lambda: "key %s is no longer authorised" % old_pub in self.gw.stderr(),
                        "io-1 sent away")
        r = self.get("/hello")
        self.assertEqual(r.status, 503)
        # A broken file makes a reload fail and keeps what was loaded.
        with open(os.path.join(self.authorized, "broken"), "w") as f:
            f.write("public-key: x\n")
        self.gw.signal(signal.SIGHUP)
        self.wait_until(lambda: "keeping the 1 loaded before" in self.gw.stderr(),
                        "the failed reload")
        self.assertEqual(self.echo().status, 200)
        self.stop_cleanly(old)
        self.stop_cleanly(new)

    def test_a_changed_directory_is_reloaded_without_a_signal(self):
        # What compose's keys service does for a service added with a fragment: a new
        # pool's certificate appears next to a running gateway (written aside and
        # renamed in, as keys-init.sh does).
        old_key, old_pub = self.make_worker_key("io-1", authorise=True, services="hello")
        new_key, new_pub = self.make_worker_key("io-2", authorise=False, services="echo")
        self.start_gateway()
        self.assertIn("watching %s" % self.authorized, self.gw.stderr())
        old = self.worker("hello", old_key)
        new = self.worker("echo", new_key)
        self.wait_until(lambda: self.get("/hello").status == 200, "/hello")
        self.wait_until(lambda: "unknown key " + new_pub in self.gw.stderr(),
                        "the newcomer's refusal")
        hidden = os.path.join(self.authorized, ".io-2.tmp")
        shutil.copy(os.path.join(self.dir, "io-2"), hidden)
        os.rename(hidden, os.path.join(self.authorized, "io-2"))
        self.wait_until(lambda: self.echo().status == 200, "/echo from io-2, no SIGHUP sent")
        self.assertIn("the authorised keys changed: reloading", self.gw.stderr())
        self.assertEqual(self.get("/hello").status, 200)
        # Removing a certificate withdraws its key the same way.
        os.unlink(os.path.join(self.authorized, "io-1"))
        self.wait_until(lambda: "key %s is no longer authorised" % old_pub in self.gw.stderr(),
                        "io-1 sent away")
        self.assertEqual(self.get("/hello").status, 503)
        self.assertEqual(self.echo().status, 200)
        self.stop_cleanly(old)
        self.stop_cleanly(new)

    def test_a_single_certificate_file_is_watched_in_its_directory(self):
        self.make_worker_key("io-1", authorise=False, services="hello")
        new_key, _ = self.make_worker_key("io-2", authorise=False, services="echo")
        one = os.path.join(self.dir, "one")
        os.mkdir(one)
        shutil.copy(os.path.join(self.dir, "io-1"), os.path.join(one, "authorized"))
        self.authorized = os.path.join(one, "authorized")
        self.start_gateway()
        self.assertIn("watching %s:" % one, self.gw.stderr())
        new = self.worker("echo", new_key)
        # Replaced by rename, as tools that write a file safely do.
        shutil.copy(os.path.join(self.dir, "io-2"), os.path.join(one, ".next"))
        os.rename(os.path.join(one, ".next"), self.authorized)
        self.wait_until(lambda: self.echo().status == 200, "/echo from io-2")
        self.stop_cleanly(new)

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

    def test_gateway_refuses_a_bad_authorised_certificate(self):
        with open(os.path.join(self.authorized, "broken"), "w") as f:
            f.write("# fine\nnot-a-key\n")
        r = h.run([h.binary("barista-gateway"), "--listen", "127.0.0.1:%d" % h.free_port(),
                   "--broker", "tcp://127.0.0.1:*", "--curve-secret-key-file", self.gw_key,
                   "--curve-authorized-keys", self.authorized])
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("broken: not a ZeroMQ certificate", r.stderr)

    def test_key_files_of_the_old_format_are_refused_with_a_reason(self):
        old = os.path.join(self.dir, "old.key")
        with open(old, "w") as f:
            f.write("public-key: %s\nsecret-key: %s\n" % (self.gw_pub, self.gw_pub))
        for args in (["--curve-secret-key-file", old, "--curve-authorized-keys",
                      self.authorized],
                     ["--curve-secret-key-file", self.gw_key, "--curve-authorized-keys", old]):
            r = h.run([h.binary("barista-gateway"), "--listen", "127.0.0.1:%d" % h.free_port(),
                       "--broker", "tcp://127.0.0.1:*"] + args)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("format before certificates", r.stderr)
            self.assertIn("barista-keygen", r.stderr)
        r = h.run([h.binary("barista-worker"), "--services", "hello", "--curve-server-key",
                   self.gw_pub, "--curve-secret-key-file", old])
        self.assertEqual(r.returncode, 2)
        self.assertIn("format before certificates", r.stderr)

    def test_worker_refuses_half_or_bad_key_options(self):
        key, _ = self.make_worker_key("io-1", authorise=False)
        base = [h.binary("barista-worker"), "--services", "hello"]
        for args, why in ((["--curve-server-key", self.gw_pub], "go together"),
                          (["--curve-secret-key-file", key], "go together"),
                          (["--curve-server-key", "short", "--curve-secret-key-file", key],
                           "--curve-server-key"),
                          (["--curve-server-key", self.gw_pub, "--curve-secret-key-file",
                            os.path.join(self.dir, "missing.key")], "missing.key"),
                          (["--curve-server-key", self.gw_pub, "--curve-secret-key-file",
                            self.gw_cert], "no secret-key")):
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
