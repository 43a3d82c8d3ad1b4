/*
 * barista/proto.h - the wire protocol between the gateway's broker and workers.
 *
 * Every message is one ZeroMQ frame holding one msgpack array:
 *
 *     [version, type, field, field, ...]
 *
 * proto/PROTOCOL.md is the specification; this header is its C binding.  The library
 * encodes a br_msg into bytes and decodes bytes into a br_msg.  Decoding never trusts a
 * length or a count from the wire: every string, array and body is checked against a
 * br_limits before it is read, and every failure is a distinct negative br_err.
 *
 * Decoded messages do not own their data.  Strings and bodies (br_str) point into the
 * buffer that was decoded; arrays point into the decoder's scratch memory.  Both stay
 * valid until the next br_decoder_decode() on the same decoder, or its destruction,
 * and the buffer must outlive the message.
 */
#ifndef BARISTA_PROTO_H
#define BARISTA_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "barista/schema.h"
#include "barista/types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The protocol versions this library speaks: BR_PROTO_VERSION_MIN up to
 * BR_PROTO_VERSION.  A message with any other version is refused with BR_EVERSION.
 * Version 2 adds message types from BR_MSG_V2_FIRST on, version 3 the workflow types
 * BR_MSG_V3_FIRST..BR_MSG_V3_LAST; every older message is the same in each newer
 * version (PROTOCOL.md 14). */
#define BR_PROTO_VERSION     3
#define BR_PROTO_VERSION_MIN 1

/* ---------------------------------------------------------------------------------- */
/* What READY announces.  The error codes, br_str, br_pair and the enums used here     */
/* live in barista/types.h.                                                            */

/* A parameter a route declares, validated by the gateway before dispatch. */
typedef struct br_param {
    br_str name;    /* parameter name: path segment name, query key or header name */
    uint8_t in;     /* br_param_in */
    uint8_t type;   /* br_param_type */
    bool required;  /* a missing required parameter is a 422 */
    bool has_min;   /* min is set */
    bool has_max;   /* max is set */
    double min;     /* lower bound: value for numbers, length for strings */
    double max;     /* upper bound: value for numbers, length for strings */
    br_str summary; /* one-line description for the OpenAPI document; may be empty */
    br_str schema;  /* one msgpack schema value (PROTOCOL.md 5.1.1) refining `type`: enum,
                       pattern, format, default, or an array for a repeated query key;
                       empty for none */
    br_str alias;   /* the name on the wire and in the docs when it differs from `name`
                       (the gateway forwards the value under `name`); empty for none */
} br_param;

/* A response a route declares. */
typedef struct br_response {
    uint16_t status;    /* HTTP status, 100..599 */
    br_str description; /* one line for the docs; may be empty */
    br_str schema;      /* one msgpack schema value for the body; empty for none */
} br_response;

/* Most responses one route declares. */
#define BR_MAX_RESPONSES 16

/* A route a service serves. */
typedef struct br_route {
    br_str method;       /* "GET", "POST", ... */
    br_str path;         /* template, e.g. "/hello/{name}" */
    uint32_t timeout_ms; /* the route's deadline; 0 means the gateway's default */
    uint8_t body;        /* br_body_mode */
    br_str summary;      /* one-line description for the OpenAPI document; may be empty */
    br_param *params;    /* declared parameters */
    uint32_t nparams;
    /* Optional trailing fields (absent from older peers: zero). */
    uint8_t auth;       /* br_auth_mode */
    br_str scopes;      /* space-separated scopes the caller must all hold; may be empty */
    bool forward_token; /* the Authorization header reaches the worker (else removed) */
    /* More optional trailing fields (typed contracts, PROTOCOL.md 5.1.1). */
    br_str body_schema;     /* one msgpack schema value the body must satisfy (MSGPACK
                               routes); empty for none */
    bool body_form;         /* the body may also come as a form (urlencoded) */
    br_response *responses; /* declared responses; the first 2xx is the success status */
    uint32_t nresponses;
    /* Keyed actors (route fields 16 and 17, PROTOCOL.md 5.1): empty actor_type means a
     * stateless route. */
    br_str actor_type;      /* the actor type this route's messages go to */
    br_str actor_key;       /* the path parameter whose value is the actor's key */
    uint32_t actor_idle_ms; /* an actor idle this long is deactivated; 0: the gateway's
                               default */
    bool actor_reentrant;   /* the worker may interleave turns of one key */
    /* WebSocket routes (PROTOCOL.md 5.1, fields 14-15; 12-13 are streaming's). */
    bool websocket;      /* a GET route clients open as a WebSocket (WS_* messages) */
    br_str subprotocols; /* space-separated subprotocols it speaks; may be empty */
    /* More optional trailing fields (streamed bodies, PROTOCOL.md 5.1, fields 12-13). */
    bool stream_body;  /* the body reaches the worker as STREAM_CHUNKs (RAW routes) */
    uint64_t body_max; /* with stream_body: the most body bytes the route takes; 0: the
                          gateway's --stream-body-max */
} br_route;

