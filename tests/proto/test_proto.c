/*
 * test_proto.c - the protocol library on well-formed and deliberately wrong messages:
 * round trips, encoder refusals, value ranges, limits, forward compatibility, peek,
 * and the decoder's promise of no allocation in the steady state.
 *
 * Linked with -Wl,--wrap=malloc,calloc,realloc so that the steady-state test can count
 * the allocations the library makes.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "samples.h"
#include "tree.h"

#include "alloc_count.h"

/* ---------------------------------------------------------------------------------- */
/* Helpers.                                                                           */

static const sample_shape shapes[] = {SAMPLE_TYPICAL, SAMPLE_EMPTY, SAMPLE_MAXIMAL};

/* Fills *m with a sample and appends its encoding to *buf. */
static void encode_sample(unsigned type, sample_shape shape, br_msg *m, br_buf *buf)
{
    sample_msg(type, shape, m);
    assert_int_equal(br_msg_encode(m, buf), 0);
}

/* Decodes buf with a fresh decoder enforcing *lim (NULL: defaults). */
static int decode_with(const br_limits *lim, const br_buf *buf)
{
    br_decoder *d = br_decoder_new(lim);
    assert_non_null(d);
    br_msg out;
    int rc = br_decoder_decode(d, buf->data, buf->len, &out);
    br_decoder_destroy(&d);
    return rc;
}

static int decode_tree(const tree *t)
{
    br_buf buf = {0};
    tree_pack(t, &buf);
    int rc = decode_with(NULL, &buf);
    br_buf_free(&buf);
    return rc;
}

/* ---------------------------------------------------------------------------------- */
/* Round trips.                                                                       */

static void round_trips_every_type_in_every_shape(void **state)
{
    br_decoder *d = br_decoder_new(NULL);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        for (unsigned type = 1; type <= BR_MSG_TYPE_MAX; type++) {
            if (!br_msg_type_known(type))
                continue;
            br_msg in, out;
            br_buf buf = {0};
            sample_msg(type, shapes[s], &in);
            assert_int_equal(br_msg_encode(&in, &buf), 0);
            assert_int_equal(br_decoder_decode(d, buf.data, buf.len, &out), 0);
            assert_int_equal(out.type, type);
            assert_true(sample_equal(&in, &out));
            br_buf_free(&buf);
        }
    }
    br_decoder_destroy(&d);
    br_decoder_destroy(&d); /* safe twice */
}

static void decoded_strings_point_into_the_input(void **state)
{
    br_msg in, out;
    br_buf buf = {0};
    encode_sample(BR_MSG_REQUEST, SAMPLE_TYPICAL, &in, &buf);
    br_decoder *d = br_decoder_new(NULL);
    assert_int_equal(br_decoder_decode(d, buf.data, buf.len, &out), 0);
    const char *lo = (const char *)buf.data, *hi = lo + buf.len;
    assert_true(out.u.request.path.ptr > lo && out.u.request.path.ptr < hi);
    assert_true(out.u.request.headers[7].value.ptr > lo && out.u.request.headers[7].value.ptr < hi);
    br_decoder_destroy(&d);
    br_buf_free(&buf);
}

static void encode_appends_to_what_the_buffer_holds(void **state)
{
    br_msg m;
    br_buf buf = {0};
    encode_sample(BR_MSG_HEARTBEAT, SAMPLE_TYPICAL, &m, &buf);
    size_t one = buf.len;
    assert_int_equal(br_msg_encode(&m, &buf), 0);
    assert_int_equal(buf.len, 2 * one);
    assert_memory_equal(buf.data, buf.data + one, one);
    br_buf_free(&buf);
    br_buf_free(&buf); /* safe twice */
    assert_null(buf.data);
}

/* ---------------------------------------------------------------------------------- */
/* The encoder refuses what the protocol forbids.                                      */

static void encode_refuses_invalid_messages(void **state)
{
    static br_param nan_param = {.name = {"n", 1}, .has_min = true};
    static br_route nan_route = {
        .method = {"GET", 3}, .path = {"/n", 2}, .params = &nan_param, .nparams = 1};
    static br_service nan_service = {
        .name = {"n", 1}, .kind = BR_KIND_IO, .routes = &nan_route, .nroutes = 1};
    nan_param.min = NAN;
    br_msg bad[16];
    size_t n = 0;
    bad[n++] = (br_msg){.type = 0};
    bad[n++] = (br_msg){.type = BR_MSG_TYPE_MAX + 1};
    sample_msg(BR_MSG_REPLY, SAMPLE_TYPICAL, &bad[n]);
    bad[n++].u.reply.status = 99;
    sample_msg(BR_MSG_REPLY, SAMPLE_TYPICAL, &bad[n]);
    bad[n++].u.reply.status = 600;
    sample_msg(BR_MSG_REQUEST, SAMPLE_TYPICAL, &bad[n]);
    bad[n++].u.request.deadline_ms = 0;
    sample_msg(BR_MSG_CALL, SAMPLE_TYPICAL, &bad[n]);
    bad[n++].u.request.path = (br_str){NULL, 3};
    sample_msg(BR_MSG_REQUEST, SAMPLE_TYPICAL, &bad[n]);
    bad[n++].u.request.headers = NULL;
    sample_msg(BR_MSG_READY, SAMPLE_TYPICAL, &bad[n]);
    bad[n++].u.ready.kind = 2;
    sample_msg(BR_MSG_READY, SAMPLE_TYPICAL, &bad[n]);
    bad[n].u.ready.services = &nan_service;
    bad[n++].u.ready.nservices = 1;
    sample_msg(BR_MSG_CREDIT, SAMPLE_TYPICAL, &bad[n]);
    bad[n++].u.credit.credit = 0;
    sample_msg(BR_MSG_JOB, SAMPLE_TYPICAL, &bad[n]);
    bad[n++].u.job.attempt = 0;
    sample_msg(BR_MSG_JOB_RESULT, SAMPLE_TYPICAL, &bad[n]);
    bad[n++].u.job_result.outcome = 3;

    /* The buffer already holds a 3-byte HEARTBEAT that a refusal must leave alone. */
    br_buf buf = {0};
    br_msg heartbeat = {.type = BR_MSG_HEARTBEAT};
    assert_int_equal(br_msg_encode(&heartbeat, &buf), 0);
    assert_int_equal(buf.len, 3);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(br_msg_encode(&bad[i], &buf), BR_EINVAL);
        assert_int_equal(buf.len, 3);
    }
    assert_int_equal(br_msg_encode(NULL, &buf), BR_EINVAL);
    assert_int_equal(br_msg_encode(&bad[0], NULL), BR_EINVAL);
    br_buf_free(&buf);
}

