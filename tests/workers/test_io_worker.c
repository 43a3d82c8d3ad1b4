/*
 * test_io_worker.c - the real barista-worker hosting hello, sleep and echo, driven by
 * a test broker over a real ROUTER socket: registration, every route, concurrency,
 * cancel, heartbeats, liveness, re-registration, garbage, the SIGTERM drain, and
 * recycling (--max-requests, --max-rss-mb: drain and exit 0).
 *
 * Bounds are generous ("well before"), never tight timings: the machine is shared.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "broker_harness.h"

#define HB_MS       100
#define CONCURRENCY "512"
#define WAIT_MS     10000

static int setup(void **state)
{
    static harness h;
    static const char *const args[] = {"--concurrency", CONCURRENCY, NULL};
    return harness_setup(state, &h, "hello,sleep,echo", HB_MS, args);
}

static const br_route *find_route(const br_ready *r, const char *service, const char *path)
{
    for (uint32_t i = 0; i < r->nservices; i++) {
        if (!br_str_eq(r->services[i].name, service))
            continue;
        for (uint32_t j = 0; j < r->services[i].nroutes; j++) {
            if (br_str_eq(r->services[i].routes[j].path, path))
                return &r->services[i].routes[j];
        }
    }
    return NULL;
}

static void ready_describes_services_routes_and_params(void **state)
{
    harness *h = *state;
    br_msg m;
    assert_int_equal(harness_expect(h, BR_MSG_READY, &m, WAIT_MS, NULL), 0);
    const br_ready *r = &m.u.ready;
    assert_int_equal(r->kind, BR_KIND_IO);
    assert_int_equal(r->capacity, 512);
    assert_int_equal(r->heartbeat_ms, HB_MS);
    assert_int_equal(r->nservices, 3);
    assert_true(r->worker_id.len > 0);

    const br_route *hello = find_route(r, "hello", "/hello");
    const br_route *named = find_route(r, "hello", "/hello/{name}");
    const br_route *sleep = find_route(r, "sleep", "/sleep");
    const br_route *echo = find_route(r, "echo", "/echo");
    assert_non_null(hello);
    assert_non_null(named);
    assert_non_null(sleep);
    assert_non_null(echo);
    assert_true(br_str_eq(hello->method, "GET"));
    assert_true(br_str_eq(echo->method, "POST"));
    assert_int_equal(echo->body, BR_BODY_RAW);
    /* Declared responses travel in READY (PROTOCOL.md 5.1). */
    assert_int_equal(echo->nresponses, 1);
    assert_int_equal(echo->responses[0].status, 200);
    assert_int_equal(echo->responses[0].schema.len, 0);
    assert_int_equal(named->nparams, 1);
    assert_int_equal(named->params[0].in, BR_IN_PATH);
    assert_true(br_str_eq(named->params[0].name, "name"));
    assert_int_equal(sleep->nparams, 1);
    assert_int_equal(sleep->params[0].in, BR_IN_QUERY);
    assert_int_equal(sleep->params[0].type, BR_TYPE_INT);
    assert_true(sleep->params[0].required);
    assert_true(sleep->params[0].has_min && sleep->params[0].min == 0);
    assert_true(sleep->params[0].has_max && sleep->params[0].max == 60000);
    assert_true(sleep->timeout_ms > 60000);
}

static br_reply expect_reply(harness *h, uint64_t id)
{
    br_reply r;
    assert_int_equal(harness_expect_reply(h, id, &r, WAIT_MS, NULL), 0);
    return r;
}

static void hello_routes_answer_with_msgpack_messages(void **state)
{
    harness *h = *state;
    assert_int_equal(harness_register(h, "b1", NULL, NULL), 0);
    assert_int_equal(harness_request(h, 1, "hello", "GET", "/hello", "/hello", 5000, NULL), 0);
    br_reply r = expect_reply(h, 1);
    assert_int_equal(r.status, 200);
    assert_true(br_str_eq(r.content_type, "application/msgpack"));
    assert_true(body_has_str(r.body, "message", "hello"));

    br_pair param = {br_str_c("name"), br_str_c("Zoë Barista")};
    br_msg m = {.type = BR_MSG_REQUEST};
    m.u.request = (br_request){.id = 2,
                               .service = br_str_c("hello"),
                               .method = br_str_c("GET"),
                               .route = br_str_c("/hello/{name}"),
                               .path = br_str_c("/hello/Zo%C3%AB%20Barista"),
                               .params = &param,
                               .nparams = 1,
                               .deadline_ms = 5000};
    assert_int_equal(harness_send(h, &m), 0);
    r = expect_reply(h, 2);
    assert_int_equal(r.status, 200);
    assert_true(body_has_str(r.body, "message", "hello Zoë Barista"));
}