/* Longest text field of a service's CORS policy, in bytes. */
#define BR_CORS_TEXT_MAX 1024

/* A service's own CORS policy (PROTOCOL.md 5.1): the gateway answers preflights and
 * cross-origin requests for the service's routes with it instead of its --cors-*
 * options.  Every text is a comma-separated list of printable ASCII (each ends up in a
 * response header), at most BR_CORS_TEXT_MAX bytes. */
typedef struct br_cors {
    br_str origins;     /* allowed origins, or "*" for any; empty: none (no cross-origin
                           caller is allowed) */
    br_str methods;     /* methods a preflight may ask for; empty: the gateway's */
    br_str headers;     /* request headers a preflight may ask for, or "*"; empty: the
                           gateway's */
    br_str expose;      /* response headers a page may read; may be empty */
    bool credentials;   /* Access-Control-Allow-Credentials: true (not with "*") */
    uint32_t max_age_s; /* how long a browser may cache a preflight */
} br_cors;

/* Why *c breaks the rules above (a control or non-ASCII byte, a text too long, "*"
 * origins with credentials), as one line; NULL when it is valid. */
const char *br_cors_check(const br_cors *c);

/* A service a worker hosts. */
typedef struct br_service {
    br_str name;      /* unique service name, e.g. "hello" */
    uint8_t kind;     /* br_kind */
    br_route *routes; /* the routes it serves */
    uint32_t nroutes;
    /* Optional trailing field (absent from older peers: false). */
    bool has_cors; /* the service declares its own CORS policy; else the gateway's */
    br_cors cors;  /* that policy, when has_cors */
} br_service;

/* ---------------------------------------------------------------------------------- */
/* Parameter text: how a declared parameter's value parses as its type.  The gateway's */
/* validation and a worker's typed getters both use these, so they never disagree.    */

/* Longest text br_param_parse_float reads. */
#define BR_PARAM_FLOAT_CHARS 128

/* An int: an optional sign and decimal digits, the whole string, within int64 ("+5" is
 * 5, " 5" and "5.0" are not ints).  0, or BR_EVALUE; *out is set only on success. */
int br_param_parse_int(br_str s, int64_t *out);

/* A float: a finite decimal number, the whole string (no blanks, hex, inf or nan);
 * shorter than BR_PARAM_FLOAT_CHARS.  0 or BR_EVALUE. */
int br_param_parse_float(br_str s, double *out);

/* A bool, as pydantic spells it, any case: 1/on/t/true/y/yes or 0/off/f/false/n/no.
 * 0 or BR_EVALUE. */
int br_param_parse_bool(br_str s, bool *out);

/* ---------------------------------------------------------------------------------- */
/* Messages.                                                                           */

