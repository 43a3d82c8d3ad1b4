/*
 * test_notes_pg.c - the notes and cache services through the SDK's test client
 * (barista/testing.h), against a real PostgreSQL and a real Redis: BARISTA_TEST_PG
 * (a libpq conninfo) and BARISTA_TEST_REDIS (host:port).  Without them the test is
 * skipped (exit 77).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <barista/testing.h>

extern const br_service_spec notes_pg_service, cache_service;

static const char *pg;
static char redis_host[64], redis_port[8];

static br_test *start(const char *database_url)
{
    const br_service_spec *services[] = {&notes_pg_service, &cache_service};
    const char *options[] = {"database-url", database_url, "redis-host", redis_host,
                             "redis-port",   redis_port,   NULL};
    br_test *t = br_test_new(services, 2, options);
    assert_non_null(t);
    return t;
}

/* The table is made in the background at start: the first requests may be told so. */
static void request_when_ready(br_test *t, const char *method, const char *target, const char *json,
                               br_test_reply *r)
{
    for (int i = 0; i < 200; i++) {
        br_test_req rq = {.method = method, .target = target, .body = json};
        assert_int_equal(br_test_request(t, &rq, r), 0);
        if (r->status != 503)
            return;
        br_test_get(t, "/cache/pause", r); /* lets the loop turn */
    }
}

static void notes_are_created_read_and_listed(void **state)
{
    (void)state;
    br_test *t = start(pg);
    br_test_reply r;
    request_when_ready(t, "POST", "/notes", "{\"title\":\"milk\",\"text\":\"2 litres\"}", &r);
    assert_int_equal(r.status, 201);
    long long id = 0;
    assert_int_equal(sscanf(r.body, "{\"id\":%lld,", &id), 1);
    char expect[256], target[64];
    snprintf(expect, sizeof(expect), "{\"id\":%lld,\"title\":\"milk\",\"text\":\"2 litres\"}", id);
    assert_string_equal(r.body, expect);

    snprintf(target, sizeof(target), "/notes/%lld", id);
    assert_int_equal(br_test_get(t, target, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, expect);

    snprintf(target, sizeof(target), "/notes?after=%lld&limit=1", id - 1);
    assert_int_equal(br_test_get(t, target, &r), 0);
    char list[300];
    snprintf(list, sizeof(list), "[%s]", expect);
    assert_string_equal(r.body, list);

    assert_int_equal(br_test_get(t, "/notes/0", &r), 0);
    assert_int_equal(r.status, 404);
    assert_string_equal(r.body, "{\"detail\":\"Note not found\"}");

    assert_int_equal(br_test_post(t, "/notes", "{\"text\":\"no title\"}", &r), 0);
    assert_int_equal(r.status, 422);
    br_test_destroy(&t);
}

static void the_cache_keeps_values_and_counts_hits(void **state)
{
    (void)state;
    br_test *t = start(pg);
    br_test_reply r;
    br_test_req put = {.method = "PUT",
                       .target = "/cache/greeting",
                       .body = "hello",
                       .content_type = "text/plain"};
    assert_int_equal(br_test_request(t, &put, &r), 0);
    assert_int_equal(r.status, 204);
    assert_int_equal(br_test_get(t, "/cache/greeting", &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"key\":\"greeting\",\"value\":\"hello\"}");
    assert_int_equal(br_test_get(t, "/cache/nothing-here", &r), 0);
    assert_int_equal(r.status, 404);

    long long first = 0, second = 0;
    assert_int_equal(br_test_post(t, "/hits/home", NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(sscanf(r.body, "{\"page\":\"home\",\"hits\":%lld}", &first), 1);
    assert_int_equal(br_test_post(t, "/hits/home", NULL, &r), 0);
    assert_int_equal(sscanf(r.body, "{\"page\":\"home\",\"hits\":%lld}", &second), 1);
    assert_int_equal(second, first + 1);
    br_test_destroy(&t);
}

static void a_database_that_is_down_is_a_503_with_retry_after(void **state)
{
    (void)state;
    br_test *t = start("host=127.0.0.1 port=1 dbname=none user=none");
    br_test_reply r;
    assert_int_equal(br_test_get(t, "/notes/1", &r), 0);
    assert_int_equal(r.status, 503);
    assert_string_equal(br_test_header(&r, "retry-after"), "1");
    br_test_destroy(&t);
}

int main(void)
{
    pg = getenv("BARISTA_TEST_PG");
    const char *rd = getenv("BARISTA_TEST_REDIS");
    const char *colon = rd ? strrchr(rd, ':') : NULL;
    if (!pg || !colon || (size_t)(colon - rd) >= sizeof(redis_host)) {
        fprintf(stderr, "skipped: set BARISTA_TEST_PG (conninfo) and BARISTA_TEST_REDIS "
                        "(host:port) to run against a PostgreSQL and a Redis\n");
        return 77;
    }
    memcpy(redis_host, rd, (size_t)(colon - rd));
    snprintf(redis_port, sizeof(redis_port), "%s", colon + 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(notes_are_created_read_and_listed),
        cmocka_unit_test(the_cache_keeps_values_and_counts_hits),
        cmocka_unit_test(a_database_that_is_down_is_a_503_with_retry_after),
    };
    return cmocka_run_group_tests_name("notes-pg", tests, NULL, NULL);
}
