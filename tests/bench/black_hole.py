"""The black-hole attack of issue 13, measured: what a worker that never answers
costs the gateway, and whether another service keeps working meanwhile.

    python3 tests/bench/black_hole.py [BIN_DIR] [-- GATEWAY OPTIONS...]

Starts a gateway (broker on loopback) and a real barista-worker hosting `hello` (the
"good" service), then a fake worker (tests/integration/zmtp_peer.py) that registers
the service `hole` with `POST /hole` and capacity 1,000,000, keeps heartbeating, and
never reads or answers anything.  It sends POSTS (220) requests of BODY (512 KiB) to
/hole at once, samples the gateway's RSS, then asks GET /hello while the hole's
requests are pending and again once they have timed out.  Prints one line per step.

This measures; it asserts nothing (tests/integration/test_broker.py has the
regression tests).  Defaults keep a run short: --default-timeout 2s, and
--max-pending 200 so that the table the attack fills is small enough to fill.
"""

import os
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import harness as h  # noqa: E402
from zmtp_peer import HEARTBEAT, WELCOME, ZmtpDealer, pack, ready_msg  # noqa: E402

POSTS = int(os.environ.get("POSTS", "220"))
BODY = int(os.environ.get("BODY", str(512 * 1024)))


def rss_mb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def get_status(gw, path):
    try:
        with gw.client(timeout=10) as c:
            r = c.request("GET", path)
            return "%d %s" % (r.status, r.body[:90].decode("utf-8", "replace"))
    except OSError as e:
        return "error %s" % e


def main():
    args = sys.argv[1:]
    extra = []
    if "--" in args:
        i = args.index("--")
        args, extra = args[:i], args[i + 1:]
    if args:
        os.environ["BARISTA_BIN"] = os.path.abspath(args[0])
    bport = h.free_port()
    endpoint = "tcp://127.0.0.1:%d" % bport
    gw = h.Gateway("--broker", endpoint, "--default-timeout", "2s", "--max-pending", "200",
                   "--max-body-bytes", "1m", *extra)
    good = h.Process([h.binary("barista-worker"), "--services", "hello", "--connect", endpoint])
    stop = threading.Event()
    try:
        ok = h.poll_until(lambda: get_status(gw, "/hello").startswith("200"), 20)
        print("gateway %s, /hello %s" % (h.bin_dir(), "ready" if ok else "NOT ready"))
        hole = ZmtpDealer("127.0.0.1", bport)
        hole.send(ready_msg("hole:1", [("hole", [("POST", "/hole", 1)])], capacity=1000000))
        hole.recv_type(WELCOME)

        def heartbeat():  # alive, but it never reads another byte
            while not stop.wait(0.5):
                try:
                    hole.send(pack([1, HEARTBEAT]))
                except OSError:
                    return

        threading.Thread(target=heartbeat, daemon=True).start()
        print("RSS before the attack: %.1f MB" % rss_mb(gw.pid))
        body = b"x" * BODY
        statuses = []

        def post():
            try:
                with gw.client(timeout=30) as c:
                    statuses.append(c.request("POST", "/hole",
                                              [("Content-Type", "text/plain")], body).status)
            except OSError:
                statuses.append("error")

        threads = [threading.Thread(target=post, daemon=True) for _ in range(POSTS)]
        for t in threads:
            t.start()
        peak = 0.0
        t0 = time.monotonic()
        during = None
        while any(t.is_alive() for t in threads) and time.monotonic() - t0 < 60:
            peak = max(peak, rss_mb(gw.pid))
            if during is None and time.monotonic() - t0 > 1.0:
                during = get_status(gw, "/hello")
            time.sleep(0.05)
        peak = max(peak, rss_mb(gw.pid))
        counts = {}
        for s in statuses:
            counts[s] = counts.get(s, 0) + 1
        print("%d POSTs of %d KiB to /hole answered: %s" % (POSTS, BODY // 1024, counts))
        print("peak RSS during the attack: %.1f MB" % peak)
        print("GET /hello while the hole's requests were pending: %s" % during)
        time.sleep(1.0)
        print("GET /hello after they timed out: %s" % get_status(gw, "/hello"))
        print("RSS after: %.1f MB" % rss_mb(gw.pid))
        stop.set()
        hole.close()
    finally:
        stop.set()
        good.close()
        gw.close()


if __name__ == "__main__":
    main()
