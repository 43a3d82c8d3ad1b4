/*
 * call.c - service-to-service calls (barista/async.h): a CALL to the broker, and the
 * REPLY that answers it routed back to the caller's callback (PROTOCOL.md 10.1) - or,
 * for a streamed call, the CALL_STREAM_* messages handed to its callbacks as they
 * come, with the window granted back as they are taken (PROTOCOL.md 5.15.1).
 *
 * Calls in flight are found by id in a bucket table on the worker.  Each call is also
 * an operation of its request (async_int.h): when the request ends first, the call is
 * abandoned - CANCEL goes to the broker and the callback never runs.  A streamed call
 * outlives its callbacks' runs: one that ends the request (its abort runs meanwhile)
 * only marks the call, which the deliverer frees when the callback returns.
 */
#include <stdlib.h>
#include <string.h>

#include "worker_int.h"

/* Buckets of the call table (a power of two); chains stay short up to BR_CALLS_MAX. */
#define CALL_BUCKETS 4096
/* Longest method name a call may use. */
#define CALL_METHOD_MAX 16

struct br_call_op {
    br__op op;                /* in the request's operations: abandoned when it ends */
    struct br_call_op *hnext; /* next in its id bucket */
    br_worker *w;             /* the worker whose table holds it */
    br_req *req;              /* the request that made it */
    uint64_t id;              /* the CALL's id; the REPLY carries it back */
    uint64_t gen;             /* the registration (broker) it went to */
    br_result_fn cb;          /* answer callback (a call that is not streamed) */
    void *arg;                /* its argument */
    bool streamed;            /* br_call_stream: fns take the answer */
    br_call_stream_fns fns;   /* with streamed: the callbacks (copied) */
    bool delivering;          /* a callback of the call runs now */
    bool aborted;             /* the request ended during that callback */
    bool paused;              /* br_call_stream_pause: nothing granted */
    bool windowed;            /* the broker relays the stream (WELCOME confirmed it) */
    uint32_t taken;           /* bytes the callbacks took, not granted again yet */
};

struct br__calls {
    br_call_op *buckets[CALL_BUCKETS]; /* calls in flight by id */
    uint32_t count;                    /* entries in the table, at most BR_CALLS_MAX */
    uint64_t next_id;                  /* ids are never reused by a worker */
};

static br_call_op **bucket(br__calls *t, uint64_t id)
{
    return &t->buckets[(id * 0x9E3779B97F4A7C15ull >> 40) & (CALL_BUCKETS - 1)];
}

/* Takes c out of the table; false when it was not there (answered already). */
static bool table_remove(br__calls *t, br_call_op *c)
{
    br_call_op **pp = bucket(t, c->id);
    while (*pp && *pp != c)
        pp = &(*pp)->hnext;
    if (!*pp)
        return false;
    *pp = c->hnext;
    t->count--;
    return true;
}

static void send_cancel(br_worker *w, uint64_t gen, uint64_t id)
{
    br_msg msg;
    memset(&msg, 0, sizeof(msg));
    msg.type = BR_MSG_CANCEL;
    msg.u.cancel.id = id;
    br__worker_send_gen(w, gen, &msg);
}

/* The request ended first: tell the broker, forget the call (at once, or when the
 * callback running now returns). */
static void call_abort(br__op *op)
{
    br_call_op *c = (br_call_op *)op;
    if (table_remove(c->w->calls, c))
        send_cancel(c->w, c->gen, c->id);
    if (c->delivering)
        c->aborted = true;
    else
        free(c);
}

void br_call_cancel(br_call_op *c)
{
    br__op_unlink(c->req, &c->op);
    call_abort(&c->op);
}

/* ---------------------------------------------------------------------------------- */
/* Building the CALL.                                                                  */

/* The query of a call: the pairs of "a=1&b=2" (taken literally) followed by
 * spec->query, in the arena.  Returns the count, or -1 when there are more than
 * BR_CALL_MAX_QUERY or memory runs out. */
