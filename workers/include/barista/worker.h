/*
 * barista/worker.h - write a Barista service in C, and run it.
 *
 * A service is a static table: its name, its kind and its routes.  Each route names a
 * handler.  The runtime connects to the gateway's broker, announces the services, and
 * calls a route's handler for every request the broker sends.
 *
 *   - An I/O service (BR_KIND_IO, FastAPI's `async def`) runs on the worker's libuv
 *     loop.  Its handler must never block.  It answers now, or later from any loop
 *     callback (a timer, a socket), and many requests are in flight at once.
 *   - A CPU service (BR_KIND_CPU, FastAPI's `def`) runs one request at a time on a
 *     compute thread, so its handler may block and compute for as long as it likes;
 *     the loop keeps the connection alive meanwhile.
 *
 * Every request is answered exactly once, with one of the br_reply_* calls.  That call
 * ends the request: the request, its arena and everything it adopted are released, and
 * the handler must not touch `req` again.
 *
 * Memory a request needs comes from its arena (br_req_alloc), freed when it ends.
 * Strings a request hands out (br_str) live as long as the request.
 *
 * A program becomes a worker with one call, br_worker_main(argc, argv, services, n):
 * the whole worker command line and environment, the services' own options, signals
 * and drain.  A service keeps its state in `data`, set up by its `init` hook on the
 * worker's loop before the first request and torn down by `fini` after the drain.
 *
 * docs/workers.md is the guide; this header is the reference.
 */
#ifndef BARISTA_WORKER_H
#define BARISTA_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "barista/schema.h"
#include "barista/types.h"
#include "barista/value.h"
#include "barista/writer.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------- */
/* Declaring a service.                                                                */

/* The number of elements of a static array, for the n* fields below. */
#define BR_NELEMS(a) (sizeof(a) / sizeof((a)[0]))

/* One request in flight.  Opaque; owned by the runtime until the request ends. */
typedef struct br_req br_req;

/* A route's handler.
 *
 * I/O services: called on the loop thread.  It must not block.  It ends the request
 * with one br_reply_* call, before returning or later from another loop callback.
 *
 * CPU services: called on the compute thread, one request at a time.  It may block.
 * It should end the request with one br_reply_* call before returning; a handler that
 * returns without replying gets a 500 on its behalf.  It must not touch the loop. */
typedef void (*br_handler_fn)(br_req *req);

/* A parameter a route declares.  The gateway validates it before dispatch and answers
 * 422 when it is missing (and required), does not parse as `type`, or is out of
 * [min, max]; the OpenAPI document lists it.  `schema` refines it the way FastAPI's
 * Query()/Header()/Cookie() do: an enum, a pattern, a format (uuid, date), a default
 * the gateway fills in when the parameter is absent, or BR_SCHEMA_ARRAY for a query
 * key given several times (`?tag=a&tag=b`, every value checked against `items`). */
typedef struct br_param_spec {
    const char *name;        /* path segment name ("{name}"), query key or header name */
    br_param_in in;          /* where it is read from */
    br_param_type type;      /* what it must parse as */
    bool required;           /* absent means 422 */
    bool has_min;            /* min applies */
    bool has_max;            /* max applies */
    double min;              /* lower bound: the value for numbers, the length for strings */
    double max;              /* upper bound: the value for numbers, the length for strings */
    const char *summary;     /* one line for the docs; may be NULL */
    const br_schema *schema; /* refinements (barista/schema.h); NULL: type/min/max only */
    const char *alias;       /* the name clients send and the docs show when it differs
                                from `name` ("X-Request-Id"); the handler reads the value
                                under `name`.  NULL: none */
} br_param_spec;

/* A service running inside a worker (defined below). */
typedef struct br_svc br_svc;

/* A keyed actor type (docs/actors.md).  Routes that name it send every request to the
 * actor whose key is the path parameter `key_param`: the gateway places each key on one
 * worker of the service, the worker runs one message per key at a time in arrival
 * order (a handler that awaits a call or a timer keeps its key's turn until it
 * replies), and the key's state - one msgpack value, br_actor_state /
 * br_actor_set_state - is loaded at activation and committed with each reply.  Declare
 * it `static const`, shared by the type's routes.  I/O services only. */
typedef struct br_actor_spec {
    const char *type;      /* the actor type, e.g. "counter" */
    const char *key_param; /* the path parameter holding the key, e.g. "id" */
    uint32_t idle_ms;      /* deactivated after this long without a message; 0: the
                              gateway's default (60 s) */
    bool reentrant;        /* true: a key's messages may interleave while a turn awaits
                              I/O (Orleans' [Reentrant]); false (the default): one turn
                              at a time */
    /* A key became active here with state `state` (empty: none); may be NULL. */
    void (*on_activate)(br_svc *svc, br_str key, br_str state);
    /* A key's activation here ended (idle, or moved); may be NULL. */
    void (*on_deactivate)(br_svc *svc, br_str key);
    /* A timer or reminder of a key fired (br_actor_tick_name says which): a turn like a
     * message's, in the key's mailbox, with the state API; it ends with a reply (its
     * status says whether the state change commits: below 500).  NULL: ticks are
     * answered 404 and change nothing. */
    br_handler_fn on_tick;
    /* A CALL that named the actor by type and key (br_call_spec.actor_type), without a
     * route: its method, path, query and body are the caller's.  NULL: such calls are
     * answered 404. */
    br_handler_fn on_call;
} br_actor_spec;
/* One WebSocket connection on a worker (docs/workers.md, "WebSockets").  Opaque; owned
 * by the runtime: valid from on_open until on_close returns, or until the callback
 * that called br_ws_close() returns. */
typedef struct br_ws br_ws;

/* What a WebSocket route does with its connections.  The gateway does all framing; a
 * connection lives on this worker for its whole life and its callbacks run on the
 * worker's loop, one at a time. */
