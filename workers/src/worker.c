/*
 * worker.c - a worker's connection to the broker: registration (READY / WELCOME /
 * GOODBYE), heartbeats both ways, reconnecting with backoff when the broker falls
 * silent, the drain (on br_worker_stop, a signal, or recycling), and the worker's life
 * cycle around its services' init and fini.  Requests themselves are dispatch.c's
 * business.
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

/* The longest host name used in a default worker id. */
#define HOST_NAME_MAX_LEN 255
/* The GOODBYE reason with which a broker asks for READY again (PROTOCOL.md 6.1). */
#define BR_GOODBYE_UNKNOWN_WORKER "unknown worker"
/* Bounds on the heartbeat tick, which runs four times per heartbeat interval. */
#define TICK_MIN_MS 5

/* The longest program name log lines carry. */
#define LOG_NAME_MAX 64
/* Pages to bytes for the resident-set check. */
#define STATM_PATH "/proc/self/statm"

static void open_socket(br__link *l);
static void shutdown_all(br_worker *w);

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

static char *dup_cstr(const char *s)
{
    size_t n = strlen(s) + 1;
    char *c = malloc(n);
    if (c)
        memcpy(c, s, n);
    return c;
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

static int link_send(br__link *l, const br_msg *msg)
{
    br_worker *w = l->w;
    if (!l->zs)
        return BR_ECLOSED;
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

/* The plan's view of the links.  A link takes a share while it is up; with fewer
 * slots than brokers (a CPU worker's one) a lost broker's share goes to the others
 * until it returns, otherwise every broker's share is kept for it. */
static void plan(br_worker *w, br__credit_link *view, uint32_t *grants)
{
    bool keep_shares = w->capacity >= w->nlinks;
    for (uint32_t i = 0; i < w->nlinks; i++) {
        br__link *l = &w->links[i];
        view[i].counted = keep_shares || !l->failed;
        view[i].open = l->zs && l->gen && !w->draining;
        view[i].window = l->window;
    }
    br__credit_plan(w->capacity, w->orphans, w->link_offset, view, w->nlinks, grants);
}

/* Hands free slots to the links whose share is short. */
static void rebalance(br_worker *w)
{
    if (w->draining || w->closing)
        return;
    br__credit_link view[BR_WORKER_MAX_BROKERS];
    uint32_t grants[BR_WORKER_MAX_BROKERS];
    plan(w, view, grants);
    for (uint32_t i = 0; i < w->nlinks; i++)
        if (grants[i])
            grant(&w->links[i], grants[i]);
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
    br__dispatch_registration_lost(w, gen);
    /* Actor keys are the worker's, not a broker's: with one broker its idle ones end
     * with its session, as they always did; with several, they stay for the others. */
    if (w->nlinks == 1)
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
    uint32_t grants[BR_WORKER_MAX_BROKERS];
    plan(w, view, grants);
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

/* l's broker is gone (silent, refused us, or stopping): reconnect later, and let the
 * others take what its share freed when shares move. */
static void link_lost(br__link *l)
{
    close_socket(l, 0);
    reconnect_later(l);
    rebalance(l->w);
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
    l->backoff_ms = BR_BACKOFF_FIRST_MS;
    br__jobs_send_policies(w);
    if (l->credit_owed) {
        uint32_t owed = l->credit_owed;
        l->credit_owed = 0;
        l->window -= owed; /* grant counts it again */
        grant(l, owed);
    }
    if (w->nlinks == 1)
        br__log("registered with broker %s%s", l->broker_id,
                restarted ? " (the gateway restarted)" : "");
    else
        br__log("registered with broker %s at %s, window %u%s", l->broker_id, l->endpoint,
                l->window, restarted ? " (the gateway restarted)" : "");
}

/* "unknown worker": the broker lost track of us (it restarted, or thought us dead) and
 * wants READY again on this connection.  Any other reason (it refused our READY, or
 * it is stopping): reconnect after a backoff, in case the cause goes away. */
static void on_goodbye(br__link *l, const br_goodbye *m)
{
    br_worker *w = l->w;
    bool unknown = br_str_eq(m->reason, BR_GOODBYE_UNKNOWN_WORKER);
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
    switch (msg.type) {
    case BR_MSG_WELCOME:
        on_welcome(l, msg.version, &msg.u.welcome);
        break;
    case BR_MSG_REQUEST:
        br__dispatch_request(w, &msg.u.request, frames[0].data, frames[0].len, NULL);
        break;
    case BR_MSG_ACTOR_REQUEST:
        br__dispatch_request(w, &msg.u.actor_request.req, frames[0].data, frames[0].len,
                             &msg.u.actor_request);
        break;
    case BR_MSG_DEACTIVATE:
        br__actors_deactivate(w, &msg.u.deactivate);
        break;
    case BR_MSG_REPLY:
        br__calls_reply(w, &msg.u.reply);
        break;
    case BR_MSG_CANCEL:
        br__dispatch_cancel(w, msg.u.cancel.id);
        break;
    case BR_MSG_GOODBYE:
        on_goodbye(l, &msg.u.goodbye);
        break;
    case BR_MSG_HEARTBEAT:
        break;
    case BR_MSG_JOB:
        br__jobs_run(w, &msg.u.job);
        break;
    case BR_MSG_JOB_CANCEL:
        br__jobs_cancel(w, msg.u.job_cancel.job_id);
        break;
    case BR_MSG_WORKFLOW_REPLY:
        br__flow_reply(w, &msg.u.workflow_reply);
        break;
    case BR_MSG_STREAM_CHUNK:
        br__stream_body_chunk(w, msg.u.stream_chunk.id, msg.u.stream_chunk.data);
        break;
    case BR_MSG_STREAM_END:
        br__stream_body_end(w, msg.u.stream_end.id, msg.u.stream_end.error);
        break;
    case BR_MSG_STREAM_WINDOW:
        br__stream_window(w, msg.u.stream_window.id, msg.u.stream_window.bytes);
        break;
    default:
        if (!br__ws_handle(w, &msg))
            br__log("ignored a %s message", br_msg_type_name(msg.type));
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
    /* Credit bounds what is in flight, so replies never pass this many. */
    int hwm = (int)(w->capacity * 2 + 1000);
    int64_t maxmsg = (int64_t)br_limits_default.max_message;
    if (zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof(zero)) != 0 ||
        zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &maxmsg, sizeof(maxmsg)) != 0 ||
        zmq_setsockopt(s, ZMQ_RECONNECT_IVL, &ivl, sizeof(ivl)) != 0 ||
        zmq_setsockopt(s, ZMQ_RECONNECT_IVL_MAX, &ivl_max, sizeof(ivl_max)) != 0 ||
        zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof(hwm)) != 0 ||
        zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof(hwm)) != 0) {
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
    shutdown_all(w);
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
    if (l->registered && now - l->last_send >= w->heartbeat_ms)
        send_simple(l, BR_MSG_HEARTBEAT, NULL);
}

static void on_tick(uv_timer_t *t)
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
static void shutdown_all(br_worker *w)
{
    if (w->closing)
        return;
    w->closing = true;
    for (uint32_t i = 0; i < w->nlinks; i++) {
        close_socket(&w->links[i], BR_CLOSE_LINGER_MS);
        uv_close((uv_handle_t *)&w->links[i].retry, NULL);
    }
    if (w->result != BR_ECLOSED)
        br__svcs_stop(w);
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
    if (!w->draining || w->inflight != 0)
        return;
    for (uint32_t i = 0; i < w->nlinks; i++)
        if (w->links[i].zs && !w->links[i].drain_acked)
            return;
    shutdown_all(w);
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
    shutdown_all(w);
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
    for (uint32_t i = 0; i < w->nlinks; i++) {
        uv_timer_stop(&w->links[i].retry);
        if (w->links[i].zs)
            send_simple(&w->links[i], BR_MSG_GOODBYE, "draining");
    }
    uv_timer_start(&w->drain_timer, on_drain_timeout, w->drain_ms, 0);
    br__worker_request_done(w);
}

static void on_signal(uv_signal_t *sig, int signum)
{
    char why[32];
    snprintf(why, sizeof(why), "signal %d", signum);
    br__worker_drain(sig->data, why);
}

static void on_wake(uv_async_t *async)
{
    br_worker *w = async->data;
    if (atomic_load(&w->stop_asked))
        br__worker_drain(w, "stop requested");
}

void br_worker_stop(br_worker *w)
{
    atomic_store(&w->stop_asked, true);
    uv_mutex_lock(&w->wake_lock);
    if (w->wake_ready)
        uv_async_send(&w->wake);
    uv_mutex_unlock(&w->wake_lock);
}

/* ---------------------------------------------------------------------------------- */
/* Life cycle.                                                                         */

/* The served count at which the worker recycles: max_requests plus a random part of
 * the jitter, so that a pool started together does not drain together. */
static uint64_t recycle_point(br_worker *w, const br_worker_options *o)
{
    if (!o->max_requests)
        return 0;
    uint64_t jitter = o->max_requests_jitter ? w->rng % (o->max_requests_jitter + 1) : 0;
    return o->max_requests + jitter;
}

/* One link per endpoint of w->connect (a comma-separated list).  0, or BR_EINVAL /
 * BR_ENOMEM after logging why. */
static int make_links(br_worker *w, bool prefer_first)
{
    uint32_t n = 1;
    for (const char *c = w->connect; *c; c++)
        n += *c == ',';
    if (n > BR_WORKER_MAX_BROKERS) {
        br__log("%u broker endpoints: at most %u", n, BR_WORKER_MAX_BROKERS);
        return BR_EINVAL;
    }
    w->links = calloc(n, sizeof(*w->links));
    if (!w->links)
        return BR_ENOMEM;
    const char *p = w->connect;
    for (uint32_t i = 0; i < n; i++) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        while (len && *p == ' ')
            p++, len--;
        while (len && p[len - 1] == ' ')
            len--;
        if (len == 0) {
            br__log("an empty broker endpoint in \"%s\"", w->connect);
            return BR_EINVAL;
        }
        br__link *l = &w->links[w->nlinks];
        l->endpoint = malloc(len + 1);
        if (!l->endpoint)
            return BR_ENOMEM;
        memcpy(l->endpoint, p, len);
        l->endpoint[len] = '\0';
        l->w = w;
        l->index = w->nlinks++;
        l->broker_hb_ms = w->heartbeat_ms;
        l->backoff_ms = BR_BACKOFF_FIRST_MS;
        p = end ? end + 1 : p + len;
    }
    /* Workers started together favour different brokers with a short capacity. */
    w->link_offset = prefer_first ? 0 : (uint32_t)getpid() % w->nlinks;
    return 0;
}

