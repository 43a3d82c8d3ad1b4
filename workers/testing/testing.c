/*
 * testing.c - the test client (barista/testing.h): a real worker on this thread, and
 * the broker's side of the protocol on an inproc ROUTER in the same ZeroMQ context.
 *
 * Nothing runs behind the test's back.  Each call sends what it has to, then runs the
 * worker's loop one iteration at a time (UV_RUN_ONCE), reading what the worker sent in
 * between, until its answer is there: an iteration returns as soon as the worker has
 * done something, and a timer of ours bounds the wait when it does nothing.  Inproc
 * messages are in the peer's queue as soon as zmq_send returns, so nothing is missed
 * between iterations.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <zmq.h>

#include "testing_int.h"
#include "worker_int.h"

/* The test worker's heartbeat, and the broker's as WELCOME announces it: an hour, so
 * that neither side thinks the other dead while a test does something else. */
#define TC_HEARTBEAT_MS 3600000u
/* Requests in flight at once (one per call chain in practice). */
#define TC_CONCURRENCY 64
/* How long a cancelled request may take to give its 499 back. */
#define TC_CANCEL_GRACE_MS 2000
/* How long the drain of br_test_destroy may take. */
#define TC_DRAIN_MS 5000
/* Calls forwarded to the worker itself that may be in flight at once. */
#define TC_MAX_FORWARDS 256
/* Most stubs. */
#define TC_MAX_STUBS 64
/* The longest routing id a ROUTER gives a peer. */
#define TC_IDENT_MAX 256

/* A call answered by the worker's own route: the REQUEST we sent for it. */
typedef struct tc_forward {
    uint64_t request_id; /* the REQUEST's id */
    uint64_t call_id;    /* the CALL's id, to answer */
    size_t call;         /* its index in calls */
} tc_forward;

/* A canned answer to calls. */
typedef struct tc_stub {
    char *method; /* exact method */
    char *path;   /* exact path, no query */
    uint16_t status;
    br_buf body; /* msgpack, empty for none */
} tc_stub;

struct br_test {
    br_worker *w;                     /* the worker under test */
    const br_service_spec **services; /* its services (copied array) */
    size_t nservices;                 /* entries in services */
    void *zctx;                       /* our ZeroMQ context (shared with the worker) */
    void *router;                     /* the broker's ROUTER */
    uint8_t ident[TC_IDENT_MAX];      /* the worker's routing id */
    size_t ident_len;                 /* 0 until READY */
    bool welcomed;                    /* READY was answered with WELCOME */
    br_decoder *dec;                  /* decodes what the worker sends */
    br_buf out;                       /* encodes what we send */
    br_buf scratch;                   /* a request body converted to msgpack */
    uv_timer_t wake;                  /* bounds one loop iteration */
    bool wake_open;                   /* wake is initialised and not closed */
    uint64_t next_id;                 /* ids of REQUESTs and JOBs */
    /* The answer being waited for. */
    uint64_t want_id;                     /* REQUEST id (0: none) */
    char want_job[32];                    /* JOB id ("": none) */
    bool got;                             /* it arrived */
    br_test_reply reply;                  /* a REQUEST's answer (strings in rpool) */
    br_test_job_result job;               /* a JOB's answer (strings in rpool) */
    tc_pool rpool;                        /* strings of the last answer */
    tc_pool recorded;                     /* strings of calls and jobs */
    br_test_call *calls;                  /* calls made */
    size_t ncalls, calls_cap;             /* entries used and allocated */
    br_test_job *jobs;                    /* jobs enqueued */
    size_t njobs, jobs_cap;               /* entries used and allocated */
    tc_forward forwards[TC_MAX_FORWARDS]; /* calls our worker serves itself */
    size_t nforwards;                     /* entries in forwards */
    tc_stub stubs[TC_MAX_STUBS];          /* canned answers */
    size_t nstubs;                        /* entries in stubs */
};

/* ---------------------------------------------------------------------------------- */
/* Sending.                                                                            */

static int send_msg(br_test *t, const br_msg *m)
{
    if (!t->ident_len)
        return BR_ECLOSED;
    t->out.len = 0;
    int rc = br_msg_encode(m, &t->out);
    if (rc != 0)
        return rc;
    if (zmq_send(t->router, t->ident, t->ident_len, ZMQ_SNDMORE) < 0 ||
        zmq_send(t->router, t->out.data, t->out.len, 0) < 0)
        return BR_EIO;
    return 0;
}

