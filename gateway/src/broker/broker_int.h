/*
 * broker_int.h - what the broker's files share: broker.c (socket, registration,
 * heartbeats, attached subsystems), intake.c (HTTP request -> call), dispatch.c
 * (request lifecycle), calls.c (service-to-service CALLs), zap.c and keys.c (CURVE).
 * Not for use outside the broker: other subsystems use broker.h and its hooks.
 */
#ifndef BARISTA_GW_BROKER_INT_H
#define BARISTA_GW_BROKER_INT_H

#include <barista/proto.h>
#include <barista/turn_end.h>
#include <barista/zsock.h>

#include "broker.h"
#include "deadline.h"
#include "edge.h"
#include "http.h"
#include "idmap.h"
#include "log.h"
#include "pool.h"
#include "registry.h"
#include "websocket.h"

/* Bytes of a broker id: 16 random bytes as hex. */
#define GW_BROKER_ID_LEN 32
/* Length of a W3C traceparent: "00-" 32 hex "-" 16 hex "-" 2 hex. */
#define GW_TRACE_LEN 55

struct gw_broker {
    uv_loop_t *loop;                      /* the gateway's loop */
    gw_router *router;                    /* where routes go (the caller's) */
    gw_broker_config cfg;                 /* a copy of the caller's */
    char *endpoint;                       /* cfg.endpoint's own copy */
    char broker_id[GW_BROKER_ID_LEN + 1]; /* random per start, told to workers */
    void *zctx;                           /* ZeroMQ context, from start to shutdown's end */
    void *zsocket;                        /* the ROUTER (owned by zs) */
    br_zsock *zs;                         /* the ROUTER driven by the loop */
    br_decoder *decoder;                  /* decodes every received message */
    br_buf out;                           /* encoding scratch, reused for every send */
    gw_registry *reg;                     /* services, workers, routes */
    gw_idmap *exchanges;                  /* request id -> gw_exchange, every pending one */
    gw_idmap *cancelled;                  /* request id -> gw_cancelled (dispatch.c) */
    gw_deadline_heap deadlines;           /* deadlines of requests a client still waits for */
    uv_timer_t deadline_timer;            /* armed for the earliest deadline */
    uv_timer_t tick_timer;                /* heartbeats and liveness, every heartbeat_ms */
    uint64_t next_id;                     /* last request id handed out */
    uint64_t rng;                         /* xorshift state for trace ids */
    br_buf json;                          /* msgpack -> JSON scratch for replies */
    bool started;                         /* gw_broker_start succeeded */
    bool closing;                         /* gw_broker_shutdown was called */
    int open_handles;                     /* handles still closing during shutdown */
    void (*done)(void *arg);              /* shutdown's completion callback */
    void *done_arg;                       /* its argument */
    bool jobs_logged;                     /* "REPLY.jobs with no job queue" was logged */
    uint64_t bad_suppressed;              /* bad messages not logged since the last tick */
    bool bad_logged_tick;                 /* one bad message was logged in this tick */
    gw_broker_stats stats;                /* counters (gauges are computed on demand) */
    gw_broker_hooks hooks[GW_BROKER_MAX_ATTACHED]; /* attached subsystems' hooks */
    void *hooks_data[GW_BROKER_MAX_ATTACHED];      /* their data; NULL: a free slot */
    struct gw_zap *zap;                            /* ZAP handler while CURVE is on, else NULL */
    gw_idmap *actors;   /* hash of (type, key) -> gw_activation chain (actors.c) */
    gw_list actors_all; /* every gw_activation, oldest first */
    size_t nactors;     /* entries in actors_all */
    gw_actor_type_stats actor_types[GW_BROKER_MAX_ACTOR_TYPES]; /* per-type counters */
    size_t nactor_types;                                        /* entries used in actor_types */
    gw_list actor_timers;    /* every gw_actor_timer (actors.c) */
    uv_timer_t actor_timer;  /* armed for the earliest actor timer */
    gw_idmap *websockets;    /* connection id -> WebSocket (websockets.c) */
    gw_list ws_all;          /* every WebSocket, for broadcasts */
    uint64_t next_ws_id;     /* last WebSocket connection id handed out */
    gw_pool ws_links;        /* every WebSocket's link (websockets.c) */
    br_turn_end batch_flush; /* sends the workers' batches at the end of a loop turn */
    size_t gather_bytes;     /* bytes every gathered CALL answer holds (call_stream.c), within
                                cfg.call_gather_total */
    gw_ws_config ws_cfg;     /* WebSocket limits, cfg.ws or the defaults (every connection
                                borrows it) */
};