br_worker *br__worker_new(const br_service_spec *const *services, size_t n,
                          const br_worker_options *options, const char *server_key,
                          const br_curve_keypair *keys)
{
    br_worker_options none;
    memset(&none, 0, sizeof(none));
    const br_worker_options *o = options ? options : &none;
    br_worker *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    char why[256];
    if (br__registry_init(&w->reg, services, n, why, sizeof(why)) != 0) {
        br__log("%s", why);
        free(w);
        return NULL;
    }
    if (uv_mutex_init(&w->wake_lock) != 0) {
        br__log("uv_mutex_init failed");
        br__registry_release(&w->reg);
        free(w);
        return NULL;
    }
    atomic_init(&w->stop_asked, false);
    char host[HOST_NAME_MAX_LEN + 1] = "worker";
    if (!o->worker_id && gethostname(host, sizeof(host)) != 0)
        br__log("gethostname: %s", strerror(errno));
    host[HOST_NAME_MAX_LEN] = '\0';
    char id[HOST_NAME_MAX_LEN + 32];
    snprintf(id, sizeof(id), "%s:%ld", host, (long)getpid());
    w->connect = dup_cstr(o->connect ? o->connect : BR_WORKER_DEFAULT_CONNECT);
    w->id = dup_cstr(o->worker_id ? o->worker_id : id);
    w->capacity = o->concurrency ? o->concurrency : BR_WORKER_DEFAULT_CONCURRENCY;
    if (w->capacity > BR_WORKER_MAX_CONCURRENCY)
        w->capacity = BR_WORKER_MAX_CONCURRENCY;
    if (w->reg.kind == BR_KIND_CPU)
        w->capacity = 1;
    w->heartbeat_ms = o->heartbeat_ms ? o->heartbeat_ms : BR_WORKER_DEFAULT_HEARTBEAT_MS;
    w->drain_ms = o->drain_timeout_ms ? o->drain_timeout_ms : BR_WORKER_DEFAULT_DRAIN_MS;
    w->stall_ms = o->stall_ms ? o->stall_ms : BR_WORKER_DEFAULT_STALL_MS;
    w->handle_signals = o->handle_signals;
    w->rng = (uint64_t)getpid() * 0x9E3779B97F4A7C15ull ^ uv_hrtime();
    if (w->rng == 0)
        w->rng = 1;
    w->recycle_at = recycle_point(w, o);
    w->max_rss = o->max_rss_mb << 20;
    if (keys) {
        if (!server_key || !br_curve_key_valid(server_key, strlen(server_key), NULL)) {
            br__log("the broker's CURVE key is not a Z85 key");
            br_worker_destroy(&w);
            return NULL;
        }
        memcpy(w->curve_server, server_key, BR_CURVE_Z85_LEN + 1);
        w->curve_keys = *keys;
        w->curve = true;
    }
    int rc = br__svcs_init(w, why, sizeof(why));
    if (rc != 0) {
        br__log("%s", why);
        br_worker_destroy(&w);
        return NULL;
    }
    if (w->connect && make_links(w, o->prefer_first_broker) != 0) {
        br_worker_destroy(&w);
        return NULL;
    }
    w->dec = br_decoder_new(NULL);
    if (!w->connect || !w->id || !w->dec || br__dispatch_init(w) != 0 || br__jobs_init(w) != 0) {
        br__log("out of memory creating the worker");
        br_worker_destroy(&w);
        return NULL;
    }
    return w;
}