static void encode_never_grows_the_buffer_past_its_max(void **state)
{
    br_msg m;
    br_buf unlimited = {0};
    encode_sample(BR_MSG_REQUEST, SAMPLE_TYPICAL, &m, &unlimited);
    size_t need = unlimited.len;

    br_buf buf = {.max = need + 3 - 1};
    br_msg heartbeat = {.type = BR_MSG_HEARTBEAT};
    assert_int_equal(br_msg_encode(&heartbeat, &buf), 0);
    assert_int_equal(br_msg_encode(&m, &buf), BR_ELIMIT);
    assert_int_equal(buf.len, 3);
    assert_memory_equal(buf.data, "\x92\x03\x06", 3);
    assert_true(buf.cap <= buf.max);

    buf.max = need + 3; /* exactly enough */
    assert_int_equal(br_msg_encode(&m, &buf), 0);
    assert_int_equal(buf.len, need + 3);
    assert_memory_equal(buf.data + 3, unlimited.data, need);
    br_buf_free(&buf);
    br_buf_free(&unlimited);
}

/* ---------------------------------------------------------------------------------- */
/* The decoder refuses values out of range.                                            */

/* One field of a valid sample set to a value that is out of range. */
typedef struct bad_value {
    unsigned type;       /* sample to start from (typical shape) */
    int path[8];         /* array indices from the root to the field */
    size_t depth;        /* entries used in path */
    msgpack_object node; /* the value put there */
    int expect;          /* the decoder's answer */
} bad_value;

