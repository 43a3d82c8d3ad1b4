/*
 * dispatch.c - the life of one request in the broker, once it is a gw_exchange.
 *
 * intake.c turns an HTTP request into a gw_exchange, calls.c a worker's CALL: validated,
 * its body prepared, given an id (the key of the broker's id map) and a deadline (a
 * node in the broker's deadline heap).  From there it is either in flight at a
 * worker (on the worker's `calls` list, one credit spent) or waiting in its service's
 * queue.  It ends when the worker replies, or - while its client (an HTTP client or a
 * calling worker) still waits - when the deadline passes (504), the worker dies
 * (retry or 502), or the client leaves.  A call whose client was answered or left
 * while the worker still holds it is freed at once, after a CANCEL: only a small
 * gw_cancelled stays, keeping the worker's credit and bytes spent until its REPLY
 * (then stale) or its death, so that the broker never has more requests at a worker
 * than its credit, yet a worker that never answers holds no slot of max_pending or
 * of its service's limit.  A worker that leaves a CANCEL unanswered past
 * cancel_grace_ms is unhealthy - sent nothing - until it has answered them all.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "broker_int.h"
#include "json.h"

/* Longest content type copied from a REPLY; a longer one becomes octet-stream. */
#define CONTENT_TYPE_MAX 255

bool gw__is_hop_by_hop(const char *name, size_t len)
{
    static const char *const hop[] = {"connection", "keep-alive", "transfer-encoding", "te",
                                      "upgrade"};
    for (size_t i = 0; i < sizeof(hop) / sizeof(hop[0]); i++)
        if (strlen(hop[i]) == len && strncasecmp(name, hop[i], len) == 0)
            return true;
    return len >= 6 && strncasecmp(name, "proxy-", 6) == 0;
}

/* ---------------------------------------------------------------------------------- */
/* Answers the broker makes itself.                                                    */

/* {"detail":DETAIL} with `status`; with Retry-After: 1 when retry_after is set. */
void gw__broker_count_status(gw_broker *b, int status)
{
    if (status == 502)
        b->stats.status_502++;
    else if (status == 503)
        b->stats.status_503++;
    else if (status == 504)
        b->stats.status_504++;
}

void gw_broker_respond_error(gw_broker *b, gw_req *req, int status, bool retry_after,
                             const char *detail)
{
    gw__broker_count_status(b, status);
    gw_req_respond_error(req, status, retry_after, detail);
}

/* The detail of a 503 for a service without a live worker. */
static void unavailable_detail(char *detail, size_t cap, const gw_service *s)
{
    bool unhealthy = false;
    for (size_t i = 0; i < s->nworkers; i++)
        unhealthy = unhealthy || s->workers[i]->unhealthy;
    snprintf(detail, cap, "Service '%s' is unavailable: %s", s->name,
             unhealthy ? "its workers do not answer" : "no live worker");
}

void gw__dispatch_respond_unavailable(gw_broker *b, gw_req *req, const gw_service *s)
{
    char detail[GW_DETAIL_MAX];
    unavailable_detail(detail, sizeof(detail), s);
    gw_broker_respond_error(b, req, 503, true, detail);
}

/* ---------------------------------------------------------------------------------- */
/* Call bookkeeping.                                                                   */

void gw__exchange_free(gw_exchange *c)
{
    gw_broker *b = c->broker;
    gw__actors_tick_answered(c, 503); /* a tick freed unanswered (shutdown) */
    gw_activation *actor = gw__exchange_actor(c);
    if (actor)
        gw__actors_exchange_gone(c);
    if (c->worker) {
        c->worker->inflight--;
        c->worker->bytes -= c->bytes;
        c->worker = NULL;
    } else if (c->link.next != &c->link && !actor) {
        c->route->service->nqueued--;
    }
    if (c->counted)
        c->route->service->npending--;
    gw_list_remove(&c->link);
    gw_list_remove(&c->caller_link);
    gw_deadline_heap_remove(&b->deadlines, &c->deadline);
    gw_idmap_take(b->exchanges, c->id);
    br_buf_free(&c->converted);
    if (c->ax)
        br_buf_free(&c->ax->held);
    if (c->sbody)
        br_buf_free(&c->sbody->hold);
    gw__stream_free(c);
    free(c);
}

