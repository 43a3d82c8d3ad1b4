/*
 * offload.c - run_in_threadpool: a blocking call on the libuv thread pool, and the
 * continuation back on the loop (barista/async.h).
 *
 * A running job cannot be stopped, and it may read the request's arena: the request is
 * pinned until the job returns, so that a request that ends meanwhile (a cancel, the
 * deadline) keeps its memory until then; its continuation is simply not run.
 */
#include <stdlib.h>

#include "worker_int.h"

/* One job on the thread pool. */
typedef struct offload {
    br__op op;          /* in the request's operations: abandoned when it ends */
    uv_work_t work;     /* the libuv job */
    br_req *req;        /* the request that started it (pinned) */
    br_work_fn fn;      /* the blocking call, on a pool thread */
    br_result_fn after; /* the continuation, on the loop */
    void *arg;          /* both functions' argument */
    uint16_t status;    /* what fn returned */
    bool abandoned;     /* the request ended first: do not continue */
} offload;

static void offload_abort(br__op *op)
{
    offload *o = (offload *)op;
    o->abandoned = true; /* the job still runs; its after-callback frees it */
}

static void run(uv_work_t *work)
{
    offload *o = work->data;
    o->status = o->fn(o->arg);
}

static void after_run(uv_work_t *work, int status)
{
    (void)status; /* UV_ECANCELED never happens: nothing calls uv_cancel */
    offload *o = work->data;
    br_req *req = o->req;
    if (!o->abandoned) {
        br__op_unlink(req, &o->op);
        br_result res = {
            .status = o->status, .content_type = {"", 0}, .body = {"", 0}, .detail = {"", 0}};
        br__watch_enter(req->worker, req->spec);
        o->after(req, &res, o->arg);
        br__watch_leave(req->worker);
    }
    free(o);
    br__req_unpin(req);
}

int br_offload(br_req *req, br_work_fn fn, br_result_fn after, void *arg)
{
    if (!fn || !after || req->on_thread || req->ended)
        return BR_EINVAL;
    offload *o = calloc(1, sizeof(*o));
    if (!o)
        return BR_ENOMEM;
    o->req = req;
    o->fn = fn;
    o->after = after;
    o->arg = arg;
    o->work.data = o;
    int rc = uv_queue_work(br_req_loop(req), &o->work, run, after_run);
    if (rc != 0) {
        br__log("uv_queue_work: %s", uv_strerror(rc));
        free(o);
        return BR_EIO;
    }
    o->op.abort = offload_abort;
    br__op_link(req, &o->op);
    br__req_pin(req);
    return 0;
}
