/*
 * body.c - streamed request bodies: a route that declares stream_body gets its REQUEST
 * with an empty body, then the body as STREAM_CHUNKs and a STREAM_END (PROTOCOL.md
 * 5.15), within the window the worker grants with STREAM_WINDOW.
 *
 * Memory.  The broker holds at most GW_BODY_HOLD bytes of a body (plus the one read
 * that crossed it): when the worker has granted no room - or the request still waits
 * for a worker - it pauses the client's body, and the HTTP server stops reading that
 * socket.  A body of any size costs the gateway the same.
 *
 * Deadline.  Each piece of body read moves the request's deadline its whole budget
 * further: a long upload is bounded by its pauses, not by its length.
 */
#include <string.h>

#include "broker_int.h"

/* Body bytes the broker holds for one request before it pauses the client. */
#define GW_BODY_HOLD (64u * 1024)

/* Sends what the window allows, the end once everything went, and resumes the client
 * when there is room again. */
static void body_pump(gw_exchange *c)
{
    gw_broker *b = c->broker;
    gw_exchange_body *s = c->sbody;
    br_buf *h = &s->hold;
    while (c->worker && s->window > 0 && h->len > 0) {
        size_t n = h->len < s->window ? h->len : s->window;
        if (n > GW_BODY_HOLD)
            n = GW_BODY_HOLD;
        br_msg m = {.type = BR_MSG_STREAM_CHUNK,
                    .u.stream_chunk = {.id = c->id, .data = {(const char *)h->data, (uint32_t)n}}};
        if (gw__broker_send(b, c->worker, NULL, 0, &m) != 0)
            return; /* the worker is lost: the tick reaps it and answers the client */
        s->window -= (uint32_t)n;
        memmove(h->data, h->data + n, h->len - n);
        h->len -= n;
    }
    if (c->worker && s->done && h->len == 0 && !s->end_sent) {
        br_msg m = {.type = BR_MSG_STREAM_END, .u.stream_end = {.id = c->id}};
        if (gw__broker_send(b, c->worker, NULL, 0, &m) == 0)
            s->end_sent = true;
    }
    if (s->paused && h->len < GW_BODY_HOLD && c->req) {
        s->paused = false;
        gw_req_body_resume(c->req);
    }
}

static void on_body(gw_req *req, const char *data, size_t len, int status, void *arg)
{
    gw_exchange *c = arg;
    gw_broker *b = c->broker;
    if (!data && status) {
        /* The body failed (too large, broken framing, too slow): the client gets the
         * status, the worker a CANCEL. */
        const char *detail = status == 413   ? "Content Too Large"
                             : status == 408 ? "Request Timeout: the body was not received in time"
                                             : "Bad Request: the body is malformed";
        if (c->worker) {
            gw__exchange_cancel(c);
            gw_broker_respond_error(b, req, status, false, detail);
        } else {
            gw__exchange_fail(c, status, false, detail);
        }
        return;
    }
    if (!data) {
        c->sbody->done = true;
        body_pump(c);
        return;
    }
    if (br_buf_append(&c->sbody->hold, data, len) != 0) {
        gw_req *r = c->req;
        if (c->worker) {
            gw__exchange_cancel(c);
        } else {
            gw__exchange_detach(c);
            gw__exchange_free(c);
        }
        gw_broker_respond_error(b, r, 503, true, "Service Unavailable: out of memory");
        return;
    }
    gw__exchange_set_deadline(c, uv_now(b->loop) + c->budget_ms);
    body_pump(c);
    if (c->sbody->hold.len >= GW_BODY_HOLD && !c->sbody->paused) {
        c->sbody->paused = true;
        gw_req_body_pause(req);
    }
}

void gw__body_attach(gw_exchange *c)
{
    /* The hold, one read past it, never more. */
    c->sbody->hold.max = GW_BODY_HOLD + 2u * 64 * 1024;
    gw_req_body_read(c->req, on_body, c);
}

void gw__body_detach(gw_exchange *c)
{
    gw_req_body_read(c->req, NULL, NULL);
    if (c->sbody->paused) {
        c->sbody->paused = false;
        gw_req_body_resume(c->req); /* the rest is read and dropped */
    }
}

void gw__body_window(gw_broker *b, gw_worker *w, const br_stream_window *m)
{
    gw_exchange *c = gw_idmap_get(b->exchanges, m->id);
    if (!c || c->worker != w || !c->sbody)
        return; /* answered or cancelled meanwhile */
    uint64_t window = (uint64_t)c->sbody->window + m->bytes;
    c->sbody->window = window > UINT32_MAX ? UINT32_MAX : (uint32_t)window;
    body_pump(c);
}