static void rejects_values_out_of_range(void **state)
{
    /* Paths follow PROTOCOL.md's field indices; READY's services[0].routes[1] is
     * GET /hello/{name} whose params[0] is `name`. */
    const bad_value cases[] = {
        {BR_MSG_HEARTBEAT, {0}, 1, tree_uint(0), BR_EVERSION},
        {BR_MSG_HEARTBEAT, {0}, 1, tree_uint(BR_PROTO_VERSION + 1), BR_EVERSION},
        {BR_MSG_REQUEST, {0}, 1, tree_uint(1ull << 40), BR_EVERSION},
        {BR_MSG_HEARTBEAT, {0}, 1, tree_int(-1), BR_EVALUE},
        {BR_MSG_HEARTBEAT, {1}, 1, tree_uint(0), BR_EMSGTYPE},
        {BR_MSG_HEARTBEAT, {1}, 1, tree_uint(BR_MSG_TYPE_MAX + 1), BR_EMSGTYPE},
        {BR_MSG_HEARTBEAT, {1}, 1, tree_uint(255), BR_EMSGTYPE},
        {BR_MSG_REPLY, {3}, 1, tree_uint(99), BR_EVALUE},
        {BR_MSG_REPLY, {3}, 1, tree_uint(600), BR_EVALUE},
        {BR_MSG_REPLY, {3}, 1, tree_uint(65536 + 200), BR_EVALUE},
        {BR_MSG_REQUEST, {12}, 1, tree_uint(0), BR_EVALUE},
        {BR_MSG_CALL, {12}, 1, tree_uint(1ull << 32), BR_EVALUE},
        {BR_MSG_REQUEST, {2}, 1, tree_int(-5), BR_EVALUE},
        {BR_MSG_READY, {3}, 1, tree_uint(2), BR_EVALUE},
        {BR_MSG_READY, {3}, 1, tree_uint(256), BR_EVALUE},
        {BR_MSG_READY, {4}, 1, tree_int(-1), BR_EVALUE},
        {BR_MSG_READY, {6, 0, 1}, 3, tree_uint(2), BR_EVALUE},
        {BR_MSG_READY, {6, 0, 2, 1, 3}, 5, tree_uint(3), BR_EVALUE},
        {BR_MSG_READY, {6, 0, 2, 1, 5, 0, 1}, 7, tree_uint(4), BR_EVALUE},
        {BR_MSG_READY, {6, 0, 2, 1, 5, 0, 2}, 7, tree_uint(4), BR_EVALUE},
        {BR_MSG_READY, {6, 0, 2, 1, 5, 0, 4}, 7, tree_float(NAN), BR_EVALUE},
        {BR_MSG_READY, {6, 0, 2, 1, 5, 0, 5}, 7, tree_float(INFINITY), BR_EVALUE},
        {BR_MSG_READY, {6, 0, 2, 1, 5, 0, 4}, 7, tree_uint(1000), BR_EVALUE}, /* min > max */
        {BR_MSG_CREDIT, {2}, 1, tree_uint(0), BR_EVALUE},
        {BR_MSG_JOB, {5}, 1, tree_uint(0), BR_EVALUE},
        {BR_MSG_JOB, {6}, 1, tree_uint(0), BR_EVALUE},
        {BR_MSG_JOB_RESULT, {3}, 1, tree_uint(3), BR_EVALUE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        br_msg m;
        tree t;
        sample_msg(cases[i].type, SAMPLE_TYPICAL, &m);
        tree_from_msg(&t, &m);
        *tree_at(&t, cases[i].path, cases[i].depth) = cases[i].node;
        if (decode_tree(&t) != cases[i].expect)
            fail_msg("case %zu: expected %s", i, br_strerror(cases[i].expect));
        tree_free(&t);
    }
}

static void accepts_bounds_sent_as_integers_and_float32(void **state)
{
    br_msg m, out;
    tree t;
    br_buf buf = {0};
    sample_msg(BR_MSG_READY, SAMPLE_TYPICAL, &m);
    tree_from_msg(&t, &m);
    const int min[] = {6, 0, 2, 1, 5, 0, 4}, max[] = {6, 0, 2, 1, 5, 0, 5};
    *tree_at(&t, min, 7) = tree_int(-3);
    msgpack_object f32 = {.type = MSGPACK_OBJECT_FLOAT32};
    f32.via.f64 = 0.5;
    *tree_at(&t, max, 7) = f32;
    tree_pack(&t, &buf);
    br_decoder *d = br_decoder_new(NULL);
    assert_int_equal(br_decoder_decode(d, buf.data, buf.len, &out), 0);
    const br_param *p = &out.u.ready.services[0].routes[1].params[0];
    assert_true(p->has_min && p->min == -3.0);
    assert_true(p->has_max && p->max == 0.5);
    br_decoder_destroy(&d);
    br_buf_free(&buf);
    tree_free(&t);
}

static void rejects_each_field_with_the_wrong_type(void **state)
{
    /* Every node of every typical and empty sample, replaced in turn by a value of
     * another msgpack type: a string or a list becomes an integer, anything else a
     * string. */
    for (size_t s = 0; s < 2; s++) {
        for (unsigned type = 1; type <= BR_MSG_TYPE_MAX; type++) {
            if (!br_msg_type_known(type))
                continue;
            br_msg m;
            tree t;
            sample_msg(type, shapes[s], &m);
            tree_from_msg(&t, &m);
            size_t nodes = 0;
            while (tree_nth(&t, nodes))
                nodes++;
            tree_free(&t);
            /* Route fields 12 and 13 (streamed bodies) are nil in the actor route of the
             * READY sample (it needs fields 14 to 17): nil reads as absent there, but a
             * string is refused like anywhere else. */
            for (size_t k = 0; k < nodes; k++) {
                tree_from_msg(&t, &m);
                msgpack_object *o = tree_nth(&t, k);
                if (tree_nth_in_map(&t, k)) {
                    tree_free(&t);
                    continue;
                }
                bool to_int = o->type == MSGPACK_OBJECT_STR || o->type == MSGPACK_OBJECT_BIN ||
                              o->type == MSGPACK_OBJECT_ARRAY || o->type == MSGPACK_OBJECT_BOOLEAN;
                *o = to_int ? tree_uint(7) : tree_str("x");
                int rc = decode_tree(&t);
                if (rc != BR_ETYPE)
                    fail_msg("%s node %zu: not refused as BR_ETYPE", br_msg_type_name(type), k);
                tree_free(&t);
            }
        }
    }
}

/* ---------------------------------------------------------------------------------- */
/* Forward compatibility.                                                              */

static void accepts_and_ignores_extra_trailing_elements(void **state)
{
    /* Every record gets an extra nested element, as a newer peer would send. */
    static const struct {
        unsigned type;
        int path[6];
        size_t depth;
    } records[] = {
        {BR_MSG_READY, {6, 1}, 2},       /* services[1]: after its cors (services[0] has none:
                                            a fourth field there would be read as one) */
        {BR_MSG_READY, {6, 1, 3}, 3},    /* in the cors record */
        {BR_MSG_READY, {6, 2, 2, 0}, 4}, /* the actor route: after its 18 fields (a
                                            shorter route's next field is a stream one) */
        {BR_MSG_READY, {6, 0, 2, 1, 5, 0}, 6},
        {BR_MSG_REQUEST, {7, 0}, 2},
        {BR_MSG_REQUEST, {8, 0}, 2},
        {BR_MSG_REQUEST, {9, 7}, 2},
        {BR_MSG_REPLY, {4, 0}, 2},
        {BR_MSG_REPLY, {7, 0}, 2},
    };
    br_decoder *d = br_decoder_new(NULL);
    for (unsigned type = 1; type <= BR_MSG_TYPE_MAX; type++) {
        if (!br_msg_type_known(type))
            continue;
        br_msg m, out;
        tree t;
        br_buf buf = {0};
        sample_msg(type, SAMPLE_TYPICAL, &m);
        tree_from_msg(&t, &m);
        if (type == BR_MSG_REQUEST || type == BR_MSG_CALL || type == BR_MSG_ACTOR_REQUEST) {
            /* Their optional fields 17, 18 and 19 (actor, tick, stream window) come
             * first: nil, nil and 0, as a peer that knows them and sets none sends when
             * it has later fields. */
            msgpack_object nil = {.type = MSGPACK_OBJECT_NIL};
            tree_append(&t, NULL, 0, nil);
            tree_append(&t, NULL, 0, nil);
            tree_append(&t, NULL, 0, tree_uint(0));
        }
        tree_append(&t, NULL, 0, tree_future_value(&t));
        tree_append(&t, NULL, 0, tree_uint(12345));
        for (size_t i = 0; i < sizeof records / sizeof records[0]; i++) {
            if (records[i].type == type)
                tree_append(&t, records[i].path, records[i].depth, tree_future_value(&t));
        }
        tree_pack(&t, &buf);
        assert_int_equal(br_decoder_decode(d, buf.data, buf.len, &out), 0);
        assert_true(sample_equal(&m, &out));
        br_buf_free(&buf);
        tree_free(&t);
    }
    br_decoder_destroy(&d);
}

/* READY's schedules (issue 16) follow public_tasks: a READY that declares schedules
 * but no public task carries an empty public_tasks before them; each schedule record
 * reads back as written, and a record with fields after the six is read too. */
static void ready_schedules_follow_public_tasks(void **state)
{
    (void)state;
    br_str t = {"t", 1};
    br_schedule_decl decl[2] = {
        {.name = {"fast", 4},
         .task = t,
         .payload = {"\x01", 1},
         .interval_ms = 200,
         .catch_up = 1000},
        {.name = {"nightly", 7}, .task = t, .cron = {"0 3 * * *", 9}},
    };
    br_msg m = {.type = BR_MSG_READY};
    m.u.ready = (br_ready){{"w", 1}, BR_KIND_IO, 1, 1, NULL, 0, &t, 1, NULL, 0, NULL, 0, 0};
    m.u.ready.schedules = decl;
    m.u.ready.nschedules = 2;
    br_buf buf = {0};
    assert_int_equal(br_msg_encode_version(&m, 2, &buf), 0);
    assert_int_equal(buf.data[0], 0x9a); /* 10 elements: public_tasks (empty), schedules */
    br_decoder *d = br_decoder_new(NULL);
    br_msg out;
    assert_int_equal(br_decoder_decode(d, buf.data, buf.len, &out), 0);
    const br_ready *r = &out.u.ready;
    assert_int_equal(r->npublic_tasks, 0);
    assert_int_equal(r->nschedules, 2);
    assert_true(br_str_eq(r->schedules[0].name, "fast"));
    assert_true(br_str_eq(r->schedules[0].task, "t"));
    assert_int_equal(r->schedules[0].payload.len, 1);
    assert_int_equal(r->schedules[0].interval_ms, 200);
    assert_int_equal(r->schedules[0].catch_up, 1000);
    assert_true(br_str_eq(r->schedules[1].cron, "0 3 * * *"));
    assert_int_equal(r->schedules[1].interval_ms, 0);
    /* A schedule without a name is not a READY one may send. */
    decl[1].name = (br_str){"", 0};
    buf.len = 0;
    assert_int_not_equal(br_msg_encode_version(&m, 2, &buf), 0);
    br_buf_free(&buf);
    br_decoder_destroy(&d);
}

/* READY's public_tasks is an optional trailing field (issue 13): a READY without it is
 * encoded exactly as before and means "every task internal"; with it, it is read. */
static void ready_public_tasks_is_optional_and_trailing(void **state)
{
    static const uint8_t old_ready[] = {0x98, 0x01, 0x01, 0xa1, 'w',  0x00,
                                        0x01, 0x01, 0x90, 0x91, 0xa1, 't'};
    static const uint8_t new_ready[] = {0x99, 0x01, 0x01, 0xa1, 'w',  0x00, 0x01, 0x01,
                                        0x90, 0x91, 0xa1, 't',  0x91, 0xa1, 't'};
    br_decoder *d = br_decoder_new(NULL);
    br_msg out;
    assert_int_equal(br_decoder_decode(d, old_ready, sizeof old_ready, &out), 0);
    assert_int_equal(out.u.ready.ntasks, 1);
    assert_int_equal(out.u.ready.npublic_tasks, 0);
    assert_int_equal(br_decoder_decode(d, new_ready, sizeof new_ready, &out), 0);
    assert_int_equal(out.u.ready.npublic_tasks, 1);
    assert_true(br_str_eq(out.u.ready.public_tasks[0], "t"));
    /* The encoder leaves the field out when empty and writes it when not. */
    br_buf buf = {0};
    br_str t = {"t", 1};
    br_msg m = {.type = BR_MSG_READY};
    m.u.ready = (br_ready){{"w", 1}, BR_KIND_IO, 1, 1, NULL, 0, &t, 1, NULL, 0, NULL, 0, 0};
    assert_int_equal(br_msg_encode_version(&m, 1, &buf), 0);
    assert_int_equal(buf.len, sizeof old_ready);
    assert_memory_equal(buf.data, old_ready, sizeof old_ready);
    buf.len = 0;
    m.u.ready.public_tasks = &t;
    m.u.ready.npublic_tasks = 1;
    assert_int_equal(br_msg_encode_version(&m, 1, &buf), 0);
    assert_int_equal(buf.len, sizeof new_ready);
    assert_memory_equal(buf.data, new_ready, sizeof new_ready);
    /* A public_tasks that is not a list is refused, not skipped. */
    uint8_t bad[sizeof new_ready];
    memcpy(bad, new_ready, sizeof bad);
    bad[12] = 0x07;
    assert_int_equal(br_decoder_decode(d, bad, sizeof bad - 2, &out), BR_ETYPE);
    br_buf_free(&buf);
    br_decoder_destroy(&d);
}

/* The first place where buf holds the n bytes at s; NULL if none. */
static uint8_t *find_bytes(const br_buf *buf, const char *s, size_t n)
{
    for (size_t i = 0; n <= buf->len && i <= buf->len - n; i++)
        if (memcmp(buf->data + i, s, n) == 0)
            return buf->data + i;
    return NULL;
}

/* A service's cors is an optional trailing field of the service record: a service
 * without it is encoded exactly as before; nil means "the gateway's"; a record is read
 * with its fields, and a newer peer's extra fields in it are skipped. */
static void service_cors_is_optional_and_trailing(void **state)
{
    (void)state;
    /* READY v1: worker "w", io, capacity 1, heartbeat 1, one service ["s", 0, []], no
     * tasks. */
    static const uint8_t plain[] = {0x98, 0x01, 0x01, 0xa1, 'w',  0x00, 0x01, 0x01,
                                    0x91, 0x93, 0xa1, 's',  0x00, 0x90, 0x90};
    static const uint8_t with_nil[] = {0x98, 0x01, 0x01, 0xa1, 'w',  0x00, 0x01, 0x01,
                                       0x91, 0x94, 0xa1, 's',  0x00, 0x90, 0xc0, 0x90};
    /* cors = ["a", "GET", "", "x", true, 5] */
    static const uint8_t with_cors[] = {0x98, 0x01, 0x01, 0xa1, 'w',  0x00, 0x01, 0x01, 0x91,
                                        0x94, 0xa1, 's',  0x00, 0x90, 0x96, 0xa1, 'a',  0xa3,
                                        'G',  'E',  'T',  0xa0, 0xa1, 'x',  0xc3, 0x05, 0x90};
    /* The same with a seventh, unknown field in the cors record. */
    static const uint8_t with_more[] = {0x98, 0x01, 0x01, 0xa1, 'w',  0x00, 0x01, 0x01, 0x91, 0x94,
                                        0xa1, 's',  0x00, 0x90, 0x97, 0xa1, 'a',  0xa3, 'G',  'E',
                                        'T',  0xa0, 0xa1, 'x',  0xc3, 0x05, 0x91, 0x01, 0x90};
    /* Five fields: max_age_s missing. */
    static const uint8_t too_short[] = {0x98, 0x01, 0x01, 0xa1, 'w',  0x00, 0x01, 0x01, 0x91,
                                        0x94, 0xa1, 's',  0x00, 0x90, 0x95, 0xa1, 'a',  0xa3,
                                        'G',  'E',  'T',  0xa0, 0xa1, 'x',  0xc3, 0x90};
    br_decoder *d = br_decoder_new(NULL);
    br_msg out;
    assert_int_equal(br_decoder_decode(d, plain, sizeof plain, &out), 0);
    assert_false(out.u.ready.services[0].has_cors);
    assert_int_equal(br_decoder_decode(d, with_nil, sizeof with_nil, &out), 0);
    assert_false(out.u.ready.services[0].has_cors);
    const uint8_t *full[] = {with_cors, with_more};
    const size_t full_len[] = {sizeof with_cors, sizeof with_more};
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(br_decoder_decode(d, full[i], full_len[i], &out), 0);
        const br_service *s = &out.u.ready.services[0];
        assert_true(s->has_cors);
        assert_true(br_str_eq(s->cors.origins, "a"));
        assert_true(br_str_eq(s->cors.methods, "GET"));
        assert_int_equal(s->cors.headers.len, 0);
        assert_true(br_str_eq(s->cors.expose, "x"));
        assert_true(s->cors.credentials);
        assert_int_equal(s->cors.max_age_s, 5);
    }
    assert_int_equal(br_decoder_decode(d, too_short, sizeof too_short, &out), BR_ETRUNC);
    /* The encoder writes the field only when the service has a policy. */
    br_buf buf = {0};
    br_service svc = {.name = {"s", 1}, .kind = BR_KIND_IO};
    br_msg m = {.type = BR_MSG_READY};
    m.u.ready = (br_ready){.worker_id = {"w", 1},
                           .kind = BR_KIND_IO,
                           .capacity = 1,
                           .heartbeat_ms = 1,
                           .services = &svc,
                           .nservices = 1};
    assert_int_equal(br_msg_encode_version(&m, 1, &buf), 0);
    assert_int_equal(buf.len, sizeof plain);
    assert_memory_equal(buf.data, plain, sizeof plain);
    buf.len = 0;
    svc.has_cors = true;
    svc.cors = (br_cors){br_str_c("a"), br_str_c("GET"), br_str_c(""), br_str_c("x"), true, 5};
    assert_int_equal(br_msg_encode_version(&m, 1, &buf), 0);
    assert_int_equal(buf.len, sizeof with_cors);
    assert_memory_equal(buf.data, with_cors, sizeof with_cors);
    br_buf_free(&buf);
    br_decoder_destroy(&d);
}