static void echo_returns_the_body_with_its_content_type(void **state)
{
    harness *h = *state;
    assert_int_equal(harness_register(h, "b1", NULL, NULL), 0);
    static const char body[] = "caf\xc3\xa9\0binary\xff";
    br_msg m = {.type = BR_MSG_REQUEST};
    m.u.request = (br_request){.id = 7,
                               .service = br_str_c("echo"),
                               .method = br_str_c("POST"),
                               .route = br_str_c("/echo"),
                               .path = br_str_c("/echo"),
                               .content_type = br_str_c("application/octet-stream"),
                               .body = {body, sizeof(body)},
                               .deadline_ms = 5000};
    assert_int_equal(harness_send(h, &m), 0);
    br_reply r = expect_reply(h, 7);
    assert_int_equal(r.status, 200);
    assert_true(br_str_eq(r.content_type, "application/octet-stream"));
    assert_int_equal(r.body.len, sizeof(body));
    assert_memory_equal(r.body.ptr, body, sizeof(body));
}

static void sleep_answers_after_its_timer_and_refuses_bad_ms(void **state)
{
    harness *h = *state;
    assert_int_equal(harness_register(h, "b1", NULL, NULL), 0);
    long long t0 = harness_now_ms();
    assert_int_equal(
        harness_request(h, 3, "sleep", "GET", "/sleep", "/sleep", 5000, "ms", "200", NULL), 0);
    br_reply r = expect_reply(h, 3);
    assert_true(harness_now_ms() - t0 >= 200);
    assert_int_equal(r.status, 200);
    assert_true(body_has_int(r.body, "slept_ms", 200));

    const char *bad[] = {"-1", "60001", "abc", "12x", ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(harness_request(h, 10 + i, "sleep", "GET", "/sleep", "/sleep", 5000, "ms",
                                         bad[i], NULL),
                         0);
        r = expect_reply(h, 10 + i);
        assert_int_equal(r.status, 422);
    }
    assert_int_equal(harness_request(h, 20, "sleep", "GET", "/nope", "/nope", 5000, NULL), 0);
    r = expect_reply(h, 20);
    assert_int_equal(r.status, 404);
}

static void many_sleeps_are_in_flight_at_once(void **state)
{
    harness *h = *state;
    enum { N = 200, MS = 300 };
    assert_int_equal(harness_register(h, "b1", NULL, NULL), 0);
    long long t0 = harness_now_ms();
    for (uint64_t id = 1; id <= N; id++)
        assert_int_equal(
            harness_request(h, id, "sleep", "GET", "/sleep", "/sleep", 30000, "ms", "300", NULL),
            0);
    static bool seen[N + 1];
    int got = 0;
    while (got < N) {
        br_msg m;
        assert_int_equal(harness_expect(h, BR_MSG_REPLY, &m, 30000, NULL), 0);
        assert_int_equal(m.u.reply.status, 200);
        assert_true(m.u.reply.id >= 1 && m.u.reply.id <= N && !seen[m.u.reply.id]);
        seen[m.u.reply.id] = true;
        got++;
    }
    /* One after another they would take N * MS = 60 s. */
    assert_true(harness_now_ms() - t0 < N * MS / 4);
}

static void cancel_stops_a_sleep_with_499(void **state)
{
    harness *h = *state;
    assert_int_equal(harness_register(h, "b1", NULL, NULL), 0);
    assert_int_equal(
        harness_request(h, 5, "sleep", "GET", "/sleep", "/sleep", 60000, "ms", "60000", NULL), 0);
    br_msg c = {.type = BR_MSG_CANCEL};
    c.u.cancel.id = 5;
    /* A cancel for an unknown id is ignored. */
    br_msg other = {.type = BR_MSG_CANCEL};
    other.u.cancel.id = 999;
    assert_int_equal(harness_send(h, &other), 0);
    long long t0 = harness_now_ms();
    assert_int_equal(harness_send(h, &c), 0);
    br_reply r = expect_reply(h, 5);
    assert_int_equal(r.status, 499);
    assert_int_equal(r.body.len, 0);
    assert_true(harness_now_ms() - t0 < 5000);
}