/* A REPLY to a CALL of the worker's. */
static void answer_call(br_test *t, uint64_t call_id, uint16_t status, br_str content_type,
                        br_str body)
{
    br_msg m = {.type = BR_MSG_REPLY};
    m.u.reply = (br_reply){.id = call_id, .status = status};
    m.u.reply.content_type = content_type;
    m.u.reply.body = body;
    send_msg(t, &m);
}

/* A {"detail": detail} REPLY to a CALL. */
static void answer_call_detail(br_test *t, uint64_t call_id, uint16_t status, const char *detail)
{
    br_writer *w = br_writer_new(0);
    if (w) {
        br_w_obj(w);
        br_w_key_cstr(w, "detail", detail);
        br_w_end(w);
    }
    br_str body = w ? br_writer_bytes(w) : (br_str){"", 0};
    answer_call(t, call_id, status, body.len ? br_str_c("application/msgpack") : br_str_c(""),
                body);
    br_writer_destroy(&w);
}

/* ---------------------------------------------------------------------------------- */
/* What the worker sends.                                                              */

static bool grow(void **items, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return true;
    size_t c = *cap ? *cap * 2 : 8;
    void *p = realloc(*items, c * size);
    if (!p)
        return false;
    *items = p;
    *cap = c;
    return true;
}

/* A body as the test sees it: JSON text for msgpack, the bytes otherwise. */
static const char *body_text(br_test *t, tc_pool *pool, br_str content_type, br_str body)
{
    (void)t;
    if (br_str_eq(content_type, "application/msgpack") && body.len) {
        const char *json = tc_msgpack_to_json(body, pool);
        if (json)
            return json;
    }
    const char *s = tc_pool_dup(pool, body.ptr, body.len);
    return s ? s : "";
}

static const tc_stub *find_stub(const br_test *t, br_str method, br_str path)
{
    for (size_t i = t->nstubs; i-- > 0;) {
        if (br_str_eq(method, t->stubs[i].method) && br_str_eq(path, t->stubs[i].path))
            return &t->stubs[i];
    }
    return NULL;
}

/* Rebuilds "path?a=b&c=d" of a CALL, as the handler asked for it. */
static const char *call_target(br_test *t, const br_request *m)
{
    size_t len = m->path.len + 1;
    for (uint32_t i = 0; i < m->nquery; i++)
        len += m->query[i].name.len + m->query[i].value.len + 2;
    char *s = malloc(len + 1);
    if (!s)
        return "";
    size_t n = 0;
    memcpy(s, m->path.ptr, m->path.len);
    n += m->path.len;
    for (uint32_t i = 0; i < m->nquery; i++) {
        s[n++] = i ? '&' : '?';
        memcpy(s + n, m->query[i].name.ptr, m->query[i].name.len);
        n += m->query[i].name.len;
        s[n++] = '=';
        memcpy(s + n, m->query[i].value.ptr, m->query[i].value.len);
        n += m->query[i].value.len;
    }
    const char *kept = tc_pool_dup(&t->recorded, s, n);
    free(s);
    return kept ? kept : "";
}

static void forward_request(br_test *t, const br_request *call, size_t index);

/* A CALL: recorded, then answered by a stub, by the worker's own route, or 404. */
static void on_call(br_test *t, const br_request *m)
{
    if (!grow((void **)&t->calls, &t->calls_cap, t->ncalls, sizeof(*t->calls))) {
        answer_call_detail(t, m->id, 503, "test client out of memory");
        return;
    }
    size_t index = t->ncalls++;
    br_test_call *c = &t->calls[index];
    c->method = tc_pool_dup(&t->recorded, m->method.ptr, m->method.len);
    c->path = call_target(t, m);
    c->body = body_text(t, &t->recorded, m->content_type, m->body);
    if (!c->method)
        c->method = "";
    const tc_stub *stub = find_stub(t, m->method, m->path);
    if (stub) {
        c->status = stub->status;
        br_str body = {(const char *)stub->body.data, (uint32_t)stub->body.len};
        answer_call(t, m->id, stub->status,
                    body.len ? br_str_c("application/msgpack") : br_str_c(""), body);
        return;
    }
    forward_request(t, m, index);
}

