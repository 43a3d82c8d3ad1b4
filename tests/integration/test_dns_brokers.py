"""A worker that finds its brokers by name (docs/workers.md, "Several brokers").

`--connect tcp://NAME:PORT` is one broker per address NAME resolves to, as compose's
`--scale gateway=2` or Swarm's `tasks.gateway` answer.  The test runs the worker in a
private mount namespace (`unshare -m`) where /etc/hosts is a file of the test's, bind
mounted: the real resolver (glibc's getaddrinfo, reading the hosts file) answers, and
the machine's own /etc/hosts is never touched.  Two gateways listen on 127.0.0.2 and
127.0.0.3; the test edits the name's addresses and the worker follows: a new address
gets a registration, a withdrawn one is left once its requests are done.

A CPU worker with `--prefer-first-broker` holds its one slot at the first broker it
names, however its names' lookups answer: the tests make the first name resolve only
after the second (the order a slow DNS answer gives), move the first name to a new
address (a gateway restarted elsewhere), and give one name its addresses in either
order.
"""

import os
import shutil
import signal
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
# Two names for two gateways, and a third address for one that moved.
FIRST, SECOND = "first.barista.test", "second.barista.test"
MOVED = "127.0.0.4"


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
        self.write_names([(a, NAME) for a in addrs])

    def write_names(self, entries):
        """The hosts file is (address, name) entries, in this order, from now on."""
        with open(self.hosts, "w") as f:
            f.write("127.0.0.1 localhost\n")
            for a, name in entries:
                f.write("%s %s\n" % (a, name))

    def gateway(self, addr, broker_port):
        gw = Gateway("--broker", "tcp://%s:%d" % (addr, broker_port), "--worker-header",
                     "--broker-heartbeat", HB_MS + "ms")
        self.addCleanup(gw.close)
        return gw

    def worker(self, port, services, *extra, names=(NAME,), program="barista-worker"):
        """A worker in its own mount namespace, /etc/hosts being self.hosts, connecting
        to tcp://NAME:port for each of names, in that order."""
        connect = ",".join("tcp://%s:%d" % (n, port) for n in names)
        return start_process(self, [
            "unshare", "-m", "sh", "-c", 'mount --bind "$0" /etc/hosts && exec "$@"', self.hosts,
            binary(program), "--services", services, "--connect", connect, "--heartbeat-ms",
            HB_MS, "--resolve-ms", "200", *extra])

    def cpu_worker(self, port, names):
        """A CPU worker (the test-only `peak`: one slot) preferring the first broker."""
        return self.worker(port, "peak", "--prefer-first-broker", names=names,
                           program="barista-worker-test")

    def slot_left(self, w, addr, port, since=0):
        """Waits until the worker registered at addr again, after the first `since`
        characters of its log, announcing no slot (it handed its slot to the broker it
        prefers); True when it did."""
        at = "at tcp://%s:%d, window " % (addr, port)

        def last_window():
            lines = [ln for ln in w.stderr()[since:].splitlines() if at in ln]
            return lines[-1].split(at, 1)[1].split()[0] if lines else None

        return poll_until(lambda: last_window() == "0", 60, interval=0.1)

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

    def test_the_first_name_listed_holds_the_cpu_slot_whatever_answers_first(self):
        port = port_free_on(ADDRS + (MOVED,))
        gw_first, gw_second = self.gateway(ADDRS[0], port), self.gateway(ADDRS[1], port)
        # The second name answers first; the first has no address yet.
        self.write_names([(ADDRS[1], SECOND)])
        w = self.cpu_worker(port, (FIRST, SECOND))
        self.assertTrue(self.serves(gw_second, "/peak?ms=0"), w.stderr())

        # The first name answers now: the slot goes to its broker, and the second
        # registers again with none.
        self.write_names([(ADDRS[0], FIRST), (ADDRS[1], SECOND)])
        self.assertTrue(self.serves(gw_first, "/peak?ms=0"), w.stderr())
        self.assertIn("more than its share now", w.stderr())
        self.assertTrue(self.slot_left(w, ADDRS[1], port), w.stderr())

        # The first gateway dies: the slot moves to the second once the worker has
        # found it silent.
        gw_first.proc.send_signal(signal.SIGKILL)
        gw_first.wait()
        lost = "broker tcp://%s:%d silent" % (ADDRS[0], port)
        self.assertTrue(poll_until(lambda: lost in w.stderr(), 30), w.stderr())
        self.assertTrue(self.serves(gw_second, "/peak?ms=0"), w.stderr())

        # It comes back at another address (a restarted container): the name's new
        # link is made after the second's, and still the slot goes back to it.
        gw_moved = self.gateway(MOVED, port)
        mark = len(w.stderr())
        self.write_names([(MOVED, FIRST), (ADDRS[1], SECOND)])
        self.assertTrue(self.serves(gw_moved, "/peak?ms=0"), w.stderr())
        self.assertIn("new broker address tcp://%s:%d" % (MOVED, port), w.stderr()[mark:])
        self.assertTrue(self.slot_left(w, ADDRS[1], port, mark), w.stderr())
        self.assertIsNone(w.poll(), "the worker kept running")

    def test_a_names_addresses_hold_the_cpu_slot_in_address_order(self):
        port = port_free_on(ADDRS)
        gw2, gw3 = self.gateway(ADDRS[0], port), self.gateway(ADDRS[1], port)
        # The higher address answers first, alone.
        self.write_hosts(ADDRS[1])
        w = self.cpu_worker(port, (NAME,))
        self.assertTrue(self.serves(gw3, "/peak?ms=0"), w.stderr())

        # The lower one joins, listed after it: the slot goes to the lower address.
        self.write_hosts(ADDRS[1], ADDRS[0])
        self.assertTrue(self.serves(gw2, "/peak?ms=0"), w.stderr())
        self.assertTrue(self.slot_left(w, ADDRS[1], port), w.stderr())


if __name__ == "__main__":
    unittest.main()