br_worker *br_worker_new(const br_service_spec *const *services, size_t n,
                         const br_worker_options *options)
{
    const char *server = options ? options->curve_server_key : NULL;
    const char *file = options ? options->curve_key_file : NULL;
    if (!server && !file)
        return br__worker_new(services, n, options, NULL, NULL);
    char why[512];
    char key[BR_CURVE_Z85_LEN + 1];
    br_curve_keypair keys;
    if (!server || !file) {
        br__log("curve_server_key and curve_key_file go together");
        return NULL;
    }
    if (br_curve_public_key_load(server, key, why, sizeof(why)) != 0 ||
        br_curve_keypair_read(file, &keys, why, sizeof(why)) != 0) {
        br__log("CURVE keys: %s", why);
        return NULL;
    }
    br_worker *w = br__worker_new(services, n, options, key, &keys);
    br_curve_keypair_wipe(&keys);
    return w;
}

void br_worker_destroy(br_worker **self_p)
{
    if (!self_p || !*self_p)
        return;
    br_worker *w = *self_p;
    br__dispatch_release(w);
    br__actors_release(w);
    br__ws_release(w);
    br__jobs_release(w);
    br__async_release(w);
    br__svcs_release(w);
    br_decoder_destroy(&w->dec);
    br_buf_free(&w->out);
    br__registry_release(&w->reg);
    uv_mutex_destroy(&w->wake_lock);
    for (uint32_t i = 0; i < w->nlinks; i++)
        free(w->links[i].endpoint);
    free(w->links);
    free(w->connect);
    free(w->id);
    br_curve_keypair_wipe(&w->curve_keys);
    free(w);
    *self_p = NULL;
}

