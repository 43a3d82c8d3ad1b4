/*
 * stream.c - streamed responses: a worker answers a REQUEST with STREAM_START, then
 * STREAM_CHUNKs, then STREAM_END (PROTOCOL.md 5.15), and the client gets them as one
 * chunked answer (http_stream.c frames it).
 *
 * Flow control.  The worker may send only as many chunk bytes as the broker granted
 * with STREAM_WINDOW.  The broker grants so that what one stream holds in the gateway -
 * granted and not yet received, plus received and not yet taken by the client's socket
 * - never passes stream_buffer_bytes: a client that stops reading stops the grants,
 * and the worker waits (its SDK queues, then refuses).  Grants go out in batches of at
 * least half the buffer, so a fast stream costs one STREAM_WINDOW per half buffer.
 *
 * Deadlines.  Once a stream starts, the exchange's deadline becomes an idle timeout:
 * every chunk, and every write the client's socket takes, pushes it stream_idle_ms
 * further.  When it passes, the answer is cut (no terminating chunk) and the worker
 * gets CANCEL.  The worker's STREAM_END returns its credit, as a REPLY does; a worker
 * that dies mid-stream leaves its client with a truncated answer, never a retry.
 */
#include <string.h>
#include <strings.h>

#include "broker_int.h"

/* Response headers of a STREAM_START forwarded from a stack array; more are dropped
 * (the protocol's max_pairs allows more, an event stream needs a handful). */
#define STREAM_HEADERS_MAX 32

/* Content types longer than this are replaced by application/octet-stream. */
#define STREAM_TYPE_MAX 256

/* The exchange a stream message of w's is about, or NULL (stale: answered, cut, or
 * not w's). */
static gw_exchange *stream_exchange(gw_broker *b, gw_worker *w, uint64_t id)
{
    gw_exchange *c = gw_idmap_get(b->exchanges, id);
    return c && c->worker == w ? c : NULL;
}

void gw__stream_grant(gw_exchange *c, size_t max, size_t used)
{
    gw_broker *b = c->broker;
    if (used >= max)
        return;
    size_t room = max - used;
    if (room < max / 2 && c->window > 0)
        return; /* the worker still has window: wait for a bigger batch */
    br_msg m = {.type = BR_MSG_STREAM_WINDOW,
                .u.stream_window = {.id = c->id, .bytes = (uint32_t)room}};
    if (gw__broker_send(b, c->worker, NULL, 0, &m) == 0)
        c->window += (uint32_t)room;
}

/* Grants the worker what the stream's buffer has room for, in batches. */
static void grant(gw_exchange *c)
{
    gw__stream_grant(c, c->broker->cfg.stream_buffer_bytes,
                     gw_req_stream_pending(c->req) + c->window);
}

void gw__stream_touch(gw_exchange *c)
{
    gw__exchange_set_deadline(c, uv_now(c->broker->loop) + c->broker->cfg.stream_idle_ms);
}

/* The client's socket took some of the stream: more room, and the stream is not idle. */
static void on_drain(gw_req *req, void *arg)
{
    gw_exchange *c = arg;
    (void)req;
    if (!c->req || !c->worker)
        return;
    gw__stream_touch(c);
    grant(c);
}

void gw__stream_cut(gw_exchange *c)
{
    gw_req *req = c->req;
    gw__exchange_detach(c);
    c->broker->stats.streams_cut++;
    if (req)
        gw_req_stream_end(req, false);
}

