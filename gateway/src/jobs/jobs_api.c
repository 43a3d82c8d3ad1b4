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
 *                       failure, "progress"/"note" once reported, "cancel_requested");
 *                       404 for an unknown or expired id.  A result memory does not
 *                       keep is read from the store first.
 *   GET /jobs           ?task=&status=&limit=&cursor=: a page of jobs, newest first,
 *                       {"items":[...],"next_cursor":C|null}.
 *   DELETE /jobs/{id}   cancels a queued job (200, "cancelled"); a running one is asked
 *                       to stop (202); 409 for a finished one.
 *   POST /jobs/{id}/retry   a dead, cancelled or failed job runs again now (202); a
 *                       workflow member's descendants that ended with it wait again.
 *
 * On a shared store (PostgreSQL) GET, DELETE and retry of a job another gateway of the
 * queue holds read its row; DELETE and retry then record the request for its owner
 * and answer 202 (docs/jobs.md, "Several gateways on one PostgreSQL queue").
 *
 * Owners: a job submitted by a verified caller (the edge's identity) - over HTTP or by
 * a handler's reply to that caller's request - is visible only to the same identity
 * (kind and subject): to anyone else every route above answers 404 as for an unknown
 * id, and lists leave it out.  A job submitted anonymously is visible to anyone who
 * holds its id.
 *
 * A client that leaves before its job is durable does not cancel the job: it was
 * accepted, only the answer is lost (an Idempotency-Key finds it again).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge.h"
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

br_str gw__jobs_caller(const gw_req *req)
{
    gw_edge_info info;
    return gw_edge_req_info(req, &info) == 0 ? info.identity : (br_str){NULL, 0};
}

#define PARAM(n, t, lo, hi)                                                                        \
    {                                                                                              \
        .name = {n, sizeof(n) - 1}, .in = BR_IN_QUERY, .type = t, .has_min = true, .min = lo,      \
        .has_max = true, .max = hi                                                                 \
    }

/* POST /jobs/{task}'s and GET /jobs' query parameters, validated by params.c as a
 * worker's declared parameters are (string bounds are lengths). */
static const br_param post_params[] = {PARAM("delay_ms", BR_TYPE_INT, 0, GW_JOBS_DELAY_MAX_MS),
                                       PARAM("eta", BR_TYPE_STR, 1, 40)};
enum { LIST_TASK, LIST_STATUS, LIST_LIMIT, LIST_CURSOR, LIST_NPARAMS };
static const br_param list_params[] = {
    [LIST_TASK] = PARAM("task", BR_TYPE_STR, 1, GW_JOBS_NAME_MAX),
    [LIST_STATUS] = PARAM("status", BR_TYPE_STR, 1, 16),
    [LIST_LIMIT] = PARAM("limit", BR_TYPE_INT, 1, GW_JOBS_LIST_MAX),
    [LIST_CURSOR] = PARAM("cursor", BR_TYPE_STR, 16, 16),
};

/* Reads req's query string, validates it against decl and sets values[i] to the first
 * value of decl[i] (empty when absent).  *block holds the values' bytes: the caller
 * frees it.  0, or the client was answered: 400 for a malformed query, 422 for a bad
 * value, 503 out of memory. */
static int query_read(gw_req *req, const br_param *decl, size_t ndecl, br_str *values, void **block)
{
    *block = NULL;
    for (size_t i = 0; i < ndecl; i++)
        values[i] = (br_str){NULL, 0};
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
        rc = gw_req_params_validate(req, decl, ndecl, NULL, 0, pairs, n, NULL, 0,
                                    GW_PARAMS_MAX_ERROR_BODY);
    if (rc != 0) {
        free(pairs);
        return rc;
    }
    /* The first value of a name is the one validated. */
    for (size_t d = 0; d < ndecl; d++)
        for (size_t i = 0; i < n; i++)
            if (pairs[i].name.len == decl[d].name.len &&
                memcmp(pairs[i].name.ptr, decl[d].name.ptr, decl[d].name.len) == 0) {
                values[d] = pairs[i].value;
                break;
            }
    *block = pairs;
    return 0;
}

/* Reads `n` decimal digits at s into *out.  False when one is not a digit. */
static bool digits(const char *s, int n, int *out)
{
    *out = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        *out = *out * 10 + (s[i] - '0');
    }
    return true;
}

