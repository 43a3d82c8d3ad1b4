/*
 * barista/async.h - the async toolkit of an I/O handler: calling other services,
 * gathering several operations, calling external HTTP APIs, and running blocking
 * library calls on the thread pool.  Included by barista/worker.h.
 *
 * Every operation here belongs to the request that started it, runs on the worker's
 * loop and ends with one callback on the loop thread - unless the request ends first:
 * then the operation is abandoned (a call's CANCEL goes to the broker, a transfer is
 * aborted) and its callback never runs.  A handler therefore never sees a callback for
 * a request it already answered.
 *
 * Outcomes share one shape, br_result: an HTTP-like status and body.  A failure that
 * produced no answer is a status too - 504 when a deadline passed, 503 when no worker
 * serves the route, 502 when the peer failed - with `detail` saying what happened.
 *
 * docs/workers.md shows each piece with a short example.
 */
#ifndef BARISTA_ASYNC_H
#define BARISTA_ASYNC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "barista/types.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct br_req br_req;

/* The outcome of one async operation.  Strings live in the request's arena until the
 * request ends. */
typedef struct br_result {
    uint16_t status;     /* the answer's HTTP status, or 502/503/504/499 for a failure */
    br_str content_type; /* the answer's media type; empty when there is none */
    br_str body;         /* the answer's body; empty when there is none */
    br_str detail;       /* why it failed (the {"detail"} of an error answer, or the
                            runtime's reason); empty on success */
} br_result;

/* True for a 2xx status. */
static inline int br_result_ok(const br_result *r)
{
    return r->status >= 200 && r->status < 300;
}

/* Called once, on the loop thread, when an operation finished. */
typedef void (*br_result_fn)(br_req *req, const br_result *res, void *arg);

/* ---------------------------------------------------------------------------------- */
/* Calls: another service, by route, through the broker (`await client.get(...)`).     */

/* The most calls one worker has in flight at once. */
#define BR_CALLS_MAX 65536
/* Most query parameters in a call's path. */
#define BR_CALL_MAX_QUERY 64

/* A call's request.  Zero fields take defaults. */
typedef struct br_call_spec {
    const char *method;       /* "GET" when NULL */
    const char *path;         /* path with an optional query, e.g. "/sleep?ms=100";
                                 the query's names and values are taken literally */
    const br_pair *query;     /* more query parameters (any bytes: a value with '&',
                                 '=' or '%' goes here); may be NULL */
    size_t nquery;            /* entries in query */
    const char *content_type; /* the body's media type; NULL for none */
    const void *body;         /* request body; may be NULL */
    size_t body_len;          /* bytes in body */
    uint32_t timeout_ms;      /* 0: the caller's remaining deadline; else at most this */
    /* A keyed actor addressed directly by type and key, without a route: the message
     * runs in the key's turn on the type's on_call (br_actor_spec); method, path, query
     * and body are passed as they are (the path names the operation).  NULL: a call
     * routed by method and path. */
    const char *actor_type;
    const char *actor_key; /* with actor_type: the key (non-empty) */
} br_call_spec;

/* One call in flight.  Opaque; owned by the runtime. */
typedef struct br_call_op br_call_op;

/* Sends spec as a CALL to the broker on behalf of req.  The callee's deadline is the
 * caller's remaining deadline, or spec->timeout_ms when that is shorter, so budgets
 * shrink hop by hop; the request's trace context goes with it.  cb(req, res, arg)
 * runs once with the answer: the callee's reply, or the broker's own error (404, 422,
 * 503 no worker, 504 deadline), or a 502 when the connection to the broker is lost.  A
 * callee that answers with a stream (barista/stream.h) arrives gathered into this one
 * answer, up to the gateway's --call-gather-max (8 MiB): past it, or when it does not
 * end within the call's deadline, the call gets 502 or 504 and the callee's stream is
 * cancelled; so it is, with 503, when every answer being gathered together would pass
 * the gateway's --call-gather-total (64 MiB).  br_call_stream takes such an answer
 * piece by piece.  *out, when not NULL, receives the call for br_call_cancel.
 * Returns 0 (cb will run unless the request ends or the call is cancelled first),
 * BR_EINVAL (bad spec, or a CPU request: calls are for I/O handlers),
 * BR_ECLOSED (no broker connection, or the deadline already passed), BR_EFULL (BR_CALLS_MAX),
 * BR_ELIMIT (more than BR_CALL_MAX_QUERY query parameters) or BR_ENOMEM; then cb never runs. */