static int call_query(br_req *req, const char *q, const br_call_spec *spec, br_pair **out)
{
    if (!*q && !spec->nquery)
        return 0;
    br_pair *pairs = br_req_alloc(req, BR_CALL_MAX_QUERY * sizeof(*pairs));
    if (!pairs || spec->nquery > BR_CALL_MAX_QUERY)
        return -1;
    int n = 0;
    while (*q) {
        const char *amp = strchr(q, '&');
        size_t len = amp ? (size_t)(amp - q) : strlen(q);
        if (len) {
            if (n == BR_CALL_MAX_QUERY)
                return -1;
            const char *eq = memchr(q, '=', len);
            size_t nlen = eq ? (size_t)(eq - q) : len;
            pairs[n].name = (br_str){q, (uint32_t)nlen};
            pairs[n].value = eq ? (br_str){eq + 1, (uint32_t)(len - nlen - 1)} : br_str_c("");
            n++;
        }
        q += len + (amp ? 1 : 0);
    }
    if (spec->nquery > (size_t)(BR_CALL_MAX_QUERY - n))
        return -1;
    for (size_t i = 0; i < spec->nquery; i++)
        pairs[n++] = spec->query[i];
    *out = pairs;
    return n;
}

/* br_call and br_call_stream: sends the CALL and keeps c (cb or fns set by the caller)
 * in the table.  Takes c over: frees it on failure. */
static int call_start(br_req *req, const br_call_spec *spec, br_call_op *c, br_call_op **out)
{
    br_worker *w = req->worker;
    const char *method = spec->method ? spec->method : "GET";
    if (!c)
        return BR_ENOMEM;
    int rc = BR_EINVAL;
    if (!spec->path || spec->path[0] != '/' || !*method || strlen(method) > CALL_METHOD_MAX ||
        req->on_thread || req->ended)
        goto fail;
    if (spec->actor_type && (!spec->actor_type[0] || !spec->actor_key || !spec->actor_key[0]))
        goto fail;
    /* A draining worker still calls for the requests it finishes: the broker keeps it
     * until they are answered. */
    rc = BR_ECLOSED;
    br__link *link = br__worker_call_link(w, req->gen);
    if (!link)
        goto fail;
    uint32_t budget = br__req_budget(req, spec->timeout_ms);
    if (budget == 0)
        goto fail;
    rc = BR_ENOMEM;
    if (!w->calls) {
        w->calls = calloc(1, sizeof(*w->calls));
        if (!w->calls)
            goto fail;
    }
    br__calls *t = w->calls;
    rc = BR_EFULL;
    if (t->count >= BR_CALLS_MAX)
        goto fail;

    br_msg msg;
    memset(&msg, 0, sizeof(msg));
    msg.type = BR_MSG_CALL;
    br_request *m = &msg.u.request;
    const char *qmark = strchr(spec->path, '?');
    m->method = br_str_c(method);
    m->path.ptr = spec->path;
    m->path.len = (uint32_t)(qmark ? (size_t)(qmark - spec->path) : strlen(spec->path));
    int nq = call_query(req, qmark ? qmark + 1 : "", spec, &m->query);
    rc = BR_ELIMIT;
    if (nq < 0)
        goto fail;
    m->nquery = (uint32_t)nq;
    if (spec->body_len) {
        m->body.ptr = spec->body;
        m->body.len = (uint32_t)spec->body_len;
        m->content_type = br_str_c(spec->content_type ? spec->content_type : "");
    }
    m->deadline_ms = budget;
    m->trace = req->msg.trace;
    /* The request id and the verified caller travel on with the call. */
    m->request_id = req->msg.request_id;
    m->identity = req->msg.identity;
    if (spec->actor_type) { /* field 17: the actor, by type and key (PROTOCOL.md 10.1) */
        m->actor_type = br_str_c(spec->actor_type);
        m->actor_key = br_str_c(spec->actor_key);
    }

    c->w = w;
    c->req = req;
    c->id = ++t->next_id;
    c->gen = link->gen;
    m->id = c->id;
    /* Field 19 only to a broker that relays streams; any other gathers the answer. */
    c->windowed = c->streamed && link->call_stream;
    m->stream_window = c->windowed ? BR_CALL_STREAM_WINDOW : 0;
    rc = br__worker_send_gen(w, c->gen, &msg);
    if (rc != 0) {
        rc = rc == BR_ENOMEM || rc == BR_ELIMIT || rc == BR_EINVAL ? rc : BR_ECLOSED;
        goto fail;
    }
    br_call_op **b = bucket(t, c->id);
    c->hnext = *b;
    *b = c;
    t->count++;
    c->op.abort = call_abort;
    br__op_link(req, &c->op);
    if (out)
        *out = c;
    return 0;
fail:
    free(c);
    return rc;
}

