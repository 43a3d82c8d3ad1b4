/*
 * test_proto_ws.c - the WebSocket messages (types 30-34) and route fields 14-15:
 * each encodes and decodes to itself, every truncation is refused, invalid values are
 * refused on both ends, and a route without the WebSocket flag keeps its old shape.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "barista/proto.h"
#include "barista/ws_batch.h"
#include "samples.h"

static br_str S(const char *s)
{
    return br_str_c(s);
}

static void encode_decode(const br_msg *in, br_msg *out, br_decoder *dec, br_buf *buf)
{
    buf->len = 0;
    assert_int_equal(br_msg_encode(in, buf), 0);
    assert_int_equal(br_decoder_decode(dec, buf->data, buf->len, out), 0);
    assert_int_equal(out->type, in->type);
    /* Every shorter prefix is refused. */
    br_msg tmp;
    for (size_t n = 0; n < buf->len; n++)
        assert_true(br_decoder_decode(dec, buf->data, n, &tmp) < 0);
    assert_int_equal(br_decoder_decode(dec, buf->data, buf->len, out), 0);
}

static bool str_is(br_str s, const char *c)
{
    return br_str_eq(s, c);
}

static void websocket_messages_round_trip(void **state)
{
    (void)state;
    br_decoder *dec = br_decoder_new(&br_limits_default);
    assert_non_null(dec);
    br_buf buf = {0};
    br_msg m, out;

    br_pair params[] = {{S("room"), S("lobby")}};
    br_pair headers[] = {{S("origin"), S("http://x")}, {S("user-agent"), S("t")}};
    memset(&m, 0, sizeof(m));
    m.type = BR_MSG_WS_OPEN;
    m.u.ws_open = (br_msg_ws_open){.conn = 77,
                                   .service = S("chat"),
                                   .route = S("/chat/{room}"),
                                   .path = S("/chat/lobby"),
                                   .params = params,
                                   .nparams = 1,
                                   .headers = headers,
                                   .nheaders = 2,
                                   .subprotocol = S("chat.v1"),
                                   .request_id = S("rid")};
    encode_decode(&m, &out, dec, &buf);
    assert_int_equal(out.u.ws_open.conn, 77);
    assert_true(str_is(out.u.ws_open.route, "/chat/{room}"));
    assert_int_equal(out.u.ws_open.nparams, 1);
    assert_true(str_is(out.u.ws_open.params[0].value, "lobby"));
    assert_int_equal(out.u.ws_open.nheaders, 2);
    assert_true(str_is(out.u.ws_open.subprotocol, "chat.v1"));
    assert_int_equal(out.u.ws_open.identity.len, 0);
    assert_int_equal(sample_decode_check(buf.data, buf.len), 0);

    memset(&m, 0, sizeof(m));
    m.type = BR_MSG_WS_MESSAGE;
    m.u.ws_message = (br_msg_ws_message){.conn = 5, .binary = true, .data = {"\0\1\2", 3}};
    encode_decode(&m, &out, dec, &buf);
    assert_int_equal(out.u.ws_message.conn, 5);
    assert_true(out.u.ws_message.binary);
    assert_int_equal(out.u.ws_message.data.len, 3);
    assert_memory_equal(out.u.ws_message.data.ptr, "\0\1\2", 3);

    memset(&m, 0, sizeof(m));
    m.type = BR_MSG_WS_CLOSE;
    m.u.ws_close = (br_msg_ws_close){.conn = 9, .code = 1011, .reason = S("worker died")};
    encode_decode(&m, &out, dec, &buf);
    assert_int_equal(out.u.ws_close.code, 1011);
    assert_true(str_is(out.u.ws_close.reason, "worker died"));

    memset(&m, 0, sizeof(m));
    m.type = BR_MSG_WS_CREDIT;
    m.u.ws_credit = (br_msg_ws_credit){.conn = 9, .credit = 16};
    encode_decode(&m, &out, dec, &buf);
    assert_int_equal(out.u.ws_credit.credit, 16);

    memset(&m, 0, sizeof(m));
    m.type = BR_MSG_WS_GROUP;
    m.u.ws_group = (br_msg_ws_group){
        .op = BR_WS_BROADCAST, .group = S("lobby"), .conn = 3, .data = S("hi all")};
    encode_decode(&m, &out, dec, &buf);
    assert_int_equal(sample_decode_check(buf.data, buf.len), 0);
    assert_int_equal(out.u.ws_group.op, BR_WS_BROADCAST);
    assert_true(str_is(out.u.ws_group.group, "lobby"));
    assert_true(str_is(out.u.ws_group.data, "hi all"));
    assert_string_equal(br_msg_type_name(BR_MSG_WS_GROUP), "WS_GROUP");
    assert_string_equal(br_msg_type_name(BR_MSG_WS_BATCH), "WS_BATCH");
    assert_string_equal(br_msg_type_name(36), "UNKNOWN");

    br_buf_free(&buf);
    br_decoder_destroy(&dec);
}

