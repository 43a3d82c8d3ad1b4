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

static void open_socket(br_worker *w);
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
/* Sending.                                                                            */

int br__worker_send(br_worker *w, const br_msg *msg)
{
    if (!w->zs)
        return BR_ECLOSED;
    w->out.len = 0;
    /* READY announces the newest version we speak; the rest goes in the broker's. */
    unsigned version =
        msg->type == BR_MSG_READY || !w->broker_version ? BR_PROTO_VERSION : w->broker_version;
    int rc = br_msg_encode_version(msg, version, &w->out);
    if (rc != 0) {
        br__log("br_msg_encode(%s): %s", br_msg_type_name(msg->type), br_strerror(rc));
        return rc;
    }
    rc = br_zsock_send(w->zs, NULL, 0, w->out.data, w->out.len);
    if (rc != 0) {
        br__log("br_zsock_send(%s): %s", br_msg_type_name(msg->type), br_strerror(rc));
        return rc;
    }
    w->last_send = uv_now(&w->loop);
    return 0;
}

static void send_simple(br_worker *w, uint8_t type, const char *reason)
{
    br_msg msg;
    memset(&msg, 0, sizeof(msg));
    msg.type = type;
    if (type == BR_MSG_GOODBYE)
        msg.u.goodbye.reason = br_str_c(reason);
    br__worker_send(w, &msg);
}

void br__worker_return_credit(br_worker *w, uint32_t n)
{
    if (!w->registered) {
        w->credit_owed += n;
        return;
    }
    br_msg msg;
    memset(&msg, 0, sizeof(msg));
    msg.type = BR_MSG_CREDIT;
    msg.u.credit.credit = n;
    br__worker_send(w, &msg);
}

/* Starts a registration: orphans what is in flight and announces the rest. */
static void send_ready(br_worker *w)
{
    br_msg msg;
    memset(&msg, 0, sizeof(msg));
    msg.type = BR_MSG_READY;
    br_ready *r = &msg.u.ready;
    r->worker_id = br_str_c(w->id);
    r->kind = (uint8_t)w->reg.kind;
    r->capacity = br__dispatch_new_registration(w);
    br__calls_fail_all(w);
    br__ws_drop_all(w); /* connections of the last session are the old broker's */
    w->credit_owed = 0; /* the new READY counted every slot afresh */
    r->heartbeat_ms = w->heartbeat_ms;
    r->services = w->reg.wire;
    r->nservices = (uint32_t)w->reg.nservices;
    r->tasks = w->tasks;
    r->ntasks = w->ntasks;
    r->public_tasks = w->public_tasks;
    r->npublic_tasks = w->npublic_tasks;
    r->schedules = w->schedules;
    r->nschedules = w->nschedules;
    w->registered = false;
    w->last_recv = uv_now(&w->loop); /* the broker has 3 heartbeats to WELCOME us */
    br__worker_send(w, &msg);
}

/* ---------------------------------------------------------------------------------- */
/* Reconnecting.                                                                       */

/* The next delay: backoff_ms with up to half of it taken off at random, so that many
 * workers that lost the same broker do not come back in step. */
static uint64_t next_delay(br_worker *w)
{
    w->rng ^= w->rng << 13;
    w->rng ^= w->rng >> 7;
    w->rng ^= w->rng << 17;
    uint64_t d = w->backoff_ms / 2 + w->rng % (w->backoff_ms / 2 + 1);
    w->backoff_ms = w->backoff_ms * 2 > BR_BACKOFF_MAX_MS ? BR_BACKOFF_MAX_MS : w->backoff_ms * 2;
    return d;
}

static void on_retry(uv_timer_t *t)
{
    br_worker *w = t->data;
    if (!w->draining)
        open_socket(w);
}

/* Opens a new socket after the next backoff delay. */
static void reconnect_later(br_worker *w)
{
    uv_timer_start(&w->retry, on_retry, next_delay(w), 0);
}

static void on_socket_closed(void *arg)
{
    (void)arg;
}

/* Closes the socket, waiting at most linger_ms for queued messages to leave. */
static void close_socket(br_worker *w, int linger_ms)
{
    if (!w->zs)
        return;
    void *s = br_zsock_socket(w->zs);
    if (zmq_setsockopt(s, ZMQ_LINGER, &linger_ms, sizeof(linger_ms)) != 0)
        br__log("zmq_setsockopt(ZMQ_LINGER): %s", zmq_strerror(errno));
    br__curve_client_close(w, s);
    br_zsock_close(w->zs, on_socket_closed, w);
    w->zs = NULL;
    w->registered = false;
}

/* ---------------------------------------------------------------------------------- */
/* Receiving.                                                                          */