/* One actor key the broker knows (actors.c): where it is active, under which epoch,
 * and the messages that wait for it.  Freed only when nothing refers to it: no queued,
 * in-flight or committing message and no load under way. */
typedef struct gw_activation {
    gw_broker *broker;               /* owner */
    uint64_t hash;                   /* key in broker->actors */
    struct gw_activation *next_same; /* next with the same hash */
    gw_service *service;             /* the service whose workers host the type */
    char *type;                      /* actor type, NUL-terminated (this allocation) */
    size_t type_len;                 /* bytes in type */
    char *key;                       /* actor key, NUL-terminated (this allocation) */
    size_t key_len;                  /* bytes in key */
    uint32_t idle_ms;                /* deactivated after this long without a message */
    gw_actor_type_stats *tstats;     /* its type's counters (broker->actor_types) */
    gw_worker *worker;               /* where it is active; NULL when not */
    uint64_t epoch;                  /* the epoch of the activation (or of the next one) */
    bool have_state;                 /* state is loaded for the next activation */
    bool loading;                    /* a store load is under way */
    bool stale;                      /* must be activated again before its next message */
    br_buf state;                    /* the loaded state, until the activation is sent */
    uint32_t inflight;               /* its messages at worker, unanswered */
    uint32_t commits;                /* its replies waiting for the store */
    gw_list queue;                   /* messages waiting (gw_exchange.link), oldest first */
    size_t nqueued;                  /* entries in queue */
    uint64_t last_used;              /* loop time of its last message or reply */
    gw_list link;                    /* in worker->actors while active there */
    gw_list wait_link;               /* in a worker's actors_waiting while it waits for credit */
    gw_list all_link;                /* in broker->actors_all */
    gw_list timers;                  /* its volatile timers (gw_actor_timer.link) */
    uint32_t ntimers;                /* entries in timers */
} gw_activation;

/* A volatile actor timer (ACTOR_TIMER, durable false): lives while its activation does
 * and fires as a tick exchange through the key's queue (actors.c). */
typedef struct gw_actor_timer {
    gw_activation *actor;     /* whose timer */
    gw_list link;             /* in actor->timers */
    gw_list all_link;         /* in broker->actor_timers */
    uint64_t due;             /* loop time of its next tick */
    uint64_t period_ms;       /* then every period_ms; 0: once */
    struct gw_exchange *tick; /* its tick, queued or in flight; NULL when none */
    size_t name_len;          /* bytes in name */
    char name[];              /* its name, NUL-terminated */
} gw_actor_timer;

/* A request that was in flight at a worker when the broker stopped waiting for it -
 * its deadline passed, or its client left - and was sent CANCEL.  The exchange itself
 * is freed at once (its slot in max_pending and in its service's limit with it); this
 * small record keeps the worker's credit and bytes spent until the worker answers
 * (normally 499), or goes.  A worker that leaves one unanswered for cancel_grace_ms is
 * unhealthy (dispatch.c). */
typedef struct gw_cancelled {
    uint64_t id;       /* the REQUEST id, key in b->cancelled */
    gw_worker *worker; /* the worker holding it */
    size_t bytes;      /* its REQUEST's bytes, still counted in worker->bytes */
    uint64_t since;    /* loop time of the CANCEL */
    gw_list link;      /* in worker->cancelled, oldest first */
} gw_cancelled;

/* The part of an exchange that only actor messages use (actors.c): HTTP requests and
 * CALLs to an actor route, direct CALLs and ticks.  It sits in the exchange's own
 * allocation, right after the struct, and only there: a plain request carries just the
 * NULL pointer to it (gw_exchange.ax). */
