/*
 * test_redis.c - the Redis client (barista/redis.h) against a real redis-server, on a
 * bare libuv loop with br_redis_exec (request-bound commands and pipelines are tested
 * through a worker in tests/integration/test_db.py).
 *
 * Run by CTest through tests/integration/dbservers.py --redis, which starts
 * redis-server and sets BARISTA_TEST_REDIS (host:port).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "barista/redis.h"

static char host[64];
static uint16_t port;

typedef struct fixture {
    uv_loop_t loop;
    uv_timer_t tick; /* keeps the loop turning while a test waits */
    br_redis_pool *pool;
} fixture;

typedef struct outcome {
    bool done;
    uint16_t status;
    char detail[256];
    br_redis_type type;
    int64_t integer;
    char str[256];
    size_t len;
    size_t n;
} outcome;

static void on_tick(uv_timer_t *t)
{
    (void)t;
}

static void got(const br_redis_result *res, void *arg)
{
    outcome *o = arg;
    o->done = true;
    o->status = res->status;
    snprintf(o->detail, sizeof(o->detail), "%.*s", (int)res->detail.len, res->detail.ptr);
    if (res->reply) {
        o->type = res->reply->type;
        o->integer = res->reply->integer;
        o->len = res->reply->str.len;
        if (o->len && o->len < sizeof(o->str))
            memcpy(o->str, res->reply->str.ptr, o->len);
        o->n = res->reply->n;
    }
}

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

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    uv_loop_init(&f->loop);
    uv_timer_init(&f->loop, &f->tick);
    uv_timer_start(&f->tick, on_tick, 10, 10);
    br_redis_options o = {.host = host, .port = port, .size = 2};
    assert_int_equal(br_redis_pool_new(&f->loop, &o, &f->pool, NULL, 0), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    br_redis_pool_destroy(&f->pool);
    uv_close((uv_handle_t *)&f->tick, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f);
    return 0;
}

#define S(lit) ((br_str){(lit), (uint32_t)(sizeof(lit) - 1)})

static void cmd_wait(fixture *f, outcome *o, const br_str *argv, size_t argc, uint32_t timeout)
{
    memset(o, 0, sizeof(*o));
    assert_int_equal(br_redis_exec(f->pool, argv, argc, timeout, got, o), 0);
    assert_true(run_until(f, &o->done, 20000));
}

static void commands_are_binary_safe_and_replies_typed(void **state)
{
    fixture *f = *state;
    outcome o;
    br_str key = S("t:bin\0key");
    br_str val = S("a\0b\r\n\xff");
    cmd_wait(f, &o, (br_str[]){S("SET"), key, val}, 3, 0);
    assert_int_equal(o.status, 200);
    assert_int_equal(o.type, BR_REDIS_STATUS);
    assert_string_equal(o.str, "OK");
    cmd_wait(f, &o, (br_str[]){S("GET"), key}, 2, 0);
    assert_int_equal(o.status, 200);
    assert_int_equal(o.type, BR_REDIS_STRING);
    assert_int_equal(o.len, val.len);
    assert_memory_equal(o.str, val.ptr, val.len);
    cmd_wait(f, &o, (br_str[]){S("GET"), S("t:missing")}, 2, 0);
    assert_int_equal(o.type, BR_REDIS_NIL);
    cmd_wait(f, &o, (br_str[]){S("DEL"), S("t:list")}, 2, 0);
    cmd_wait(f, &o, (br_str[]){S("RPUSH"), S("t:list"), S("x"), S(""), S("z")}, 5, 0);
    assert_int_equal(o.type, BR_REDIS_INT);
    assert_int_equal(o.integer, 3);
    cmd_wait(f, &o, (br_str[]){S("LRANGE"), S("t:list"), S("0"), S("-1")}, 4, 0);
    assert_int_equal(o.type, BR_REDIS_ARRAY);
    assert_int_equal(o.n, 3);
}

static void an_error_reply_is_a_500_with_its_text(void **state)
{
    fixture *f = *state;
    outcome o;
    cmd_wait(f, &o, (br_str[]){S("INCR"), S("t:list")}, 2, 0); /* a list */
    assert_int_equal(o.status, 500);
    assert_int_equal(o.type, BR_REDIS_ERROR);
    assert_non_null(strstr(o.detail, "WRONGTYPE"));
    cmd_wait(f, &o, (br_str[]){S("NOSUCHCOMMAND")}, 1, 0);
    assert_int_equal(o.status, 500);
}