int br_call(br_req *req, const br_call_spec *spec, br_result_fn cb, void *arg, br_call_op **out)
{
    if (!cb)
        return BR_EINVAL;
    br_call_op *c = calloc(1, sizeof(*c));
    if (c) {
        c->cb = cb;
        c->arg = arg;
    }
    return call_start(req, spec, c, out);
}

int br_call_stream(br_req *req, const br_call_spec *spec, const br_call_stream_fns *fns, void *arg,
                   br_call_op **out)
{
    if (!fns || !fns->on_end)
        return BR_EINVAL;
    br_call_op *c = calloc(1, sizeof(*c));
    if (c) {
        c->streamed = true;
        c->fns = *fns;
        c->arg = arg;
    }
    return call_start(req, spec, c, out);
}

/* ---------------------------------------------------------------------------------- */
/* Answers.                                                                            */

/* The "detail" string of a msgpack map body, or empty.  The string points into body. */
static br_str msgpack_detail(br_str body)
{
    br_value v;
    br_str detail;
    if (br_value_parse(body, &v) == 0 && br_value_str(br_value_get(v, "detail"), &detail) == 0)
        return detail;
    return (br_str){"", 0};
}

/* The call with that id in w's table, or NULL (cancelled, failed or answered). */
static br_call_op *find(br_worker *w, uint64_t id)
{
    if (!w->calls)
        return NULL;
    br_call_op *c = *bucket(w->calls, id);
    while (c && c->id != id)
        c = c->hnext;
    return c;
}

/* A callback of streamed call c is about to run / ran.  leave() is false when the
 * request ended meanwhile: c is freed then and nothing more may be delivered. */
static void enter(br_call_op *c)
{
    c->delivering = true;
    br__watch_enter(c->w, c->req->spec);
}

static bool leave(br_call_op *c)
{
    br__watch_leave(c->w);
    c->delivering = false;
    if (!c->aborted)
        return true;
    free(c);
    return false;
}

/* Streamed call c ends: on_end last, then c is freed. */
static void finish(br_call_op *c, bool complete, br_str error)
{
    table_remove(c->w->calls, c);
    br__op_unlink(c->req, &c->op);
    br__watch_enter(c->w, c->req->spec);
    c->fns.on_end(c->req, complete, error, c->arg);
    br__watch_leave(c->w);
    free(c);
}

/* Sends the broker CALL_STREAM_WINDOW for what c's callbacks took, in batches of at
 * least half the window (all of it on resume: `now`). */
static void regrant(br_call_op *c, bool now)
{
    if (!c->windowed || c->paused || c->taken == 0 ||
        (!now && c->taken < BR_CALL_STREAM_WINDOW / 2))
        return;
    br_msg msg;
    memset(&msg, 0, sizeof(msg));
    msg.type = BR_MSG_CALL_STREAM_WINDOW;
    msg.u.stream_window.id = c->id;
    msg.u.stream_window.bytes = c->taken;
    if (br__worker_send_gen(c->w, c->gen, &msg) == 0)
        c->taken = 0;
}

void br_call_stream_pause(br_call_op *c)
{
    if (c->streamed)
        c->paused = true;
}

void br_call_stream_resume(br_call_op *c)
{
    if (!c->streamed || !c->paused)
        return;
    c->paused = false;
    regrant(c, true);
}

/* A whole REPLY r to streamed call c: its head, its body as one chunk, its end. */
static void stream_reply(br_call_op *c, const br_reply *r)
{
    table_remove(c->w->calls, c); /* answered: an abort sends a CANCEL nobody needs */
    br_call_head head = {.status = r->status,
                         .content_type = r->content_type,
                         .headers = r->headers,
                         .nheaders = r->nheaders};
    if (r->status >= 400 && br_str_eq(r->content_type, "application/msgpack"))
        head.detail = msgpack_detail(r->body);
    if (c->fns.on_head) {
        enter(c);
        c->fns.on_head(c->req, &head, c->arg);
        if (!leave(c))
            return;
    }
    if (r->body.len && c->fns.on_chunk) {
        enter(c);
        c->fns.on_chunk(c->req, r->body.ptr, r->body.len, c->arg);
        if (!leave(c))
            return;
    }
    finish(c, true, br_str_c(""));
}

