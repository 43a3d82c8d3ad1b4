/*
 * worker.c - a worker's connection to the broker: registration (READY / WELCOME /
 * GOODBYE), heartbeats both ways, reconnecting with backoff when the broker falls
 * silent, sharing the capacity between brokers, and the drain (on br_worker_stop, a
 * signal, or recycling).  The worker's life cycle is worker_life.c's, requests are
 * dispatch.c's business.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zmq.h>

#include "credit.h"
#include "worker_int.h"

/* The GOODBYE reason with which a broker asks for READY again (PROTOCOL.md 6.1). */
#define BR_GOODBYE_UNKNOWN_WORKER "unknown worker"

/* The longest program name log lines carry. */
#define LOG_NAME_MAX 64
/* Pages to bytes for the resident-set check. */
#define STATM_PATH "/proc/self/statm"

static void open_socket(br__link *l);
static void check_leave(br__link *l);

/* The process's one log prefix: set once at start (br__log_name), then only read. */
static char log_name[LOG_NAME_MAX] = "barista-worker";

void br__log_name(const char *name)
{
    snprintf(log_name, sizeof(log_name), "%s", name);
}

void br__log(const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s[%ld]: %s\n", log_name, (long)getpid(), line);
}

/* ---------------------------------------------------------------------------------- */
/* Links and registrations.                                                            */

/* The link whose current registration is gen, while it has a socket; or NULL. */
static br__link *link_of(const br_worker *w, uint64_t gen)
{
    if (gen == 0)
        return NULL;
    for (uint32_t i = 0; i < w->nlinks; i++)
        if (w->links[i].gen == gen && w->links[i].zs)
            return &w->links[i];
    return NULL;
}

br__link *br__worker_link(br_worker *w, uint64_t gen)
{
    return link_of(w, gen);
}

bool br__gen_live(const br_worker *w, uint64_t gen)
{
    return link_of(w, gen) != NULL;
}

uint8_t br__gen_version(const br_worker *w, uint64_t gen)
{
    const br__link *l = link_of(w, gen);
    if (!l)
        return 0;
    return l->broker_version ? l->broker_version : BR_PROTO_VERSION;
}

br__link *br__worker_call_link(br_worker *w, uint64_t gen)
{
    /* A draining worker still calls for the requests it finishes: the broker keeps it
     * until they are answered. */
    br__link *l = link_of(w, gen);
    if (l && (l->registered || l->drain_acked))
        return l;
    for (uint32_t i = 0; i < w->nlinks; i++) {
        l = &w->links[i];
        if (l->zs && l->gen && (l->registered || l->drain_acked))
            return l;
    }
    return NULL;
}

/* ---------------------------------------------------------------------------------- */
/* Sending.                                                                            */

int br__link_send_frame(br__link *l, br_str frame)
{
    if (!l->zs)
        return BR_ECLOSED;
    int rc = br_zsock_send(l->zs, NULL, 0, frame.ptr, frame.len);
    if (rc != 0) {
        br__log("br_zsock_send to %s: %s", l->endpoint, br_strerror(rc));
        return rc;
    }
    l->last_send = uv_now(&l->w->loop);
    return 0;
}

static int link_send(br__link *l, const br_msg *msg)
{
    br_worker *w = l->w;
    if (!l->zs)
        return BR_ECLOSED;
    /* The WebSocket messages batched for this broker go first: it sees what we send in
     * the order we sent it. */
    if (l->batch.count)
        br__batch_flush_link(l);
    w->out.len = 0;
    /* READY announces the newest version we speak; the rest goes in the broker's. */
    unsigned version =
        msg->type == BR_MSG_READY || !l->broker_version ? BR_PROTO_VERSION : l->broker_version;
    int rc = br_msg_encode_version(msg, version, &w->out);
    if (rc != 0) {
        br__log("br_msg_encode(%s): %s", br_msg_type_name(msg->type), br_strerror(rc));
        return rc;
    }
    rc = br_zsock_send(l->zs, NULL, 0, w->out.data, w->out.len);
    if (rc != 0) {
        br__log("br_zsock_send(%s) to %s: %s", br_msg_type_name(msg->type), l->endpoint,
                br_strerror(rc));
        return rc;
    }
    l->last_send = uv_now(&w->loop);
    return 0;
}

