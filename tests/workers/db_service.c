/*
 * db_service.c - a test-only service over the database clients, for
 * tests/integration/test_db.py and tests/bench/db/db_bench.sh (barista-worker-test
 * --services dbtest).  Its pools come from --test-pg (BARISTA_TEST_PG, a conninfo) and
 * --test-redis (BARISTA_TEST_REDIS, host:port).
 *
 *   GET  /db/pg/one                  SELECT 1 -> {"one": 1}
 *   GET  /db/pg/types                one row of every type, written by br_pg_write_row
 *   GET  /db/pg/echo?i=&f=&t=&b=     the parameters back through the server; an absent
 *                                    one is passed as NULL
 *   GET  /db/pg/rows?n=N             N rows (a large result)
 *   GET  /db/pg/sleep?s=S            SELECT pg_sleep(S), marked "dbtest sleep" in a SQL
 *                                    comment; the route's deadline is 500 ms
 *   GET  /db/pg/hold?s=S             pg_sleep(S) under the gateway's default deadline
 *   POST /db/pg/tx?fail=0|1&key=K    BEGIN; INSERT K; INSERT K again when fail; COMMIT
 *   POST /db/pg/tx-abandon?key=K     BEGIN; INSERT K; then answers without COMMIT
 *   GET  /db/pg/stats                the pool's br_pg_stats
 *   GET  /db/pg/note/{id}            one row of dbtest_notes (async pool)
 *   GET  /db/pg/note-blocking/{id}   the same with blocking libpq on the thread pool
 *                                    (br_offload): what the async client replaces
 *   GET  /db/redis/get/{key}         GET
 *   PUT  /db/redis/set/{key}         SET to the body
 *   GET  /db/redis/slow              DEBUG SLEEP 2 with a 300 ms deadline
 *   GET  /db/redis/stats             the pool's br_redis_stats
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "barista/pg.h"
#include "barista/redis.h"
#include "test_services.h"

/* Blocking connections for the br_offload route: one per pool thread at most. */
#define BLOCKING_MAX 64

typedef struct dbtest {
    br_pg_pool *pg;                 /* the async pool */
    br_redis_pool *redis;           /* the Redis pool */
    const char *conninfo;           /* for the blocking connections */
    uv_mutex_t lock;                /* guards the two fields below */
    PGconn *blocking[BLOCKING_MAX]; /* idle blocking connections */
    int nblocking;                  /* entries in blocking */
} dbtest;

static void started(br_req *req, int rc)
{
    if (rc != 0)
        br_reply_error(req, rc == BR_ECLOSED ? 504 : 500, br_strerror(rc));
}

/* Any query's answer: its rows (one object, or a list), or its error. */
static void rows(br_req *req, const br_pg_result *res, void *arg)
{
    bool one = arg != NULL;
    if (!br_pg_ok(res)) {
        br_pg_reply_error(req, res);
        return;
    }
    if (one && res->nrows == 0) {
        br_reply_error(req, 404, "not found");
        return;
    }
    br_writer *w = br_reply_start(req, 200);
    if (one)
        br_pg_write_row(w, res, 0);
    else
        br_pg_write_rows(w, res);
    br_reply_send(req);
}

#define ONE ((void *)1)

static void pg_one(br_req *req)
{
    dbtest *d = br_req_data(req);
    started(req, br_pg_query(req, d->pg, "SELECT 1 AS one", NULL, 0, rows, ONE));
}

static void pg_types(br_req *req)
{
    dbtest *d = br_req_data(req);
    started(req,
            br_pg_query(req, d->pg,
                        "SELECT 42::int4 AS i, 1.5::float8 AS f, true AS b, 'héllo'::text AS t,"
                        " NULL::int AS n, 12.50::numeric AS num, '\\x00ff'::bytea AS raw,"
                        " '2024-01-02'::date AS day",
                        NULL, 0, rows, ONE));
}