void gw__exchange_detach(gw_exchange *c)
{
    if (c->req)
        gw_req_on_abort(c->req, NULL, NULL);
    if (c->req && c->streaming)
        gw_req_on_drain(c->req, NULL, NULL);
    if (c->req && c->sbody)
        gw__body_detach(c);
    c->req = NULL;
    c->caller = NULL;
    gw_list_remove(&c->caller_link);
}

/* Answers whoever waits for c with a broker error; c stays allocated. */
static void call_answer_detail(gw_exchange *c, int status, bool retry_after, const char *detail)
{
    if (c->streaming && c->caller) {
        gw__stream_fail_caller(c, status, detail);
        return;
    }
    if (c->streaming) {
        gw__stream_cut(c); /* the status went out with the stream's start */
        return;
    }
    gw_req *req = c->req;
    gw_worker *caller = c->caller;
    gw__actors_tick_answered(c, status);
    gw__exchange_detach(c);
    if (req)
        gw_broker_respond_error(c->broker, req, status, retry_after, detail);
    else if (caller)
        gw__calls_reply_detail(c->broker, caller, c->caller_id, status, retry_after, detail);
}

void gw__exchange_fail(gw_exchange *c, int status, bool retry_after, const char *detail)
{
    call_answer_detail(c, status, retry_after, detail);
    gw__exchange_free(c);
}

void gw__exchange_abandon(gw_exchange *c)
{
    gw__exchange_detach(c);
    if (c->committing)
        return; /* the store's callback frees it */
    if (c->worker)
        gw__exchange_cancel(c);
    else
        gw__exchange_free(c);
}

void gw__exchange_cancel(gw_exchange *c)
{
    gw_broker *b = c->broker;
    gw_worker *w = c->worker;
    gw__exchange_detach(c);
    br_msg m = {.type = BR_MSG_CANCEL, .u.cancel = {.id = c->id}};
    if (gw__broker_send(b, w, NULL, 0, &m) == 0)
        b->stats.cancels++;
    /* The exchange goes; its credit, in-flight count and bytes stay with the worker,
     * held by the record below until the worker answers.  Without the record (out of
     * memory) they stay spent until the worker goes: never more sent than credit. */
    gw_cancelled *t = malloc(sizeof(*t));
    if (t && gw_idmap_put(b->cancelled, c->id, t) == 0) {
        *t = (gw_cancelled){.id = c->id, .worker = w, .bytes = c->bytes, .since = uv_now(b->loop)};
        gw_list_push_back(&w->cancelled, &t->link);
        w->ncancelled++;
    } else {
        free(t);
        gw_log(GW_LOG_ERROR, "broker",
               "cannot track cancelled request %llu of worker %s: out "
               "of memory; its credit stays spent",
               (unsigned long long)c->id, w->id);
    }
    gw_list_remove(&c->link);
    c->worker = NULL;
    gw__exchange_free(c);
}

/* Forgets cancelled request t; when its worker answered it (`answered`), the credit,
 * the in-flight count and the bytes it held come back. */
static void cancelled_free(gw_broker *b, gw_cancelled *t, bool answered)
{
    gw_worker *w = t->worker;
    gw_idmap_take(b->cancelled, t->id);
    gw_list_remove(&t->link);
    w->ncancelled--;
    if (answered) {
        if (w->credit < b->cfg.max_worker_credit)
            w->credit++;
        w->inflight--;
        w->bytes -= t->bytes;
    }
    free(t);
}

bool gw__dispatch_cancelled_answered(gw_broker *b, gw_worker *w, uint64_t id)
{
    gw_cancelled *t = gw_idmap_get(b->cancelled, id);
    if (!t || t->worker != w)
        return false;
    cancelled_free(b, t, true);
    return true;
}

void gw__dispatch_forget_cancelled(gw_broker *b, gw_worker *w)
{
    while (!gw_list_empty(&w->cancelled))
        cancelled_free(b, GW_CONTAINER_OF(w->cancelled.next, gw_cancelled, link), false);
}

