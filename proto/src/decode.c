/*
 * decode.c - msgpack bytes to br_msg, with every count and length checked first.
 *
 * Each record on the wire (a message, a pair, a service, a route, a parameter, a job
 * spec) is a msgpack array whose first elements are the fields this version knows;
 * further elements are skipped, which is how newer peers add fields.  Lists are sized
 * against both their limit and the bytes left (each element has a smallest possible
 * encoding) before any scratch memory is taken for them.  After the fields are read,
 * the same range rules the encoder applies (validate.c) decide whether the values are
 * acceptable.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* The decoder's first scratch block: enough for a REQUEST with a few dozen headers. */
#define BR_DECODER_SCRATCH_INITIAL 4096

struct br_decoder {
    br_limits limits;    /* bounds every decode enforces */
    br__scratch scratch; /* arrays of the last decoded message */
};

/* The state of one decode. */
typedef struct dec {
    br_cursor cur;        /* position in the input */
    const br_limits *lim; /* the decoder's limits */
    br__scratch *scratch; /* where lists go */
} dec;

#define TRY(expr)                                                                                  \
    do {                                                                                           \
        int try_rc_ = (expr);                                                                      \
        if (try_rc_ < 0)                                                                           \
            return try_rc_;                                                                        \
    } while (0)

br_decoder *br_decoder_new(const br_limits *limits)
{
    const br_limits *l = limits ? limits : &br_limits_default;
    if (!l->max_message || !l->max_string || !l->max_body || !l->max_pairs || !l->max_services ||
        !l->max_routes || !l->max_params || !l->max_tasks || !l->max_jobs)
        return NULL;
    br_decoder *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->limits = *l;
    if (br__scratch_init(&self->scratch, BR_DECODER_SCRATCH_INITIAL) < 0) {
        free(self);
        return NULL;
    }
    return self;
}

void br_decoder_destroy(br_decoder **self_p)
{
    if (!self_p || !*self_p)
        return;
    br__scratch_free(&(*self_p)->scratch);
    free(*self_p);
    *self_p = NULL;
}

/* Opens a record that must hold at least `need` fields; *extra is how many more it has
 * (to skip with close_record once the known fields are read). */
static int open_record(dec *d, uint32_t need, uint32_t *extra)
{
    uint32_t n;
    TRY(br_cursor_array(&d->cur, &n));
    if (n < need)
        return BR_ETRUNC;
    *extra = n - need;
    return 0;
}

static int close_record(dec *d, uint32_t extra)
{
    return br__cursor_skip_n(&d->cur, extra);
}

/* Opens a list of at most `limit` elements and reserves `elem_size` bytes of scratch
 * per element (*out stays NULL when empty).  Every element takes at least one byte, so
 * a count beyond the bytes left is refused before any memory is reserved for it. */
static int open_list(dec *d, uint32_t limit, size_t elem_size, void **out, uint32_t *n)
{
    TRY(br_cursor_array(&d->cur, n));
    if (*n > limit)
        return BR_ELIMIT;
    if ((size_t)*n > br_cursor_left(&d->cur))
        return BR_ETRUNC;
    *out = NULL;
    if (*n == 0)
        return 0;
    *out = br__scratch_alloc(d->scratch, (size_t)*n * elem_size);
    return *out ? 0 : BR_ENOMEM;
}

static int get_uint(dec *d, uint64_t max, uint64_t *v)
{
    TRY(br_cursor_uint(&d->cur, v));
    return *v <= max ? 0 : BR_EVALUE;
}

static int get_u32(dec *d, uint32_t *v)
{
    uint64_t x;
    TRY(get_uint(d, UINT32_MAX, &x));
    *v = (uint32_t)x;
    return 0;
}

static int get_u8(dec *d, uint8_t *v)
{
    uint64_t x;
    TRY(get_uint(d, UINT8_MAX, &x));
    *v = (uint8_t)x;
    return 0;
}

static int get_text(dec *d, br_str *s)
{
    return br_cursor_str(&d->cur, s, d->lim->max_string);
}

static int get_bytes(dec *d, br_str *s)
{
    return br_cursor_bytes(&d->cur, s, d->lim->max_body);
}

/* A parameter bound: nil for none, else a number. */
static int get_bound(dec *d, bool *has, double *v)
{
    int rc = br_cursor_nil(&d->cur);
    *has = rc == BR_ETYPE;
    if (!*has)
        return rc;
    return br_cursor_double(&d->cur, v);
}

