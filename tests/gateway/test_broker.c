/*
 * test_broker.c - the broker's protocol side, driven by a real DEALER playing a
 * worker on the same libuv loop: registration, refusals, garbage, heartbeats,
 * liveness, drain, shutdown, and service-to-service CALLs (the fake worker calling
 * its own service).  Requests through HTTP are covered by
 * tests/integration/test_broker.py with the real gateway and workers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <zmq.h>

#include "barista/proto.h"
#include "barista/ws_batch.h"
#include "barista/zsock.h"
#include "broker.h"
#include "broker_int.h"
#include "router.h"

#define KIB 1024u

/* Every wait is bounded by this; the conditions are met in milliseconds. */
#define GUARD_MS     10000
#define HEARTBEAT_MS 50

typedef struct fx {
    uv_loop_t loop;
    gw_router *router;
    gw_broker *broker;
    void *ctx;                    /* the fake worker's ZeroMQ context */
    br_zsock *dealer;             /* the fake worker */
    br_decoder *decoder;          /* decodes what the broker sends it */
    int got[BR_MSG_TYPE_MAX + 1]; /* messages received, by type */
    char text[256];               /* last GOODBYE reason or WELCOME broker id */
    uint32_t welcome_heartbeat;   /* heartbeat_ms of the last WELCOME */
    uint64_t last_id;             /* id of the last REQUEST, REPLY or CANCEL */
    uint16_t reply_status;        /* status of the last REPLY */
    char reply_body[256];         /* body of the last REPLY */
    uint8_t seq[32];              /* types of the messages received, in order, those of
                                     a WS_BATCH one by one */
    uint64_t seq_id[32];          /* their REQUEST / CANCEL ids */
    int nseq;                     /* entries in seq */
    uv_timer_t guard;             /* ends a wait that would otherwise hang */
    bool timed_out;               /* the guard fired */
    int closed;                   /* close callbacks run */
} fx;

static int batched(void *arg, const br_msg *m, br_str bytes);

static void dealer_msg(fx *x, const br_msg *mp)
{
    const br_msg m = *mp;
    x->got[m.type]++;
    if (x->nseq < (int)sizeof(x->seq)) {
        x->seq[x->nseq] = (uint8_t)m.type;
        x->seq_id[x->nseq++] = m.type == BR_MSG_REQUEST  ? m.u.request.id
                               : m.type == BR_MSG_CANCEL ? m.u.cancel.id
                                                         : 0;
    }
    if (m.type == BR_MSG_WS_BATCH)
        assert_int_equal(br_ws_batch_each(x->decoder, m.u.ws_batch.messages, batched, x), 0);
    br_str s = {0};
    if (m.type == BR_MSG_GOODBYE)
        s = m.u.goodbye.reason;
    if (m.type == BR_MSG_WELCOME) {
        s = m.u.welcome.broker_id;
        x->welcome_heartbeat = m.u.welcome.heartbeat_ms;
    }
    if (m.type == BR_MSG_REQUEST)
        x->last_id = m.u.request.id;
    if (m.type == BR_MSG_CANCEL)
        x->last_id = m.u.cancel.id;
    if (m.type == BR_MSG_REPLY) {
        x->last_id = m.u.reply.id;
        x->reply_status = m.u.reply.status;
        snprintf(x->reply_body, sizeof(x->reply_body), "%.*s", (int)m.u.reply.body.len,
                 m.u.reply.body.ptr ? m.u.reply.body.ptr : "");
    }
    if (m.type == BR_MSG_GOODBYE || m.type == BR_MSG_WELCOME)
        snprintf(x->text, sizeof(x->text), "%.*s", (int)s.len, s.ptr ? s.ptr : "");
}

static int batched(void *arg, const br_msg *m, br_str bytes)
{
    (void)bytes;
    dealer_msg(arg, m);
    return 0;
}