void gw__exchange_fill_request(gw_exchange *c, br_request *r)
{
    gw_broker *b = c->broker;
    uint64_t now = uv_now(b->loop);
    uint64_t left = c->deadline.when > now ? c->deadline.when - now : 1;
    r->id = c->id;
    r->service = br_str_c(c->route->service->name);
    r->route = br_str_c(c->route->path);
    /* HEAD reaches a GET route as GET: the gateway drops the body itself. */
    r->method = br_str_c(c->route->method);
    r->actor_type = r->actor_key = r->tick_name = (br_str){0};
    r->tick_kind = c->tick_kind;
    const gw_exchange_actor *x = c->ax;
    if (c->tick_kind || (x && x->direct)) {
        /* No route: the worker runs the actor type's on_tick or on_call (PROTOCOL.md
         * 10.3). */
        r->route = (br_str){0};
        r->method = x->direct ? x->method : br_str_c("POST");
        r->tick_name = x->tick_name;
        if (x->direct) {
            r->actor_type = br_str_c(c->route->actor_type);
            r->actor_key = x->direct_key;
        }
    }
    r->path = c->path;
    r->params = c->params;
    r->nparams = c->nparams;
    r->query = c->query;
    r->nquery = c->nquery;
    r->headers = c->headers;
    r->nheaders = c->nheaders;
    r->content_type = c->content_type;
    r->body = c->body;
    r->deadline_ms = left > UINT32_MAX ? UINT32_MAX : (uint32_t)left;
    r->trace = br_str_c(c->trace);
    r->request_id = c->request_id;
    r->identity = c->identity;
    r->cookies = c->cookies;
    r->ncookies = c->ncookies;
}

int gw__exchange_send(gw_exchange *c, gw_worker *w, const br_msg *m)
{
    gw_broker *b = c->broker;
    if (c->sbody && w->proto_version < 2)
        return BR_EMSGTYPE; /* a body stream needs version 2's messages (PROTOCOL.md 14) */
    /* A REQUEST to a worker that reads them batched goes out at the end of the turn
     * with the turn's others (batch.c); the rest at once. */
    size_t bytes = 0;
    int rc = m->type == BR_MSG_REQUEST && w->req_batch ? gw__batch_send(b, w, m, &bytes)
                                                       : gw__broker_send(b, w, NULL, 0, m);
    if (rc != 0)
        return rc;
    if (!bytes)
        bytes = b->out.len;
    if (c->req)
        gw_edge_req_dispatched(c->req, w->id);
    if (c->link.next != &c->link && !gw__exchange_actor(c))
        c->route->service->nqueued--;
    gw_list_remove(&c->link);
    gw_list_push_back(&w->exchanges, &c->link);
    c->worker = w;
    c->bytes = bytes; /* what the message costs until the worker answers */
    w->bytes += c->bytes;
    w->credit--;
    w->inflight++;
    b->stats.dispatched++;
    return 0;
}

/* Sends c to w.  0, or gw__broker_send's error (nothing changed then). */
static int call_send(gw_exchange *c, gw_worker *w)
{
    br_msg m = {.type = BR_MSG_REQUEST};
    gw__exchange_fill_request(c, &m.u.request);
    return gw__exchange_send(c, w, &m);
}

/* Sends c to the least loaded live worker of its service or queues it (at the front
 * for a retry, which was admitted already; at the back, bounded, for a new one).
 * Answers the client itself when neither is possible. */
void gw__exchange_route(gw_exchange *c, bool front)
{
    gw_broker *b = c->broker;
    gw_service *s = c->route->service;
    if (c->route->actor_type[0]) {
        gw__actors_route(c, front);
        return;
    }
    /* A new request waits behind queued ones, so that the queue stays FIFO. */
    while (front || gw_list_empty(&s->queue)) {
        gw_worker *w = gw_registry_pick(s, b->cfg.max_worker_bytes);
        if (!w)
            break;
        int rc = call_send(c, w);
        if (rc == 0)
            return;
        if (!gw_broker_send_failed(rc)) {
            gw__exchange_fail(c, rc == BR_ELIMIT ? 413 : 500, false,
                              rc == BR_ELIMIT ? "Request Entity Too Large"
                                              : "Internal Server Error");
            return;
        }
        /* w is marked lost now: pick another one. */
    }
    char detail[GW_DETAIL_MAX];
    if (gw_service_live(s) == 0) {
        unavailable_detail(detail, sizeof(detail), s);
        gw__exchange_fail(c, 503, true, detail);
        return;
    }
    if (!front && s->nqueued >= b->cfg.queue_limit) {
        snprintf(detail, sizeof(detail),
                 "Service '%s' is overloaded: %zu requests are waiting already", s->name,
                 s->nqueued);
        gw__exchange_fail(c, 503, true, detail);
        return;
    }
    if (front)
        gw_list_push_front(&s->queue, &c->link);
    else
        gw_list_push_back(&s->queue, &c->link);
    s->nqueued++;
}