static void pg_echo(br_req *req)
{
    dbtest *d = br_req_data(req);
    br_pg_value p[4] = {br_pg_null(), br_pg_null(), br_pg_null(), br_pg_null()};
    int64_t i;
    double f;
    br_str t;
    bool b;
    if (br_req_int(req, BR_IN_QUERY, "i", &i) == 0)
        p[0] = br_pg_int(i);
    if (br_req_float(req, BR_IN_QUERY, "f", &f) == 0)
        p[1] = br_pg_float(f);
    if (br_req_str(req, BR_IN_QUERY, "t", &t) == 0)
        p[2] = br_pg_text(t);
    if (br_req_bool(req, BR_IN_QUERY, "b", &b) == 0)
        p[3] = br_pg_bool(b);
    int rc = br_pg_query(req, d->pg,
                         "SELECT $1::int8 AS i, $2::float8 AS f, $3::text AS t, $4::bool AS b", p,
                         4, rows, ONE);
    if (rc == BR_EINVAL)
        br_reply_error(req, 422, "t must not hold a NUL byte");
    else
        started(req, rc);
}

static void pg_rows(br_req *req)
{
    dbtest *d = br_req_data(req);
    br_pg_value p[] = {br_pg_int(br_req_int_or(req, BR_IN_QUERY, "n", 10))};
    started(req,
            br_pg_query(req, d->pg, "SELECT i, md5(i::text) AS h FROM generate_series(1, $1) i", p,
                        1, rows, NULL));
}

static void pg_sleep_route(br_req *req)
{
    dbtest *d = br_req_data(req);
    br_pg_value p[] = {br_pg_float(br_req_float_or(req, BR_IN_QUERY, "s", 1))};
    started(req,
            br_pg_query(req, d->pg, "SELECT pg_sleep($1) /* dbtest sleep */", p, 1, rows, ONE));
}

/* ---- transactions ---- */

typedef struct txjob {
    br_pg_tx *tx;
    br_str key;
    bool fail;
    bool abandon;
} txjob;

static void tx_committed(br_req *req, const br_pg_result *res, void *arg)
{
    (void)arg;
    if (!br_pg_ok(res))
        br_pg_reply_error(req, res);
    else
        br_reply_pack(req, 200, "{s:b}", "committed", 1);
}

static void tx_step2(br_req *req, const br_pg_result *res, void *arg)
{
    txjob *j = arg;
    (void)res; /* a failure here leaves the transaction aborted: COMMIT says 409 */
    started(req, br_pg_commit(j->tx, tx_committed, j));
}

static void tx_step1(br_req *req, const br_pg_result *res, void *arg)
{
    txjob *j = arg;
    if (!br_pg_ok(res)) {
        br_pg_reply_error(req, res);
        return;
    }
    if (j->abandon) {
        br_reply_pack(req, 200, "{s:b}", "abandoned", 1); /* the request's end rolls back */
        return;
    }
    br_pg_value p[] = {br_pg_text(j->key)};
    if (j->fail)
        started(req,
                br_pg_tx_query(j->tx, "INSERT INTO dbtest_tx (k) VALUES ($1)", p, 1, tx_step2, j));
    else
        tx_step2(req, res, j);
}

static void tx_begun(br_req *req, br_pg_tx *tx, const br_pg_result *res, void *arg)
{
    txjob *j = arg;
    if (!tx) {
        br_pg_reply_error(req, res);
        return;
    }
    j->tx = tx;
    br_pg_value p[] = {br_pg_text(j->key)};
    started(req, br_pg_tx_query(tx, "INSERT INTO dbtest_tx (k) VALUES ($1)", p, 1, tx_step1, j));
}