static void dealer_recv(br_zsock *zs, const br_zframe *f, size_t n, void *arg)
{
    fx *x = arg;
    (void)zs;
    assert_int_equal(n, 1);
    br_msg m;
    assert_int_equal(br_decoder_decode(x->decoder, f[0].data, f[0].len, &m), 0);
    dealer_msg(x, &m);
}

static void on_guard(uv_timer_t *t)
{
    ((fx *)t->data)->timed_out = true;
}

/* Runs the loop until *counter >= want or the guard fires; true when reached. */
static bool run_until(fx *x, const int *counter, int want)
{
    x->timed_out = false;
    uv_timer_start(&x->guard, on_guard, GUARD_MS, 0);
    while (*counter < want && !x->timed_out)
        uv_run(&x->loop, UV_RUN_ONCE);
    uv_timer_stop(&x->guard);
    return *counter >= want;
}

/* Runs the loop until the broker's counter at `offset` in gw_broker_stats reaches
 * want, or the guard fires; true when it did. */
static bool run_until_stat(fx *x, size_t offset, uint64_t want)
{
    gw_broker_stats st;
    uint64_t got;
    x->timed_out = false;
    uv_timer_start(&x->guard, on_guard, GUARD_MS, 0);
    do {
        uv_run(&x->loop, UV_RUN_ONCE);
        gw_broker_stats_get(x->broker, &st);
        memcpy(&got, (const char *)&st + offset, sizeof(got));
    } while (got < want && !x->timed_out);
    uv_timer_stop(&x->guard);
    return got >= want;
}

/* Runs the loop until the broker has dropped a worker for silence, or the guard
 * fires; true when it did. */
static bool run_until_dead(fx *x)
{
    return run_until_stat(x, offsetof(gw_broker_stats, workers_died), 1);
}

static void send_msg(fx *x, const br_msg *m)
{
    br_buf buf = {0};
    assert_int_equal(br_msg_encode(m, &buf), 0);
    assert_int_equal(br_zsock_send(x->dealer, NULL, 0, buf.data, buf.len), 0);
    br_buf_free(&buf);
}

/* When not 0, setup's broker gets this --call-gather-total and a 1 s heartbeat. */
static size_t setup_gather_total;

static int setup(void **state)
{
    static fx x;
    memset(&x, 0, sizeof(x));
    if (uv_loop_init(&x.loop) != 0)
        return -1;
    x.router = gw_router_new();
    gw_broker_config cfg;
    gw_broker_config_defaults(&cfg);
    cfg.endpoint = "tcp://127.0.0.1:*";
    cfg.heartbeat_ms = HEARTBEAT_MS;
    if (setup_gather_total) {
        cfg.call_gather_total = setup_gather_total;
        cfg.heartbeat_ms = 1000;
    }
    x.broker = gw_broker_new(&x.loop, x.router, &cfg);
    if (!x.router || !x.broker || gw_broker_start(x.broker) != 0)
        return -1;
    char endpoint[256];
    if (gw_broker_endpoint(x.broker, endpoint, sizeof(endpoint)) != 0)
        return -1;
    x.ctx = zmq_ctx_new();
    void *sock = zmq_socket(x.ctx, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof(zero));
    if (zmq_connect(sock, endpoint) != 0)
        return -1;
    x.dealer = br_zsock_new(&x.loop, sock, dealer_recv, &x);
    x.decoder = br_decoder_new(NULL);
    uv_timer_init(&x.loop, &x.guard);
    x.guard.data = &x;
    *state = &x;
    return x.dealer && x.decoder ? 0 : -1;
}

/* --call-gather-total of the broker setup_gather starts (with a heartbeat slow
 * enough that the fake worker, which sends none, stays live through a test). */
#define GATHER_TOTAL (200u * 1024)

static int setup_gather(void **state)
{
    setup_gather_total = GATHER_TOTAL;
    int rc = setup(state);
    setup_gather_total = 0;
    return rc;
}

