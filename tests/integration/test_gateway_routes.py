"""The gateway's own routes with the real gateway and workers: /metrics (parsed as
Prometheus text by a small parser here, counters checked to move), /openapi.json
(parsed as JSON, built from what live workers announced, late joiners included),
/docs (a self-contained page that reads /openapi.json), and the refusal of workers
that announce the gateway's paths."""

import json
import os
import re
import tempfile
import time
import unittest

import harness as h
from test_broker import WAIT, BrokerTestCase
from zmtp_peer import GOODBYE, ZmtpDealer, ready_msg

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')


def parse_prometheus(text):
    """Text format 0.0.4 -> ({(name, ((label, value), ...)): float}, {family: type}).
    Raises AssertionError on anything the format does not allow: a sample before its
    family's # HELP and # TYPE, a counter not ending in _total, a bad label set."""
    samples, types = {}, {}
    family = None
    for line in text.splitlines():
        if line.startswith("# HELP "):
            family = line.split(" ", 3)[2]
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert name == family, "TYPE %s after HELP %s" % (name, family)
            assert kind in ("counter", "gauge", "histogram", "summary", "untyped"), line
            assert kind != "counter" or name.endswith("_total"), name
            types[name] = kind
            continue
        m = _SAMPLE.match(line)
        assert m, "not a sample: %r" % line
        name, labels = m.group(1), ()
        assert family in types, "sample %s before its TYPE" % name
        suffixes = ("_bucket", "_sum", "_count") if types[family] == "histogram" else ("",)
        assert any(name == family + s for s in suffixes), "%s outside family %s" % (name, family)
        if m.group(3):
            pairs = _LABEL.findall(m.group(3))
            assert "".join('%s="%s"%s' % p for p in pairs) == m.group(3), line
            labels = tuple((k, v) for k, v, _ in pairs)
        samples[(name, labels)] = float(m.group(4))
    return samples, types