void gw__dispatch_pump(gw_broker *b, gw_service *s)
{
    while (!gw_list_empty(&s->queue)) {
        gw_worker *w = gw_registry_pick(s, b->cfg.max_worker_bytes);
        if (!w)
            break;
        gw_exchange *c = GW_CONTAINER_OF(s->queue.next, gw_exchange, link);
        int rc = call_send(c, w);
        if (rc != 0 && !gw_broker_send_failed(rc))
            gw__exchange_fail(c, rc == BR_ELIMIT ? 413 : 500, false,
                              rc == BR_ELIMIT ? "Request Entity Too Large"
                                              : "Internal Server Error");
    }
    if (gw_service_live(s) > 0)
        return;
    char detail[GW_DETAIL_MAX];
    unavailable_detail(detail, sizeof(detail), s);
    while (!gw_list_empty(&s->queue))
        gw__exchange_fail(GW_CONTAINER_OF(s->queue.next, gw_exchange, link), 503, true, detail);
}

void gw__exchange_admit(gw_exchange *c, uint32_t budget_ms)
{
    gw_broker *b = c->broker;
    gw_service *s = c->route->service;
    c->id = ++b->next_id;
    c->budget_ms = budget_ms;
    c->deadline.when = uv_now(b->loop) + budget_ms;
    if (s->npending >= b->cfg.service_max_pending) {
        /* One service in trouble keeps its share of max_pending, not the others'. */
        char detail[GW_DETAIL_MAX];
        snprintf(detail, sizeof(detail),
                 "Service '%s' is overloaded: %zu requests are pending already", s->name,
                 s->npending);
        gw__exchange_fail(c, 503, true, detail);
        return;
    }
    if (gw_idmap_put(b->exchanges, c->id, c) != 0 ||
        gw_deadline_heap_push(&b->deadlines, &c->deadline) != 0) {
        gw__exchange_fail(c, 503, true, "Service Unavailable: too many requests in flight");
        return;
    }
    c->counted = true;
    s->npending++;
    if (gw_deadline_heap_top(&b->deadlines) == &c->deadline)
        gw__dispatch_arm_deadline(b);
    gw__exchange_route(c, false);
}

void gw__exchange_set_deadline(gw_exchange *c, uint64_t when)
{
    gw_broker *b = c->broker;
    gw_deadline_heap_remove(&b->deadlines, &c->deadline);
    c->deadline.when = when;
    if (gw_deadline_heap_push(&b->deadlines, &c->deadline) == 0 &&
        gw_deadline_heap_top(&b->deadlines) == &c->deadline)
        gw__dispatch_arm_deadline(b);
}

void gw__dispatch_arm_deadline(gw_broker *b)
{
    gw_deadline *top = gw_deadline_heap_top(&b->deadlines);
    if (!top || b->closing)
        return;
    uint64_t now = uv_now(b->loop);
    uv_timer_start(&b->deadline_timer, gw__dispatch_on_deadline,
                   top->when > now ? top->when - now : 0, 0);
}

/* ---------------------------------------------------------------------------------- */
/* Replies, deadlines, dead workers.                                                   */

/* A REPLY header the client may see: not hop-by-hop, not one the server writes, and
 * free of bytes that could split the response. */
static bool reply_header_ok(const br_pair *h)
{
    static const char *const own[] = {"content-length", "content-type", "date"};
    if (h->name.len == 0 || gw__is_hop_by_hop(h->name.ptr, h->name.len))
        return false;
    for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++)
        if (strlen(own[i]) == h->name.len && strncasecmp(h->name.ptr, own[i], h->name.len) == 0)
            return false;
    for (uint32_t i = 0; i < h->name.len; i++)
        if (h->name.ptr[i] <= ' ' || h->name.ptr[i] > '~' || h->name.ptr[i] == ':')
            return false;
    for (uint32_t i = 0; i < h->value.len; i++)
        if (h->value.ptr[i] == '\r' || h->value.ptr[i] == '\n' || h->value.ptr[i] == '\0')
            return false;
    return true;
}

/* Reply headers answered from a stack array; more take one allocation. */
#define REPLY_HEADERS_STACK 16