static void pg_tx_common(br_req *req, bool abandon)
{
    dbtest *d = br_req_data(req);
    txjob *j = br_req_alloc(req, sizeof(*j));
    if (!j || br_req_str(req, BR_IN_QUERY, "key", &j->key) != 0) {
        br_reply_error(req, 422, "key is required");
        return;
    }
    j->fail = br_req_bool_or(req, BR_IN_QUERY, "fail", false);
    j->abandon = abandon;
    started(req, br_pg_begin(req, d->pg, BR_PG_READ_COMMITTED, tx_begun, j));
}

static void pg_tx(br_req *req)
{
    pg_tx_common(req, false);
}

static void pg_tx_abandon(br_req *req)
{
    pg_tx_common(req, true);
}

static void pg_stats(br_req *req)
{
    dbtest *d = br_req_data(req);
    br_pg_stats s;
    br_pg_pool_stats(d->pg, &s);
    br_reply_pack(req, 200, "{s:I, s:I, s:I, s:I, s:I, s:b, s:I, s:I, s:I}", "size",
                  (int64_t)s.size, "open", (int64_t)s.open, "idle", (int64_t)s.idle, "draining",
                  (int64_t)s.draining, "waiting", (int64_t)s.waiting, "down", (int)s.down,
                  "connects", (int64_t)s.connects, "connect_fails", (int64_t)s.connect_fails,
                  "cancels", (int64_t)s.cancels);
}

static void pg_note(br_req *req)
{
    dbtest *d = br_req_data(req);
    br_pg_value p[] = {br_pg_int(br_req_int_or(req, BR_IN_PATH, "id", 0))};
    started(req, br_pg_query(req, d->pg, "SELECT id, title, text FROM dbtest_notes WHERE id = $1",
                             p, 1, rows, ONE));
}

/* ---- the same read with blocking libpq on the thread pool ---- */

typedef struct blockjob {
    dbtest *d;       /* the service */
    int64_t id;      /* the note asked for */
    bool found;      /* the row was there */
    char title[256]; /* its columns, copied on the thread (the request's arena is the */
    char text[1024]; /* loop's), so that nothing is left to free if it ends first */
    char err[256];   /* why it failed */
} blockjob;

static uint16_t blocking_read(void *arg) /* on a pool thread */
{
    blockjob *j = arg;
    dbtest *d = j->d;
    uv_mutex_lock(&d->lock);
    PGconn *c = d->nblocking ? d->blocking[--d->nblocking] : NULL;
    uv_mutex_unlock(&d->lock);
    if (!c)
        c = PQconnectdb(d->conninfo);
    if (PQstatus(c) != CONNECTION_OK) {
        snprintf(j->err, sizeof(j->err), "%s", PQerrorMessage(c));
        PQfinish(c);
        return 503;
    }
    char id[32];
    snprintf(id, sizeof(id), "%lld", (long long)j->id);
    const char *values[] = {id};
    PGresult *r = PQexecParams(c, "SELECT id, title, text FROM dbtest_notes WHERE id = $1", 1, NULL,
                               values, NULL, NULL, 0);
    uint16_t status = PQresultStatus(r) == PGRES_TUPLES_OK ? 200 : 500;
    if (status != 200) {
        snprintf(j->err, sizeof(j->err), "%s", PQresultErrorMessage(r));
    } else if (PQntuples(r) > 0) {
        j->found = true;
        snprintf(j->title, sizeof(j->title), "%s", PQgetvalue(r, 0, 1));
        snprintf(j->text, sizeof(j->text), "%s", PQgetvalue(r, 0, 2));
    }
    PQclear(r);
    uv_mutex_lock(&d->lock);
    if (d->nblocking < BLOCKING_MAX && PQstatus(c) == CONNECTION_OK) {
        d->blocking[d->nblocking++] = c;
        c = NULL;
    }
    uv_mutex_unlock(&d->lock);
    PQfinish(c);
    return status;
}

