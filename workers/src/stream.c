/*
 * stream.c - streamed responses inside a worker (barista/stream.h): STREAM_START, the
 * body as STREAM_CHUNKs within the window the broker grants, STREAM_END; and the
 * Server-Sent Events helpers on top.
 *
 * What the handler writes goes out at once while the window allows and waits in the
 * request's queue otherwise; each STREAM_WINDOW from the broker sends what fits.  The
 * request stays in flight (its credit spent) until its STREAM_END is sent - after the
 * queue emptied for br_stream_end, at once for br_stream_abort.  A request of an
 * earlier registration (an orphan) sends nothing: its broker is gone.
 */
#include <stdio.h>
#include <string.h>

#include "worker_int.h"

/* Room for an SSE event's field names and line ends around its data. */
#define SSE_OVERHEAD 64

static bool current(const br_req *req)
{
    return br__gen_live(req->worker, req->gen);
}

static size_t queued(const br_req *req)
{
    const br__req_stream *st = req->stream;
    return st ? st->squeue.len - st->squeue_off : 0;
}

/* The request's stream state, made (zeroed, in its arena) at the first use; NULL when
 * the arena is out of memory. */
static br__req_stream *stream_state(br_req *req)
{
    if (!req->stream) {
        req->stream = br_req_alloc(req, sizeof(*req->stream));
        if (req->stream)
            memset(req->stream, 0, sizeof(*req->stream));
    }
    return req->stream;
}

/* Ends the request: complete() sends the STREAM_END (br__stream_end_msg) and frees. */
static void stream_done(br_req *req)
{
    req->ended = true;
    br__dispatch_replied(req);
}

/* Sends what the window allows; ends the request once an ended stream's queue is out.
 * Returns true when the request ended (it is gone then). */
static bool pump(br_req *req)
{
    br_worker *w = req->worker;
    br__req_stream *st = req->stream;
    while (st->window > 0 && queued(req) > 0 && current(req)) {
        size_t n = queued(req);
        if (n > st->window)
            n = st->window;
        if (n > BR_STREAM_CHUNK_MAX)
            n = BR_STREAM_CHUNK_MAX;
        br_msg m = {.type = BR_MSG_STREAM_CHUNK};
        m.u.stream_chunk.id = req->msg.id;
        m.u.stream_chunk.data.ptr = (const char *)st->squeue.data + st->squeue_off;
        m.u.stream_chunk.data.len = (uint32_t)n;
        br__worker_send_gen(w, req->gen, &m);
        st->window -= (uint32_t)n;
        st->squeue_off += n;
    }
    if (queued(req) == 0) {
        st->squeue.len = st->squeue_off = 0;
    } else if (st->squeue_off >= st->squeue.len / 2) {
        /* Keep the queue's memory bounded by what is waiting, not by what passed. */
        memmove(st->squeue.data, st->squeue.data + st->squeue_off, queued(req));
        st->squeue.len = queued(req);
        st->squeue_off = 0;
    }
    if (st->closing && (queued(req) == 0 || !current(req))) {
        stream_done(req);
        return true;
    }
    return false;
}

int br_stream_start(br_req *req, uint16_t status, const char *content_type)
{
    if (!req || req->ended || req->streaming || req->on_thread || req->writing || status < 200 ||
        status > 599 || status == 204 || status == 304)
        return BR_EINVAL;
    /* An actor's turn ends with ACTOR_REPLY, which carries its state commit; a stream
     * has no place for one, so actor routes answer whole. */
    if (req->actor)
        return BR_EINVAL;
    br__req_stream *st = stream_state(req);
    if (!st)
        return BR_ENOMEM;
    const char *type = content_type && *content_type ? content_type : "application/octet-stream";
    req->content_type = br_req_strdup(req, br_str_c(type));
    if (!req->content_type)
        return BR_ENOMEM;
    req->status = status;
    br_worker *w = req->worker;
    const br_service_spec *svc = req->svc ? req->svc->spec : NULL;
    if (svc && svc->after && current(req)) {
        req->in_after = true;
        svc->after(req, status);
        req->in_after = false;
    }
    req->streaming = true;
    st->squeue.max = BR_STREAM_QUEUE_MAX;
    if (!current(req))
        return 0;
    br_msg m = {.type = BR_MSG_STREAM_START};
    m.u.stream_start.id = req->msg.id;
    m.u.stream_start.status = status;
    m.u.stream_start.headers = req->rheaders;
    m.u.stream_start.nheaders = req->nrheaders;
    m.u.stream_start.content_type = br_str_c(req->content_type);
    br__worker_send_gen(w, req->gen, &m);
    return 0;
}