static void on_reply(br_test *t, const br_reply *r)
{
    for (size_t i = 0; i < t->nforwards; i++) {
        if (t->forwards[i].request_id != r->id)
            continue;
        t->calls[t->forwards[i].call].status = r->status;
        answer_call(t, t->forwards[i].call_id, r->status, r->content_type, r->body);
        t->forwards[i] = t->forwards[--t->nforwards];
        return;
    }
    if (r->id != t->want_id || t->got)
        return;
    br_test_reply *out = &t->reply;
    memset(out, 0, sizeof(*out));
    out->status = r->status;
    out->content_type = "";
    out->body = "";
    if (br_str_eq(r->content_type, "application/msgpack") && r->body.len) {
        const char *json = tc_msgpack_to_json(r->body, &t->rpool);
        const char *mp = tc_pool_dup(&t->rpool, r->body.ptr, r->body.len);
        if (json && mp) {
            out->content_type = "application/json";
            out->body = json;
            out->body_len = strlen(json);
            out->msgpack = (br_str){mp, r->body.len};
        } else {
            /* The gateway answers 502 when a structured body does not convert. */
            out->status = 502;
            out->content_type = "application/json";
            out->body = "{\"detail\":\"Bad Gateway: the worker's reply is not valid msgpack\"}";
            out->body_len = strlen(out->body);
        }
    } else {
        const char *body = tc_pool_dup(&t->rpool, r->body.ptr, r->body.len);
        const char *ctype = tc_pool_dup(&t->rpool, r->content_type.ptr, r->content_type.len);
        if (body && ctype) {
            out->body = body;
            out->body_len = r->body.len;
            out->content_type = ctype;
        }
    }
    char **h = r->nheaders ? calloc(2 * (size_t)r->nheaders, sizeof(*h)) : NULL;
    if (h) {
        for (uint32_t i = 0; i < r->nheaders; i++) {
            h[2 * i] = tc_pool_dup(&t->rpool, r->headers[i].name.ptr, r->headers[i].name.len);
            h[2 * i + 1] = tc_pool_dup(&t->rpool, r->headers[i].value.ptr, r->headers[i].value.len);
        }
        out->headers = (const char *const *)h;
        out->nheaders = r->nheaders;
        /* The array itself goes with the pool's strings at the next answer. */
        if (!grow((void **)&t->rpool.items, &t->rpool.cap, t->rpool.n, sizeof(char *))) {
            free(h);
            out->headers = NULL;
            out->nheaders = 0;
        } else {
            t->rpool.items[t->rpool.n++] = (char *)h;
        }
    }
    for (uint32_t i = 0; i < r->njobs; i++) {
        if (!grow((void **)&t->jobs, &t->jobs_cap, t->njobs, sizeof(*t->jobs)))
            break;
        const br_job_spec *s = &r->jobs[i];
        br_test_job *j = &t->jobs[t->njobs++];
        j->task = tc_pool_dup(&t->recorded, s->task.ptr, s->task.len);
        j->payload = body_text(t, &t->recorded, br_str_c("application/msgpack"), s->payload);
        j->idempotency_key =
            tc_pool_dup(&t->recorded, s->idempotency_key.ptr, s->idempotency_key.len);
        j->delay_ms = s->delay_ms;
        if (!j->task || !j->idempotency_key)
            t->njobs--;
    }
    t->got = true;
}

static void on_job_result(br_test *t, const br_job_result *r)
{
    if (!t->want_job[0] || !br_str_eq(r->job_id, t->want_job) || t->got)
        return;
    t->job.outcome = (br_test_outcome)r->outcome;
    t->job.result =
        r->result.len ? body_text(t, &t->rpool, br_str_c("application/msgpack"), r->result) : "";
    t->job.error = tc_pool_dup(&t->rpool, r->error.ptr, r->error.len);
    if (!t->job.error)
        t->job.error = "";
    t->got = true;
}