typedef enum br_msg_type {
    BR_MSG_READY = 1,         /* worker -> broker: registration */
    BR_MSG_WELCOME = 2,       /* broker -> worker: registration accepted */
    BR_MSG_REQUEST = 3,       /* broker -> worker: serve this request */
    BR_MSG_REPLY = 4,         /* worker -> broker: answer to REQUEST; broker -> worker: to CALL */
    BR_MSG_CREDIT = 5,        /* worker -> broker: may send this many more requests */
    BR_MSG_HEARTBEAT = 6,     /* either way: I am alive */
    BR_MSG_CANCEL = 7,        /* broker -> worker: drop a request; worker -> broker: drop a call */
    BR_MSG_GOODBYE = 8,       /* either way: I am leaving (worker draining, broker stopping) */
    BR_MSG_CALL = 9,          /* worker -> broker: a service-to-service request */
    BR_MSG_JOB = 10,          /* broker -> worker: run this background job */
    BR_MSG_JOB_ACK = 11,      /* worker -> broker: job received and started */
    BR_MSG_JOB_RESULT = 12,   /* worker -> broker: job finished */
    BR_MSG_JOB_PROGRESS = 13, /* worker -> broker: still running (extends the lease), progress */
    BR_MSG_JOB_CANCEL = 14,   /* broker -> worker: the job was cancelled; stop it */
    BR_MSG_TASK_POLICY = 15,  /* worker -> broker: how its tasks want their jobs run */
    BR_MSG_WORKFLOW = 16,     /* worker -> broker: make this workflow (version 3) */
    BR_MSG_WORKFLOW_REPLY = 17, /* broker -> worker: the workflow was made, or why not */
    BR_MSG_JOB_HANDOFF = 18,    /* worker -> broker: a job another broker gave, still running
                                   or ended, to a broker that confirmed BR_FEATURE_JOB_HANDOFF */
    /* Streams (PROTOCOL.md 5.15): a response sent in pieces, a request body received in
     * pieces. */
    BR_MSG_STREAM_START = 20,  /* worker -> broker: a streamed response begins */
    BR_MSG_STREAM_CHUNK = 21,  /* either way: body bytes of a stream */
    BR_MSG_STREAM_END = 22,    /* either way: the stream ended (cleanly or not) */
    BR_MSG_STREAM_WINDOW = 23, /* either way: the receiver takes this many more bytes */
    /* Streamed calls (PROTOCOL.md 5.15.1): a CALL's answer relayed as it comes, to a
     * worker that announced BR_FEATURE_CALL_STREAM and asked for it (CALL field 19). */
    BR_MSG_CALL_STREAM_START = 24,  /* broker -> worker: the call's answer begins */
    BR_MSG_CALL_STREAM_CHUNK = 25,  /* broker -> worker: body bytes of the answer */
    BR_MSG_CALL_STREAM_END = 26,    /* broker -> worker: the answer ended (cleanly or not) */
    BR_MSG_CALL_STREAM_WINDOW = 27, /* worker -> broker: the caller takes n more bytes */
    BR_MSG_WS_OPEN = 30,            /* broker -> worker: a client opened a WebSocket */
    BR_MSG_WS_MESSAGE = 31,         /* either way: one whole message of a connection */
    BR_MSG_WS_CLOSE = 32,           /* either way: the connection is closed / close it */
    BR_MSG_WS_CREDIT = 33,          /* either way: may send this many more messages */
    BR_MSG_WS_GROUP = 34,           /* worker -> broker: join, leave or broadcast to a group */
    BR_MSG_WS_BATCH = 35,           /* either way: several WS_MESSAGE/CLOSE/CREDIT/GROUP in one
                                       frame, to a peer that announced BR_FEATURE_WS_BATCH */
    BR_MSG_ACTOR_REQUEST = 40,      /* broker -> worker: a REQUEST for one actor key */
    BR_MSG_ACTOR_REPLY = 41,        /* worker -> broker: its REPLY, with the turn's state commit */
    BR_MSG_DEACTIVATE = 42,         /* broker -> worker: drop the activation of one key */
    BR_MSG_ACTOR_TIMER = 43         /* worker -> broker: start or stop a timer or reminder */
} br_msg_type;

#define BR_MSG_TYPE_MAX          43
#define BR_MSG_STREAM_FIRST      20
#define BR_MSG_STREAM_LAST       23
#define BR_MSG_CALL_STREAM_FIRST 24
#define BR_MSG_CALL_STREAM_LAST  27

/* The first message type that exists only in version 2 and later. */
#define BR_MSG_V2_FIRST 13
/* The message types that exist only in version 3 and later (16..19 are theirs). */
#define BR_MSG_V3_FIRST 16
#define BR_MSG_V3_LAST  19

/* The WebSocket messages (PROTOCOL.md 5.16): the range 30-39 is theirs. */
#define BR_MSG_WS_FIRST 30
#define BR_MSG_WS_LAST  35

/* The WebSocket types are version-2 types (br_msg_type_in_version). */

/* Optional message sets a peer announces in READY.features and the broker confirms in
 * WELCOME.features (PROTOCOL.md 14): a peer sends such a message only to a peer that
 * announced (worker) or confirmed (broker) it. */
#define BR_FEATURE_WS_BATCH    1u /* reads WS_BATCH (35) */
#define BR_FEATURE_CALL_STREAM 2u /* reads CALL_STREAM_START/CHUNK/END (24-26) */
/* Worker: may send JOB_HANDOFF (18); broker: reads it (a gateway of a shared queue). */
#define BR_FEATURE_JOB_HANDOFF 4u
/* Both: WS_BATCH (with bit 1) may also carry REQUEST (broker -> worker) and REPLY
 * (worker -> broker): the requests and replies of one loop turn travel in one frame. */
#define BR_FEATURE_REQ_BATCH 8u

/* A schedule a worker declares for one of its tasks (READY.schedules): the gateway
 * keeps one schedule per (task, name), made or updated when a READY declares it. */