typedef struct gw_exchange_actor {
    gw_activation *actor;       /* its key's activation; NULL until routed */
    uint64_t sent_ns;           /* uv_hrtime of the ACTOR_REQUEST (turn latency) */
    br_str tick_name;           /* with tick_kind: the timer's name (this allocation) */
    gw_actor_timer *timer;      /* a timer's tick: its timer while both live */
    gw_actor_tick_fn tick_done; /* a reminder's tick: told how its turn ended */
    void *tick_ctx;             /* its argument */
    br_str direct_key;          /* with direct: the key (this allocation) */
    br_str method;              /* with direct: the CALL's method (this allocation) */
    br_buf held;                /* while committing: the ACTOR_REPLY frame */
    bool queued;                /* in actor->queue */
    bool sent;                  /* counted in actor->inflight */
    uint8_t state_op;           /* while committing: the br_state_op */
    bool direct;                /* a CALL that named the actor by type and key */
} gw_exchange_actor;

/* The part of an exchange whose request body goes to the worker as a stream (body.c):
 * in the exchange's own allocation, after the struct and its actor part, only for a
 * request that streams its body (gw_exchange.sbody). */
typedef struct gw_exchange_body {
    br_buf hold;     /* body bytes read and not yet sent to the worker */
    uint32_t window; /* body bytes the worker granted and was not sent yet */
    bool done;       /* the client's body ended complete */
    bool end_sent;   /* STREAM_END went to the worker */
    bool paused;     /* the client's body is paused for want of window */
} gw_exchange_body;

/* An exchange: one request the broker holds - from an HTTP client or a worker's CALL -
 * from intake until the worker's REPLY (or its death); see dispatch.c for its life.
 * (A CALL is only one kind of exchange: calls.c is where CALLs come in.) */
typedef struct gw_exchange {
    uint64_t id;                  /* REQUEST id, key in b->exchanges */
    gw_broker *broker;            /* owner */
    gw_req *req;                  /* HTTP origin: the waiting client; NULL once answered/gone */
    gw_worker *caller;            /* CALL origin: the calling worker; NULL once answered/gone */
    uint64_t caller_id;           /* CALL origin: the caller's id for the call */
    gw_list caller_link;          /* in caller->outgoing while the caller waits */
    gw_route_entry *route;        /* the matched announced route */
    gw_worker *worker;            /* where it is in flight; NULL while queued */
    gw_list link;                 /* in worker->exchanges or in the service's queue */
    gw_deadline deadline;         /* in b->deadlines while someone waits */
    size_t bytes;                 /* bytes of the REQUEST in flight, counted at worker */
    br_str path;                  /* request path (into req, or copied for a CALL) */
    br_pair *params;              /* path parameters, percent-decoded */
    br_pair *query;               /* query pairs, percent-decoded */
    br_pair *headers;             /* forwarded headers */
    br_str content_type;          /* body's media type, maybe empty */
    br_str body;                  /* into req->body, `converted` or the CALL copy */
    br_buf converted;             /* JSON body as msgpack (MSGPACK routes) */
    char *scratch;                /* decoded parameter text (in this allocation) */
    size_t scratch_cap;           /* bytes at scratch */
    size_t query_cap;             /* entries allocated at query */
    size_t headers_cap;           /* entries allocated at headers */
    br_pair *cookies;             /* declared cookies (contracts.h fills) */
    gw_fill *fills;               /* the contract check's output (in this allocation) */
    size_t fills_cap;             /* entries allocated at fills (and cookies) */
    char trace[GW_TRACE_LEN + 1]; /* traceparent sent to the worker */
    br_str request_id;            /* X-Request-ID (the edge's, or the CALL copy) */
    br_str identity;              /* verified caller, msgpack map; empty: anonymous */
    gw_exchange_actor *ax;        /* actor route: its actor part (this allocation); NULL
                                     otherwise */
    uint64_t caller_window;       /* with call_stream: bytes the caller granted and was not
                                     sent yet */
    struct gw_gathered *gathered; /* a CALL's streamed answer gathered for one REPLY
                                     (stream.c); NULL otherwise */
    gw_exchange_body *sbody;      /* the body goes to the worker as a stream: its state
                                     (this allocation); NULL otherwise */
    /* The small fields together, so that the struct has no padding holes (45 bytes of
     * them when they stood with their topics). */
    uint32_t budget_ms; /* the whole budget, for the 504 detail */
    uint32_t nparams;   /* entries in params */
    uint32_t nquery;    /* entries in query */
    uint32_t nheaders;  /* entries in headers */
    uint32_t ncookies;  /* entries in cookies */
    uint32_t window;    /* stream bytes granted to the worker, not yet received */
    bool idempotent;    /* GET or HEAD: may be retried once */
    bool retried;       /* already re-sent after a worker died */
    bool counted;       /* admitted: counted in its service's npending */
    bool want_msgpack;  /* the client's Accept names application/msgpack */
    bool committing;    /* its reply waits in ax->held for the store */
    uint8_t tick_kind;  /* a timer's or reminder's tick (br_tick_kind): the
                           broker itself waits for it; 0 otherwise */
    bool streaming;     /* the worker answered with STREAM_START (stream.c) */
    bool call_stream;   /* a CALL whose caller takes the answer streamed */
} gw_exchange;

