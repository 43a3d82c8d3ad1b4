/*
 * broker.h - the gateway's broker: HTTP requests in, ZeroMQ REQUESTs to workers out.
 *
 * The broker binds a ZeroMQ ROUTER that workers connect to with a DEALER.  A worker
 * registers with READY; the broker adds the routes it announces to the gateway's
 * router, each answered by the broker's handler.  That handler validates the request
 * against the route's declared parameters, converts the body, and sends a REQUEST to
 * the live worker of the service with the most free credit - or queues it, bounded,
 * until credit returns.  The REPLY goes back to the client; a deadline, a dead worker,
 * a full queue or a client that left each have a defined answer (docs/broker.md).
 *
 * Everything runs on the gateway's one libuv loop; no call blocks.
 *
 * Lifecycle, in order:
 *     gw_broker_config cfg;  gw_broker_config_defaults(&cfg);  (set fields)
 *     b = gw_broker_new(loop, router, &cfg);
 *     gw_broker_start(b);                  binds; routes appear as workers join
 *     ...                                  the loop runs
 *     gw_broker_shutdown(b, done, arg);    GOODBYE to workers, pending answered 503
 *     (in done, or later)  gw_broker_destroy(&b);   before the router is destroyed
 */
#ifndef BARISTA_GW_BROKER_H
#define BARISTA_GW_BROKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include <barista/proto.h>

#include "http.h"
#include "router.h"

/* Defaults of gw_broker_config, by name.
 *
 * Configuration, as in every gateway subsystem: gw_broker_config_defaults() is the
 * one place these are written; a caller starts from it and changes fields.
 * gw_broker_new() takes the configuration as given and refuses one without an
 * endpoint or with a zero limit: zero never means "the default". */
#define GW_BROKER_ENDPOINT            "tcp://127.0.0.1:5555"
#define GW_BROKER_HEARTBEAT_MS        1000u
#define GW_BROKER_LIVENESS            3u
#define GW_BROKER_DEFAULT_TIMEOUT_MS  30000u
#define GW_BROKER_MAX_TIMEOUT_MS      300000u
#define GW_BROKER_QUEUE_LIMIT         1024u
#define GW_BROKER_MAX_PENDING         100000u
#define GW_BROKER_MAX_WORKERS         1024u
#define GW_BROKER_RETRY_MIN_BUDGET_MS 100u
#define GW_BROKER_MAX_WORKER_CREDIT   16384u
#define GW_BROKER_MAX_WORKER_BYTES    (32u * 1024u * 1024u)
#define GW_BROKER_SERVICE_MAX_PENDING 25000u
#define GW_BROKER_CANCEL_GRACE_MS     10000u
#define GW_BROKER_STREAM_IDLE_MS      60000u
#define GW_BROKER_STREAM_BODY_MAX     (1024u * 1024u * 1024u)
#define GW_BROKER_STREAM_BUFFER_BYTES (256u * 1024)
#define GW_BROKER_CALL_GATHER_MAX     (8u * 1024 * 1024)
#define GW_BROKER_CALL_GATHER_TOTAL   (64u * 1024 * 1024)
#define GW_BROKER_SERVICE_GRACE_MS    60000u
#define GW_BROKER_ACTOR_IDLE_MS       60000u
#define GW_BROKER_MAX_ACTORS          1000000u
#define GW_BROKER_ACTOR_QUEUE_LIMIT   1024u

struct gw_curve;

