/*
 * call_stream.c - a CALL answered with a stream (PROTOCOL.md 5.15.1): the target
 * worker sends STREAM_START, STREAM_CHUNKs and STREAM_END as for an HTTP client, and
 * the broker passes the answer on to the calling worker in one of two ways.
 *
 * Gathered (the default, and the only way for a caller that did not announce
 * BR_FEATURE_CALL_STREAM or did not ask): the status, headers and content type of the
 * start are kept, the chunks appended, and the clean end sends the caller one REPLY.
 * The body is bounded by call_gather_max (and by max_body, which one REPLY must fit):
 * the broker grants the target at most one byte past the bound, so the byte that
 * passes it ends the call - the caller gets 502 naming the bound, the target CANCEL.
 * A gathering call holds at most its bound in the gateway.
 *
 * Every gathering call together holds at most call_gather_total: the broker counts
 * what each one allocated (its start's copy and its body's buffer) in gather_bytes,
 * and a call whose next chunk would need more than the total leaves ends with 503
 * naming the option, the target CANCEL - as with the bound of one call, and through
 * the same REPLY.  What a call counted is given back when its exchange is freed
 * (gw__stream_free), whichever way it ended: its REPLY sent, its deadline, its
 * caller gone, its target dead, or shutdown; gather_bytes is 0 when nothing gathers.
 *
 * Relayed (a caller that asked, CALL field 19): the start goes on as
 * CALL_STREAM_START, each chunk as CALL_STREAM_CHUNK at once, the end as
 * CALL_STREAM_END.  The gateway keeps no chunk: it grants the target only what the
 * caller granted with CALL_STREAM_WINDOW (and at most stream_buffer_bytes at a time),
 * so a caller that reads slowly stops the target, and the bytes between the two stay
 * bounded by the caller's window.
 *
 * Either way the stream's idle timeout applies (a chunk, or the caller's window,
 * restarts it); a gathered answer is bounded by the CALL's own deadline too, since its
 * caller waits for the whole of it.  A caller that cancels or leaves cancels the
 * target's request (dispatch.c's abandon).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker_int.h"

/* A streamed answer being gathered for one REPLY. */
typedef struct gw_gathered {
    uint16_t status;     /* the start's status */
    br_pair *headers;    /* the start's headers (copied, in this allocation) */
    uint32_t nheaders;   /* entries in headers */
    br_str content_type; /* the start's content type (in this allocation) */
    size_t limit;        /* the most body bytes the REPLY may carry */
    size_t head_bytes;   /* bytes of this allocation, counted in gather_bytes */
    uint64_t deadline;   /* the CALL's deadline (loop time): the whole answer by then */
    br_buf body;         /* the chunks so far (max: limit + 1) */
} gw_gathered;

/* The most body bytes a gathered answer may have: the option, within max_body. */
static size_t gather_limit(const gw_broker *b)
{
    size_t limit = b->cfg.call_gather_max;
    return limit < b->cfg.limits.max_body ? limit : b->cfg.limits.max_body;
}

/* The first allocation of a gathered body: small answers need no more. */
#define GATHER_INITIAL (64u * 1024)

size_t gw__gather_grow(size_t len, size_t cap, size_t n, size_t max, size_t held, size_t total)
{
    size_t need = len + n;
    if (need > max || held > total || need > total - held)
        return 0;
    size_t want = cap > max / 2 ? max : cap * 2;
    if (want < GATHER_INITIAL)
        want = GATHER_INITIAL < max ? GATHER_INITIAL : max;
    if (want < need)
        want = need;
    /* Near the total, the room left is enough: no call is refused for slack. */
    return want > total - held ? total - held : want;
}

/* Makes room in g's body for n more bytes, counted in gather_bytes.  0; BR_ELIMIT when
 * call_gather_total has no room for them; BR_ENOMEM. */
static int gathered_room(gw_broker *b, gw_gathered *g, size_t n)
{
    br_buf *body = &g->body;
    if (n <= body->cap - body->len)
        return 0;
    size_t held = b->gather_bytes - body->cap;
    size_t cap =
        gw__gather_grow(body->len, body->cap, n, body->max, held, b->cfg.call_gather_total);
    if (cap == 0)
        return BR_ELIMIT;
    uint8_t *grown = realloc(body->data, cap);
    if (!grown)
        return BR_ENOMEM;
    body->data = grown;
    body->cap = cap;
    b->gather_bytes = held + cap;
    return 0;
}

/* A copy of the start m in one allocation, counted in gather_bytes; NULL when out of
 * memory or when call_gather_total has no room for it (*refused true then). */