/* Values that could break a response header, overlong ones, and "*" with credentials
 * are refused by the encoder (the caller's bug) and the decoder (the peer's), and
 * br_cors_check says which rule they broke. */
static void service_cors_refuses_hostile_values(void **state)
{
    (void)state;
    static char longer[BR_CORS_TEXT_MAX + 2];
    memset(longer, 'a', BR_CORS_TEXT_MAX + 1);
    static char longest[BR_CORS_TEXT_MAX + 1];
    memset(longest, 'a', BR_CORS_TEXT_MAX);
    static const struct {
        const char *origins, *methods, *headers, *expose;
        bool credentials;
        const char *why; /* a word of br_cors_check's answer; NULL: valid */
        int decode_rc;   /* what the decoder says */
    } cases[] = {
        {"https://a.example", "GET", "x-a", "x-b", true, NULL, 0},
        {"*", "GET", "*", "", false, NULL, 0},
        {longest, "GET", "", "", false, NULL, 0},
        {"https://a.example\r\nSet-Cookie: x=1", "GET", "", "", false, "origins", BR_EVALUE},
        {"https://a.example", "GET\n", "", "", false, "methods", BR_EVALUE},
        {"https://a.example", "GET", "x-a\x7f", "", false, "headers", BR_EVALUE},
        {"https://a.example", "GET", "", "x-\xc3\xa9", false, "expose", BR_EVALUE},
        {"https://a.example", "GET", "\t", "", false, "headers", BR_EVALUE},
        {longer, "GET", "", "", false, "origins", BR_ELIMIT},
        {"https://a.example, *", "GET", "", "", true, "credentials", BR_EVALUE},
        {" * ", "GET", "", "", true, "credentials", BR_EVALUE},
    };
    br_decoder *d = br_decoder_new(NULL);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        br_service svc = {.name = {"s", 1}, .kind = BR_KIND_IO, .has_cors = true};
        svc.cors = (br_cors){br_str_c(cases[i].origins), br_str_c(cases[i].methods),
                             br_str_c(cases[i].headers), br_str_c(cases[i].expose),
                             cases[i].credentials,       60};
        const char *why = br_cors_check(&svc.cors);
        if (!cases[i].why)
            assert_null(why);
        else
            assert_non_null(strstr(why, cases[i].why));
        br_msg m = {.type = BR_MSG_READY};
        m.u.ready = (br_ready){.worker_id = {"w", 1},
                               .kind = BR_KIND_IO,
                               .capacity = 1,
                               .services = &svc,
                               .nservices = 1};
        br_buf buf = {0};
        assert_int_equal(br_msg_encode(&m, &buf), cases[i].why ? BR_EINVAL : 0);
        /* The decoder is given the bytes a careless peer would send: the same message
         * encoded with the policy's check skipped (a valid one, then the bad text
         * patched in place of a placeholder of the same length). */
        br_service ok = svc;
        char patch[BR_CORS_TEXT_MAX + 2];
        const char *bad = NULL;
        br_str *field = NULL;
        if (cases[i].why) {
            static const char *const fields[] = {"origins", "methods", "headers", "expose"};
            br_str *f[] = {&ok.cors.origins, &ok.cors.methods, &ok.cors.headers, &ok.cors.expose};
            for (size_t k = 0; k < 4; k++)
                if (strcmp(fields[k], cases[i].why) == 0)
                    field = f[k];
            if (!field) { /* credentials: send the policy without them, then set them */
                ok.cors.credentials = false;
            } else {
                bad = field->ptr;
                size_t n = field->len;
                if (n > BR_CORS_TEXT_MAX) /* too long to encode: patch the length test */
                    n = BR_CORS_TEXT_MAX;
                memset(patch, '~', n);
                *field = (br_str){patch, (uint32_t)n};
            }
        }
        m.u.ready.services = &ok;
        buf.len = 0;
        assert_int_equal(br_msg_encode(&m, &buf), 0);
        if (cases[i].why && field && cases[i].decode_rc != BR_ELIMIT) {
            uint8_t *at = find_bytes(&buf, patch, field->len);
            assert_non_null(at);
            memcpy(at, bad, field->len);
        } else if (cases[i].why && !field) {
            uint8_t *at = buf.data + buf.len - 3; /* ..., false, 60] then tasks [] */
            assert_int_equal(*at, 0xc2);
            *at = 0xc3;
        } else if (cases[i].decode_rc == BR_ELIMIT) {
            /* Re-encode the string header for one byte more: str 16 length + 1. */
            uint8_t *at = find_bytes(&buf, patch, field->len);
            assert_non_null(at);
            assert_int_equal(at[-3], 0xda);
            size_t off = (size_t)(at - buf.data) + field->len;
            assert_int_equal(br_buf_append(&buf, "", 1), 0);
            memmove(buf.data + off + 1, buf.data + off, buf.len - 1 - off);
            buf.data[off] = 'a';
            uint32_t n = field->len + 1;
            buf.data[off - field->len - 2] = (uint8_t)(n >> 8);
            buf.data[off - field->len - 1] = (uint8_t)n;
        }
        br_msg out;
        assert_int_equal(br_decoder_decode(d, buf.data, buf.len, &out), cases[i].decode_rc);
        br_buf_free(&buf);
    }
    br_decoder_destroy(&d);
}