/* c's actor activation, or NULL (not an actor route, or not routed yet). */
static inline gw_activation *gw__exchange_actor(const gw_exchange *c)
{
    return c->ax ? c->ax->actor : NULL;
}

/* True while someone (an HTTP client or a calling worker) waits for c's answer. */
static inline bool gw__exchange_waited(const gw_exchange *c)
{
    return c->req != NULL || c->caller != NULL || c->tick_kind != 0;
}

/* Encodes msg and sends it to w (or, when w is NULL, to the peer `ident`).  Returns 0;
 * an encoding error (BR_ELIMIT, BR_EINVAL, BR_ENOMEM) that says nothing about the
 * peer; or a send error (BR_EFULL, BR_ENOTFOUND, BR_EIO, BR_ECLOSED) after which w is
 * marked lost and reaped at the next tick. */
int gw__broker_send(gw_broker *b, gw_worker *w, const void *ident, size_t ident_len,
                    const br_msg *msg);

/* Tells every attached subsystem that w may have credit left (after the broker's
 * own queues were served). */
void gw__broker_offer_credit(gw_broker *b, gw_worker *w);

/* Hands REPLY r's jobs to the attached job queue (see gw_broker_hooks.reply_jobs).
 * True when it took the reply to req over. */
bool gw__broker_reply_jobs(gw_broker *b, gw_req *req, const br_reply *r, bool want_msgpack);

/* Forgets w at once: its requests are retried or answered 502 (dispatch), queues of
 * services left without a live worker are answered 503, then w is freed. */
void gw__broker_forget(gw_broker *b, gw_worker *w, const char *why);

/* intake.c: the route handler every announced route gets. */
void gw__dispatch_handler(gw_req *req, void *route_data);

/* intake.c: the budget of a request on route e: its timeout or the default, capped. */
uint32_t gw__route_budget(const gw_broker *b, const gw_route_entry *e);

/* intake.c: percent-decodes the path parameters of match into dst (cap bytes, at
 * least the path's length) as c->params.  0 or BR_EVALUE (bad escape). */
int gw__exchange_path_params(gw_exchange *c, const gw_route_match *match, char *dst, size_t cap);

/* intake.c: sets c->trace to `given` when it is a well-formed traceparent, else to a
 * new random one. */
void gw__exchange_trace(gw_exchange *c, br_str given);

/* calls.c: a CALL from `caller`: routed by method + path like an HTTP request; the
 * answer (the target's REPLY, or 400/404/405/422/502/503/504) goes back as REPLY. */
void gw__calls_handle(gw_broker *b, gw_worker *caller, const br_request *m);

/* calls.c: the caller cancelled its call `id`. */
void gw__calls_cancel(gw_broker *b, gw_worker *caller, uint64_t id);

/* calls.c: caller is leaving: its pending calls are cancelled. */
void gw__calls_caller_gone(gw_broker *b, gw_worker *caller);

/* calls.c: REPLY(id) to caller carrying {"detail":DETAIL} as msgpack. */
void gw__calls_reply_detail(gw_broker *b, gw_worker *caller, uint64_t id, int status,
                            bool retry_after, const char *detail);

/* calls.c: the target's REPLY r, passed to caller as the answer to its call `id`. */
void gw__calls_forward(gw_broker *b, gw_worker *caller, uint64_t id, const br_reply *r);