static void on_message(br_test *t, const void *data, size_t len)
{
    br_msg m;
    if (br_decoder_decode(t->dec, data, len, &m) != 0)
        return;
    switch (m.type) {
    case BR_MSG_READY: {
        br_msg welcome = {.type = BR_MSG_WELCOME};
        welcome.u.welcome.broker_id = br_str_c("barista-test");
        welcome.u.welcome.heartbeat_ms = TC_HEARTBEAT_MS;
        t->welcomed = send_msg(t, &welcome) == 0;
        break;
    }
    case BR_MSG_REPLY:
        on_reply(t, &m.u.reply);
        break;
    case BR_MSG_CALL:
        on_call(t, &m.u.request);
        break;
    case BR_MSG_CANCEL:
        for (size_t i = 0; i < t->nforwards; i++) {
            if (t->forwards[i].call_id == m.u.cancel.id) {
                br_msg c = {.type = BR_MSG_CANCEL, .u.cancel.id = t->forwards[i].request_id};
                send_msg(t, &c);
            }
        }
        break;
    case BR_MSG_JOB_RESULT:
        on_job_result(t, &m.u.job_result);
        break;
    case BR_MSG_GOODBYE: {
        /* The worker drains: acknowledge, as the broker does. */
        br_msg bye = {.type = BR_MSG_GOODBYE, .u.goodbye.reason = br_str_c("goodbye")};
        send_msg(t, &bye);
        break;
    }
    default: /* HEARTBEAT, CREDIT, JOB_ACK: nothing to do */
        break;
    }
}

/* Reads everything the worker has sent. */
static void drain(br_test *t)
{
    for (;;) {
        zmq_msg_t ident, body;
        zmq_msg_init(&ident);
        if (zmq_msg_recv(&ident, t->router, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&ident);
            return;
        }
        zmq_msg_init(&body);
        if (zmq_msg_more(&ident) && zmq_msg_recv(&body, t->router, 0) >= 0) {
            if (zmq_msg_size(&ident) <= TC_IDENT_MAX) {
                memcpy(t->ident, zmq_msg_data(&ident), zmq_msg_size(&ident));
                t->ident_len = zmq_msg_size(&ident);
            }
            on_message(t, zmq_msg_data(&body), zmq_msg_size(&body));
        }
        zmq_msg_close(&body);
        zmq_msg_close(&ident);
    }
}

static void on_wake(uv_timer_t *timer)
{
    (void)timer; /* only here to end a loop iteration */
}

/* Runs the worker until *done, the loop ends (BR_ECLOSED) or timeout_ms pass
 * (BR_EFULL). */
static int pump_until(br_test *t, const bool *done, uint64_t timeout_ms)
{
    uint64_t start = uv_hrtime();
    for (;;) {
        drain(t);
        if (*done)
            return 0;
        uint64_t elapsed = (uv_hrtime() - start) / 1000000u;
        if (elapsed >= timeout_ms)
            return BR_EFULL;
        if (t->wake_open)
            uv_timer_start(&t->wake, on_wake, timeout_ms - elapsed, 0);
        if (uv_run(&t->w->loop, UV_RUN_ONCE) == 0) {
            drain(t);
            return *done ? 0 : BR_ECLOSED;
        }
    }
}

/* Runs the worker until the awaited answer is there (see pump_until). */
static int pump(br_test *t, uint64_t timeout_ms)
{
    return pump_until(t, &t->got, timeout_ms);
}

/* ---------------------------------------------------------------------------------- */
/* Requests.                                                                           */

/* Sends a CALL's request to the worker's own route, or answers 404/405. */
static void forward_request(br_test *t, const br_request *call, size_t index)
{
    tc_pool pool = {0};
    tc_routed rt;
    char method[16], *target = NULL;
    snprintf(method, sizeof(method), "%.*s", (int)call->method.len, call->method.ptr);
    target = tc_pool_dup(&pool, call->path.ptr, call->path.len);
    int status = target ? tc_route((const br_service_spec *const *)t->services, t->nservices,
                                   method, target, &pool, &rt)
                        : 500;
    if (status != 200 || t->nforwards == TC_MAX_FORWARDS) {
        t->calls[index].status = (uint16_t)(status == 200 ? 503 : status);
        answer_call_detail(t, call->id, t->calls[index].status,
                           status == 404   ? "Not Found"
                           : status == 405 ? "Method Not Allowed"
                                           : "Service Unavailable");
        tc_pool_free(&pool);
        return;
    }
    br_msg m = {.type = BR_MSG_REQUEST};
    br_request *r = &m.u.request;
    *r = *call;
    r->id = ++t->next_id;
    r->service = br_str_c(rt.service->name);
    r->route = br_str_c(rt.route->path);
    r->params = rt.params;
    r->nparams = rt.nparams;
    if (!r->deadline_ms)
        r->deadline_ms = BR_TEST_DEFAULT_TIMEOUT_MS;
    t->forwards[t->nforwards++] = (tc_forward){r->id, call->id, index};
    send_msg(t, &m);
    tc_pool_free(&pool);
}

