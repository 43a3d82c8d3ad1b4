/*
 * jobs_api.c - the jobs' HTTP face, and jobs enqueued by a handler's reply.
 *
 *   POST /jobs/{task}   JSON body (the task's argument; empty means null), optional
 *                       Idempotency-Key header (one job per key and task) and
 *                       ?delay_ms=N.  202 {"job_id":ID,"status_url":"/jobs/ID"} once
 *                       the job is durable; 404 for a task that does not exist or is
 *                       not public (the two look the same); 400 for a malformed query
 *                       string and 422 for a bad delay (params.c, as for a worker's
 *                       routes) or a body that is not JSON; 503 + Retry-After when a
 *                       limit is reached or the store fails.
 *   GET /jobs/{id}      {"id","task","status","attempts","result"} (+ "error" after a
 *                       failure); 404 for an unknown or expired id.  A result memory
 *                       does not keep is read from the store first.
 *
 * A client that leaves before its job is durable does not cancel the job: it was
 * accepted, only the answer is lost (an Idempotency-Key finds it again).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobs_int.h"
#include "json.h"
#include "params.h"

/* An HTTP client waiting for its job to be durable. */
typedef struct http_waiter {
    gw_job_waiter base; /* in the job's waiters */
    gw_req *req;        /* the client; NULL once it left */
} http_waiter;

static void respond_json(gw_req *req, int status, const br_buf *body)
{
    gw_req_respond(req, status, NULL, 0, "application/json", body->data, body->len);
}

/* The id in a GET's path if it can be one: 1 to GW_JOB_ID_MAX lowercase hex digits
 * (a decimal id from before random ids is one too).  Empty otherwise. */
static br_str path_id(const char *s, size_t len)
{
    if (len == 0 || len > GW_JOB_ID_MAX)
        return (br_str){NULL, 0};
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return (br_str){NULL, 0};
    return (br_str){s, (uint32_t)len};
}

/* POST /jobs/{task}'s query parameter, validated by params.c as a worker's declared
 * parameters are. */
#define DELAY_PARAM "delay_ms"
static const br_param post_params[] = {
    {.name = {DELAY_PARAM, sizeof(DELAY_PARAM) - 1},
     .in = BR_IN_QUERY,
     .type = BR_TYPE_INT,
     .has_min = true,
     .min = 0,
     .has_max = true,
     .max = GW_JOBS_DELAY_MAX_MS},
};

/* Reads POST /jobs' query string into *delay_ms (0 when absent).  0, or the client was
 * answered: 400 for a malformed query, 422 for a bad delay, 503 out of memory. */
static int post_query(gw_req *req, uint32_t *delay_ms)
{
    *delay_ms = 0;
    if (req->query_len == 0)
        return 0; /* nothing declared is required */
    /* Every pair takes at least two bytes ("a&"), so this bounds the count. */
    size_t max = req->query_len / 2 + 1;
    if (max > br_limits_default.max_pairs)
        max = br_limits_default.max_pairs;
    br_pair *pairs = malloc(max * sizeof(*pairs) + req->query_len + 1);
    if (!pairs) {
        gw_req_respond_error(req, 503, true, "Service Unavailable: out of memory");
        return BR_ENOMEM;
    }
    size_t n = 0;
    int rc = gw_req_query_parse(req, (char *)(pairs + max), req->query_len + 1, pairs, max, &n);
    if (rc == 0)
        rc = gw_req_params_validate(req, post_params, 1, NULL, 0, pairs, n, NULL, 0,
                                    GW_PARAMS_MAX_ERROR_BODY);
    /* The first delay_ms is the one validated. */
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const br_str *name = &pairs[i].name;
        int64_t v;
        if (name->len == post_params[0].name.len &&
            memcmp(name->ptr, DELAY_PARAM, name->len) == 0) {
            if (gw_param_int(pairs[i].value, &v))
                *delay_ms = (uint32_t)v; /* validated: 0 .. GW_JOBS_DELAY_MAX_MS */
            break;
        }
    }
    free(pairs);
    return rc;
}

static void on_waiter_abort(gw_req *req, void *arg)
{
    (void)req;
    http_waiter *w = arg;
    w->req = NULL;
}