typedef struct br_ws_spec {
    void (*on_open)(br_ws *ws); /* a client connected; may be NULL */
    /* One whole message: text (valid UTF-8) or binary.  The bytes are valid during the
     * call only. */
    void (*on_message)(br_ws *ws, bool binary, br_str data);
    /* The connection is over: the client's close code (1005: none), 1006 when it
     * vanished, 1001 when the gateway shuts down.  Not called after br_ws_close. */
    void (*on_close)(br_ws *ws, uint16_t code, br_str reason);
    const char *subprotocols; /* space-separated subprotocols it speaks; NULL: none */
} br_ws_spec;

/* A route: a method and a path template, served by one handler. */
typedef struct br_route_spec {
    const char *method;                /* "GET", "POST", ... */
    const char *path;                  /* template, e.g. "/hello/{name}" */
    br_handler_fn handler;             /* called for each request on this route */
    br_body_mode body;                 /* what the route does with a request body */
    uint32_t timeout_ms;               /* the route's deadline; 0 means the gateway's default */
    const char *summary;               /* one line for the docs; may be NULL */
    const br_param_spec *params;       /* declared parameters; may be NULL when nparams is 0 */
    size_t nparams;                    /* entries in params */
    br_auth_mode auth;                 /* who may call it (checked by the gateway); 0: the
                                          gateway's --auth-default */
    const char *scopes;                /* space-separated scopes a caller must hold; may be NULL */
    bool forward_token;                /* the Authorization header reaches the handler */
    const br_schema *body_schema;      /* BR_BODY_MSGPACK routes: the body's model; the gateway
                                          answers 422 for a body that breaks it and hands the
                                          handler the converted body with defaults filled in.
                                          NULL: any JSON */
    bool body_form;                    /* with body_schema: an application/x-www-form-urlencoded
                                          body is accepted too, and validated the same way */
    const br_response_spec *responses; /* the responses it gives, success first (201 for a
                                          create, 204 for no content); NULL: 200 */
    size_t nresponses;                 /* entries in responses */
    const br_actor_spec *actor;        /* a keyed actor route: the actor type its requests go
                                          to; NULL: a stateless route */
    const br_ws_spec *websocket;       /* non-NULL: a WebSocket route (method "GET";
                                          handler unused) */
    bool stream_body;                  /* BR_BODY_RAW routes of I/O services: the body
                                          arrives in pieces (br_req_body_stream,
                                          barista/stream.h), past the buffered limit, up
                                          to body_max */
    uint64_t body_max;                 /* with stream_body: the most body bytes the route
                                          takes (413 beyond); 0: the gateway's
                                          --stream-body-max (1 GiB) */
} br_route_spec;

/* One attempt of a background job in flight.  Opaque; owned by the runtime until the
 * attempt ends (br_job_succeed / br_job_fail). */
typedef struct br_jobctx br_jobctx;

/* A task's handler: runs one attempt of a job.
 *
 * I/O services: called on the loop thread; must not block; ends the attempt with
 * br_job_succeed or br_job_fail, before returning or later from a loop callback.
 * CPU services: called on the compute thread, one job (or request) at a time; may
 * block; ends the attempt before returning (one that returns without ending it is
 * failed with retry on its behalf). */
typedef void (*br_task_fn)(br_jobctx *job);

/* A periodic schedule of a task (Celery beat's entry), declared with the task: the
 * gateway makes it when the first worker announces it and keeps exactly one per task and
 * name, however many workers declare it and however often they reconnect; a changed
 * declaration replaces it.  Exactly one job per tick (docs/jobs.md, "Schedules"). */
typedef struct br_schedule_spec {
    const char *name;     /* unique among the task's schedules, e.g. "nightly" */
    uint64_t interval_ms; /* every this many ms (10 ms .. 30 days); or 0 and: */
    const char *cron;     /* a five-field cron expression in UTC, e.g. "0 3 * * *" */
    const void *payload;  /* the jobs' argument: one msgpack value; NULL for nil */
    size_t payload_len;   /* its bytes */
    uint32_t catch_up;    /* ticks missed while no gateway ran made up at most (0..1000) */
} br_schedule_spec;

/* A background task a service runs (Celery's task, FastAPI's BackgroundTasks). */
typedef struct br_task_spec {
    const char *name;   /* task name, unique among a worker's tasks, e.g. "email" */
    br_task_fn handler; /* runs each attempt */
    bool is_public;     /* true: HTTP clients may submit it (POST /jobs/{name}); false (the
                           default): internal, only services enqueue it (br_reply_add_job) */
    /* How the gateway runs its jobs (docs/jobs.md, "Per-task policy"); 0 in any of
     * these: the gateway's option. */
    uint32_t max_attempts;   /* runs before a failing job is dead (--jobs-max-attempts) */
    uint32_t backoff_ms;     /* first retry delay, doubling per attempt (--jobs-backoff) */
    uint32_t backoff_cap_ms; /* longest retry delay (--jobs-backoff-cap) */
    uint32_t lease_ms;       /* lease of its JOBs, renewed while it runs (--jobs-lease) */
    uint32_t queue_limit;    /* unfinished jobs at most, 503 beyond (never more than
                                --jobs-task-limit) */
    uint32_t timeout_ms;     /* an attempt running longer is cancelled and fails ("timed out") */
    uint8_t priority;        /* 0..255: a worker with credit for several tasks gets the
                                highest first */
    double rate;             /* JOBs per second at most, all workers together; 0: unlimited */
    const br_schedule_spec *schedules; /* its periodic schedules (READY.schedules); may be NULL */
    size_t nschedules;                 /* entries in schedules */
} br_task_spec;

/* An option a service reads (a database URL, a file path, a pool size).  It is a flag
 * of every program that hosts the service (`--NAME VALUE`, listed by --help) and an
 * environment variable; the flag wins, then the variable, then the default.  A value
 * that does not parse as `type`, falls outside [min, max] (numbers) or fails `check`
 * stops the program before it starts: one line on stderr, exit status 2.  Services
 * read the value with br_svc_option.  Two services may declare the same name: they
 * share the value. */