int br__worker_send(br_worker *w, const br_msg *msg)
{
    br__link *l = w->cur;
    for (uint32_t i = 0; !l && i < w->nlinks; i++)
        if (w->links[i].zs && w->links[i].registered)
            l = &w->links[i];
    return l ? link_send(l, msg) : BR_ECLOSED;
}

int br__worker_send_gen(br_worker *w, uint64_t gen, const br_msg *msg)
{
    br__link *l = link_of(w, gen);
    return l ? link_send(l, msg) : BR_ECLOSED;
}

static void send_simple(br__link *l, uint8_t type, const char *reason)
{
    br_msg msg;
    memset(&msg, 0, sizeof(msg));
    msg.type = type;
    if (type == BR_MSG_GOODBYE)
        msg.u.goodbye.reason = br_str_c(reason);
    link_send(l, &msg);
}

/* ---------------------------------------------------------------------------------- */
/* Sharing the capacity (credit.h).                                                    */

/* Grows l's window by n: CREDIT(n) now, or once WELCOME arrives (before it, only
 * READY, HEARTBEAT and GOODBYE may be sent). */
static void grant(br__link *l, uint32_t n)
{
    l->window += n;
    if (!l->registered) {
        l->credit_owed += n;
        return;
    }
    br_msg msg;
    memset(&msg, 0, sizeof(msg));
    msg.type = BR_MSG_CREDIT;
    msg.u.credit.credit = n;
    link_send(l, &msg);
}

/* The links' indices in the plan's order (br__link_before): the order of their
 * endpoints in --connect, whatever order the names' lookups answered in, so that the
 * positions that get a short capacity first are the first endpoints'. */
static void plan_order(const br_worker *w, uint32_t *order)
{
    for (uint32_t i = 0; i < w->nlinks; i++) {
        uint32_t k = i;
        while (k > 0 && br__link_before(&w->links[i], &w->links[order[k - 1]])) {
            order[k] = order[k - 1];
            k--;
        }
        order[k] = i;
    }
}

/* The plan's view of the links, view[k] being link order[k] (free slots and retiring
 * links take no share), and the slots to grant, by link index.  A link takes a share
 * while it is up; with fewer slots than brokers (a CPU worker's one) a lost broker's
 * share goes to the others until it returns, otherwise every broker's share is kept
 * for it - except an address of a name that never answered (an AAAA record of a
 * gateway listening on IPv4 only, say), whose share would wait forever. */
static size_t plan(br_worker *w, br__credit_link *view, uint32_t *order, uint32_t *grants)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < w->nlinks; i++)
        n += w->links[i].used && w->links[i].leaving != BR_LEAVE_RETIRE;
    bool keep_shares = w->capacity >= n;
    plan_order(w, order);
    for (uint32_t k = 0; k < w->nlinks; k++) {
        br__link *l = &w->links[order[k]];
        bool named = l->used && w->sources[l->source].host;
        bool up = keep_shares ? !(named && l->failed && !l->ever_registered) : !l->failed;
        view[k].counted = l->used && l->leaving != BR_LEAVE_RETIRE && up;
        view[k].open = l->zs && l->gen && !w->draining && l->leaving == BR_LEAVE_NONE;
        view[k].window = l->window;
        view[k].live = l->used && l->registered && l->leaving == BR_LEAVE_NONE;
    }
    size_t offset = w->nlinks ? w->link_seed % w->nlinks : 0;
    uint32_t planned[BR_WORKER_MAX_BROKERS];
    br__credit_plan(w->capacity, w->orphans, offset, view, w->nlinks, planned);
    for (uint32_t k = 0; k < w->nlinks; k++)
        grants[order[k]] = planned[k];
    return offset;
}

/* l starts leaving (`how`): GOODBYE now; check_leave finishes it. */
static void start_leaving(br__link *l, br__leave how, const char *reason)
{
    l->leaving = how;
    l->leave_at = uv_now(&l->w->loop);
    send_simple(l, BR_MSG_GOODBYE, reason);
}

/* Hands free slots to the links whose share is short; when none is free, a link
 * holding more than its share re-registers to hand the rest back (one at a time). */
