/*
 * dispatch.c - requests inside a worker: routing a REQUEST to its handler, running it
 * on the loop (I/O) or the compute thread (CPU), cancels, and sending the one REPLY
 * every request gets (see worker_int.h for orphans and credit).
 */
#include <stdlib.h>
#include <string.h>

#include "worker_int.h"

/* ---------------------------------------------------------------------------------- */
/* The in-flight table: a list for walking, id buckets for CANCEL.                    */

int br__dispatch_init(br_worker *w)
{
    size_t n = 16;
    while (n < (size_t)w->capacity * 2)
        n *= 2;
    w->buckets = calloc(n, sizeof(*w->buckets));
    if (!w->buckets)
        return BR_ENOMEM;
    w->nbuckets = n;
    return 0;
}

void br__dispatch_release(br_worker *w)
{
    free(w->buckets);
    w->buckets = NULL;
    w->nbuckets = 0;
}

static size_t bucket_of(const br_worker *w, uint64_t id)
{
    /* Broker ids are usually sequential; a multiplicative hash spreads them anyway. */
    return (size_t)((id * 0x9E3779B97F4A7C15ull) >> 32) & (w->nbuckets - 1);
}

static void table_add(br_worker *w, br_req *req)
{
    req->prev = NULL;
    req->next = w->head;
    if (w->head)
        w->head->prev = req;
    w->head = req;
    size_t b = bucket_of(w, req->msg.id);
    req->hnext = w->buckets[b];
    w->buckets[b] = req;
    w->inflight++;
}

static void table_remove(br_worker *w, br_req *req)
{
    if (req->prev)
        req->prev->next = req->next;
    else
        w->head = req->next;
    if (req->next)
        req->next->prev = req->prev;
    br_req **pp = &w->buckets[bucket_of(w, req->msg.id)];
    while (*pp && *pp != req)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = req->hnext;
    w->inflight--;
}

/* ---------------------------------------------------------------------------------- */
/* Replies.                                                                            */

/* Answers a request that never got a br_req: a FastAPI-shaped error. */
static void reply_error_now(br_worker *w, uint64_t id, uint16_t status, const char *detail)
{
    br_writer *body = br_writer_new(0);
    br_msg msg;
    memset(&msg, 0, sizeof(msg));
    msg.type = BR_MSG_REPLY;
    msg.u.reply.id = id;
    msg.u.reply.status = status;
    if (body) {
        br_w_obj(body);
        br_w_key_cstr(body, "detail", detail);
        br_w_end(body);
        msg.u.reply.body = br_writer_bytes(body);
        if (msg.u.reply.body.len)
            msg.u.reply.content_type = br_str_c("application/msgpack");
    }
    br__worker_send(w, &msg);
    br_writer_destroy(&body);
}

/* Sends a REPLY on registration gen: in its link's batch for this turn when the broker
 * agreed to read replies batched (batch.c), else at once. */
static int send_reply(br_worker *w, uint64_t gen, const br_msg *msg)
{
    br__link *l = br__worker_link(w, gen);
    if (l && l->req_batch && l->registered && !w->closing)
        return br__batch_send(l, msg);
    return br__worker_send_gen(w, gen, msg);
}

/* The request ended: its reply goes to the broker if the registration it came under
 * is still the current one; an orphan gives its credit back instead.  Then it is
 * released. */