typedef struct gw_broker_config {
    const char *endpoint;          /* ROUTER bind address (copied); "tcp://127.0.0.1:5555" */
    uint32_t heartbeat_ms;         /* HEARTBEAT period, both ways; 1000 */
    uint32_t liveness;             /* a worker silent this many periods is dead; 3 */
    uint32_t default_timeout_ms;   /* deadline of a route without timeout_ms; 30000 */
    uint32_t max_timeout_ms;       /* cap on every deadline, route timeouts included; 300000 */
    uint32_t queue_limit;          /* requests per service waiting for credit; 1024 */
    uint32_t max_pending;          /* requests held at once, queued + in flight; 100000 */
    uint32_t max_workers;          /* workers registered at once; 1024 */
    uint32_t retry_min_budget_ms;  /* budget a retry needs left; 100 */
    bool retry_idempotent;         /* retry a dead worker's GET/HEAD once elsewhere; true */
    br_limits limits;              /* message bounds; br_limits_default */
    uint32_t max_worker_credit;    /* cap on a worker's credit, announced or granted; 16384 */
    size_t max_worker_bytes;       /* a worker with this many bytes of requests in flight
                                      gets no more until it answers; 32 MiB */
    uint32_t service_max_pending;  /* requests one service holds, queued + in flight;
                                      25000 */
    uint32_t cancel_grace_ms;      /* a worker that leaves a CANCEL unanswered this long is
                                      unhealthy: sent nothing until it answers; 10000 */
    uint32_t service_grace_ms;     /* a service without any worker this long is retired:
                                      its routes leave the router; 60000 */
    bool worker_header;            /* replies name their worker in x-barista-worker; false */
    bool check_replies;            /* debug: check structured replies against the route's
                                      declared response schemas and log breaches; false */
    uint32_t actor_idle_ms;        /* an actor without a message this long is deactivated,
                                      unless its type says otherwise; 60000 */
    uint32_t max_actors;           /* activations the broker tracks at once; 1000000 */
    uint32_t actor_queue_limit;    /* messages one actor key holds waiting; 1024 */
    const struct gw_curve *curve;  /* CURVE keys and authorised certificates (zap.h; the
                                      caller's, outlive the broker); NULL: none */
    const struct gw_ws_config *ws; /* limits of WebSocket connections (websocket.h; the
                                      caller's, outlives the broker); NULL: defaults */
    uint32_t stream_idle_ms;       /* a streamed response whose worker sends nothing (and
                                      whose client takes nothing) this long is cut; 60000 */
    size_t stream_buffer_bytes;    /* bytes one streamed response may hold in the gateway:
                                      granted to the worker and not yet sent, plus sent
                                      and not yet taken by the client's socket; 256 KiB */
    size_t stream_body_max;        /* the most bytes a streamed request body may have (a
                                      route may declare less); 1 GiB */
    size_t call_gather_max;        /* the most body bytes of a streamed answer gathered
                                      into one REPLY for a CALL (capped by limits.max_body);
                                      8 MiB */
    size_t call_gather_total;      /* the most bytes every gathering CALL together holds in
                                      the gateway (bodies and starts); a chunk that would
                                      pass it ends its call with 503; 64 MiB: eight calls at
                                      the full call_gather_max, or many small ones */
} gw_broker_config;

/* Fills *cfg with the defaults above. */
void gw_broker_config_defaults(gw_broker_config *cfg);

