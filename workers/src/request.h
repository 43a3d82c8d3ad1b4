/*
 * request.h - one request in flight inside a worker (the runtime's side of br_req).
 *
 * A request owns one allocation: the struct, then the first block of its arena.  The
 * REQUEST frame is copied into the arena and every string of the decoded message is
 * re-pointed into that copy, so the request outlives the ZeroMQ frame it came from.
 * The reply a handler builds (status, headers, body) is kept here until the worker
 * encodes and sends it; then br__req_release closes the adopted handles and frees it.
 */
#ifndef BARISTA_WORKER_REQUEST_H
#define BARISTA_WORKER_REQUEST_H

#include <stdalign.h>
#include <stdatomic.h>

#include "arena.h"
#include "barista/proto.h"
#include "barista/worker.h"
#include "writer_int.h"

struct br_worker;

/* A streamed response's or request body's state (stream.c): made in the request's arena
 * at br_stream_start or br_req_body_stream, so that the requests that stream nothing -
 * nearly all - do not carry it while in flight. */
typedef struct br__req_stream {
    bool closing;               /* br_stream_end was called: STREAM_END follows the queue */
    bool body_over;             /* the body's end was delivered */
    uint32_t window;            /* stream bytes the broker granted that were not sent yet */
    uint32_t body_taken;        /* body bytes taken since the last window renewal */
    const char *error;          /* br_stream_abort's reason (arena or static), or NULL */
    br_buf squeue;              /* bytes written and waiting for window (heap) */
    size_t squeue_off;          /* bytes at the front of squeue already sent */
    br_body_fn on_body;         /* br_req_body_stream: pieces of the body, or NULL */
    br_body_end_fn on_body_end; /* its end */
    void *body_arg;             /* their argument */
} br__req_stream;

/* The part of a request that only an ACTOR_REQUEST uses (actors.c): in the request's
 * arena, made when the request joins its key's mailbox (br_req.ax). */
typedef struct br__req_actor {
    uint64_t epoch;       /* the ACTOR_REQUEST's epoch */
    br_str state_in;      /* with activate: the loaded state (arena) */
    br_buf turn_state;    /* with BR_STATE_SET: the new state (heap) */
    struct br_req *qnext; /* next in its actor's mailbox */
    bool activate;        /* it starts an activation with state_in */
    bool started;         /* its turn began (counted in actor->running) */
    uint8_t turn_op;      /* br_state_op the turn asked for */
} br__req_actor;

struct br_req {
    struct br_req *prev, *next; /* in the worker's in-flight list */
    struct br_req *hnext;       /* next in the in-flight id bucket */
    struct br_worker *worker;   /* the worker that runs it */
    const br_route_spec *spec;  /* the route it was matched to */
    struct br_svc *svc;         /* the service of that route */
    br_request msg;             /* the REQUEST; strings and arrays live in the arena */
    uint64_t gen;               /* registration it arrived under (see worker_int.h) */
    uint64_t t_recv_ns;         /* uv_hrtime() at arrival, for the remaining deadline */
    void *state;                /* br_req_set_state: a before hook's hand-over */
    br_cancel_fn on_cancel;     /* the handler's cancel callback, or NULL */
    void *cancel_arg;           /* its argument */
    uv_handle_t *handles[BR_REQ_MAX_HANDLES]; /* adopted handles, closed at release */
    const char *content_type;                 /* the reply's content type (arena or static) */
    br_pair *rheaders;       /* reply headers (arena), BR_REPLY_MAX_HEADERS slots */
    br_buf body;             /* the reply body (heap, max BR_REPLY_BODY_MAX) */
    br_writer *writer;       /* br_reply_start's writer into body (arena), or NULL */
    br_value json;           /* br_req_json: the body parsed, once json_parsed */
    struct br__verr *errors; /* validation errors recorded (arena), or NULL */
    uv_work_t *work;         /* a CPU request's compute-thread job (arena), else NULL: 128
                                bytes that an I/O request in flight does not pay */
    br_job_spec *jobs;       /* jobs the reply enqueues (arena), or NULL */
    struct br__op *ops;      /* async operations it owns (async_int.h) */
    struct br__actor *actor; /* actor route: its key's activation here, else NULL */
    br__req_actor *ax;       /* an actor request's own part (arena); NULL for others */
    /* A streamed response or body (stream.c). */
    br__req_stream *stream;   /* the stream's state (arena), or NULL: nothing streams */
    br_stream_fn on_writable; /* br_stream_on_writable's callback, or NULL */
    void *writable_arg;       /* its argument */
    /* The small fields together, so that the struct has no padding holes. */
    unsigned nhandles;     /* entries in handles */
    unsigned closing;      /* adopted handles whose close callback is pending */
    uint32_t nrheaders;    /* entries used in rheaders */
    int body_err;          /* why a write into body failed (the reply becomes 500) */
    uint32_t nerrors;      /* entries in errors */
    uint32_t njobs;        /* entries used in jobs */
    unsigned pins;         /* thread-pool jobs that may still read it */
    uint16_t status;       /* the reply's status */
    atomic_bool cancelled; /* set by the loop thread, read by a CPU handler */
    bool ended;            /* a reply was produced; the handler is done with it */
    bool in_after;         /* the service's after hook runs: headers may still be added */
    bool on_thread;        /* the handler runs on the compute thread */
    bool writing;          /* between br_reply_start and br_reply_send */
    bool json_parsed;      /* json holds the answer */
    bool release_deferred; /* released while pinned: free at the last unpin */
    bool streaming;        /* br_stream_start sent STREAM_START: the answer is a stream */
    br__arena arena;       /* request-scoped memory, starting in first[] */
    alignas(max_align_t) char first[]; /* the arena's first block */
};

/* Creates a request for the decoded REQUEST `m`, whose strings point into
 * frame[0..len).  Copies what it needs; the frame may go away after the call.  Returns
 * NULL when memory runs out. */
br_req *br__req_new(struct br_worker *w, const br_route_spec *spec, const br_request *m,
                    const void *frame, size_t len);

/* Marks the request cancelled and, for an I/O handler that registered one, runs its
 * cancel callback (once).  Loop thread only. */
void br__req_cancel(br_req *req);

/* Fills *out with the REPLY the handler built (a 499 with no body once cancelled, a
 * 500 when the handler never replied or a reply failed).  Valid until release. */
void br__req_reply_msg(br_req *req, br_reply *out);

/* Ends the request's life: closes the adopted handles and frees everything once their
 * close callbacks have run.  Loop thread only; req is gone for the caller. */
void br__req_release(br_req *req);

/* Called by request.c when an I/O handler replied (defined by the dispatcher). */
void br__dispatch_replied(br_req *req);

#endif /* BARISTA_WORKER_REQUEST_H */