static gw_gathered *gathered_new(gw_broker *b, const br_stream_head *m, bool *refused)
{
    size_t bytes = m->content_type.len;
    for (uint32_t i = 0; i < m->nheaders; i++)
        bytes += m->headers[i].name.len + m->headers[i].value.len;
    size_t size = sizeof(gw_gathered) + m->nheaders * sizeof(br_pair) + bytes;
    *refused = size > b->cfg.call_gather_total - b->gather_bytes;
    if (*refused)
        return NULL;
    gw_gathered *g = calloc(1, size);
    if (!g)
        return NULL;
    g->head_bytes = size;
    b->gather_bytes += size;
    g->headers = (br_pair *)(void *)(g + 1);
    char *p = (char *)(g->headers + m->nheaders);
    for (uint32_t i = 0; i < m->nheaders; i++) {
        const br_pair *h = &m->headers[i];
        memcpy(p, h->name.ptr, h->name.len);
        g->headers[i].name = (br_str){p, h->name.len};
        p += h->name.len;
        memcpy(p, h->value.ptr, h->value.len);
        g->headers[i].value = (br_str){p, h->value.len};
        p += h->value.len;
    }
    g->nheaders = m->nheaders;
    memcpy(p, m->content_type.ptr, m->content_type.len);
    g->content_type = (br_str){p, m->content_type.len};
    g->status = m->status;
    g->limit = gather_limit(b);
    g->body.max = g->limit + 1;
    return g;
}

/* The stream made progress: its idle timeout starts again - for a gathered answer
 * never past the CALL's deadline. */
static void touch(gw_exchange *c)
{
    gw_broker *b = c->broker;
    uint64_t when = uv_now(b->loop) + b->cfg.stream_idle_ms;
    if (c->gathered && when > c->gathered->deadline)
        when = c->gathered->deadline;
    gw__exchange_set_deadline(c, when);
}

void gw__stream_free(gw_exchange *c)
{
    if (!c->gathered)
        return;
    c->broker->gather_bytes -= c->gathered->head_bytes + c->gathered->body.cap;
    br_buf_free(&c->gathered->body);
    free(c->gathered);
    c->gathered = NULL;
}

/* Grants the target what the way of passing the answer on allows. */
static void grant(gw_exchange *c)
{
    size_t max = c->broker->cfg.stream_buffer_bytes;
    if (c->gathered) {
        /* Up to one byte past the limit, so that a longer answer shows itself. */
        size_t left = c->gathered->limit + 1 - c->gathered->body.len;
        if (left < max)
            max = left;
    } else if (c->caller_window < max) {
        max = (size_t)c->caller_window;
    }
    gw__stream_grant(c, max, c->window);
}

/* Gathering c would pass call_gather_total with `more` bytes: its caller gets 503 naming
 * the option, with Retry-After as every 503 (c is detached; the caller cancels the
 * target). */
static void refuse(gw_exchange *c, size_t more)
{
    gw_broker *b = c->broker;
    char detail[GW_DETAIL_MAX];
    snprintf(detail, sizeof(detail),
             "Service Unavailable: the gateway already holds the %zu bytes that calls may "
             "gather at once (--call-gather-total); the stream was cancelled",
             b->cfg.call_gather_total);
    gw_log(GW_LOG_INFO, "broker", "call %llu: %zu more bytes with %zu gathered: %s",
           (unsigned long long)c->id, more, b->gather_bytes, detail);
    b->stats.call_gather_refused++;
    if (c->streaming)
        b->stats.streams_cut++;
    gw_worker *caller = c->caller;
    uint64_t id = c->caller_id;
    gw__exchange_detach(c);
    gw__calls_reply_detail(b, caller, id, 503, true, detail);
}

/* Sends the calling worker one CALL_STREAM_* message about c. */
static void to_caller(gw_exchange *c, br_msg *m)
{
    gw__broker_send(c->broker, c->caller, NULL, 0, m);
}

void gw__call_stream_start(gw_exchange *c, gw_worker *w, const br_stream_head *m)
{
    gw_broker *b = c->broker;
    (void)w;
    if (!c->caller) {
        gw__exchange_cancel(c); /* nobody waits any more */
        return;
    }
    if (c->call_stream) {
        br_msg out = {.type = BR_MSG_CALL_STREAM_START, .u.stream_start = *m};
        out.u.stream_start.id = c->caller_id;
        to_caller(c, &out);
    } else {
        bool refused;
        c->gathered = gathered_new(b, m, &refused);
        if (!c->gathered) {
            /* Not streaming yet: the caller gets its REPLY and the target CANCEL. */
            if (refused)
                refuse(c, 0);
            else
                gw__calls_reply_detail(b, c->caller, c->caller_id, 503, true,
                                       "Service Unavailable: out of memory");
            gw__exchange_cancel(c);
            return;
        }
        c->gathered->deadline = c->deadline.when;
    }
    c->streaming = true;
    b->stats.streams++;
    touch(c);
    grant(c);
}