static void on_closed(void *arg)
{
    ((fx *)arg)->closed++;
}

static void on_guard_closed(uv_handle_t *h)
{
    on_closed(h->data);
}

static int teardown(void **state)
{
    fx *x = *state;
    if (x->dealer)
        br_zsock_close(x->dealer, on_closed, x);
    gw_broker_shutdown(x->broker, on_closed, x);
    uv_close((uv_handle_t *)&x->guard, on_guard_closed);
    while (x->closed < 3)
        uv_run(&x->loop, UV_RUN_ONCE);
    gw_broker_destroy(&x->broker);
    assert_null(x->broker);
    gw_broker_destroy(&x->broker);
    gw_router_destroy(&x->router);
    br_decoder_destroy(&x->decoder);
    zmq_ctx_term(x->ctx);
    assert_int_equal(uv_loop_close(&x->loop), 0);
    return 0;
}

/* A READY for one io service "hello" serving GET /hello. */
typedef struct ready_msg {
    br_msg msg;
    br_service service;
    br_route route;
} ready_msg;

static br_msg *hello_ready(ready_msg *r, uint8_t service_kind)
{
    memset(r, 0, sizeof(*r));
    r->route.method = br_str_c("GET");
    r->route.path = br_str_c("/hello");
    r->service.name = br_str_c("hello");
    r->service.kind = service_kind;
    r->service.routes = &r->route;
    r->service.nroutes = 1;
    r->msg.type = BR_MSG_READY;
    r->msg.u.ready = (br_ready){.worker_id = br_str_c("test:1"),
                                .kind = BR_KIND_IO,
                                .capacity = 4,
                                .heartbeat_ms = HEARTBEAT_MS,
                                .services = &r->service,
                                .nservices = 1};
    return &r->msg;
}

/* Registers the fake worker as a hello worker and waits for the WELCOME. */
static void register_hello(fx *x)
{
    ready_msg r;
    send_msg(x, hello_ready(&r, BR_KIND_IO));
    assert_true(run_until(x, &x->got[BR_MSG_WELCOME], 1));
}

static bool has_route(gw_router *router, const char *path)
{
    gw_route_match m;
    return gw_router_match(router, "GET", path, strlen(path), &m, NULL, 0) == 0;
}

static void ready_is_welcomed_and_its_routes_appear(void **state)
{
    fx *x = *state;
    assert_false(gw_broker_ready(x->broker));
    assert_false(has_route(x->router, "/hello"));
    register_hello(x);
    assert_int_equal(strlen(x->text), 32);
    assert_int_equal(x->welcome_heartbeat, HEARTBEAT_MS);
    assert_true(has_route(x->router, "/hello"));
    assert_true(gw_broker_ready(x->broker));
    gw_broker_stats st;
    gw_broker_stats_get(x->broker, &st);
    assert_int_equal(st.workers, 1);
    assert_int_equal(st.workers_joined, 1);
    assert_int_equal(st.services, 1);
}

static void message_from_unregistered_peer_gets_goodbye(void **state)
{
    fx *x = *state;
    br_msg hb = {.type = BR_MSG_HEARTBEAT};
    send_msg(x, &hb);
    assert_true(run_until(x, &x->got[BR_MSG_GOODBYE], 1));
    assert_string_equal(x->text, "unknown worker");
    /* The peer then registers like any worker. */
    register_hello(x);
}

static void ready_mixing_kinds_is_refused_with_reason(void **state)
{
    fx *x = *state;
    ready_msg r;
    send_msg(x, hello_ready(&r, BR_KIND_CPU));
    assert_true(run_until(x, &x->got[BR_MSG_GOODBYE], 1));
    assert_non_null(strstr(x->text, "mixed kinds"));
    assert_false(has_route(x->router, "/hello"));
    gw_broker_stats st;
    gw_broker_stats_get(x->broker, &st);
    assert_int_equal(st.workers_refused, 1);
    assert_int_equal(st.workers, 0);
}

