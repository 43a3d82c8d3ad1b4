/*
 * broker.c - the broker's socket, registration, heartbeats and shutdown.
 *
 * Every message a worker sends arrives in on_recv as [routing id, message].  READY
 * goes to the registry; REPLY to dispatch.c; CREDIT, HEARTBEAT and GOODBYE change the
 * worker's state here.  One timer ticking every heartbeat_ms sends HEARTBEATs to
 * workers we have been quiet towards and forgets workers that have been silent for
 * liveness periods.  Nothing a peer sends can crash the broker: undecodable messages
 * are counted, logged at most once per tick, and dropped.
 */
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include "broker_int.h"
#include "zap.h"

/* Per-peer high-water marks: the credit cap plus this margin.  Credit bounds what we
 * queue towards a worker and what it sends back, so the marks only need to exceed it
 * by room for control messages (CANCEL, HEARTBEAT, GOODBYE); they still bound what a
 * peer that ignores the protocol can pile up. */
#define BROKER_HWM_MARGIN 4096
/* How long shutdown gives the GOODBYEs to leave before the socket is dropped. */
#define BROKER_SHUTDOWN_LINGER_MS 200
/* Longest reason of a GOODBYE we send. */
#define BROKER_REASON_MAX 256
/* How the reason of a GOODBYE that refuses a registration starts (PROTOCOL.md 6.1). */
#define GW_BROKER_REFUSED "refused: "

void gw_broker_config_defaults(gw_broker_config *cfg)
{
    *cfg = (gw_broker_config){
        .endpoint = GW_BROKER_ENDPOINT,
        .heartbeat_ms = GW_BROKER_HEARTBEAT_MS,
        .liveness = GW_BROKER_LIVENESS,
        .default_timeout_ms = GW_BROKER_DEFAULT_TIMEOUT_MS,
        .max_timeout_ms = GW_BROKER_MAX_TIMEOUT_MS,
        .queue_limit = GW_BROKER_QUEUE_LIMIT,
        .max_pending = GW_BROKER_MAX_PENDING,
        .max_workers = GW_BROKER_MAX_WORKERS,
        .retry_min_budget_ms = GW_BROKER_RETRY_MIN_BUDGET_MS,
        .retry_idempotent = true,
        .limits = br_limits_default,
        .max_worker_credit = GW_BROKER_MAX_WORKER_CREDIT,
        .max_worker_bytes = GW_BROKER_MAX_WORKER_BYTES,
        .service_max_pending = GW_BROKER_SERVICE_MAX_PENDING,
        .cancel_grace_ms = GW_BROKER_CANCEL_GRACE_MS,
        .service_grace_ms = GW_BROKER_SERVICE_GRACE_MS,
        .actor_idle_ms = GW_BROKER_ACTOR_IDLE_MS,
        .max_actors = GW_BROKER_MAX_ACTORS,
        .actor_queue_limit = GW_BROKER_ACTOR_QUEUE_LIMIT,
        .stream_idle_ms = GW_BROKER_STREAM_IDLE_MS,
        .stream_buffer_bytes = GW_BROKER_STREAM_BUFFER_BYTES,
        .call_gather_max = GW_BROKER_CALL_GATHER_MAX,
        .call_gather_total = GW_BROKER_CALL_GATHER_TOTAL,
        .stream_body_max = GW_BROKER_STREAM_BODY_MAX,
        .worker_header = false,
    };
}

/* True when every field that bounds something is set (retry_min_budget_ms may be 0). */
static bool config_valid(const gw_broker_config *c)
{
    const br_limits *l = &c->limits;
    return c->endpoint && c->endpoint[0] && c->heartbeat_ms && c->liveness &&
           c->default_timeout_ms && c->max_timeout_ms && c->queue_limit && c->max_pending &&
           c->max_workers && l->max_message && l->max_string && l->max_body && l->max_pairs &&
           l->max_services && l->max_routes && l->max_params && l->max_tasks && l->max_jobs &&
           c->max_worker_credit && c->max_worker_bytes && c->service_max_pending &&
           c->cancel_grace_ms && c->service_grace_ms && c->actor_idle_ms && c->max_actors &&
           c->actor_queue_limit && c->stream_idle_ms && c->stream_buffer_bytes >= 1024 &&
           c->call_gather_total;
}

gw_broker *gw_broker_new(uv_loop_t *loop, gw_router *router, const gw_broker_config *cfg)
{
    if (!cfg || !config_valid(cfg)) {
        gw_log(GW_LOG_ERROR, "broker", "gw_broker_new: no endpoint or a zero limit");
        return NULL;
    }
    gw_broker *self = calloc(1, sizeof(*self));
    if (!self)
        return NULL;
    self->cfg = *cfg;
    self->loop = loop;
    self->router = router;
    self->endpoint = strdup(self->cfg.endpoint);
    self->cfg.endpoint = self->endpoint;
    self->decoder = br_decoder_new(&self->cfg.limits);
    self->reg = gw_registry_new(router, gw__dispatch_handler, self, self->cfg.max_workers);
    if (self->reg)
        gw_registry_set_stream_body_cap(self->reg, self->cfg.stream_body_max);
    self->exchanges = gw_idmap_new(self->cfg.max_pending);
    /* Cancelled requests are bounded by the credit of the workers that hold them. */
    self->cancelled = gw_idmap_new((size_t)self->cfg.max_workers * self->cfg.max_worker_credit);
    self->actors = gw_idmap_new(self->cfg.max_actors);
    gw_list_init(&self->actors_all);
    gw_list_init(&self->actor_timers);
    if (!self->endpoint || !self->decoder || !self->reg || !self->exchanges || !self->cancelled ||
        !self->actors || gw__ws_init(self) != 0) {
        gw_log(GW_LOG_ERROR, "broker", "gw_broker_new: out of memory");
        gw_broker_destroy(&self);
        return NULL;
    }
    gw_deadline_heap_init(&self->deadlines, self->cfg.max_pending);
    self->out.max = self->cfg.limits.max_message;
    self->json.max = self->cfg.limits.max_message;
    return self;
}

