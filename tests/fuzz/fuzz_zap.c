/*
 * fuzz_zap.c - the broker's ZAP handler (gateway/src/broker/zap.c) answering
 * arbitrary ZAP requests.
 *
 * One real gw_zap is bound to inproc://zeromq.zap.01 in a ZeroMQ context of its own
 * for the whole run, with two authorised certificates (one named "alice", one with no
 * name) in a CZMQ certificate store, as gw_curve_load leaves them.  The
 * target is a REQ socket in the same context, so each request takes the path libzmq's
 * own handshake requests take: the REP socket, br_zsock's drain from the loop, and
 * on_request.  The loop is turned with UV_RUN_NOWAIT until the answer is there.
 *
 * Input: a sequence of requests.  Each starts with a byte whose low 3 bits + 1 are its
 * frame count (1-8: libzmq never sends more than 7, and br_zsock keeps at most 8);
 * each frame is a length byte L followed by L bytes (cut short at the end of the
 * input), or for L >= 0xF0 a stock frame: "1.0", "barista", "CURVE", the named key,
 * the unnamed key, a key no one authorised, "NULL", "PLAIN", else empty.
 *
 * Checked for every request, against RFC 27 and zap.h rather than against zap.c's
 * code: exactly one answer of six frames arrives; version "1.0"; the request id is
 * the request's second frame (empty when there is none); the status is 200 exactly
 * when the request is a well-formed 7-frame CURVE request for an authorised key, 500
 * when it is not a 7-frame version-1.0 request, else 400; a 200 carries the key's Z85
 * text as user id (the broker looks the certificate up by it) and every other answer
 * none; the
 * metadata is empty; and the refusal counter counts exactly the 400s.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>
#include <zmq.h>

#include <barista/curve.h>
#include <czmq.h>

#include "fuzz.h"
#include "log.h"
#include "zap.h"

/* Loop turns an answer may take before it counts as lost. */
#define FZ_MAX_TURNS  2000
#define FZ_MAX_FRAMES 8
#define FZ_FRAME_MAX  300

static struct {
    bool ready;
    uv_loop_t loop;
    void *zctx;
    void *req;
    gw_curve curve;
    gw_zap *zap;
    uint8_t named[BR_CURVE_KEY_LEN], unnamed[BR_CURVE_KEY_LEN], stranger[BR_CURVE_KEY_LEN];
} fz;

static void fail(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz_zap: %s: %s\n", what, detail);
    abort();
}

/* Authorises the public key raw, as a certificate named `name` ("" for none). */
static void add_key(const uint8_t raw[BR_CURVE_KEY_LEN], const char *name)
{
    uint8_t none[BR_CURVE_KEY_LEN] = {0};
    zcert_t *cert = zcert_new_from(raw, none);
    if (!cert)
        fail("setup", "zcert_new_from");
    if (*name)
        zcert_set_meta(cert, "name", "%s", name);
    zcertstore_insert(fz.curve.clients, &cert);
    fz.curve.nclients++;
}

static void setup(void)
{
    gw_log_configure(GW_LOG_ERROR, false);
    for (int i = 0; i < BR_CURVE_KEY_LEN; i++) {
        fz.named[i] = (uint8_t)(i + 1);
        fz.unnamed[i] = (uint8_t)(0x80 + i);
        fz.stranger[i] = (uint8_t)(0x40 + i);
    }
    if (uv_loop_init(&fz.loop) != 0 || !(fz.zctx = zmq_ctx_new()) ||
        !(fz.curve.clients = zcertstore_new(NULL)))
        fail("setup", "loop, context or certificate store");
    fz.curve.on = true;
    add_key(fz.named, "alice");
    add_key(fz.unnamed, "");
    if (!(fz.zap = gw_zap_new(&fz.loop, fz.zctx, &fz.curve)))
        fail("setup", "gw_zap_new");
    int zero = 0;
    if (!(fz.req = zmq_socket(fz.zctx, ZMQ_REQ)) ||
        zmq_setsockopt(fz.req, ZMQ_LINGER, &zero, sizeof(zero)) != 0 ||
        zmq_connect(fz.req, GW_ZAP_ENDPOINT) != 0)
        fail("setup", "REQ socket");
    fz.ready = true;
}

typedef struct {
    const uint8_t *data;
    size_t len;
} frame;