static void on_welcome(br_worker *w, unsigned version, const br_welcome *m)
{
    if (w->draining)
        return;
    w->broker_version = (uint8_t)version;
    size_t n = m->broker_id.len < BR_BROKER_ID_MAX - 1 ? m->broker_id.len : BR_BROKER_ID_MAX - 1;
    bool restarted = w->broker_id[0] &&
                     (strlen(w->broker_id) != n || memcmp(w->broker_id, m->broker_id.ptr, n) != 0);
    if (n)
        memcpy(w->broker_id, m->broker_id.ptr, n);
    w->broker_id[n] = '\0';
    /* PROTOCOL.md 7: 0 means the default interval. */
    w->broker_hb_ms = m->heartbeat_ms ? m->heartbeat_ms : BR_WORKER_DEFAULT_HEARTBEAT_MS;
    w->registered = true;
    w->backoff_ms = BR_BACKOFF_FIRST_MS;
    br__jobs_send_policies(w);
    if (w->credit_owed) {
        uint32_t owed = w->credit_owed;
        w->credit_owed = 0;
        br__worker_return_credit(w, owed);
    }
    br__log("registered with broker %s%s", w->broker_id,
            restarted ? " (the gateway restarted)" : "");
}

/* "unknown worker": the broker lost track of us (it restarted, or thought us dead) and
 * wants READY again on this connection.  Any other reason (it refused our READY, or
 * it is stopping): reconnect after a backoff, in case the cause goes away. */
static void on_goodbye(br_worker *w, const br_goodbye *m)
{
    bool unknown = br_str_eq(m->reason, BR_GOODBYE_UNKNOWN_WORKER);
    if (unknown && !w->registered && !w->draining) {
        /* It answers a message sent before our READY (heartbeats queued while a
         * restarted gateway was down): that READY is on its way already. */
        return;
    }
    br__log("broker said goodbye (%.*s)", (int)m->reason.len, m->reason.ptr ? m->reason.ptr : "");
    w->registered = false;
    if (w->draining) {
        /* Our GOODBYE was acknowledged (or the broker is stopping): no request can
         * arrive any more. */
        w->drain_acked = true;
        br__worker_request_done(w);
        return;
    }
    if (unknown) {
        send_ready(w);
        return;
    }
    close_socket(w, 0);
    reconnect_later(w);
}

static void on_message(br_zsock *zs, const br_zframe *frames, size_t nframes, void *arg)
{
    br_worker *w = arg;
    (void)zs;
    w->last_recv = uv_now(&w->loop);
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
        on_welcome(w, msg.version, &msg.u.welcome);
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
        on_goodbye(w, &msg.u.goodbye);
        break;
    case BR_MSG_HEARTBEAT:
        break;
    case BR_MSG_JOB:
        br__jobs_run(w, &msg.u.job);
        break;
    case BR_MSG_JOB_CANCEL:
        br__jobs_cancel(w, msg.u.job_cancel.job_id);
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

/* Creates the DEALER socket, connects it and says READY. */
static void open_socket(br_worker *w)
{
    void *s = zmq_socket(w->zctx, ZMQ_DEALER);
    if (!s) {
        br__log("zmq_socket: %s", zmq_strerror(errno));
        reconnect_later(w);
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
    if (zmq_connect(s, w->connect) != 0) {
        br__log("zmq_connect(%s): %s", w->connect, zmq_strerror(errno));
        goto fail;
    }
    w->zs = br_zsock_new(&w->loop, s, on_message, w);
    if (!w->zs)
        goto fail;
    send_ready(w);
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

static void on_tick(uv_timer_t *t)
{
    br_worker *w = t->data;
    /* Only a registered worker recycles: draining before the broker knows it would
     * leave nobody to acknowledge the GOODBYE and no replacement to take over. */
    if (w->max_rss && w->registered && !w->draining) {
        uint64_t rss = resident_bytes();
        if (rss > w->max_rss) {
            char why[128];
            snprintf(why, sizeof(why), "resident set %llu MB is over --max-rss-mb %llu: recycling",
                     (unsigned long long)(rss >> 20), (unsigned long long)(w->max_rss >> 20));
            br__worker_drain(w, why);
        }
    }
    if (!w->zs)
        return;
    uint64_t now = uv_now(&w->loop);
    uint64_t silent_max =
        (uint64_t)BR_LIVENESS * (w->registered ? w->broker_hb_ms : w->heartbeat_ms);
    if (now - w->last_recv >= silent_max) {
        br__log("broker silent for %llu ms; reconnecting",
                (unsigned long long)(now - w->last_recv));
        close_socket(w, 0);
        if (w->draining)
            br__worker_request_done(w); /* no broker: nothing more can arrive */
        else
            reconnect_later(w);
        return;
    }
    if (w->registered)
        br__jobs_tick(w);
    if (w->registered && now - w->last_send >= w->heartbeat_ms)
        send_simple(w, BR_MSG_HEARTBEAT, NULL);
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
    close_socket(w, BR_CLOSE_LINGER_MS);
    if (w->result != BR_ECLOSED)
        br__svcs_stop(w);
    uv_close((uv_handle_t *)&w->tick, NULL);
    uv_close((uv_handle_t *)&w->retry, NULL);
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
    if (w->draining && w->inflight == 0 && (w->drain_acked || !w->zs))
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
    uv_timer_stop(&w->retry);
    send_simple(w, BR_MSG_GOODBYE, "draining");
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
    w->broker_hb_ms = w->heartbeat_ms;
    w->backoff_ms = BR_BACKOFF_FIRST_MS;
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
    uv_timer_init(&w->loop, &w->retry);
    uv_timer_init(&w->loop, &w->drain_timer);
    uv_async_init(&w->loop, &w->wake, on_wake);
    w->tick.data = w->retry.data = w->drain_timer.data = w->wake.data = w;
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
    open_socket(w);
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