static void heartbeats_flow_and_a_silent_broker_gets_a_new_ready(void **state)
{
    harness *h = *state;
    assert_int_equal(harness_register(h, "b1", NULL, NULL), 0);
    int beats = 0;
    br_msg m;
    long long t0 = harness_now_ms();
    while (harness_now_ms() - t0 < 10 * HB_MS)
        if (harness_recv(h, &m, HB_MS) == 0 && m.type == BR_MSG_HEARTBEAT)
            beats++;
    assert_true(beats >= 3);

    /* Stop answering: after 3 silent heartbeats the worker reconnects and says READY. */
    h->auto_heartbeat = false;
    assert_int_equal(harness_expect(h, BR_MSG_READY, &m, WAIT_MS, NULL), 0);
    assert_int_equal(m.u.ready.capacity, 512);
}

static void goodbye_from_the_broker_leads_to_a_new_ready(void **state)
{
    harness *h = *state;
    assert_int_equal(harness_register(h, "b1", NULL, NULL), 0);
    assert_int_equal(harness_request(h, 1, "hello", "GET", "/hello", "/hello", 5000, NULL), 0);
    assert_int_equal(expect_reply(h, 1).status, 200);

    /* A sleep in flight when the broker forgets the worker: it is cancelled; its
     * slot comes back as CREDIT, and no stale REPLY is sent. */
    assert_int_equal(
        harness_request(h, 2, "sleep", "GET", "/sleep", "/sleep", 60000, "ms", "60000", NULL), 0);
    assert_int_equal(harness_request(h, 3, "hello", "GET", "/hello", "/hello", 5000, NULL), 0);
    assert_int_equal(expect_reply(h, 3).status, 200); /* the sleep has surely arrived */
    assert_int_equal(harness_send_goodbye(h, "unknown worker"), 0);
    uint32_t capacity = 0;
    assert_int_equal(harness_register(h, "b2", &capacity, NULL), 0);
    /* The sleep's cancel callback ends it at once, before READY counts it. */
    assert_int_equal(capacity, 512);
    assert_int_equal(harness_request(h, 1, "hello", "GET", "/hello", "/hello", 5000, NULL), 0);
    assert_int_equal(expect_reply(h, 1).status, 200);
}

static void goodbyes_answering_stale_messages_draw_only_one_ready(void **state)
{
    harness *h = *state;
    assert_int_equal(harness_register(h, "b1", NULL, NULL), 0);
    /* A restarted broker answers each heartbeat queued while it was down. */
    assert_int_equal(harness_send_goodbye(h, "unknown worker"), 0);
    assert_int_equal(harness_send_goodbye(h, "unknown worker"), 0);
    assert_int_equal(harness_send_goodbye(h, "unknown worker"), 0);
    assert_int_equal(harness_register(h, "b2", NULL, NULL), 0);
    /* Anything but heartbeats (a second READY) would come before this reply. */
    assert_int_equal(harness_request(h, 1, "hello", "GET", "/hello", "/hello", 5000, NULL), 0);
    assert_int_equal(expect_reply(h, 1).status, 200);
}

static void a_stopping_broker_leads_to_a_new_connection(void **state)
{
    harness *h = *state;
    assert_int_equal(harness_register(h, "b1", NULL, NULL), 0);
    assert_int_equal(harness_request(h, 1, "hello", "GET", "/hello", "/hello", 5000, NULL), 0);
    assert_int_equal(expect_reply(h, 1).status, 200);
    unsigned char old_ident[HARNESS_MAX_IDENT];
    size_t old_len = h->ident_len;
    memcpy(old_ident, h->ident, old_len);
    assert_int_equal(harness_send_goodbye(h, "broker stopping"), 0);
    br_msg m;
    assert_int_equal(harness_expect(h, BR_MSG_READY, &m, WAIT_MS, NULL), 0);
    /* A new socket has a new routing id. */
    assert_false(h->ident_len == old_len && memcmp(h->ident, old_ident, old_len) == 0);
}