void gw_broker_destroy(gw_broker **self_p)
{
    if (!self_p || !*self_p)
        return;
    gw_broker *self = *self_p;
    /* Every gathered answer was freed with its exchange: a byte still counted is a
     * release path that forgot it (call_stream.c). */
    if (self->gather_bytes != 0)
        gw_log(GW_LOG_ERROR, "broker", "gathered CALL answers still count %zu bytes at exit",
               self->gather_bytes);
    assert(self->gather_bytes == 0);
    /* Shutdown emptied every queue; the registry takes its routes out of the router. */
    for (size_t i = 0; self->reg && self->cancelled && i < gw_registry_nworkers(self->reg); i++)
        gw__dispatch_forget_cancelled(self, gw_registry_worker(self->reg, i));
    if (self->actors)
        gw__actors_free_all(self);
    gw_idmap_destroy(&self->actors);
    gw_registry_destroy(&self->reg);
    gw_idmap_destroy(&self->exchanges);
    gw_idmap_destroy(&self->cancelled);
    gw__ws_fini(self);
    gw_deadline_heap_free(&self->deadlines);
    br_decoder_destroy(&self->decoder);
    br_buf_free(&self->out);
    br_buf_free(&self->json);
    free(self->endpoint);
    free(self);
    *self_p = NULL;
}

int gw__broker_send(gw_broker *b, gw_worker *w, const void *ident, size_t ident_len,
                    const br_msg *msg)
{
    if (!b->zs)
        return BR_ECLOSED;
    /* The WebSocket messages batched for w go first: the order of what one peer sends
     * is the order the other sees (PROTOCOL.md 2). */
    if (w && w->batch.count)
        gw__batch_flush(b, w);
    b->out.len = 0;
    /* A registered worker gets its own version; any other peer the oldest one, which
     * every peer reads. */
    int rc = br_msg_encode_version(msg, w ? w->proto_version : BR_PROTO_VERSION_MIN, &b->out);
    if (rc != 0) {
        gw_log(GW_LOG_ERROR, "broker", "br_msg_encode(%s) failed: %s", br_msg_type_name(msg->type),
               br_strerror(rc));
        return rc;
    }
    if (w) {
        ident = w->ident;
        ident_len = w->ident_len;
    }
    rc = br_zsock_send(b->zs, ident, ident_len, b->out.data, b->out.len);
    if (rc != 0 && w) {
        if (!w->lost)
            gw_log(GW_LOG_ERROR, "broker",
                   "br_zsock_send(%s) to worker %s failed: %s; dropping the worker",
                   br_msg_type_name(msg->type), w->id, br_strerror(rc));
        w->lost = true;
    }
    if (rc == 0 && w)
        w->last_send = uv_now(b->loop);
    return rc;
}

/* Sends GOODBYE(reason) to a peer that is not (or no longer) a registered worker. */
static void send_goodbye(gw_broker *b, const void *ident, size_t ident_len, const char *reason)
{
    br_msg m = {.type = BR_MSG_GOODBYE, .u.goodbye = {.reason = br_str_c(reason)}};
    gw__broker_send(b, NULL, ident, ident_len, &m);
}

void gw__broker_forget(gw_broker *b, gw_worker *w, const char *why)
{
    /* A worker that drained left as it said it would; any other removal lost it. */
    gw_log_level level = strcmp(why, "drained") == 0 ? GW_LOG_INFO : GW_LOG_WARN;
    gw_log(level, "broker", "worker %s (%s) removed: %s; %u requests in flight", w->id,
           gw_kind_name(w->kind), why, w->inflight);
    w->lost = true;
    gw__ws_worker_gone(b, w, false);
    gw__calls_caller_gone(b, w);
    gw__dispatch_worker_gone(b, w);
    gw__actors_worker_gone(b, w);
    for (size_t i = 0; i < GW_BROKER_MAX_ATTACHED; i++)
        if (b->hooks_data[i] && b->hooks[i].worker_gone)
            b->hooks[i].worker_gone(b->hooks_data[i], w);
    for (size_t i = 0; i < w->nservices; i++)
        gw__dispatch_pump(b, w->services[i]);
    gw__dispatch_forget_cancelled(b, w);
    gw_registry_remove(b->reg, w, uv_now(b->loop));
}

/* With CURVE on, checks that the key of the connection that sent READY (its User-Id,
 * set by the ZAP handler) may serve every service the READY announces; the key goes
 * to key_out.  0, or BR_EVALUE with the reason. */
