/*
 * test_proto_batch.c - REQUEST and REPLY inside WS_BATCH (PROTOCOL.md 5.16, feature 8):
 * encoding into one frame, splitting back with each message's bytes, and the
 * validation of the frame and of the messages in it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "barista/proto.h"
#include "barista/ws_batch.h"

#define MAX_SEEN 8

/* What br_ws_batch_each handed on. */
typedef struct seen {
    br_decoder *dec;         /* a second decoder: each message's bytes decode alone */
    br_str messages;         /* the batch's bytes */
    unsigned n;              /* messages handed on */
    unsigned type[MAX_SEEN]; /* their types */
    uint64_t id[MAX_SEEN];   /* their ids (REQUEST, REPLY) */
    unsigned stop_after;     /* return BR_ECLOSED after this many (0: never) */
} seen;

static int collect(void *arg, const br_msg *m, br_str bytes)
{
    seen *s = arg;
    assert_true(s->n < MAX_SEEN);
    /* The bytes are a slice of the batch and decode alone to the same message. */
    assert_true(bytes.ptr >= s->messages.ptr &&
                bytes.ptr + bytes.len <= s->messages.ptr + s->messages.len);
    br_msg alone;
    assert_int_equal(br_decoder_decode(s->dec, bytes.ptr, bytes.len, &alone), 0);
    assert_int_equal(alone.type, m->type);
    s->type[s->n] = m->type;
    s->id[s->n] = m->type == BR_MSG_REQUEST ? m->u.request.id
                  : m->type == BR_MSG_REPLY ? m->u.reply.id
                                            : 0;
    if (m->type == BR_MSG_REQUEST)
        assert_int_equal(alone.u.request.deadline_ms, m->u.request.deadline_ms);
    s->n++;
    return s->stop_after && s->n == s->stop_after ? BR_ECLOSED : 0;
}

static br_msg request(uint64_t id, const char *path)
{
    static br_pair headers[] = {{{"accept", 6}, {"*/*", 3}}};
    br_msg m = {.type = BR_MSG_REQUEST};
    m.u.request.id = id;
    m.u.request.service = br_str_c("hello");
    m.u.request.route = br_str_c("/hello");
    m.u.request.method = br_str_c("GET");
    m.u.request.path = br_str_c(path);
    m.u.request.headers = headers;
    m.u.request.nheaders = 1;
    m.u.request.deadline_ms = 1000 + (uint32_t)id;
    return m;
}

static br_msg reply(uint64_t id)
{
    br_msg m = {.type = BR_MSG_REPLY};
    m.u.reply.id = id;
    m.u.reply.status = 200;
    m.u.reply.content_type = br_str_c("application/msgpack");
    m.u.reply.body = (br_str){"\x81\xa1m\xa2hi", 6};
    return m;
}

static void requests_travel_in_one_batch_and_split_back_in_order(void **state)
{
    (void)state;
    br_decoder *dec = br_decoder_new(&br_limits_default);
    br_decoder *dec2 = br_decoder_new(&br_limits_default);
    br_ws_batch b = {0};
    for (uint64_t id = 1; id <= 3; id++) {
        br_msg r = request(id, id == 2 ? "/hello/two" : "/hello");
        assert_int_equal(br_ws_batch_add(&b, &r, 2), 0);
    }
    /* A WebSocket message may share the frame: one order for everything. */
    br_msg c = {.type = BR_MSG_WS_CREDIT, .u.ws_credit = {.conn = 9, .credit = 1}};
    assert_int_equal(br_ws_batch_add(&b, &c, 2), 0);
    br_str f = br_ws_batch_frame(&b, 2);
    br_msg out;
    assert_int_equal(br_decoder_decode(dec, f.ptr, f.len, &out), 0);
    assert_int_equal(out.type, BR_MSG_WS_BATCH);
    seen s = {.dec = dec2, .messages = out.u.ws_batch.messages};
    assert_int_equal(br_ws_batch_each(dec, out.u.ws_batch.messages, collect, &s), 0);
    assert_int_equal(s.n, 4);
    unsigned types[] = {BR_MSG_REQUEST, BR_MSG_REQUEST, BR_MSG_REQUEST, BR_MSG_WS_CREDIT};
    uint64_t ids[] = {1, 2, 3, 0};
    assert_memory_equal(s.type, types, sizeof(types));
    assert_memory_equal(s.id, ids, sizeof(ids));
    br_ws_batch_free(&b);
    br_decoder_destroy(&dec);
    br_decoder_destroy(&dec2);
}

