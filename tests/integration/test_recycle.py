"""Worker recycling end to end (--max-requests, gunicorn's max_requests): the real
gateway in local mode supervising two I/O workers that drain and exit after a few
dozen requests each.  The supervisor starts fresh ones, the gateway routes around
the draining ones, and a steady client never sees a failure."""

import time
import unittest

import harness as h

WAIT = 60.0


class Recycle(unittest.TestCase):
    def live_hello_workers(self, gw):
        with gw.client() as c:
            text = c.request("GET", "/metrics").body.decode()
        for line in text.splitlines():
            if line.startswith('barista_service_workers{service="hello"'):
                return int(float(line.split()[-1]))
        return 0

    def test_recycled_workers_fail_no_request(self):
        # --worker-header (off by default since the broker hardening): replies name the
        # worker that answered, so that recycled workers can be told apart.
        gw = h.start_gateway(self, "--local", "--io-workers", "2", "--cpu-workers", "0",
                             "--io-services", "hello", "--worker-header",
                             env={"BARISTA_MAX_REQUESTS": "30",
                                  "BARISTA_MAX_REQUESTS_JITTER": "10"})
        self.assertTrue(h.poll_until(lambda: self.live_hello_workers(gw) == 2, WAIT),
                        "two workers never registered:\n" + gw.stderr())
        workers, statuses = set(), {}
        for _ in range(100):
            with gw.client() as c:
                r = c.request("GET", "/hello")
            statuses[r.status] = statuses.get(r.status, 0) + 1
            workers.add(r.header("x-barista-worker"))
            time.sleep(0.05)
        self.assertEqual(statuses, {200: 100}, gw.stderr())
        # 100 requests over workers that last 30..40 each: at least one was recycled.
        self.assertGreaterEqual(len(workers), 3, gw.stderr())
        self.assertIn("recycling", gw.stderr())


if __name__ == "__main__":
    unittest.main()