typedef struct br_schedule_decl {
    br_str name;          /* unique among the task's schedules, e.g. "nightly" */
    br_str task;          /* one of READY.tasks */
    br_str payload;       /* the jobs' argument: one msgpack value, or empty for nil */
    uint64_t interval_ms; /* every this many ms; or 0 and cron */
    br_str cron;          /* a five-field cron expression (UTC); empty with interval_ms */
    uint32_t catch_up;    /* ticks missed while no gateway ran made up at most */
} br_schedule_decl;

/* READY: the worker's greeting.  The first message a worker sends on a new connection,
 * and again whenever a WELCOME shows a new broker_id (the gateway restarted). */
typedef struct br_ready {
    br_str worker_id;      /* unique per process, e.g. "host:pid:random" */
    uint8_t kind;          /* br_kind: every service of a worker has this kind */
    uint32_t capacity;     /* initial credit: requests it can hold at once */
    uint32_t heartbeat_ms; /* how often it will send HEARTBEAT */
    br_service *services;  /* the services it hosts */
    uint32_t nservices;
    br_str *tasks; /* background job tasks it runs */
    uint32_t ntasks;
    br_str *public_tasks; /* of those, the ones HTTP clients may submit (POST /jobs/{task});
                             an optional trailing field: encoded only when non-empty */
    uint32_t npublic_tasks;
    br_schedule_decl *schedules; /* schedules of its tasks; an optional trailing field after
                                    public_tasks: encoded only when non-empty */
    uint32_t nschedules;
    uint32_t features; /* BR_FEATURE_* bits: the optional messages it reads; an optional
                          trailing field after schedules, encoded only when non-zero */
} br_ready;

/* WELCOME: the broker accepted a READY. */
typedef struct br_welcome {
    br_str broker_id;      /* changes whenever the gateway restarts */
    uint32_t heartbeat_ms; /* how often the broker will send HEARTBEAT */
    uint32_t features;     /* of READY.features, the ones the broker speaks too (the worker
                              may send those); optional, encoded only when non-zero */
} br_welcome;

/* REQUEST (broker -> worker) and CALL (worker -> broker) share one shape.  In a CALL,
 * route and params are empty: the broker resolves method and path itself. */
typedef struct br_request {
    uint64_t id;     /* REQUEST: chosen by the broker; CALL: chosen by the caller */
    br_str service;  /* target service */
    br_str route;    /* matched route template, e.g. "/hello/{name}" */
    br_str method;   /* HTTP method */
    br_str path;     /* request path, without the query string */
    br_pair *params; /* path parameters from the template */
    uint32_t nparams;
    br_pair *query; /* query parameters, decoded, in order */
    uint32_t nquery;
    br_pair *headers; /* request headers, names lower-case */
    uint32_t nheaders;
    br_str content_type;  /* body's media type; empty when there is no body */
    br_str body;          /* body bytes */
    uint32_t deadline_ms; /* remaining budget when the message was sent; never 0 */
    br_str trace;         /* W3C traceparent; may be empty */
    /* Optional trailing fields (absent from older peers: empty). */
    br_str request_id; /* the request's X-Request-ID; may be empty */
    br_str identity;   /* the caller the gateway verified: one msgpack map (PROTOCOL.md
                          5.3); empty when anonymous */
    br_pair *cookies;  /* the cookies the route declares as parameters */
    uint32_t ncookies;
    /* Field 17: CALL: the actor it addresses by type and key, without a route (both
     * non-empty); ACTOR_REQUEST: set when the message came so (the type's on_call
     * runs).  Empty: none. */
    br_str actor_type;
    br_str actor_key;
    /* Field 18, ACTOR_REQUEST only: a timer or reminder of the actor fired (tick_kind
     * br_tick_kind, 0: none; tick_name its name). */
    uint8_t tick_kind;
    br_str tick_name;
    /* Field 19, CALL only: 0, the answer comes as one REPLY (a streamed answer is
     * gathered); n >= 1, the caller takes a streamed answer as CALL_STREAM_* messages
     * and grants n bytes of it at once (PROTOCOL.md 5.15.1). */
    uint32_t stream_window;
} br_request;

/* What an ACTOR_REQUEST's turn is for, when it is not a route's request (field 18). */
typedef enum br_tick_kind {
    BR_TICK_NONE = 0,
    BR_TICK_TIMER = 1,   /* a volatile timer of the activation */
    BR_TICK_REMINDER = 2 /* a durable reminder of the key */
} br_tick_kind;

/* A background job a reply asks the gateway to enqueue (BackgroundTasks.add_task). */
typedef struct br_job_spec {
    br_str task;            /* task name */
    br_str payload;         /* msgpack-encoded argument */
    br_str idempotency_key; /* may be empty */
    uint32_t delay_ms;      /* run no sooner than this after enqueueing */
} br_job_spec;