static void replies_travel_in_one_batch_and_a_callback_may_stop_it(void **state)
{
    (void)state;
    br_decoder *dec = br_decoder_new(&br_limits_default);
    br_decoder *dec2 = br_decoder_new(&br_limits_default);
    br_ws_batch b = {0};
    for (uint64_t id = 10; id < 14; id++) {
        br_msg r = reply(id);
        assert_int_equal(br_ws_batch_add(&b, &r, 2), 0);
    }
    br_str f = br_ws_batch_frame(&b, 2);
    br_msg out;
    assert_int_equal(br_decoder_decode(dec, f.ptr, f.len, &out), 0);
    assert_int_equal(out.type, BR_MSG_WS_BATCH);
    /* The receiver's callback ends the batch (its sender went away): what came before
     * was handed on, the callback's value is the answer. */
    seen s = {.dec = dec2, .messages = out.u.ws_batch.messages, .stop_after = 2};
    assert_int_equal(br_ws_batch_each(dec, out.u.ws_batch.messages, collect, &s), BR_ECLOSED);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.id[0], 10);
    assert_int_equal(s.id[1], 11);
    /* A batch of one reply is that reply. */
    br_ws_batch_clear(&b);
    br_msg one = reply(77);
    assert_int_equal(br_ws_batch_add(&b, &one, 2), 0);
    f = br_ws_batch_frame(&b, 2);
    assert_int_equal(br_decoder_decode(dec, f.ptr, f.len, &out), 0);
    assert_int_equal(out.type, BR_MSG_REPLY);
    assert_int_equal(out.u.reply.id, 77);
    br_ws_batch_free(&b);
    br_decoder_destroy(&dec);
    br_decoder_destroy(&dec2);
}

/* A WS_BATCH envelope (version 2) around `inner`, as the gateway writes it. */
static size_t frame_of(uint8_t *out, const void *inner, size_t n)
{
    const uint8_t head[] = {0x93, 0x02, 0x23, 0xc6, 0, 0, 0, (uint8_t)n};
    memcpy(out, head, sizeof(head));
    memcpy(out + sizeof(head), inner, n);
    return sizeof(head) + n;
}

static void a_batch_must_start_with_a_whole_message_it_may_carry(void **state)
{
    (void)state;
    br_decoder *dec = br_decoder_new(&br_limits_default);
    br_buf buf = {0};
    br_msg out;
    uint8_t f[64];
    /* A HEARTBEAT ([2, 6]) and a CANCEL ([2, 7, 1]) never travel in a batch. */
    static const uint8_t heartbeat[] = {0x92, 0x02, 0x06};
    static const uint8_t cancel[] = {0x93, 0x02, 0x07, 0x01};
    size_t n = frame_of(f, heartbeat, sizeof(heartbeat));
    assert_int_equal(br_decoder_decode(dec, f, n, &out), BR_EVALUE);
    n = frame_of(f, cancel, sizeof(cancel));
    assert_int_equal(br_decoder_decode(dec, f, n, &out), BR_EVALUE);
    /* Bytes that are not one whole msgpack value, or not an envelope. */
    static const uint8_t cut_reply[] = {0x98, 0x02, 0x04, 0x05};
    n = frame_of(f, cut_reply, sizeof(cut_reply));
    assert_int_equal(br_decoder_decode(dec, f, n, &out), BR_EVALUE);
    static const uint8_t number[] = {0x05};
    n = frame_of(f, number, sizeof(number));
    assert_int_equal(br_decoder_decode(dec, f, n, &out), BR_EVALUE);
    /* The encoder refuses the same as the caller's bug. */
    br_msg bad = {.type = BR_MSG_WS_BATCH, .u.ws_batch = {{(const char *)heartbeat, 3}}};
    assert_int_equal(br_msg_encode(&bad, &buf), BR_EINVAL);
    /* What a batch carries. */
    assert_true(br_ws_batch_carries(BR_MSG_REQUEST));
    assert_true(br_ws_batch_carries(BR_MSG_REPLY));
    assert_false(br_ws_batch_carries(BR_MSG_CANCEL));
    assert_false(br_ws_batch_carries(BR_MSG_CREDIT));
    assert_false(br_ws_batch_carries(BR_MSG_CALL));
    assert_false(br_ws_batch_carries(BR_MSG_ACTOR_REQUEST));
    assert_false(br_ws_batch_carries(BR_MSG_ACTOR_REPLY));
    assert_false(br_ws_batch_carries(BR_MSG_STREAM_CHUNK));
    br_buf_free(&buf);
    br_decoder_destroy(&dec);
}