typedef struct br_option_spec {
    const char *name;   /* the flag without its dashes, e.g. "outbox" */
    const char *env;    /* the environment variable, e.g. "BARISTA_OUTBOX"; may be NULL */
    const char *def;    /* the default value; NULL: unset unless given */
    const char *help;   /* one line for --help; may be NULL */
    br_param_type type; /* what the value must parse as (BR_TYPE_STR: anything) */
    bool has_min;       /* min applies (numbers) */
    bool has_max;       /* max applies (numbers) */
    double min;         /* lower bound of a number */
    double max;         /* upper bound of a number */
    const char *(*check)(const char *value); /* NULL, or: NULL when value is fine, else
                                                a short reason ("want http:// or https://") */
} br_option_spec;

/* A service running inside a worker (br_svc, declared above): its data, its options,
 * the loop.  Opaque; owned by the worker.  Handlers reach it with br_req_svc /
 * br_job_svc. */

/* A service's set-up, called once on the loop thread after the worker's loop exists and
 * before the first request: open pools, connect clients, start timers (with
 * br_svc_loop), allocate state (br_svc_set_data).  Returns 0, or non-zero after giving
 * the reason with br_svc_fail: then the worker never registers, runs the `fini` of the
 * services set up before this one, and exits non-zero with the reason. */
typedef int (*br_init_fn)(br_svc *svc);

/* A service's tear-down, called once on the loop thread after the drain finished (no
 * request or job of the worker is in flight any more), in the reverse order of init: it
 * closes what init opened (handles it closes finish before br_worker_run returns) and
 * frees its data.  Not called for a service whose init failed or never ran, nor when
 * the drain gave up on requests that ignored their cancel. */
typedef void (*br_fini_fn)(br_svc *svc);

/* Middleware: runs on the worker's loop thread before every route handler of the
 * service, with the request as the handler will see it (its params, body and
 * br_req_identity: the place for checks beyond scopes, tenant selection, shared set-up
 * in br_req_alloc memory).  Returns true to go on to the handler (for a CPU service,
 * on its compute thread); false after ending the request itself with a br_reply_*
 * call - then neither the handler nor the request may be touched again. */
typedef bool (*br_before_fn)(br_req *req);

/* Middleware: runs on the loop thread once the request's reply is made, before it is
 * sent, whoever made it (the handler, a before hook, a cancel); `status` is the
 * reply's.  It may only add headers (br_reply_header); the reply is otherwise final. */
typedef void (*br_after_fn)(br_req *req, uint16_t status);

/* A service's own CORS policy (docs/edge.md): the gateway answers preflights and
 * cross-origin requests for the service's routes with it instead of its gateway-wide
 * --cors-* options.  Each text is a comma-separated list of printable ASCII of at most
 * BR_CORS_TEXT_MAX (1024) bytes, since it ends up in response headers; br_services_check
 * refuses anything else, and "*" origins with credentials (browsers refuse that). */
typedef struct br_cors_spec {
    const char *origins; /* "https://app.example, https://admin.example", or "*" for any;
                            NULL or "": no cross-origin caller is allowed */
    const char *methods; /* methods a preflight may ask for; NULL or "": the gateway's */
    const char *headers; /* request headers a preflight may ask for, or "*"; NULL or "":
                            the gateway's */
    const char *expose;  /* response headers a page may read; NULL: none */
    bool credentials;    /* Access-Control-Allow-Credentials: true (cookies, Authorization) */
    uint32_t max_age_s;  /* seconds a browser may cache a preflight; 0: BR_CORS_MAX_AGE_S */
} br_cors_spec;

/* The preflight cache time of a br_cors_spec that gives none (the gateway's default). */
#define BR_CORS_MAX_AGE_S 600u

/* A service: a name, a kind and its routes.  Declare it `static const`; the runtime
 * only reads it, and it must outlive the worker. */
typedef struct br_service_spec {
    const char *name;              /* unique service name, e.g. "hello" */
    br_kind kind;                  /* BR_KIND_IO or BR_KIND_CPU */
    const char *summary;           /* one line for --list; may be NULL */
    const br_route_spec *routes;   /* the routes it serves (may be none if it has tasks) */
    size_t nroutes;                /* entries in routes */
    const br_task_spec *tasks;     /* background tasks it runs; may be NULL */
    size_t ntasks;                 /* entries in tasks */
    const br_option_spec *options; /* options it reads; may be NULL */
    size_t noptions;               /* entries in options */
    br_init_fn init;               /* set-up before the first request; may be NULL */
    br_fini_fn fini;               /* tear-down after the drain; may be NULL */
    void *data;                    /* the service's data until init replaces it */
    size_t data_size;              /* non-zero: the data is this many zeroed bytes of the
                                      service's memory instead (br_svc_alloc) */
    br_before_fn before;           /* middleware before each handler; may be NULL */
    br_after_fn after;             /* middleware on each reply; may be NULL */
    const br_cors_spec *cors;      /* the service's own CORS; NULL: the gateway's */
} br_service_spec;

/* ---------------------------------------------------------------------------------- */
/* Keyed actors: the state of the request's actor (actor routes only).                 */

/* The actor's key ("" on a stateless route). */
br_str br_actor_key(const br_req *req);

/* The actor's state as this turn sees it: the committed state, or what the turn set; an
 * empty string when it has none.  Valid until the turn changes it or ends. */
br_str br_actor_state(const br_req *req);

/* Replaces the actor's state with `len` bytes of one msgpack value (copied).  The change
 * is committed when the turn replies with a status below 500, atomically with the
 * reply: the client sees the reply only once the state is durable.  0, BR_EINVAL on a
 * stateless route, BR_ENOMEM. */
int br_actor_set_state(br_req *req, const void *state, size_t len);