static int get_pairs(dec *d, br_pair **out, uint32_t *n)
{
    void *mem;
    TRY(open_list(d, d->lim->max_pairs, sizeof **out, &mem, n));
    *out = mem;
    for (uint32_t i = 0; i < *n; i++) {
        uint32_t extra;
        TRY(open_record(d, 2, &extra));
        TRY(get_text(d, &(*out)[i].name));
        TRY(get_text(d, &(*out)[i].value));
        TRY(close_record(d, extra));
    }
    return 0;
}

/* An optional bool field: nil reads as false. */
static int get_opt_bool(dec *d, bool *v)
{
    *v = false;
    int rc = br_cursor_nil(&d->cur);
    return rc == BR_ETYPE ? br_cursor_bool(&d->cur, v) : rc;
}

/* An optional text field: nil reads as empty. */
static int get_opt_text(dec *d, br_str *s)
{
    *s = (br_str){0};
    int rc = br_cursor_nil(&d->cur);
    return rc == BR_ETYPE ? get_text(d, s) : rc;
}

/* An optional unsigned field: nil reads as 0. */
static int get_opt_u64(dec *d, uint64_t *v)
{
    *v = 0;
    int rc = br_cursor_nil(&d->cur);
    return rc == BR_ETYPE ? get_uint(d, UINT64_MAX, v) : rc;
}

/* A schema field: nil for none, else one msgpack map kept as its bytes (the gateway
 * compiles it), at most BR_SCHEMA_MAX_BYTES long and BR_SCHEMA_WIRE_DEPTH deep. */
static int get_schema(dec *d, br_str *s)
{
    *s = (br_str){0};
    int rc = br_cursor_nil(&d->cur);
    if (rc != BR_ETYPE)
        return rc;
    if (br_cursor_peek(&d->cur) != BR_MP_MAP)
        return BR_ETYPE;
    const uint8_t *start = d->cur.p;
    TRY(br_cursor_skip(&d->cur, BR_SCHEMA_WIRE_DEPTH));
    size_t len = (size_t)(d->cur.p - start);
    if (len > BR_SCHEMA_MAX_BYTES)
        return BR_ELIMIT;
    *s = (br_str){(const char *)start, (uint32_t)len};
    return 0;
}

/* Reads an optional trailing field of a record when the record has one more element
 * than the fields read so far (PROTOCOL.md 3.2: newer fields are optional). */
#define OPTIONAL_FIELD(d, extra, expr)                                                             \
    do {                                                                                           \
        if ((extra) > 0) {                                                                         \
            TRY(expr);                                                                             \
            (extra)--;                                                                             \
        }                                                                                          \
    } while (0)

static int get_response(dec *d, br_response *r)
{
    uint32_t extra;
    uint64_t status;
    TRY(open_record(d, 3, &extra));
    TRY(get_uint(d, UINT16_MAX, &status));
    r->status = (uint16_t)status;
    TRY(get_text(d, &r->description));
    TRY(get_schema(d, &r->schema));
    return close_record(d, extra);
}

static int get_param(dec *d, br_param *p)
{
    uint32_t extra;
    TRY(open_record(d, 7, &extra));
    TRY(get_text(d, &p->name));
    TRY(get_u8(d, &p->in));
    TRY(get_u8(d, &p->type));
    TRY(br_cursor_bool(&d->cur, &p->required));
    TRY(get_bound(d, &p->has_min, &p->min));
    TRY(get_bound(d, &p->has_max, &p->max));
    TRY(get_text(d, &p->summary));
    OPTIONAL_FIELD(d, extra, get_schema(d, &p->schema));
    OPTIONAL_FIELD(d, extra, get_text(d, &p->alias));
    return close_record(d, extra);
}