/* The 202 a submitted job gets, to its first client and to repeats of its key. */
static void on_durable(gw_job_waiter *base, gw_job *job, int status)
{
    http_waiter *w = (http_waiter *)base;
    if (w->req && status != 0) {
        gw_req_respond_error(w->req, 503, true, "Service Unavailable: the job could not be stored");
    } else if (w->req) {
        char body[2 * GW_JOB_ID_MAX + 48];
        int n = snprintf(body, sizeof(body), "{\"job_id\":\"%s\",\"status_url\":\"/jobs/%s\"}",
                         job->id, job->id);
        char location[GW_JOB_ID_MAX + 8];
        int ln = snprintf(location, sizeof(location), "/jobs/%s", job->id);
        gw_header h = {"Location", 8, location, (size_t)ln};
        gw_req_respond(w->req, 202, &h, 1, "application/json", body, (size_t)n);
    }
    free(w);
}

/* POST /jobs/{task} */
static void post_job(gw_req *req, void *data)
{
    gw_jobs *j = data;
    const gw_path_param *p = &req->match.params[0];
    /* An internal task is as unknown to a client as one that does not exist. */
    gw_jobs_task *t = gw__jobs_task_public(j, (br_str){p->value, (uint32_t)p->value_len});
    if (!t) {
        gw_req_respond_detail(req, 404, "Unknown task");
        return;
    }
    if (j->closing) {
        gw_req_respond_error(req, 503, true, "Service Unavailable: the gateway is shutting down");
        return;
    }
    uint32_t delay_ms;
    if (post_query(req, &delay_ms) != 0)
        return;
    br_str key = {0};
    const gw_header *h = gw_req_header(req, "idempotency-key");
    if (h) {
        if (h->value_len == 0 || h->value_len > GW_JOBS_KEY_MAX) {
            gw_req_respond_detail(req, 400, "Idempotency-Key must be 1 to 256 bytes");
            return;
        }
        key = (br_str){h->value, (uint32_t)h->value_len};
    }
    br_buf payload = {.max = br_limits_default.max_body};
    char err[GW_DETAIL_MAX];
    int rc = req->body_len
                 ? gw_json_to_msgpack(req->body, req->body_len, &payload, err, sizeof(err))
                 : br_buf_append(&payload, "\xc0", 1); /* msgpack nil */
    if (rc == BR_EVALUE) {
        gw_req_respond_json_invalid(req, err);
        br_buf_free(&payload);
        return;
    }
    http_waiter *w = rc == 0 ? calloc(1, sizeof(*w)) : NULL;
    if (!w) {
        gw_req_respond_detail(req, 413, "Request body too large or too deeply nested");
        br_buf_free(&payload);
        return;
    }
    w->base.ready = on_durable;
    w->req = req;
    gw_req_on_abort(req, on_waiter_abort, w);
    gw_job *job;
    rc = gw__jobs_submit(j, t, (br_str){(const char *)payload.data, (uint32_t)payload.len}, key,
                         delay_ms, &w->base, &job);
    br_buf_free(&payload);
    if (rc != 0) {
        free(w);
        gw_req_on_abort(req, NULL, NULL);
        gw_req_respond_error(req, 503, true,
                             rc == BR_EFULL    ? "Service Unavailable: too many jobs queued"
                             : rc == BR_ELIMIT ? "Service Unavailable: too many job bytes held"
                                               : "Service Unavailable: out of memory");
    }
}

static const char *const status_names[] = {"queued", "running", "succeeded", "failed", "dead"};

/* Appends a piece of JSON text; 0 or the append's error. */
static int put(br_buf *b, const char *s)
{
    return br_buf_append(b, s, strlen(s));
}

/* Renders job as GET /jobs/{id} shows it, with its result and error as given, into
 * j->scratch.  0 or the buffer's error. */
static int render(gw_jobs *j, const gw_job *job, br_str result, br_str error)
{
    char tail[64];
    snprintf(tail, sizeof(tail),
             ",\"status\":\"%s\",\"attempts\":%u,\"result\":", status_names[job->status],
             job->attempts);
    br_buf *b = &j->scratch;
    b->len = 0;
    int rc = put(b, "{\"id\":\"");
    if (rc == 0)
        rc = put(b, job->id);
    if (rc == 0)
        rc = put(b, "\",\"task\":");
    if (rc == 0)
        rc = gw_json_append_string(b, job->task->name, strlen(job->task->name));
    if (rc == 0)
        rc = put(b, tail);
    if (rc == 0 && result.len > 0) {
        size_t at = b->len;
        if (gw_msgpack_to_json(result.ptr, result.len, b) != 0) {
            b->len = at;
            rc = put(b, "null");
        }
    } else if (rc == 0) {
        rc = put(b, "null");
    }
    if (rc == 0 && error.len > 0) {
        rc = put(b, ",\"error\":");
        if (rc == 0)
            rc = gw_json_append_string(b, error.ptr, error.len);
    }
    if (rc == 0)
        rc = put(b, "}");
    return rc;
}