static void rejects_bytes_after_the_message(void **state)
{
    br_msg m;
    br_buf buf = {0};
    encode_sample(BR_MSG_REPLY, SAMPLE_TYPICAL, &m, &buf);
    assert_int_equal(br_msg_encode(&m, &buf), 0); /* a second message counts as trailing */
    assert_int_equal(decode_with(NULL, &buf), BR_ETRAILING);
    buf.len = buf.len / 2 + 1; /* one stray byte */
    assert_int_equal(decode_with(NULL, &buf), BR_ETRAILING);
    br_buf_free(&buf);
}

static void rejects_records_with_missing_fields(void **state)
{
    static const uint8_t short_welcome[] = {0x93, 0x01, 0x02, 0xa1, 'b'};
    static const uint8_t lone_version[] = {0x91, 0x01};
    static const uint8_t empty_array[] = {0x90};
    br_decoder *d = br_decoder_new(NULL);
    br_msg out;
    assert_int_equal(br_decoder_decode(d, short_welcome, sizeof short_welcome, &out), BR_ETRUNC);
    assert_int_equal(br_decoder_decode(d, lone_version, sizeof lone_version, &out), BR_ETRUNC);
    assert_int_equal(br_decoder_decode(d, empty_array, sizeof empty_array, &out), BR_ETRUNC);
    assert_int_equal(br_decoder_decode(d, "", 0, &out), BR_ETRUNC);
    br_decoder_destroy(&d);
}