static void a_bad_message_inside_ends_the_batch_there(void **state)
{
    (void)state;
    br_decoder *dec = br_decoder_new(&br_limits_default);
    br_decoder *dec2 = br_decoder_new(&br_limits_default);
    br_msg out;
    uint8_t f[128], inner[96];
    /* [2, REPLY, 5, 200, [], "", b"", []], then the same with status 99 (invalid), then
     * a good one again: the first is handed on, the rest dropped. */
    static const uint8_t good[] = {0x98, 0x02, 0x04, 0x05, 0xcc, 0xc8,
                                   0x90, 0xa0, 0xc4, 0x00, 0x90};
    static const uint8_t bad[] = {0x98, 0x02, 0x04, 0x06, 0x63, 0x90, 0xa0, 0xc4, 0x00, 0x90};
    size_t k = 0;
    memcpy(inner + k, good, sizeof(good));
    k += sizeof(good);
    memcpy(inner + k, bad, sizeof(bad));
    k += sizeof(bad);
    memcpy(inner + k, good, sizeof(good));
    k += sizeof(good);
    size_t n = frame_of(f, inner, k);
    assert_int_equal(br_decoder_decode(dec, f, n, &out), 0);
    seen s = {.dec = dec2, .messages = out.u.ws_batch.messages};
    assert_int_equal(br_ws_batch_each(dec, out.u.ws_batch.messages, collect, &s), BR_EVALUE);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.id[0], 5);
    /* A REQUEST whose deadline is 0 is invalid inside a batch as alone. */
    br_msg r = request(8, "/hello");
    r.u.request.deadline_ms = 0;
    br_buf buf = {0};
    assert_int_equal(br_msg_encode(&r, &buf), BR_EINVAL);
    br_buf_free(&buf);
    br_decoder_destroy(&dec);
    br_decoder_destroy(&dec2);
}

static void the_req_batch_feature_is_its_own_bit_and_round_trips(void **state)
{
    (void)state;
    assert_int_equal(BR_FEATURE_REQ_BATCH, 8);
    assert_int_equal(BR_FEATURE_REQ_BATCH &
                         (BR_FEATURE_WS_BATCH | BR_FEATURE_CALL_STREAM | BR_FEATURE_JOB_HANDOFF),
                     0);
    br_decoder *dec = br_decoder_new(&br_limits_default);
    br_buf buf = {0};
    br_msg w = {.type = BR_MSG_WELCOME,
                .u.welcome = {.broker_id = br_str_c("b"),
                              .heartbeat_ms = 5,
                              .features = BR_FEATURE_WS_BATCH | BR_FEATURE_REQ_BATCH}};
    br_msg out;
    assert_int_equal(br_msg_encode(&w, &buf), 0);
    assert_int_equal(br_decoder_decode(dec, buf.data, buf.len, &out), 0);
    assert_int_equal(out.u.welcome.features, BR_FEATURE_WS_BATCH | BR_FEATURE_REQ_BATCH);
    br_buf_free(&buf);
    br_decoder_destroy(&dec);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(requests_travel_in_one_batch_and_split_back_in_order),
        cmocka_unit_test(replies_travel_in_one_batch_and_a_callback_may_stop_it),
        cmocka_unit_test(a_batch_must_start_with_a_whole_message_it_may_carry),
        cmocka_unit_test(a_bad_message_inside_ends_the_batch_there),
        cmocka_unit_test(the_req_batch_feature_is_its_own_bit_and_round_trips),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