/* Deletes the actor's state at the end of the turn (likewise).  0 or BR_EINVAL. */
int br_actor_delete_state(br_req *req);

/* Timers and reminders (docs/actors.md).  Both fire as turns of the key - through its
 * mailbox, one at a time with its messages - running the type's on_tick.  A *timer*
 * lives while the activation does: it ends when the key is deactivated (idle) or
 * moves.  A *reminder* is durable: the gateway keeps it in the actors' store and fires
 * it on whichever worker holds the key then, across gateway restarts and moves, at
 * least once per tick, until the actor unsets it.  Called during a turn (req is its
 * request); `due_ms` from now, then every `period_ms` (0: once).  Starting one whose
 * name is taken replaces it.  Names are at most BR_ACTOR_TIMER_NAME_MAX bytes.
 * 0; BR_EINVAL (not an actor turn, bad name); BR_ECLOSED (no broker connection). */
int br_actor_timer_start(br_req *req, const char *name, uint64_t due_ms, uint64_t period_ms);
int br_actor_timer_stop(br_req *req, const char *name);
int br_actor_reminder_set(br_req *req, const char *name, uint64_t due_ms, uint64_t period_ms);
int br_actor_reminder_unset(br_req *req, const char *name);

/* In on_tick: the name of the timer or reminder that fired, and whether it is a
 * reminder.  "" and false in any other handler. */
br_str br_actor_tick_name(const br_req *req);
bool br_actor_tick_is_reminder(const br_req *req);

/* ---------------------------------------------------------------------------------- */
/* A service at run time.                                                              */

/* The service's name, as declared. */
const char *br_svc_name(const br_svc *svc);

/* The service's data: the spec's `data` until br_svc_set_data replaces it.  Handlers of
 * a CPU service share it with the loop thread: what they touch is theirs to guard. */
void *br_svc_data(const br_svc *svc);
void br_svc_set_data(br_svc *svc, void *data);

/* The worker's loop (from init, fini and the loop thread only). */
uv_loop_t *br_svc_loop(const br_svc *svc);

/* The most bytes a service's memory may hold. */
#define BR_SVC_MEMORY_MAX (256u * 1024u * 1024u)

/* Service-lifetime memory: n bytes aligned for any type, kept until the worker is
 * destroyed (after fini), never freed one by one - what a request's arena is to a
 * request.  NULL past BR_SVC_MEMORY_MAX or when memory runs out.  From init, fini and
 * the service's handlers (an io service's on the loop; a cpu service's run one at a
 * time), never from two threads at once. */
void *br_svc_alloc(br_svc *svc, size_t n);

/* A copy of bytes in the service's memory; the empty string when it is full. */
br_str br_svc_copy(br_svc *svc, br_str bytes);

/* The value of an option the service declared: the flag, the variable or the default;
 * NULL when none is set, or when the service declared no such option.  Lives as long
 * as the worker. */
const char *br_svc_option(const br_svc *svc, const char *name);

/* The option as an integer (declared with .type = BR_TYPE_INT, the worker checked it at
 * start).  0, BR_ENOTFOUND when unset, or BR_EVALUE. */
int br_svc_option_int(const br_svc *svc, const char *name, int64_t *out);

/* From init: records why the set-up failed (printf-style, one line) and returns -1, so
 * that init can end with `return br_svc_fail(svc, "cannot open %s: %s", path, why);`. */