static void garbage_frames_do_not_hurt_the_worker(void **state)
{
    harness *h = *state;
    assert_int_equal(harness_register(h, "b1", NULL, NULL), 0);
    static const unsigned char junk[][8] = {
        {0xc1},
        {0x93, 0x01, 0x03},
        {0x92, 0x07, 0x03},
        {0xdd, 0xff, 0xff, 0xff, 0xff},
        {0x95, 0x01, 0x03, 0xcf, 0x00},
        {0x00},
        {0x91, 0xc0},
        {0x94, 0x01, 0x07, 0xa1, 0x78},
    };
    for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++)
        assert_int_equal(harness_send_raw(h, junk[i], sizeof(junk[i])), 0);
    assert_int_equal(harness_send_raw(h, "", 0), 0);
    assert_int_equal(harness_request(h, 9, "hello", "GET", "/hello", "/hello", 5000, NULL), 0);
    assert_int_equal(expect_reply(h, 9).status, 200);
}

static void sigterm_says_goodbye_finishes_in_flight_and_exits_0(void **state)
{
    harness *h = *state;
    assert_int_equal(harness_register(h, "b1", NULL, NULL), 0);
    assert_int_equal(
        harness_request(h, 1, "sleep", "GET", "/sleep", "/sleep", 10000, "ms", "500", NULL), 0);
    assert_int_equal(harness_request(h, 2, "hello", "GET", "/hello", "/hello", 5000, NULL), 0);
    assert_int_equal(expect_reply(h, 2).status, 200);
    assert_int_equal(kill(h->pid, SIGTERM), 0);
    br_msg m;
    assert_int_equal(harness_expect(h, BR_MSG_GOODBYE, &m, WAIT_MS, NULL), 0);
    /* A request that crossed the GOODBYE on the wire is still served, and so is the
     * sleep in flight; only the broker's acknowledgement lets the worker go. */
    assert_int_equal(harness_request(h, 3, "hello", "GET", "/hello", "/hello", 5000, NULL), 0);
    assert_int_equal(expect_reply(h, 3).status, 200);
    br_reply r = expect_reply(h, 1);
    assert_int_equal(r.status, 200);
    assert_true(body_has_int(r.body, "slept_ms", 500));
    assert_int_equal(harness_send_goodbye(h, "drain acknowledged"), 0);
    assert_true(harness_exited_cleanly(h, WAIT_MS));
}

static void draining_worker_waits_for_the_acknowledgement(void **state)
{
    harness *h = *state;
    assert_int_equal(harness_register(h, "b1", NULL, NULL), 0);
    /* A round trip first, so that the WELCOME was read before the signal comes. */
    assert_int_equal(harness_request(h, 3, "hello", "GET", "/hello", "/hello", 5000, NULL), 0);
    assert_int_equal(expect_reply(h, 3).status, 200);
    assert_int_equal(kill(h->pid, SIGTERM), 0);
    br_msg m;
    assert_int_equal(harness_expect(h, BR_MSG_GOODBYE, &m, WAIT_MS, NULL), 0);
    /* Idle, but not acknowledged yet: it must still be there to serve this. */
    assert_int_equal(harness_request(h, 4, "hello", "GET", "/hello", "/hello", 5000, NULL), 0);
    assert_int_equal(expect_reply(h, 4).status, 200);
    assert_int_equal(harness_send_goodbye(h, "drain acknowledged"), 0);
    assert_true(harness_exited_cleanly(h, WAIT_MS));
}

static void drain_timeout_cancels_what_is_left(void **state)
{
    harness *h = *state;
    harness_stop(h);
    static const char *const args[] = {"--drain-timeout-ms", "300", NULL};
    assert_int_equal(harness_start(h, "sleep", HB_MS, args), 0);
    assert_int_equal(harness_register(h, "b1", NULL, NULL), 0);
    assert_int_equal(
        harness_request(h, 1, "sleep", "GET", "/sleep", "/sleep", 60000, "ms", "60000", NULL), 0);
    assert_int_equal(
        harness_request(h, 2, "sleep", "GET", "/sleep", "/sleep", 60000, "ms", "0", NULL), 0);
    assert_int_equal(expect_reply(h, 2).status, 200);
    assert_int_equal(kill(h->pid, SIGTERM), 0);
    br_msg m;
    assert_int_equal(harness_expect(h, BR_MSG_GOODBYE, &m, WAIT_MS, NULL), 0);
    assert_int_equal(expect_reply(h, 1).status, 499);
    assert_int_equal(harness_send_goodbye(h, "drain acknowledged"), 0);
    assert_true(harness_exited_cleanly(h, WAIT_MS));
}