/* REPLY: the answer to a REQUEST or a CALL. */
typedef struct br_reply {
    uint64_t id;      /* the REQUEST's or CALL's id */
    uint16_t status;  /* HTTP status, 100..599 */
    br_pair *headers; /* extra response headers */
    uint32_t nheaders;
    br_str content_type; /* "application/msgpack" means body is a structured value */
    br_str body;         /* body bytes */
    br_job_spec *jobs;   /* jobs to enqueue before the reply is sent to the client */
    uint32_t njobs;
} br_reply;

/* CREDIT: the worker can take `credit` more requests. */
typedef struct br_credit {
    uint32_t credit;
} br_credit;

/* CANCEL: the request or call `id` is no longer wanted. */
typedef struct br_cancel {
    uint64_t id;
} br_cancel;

/* GOODBYE: the sender is leaving; a worker finishes what it holds first. */
typedef struct br_goodbye {
    br_str reason; /* human-readable; may be empty */
} br_goodbye;

/* JOB: run a background job under a lease. */
typedef struct br_job {
    br_str job_id;     /* the job's id */
    br_str task;       /* task name */
    br_str payload;    /* msgpack-encoded argument */
    uint32_t attempt;  /* 1 for the first run */
    uint32_t lease_ms; /* the job returns to the queue if no result or progress comes
                          within this */
    /* Optional trailing field (encoded only when non-empty). */
    br_str identity; /* the verified caller who caused the job (PROTOCOL.md 5.3's map);
                        empty when anonymous */
} br_job;

/* JOB_ACK: the worker took the job and started it. */
typedef struct br_job_ack {
    br_str job_id;
} br_job_ack;

/* How a job ended. */
typedef enum br_job_outcome {
    BR_JOB_OK = 0,    /* succeeded; result holds its msgpack result */
    BR_JOB_RETRY = 1, /* failed; may be tried again */
    BR_JOB_FATAL = 2  /* failed; must not be retried */
} br_job_outcome;

/* JOB_RESULT: the job finished. */
typedef struct br_job_result {
    br_str job_id;
    uint8_t outcome; /* br_job_outcome */
    br_str result;   /* msgpack-encoded result; may be empty */
    br_str error;    /* human-readable error; empty on success */
} br_job_result;

/* What a turn does to its actor's state (ACTOR_REPLY.op). */
typedef enum br_state_op {
    BR_STATE_KEEP = 0,  /* unchanged: nothing to commit */
    BR_STATE_SET = 1,   /* replace the state with ACTOR_REPLY.state */
    BR_STATE_DELETE = 2 /* delete the state */
} br_state_op;

/* ACTOR_REQUEST: a REQUEST for the key `key` of actor type `actor_type`, at the
 * activation whose fencing token is `epoch` (PROTOCOL.md 5.17). */
typedef struct br_actor_request {
    br_str actor_type; /* the actor type the route declares */
    br_str key;        /* the actor's key */
    uint64_t epoch;    /* the activation's epoch; its commits carry it back */
    bool activate;     /* the first message of an activation: state is its state */
    br_str state;      /* with activate: the last committed state (one msgpack value),
                          empty when the actor has none */
    br_request req;    /* the request itself, as in REQUEST */
} br_actor_request;

/* ACTOR_REPLY: the answer to an ACTOR_REQUEST and the state its turn committed. */
typedef struct br_actor_reply {
    uint64_t epoch; /* the epoch of the ACTOR_REQUEST answered */
    uint8_t op;     /* br_state_op */
    br_str state;   /* with BR_STATE_SET: the new state (one msgpack value) */
    br_reply reply; /* the answer, as in REPLY */
} br_actor_reply;

/* DEACTIVATE: the activation of one key at this worker ends (idle, or moving). */
typedef struct br_deactivate {
    br_str actor_type;
    br_str key;
    uint64_t epoch; /* the activation that ends */
} br_deactivate;

/* ACTOR_TIMER: the activation `epoch` of (actor_type, key) starts or stops a timer
 * (volatile: ends with the activation) or a reminder (durable: kept by the gateway's
 * store until unset, whichever worker holds the key).  PROTOCOL.md 5.20. */
typedef struct br_actor_timer {
    br_str actor_type;
    br_str key;
    uint64_t epoch;     /* the activation asking: a stale one is ignored */
    br_str name;        /* the timer's name, unique per key (and kind) */
    bool start;         /* true: start (replacing one of the name); false: stop */
    bool durable;       /* true: a reminder; false: a timer */
    uint64_t due_ms;    /* start: the first tick this long from now */
    uint64_t period_ms; /* start: then every period_ms; 0: once */
} br_actor_timer;
/* JOB_PROGRESS: the job is still running.  Renews its lease; may report progress. */
typedef struct br_job_progress {
    br_str job_id;
    bool has_progress; /* progress was sent (not nil) */
    double progress;   /* 0..1, finite */
    br_str note;       /* a short human-readable note; may be empty */
} br_job_progress;

