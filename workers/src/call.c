/*
 * call.c - service-to-service calls (barista/async.h): a CALL to the broker, and the
 * REPLY that answers it routed back to the caller's callback (PROTOCOL.md 10.1).
 *
 * Calls in flight are found by id in a bucket table on the worker.  Each call is also
 * an operation of its request (async_int.h): when the request ends first, the call is
 * abandoned - CANCEL goes to the broker and the callback never runs.
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
    br_result_fn cb;          /* answer callback */
    void *arg;                /* its argument */
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

static void table_remove(br__calls *t, br_call_op *c)
{
    br_call_op **pp = bucket(t, c->id);
    while (*pp && *pp != c)
        pp = &(*pp)->hnext;
    if (*pp) {
        *pp = c->hnext;
        t->count--;
    }
}

static void send_cancel(br_worker *w, uint64_t gen, uint64_t id)
{
    br_msg msg;
    memset(&msg, 0, sizeof(msg));
    msg.type = BR_MSG_CANCEL;
    msg.u.cancel.id = id;
    br__worker_send_gen(w, gen, &msg);
}

/* The request ended first: tell the broker, forget the call. */
static void call_abort(br__op *op)
{
    br_call_op *c = (br_call_op *)op;
    table_remove(c->w->calls, c);
    send_cancel(c->w, c->gen, c->id);
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

int br_call(br_req *req, const br_call_spec *spec, br_result_fn cb, void *arg, br_call_op **out)
{
    br_worker *w = req->worker;
    const char *method = spec->method ? spec->method : "GET";
    if (!cb || !spec->path || spec->path[0] != '/' || !*method ||
        strlen(method) > CALL_METHOD_MAX || req->on_thread || req->ended)
        return BR_EINVAL;
    if (spec->actor_type && (!spec->actor_type[0] || !spec->actor_key || !spec->actor_key[0]))
        return BR_EINVAL;
    /* A draining worker still calls for the requests it finishes: the broker keeps it
     * until they are answered. */
    br__link *link = br__worker_call_link(w, req->gen);
    if (!link)
        return BR_ECLOSED;
    uint32_t budget = br__req_budget(req, spec->timeout_ms);
    if (budget == 0)
        return BR_ECLOSED;
    if (!w->calls) {
        w->calls = calloc(1, sizeof(*w->calls));
        if (!w->calls)
            return BR_ENOMEM;
    }
    br__calls *t = w->calls;
    if (t->count >= BR_CALLS_MAX)
        return BR_EFULL;

    br_msg msg;
    memset(&msg, 0, sizeof(msg));
    msg.type = BR_MSG_CALL;
    br_request *m = &msg.u.request;
    const char *qmark = strchr(spec->path, '?');
    m->method = br_str_c(method);
    m->path.ptr = spec->path;
    m->path.len = (uint32_t)(qmark ? (size_t)(qmark - spec->path) : strlen(spec->path));
    int nq = call_query(req, qmark ? qmark + 1 : "", spec, &m->query);
    if (nq < 0)
        return BR_ELIMIT;
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

    br_call_op *c = calloc(1, sizeof(*c));
    if (!c)
        return BR_ENOMEM;
    c->w = w;
    c->req = req;
    c->id = ++t->next_id;
    c->gen = link->gen;
    c->cb = cb;
    c->arg = arg;
    m->id = c->id;
    int rc = br__worker_send_gen(w, c->gen, &msg);
    if (rc != 0) {
        free(c);
        return rc == BR_ENOMEM || rc == BR_ELIMIT || rc == BR_EINVAL ? rc : BR_ECLOSED;
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

void br__calls_reply(br_worker *w, const br_reply *r)
{
    if (!w->calls)
        return;
    br_call_op *c = *bucket(w->calls, r->id);
    while (c && c->id != r->id)
        c = c->hnext;
    if (!c)
        return; /* a call already cancelled or failed: stale */
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