/* dispatch.c: true for hop-by-hop header names (never forwarded either way). */
bool gw__is_hop_by_hop(const char *name, size_t len);

/* dispatch.c: sends a worker's REPLY r to the HTTP client req (msgpack bodies become
 * JSON unless want_msgpack; x-barista-worker names worker_id unless it is NULL).  When
 * the answer cannot be built (out of memory) req is answered a short 502 instead; when
 * even that fails it is logged and left to the connection's timeouts.  The caller must
 * have detached req from its exchange (no abort callback may point at it). */
void gw__dispatch_respond_reply(gw_broker *b, gw_req *req, const br_reply *r, bool want_msgpack,
                                const char *worker_id);

/* dispatch.c: answers req 503 "Service 'NAME' is unavailable: no live worker". */
void gw__dispatch_respond_unavailable(gw_broker *b, gw_req *req, const gw_service *s);

/* dispatch.c: counts a 502, 503 or 504 the broker answered itself. */
void gw__broker_count_status(gw_broker *b, int status);

/* dispatch.c: takes c off every structure (queue or worker list, caller, heap, id map)
 * and frees it.  Whoever waited must have been answered already. */
void gw__exchange_free(gw_exchange *c);

/* dispatch.c: forgets who waits for c (they were answered or are gone); an HTTP
 * request loses its abort callback, so that nothing can reach c through it again. */
void gw__exchange_detach(gw_exchange *c);

/* dispatch.c: answers whoever waits for c with a broker error (HTTP response or
 * REPLY to the caller) and frees c, which must not be in flight. */
void gw__exchange_fail(gw_exchange *c, int status, bool retry_after, const char *detail);

/* dispatch.c: whoever waited for c is gone: a queued c is freed, an in-flight one
 * cancelled. */
void gw__exchange_abandon(gw_exchange *c);

/* dispatch.c: nobody waits for in-flight c any more: CANCEL to the worker, c is freed
 * and a gw_cancelled keeps the worker's credit spent until its REPLY. */
void gw__exchange_cancel(gw_exchange *c);

/* dispatch.c: every cancelled request of w is forgotten (w is going). */
void gw__dispatch_forget_cancelled(gw_broker *b, gw_worker *w);

/* dispatch.c: once per tick: marks workers that left a CANCEL unanswered past the
 * grace unhealthy, and retires services without a worker past theirs. */
void gw__dispatch_tick(gw_broker *b, uint64_t now);

/* dispatch.c: gives a prepared call an id and a deadline `budget_ms` from now, and
 * routes it.  Answers and frees it itself when the broker holds max_pending calls. */
void gw__exchange_admit(gw_exchange *c, uint32_t budget_ms);

/* dispatch.c: sends c to the least loaded live worker of its service or queues it
 * (front: a retry, admitted already; back: a new call, bounded by queue_limit).
 * Answers the client itself when neither is possible. */
void gw__exchange_route(gw_exchange *c, bool front);

/* dispatch.c: arms the deadline timer for the earliest deadline, if any. */
void gw__dispatch_arm_deadline(gw_broker *b);

/* dispatch.c: a REPLY from w.  Stale ones are counted and dropped. */
void gw__dispatch_reply(gw_broker *b, gw_worker *w, const br_reply *r);

/* dispatch.c: sends queued requests of s to workers with credit; answers them 503
 * when s has no live worker left. */
void gw__dispatch_pump(gw_broker *b, gw_service *s);

/* dispatch.c: w is leaving now (w must no longer be live): each request in flight at
 * it is retried elsewhere when allowed, or answered 502; cancelled ones are freed. */
void gw__dispatch_worker_gone(gw_broker *b, gw_worker *w);

/* dispatch.c: answers every pending request 503 and frees it (shutdown). */
void gw__dispatch_fail_all(gw_broker *b);

/* dispatch.c: fills r with c's REQUEST fields (id, route, params, remaining budget). */
void gw__exchange_fill_request(gw_exchange *c, br_request *r);

/* dispatch.c: sends m (c's REQUEST or ACTOR_REQUEST) to w and puts c in flight there,
 * spending a credit.  0, or gw__broker_send's error (nothing changed then). */