int br_svc_fail(br_svc *svc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---------------------------------------------------------------------------------- */
/* Reading a request.  Valid from the handler's call until the request ends.          */

/* The broker's id for the request (for logs). */
uint64_t br_req_id(const br_req *req);

/* The HTTP method, the request path (without the query string), and the matched route
 * template. */
br_str br_req_method(const br_req *req);
br_str br_req_path(const br_req *req);
br_str br_req_route(const br_req *req);

/* The request's id (its X-Request-ID, accepted or made by the gateway; put it in log
 * lines about the request) - empty from an older gateway. */
br_str br_req_request_id(const br_req *req);

/* The caller the gateway verified: one msgpack map {"kind": "jwt"|"api_key", "sub",
 * "scopes": [...], "claims": {...}} to read with br_value_parse (barista/value.h);
 * empty when the caller is anonymous.  Calls made from this request carry it on. */
br_str br_req_identity(const br_req *req);

/* Looks up a path parameter, a query parameter (the first with that name) or a request
 * header (case-insensitive name).  Values are percent-decoded by the gateway.  Sets
 * *out and returns 0, or returns BR_ENOTFOUND and sets *out to the empty string. */
int br_req_param(const br_req *req, const char *name, br_str *out);
int br_req_query(const br_req *req, const char *name, br_str *out);
int br_req_header(const br_req *req, const char *name, br_str *out);

/* Looks up a cookie the route declares as a parameter (BR_IN_COOKIE): the gateway
 * validated it, filled in its default, and sends only declared cookies.  As above. */
int br_req_cookie(const br_req *req, const char *name, br_str *out);

/* Typed reads of a path parameter, query parameter, header or cookie (`in`).  Each returns 0
 * and sets *out; BR_ENOTFOUND when it is absent; BR_EVALUE when the text does not parse
 * the way the gateway's validation parses that type - int: an optional sign and decimal
 * digits within int64; float: a finite decimal number; bool: true/false, 1/0, yes/no,
 * on/off in any case.  *out is set only on success.  The gateway validated declared
 * parameters already; this is the defence (and reads undeclared ones). */
int br_req_str(const br_req *req, br_param_in in, const char *name, br_str *out);
int br_req_int(const br_req *req, br_param_in in, const char *name, int64_t *out);
int br_req_float(const br_req *req, br_param_in in, const char *name, double *out);
int br_req_bool(const br_req *req, br_param_in in, const char *name, bool *out);

/* The same with a default, for optional parameters (FastAPI's `limit: int = 10`):
 * `def` when the parameter is absent; when it is present but does not parse, `def` as
 * well, and a validation error is recorded on the request (br_req_invalid) for
 * br_reply_invalid to send. */
int64_t br_req_int_or(br_req *req, br_param_in in, const char *name, int64_t def);
double br_req_float_or(br_req *req, br_param_in in, const char *name, double def);
bool br_req_bool_or(br_req *req, br_param_in in, const char *name, bool def);

/* br_req_int(req, BR_IN_QUERY, name, out), the older spelling. */
int br_req_query_int(const br_req *req, const char *name, int64_t *out);

/* The request body and its media type; both empty when there is none.  A route
 * declared BR_BODY_MSGPACK gets JSON bodies as msgpack: read them with br_value_parse
 * and the getters of barista/value.h. */
br_str br_req_body(const br_req *req);
br_str br_req_content_type(const br_req *req);

/* The body of a BR_BODY_MSGPACK route (the client's JSON, converted by the gateway) as
 * a value of barista/value.h, parsed once; the missing value when there is no body or
 * it is not one msgpack value. */
br_value br_req_json(br_req *req);

/* Fields of that body, FastAPI's way: `path` is dotted ("title", "items.0.qty": map
 * keys and array indexes).  A required field that is absent records
 * {"type": "missing", "msg": "Field required"}, one of another type records
 * string_type / int_type / float_type / bool_type ("Input should be a valid ..."), both
 * with "loc": ["body", ...path]; the getter then returns the empty string, 0 or false.
 * The _or forms return `def` for an absent field (a wrong type is still recorded).
 * Check br_req_errors, or just reply: a reply sent with errors recorded becomes the
 * 422 (br_reply_send).  A str points into the body (lives as long as the request); an
 * int must fit int64 (a float is int_type, as JSON's 3.0 is not 3); a float accepts
 * integers too. */
br_str br_req_field_str(br_req *req, const char *path);
br_str br_req_field_str_or(br_req *req, const char *path, const char *def);
int64_t br_req_field_int(br_req *req, const char *path);
int64_t br_req_field_int_or(br_req *req, const char *path, int64_t def);
double br_req_field_float(br_req *req, const char *path);
double br_req_field_float_or(br_req *req, const char *path, double def);
bool br_req_field_bool(br_req *req, const char *path);
bool br_req_field_bool_or(br_req *req, const char *path, bool def);

/* Milliseconds left before the request's deadline (0 once it has passed).  Thread-safe:
 * a CPU handler may call it while it computes. */
uint32_t br_req_remaining_ms(const br_req *req);

/* True once the broker cancelled the request (deadline passed, client gone, worker
 * reconnected).  Thread-safe: a long CPU handler polls it and stops early. */
bool br_req_cancelled(const br_req *req);

/* The worker's loop, for an I/O handler's timers and sockets.  Never call it from a CPU
 * handler. */
uv_loop_t *br_req_loop(const br_req *req);

/* The service the request is for, and its data (br_svc_data of it). */
br_svc *br_req_svc(const br_req *req);
void *br_req_data(const br_req *req);

/* Starlette's request.state: one pointer a before hook hands to the handler (say, the
 * tenant it picked, in br_req_alloc memory).  NULL until set. */
void br_req_set_state(br_req *req, void *state);
void *br_req_state(const br_req *req);

/* ---------------------------------------------------------------------------------- */
/* Request-scoped memory and resources.                                               */

/* Allocates n bytes, aligned for any type, from the request's arena.  The memory lives
 * until the request ends and is then freed at once; never free it yourself.  Returns
 * NULL when the arena would grow past BR_ARENA_MAX or memory runs out. */
void *br_req_alloc(br_req *req, size_t n);

/* Copies s into the arena as a NUL-terminated C string; NULL on failure. */
char *br_req_strdup(br_req *req, br_str s);

/* The most a request's arena may hold. */
#define BR_ARENA_MAX (64u * 1024u * 1024u)

/* I/O handlers: hands an initialised libuv handle, usually allocated with
 * br_req_alloc, to the request.  When the request ends the runtime uv_close()s it and
 * frees the arena only after every adopted handle's close callback has run, so a
 * handler only stops its timer and never closes it (closing an adopted handle yourself
 * is an error).  The handle's `data` field is the handler's until the request ends.
 * At most BR_REQ_MAX_HANDLES per request.  Returns 0, or BR_EFULL (then the handler
 * still owns the handle and must close it). */
int br_req_adopt(br_req *req, uv_handle_t *handle);

#define BR_REQ_MAX_HANDLES 8

/* Called once, on the loop thread, when the broker cancels the request. */
typedef void (*br_cancel_fn)(br_req *req, void *arg);

/* I/O handlers: registers fn(req, arg) to run if the request is cancelled before it
 * ends (a later call replaces an earlier one).  The callback stops the work (say, its
 * timer) and still ends the request with any br_reply_* call: after a cancel, whatever
 * the handler replies goes out as 499 with an empty body, which returns the worker's
 * credit.  Without a callback the request runs to its natural reply, which then
 * becomes the 499.  CPU handlers poll br_req_cancelled() instead. */
void br_req_on_cancel(br_req *req, br_cancel_fn fn, void *arg);

/* ---------------------------------------------------------------------------------- */
/* Replying.  br_reply_send, br_reply_raw, br_reply_error(f), br_reply_invalid and     */
/* br_reply_status end the request whatever they return: on failure the client gets a */
/* 500 instead.  They return 0, BR_EINVAL (status out of 100..599, a writer left       */
/* incomplete, or the request already ended - a programmer error), BR_ELIMIT or        */
/* BR_ENOMEM.                                                                          */

/* The most bytes a reply body may hold. */
#define BR_REPLY_BODY_MAX (8u * 1024u * 1024u)

/* Most extra response headers per reply. */
#define BR_REPLY_MAX_HEADERS 32

/* Adds a response header to the coming reply (name and value are copied; the name is
 * sent lower-case).  Returns 0; BR_EINVAL for an empty name, for content-type and
 * content-length (they come from the reply itself) and for hop-by-hop headers
 * (connection, keep-alive, transfer-encoding, te, upgrade, proxy-*), which the
 * gateway would not forward; BR_EFULL past BR_REPLY_MAX_HEADERS; or BR_ENOMEM.  A
 * refused header does not end the request. */
int br_reply_header(br_req *req, const char *name, const char *value);

/* Starts a structured reply: returns the request's writer (barista/writer.h) for
 * exactly one value, usually an object, which the client receives as JSON (or as
 * msgpack when it asks for application/msgpack).  br_reply_send sends it.  The writer
 * belongs to the request.  Calling it again starts over.  NULL when the request
 * already ended. */
br_writer *br_reply_start(br_req *req, uint16_t status);

/* Sends the value written since br_reply_start and ends the request.  A writer with an
 * error or an unclosed container makes the reply a 500 (and returns the error).  When
 * validation errors were recorded (br_req_invalid, the _or getters, the body field
 * getters), the reply is their 422 instead, as br_reply_invalid sends it: FastAPI never
 * runs a handler with invalid input, and this keeps a handler from answering 200 with
 * a default in place of what the client got wrong. */
int br_reply_send(br_req *req);

/* br_reply_start, br_w_pack(w, fmt, ...) and br_reply_send in one call. */
int br_reply_pack(br_req *req, uint16_t status, const char *fmt, ...);

/* Sends `len` bytes of `body` with `content_type` (NULL or "" for none) and ends the
 * request.  The bytes are copied. */
int br_reply_raw(br_req *req, uint16_t status, const char *content_type, const void *body,
                 size_t len);

/* Sends a FastAPI-shaped error, {"detail": detail}, and ends the request.  The f form
 * formats the detail printf-style (at most BR_WRITER_STRF_MAX bytes). */
int br_reply_error(br_req *req, uint16_t status, const char *detail);
int br_reply_errorf(br_req *req, uint16_t status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Sends `status` with an empty body and ends the request. */
int br_reply_status(br_req *req, uint16_t status);

/* Most validation errors one request records. */
#define BR_REQ_MAX_ERRORS 32

/* Records a validation error the way FastAPI lists them, for br_reply_invalid:
 * {"type": type, "loc": [where, ...name], "msg": msg, "input": input}.  `where` is
 * "path", "query", "header" or "body"; `name` is a parameter name, or for a body field
 * a dotted path whose numeric parts are array indexes ("items.0.qty" becomes
 * ["body", "items", 0, "qty"]), or NULL for the whole body.  msg and type follow
 * pydantic's words ("Field required", "missing"); input (NULL: null) is the offending
 * value as text.  Everything is copied.  Returns 0, BR_EFULL past BR_REQ_MAX_ERRORS
 * (the first ones are kept), BR_EINVAL after the request ended, or BR_ENOMEM. */
int br_req_invalid(br_req *req, const char *where, const char *name, const char *msg,
                   const char *type, const char *input);

/* Validation errors recorded so far. */
size_t br_req_errors(const br_req *req);

/* Sends 422 {"detail": [the recorded errors, in order]} and ends the request (a
 * request with none recorded gets a one-item list saying so). */
int br_reply_invalid(br_req *req);

/* The most jobs one reply may enqueue (the protocol's max_jobs). */
#define BR_REPLY_MAX_JOBS 64

/* Enqueues a background job with the coming reply (BackgroundTasks.add_task): the
 * gateway makes the job durable before the client sees the reply, and answers 503
 * instead if it cannot.  `payload` is one msgpack value, the task's argument (made with
 * a br_writer: br_writer_bytes; NULL/0 for nil), copied.  `idempotency_key` (NULL for none) makes a
 * repeat return the same job; the job runs no sooner than delay_ms after it is enqueued.  I/O
 * handlers only. Returns 0; BR_EINVAL (no task name, or the request already ended); BR_EFULL past
 * BR_REPLY_MAX_JOBS; BR_ENOMEM.  A refused job does not end the request. */
int br_reply_add_job(br_req *req, const char *task, const void *payload, size_t payload_len,
                     const char *idempotency_key, uint32_t delay_ms);

/* ---------------------------------------------------------------------------------- */
/* Background jobs.  Valid from the task handler's call until the attempt ends.        */

/* The job's id (text, unique per gateway store), its task, and its attempt number (1
 * for the first run).  Delivery is at-least-once: a task may see the same job again
 * after a crash or an expired lease, so it should be idempotent by job id. */
br_str br_job_id(const br_jobctx *job);
br_str br_job_task(const br_jobctx *job);
uint32_t br_job_attempt(const br_jobctx *job);

/* The job's argument: one msgpack value (nil when the client sent no body), read with
 * br_value_parse (barista/value.h). */
br_str br_job_payload(const br_jobctx *job);

/* The worker's loop, for an I/O task's timers and thread-pool work. */
uv_loop_t *br_job_loop(const br_jobctx *job);

/* The service the task belongs to, and its data (br_svc_data of it). */
br_svc *br_job_svc(const br_jobctx *job);
void *br_job_data(const br_jobctx *job);

/* The verified caller who caused the job - the client of POST /jobs/{task}, or of the
 * request whose reply enqueued it - as one msgpack map (br_req_identity's shape:
 * `kind`, `sub`, `scopes`, `claims`), read with br_value_parse; empty when anonymous. */
br_str br_job_identity(const br_jobctx *job);

/* Reports how far the job got: `progress` in 0..1 (negative: none) and a short note
 * (NULL or "" for none; 255 bytes are kept).  GET /jobs/{id} shows both.  The lease is
 * renewed automatically while the handler runs; this call renews it too, at once from
 * an I/O task (which is how a long loop on the loop thread keeps its lease) or at the
 * worker's next tick from a CPU task's thread.  Returns 0, or BR_EINVAL when the
 * attempt ended or progress is past 1. */
int br_job_report(br_jobctx *job, double progress, const char *note);

/* True once the job was cancelled (DELETE /jobs/{id}) while it ran: the handler should
 * stop and end the attempt (br_job_fail; the job is then `cancelled`, whatever retry
 * says).  Safe from a CPU task's thread. */
bool br_job_cancelled(const br_jobctx *job);

/* I/O tasks: fn(job, arg) runs on the loop when a cancel arrives (at most once, and
 * not after the attempt ended).  NULL removes it. */
void br_job_on_cancel(br_jobctx *job, void (*fn)(br_jobctx *job, void *arg), void *arg);

/* Ends the attempt successfully with `result` (one msgpack value, copied - a
 * br_writer's bytes; NULL/0 for none).  The job is `succeeded`; the gateway shows the result as
 * JSON.  Returns 0, BR_EINVAL when the attempt already ended, BR_ELIMIT past BR_REPLY_BODY_MAX or
 * BR_ENOMEM (then the attempt ends as a retryable failure). */
int br_job_succeed(br_jobctx *job, const void *result, size_t len);

/* Ends the attempt as failed: `retry` asks for another attempt (after a backoff, up to
 * the gateway's attempt limit); otherwise the job is dead at once.  `error` (NULL for
 * none) is shown by GET /jobs/{id}.  Returns 0 or BR_EINVAL when already ended. */
int br_job_fail(br_jobctx *job, bool retry, const char *error);

/* ---------------------------------------------------------------------------------- */
/* Workflows from a handler or a task (docs/jobs.md, "Workflows").                     */

/* What became of a workflow asked for.  Strings are valid during the callback only. */
typedef struct br_workflow_result {
    uint16_t status;    /* 202: made and durable; 409 (a task's job is not running here
                           any more), 422 (a bad canvas, a task that does not exist), 503
                           (the queue's limits, the store); 502 when the connection to the
                           broker was lost before the answer */
    br_str workflow_id; /* on 202: its id, for GET /workflows/{id}; else empty */
    br_str detail;      /* why not; empty on 202 */
} br_workflow_result;

/* Called once, on the loop thread, with the answer. */
typedef void (*br_workflow_fn)(const br_workflow_result *res, void *arg);

/* Asks the gateway for a workflow - Celery's canvas: chain, group, chord - given as one
 * msgpack value (made with a br_writer) in the shape of POST /workflows's body:
 * {"task": name, "args": value}, {"chain": [steps]}, {"group": [steps]} or {"chord":
 * {"header": [steps], "body": step}}.  Its members may be of any task that exists, as
 * a reply's jobs may (not only public ones).  cb(res, arg) runs once the workflow is
 * durable (202, with its id) or was refused.  The canvas is copied.
 *
 * br_req_workflow_submit: from an I/O handler; the members belong to the request's
 * verified caller.  cb never runs when the request ends first (the workflow is made
 * anyway).  br_job_workflow_submit: from an I/O task (a job's follow-ups); the workflow
 * is linked to the job (GET /workflows/{id} shows it as parent_job) and its members
 * belong to the job's owner.  cb never runs when the attempt ends first.
 *
 * Returns 0 (cb will run, but see above); BR_EINVAL (no canvas or cb, a CPU handler or
 * task, the request or attempt already ended); BR_ELIMIT (over BR_REPLY_BODY_MAX);
 * BR_ECLOSED (no broker connection); BR_EVERSION (the gateway speaks a protocol older
 * than version 3, without workflows); BR_ENOMEM.  Then cb never runs. */
int br_req_workflow_submit(br_req *req, const void *canvas, size_t len, br_workflow_fn cb,
                           void *arg);
int br_job_workflow_submit(br_jobctx *job, const void *canvas, size_t len, br_workflow_fn cb,
                           void *arg);

/* ---------------------------------------------------------------------------------- */
/* Running a worker.                                                                   */

/* Defaults of br_worker_options. */
#define BR_WORKER_DEFAULT_CONNECT      "tcp://127.0.0.1:5555"
#define BR_WORKER_DEFAULT_CONCURRENCY  1024
#define BR_WORKER_MAX_CONCURRENCY      1000000
#define BR_WORKER_DEFAULT_HEARTBEAT_MS 1000
#define BR_WORKER_DEFAULT_DRAIN_MS     30000
#define BR_WORKER_DEFAULT_RESOLVE_MS   5000

/* How a worker connects and behaves.  Zero fields take the defaults above. */
typedef struct br_worker_options {
    const char *connect;          /* broker endpoints, comma-separated, e.g.
                                     "tcp://127.0.0.1:5555"; the worker registers with
                                     each and shares its capacity between them */
    const char *worker_id;        /* unique id; NULL: "host:pid" */
    uint32_t concurrency;         /* I/O: requests in flight at once (the credit); CPU: 1 */
    uint32_t heartbeat_ms;        /* heartbeat interval; the broker is dead after 3 silent */
    uint32_t drain_timeout_ms;    /* on stop, how long in-flight work may take */
    uint32_t stall_ms;            /* io: log a loop callback that runs longer (default 100) */
    const char *curve_server_key; /* the broker's CURVE public key, Z85 or "@FILE"; NULL:
                                     no CURVE */
    const char *curve_key_file;   /* with curve_server_key: our secret certificate
                                     (NAME_secret from barista-keygen, CZMQ's format) */
    bool handle_signals;          /* SIGTERM and SIGINT start the drain (br_worker_main
                                     sets it; an embedder opts in) */
    uint64_t max_requests;        /* recycle: drain and exit after serving this many
                                     requests and jobs (0: never) ... */
    uint64_t max_requests_jitter; /* ... plus a random 0..jitter, so that a pool does not
                                     recycle all at once */
    uint64_t max_rss_mb;          /* recycle when the resident set passes this (0: never) */
    bool prefer_first_broker;     /* with fewer slots than brokers, the first endpoint gets
                                     the slot while it lives (default: one picked by pid,
                                     so that a pool spreads over the brokers) */
    uint32_t resolve_ms;          /* a tcp:// endpoint whose host is a name is one broker
                                     per address it resolves to, resolved again this often
                                     (and when one falls silent) */
} br_worker_options;

typedef struct br_worker br_worker;

/* Checks that `services` can share one process: at least one, all of one kind, unique
 * names, no method+path served twice.  Returns 0, or BR_EINVAL with a one-line reason
 * in why[0..why_len) (NUL-terminated). */
int br_services_check(const br_service_spec *const *services, size_t n, char *why, size_t why_len);

/* Creates a worker hosting services[0..n) (the array is copied; the specs are not and
 * must outlive the worker).  Service options take their environment variable or their
 * default; br_worker_set_option overrides them.  Returns NULL when br_services_check
 * fails, the CURVE keys cannot be read (the reason is logged) or memory runs out.
 * Caller owns the result. */
br_worker *br_worker_new(const br_service_spec *const *services, size_t n,
                         const br_worker_options *options);

/* Sets a service option (see br_option_spec) before br_worker_run; the value is
 * checked and copied.  0, BR_ENOTFOUND (no hosted service declares it) or BR_EVALUE
 * (with the reason in why, when why is not NULL). */
int br_worker_set_option(br_worker *self, const char *name, const char *value, char *why,
                         size_t why_len);

/* Runs the worker on its own loop: every service's init, then READY, requests and jobs
 * until a stop (br_worker_stop, a signal with handle_signals, or recycling), then the
 * drain - GOODBYE, in-flight work finishes (what still runs at the drain timeout is
 * cancelled) - every fini, and everything closed.  Returns 0 after a clean drain,
 * BR_EINVAL when a service's init failed (logged with its reason), or another negative
 * br_err. */
int br_worker_run(br_worker *self);

/* Starts the drain, as SIGTERM does.  Safe from any thread (not from a signal handler:
 * use handle_signals, or a uv_signal_t on the worker's loop), from br_worker_new until
 * br_worker_destroy; a stop before br_worker_run makes run drain at once. */
void br_worker_stop(br_worker *self);

/* Destroys *self_p and sets it to NULL; safe on NULL and twice.  Not while running. */
void br_worker_destroy(br_worker **self_p);

/* The whole worker program: parses the worker options from argv and the environment
 * (--connect, --services, --concurrency, --nice, --sched, --drain-timeout-ms, CURVE
 * keys, recycling, ...; `--help` lists them) plus every option the services declare,
 * prints --help or --list when asked, then runs the chosen services (--services, or
 * all of them when they are of one kind) with signal handling on, and returns the
 * process's exit status: 0 after a clean drain; 2 after a one-line reason on stderr for
 * a bad option or value, an unknown service, or services that cannot share a process;
 * 1 when a service's init failed or the worker could not run.  `services` is every
 * service the program can host.  Typical use:
 *
 *     int main(int argc, char **argv)
 *     {
 *         return br_worker_main(argc, argv, services, BR_NELEMS(services));
 *     }
 */
int br_worker_main(int argc, char **argv, const br_service_spec *const *services, size_t n);

/* ---------------------------------------------------------------------------------- */
/* WebSockets (routes declared with br_route_spec.websocket).                          */

/* Messages a connection may have queued at the worker beyond what the gateway has
 * granted (WS_CREDIT, 16 at first); br_ws_send refuses past it with BR_EFULL. */
#define BR_WS_QUEUE_MAX 256

/* The connection's id (unique within its gateway run), its service and the service's
 * data. */
uint64_t br_ws_id(const br_ws *ws);
br_svc *br_ws_svc(const br_ws *ws);
void *br_ws_data(const br_ws *ws);

/* What the opening request carried: a path parameter, a query parameter, a header
 * (lower-case name), the subprotocol chosen ("" for none), the verified caller (as
 * br_req_identity) and the path.  0, or BR_ENOTFOUND. */
int br_ws_param(const br_ws *ws, const char *name, br_str *out);
int br_ws_query(const br_ws *ws, const char *name, br_str *out);
int br_ws_header(const br_ws *ws, const char *name, br_str *out);
br_str br_ws_subprotocol(const br_ws *ws);
br_str br_ws_identity(const br_ws *ws);
br_str br_ws_path(const br_ws *ws);

/* The handler's own pointer for the connection (NULL at first). */
void br_ws_set_state(br_ws *ws, void *state);
void *br_ws_state(const br_ws *ws);

/* Sends one whole message to the client: text must be UTF-8.  0; BR_EFULL when
 * BR_WS_QUEUE_MAX messages already wait for the gateway's credit (a slow client);
 * BR_ECLOSED after a close; BR_ENOMEM. */
int br_ws_send_text(br_ws *ws, const char *text, size_t len);
int br_ws_send_binary(br_ws *ws, const void *data, size_t len);

/* Closes the connection with code (1000..4999) and reason (UTF-8, cut at 123 bytes);
 * on_close is not called for it.  0 or BR_ECLOSED (closed already). */
int br_ws_close(br_ws *ws, uint16_t code, const char *reason);

/* Puts the connection in a named group (at most 8 per connection, names of at most 64
 * bytes), or takes it out.  0, BR_EINVAL or BR_ECLOSED. */
int br_ws_join(br_ws *ws, const char *group);
int br_ws_leave(br_ws *ws, const char *group);

/* Sends a message to every connection in `group` of this service, on every worker of
 * the service (the gateway delivers it), except `except` when it is not NULL.  0,
 * BR_EINVAL or a send error. */
int br_ws_broadcast(br_svc *svc, const char *group, bool binary, const void *data, size_t len,
                    const br_ws *except);

#ifdef __cplusplus
}
#endif

/* Calls, gather, the async HTTP client and thread-pool offload. */
#include "barista/async.h"
/* Streamed responses and Server-Sent Events. */
#include "barista/stream.h"

#endif /* BARISTA_WORKER_H */