static void garbage_is_counted_and_dropped(void **state)
{
    fx *x = *state;
    static const uint8_t junk[] = {0xc1, 0xff, 0x00, 'j', 'u', 'n', 'k'};
    static const uint8_t wrong_version[] = {0x92, 0x07, 0x06}; /* [7, HEARTBEAT] */
    static const uint8_t truncated[] = {0x93, 0x01, 0x04};     /* REPLY missing fields */
    assert_int_equal(br_zsock_send(x->dealer, NULL, 0, junk, sizeof(junk)), 0);
    assert_int_equal(br_zsock_send(x->dealer, NULL, 0, wrong_version, sizeof(wrong_version)), 0);
    assert_int_equal(br_zsock_send(x->dealer, NULL, 0, truncated, sizeof(truncated)), 0);
    register_hello(x);
    gw_broker_stats st;
    gw_broker_stats_get(x->broker, &st);
    assert_int_equal(st.bad_messages, 3);
    assert_int_equal(st.workers, 1);
}

static void stale_reply_is_dropped_without_credit(void **state)
{
    fx *x = *state;
    register_hello(x);
    br_msg reply = {.type = BR_MSG_REPLY, .u.reply = {.id = 12345, .status = 200}};
    send_msg(x, &reply);
    /* The HEARTBEAT that follows is proof the REPLY before it was handled. */
    br_msg hb = {.type = BR_MSG_HEARTBEAT};
    send_msg(x, &hb);
    assert_true(run_until(x, &x->got[BR_MSG_HEARTBEAT], 1));
    gw_broker_stats st;
    gw_broker_stats_get(x->broker, &st);
    assert_int_equal(st.stale_replies, 1);
    assert_int_equal(st.bad_messages, 0);
}

static void silent_worker_is_dropped_but_its_routes_stay(void **state)
{
    fx *x = *state;
    register_hello(x);
    /* The broker heartbeats the quiet worker, then gives up on it. */
    assert_true(run_until(x, &x->got[BR_MSG_HEARTBEAT], 1));
    assert_true(run_until_dead(x));
    gw_broker_stats st;
    gw_broker_stats_get(x->broker, &st);
    assert_int_equal(st.workers, 0);
    assert_false(gw_broker_ready(x->broker));
    assert_true(has_route(x->router, "/hello"));
    /* Its next message is from an unknown peer again. */
    br_msg hb = {.type = BR_MSG_HEARTBEAT};
    send_msg(x, &hb);
    assert_true(run_until(x, &x->got[BR_MSG_GOODBYE], 1));
    assert_string_equal(x->text, "unknown worker");
}

static void idle_worker_saying_goodbye_is_forgotten(void **state)
{
    fx *x = *state;
    register_hello(x);
    br_msg bye = {.type = BR_MSG_GOODBYE, .u.goodbye = {.reason = br_str_c("draining")}};
    send_msg(x, &bye);
    /* The GOODBYE is acknowledged, so the worker knows no more work will come. */
    assert_true(run_until(x, &x->got[BR_MSG_GOODBYE], 1));
    assert_string_equal(x->text, "drain acknowledged");
    br_msg hb = {.type = BR_MSG_HEARTBEAT};
    send_msg(x, &hb);
    /* Forgotten at once (nothing in flight): the HEARTBEAT gets "unknown worker". */
    assert_true(run_until(x, &x->got[BR_MSG_GOODBYE], 2));
    assert_string_equal(x->text, "unknown worker");
    assert_false(gw_broker_ready(x->broker));
}

static void shutdown_says_goodbye_to_workers(void **state)
{
    fx *x = *state;
    register_hello(x);
    gw_broker_shutdown(x->broker, on_closed, x);
    assert_true(run_until(x, &x->got[BR_MSG_GOODBYE], 1));
    assert_string_equal(x->text, "gateway shutting down");
    assert_true(run_until(x, &x->closed, 1));
    assert_false(gw_broker_ready(x->broker));
}

