/*
 * async_int.h - the runtime's side of barista/async.h: operations a request owns
 * (calls, gathers, fetches, offloads), the per-worker state behind them, and the loop
 * watchdog.  worker.c and dispatch.c call the hooks at the bottom; the rest lives in
 * call.c, gather.c, http_client.c, offload.c and watchdog.c.
 */
#ifndef BARISTA_WORKER_ASYNC_INT_H
#define BARISTA_WORKER_ASYNC_INT_H

#include "barista/proto.h"
#include "barista/worker.h"

struct br_worker;

/* An operation a request owns.  When the request ends, br__ops_abort unlinks every
 * one and calls its abort, which stops it, frees what it can and never calls back. */
typedef struct br__op {
    struct br__op *prev, *next;       /* in the request's list */
    void (*abort)(struct br__op *op); /* the request ended first */
} br__op;

/* Links op into req's list / unlinks it (when it finished on its own). */
void br__op_link(br_req *req, br__op *op);
void br__op_unlink(br_req *req, br__op *op);

/* Aborts every operation req still owns.  Called by br__req_release. */
void br__ops_abort(br_req *req);

/* The time an operation of req may take: the request's remaining deadline, or
 * timeout_ms when that is shorter (0 means no shorter limit).  0 once the deadline
 * passed. */
uint32_t br__req_budget(const br_req *req, uint32_t timeout_ms);

/* Keeps req's memory alive past its end while a thread-pool job may still read it;
 * br__req_unpin releases a request whose release was deferred. */
void br__req_pin(br_req *req);
void br__req_unpin(br_req *req);

/* The default stall threshold of the watchdog. */
#define BR_WORKER_DEFAULT_STALL_MS 100

/* Hooks for worker.c: after the loop is initialised (watchdog), when the worker
 * closes its handles (curl, watchdog), when it is destroyed (curl's global state). */
int br__async_open(struct br_worker *w);
void br__async_close(struct br_worker *w);
void br__async_release(struct br_worker *w);

/* A REPLY arrived: answers the call with that id (stale ids are ignored). */
void br__calls_reply(struct br_worker *w, const br_reply *r);

/* CALL_STREAM_START, CALL_STREAM_CHUNK or CALL_STREAM_END: a piece of the streamed
 * answer of the call with that id (stale ids are ignored).  False for other types. */
bool br__calls_stream_msg(struct br_worker *w, const br_msg *m);

/* Broker session gen ended (its broker fell silent, or a new READY is going out):
 * every call in flight on it fails with 502, since its answer can no longer arrive. */
void br__calls_fail_gen(struct br_worker *w, uint64_t gen);

/* Watchdog: the runtime is about to run handler code for a request of `spec`, and
 * has finished it.  A run longer than the stall threshold is logged with the route. */
void br__watch_enter(struct br_worker *w, const br_route_spec *spec);
void br__watch_leave(struct br_worker *w);

/* The pieces behind those hooks (async.c calls them). */
int br__watch_open(struct br_worker *w);
void br__watch_close(struct br_worker *w);
void br__http_close(struct br_worker *w);
void br__http_release(struct br_worker *w);

/* Per-worker state (opaque to worker.c). */
typedef struct br__calls br__calls;
typedef struct br__http br__http;
typedef struct br__watch br__watch;

#endif /* BARISTA_WORKER_ASYNC_INT_H */