static void blocking_done(br_req *req, const br_result *res, void *arg)
{
    blockjob *j = arg;
    if (res->status != 200)
        br_reply_error(req, res->status, j->err);
    else if (!j->found)
        br_reply_error(req, 404, "not found");
    else
        br_reply_pack(req, 200, "{s:I, s:s, s:s}", "id", j->id, "title", j->title, "text", j->text);
}

static void pg_note_blocking(br_req *req)
{
    blockjob *j = br_req_alloc(req, sizeof(*j));
    if (!j) {
        br_reply_error(req, 500, "out of memory");
        return;
    }
    memset(j, 0, sizeof(*j));
    j->d = br_req_data(req);
    j->id = br_req_int_or(req, BR_IN_PATH, "id", 0);
    if (br_offload(req, blocking_read, blocking_done, j) != 0)
        br_reply_error(req, 500, "cannot offload");
}

/* ---- Redis ---- */

static void redis_answer(br_req *req, const br_redis_result *res, void *arg)
{
    (void)arg;
    if (!br_redis_ok(res)) {
        br_redis_reply_error(req, res);
        return;
    }
    const br_redis_reply *r = res->reply;
    if (r->type == BR_REDIS_NIL)
        br_reply_error(req, 404, "no such key");
    else if (r->type == BR_REDIS_INT)
        br_reply_pack(req, 200, "{s:I}", "value", r->integer);
    else
        br_reply_pack(req, 200, "{s:S}", "value", r->str);
}

static void redis_get(br_req *req)
{
    dbtest *d = br_req_data(req);
    br_str key;
    br_req_param(req, "key", &key);
    br_str argv[] = {br_str_c("GET"), key};
    started(req, br_redis_command(req, d->redis, argv, 2, redis_answer, NULL));
}

static void redis_set(br_req *req)
{
    dbtest *d = br_req_data(req);
    br_str key;
    br_req_param(req, "key", &key);
    br_str argv[] = {br_str_c("SET"), key, br_req_body(req)};
    started(req, br_redis_command(req, d->redis, argv, 3, redis_answer, NULL));
}

static void redis_slow(br_req *req)
{
    dbtest *d = br_req_data(req);
    br_str argv[] = {br_str_c("DEBUG"), br_str_c("SLEEP"), br_str_c("2")};
    started(req, br_redis_command(req, d->redis, argv, 3, redis_answer, NULL));
}

static void redis_stats(br_req *req)
{
    dbtest *d = br_req_data(req);
    br_redis_stats s;
    br_redis_pool_stats(d->redis, &s);
    br_reply_pack(req, 200, "{s:I, s:I, s:I, s:I, s:b, s:I, s:I}", "open", (int64_t)s.open, "ready",
                  (int64_t)s.ready, "pending", (int64_t)s.pending, "waiting", (int64_t)s.waiting,
                  "down", (int)s.down, "connect_fails", (int64_t)s.connect_fails, "resets",
                  (int64_t)s.resets);
}

/* ---- life ---- */

static int dbtest_init(br_svc *svc)
{
    dbtest *d = br_svc_alloc(svc, sizeof(*d));
    if (!d)
        return br_svc_fail(svc, "out of memory");
    char why[256];
    int64_t size = 4, acquire = 0;
    br_svc_option_int(svc, "test-pg-size", &size);
    br_svc_option_int(svc, "test-pg-acquire-ms", &acquire);
    d->conninfo = br_svc_option(svc, "test-pg");
    br_pg_options po = {.conninfo = d->conninfo,
                        .size = (uint32_t)size,
                        .acquire_timeout_ms = (uint32_t)acquire,
                        .backoff_ms = 50,
                        .backoff_max_ms = 500};
    if (br_pg_pool_new(br_svc_loop(svc), &po, &d->pg, why, sizeof(why)) != 0)
        return br_svc_fail(svc, "%s", why);
    const char *hp = br_svc_option(svc, "test-redis");
    const char *colon = hp ? strrchr(hp, ':') : NULL;
    char host[64] = "127.0.0.1";
    int port = 6379;
    if (colon && (size_t)(colon - hp) < sizeof(host)) {
        memcpy(host, hp, (size_t)(colon - hp));
        host[colon - hp] = '\0';
        char *end;
        long n = strtol(colon + 1, &end, 10);
        if (*end != '\0' || n < 1 || n > 65535)
            return br_svc_fail(svc, "--test-redis: bad port in %s", hp);
        port = (int)n;
    }
    br_redis_options ro = {
        .host = host, .port = (uint16_t)port, .backoff_ms = 50, .backoff_max_ms = 500};
    if (br_redis_pool_new(br_svc_loop(svc), &ro, &d->redis, why, sizeof(why)) != 0) {
        br_pg_pool_destroy(&d->pg);
        return br_svc_fail(svc, "%s", why);
    }
    uv_mutex_init(&d->lock);
    br_svc_set_data(svc, d);
    return 0;
}