class GatewayRoutes(BrokerTestCase):
    def metrics(self):
        r = self.get("/metrics")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("content-type"), "text/plain; version=0.0.4; charset=utf-8")
        return parse_prometheus(r.body.decode())[0]

    def openapi(self):
        r = self.get("/openapi.json")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("content-type"), "application/json")
        return json.loads(r.body)

    def test_metrics_parse_and_count_requests_workers_and_jobs(self):
        outbox = tempfile.TemporaryDirectory(prefix="barista-outbox-")
        self.addCleanup(outbox.cleanup)
        self.start(workers=["hello,sleep", "hash"])
        # barista-worker-test's public-email: the email task, submittable over HTTP.
        h.start_process(self, [h.binary("barista-worker-test"), "--services", "public-email",
                               "--connect", self.endpoint, "--heartbeat-ms", "200",
                               "--outbox", os.path.join(outbox.name, "outbox.txt")])
        self.wait_joined(3)
        before = self.metrics()
        for _ in range(3):
            self.assertEqual(self.get("/hello").status, 200)
        self.assertEqual(self.get("/sleep?ms=1").status, 200)
        self.assertEqual(self.get("/sleep?ms=-1").status, 422)
        self.assertEqual(self.get("/no/such/path").status, 404)
        r = self.request("POST", "/jobs/email", [("Content-Type", "application/json")],
                         b'{"to": "ada@example.com"}')
        self.assertEqual(r.status, 202, r.body)
        self.wait_until(lambda: self.metrics()[("barista_jobs_completed_total", ())] >= 1,
                        "the job completed")
        after = self.metrics()

        def delta(name, *labels):
            return after[(name, labels)] - before[(name, labels)]

        # The scrape of `before` is answered after it was rendered: 2xx moved by more.
        self.assertGreaterEqual(delta("barista_http_requests_total", ("code", "2xx")), 4 + 1)
        self.assertGreaterEqual(delta("barista_http_requests_total", ("code", "4xx")), 2)
        self.assertGreaterEqual(delta("barista_broker_dispatched_total"), 4)
        self.assertGreaterEqual(delta("barista_broker_replies_total"), 4)
        self.assertGreater(delta("barista_http_received_bytes_total"), 0)
        self.assertGreater(delta("barista_http_sent_bytes_total"), 0)
        self.assertEqual(delta("barista_jobs_accepted_total"), 1)
        self.assertEqual(after[("barista_jobs", (("state", "finished"),))], 1)
        # The histogram: cumulative buckets, +Inf equal to the count, which moved.
        buckets = sorted((float(dict(labels)["le"]), v) for (name, labels), v in after.items()
                         if name == "barista_http_request_duration_seconds_bucket")
        counts = [v for _, v in buckets]
        self.assertEqual(counts, sorted(counts))
        self.assertEqual(buckets[-1][0], float("inf"))
        count = after[("barista_http_request_duration_seconds_count", ())]
        self.assertEqual(buckets[-1][1], count)
        self.assertGreaterEqual(delta("barista_http_request_duration_seconds_count"), 7)
        # Workers by kind and per service.
        self.assertEqual(after[("barista_broker_workers", (("kind", "io"),))], 2)
        self.assertEqual(after[("barista_broker_workers", (("kind", "cpu"),))], 1)
        self.assertEqual(after[("barista_service_workers",
                                (("service", "hello"), ("kind", "io")))], 1)
        self.assertEqual(after[("barista_service_queued", (("service", "hash"),))], 0)
        self.assertGreaterEqual(after[("barista_http_connections_open", ())], 1)
        # Not in local mode: no supervisor.
        self.assertNotIn(("barista_supervisor_processes_running", ()), after)

    def test_openapi_follows_the_workers_that_joined(self):
        self.start(workers=["hello,sleep"])
        doc = self.openapi()
        self.assertEqual(doc["openapi"], "3.1.0")
        tags = [t["name"] for t in doc["tags"]]
        self.assertIn("hello", tags)
        self.assertIn("gateway", tags)
        paths = doc["paths"]
        for own in ("/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"):
            self.assertIn("get", paths[own])
        self.assertIn("post", paths["/jobs/{task}"])
        self.assertIn("get", paths["/jobs/{id}"])
        hello = paths["/hello/{name}"]["get"]
        self.assertEqual(hello["tags"], ["hello"])
        self.assertTrue(hello["x-barista-available"])
        (name,) = hello["parameters"]
        self.assertEqual((name["name"], name["in"], name["required"], name["schema"]["type"]),
                         ("name", "path", True, "string"))
        (ms,) = paths["/sleep"]["get"]["parameters"]
        self.assertEqual((ms["in"], ms["required"]), ("query", True))
        self.assertEqual(ms["schema"], {"type": "integer", "minimum": 0, "maximum": 60000})
        ref = paths["/sleep"]["get"]["responses"]["422"]["content"]["application/json"]
        self.assertEqual(ref["schema"]["$ref"], "#/components/schemas/HTTPValidationError")
        self.assertIn("ValidationError", doc["components"]["schemas"])
        self.assertNotIn("/hash", paths)

        # A late worker's routes appear; when it leaves they stay, marked unavailable.
        w = self.worker("hash")
        self.wait_joined(2)
        hash_op = self.openapi()["paths"]["/hash"]["get"]
        self.assertTrue(hash_op["x-barista-available"])
        params = {p["name"]: p for p in hash_op["parameters"]}
        self.assertEqual(params["n"]["schema"]["minimum"], 1)
        self.assertEqual(params["data"]["schema"]["type"], "string")
        w.kill()
        self.wait_removed(1)
        self.assertFalse(self.openapi()["paths"]["/hash"]["get"]["x-barista-available"])

    def test_docs_is_a_self_contained_page_reading_openapi(self):
        self.start()
        r = self.get("/docs")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("content-type"), "text/html; charset=utf-8")
        page = r.body.decode()
        self.assertTrue(page.startswith("<!doctype html>"))
        self.assertIn("fetch('/openapi.json')", page)
        self.assertNotIn("<script src", page)
        self.assertNotIn("http://", page)
        self.assertNotIn("https://", page)
        self.assertEqual(self.request("HEAD", "/docs").status, 200)

    def test_workers_cannot_announce_the_gateways_paths(self):
        self.start(workers=["hello"])
        refused = [("HEAD", "/healthz"), ("GET", "/metrics"), ("POST", "/openapi.json"),
                   ("GET", "/docs"), ("GET", "/readyz"), ("GET", "/jobs/{id}"),
                   ("HEAD", "/{anything}")]
        for i, (method, path) in enumerate(refused):
            with ZmtpDealer("127.0.0.1", self.broker_port) as z:
                z.send(ready_msg("shadow:%d" % i, [("shadow%d" % i, [(method, path)])]))
                self.assertIn("reserved for the gateway", z.recv_type(GOODBYE)[2])
        r = self.request("HEAD", "/healthz")
        self.assertEqual((r.status, r.body), (200, b""))
        self.assertEqual(self.get("/healthz").json(), {"status": "ok"})
        self.assertEqual(self.metrics()[("barista_broker_workers_refused_total", ())],
                         len(refused))
        self.assertNotIn("shadow0", [t["name"] for t in self.openapi()["tags"]])


class LocalMode(unittest.TestCase):
    def test_supervisor_metrics_count_local_workers(self):
        gw = h.start_gateway(self, "--local", "--io-workers", "1", "--cpu-workers", "1",
                             "--broker", "tcp://127.0.0.1:%d" % h.free_port())

        def running():
            with gw.client() as c:
                samples, types = parse_prometheus(c.request("GET", "/metrics").body.decode())
            self.assertEqual(types["barista_supervisor_restarts_total"], "counter")
            return samples.get(("barista_supervisor_processes_running", ()))

        for _ in range(int(WAIT / 0.1)):
            if running() == 2:
                break
            time.sleep(0.1)
        self.assertEqual(running(), 2)


class Parser(unittest.TestCase):
    def test_parser_refuses_what_the_format_does_not_allow(self):
        good = '# HELP x_total X.\n# TYPE x_total counter\nx_total{a="q\\"b"} 1\n'
        self.assertEqual(parse_prometheus(good)[0], {("x_total", (("a", 'q\\"b'),)): 1.0})
        for bad in ("x 1\n", "# HELP x X.\n# TYPE x counter\nx 1\n",
                    "# HELP x X.\n# TYPE x gauge\ny 1\n",
                    '# HELP x X.\n# TYPE x gauge\nx{a=b} 1\n'):
            with self.assertRaises(AssertionError):
                parse_prometheus(bad)


if __name__ == "__main__":
    unittest.main()