/* Lower-cases a header name in place. */
static void lower(char *s)
{
    for (; *s; s++) {
        if (*s >= 'A' && *s <= 'Z')
            *s = (char)(*s - 'A' + 'a');
    }
}

/* The gateway's own answer to a request that reaches no handler. */
static int answer_here(br_test *t, br_test_reply *out, uint16_t status, const char *json)
{
    memset(&t->reply, 0, sizeof(t->reply));
    t->reply.status = status;
    t->reply.content_type = "application/json";
    t->reply.body = json;
    t->reply.body_len = strlen(json);
    *out = t->reply;
    return 0;
}

int br_test_request(br_test *t, const br_test_req *rq, br_test_reply *out)
{
    if (!t || !rq || !rq->target || rq->target[0] != '/' || !out)
        return BR_EINVAL;
    tc_pool_clear(&t->rpool);
    memset(out, 0, sizeof(*out));
    const char *method = rq->method ? rq->method : "GET";
    tc_routed rt;
    int status = tc_route((const br_service_spec *const *)t->services, t->nservices, method,
                          rq->target, &t->rpool, &rt);
    if (status == 404)
        return answer_here(t, out, 404, "{\"detail\":\"Not Found\"}");
    if (status == 405)
        return answer_here(t, out, 405, "{\"detail\":\"Method Not Allowed\"}");
    if (status != 200)
        return BR_ENOMEM;

    br_pair headers[TC_MAX_PAIRS];
    uint32_t nheaders = 0;
    for (size_t i = 0; rq->headers && rq->headers[i] && nheaders < TC_MAX_PAIRS; i++) {
        const char *colon = strchr(rq->headers[i], ':');
        if (!colon)
            return BR_EINVAL;
        char *name = tc_pool_dup(&t->rpool, rq->headers[i], (size_t)(colon - rq->headers[i]));
        if (!name)
            return BR_ENOMEM;
        lower(name);
        const char *v = colon + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        headers[nheaders].name = br_str_c(name);
        headers[nheaders++].value = br_str_c(v);
    }

    size_t body_len = rq->body ? (rq->body_len ? rq->body_len : strlen(rq->body)) : 0;
    const char *ctype = rq->content_type ? rq->content_type : body_len ? "application/json" : "";
    br_str body = {rq->body, (uint32_t)body_len};
    br_str content_type = br_str_c(ctype);
    if (rt.route->body == BR_BODY_NONE) {
        body = (br_str){"", 0};
        content_type = body;
    } else if (rt.route->body == BR_BODY_MSGPACK && body_len &&
               strncmp(ctype, "application/json", 16) == 0) {
        if (tc_json_to_msgpack(rq->body, body_len, &t->scratch) != 0)
            return answer_here(t, out, 422,
                               "{\"detail\":[{\"type\":\"json_invalid\",\"loc\":[\"body\"],"
                               "\"msg\":\"JSON decode error\",\"input\":{}}]}");
        body = (br_str){(const char *)t->scratch.data, (uint32_t)t->scratch.len};
        content_type = br_str_c("application/msgpack");
    } else if (rt.route->body == BR_BODY_MSGPACK && body_len &&
               strcmp(ctype, "application/msgpack") != 0) {
        return answer_here(t, out, 415, "{\"detail\":\"Unsupported Media Type\"}");
    }

    uint32_t deadline = rq->timeout_ms         ? rq->timeout_ms
                        : rt.route->timeout_ms ? rt.route->timeout_ms
                                               : BR_TEST_DEFAULT_TIMEOUT_MS;
    br_msg m = {.type = BR_MSG_REQUEST};
    br_request *r = &m.u.request;
    r->id = ++t->next_id;
    r->service = br_str_c(rt.service->name);
    r->route = br_str_c(rt.route->path);
    r->method = br_str_c(strcmp(method, "HEAD") == 0 ? "GET" : method);
    r->path = rt.path;
    r->params = rt.params;
    r->nparams = rt.nparams;
    r->query = rt.query;
    r->nquery = rt.nquery;
    r->headers = headers;
    r->nheaders = nheaders;
    r->content_type = content_type;
    r->body = body;
    r->deadline_ms = deadline;
    t->want_id = r->id;
    t->got = false;
    int rc = send_msg(t, &m);
    if (rc != 0) {
        t->want_id = 0;
        return rc == BR_EIO ? BR_ECLOSED : rc;
    }
    rc = pump(t, deadline);
    if (rc == BR_EFULL) {
        /* The deadline passed: cancel, as the broker would, and let the 499 come back. */
        br_msg c = {.type = BR_MSG_CANCEL, .u.cancel.id = r->id};
        send_msg(t, &c);
        pump(t, TC_CANCEL_GRACE_MS);
        t->want_id = 0;
        char text[256];
        snprintf(text, sizeof(text),
                 "{\"detail\":\"Gateway Timeout: no reply from service '%s' within %u ms\"}",
                 rt.service->name, deadline);
        char *json = tc_pool_dup(&t->rpool, text, strlen(text));
        return json ? answer_here(t, out, 504, json) : BR_ENOMEM;
    }
    t->want_id = 0;
    if (rc != 0)
        return BR_ECLOSED;
    *out = t->reply;
    return 0;
}