/* JOB_HANDOFF: a job whose broker is gone (its registration ended), told to another
 * broker of the same queue: still running (renews its lease there), or ended with
 * JOB_RESULT's fields.  No credit moves (PROTOCOL.md 5.22). */
typedef struct br_job_handoff {
    br_str job_id;
    uint32_t attempt; /* JOB.attempt of the run, >= 1 */
    bool ended;       /* false: still running; true: ended with outcome */
    uint8_t outcome;  /* br_job_outcome, when ended */
    br_str result;    /* OK: msgpack-encoded result; may be empty */
    br_str error;     /* human-readable error; empty on success */
} br_job_handoff;

/* JOB_CANCEL: the job was cancelled; the worker stops it as soon as it can. */
typedef struct br_job_cancel {
    br_str job_id;
} br_job_cancel;

/* WORKFLOW: a handler or a task asks the gateway to make a workflow (PROTOCOL.md 5.21). */
typedef struct br_workflow {
    uint64_t id;       /* the sender's id for it; WORKFLOW_REPLY carries it back */
    br_str canvas;     /* one msgpack value: the workflow's step (docs/jobs.md, "Workflows") */
    br_str parent_job; /* the job whose task sends it (the workflow is linked to it); empty
                          from a handler */
    br_str identity;   /* the handler's request's verified caller (REQUEST.identity), or
                          empty; ignored with parent_job (the job's own identity is used) */
} br_workflow;

/* WORKFLOW_REPLY: what became of a WORKFLOW. */
typedef struct br_workflow_reply {
    uint64_t id;        /* the WORKFLOW's id */
    uint16_t status;    /* 202 made; 404, 409, 422, 503 as for POST /workflows */
    br_str workflow_id; /* on 202: the workflow's id; else empty */
    br_str detail;      /* why not, human-readable; empty on 202 */
} br_workflow_reply;

/* How a task wants its jobs run (TASK_POLICY); 0 in a field: the gateway's default. */
typedef struct br_task_policy {
    br_str task;             /* a task the worker announced */
    uint32_t max_attempts;   /* runs before a failing job is dead */
    uint32_t backoff_ms;     /* first retry delay (doubles per attempt) */
    uint32_t backoff_cap_ms; /* longest retry delay */
    uint32_t lease_ms;       /* lease of its JOBs */
    uint32_t queue_limit;    /* unfinished jobs at most (503 beyond) */
    uint32_t timeout_ms;     /* a running attempt longer than this is cancelled and failed */
    int32_t priority;        /* higher runs first when a worker has credit for several */
    double rate;             /* JOBs sent per second at most, every worker together; 0: no limit */
} br_task_policy;

/* TASK_POLICY: the policies of some of the tasks the worker announced. */
typedef struct br_task_policies {
    br_task_policy *policies;
    uint32_t npolicies;
} br_task_policies;

/* WS_OPEN: a client opened a WebSocket on a route of the worker's; conn names the
 * connection in every later message about it. */
typedef struct br_msg_ws_open {
    uint64_t conn;   /* the connection's id, chosen by the broker, never 0 */
    br_str service;  /* the service */
    br_str route;    /* the matched route template */
    br_str path;     /* the request path */
    br_pair *params; /* path parameters, percent-decoded */
    uint32_t nparams;
    br_pair *query; /* query parameters, percent-decoded */
    uint32_t nquery;
    br_pair *headers; /* the handshake's headers, names lower-case (hop-by-hop removed) */
    uint32_t nheaders;
    br_str subprotocol; /* the subprotocol chosen; empty for none */
    br_str identity;    /* the verified caller (as REQUEST.identity); empty: anonymous */
    br_str request_id;  /* the handshake's X-Request-ID */
} br_msg_ws_open;

/* WS_MESSAGE: one whole message. */
typedef struct br_msg_ws_message {
    uint64_t conn; /* the connection */
    bool binary;   /* binary (true) or text (false, UTF-8) */
    br_str data;   /* the payload */
} br_msg_ws_message;

/* WS_CLOSE: broker -> worker: the connection is over (the client's code, 1006 when it
 * vanished, 1001 at gateway shutdown); worker -> broker: close it with this code. */
typedef struct br_msg_ws_close {
    uint64_t conn; /* the connection */
    uint16_t code; /* a close code, 1000..4999 */
    br_str reason; /* UTF-8, may be empty */
} br_msg_ws_close;