static void commands_that_would_hold_a_shared_connection_are_refused(void **state)
{
    fixture *f = *state;
    outcome o = {0};
    assert_int_equal(br_redis_exec(f->pool, (br_str[]){S("BLPOP"), S("q"), S("0")}, 3, 0, got, &o),
                     BR_EINVAL);
    assert_int_equal(br_redis_exec(f->pool, (br_str[]){S("subscribe"), S("c")}, 2, 0, got, &o),
                     BR_EINVAL);
    assert_int_equal(br_redis_exec(f->pool, (br_str[]){S("MULTI")}, 1, 0, got, &o), BR_EINVAL);
    assert_int_equal(br_redis_exec(f->pool, (br_str[]){S("SELECT"), S("1")}, 2, 0, got, &o),
                     BR_EINVAL);
    assert_int_equal(
        br_redis_exec(f->pool,
                      (br_str[]){S("XREAD"), S("block"), S("0"), S("STREAMS"), S("s"), S("$")}, 6,
                      0, got, &o),
        BR_EINVAL);
    assert_int_equal(br_redis_exec(f->pool, NULL, 0, 0, got, &o), BR_EINVAL);
    assert_false(o.done);
}

static void many_commands_at_once_are_pipelined_on_the_pool(void **state)
{
    fixture *f = *state;
    outcome o;
    cmd_wait(f, &o, (br_str[]){S("DEL"), S("t:n")}, 2, 0);
    enum { N = 2000 };
    outcome *all = calloc(N, sizeof(*all));
    for (int i = 0; i < N; i++)
        assert_int_equal(
            br_redis_exec(f->pool, (br_str[]){S("INCR"), S("t:n")}, 2, 0, got, &all[i]), 0);
    for (int i = 0; i < N; i++) {
        assert_true(run_until(f, &all[i].done, 20000));
        assert_int_equal(all[i].status, 200);
    }
    free(all);
    cmd_wait(f, &o, (br_str[]){S("GET"), S("t:n")}, 2, 0);
    assert_string_equal(o.str, "2000");
    br_redis_stats s;
    br_redis_pool_stats(f->pool, &s);
    assert_true(s.open <= 2);
    assert_int_equal(s.pending, 0);
}

static void a_command_past_its_deadline_is_a_504_and_its_stuck_connection_is_dropped(void **state)
{
    fixture *f = *state;
    outcome slow, behind, o;
    cmd_wait(f, &o, (br_str[]){S("PING")}, 1, 0); /* one connection up */
    memset(&slow, 0, sizeof(slow));
    memset(&behind, 0, sizeof(behind));
    assert_int_equal(
        br_redis_exec(f->pool, (br_str[]){S("DEBUG"), S("SLEEP"), S("2")}, 3, 300, got, &slow), 0);
    assert_true(run_until(f, &slow.done, 5000));
    assert_int_equal(slow.status, 504);
    assert_non_null(strstr(slow.detail, "300 ms"));
    br_redis_stats s;
    br_redis_pool_stats(f->pool, &s);
    assert_int_equal(s.resets, 1);
    (void)behind;
    /* The pool goes on with a new connection. */
    cmd_wait(f, &o, (br_str[]){S("PING")}, 1, 0);
    assert_int_equal(o.status, 200);
    assert_string_equal(o.str, "PONG");
}

static void a_redis_that_is_not_there_fails_fast_with_503(void **state)
{
    fixture *f = *state;
    br_redis_pool_destroy(&f->pool);
    br_redis_options opt = {.host = "127.0.0.1", .port = 1, .backoff_ms = 2000};
    assert_int_equal(br_redis_pool_new(&f->loop, &opt, &f->pool, NULL, 0), 0);
    outcome o;
    cmd_wait(f, &o, (br_str[]){S("PING")}, 1, 0);
    assert_int_equal(o.status, 503);
    assert_non_null(strstr(o.detail, "redis unavailable"));
    cmd_wait(f, &o, (br_str[]){S("PING")}, 1, 0);
    assert_int_equal(o.status, 503);
    br_redis_stats s;
    br_redis_pool_stats(f->pool, &s);
    assert_true(s.down);
    assert_int_equal(s.connect_fails, 1); /* the second one did not try: backing off */
}