static int check_key(const gw_broker *b, const br_zframe *frame, const br_ready *r,
                     char key_out[GW_KEY_LEN + 1], char *reason, size_t cap)
{
    key_out[0] = '\0';
    if (!b->cfg.curve)
        return 0;
    const char *key = frame->msg ? zmq_msg_gets(frame->msg, "User-Id") : NULL;
    if (!key || strlen(key) != GW_KEY_LEN || !gw_curve_known(b->cfg.curve, key)) {
        snprintf(reason, cap, "key %s is not authorised", key ? key : "(none)");
        return BR_EVALUE;
    }
    memcpy(key_out, key, GW_KEY_LEN + 1);
    for (uint32_t i = 0; i < r->nservices; i++)
        if (gw_curve_may_serve(b->cfg.curve, key, r->services[i].name, reason, cap) != 0)
            return BR_EVALUE;
    return 0;
}

/* READY: register, answer WELCOME, and hand the new credit queued work.  A peer that
 * registers again (its worker restarted its state) gets its new registration first
 * and loses the old one after, so that the old one's GET/HEAD requests are retried on
 * the new one rather than answered 502 for want of a live worker. */
static void on_ready(gw_broker *b, const br_zframe *ident, const br_zframe *frame, unsigned version,
                     const br_ready *r)
{
    gw_worker *old = gw_registry_find(b->reg, ident->data, ident->len);
    char reason[BROKER_REASON_MAX];
    char key[GW_KEY_LEN + 1];
    reason[0] = '\0';
    gw_worker *w = NULL;
    int rc = check_key(b, frame, r, key, reason, sizeof(reason));
    if (rc == 0)
        rc = gw_registry_add(b->reg, ident->data, ident->len, r, uv_now(b->loop), &w, reason,
                             sizeof(reason));
    if (rc != 0) {
        if (rc == BR_ENOMEM)
            snprintf(reason, sizeof(reason), "gateway out of memory");
        gw_log(GW_LOG_WARN, "broker", "READY from %.*s refused: %s", (int)r->worker_id.len,
               r->worker_id.ptr, reason);
        b->stats.workers_refused++;
        if (old) {
            b->stats.workers_died++;
            gw__broker_forget(b, old, "registered again");
        }
        char goodbye[BROKER_REASON_MAX + 16];
        snprintf(goodbye, sizeof(goodbye), "%s%s", GW_BROKER_REFUSED, reason);
        send_goodbye(b, ident->data, ident->len, goodbye);
        return;
    }
    memcpy(w->key, key, sizeof(w->key));
    w->proto_version = (uint8_t)version;
    w->ws_batch = (r->features & BR_FEATURE_WS_BATCH) != 0;
    /* Requests travel in the batch frame: both bits or neither. */
    w->req_batch = w->ws_batch && (r->features & BR_FEATURE_REQ_BATCH) != 0;
    w->call_stream = (r->features & BR_FEATURE_CALL_STREAM) != 0 && version >= 2;
    if (w->credit > b->cfg.max_worker_credit) {
        gw_log(GW_LOG_WARN, "broker",
               "worker %s announced capacity %u: capped at %u "
               "(--max-worker-credit)",
               w->id, r->capacity, b->cfg.max_worker_credit);
        w->credit = b->cfg.max_worker_credit;
    }
    b->stats.workers_joined++;
    uint32_t features = BR_FEATURE_WS_BATCH | (w->req_batch ? BR_FEATURE_REQ_BATCH : 0) |
                        (w->call_stream ? BR_FEATURE_CALL_STREAM : 0);
    for (size_t i = 0; i < GW_BROKER_MAX_ATTACHED; i++)
        if (b->hooks_data[i] && b->hooks[i].takes_handoffs &&
            b->hooks[i].takes_handoffs(b->hooks_data[i]))
            features |= BR_FEATURE_JOB_HANDOFF;
    br_msg m = {.type = BR_MSG_WELCOME,
                .u.welcome = {.broker_id = br_str_c(b->broker_id),
                              .heartbeat_ms = b->cfg.heartbeat_ms,
                              .features = r->features & features}};
    rc = gw__broker_send(b, w, NULL, 0, &m);
    if (old) {
        /* After WELCOME: the old registration's retries may go to the new one. */
        b->stats.workers_died++;
        gw__broker_forget(b, old, "registered again");
    }
    if (rc != 0)
        return; /* lost: reaped at the next tick */
    gw_log(GW_LOG_INFO, "broker", "worker %s joined: %s, capacity %u, %zu services%s%s", w->id,
           gw_kind_name(w->kind), w->credit, w->nservices, w->key[0] ? ", key " : "",
           w->key[0] ? gw_curve_name(b->cfg.curve, w->key) : "");
    for (size_t i = 0; i < w->nservices; i++)
        gw__dispatch_pump(b, w->services[i]);
    for (size_t i = 0; i < GW_BROKER_MAX_ATTACHED; i++)
        if (b->hooks_data[i] && b->hooks[i].worker_joined)
            b->hooks[i].worker_joined(b->hooks_data[i], w, r);
}