/* WS_CREDIT: the receiver may send `credit` more WS_MESSAGEs on the connection. */
typedef struct br_msg_ws_credit {
    uint64_t conn;
    uint32_t credit; /* >= 1 */
} br_msg_ws_credit;

/* WS_BATCH: WebSocket messages (WS_MESSAGE, WS_CLOSE, WS_CREDIT, WS_GROUP), each a whole
 * encoded message, one after the other (barista/ws_batch.h reads and writes them). */
typedef struct br_msg_ws_batch {
    br_str messages; /* their encodings, concatenated; never empty */
} br_msg_ws_batch;

/* WS_GROUP operations. */
typedef enum br_ws_group_op {
    BR_WS_JOIN = 0,     /* conn joins the group */
    BR_WS_LEAVE = 1,    /* conn leaves it */
    BR_WS_BROADCAST = 2 /* data goes to every member of the group (except conn, when not 0) */
} br_ws_group_op;

/* WS_GROUP: a group operation for the connections of the sender's services. */
typedef struct br_msg_ws_group {
    uint8_t op;    /* br_ws_group_op */
    br_str group;  /* the group's name, non-empty */
    uint64_t conn; /* JOIN/LEAVE: the connection; BROADCAST: one to skip, or 0 */
    bool binary;   /* BROADCAST: binary or text */
    br_str data;   /* BROADCAST: the payload; otherwise empty */
} br_msg_ws_group;
/* STREAM_START: the worker answers REQUEST `id` with a streamed response: the status
 * and headers now, the body in STREAM_CHUNKs, the end in STREAM_END. */
typedef struct br_stream_head {
    uint64_t id;      /* the REQUEST's id */
    uint16_t status;  /* HTTP status, 200..599 */
    br_pair *headers; /* extra response headers; names lower case */
    uint32_t nheaders;
    br_str content_type; /* the body's media type, e.g. "text/event-stream" */
} br_stream_head;

/* STREAM_CHUNK: bytes of a streamed response (worker -> broker) or of a streamed
 * request body (broker -> worker). */
typedef struct br_stream_chunk {
    uint64_t id; /* the REQUEST's id */
    br_str data; /* the bytes; never more than the receiver's window allows */
} br_stream_chunk;

/* STREAM_END: the stream is over.  An empty error is a clean end; otherwise the stream
 * was cut (the receiver must not take the body as complete). */
typedef struct br_stream_fin {
    uint64_t id;  /* the REQUEST's id */
    br_str error; /* empty: complete; else why it was cut */
} br_stream_fin;

/* STREAM_WINDOW: the sender of this message takes `bytes` more bytes of STREAM_CHUNK
 * data for stream `id` (flow control). */
typedef struct br_stream_window {
    uint64_t id;    /* the REQUEST's id */
    uint32_t bytes; /* >= 1 */
} br_stream_window;

/* One decoded or to-be-encoded message.  `type` says which union member is valid;
 * HEARTBEAT has no fields. */
typedef struct br_msg {
    uint8_t type;    /* br_msg_type */
    uint8_t version; /* decoded: the envelope's version; ignored when encoding */
    union {
        br_ready ready;
        br_welcome welcome;
        br_request request; /* REQUEST and CALL */
        br_reply reply;
        br_credit credit;
        br_cancel cancel;
        br_goodbye goodbye;
        br_job job;
        br_job_ack job_ack;
        br_job_result job_result;
        br_actor_request actor_request;
        br_actor_reply actor_reply;
        br_deactivate deactivate;
        br_actor_timer actor_timer;
        br_job_progress job_progress;
        br_job_handoff job_handoff;
        br_job_cancel job_cancel;
        br_task_policies task_policy;
        br_workflow workflow;
        br_workflow_reply workflow_reply;
        br_msg_ws_open ws_open;
        br_msg_ws_message ws_message;
        br_msg_ws_close ws_close;
        br_msg_ws_credit ws_credit;
        br_msg_ws_group ws_group;
        br_msg_ws_batch ws_batch;
        br_stream_head stream_start;
        br_stream_chunk stream_chunk;
        br_stream_fin stream_end;
        br_stream_window stream_window;
    } u;
} br_msg;

/* ---------------------------------------------------------------------------------- */
/* Limits.                                                                             */

/* Bounds that decoding enforces.  Every field must be non-zero. */
typedef struct br_limits {
    uint32_t max_message;  /* bytes in one message */
    uint32_t max_string;   /* bytes in one string other than a body or payload */
    uint32_t max_body;     /* bytes in a body, payload or result */
    uint32_t max_pairs;    /* entries in one headers/query/params list */
    uint32_t max_services; /* services in one READY */
    uint32_t max_routes;   /* routes in one service */
    uint32_t max_params;   /* declared parameters in one route */
    uint32_t max_tasks;    /* tasks in one READY */
    uint32_t max_jobs;     /* jobs in one REPLY */
} br_limits;