static int get_route(dec *d, br_route *r)
{
    uint32_t extra;
    void *mem;
    TRY(open_record(d, 6, &extra));
    TRY(get_text(d, &r->method));
    TRY(get_text(d, &r->path));
    TRY(get_u32(d, &r->timeout_ms));
    TRY(get_u8(d, &r->body));
    TRY(get_text(d, &r->summary));
    TRY(open_list(d, d->lim->max_params, sizeof *r->params, &mem, &r->nparams));
    r->params = mem;
    for (uint32_t i = 0; i < r->nparams; i++)
        TRY(get_param(d, &r->params[i]));
    /* Optional fields, in order, as far as the peer sent them. */
    if (extra > 0) {
        TRY(get_u8(d, &r->auth));
        extra--;
    }
    if (extra > 0) {
        TRY(get_text(d, &r->scopes));
        extra--;
    }
    if (extra > 0) {
        TRY(br_cursor_bool(&d->cur, &r->forward_token));
        extra--;
    }
    OPTIONAL_FIELD(d, extra, get_schema(d, &r->body_schema));
    if (extra > 0) {
        TRY(open_list(d, BR_MAX_RESPONSES, sizeof *r->responses, &mem, &r->nresponses));
        r->responses = mem;
        for (uint32_t i = 0; i < r->nresponses; i++)
            TRY(get_response(d, &r->responses[i]));
        extra--;
    }
    OPTIONAL_FIELD(d, extra, br_cursor_bool(&d->cur, &r->body_form));
    /* 12-13: streamed request bodies; nil is "absent" (a sender that needs later fields). */
    OPTIONAL_FIELD(d, extra, get_opt_bool(d, &r->stream_body));
    OPTIONAL_FIELD(d, extra, get_opt_u64(d, &r->body_max));
    /* 14-15: WebSocket routes; nil is "absent" (a sender that needs later fields). */
    OPTIONAL_FIELD(d, extra, get_opt_bool(d, &r->websocket));
    OPTIONAL_FIELD(d, extra, get_opt_text(d, &r->subprotocols));
    /* 16-17: keyed actor routes. */
    OPTIONAL_FIELD(d, extra, get_text(d, &r->actor_type));
    if (extra > 0) {
        uint32_t more;
        TRY(open_record(d, 3, &more));
        TRY(get_text(d, &r->actor_key));
        TRY(get_u32(d, &r->actor_idle_ms));
        TRY(br_cursor_bool(&d->cur, &r->actor_reentrant));
        TRY(close_record(d, more));
        extra--;
    }
    return close_record(d, extra);
}

/* A service's CORS field: nil for none (the gateway's policy), else a record of six
 * fields; the texts are bounded by BR_CORS_TEXT_MAX before validate.c reads them. */
static int get_cors(dec *d, br_service *s)
{
    int rc = br_cursor_nil(&d->cur);
    if (rc != BR_ETYPE)
        return rc;
    uint32_t extra;
    br_cors *c = &s->cors;
    uint32_t max = d->lim->max_string < BR_CORS_TEXT_MAX ? d->lim->max_string : BR_CORS_TEXT_MAX;
    TRY(open_record(d, 6, &extra));
    TRY(br_cursor_str(&d->cur, &c->origins, max));
    TRY(br_cursor_str(&d->cur, &c->methods, max));
    TRY(br_cursor_str(&d->cur, &c->headers, max));
    TRY(br_cursor_str(&d->cur, &c->expose, max));
    TRY(br_cursor_bool(&d->cur, &c->credentials));
    TRY(get_u32(d, &c->max_age_s));
    s->has_cors = true;
    return close_record(d, extra);
}

static int get_service(dec *d, br_service *s)
{
    uint32_t extra;
    void *mem;
    TRY(open_record(d, 3, &extra));
    TRY(get_text(d, &s->name));
    TRY(get_u8(d, &s->kind));
    TRY(open_list(d, d->lim->max_routes, sizeof *s->routes, &mem, &s->nroutes));
    s->routes = mem;
    for (uint32_t i = 0; i < s->nroutes; i++)
        TRY(get_route(d, &s->routes[i]));
    OPTIONAL_FIELD(d, extra, get_cors(d, s));
    return close_record(d, extra);
}

/* extra: fields on the wire after the six READY requires; the first is public_tasks,
 * the second schedules, the third features. */
