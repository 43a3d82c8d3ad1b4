"""Measures the async toolkit on a release build (a benchmark, not a test):

  - /dashboard against its slowest branch: N sequential GET /dashboard and N GET
    /sleep?ms=100 (the slowest branch alone) over keep-alive connections; reports
    p50/p99 of each and the difference of the percentiles.
  - /fetch against a direct request to the same upstream: N sequential requests each
    way (same client, same keep-alive reuse); the difference is what the gateway, the
    broker hop and the worker's libcurl add.

    python3 tests/bench/async_bench.py [build/bin] [N]

Loopback only, sequential requests, bounded to a few seconds per phase."""

import http.client
import http.server
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
import harness as h  # noqa: E402


class Upstream(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body leave as two writes

    def do_GET(self):
        body = b'{"upstream":"ok"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def timings(port, path, n):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    out = []
    for i in range(n + 5):
        t0 = time.perf_counter()
        conn.request("GET", path)
        r = conn.getresponse()
        r.read()
        took = time.perf_counter() - t0
        if r.status != 200:
            raise RuntimeError("%s: %d" % (path, r.status))
        if i >= 5:  # warm-up: connections, caches
            out.append(took * 1000)
    conn.close()
    out.sort()
    return out


def pct(v, p):
    return v[min(len(v) - 1, int(len(v) * p / 100))]


def report(name, v):
    print("%-28s p50 %7.2f ms  p99 %7.2f ms  (n=%d)" % (name, pct(v, 50), pct(v, 99), len(v)))


def main():
    if len(sys.argv) > 1:
        os.environ["BARISTA_BIN"] = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    up = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    threading.Thread(target=up.serve_forever, daemon=True).start()
    up_port = up.server_address[1]
    broker = "tcp://127.0.0.1:%d" % h.free_port()
    gw = h.Gateway("--local", "--broker", broker,
                   env={"BARISTA_UPSTREAM_URL": "http://127.0.0.1:%d/" % up_port})
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with gw.client() as c:
                if c.request("GET", "/readyz").status == 200:
                    break
            time.sleep(0.05)
        dash = timings(gw.port, "/dashboard", n)
        slow = timings(gw.port, "/sleep?ms=100", n)
        report("GET /dashboard", dash)
        report("GET /sleep?ms=100 (slowest)", slow)
        print("dashboard - slowest branch:  p50 %+.2f ms  p99 %+.2f ms"
              % (pct(dash, 50) - pct(slow, 50), pct(dash, 99) - pct(slow, 99)))
        fetch = timings(gw.port, "/fetch", n)
        direct = timings(up_port, "/", n)
        report("GET /fetch", fetch)
        report("GET upstream directly", direct)
        print("fetch overhead:              p50 %+.2f ms  p99 %+.2f ms"
              % (pct(fetch, 50) - pct(direct, 50), pct(fetch, 99) - pct(direct, 99)))
    finally:
        gw.stop()
        gw.close()
        up.shutdown()


if __name__ == "__main__":
    main()