int gw__exchange_send(gw_exchange *c, gw_worker *w, const br_msg *m);

/* dispatch.c: w answered in-flight c: its credit comes back, c leaves w. */
void gw__exchange_returned(gw_exchange *c);

/* dispatch.c: answers whoever waits for c (no longer in flight) with reply r, and
 * frees c.  worker_id: w when the reply names its worker (x-barista-worker). */
void gw__exchange_deliver(gw_exchange *c, gw_worker *w, const br_reply *r);

/* dispatch.c: w's credit grew: drained workers go, queues are served. */
void gw__dispatch_after_reply(gw_broker *b, gw_worker *w);

/* actors.c: routes actor exchange c to its key's activation (front: a retry). */
void gw__actors_route(gw_exchange *c, bool front);

/* actors.c: c leaves its actor's queue or in-flight count (freed, or w died). */
void gw__actors_exchange_gone(gw_exchange *c);

/* actors.c: ACTOR_REPLY ar from w, `frame` its bytes (kept while the commit runs). */
void gw__actors_reply(gw_broker *b, gw_worker *w, const br_actor_reply *ar, const void *frame,
                      size_t frame_len);

/* actors.c: w may have credit: activations waiting for it move on. */
void gw__actors_credit(gw_broker *b, gw_worker *w);

/* actors.c: w is gone (after its in-flight exchanges were retried or failed): its
 * activations end, their keys move. */
void gw__actors_worker_gone(gw_broker *b, gw_worker *w);

/* actors.c: once per tick: idle activations end; stuck queues move. */
void gw__actors_tick(gw_broker *b, uint64_t now);

/* actors.c: frees every activation (destroy). */
void gw__actors_free_all(gw_broker *b);

/* actors.c: tick exchange c (a timer's or a reminder's) was answered with `status`:
 * its timer may fire again, its reminder is told the outcome.  c->tick_kind is 0
 * after (nobody waits for c any more). */
void gw__actors_tick_answered(gw_exchange *c, int status);

/* actors.c: ACTOR_TIMER from w. */
void gw__actors_timer_msg(gw_broker *b, gw_worker *w, const br_actor_timer *m);

/* actors.c: the route entry that serves actor type `type` (the first announced one,
 * preferring a service with a live worker), or NULL. */
gw_route_entry *gw__actors_type_route(gw_broker *b, br_str type);

/* actors.c: the actor timer callback. */
void gw__actors_on_timer(uv_timer_t *timer);

/* actors.c: the actor gauges. */
void gw__actors_stats(const gw_broker *b, gw_broker_stats *out);
/* websockets.c: the broker's WebSocket state; 0 or BR_ENOMEM. */
int gw__ws_init(gw_broker *b);
void gw__ws_fini(gw_broker *b);

/* websockets.c: a prepared exchange on a WebSocket route: the client is upgraded and
 * placed on a worker (WS_OPEN), or answered an error; c is freed either way. */
void gw__ws_open(gw_exchange *c);

/* websockets.c: a WS_* message from w; false when m is of another type. */
bool gw__ws_worker_msg(gw_broker *b, gw_worker *w, const br_msg *m);

/* websockets.c: w is gone (1011) or draining (1012): its connections are closed. */
void gw__ws_worker_gone(gw_broker *b, gw_worker *w, bool drained);

/* websockets.c: shutdown: every connection is closed with 1001. */
void gw__ws_close_all(gw_broker *b);

/* batch.c: the batch flush handle, started with the broker and closed at its shutdown
 * (cb once, with handle->data = b). */
void gw__batch_start(gw_broker *b);
void gw__batch_close_handles(gw_broker *b);
/* One of the broker's handles finished closing at shutdown (broker.c). */
void gw__broker_handle_closed(gw_broker *b);

/* batch.c: adds m to w's batch for this loop turn (w reads WS_BATCH; a REQUEST only
 * when w agreed on BR_FEATURE_REQ_BATCH), sent as one frame at the end of the turn or
 * before any other message to w.  *bytes (when not NULL) gets m's encoded size.  0, or
 * BR_ECLOSED (w is lost) or the encoder's error (nothing added then). */
int gw__batch_send(gw_broker *b, gw_worker *w, const br_msg *m, size_t *bytes);