static int get_ready(dec *d, br_ready *m, uint32_t extra)
{
    void *mem;
    TRY(get_text(d, &m->worker_id));
    TRY(get_u8(d, &m->kind));
    TRY(get_u32(d, &m->capacity));
    TRY(get_u32(d, &m->heartbeat_ms));
    TRY(open_list(d, d->lim->max_services, sizeof *m->services, &mem, &m->nservices));
    m->services = mem;
    for (uint32_t i = 0; i < m->nservices; i++)
        TRY(get_service(d, &m->services[i]));
    TRY(open_list(d, d->lim->max_tasks, sizeof *m->tasks, &mem, &m->ntasks));
    m->tasks = mem;
    for (uint32_t i = 0; i < m->ntasks; i++)
        TRY(get_text(d, &m->tasks[i]));
    if (extra == 0)
        return 0; /* an older worker: every task internal */
    TRY(open_list(d, d->lim->max_tasks, sizeof *m->public_tasks, &mem, &m->npublic_tasks));
    m->public_tasks = mem;
    for (uint32_t i = 0; i < m->npublic_tasks; i++)
        TRY(get_text(d, &m->public_tasks[i]));
    if (extra == 1)
        return 0; /* no schedules declared */
    TRY(open_list(d, d->lim->max_tasks, sizeof *m->schedules, &mem, &m->nschedules));
    m->schedules = mem;
    for (uint32_t i = 0; i < m->nschedules; i++) {
        br_schedule_decl *s = &m->schedules[i];
        uint32_t more;
        TRY(open_record(d, 6, &more));
        TRY(get_text(d, &s->name));
        TRY(get_text(d, &s->task));
        TRY(get_bytes(d, &s->payload));
        TRY(get_uint(d, UINT64_MAX, &s->interval_ms));
        TRY(get_text(d, &s->cron));
        TRY(get_u32(d, &s->catch_up));
        TRY(close_record(d, more));
    }
    if (extra == 2)
        return 0; /* no optional messages read */
    return get_u32(d, &m->features);
}

static int get_request(dec *d, br_request *m)
{
    TRY(br_cursor_uint(&d->cur, &m->id));
    TRY(get_text(d, &m->service));
    TRY(get_text(d, &m->route));
    TRY(get_text(d, &m->method));
    TRY(get_text(d, &m->path));
    TRY(get_pairs(d, &m->params, &m->nparams));
    TRY(get_pairs(d, &m->query, &m->nquery));
    TRY(get_pairs(d, &m->headers, &m->nheaders));
    TRY(get_text(d, &m->content_type));
    TRY(get_bytes(d, &m->body));
    TRY(get_u32(d, &m->deadline_ms));
    return get_text(d, &m->trace);
}

/* The optional trailing fields of a REQUEST or CALL, as many as `extra` allows.
 * Returns how many were read, or a negative br_err. */
static int get_request_optional(dec *d, br_request *m, uint32_t extra)
{
    if (extra < 1)
        return 0;
    TRY(get_text(d, &m->request_id));
    if (extra < 2)
        return 1;
    TRY(get_bytes(d, &m->identity));
    if (extra < 3)
        return 2;
    TRY(get_pairs(d, &m->cookies, &m->ncookies));
    if (extra < 4)
        return 3;
    /* 17: nil, or [actor_type, actor_key] (later elements ignored). */
    int rc = br_cursor_nil(&d->cur);
    if (rc == BR_ETYPE) {
        uint32_t more;
        TRY(open_record(d, 2, &more));
        TRY(get_text(d, &m->actor_type));
        TRY(get_text(d, &m->actor_key));
        TRY(close_record(d, more));
    } else {
        TRY(rc);
    }
    if (extra < 5)
        return 4;
    /* 18: nil, or [tick_kind, tick_name]. */
    rc = br_cursor_nil(&d->cur);
    if (rc == BR_ETYPE) {
        uint32_t more;
        TRY(open_record(d, 2, &more));
        TRY(get_u8(d, &m->tick_kind));
        TRY(get_text(d, &m->tick_name));
        TRY(close_record(d, more));
    } else {
        TRY(rc);
    }
    if (extra < 6)
        return 5;
    /* 19 (CALL): the caller's first grant of a streamed answer; 0: one REPLY. */
    TRY(get_u32(d, &m->stream_window));
    return 6;
}

static int get_reply(dec *d, br_reply *m)
{
    uint64_t status;
    void *mem;
    TRY(br_cursor_uint(&d->cur, &m->id));
    TRY(get_uint(d, UINT16_MAX, &status));
    m->status = (uint16_t)status;
    TRY(get_pairs(d, &m->headers, &m->nheaders));
    TRY(get_text(d, &m->content_type));
    TRY(get_bytes(d, &m->body));
    TRY(open_list(d, d->lim->max_jobs, sizeof *m->jobs, &mem, &m->njobs));
    m->jobs = mem;
    for (uint32_t i = 0; i < m->njobs; i++) {
        br_job_spec *j = &m->jobs[i];
        uint32_t extra;
        TRY(open_record(d, 4, &extra));
        TRY(get_text(d, &j->task));
        TRY(get_bytes(d, &j->payload));
        TRY(get_text(d, &j->idempotency_key));
        TRY(get_u32(d, &j->delay_ms));
        TRY(close_record(d, extra));
    }
    return 0;
}

