/*
 * test_pg.c - the PostgreSQL client (barista/pg.h) against a real server, on a bare
 * libuv loop with br_pg_exec (operations without a request; the request-bound API is
 * tested end to end through a worker in tests/integration/test_db.py).
 *
 * Run by CTest through tests/integration/dbservers.py, which starts PostgreSQL and
 * sets BARISTA_TEST_PG (conninfo) and BARISTA_TEST_PG_CTL (stop/start/kill it).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <math.h>

#include "barista/pg.h"

static const char *conninfo;

typedef struct fixture {
    uv_loop_t loop;
    uv_timer_t tick; /* keeps the loop turning while a test waits */
    br_pg_pool *pool;
} fixture;

/* What one br_pg_exec said, copied out of its callback. */
typedef struct outcome {
    bool done;
    uint16_t status;
    char sqlstate[6];
    char detail[512];
    uint32_t nrows, ncols;
    uint64_t affected;
    void (*check)(const br_pg_result *res, void *arg); /* runs inside the callback */
    void *check_arg;
} outcome;

static void on_tick(uv_timer_t *t)
{
    (void)t;
}

static void got(const br_pg_result *res, void *arg)
{
    outcome *o = arg;
    o->done = true;
    o->status = res->status;
    memcpy(o->sqlstate, res->sqlstate, sizeof(o->sqlstate));
    snprintf(o->detail, sizeof(o->detail), "%.*s", (int)res->detail.len, res->detail.ptr);
    o->nrows = res->nrows;
    o->ncols = res->ncols;
    o->affected = res->affected;
    if (o->check && res->status == 200)
        o->check(res, o->check_arg);
}

/* Turns the loop until *flag or ms pass; false on timeout. */
static bool run_until(fixture *f, bool *flag, uint64_t ms)
{
    uv_update_time(&f->loop);
    uint64_t end = uv_now(&f->loop) + ms;
    while (!*flag && uv_now(&f->loop) < end)
        uv_run(&f->loop, UV_RUN_ONCE);
    return *flag;
}

static void sleep_loop(fixture *f, uint64_t ms)
{
    bool never = false;
    run_until(f, &never, ms);
}

