"""The database clients end to end: the real gateway, barista-worker-test hosting the
test-only `dbtest` service (tests/workers/db_service.c), a real PostgreSQL and a real
redis-server (dbservers.py starts both on free loopback ports and stops them at the
end), real HTTP.  Covers typed values, parameters and NULLs, a large result,
transactions (commit, a failed statement, a request that ends with one open), a
deadline shorter than pg_sleep (504, and the query gone from pg_stat_activity), a
client that goes away (its query cancelled), a connection killed mid-query, pool
exhaustion, the database restarted under load, Redis commands, a slow Redis and Redis
down and up, libpq and hiredis loaded with the first pool (and a pool whose library
cannot be loaded) - and after every test, no stall logged by the worker's watchdog."""

import socket
import threading
import time
import unittest

import dbservers
import harness as h
from test_broker import HEARTBEAT_MS, WAIT, BrokerTestCase

PG = None
REDIS = None

# The watchdog's threshold: far below the shortest wait a blocking client would put on
# the loop here (the held queries and Redis's DEBUG SLEEP last 2 s and more), far above
# what a loaded 2-core machine under ASan adds by not scheduling the worker (stalls of
# 100-250 ms were seen with the default 100 ms while other builds ran).
STALL_MS = 1000


def setUpModule():
    global PG, REDIS
    PG = dbservers.PgServer().start()
    try:
        REDIS = dbservers.RedisServer().start()
        PG.sql("CREATE TABLE dbtest_tx (k text PRIMARY KEY)")
        PG.sql("CREATE TABLE dbtest_notes (id bigint PRIMARY KEY, title text, text text)")
        PG.sql("INSERT INTO dbtest_notes SELECT i, 'note ' || i, repeat('x', 100) "
               "FROM generate_series(1, 1000) i")
    except BaseException:
        PG.close()
        if REDIS:
            REDIS.close()
        raise


def tearDownModule():
    if PG:
        PG.close()
    if REDIS:
        REDIS.close()


def sleeping_queries():
    """Active queries on the server that carry the dbtest sleep mark."""
    return int(PG.sql("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
                      "AND query LIKE '%dbtest sleep%' AND pid <> pg_backend_pid()"))


class DbTestCase(BrokerTestCase):
    WORKER_ARGS = ()

    def setUp(self):
        self.start()
        self.w = h.start_process(self, [h.binary("barista-worker-test"), "--services", "dbtest",
                                        "--connect", self.endpoint,
                                        "--heartbeat-ms", str(HEARTBEAT_MS),
                                        "--test-pg", PG.conninfo,
                                        "--test-redis", "127.0.0.1:%d" % REDIS.port,
                                        "--stall-ms", str(STALL_MS), *self.WORKER_ARGS])
        self.addCleanup(self.stop_cleanly)
        self.wait_joined(1)
        self.wait_ready()

    def stop_cleanly(self):
        """The watchdog stayed quiet, and the worker drains and exits 0 (sanitizer
        findings and leaks make it exit non-zero)."""
        err = self.w.stderr()
        if self.w.poll() is None:
            code = self.w.stop()
            err = self.w.stderr()
            self.assertEqual(code, 0, "worker exited %s:\n%s" % (code, err))
        self.assertNotIn("stall:", err)

    def json(self, method, path, body=b"", status=200):
        r = self.request(method, path, body=body)
        self.assertEqual(r.status, status, r.body)
        return r.json() if r.body else None