/* Counters for /metrics.  Gauges describe now; counters only grow. */
typedef struct gw_broker_stats {
    unsigned workers;             /* gauge: live workers */
    unsigned workers_draining;    /* gauge: workers that said GOODBYE and still hold work */
    unsigned services;            /* gauge: services registered (retired ones leave) */
    unsigned workers_unhealthy;   /* gauge: workers left out for ignoring CANCELs */
    uint64_t inflight;            /* gauge: requests at workers (cancelled ones included) */
    uint64_t cancelled;           /* gauge: cancelled requests whose worker has not answered */
    uint64_t inflight_bytes;      /* gauge: bytes of requests at workers, not yet answered */
    uint64_t queued;              /* gauge: requests waiting for credit */
    uint64_t dispatched;          /* REQUESTs sent (retries included) */
    uint64_t replies;             /* REPLYs delivered to clients */
    uint64_t retries;             /* requests re-sent after their worker died */
    uint64_t cancels;             /* CANCELs sent (deadline or client gone) */
    uint64_t status_502;          /* answered 502: worker died, bad reply */
    uint64_t status_503;          /* answered 503: no worker, queue full, shutting down */
    uint64_t status_504;          /* answered 504: deadline passed */
    uint64_t batches_out;         /* frames of several messages (WS_BATCH) sent to workers */
    uint64_t batched_out;         /* messages in those */
    uint64_t batches_in;          /* WS_BATCH frames received from workers */
    uint64_t batched_in;          /* messages in those */
    uint64_t stale_replies;       /* REPLYs for requests no longer waited for, dropped */
    uint64_t bad_messages;        /* undecodable or misdirected messages, dropped */
    uint64_t workers_joined;      /* READYs accepted */
    uint64_t workers_refused;     /* READYs refused with GOODBYE */
    uint64_t workers_died;        /* workers dropped for silence or a lost connection */
    uint64_t services_retired;    /* services retired after their grace period */
    uint64_t actors_active;       /* gauge: actor keys with an activation at a worker */
    uint64_t actors_queued;       /* gauge: actor messages waiting (load, move, credit) */
    uint64_t actor_turns;         /* ACTOR_REPLYs received */
    uint64_t actor_activations;   /* activations started (state sent to a worker) */
    uint64_t actor_moves;         /* activations ended because their key moved */
    uint64_t actor_deactivations; /* activations ended idle */
    uint64_t actor_commits;       /* state commits made durable */
    uint64_t actor_fenced;        /* commits refused: stale epoch or not the owner */
    uint64_t actor_turn_us;       /* sum of turn latencies (REQUEST sent to REPLY), us */
    uint64_t ws_opened;           /* WebSocket connections placed on a worker */
    uint64_t ws_messages_in;      /* WebSocket messages from clients to workers */
    uint64_t ws_messages_out;     /* WebSocket messages to clients (broadcasts included) */
    uint64_t streams;             /* streamed responses started */
    uint64_t streams_cut;         /* streamed responses that ended without their end: the
                                     worker died, said so, or went idle; or the client left */
    uint64_t stream_bytes;        /* body bytes of streamed responses received */
    uint64_t call_gather_bytes;   /* gauge: bytes gathering CALLs hold now (call_stream.c) */
    uint64_t call_gather_refused; /* gathering CALLs ended 503 by call_gather_total */
} gw_broker_stats;

typedef struct gw_broker gw_broker;

/* Creates a broker that will add announced routes to `router` (which must outlive the
 * broker).  The configuration is copied.  Nothing is bound yet.  Caller owns the
 * result; NULL when out of memory, or when cfg is NULL, has no endpoint or has a zero
 * limit (logged). */
gw_broker *gw_broker_new(uv_loop_t *loop, gw_router *router, const gw_broker_config *cfg);

/* Creates the ZeroMQ context and ROUTER socket (ROUTER_MANDATORY, LINGER 0,
 * MAXMSGSIZE = limits.max_message, high-water marks sized for many requests in
 * flight), binds cfg->endpoint and starts the heartbeat timer.  With cfg->curve the
 * ROUTER is a CURVE server and a ZAP handler (zap.h), bound first, admits only the
 * authorised certificates.  Returns 0; BR_EIO when the socket cannot be created or
 * bound (logged with zmq_strerror); BR_EINVAL when already started. */
int gw_broker_start(gw_broker *self);

/* True when `endpoint` can be reached only from this host: ipc://, inproc://, or
 * tcp:// on a loopback address (127.0.0.0/8, [::1], localhost).  The gateway refuses
 * any other endpoint without CURVE unless told it is meant (--insecure-broker). */
bool gw_broker_endpoint_local(const char *endpoint);

/* The authorised certificates changed (a SIGHUP reload): every registered worker
 * whose key is no longer authorised, or no longer for one of its services, is told
 * GOODBYE with the reason and forgotten (its requests are retried or answered 502). */
void gw_broker_keys_changed(gw_broker *self);

/* The endpoint actually bound (resolves "tcp://127.0.0.1:*" to a port), copied into
 * buf as a NUL-terminated string.  0; BR_ECLOSED when not started; BR_ELIMIT when cap
 * is too small. */