static void invalid_websocket_messages_are_refused(void **state)
{
    (void)state;
    br_buf buf = {0};
    br_msg m;
    memset(&m, 0, sizeof(m));
    m.type = BR_MSG_WS_MESSAGE; /* conn 0 */
    assert_int_equal(br_msg_encode(&m, &buf), BR_EINVAL);
    m.type = BR_MSG_WS_CLOSE;
    m.u.ws_close = (br_msg_ws_close){.conn = 1, .code = 999};
    assert_int_equal(br_msg_encode(&m, &buf), BR_EINVAL);
    m.type = BR_MSG_WS_CREDIT;
    m.u.ws_credit = (br_msg_ws_credit){.conn = 1, .credit = 0};
    assert_int_equal(br_msg_encode(&m, &buf), BR_EINVAL);
    m.type = BR_MSG_WS_GROUP;
    m.u.ws_group = (br_msg_ws_group){.op = BR_WS_JOIN, .conn = 1}; /* no group name */
    assert_int_equal(br_msg_encode(&m, &buf), BR_EINVAL);
    m.u.ws_group = (br_msg_ws_group){.op = 3, .group = S("g"), .conn = 1};
    assert_int_equal(br_msg_encode(&m, &buf), BR_EINVAL);
    /* Types between the known ranges stay unknown. */
    br_decoder *dec = br_decoder_new(&br_limits_default);
    const uint8_t t13[] = {0x92, 0x01, 0x0d}, t36[] = {0x93, 0x02, 0x24, 0x01};
    assert_int_equal(br_decoder_decode(dec, t13, sizeof(t13), &m), BR_EMSGTYPE);
    assert_int_equal(br_decoder_decode(dec, t36, sizeof(t36), &m), BR_EMSGTYPE);
    br_decoder_destroy(&dec);
    br_buf_free(&buf);
}

static void batch_carries_messages_in_one_frame_and_splits_back(void **state)
{
    (void)state;
    br_decoder *dec = br_decoder_new(&br_limits_default);
    br_ws_batch b = {0};
    br_msg m = {.type = BR_MSG_WS_MESSAGE, .u.ws_message = {.conn = 7, .data = S("hello")}};
    br_msg c = {.type = BR_MSG_WS_CREDIT, .u.ws_credit = {.conn = 7, .credit = 8}};
    br_msg out;

    /* Empty: nothing to send.  One message: the message itself, no envelope. */
    assert_int_equal(br_ws_batch_frame(&b, 2).len, 0);
    assert_int_equal(br_ws_batch_add(&b, &m, 2), 0);
    br_str f = br_ws_batch_frame(&b, 2);
    assert_int_equal(br_decoder_decode(dec, f.ptr, f.len, &out), 0);
    assert_int_equal(out.type, BR_MSG_WS_MESSAGE);
    assert_true(str_is(out.u.ws_message.data, "hello"));

    /* Two: one WS_BATCH whose messages split back in order. */
    assert_int_equal(br_ws_batch_add(&b, &c, 2), 0);
    f = br_ws_batch_frame(&b, 2);
    assert_int_equal(br_decoder_decode(dec, f.ptr, f.len, &out), 0);
    assert_int_equal(out.type, BR_MSG_WS_BATCH);
    br_str rest = out.u.ws_batch.messages, one;
    assert_int_equal(br_ws_batch_bytes(&b), rest.len);
    assert_int_equal(br_ws_batch_next(&rest, &one), 1);
    assert_int_equal(br_decoder_decode(dec, one.ptr, one.len, &out), 0);
    assert_int_equal(out.type, BR_MSG_WS_MESSAGE);
    assert_true(br_ws_batch_carries(out.type));
    assert_int_equal(br_ws_batch_next(&rest, &one), 1);
    assert_int_equal(br_decoder_decode(dec, one.ptr, one.len, &out), 0);
    assert_int_equal(out.type, BR_MSG_WS_CREDIT);
    assert_int_equal(out.u.ws_credit.credit, 8);
    assert_int_equal(br_ws_batch_next(&rest, &one), 0);

    /* A cut tail is an error, not a message; nothing nests, WS_OPEN does not travel. */
    br_str cut = {"\x94\x02\x21", 3};
    assert_true(br_ws_batch_next(&cut, &one) < 0);
    assert_false(br_ws_batch_carries(BR_MSG_WS_BATCH));
    assert_false(br_ws_batch_carries(BR_MSG_WS_OPEN));

    /* Cleared, the buffer is reused; an empty WS_BATCH is not a message. */
    br_ws_batch_clear(&b);
    assert_int_equal(br_ws_batch_frame(&b, 2).len, 0);
    br_buf buf = {0};
    br_msg empty = {.type = BR_MSG_WS_BATCH};
    assert_int_equal(br_msg_encode(&empty, &buf), BR_EINVAL);
    br_ws_batch_free(&b);
    br_ws_batch_free(&b);
    br_buf_free(&buf);
    br_decoder_destroy(&dec);
}