static void dbtest_fini(br_svc *svc)
{
    dbtest *d = br_svc_data(svc);
    br_pg_pool_destroy(&d->pg);
    br_redis_pool_destroy(&d->redis);
    for (int i = 0; i < d->nblocking; i++)
        PQfinish(d->blocking[i]);
    uv_mutex_destroy(&d->lock);
}

static const br_route_spec routes[] = {
    {.method = "GET", .path = "/db/pg/one", .handler = pg_one},
    {.method = "GET", .path = "/db/pg/types", .handler = pg_types},
    {.method = "GET", .path = "/db/pg/echo", .handler = pg_echo},
    {.method = "GET", .path = "/db/pg/rows", .handler = pg_rows},
    {.method = "GET", .path = "/db/pg/sleep", .handler = pg_sleep_route, .timeout_ms = 500},
    {.method = "GET", .path = "/db/pg/hold", .handler = pg_sleep_route},
    {.method = "POST", .path = "/db/pg/tx", .handler = pg_tx},
    {.method = "POST", .path = "/db/pg/tx-abandon", .handler = pg_tx_abandon},
    {.method = "GET", .path = "/db/pg/stats", .handler = pg_stats},
    {.method = "GET", .path = "/db/pg/note/{id}", .handler = pg_note},
    {.method = "GET", .path = "/db/pg/note-blocking/{id}", .handler = pg_note_blocking},
    {.method = "GET", .path = "/db/redis/get/{key}", .handler = redis_get},
    {.method = "PUT", .path = "/db/redis/set/{key}", .handler = redis_set, .body = BR_BODY_RAW},
    {.method = "GET", .path = "/db/redis/slow", .handler = redis_slow, .timeout_ms = 300},
    {.method = "GET", .path = "/db/redis/stats", .handler = redis_stats},
};

static const br_option_spec options[] = {
    {.name = "test-pg", .env = "BARISTA_TEST_PG", .def = "", .help = "PostgreSQL conninfo"},
    {.name = "test-pg-size",
     .env = "BARISTA_TEST_PG_SIZE",
     .def = "4",
     .type = BR_TYPE_INT,
     .has_min = true,
     .min = 1,
     .help = "PostgreSQL pool size"},
    {.name = "test-pg-acquire-ms",
     .env = "BARISTA_TEST_PG_ACQUIRE_MS",
     .def = "0",
     .type = BR_TYPE_INT,
     .has_min = true,
     .min = 0,
     .help = "acquire timeout"},
    {.name = "test-redis",
     .env = "BARISTA_TEST_REDIS",
     .def = "127.0.0.1:6379",
     .help = "Redis host:port"},
};

const br_service_spec br_test_db_service = {
    .name = "dbtest",
    .kind = BR_KIND_IO,
    .summary = "test only: the database clients",
    .routes = routes,
    .nroutes = BR_NELEMS(routes),
    .options = options,
    .noptions = BR_NELEMS(options),
    .init = dbtest_init,
    .fini = dbtest_fini,
};
