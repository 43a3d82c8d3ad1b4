/*
 * test_call_stream.c - the SDK's streamed calls (br_call_stream, barista/async.h):
 * the real barista-worker hosting the relay service, driven by a test broker that
 * answers the relay's CALLs itself.  Covers the CALL's field 19 only after WELCOME
 * confirmed the feature, the window granted back in batches as chunks are taken, a
 * plain REPLY handed over as head, chunk and end (an older gateway), a cut stream,
 * and a request cancelled mid-stream cancelling its call.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "barista/worker.h"
#include "broker_harness.h"

#define HB_MS    100
#define WAIT_MS  10000
#define LINE_LEN 37

static harness hs;

static int setup_with(void **state, uint32_t features)
{
    memset(&hs, 0, sizeof(hs));
    if (harness_start(&hs, "relay", HB_MS, NULL) != 0)
        return -1;
    hs.welcome_features = features;
    hs.auto_heartbeat = true;
    *state = &hs;
    return harness_register(&hs, "b1", NULL, NULL);
}

static int setup_streaming(void **state)
{
    return setup_with(state, BR_FEATURE_CALL_STREAM);
}

static int setup_older_gateway(void **state)
{
    return setup_with(state, 0);
}

/* Lines from..to of the clock's format into buf; their length. */
static size_t lines(char *buf, int from, int to)
{
    size_t len = 0;
    for (int i = from; i < to; i++)
        len += (size_t)snprintf(buf + len, LINE_LEN + 1, "%09d abcdefghijklmnopqrstuvwxyz\n", i);
    return len;
}

/* Sends REQUEST `id` for a relay route and receives its CALL into *call_id; returns
 * the CALL's stream_window. */
static uint32_t request_and_call(harness *h, uint64_t id, const char *path, const char *n,
                                 uint64_t *call_id)
{
    assert_int_equal(harness_request(h, id, "relay", "GET", path, path, 10000, "n", n, NULL), 0);
    br_msg m;
    assert_int_equal(harness_expect(h, BR_MSG_CALL, &m, WAIT_MS, NULL), 0);
    assert_true(br_str_eq(m.u.request.path, "/clock/lines"));
    *call_id = m.u.request.id;
    return m.u.request.stream_window;
}

static void send_stream(harness *h, unsigned type, uint64_t id, const void *data, size_t len)
{
    br_msg m = {.type = type};
    if (type == BR_MSG_CALL_STREAM_START) {
        m.u.stream_start =
            (br_stream_head){.id = id, .status = 200, .content_type = br_str_c("text/plain")};
    } else if (type == BR_MSG_CALL_STREAM_CHUNK) {
        m.u.stream_chunk = (br_stream_chunk){.id = id, .data = {data, (uint32_t)len}};
    } else {
        m.u.stream_end = (br_stream_fin){.id = id, .error = {data, (uint32_t)len}};
    }
    assert_int_equal(harness_send(h, &m), 0);
}

/* REQUEST `id` for a relay route, its CALL, and the call's answer started; returns
 * the call's id. */
static uint64_t started_call(harness *h, uint64_t id, const char *path, const char *n)
{
    uint64_t call;
    request_and_call(h, id, path, n, &call);
    send_stream(h, BR_MSG_CALL_STREAM_START, call, NULL, 0);
    return call;
}

/* The REPLY to request `id`, its msgpack body parsed as a value; copies its status. */
static br_value summary_of(harness *h, uint64_t id, uint16_t *status)
{
    br_reply r;
    assert_int_equal(harness_expect_reply(h, id, &r, WAIT_MS, NULL), 0);
    *status = r.status;
    br_value v;
    assert_int_equal(br_value_parse(r.body, &v), 0);
    return v;
}

static int64_t int_of(br_value v, const char *key)
{
    int64_t n = -1;
    assert_int_equal(br_value_int(br_value_get(v, key), INT64_MIN, INT64_MAX, &n), 0);
    return n;
}

static bool bool_of(br_value v, const char *key)
{
    bool b = false;
    assert_int_equal(br_value_bool(br_value_get(v, key), &b), 0);
    return b;
}