static void rebalance(br_worker *w)
{
    if (w->draining || w->closing)
        return;
    br__credit_link view[BR_WORKER_MAX_BROKERS];
    uint32_t order[BR_WORKER_MAX_BROKERS];
    uint32_t grants[BR_WORKER_MAX_BROKERS];
    size_t offset = plan(w, view, order, grants);
    for (uint32_t i = 0; i < w->nlinks; i++)
        if (grants[i])
            grant(&w->links[i], grants[i]);
    for (uint32_t k = 0; k < w->nlinks; k++) {
        if (w->links[order[k]].leaving != BR_LEAVE_NONE)
            return; /* what it holds comes free first */
        view[k].window = w->links[order[k]].window;
    }
    long over = br__credit_yield(w->capacity, w->orphans, offset, view, w->nlinks);
    if (over < 0)
        return;
    br__link *l = &w->links[order[over]];
    br__log("broker %s holds %u slots, more than its share now: registering again to hand "
            "them to another broker",
            l->endpoint, l->window);
    start_leaving(l, BR_LEAVE_YIELD, "rebalancing");
}

void br__worker_orphan_done(br_worker *w)
{
    if (w->orphans)
        w->orphans--;
    rebalance(w);
}

/* l's registration ends: what it holds in flight becomes orphans (cancelled, their
 * answers never sent), its calls fail and its WebSockets close; its window is free. */
static void end_registration(br__link *l)
{
    br_worker *w = l->w;
    uint64_t gen = l->gen;
    l->registered = false;
    if (!gen)
        return;
    /* First: what ends now must see the registration over. */
    l->gen = 0;
    l->window = 0;
    l->credit_owed = 0;
    br__calls_fail_gen(w, gen);
    br__flow_fail_gen(w, gen);
    br__ws_drop_gen(w, gen);
    br__batch_forget_link(l);
    br__dispatch_registration_lost(w, gen);
    br__handoff_lost(w, gen);
    /* Actor keys are the worker's, not a broker's: with one broker its idle ones end
     * with its session, as they always did; with several, they stay for the others. */
    if (w->nused == 1)
        br__actors_new_registration(w);
}

/* Starts a registration on l: the last one's work becomes orphans, and READY
 * announces the free part of l's share. */
static void send_ready(br__link *l)
{
    br_worker *w = l->w;
    end_registration(l);
    l->gen = ++w->gen_next;
    l->failed = false;
    br__credit_link view[BR_WORKER_MAX_BROKERS];
    uint32_t order[BR_WORKER_MAX_BROKERS];
    uint32_t grants[BR_WORKER_MAX_BROKERS];
    plan(w, view, order, grants);
    l->window = grants[l->index];
    br_msg msg;
    memset(&msg, 0, sizeof(msg));
    msg.type = BR_MSG_READY;
    br_ready *r = &msg.u.ready;
    r->worker_id = br_str_c(w->id);
    r->kind = (uint8_t)w->reg.kind;
    r->capacity = l->window;
    r->heartbeat_ms = w->heartbeat_ms;
    r->services = w->reg.wire;
    r->nservices = (uint32_t)w->reg.nservices;
    r->tasks = w->tasks;
    r->ntasks = w->ntasks;
    r->public_tasks = w->public_tasks;
    r->npublic_tasks = w->npublic_tasks;
    r->schedules = w->schedules;
    r->nschedules = w->nschedules;
    r->features = BR_FEATURE_WS_BATCH | BR_FEATURE_CALL_STREAM | BR_FEATURE_JOB_HANDOFF |
                  (w->no_req_batch ? 0 : BR_FEATURE_REQ_BATCH);
    /* The loop's clock may be stale (the first READY goes out before the loop runs,
     * after the services' init): the broker has 3 heartbeats from now to WELCOME us. */
    uv_update_time(&w->loop);
    l->last_recv = uv_now(&w->loop);
    link_send(l, &msg);
}

/* ---------------------------------------------------------------------------------- */
/* Reconnecting.                                                                       */

/* The next delay: backoff_ms with up to half of it taken off at random, so that many
 * workers that lost the same broker do not come back in step. */
