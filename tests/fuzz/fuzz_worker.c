/*
 * fuzz_worker.c - the worker runtime's decode and dispatch of what the broker sends
 * (workers/src/worker.c, dispatch.c, request.c), with real services.
 *
 * One real worker with the shipped hello, echo and hash services (I/O and CPU routes:
 * hello and echo; hash is CPU and runs alone, so it is left out) runs on this thread
 * for the whole run, connected to a ROUTER of ours over inproc://, the way
 * barista/testing.h drives one: READY is answered with WELCOME, and the loop is turned
 * with UV_RUN_NOWAIT / UV_RUN_ONCE between our sends.  Nothing was added to the
 * production sources for it.
 *
 * Input: a sequence of messages, each a 2-byte little-endian length (low 12 bits)
 * and that many bytes (cut short at the end), sent as they are to the worker.  WELCOME
 * and GOODBYE (by their peeked type) are not sent: they restart the session, which is
 * the broker target's business and would make every input slow.
 *
 * WELCOME confirms WS_BATCH and REQ_BATCH (PROTOCOL.md 5.16), so REQUESTs may come in a
 * WS_BATCH and REPLYs leave in one.
 *
 * Checked per input: no crash, leak or UB; every REQUEST that decodes (by our own
 * decoder; inside a WS_BATCH, up to the first message that ends the batch) gets at
 * least one REPLY with its id; no REPLY carries an id we never sent;
 * and after the input a well-formed probe (GET /hello) is still answered 200, so a
 * message never leaves the worker deaf.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>
#include <zmq.h>

#include "barista/proto.h"
#include "barista/ws_batch.h"
#include "fuzz.h"
#include "services.h"
#include "worker_int.h"

#define FZ_ENDPOINT "inproc://fuzz-worker"
#define FZ_MAX_MSG  4095
#define FZ_MAX_IDS  256
/* How long the answers of one input may take (wall clock; a hang is a finding). */
#define FZ_WAIT_MS 10000u

static struct {
    bool ready;
    void *zctx, *router;
    br_worker *w;
    uint8_t ident[256];
    size_t ident_len;
    bool welcomed;
    br_decoder *dec, *check;
    br_buf out;
    uv_timer_t wake;
    uint64_t want[FZ_MAX_IDS]; /* REQUEST ids sent and not yet answered */
    size_t nwant;
    uint64_t sent[FZ_MAX_IDS]; /* every REQUEST id of this input */
    size_t nsent;
    uint64_t probe_id;
    uint16_t probe_status;
} fz;

static void fail(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz_worker: %s: %s\n", what, detail);
    abort();
}

static void send_raw(const void *data, size_t len)
{
    if (zmq_send(fz.router, fz.ident, fz.ident_len, ZMQ_SNDMORE) < 0 ||
        zmq_send(fz.router, data, len, 0) < 0)
        fail("zmq_send", zmq_strerror(zmq_errno()));
}

static void send_msg(const br_msg *m)
{
    fz.out.len = 0;
    if (br_msg_encode(m, &fz.out) != 0)
        fail("br_msg_encode", "failed");
    send_raw(fz.out.data, fz.out.len);
}

static void on_message(const void *data, size_t len);

static int on_batched(void *arg, const br_msg *m, br_str bytes)
{
    (void)arg;
    (void)m;
    on_message(bytes.ptr, bytes.len);
    return 0;
}

static void on_message(const void *data, size_t len)
{
    br_msg m;
    if (br_decoder_decode(fz.dec, data, len, &m) != 0)
        fail("worker", "sent a message that does not decode");
    if (m.type == BR_MSG_WS_BATCH) {
        /* The worker's batches are whole: every message in them decodes. */
        if (br_ws_batch_each(fz.dec, m.u.ws_batch.messages, on_batched, NULL) != 0)
            fail("worker", "sent a WS_BATCH that does not split into its messages");
    } else if (m.type == BR_MSG_READY && !fz.welcomed) {
        br_msg welcome = {.type = BR_MSG_WELCOME};
        welcome.u.welcome.broker_id = br_str_c("fuzz");
        welcome.u.welcome.heartbeat_ms = 3600000u;
        welcome.u.welcome.features = BR_FEATURE_WS_BATCH | BR_FEATURE_REQ_BATCH;
        send_msg(&welcome);
        fz.welcomed = true;
    } else if (m.type == BR_MSG_REPLY) {
        uint64_t id = m.u.reply.id;
        if (id == fz.probe_id && id) {
            fz.probe_status = m.u.reply.status;
            return;
        }
        bool known = false;
        for (size_t i = 0; i < fz.nsent; i++)
            known = known || fz.sent[i] == id;
        if (!known)
            fail("worker", "a REPLY for an id never sent");
        for (size_t i = 0; i < fz.nwant; i++)
            if (fz.want[i] == id)
                fz.want[i] = fz.want[--fz.nwant];
    } else if (m.type == BR_MSG_CALL) {
        /* Answer every call 404, as a broker without the route would. */
        br_msg r = {.type = BR_MSG_REPLY};
        r.u.reply.id = m.u.request.id;
        r.u.reply.status = 404;
        send_msg(&r);
    }
}

/* A REQUEST id we send: its REPLY is wanted (once, however often the id repeats). */
static void track(uint64_t id)
{
    bool dup = false;
    for (size_t i = 0; i < fz.nsent; i++)
        dup = dup || fz.sent[i] == id;
    fz.sent[fz.nsent++] = id;
    if (!dup)
        fz.want[fz.nwant++] = id;
}