/* Sends the worker's answer to the client: msgpack bodies become JSON unless the
 * client asked for msgpack; extra headers are copied NUL-terminated.  When worker_id
 * is not NULL one more header, x-barista-worker, names the worker that answered, so
 * that operators can tell scaled workers apart (--worker-header, off by default: it
 * names internal hosts). */
void gw__dispatch_respond_reply(gw_broker *b, gw_req *req, const br_reply *r, bool want_msgpack,
                                const char *worker_id)
{
    if (r->status < 200) {
        gw_broker_respond_error(b, req, 502, false,
                                "Bad Gateway: the worker sent an interim status");
        return;
    }
    char type[CONTENT_TYPE_MAX + 1];
    const char *content_type = "application/octet-stream";
    const void *body = r->body.ptr;
    size_t body_len = r->body.len;
    if (br_str_eq(r->content_type, "application/msgpack") && !want_msgpack) {
        b->json.len = 0;
        if (gw_msgpack_to_json(r->body.ptr, r->body.len, &b->json) != 0) {
            gw_broker_respond_error(b, req, 502, false,
                                    "Bad Gateway: the worker sent invalid msgpack");
            return;
        }
        content_type = "application/json";
        body = b->json.data;
        body_len = b->json.len;
    } else if (r->content_type.len > 0 && r->content_type.len <= CONTENT_TYPE_MAX) {
        memcpy(type, r->content_type.ptr, r->content_type.len);
        type[r->content_type.len] = '\0';
        content_type = type;
    }
    /* Header fields are counted strings and gw_req_respond copies them, so they can
     * point straight into the worker's frame; the usual few fit in a stack array. */
    gw_header stack[REPLY_HEADERS_STACK + 1];
    gw_header *extra = stack;
    uint32_t nheaders = r->nheaders;
    if (nheaders > REPLY_HEADERS_STACK) {
        extra = malloc((nheaders + 1) * sizeof(*extra));
        if (!extra) {
            gw_log(GW_LOG_ERROR, "broker", "malloc(%u reply headers) failed: dropping them",
                   nheaders);
            extra = stack;
            nheaders = 0;
        }
    }
    size_t nextra = 0;
    for (uint32_t i = 0; i < nheaders; i++) {
        const br_pair *h = &r->headers[i];
        if (reply_header_ok(h))
            extra[nextra++] = (gw_header){h->name.ptr, h->name.len, h->value.ptr, h->value.len};
    }
    if (worker_id)
        extra[nextra++] = (gw_header){"x-barista-worker", 16, worker_id, strlen(worker_id)};
    int rc = gw_req_respond(req, r->status, extra, nextra, content_type, body, body_len);
    if (extra != stack)
        free(extra);
    if (rc == 0)
        return;
    /* Not even the server's own 500 could be built: try a short answer once more, and
     * otherwise leave the request to its connection's timeouts.  Its exchange was
     * detached before (no abort callback points at it), so nothing dangles. */
    gw_log(GW_LOG_ERROR, "broker", "gw_req_respond(%d, %zu bytes) failed: %s; answering 502",
           r->status, body_len, br_strerror(rc));
    gw__broker_count_status(b, 502);
    rc = gw_req_respond_error(req, 502, false, "Bad Gateway: the reply could not be forwarded");
    if (rc != 0)
        gw_log(GW_LOG_ERROR, "broker",
               "gw_req_respond_error(502) failed too: %s; the client "
               "gets no answer on this connection",
               br_strerror(rc));
}

void gw_broker_respond_reply(gw_broker *self, gw_req *req, const br_reply *r, bool want_msgpack)
{
    gw__dispatch_respond_reply(self, req, r, want_msgpack, NULL);
}

/* Debug mode: logs a structured reply that breaks the schema its route declares for
 * its status, naming the route and every error.  The client still gets the reply. */
static void check_reply(const gw_exchange *c, const br_reply *r)
{
    const gw_route_entry *e = c->route;
    if (!br_str_eq(r->content_type, "application/msgpack"))
        return;
    br_buf errors = {.max = 64 * 1024};
    if (gw_contract_check_reply(e->contract, r->status, r->body, &errors) == BR_EVALUE)
        gw_log(GW_LOG_ERROR, "contracts", "service %s: %s %s breaks its declared %u response: %.*s",
               e->service->name, e->method, e->path, (unsigned)r->status, (int)errors.len,
               (const char *)errors.data);
    br_buf_free(&errors);
}