static uint64_t next_delay(br__link *l)
{
    br_worker *w = l->w;
    w->rng ^= w->rng << 13;
    w->rng ^= w->rng >> 7;
    w->rng ^= w->rng << 17;
    uint64_t d = l->backoff_ms / 2 + w->rng % (l->backoff_ms / 2 + 1);
    l->backoff_ms = l->backoff_ms * 2 > BR_BACKOFF_MAX_MS ? BR_BACKOFF_MAX_MS : l->backoff_ms * 2;
    return d;
}

static void on_retry(uv_timer_t *t)
{
    br__link *l = t->data;
    if (!l->w->draining)
        open_socket(l);
}

/* Opens a new socket after the next backoff delay; meanwhile the link is down. */
static void reconnect_later(br__link *l)
{
    l->failed = true;
    uv_timer_start(&l->retry, on_retry, next_delay(l), 0);
}

static void on_socket_closed(void *arg)
{
    (void)arg;
}

/* Closes l's socket, waiting at most linger_ms for queued messages to leave; its
 * registration ends, and its share may go to the others (rebalance). */
static void close_socket(br__link *l, int linger_ms)
{
    br_worker *w = l->w;
    if (!l->zs)
        return;
    end_registration(l);
    void *s = br_zsock_socket(l->zs);
    if (zmq_setsockopt(s, ZMQ_LINGER, &linger_ms, sizeof(linger_ms)) != 0)
        br__log("zmq_setsockopt(ZMQ_LINGER): %s", zmq_strerror(errno));
    br__curve_client_close(w, s);
    br_zsock_close(l->zs, on_socket_closed, w);
    l->zs = NULL;
    if (w->cur == l)
        w->cur = NULL;
}

/* Empties l's slot for good: its socket closes (its work becomes orphans), its
 * slots go to the others. */
static void link_free(br__link *l, int linger_ms)
{
    br_worker *w = l->w;
    close_socket(l, linger_ms);
    if (l->timer_ready)
        uv_timer_stop(&l->retry);
    free(l->endpoint);
    l->endpoint = NULL;
    l->used = false;
    l->leaving = BR_LEAVE_NONE;
    w->nused--;
    rebalance(w);
}

/* l's broker is gone (silent, refused us, or stopping): reconnect later, and let the
 * others take what its share freed when shares move.  A link whose address was
 * withdrawn closes instead, and a name whose broker fell silent is resolved again. */
static void link_lost(br__link *l)
{
    br_worker *w = l->w;
    if (w->sources[l->source].host)
        br__sources_resolve(w, l->source);
    if (l->leaving == BR_LEAVE_RETIRE) {
        link_free(l, 0);
        return;
    }
    l->leaving = BR_LEAVE_NONE;
    close_socket(l, 0);
    reconnect_later(l);
    rebalance(w);
}

/* Ends l's leaving once its broker acknowledged the GOODBYE (or the drain timeout
 * passed) and nothing of its registration runs: it closes (RETIRE), or registers again
 * with what is free of its share (YIELD), the rest going to the brokers short of theirs. */
static void check_leave(br__link *l)
{
    br_worker *w = l->w;
    if (!l->used || l->leaving == BR_LEAVE_NONE || w->draining || w->closing)
        return;
    bool expired = uv_now(&w->loop) - l->leave_at >= w->drain_ms;
    if (!expired && (!l->drain_acked || br__dispatch_count_gen(w, l->gen) > 0))
        return;
    if (l->leaving == BR_LEAVE_RETIRE) {
        br__log("broker %s: left", l->endpoint);
        link_free(l, BR_CLOSE_LINGER_MS);
        return;
    }
    l->leaving = BR_LEAVE_NONE;
    l->drain_acked = false;
    send_ready(l);
    rebalance(w);
}

void br__link_retire(br__link *l)
{
    if (!l->used || l->leaving == BR_LEAVE_RETIRE)
        return;
    if (!l->zs || !l->gen || (!l->registered && l->leaving == BR_LEAVE_NONE)) {
        link_free(l, 0); /* nothing of it runs: no broker took our READY yet */
        return;
    }
    if (l->leaving == BR_LEAVE_YIELD) {
        l->leaving = BR_LEAVE_RETIRE; /* the GOODBYE is out already */
        check_leave(l);
        return;
    }
    start_leaving(l, BR_LEAVE_RETIRE, "leaving");
}