/* Sends CALL(id) for method + path, as a worker calling a service. */
static void send_call(fx *x, uint64_t id, const char *method, const char *path)
{
    br_msg call = {
        .type = BR_MSG_CALL,
        .u.request = {
            .id = id, .method = br_str_c(method), .path = br_str_c(path), .deadline_ms = 5000}};
    send_msg(x, &call);
}

static void call_is_routed_to_the_service_and_answered_with_the_callers_id(void **state)
{
    fx *x = *state;
    register_hello(x);
    /* The fake worker calls its own service: it gets the REQUEST, answers it, and
     * receives the answer as REPLY to its CALL. */
    send_call(x, 777, "GET", "/hello");
    assert_true(run_until(x, &x->got[BR_MSG_REQUEST], 1));
    uint64_t request_id = x->last_id;
    assert_int_not_equal(request_id, 777);
    br_msg reply = {.type = BR_MSG_REPLY,
                    .u.reply = {.id = request_id,
                                .status = 201,
                                .content_type = br_str_c("text/plain"),
                                .body = br_str_c("made")}};
    send_msg(x, &reply);
    assert_true(run_until(x, &x->got[BR_MSG_REPLY], 1));
    assert_int_equal(x->last_id, 777);
    assert_int_equal(x->reply_status, 201);
    assert_string_equal(x->reply_body, "made");
}

static void call_to_unknown_or_gateway_route_gets_404_and_wrong_method_405(void **state)
{
    fx *x = *state;
    register_hello(x);
    send_call(x, 1, "GET", "/nowhere");
    assert_true(run_until(x, &x->got[BR_MSG_REPLY], 1));
    assert_int_equal(x->last_id, 1);
    assert_int_equal(x->reply_status, 404);
    /* {"detail": "Not Found"} as msgpack: workers never parse JSON. */
    assert_string_equal(x->reply_body, "\x81\xa6"
                                       "detail\xa9"
                                       "Not Found");
    send_call(x, 2, "DELETE", "/hello");
    assert_true(run_until(x, &x->got[BR_MSG_REPLY], 2));
    assert_int_equal(x->reply_status, 405);
}

static void cancelled_call_is_cancelled_at_the_target_and_never_answered(void **state)
{
    fx *x = *state;
    register_hello(x);
    send_call(x, 5, "GET", "/hello");
    assert_true(run_until(x, &x->got[BR_MSG_REQUEST], 1));
    uint64_t request_id = x->last_id;
    br_msg cancel = {.type = BR_MSG_CANCEL, .u.cancel = {.id = 5}};
    send_msg(x, &cancel);
    assert_true(run_until(x, &x->got[BR_MSG_CANCEL], 1));
    assert_int_equal(x->last_id, request_id);
    /* The target's 499, then a call that is answered at once: had the 499 been
     * forwarded, it would arrive first. */
    br_msg reply = {.type = BR_MSG_REPLY, .u.reply = {.id = request_id, .status = 499}};
    send_msg(x, &reply);
    send_call(x, 6, "GET", "/nowhere");
    assert_true(run_until(x, &x->got[BR_MSG_REPLY], 1));
    assert_int_equal(x->last_id, 6);
    gw_broker_stats st;
    gw_broker_stats_get(x->broker, &st);
    assert_int_equal(st.stale_replies, 1);
    assert_int_equal(st.inflight, 0);
}

/* A worker that reads REQUESTs batched (feature 8) gets the REQUESTs of one loop turn
 * in one WS_BATCH, and a CANCEL for one of them never overtakes the batch.  Capacity 1
 * holds calls 2 and 3 in the queue; CREDIT(2) dispatches both in one turn; the CANCEL
 * of call 2, sent right after the CREDIT, is read in that same turn when both have
 * arrived (the pause lets them), and then must go after the batch. */