void gw_broker_keys_changed(gw_broker *self)
{
    if (!self->cfg.curve || !self->started || self->closing)
        return;
    /* Backwards: forgetting worker i moves the last one, already visited, into i. */
    for (size_t i = gw_registry_nworkers(self->reg); i-- > 0;) {
        gw_worker *w = gw_registry_worker(self->reg, i);
        char why[BROKER_REASON_MAX - 16], reason[BROKER_REASON_MAX];
        int rc = gw_curve_known(self->cfg.curve, w->key) ? 0 : BR_EVALUE;
        if (rc != 0)
            snprintf(why, sizeof(why), "key %s is no longer authorised", w->key);
        for (size_t k = 0; rc == 0 && k < w->nservices; k++)
            rc = gw_curve_may_serve(self->cfg.curve, w->key, br_str_c(w->services[k]->name), why,
                                    sizeof(why));
        if (rc == 0 || w->lost)
            continue;
        snprintf(reason, sizeof(reason), "%s%s", GW_BROKER_REFUSED, why);
        gw_log(GW_LOG_WARN, "broker", "worker %s: %s", w->id, reason);
        send_goodbye(self, w->ident, w->ident_len, reason);
        self->stats.workers_refused++;
        gw__broker_forget(self, w, "its key was withdrawn");
    }
}

/* Counts a message that cannot be used and logs it unless a line was logged this
 * tick already. */
static void bad_message(gw_broker *b, const gw_worker *w, const char *what, int err)
{
    b->stats.bad_messages++;
    if (b->bad_logged_tick) {
        b->bad_suppressed++;
        return;
    }
    b->bad_logged_tick = true;
    gw_log(GW_LOG_WARN, "broker", "dropped a message from %s: %s (%s)",
           w ? w->id : "an unregistered peer", what, err ? br_strerror(err) : "protocol violation");
}

/* ---------------------------------------------------------------------------------- */
/* Attached subsystems: the job queue sends JOBs under the same credit as requests.    */

int gw_broker_attach(gw_broker *self, const gw_broker_hooks *hooks, void *data)
{
    if (!self || !hooks || !data)
        return BR_EINVAL;
    for (size_t i = 0; i < GW_BROKER_MAX_ATTACHED; i++)
        if (!self->hooks_data[i]) {
            self->hooks[i] = *hooks;
            self->hooks_data[i] = data;
            return 0;
        }
    return BR_ELIMIT;
}

void gw_broker_detach(gw_broker *self, void *data)
{
    for (size_t i = 0; self && data && i < GW_BROKER_MAX_ATTACHED; i++)
        if (self->hooks_data[i] == data) {
            self->hooks_data[i] = NULL;
            self->hooks[i] = (gw_broker_hooks){0};
        }
}

bool gw_broker_accepting(const gw_broker *self)
{
    return self->started && !self->closing;
}

void gw__broker_offer_credit(gw_broker *b, gw_worker *w)
{
    gw__actors_credit(b, w);
    for (size_t i = 0; i < GW_BROKER_MAX_ATTACHED && w->credit > 0 && gw_worker_live(w); i++)
        if (b->hooks_data[i] && b->hooks[i].credit)
            b->hooks[i].credit(b->hooks_data[i], w);
}

bool gw__broker_reply_jobs(gw_broker *b, gw_req *req, const br_reply *r, bool want_msgpack)
{
    if (r->njobs == 0)
        return false;
    for (size_t i = 0; i < GW_BROKER_MAX_ATTACHED; i++)
        if (b->hooks_data[i] && b->hooks[i].reply_jobs)
            return b->hooks[i].reply_jobs(b->hooks_data[i], req, r, want_msgpack);
    if (!b->jobs_logged) {
        gw_log(GW_LOG_WARN, "broker",
               "a REPLY carries %u jobs but no job queue is attached: ignored", r->njobs);
        b->jobs_logged = true;
    }
    return false;
}

int gw_broker_send_job(gw_broker *self, gw_worker *w, const br_job *job)
{
    if (!gw_broker_accepting(self) || w->credit == 0 || !gw_worker_live(w) ||
        w->bytes >= self->cfg.max_worker_bytes)
        return BR_EFULL;
    br_msg m = {.type = BR_MSG_JOB, .u.job = *job};
    int rc = gw__broker_send(self, w, NULL, 0, &m);
    if (rc != 0)
        return rc;
    w->credit--;
    w->inflight++;
    return 0;
}

int gw_broker_send_job_cancel(gw_broker *self, gw_worker *w, br_str job_id)
{
    if (!gw_worker_live(w))
        return BR_ENOTFOUND;
    if (!br_msg_type_in_version(BR_MSG_JOB_CANCEL, w->proto_version))
        return BR_EVERSION; /* a version-1 worker has no JOB_CANCEL */
    br_msg m = {.type = BR_MSG_JOB_CANCEL, .u.job_cancel = {.job_id = job_id}};
    return gw__broker_send(self, w, NULL, 0, &m);
}

int gw_broker_send_workflow_reply(gw_broker *self, gw_worker *w, const br_workflow_reply *m)
{
    if (w->lost) /* a draining worker still hears: its handlers finish */
        return BR_ENOTFOUND;
    if (!br_msg_type_in_version(BR_MSG_WORKFLOW_REPLY, w->proto_version))
        return BR_EVERSION;
    br_msg msg = {.type = BR_MSG_WORKFLOW_REPLY, .u.workflow_reply = *m};
    return gw__broker_send(self, w, NULL, 0, &msg);
}