/* ---------------------------------------------------------------------------------- */
/* Receiving.                                                                          */

static void on_welcome(br__link *l, unsigned version, const br_welcome *m)
{
    br_worker *w = l->w;
    if (w->draining)
        return;
    l->broker_version = (uint8_t)version;
    size_t n = m->broker_id.len < BR_BROKER_ID_MAX - 1 ? m->broker_id.len : BR_BROKER_ID_MAX - 1;
    bool restarted = l->broker_id[0] &&
                     (strlen(l->broker_id) != n || memcmp(l->broker_id, m->broker_id.ptr, n) != 0);
    if (n)
        memcpy(l->broker_id, m->broker_id.ptr, n);
    l->broker_id[n] = '\0';
    /* PROTOCOL.md 7: 0 means the default interval. */
    l->broker_hb_ms = m->heartbeat_ms ? m->heartbeat_ms : BR_WORKER_DEFAULT_HEARTBEAT_MS;
    l->registered = true;
    l->ever_registered = true;
    l->ws_batch = (m->features & BR_FEATURE_WS_BATCH) != 0;
    l->req_batch = l->ws_batch && !w->no_req_batch && (m->features & BR_FEATURE_REQ_BATCH) != 0;
    l->call_stream = (m->features & BR_FEATURE_CALL_STREAM) != 0;
    l->job_handoff = (m->features & BR_FEATURE_JOB_HANDOFF) != 0;
    l->backoff_ms = BR_BACKOFF_FIRST_MS;
    br__jobs_send_policies(w);
    if (l->credit_owed) {
        uint32_t owed = l->credit_owed;
        l->credit_owed = 0;
        l->window -= owed; /* grant counts it again */
        grant(l, owed);
    }
    if (w->nused == 1 && !w->sources[l->source].host)
        br__log("registered with broker %s%s", l->broker_id,
                restarted ? " (the gateway restarted)" : "");
    else
        br__log("registered with broker %s at %s, window %u%s", l->broker_id, l->endpoint,
                l->window, restarted ? " (the gateway restarted)" : "");
    /* A broker short of its share may take slots back from one holding more. */
    rebalance(w);
}

/* "unknown worker": the broker lost track of us (it restarted, or thought us dead) and
 * wants READY again on this connection.  Any other reason (it refused our READY, or
 * it is stopping): reconnect after a backoff, in case the cause goes away. */
static void on_goodbye(br__link *l, const br_goodbye *m)
{
    br_worker *w = l->w;
    bool unknown = br_str_eq(m->reason, BR_GOODBYE_UNKNOWN_WORKER);
    if (l->leaving != BR_LEAVE_NONE && !w->draining) {
        /* The acknowledgement of our GOODBYE (or a broker that forgot us): nothing new
         * arrives on this registration. */
        l->registered = false;
        l->drain_acked = true;
        check_leave(l);
        return;
    }
    if (unknown && !l->registered && !w->draining) {
        /* It answers a message sent before our READY (heartbeats queued while a
         * restarted gateway was down): that READY is on its way already. */
        return;
    }
    br__log("broker %s said goodbye (%.*s)", l->endpoint, (int)m->reason.len,
            m->reason.ptr ? m->reason.ptr : "");
    l->registered = false;
    if (w->draining) {
        /* Our GOODBYE was acknowledged (or the broker is stopping): no request can
         * arrive any more. */
        l->drain_acked = true;
        br__worker_request_done(w);
        return;
    }
    if (unknown) {
        send_ready(l);
        rebalance(w);
        return;
    }
    link_lost(l);
}

static void handle(br__link *l, const br_zframe *frames, size_t nframes)
{
    br_worker *w = l->w;
    l->last_recv = uv_now(&w->loop);
    if (nframes != 1) {
        br__log("dropped a message of %zu frames (the protocol uses one)", nframes);
        return;
    }
    br_msg msg;
    int rc = br_decoder_decode(w->dec, frames[0].data, frames[0].len, &msg);
    if (rc != 0) {
        unsigned version = 0, type = 0;
        br_msg_peek(frames[0].data, frames[0].len, &version, &type);
        br__log("dropped a %zu-byte message (version %u, %s): %s", frames[0].len, version,
                br_msg_type_name(type), br_strerror(rc));
        return;
    }
    br__worker_handle_msg(l, &msg, (br_str){(const char *)frames[0].data, frames[0].len});
}

