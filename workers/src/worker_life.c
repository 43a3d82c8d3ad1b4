/*
 * worker_life.c - a worker's life cycle: creating it from its options, opening its loop
 * and handles around its services' init, the links of the endpoints given, running,
 * stopping from any thread, closing and destroying.  The connections themselves are
 * worker.c's.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zmq.h>

#include "worker_int.h"

/* The longest host name used in a default worker id. */
#define HOST_NAME_MAX_LEN 255
/* Bounds on the heartbeat tick, which runs four times per heartbeat interval. */
#define TICK_MIN_MS 5

static char *dup_cstr(const char *s)
{
    size_t n = strlen(s) + 1;
    char *c = malloc(n);
    if (c)
        memcpy(c, s, n);
    return c;
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

br__link *br__link_add(br_worker *w, uint32_t source, const char *endpoint)
{
    br__link *l = NULL;
    for (uint32_t i = 0; i < BR_WORKER_MAX_BROKERS && !l; i++)
        if (!w->links[i].used)
            l = &w->links[i];
    char *copy = l ? dup_cstr(endpoint) : NULL;
    if (!copy) {
        br__log("no room for broker %s (at most %u brokers)", endpoint, BR_WORKER_MAX_BROKERS);
        return NULL;
    }
    /* A reused slot keeps its timer handle; everything before it starts afresh. */
    memset(l, 0, offsetof(br__link, timer_ready));
    l->w = w;
    l->index = (uint32_t)(l - w->links);
    l->used = true;
    if (l->index >= w->nlinks)
        w->nlinks = l->index + 1;
    w->nused++;
    l->source = source;
    l->endpoint = copy;
    l->broker_hb_ms = w->heartbeat_ms;
    l->backoff_ms = BR_BACKOFF_FIRST_MS;
    return l;
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
    w->resolve_ms = o->resolve_ms ? o->resolve_ms : BR_WORKER_DEFAULT_RESOLVE_MS;
    w->handle_signals = o->handle_signals;
    /* BARISTA_REQ_BATCH=0 leaves BR_FEATURE_REQ_BATCH out of READY: requests and replies
     * then travel one per frame, for comparisons and for tests of older peers. */
    const char *req_batch = getenv("BARISTA_REQ_BATCH");
    w->no_req_batch = req_batch && strcmp(req_batch, "0") == 0;
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
    if (w->connect && br__sources_init(w, o->prefer_first_broker) != 0) {
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
    br__handoff_release(w);
    br__async_release(w);
    br__svcs_release(w);
    br_decoder_destroy(&w->dec);
    br_buf_free(&w->out);
    br__registry_release(&w->reg);
    uv_mutex_destroy(&w->wake_lock);
    for (uint32_t i = 0; i < w->nlinks; i++) {
        free(w->links[i].endpoint);
        br_ws_batch_free(&w->links[i].batch);
    }
    free(w->links);
    br__sources_release(w);
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
    uv_timer_start(&w->tick, br__worker_tick, tick, tick);
    /* Before any connection: a service whose set-up fails is never announced. */
    if (br__svcs_start(w) != 0) {
        w->result = BR_EINVAL;
        br__worker_shutdown(w);
        return 0; /* the caller runs the loop to close the handles; close says why */
    }
    br__log("%s: %s worker, capacity %u, connecting to %s%s", w->id,
            w->reg.kind == BR_KIND_CPU ? "cpu" : "io", w->capacity, w->connect,
            w->curve ? " with CURVE" : "");
    for (uint32_t i = 0; i < w->nlinks && !w->closing; i++)
        br__link_open(&w->links[i]);
    if (!w->closing)
        br__sources_start(w);
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
