"""A worker that finds its brokers by name (docs/workers.md, "Several brokers").

`--connect tcp://NAME:PORT` is one broker per address NAME resolves to, as compose's
`--scale gateway=2` or Swarm's `tasks.gateway` answer.  The test runs the worker in a
private mount namespace (`unshare -m`) where /etc/hosts is a file of the test's, bind
mounted: the real resolver (glibc's getaddrinfo, reading the hosts file) answers, and
the machine's own /etc/hosts is never touched.  Two gateways listen on 127.0.0.2 and
127.0.0.3; the test edits the name's addresses and the worker follows: a new address
gets a registration, a withdrawn one is left once its requests are done.
"""

import os
import shutil
import socket
import subprocess
import tempfile
import threading
import unittest

from harness import Gateway, binary, free_port, poll_until, start_process
from test_multibroker import get, inflight

HB_MS = "200"
NAME = "brokers.barista.test"
ADDRS = ("127.0.0.2", "127.0.0.3")


def port_free_on(addrs):
    """A port free on every address of addrs."""
    for _ in range(100):
        port = free_port(addrs[0])
        try:
            for a in addrs[1:]:
                with socket.socket() as s:
                    s.bind((a, port))
            return port
        except OSError:
            continue
    raise RuntimeError("no port free on %s" % (addrs,))


class DnsBrokersTest(unittest.TestCase):
    def setUp(self):
        fd, self.hosts = tempfile.mkstemp(prefix="barista-hosts-")
        os.close(fd)
        self.addCleanup(os.unlink, self.hosts)
        self.write_hosts()
        if shutil.which("unshare") is None:
            self.skipTest("needs unshare(1) to give the worker its own /etc/hosts")
        probe = subprocess.run(["unshare", "-m", "sh", "-c", 'mount --bind "$0" /etc/hosts',
                                self.hosts], capture_output=True, text=True)
        if probe.returncode != 0:
            self.skipTest("needs a private mount namespace (unshare -m, as root) to give the "
                          "worker its own /etc/hosts: " + probe.stderr.strip())

    def write_hosts(self, *addrs):
        """The name resolves to addrs from now on (written in place: the worker's bind
        mount sees the same file)."""
        with open(self.hosts, "w") as f:
            f.write("127.0.0.1 localhost\n")
            for a in addrs:
                f.write("%s %s\n" % (a, NAME))

    def gateway(self, addr, broker_port):
        gw = Gateway("--broker", "tcp://%s:%d" % (addr, broker_port), "--worker-header",
                     "--broker-heartbeat", HB_MS + "ms")
        self.addCleanup(gw.close)
        return gw

    def worker(self, port, services):
        """barista-worker in its own mount namespace, /etc/hosts being self.hosts."""
        return start_process(self, [
            "unshare", "-m", "sh", "-c", 'mount --bind "$0" /etc/hosts && exec "$@"', self.hosts,
            binary("barista-worker"), "--services", services, "--connect",
            "tcp://%s:%d" % (NAME, port), "--heartbeat-ms", HB_MS, "--resolve-ms", "200"])

    def serves(self, gw, path, timeout=60):
        return poll_until(lambda: get(gw.port, path)[0] == 200, timeout, interval=0.1)

    def test_a_name_is_every_broker_it_resolves_to_and_follows_its_changes(self):
        port = port_free_on(ADDRS)
        gw2, gw3 = self.gateway(ADDRS[0], port), self.gateway(ADDRS[1], port)
        self.write_hosts(ADDRS[0])
        w = self.worker(port, "hello,sleep")
        self.assertTrue(self.serves(gw2, "/hello"), w.stderr())
        self.assertNotEqual(get(gw3.port, "/hello")[0], 200, "only one address yet")

        # A second address appears: the worker registers there too, and keeps the first.
        self.write_hosts(*ADDRS)
        self.assertTrue(self.serves(gw3, "/hello"), w.stderr())
        self.assertEqual(get(gw2.port, "/hello")[0], 200)
        self.assertIn("new broker address tcp://%s:%d" % (ADDRS[1], port), w.stderr())

        # The first address is withdrawn while requests run there: they finish, then the
        # worker leaves that broker; the other keeps being served.
        results = []
        lock = threading.Lock()

        def call():
            status, _, _ = get(gw2.port, "/sleep?ms=1500")
            with lock:
                results.append(status)

        threads = [threading.Thread(target=call) for _ in range(4)]
        for t in threads:
            t.start()
        self.assertTrue(poll_until(lambda: inflight(gw2.port) >= 4, 30, interval=0.02))
        self.write_hosts(ADDRS[1])
        for t in threads:
            t.join(60)
        self.assertEqual(results, [200] * 4, w.stderr())
        self.assertTrue(poll_until(lambda: get(gw2.port, "/hello")[0] != 200, 60, interval=0.1),
                        "the worker left the withdrawn address:\n" + w.stderr())
        for _ in range(10):
            self.assertEqual(get(gw3.port, "/hello")[0], 200)
        self.assertIn("broker tcp://%s:%d: left" % (ADDRS[0], port), w.stderr())
        self.assertIsNone(w.poll(), "the worker kept running")

        # The address comes back: a fresh registration there.
        self.write_hosts(*ADDRS)
        self.assertTrue(self.serves(gw2, "/hello"), w.stderr())

    def test_addresses_found_together_share_the_capacity_from_the_start(self):
        port = port_free_on(ADDRS)
        gw2, gw3 = self.gateway(ADDRS[0], port), self.gateway(ADDRS[1], port)
        self.write_hosts(*ADDRS)
        w = self.worker(port, "hello")
        self.assertTrue(self.serves(gw2, "/hello"), w.stderr())
        self.assertTrue(self.serves(gw3, "/hello"), w.stderr())
        # --concurrency 1024 over two brokers: 512 each in the first READYs, nothing
        # to hand back later.
        for a in ADDRS:
            self.assertIn("at tcp://%s:%d, window 512" % (a, port), w.stderr())
        self.assertNotIn("more than its share", w.stderr())

    def test_a_name_that_does_not_resolve_yet_is_tried_again(self):
        port = port_free_on(ADDRS)
        gw2 = self.gateway(ADDRS[0], port)
        w = self.worker(port, "hello")
        self.assertTrue(poll_until(lambda: "resolving tcp://%s" % NAME in w.stderr(), 30),
                        "the failure is logged:\n" + w.stderr())
        self.write_hosts(ADDRS[0])
        self.assertTrue(self.serves(gw2, "/hello"), w.stderr())
        self.assertIn("works again", w.stderr())


if __name__ == "__main__":
    unittest.main()