/* w's credit grew (a REPLY, a late REPLY, a STREAM_END): a drained worker is forgotten;
 * otherwise its services' queues are served, then the attached subsystems get what is
 * left. */
void gw__dispatch_after_reply(gw_broker *b, gw_worker *w)
{
    if (w->unhealthy && w->ncancelled == 0) {
        w->unhealthy = false;
        gw_log(GW_LOG_INFO, "broker", "worker %s answered every CANCEL: it gets work again", w->id);
    }
    if (w->draining && w->inflight == 0) {
        gw__broker_forget(b, w, "drained");
        return;
    }
    for (size_t i = 0; i < w->nservices; i++)
        if (!gw_list_empty(&w->services[i]->queue))
            gw__dispatch_pump(b, w->services[i]);
    gw__broker_offer_credit(b, w); /* what credit the requests left */
}

void gw__exchange_returned(gw_exchange *c)
{
    gw_worker *w = c->worker;
    if (w->credit < c->broker->cfg.max_worker_credit)
        w->credit++;
    if (gw__exchange_actor(c))
        gw__actors_exchange_gone(c);
    w->inflight--;
    w->bytes -= c->bytes;
    c->worker = NULL;
    gw_list_remove(&c->link);
}

void gw__exchange_deliver(gw_exchange *c, gw_worker *w, const br_reply *r)
{
    gw_broker *b = c->broker;
    gw_req *req = c->req;
    gw_worker *caller = c->caller;
    bool tick = c->tick_kind != 0;
    if (b->cfg.check_replies && !tick && !(c->ax && c->ax->direct))
        check_reply(c, r);
    gw__actors_tick_answered(c, r->status);
    gw__exchange_detach(c);
    if (req) {
        /* A reply carrying jobs goes out once they are durable (the job queue). */
        if (!gw__broker_reply_jobs(b, req, r, c->want_msgpack))
            gw__dispatch_respond_reply(b, req, r, c->want_msgpack,
                                       b->cfg.worker_header && w ? w->id : NULL);
    } else {
        /* A caller, or nobody any more: the handler's work is done, so its jobs are
         * written all the same; nobody waits for them. */
        gw__broker_reply_jobs(b, NULL, r, false);
        if (caller)
            gw__calls_forward(b, caller, c->caller_id, r);
    }
    if (req || caller || tick)
        b->stats.replies++;
    else
        b->stats.stale_replies++;
    gw__exchange_free(c);
}

void gw__dispatch_reply(gw_broker *b, gw_worker *w, const br_reply *r)
{
    gw_exchange *c = gw_idmap_get(b->exchanges, r->id);
    if (!c || c->worker != w) {
        b->stats.stale_replies++;
        gw_cancelled *t = gw_idmap_get(b->cancelled, r->id);
        if (!t || t->worker != w)
            return; /* nothing of w's: no credit */
        /* The late answer to a cancelled request: the handler's work is done, so the
         * jobs it asked for are written all the same; nobody waits for the reply. */
        gw__broker_reply_jobs(b, NULL, r, false);
        cancelled_free(b, t, true);
        gw__dispatch_after_reply(b, w);
        return;
    }
    gw__exchange_returned(c);
    gw__exchange_deliver(c, w, r);
    gw__dispatch_after_reply(b, w);
}

void gw__dispatch_on_deadline(uv_timer_t *timer)
{
    gw_broker *b = timer->data;
    uint64_t now = uv_now(b->loop);
    gw_deadline *top;
    while ((top = gw_deadline_heap_top(&b->deadlines)) && top->when <= now) {
        gw_exchange *c = GW_CONTAINER_OF(top, gw_exchange, deadline);
        gw_deadline_heap_remove(&b->deadlines, top);
        char detail[GW_DETAIL_MAX];
        snprintf(detail, sizeof(detail), "Gateway Timeout: no reply from service '%s' within %u ms",
                 c->route->service->name, c->budget_ms);
        call_answer_detail(c, 504, false, detail);
        if (c->committing)
            continue; /* the store's callback frees it */
        if (c->worker)
            gw__exchange_cancel(c);
        else
            gw__exchange_free(c);
    }
    gw__dispatch_arm_deadline(b);
}