static int open_pool(fixture *f, const br_pg_options *o)
{
    char why[256];
    int rc = br_pg_pool_new(&f->loop, o, &f->pool, why, sizeof(why));
    if (rc)
        fprintf(stderr, "br_pg_pool_new: %s\n", why);
    return rc;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    uv_loop_init(&f->loop);
    uv_timer_init(&f->loop, &f->tick);
    uv_timer_start(&f->tick, on_tick, 10, 10);
    br_pg_options o = {.conninfo = conninfo, .size = 4};
    assert_int_equal(open_pool(f, &o), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    br_pg_pool_destroy(&f->pool);
    uv_close((uv_handle_t *)&f->tick, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f);
    return 0;
}

/* Runs sql with params and waits for its outcome. */
static void exec_wait(fixture *f, outcome *o, const char *sql, const br_pg_value *p, size_t n,
                      uint32_t timeout_ms)
{
    o->done = false;
    assert_int_equal(br_pg_exec(f->pool, sql, p, n, timeout_ms, got, o), 0);
    assert_true(run_until(f, &o->done, 20000));
}

/* ---------------------------------------------------------------------------------- */

static void check_types(const br_pg_result *r, void *arg)
{
    (void)arg;
    br_pg_value v = br_pg_get(r, 0, 0);
    assert_int_equal(v.type, BR_PG_INT);
    assert_int_equal(v.v.i, 1);
    v = br_pg_get(r, 0, 1);
    assert_int_equal(v.type, BR_PG_INT);
    assert_int_equal(v.v.i, -2147483648LL);
    v = br_pg_get(r, 0, 2);
    assert_int_equal(v.type, BR_PG_INT);
    assert_int_equal(v.v.i, 9223372036854775807LL);
    v = br_pg_get(r, 0, 3);
    assert_int_equal(v.type, BR_PG_FLOAT);
    assert_true(v.v.f == 1.5);
    v = br_pg_get(r, 0, 4);
    assert_int_equal(v.type, BR_PG_FLOAT);
    assert_true(v.v.f == 0.1);
    v = br_pg_get(r, 0, 5);
    assert_int_equal(v.type, BR_PG_BOOL);
    assert_true(v.v.b);
    v = br_pg_get(r, 0, 6);
    assert_int_equal(v.type, BR_PG_TEXT);
    assert_int_equal(v.v.s.len, strlen("héllo"));
    assert_memory_equal(v.v.s.ptr, "héllo", v.v.s.len);
    v = br_pg_get(r, 0, 7);
    assert_int_equal(v.type, BR_PG_BYTES);
    assert_int_equal(v.v.s.len, 3);
    assert_memory_equal(v.v.s.ptr, "\x00\xff\x10", 3);
    v = br_pg_get(r, 0, 8);
    assert_int_equal(v.type, BR_PG_NULL);
    assert_int_equal(v.oid, 23);
    v = br_pg_get(r, 0, 9);
    assert_int_equal(v.type, BR_PG_TEXT); /* numeric keeps its exact text */
    assert_int_equal(v.oid, 1700);
    assert_memory_equal(v.v.s.ptr, "12.340", 6);
    v = br_pg_get(r, 0, 10);
    assert_int_equal(v.type, BR_PG_FLOAT);
    assert_true(isinf(v.v.f) && v.v.f < 0);
    assert_int_equal(br_pg_col(r, "Big"), 2);
    assert_int_equal(br_pg_col(r, "big"), -1);
    assert_int_equal(br_pg_col_type(r, 7), 17);
    assert_int_equal(br_pg_get(r, 1, 0).type, BR_PG_NULL); /* out of range */
}

static void reads_every_type_as_a_typed_value(void **state)
{
    fixture *f = *state;
    outcome o = {.check = check_types};
    exec_wait(f, &o,
              "SELECT 1::int2, (-2147483648)::int4, 9223372036854775807::int8 AS \"Big\", "
              "1.5::float4, 0.1::float8, true, 'héllo'::text, '\\x00ff10'::bytea, NULL::int4, "
              "12.340::numeric, '-Infinity'::float8",
              NULL, 0, 0);
    assert_int_equal(o.status, 200);
    assert_int_equal(o.nrows, 1);
    assert_int_equal(o.ncols, 11);
}

static void check_params(const br_pg_result *r, void *arg)
{
    (void)arg;
    assert_int_equal(br_pg_get(r, 0, 0).v.b, false);
    assert_int_equal(br_pg_get(r, 0, 1).v.i, INT64_MIN);
    assert_true(br_pg_get(r, 0, 2).v.f == 1e-300);
    br_pg_value t = br_pg_get(r, 0, 3);
    assert_int_equal(t.type, BR_PG_TEXT);
    assert_int_equal(t.v.s.len, strlen("it's a \"quote\"; DROP TABLE x; --"));
    br_pg_value b = br_pg_get(r, 0, 4);
    assert_int_equal(b.type, BR_PG_BYTES);
    assert_int_equal(b.v.s.len, 4);
    assert_memory_equal(b.v.s.ptr, "\0\1\0\xfe", 4);
    assert_int_equal(br_pg_get(r, 0, 5).type, BR_PG_NULL);
    assert_true(isnan(br_pg_get(r, 0, 6).v.f));
    br_pg_value u = br_pg_get(r, 0, 7);
    assert_int_equal(u.oid, 2950); /* uuid: a TEXT parameter the server typed */
    assert_memory_equal(u.v.s.ptr, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", 36);
    assert_int_equal(br_pg_get(r, 0, 8).v.i, 43); /* int8 + 1 */
    br_pg_value e = br_pg_get(r, 0, 9);
    assert_int_equal(e.type, BR_PG_TEXT);
    assert_int_equal(e.v.s.len, 0);
    assert_int_equal(br_pg_get(r, 0, 10).type, BR_PG_NULL); /* NULL to an int column */
}

static void passes_parameters_of_every_type_and_nulls(void **state)
{
    fixture *f = *state;
    const char *evil = "it's a \"quote\"; DROP TABLE x; --";
    br_pg_value p[] = {
        br_pg_bool(false),
        br_pg_int(INT64_MIN),
        br_pg_float(1e-300),
        br_pg_text(br_str_c(evil)),
        br_pg_bytes("\0\1\0\xfe", 4),
        br_pg_null(),
        br_pg_float(NAN),
        br_pg_text(br_str_c("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")),
        br_pg_int(42),
        br_pg_text(br_str_c("")),
        br_pg_null(),
    };
    outcome o = {.check = check_params};
    exec_wait(f, &o, "SELECT $1, $2, $3, $4, $5, $6::text, $7, $8::uuid, $9 + 1, $10, $11::int4", p,
              BR_NELEMS(p), 0);
    assert_int_equal(o.status, 200);
    assert_int_equal(o.ncols, 11);
}

static void refuses_text_parameters_holding_nul_and_too_many(void **state)
{
    fixture *f = *state;
    outcome o = {0};
    br_pg_value p[] = {br_pg_text((br_str){"a\0b", 3})};
    assert_int_equal(br_pg_exec(f->pool, "SELECT $1", p, 1, 0, got, &o), BR_EINVAL);
    assert_int_equal(br_pg_exec(f->pool, "SELECT 1", NULL, BR_PG_MAX_PARAMS + 1, 0, got, &o),
                     BR_ELIMIT);
    assert_int_equal(br_pg_exec(f->pool, NULL, NULL, 0, 0, got, &o), BR_EINVAL);
    assert_false(o.done);
}

static void check_large(const br_pg_result *r, void *arg)
{
    (void)arg;
    assert_int_equal(br_pg_get(r, 0, 0).v.i, 1);
    assert_int_equal(br_pg_get(r, 199999, 0).v.i, 200000);
    br_pg_value s = br_pg_get(r, 199999, 1);
    assert_int_equal(s.v.s.len, 32);
}

static void returns_large_results_whole(void **state)
{
    fixture *f = *state;
    outcome o = {.check = check_large};
    exec_wait(f, &o, "SELECT i, md5(i::text) FROM generate_series(1, 200000) AS i", NULL, 0, 0);
    assert_int_equal(o.status, 200);
    assert_int_equal(o.nrows, 200000);
}

static void a_result_over_the_limit_fails_with_502(void **state)
{
    fixture *f = *state;
    outcome o = {0};
    exec_wait(f, &o, "SELECT repeat('x', 1048576) FROM generate_series(1, 70)", NULL, 0, 0);
    assert_int_equal(o.status, 502);
    assert_non_null(strstr(o.detail, "larger than"));
    exec_wait(f, &o, "SELECT 1", NULL, 0, 0);
    assert_int_equal(o.status, 200);
}

static void server_errors_map_to_statuses(void **state)
{
    fixture *f = *state;
    outcome o = {0};
    exec_wait(f, &o, "DROP TABLE IF EXISTS pg_test_u", NULL, 0, 0);
    exec_wait(f, &o, "CREATE TABLE pg_test_u (id int PRIMARY KEY)", NULL, 0, 0);
    assert_int_equal(o.status, 200);
    br_pg_value one[] = {br_pg_int(1)};
    exec_wait(f, &o, "INSERT INTO pg_test_u VALUES ($1)", one, 1, 0);
    assert_int_equal(o.status, 200);
    assert_int_equal(o.affected, 1);
    exec_wait(f, &o, "INSERT INTO pg_test_u VALUES ($1)", one, 1, 0);
    assert_int_equal(o.status, 409);
    assert_string_equal(o.sqlstate, "23505");
    assert_non_null(strstr(o.detail, "duplicate key"));
    exec_wait(f, &o, "SELECT 'abc'::int", NULL, 0, 0);
    assert_int_equal(o.status, 422);
    assert_string_equal(o.sqlstate, "22P02");
    exec_wait(f, &o, "SELEC 1", NULL, 0, 0);
    assert_int_equal(o.status, 500);
    assert_string_equal(o.sqlstate, "42601");
    exec_wait(f, &o, "SELECT * FROM no_such_table", NULL, 0, 0);
    assert_int_equal(o.status, 500);
    assert_string_equal(o.sqlstate, "42P01");
    exec_wait(f, &o, "COPY pg_test_u TO STDOUT", NULL, 0, 0);
    assert_int_equal(o.status, 500);
    assert_non_null(strstr(o.detail, "COPY"));
    exec_wait(f, &o, "DROP TABLE pg_test_u", NULL, 0, 0);
    assert_int_equal(o.status, 200); /* and the connections are all still fine */
}

static void check_count(const br_pg_result *r, void *arg)
{
    *(int64_t *)arg = br_pg_get(r, 0, 0).v.i;
}

static int64_t count_active(fixture *f, const char *like)
{
    int64_t n = -1;
    outcome o = {.check = check_count, .check_arg = &n};
    br_pg_value p[] = {br_pg_text(br_str_c(like))};
    exec_wait(f, &o,
              "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE $1 "
              "AND pid <> pg_backend_pid()",
              p, 1, 0);
    assert_int_equal(o.status, 200);
    return n;
}

static void a_deadline_shorter_than_the_query_gives_504_and_cancels_it_on_the_server(void **state)
{
    fixture *f = *state;
    outcome o = {0};
    exec_wait(f, &o, "SELECT pg_sleep(30) /* deadline test */", NULL, 0, 300);
    assert_int_equal(o.status, 504);
    assert_non_null(strstr(o.detail, "300 ms"));
    /* The server stops it: the cancel request went out from the thread pool. */
    int64_t n = -1;
    for (int i = 0; i < 100 && n != 0; i++) {
        n = count_active(f, "SELECT pg_sleep(30) /* deadline test */%");
        if (n)
            sleep_loop(f, 50);
    }
    assert_int_equal(n, 0);
    br_pg_stats s;
    br_pg_pool_stats(f->pool, &s);
    assert_int_equal(s.cancels, 1);
    /* The connection drained and went back: every connection is reusable. */
    for (int i = 0; i < 8; i++) {
        exec_wait(f, &o, "SELECT 1", NULL, 0, 0);
        assert_int_equal(o.status, 200);
    }
    br_pg_pool_stats(f->pool, &s);
    assert_int_equal(s.draining, 0);
}

typedef struct killer {
    fixture *f;
    outcome kill;
    uv_timer_t t;
} killer;

static void kill_now(uv_timer_t *t)
{
    killer *k = t->data;
    assert_int_equal(
        br_pg_exec(
            k->f->pool,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE query LIKE 'SELECT pg_sleep(20) /* kill me */%' AND pid <> pg_backend_pid()",
            NULL, 0, 0, got, &k->kill),
        0);
}

static void a_connection_killed_mid_query_fails_cleanly_and_the_pool_recovers(void **state)
{
    fixture *f = *state;
    killer k = {.f = f};
    uv_timer_init(&f->loop, &k.t);
    k.t.data = &k;
    uv_timer_start(&k.t, kill_now, 300, 0);
    outcome o = {0};
    exec_wait(f, &o, "SELECT pg_sleep(20) /* kill me */", NULL, 0, 0);
    assert_int_equal(o.status, 503);
    assert_string_equal(o.sqlstate, "57P01");
    assert_true(run_until(f, &k.kill.done, 10000));
    assert_int_equal(k.kill.status, 200);
    assert_int_equal(k.kill.nrows, 1);
    uv_close((uv_handle_t *)&k.t, NULL);
    for (int i = 0; i < 6; i++) {
        exec_wait(f, &o, "SELECT 1", NULL, 0, 0);
        assert_int_equal(o.status, 200);
    }
}

static void pool_exhaustion_waits_then_fails_fast(void **state)
{
    fixture *f = *state;
    br_pg_pool_destroy(&f->pool);
    br_pg_options opt = {
        .conninfo = conninfo, .size = 1, .max_waiters = 1, .acquire_timeout_ms = 200};
    assert_int_equal(open_pool(f, &opt), 0);
    outcome busy = {0}, waits = {0}, refused = {0};
    exec_wait(f, &busy, "SELECT 1", NULL, 0, 0); /* the one connection is open and idle */
    busy.done = false;
    assert_int_equal(br_pg_exec(f->pool, "SELECT pg_sleep(1)", NULL, 0, 0, got, &busy), 0);
    assert_int_equal(br_pg_exec(f->pool, "SELECT 1", NULL, 0, 0, got, &waits), 0);
    assert_int_equal(br_pg_exec(f->pool, "SELECT 2", NULL, 0, 0, got, &refused), 0);
    /* The third finds the one waiting slot taken: 503 at once. */
    assert_true(run_until(f, &refused.done, 5000));
    assert_int_equal(refused.status, 503);
    assert_non_null(strstr(refused.detail, "exhausted"));
    assert_false(waits.done);
    assert_true(run_until(f, &waits.done, 5000));
    assert_int_equal(waits.status, 503);
    assert_non_null(strstr(waits.detail, "200 ms"));
    assert_true(run_until(f, &busy.done, 5000));
    assert_int_equal(busy.status, 200);
    /* Without an acquire timeout, waiting ends at the deadline: 504. */
    br_pg_pool_destroy(&f->pool);
    opt.acquire_timeout_ms = 0;
    assert_int_equal(open_pool(f, &opt), 0);
    exec_wait(f, &busy, "SELECT 1", NULL, 0, 0);
    busy.done = waits.done = false;
    assert_int_equal(br_pg_exec(f->pool, "SELECT pg_sleep(1)", NULL, 0, 0, got, &busy), 0);
    assert_int_equal(br_pg_exec(f->pool, "SELECT 1", NULL, 0, 250, got, &waits), 0);
    assert_true(run_until(f, &waits.done, 5000));
    assert_int_equal(waits.status, 504);
    assert_true(run_until(f, &busy.done, 5000));
    assert_int_equal(busy.status, 200);
}

static void a_database_that_is_not_there_fails_fast_with_503(void **state)
{
    fixture *f = *state;
    br_pg_pool_destroy(&f->pool);
    /* Port 1 on loopback: nothing listens, the connect is refused. */
    br_pg_options opt = {.conninfo = "host=127.0.0.1 port=1 user=x dbname=x", .backoff_ms = 2000};
    assert_int_equal(open_pool(f, &opt), 0);
    outcome o = {0};
    exec_wait(f, &o, "SELECT 1", NULL, 0, 0);
    assert_int_equal(o.status, 503);
    assert_non_null(strstr(o.detail, "database unavailable"));
    assert_non_null(strstr(o.detail, "refused"));
    br_pg_stats s;
    br_pg_pool_stats(f->pool, &s);
    assert_true(s.down);
    assert_int_equal(s.connect_fails, 1);
    /* Within the backoff: no new attempt, the same answer at once. */
    exec_wait(f, &o, "SELECT 1", NULL, 0, 0);
    assert_int_equal(o.status, 503);
    br_pg_pool_stats(f->pool, &s);
    assert_int_equal(s.connect_fails, 1);
}

static void a_host_name_is_resolved_off_the_loop(void **state)
{
    fixture *f = *state;
    br_pg_pool_destroy(&f->pool);
    char named[512];
    const char *at = strstr(conninfo, "host=127.0.0.1");
    assert_non_null(at);
    snprintf(named, sizeof(named), "%.*shost=localhost%s", (int)(at - conninfo), conninfo,
             at + strlen("host=127.0.0.1"));
    br_pg_options opt = {.conninfo = named};
    assert_int_equal(open_pool(f, &opt), 0);
    outcome o = {0};
    exec_wait(f, &o, "SELECT 1", NULL, 0, 0);
    assert_int_equal(o.status, 200);
    br_pg_pool_destroy(&f->pool);
    br_pg_options bad = {.conninfo = "host=no-such-host.invalid dbname=x"};
    assert_int_equal(open_pool(f, &bad), 0);
    exec_wait(f, &o, "SELECT 1", NULL, 0, 0);
    assert_int_equal(o.status, 503);
    assert_non_null(strstr(o.detail, "cannot resolve host"));
}

static void a_bad_conninfo_is_refused_with_a_reason(void **state)
{
    fixture *f = *state;
    br_pg_pool *p = NULL;
    char why[256];
    br_pg_options o = {.conninfo = "host=x nonsense=1"};
    assert_int_equal(br_pg_pool_new(&f->loop, &o, &p, why, sizeof(why)), BR_EINVAL);
    assert_null(p);
    assert_non_null(strstr(why, "nonsense"));
}

static void ctl(const char *what)
{
    const char *c = getenv("BARISTA_TEST_PG_CTL");
    assert_non_null(c);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "%s %s >/dev/null", c, what);
    assert_int_equal(system(cmd), 0);
}

static void a_database_restart_fails_fast_while_down_and_recovers(void **state)
{
    fixture *f = *state;
    outcome o = {0};
    for (int i = 0; i < 4; i++) {
        exec_wait(f, &o, "SELECT 1", NULL, 0, 0);
        assert_int_equal(o.status, 200);
    }
    ctl("stop");
    sleep_loop(f, 100); /* the idle connections see their end */
    int fails = 0;
    for (int i = 0; i < 5; i++) {
        exec_wait(f, &o, "SELECT 1", NULL, 0, 2000);
        assert_int_equal(o.status, 503);
        fails++;
    }
    assert_int_equal(fails, 5);
    ctl("start");
    bool ok = false;
    for (int i = 0; i < 200 && !ok; i++) {
        exec_wait(f, &o, "SELECT 1", NULL, 0, 2000);
        ok = o.status == 200;
        if (!ok) {
            assert_int_equal(o.status, 503);
            sleep_loop(f, 50);
        }
    }
    assert_true(ok);
    br_pg_stats s;
    br_pg_pool_stats(f->pool, &s);
    assert_false(s.down);
}

typedef struct heard {
    bool done;
    char channel[64];
    char payload[64];
} heard;

static void on_notify(const char *channel, br_str payload, void *arg)
{
    heard *h = arg;
    snprintf(h->channel, sizeof(h->channel), "%s", channel);
    snprintf(h->payload, sizeof(h->payload), "%.*s", (int)payload.len, payload.ptr);
    h->done = true;
}

static void listen_delivers_notifications_to_the_channel_callback(void **state)
{
    fixture *f = *state;
    heard h = {0};
    assert_int_equal(br_pg_listen(f->pool, "Odd \"channel\"", on_notify, &h), 0);
    for (int i = 0; i < 200 && !br_pg_listening(f->pool); i++)
        sleep_loop(f, 20);
    assert_true(br_pg_listening(f->pool));
    outcome o = {0};
    br_pg_value p[] = {br_pg_text(br_str_c("Odd \"channel\"")), br_pg_text(br_str_c("hi there"))};
    exec_wait(f, &o, "SELECT pg_notify($1, $2)", p, 2, 0);
    assert_int_equal(o.status, 200);
    assert_true(run_until(f, &h.done, 5000));
    assert_string_equal(h.channel, "Odd \"channel\"");
    assert_string_equal(h.payload, "hi there");
    assert_int_equal(br_pg_unlisten(f->pool, "Odd \"channel\""), 0);
    assert_int_equal(br_pg_unlisten(f->pool, "Odd \"channel\""), BR_ENOTFOUND);
}

static void idle_connections_are_closed_after_the_idle_timeout(void **state)
{
    fixture *f = *state;
    br_pg_pool_destroy(&f->pool);
    br_pg_options opt = {.conninfo = conninfo, .idle_timeout_ms = 200};
    assert_int_equal(open_pool(f, &opt), 0);
    outcome o = {0};
    exec_wait(f, &o, "SELECT 1", NULL, 0, 0);
    br_pg_stats s;
    br_pg_pool_stats(f->pool, &s);
    assert_int_equal(s.open, 1);
    assert_int_equal(s.idle, 1);
    sleep_loop(f, 600);
    br_pg_pool_stats(f->pool, &s);
    assert_int_equal(s.open, 0);
    exec_wait(f, &o, "SELECT 1", NULL, 0, 0);
    assert_int_equal(o.status, 200);
}

static void many_queries_at_once_share_the_pool(void **state)
{
    fixture *f = *state;
    enum { N = 200 };
    outcome *o = calloc(N, sizeof(*o));
    for (int i = 0; i < N; i++) {
        br_pg_value p[] = {br_pg_int(i)};
        assert_int_equal(br_pg_exec(f->pool, "SELECT $1::int8 * 2", p, 1, 0, got, &o[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        assert_true(run_until(f, &o[i].done, 20000));
        assert_int_equal(o[i].status, 200);
    }
    br_pg_stats s;
    br_pg_pool_stats(f->pool, &s);
    assert_true(s.open <= 4);
    free(o);
}

int main(void)
{
    conninfo = getenv("BARISTA_TEST_PG");
    if (!conninfo) {
        fprintf(stderr, "test_pg: BARISTA_TEST_PG is not set; run it through "
                        "tests/integration/dbservers.py --pg -- ...\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(reads_every_type_as_a_typed_value, setup, teardown),
        cmocka_unit_test_setup_teardown(passes_parameters_of_every_type_and_nulls, setup, teardown),
        cmocka_unit_test_setup_teardown(refuses_text_parameters_holding_nul_and_too_many, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(returns_large_results_whole, setup, teardown),
        cmocka_unit_test_setup_teardown(a_result_over_the_limit_fails_with_502, setup, teardown),
        cmocka_unit_test_setup_teardown(server_errors_map_to_statuses, setup, teardown),
        cmocka_unit_test_setup_teardown(
            a_deadline_shorter_than_the_query_gives_504_and_cancels_it_on_the_server, setup,
            teardown),
        cmocka_unit_test_setup_teardown(
            a_connection_killed_mid_query_fails_cleanly_and_the_pool_recovers, setup, teardown),
        cmocka_unit_test_setup_teardown(pool_exhaustion_waits_then_fails_fast, setup, teardown),
        cmocka_unit_test_setup_teardown(a_database_that_is_not_there_fails_fast_with_503, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_bad_conninfo_is_refused_with_a_reason, setup, teardown),
        cmocka_unit_test_setup_teardown(a_host_name_is_resolved_off_the_loop, setup, teardown),
        cmocka_unit_test_setup_teardown(listen_delivers_notifications_to_the_channel_callback,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(idle_connections_are_closed_after_the_idle_timeout, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(many_queries_at_once_share_the_pool, setup, teardown),
        cmocka_unit_test_setup_teardown(a_database_restart_fails_fast_while_down_and_recovers,
                                        setup, teardown),
    };
    return cmocka_run_group_tests_name("pg", tests, NULL, NULL);
}