class Postgres(DbTestCase):
    def test_values_come_back_typed_as_json(self):
        body = self.json("GET", "/db/pg/types")
        self.assertEqual(body["i"], 42)
        self.assertEqual(body["f"], 1.5)
        self.assertIs(body["b"], True)
        self.assertEqual(body["t"], "héllo")
        self.assertIsNone(body["n"])
        self.assertEqual(body["num"], "12.50")
        self.assertEqual(body["day"], "2024-01-02")

    def test_parameters_round_trip_and_absent_ones_are_null(self):
        body = self.json("GET", "/db/pg/echo?i=-5&f=2.5&t=it%27s%20%22x%22%3B%20DROP&b=false")
        self.assertEqual(body, {"i": -5, "f": 2.5, "t": "it's \"x\"; DROP", "b": False})
        body = self.json("GET", "/db/pg/echo")
        self.assertEqual(body, {"i": None, "f": None, "t": None, "b": None})

    def test_a_large_result_arrives_whole(self):
        body = self.json("GET", "/db/pg/rows?n=20000")
        self.assertEqual(len(body), 20000)
        self.assertEqual(body[-1]["i"], 20000)
        self.assertEqual(len(body[-1]["h"]), 32)

    def test_transactions_commit_or_roll_back(self):
        self.assertEqual(self.json("POST", "/db/pg/tx?key=a"), {"committed": True})
        self.assertEqual(PG.sql("SELECT count(*) FROM dbtest_tx WHERE k = 'a'"), "1")
        # The second INSERT of b fails: the transaction is aborted, COMMIT rolls back.
        r = self.request("POST", "/db/pg/tx?key=b&fail=1")
        self.assertEqual(r.status, 409, r.body)
        self.assertIn("rolled back", r.json()["detail"])
        self.assertEqual(PG.sql("SELECT count(*) FROM dbtest_tx WHERE k = 'b'"), "0")
        # A key taken already: the first INSERT fails with a unique violation.
        r = self.request("POST", "/db/pg/tx?key=a")
        self.assertEqual(r.status, 409, r.body)
        self.assertIn("duplicate key", r.json()["detail"])

    def test_a_request_that_ends_inside_a_transaction_rolls_it_back(self):
        self.assertEqual(self.json("POST", "/db/pg/tx-abandon?key=c"), {"abandoned": True})
        self.wait_until(lambda: self.json("GET", "/db/pg/stats")["draining"] == 0, "drained")
        self.assertEqual(PG.sql("SELECT count(*) FROM dbtest_tx WHERE k = 'c'"), "0")
        self.assertEqual(PG.sql("SELECT count(*) FROM pg_stat_activity WHERE "
                                "state LIKE 'idle in transaction%'"), "0")
        for _ in range(6):
            self.assertEqual(self.json("GET", "/db/pg/one"), {"one": 1})

    def test_a_deadline_shorter_than_the_query_is_a_504_and_cancels_it(self):
        r = self.get("/db/pg/sleep?s=30")
        self.assertEqual(r.status, 504, r.body)
        self.wait_until(lambda: sleeping_queries() == 0, "the query cancelled on the server")
        self.wait_until(lambda: self.json("GET", "/db/pg/stats")["cancels"] >= 1, "a cancel")
        self.assertEqual(self.json("GET", "/db/pg/one"), {"one": 1})

    def test_a_client_that_goes_away_cancels_its_query(self):
        s = socket.create_connection(("127.0.0.1", self.gw.port))
        s.sendall(b"GET /db/pg/hold?s=30 HTTP/1.1\r\nHost: x\r\n\r\n")
        self.wait_until(lambda: sleeping_queries() == 1, "the query running")
        s.close()
        self.wait_until(lambda: sleeping_queries() == 0, "the query cancelled on the server")
        self.assertEqual(self.json("GET", "/db/pg/one"), {"one": 1})

    def test_a_connection_killed_mid_query_fails_cleanly_and_the_pool_recovers(self):
        join = self.in_background(lambda: self.get("/db/pg/hold?s=30"))
        self.wait_until(lambda: sleeping_queries() == 1, "the query running")
        PG.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
               "WHERE query LIKE '%dbtest sleep%' AND pid <> pg_backend_pid()")
        r = join()
        self.assertEqual(r.status, 503, r.body)
        self.assertIn("terminating connection", r.json()["detail"])
        self.assertEqual(r.header("retry-after"), "1")
        for _ in range(8):
            self.assertEqual(self.json("GET", "/db/pg/one"), {"one": 1})

    def test_the_async_pool_and_the_blocking_offload_answer_alike(self):
        a = self.json("GET", "/db/pg/note/7")
        b = self.json("GET", "/db/pg/note-blocking/7")
        self.assertEqual(a, b)
        self.assertEqual(a["title"], "note 7")
        self.assertEqual(self.get("/db/pg/note/5000").status, 404)


class PoolExhaustion(DbTestCase):
    WORKER_ARGS = ("--test-pg-size", "1", "--test-pg-acquire-ms", "300")

    def test_an_exhausted_pool_waits_then_fails_fast_with_503(self):
        self.assertEqual(self.json("GET", "/db/pg/one"), {"one": 1})
        join = self.in_background(lambda: self.get("/db/pg/hold?s=2"))
        self.wait_until(lambda: sleeping_queries() == 1, "the one connection busy")
        r = self.get("/db/pg/one")
        self.assertEqual(r.status, 503, r.body)
        self.assertIn("no database connection free within 300 ms", r.json()["detail"])
        self.assertEqual(r.header("retry-after"), "1")
        self.assertEqual(join().status, 200)
        self.assertEqual(self.json("GET", "/db/pg/one"), {"one": 1})