int br_test_get(br_test *t, const char *target, br_test_reply *out)
{
    br_test_req rq = {.method = "GET", .target = target};
    return br_test_request(t, &rq, out);
}

int br_test_post(br_test *t, const char *target, const char *json, br_test_reply *out)
{
    br_test_req rq = {.method = "POST", .target = target, .body = json};
    return br_test_request(t, &rq, out);
}

const char *br_test_header(const br_test_reply *r, const char *name)
{
    for (size_t i = 0; i < r->nheaders; i++) {
        if (r->headers[2 * i] && strcasecmp(r->headers[2 * i], name) == 0)
            return r->headers[2 * i + 1];
    }
    return NULL;
}

/* ---------------------------------------------------------------------------------- */
/* Calls, stubs, jobs.                                                                 */

int br_test_stub(br_test *t, const char *method, const char *path, uint16_t status,
                 const char *json)
{
    tc_stub *s = NULL;
    for (size_t i = 0; i < t->nstubs && !s; i++) {
        if (strcmp(t->stubs[i].method, method) == 0 && strcmp(t->stubs[i].path, path) == 0)
            s = &t->stubs[i];
    }
    if (!s) {
        if (t->nstubs == TC_MAX_STUBS)
            return BR_EFULL;
        s = &t->stubs[t->nstubs];
        memset(s, 0, sizeof(*s));
        s->method = strdup(method);
        s->path = strdup(path);
        if (!s->method || !s->path) {
            free(s->method);
            free(s->path);
            return BR_ENOMEM;
        }
        t->nstubs++;
    }
    s->status = status;
    s->body.len = 0;
    if (json && tc_json_to_msgpack(json, strlen(json), &s->body) != 0) {
        s->body.len = 0;
        return BR_EINVAL;
    }
    return 0;
}

size_t br_test_ncalls(const br_test *t)
{
    return t->ncalls;
}

const br_test_call *br_test_call_at(const br_test *t, size_t i)
{
    return i < t->ncalls ? &t->calls[i] : NULL;
}

size_t br_test_njobs(const br_test *t)
{
    return t->njobs;
}

const br_test_job *br_test_job_at(const br_test *t, size_t i)
{
    return i < t->njobs ? &t->jobs[i] : NULL;
}

void br_test_clear(br_test *t)
{
    t->ncalls = 0;
    t->njobs = 0;
    tc_pool_clear(&t->recorded);
}

int br_test_run_job(br_test *t, const char *task, const char *payload_json, br_test_job_result *out)
{
    bool known = false;
    for (size_t i = 0; i < t->nservices && !known; i++) {
        for (size_t k = 0; k < t->services[i]->ntasks && !known; k++)
            known = strcmp(t->services[i]->tasks[k].name, task) == 0;
    }
    if (!known)
        return BR_ENOTFOUND;
    tc_pool_clear(&t->rpool);
    const char *json = payload_json ? payload_json : "null";
    if (tc_json_to_msgpack(json, strlen(json), &t->scratch) != 0)
        return BR_EINVAL;
    snprintf(t->want_job, sizeof(t->want_job), "test-job-%llu", (unsigned long long)++t->next_id);
    br_msg m = {.type = BR_MSG_JOB};
    m.u.job = (br_job){.job_id = br_str_c(t->want_job),
                       .task = br_str_c(task),
                       .payload = {(const char *)t->scratch.data, (uint32_t)t->scratch.len},
                       .attempt = 1,
                       .lease_ms = BR_TEST_DEFAULT_TIMEOUT_MS};
    t->got = false;
    int rc = send_msg(t, &m);
    if (rc == 0)
        rc = pump(t, BR_TEST_DEFAULT_TIMEOUT_MS);
    t->want_job[0] = '\0';
    if (rc != 0)
        return BR_ECLOSED;
    *out = t->job;
    return 0;
}