/* Reads one frame of the input at *p (see the top). */
static frame next_frame(const uint8_t **p, const uint8_t *end)
{
    static const char *const stock[] = {"1.0", "barista", "CURVE"};
    frame f = {(const uint8_t *)"", 0};
    if (*p >= end)
        return f;
    unsigned l = *(*p)++;
    if (l < 0xF0) {
        size_t left = (size_t)(end - *p);
        f.data = *p;
        f.len = l < left ? l : left;
        *p += f.len;
        return f;
    }
    switch (l - 0xF0) {
    case 0:
    case 1:
    case 2:
        f.data = (const uint8_t *)stock[l - 0xF0];
        f.len = strlen(stock[l - 0xF0]);
        break;
    case 3:
        f.data = fz.named, f.len = BR_CURVE_KEY_LEN;
        break;
    case 4:
        f.data = fz.unnamed, f.len = BR_CURVE_KEY_LEN;
        break;
    case 5:
        f.data = fz.stranger, f.len = BR_CURVE_KEY_LEN;
        break;
    case 6:
        f.data = (const uint8_t *)"NULL", f.len = 4;
        break;
    case 7:
        f.data = (const uint8_t *)"PLAIN", f.len = 5;
        break;
    default:
        break;
    }
    return f;
}

static bool is(const frame *f, const char *s)
{
    return f->len == strlen(s) && memcmp(f->data, s, f->len) == 0;
}

/* Sends one request and checks its answer. */
static void one_request(const frame *f, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (zmq_send(fz.req, f[i].data, f[i].len, (i + 1 < n ? ZMQ_SNDMORE : 0) | ZMQ_DONTWAIT) < 0)
            fail("zmq_send", zmq_strerror(zmq_errno()));

    /* What RFC 27 and zap.h say the answer must be. */
    const char *status = "400", *user = "";
    char z85[BR_CURVE_Z85_LEN + 1];
    if (n != 7 || !is(&f[0], "1.0")) {
        status = "500";
    } else if (is(&f[5], "CURVE") && f[6].len == BR_CURVE_KEY_LEN) {
        if (memcmp(f[6].data, fz.named, BR_CURVE_KEY_LEN) == 0 ||
            memcmp(f[6].data, fz.unnamed, BR_CURVE_KEY_LEN) == 0) {
            br_curve_key_z85(f[6].data, z85);
            status = "200", user = z85;
        }
    }
    frame reqid = n >= 2 ? f[1] : (frame){(const uint8_t *)"", 0};
    uint64_t refused = gw_zap_refused(fz.zap);

    static uint8_t got[FZ_MAX_FRAMES + 1][FZ_FRAME_MAX];
    int got_len[FZ_MAX_FRAMES + 1];
    int nf = 0;
    for (int turn = 0;; turn++) {
        int r = zmq_recv(fz.req, got[nf], FZ_FRAME_MAX, ZMQ_DONTWAIT);
        if (r >= 0) {
            got_len[nf++] = r;
            int more = 0;
            size_t ml = sizeof(more);
            zmq_getsockopt(fz.req, ZMQ_RCVMORE, &more, &ml);
            if (!more)
                break;
            if (nf > FZ_MAX_FRAMES)
                fail("answer", "more than 8 frames");
            continue;
        }
        if (zmq_errno() != EAGAIN)
            fail("zmq_recv", zmq_strerror(zmq_errno()));
        if (turn > FZ_MAX_TURNS)
            fail("answer", "no answer to a request");
        uv_run(&fz.loop, UV_RUN_NOWAIT);
    }
#define FRAME_IS(i, p, l) (got_len[i] == (int)(l) && memcmp(got[i], p, l) == 0)
    if (nf != 6)
        fail("answer", "not six frames");
    if (!FRAME_IS(0, "1.0", 3))
        fail("answer", "version is not 1.0");
    if (!FRAME_IS(1, reqid.data, reqid.len))
        fail("answer", "request id not echoed");
    if (!FRAME_IS(2, status, 3)) {
        fprintf(stderr, "fuzz_zap: expected %s, got %.*s\n", status, got_len[2], (char *)got[2]);
        fail("answer", "wrong status code");
    }
    if (got_len[3] == 0)
        fail("answer", "empty status text");
    if (!FRAME_IS(4, user, strlen(user)))
        fail("answer", "wrong user id");
    if (got_len[5] != 0)
        fail("answer", "metadata not empty");
    if (gw_zap_refused(fz.zap) != refused + (strcmp(status, "400") == 0))
        fail("answer", "refusal counter");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!fz.ready)
        setup();
    const uint8_t *p = data, *end = data + size;
    int requests = 0;
    while (p < end && requests++ < 64) {
        size_t n = (size_t)(*p++ & 7) + 1;
        frame f[FZ_MAX_FRAMES];
        for (size_t i = 0; i < n; i++)
            f[i] = next_frame(&p, end);
        one_request(f, n);
    }
    return 0;
}