class PostgresRestart(DbTestCase):
    def test_a_restart_under_load_fails_fast_while_down_and_recovers(self):
        statuses = []
        stop = threading.Event()

        def load():
            with self.gw.client() as c:
                while not stop.is_set():
                    r = c.request("GET", "/db/pg/one")
                    statuses.append(r.status)
                    if r.status == 503:
                        self.assertEqual(r.header("retry-after"), "1")
                    time.sleep(0.01)
            return True

        join = self.in_background(load)
        self.wait_until(lambda: statuses.count(200) >= 20, "load running")
        PG.stop()
        down_from = len(statuses)
        self.wait_until(lambda: statuses[down_from:].count(503) >= 20, "503s while down")
        PG.start()
        up_from = len(statuses)
        self.wait_until(lambda: statuses[up_from:].count(200) >= 20, "200s after the restart")
        stop.set()
        join()
        # Nothing but 200s and fast 503s: no request waited out its deadline (504).
        self.assertEqual(set(statuses) - {200, 503}, set(), statuses)
        self.assertEqual(statuses[-1], 200)


class Redis(DbTestCase):
    def test_set_get_and_a_missing_key(self):
        self.assertEqual(self.json("PUT", "/db/redis/set/k1", body=b"v\x00alue"), {"value": "OK"})
        self.assertEqual(self.json("GET", "/db/redis/get/k1"), {"value": "v\u0000alue"})
        self.assertEqual(self.get("/db/redis/get/nope").status, 404)

    def test_a_slow_command_is_a_504_and_its_connection_is_dropped(self):
        self.assertEqual(self.get("/db/redis/slow").status, 504)
        self.wait_until(lambda: self.json("GET", "/db/redis/stats")["resets"] >= 1,
                        "the stuck connection dropped")
        self.assertEqual(self.json("PUT", "/db/redis/set/k2", body=b"x"), {"value": "OK"})

    def test_redis_down_fails_fast_and_up_again_works(self):
        self.assertEqual(self.json("PUT", "/db/redis/set/k3", body=b"y"), {"value": "OK"})
        REDIS.stop()
        try:
            self.wait_until(lambda: self.get("/db/redis/get/k3").status == 503, "503 while down")
            r = self.get("/db/redis/get/k3")
            self.assertEqual(r.status, 503, r.body)
            self.assertIn("redis", r.json()["detail"])
            self.assertEqual(r.header("retry-after"), "1")
        finally:
            REDIS.start()
        self.wait_until(lambda: self.get("/db/redis/get/k3").status == 404, "back (empty)")


class ClientLibraries(unittest.TestCase):
    """libpq and hiredis are loaded when a service makes its first pool
    (proto/include/barista/dl.h).  notes-pg (workers/examples/notes-pg) makes one of
    each when its services start: it maps both once it runs; with either library
    unloadable, the service that needs it fails to start with the library's name and
    the loader's reason, and the worker exits non-zero instead of crashing."""

    def notes_pg(self, prefix=()):
        return list(prefix) + [h.binary("notes-pg"), "--heartbeat-ms", str(HEARTBEAT_MS),
                               "--connect", "tcp://127.0.0.1:%d" % h.free_port(),
                               "--database-url", PG.conninfo, "--redis-port", str(REDIS.port)]

    def test_a_worker_maps_libpq_and_hiredis_once_its_pools_are_made(self):
        p = h.start_process(self, self.notes_pg())
        self.assertTrue(h.poll_until(lambda: h.maps_library(p.pid, "libpq.so.5")
                                     and h.maps_library(p.pid, "libhiredis.so.0.14"), WAIT),
                        p.stderr())
        self.assertNotIn("init failed", p.stderr())

    def test_a_pool_without_its_library_fails_the_service_with_the_reason(self):
        for soname, service, what in (("libpq.so.5", "notes", "PostgreSQL client"),
                                      ("libhiredis.so.0.14", "cache", "Redis client")):
            prefix = h.without_library(soname)
            if not prefix:
                self.skipTest("cannot hide %s here (unshare -rm refused)" % soname)
            r = h.run(self.notes_pg(prefix))
            self.assertGreater(r.returncode, 0, r.stderr)  # an exit, not a signal
            self.assertIn("service %s: init failed: cannot load %s (%s): " % (service, soname, what),
                          r.stderr)
            self.assertNotIn("Sanitizer", r.stderr)


if __name__ == "__main__":
    unittest.main()