/* ---------------------------------------------------------------------------------- */
/* Limits.                                                                             */

/* Small limits so that "at the limit" and "one over" are cheap to build. */
static const br_limits small = {
    .max_message = 2048,
    .max_string = 8,
    .max_body = 16,
    .max_pairs = 4,
    .max_services = 2,
    .max_routes = 2,
    .max_params = 2,
    .max_tasks = 2,
    .max_jobs = 2,
};

/* Encodes m and checks that it decodes under `small`, then that growing it by one with
 * grow() makes the decoder answer BR_ELIMIT. */
static void check_limit(br_msg *m, void (*grow)(br_msg *m), const char *what)
{
    br_buf buf = {0};
    assert_int_equal(br_msg_encode(m, &buf), 0);
    if (decode_with(&small, &buf) != 0)
        fail_msg("%s: at the limit but refused", what);
    grow(m);
    buf.len = 0;
    assert_int_equal(br_msg_encode(m, &buf), 0);
    if (decode_with(&small, &buf) != BR_ELIMIT)
        fail_msg("%s: one over the limit but not BR_ELIMIT", what);
    br_buf_free(&buf);
}

static br_pair pairs5[5] = {{{"a", 1}, {"1", 1}},
                            {{"b", 1}, {"2", 1}},
                            {{"c", 1}, {"3", 1}},
                            {{"d", 1}, {"4", 1}},
                            {{"e", 1}, {"5", 1}}};
static br_param params3[3] = {{.name = {"p", 1}}, {.name = {"q", 1}}, {.name = {"r", 1}}};
static br_route routes3[3] = {
    {.method = {"GET", 3}, .path = {"/a", 2}, .params = params3, .nparams = 2},
    {.method = {"GET", 3}, .path = {"/b", 2}},
    {.method = {"GET", 3}, .path = {"/c", 2}}};
static br_service services3[3] = {
    {.name = {"s1", 2}, .kind = BR_KIND_IO, .routes = routes3, .nroutes = 2},
    {.name = {"s2", 2}, .kind = BR_KIND_IO, .routes = routes3 + 2, .nroutes = 1},
    {.name = {"s3", 2}, .kind = BR_KIND_IO, .routes = routes3 + 2, .nroutes = 1}};
static br_str tasks3[3] = {{"t1", 2}, {"t2", 2}, {"t3", 2}};
static br_job_spec jobs3[3] = {{.task = {"t", 1}}, {.task = {"t", 1}}, {.task = {"t", 1}}};
static const char bytes17[] = "0123456789abcdefg";

static void grow_headers(br_msg *m)
{
    m->u.request.nheaders++;
}
static void grow_query(br_msg *m)
{
    m->u.request.nquery++;
}
static void grow_params(br_msg *m)
{
    m->u.request.nparams++;
}
static void grow_service_name(br_msg *m)
{
    m->u.request.service.len++;
}
static void grow_header_value(br_msg *m)
{
    m->u.request.headers[0].value.len = 9;
}
static void grow_body(br_msg *m)
{
    m->u.request.body.len++;
}
static void grow_services(br_msg *m)
{
    m->u.ready.nservices++;
}
static void grow_routes(br_msg *m)
{
    m->u.ready.services[0].nroutes++;
}
static void grow_route_params(br_msg *m)
{
    m->u.ready.services[0].routes[0].nparams++;
}
static void grow_tasks(br_msg *m)
{
    m->u.ready.ntasks++;
}
static void grow_public_tasks(br_msg *m)
{
    m->u.ready.npublic_tasks++;
}
static void grow_jobs(br_msg *m)
{
    m->u.reply.njobs++;
}
static void grow_payload(br_msg *m)
{
    m->u.reply.jobs[0].payload.len++;
}

static void rejects_lengths_and_counts_just_over_each_limit(void **state)
{
    br_msg req = {.type = BR_MSG_REQUEST};
    req.u.request = (br_request){.service = {bytes17, 8},
                                 .params = pairs5,
                                 .nparams = 4,
                                 .query = pairs5,
                                 .nquery = 4,
                                 .headers = pairs5,
                                 .nheaders = 4,
                                 .body = {bytes17, 16},
                                 .deadline_ms = 1};
    br_msg base = req;
    check_limit(&req, grow_headers, "headers");
    req = base;
    check_limit(&req, grow_query, "query");
    req = base;
    check_limit(&req, grow_params, "params");
    req = base;
    check_limit(&req, grow_service_name, "string");
    req = base;
    check_limit(&req, grow_body, "body");
    br_pair long_value[1] = {{{"h", 1}, {bytes17, 8}}};
    req = base;
    req.u.request.headers = long_value;
    req.u.request.nheaders = 1;
    check_limit(&req, grow_header_value, "header value");

    br_msg ready = {.type = BR_MSG_READY};
    ready.u.ready =
        (br_ready){{"w", 1}, BR_KIND_IO, 1, 1, services3, 2, tasks3, 2, NULL, 0, NULL, 0, 0};
    base = ready;
    check_limit(&ready, grow_services, "services");
    ready = base;
    check_limit(&ready, grow_routes, "routes");
    services3[0].nroutes = 2; /* the grow functions edit the shared static lists */
    ready = base;
    check_limit(&ready, grow_route_params, "route params");
    routes3[0].nparams = 2;
    ready = base;
    check_limit(&ready, grow_tasks, "tasks");
    ready = base;
    ready.u.ready.public_tasks = tasks3;
    ready.u.ready.npublic_tasks = 2;
    check_limit(&ready, grow_public_tasks, "public tasks");

    br_msg reply = {.type = BR_MSG_REPLY};
    reply.u.reply = (br_reply){.status = 200, .jobs = jobs3, .njobs = 2};
    base = reply;
    check_limit(&reply, grow_jobs, "jobs");
    jobs3[0].payload = (br_str){bytes17, 16};
    reply = base;
    check_limit(&reply, grow_payload, "payload");
    jobs3[0].payload = (br_str){0};
}