/* A WORKFLOW: the job queue makes it and answers; without one the answer is 503. */
static void on_workflow(gw_broker *b, gw_worker *w, const br_workflow *m)
{
    for (size_t i = 0; i < GW_BROKER_MAX_ATTACHED; i++)
        if (b->hooks_data[i] && b->hooks[i].workflow) {
            b->hooks[i].workflow(b->hooks_data[i], w, m);
            return;
        }
    br_workflow_reply r = {
        .id = m->id, .status = 503, .detail = br_str_c("Service Unavailable: no job queue")};
    gw_broker_send_workflow_reply(b, w, &r);
}

static void on_job_progress(gw_broker *b, gw_worker *w, const br_job_progress *m)
{
    for (size_t i = 0; i < GW_BROKER_MAX_ATTACHED; i++)
        if (b->hooks_data[i] && b->hooks[i].job_progress) {
            if (!b->hooks[i].job_progress(b->hooks_data[i], w, m))
                b->stats.stale_replies++;
            return;
        }
    b->stats.stale_replies++;
}

static void on_job_handoff(gw_broker *b, gw_worker *w, const br_job_handoff *m)
{
    for (size_t i = 0; i < GW_BROKER_MAX_ATTACHED; i++)
        if (b->hooks_data[i] && b->hooks[i].job_handoff) {
            if (!b->hooks[i].job_handoff(b->hooks_data[i], w, m))
                b->stats.stale_replies++;
            return;
        }
    b->stats.stale_replies++;
}

static void on_job_ack(gw_broker *b, gw_worker *w, const br_job_ack *m)
{
    for (size_t i = 0; i < GW_BROKER_MAX_ATTACHED; i++)
        if (b->hooks_data[i] && b->hooks[i].job_ack) {
            if (!b->hooks[i].job_ack(b->hooks_data[i], w, m))
                b->stats.stale_replies++;
            return;
        }
    b->stats.stale_replies++;
}

/* A JOB_RESULT: the job queue settles the job, the broker its credit - requests
 * first, then jobs, as for a REPLY. */
static void on_job_result(gw_broker *b, gw_worker *w, const br_job_result *m)
{
    gw_job_settle settled = GW_JOB_SETTLE_UNKNOWN;
    for (size_t i = 0; i < GW_BROKER_MAX_ATTACHED; i++)
        if (b->hooks_data[i] && b->hooks[i].job_result) {
            settled = b->hooks[i].job_result(b->hooks_data[i], w, m);
            break;
        }
    if (settled != GW_JOB_SETTLE_DONE)
        b->stats.stale_replies++;
    if (settled == GW_JOB_SETTLE_UNKNOWN)
        return; /* credit for nothing we sent: ignored */
    if (w->credit < b->cfg.max_worker_credit)
        w->credit++;
    if (w->inflight)
        w->inflight--;
    if (w->draining && w->inflight == 0) {
        gw__broker_forget(b, w, "drained");
        return;
    }
    for (size_t i = 0; i < w->nservices && w->credit > 0; i++)
        if (!gw_list_empty(&w->services[i]->queue))
            gw__dispatch_pump(b, w->services[i]);
    gw__broker_offer_credit(b, w);
}

void gw__broker_worker_msg(gw_broker *b, gw_worker *w, const br_msg *m)
{
    switch (m->type) {
    case BR_MSG_WS_BATCH:
        gw__batch_recv(b, w, m->u.ws_batch.messages);
        break;
    case BR_MSG_REPLY:
        gw__dispatch_reply(b, w, &m->u.reply);
        break;
    case BR_MSG_CREDIT: {
        /* The window - credit plus what is in flight - stays within the gateway's cap. */
        uint64_t window = (uint64_t)w->credit + w->inflight + m->u.credit.credit;
        uint32_t cap = b->cfg.max_worker_credit;
        if (window <= cap)
            w->credit += m->u.credit.credit;
        else
            w->credit = cap > w->inflight ? cap - w->inflight : 0;
        for (size_t i = 0; i < w->nservices && gw_worker_live(w); i++)
            gw__dispatch_pump(b, w->services[i]);
        gw__broker_offer_credit(b, w);
        break;
    }
    case BR_MSG_HEARTBEAT:
        break;
    case BR_MSG_GOODBYE:
        gw_log(GW_LOG_INFO, "broker", "worker %s is draining (%.*s); %u requests in flight", w->id,
               (int)m->u.goodbye.reason.len, m->u.goodbye.reason.ptr, w->inflight);
        w->draining = true;
        gw__ws_worker_gone(b, w, true);
        /* The acknowledgement: nothing more will be sent to it, so it may exit once
         * what it holds is done.  Requests that crossed its GOODBYE still arrive and
         * are served (PROTOCOL.md, draining). */
        gw__broker_send(b, w, w->ident, w->ident_len,
                        &(br_msg){.type = BR_MSG_GOODBYE,
                                  .u.goodbye = {.reason = br_str_c("drain acknowledged")}});
        if (w->inflight == 0) {
            gw__broker_forget(b, w, "drained");
        } else {
            /* Queued work now has one worker fewer; answer it if none is left. */
            for (size_t i = 0; i < w->nservices; i++)
                gw__dispatch_pump(b, w->services[i]);
        }
        break;
    case BR_MSG_CALL:
        gw__calls_handle(b, w, &m->u.request);
        break;
    case BR_MSG_CANCEL:
        gw__calls_cancel(b, w, m->u.cancel.id);
        break;
    case BR_MSG_JOB_ACK:
        on_job_ack(b, w, &m->u.job_ack);
        break;
    case BR_MSG_JOB_RESULT:
        on_job_result(b, w, &m->u.job_result);
        break;
    case BR_MSG_JOB_PROGRESS:
        on_job_progress(b, w, &m->u.job_progress);
        break;
    case BR_MSG_JOB_HANDOFF:
        on_job_handoff(b, w, &m->u.job_handoff);
        break;
    case BR_MSG_WORKFLOW:
        on_workflow(b, w, &m->u.workflow);
        break;
    case BR_MSG_TASK_POLICY:
        for (size_t i = 0; i < GW_BROKER_MAX_ATTACHED; i++)
            if (b->hooks_data[i] && b->hooks[i].task_policy) {
                b->hooks[i].task_policy(b->hooks_data[i], w, &m->u.task_policy);
                break;
            }
        break;
    case BR_MSG_STREAM_START:
        gw__stream_start(b, w, &m->u.stream_start);
        break;
    case BR_MSG_STREAM_CHUNK:
        gw__stream_chunk(b, w, &m->u.stream_chunk);
        break;
    case BR_MSG_STREAM_END:
        gw__stream_end(b, w, &m->u.stream_end);
        break;
    case BR_MSG_STREAM_WINDOW:
        gw__body_window(b, w, &m->u.stream_window);
        break;
    case BR_MSG_CALL_STREAM_WINDOW:
        gw__stream_call_window(b, w, &m->u.stream_window);
        break;
    case BR_MSG_ACTOR_TIMER:
        gw__actors_timer_msg(b, w, &m->u.actor_timer);
        break;
    default:
        if (!gw__ws_worker_msg(b, w, m))
            bad_message(b, w, br_msg_type_name(m->type), 0);
        break;
    }
}