static int track_batched(void *arg, const br_msg *m, br_str bytes)
{
    (void)arg;
    (void)bytes;
    if (m->type == BR_MSG_REQUEST)
        track(m->u.request.id);
    return 0;
}

/* Messages in a batch's bytes (whole msgpack values, whatever they are). */
static size_t count_batch(br_str rest)
{
    size_t n = 0;
    br_str one;
    while (br_ws_batch_next(&rest, &one) == 1)
        n++;
    return n;
}

static void drain(void)
{
    for (;;) {
        zmq_msg_t ident, body;
        zmq_msg_init(&ident);
        if (zmq_msg_recv(&ident, fz.router, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&ident);
            return;
        }
        zmq_msg_init(&body);
        if (zmq_msg_more(&ident) && zmq_msg_recv(&body, fz.router, 0) >= 0) {
            if (zmq_msg_size(&ident) <= sizeof(fz.ident)) {
                memcpy(fz.ident, zmq_msg_data(&ident), zmq_msg_size(&ident));
                fz.ident_len = zmq_msg_size(&ident);
            }
            on_message(zmq_msg_data(&body), zmq_msg_size(&body));
        }
        zmq_msg_close(&body);
        zmq_msg_close(&ident);
    }
}

static void on_wake(uv_timer_t *t)
{
    (void)t;
}

/* Turns the worker's loop until *done says so, or fails after FZ_WAIT_MS. */
static void pump(bool (*done)(void), const char *what)
{
    uint64_t start = uv_hrtime();
    for (;;) {
        drain();
        if (done())
            return;
        if ((uv_hrtime() - start) / 1000000u > FZ_WAIT_MS)
            fail("no answer", what);
        uv_timer_start(&fz.wake, on_wake, 5, 0);
        uv_run(&fz.w->loop, UV_RUN_ONCE);
    }
}

static bool welcomed(void)
{
    return fz.welcomed;
}

static bool all_answered(void)
{
    return fz.nwant == 0 && fz.probe_status != 0;
}

static void setup(void)
{
    static const br_service_spec *const services[] = {&br_hello_service, &br_echo_service};
    int zero = 0;
    fz.zctx = zmq_ctx_new();
    fz.router = fz.zctx ? zmq_socket(fz.zctx, ZMQ_ROUTER) : NULL;
    fz.dec = br_decoder_new(NULL);
    fz.check = br_decoder_new(NULL);
    if (!fz.router || !fz.dec || !fz.check ||
        zmq_setsockopt(fz.router, ZMQ_LINGER, &zero, sizeof(zero)) != 0 ||
        zmq_bind(fz.router, FZ_ENDPOINT) != 0)
        fail("setup", "router");
    br_worker_options o = {.connect = FZ_ENDPOINT,
                           .worker_id = "fuzz-worker",
                           .concurrency = 64,
                           .heartbeat_ms = 3600000u,
                           .drain_timeout_ms = 1000};
    fz.w = br_worker_new(services, 2, &o);
    if (!fz.w || br__worker_open(fz.w, fz.zctx) != 0 || fz.w->closing)
        fail("setup", "worker");
    uv_timer_init(&fz.w->loop, &fz.wake);
    pump(welcomed, "READY");
    fz.ready = true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!fz.ready)
        setup();
    fz.nwant = fz.nsent = 0;
    fz.probe_status = 0;
    const uint8_t *p = data, *end = data + size;
    while (end - p >= 2) {
        size_t len = (size_t)(p[0] | (p[1] << 8)) & FZ_MAX_MSG;
        p += 2;
        if (len > (size_t)(end - p))
            len = (size_t)(end - p);
        const uint8_t *m = p;
        p += len;
        unsigned version = 0, type = 0;
        br_msg_peek(m, len, &version, &type);
        if (type == BR_MSG_WELCOME || type == BR_MSG_GOODBYE)
            continue;
        br_msg d;
        int rc = br_decoder_decode(fz.check, m, len, &d);
        if (rc == 0 && d.type == BR_MSG_WS_BATCH) {
            /* What the worker will take out of it: the messages up to the first bad one. */
            if (count_batch(d.u.ws_batch.messages) > FZ_MAX_IDS - fz.nsent)
                continue; /* beyond what we track: not sent */
            br_ws_batch_each(fz.check, d.u.ws_batch.messages, track_batched, NULL);
        } else if (rc == 0 && d.type == BR_MSG_REQUEST && fz.nsent < FZ_MAX_IDS) {
            track(d.u.request.id);
        } else if (fz.nsent == FZ_MAX_IDS) {
            continue; /* beyond what we track: not sent */
        }
        send_raw(m, len);
        drain();
        uv_run(&fz.w->loop, UV_RUN_NOWAIT);
    }
    /* The probe: an id no input uses (ids over 2^62 are reserved for it). */
    br_msg probe = {.type = BR_MSG_REQUEST};
    br_request *r = &probe.u.request;
    fz.probe_id++;
    fz.probe_id |= 1ull << 62;
    for (size_t i = 0; i < fz.nsent; i++)
        if (fz.sent[i] == fz.probe_id)
            fz.probe_id++;
    r->id = fz.probe_id;
    r->service = br_str_c("hello");
    r->route = br_str_c("/hello");
    r->method = br_str_c("GET");
    r->path = br_str_c("/hello");
    r->deadline_ms = 30000;
    send_msg(&probe);
    pump(all_answered, "a REQUEST or the probe");
    if (fz.probe_status != 200)
        fail("probe", "GET /hello not answered 200");
    return 0;
}