static void respond_job(gw_jobs *j, gw_req *req, const gw_job *job, br_str result, br_str error)
{
    if (render(j, job, result, error) != 0)
        gw_req_respond_detail(req, 500, "Internal Server Error");
    else
        respond_json(req, 200, &j->scratch);
}

/* A GET waiting for a result the store keeps. */
typedef struct get_waiter {
    gw_jobs *owner; /* the queue */
    gw_req *req;    /* the client; NULL once it left */
} get_waiter;

static void on_get_abort(gw_req *req, void *arg)
{
    (void)req;
    ((get_waiter *)arg)->req = NULL;
}

static void on_get_detail(void *arg, gw_job *job, br_str result, br_str error, int status)
{
    get_waiter *g = arg;
    if (g->req) {
        gw_req_on_abort(g->req, NULL, NULL);
        if (status != 0)
            gw_req_respond_error(g->req, 503, true,
                                 "Service Unavailable: the job store could not be read");
        else if (!job)
            gw_req_respond_detail(g->req, 404, "Job not found");
        else if (job->detail_on_disk)
            respond_job(g->owner, g->req, job, result, error);
        else /* it changed meanwhile: memory has the newer word */
            respond_job(g->owner, g->req, job, job->result, job->error);
    }
    free(g);
}

/* GET /jobs/{id} */
static void get_job(gw_req *req, void *data)
{
    gw_jobs *j = data;
    const gw_path_param *p = &req->match.params[0];
    gw_job *job = gw__jobs_find(j, path_id(p->value, p->value_len));
    if (!job || !job->durable) {
        gw_req_respond_detail(req, 404, "Job not found");
        return;
    }
    if (!job->detail_on_disk) {
        respond_job(j, req, job, job->result, job->error);
        return;
    }
    get_waiter *g = malloc(sizeof(*g));
    int rc = g ? 0 : BR_ENOMEM;
    if (g) {
        *g = (get_waiter){.owner = j, .req = req};
        gw_req_on_abort(req, on_get_abort, g);
        rc = gw__jobs_detail_read(j, job, on_get_detail, g);
    }
    if (rc != 0) {
        if (g)
            gw_req_on_abort(req, NULL, NULL);
        free(g);
        gw_req_respond_error(req, 503, true, "Service Unavailable: too many job reads");
    }
}

int gw__jobs_routes_add(gw_jobs *j)
{
    int rc = gw_router_add(j->router, "POST", "/jobs/{task}", post_job, j);
    if (rc == 0) {
        rc = gw_router_add(j->router, "GET", "/jobs/{id}", get_job, j);
        if (rc != 0)
            gw_router_remove(j->router, "POST", "/jobs/{task}");
    }
    j->routes_added = rc == 0;
    return rc;
}

void gw__jobs_routes_remove(gw_jobs *j)
{
    if (!j->routes_added)
        return;
    gw_router_remove(j->router, "POST", "/jobs/{task}");
    gw_router_remove(j->router, "GET", "/jobs/{id}");
    j->routes_added = false;
}

/* ---------------------------------------------------------------------------------- */
/* REPLY.jobs: the reply waits until its jobs are durable.                             */

/* A worker's reply held back until its jobs are durable. */
typedef struct held_reply {
    gw_broker *broker;           /* answers through it */
    gw_req *req;                 /* the client; NULL once it left */
    bool want_msgpack;           /* the client's Accept */
    uint32_t waiting;            /* jobs not durable yet */
    bool failed;                 /* a job could not be stored: the client gets 503 */
    br_reply reply;              /* the copy; strings point into `copy` */
    char *copy;                  /* heap: headers' and body's bytes */
    struct held_waiter *waiters; /* one per job (reply.njobs) */
} held_reply;

/* One job of a held reply. */
typedef struct held_waiter {
    gw_job_waiter base; /* in the job's waiters */
    held_reply *owner;  /* the reply it holds back */
} held_waiter;

static void held_free(held_reply *h)
{
    free(h->copy);
    free(h->reply.headers);
    free(h->waiters);
    free(h);
}

/* Answers the client once the last job is durable (or failed). */
static void held_settle(held_reply *h)
{
    if (h->waiting > 0)
        return;
    if (h->req && h->failed) {
        gw_broker_respond_error(h->broker, h->req, 503, true,
                                "Service Unavailable: the reply's background jobs could not be "
                                "stored");
    } else if (h->req) {
        gw_broker_respond_reply(h->broker, h->req, &h->reply, h->want_msgpack);
    }
    held_free(h);
}