static void on_recv(br_zsock *zs, const br_zframe *frames, size_t nframes, void *arg)
{
    gw_broker *b = arg;
    (void)zs;
    if (b->closing)
        return;
    if (nframes != 2) {
        bad_message(b, NULL, "not [routing id, message]", 0);
        return;
    }
    gw_worker *w = gw_registry_find(b->reg, frames[0].data, frames[0].len);
    br_msg m;
    int rc = br_decoder_decode(b->decoder, frames[1].data, frames[1].len, &m);
    if (rc != 0) {
        unsigned version = 0, type = 0;
        if (br_msg_peek(frames[1].data, frames[1].len, &version, &type) == 0 &&
            type == BR_MSG_READY && !w) {
            char reason[BROKER_REASON_MAX];
            snprintf(reason, sizeof(reason), "%sundecodable READY: %s", GW_BROKER_REFUSED,
                     br_strerror(rc));
            b->stats.workers_refused++;
            send_goodbye(b, frames[0].data, frames[0].len, reason);
        }
        bad_message(b, w, "undecodable", rc);
        return;
    }
    if (w)
        w->last_recv = uv_now(b->loop);
    if (m.type == BR_MSG_READY) {
        on_ready(b, &frames[0], &frames[1], m.version, &m.u.ready);
    } else if (w && m.type == BR_MSG_ACTOR_REPLY) {
        gw__actors_reply(b, w, &m.u.actor_reply, frames[1].data, frames[1].len);
    } else if (w) {
        gw__broker_worker_msg(b, w, &m);
    } else if (m.type != BR_MSG_GOODBYE) {
        /* Probably a worker from before a gateway restart: it will send READY. */
        send_goodbye(b, frames[0].data, frames[0].len, "unknown worker");
    }
}

/* Every heartbeat_ms: HEARTBEAT to workers we were quiet towards, and goodbye to
 * workers that were silent for too long or whose connection was found gone. */
static void on_tick(uv_timer_t *timer)
{
    gw_broker *b = timer->data;
    uint64_t now = uv_now(b->loop);
    if (b->bad_suppressed) {
        gw_log(GW_LOG_WARN, "broker", "%llu more bad messages dropped",
               (unsigned long long)b->bad_suppressed);
        b->bad_suppressed = 0;
    }
    b->bad_logged_tick = false;
    gw__dispatch_tick(b, now);
    gw__actors_tick(b, now);
    /* Backwards: forgetting worker i moves the last one, already visited, into i. */
    for (size_t i = gw_registry_nworkers(b->reg); i-- > 0;) {
        gw_worker *w = gw_registry_worker(b->reg, i);
        if (!w)
            continue;
        uint32_t period =
            w->heartbeat_ms > b->cfg.heartbeat_ms ? w->heartbeat_ms : b->cfg.heartbeat_ms;
        if (w->lost || now - w->last_recv > (uint64_t)period * b->cfg.liveness) {
            b->stats.workers_died++;
            gw__broker_forget(b, w, w->lost ? "connection lost" : "silent past its liveness");
            continue;
        }
        if (now - w->last_send + 10 >= b->cfg.heartbeat_ms) {
            br_msg m = {.type = BR_MSG_HEARTBEAT};
            gw__broker_send(b, w, NULL, 0, &m);
        }
    }
}