void br__worker_handle_msg(br__link *l, const br_msg *m, br_str bytes)
{
    br_worker *w = l->w;
    switch (m->type) {
    case BR_MSG_WS_BATCH:
        br__batch_recv(l, m->u.ws_batch.messages);
        break;
    case BR_MSG_WELCOME:
        on_welcome(l, m->version, &m->u.welcome);
        break;
    case BR_MSG_REQUEST:
        br__dispatch_request(w, &m->u.request, bytes.ptr, bytes.len, NULL);
        break;
    case BR_MSG_ACTOR_REQUEST:
        br__dispatch_request(w, &m->u.actor_request.req, bytes.ptr, bytes.len, &m->u.actor_request);
        break;
    case BR_MSG_DEACTIVATE:
        br__actors_deactivate(w, &m->u.deactivate);
        break;
    case BR_MSG_REPLY:
        br__calls_reply(w, &m->u.reply);
        break;
    case BR_MSG_CANCEL:
        br__dispatch_cancel(w, m->u.cancel.id);
        break;
    case BR_MSG_GOODBYE:
        on_goodbye(l, &m->u.goodbye);
        break;
    case BR_MSG_HEARTBEAT:
        break;
    case BR_MSG_JOB:
        br__jobs_run(w, &m->u.job);
        break;
    case BR_MSG_JOB_CANCEL:
        br__jobs_cancel(w, m->u.job_cancel.job_id);
        break;
    case BR_MSG_WORKFLOW_REPLY:
        br__flow_reply(w, &m->u.workflow_reply);
        break;
    case BR_MSG_STREAM_CHUNK:
        br__stream_body_chunk(w, m->u.stream_chunk.id, m->u.stream_chunk.data);
        break;
    case BR_MSG_STREAM_END:
        br__stream_body_end(w, m->u.stream_end.id, m->u.stream_end.error);
        break;
    case BR_MSG_STREAM_WINDOW:
        br__stream_window(w, m->u.stream_window.id, m->u.stream_window.bytes);
        break;
    default:
        if (!br__ws_handle(w, m) && !br__calls_stream_msg(w, m))
            br__log("ignored a %s message", br_msg_type_name(m->type));
        break;
    }
}

/* A message from l's broker.  While it is handled, w->cur and w->gen name l's
 * registration: what the message starts belongs to it, and what it finds (by an id
 * only unique within one broker) must belong to it. */
static void on_message(br_zsock *zs, const br_zframe *frames, size_t nframes, void *arg)
{
    br__link *l = arg;
    br_worker *w = l->w;
    (void)zs;
    br__link *outer = w->cur;
    uint64_t outer_gen = w->gen;
    w->cur = l;
    w->gen = l->gen;
    handle(l, frames, nframes);
    w->cur = outer;
    w->gen = outer_gen;
}

/* Creates l's DEALER socket, connects it and says READY. */
static void open_socket(br__link *l)
{
    br_worker *w = l->w;
    void *s = zmq_socket(w->zctx, ZMQ_DEALER);
    if (!s) {
        br__log("zmq_socket: %s", zmq_strerror(errno));
        reconnect_later(l);
        return;
    }
    int zero = 0, ivl = BR_BACKOFF_FIRST_MS, ivl_max = BR_BACKOFF_MAX_MS;
    /* An IPv6 address (resolve.c writes them in brackets) needs ZeroMQ's IPv6 mode. */
    int ipv6 = strncmp(l->endpoint, "tcp://[", 7) == 0;
    /* Credit bounds what is in flight, so replies never pass this many. */
    int hwm = (int)(w->capacity * 2 + 1000);
    int64_t maxmsg = (int64_t)br_limits_default.max_message;
    if (zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof(zero)) != 0 ||
        zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &maxmsg, sizeof(maxmsg)) != 0 ||
        zmq_setsockopt(s, ZMQ_RECONNECT_IVL, &ivl, sizeof(ivl)) != 0 ||
        zmq_setsockopt(s, ZMQ_RECONNECT_IVL_MAX, &ivl_max, sizeof(ivl_max)) != 0 ||
        zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof(hwm)) != 0 ||
        zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof(hwm)) != 0 ||
        zmq_setsockopt(s, ZMQ_IPV6, &ipv6, sizeof(ipv6)) != 0) {
        br__log("zmq_setsockopt: %s", zmq_strerror(errno));
        goto fail;
    }
    if (w->curve && br__curve_client_open(w, s) != 0)
        goto fail;
    if (zmq_connect(s, l->endpoint) != 0) {
        br__log("zmq_connect(%s): %s", l->endpoint, zmq_strerror(errno));
        goto fail;
    }
    l->zs = br_zsock_new(&w->loop, s, on_message, l);
    if (!l->zs)
        goto fail;
    l->drain_acked = false;
    send_ready(l);
    rebalance(w);
    return;