int gw_broker_endpoint(const gw_broker *self, char *buf, size_t cap);

/* True when at least one worker is live and every current service has a live worker
 * (GET /readyz); retired services no longer count. */
bool gw_broker_ready(const gw_broker *self);

/* Copies the counters into *out. */
void gw_broker_stats_get(const gw_broker *self, gw_broker_stats *out);

/* The registry of services, workers and announced routes, read-only, for GET /metrics
 * and /openapi.json.  Valid until gw_broker_destroy(). */
const struct gw_registry *gw_broker_registry(const gw_broker *self);

/* ---------------------------------------------------------------------------------- */
/* Attached subsystems.                                                                */

/* The broker knows workers, credit and the wire; a subsystem that sends work of its
 * own to workers (the job queue) attaches a table of hooks and uses the calls below,
 * so that every credit is counted in one place and the broker never names it. */

struct gw_worker;

/* How a JOB_RESULT settled, as the attached job queue answers the broker. */
typedef enum gw_job_settle {
    GW_JOB_SETTLE_UNKNOWN, /* names no job sent to the worker: ignored, counted stale */
    GW_JOB_SETTLE_DONE,    /* the result of a job the worker holds: its credit returns */
    GW_JOB_SETTLE_LATE,    /* a job whose lease had expired: its credit returns, the
                              result itself is stale */
} gw_job_settle;

/* Told on the loop when an actor's state is loaded: status 0 with the epoch the store
 * gave this activation (higher than any before) and the last committed state (empty:
 * none; valid during the call); or a negative br_err. */
typedef void (*gw_actor_loaded_fn)(void *ctx, int status, uint64_t epoch, br_str state);
/* Told on the loop when a commit is durable (0), refused because its epoch is not the
 * key's current one (BR_EVALUE: fenced), or failed (another br_err). */
typedef void (*gw_actor_done_fn)(void *ctx, int status);
/* Told on the loop how the turn of a reminder's tick ended: ok when the actor answered
 * below 500 and its state change (if any) is durable. */
typedef void (*gw_actor_tick_fn)(void *ctx, bool ok);

/* What the broker tells an attached subsystem.  Every slot may be NULL.  `data` is
 * the pointer given to gw_broker_attach.  No hook may destroy the broker. */