int br__worker_open(br_worker *w, void *zctx)
{
    int rc = uv_loop_init(&w->loop);
    if (rc != 0) {
        br__log("uv_loop_init: %s", uv_strerror(rc));
        return BR_EIO;
    }
    if (br__async_open(w) != 0) {
        uv_loop_close(&w->loop);
        return BR_EIO;
    }
    w->own_zctx = !zctx;
    w->zctx = zctx ? zctx : zmq_ctx_new();
    if (!w->zctx) {
        br__log("zmq_ctx_new: %s", zmq_strerror(errno));
        br__async_close(w);
        uv_run(&w->loop, UV_RUN_DEFAULT);
        uv_loop_close(&w->loop);
        return BR_EIO;
    }
    uint64_t tick = w->heartbeat_ms / 4 > TICK_MIN_MS ? w->heartbeat_ms / 4 : TICK_MIN_MS;
    uv_timer_init(&w->loop, &w->tick);
    uv_timer_init(&w->loop, &w->drain_timer);
    uv_async_init(&w->loop, &w->wake, on_wake);
    w->tick.data = w->drain_timer.data = w->wake.data = w;
    for (uint32_t i = 0; i < w->nlinks; i++) {
        uv_timer_init(&w->loop, &w->links[i].retry);
        w->links[i].retry.data = &w->links[i];
    }
    uv_mutex_lock(&w->wake_lock);
    w->wake_ready = true;
    uv_mutex_unlock(&w->wake_lock);
    if (w->handle_signals) {
        uv_signal_init(&w->loop, &w->sigterm);
        uv_signal_init(&w->loop, &w->sigint);
        w->sigterm.data = w->sigint.data = w;
        uv_signal_start(&w->sigterm, on_signal, SIGTERM);
        uv_signal_start(&w->sigint, on_signal, SIGINT);
    }
    uv_timer_start(&w->tick, on_tick, tick, tick);
    /* Before any connection: a service whose set-up fails is never announced. */
    if (br__svcs_start(w) != 0) {
        w->result = BR_EINVAL;
        shutdown_all(w);
        return 0; /* the caller runs the loop to close the handles; close says why */
    }
    br__log("%s: %s worker, capacity %u, connecting to %s%s", w->id,
            w->reg.kind == BR_KIND_CPU ? "cpu" : "io", w->capacity, w->connect,
            w->curve ? " with CURVE" : "");
    for (uint32_t i = 0; i < w->nlinks && !w->closing; i++)
        open_socket(&w->links[i]);
    if (atomic_load(&w->stop_asked) && !w->closing)
        br__worker_drain(w, "stop requested");
    return 0;
}

int br__worker_close(br_worker *w)
{
    if (w->result == 0 || w->result == BR_EINVAL) {
        int rc = uv_loop_close(&w->loop);
        if (rc != 0) {
            br__log("uv_loop_close: %s", uv_strerror(rc));
            if (w->result == 0)
                w->result = BR_EIO;
        }
    }
    /* Waits up to the socket's linger for the last replies to leave. */
    if (w->own_zctx)
        zmq_ctx_term(w->zctx);
    w->zctx = NULL;
    return w->result;
}

int br_worker_run(br_worker *w)
{
    int rc = br__worker_open(w, NULL);
    if (rc != 0)
        return rc;
    uv_run(&w->loop, UV_RUN_DEFAULT);
    return br__worker_close(w);
}
