/*
 * zap.c - worker authentication: the ZAP handler (see zap.h; the certificates are in
 * keys.c).
 *
 * A ZAP request for CURVE is seven frames: version "1.0", request id, domain,
 * address, routing id, mechanism "CURVE", and the client's 32-byte public key.  The
 * reply is six: version, the same request id, status code, status text, user id and
 * metadata.  A REP socket must answer every request before it can receive the next,
 * so every request gets a reply here, malformed ones a 500.  Only libzmq itself can
 * reach the inproc endpoint, so no request has more frames than br_zsock keeps
 * (BR_ZSOCK_MAX_FRAMES, 8): one it dropped would leave the REP socket waiting.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include <barista/proto.h>
#include <barista/zsock.h>

#include "broker_int.h"
#include "zap.h"

/* Frames of a CURVE ZAP request. */
#define ZAP_REQUEST_FRAMES 7

struct gw_zap {
    uv_loop_t *loop;         /* the gateway's loop */
    br_zsock *zs;            /* the REP socket */
    const gw_curve *curve;   /* authorised certificates (the caller's; reloads swap them) */
    uint64_t refused;        /* peers refused */
    uint64_t logged;         /* refusal lines logged */
    uint64_t suppressed;     /* refusals not logged since the last line */
    uint64_t last_log;       /* loop time of the last refusal line; 0: none yet */
    void (*done)(void *arg); /* gw_zap_shutdown's callback */
    void *done_arg;          /* its argument */
};

/* Sends the six reply frames.  Inside the receive callback, so br_zsock's drain
 * re-checks the socket after it. */
static void reply(gw_zap *z, br_zframe reqid, const char *code, const char *text, const char *user)
{
    void *s = br_zsock_socket(z->zs);
    const br_zframe f[6] = {{"1.0", 3, NULL},           reqid,
                            {code, strlen(code), NULL}, {text, strlen(text), NULL},
                            {user, strlen(user), NULL}, {"", 0, NULL}};
    for (int i = 0; i < 6; i++) {
        if (zmq_send(s, f[i].data, f[i].len, (i < 5 ? ZMQ_SNDMORE : 0) | ZMQ_DONTWAIT) < 0) {
            gw_log(GW_LOG_ERROR, "broker", "zmq_send(ZAP reply): %s", zmq_strerror(zmq_errno()));
            return;
        }
    }
}

/* Logs a refusal unless one was logged less than GW_ZAP_LOG_INTERVAL_MS ago. */
static void log_refusal(gw_zap *z, const char *key, const br_zframe *address, const char *why)
{
    uint64_t now = uv_now(z->loop);
    z->refused++;
    if (z->last_log && now - z->last_log < GW_ZAP_LOG_INTERVAL_MS) {
        z->suppressed++;
        return;
    }
    z->last_log = now ? now : 1;
    z->logged++;
    int alen = address->len < 64 ? (int)address->len : 64;
    char more[64] = "";
    if (z->suppressed)
        snprintf(more, sizeof(more), " (and %llu more refusals not logged)",
                 (unsigned long long)z->suppressed);
    gw_log(GW_LOG_WARN, "broker", "refused a worker connection from %.*s: %s%s%s%s", alen,
           (const char *)address->data, why, key[0] ? " " : "", key, more);
    z->suppressed = 0;
}

static void on_request(br_zsock *zs, const br_zframe *f, size_t n, void *arg)
{
    gw_zap *z = arg;
    (void)zs;
    br_zframe none = {"", 0, NULL};
    if (n != ZAP_REQUEST_FRAMES || f[0].len != 3 || memcmp(f[0].data, "1.0", 3) != 0) {
        gw_log(GW_LOG_WARN, "broker", "malformed ZAP request (%zu frames) answered 500", n);
        reply(z, n >= 2 ? f[1] : none, "500", "malformed request", "");
        return;
    }
    const br_zframe *address = &f[3], *mechanism = &f[5], *key = &f[6];
    if (mechanism->len != 5 || memcmp(mechanism->data, "CURVE", 5) != 0) {
        log_refusal(z, "", address, "mechanism is not CURVE");
        reply(z, f[1], "400", "CURVE required", "");
        return;
    }
    if (key->len != BR_CURVE_KEY_LEN) {
        log_refusal(z, "", address, "malformed CURVE key");
        reply(z, f[1], "400", "malformed key", "");
        return;
    }
    char z85[BR_CURVE_Z85_LEN + 1];
    br_curve_key_z85(key->data, z85);
    if (!gw_curve_known(z->curve, z85)) {
        log_refusal(z, z85, address, "unknown key");
        reply(z, f[1], "400", "key not authorised", "");
        return;
    }
    /* The user id becomes the connection's "User-Id" property: the broker looks the
     * key's services up with it when the worker says READY. */
    reply(z, f[1], "200", "OK", z85);
}

gw_zap *gw_zap_new(uv_loop_t *loop, void *zctx, const gw_curve *curve)
{
    gw_zap *z = calloc(1, sizeof(*z));
    if (!z) {
        gw_log(GW_LOG_ERROR, "broker", "gw_zap_new: out of memory");
        return NULL;
    }
    z->loop = loop;
    z->curve = curve;
    void *s = zmq_socket(zctx, ZMQ_REP);
    if (!s) {
        gw_log(GW_LOG_ERROR, "broker", "zmq_socket(REP) for ZAP failed: %s",
               zmq_strerror(zmq_errno()));
        free(z);
        return NULL;
    }
    int zero = 0;
    if (zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof(zero)) != 0 ||
        zmq_bind(s, GW_ZAP_ENDPOINT) != 0) {
        gw_log(GW_LOG_ERROR, "broker", "zmq_bind(%s) failed: %s", GW_ZAP_ENDPOINT,
               zmq_strerror(zmq_errno()));
        zmq_close(s);
        free(z);
        return NULL;
    }
    z->zs = br_zsock_new(loop, s, on_request, z);
    if (!z->zs) {
        zmq_close(s);
        free(z);
        return NULL;
    }
    return z;
}

uint64_t gw_zap_refused(const gw_zap *self)
{
    return self->refused;
}

uint64_t gw_zap_logged(const gw_zap *self)
{
    return self->logged;
}

static void on_closed(void *arg)
{
    gw_zap *z = arg;
    if (z->done)
        z->done(z->done_arg);
    free(z);
}

void gw_zap_shutdown(gw_zap *self, void (*done)(void *arg), void *arg)
{
    if (!self)
        return;
    self->done = done;
    self->done_arg = arg;
    br_zsock_close(self->zs, on_closed, self);
}