static void batched_requests_are_not_overtaken_by_a_cancel(void **state)
{
    fx *x = *state;
    ready_msg r;
    br_msg *ready = hello_ready(&r, BR_KIND_IO);
    ready->u.ready.capacity = 1;
    ready->u.ready.features = BR_FEATURE_WS_BATCH | BR_FEATURE_REQ_BATCH;
    send_msg(x, ready);
    assert_true(run_until(x, &x->got[BR_MSG_WELCOME], 1));
    send_call(x, 1, "GET", "/hello");
    assert_true(run_until(x, &x->got[BR_MSG_REQUEST], 1));
    send_call(x, 2, "GET", "/hello");
    send_call(x, 3, "GET", "/hello");
    assert_true(run_until_stat(x, offsetof(gw_broker_stats, queued), 2));
    int before = x->nseq;
    send_msg(x, &(br_msg){.type = BR_MSG_CREDIT, .u.credit = {.credit = 2}});
    send_msg(x, &(br_msg){.type = BR_MSG_CANCEL, .u.cancel = {.id = 2}});
    uv_sleep(50);
    assert_true(run_until(x, &x->got[BR_MSG_CANCEL], 1));
    /* WS_BATCH [REQUEST, REQUEST], then the CANCEL of the first of them (HEARTBEATs
     * aside). */
    uint8_t got[4];
    uint64_t ids[4];
    int n = 0;
    for (int i = before; i < x->nseq; i++) {
        if (x->seq[i] == BR_MSG_HEARTBEAT)
            continue;
        assert_true(n < 4);
        got[n] = x->seq[i];
        ids[n++] = x->seq_id[i];
    }
    assert_int_equal(n, 4);
    assert_int_equal(got[0], BR_MSG_WS_BATCH);
    assert_int_equal(got[1], BR_MSG_REQUEST);
    assert_int_equal(got[2], BR_MSG_REQUEST);
    assert_int_equal(got[3], BR_MSG_CANCEL);
    assert_int_equal(ids[3], ids[1]);
    gw_broker_stats st;
    gw_broker_stats_get(x->broker, &st);
    assert_int_equal(st.batches_out, 1);
    assert_int_equal(st.batched_out, 2);
}