static void streamed_call_grants_back_what_it_took_in_batches(void **state)
{
    harness *h = *state;
    uint64_t call;
    assert_int_equal(request_and_call(h, 1, "/relay/summary", "20000", &call),
                     BR_CALL_STREAM_WINDOW);
    send_stream(h, BR_MSG_CALL_STREAM_START, call, NULL, 0);
    /* 20000 lines (740000 bytes) in chunks of 1000 lines: past the first window, so
     * the caller must grant more as its callbacks take them. */
    static char buf[1000 * LINE_LEN + 1];
    uint64_t granted = BR_CALL_STREAM_WINDOW, sent = 0;
    for (int from = 0; from < 20000; from += 1000) {
        size_t len = lines(buf, from, from + 1000);
        while (sent + len > granted) {
            br_msg m;
            assert_int_equal(harness_expect(h, BR_MSG_CALL_STREAM_WINDOW, &m, WAIT_MS, NULL), 0);
            assert_int_equal(m.u.stream_window.id, call);
            /* In batches of at least half the window, never more than was sent. */
            assert_true(m.u.stream_window.bytes >= BR_CALL_STREAM_WINDOW / 2);
            granted += m.u.stream_window.bytes;
            assert_true(granted <= sent + BR_CALL_STREAM_WINDOW);
        }
        send_stream(h, BR_MSG_CALL_STREAM_CHUNK, call, buf, len);
        sent += len;
    }
    send_stream(h, BR_MSG_CALL_STREAM_END, call, "", 0);
    br_msg m;
    /* Windows may still come for the last chunks; the REPLY follows them. */
    while (harness_recv(h, &m, WAIT_MS) == 0 && m.type != BR_MSG_REPLY)
        assert_true(m.type == BR_MSG_CALL_STREAM_WINDOW || m.type == BR_MSG_HEARTBEAT);
    assert_int_equal(m.type, BR_MSG_REPLY);
    assert_int_equal(m.u.reply.status, 200);
    br_value v;
    assert_int_equal(br_value_parse(m.u.reply.body, &v), 0);
    assert_int_equal(int_of(v, "lines"), 20000);
    assert_int_equal(int_of(v, "bytes"), 20000 * LINE_LEN);
    assert_true(bool_of(v, "in_order"));
    assert_true(bool_of(v, "complete"));
}

static void a_cut_stream_ends_incomplete(void **state)
{
    harness *h = *state;
    uint64_t call = started_call(h, 2, "/relay/summary", "100");
    char buf[10 * LINE_LEN + 1];
    send_stream(h, BR_MSG_CALL_STREAM_CHUNK, call, buf, lines(buf, 0, 10));
    send_stream(h, BR_MSG_CALL_STREAM_END, call, "worker died", 11);
    uint16_t status;
    br_value v = summary_of(h, 2, &status);
    assert_int_equal(status, 200);
    assert_int_equal(int_of(v, "lines"), 10);
    assert_false(bool_of(v, "complete"));
}

static void a_cancelled_request_cancels_its_streamed_call(void **state)
{
    harness *h = *state;
    uint64_t call = started_call(h, 3, "/relay/lines", "1000000");
    br_msg m;
    assert_int_equal(harness_expect(h, BR_MSG_STREAM_START, &m, WAIT_MS, NULL), 0);
    assert_int_equal(m.u.stream_start.id, 3);
    br_msg cancel = {.type = BR_MSG_CANCEL, .u.cancel = {.id = 3}};
    assert_int_equal(harness_send(h, &cancel), 0);
    /* The relay ends its stream, and its call goes with the request: CANCEL(call). */
    bool cancelled = false, ended = false;
    while (!(cancelled && ended) && harness_recv(h, &m, WAIT_MS) == 0) {
        if (m.type == BR_MSG_CANCEL) {
            assert_int_equal(m.u.cancel.id, call);
            cancelled = true;
        } else if (m.type == BR_MSG_STREAM_END) {
            assert_int_equal(m.u.stream_end.id, 3);
            ended = true;
        }
    }
    assert_true(cancelled);
    assert_true(ended);
    /* What still arrives for the cancelled call is dropped: the worker still serves. */
    send_stream(h, BR_MSG_CALL_STREAM_END, call, "", 0);
    call = started_call(h, 4, "/relay/summary", "1");
    send_stream(h, BR_MSG_CALL_STREAM_END, call, "", 0);
    uint16_t status;
    br_value v = summary_of(h, 4, &status);
    assert_int_equal(int_of(v, "lines"), 0);
    assert_true(bool_of(v, "complete"));
}

static void an_older_gateway_gets_no_window_and_its_reply_is_handed_over(void **state)
{
    harness *h = *state;
    uint64_t call;
    assert_int_equal(request_and_call(h, 5, "/relay/summary", "3", &call), 0);
    char buf[3 * LINE_LEN + 1];
    size_t len = lines(buf, 0, 3);
    br_msg r = {.type = BR_MSG_REPLY,
                .u.reply = {.id = call,
                            .status = 200,
                            .content_type = br_str_c("text/plain"),
                            .body = {buf, (uint32_t)len}}};
    assert_int_equal(harness_send(h, &r), 0);
    uint16_t status;
    br_value v = summary_of(h, 5, &status);
    assert_int_equal(status, 200);
    assert_int_equal(int_of(v, "status"), 200);
    assert_int_equal(int_of(v, "lines"), 3);
    assert_true(bool_of(v, "complete"));
    assert_true(bool_of(v, "in_order"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(streamed_call_grants_back_what_it_took_in_batches,
                                        setup_streaming, harness_teardown),
        cmocka_unit_test_setup_teardown(a_cut_stream_ends_incomplete, setup_streaming,
                                        harness_teardown),
        cmocka_unit_test_setup_teardown(a_cancelled_request_cancels_its_streamed_call,
                                        setup_streaming, harness_teardown),
        cmocka_unit_test_setup_teardown(
            an_older_gateway_gets_no_window_and_its_reply_is_handed_over, setup_older_gateway,
            harness_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