typedef struct gw_broker_hooks {
    /* w registered with READY r (r->tasks: the tasks it runs). */
    void (*worker_joined)(void *data, struct gw_worker *w, const br_ready *r);
    /* w is being forgotten (dead, drained, registered again): nothing it holds will
     * be answered; w is freed after the hook returns. */
    void (*worker_gone)(void *data, struct gw_worker *w);
    /* w may have credit left after the broker served its services' queues (requests
     * come first). */
    void (*credit)(void *data, struct gw_worker *w);
    /* JOB_ACK from w; false when it names no job w holds (counted stale). */
    bool (*job_ack)(void *data, struct gw_worker *w, const br_job_ack *m);
    /* JOB_RESULT from w; the answer says whether a credit comes back. */
    gw_job_settle (*job_result)(void *data, struct gw_worker *w, const br_job_result *m);
    /* A REPLY carrying jobs (r->njobs > 0).  With req (the client waiting for it) the
     * hook may take the reply over, answering req itself later through
     * gw_broker_respond_reply: it returns true then.  Without req (a CALL's answer, or
     * a client that left) the jobs are submitted and the return is ignored. */
    bool (*reply_jobs)(void *data, gw_req *req, const br_reply *r, bool want_msgpack);
    /* The actor state store.  actor_load: a new activation of (type, key) - claim a new
     * epoch and read the state; actor_commit: write a turn's state when `epoch` is
     * still the key's (op: br_state_op; BR_STATE_KEEP only orders the callback after
     * the writes before it).  Both answer through their callback, on the loop, in the
     * order they were called; 0 when accepted, else a br_err and no callback. */
    int (*actor_load)(void *data, br_str type, br_str key, gw_actor_loaded_fn cb, void *ctx);
    int (*actor_commit)(void *data, br_str type, br_str key, uint64_t epoch, uint8_t op,
                        br_str state, gw_actor_done_fn cb, void *ctx);
    /* JOB_PROGRESS from w (the job runs on: its lease is renewed); false when it names
     * no job w holds (counted stale). */
    bool (*job_progress)(void *data, struct gw_worker *w, const br_job_progress *m);
    /* TASK_POLICY from w: how the tasks it announced want their jobs run. */
    void (*task_policy)(void *data, struct gw_worker *w, const br_task_policies *m);
    /* The actor state store (with actor_load): the activation `epoch` of (type, key)
     * sets (due_ms from now, then every period_ms; 0: once) or unsets its durable
     * reminder `name`.  Applied in order with loads and commits, only while `epoch` is
     * the key's (fenced otherwise).  0 when accepted, else a br_err. */
    int (*actor_reminder)(void *data, br_str type, br_str key, uint64_t epoch, br_str name,
                          bool set, uint64_t due_ms, uint64_t period_ms);
    /* WORKFLOW from w (a handler or a task asks for a workflow): the hook answers with
     * gw_broker_send_workflow_reply, now or later - not after worker_gone for w. */
    void (*workflow)(void *data, struct gw_worker *w, const br_workflow *m);
    /* True when the queue takes JOB_HANDOFF (it shares its store with other gateways):
     * WELCOME then confirms BR_FEATURE_JOB_HANDOFF to workers that announce it. */
    bool (*takes_handoffs)(void *data);
    /* JOB_HANDOFF from w: a job another gateway gave it, still running or ended (no
     * credit moves); false when nothing here wanted it (counted stale). */
    bool (*job_handoff)(void *data, struct gw_worker *w, const br_job_handoff *m);
} gw_broker_hooks;

/* Subsystems attached at once, at most. */
#define GW_BROKER_MAX_ATTACHED 4

/* Attaches hooks (copied) with their data.  Job messages and REPLY.jobs go to the
 * first attached subsystem that has the slot.  0; BR_ELIMIT when
 * GW_BROKER_MAX_ATTACHED are attached; BR_EINVAL on NULL. */
int gw_broker_attach(gw_broker *self, const gw_broker_hooks *hooks, void *data);

/* Detaches what was attached with `data`; nothing when it was not. */
void gw_broker_detach(gw_broker *self, void *data);

/* Actor types the broker keeps counters for, at most (later ones share the last). */
#define GW_BROKER_MAX_ACTOR_TYPES 64
/* Longest actor type name counted on its own (longer ones are cut for metrics). */
#define GW_ACTOR_TYPE_MAX 63

/* Buckets of the per-type turn-latency histogram (the last: over every bound). */
#define GW_ACTOR_TURN_BUCKETS 12

/* Counters of one actor type, for /metrics. */
typedef struct gw_actor_type_stats {
    char type[GW_ACTOR_TYPE_MAX + 1];          /* the type's name */
    uint64_t active;                           /* gauge: its keys active at a worker */
    uint64_t waiting;                          /* gauge: its messages waiting at the gateway */
    uint64_t turns;                            /* ACTOR_REPLYs */
    uint64_t turn_us;                          /* sum of turn latencies, us */
    uint64_t activations;                      /* activations started */
    uint64_t moves;                            /* activations ended by a move */
    uint64_t inflight;                         /* gauge: its messages at workers, unanswered */
    uint64_t ticks;                            /* timer and reminder ticks sent to its keys */
    uint64_t turn_hist[GW_ACTOR_TURN_BUCKETS]; /* turns by latency: [i] counts those
                                                  above bound i-1, at most bound i */
} gw_actor_type_stats;

/* The upper bounds (us) of the turn-latency histogram's buckets; the last is +Inf. */
extern const uint64_t gw_actor_turn_bounds_us[GW_ACTOR_TURN_BUCKETS - 1];