int br_stream_write(br_req *req, const void *data, size_t len)
{
    if (!req || !req->streaming || req->stream->closing || req->ended || (!data && len))
        return BR_EINVAL;
    br__req_stream *st = req->stream;
    if (br_req_cancelled(req))
        return BR_ECLOSED;
    if (len == 0)
        return 0;
    if (queued(req) + len > BR_STREAM_QUEUE_MAX)
        return BR_EFULL;
    if (st->squeue_off > 0 && st->squeue.len + len > BR_STREAM_QUEUE_MAX) {
        memmove(st->squeue.data, st->squeue.data + st->squeue_off, queued(req));
        st->squeue.len = queued(req);
        st->squeue_off = 0;
    }
    int rc = br_buf_append(&st->squeue, data, len);
    if (rc != 0)
        return rc == BR_ELIMIT ? BR_EFULL : rc;
    pump(req); /* never ends the request: it is not closing */
    return 0;
}

int br_stream_end(br_req *req)
{
    if (!req || !req->streaming || req->stream->closing || req->ended)
        return BR_EINVAL;
    br__req_stream *st = req->stream;
    st->closing = true;
    req->on_writable = NULL;
    if (br_req_cancelled(req))
        st->squeue.len = st->squeue_off = 0; /* nobody reads them any more */
    pump(req);
    return 0;
}

int br_stream_abort(br_req *req, const char *why)
{
    if (!req || !req->streaming || req->stream->closing || req->ended)
        return BR_EINVAL;
    br__req_stream *st = req->stream;
    st->error = why && *why ? br_req_strdup(req, br_str_c(why)) : NULL;
    if (!st->error)
        st->error = "aborted";
    st->closing = true;
    req->on_writable = NULL;
    st->squeue.len = st->squeue_off = 0;
    stream_done(req);
    return 0;
}

size_t br_stream_queued(const br_req *req)
{
    return req ? queued(req) : 0;
}

void br_stream_on_writable(br_req *req, br_stream_fn fn, void *arg)
{
    if (!req)
        return;
    req->on_writable = fn;
    req->writable_arg = arg;
}

void br__stream_window(br_worker *w, uint64_t id, uint32_t bytes)
{
    br_req *req = br__dispatch_find(w, id);
    if (!req || !req->streaming || req->ended)
        return; /* ended meanwhile: a late grant */
    br__req_stream *st = req->stream;
    uint64_t window = (uint64_t)st->window + bytes;
    st->window = window > UINT32_MAX ? UINT32_MAX : (uint32_t)window;
    if (pump(req))
        return;
    if (req->on_writable && !st->closing && queued(req) < BR_STREAM_QUEUE_MAX / 2 &&
        !br_req_cancelled(req))
        req->on_writable(req, req->writable_arg);
}

void br__stream_end_msg(br_req *req, br_msg *out)
{
    memset(out, 0, sizeof(*out));
    out->type = BR_MSG_STREAM_END;
    out->u.stream_end.id = req->msg.id;
    const char *why = req->stream ? req->stream->error : NULL;
    if (!why && br_req_cancelled(req))
        why = "cancelled";
    out->u.stream_end.error = br_str_c(why ? why : "");
}

/* ---------------------------------------------------------------------------------- */
/* Server-Sent Events.                                                                 */

int br_sse_start(br_req *req)
{
    if (!req || req->ended || req->streaming)
        return BR_EINVAL;
    int rc = br_reply_header(req, "cache-control", "no-cache");
    if (rc == 0)
        rc = br_reply_header(req, "x-accel-buffering", "no");
    if (rc != 0)
        return rc;
    return br_stream_start(req, 200, "text/event-stream");
}

static bool one_line(const char *s)
{
    return !s || !strpbrk(s, "\r\n");
}

/* Appends "<field><line>\n" for every line of text[0..len), split at CRLF, LF or CR; a
 * line break at the end gives an empty last line, which a client turns back into it. */