static void a_host_name_is_resolved_off_the_loop(void **state)
{
    fixture *f = *state;
    br_redis_pool_destroy(&f->pool);
    br_redis_options opt = {.host = "localhost", .port = port};
    assert_int_equal(br_redis_pool_new(&f->loop, &opt, &f->pool, NULL, 0), 0);
    outcome o;
    cmd_wait(f, &o, (br_str[]){S("PING")}, 1, 0);
    assert_int_equal(o.status, 200);
}

typedef struct heard {
    int count;
    char channel[64], pattern[64], message[64];
} heard;

static void on_message(br_str channel, br_str pattern, br_str message, void *arg)
{
    heard *h = arg;
    h->count++;
    snprintf(h->channel, sizeof(h->channel), "%.*s", (int)channel.len, channel.ptr);
    snprintf(h->pattern, sizeof(h->pattern), "%.*s", (int)pattern.len, pattern.ptr);
    snprintf(h->message, sizeof(h->message), "%.*s", (int)message.len, message.ptr);
}

static void subscriptions_deliver_messages_to_their_callbacks(void **state)
{
    fixture *f = *state;
    heard plain = {0}, pat = {0};
    assert_int_equal(br_redis_subscribe(f->pool, "news", false, on_message, &plain), 0);
    assert_int_equal(br_redis_subscribe(f->pool, "ev.*", true, on_message, &pat), 0);
    for (int i = 0; i < 200 && !br_redis_subscribed(f->pool); i++)
        sleep_loop(f, 20);
    assert_true(br_redis_subscribed(f->pool));
    outcome o;
    cmd_wait(f, &o, (br_str[]){S("PUBLISH"), S("news"), S("hello")}, 3, 0);
    assert_int_equal(o.integer, 1);
    cmd_wait(f, &o, (br_str[]){S("PUBLISH"), S("ev.login"), S("bob")}, 3, 0);
    assert_int_equal(o.integer, 1);
    for (int i = 0; i < 100 && (plain.count < 1 || pat.count < 1); i++)
        sleep_loop(f, 20);
    assert_int_equal(plain.count, 1);
    assert_string_equal(plain.channel, "news");
    assert_string_equal(plain.pattern, "");
    assert_string_equal(plain.message, "hello");
    assert_int_equal(pat.count, 1);
    assert_string_equal(pat.channel, "ev.login");
    assert_string_equal(pat.pattern, "ev.*");
    assert_string_equal(pat.message, "bob");
    assert_int_equal(br_redis_unsubscribe(f->pool, "news", false), 0);
    assert_int_equal(br_redis_unsubscribe(f->pool, "news", false), BR_ENOTFOUND);
    sleep_loop(f, 100);
    cmd_wait(f, &o, (br_str[]){S("PUBLISH"), S("news"), S("again")}, 3, 0);
    assert_int_equal(o.integer, 0);
}

int main(void)
{
    const char *hp = getenv("BARISTA_TEST_REDIS");
    const char *colon = hp ? strrchr(hp, ':') : NULL;
    if (!colon || (size_t)(colon - hp) >= sizeof(host)) {
        fprintf(stderr, "test_redis: BARISTA_TEST_REDIS (host:port) is not set; run it through "
                        "tests/integration/dbservers.py --redis -- ...\n");
        return 1;
    }
    memcpy(host, hp, (size_t)(colon - hp));
    char *end;
    long n = strtol(colon + 1, &end, 10);
    if (*end != '\0' || n < 1 || n > 65535) {
        fprintf(stderr, "test_redis: BARISTA_TEST_REDIS has a bad port: %s\n", hp);
        return 1;
    }
    port = (uint16_t)n;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(commands_are_binary_safe_and_replies_typed, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(an_error_reply_is_a_500_with_its_text, setup, teardown),
        cmocka_unit_test_setup_teardown(commands_that_would_hold_a_shared_connection_are_refused,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(many_commands_at_once_are_pipelined_on_the_pool, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            a_command_past_its_deadline_is_a_504_and_its_stuck_connection_is_dropped, setup,
            teardown),
        cmocka_unit_test_setup_teardown(a_redis_that_is_not_there_fails_fast_with_503, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_host_name_is_resolved_off_the_loop, setup, teardown),
        cmocka_unit_test_setup_teardown(subscriptions_deliver_messages_to_their_callbacks, setup,
                                        teardown),
    };
    return cmocka_run_group_tests_name("redis", tests, NULL, NULL);
}