/* ---------------------------------------------------------------------------------- */
/* Life cycle.                                                                         */

static int set_options(br_worker *w, const char *const *options)
{
    for (size_t i = 0; options && options[i]; i += 2) {
        char why[256];
        if (!options[i + 1] ||
            br_worker_set_option(w, options[i], options[i + 1], why, sizeof(why)) != 0) {
            fprintf(stderr, "br_test_new: option %s: %s\n", options[i],
                    options[i + 1] ? why : "no value");
            return -1;
        }
    }
    return 0;
}

br_test *br_test_new(const br_service_spec *const *services, size_t n, const char *const *options)
{
    br_test *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    char endpoint[64];
    snprintf(endpoint, sizeof(endpoint), "inproc://barista-test-%p", (void *)t);
    int zero = 0;
    t->services = calloc(n ? n : 1, sizeof(*t->services));
    t->zctx = zmq_ctx_new();
    t->router = t->zctx ? zmq_socket(t->zctx, ZMQ_ROUTER) : NULL;
    t->dec = br_decoder_new(NULL);
    if (!t->services || !t->router || !t->dec ||
        zmq_setsockopt(t->router, ZMQ_LINGER, &zero, sizeof(zero)) != 0 ||
        zmq_bind(t->router, endpoint) != 0)
        goto fail;
    memcpy(t->services, services, n * sizeof(*services));
    t->nservices = n;
    br_worker_options o = {.connect = endpoint,
                           .worker_id = "barista-test",
                           .concurrency = TC_CONCURRENCY,
                           .heartbeat_ms = TC_HEARTBEAT_MS,
                           .drain_timeout_ms = TC_DRAIN_MS};
    t->w = br_worker_new(services, n, &o);
    if (!t->w || set_options(t->w, options) != 0)
        goto fail;
    if (br__worker_open(t->w, t->zctx) != 0)
        goto fail;
    if (t->w->closing) {
        /* An init failed (logged): nothing was announced; close what was opened. */
        uv_run(&t->w->loop, UV_RUN_DEFAULT);
        br__worker_close(t->w);
        goto fail;
    }
    uv_timer_init(&t->w->loop, &t->wake);
    t->wake_open = true;
    if (pump_until(t, &t->welcomed, BR_TEST_DEFAULT_TIMEOUT_MS) != 0) {
        fprintf(stderr, "br_test_new: the worker never said READY\n");
        br_test_destroy(&t);
        return NULL;
    }
    return t;
fail:
    br_worker_destroy(&t->w);
    if (t->router)
        zmq_close(t->router);
    if (t->zctx)
        zmq_ctx_term(t->zctx);
    br_decoder_destroy(&t->dec);
    free(t->services);
    free(t);
    return NULL;
}

void br_test_destroy(br_test **self_p)
{
    if (!self_p || !*self_p)
        return;
    br_test *t = *self_p;
    if (t->wake_open) {
        uv_close((uv_handle_t *)&t->wake, NULL);
        t->wake_open = false;
    }
    /* The drain: GOODBYE, acknowledged by drain(); in-flight work ends; fini runs. */
    br_worker_stop(t->w);
    uint64_t start = uv_hrtime();
    while (uv_run(&t->w->loop, UV_RUN_ONCE) != 0) {
        drain(t);
        if ((uv_hrtime() - start) / 1000000u > 2u * TC_DRAIN_MS + TC_CANCEL_GRACE_MS)
            break; /* a handler that never ends: leave its memory to the process */
    }
    int rc = br__worker_close(t->w);
    if (rc == 0)
        br_worker_destroy(&t->w);
    zmq_close(t->router);
    zmq_ctx_term(t->zctx);
    br_decoder_destroy(&t->dec);
    br_buf_free(&t->out);
    br_buf_free(&t->scratch);
    for (size_t i = 0; i < t->nstubs; i++) {
        free(t->stubs[i].method);
        free(t->stubs[i].path);
        br_buf_free(&t->stubs[i].body);
    }
    tc_pool_free(&t->rpool);
    tc_pool_free(&t->recorded);
    free(t->calls);
    free(t->jobs);
    free(t->services);
    free(t);
    *self_p = NULL;
}