static void max_requests_recycles_after_serving_that_many(void **state)
{
    harness *h = *state;
    harness_stop(h);
    static const char *const args[] = {"--max-requests", "3", NULL};
    assert_int_equal(harness_start(h, "hello", HB_MS, args), 0);
    assert_int_equal(harness_register(h, "b1", NULL, NULL), 0);
    for (uint64_t id = 1; id <= 3; id++) {
        assert_int_equal(harness_request(h, id, "hello", "GET", "/hello", "/hello", 5000, NULL), 0);
        assert_int_equal(expect_reply(h, id).status, 200);
    }
    /* The third reply started the drain: GOODBYE, and what crossed it is still served. */
    br_msg m;
    assert_int_equal(harness_expect(h, BR_MSG_GOODBYE, &m, WAIT_MS, NULL), 0);
    assert_int_equal(harness_request(h, 4, "hello", "GET", "/hello", "/hello", 5000, NULL), 0);
    assert_int_equal(expect_reply(h, 4).status, 200);
    assert_int_equal(harness_send_goodbye(h, "drain acknowledged"), 0);
    assert_true(harness_exited_cleanly(h, WAIT_MS));
}

static void max_rss_recycles_a_worker_that_grew_too_big(void **state)
{
    harness *h = *state;
    harness_stop(h);
    /* Any process is bigger than 1 MB: the first look at the RSS starts the drain. */
    static const char *const args[] = {"--max-rss-mb", "1", NULL};
    assert_int_equal(harness_start(h, "hello", HB_MS, args), 0);
    assert_int_equal(harness_register(h, "b1", NULL, NULL), 0);
    br_msg m;
    assert_int_equal(harness_expect(h, BR_MSG_GOODBYE, &m, WAIT_MS, NULL), 0);
    assert_int_equal(harness_send_goodbye(h, "drain acknowledged"), 0);
    assert_true(harness_exited_cleanly(h, WAIT_MS));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(ready_describes_services_routes_and_params, setup,
                                        harness_teardown),
        cmocka_unit_test_setup_teardown(hello_routes_answer_with_msgpack_messages, setup,
                                        harness_teardown),
        cmocka_unit_test_setup_teardown(echo_returns_the_body_with_its_content_type, setup,
                                        harness_teardown),
        cmocka_unit_test_setup_teardown(sleep_answers_after_its_timer_and_refuses_bad_ms, setup,
                                        harness_teardown),
        cmocka_unit_test_setup_teardown(many_sleeps_are_in_flight_at_once, setup, harness_teardown),
        cmocka_unit_test_setup_teardown(cancel_stops_a_sleep_with_499, setup, harness_teardown),
        cmocka_unit_test_setup_teardown(heartbeats_flow_and_a_silent_broker_gets_a_new_ready, setup,
                                        harness_teardown),
        cmocka_unit_test_setup_teardown(goodbye_from_the_broker_leads_to_a_new_ready, setup,
                                        harness_teardown),
        cmocka_unit_test_setup_teardown(goodbyes_answering_stale_messages_draw_only_one_ready,
                                        setup, harness_teardown),
        cmocka_unit_test_setup_teardown(a_stopping_broker_leads_to_a_new_connection, setup,
                                        harness_teardown),
        cmocka_unit_test_setup_teardown(garbage_frames_do_not_hurt_the_worker, setup,
                                        harness_teardown),
        cmocka_unit_test_setup_teardown(draining_worker_waits_for_the_acknowledgement, setup,
                                        harness_teardown),
        cmocka_unit_test_setup_teardown(sigterm_says_goodbye_finishes_in_flight_and_exits_0, setup,
                                        harness_teardown),
        cmocka_unit_test_setup_teardown(max_requests_recycles_after_serving_that_many, setup,
                                        harness_teardown),
        cmocka_unit_test_setup_teardown(max_rss_recycles_a_worker_that_grew_too_big, setup,
                                        harness_teardown),
        cmocka_unit_test_setup_teardown(drain_timeout_cancels_what_is_left, setup,
                                        harness_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