/* An ETA: milliseconds since the epoch as an integer, or an RFC 3339 time
 * (YYYY-MM-DDTHH:MM:SS, optional .fraction, then Z or +HH:MM / -HH:MM).  False when it
 * is neither. */
static bool parse_eta(br_str v, int64_t *ms)
{
    if (gw_param_int(v, ms))
        return *ms >= 0;
    char s[41];
    if (v.len < 20 || v.len > 40)
        return false;
    memcpy(s, v.ptr, v.len);
    s[v.len] = '\0';
    int y, mo, d, h, mi, se;
    if (!digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) || s[7] != '-' ||
        !digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't') || !digits(s + 11, 2, &h) ||
        s[13] != ':' || !digits(s + 14, 2, &mi) || s[16] != ':' || !digits(s + 17, 2, &se) ||
        mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60)
        return false;
    const char *p = s + 19;
    int frac = 0, scale = 1000;
    if (*p == '.') {
        if (!(p[1] >= '0' && p[1] <= '9'))
            return false;
        for (p++; *p >= '0' && *p <= '9'; p++)
            if (scale > 1) {
                scale /= 10;
                frac += (*p - '0') * scale;
            }
    }
    int64_t offset = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om;
        if (!digits(p + 1, 2, &oh) || p[3] != ':' || !digits(p + 4, 2, &om) || oh > 23 || om > 59)
            return false;
        offset = (*p == '+' ? 1 : -1) * (int64_t)(oh * 60 + om) * 60000;
        p += 6;
    } else {
        return false;
    }
    if (*p)
        return false;
    *ms = ((gw__jobs_days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * 60000 + (int64_t)se * 1000 +
          frac - offset;
    return *ms >= 0;
}

/* Reads POST /jobs' query string into *delay_ms (0 when absent): delay_ms, or eta (an
 * absolute time; one in the past means now).  0, or the client was answered: 422 for
 * both at once, an eta that is not a time, or one past GW_JOBS_DELAY_MAX_MS from now. */
static int post_query(gw_req *req, uint32_t *delay_ms)
{
    br_str v[2];
    void *block;
    int64_t d = 0, eta;
    int rc = query_read(req, post_params, 2, v, &block);
    if (rc == 0 && v[0].len > 0)
        gw_param_int(v[0], &d); /* validated: 0 .. GW_JOBS_DELAY_MAX_MS */
    const char *bad = NULL;
    if (rc == 0 && v[1].len > 0) {
        if (v[0].len > 0)
            bad = "Give delay_ms or eta, not both";
        else if (!parse_eta(v[1], &eta))
            bad = "eta must be milliseconds since the epoch or an RFC 3339 time";
        else if ((d = eta - gw__jobs_now_ms()) > (int64_t)GW_JOBS_DELAY_MAX_MS)
            bad = "eta is more than 30 days away";
        else if (d < 0)
            d = 0;
    }
    free(block);
    if (bad) {
        gw_req_respond_detail(req, 422, bad);
        return BR_EVALUE;
    }
    *delay_ms = (uint32_t)d;
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
    gw_path_param p = gw_route_match_param(&req->match, 0);
    /* An internal task is as unknown to a client as one that does not exist. */
    gw_jobs_task *t = gw__jobs_task_public(j, (br_str){p.value, (uint32_t)p.value_len});
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
                         delay_ms, gw__jobs_caller(req), &w->base, &job);
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

static const char *const status_names[] = {"queued", "running",   "succeeded", "failed",
                                           "dead",   "cancelled", "waiting"};
#define NSTATUS (sizeof(status_names) / sizeof(status_names[0]))

/* Appends a piece of JSON text; 0 or the append's error. */
static int put(br_buf *b, const char *s)
{
    return br_buf_append(b, s, strlen(s));
}

/* Renders job as GET /jobs/{id} shows it, with its result and error as given, into
 * j->scratch.  0 or the buffer's error. */
/* Appends job's fields other than result and error, from "{" to "attempts":N. */
static int render_head(br_buf *b, const gw_job *job)
{
    char tail[64];
    snprintf(tail, sizeof(tail), ",\"status\":\"%s\",\"attempts\":%u", status_names[job->status],
             job->attempts);
    int rc = put(b, "{\"id\":\"");
    if (rc == 0)
        rc = put(b, job->id);
    if (rc == 0)
        rc = put(b, "\",\"task\":");
    if (rc == 0)
        rc = gw_json_append_string(b, job->task->name, strlen(job->task->name));
    if (rc == 0)
        rc = put(b, tail);
    if (rc == 0 && job->progress >= 0) {
        char num[48];
        snprintf(num, sizeof(num), ",\"progress\":%.4g", (double)job->progress);
        rc = put(b, num);
    }
    if (rc == 0 && job->note) {
        rc = put(b, ",\"note\":");
        if (rc == 0)
            rc = gw_json_append_string(b, job->note, strlen(job->note));
    }
    if (rc == 0 && job->cancel_wanted)
        rc = put(b, ",\"cancel_requested\":true");
    if (rc == 0 && job->flow) {
        rc = put(b, ",\"workflow_id\":\"");
        if (rc == 0)
            rc = put(b, job->flow->id);
        if (rc == 0)
            rc = put(b, "\"");
    }
    return rc;
}

static int render(gw_jobs *j, const gw_job *job, br_str result, br_str error)
{
    br_buf *b = &j->scratch;
    b->len = 0;
    int rc = render_head(b, job);
    if (rc == 0)
        rc = put(b, ",\"result\":");
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

/* The job named by req's {id} if the caller may see it; otherwise NULL and req was
 * answered 404 (a job of another owner looks like one that does not exist). */
static gw_job *visible_job(gw_jobs *j, gw_req *req)
{
    gw_path_param p = gw_route_match_param(&req->match, 0);
    gw_job *job = gw__jobs_find(j, path_id(p.value, p.value_len));
    if (!job || !job->durable || !gw__jobs_visible(job, gw__jobs_caller(req))) {
        gw_req_respond_detail(req, 404, "Job not found");
        return NULL;
    }
    return job;
}

/* A GET, DELETE or retry of a job this gateway does not hold, on a shared store: its
 * row is read, then (DELETE, retry) the request recorded for its owner. */
typedef struct row_waiter {
    gw_jobs *owner;                      /* the queue */
    gw_req *req;                         /* the client; NULL once it left */
    char id[GW_JOB_ID_MAX + 1];          /* the id asked for */
    uint8_t id_len;                      /* its length */
    unsigned act;                        /* 0: GET; else the gw_jobs_request asked */
    uint64_t seq;                        /* the job's sequence number */
    char task[GW_JOBS_ROW_TASK_MAX + 1]; /* the row's task name (a cancel's answer) */
    uint8_t status;                      /* the row's status and attempts */
    uint32_t attempts;
} row_waiter;

static void on_row_abort(gw_req *req, void *arg)
{
    (void)req;
    ((row_waiter *)arg)->req = NULL;
}

/* Keeps what the answer shows of the row r: its task name, status and attempts. */
static void keep_row_fields(row_waiter *g, const gw_job_row *r)
{
    size_t len = r->task.len < GW_JOBS_ROW_TASK_MAX ? r->task.len : GW_JOBS_ROW_TASK_MAX;
    memcpy(g->task, r->task.ptr, len);
    g->task[len] = '\0';
    g->status = r->status;
    g->attempts = r->attempts;
}

/* The job as g's row showed it, for rendering: job and task are filled in (job points
 * at task, task at g's name). */
static void shown_job(const row_waiter *g, gw_jobs_task *task, gw_job *job)
{
    *task = (gw_jobs_task){.name = (char *)g->task};
    memset(job, 0, sizeof(*job));
    memcpy(job->id, g->id, g->id_len);
    job->id_len = g->id_len;
    job->task = task;
    job->status = g->status;
    job->attempts = g->attempts;
    job->progress = -1;
}

/* The request of a DELETE or retry is recorded: its owner applies it on its next beat
 * (or its adopter, once adopted).  202: what the row said, and what was asked. */
static void on_request_written(void *arg, int status)
{
    row_waiter *g = arg;
    gw_jobs *j = g->owner;
    j->reads--;
    gw_req *req = g->req;
    if (req) {
        gw_req_on_abort(req, NULL, NULL);
        gw_jobs_task task;
        gw_job job;
        shown_job(g, &task, &job);
        job.cancel_wanted = true;
        j->scratch.len = 0;
        if (status == BR_ENOTFOUND) {
            gw_req_respond_detail(req, 404, "Job not found");
        } else if (status != 0) {
            gw_req_respond_error(req, 503, true,
                                 "Service Unavailable: the job store could not be written");
        } else if (g->act == GW_JOBS_REQUEST_RETRY) {
            char body[2 * GW_JOB_ID_MAX + 72];
            int len = snprintf(body, sizeof(body),
                               "{\"job_id\":\"%s\",\"status_url\":\"/jobs/%s\","
                               "\"retry_requested\":true}",
                               g->id, g->id);
            gw_req_respond(req, 202, NULL, 0, "application/json", body, (size_t)len);
        } else if (render_head(&j->scratch, &job) != 0 || put(&j->scratch, "}") != 0) {
            gw_req_respond_detail(req, 500, "Internal Server Error");
        } else {
            respond_json(req, 202, &j->scratch);
        }
    }
    free(g);
}

/* A DELETE or retry of a job another gateway holds, its row read (r): 409 when the
 * row's state forbids it, else the request is recorded for the owner.  True when g
 * waits for the write (it owns g then). */
static bool record_request(gw_jobs *j, row_waiter *g, const gw_job_row *r)
{
    gw_req *req = g->req;
    bool ended =
        r->status == GW_JOB_SUCCEEDED || r->status == GW_JOB_DEAD || r->status == GW_JOB_CANCELLED;
    if (g->act == GW_JOBS_REQUEST_CANCEL && ended) {
        gw_req_respond_detail(req, 409, "Job already finished");
        return false;
    }
    if (g->act == GW_JOBS_REQUEST_RETRY && !ended && r->status != GW_JOB_FAILED) {
        gw_req_respond_detail(req, 409, "Only a dead, cancelled or failed job can be retried");
        return false;
    }
    keep_row_fields(g, r);
    gw_req_on_abort(req, on_row_abort, g);
    if (gw__jobs_store_request(j->store, g->seq, g->act, on_request_written, g) == 0) {
        j->reads++;
        return true;
    }
    gw_req_on_abort(req, NULL, NULL);
    gw_req_respond_error(req, 503, true, "Service Unavailable: the job store is full");
    return false;
}

/* The store's row of a job another gateway of the queue holds: shown as GET shows a
 * job, from what the row says (a job that gateway runs shows as its row does, queued;
 * progress and notes live in that gateway's memory), or the DELETE or retry asked of
 * it recorded for that gateway. */
static void on_row(void *arg, int status, const gw_job_row *rows, size_t n)
{
    row_waiter *g = arg;
    gw_jobs *j = g->owner;
    j->reads--;
    if (g->req) {
        gw_req *req = g->req;
        gw_req_on_abort(req, NULL, NULL);
        uint8_t digest[GW_JOBS_IDEM_BYTES];
        const gw_job_row *r = n == 1 ? &rows[0] : NULL;
        if (status != 0) {
            gw_req_respond_error(req, 503, true,
                                 "Service Unavailable: the job store could not be read");
        } else if (!r || r->seq == 0 || r->id.len != g->id_len ||
                   memcmp(r->id.ptr, g->id, g->id_len) != 0 || r->status >= NSTATUS ||
                   !gw__jobs_owner_matches(gw__jobs_owner_digest(r->identity, digest), digest,
                                           gw__jobs_caller(req))) {
            gw_req_respond_detail(req, 404, "Job not found");
        } else if (g->act != 0) {
            if (record_request(j, g, r))
                return;
        } else {
            gw_jobs_task task;
            gw_job job;
            keep_row_fields(g, r);
            shown_job(g, &task, &job);
            respond_job(j, req, &job, r->result, r->error);
        }
    }
    free(g);
}

/* GET /jobs/{id} (act 0), DELETE or retry (a gw_jobs_request) of a job not held here,
 * on a shared store: its row is read. */
static void from_store(gw_jobs *j, gw_req *req, br_str id, unsigned act)
{
    uint64_t seq = gw__jobs_seq_of(id);
    if (seq == 0 || id.len > GW_JOB_ID_MAX) {
        gw_req_respond_detail(req, 404, "Job not found");
        return;
    }
    row_waiter *g = j->reads < GW_JOBS_READS_MAX ? malloc(sizeof(*g)) : NULL;
    if (g) {
        *g =
            (row_waiter){.owner = j, .req = req, .id_len = (uint8_t)id.len, .act = act, .seq = seq};
        memcpy(g->id, id.ptr, id.len);
        gw_req_on_abort(req, on_row_abort, g);
        if (gw__jobs_store_read(j->store, &seq, 1, GW_JOBS_READ_ROW, on_row, g) == 0) {
            j->reads++;
            return;
        }
        gw_req_on_abort(req, NULL, NULL);
        free(g);
    }
    gw_req_respond_error(req, 503, true, "Service Unavailable: too many job reads");
}

/* True when req's job is not held here but may be another gateway's of a shared
 * queue: then it was handed to the store (from_store) with act. */
static bool elsewhere(gw_jobs *j, gw_req *req, unsigned act)
{
    if (!gw__jobs_shared(j))
        return false;
    gw_path_param p = gw_route_match_param(&req->match, 0);
    br_str id = path_id(p.value, p.value_len);
    if (gw__jobs_find(j, id))
        return false;
    from_store(j, req, id, act);
    return true;
}

/* GET /jobs/{id} */
static void get_job(gw_req *req, void *data)
{
    gw_jobs *j = data;
    if (elsewhere(j, req, 0))
        return;
    gw_job *job = visible_job(j, req);
    if (!job)
        return;
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

/* DELETE /jobs/{id} */
static void delete_job(gw_req *req, void *data)
{
    gw_jobs *j = data;
    if (elsewhere(j, req, GW_JOBS_REQUEST_CANCEL))
        return;
    gw_job *job = visible_job(j, req);
    if (!job)
        return;
    int rc = gw__jobs_cancel(j, job);
    if (rc < 0) {
        gw_req_respond_detail(req, 409, "Job already finished");
        return;
    }
    /* Cancelled now (200), or asked to stop (202: its worker may still finish it). */
    j->scratch.len = 0;
    if (render_head(&j->scratch, job) != 0 || put(&j->scratch, "}") != 0)
        gw_req_respond_detail(req, 500, "Internal Server Error");
    else
        respond_json(req, rc == 0 ? 200 : 202, &j->scratch);
}

/* POST /jobs/{id}/retry */
static void retry_job(gw_req *req, void *data)
{
    gw_jobs *j = data;
    if (elsewhere(j, req, GW_JOBS_REQUEST_RETRY))
        return;
    gw_job *job = visible_job(j, req);
    if (!job)
        return;
    if (j->closing) {
        gw_req_respond_error(req, 503, true, "Service Unavailable: the gateway is shutting down");
        return;
    }
    int rc = gw__jobs_retry(j, job);
    if (rc == BR_EINVAL) {
        gw_req_respond_detail(req, 409, "Only a dead, cancelled or failed job can be retried");
        return;
    }
    if (rc == BR_EVALUE) {
        gw_req_respond_detail(req, 409,
                              "A workflow member runs after its parents succeeded: retry the "
                              "parent that failed");
        return;
    }
    if (rc != 0) {
        gw_req_respond_error(req, 503, true, "Service Unavailable: too many jobs queued");
        return;
    }
    char body[2 * GW_JOB_ID_MAX + 48];
    int n = snprintf(body, sizeof(body), "{\"job_id\":\"%s\",\"status_url\":\"/jobs/%s\"}", job->id,
                     job->id);
    gw_req_respond(req, 202, NULL, 0, "application/json", body, (size_t)n);
}

/* The status named `s`, or -1. */
static int status_of(br_str s)
{
    for (size_t i = 0; i < NSTATUS; i++)
        if (br_str_eq(s, status_names[i]))
            return (int)i;
    return -1;
}

/* Answers 422 for a status filter that names no status, in pydantic's enum shape. */
static void respond_bad_status(gw_jobs *j, gw_req *req, br_str value)
{
    br_buf *b = &j->scratch;
    b->len = 0;
    int rc = put(b, "{\"detail\":[{\"type\":\"enum\",\"loc\":[\"query\",\"status\"],"
                    "\"msg\":\"Input should be 'queued', 'running', 'succeeded', 'failed', "
                    "'dead' or 'cancelled'\",\"input\":");
    if (rc == 0)
        rc = gw_json_append_string(b, value.ptr, value.len);
    if (rc == 0)
        rc = put(b, "}]}");
    if (rc != 0)
        gw_req_respond_detail(req, 500, "Internal Server Error");
    else
        respond_json(req, 422, b);
}

/* GET /jobs: newest first.  The cursor is the sequence number of the last job of the
 * previous page; the walk starts below it (from that job itself while it is held, else
 * from the newest end).  At most GW_JOBS_LIST_SCAN jobs are looked at per page: a
 * filter that matches few of many jobs answers a short page with a cursor to go on. */
static void list_jobs(gw_req *req, void *data)
{
    gw_jobs *j = data;
    br_str v[LIST_NPARAMS];
    void *block;
    if (query_read(req, list_params, LIST_NPARAMS, v, &block) != 0)
        return;
    int status = -1;
    if (v[LIST_STATUS].len > 0 && (status = status_of(v[LIST_STATUS])) < 0) {
        respond_bad_status(j, req, v[LIST_STATUS]);
        free(block);
        return;
    }
    int64_t limit = GW_JOBS_LIST_DEFAULT;
    if (v[LIST_LIMIT].len > 0)
        gw_param_int(v[LIST_LIMIT], &limit); /* validated: 1 .. GW_JOBS_LIST_MAX */
    uint64_t below = UINT64_MAX;
    if (v[LIST_CURSOR].len > 0 && (below = gw__jobs_hex64(v[LIST_CURSOR])) == 0) {
        gw_req_respond_detail(req, 422, "Invalid cursor");
        free(block);
        return;
    }
    br_str task = v[LIST_TASK], who = gw__jobs_caller(req);
    gw_list *l = j->all.prev;
    gw_job *from = below != UINT64_MAX ? gw__jobs_find_seq(j, below) : NULL;
    if (from)
        l = from->all.prev;
    br_buf *b = &j->scratch;
    b->len = 0;
    int rc = put(b, "{\"items\":[");
    int64_t n = 0;
    size_t scanned = 0;
    uint64_t last = 0;
    for (; l != &j->all && n < limit && rc == 0; l = l->prev) {
        gw_job *job = GW_CONTAINER_OF(l, gw_job, all);
        last = job->seq;
        if (++scanned > GW_JOBS_LIST_SCAN)
            break;
        if (job->seq >= below || !job->durable || (status >= 0 && job->status != status) ||
            (task.len > 0 && !br_str_eq(task, job->task->name)) || !gw__jobs_visible(job, who))
            continue;
        if (n++ > 0)
            rc = put(b, ",");
        if (rc == 0)
            rc = render_head(b, job);
        if (rc == 0 && job->error.len > 0) {
            rc = put(b, ",\"error\":");
            if (rc == 0)
                rc = gw_json_append_string(b, job->error.ptr, job->error.len);
        }
        if (rc == 0)
            rc = put(b, "}");
    }
    /* A next page exists while the walk stopped before the oldest job. */
    if (rc == 0 && l != &j->all && last) {
        char tail[48];
        snprintf(tail, sizeof(tail), "],\"next_cursor\":\"%016llx\"}",
                 (unsigned long long)(n >= limit ? last : last + 1));
        rc = put(b, tail);
    } else if (rc == 0) {
        rc = put(b, "],\"next_cursor\":null}");
    }
    free(block);
    if (rc != 0)
        gw_req_respond_detail(req, 500, "Internal Server Error");
    else
        respond_json(req, 200, b);
}

/* GET /jobs/stats: the numbers of every task, as JSON (the jobs page polls it). */
static void stats_json(gw_req *req, void *data)
{
    gw_jobs *j = data;
    br_buf *b = &j->scratch;
    b->len = 0;
    int rc = put(b, "{\"tasks\":[");
    size_t n = gw_jobs_task_count(j);
    for (size_t i = 0; i < n && rc == 0; i++) {
        gw_jobs_task_stats st;
        gw_jobs_task_stats_get(j, i, &st);
        if (i > 0)
            rc = put(b, ",");
        if (rc == 0)
            rc = put(b, "{\"task\":");
        if (rc == 0)
            rc = gw_json_append_string(b, st.task, strlen(st.task));
        char nums[384];
        double ql = st.queue_latency.count ? st.queue_latency.sum_s / st.queue_latency.count : 0;
        double rt = st.run_time.count ? st.run_time.sum_s / st.run_time.count : 0;
        snprintf(nums, sizeof(nums),
                 ",\"queued\":%llu,\"running\":%llu,\"succeeded\":%llu,\"failed\":%llu,"
                 "\"dead\":%llu,\"cancelled\":%llu,\"queue_latency_avg_s\":%.6f,"
                 "\"run_time_avg_s\":%.6f}",
                 (unsigned long long)st.queued, (unsigned long long)st.running,
                 (unsigned long long)st.succeeded, (unsigned long long)st.failed,
                 (unsigned long long)st.dead, (unsigned long long)st.cancelled, ql, rt);
        if (rc == 0)
            rc = put(b, nums);
    }
    if (rc == 0)
        rc = put(b, "]}");
    if (rc != 0)
        gw_req_respond_detail(req, 500, "Internal Server Error");
    else
        respond_json(req, 200, b);
}

/* GET /jobs/ui: the jobs page (jobs_page.c). */
static void page(gw_req *req, void *data)
{
    (void)data;
    gw_req_respond(req, 200, NULL, 0, "text/html; charset=utf-8", gw__jobs_page_html,
                   gw__jobs_page_html_len);
}

/* The job routes, in the order they are added (and removed in reverse). */
static const gw_jobs_route routes[] = {
    {"POST", "/jobs/{task}", post_job},
    {"GET", "/jobs/{id}", get_job},
    {"GET", "/jobs", list_jobs},
    {"DELETE", "/jobs/{id}", delete_job},
    {"POST", "/jobs/{id}/retry", retry_job},
    {"GET", "/jobs/stats", stats_json},
    {"GET", "/jobs/ui", page},
};
#define NROUTES (sizeof(routes) / sizeof(routes[0]))

int gw__jobs_router_add(gw_jobs *j, const gw_jobs_route *r, size_t n)
{
    int rc = 0;
    size_t i = 0;
    for (; i < n && rc == 0; i++)
        rc = gw_router_add(j->router, r[i].method, r[i].path, r[i].handler, j);
    if (rc != 0)
        gw__jobs_router_remove(j, r, i - 1);
    return rc;
}

void gw__jobs_router_remove(gw_jobs *j, const gw_jobs_route *r, size_t n)
{
    for (size_t k = n; k-- > 0;)
        gw_router_remove(j->router, r[k].method, r[k].path);
}

int gw__jobs_routes_add(gw_jobs *j)
{
    int rc = gw__jobs_router_add(j, routes, NROUTES);
    j->routes_added = rc == 0;
    /* The page holds no data (its requests carry the credentials): open, as /docs is. */
    static const gw_route_policy open_page = {.auth = BR_AUTH_NONE};
    if (rc == 0)
        gw_router_set_policy(j->router, "GET", "/jobs/ui", &open_page);
    return rc;
}

void gw__jobs_routes_remove(gw_jobs *j)
{
    if (j->routes_added)
        gw__jobs_router_remove(j, routes, NROUTES);
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
static int submit_spec(gw_jobs *j, const br_job_spec *s, br_str identity, gw_job_waiter *w)
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
    return gw__jobs_submit(j, t, s->payload, s->idempotency_key, delay, identity, w, &job);
}

bool gw__jobs_reply_hold(void *data, gw_req *req, const br_reply *r, bool want_msgpack)
{
    gw_jobs *j = data;
    if (r->njobs == 0)
        return false;
    if (!req) {
        /* A CALL's answer: the jobs are written, the caller does not wait for them. */
        for (uint32_t i = 0; i < r->njobs; i++)
            if (submit_spec(j, &r->jobs[i], (br_str){NULL, 0}, NULL) != 0)
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
        if (submit_spec(j, &r->jobs[i], gw__jobs_caller(req), &w->base) != 0) {
            h->failed = true;
            h->waiting--;
        }
    }
    h->waiting--;
    held_settle(h);
    return true;
}