/* TASK_POLICY's list: one record per task, each with 8 fields (more are ignored). */
static int get_task_policies(dec *d, br_task_policies *m)
{
    void *mem;
    TRY(open_list(d, d->lim->max_tasks, sizeof *m->policies, &mem, &m->npolicies));
    m->policies = mem;
    for (uint32_t i = 0; i < m->npolicies; i++) {
        br_task_policy *p = &m->policies[i];
        uint32_t extra;
        uint64_t prio;
        bool has_rate;
        TRY(open_record(d, 9, &extra));
        TRY(get_text(d, &p->task));
        TRY(get_u32(d, &p->max_attempts));
        TRY(get_u32(d, &p->backoff_ms));
        TRY(get_u32(d, &p->backoff_cap_ms));
        TRY(get_u32(d, &p->lease_ms));
        TRY(get_u32(d, &p->queue_limit));
        TRY(get_u32(d, &p->timeout_ms));
        TRY(get_uint(d, 255, &prio));
        p->priority = (int32_t)prio;
        TRY(get_bound(d, &has_rate, &p->rate));
        if (!has_rate)
            p->rate = 0;
        TRY(close_record(d, extra));
    }
    return 0;
}

/* The fields of a message of a known type, in PROTOCOL.md's order.  extra: elements
 * after the ones the type requires; a type with optional trailing fields reads them
 * and lowers *extra by as many. */