fail:
    br__curve_client_close(w, s);
    zmq_close(s);
    w->result = BR_EIO;
    br__worker_shutdown(w);
}

/* ---------------------------------------------------------------------------------- */
/* Heartbeats and liveness.                                                            */

/* The resident set in bytes, or 0 when it cannot be read. */
static uint64_t resident_bytes(void)
{
    FILE *f = fopen(STATM_PATH, "r");
    if (!f)
        return 0;
    unsigned long long size = 0, resident = 0;
    int n = fscanf(f, "%llu %llu", &size, &resident);
    fclose(f);
    long page = sysconf(_SC_PAGESIZE);
    return n == 2 && page > 0 ? resident * (uint64_t)page : 0;
}

static bool any_registered(const br_worker *w)
{
    for (uint32_t i = 0; i < w->nlinks; i++)
        if (w->links[i].registered)
            return true;
    return false;
}

/* One link's liveness and heartbeat. */
static void tick_link(br__link *l, uint64_t now)
{
    br_worker *w = l->w;
    if (!l->zs)
        return;
    if (l->leaving != BR_LEAVE_NONE) {
        check_leave(l); /* the drain timeout bounds a leave */
        if (!l->zs)
            return;
    }
    uint64_t silent_max =
        (uint64_t)BR_LIVENESS * (l->registered ? l->broker_hb_ms : w->heartbeat_ms);
    if (now - l->last_recv >= silent_max) {
        br__log("broker %s silent for %llu ms; reconnecting", l->endpoint,
                (unsigned long long)(now - l->last_recv));
        if (w->draining) {
            close_socket(l, 0);
            br__worker_request_done(w); /* no broker: nothing more can arrive */
        } else {
            link_lost(l);
        }
        return;
    }
    /* After our GOODBYE was acknowledged the broker still watches us while it has
     * requests here (PROTOCOL.md 6.3): keep heartbeating until they are answered. */
    if ((l->registered || l->drain_acked) && now - l->last_send >= w->heartbeat_ms)
        send_simple(l, BR_MSG_HEARTBEAT, NULL);
}

void br__worker_tick(uv_timer_t *t)
{
    br_worker *w = t->data;
    /* Only a registered worker recycles: draining before the broker knows it would
     * leave nobody to acknowledge the GOODBYE and no replacement to take over. */
    if (w->max_rss && any_registered(w) && !w->draining) {
        uint64_t rss = resident_bytes();
        if (rss > w->max_rss) {
            char why[128];
            snprintf(why, sizeof(why), "resident set %llu MB is over --max-rss-mb %llu: recycling",
                     (unsigned long long)(rss >> 20), (unsigned long long)(w->max_rss >> 20));
            br__worker_drain(w, why);
        }
    }
    br__jobs_tick(w);
    br__handoff_tick(w);
    uint64_t now = uv_now(&w->loop);
    for (uint32_t i = 0; i < w->nlinks && !w->closing; i++)
        tick_link(&w->links[i], now);
}

/* ---------------------------------------------------------------------------------- */
/* Draining and closing.                                                               */

/* Closes every handle of the worker.  After a clean drain (or when nothing ever ran)
 * the services' fini hooks run first, on the loop, so that what they close closes with
 * the rest; after a drain that gave up on stuck requests they do not (those requests
 * may still use the services' data). */