/* The defaults: 16 MiB messages, 64 KiB strings, 8 MiB bodies, 256 pairs, 64
 * services, 128 routes, 32 params, 128 tasks, 64 jobs. */
extern const br_limits br_limits_default;

/* ---------------------------------------------------------------------------------- */
/* Encoding.                                                                           */

/* A growable byte buffer with a hard maximum. */
typedef struct br_buf {
    uint8_t *data; /* heap bytes, owned by the buffer */
    size_t len;    /* bytes used */
    size_t cap;    /* bytes allocated */
    size_t max;    /* the buffer never grows past this; 0 means br_limits_default's
                      max_message */
} br_buf;

/* Releases buf's memory and zeroes it; safe on a zeroed buffer and safe twice. */
void br_buf_free(br_buf *buf);

/* Makes room for n more bytes after buf->len (buf->len unchanged), growing
 * geometrically up to buf->max.  Returns 0, BR_ELIMIT past the maximum, or BR_ENOMEM. */
int br_buf_reserve(br_buf *buf, size_t n);

/* Appends n bytes of data.  Returns as br_buf_reserve(); on failure nothing changes. */
int br_buf_append(br_buf *buf, const void *data, size_t n);

/* Appends the encoding of msg to buf (it does not clear buf first).  Returns 0, or
 * BR_EINVAL for a message that breaks the protocol (unknown type, status out of
 * range, zero deadline), BR_ELIMIT when buf would grow past buf->max, or BR_ENOMEM.
 * On failure buf->len is unchanged. */
int br_msg_encode(const br_msg *msg, br_buf *buf);

/* br_msg_encode in an older version of the protocol, for a peer that speaks only that
 * one: BR_EVERSION for a version this library does not speak, BR_EMSGTYPE for a
 * message type that version does not have (an unknown type is BR_EINVAL, as with
 * br_msg_encode). */
int br_msg_encode_version(const br_msg *msg, unsigned version, br_buf *buf);

/* Whether a message type exists in a protocol version. */
bool br_msg_type_in_version(unsigned type, unsigned version);

/* How deep a schema's msgpack may nest: each level of a declaration is a map inside a
 * map (properties) or a map (items), plus the enum and required arrays. */
#define BR_SCHEMA_WIRE_DEPTH (2 * BR_SCHEMA_MAX_DEPTH + 2)

/* Appends the msgpack encoding of a declared schema (barista/schema.h) to buf: the
 * schema value PROTOCOL.md 5.1.1 specifies, ready for br_param.schema,
 * br_route.body_schema or br_response.schema.  Returns 0; BR_EINVAL for a declaration
 * that breaks the rules (a NULL field schema, min above max, a default that does not
 * parse as its type, an unknown type or format) or passes a BR_SCHEMA_MAX_* bound;
 * BR_ELIMIT past buf->max; BR_ENOMEM.  On failure buf->len is unchanged. */
int br_schema_encode(const br_schema *schema, br_buf *buf);

/* ---------------------------------------------------------------------------------- */
/* Decoding.                                                                           */

typedef struct br_decoder br_decoder;

/* Creates a decoder enforcing *limits (NULL: br_limits_default).  Caller owns the
 * result; NULL when out of memory. */
br_decoder *br_decoder_new(const br_limits *limits);

/* Destroys *self_p and sets it to NULL; safe on NULL and safe twice. */
void br_decoder_destroy(br_decoder **self_p);

/* Decodes exactly one message from buf[0..len) into *out.  Returns 0 or a negative
 * br_err; on error *out is zeroed.  See the file comment for how long *out stays
 * valid.  Never reads outside buf, never allocates more than the limits allow. */
int br_decoder_decode(br_decoder *self, const void *buf, size_t len, br_msg *out);

/* Reads only the version and type of a message, for cheap dispatch and for logging a
 * message that fails to decode.  Returns 0 or a negative br_err. */
int br_msg_peek(const void *buf, size_t len, unsigned *version, unsigned *type);

/* True for a message type this library knows: the numbering has gaps (13-39 are
 * reserved for other features), so loops over 1..BR_MSG_TYPE_MAX skip the others. */
bool br_msg_type_known(unsigned type);

/* The name of a message type ("REQUEST"), or "UNKNOWN". */
const char *br_msg_type_name(unsigned type);

#ifdef __cplusplus
}
#endif

#endif /* BARISTA_PROTO_H */
