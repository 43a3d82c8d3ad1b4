"""--processes N: N gateway processes share one HTTP port (SO_REUSEPORT) under a parent.

Each gateway process runs in local mode with its own worker, and replies name their
worker (--worker-header), so the worker id says which process answered.
"""

import os
import signal
import unittest

from harness import (STOP_TIMEOUT, Gateway, HttpClient, binary, poll_until, run,
                     start_gateway)

# Fresh connections tried before giving up on seeing both processes answer.  The kernel
# hashes each connection's addresses and ports; 400 connections all landing on one of
# two listeners has a probability near 2^-400.
SPREAD_TRIES = 400


def children(pid):
    """The pids of the direct children of pid (Linux /proc)."""
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(p) for p in f.read().split()]
    except FileNotFoundError:
        return []


def hello_worker(port):
    """GET /hello on a new connection: the worker id that answered (or None on error)."""
    try:
        with HttpClient(port) as c:
            r = c.request("GET", "/hello")
            return r.header("x-barista-worker") if r.status == 200 else None
    except OSError:
        return None


class ProcessesTest(unittest.TestCase):
    ARGS = ("--local", "--processes", "2", "--worker-header", "--cpu-workers", "0",
            "--io-services", "hello")

    def start(self, *extra):
        return start_gateway(self, *self.ARGS, *extra)

    def workers_seen(self, port, want):
        """Worker ids answering /hello on fresh connections, until `want` distinct ones
        were seen or SPREAD_TRIES connections were made."""
        seen = set()
        for _ in range(SPREAD_TRIES):
            w = hello_worker(port)
            if w:
                seen.add(w)
            if len(seen) >= want:
                break
        return seen

    def test_two_processes_share_the_port_and_one_killed_is_restarted(self):
        gw = self.start()
        # Both processes up with their worker: both answer.
        first = poll_until(lambda: len(self.workers_seen(gw.port, 2)) == 2, 60, interval=0.2)
        self.assertTrue(first, "one port, two processes: both should answer /hello")
        procs = children(gw.pid)
        self.assertEqual(len(procs), 2, procs)

        victim = procs[0]
        os.kill(victim, signal.SIGKILL)
        # Once the parent has reaped it, the port is served by the other process alone.
        self.assertTrue(poll_until(lambda: victim not in children(gw.pid), 30))
        for _ in range(50):
            self.assertIsNotNone(hello_worker(gw.port), "the survivor serves the port")
        # The parent starts a new process; both processes answer again.
        self.assertTrue(poll_until(lambda: len(children(gw.pid)) == 2, 60))
        again = poll_until(lambda: self.workers_seen(gw.port, 2), 60, interval=0.2)
        self.assertEqual(len(again or ()), 2, "the restarted process answers too")
        self.assertIn("(pid %d) exited with status 0, signal 9" % victim, gw.stderr())

    def test_exit_status_says_a_process_failed(self):
        gw = Gateway(*self.ARGS, "--shutdown-timeout", "1s")
        self.addCleanup(gw.close)
        self.assertTrue(poll_until(lambda: len(children(gw.pid)) == 2, 60))
        # Both must be serving: a process stopped before it set its SIGTERM handler
        # dies of the parent's SIGTERM at once (the default action), not of the kill.
        self.assertTrue(poll_until(lambda: len(self.workers_seen(gw.port, 2)) == 2, 60,
                                   interval=0.2), "both processes should answer /hello")
        stuck = children(gw.pid)[1]
        # A stopped process cannot drain: the parent's grace runs out, it is killed, and
        # the parent's exit status says so.
        os.kill(stuck, signal.SIGSTOP)
        code = gw.stop(timeout=STOP_TIMEOUT + 10)
        self.assertEqual(code, 1, gw.stderr())
        self.assertIn("gateway-1 (pid %d) ended with status 0, signal 9" % stuck, gw.stderr())

    def test_an_endpoint_no_process_can_take_is_refused_at_start(self):
        r = run([binary("barista-gateway"), "--processes", "2", "--broker",
                 "tcp://127.0.0.1:65535", "--listen", "127.0.0.1:0"])
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("no broker endpoint for process 1", r.stderr)
        # The same from the environment, and a count past the limit.
        r = run([binary("barista-gateway"), "--broker", "tcp://127.0.0.1:65534",
                 "--listen", "127.0.0.1:0"], env={"BARISTA_PROCESSES": "3"})
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("no broker endpoint for process 2", r.stderr)
        r = run([binary("barista-gateway"), "--processes", "65"])
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("--processes", r.stderr)


if __name__ == "__main__":
    unittest.main()