void gw__call_stream_chunk(gw_exchange *c, br_str data)
{
    gw_broker *b = c->broker;
    if (c->gathered) {
        gw_gathered *g = c->gathered;
        bool too_long = g->body.len + data.len > g->limit;
        int rc = too_long ? BR_ELIMIT : gathered_room(b, g, data.len);
        if (rc == BR_ELIMIT && !too_long) {
            refuse(c, data.len);
            gw__exchange_cancel(c);
            return;
        }
        if (rc == BR_ENOMEM) {
            gw__stream_fail_caller(c, 503, "Service Unavailable: out of memory");
            gw__exchange_cancel(c);
            return;
        }
        if (rc == 0) /* cannot fail: the room is there */
            rc = br_buf_append(&g->body, data.ptr, data.len);
        if (rc != 0) {
            char detail[GW_DETAIL_MAX];
            snprintf(detail, sizeof(detail),
                     "Bad Gateway: the service answered with a stream longer than the %zu "
                     "bytes a call gathers (--call-gather-max); the stream was cancelled",
                     g->limit);
            gw_log(GW_LOG_INFO, "broker", "call %llu: %s", (unsigned long long)c->id, detail);
            gw__stream_fail_caller(c, 502, detail);
            gw__exchange_cancel(c);
            return;
        }
    } else {
        /* The target never has more window than the caller granted (grant). */
        c->caller_window -= data.len < c->caller_window ? data.len : c->caller_window;
        br_msg out = {.type = BR_MSG_CALL_STREAM_CHUNK,
                      .u.stream_chunk = {.id = c->caller_id, .data = data}};
        to_caller(c, &out);
    }
    touch(c);
    grant(c);
}

void gw__call_stream_end(gw_exchange *c, br_str error)
{
    gw_broker *b = c->broker;
    gw_worker *caller = c->caller;
    uint64_t id = c->caller_id;
    gw__exchange_detach(c);
    if (error.len > 0) {
        gw_log(GW_LOG_INFO, "broker", "the service cut the streamed answer of call %llu: %.*s",
               (unsigned long long)c->id, (int)error.len, error.ptr);
        b->stats.streams_cut++;
    } else {
        b->stats.replies++;
    }
    if (c->call_stream) {
        br_msg out = {.type = BR_MSG_CALL_STREAM_END, .u.stream_end = {.id = id, .error = error}};
        gw__broker_send(b, caller, NULL, 0, &out);
        return;
    }
    if (error.len > 0) {
        char detail[GW_DETAIL_MAX];
        snprintf(detail, sizeof(detail), "Bad Gateway: the service cut its streamed answer: %.*s",
                 (int)(error.len > 200 ? 200 : error.len), error.ptr);
        gw__calls_reply_detail(b, caller, id, 502, false, detail);
        return;
    }
    gw_gathered *g = c->gathered;
    br_reply r = {.id = id,
                  .status = g->status,
                  .headers = g->headers,
                  .nheaders = g->nheaders,
                  .content_type = g->content_type,
                  .body = {(const char *)g->body.data, (uint32_t)g->body.len}};
    gw__calls_forward(b, caller, id, &r);
}

void gw__stream_fail_caller(gw_exchange *c, int status, const char *detail)
{
    gw_broker *b = c->broker;
    gw_worker *caller = c->caller;
    uint64_t id = c->caller_id;
    gw__exchange_detach(c);
    b->stats.streams_cut++;
    if (!caller)
        return;
    char idle[GW_DETAIL_MAX];
    if (status == 504 && c->gathered && uv_now(b->loop) >= c->gathered->deadline) {
        snprintf(idle, sizeof(idle),
                 "Gateway Timeout: the service's streamed answer did not end within the "
                 "call's %u ms",
                 c->budget_ms);
        detail = idle;
    } else if (status == 504) {
        /* The deadline of a started stream is its idle timeout (PROTOCOL.md 5.15). */
        snprintf(idle, sizeof(idle),
                 "Gateway Timeout: the service's stream sent nothing for %u ms "
                 "(--stream-idle-timeout)",
                 b->cfg.stream_idle_ms);
        detail = idle;
    }
    if (c->call_stream) {
        gw__broker_count_status(b, status);
        br_msg out = {.type = BR_MSG_CALL_STREAM_END,
                      .u.stream_end = {.id = id, .error = br_str_c(detail)}};
        gw__broker_send(b, caller, NULL, 0, &out);
    } else {
        gw__calls_reply_detail(b, caller, id, status, false, detail);
    }
}

void gw__stream_call_window(gw_broker *b, gw_worker *w, const br_stream_window *m)
{
    (void)b;
    for (gw_list *n = w->outgoing.next; n != &w->outgoing; n = n->next) {
        gw_exchange *c = GW_CONTAINER_OF(n, gw_exchange, caller_link);
        if (c->caller_id != m->id)
            continue;
        if (!c->call_stream)
            return; /* a window for a call that asked for no stream: ignored */
        c->caller_window += m->bytes;
        if (c->streaming && c->worker) {
            touch(c);
            grant(c);
        }
        return;
    }
}