/* Copies the per-type counters (gauges filled in) into out[0..cap); returns how many
 * types there are. */
size_t gw_broker_actor_types(const gw_broker *self, gw_actor_type_stats *out, size_t cap);

/* A due reminder (type, key, name) claimed from the store: delivers its tick through
 * the key's queue, as a turn on whichever worker holds the key.  done(ctx, ok) runs
 * once, on the loop, when the turn ended (or could not run) - never inside this call.
 * 0; BR_ENOTFOUND when no registered service declares the type; BR_ECLOSED shutting
 * down; BR_ENOMEM. */
int gw_broker_actor_remind(gw_broker *self, br_str type, br_str key, br_str name,
                           gw_actor_tick_fn done, void *ctx);

/* The actor types the routes of registered services declare: up to cap pointers into
 * the registry (valid until the loop runs again); returns how many there are. */
size_t gw_broker_actor_types_served(const gw_broker *self, const char **out, size_t cap);

/* Appends a JSON object summarising actor placement to out: per service with actor
 * routes, its live workers with their active actors, and per actor type the active
 * count and queued messages.  0 or a br_buf error. */
int gw_broker_actors_json(const gw_broker *self, br_buf *out);

/* True while the broker takes new work (started, not shutting down). */
bool gw_broker_accepting(const gw_broker *self);

/* Sends JOB m to w and spends one of w's credits (its JOB_RESULT, settled DONE or
 * LATE, gives it back).  0; BR_EFULL when w has no credit or is not live; an encoding
 * error (BR_ELIMIT, BR_EINVAL, BR_ENOMEM) that says nothing about w; or a send error
 * (gw_broker_send_failed) after which w is reaped at the next tick. */
int gw_broker_send_job(gw_broker *self, struct gw_worker *w, const br_job *m);

/* Sends JOB_CANCEL for job_id to w (no credit involved).  0, BR_ENOTFOUND for a worker
 * that is not live, BR_EVERSION for one that speaks protocol version 1 (which has no
 * JOB_CANCEL), or gw_broker_send_job's send and encoding errors. */
int gw_broker_send_job_cancel(gw_broker *self, struct gw_worker *w, br_str job_id);

/* Sends WORKFLOW_REPLY m to w (no credit involved).  0, BR_ENOTFOUND for a worker that
 * is not registered any more, BR_EVERSION for one older than protocol version 3, or a
 * send or encoding error. */
int gw_broker_send_workflow_reply(gw_broker *self, struct gw_worker *w, const br_workflow_reply *m);

/* True for the errors of gw_broker_send_job that come from the worker, not from
 * encoding the message. */
static inline bool gw_broker_send_failed(int rc)
{
    return rc == BR_EFULL || rc == BR_ENOTFOUND || rc == BR_EIO || rc == BR_ECLOSED;
}

/* Answers req with a worker's REPLY r (msgpack bodies become JSON unless
 * want_msgpack), as the broker answers its own requests. */
void gw_broker_respond_reply(gw_broker *self, gw_req *req, const br_reply *r, bool want_msgpack);

/* Answers req {"detail":DETAIL} with status (Retry-After: 1 when retry_after),
 * counting 502/503/504 in the broker's stats. */
void gw_broker_respond_error(gw_broker *self, gw_req *req, int status, bool retry_after,
                             const char *detail);

/* Sends GOODBYE to every worker, answers every pending request 503, closes the socket
 * and the timers; done(arg) runs once everything is closed (at once when the broker
 * never started).  Routes stay in the router and answer 503 until gw_broker_destroy().
 * A second call is ignored. */
void gw_broker_shutdown(gw_broker *self, void (*done)(void *arg), void *arg);

/* Removes the broker's routes from the router and frees everything; sets *self_p to
 * NULL; safe on NULL and twice.  Only before gw_broker_start() or after shutdown's
 * done. */
void gw_broker_destroy(gw_broker **self_p);

#endif /* BARISTA_GW_BROKER_H */