int br_call(br_req *req, const br_call_spec *spec, br_result_fn cb, void *arg, br_call_op **out);

/* Abandons a call: CANCEL goes to the broker and cb never runs.  Safe only before cb
 * ran. */
void br_call_cancel(br_call_op *call);

/* ---------------------------------------------------------------------------------- */
/* Streamed calls: the answer in pieces as it comes (`async with client.stream(...)`).  */
/*
 * br_call_stream sends the same CALL as br_call, but hands the answer over as it
 * arrives: on_head once with the status and headers, on_chunk for each piece of the
 * body in order, on_end once.  A service that answers with a stream (barista/stream.h)
 * is relayed chunk by chunk; one that answers with one reply - and the broker's own
 * errors (404, 503, 504 before the answer started) - arrives as on_head, one on_chunk
 * with its body (when it has one), and on_end(complete).
 *
 * Flow control.  The caller grants the gateway BR_CALL_STREAM_WINDOW bytes at first
 * and grants again what its callbacks have taken, in batches; the gateway grants the
 * target only what the caller granted, so a slow caller slows the target and neither
 * the gateway nor the caller holds more than the window of one streamed call.  A
 * handler that passes the chunks on to a slower consumer (its own streamed response,
 * say) calls br_call_stream_pause: no more is granted, so at most one window more
 * arrives, until br_call_stream_resume.
 *
 * Cancellation.  br_call_cancel (or the request's end) sends CANCEL; the gateway
 * cancels the target's stream, and no callback runs any more.  A stream that idles
 * past the gateway's --stream-idle-timeout ends with on_end(complete = false).
 *
 * A gateway that does not offer streamed calls (an older one: WELCOME did not confirm
 * BR_FEATURE_CALL_STREAM) answers with one REPLY, which arrives the same way
 * (on_head, on_chunk, on_end); it gathers a streamed answer into that REPLY first. */

/* Bytes a streamed call lets the gateway send ahead of its callbacks. */
#define BR_CALL_STREAM_WINDOW (256u * 1024u)

/* The start of a streamed call's answer.  Strings are valid during on_head only. */
typedef struct br_call_head {
    uint16_t status;        /* the answer's HTTP status (or the broker's error status) */
    br_str content_type;    /* the answer's media type; may be empty */
    const br_pair *headers; /* the answer's extra headers, names lower case */
    size_t nheaders;        /* entries in headers */
    br_str detail;          /* an error answer's {"detail"} when it is text; else empty */
} br_call_head;

/* The callbacks of a streamed call; each runs on the loop thread, never after the
 * request ended or the call was cancelled.  on_chunk's data is valid during the call
 * only (copy what you keep).  on_end runs once, last: complete is true when the whole
 * body arrived, false when it was cut (`error` says why: the service cut it, it went
 * idle, the connection to the broker was lost; then on_head may not have run). */
typedef struct br_call_stream_fns {
    void (*on_head)(br_req *req, const br_call_head *head, void *arg);
    void (*on_chunk)(br_req *req, const void *data, size_t len, void *arg);
    void (*on_end)(br_req *req, bool complete, br_str error, void *arg);
} br_call_stream_fns;

/* Sends spec as a CALL like br_call, asking for the answer as a stream; fns (copied;
 * on_end required, the others may be NULL) receive it.  *out, when not NULL, receives
 * the call for br_call_cancel, br_call_stream_pause and br_call_stream_resume.  Returns
 * as br_call. */
int br_call_stream(br_req *req, const br_call_spec *spec, const br_call_stream_fns *fns, void *arg,
                   br_call_op **out);

/* Stops granting the gateway more of the answer (at most the bytes granted already
 * still arrive), and starts again.  No-ops on a call that is not streamed. */
void br_call_stream_pause(br_call_op *call);
void br_call_stream_resume(br_call_op *call);

/* ---------------------------------------------------------------------------------- */
/* Gather: several operations at once, one callback (`asyncio.gather(...,             */
/* return_exceptions=True)` under `asyncio.wait_for`).                                 */

/* The most branches in one gather. */
#define BR_GATHER_MAX 64

typedef struct br_gather br_gather;

/* Called once when every branch finished or the gather's deadline passed.
 * results[i] is branch i's outcome, in the order the branches were added; a branch
 * still running at the deadline is a 504 whose detail says so (and was cancelled). */