static void rejects_messages_longer_than_max_message(void **state)
{
    br_msg m;
    br_buf buf = {0};
    sample_msg(BR_MSG_REPLY, SAMPLE_TYPICAL, &m);
    m.u.reply.body = (br_str){bytes17, 8};
    assert_int_equal(br_msg_encode(&m, &buf), 0);
    br_limits lim = br_limits_default;
    lim.max_message = (uint32_t)buf.len;
    assert_int_equal(decode_with(&lim, &buf), 0);
    lim.max_message--;
    assert_int_equal(decode_with(&lim, &buf), BR_ELIMIT);
    br_buf_free(&buf);
}

static void refuses_limits_with_a_zero_bound(void **state)
{
    br_limits lim = br_limits_default;
    lim.max_jobs = 0;
    assert_null(br_decoder_new(&lim));
}

/* ---------------------------------------------------------------------------------- */
/* Versions (PROTOCOL.md 14).                                                          */

/* Every version-1 message reads the same in version 1 and 2, and the decoder says
 * which one it read; a type from version 2 on does not exist in version 1. */
static void versions_one_and_two(void **state)
{
    (void)state;
    br_decoder *d = br_decoder_new(NULL);
    assert_non_null(d);
    for (unsigned type = 1; type < BR_MSG_V2_FIRST; type++) {
        br_msg m, out;
        br_buf v1 = {0}, v2 = {0};
        sample_msg(type, SAMPLE_TYPICAL, &m);
        assert_int_equal(br_msg_encode_version(&m, 1, &v1), 0);
        assert_int_equal(br_msg_encode_version(&m, 2, &v2), 0);
        assert_int_equal(v1.len, v2.len);
        unsigned version = 0;
        assert_int_equal(br_msg_peek(v1.data, v1.len, &version, NULL), 0);
        assert_int_equal(version, 1);
        assert_int_equal(br_decoder_decode(d, v1.data, v1.len, &out), 0);
        assert_int_equal(out.version, 1);
        assert_int_equal(out.type, type);
        assert_int_equal(br_decoder_decode(d, v2.data, v2.len, &out), 0);
        assert_int_equal(out.version, 2);
        br_buf_free(&v1);
        br_buf_free(&v2);
    }
    /* The types of version 2 (jobs, actors, ...) are refused in version 1, read in 2. */
    for (unsigned type = BR_MSG_V2_FIRST; type <= BR_MSG_TYPE_MAX; type++) {
        if (!br_msg_type_known(type) || (type >= BR_MSG_V3_FIRST && type <= BR_MSG_V3_LAST))
            continue; /* a number no feature has taken, or a version-3 type (below) */
        br_msg m, out;
        br_buf v1 = {0}, v2 = {0};
        sample_msg(type, SAMPLE_TYPICAL, &m);
        assert_int_equal(br_msg_encode_version(&m, 1, &v1), BR_EMSGTYPE);
        assert_int_equal(v1.len, 0);
        assert_int_equal(br_msg_encode_version(&m, 2, &v2), 0);
        assert_int_equal(br_decoder_decode(d, v2.data, v2.len, &out), 0);
        assert_int_equal(out.type, type);
        assert_true(sample_equal(&m, &out));
        br_buf_free(&v2);
    }
    br_msg hb = {.type = BR_MSG_HEARTBEAT};
    br_buf buf = {0};
    assert_int_equal(br_msg_encode_version(&hb, 0, &buf), BR_EVERSION);
    assert_int_equal(br_msg_encode_version(&hb, BR_PROTO_VERSION + 1, &buf), BR_EVERSION);
    assert_int_equal(buf.len, 0);
    assert_true(br_msg_type_in_version(BR_MSG_JOB_RESULT, 1));
    assert_false(br_msg_type_in_version(BR_MSG_V2_FIRST, 1));
    assert_false(br_msg_type_in_version(0, 2));
    /* The keyed actors' types exist from version 2 on, and only those (13 to 39 are
     * reserved: unknown here). */
    for (unsigned type = BR_MSG_ACTOR_REQUEST; type <= BR_MSG_ACTOR_TIMER; type++) {
        assert_false(br_msg_type_in_version(type, 1));
        assert_true(br_msg_type_in_version(type, 2));
        br_msg m;
        sample_msg(type, SAMPLE_TYPICAL, &m);
        assert_int_equal(br_msg_encode_version(&m, 1, &buf), BR_EMSGTYPE);
        assert_int_equal(buf.len, 0);
    }
    assert_false(br_msg_type_in_version(BR_MSG_ACTOR_REQUEST - 1, 2));
    /* The workflow types exist from version 3 on: refused in 1 and 2, read in 3. */
    for (unsigned type = BR_MSG_WORKFLOW; type <= BR_MSG_JOB_HANDOFF; type++) {
        assert_false(br_msg_type_in_version(type, 2));
        assert_true(br_msg_type_in_version(type, 3));
        br_msg m, out;
        sample_msg(type, SAMPLE_TYPICAL, &m);
        assert_int_equal(br_msg_encode_version(&m, 2, &buf), BR_EMSGTYPE);
        assert_int_equal(buf.len, 0);
        assert_int_equal(br_msg_encode_version(&m, 3, &buf), 0);
        assert_int_equal(br_decoder_decode(d, buf.data, buf.len, &out), 0);
        assert_int_equal(out.version, 3);
        assert_true(sample_equal(&m, &out));
        buf.len = 0;
    }
    br_buf_free(&buf);
    /* A version-2 type number in a version-1 envelope is an unknown type. */
    static const uint8_t v1_type13[] = {0x92, 0x01, BR_MSG_V2_FIRST};
    br_msg out;
    assert_int_equal(br_decoder_decode(d, v1_type13, sizeof v1_type13, &out), BR_EMSGTYPE);
    br_decoder_destroy(&d);
}