static void stream_start(br_worker *w, const br_stream_head *m)
{
    br_call_op *c = find(w, m->id);
    if (!c || !c->streamed || !c->fns.on_head)
        return;
    br_call_head head = {.status = m->status,
                         .content_type = m->content_type,
                         .headers = m->headers,
                         .nheaders = m->nheaders};
    enter(c);
    c->fns.on_head(c->req, &head, c->arg);
    leave(c);
}

static void stream_chunk(br_worker *w, uint64_t id, br_str data)
{
    br_call_op *c = find(w, id);
    if (!c || !c->streamed)
        return;
    if (c->fns.on_chunk && data.len) {
        enter(c);
        c->fns.on_chunk(c->req, data.ptr, data.len, c->arg);
        if (!leave(c))
            return;
    }
    c->taken += data.len;
    regrant(c, false);
}

bool br__calls_stream_msg(br_worker *w, const br_msg *m)
{
    br_call_op *c;
    switch (m->type) {
    case BR_MSG_CALL_STREAM_START:
        stream_start(w, &m->u.stream_start);
        return true;
    case BR_MSG_CALL_STREAM_CHUNK:
        stream_chunk(w, m->u.stream_chunk.id, m->u.stream_chunk.data);
        return true;
    case BR_MSG_CALL_STREAM_END:
        c = find(w, m->u.stream_end.id);
        if (c && c->streamed)
            finish(c, m->u.stream_end.error.len == 0, m->u.stream_end.error);
        return true;
    default:
        return false;
    }
}

void br__calls_reply(br_worker *w, const br_reply *r)
{
    br_call_op *c = find(w, r->id);
    if (!c)
        return; /* a call already cancelled or failed: stale */
    if (c->streamed) {
        stream_reply(c, r);
        return;
    }
    table_remove(w->calls, c);
    br_req *req = c->req;
    br__op_unlink(req, &c->op);

    /* The frame goes away after this callback: the answer moves into the arena. */
    br_result res;
    memset(&res, 0, sizeof(res));
    res.status = r->status;
    res.content_type.ptr = br_req_strdup(req, r->content_type);
    res.content_type.len = res.content_type.ptr ? r->content_type.len : 0;
    char *body = r->body.len ? br_req_alloc(req, r->body.len) : NULL;
    if (body) {
        memcpy(body, r->body.ptr, r->body.len);
        res.body.ptr = body;
        res.body.len = r->body.len;
    } else if (r->body.len) {
        res.status = 502;
        res.detail = br_str_c("out of memory keeping the answer");
    }
    if (!res.content_type.ptr)
        res.content_type = br_str_c("");
    /* Errors from the broker and from services are msgpack {"detail": ...}; a 422's
     * detail is a list, left in the body. */
    if (res.status >= 400 && !res.detail.len && br_str_eq(res.content_type, "application/msgpack"))
        res.detail = msgpack_detail(res.body);
    br__watch_enter(w, req->spec);
    c->cb(req, &res, c->arg);
    br__watch_leave(w);
    free(c);
}

void br__calls_fail_gen(br_worker *w, uint64_t gen)
{
    if (!w->calls || !w->calls->count)
        return;
    br_result res = {.status = 502,
                     .content_type = {"", 0},
                     .body = {"", 0},
                     .detail = br_str_c("the connection to the broker was lost")};
    /* A callback may end its request, which aborts that request's other calls: take
     * one call at a time from the table afresh. */
    for (size_t i = 0; i < CALL_BUCKETS; i++) {
        br_call_op *c = w->calls->buckets[i];
        while (c) {
            if (c->gen != gen) {
                c = c->hnext;
                continue;
            }
            if (c->streamed) {
                finish(c, false, res.detail);
                c = w->calls->buckets[i];
                continue;
            }
            table_remove(w->calls, c);
            br__op_unlink(c->req, &c->op);
            br__watch_enter(w, c->req->spec);
            c->cb(c->req, &res, c->arg);
            br__watch_leave(w);
            free(c);
            c = w->calls->buckets[i];
        }
    }
}
