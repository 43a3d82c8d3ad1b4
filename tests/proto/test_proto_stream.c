/*
 * test_proto_stream.c - the stream messages (STREAM_START, STREAM_CHUNK, STREAM_END,
 * STREAM_WINDOW) and the route's streamed-body fields: round trips, range rules, the
 * types between the ranges refused, and the route fields optional for older peers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "barista/proto.h"
#include "samples.h"

static int round_trip(const br_msg *in, br_msg *out, br_decoder *dec, br_buf *buf)
{
    buf->len = 0;
    int rc = br_msg_encode(in, buf);
    if (rc != 0)
        return rc;
    return br_decoder_decode(dec, buf->data, buf->len, out);
}

static void stream_messages_round_trip(void **state)
{
    (void)state;
    br_decoder *dec = br_decoder_new(NULL);
    br_buf buf = {0};
    br_msg out;
    br_pair hdr = {br_str_c("cache-control"), br_str_c("no-cache")};
    br_msg start = {.type = BR_MSG_STREAM_START,
                    .u.stream_start = {.id = 77,
                                       .status = 200,
                                       .headers = &hdr,
                                       .nheaders = 1,
                                       .content_type = br_str_c("text/event-stream")}};
    assert_int_equal(round_trip(&start, &out, dec, &buf), 0);
    assert_int_equal(out.type, BR_MSG_STREAM_START);
    assert_int_equal(out.u.stream_start.id, 77);
    assert_int_equal(out.u.stream_start.status, 200);
    assert_int_equal(out.u.stream_start.nheaders, 1);
    assert_true(br_str_eq(out.u.stream_start.headers[0].value, "no-cache"));
    assert_true(br_str_eq(out.u.stream_start.content_type, "text/event-stream"));

    br_msg chunk = {.type = BR_MSG_STREAM_CHUNK,
                    .u.stream_chunk = {.id = 77, .data = br_str_c("data: x\n\n")}};
    assert_int_equal(round_trip(&chunk, &out, dec, &buf), 0);
    assert_int_equal(out.u.stream_chunk.id, 77);
    assert_true(br_str_eq(out.u.stream_chunk.data, "data: x\n\n"));

    br_msg end = {.type = BR_MSG_STREAM_END, .u.stream_end = {.id = 77, .error = br_str_c("")}};
    assert_int_equal(round_trip(&end, &out, dec, &buf), 0);
    assert_int_equal(out.u.stream_end.error.len, 0);
    end.u.stream_end.error = br_str_c("client gone");
    assert_int_equal(round_trip(&end, &out, dec, &buf), 0);
    assert_true(br_str_eq(out.u.stream_end.error, "client gone"));

    br_msg win = {.type = BR_MSG_STREAM_WINDOW, .u.stream_window = {.id = 77, .bytes = 65536}};
    assert_int_equal(round_trip(&win, &out, dec, &buf), 0);
    assert_int_equal(out.u.stream_window.bytes, 65536);
    assert_string_equal(br_msg_type_name(BR_MSG_STREAM_WINDOW), "STREAM_WINDOW");
    br_buf_free(&buf);
    br_decoder_destroy(&dec);
}

static void stream_samples_round_trip_in_every_shape(void **state)
{
    (void)state;
    br_decoder *dec = br_decoder_new(NULL);
    br_buf buf = {0};
    static const sample_shape shapes[] = {SAMPLE_TYPICAL, SAMPLE_EMPTY};
    for (unsigned t = BR_MSG_STREAM_FIRST; t <= BR_MSG_CALL_STREAM_LAST; t++) {
        for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
            br_msg in, out;
            sample_msg(t, shapes[i], &in);
            assert_int_equal(round_trip(&in, &out, dec, &buf), 0);
            assert_int_equal(out.type, t);
            br_buf again = {0};
            assert_int_equal(br_msg_encode(&out, &again), 0);
            assert_int_equal(again.len, buf.len);
            assert_memory_equal(again.data, buf.data, buf.len);
            br_buf_free(&again);
        }
    }
    br_buf_free(&buf);
    br_decoder_destroy(&dec);
}

static void stream_messages_refuse_values_out_of_range(void **state)
{
    (void)state;
    br_buf buf = {0};
    br_msg zero_window = {.type = BR_MSG_STREAM_WINDOW, .u.stream_window = {.id = 1, .bytes = 0}};
    assert_int_equal(br_msg_encode(&zero_window, &buf), BR_EINVAL);
    br_msg interim = {.type = BR_MSG_STREAM_START, .u.stream_start = {.id = 1, .status = 101}};
    assert_int_equal(br_msg_encode(&interim, &buf), BR_EINVAL);
    assert_int_equal(buf.len, 0);
    br_buf_free(&buf);
}

static void types_between_the_ranges_are_unknown(void **state)
{
    (void)state;
    br_decoder *dec = br_decoder_new(NULL);
    br_msg out;
    /* The gaps around the stream range (19 after JOB_HANDOFF, 28-29 after the streamed
     * calls', before the WebSockets') and past the last type. */
    static const unsigned gaps[] = {BR_MSG_JOB_HANDOFF + 1, BR_MSG_STREAM_FIRST - 1,
                                    BR_MSG_CALL_STREAM_LAST + 1, BR_MSG_WS_FIRST - 1,
                                    BR_MSG_TYPE_MAX + 1};
    for (size_t i = 0; i < sizeof(gaps) / sizeof(gaps[0]); i++) {
        unsigned t = gaps[i];
        uint8_t frame[] = {0x92, 0x02, (uint8_t)t};
        assert_int_equal(br_decoder_decode(dec, frame, sizeof(frame), &out), BR_EMSGTYPE);
        assert_false(br_msg_type_known(t));
    }
    br_decoder_destroy(&dec);
}