/* True when a request of w's that died may go to another worker: an idempotent
 * method, not retried before, retries enabled, budget left, and somewhere to go. */
static bool may_retry(const gw_broker *b, const gw_exchange *c)
{
    uint64_t now = uv_now(b->loop);
    return b->cfg.retry_idempotent && c->idempotent && !c->retried && !c->streaming &&
           c->deadline.when > now + b->cfg.retry_min_budget_ms &&
           gw_service_live(c->route->service) > 0;
}

void gw__dispatch_worker_gone(gw_broker *b, gw_worker *w)
{
    while (!gw_list_empty(&w->exchanges)) {
        gw_exchange *c = GW_CONTAINER_OF(w->exchanges.next, gw_exchange, link);
        gw_list_remove(&c->link);
        c->worker = NULL;
        w->inflight--;
        w->bytes -= c->bytes;
        if (gw__exchange_actor(c))
            gw__actors_exchange_gone(c);
        if (!gw__exchange_waited(c)) {
            gw__exchange_free(c);
        } else if (may_retry(b, c)) {
            c->retried = true;
            b->stats.retries++;
            gw__exchange_route(c, true);
        } else {
            gw__exchange_fail(c, 502, false, "Bad Gateway: worker died while handling the request");
        }
    }
}

void gw__dispatch_fail_all(gw_broker *b)
{
    static const char detail[] = "Service Unavailable: the gateway is shutting down";
    for (gw_list *n = b->actors_all.next; n != &b->actors_all; n = n->next) {
        gw_activation *a = GW_CONTAINER_OF(n, gw_activation, all_link);
        while (!gw_list_empty(&a->queue))
            gw__exchange_fail(GW_CONTAINER_OF(a->queue.next, gw_exchange, link), 503, true, detail);
    }
    for (size_t i = 0; i < gw_registry_nservices(b->reg); i++) {
        gw_service *s = gw_registry_service(b->reg, i);
        while (!gw_list_empty(&s->queue))
            gw__exchange_fail(GW_CONTAINER_OF(s->queue.next, gw_exchange, link), 503, true, detail);
    }
    for (size_t i = 0; i < gw_registry_nworkers(b->reg); i++) {
        gw_worker *w = gw_registry_worker(b->reg, i);
        while (!gw_list_empty(&w->exchanges))
            gw__exchange_fail(GW_CONTAINER_OF(w->exchanges.next, gw_exchange, link), 503, true,
                              detail);
    }
}

/* Marks w unhealthy when its oldest unanswered CANCEL is older than the grace. */
static void check_health(gw_broker *b, gw_worker *w, uint64_t now)
{
    if (w->unhealthy || gw_list_empty(&w->cancelled))
        return;
    const gw_cancelled *oldest = GW_CONTAINER_OF(w->cancelled.next, gw_cancelled, link);
    if (now - oldest->since < b->cfg.cancel_grace_ms)
        return;
    w->unhealthy = true;
    gw_log(GW_LOG_WARN, "broker",
           "worker %s is unhealthy: %u cancelled requests unanswered, the oldest for %llu ms "
           "(--cancel-grace %u ms); it gets no new work until it answers them",
           w->id, w->ncancelled, (unsigned long long)(now - oldest->since), b->cfg.cancel_grace_ms);
    /* Its services' queued requests go to the others, or get their 503 now. */
    for (size_t i = 0; i < w->nservices; i++)
        gw__dispatch_pump(b, w->services[i]);
}

void gw__dispatch_tick(gw_broker *b, uint64_t now)
{
    for (size_t i = 0; i < gw_registry_nworkers(b->reg); i++)
        check_health(b, gw_registry_worker(b->reg, i), now);
    /* Backwards: retiring service i moves the last one, already visited, into i. */
    for (size_t i = gw_registry_nservices(b->reg); i-- > 0;) {
        gw_service *s = gw_registry_service(b->reg, i);
        if (s->nworkers > 0 || s->empty_since == 0 || s->npending > 0 || s->nqueued > 0 ||
            now - s->empty_since < b->cfg.service_grace_ms)
            continue;
        gw_log(GW_LOG_INFO, "broker",
               "service %s retired: no worker for %llu ms (--service-grace); its %zu routes "
               "are removed",
               s->name, (unsigned long long)(now - s->empty_since), s->nroutes);
        b->stats.services_retired++;
        gw_registry_retire(b->reg, s);
    }
}