/* Zero never stands for a default: a configuration missing a limit is refused. */
static void config_with_a_zero_limit_or_no_endpoint_is_refused(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    gw_router *r = gw_router_new();
    gw_broker_config cfg;
    gw_broker_config_defaults(&cfg);
    cfg.queue_limit = 0;
    assert_null(gw_broker_new(&loop, r, &cfg));
    gw_broker_config_defaults(&cfg);
    cfg.limits.max_pairs = 0;
    assert_null(gw_broker_new(&loop, r, &cfg));
    gw_broker_config_defaults(&cfg);
    cfg.endpoint = "";
    assert_null(gw_broker_new(&loop, r, &cfg));
    assert_null(gw_broker_new(&loop, r, NULL));
    gw_broker_config_defaults(&cfg);
    cfg.retry_min_budget_ms = 0; /* a choice, not a missing limit */
    gw_broker *b = gw_broker_new(&loop, r, &cfg);
    assert_non_null(b);
    gw_broker_destroy(&b);
    gw_router_destroy(&r);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* The fake worker calls its own GET /hello as `call_id`, answers the REQUEST with a
 * stream start and one chunk of `len` bytes once the broker granted a window; returns
 * the REQUEST's id. */
static uint64_t gathered_call(fx *x, uint64_t call_id, size_t len)
{
    int requests = x->got[BR_MSG_REQUEST], windows = x->got[BR_MSG_STREAM_WINDOW];
    send_call(x, call_id, "GET", "/hello");
    assert_true(run_until(x, &x->got[BR_MSG_REQUEST], requests + 1));
    uint64_t id = x->last_id;
    br_msg start = {.type = BR_MSG_STREAM_START,
                    .u.stream_start = {.id = id, .status = 200, .content_type = br_str_c("a/b")}};
    send_msg(x, &start);
    assert_true(run_until(x, &x->got[BR_MSG_STREAM_WINDOW], windows + 1));
    static char bytes[100 * 1024];
    assert_true(len <= sizeof(bytes));
    br_msg chunk = {.type = BR_MSG_STREAM_CHUNK,
                    .u.stream_chunk = {.id = id, .data = {bytes, (uint32_t)len}}};
    send_msg(x, &chunk);
    return id;
}

/* Runs the loop until the broker counts between lo and hi gathered bytes (or the
 * guard fires); returns the count. */
static uint64_t run_until_gathered(fx *x, uint64_t lo, uint64_t hi)
{
    gw_broker_stats st;
    x->timed_out = false;
    uv_timer_start(&x->guard, on_guard, GUARD_MS, 0);
    for (;;) {
        gw_broker_stats_get(x->broker, &st);
        if ((st.call_gather_bytes >= lo && st.call_gather_bytes <= hi) || x->timed_out)
            break;
        uv_run(&x->loop, UV_RUN_ONCE);
    }
    uv_timer_stop(&x->guard);
    return st.call_gather_bytes;
}

/* Bytes of a gathered answer's start (its struct and copied strings): well under this. */
#define HEAD_SLACK 512u

static void gathered_calls_past_the_total_are_refused_and_every_byte_comes_back(void **state)
{
    fx *x = *state;
    register_hello(x);
    /* Two calls of 60,000 bytes: 64 KiB allocated for each, plus its start. */
    uint64_t a = gathered_call(x, 1, 60000);
    uint64_t held = run_until_gathered(x, 64 * KIB, 64 * KIB + HEAD_SLACK);
    assert_in_range(held, 64 * KIB, 64 * KIB + HEAD_SLACK);
    gathered_call(x, 2, 60000);
    held = run_until_gathered(x, 128 * KIB, 128 * KIB + 2 * HEAD_SLACK);
    assert_in_range(held, 128 * KIB, 128 * KIB + 2 * HEAD_SLACK);
    /* A third of 80,000 finds about 72 KiB left under 200 KiB: 503 naming the option,
     * CANCEL to its stream, and what it held given back. */
    int replies = x->got[BR_MSG_REPLY], cancels = x->got[BR_MSG_CANCEL];
    uint64_t c = gathered_call(x, 3, 80000);
    assert_true(run_until(x, &x->got[BR_MSG_REPLY], replies + 1));
    assert_int_equal(x->last_id, 3);
    assert_int_equal(x->reply_status, 503);
    assert_non_null(strstr(x->reply_body, "--call-gather-total"));
    assert_true(run_until(x, &x->got[BR_MSG_CANCEL], cancels + 1));
    assert_int_equal(x->last_id, c);
    assert_int_equal(run_until_gathered(x, 0, held), held);
    gw_broker_stats st;
    gw_broker_stats_get(x->broker, &st);
    assert_int_equal(st.call_gather_refused, 1);
    /* The first ends cleanly: its caller gets it whole, its bytes come back. */
    br_msg end = {.type = BR_MSG_STREAM_END, .u.stream_end = {.id = a}};
    send_msg(x, &end);
    assert_true(run_until(x, &x->got[BR_MSG_REPLY], replies + 2));
    assert_int_equal(x->last_id, 1);
    assert_int_equal(x->reply_status, 200);
    assert_in_range(run_until_gathered(x, 0, 64 * KIB + HEAD_SLACK), 64 * KIB,
                    64 * KIB + HEAD_SLACK);
    /* The second's caller cancels: nothing is gathered any more. */
    br_msg cancel = {.type = BR_MSG_CANCEL, .u.cancel = {.id = 2}};
    send_msg(x, &cancel);
    assert_int_equal(run_until_gathered(x, 0, 0), 0);
    /* A fourth is left gathering: shutdown (teardown) gives its bytes back, which
     * gw_broker_destroy asserts in this build. */
    gathered_call(x, 4, 1000);
    assert_in_range(run_until_gathered(x, 64 * KIB, 64 * KIB + HEAD_SLACK), 64 * KIB,
                    64 * KIB + HEAD_SLACK);
}

/* What a gathered CALL answer's buffer grows to (call_stream.c): the seam of the
 * --call-gather-total accounting, which counts exactly these capacities. */
#define GATHER_MAX (8u * 1024 * KIB + 1) /* --call-gather-max + 1, as call_stream.c */
#define TOTAL      (1024u * KIB)

static void gathered_body_grows_by_doubling_from_64_kib(void **state)
{
    (void)state;
    assert_int_equal(gw__gather_grow(0, 0, 100, GATHER_MAX, 0, TOTAL), 64 * KIB);
    assert_int_equal(gw__gather_grow(64 * KIB, 64 * KIB, 1, GATHER_MAX, 0, TOTAL), 128 * KIB);
    /* A chunk bigger than the doubling gets exactly what it needs. */
    assert_int_equal(gw__gather_grow(0, 0, 100000, GATHER_MAX, 0, TOTAL), 100000);
    /* Never past the per-call bound (one byte past --call-gather-max). */
    assert_int_equal(gw__gather_grow(5000 * KIB, 5000 * KIB, 1, GATHER_MAX, 0, 64 * TOTAL),
                     GATHER_MAX);
}

static void gathered_body_near_the_total_takes_the_room_left(void **state)
{
    (void)state;
    /* 400,000 bytes gathered by other calls: doubling to 1 MiB does not fit, what is
     * left (648,576) does, and holds the chunk. */
    assert_int_equal(gw__gather_grow(500000, 512 * KIB, 100000, GATHER_MAX, 400000, TOTAL),
                     TOTAL - 400000);
}

static void gathered_body_past_the_total_is_refused(void **state)
{
    (void)state;
    /* 660,000 bytes needed, 648,576 left. */
    assert_int_equal(gw__gather_grow(600000, TOTAL - 400000, 60000, GATHER_MAX, 400000, TOTAL), 0);
    /* Nothing left at all, or a count past the total. */
    assert_int_equal(gw__gather_grow(0, 0, 1, GATHER_MAX, TOTAL, TOTAL), 0);
    assert_int_equal(gw__gather_grow(0, 0, 1, GATHER_MAX, TOTAL + 1, TOTAL), 0);
    /* Exactly the room left is enough. */
    assert_int_equal(gw__gather_grow(0, 0, 10, GATHER_MAX, TOTAL - 10, TOTAL), 10);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(ready_is_welcomed_and_its_routes_appear),
        T(message_from_unregistered_peer_gets_goodbye),
        T(ready_mixing_kinds_is_refused_with_reason),
        T(garbage_is_counted_and_dropped),
        T(stale_reply_is_dropped_without_credit),
        T(silent_worker_is_dropped_but_its_routes_stay),
        T(idle_worker_saying_goodbye_is_forgotten),
        T(shutdown_says_goodbye_to_workers),
        T(call_is_routed_to_the_service_and_answered_with_the_callers_id),
        T(call_to_unknown_or_gateway_route_gets_404_and_wrong_method_405),
        T(cancelled_call_is_cancelled_at_the_target_and_never_answered),
        T(batched_requests_are_not_overtaken_by_a_cancel),
        cmocka_unit_test(config_with_a_zero_limit_or_no_endpoint_is_refused),
        cmocka_unit_test_setup_teardown(
            gathered_calls_past_the_total_are_refused_and_every_byte_comes_back, setup_gather,
            teardown),
        cmocka_unit_test(gathered_body_grows_by_doubling_from_64_kib),
        cmocka_unit_test(gathered_body_near_the_total_takes_the_room_left),
        cmocka_unit_test(gathered_body_past_the_total_is_refused),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