void br__worker_shutdown(br_worker *w)
{
    if (w->closing)
        return;
    w->closing = true;
    br__sources_stop(w);
    for (uint32_t i = 0; i < w->nlinks; i++) {
        /* What this turn batched (the last replies, say) leaves before the socket
         * closes, within its linger. */
        if (w->links[i].batch.count)
            br__batch_flush_link(&w->links[i]);
        close_socket(&w->links[i], BR_CLOSE_LINGER_MS);
        if (w->links[i].timer_ready)
            uv_close((uv_handle_t *)&w->links[i].retry, NULL);
        w->links[i].timer_ready = false;
    }
    if (w->result != BR_ECLOSED)
        br__svcs_stop(w);
    br__batch_close_handles(w);
    uv_close((uv_handle_t *)&w->tick, NULL);
    uv_close((uv_handle_t *)&w->drain_timer, NULL);
    if (w->handle_signals) {
        uv_close((uv_handle_t *)&w->sigterm, NULL);
        uv_close((uv_handle_t *)&w->sigint, NULL);
    }
    /* br_worker_stop may run on another thread: it must never send to a closing handle. */
    uv_mutex_lock(&w->wake_lock);
    w->wake_ready = false;
    uv_mutex_unlock(&w->wake_lock);
    uv_close((uv_handle_t *)&w->wake, NULL);
    br__async_close(w);
}

void br__worker_request_done(br_worker *w)
{
    if (w->recycle_at && w->served >= w->recycle_at && !w->draining) {
        char why[96];
        snprintf(why, sizeof(why), "served %llu requests and jobs (--max-requests): recycling",
                 (unsigned long long)w->served);
        br__worker_drain(w, why);
        return; /* the drain calls us again */
    }
    /* Requests may cross our GOODBYE on the wire - even before we saw WELCOME, since
     * the broker registers us on READY: stay until the broker acknowledged it (or went
     * silent and the socket was dropped) and nothing is in flight. */
    for (uint32_t i = 0; i < w->nlinks && !w->draining; i++)
        if (w->links[i].leaving != BR_LEAVE_NONE)
            check_leave(&w->links[i]);
    if (!w->draining || w->inflight != 0)
        return;
    for (uint32_t i = 0; i < w->nlinks; i++)
        if (w->links[i].zs && !w->links[i].drain_acked)
            return;
    br__worker_shutdown(w);
}

static void on_drain_timeout(uv_timer_t *t)
{
    br_worker *w = t->data;
    if (!w->drain_expired) {
        br__log("drain timeout: cancelling %u requests still in flight", w->inflight);
        w->drain_expired = true;
        uv_timer_start(&w->drain_timer, on_drain_timeout, BR_DRAIN_GRACE_MS, 0);
        br__dispatch_cancel_all(w);
        return;
    }
    /* Handlers that ignore cancel cannot be freed safely: leave them to process exit. */
    br__log("%u requests did not stop after cancel; giving up on them", w->inflight);
    w->result = BR_ECLOSED;
    br__worker_shutdown(w);
    uv_stop(&w->loop);
}

void br__worker_drain(br_worker *w, const char *why)
{
    if (w->draining) {
        br__log("%s: already draining %u requests", why, w->inflight);
        return;
    }
    br__log("%s: draining %u requests", why, w->inflight);
    w->draining = true;
    br__sources_stop(w);
    for (uint32_t i = 0; i < w->nlinks; i++) {
        if (w->links[i].timer_ready)
            uv_timer_stop(&w->links[i].retry);
        if (w->links[i].zs)
            send_simple(&w->links[i], BR_MSG_GOODBYE, "draining");
    }
    uv_timer_start(&w->drain_timer, on_drain_timeout, w->drain_ms, 0);
    br__worker_request_done(w);
}

void br__link_open(br__link *l)
{
    br_worker *w = l->w;
    if (!l->used || !w->zctx || w->closing || w->draining || l->zs)
        return;
    if (!l->timer_ready) {
        uv_timer_init(&w->loop, &l->retry);
        l->retry.data = l;
        l->timer_ready = true;
    }
    open_socket(l);
}