typedef void (*br_gather_fn)(br_req *req, const br_result *results, size_t n, void *arg);

/* Starts an empty gather for req with a deadline of timeout_ms (0: the request's
 * remaining deadline; never more than it).  Add branches, then br_gather_start.
 * The gather lives in the request's arena and its deadline timer is one of the
 * request's BR_REQ_MAX_HANDLES adopted handles.  Returns NULL when memory runs out,
 * the handles are all taken, or req is a CPU request or ended. */
br_gather *br_gather_new(br_req *req, uint32_t timeout_ms, br_gather_fn cb, void *arg);

/* Adds a call as the next branch; its callee's deadline is at most the gather's
 * timeout.  A call that cannot start is a finished branch with the reason as its
 * result (so the gather still runs).  Returns the branch index, or BR_EFULL
 * (BR_GATHER_MAX) / BR_EINVAL (after start). */
int br_gather_call(br_gather *g, const br_call_spec *spec);

/* Adds a branch completed by any other async operation: pass br_gather_done as that
 * operation's br_result_fn and the returned `arg` as its argument (say, to br_offload's
 * or br_http_fetch's).  At the deadline such a branch is reported as a 504 and its
 * late result ignored; the operation itself runs on until it ends or the request does.
 * Returns the branch index and sets *arg_out, or BR_EFULL / BR_EINVAL. */
int br_gather_branch(br_gather *g, void **arg_out);

/* Completes the branch `arg` (from br_gather_branch) with res; a br_result_fn.  A
 * branch completed twice, or after the deadline, is ignored. */
void br_gather_done(br_req *req, const br_result *res, void *arg);

/* Arms the deadline; cb runs when the last branch finishes (at once, from the loop,
 * when every branch finished already).  Returns 0 or BR_EINVAL (started twice). */
int br_gather_start(br_gather *g);

/* ---------------------------------------------------------------------------------- */
/* Async HTTP client (httpx.AsyncClient): libcurl's multi interface on the worker's   */
/* loop; connections are reused across requests.                                      */

/* The most bytes of an upstream body kept (more fails the fetch with 502). */
#define BR_HTTP_BODY_MAX (8u * 1024u * 1024u)
/* The most request headers of one fetch. */
#define BR_HTTP_MAX_HEADERS 32

/* An outgoing HTTP request. */
typedef struct br_http_spec {
    const char *method;         /* "GET" when NULL */
    const char *url;            /* absolute http:// or https:// URL */
    const char *const *headers; /* "Name: value" lines; may be NULL */
    size_t nheaders;            /* entries in headers, at most BR_HTTP_MAX_HEADERS */
    const void *body;           /* request body; may be NULL */
    size_t body_len;            /* bytes in body */
    uint32_t timeout_ms;        /* 0: the request's remaining deadline; never more */
} br_http_spec;

/* Starts the transfer; cb gets the upstream's status, content type and body, or 502
 * (unreachable, refused, bad answer, body over BR_HTTP_BODY_MAX) / 504 (no answer
 * within the timeout) with a detail naming the cause.  Returns 0 (cb will run unless
 * the request ends first), BR_EINVAL, BR_ECLOSED (deadline passed), BR_EIO (libcurl.so.4
 * could not be loaded: the SDK loads it at a worker's first fetch, and logs why once)
 * or BR_ENOMEM. */
int br_http_fetch(br_req *req, const br_http_spec *spec, br_result_fn cb, void *arg);

/* ---------------------------------------------------------------------------------- */
/* Thread-pool offload (run_in_threadpool): a blocking call off the loop.              */

/* Runs work(arg) on a libuv thread-pool thread, then after(req, res, arg) on the loop
 * with the status work returned (its other fields empty).  work must not touch the
 * loop or reply; it may read br_req_cancelled.  The request's memory stays valid until
 * work returns even if the request ends meanwhile (then after never runs).  The pool
 * has UV_THREADPOOL_SIZE threads (barista-worker --threadpool).  Returns 0 or
 * BR_EINVAL / BR_ENOMEM / BR_EIO. */
typedef uint16_t (*br_work_fn)(void *arg);
int br_offload(br_req *req, br_work_fn work, br_result_fn after, void *arg);

#ifdef __cplusplus
}
#endif

#endif /* BARISTA_ASYNC_H */