static void complete(br_req *req)
{
    br_worker *w = req->worker;
    const br_service_spec *svc = req->svc ? req->svc->spec : NULL;
    bool live = br__gen_live(w, req->gen);
    if (svc && svc->after && live && !req->streaming) {
        req->in_after = true;
        svc->after(req, req->status);
        req->in_after = false;
    }
    table_remove(w, req);
    w->served++;
    br_msg msg;
    memset(&msg, 0, sizeof(msg));
    if (live && req->streaming) {
        br__stream_end_msg(req, &msg);
        br__worker_send_gen(w, req->gen, &msg);
    } else if (live && req->actor) {
        msg.type = BR_MSG_ACTOR_REPLY;
        br__req_reply_msg(req, &msg.u.actor_reply.reply);
        br__actors_reply(req, &msg.u.actor_reply);
        int rc = br__worker_send_gen(w, req->gen, &msg);
        if (rc == BR_EINVAL || rc == BR_ELIMIT || rc == BR_ENOMEM) {
            memset(&msg.u.actor_reply, 0, sizeof(msg.u.actor_reply));
            msg.u.actor_reply.epoch = req->ax->epoch;
            msg.u.actor_reply.reply.id = req->msg.id;
            msg.u.actor_reply.reply.status = 500;
            br__worker_send_gen(w, req->gen, &msg);
        }
    } else if (live) {
        msg.type = BR_MSG_REPLY;
        br__req_reply_msg(req, &msg.u.reply);
        int rc = send_reply(w, req->gen, &msg);
        if (rc == BR_EINVAL || rc == BR_ELIMIT || rc == BR_ENOMEM) {
            /* The reply could not be encoded (a header the protocol refuses, say): the
             * request still gets its one answer. */
            memset(&msg.u.reply, 0, sizeof(msg.u.reply));
            msg.u.reply.id = req->msg.id;
            msg.u.reply.status = 500;
            br__worker_send_gen(w, req->gen, &msg);
        }
    } else {
        br__worker_orphan_done(w);
    }
    if (req->actor)
        br__actors_turn_done(w, req);
    br__req_release(req);
    br__worker_request_done(w);
}

void br__dispatch_replied(br_req *req)
{
    complete(req);
}

/* ---------------------------------------------------------------------------------- */
/* Running handlers.                                                                   */

static void cpu_work(uv_work_t *work)
{
    br_req *req = work->data;
    if (!br_req_cancelled(req))
        req->spec->handler(req);
}

static void cpu_after(uv_work_t *work, int status)
{
    (void)status; /* UV_ECANCELED never happens: nothing calls uv_cancel */
    complete(work->data);
}

void br__dispatch_request(br_worker *w, const br_request *m, const void *frame, size_t len,
                          const br_actor_request *actor)
{
    /* While draining, requests still come until the broker acknowledges our GOODBYE
     * (they crossed it on the wire): serve them like any other. */
    size_t svc = 0;
    /* A timer's tick or a call that named the actor directly has no route: the type's
     * first route gives its actor spec (on_tick, on_call). */
    const br_route_spec *spec =
        actor && m->route.len == 0
            ? br__registry_actor_route(&w->reg, m->service, actor->actor_type, &svc)
            : br__registry_route(&w->reg, m->service, m->method, m->route, &svc);
    if (!spec || (actor && (!spec->actor || w->reg.kind != BR_KIND_IO))) {
        reply_error_now(w, m->id, 404, "Not Found");
        return;
    }
    if (w->inflight >= w->capacity || (w->reg.kind == BR_KIND_CPU && w->inflight)) {
        /* A broker sent more than its credit allows: the windows of every broker and
         * the orphans never add up to more than the capacity (credit.h). */
        reply_error_now(w, m->id, 503, "worker is at capacity");
        return;
    }
    br_req *req = br__req_new(w, spec, m, frame, len);
    if (!req) {
        br__log("request %llu: out of memory copying it", (unsigned long long)m->id);
        reply_error_now(w, m->id, 503, "worker is out of memory");
        return;
    }
    req->gen = w->gen;
    req->svc = &w->svcs[svc];
    table_add(w, req);
    /* The service's middleware, on the loop thread for either kind; false means it
     * answered (and the request may be gone already). */
    const br_before_fn before = req->svc->spec->before;
    if (before) {
        br__watch_enter(w, spec);
        uint64_t id = req->msg.id;
        bool go_on = before(req);
        br__watch_leave(w);
        if (!go_on) {
            /* A hook that said no without replying would leave the request hanging. */
            for (br_req *r = w->buckets[bucket_of(w, id)]; r; r = r->hnext)
                if (r == req && !r->ended) {
                    br__log("request %llu: the before hook returned false without replying",
                            (unsigned long long)id);
                    br_reply_error(req, 500, "Internal Server Error");
                    break;
                }
            return;
        }
    }
    if (w->reg.kind == BR_KIND_CPU) {
        req->work = br__arena_alloc(&req->arena, sizeof(*req->work));
        if (!req->work) {
            br_reply_error(req, 503, "worker is out of memory");
            return;
        }
        req->on_thread = true;
        req->work->data = req;
        int rc = uv_queue_work(&w->loop, req->work, cpu_work, cpu_after);
        if (rc != 0) {
            br__log("uv_queue_work: %s", uv_strerror(rc));
            req->on_thread = false;
            br_reply_error(req, 503, "worker cannot start the computation");
        }
        return;
    }
    if (actor) {
        int rc = br__actors_enqueue(w, req, actor);
        if (rc != 0)
            br_reply_error(req, rc == BR_ENOMEM ? 503 : 404,
                           rc == BR_ENOMEM ? "worker is out of memory" : "Not Found");
        return;
    }
    br__dispatch_run(w, req);
}