static int get_fields(dec *d, br_msg *m, uint32_t *extra)
{
    switch (m->type) {
    case BR_MSG_READY: {
        uint32_t known = *extra < 3 ? *extra : 3;
        *extra -= known;
        return get_ready(d, &m->u.ready, known);
    }
    case BR_MSG_WELCOME:
        TRY(get_text(d, &m->u.welcome.broker_id));
        TRY(get_u32(d, &m->u.welcome.heartbeat_ms));
        if (*extra == 0)
            return 0; /* a broker that confirms no optional messages */
        (*extra)--;
        return get_u32(d, &m->u.welcome.features);
    case BR_MSG_REQUEST:
    case BR_MSG_CALL: {
        TRY(get_request(d, &m->u.request));
        int got = get_request_optional(d, &m->u.request, *extra);
        TRY(got);
        *extra -= (uint32_t)got;
        return 0;
    }
    case BR_MSG_REPLY:
        return get_reply(d, &m->u.reply);
    case BR_MSG_ACTOR_REQUEST: {
        br_actor_request *a = &m->u.actor_request;
        TRY(get_text(d, &a->actor_type));
        TRY(get_text(d, &a->key));
        TRY(br_cursor_uint(&d->cur, &a->epoch));
        TRY(br_cursor_bool(&d->cur, &a->activate));
        TRY(get_bytes(d, &a->state));
        TRY(get_request(d, &a->req));
        int got = get_request_optional(d, &a->req, *extra);
        TRY(got);
        *extra -= (uint32_t)got;
        return 0;
    }
    case BR_MSG_ACTOR_REPLY:
        TRY(br_cursor_uint(&d->cur, &m->u.actor_reply.epoch));
        TRY(get_u8(d, &m->u.actor_reply.op));
        TRY(get_bytes(d, &m->u.actor_reply.state));
        return get_reply(d, &m->u.actor_reply.reply);
    case BR_MSG_DEACTIVATE:
        TRY(get_text(d, &m->u.deactivate.actor_type));
        TRY(get_text(d, &m->u.deactivate.key));
        return br_cursor_uint(&d->cur, &m->u.deactivate.epoch);
    case BR_MSG_ACTOR_TIMER: {
        br_actor_timer *t = &m->u.actor_timer;
        TRY(get_text(d, &t->actor_type));
        TRY(get_text(d, &t->key));
        TRY(br_cursor_uint(&d->cur, &t->epoch));
        TRY(get_text(d, &t->name));
        TRY(br_cursor_bool(&d->cur, &t->start));
        TRY(br_cursor_bool(&d->cur, &t->durable));
        TRY(br_cursor_uint(&d->cur, &t->due_ms));
        return br_cursor_uint(&d->cur, &t->period_ms);
    }
    case BR_MSG_CREDIT:
        return get_u32(d, &m->u.credit.credit);
    case BR_MSG_CANCEL:
        return br_cursor_uint(&d->cur, &m->u.cancel.id);
    case BR_MSG_GOODBYE:
        return get_text(d, &m->u.goodbye.reason);
    case BR_MSG_JOB:
        TRY(get_text(d, &m->u.job.job_id));
        TRY(get_text(d, &m->u.job.task));
        TRY(get_bytes(d, &m->u.job.payload));
        TRY(get_u32(d, &m->u.job.attempt));
        TRY(get_u32(d, &m->u.job.lease_ms));
        if (*extra == 0)
            return 0; /* an older broker: no identity */
        (*extra)--;
        return get_bytes(d, &m->u.job.identity);
    case BR_MSG_JOB_ACK:
        return get_text(d, &m->u.job_ack.job_id);
    case BR_MSG_JOB_RESULT:
        TRY(get_text(d, &m->u.job_result.job_id));
        TRY(get_u8(d, &m->u.job_result.outcome));
        TRY(get_bytes(d, &m->u.job_result.result));
        return get_text(d, &m->u.job_result.error);
    case BR_MSG_JOB_PROGRESS:
        TRY(get_text(d, &m->u.job_progress.job_id));
        TRY(get_bound(d, &m->u.job_progress.has_progress, &m->u.job_progress.progress));
        return get_text(d, &m->u.job_progress.note);
    case BR_MSG_JOB_CANCEL:
        return get_text(d, &m->u.job_cancel.job_id);
    case BR_MSG_JOB_HANDOFF:
        TRY(get_text(d, &m->u.job_handoff.job_id));
        TRY(get_u32(d, &m->u.job_handoff.attempt));
        TRY(br_cursor_bool(&d->cur, &m->u.job_handoff.ended));
        TRY(get_u8(d, &m->u.job_handoff.outcome));
        TRY(get_bytes(d, &m->u.job_handoff.result));
        return get_text(d, &m->u.job_handoff.error);
    case BR_MSG_TASK_POLICY:
        return get_task_policies(d, &m->u.task_policy);
    case BR_MSG_WORKFLOW:
        TRY(br_cursor_uint(&d->cur, &m->u.workflow.id));
        TRY(get_bytes(d, &m->u.workflow.canvas));
        TRY(get_text(d, &m->u.workflow.parent_job));
        return get_bytes(d, &m->u.workflow.identity);
    case BR_MSG_WORKFLOW_REPLY: {
        uint64_t status;
        TRY(br_cursor_uint(&d->cur, &m->u.workflow_reply.id));
        TRY(get_uint(d, UINT16_MAX, &status));
        m->u.workflow_reply.status = (uint16_t)status;
        TRY(get_text(d, &m->u.workflow_reply.workflow_id));
        return get_text(d, &m->u.workflow_reply.detail);
    }
    case BR_MSG_WS_OPEN: {
        br_msg_ws_open *o = &m->u.ws_open;
        TRY(br_cursor_uint(&d->cur, &o->conn));
        TRY(get_text(d, &o->service));
        TRY(get_text(d, &o->route));
        TRY(get_text(d, &o->path));
        TRY(get_pairs(d, &o->params, &o->nparams));
        TRY(get_pairs(d, &o->query, &o->nquery));
        TRY(get_pairs(d, &o->headers, &o->nheaders));
        TRY(get_text(d, &o->subprotocol));
        TRY(get_bytes(d, &o->identity));
        return get_text(d, &o->request_id);
    }
    case BR_MSG_WS_MESSAGE:
        TRY(br_cursor_uint(&d->cur, &m->u.ws_message.conn));
        TRY(br_cursor_bool(&d->cur, &m->u.ws_message.binary));
        return get_bytes(d, &m->u.ws_message.data);
    case BR_MSG_WS_CLOSE: {
        uint64_t code;
        TRY(br_cursor_uint(&d->cur, &m->u.ws_close.conn));
        TRY(get_uint(d, UINT16_MAX, &code));
        m->u.ws_close.code = (uint16_t)code;
        return get_text(d, &m->u.ws_close.reason);
    }
    case BR_MSG_WS_CREDIT:
        TRY(br_cursor_uint(&d->cur, &m->u.ws_credit.conn));
        return get_u32(d, &m->u.ws_credit.credit);
    case BR_MSG_WS_GROUP:
        TRY(get_u8(d, &m->u.ws_group.op));
        TRY(get_text(d, &m->u.ws_group.group));
        TRY(br_cursor_uint(&d->cur, &m->u.ws_group.conn));
        TRY(br_cursor_bool(&d->cur, &m->u.ws_group.binary));
        return get_bytes(d, &m->u.ws_group.data);
    case BR_MSG_WS_BATCH:
        return get_bytes(d, &m->u.ws_batch.messages);
    case BR_MSG_STREAM_START:
    case BR_MSG_CALL_STREAM_START: {
        uint64_t status;
        TRY(br_cursor_uint(&d->cur, &m->u.stream_start.id));
        TRY(get_uint(d, UINT16_MAX, &status));
        m->u.stream_start.status = (uint16_t)status;
        TRY(get_pairs(d, &m->u.stream_start.headers, &m->u.stream_start.nheaders));
        return get_text(d, &m->u.stream_start.content_type);
    }
    case BR_MSG_STREAM_CHUNK:
    case BR_MSG_CALL_STREAM_CHUNK:
        TRY(br_cursor_uint(&d->cur, &m->u.stream_chunk.id));
        return get_bytes(d, &m->u.stream_chunk.data);
    case BR_MSG_STREAM_END:
    case BR_MSG_CALL_STREAM_END:
        TRY(br_cursor_uint(&d->cur, &m->u.stream_end.id));
        return get_text(d, &m->u.stream_end.error);
    case BR_MSG_STREAM_WINDOW:
    case BR_MSG_CALL_STREAM_WINDOW:
        TRY(br_cursor_uint(&d->cur, &m->u.stream_window.id));
        return get_u32(d, &m->u.stream_window.bytes);
    default:
        return 0; /* HEARTBEAT: no fields */
    }
}