static int put_lines(br_buf *b, const char *field, const char *text, size_t len)
{
    size_t flen = strlen(field);
    for (size_t i = 0;;) {
        size_t j = i;
        while (j < len && text[j] != '\n' && text[j] != '\r')
            j++;
        int rc = br_buf_append(b, field, flen);
        if (rc == 0 && j > i)
            rc = br_buf_append(b, text + i, j - i);
        if (rc == 0)
            rc = br_buf_append(b, "\n", 1);
        if (rc != 0 || j == len)
            return rc;
        if (text[j] == '\r' && j + 1 < len && text[j + 1] == '\n')
            j++;
        i = j + 1;
    }
}

/* Sends b's bytes as one piece of the stream and frees b. */
static int send_built(br_req *req, br_buf *b, int rc)
{
    if (rc == 0)
        rc = br_stream_write(req, b->data, b->len);
    br_buf_free(b);
    return rc == BR_ELIMIT ? BR_EFULL : rc;
}

int br_sse_event(br_req *req, const char *id, const char *event, const char *data, size_t len)
{
    if (!one_line(id) || !one_line(event) || (!data && len))
        return BR_EINVAL;
    br_buf b = {.max = BR_STREAM_QUEUE_MAX};
    int rc = br_buf_reserve(&b, len + SSE_OVERHEAD);
    if (rc == 0 && id && *id)
        rc = put_lines(&b, "id: ", id, strlen(id));
    if (rc == 0 && event && *event)
        rc = put_lines(&b, "event: ", event, strlen(event));
    if (rc == 0)
        rc = put_lines(&b, "data: ", data ? data : "", len);
    if (rc == 0)
        rc = br_buf_append(&b, "\n", 1);
    return send_built(req, &b, rc);
}

int br_sse_retry(br_req *req, uint32_t ms)
{
    char line[32];
    int n = snprintf(line, sizeof(line), "retry: %u\n\n", ms);
    return br_stream_write(req, line, (size_t)n);
}

int br_sse_comment(br_req *req, const char *text)
{
    br_buf b = {.max = BR_STREAM_QUEUE_MAX};
    int rc = put_lines(&b, ": ", text ? text : "", text ? strlen(text) : 0);
    if (rc == 0)
        rc = br_buf_append(&b, "\n", 1);
    return send_built(req, &b, rc);
}

/* ---------------------------------------------------------------------------------- */
/* Streamed request bodies.                                                            */

static void grant_body(br_req *req, uint32_t bytes)
{
    if (!current(req))
        return;
    br_msg m = {.type = BR_MSG_STREAM_WINDOW};
    m.u.stream_window.id = req->msg.id;
    m.u.stream_window.bytes = bytes;
    br__worker_send_gen(req->worker, req->gen, &m);
}

int br_req_body_stream(br_req *req, br_body_fn on_data, br_body_end_fn on_end, void *arg)
{
    if (!req || !on_data || !on_end || !req->spec->stream_body ||
        (req->stream && req->stream->on_body) || req->ended || req->on_thread)
        return BR_EINVAL;
    br__req_stream *st = stream_state(req);
    if (!st)
        return BR_ENOMEM;
    st->on_body = on_data;
    st->on_body_end = on_end;
    st->body_arg = arg;
    grant_body(req, BR_BODY_WINDOW);
    return 0;
}

void br__stream_body_chunk(br_worker *w, uint64_t id, br_str data)
{
    br_req *req = br__dispatch_find(w, id);
    br__req_stream *st = req ? req->stream : NULL;
    if (!st || !st->on_body || st->body_over || req->ended)
        return;
    st->on_body(req, data.ptr, data.len, st->body_arg);
    /* The handler may have replied (and freed req) from on_body. */
    if (br__dispatch_find(w, id) != req || req->ended || st->body_over)
        return;
    st->body_taken += data.len;
    if (st->body_taken >= BR_BODY_WINDOW / 2) {
        grant_body(req, st->body_taken);
        st->body_taken = 0;
    }
}

void br__stream_body_end(br_worker *w, uint64_t id, br_str error)
{
    br_req *req = br__dispatch_find(w, id);
    br__req_stream *st = req ? req->stream : NULL;
    if (!st || req->ended || st->body_over || !st->on_body_end)
        return;
    st->body_over = true;
    st->on_body_end(req, error.len == 0, st->body_arg);
}