void gw__stream_start(gw_broker *b, gw_worker *w, const br_stream_head *m)
{
    gw_exchange *c = stream_exchange(b, w, m->id);
    if (!c || c->streaming)
        return; /* cancelled meanwhile (its STREAM_END returns the credit), or repeated */
    if (!c->req) {
        /* A CALL's: relayed or gathered (call_stream.c). */
        gw__call_stream_start(c, w, m);
        return;
    }
    gw_header extra[STREAM_HEADERS_MAX + 1];
    size_t nextra = 0;
    for (uint32_t i = 0; i < m->nheaders && nextra < STREAM_HEADERS_MAX; i++) {
        const br_pair *h = &m->headers[i];
        if (h->name.len == 0 || gw__is_hop_by_hop(h->name.ptr, h->name.len))
            continue;
        extra[nextra++] = (gw_header){h->name.ptr, h->name.len, h->value.ptr, h->value.len};
    }
    if (b->cfg.worker_header)
        extra[nextra++] = (gw_header){"x-barista-worker", 16, w->id, strlen(w->id)};
    char type[STREAM_TYPE_MAX + 1] = "application/octet-stream";
    if (m->content_type.len > 0 && m->content_type.len <= STREAM_TYPE_MAX) {
        memcpy(type, m->content_type.ptr, m->content_type.len);
        type[m->content_type.len] = '\0';
    }
    if (gw_req_stream_start(c->req, m->status, extra, nextra, type) != 0) {
        gw_req *req = c->req;
        gw__exchange_cancel(c); /* detaches req first */
        gw_broker_respond_error(b, req, 502, false, "Bad Gateway: the stream could not start");
        return;
    }
    c->streaming = true;
    b->stats.streams++;
    gw_req_on_drain(c->req, on_drain, c);
    gw__stream_touch(c);
    grant(c);
}

void gw__stream_chunk(gw_broker *b, gw_worker *w, const br_stream_chunk *m)
{
    gw_exchange *c = stream_exchange(b, w, m->id);
    if (!c || !c->streaming || (!c->req && !c->caller))
        return; /* stale: the stream was cut or cancelled */
    if (m->data.len > c->window) {
        gw_log(GW_LOG_WARN, "broker",
               "worker %s sent %u stream bytes for request %llu with a window of %u: the "
               "stream is cut",
               w->id, m->data.len, (unsigned long long)c->id, c->window);
        if (c->req)
            gw__stream_cut(c);
        else
            gw__stream_fail_caller(c, 502, "Bad Gateway: the service sent past its window");
        gw__exchange_cancel(c);
        return;
    }
    c->window -= m->data.len;
    b->stats.stream_bytes += m->data.len;
    if (!c->req) {
        gw__call_stream_chunk(c, m->data);
        return;
    }
    if (gw_req_stream_write(c->req, m->data.ptr, m->data.len) != 0) {
        gw__stream_cut(c);
        gw__exchange_cancel(c);
        return;
    }
    gw__stream_touch(c);
    grant(c);
}

void gw__stream_end(gw_broker *b, gw_worker *w, const br_stream_fin *m)
{
    gw_exchange *c = stream_exchange(b, w, m->id);
    if (!c) {
        /* The end of a stream that was cancelled: the worker let go of it. */
        if (gw__dispatch_cancelled_answered(b, w, m->id))
            gw__dispatch_after_reply(b, w);
        else
            b->stats.stale_replies++;
        return;
    }
    gw__exchange_returned(c); /* its credit comes back, as with a REPLY */
    if (!c->streaming) {
        /* An end without a start: the worker broke the protocol; its client learns
         * that much and no more. */
        gw_req *req = c->req;
        gw_worker *caller = c->caller;
        gw__exchange_detach(c);
        if (req)
            gw_broker_respond_error(b, req, 502, false,
                                    "Bad Gateway: the worker ended a stream it never started");
        else if (caller)
            gw__calls_reply_detail(b, caller, c->caller_id, 502, false,
                                   "Bad Gateway: the worker ended a stream it never started");
    } else if (!c->req && c->caller) {
        gw__call_stream_end(c, m->error);
    } else if (m->error.len > 0) {
        gw_log(GW_LOG_INFO, "broker", "worker %s cut the stream of request %llu: %.*s", w->id,
               (unsigned long long)c->id, (int)m->error.len, m->error.ptr);
        gw__stream_cut(c);
    } else {
        gw_req *req = c->req;
        gw__exchange_detach(c);
        if (req)
            gw_req_stream_end(req, true);
        b->stats.replies++;
    }
    gw__exchange_free(c);
    gw__dispatch_after_reply(b, w);
}