static void features_are_trailing_and_left_out_when_none(void **state)
{
    (void)state;
    br_decoder *dec = br_decoder_new(&br_limits_default);
    br_buf buf = {0};
    br_msg w = {.type = BR_MSG_WELCOME, .u.welcome = {.broker_id = S("b"), .heartbeat_ms = 5}};
    br_msg out;
    /* Without features, WELCOME and READY are what older peers send. */
    assert_int_equal(br_msg_encode(&w, &buf), 0);
    assert_int_equal(buf.data[0], 0x94);
    assert_int_equal(br_decoder_decode(dec, buf.data, buf.len, &out), 0);
    assert_int_equal(out.u.welcome.features, 0);
    buf.len = 0;
    w.u.welcome.features = BR_FEATURE_WS_BATCH;
    assert_int_equal(br_msg_encode(&w, &buf), 0);
    assert_int_equal(buf.data[0], 0x95);
    assert_int_equal(br_decoder_decode(dec, buf.data, buf.len, &out), 0);
    assert_int_equal(out.u.welcome.features, BR_FEATURE_WS_BATCH);

    br_msg r = {.type = BR_MSG_READY, .u.ready = {.worker_id = S("w"), .capacity = 1}};
    buf.len = 0;
    assert_int_equal(br_msg_encode(&r, &buf), 0);
    assert_int_equal(buf.data[0], 0x98);
    r.u.ready.features = BR_FEATURE_WS_BATCH;
    buf.len = 0;
    /* features needs public_tasks and schedules before it, empty as they are. */
    assert_int_equal(br_msg_encode(&r, &buf), 0);
    assert_int_equal(buf.data[0], 0x9b);
    assert_int_equal(br_decoder_decode(dec, buf.data, buf.len, &out), 0);
    assert_int_equal(out.u.ready.features, BR_FEATURE_WS_BATCH);
    assert_int_equal(out.u.ready.npublic_tasks, 0);
    assert_int_equal(out.u.ready.nschedules, 0);
    br_buf_free(&buf);
    br_decoder_destroy(&dec);
}

static void websocket_route_fields_round_trip(void **state)
{
    (void)state;
    br_route routes[2] = {
        {.method = S("GET"),
         .path = S("/chat/{room}"),
         .summary = S("Chat"),
         .websocket = true,
         .subprotocols = S("chat.v1 chat.v2")},
        {.method = S("GET"), .path = S("/plain"), .summary = S(""), .subprotocols = S("x")},
    };
    br_service svc = {.name = S("chat"), .kind = BR_KIND_IO, .routes = routes, .nroutes = 2};
    br_msg m;
    memset(&m, 0, sizeof(m));
    m.type = BR_MSG_READY;
    m.u.ready = (br_ready){.worker_id = S("w"), .capacity = 4, .services = &svc, .nservices = 1};
    br_decoder *dec = br_decoder_new(&br_limits_default);
    br_buf buf = {0};
    br_msg out;
    encode_decode(&m, &out, dec, &buf);
    assert_int_equal(sample_decode_check(buf.data, buf.len), 0);
    const br_route *r = out.u.ready.services[0].routes;
    assert_true(r[0].websocket);
    assert_true(str_is(r[0].subprotocols, "chat.v1 chat.v2"));
    assert_false(r[1].websocket);
    assert_true(str_is(r[1].subprotocols, "x"));
    br_buf_free(&buf);
    br_decoder_destroy(&dec);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(websocket_messages_round_trip),
        cmocka_unit_test(invalid_websocket_messages_are_refused),
        cmocka_unit_test(websocket_route_fields_round_trip),
        cmocka_unit_test(batch_carries_messages_in_one_frame_and_splits_back),
        cmocka_unit_test(features_are_trailing_and_left_out_when_none),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