void br__dispatch_run(br_worker *w, br_req *req)
{
    br_handler_fn handler = req->spec->handler;
    if (req->actor && req->msg.route.len == 0) {
        const br_actor_spec *a = req->spec->actor;
        handler = req->msg.tick_kind ? a->on_tick : req->msg.actor_type.len ? a->on_call : NULL;
        if (!handler) {
            br_reply_error(req, 404,
                           req->msg.tick_kind ? "the actor type has no on_tick handler"
                                              : "the actor type has no on_call handler");
            return;
        }
    }
    br__watch_enter(w, req->spec);
    handler(req);
    br__watch_leave(w);
}

/* ---------------------------------------------------------------------------------- */
/* Cancelling.                                                                         */

br_req *br__dispatch_find(br_worker *w, uint64_t id)
{
    for (br_req *r = w->buckets[bucket_of(w, id)]; r; r = r->hnext)
        if (r->msg.id == id && r->gen == w->gen)
            return r;
    return NULL;
}

void br__dispatch_cancel(br_worker *w, uint64_t id)
{
    br_req *r = br__dispatch_find(w, id);
    if (r)
        br__req_cancel(r);
}

/* Cancels every request in flight.  A cancel callback may end its own request at once
 * (complete() unlinks and frees it), so the next one is read first; it never ends
 * another request. */
void br__dispatch_cancel_all(br_worker *w)
{
    br_req *r = w->head;
    while (r) {
        br_req *next = r->next;
        br__req_cancel(r);
        r = next;
    }
}

uint32_t br__dispatch_count_gen(br_worker *w, uint64_t gen)
{
    uint32_t n = br__jobs_registration_lost(w, gen);
    for (const br_req *r = w->head; r; r = r->next)
        if (r->gen == gen)
            n++;
    return n;
}

uint32_t br__dispatch_registration_lost(br_worker *w, uint64_t gen)
{
    /* Counted first: a request that stops at once when cancelled calls
     * br__worker_orphan_done from inside the cancel. */
    uint32_t n = br__dispatch_count_gen(w, gen);
    w->orphans += n;
    br_req *r = w->head;
    while (r) {
        br_req *next = r->next;
        if (r->gen == gen)
            br__req_cancel(r);
        r = next;
    }
    return n;
}

uv_loop_t *br_req_loop(const br_req *req)
{
    return &req->worker->loop;
}

br_svc *br_req_svc(const br_req *req)
{
    return req->svc;
}

void *br_req_data(const br_req *req)
{
    return req->svc ? req->svc->data : NULL;
}