/* A fresh random broker id, so that workers can tell a restarted gateway. */
static void make_broker_id(gw_broker *b)
{
    static const char hex[] = "0123456789abcdef";
    uint8_t raw[GW_BROKER_ID_LEN / 2 + 8];
    if (uv_random(NULL, NULL, raw, sizeof(raw), 0, NULL) != 0) {
        /* Not cryptographic, only distinct per start: time and address. */
        uint64_t t = uv_hrtime() ^ (uint64_t)(uintptr_t)b;
        for (size_t i = 0; i < sizeof(raw); i++)
            raw[i] = (uint8_t)(t >> ((i % 8) * 8)) ^ (uint8_t)(i * 37);
    }
    for (size_t i = 0; i < GW_BROKER_ID_LEN / 2; i++) {
        b->broker_id[2 * i] = hex[raw[i] >> 4];
        b->broker_id[2 * i + 1] = hex[raw[i] & 15];
    }
    b->broker_id[GW_BROKER_ID_LEN] = '\0';
    memcpy(&b->rng, raw + GW_BROKER_ID_LEN / 2, sizeof(b->rng));
    b->rng |= 1; /* xorshift must not start at zero */
}

/* Sets one integer socket option, logging a failure. */
static int set_opt(void *sock, int opt, const void *val, size_t len, const char *name)
{
    if (zmq_setsockopt(sock, opt, val, len) == 0)
        return 0;
    gw_log(GW_LOG_ERROR, "broker", "zmq_setsockopt(%s) failed: %s", name,
           zmq_strerror(zmq_errno()));
    return BR_EIO;
}

/* CURVE on the ROUTER, with the ZAP handler bound before the ROUTER can accept. */
static int start_curve(gw_broker *self, void *sock)
{
    char why[256];
    self->zap = gw_zap_new(self->loop, self->zctx, self->cfg.curve);
    if (!self->zap)
        return BR_EIO;
    if (br_curve_server_setup(sock, &self->cfg.curve->server, GW_ZAP_DOMAIN, why, sizeof(why)) !=
        0) {
        gw_log(GW_LOG_ERROR, "broker", "%s", why);
        return BR_EIO;
    }
    return 0;
}

int gw_broker_start(gw_broker *self)
{
    if (self->started || self->closing)
        return BR_EINVAL;
    make_broker_id(self);
    self->zctx = zmq_ctx_new();
    if (!self->zctx) {
        gw_log(GW_LOG_ERROR, "broker", "zmq_ctx_new failed: %s", zmq_strerror(zmq_errno()));
        return BR_EIO;
    }
    void *sock = zmq_socket(self->zctx, ZMQ_ROUTER);
    if (!sock) {
        gw_log(GW_LOG_ERROR, "broker", "zmq_socket(ROUTER) failed: %s", zmq_strerror(zmq_errno()));
        goto fail;
    }
    int one = 1, zero = 0, hwm = (int)self->cfg.max_worker_credit + BROKER_HWM_MARGIN;
    int64_t maxmsg = (int64_t)self->cfg.limits.max_message;
    if (set_opt(sock, ZMQ_ROUTER_MANDATORY, &one, sizeof(one), "ROUTER_MANDATORY") != 0 ||
        set_opt(sock, ZMQ_LINGER, &zero, sizeof(zero), "LINGER") != 0 ||
        set_opt(sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof(maxmsg), "MAXMSGSIZE") != 0 ||
        set_opt(sock, ZMQ_SNDHWM, &hwm, sizeof(hwm), "SNDHWM") != 0 ||
        set_opt(sock, ZMQ_RCVHWM, &hwm, sizeof(hwm), "RCVHWM") != 0)
        goto fail;
    if (self->cfg.curve && start_curve(self, sock) != 0)
        goto fail;
    if (zmq_bind(sock, self->endpoint) != 0) {
        gw_log(GW_LOG_ERROR, "broker", "zmq_bind(%s) failed: %s", self->endpoint,
               zmq_strerror(zmq_errno()));
        goto fail;
    }
    self->zs = br_zsock_new(self->loop, sock, on_recv, self);
    if (!self->zs)
        goto fail;
    self->zsocket = sock;
    uv_timer_init(self->loop, &self->tick_timer);
    uv_timer_init(self->loop, &self->deadline_timer);
    uv_timer_init(self->loop, &self->actor_timer);
    gw__batch_start(self);
    self->actor_timer.data = self;
    self->tick_timer.data = self;
    self->deadline_timer.data = self;
    uv_timer_start(&self->tick_timer, on_tick, self->cfg.heartbeat_ms, self->cfg.heartbeat_ms);
    self->started = true;
    gw_log(GW_LOG_INFO, "broker", "listening for workers on %s (broker id %s)%s", self->endpoint,
           self->broker_id, self->zap ? ", CURVE keys required" : "");
    return 0;
fail:
    if (sock)
        zmq_close(sock);
    /* Its socket closes at once, as zmq_ctx_term needs; its handles with the loop. */
    gw_zap_shutdown(self->zap, NULL, NULL);
    self->zap = NULL;
    zmq_ctx_term(self->zctx);
    self->zctx = NULL;
    return BR_EIO;
}