/* ---------------------------------------------------------------------------------- */
/* Peek, names, memory.                                                                */

static void peek_reads_version_and_type_only(void **state)
{
    br_msg m;
    br_buf buf = {0};
    unsigned version = 0, type = 0;
    encode_sample(BR_MSG_JOB, SAMPLE_TYPICAL, &m, &buf);
    assert_int_equal(br_msg_peek(buf.data, buf.len, &version, &type), 0);
    assert_int_equal(version, BR_PROTO_VERSION);
    assert_int_equal(type, BR_MSG_JOB);
    /* Peek does not judge: a future version and type are reported as they are. */
    static const uint8_t future[] = {0x93, 0x07, 0xcc, 0xc8, 0xc0};
    assert_int_equal(br_msg_peek(future, sizeof future, &version, &type), 0);
    assert_int_equal(version, 7);
    assert_int_equal(type, 200);
    assert_int_equal(br_msg_peek(buf.data, 2, &version, &type), BR_ETRUNC);
    assert_int_equal(br_msg_peek("\xa3"
                                 "abc",
                                 4, &version, &type),
                     BR_ETYPE);
    assert_int_equal(br_msg_peek("", 0, &version, &type), BR_ETRUNC);
    br_buf_free(&buf);
}

static void names_every_message_type(void **state)
{
    assert_string_equal(br_msg_type_name(BR_MSG_READY), "READY");
    assert_string_equal(br_msg_type_name(BR_MSG_REQUEST), "REQUEST");
    assert_string_equal(br_msg_type_name(BR_MSG_JOB_RESULT), "JOB_RESULT");
    assert_string_equal(br_msg_type_name(0), "UNKNOWN");
    assert_string_equal(br_msg_type_name(BR_MSG_TYPE_MAX + 1), "UNKNOWN");
    for (unsigned t = 1; t <= BR_MSG_TYPE_MAX; t++)
        assert_true(br_msg_type_known(t) == (strcmp(br_msg_type_name(t), "UNKNOWN") != 0));
    assert_string_equal(br_msg_type_name(BR_MSG_ACTOR_REPLY), "ACTOR_REPLY");
    assert_string_equal(br_msg_type_name(BR_MSG_WORKFLOW), "WORKFLOW");
    assert_string_equal(br_msg_type_name(BR_MSG_JOB_HANDOFF), "JOB_HANDOFF");
    assert_false(br_msg_type_known(19)); /* a number no feature has taken */
}

static void decodes_requests_and_replies_without_allocating_once_warm(void **state)
{
    br_msg req, rep, out;
    br_buf a = {0}, b = {0};
    sample_msg(BR_MSG_REQUEST, SAMPLE_TYPICAL, &req);
    sample_msg(BR_MSG_REPLY, SAMPLE_TYPICAL, &rep);
    assert_int_equal(br_msg_encode(&req, &a), 0);
    assert_int_equal(br_msg_encode(&rep, &b), 0);
    br_decoder *d = br_decoder_new(NULL);
    assert_int_equal(br_decoder_decode(d, a.data, a.len, &out), 0);
    test_allocations = 0;
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(br_decoder_decode(d, a.data, a.len, &out), 0);
        assert_int_equal(br_decoder_decode(d, b.data, b.len, &out), 0);
        a.len = 0; /* re-encoding into a warm buffer does not allocate either */
        assert_int_equal(br_msg_encode(&req, &a), 0);
    }
    assert_int_equal(test_allocations, 0);
    br_decoder_destroy(&d);
    br_buf_free(&a);
    br_buf_free(&b);
}

static void keeps_scratch_bounded_after_a_huge_ready(void **state)
{
    /* A maximal READY needs far more scratch than the decoder keeps between
     * messages; decoding small messages afterwards must still work. */
    br_msg big, small_msg, out;
    br_buf a = {0}, b = {0};
    sample_msg(BR_MSG_READY, SAMPLE_MAXIMAL, &big);
    sample_msg(BR_MSG_REQUEST, SAMPLE_TYPICAL, &small_msg);
    assert_int_equal(br_msg_encode(&big, &a), 0);
    assert_int_equal(br_msg_encode(&small_msg, &b), 0);
    br_decoder *d = br_decoder_new(NULL);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(br_decoder_decode(d, a.data, a.len, &out), 0);
        assert_int_equal(out.u.ready.services[0].routes[0].nparams, 32);
        assert_int_equal(br_decoder_decode(d, b.data, b.len, &out), 0);
        assert_true(sample_equal(&small_msg, &out));
    }
    br_decoder_destroy(&d);
    br_buf_free(&a);
    br_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trips_every_type_in_every_shape),
        cmocka_unit_test(decoded_strings_point_into_the_input),
        cmocka_unit_test(encode_appends_to_what_the_buffer_holds),
        cmocka_unit_test(encode_refuses_invalid_messages),
        cmocka_unit_test(encode_never_grows_the_buffer_past_its_max),
        cmocka_unit_test(rejects_values_out_of_range),
        cmocka_unit_test(accepts_bounds_sent_as_integers_and_float32),
        cmocka_unit_test(rejects_each_field_with_the_wrong_type),
        cmocka_unit_test(accepts_and_ignores_extra_trailing_elements),
        cmocka_unit_test(ready_public_tasks_is_optional_and_trailing),
        cmocka_unit_test(ready_schedules_follow_public_tasks),
        cmocka_unit_test(service_cors_is_optional_and_trailing),
        cmocka_unit_test(service_cors_refuses_hostile_values),
        cmocka_unit_test(rejects_bytes_after_the_message),
        cmocka_unit_test(rejects_records_with_missing_fields),
        cmocka_unit_test(rejects_lengths_and_counts_just_over_each_limit),
        cmocka_unit_test(rejects_messages_longer_than_max_message),
        cmocka_unit_test(refuses_limits_with_a_zero_bound),
        cmocka_unit_test(peek_reads_version_and_type_only),
        cmocka_unit_test(versions_one_and_two),
        cmocka_unit_test(names_every_message_type),
        cmocka_unit_test(decodes_requests_and_replies_without_allocating_once_warm),
        cmocka_unit_test(keeps_scratch_bounded_after_a_huge_ready),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