/* CALL field 19: a caller asking for a streamed answer grants its first window; a
 * CALL without it (an older caller) reads as 0, one REPLY.  Fields 17 and 18 go as nil
 * when only 19 is set. */
static void call_stream_window_round_trips_and_is_absent_from_older_calls(void **state)
{
    (void)state;
    br_decoder *dec = br_decoder_new(NULL);
    br_buf buf = {0}, plain = {0};
    br_msg out;
    br_msg call = {.type = BR_MSG_CALL,
                   .u.request = {.id = 9,
                                 .method = br_str_c("GET"),
                                 .path = br_str_c("/clock/lines"),
                                 .deadline_ms = 1000,
                                 .stream_window = 65536}};
    assert_int_equal(round_trip(&call, &out, dec, &buf), 0);
    assert_int_equal(out.u.request.stream_window, 65536);
    assert_int_equal(out.u.request.actor_type.len, 0);
    assert_int_equal(out.u.request.tick_kind, 0);
    call.u.request.stream_window = 0;
    assert_int_equal(round_trip(&call, &out, dec, &plain), 0);
    assert_int_equal(out.u.request.stream_window, 0);
    assert_true(plain.len + 3 <= buf.len); /* two nils and the window */
    assert_string_equal(br_msg_type_name(BR_MSG_CALL_STREAM_START), "CALL_STREAM_START");
    assert_true(br_msg_type_in_version(BR_MSG_CALL_STREAM_CHUNK, 2));
    assert_false(br_msg_type_in_version(BR_MSG_CALL_STREAM_CHUNK, 1));
    br_buf_free(&buf);
    br_buf_free(&plain);
    br_decoder_destroy(&dec);
}

/* A READY with one route, encoded with the given streamed-body fields. */
static int ready_with_route(br_route *route, br_buf *buf)
{
    br_service svc = {.name = br_str_c("up"), .kind = BR_KIND_IO, .routes = route, .nroutes = 1};
    br_msg m = {
        .type = BR_MSG_READY,
        .u.ready = {.worker_id = br_str_c("w"), .capacity = 4, .services = &svc, .nservices = 1}};
    buf->len = 0;
    return br_msg_encode(&m, buf);
}

static void route_stream_fields_round_trip_and_need_a_raw_body(void **state)
{
    (void)state;
    br_decoder *dec = br_decoder_new(NULL);
    br_buf buf = {0};
    br_msg out;
    br_route r = {.method = br_str_c("POST"),
                  .path = br_str_c("/upload"),
                  .body = BR_BODY_RAW,
                  .stream_body = true,
                  .body_max = 5ull << 30};
    assert_int_equal(ready_with_route(&r, &buf), 0);
    assert_int_equal(br_decoder_decode(dec, buf.data, buf.len, &out), 0);
    const br_route *got = &out.u.ready.services[0].routes[0];
    assert_true(got->stream_body);
    assert_int_equal(got->body_max, 5ull << 30);
    r.body = BR_BODY_MSGPACK;
    assert_int_equal(ready_with_route(&r, &buf), BR_EINVAL);
    br_buf_free(&buf);
    br_decoder_destroy(&dec);
}

static void a_route_from_an_older_peer_has_no_streamed_body(void **state)
{
    (void)state;
    /* [1, 1, "w", 0, 4, 0, [["up", 0, [["POST", "/u", 0, 1, "", []]]]], []] */
    static const uint8_t frame[] = {0x98, 0x01, 0x01, 0xa1, 'w',  0x00, 0x04, 0x00, 0x91, 0x93,
                                    0xa2, 'u',  'p',  0x00, 0x91, 0x96, 0xa4, 'P',  'O',  'S',
                                    'T',  0xa2, '/',  'u',  0x00, 0x01, 0xa0, 0x90, 0x90};
    br_decoder *dec = br_decoder_new(NULL);
    br_msg out;
    assert_int_equal(br_decoder_decode(dec, frame, sizeof(frame), &out), 0);
    assert_false(out.u.ready.services[0].routes[0].stream_body);
    assert_int_equal(out.u.ready.services[0].routes[0].body_max, 0);
    br_decoder_destroy(&dec);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(stream_messages_round_trip),
        cmocka_unit_test(stream_samples_round_trip_in_every_shape),
        cmocka_unit_test(stream_messages_refuse_values_out_of_range),
        cmocka_unit_test(types_between_the_ranges_are_unknown),
        cmocka_unit_test(call_stream_window_round_trips_and_is_absent_from_older_calls),
        cmocka_unit_test(route_stream_fields_round_trip_and_need_a_raw_body),
        cmocka_unit_test(a_route_from_an_older_peer_has_no_streamed_body),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