bool gw_broker_endpoint_local(const char *endpoint)
{
    static const char *const local_schemes[] = {"ipc://", "inproc://"};
    for (size_t i = 0; i < sizeof(local_schemes) / sizeof(local_schemes[0]); i++)
        if (strncmp(endpoint, local_schemes[i], strlen(local_schemes[i])) == 0)
            return true;
    if (strncmp(endpoint, "tcp://", 6) != 0)
        return false;
    const char *host = endpoint + 6;
    const char *colon = strrchr(host, ':');
    if (!colon || colon == host)
        return false;
    size_t n = (size_t)(colon - host);
    if ((n == 9 && memcmp(host, "localhost", 9) == 0) || (n == 5 && memcmp(host, "[::1]", 5) == 0))
        return true;
    /* 127.0.0.0/8, as a dotted quad of decimal numbers. */
    if (n < 9 || memcmp(host, "127.", 4) != 0)
        return false;
    int dots = 0, digits = 0;
    for (size_t i = 4; i < n; i++) {
        if (host[i] == '.') {
            if (digits == 0)
                return false;
            dots++;
            digits = 0;
        } else if (host[i] >= '0' && host[i] <= '9' && digits < 3) {
            digits++;
        } else {
            return false;
        }
    }
    return dots == 2 && digits > 0;
}

int gw_broker_endpoint(const gw_broker *self, char *buf, size_t cap)
{
    if (!self->started || self->closing)
        return BR_ECLOSED;
    size_t len = cap;
    if (zmq_getsockopt(self->zsocket, ZMQ_LAST_ENDPOINT, buf, &len) != 0)
        return BR_ELIMIT;
    return 0;
}

bool gw_broker_ready(const gw_broker *self)
{
    return self->started && !self->closing && gw_registry_ready(self->reg);
}

void gw_broker_stats_get(const gw_broker *self, gw_broker_stats *out)
{
    *out = self->stats;
    gw__actors_stats(self, out);
    out->call_gather_bytes = self->gather_bytes;
    out->workers = 0;
    out->workers_draining = 0;
    out->workers_unhealthy = 0;
    out->inflight = 0;
    out->cancelled = 0;
    out->inflight_bytes = 0;
    out->queued = 0;
    for (size_t i = 0; i < gw_registry_nworkers(self->reg); i++) {
        const gw_worker *w = gw_registry_worker(self->reg, i);
        if (gw_worker_live(w))
            out->workers++;
        else if (w->draining)
            out->workers_draining++;
        else if (w->unhealthy)
            out->workers_unhealthy++;
        out->inflight += w->inflight;
        out->cancelled += w->ncancelled;
        out->inflight_bytes += w->bytes;
    }
    out->services = (unsigned)gw_registry_nservices(self->reg);
    for (size_t i = 0; i < out->services; i++)
        out->queued += gw_registry_service(self->reg, i)->nqueued;
}

const struct gw_registry *gw_broker_registry(const gw_broker *self)
{
    return self->reg;
}

/* One handle (or the socket) finished closing; the last one ends the shutdown. */
static void on_closed(void *arg)
{
    gw_broker *b = arg;
    if (--b->open_handles > 0)
        return;
    /* Waits at most BROKER_SHUTDOWN_LINGER_MS for the GOODBYEs still queued. */
    zmq_ctx_term(b->zctx);
    b->zctx = NULL;
    if (b->done)
        b->done(b->done_arg);
}

static void on_timer_closed(uv_handle_t *handle)
{
    on_closed(handle->data);
}

void gw__broker_handle_closed(gw_broker *b)
{
    on_closed(b);
}

void gw_broker_shutdown(gw_broker *self, void (*done)(void *arg), void *arg)
{
    if (self->closing)
        return;
    self->closing = true;
    if (!self->started) {
        if (done)
            done(arg);
        return;
    }
    self->done = done;
    self->done_arg = arg;
    gw__dispatch_fail_all(self);
    gw__ws_close_all(self);
    for (size_t i = 0; i < gw_registry_nworkers(self->reg); i++) {
        gw_worker *w = gw_registry_worker(self->reg, i);
        br_msg m = {.type = BR_MSG_GOODBYE,
                    .u.goodbye = {.reason = br_str_c("gateway shutting down")}};
        if (!w->lost)
            gw__broker_send(self, w, NULL, 0, &m);
    }
    /* LINGER 0 would drop the GOODBYEs just queued; give them a short, bounded time. */
    int linger = BROKER_SHUTDOWN_LINGER_MS;
    set_opt(self->zsocket, ZMQ_LINGER, &linger, sizeof(linger), "LINGER");
    self->open_handles = self->zap ? 7 : 6; /* the zsock, 3 timers, 2 batch handles, zap */
    uv_timer_stop(&self->tick_timer);
    uv_timer_stop(&self->deadline_timer);
    uv_timer_stop(&self->actor_timer);
    uv_close((uv_handle_t *)&self->actor_timer, on_timer_closed);
    uv_close((uv_handle_t *)&self->tick_timer, on_timer_closed);
    gw__batch_close_handles(self);
    uv_close((uv_handle_t *)&self->deadline_timer, on_timer_closed);
    br_zsock_close(self->zs, on_closed, self);
    self->zs = NULL;
    self->zsocket = NULL;
    if (self->zap)
        gw_zap_shutdown(self->zap, on_closed, self);
    self->zap = NULL;
}