/* batch.c: sends the messages batched for w (one frame) now; a failed send marks w
 * lost (reaped at the next tick, its requests retried or answered then). */
void gw__batch_flush(gw_broker *b, gw_worker *w);

/* batch.c: a WS_BATCH from w: each message in it as if it had come alone, through
 * gw__broker_worker_msg, until the end or until w is gone. */
void gw__batch_recv(gw_broker *b, gw_worker *w, br_str messages);

/* broker.c: a message from registered worker w (not READY, not ACTOR_REPLY). */
void gw__broker_worker_msg(gw_broker *b, gw_worker *w, const br_msg *m);
/* dispatch.c: the late answer (REPLY or STREAM_END) of a request of w's that was
 * cancelled: its credit comes back.  False when w holds no such request. */
bool gw__dispatch_cancelled_answered(gw_broker *b, gw_worker *w, uint64_t id);

/* dispatch.c: moves c's deadline to `when` (loop time) and re-arms the timer. */
void gw__exchange_set_deadline(gw_exchange *c, uint64_t when);

/* stream.c: grants c's worker up to max - used stream bytes more, in batches of at
 * least half of max (at once while it has no window left). */
void gw__stream_grant(gw_exchange *c, size_t max, size_t used);

/* stream.c: the stream made progress: its idle timeout starts again. */
void gw__stream_touch(gw_exchange *c);

/* call_stream.c: a CALL's answer is a stream from w: relayed to a caller that asked for
 * it, else gathered for one REPLY. */
void gw__call_stream_start(gw_exchange *c, gw_worker *w, const br_stream_head *m);

/* call_stream.c: chunk `data` of c's streamed answer (within its window). */
void gw__call_stream_chunk(gw_exchange *c, br_str data);

/* call_stream.c: w ended c's streamed answer (its credit came back); c's caller is
 * answered and detached; the caller frees c. */
void gw__call_stream_end(gw_exchange *c, br_str error);

/* call_stream.c: CALL_STREAM_WINDOW from caller w: it takes more of a streamed answer. */
void gw__stream_call_window(gw_broker *b, gw_worker *w, const br_stream_window *m);

/* call_stream.c: streaming c, whose client is a calling worker, fails with `status` and
 * `detail`: a gathering caller gets that REPLY, a streaming one a CALL_STREAM_END
 * naming the detail.  c's caller is detached. */
void gw__stream_fail_caller(gw_exchange *c, int status, const char *detail);

/* call_stream.c: the capacity a gathered body of len bytes in cap allocated should grow
 * to for n more bytes (len + n > cap): doubling (from 64 KiB), at least len + n and at
 * most max, within what call_gather_total leaves when `held` bytes are gathered
 * elsewhere.  0 when len + n does not fit there (or passes max). */
size_t gw__gather_grow(size_t len, size_t cap, size_t n, size_t max, size_t held, size_t total);

/* call_stream.c: frees what c gathered (gw__exchange_free), and gives its bytes back
 * to gather_bytes. */
void gw__stream_free(gw_exchange *c);

/* stream.c: STREAM_START, STREAM_CHUNK, STREAM_END and STREAM_WINDOW from w. */
void gw__stream_start(gw_broker *b, gw_worker *w, const br_stream_head *m);
void gw__stream_chunk(gw_broker *b, gw_worker *w, const br_stream_chunk *m);
void gw__stream_end(gw_broker *b, gw_worker *w, const br_stream_fin *m);

/* body.c: c's HTTP request streams its body: c becomes its consumer. */
void gw__body_attach(gw_exchange *c);

/* body.c: c stops consuming its request's body (detached; the rest is discarded). */
void gw__body_detach(gw_exchange *c);

/* body.c: STREAM_WINDOW from w: it takes more of a request body. */
void gw__body_window(gw_broker *b, gw_worker *w, const br_stream_window *m);

/* stream.c: streaming c's client is cut off (the worker died, the stream went idle,
 * shutdown): its answer ends without its end.  c's client is detached. */
void gw__stream_cut(gw_exchange *c);

/* dispatch.c: the deadline timer's callback. */
void gw__dispatch_on_deadline(uv_timer_t *timer);

#endif /* BARISTA_GW_BROKER_INT_H */