static void on_held_abort(gw_req *req, void *arg)
{
    (void)req;
    held_reply *h = arg;
    h->req = NULL;
}

static void on_held_job(gw_job_waiter *w, gw_job *job, int status)
{
    (void)job;
    held_reply *h = ((held_waiter *)w)->owner;
    if (status != 0)
        h->failed = true;
    h->waiting--;
    held_settle(h);
}

/* Copies r's headers, content type and body into h.  0 or BR_ENOMEM. */
static int held_copy(held_reply *h, const br_reply *r)
{
    size_t bytes = r->content_type.len + r->body.len;
    for (uint32_t i = 0; i < r->nheaders; i++)
        bytes += r->headers[i].name.len + r->headers[i].value.len;
    h->reply = *r;
    h->reply.jobs = NULL;
    h->reply.njobs = 0;
    h->copy = malloc(bytes + 1);
    h->reply.headers = r->nheaders ? calloc(r->nheaders, sizeof(br_pair)) : NULL;
    if (!h->copy || (r->nheaders && !h->reply.headers))
        return BR_ENOMEM;
    char *c = h->copy;
#define COPY(dst, src)                                                                             \
    do {                                                                                           \
        (dst) = (br_str){c, (src).len};                                                            \
        if ((src).len)                                                                             \
            memcpy(c, (src).ptr, (src).len);                                                       \
        c += (src).len;                                                                            \
    } while (0)
    COPY(h->reply.content_type, r->content_type);
    COPY(h->reply.body, r->body);
    for (uint32_t i = 0; i < r->nheaders; i++) {
        COPY(h->reply.headers[i].name, r->headers[i].name);
        COPY(h->reply.headers[i].value, r->headers[i].value);
    }
#undef COPY
    return 0;
}

/* Submits one job spec; a waiter (when given) hears when it is durable.  A task that
 * does not exist (no registered worker announces it, nor did one within its grace
 * period) is refused: a reply cannot create tasks. */
static int submit_spec(gw_jobs *j, const br_job_spec *s, gw_job_waiter *w)
{
    gw_jobs_task *t = gw__jobs_task_open(j, s->task);
    if (!t) {
        gw_log(GW_LOG_WARN, "jobs", "a reply's job for task %.*s refused: no such task",
               (int)(s->task.len < GW_JOBS_NAME_MAX ? s->task.len : GW_JOBS_NAME_MAX), s->task.ptr);
        return BR_ENOTFOUND;
    }
    if (s->idempotency_key.len > GW_JOBS_KEY_MAX)
        return BR_EVALUE;
    uint32_t delay = s->delay_ms < GW_JOBS_DELAY_MAX_MS ? s->delay_ms : GW_JOBS_DELAY_MAX_MS;
    gw_job *job;
    return gw__jobs_submit(j, t, s->payload, s->idempotency_key, delay, w, &job);
}

bool gw__jobs_reply_hold(void *data, gw_req *req, const br_reply *r, bool want_msgpack)
{
    gw_jobs *j = data;
    if (r->njobs == 0)
        return false;
    if (!req) {
        /* A CALL's answer: the jobs are written, the caller does not wait for them. */
        for (uint32_t i = 0; i < r->njobs; i++)
            if (submit_spec(j, &r->jobs[i], NULL) != 0)
                gw_log(GW_LOG_WARN, "jobs", "a CALL reply's job %.*s could not be stored",
                       (int)r->jobs[i].task.len, r->jobs[i].task.ptr);
        return false;
    }
    held_reply *h = calloc(1, sizeof(*h));
    if (!h || !(h->waiters = calloc(r->njobs, sizeof(held_waiter))) || held_copy(h, r) != 0) {
        if (h)
            held_free(h);
        gw_broker_respond_error(j->broker, req, 503, true, "Service Unavailable: out of memory");
        return true;
    }
    h->broker = j->broker;
    h->req = req;
    h->want_msgpack = want_msgpack;
    gw_req_on_abort(req, on_held_abort, h);
    /* One extra count while submitting, so that jobs durable at once (a repeated key)
     * cannot settle the reply before every job was submitted. */
    h->waiting = r->njobs + 1;
    for (uint32_t i = 0; i < r->njobs; i++) {
        held_waiter *w = &h->waiters[i];
        w->base.ready = on_held_job;
        w->owner = h;
        if (submit_spec(j, &r->jobs[i], &w->base) != 0) {
            h->failed = true;
            h->waiting--;
        }
    }
    h->waiting--;
    held_settle(h);
    return true;
}