/* Reads the top-level array header, the version and the type. */
static int get_head(br_cursor *c, uint32_t *n, uint64_t *version, uint64_t *type)
{
    TRY(br_cursor_array(c, n));
    if (*n < 2)
        return BR_ETRUNC;
    TRY(br_cursor_uint(c, version));
    return br_cursor_uint(c, type);
}

static int decode(dec *d, br_msg *out)
{
    uint32_t n;
    uint64_t version, type;
    TRY(get_head(&d->cur, &n, &version, &type));
    if (version < BR_PROTO_VERSION_MIN || version > BR_PROTO_VERSION)
        return BR_EVERSION;
    if (type > UINT_MAX || !br_msg_type_in_version((unsigned)type, (unsigned)version))
        return BR_EMSGTYPE;
    out->type = (uint8_t)type;
    out->version = (uint8_t)version;
    uint32_t nfields = br__msg_nfields(out->type);
    if (n - 2 < nfields)
        return BR_ETRUNC;
    uint32_t extra = n - 2 - nfields;
    TRY(get_fields(d, out, &extra));
    TRY(br__cursor_skip_n(&d->cur, extra));
    if (br_cursor_left(&d->cur) != 0)
        return BR_ETRAILING;
    return br__msg_validate(out) == 0 ? 0 : BR_EVALUE;
}

int br_decoder_decode(br_decoder *self, const void *buf, size_t len, br_msg *out)
{
    if (!out)
        return BR_EINVAL;
    memset(out, 0, sizeof *out);
    if (!self || (!buf && len))
        return BR_EINVAL;
    if (len > self->limits.max_message)
        return BR_ELIMIT;
    if (len == 0)
        return BR_ETRUNC;
    br__scratch_reset(&self->scratch);
    dec d = {{buf, (const uint8_t *)buf + len}, &self->limits, &self->scratch};
    int rc = decode(&d, out);
    if (rc < 0)
        memset(out, 0, sizeof *out);
    return rc;
}

int br_msg_peek(const void *buf, size_t len, unsigned *version, unsigned *type)
{
    if (len == 0)
        return BR_ETRUNC;
    if (!buf)
        return BR_EINVAL;
    br_cursor c = {buf, (const uint8_t *)buf + len};
    uint32_t n;
    uint64_t v, t;
    TRY(get_head(&c, &n, &v, &t));
    if (v > UINT_MAX || t > UINT_MAX)
        return BR_EVALUE;
    if (version)
        *version = (unsigned)v;
    if (type)
        *type = (unsigned)t;
    return 0;
}
