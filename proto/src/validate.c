/*
 * validate.c - the protocol's range rules, checked in one place.
 *
 * The encoder runs these on what it is asked to send (a failure is the caller's bug:
 * BR_EINVAL) and the decoder on what it has read (a failure is the peer's: BR_EVALUE),
 * so both ends agree on what a valid message is.
 */
#include <math.h>

#include "internal.h"

/* A string or list in memory may only have a NULL pointer when it is empty. */
#define PRESENT(ptr, n) ((n) == 0 || (ptr) != NULL)

static bool str_ok(br_str s)
{
    return PRESENT(s.ptr, s.len);
}

static bool pairs_ok(const br_pair *pairs, uint32_t n)
{
    if (!PRESENT(pairs, n))
        return false;
    for (uint32_t i = 0; i < n; i++) {
        if (!str_ok(pairs[i].name) || !str_ok(pairs[i].value))
            return false;
    }
    return true;
}

static bool param_ok(const br_param *p)
{
    if (!str_ok(p->name) || !str_ok(p->summary) || !str_ok(p->alias) ||
        !br__schema_bytes_ok(p->schema))
        return false;
    if (p->in > BR_IN_COOKIE || p->type > BR_TYPE_BOOL)
        return false;
    if ((p->has_min && !isfinite(p->min)) || (p->has_max && !isfinite(p->max)))
        return false;
    return !(p->has_min && p->has_max && p->min > p->max);
}

static bool route_ok(const br_route *r)
{
    if (!str_ok(r->method) || r->method.len == 0 || !str_ok(r->path) || r->path.len == 0)
        return false;
    if (!str_ok(r->summary) || r->body > BR_BODY_MSGPACK || !PRESENT(r->params, r->nparams))
        return false;
    if (r->auth > BR_AUTH_REQUIRED || !str_ok(r->scopes) || !str_ok(r->subprotocols))
        return false;
    /* An actor route names the path parameter holding its key. */
    if (!str_ok(r->actor_type) || !str_ok(r->actor_key) ||
        (r->actor_type.len > 0 && r->actor_key.len == 0))
        return false;
    if (r->stream_body && r->body != BR_BODY_RAW)
        return false; /* a streamed body is bytes: the gateway converts none */
    for (uint32_t i = 0; i < r->nparams; i++) {
        if (!param_ok(&r->params[i]))
            return false;
    }
    if (!br__schema_bytes_ok(r->body_schema) || r->nresponses > BR_MAX_RESPONSES ||
        !PRESENT(r->responses, r->nresponses))
        return false;
    for (uint32_t i = 0; i < r->nresponses; i++) {
        const br_response *resp = &r->responses[i];
        if (resp->status < 100 || resp->status > 599 || !str_ok(resp->description) ||
            !br__schema_bytes_ok(resp->schema))
            return false;
    }
    return true;
}

/* A CORS text: at most BR_CORS_TEXT_MAX bytes of printable ASCII (no control byte), so
 * that it can go into a response header as it is. */
static bool cors_text_ok(br_str s)
{
    if (!str_ok(s) || s.len > BR_CORS_TEXT_MAX)
        return false;
    for (uint32_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        if (c < 0x20 || c >= 0x7f)
            return false;
    }
    return true;
}

/* True when the list holds the token "*" (spaces and tabs around it ignored). */
static bool cors_has_star(br_str s)
{
    uint32_t i = 0;
    while (i < s.len) {
        while (i < s.len && (s.ptr[i] == ' ' || s.ptr[i] == '\t' || s.ptr[i] == ','))
            i++;
        uint32_t start = i;
        while (i < s.len && s.ptr[i] != ',')
            i++;
        uint32_t end = i;
        while (end > start && (s.ptr[end - 1] == ' ' || s.ptr[end - 1] == '\t'))
            end--;
        if (end - start == 1 && s.ptr[start] == '*')
            return true;
    }
    return false;
}

#define CORS_STR_(x)       #x
#define CORS_STR(x)        CORS_STR_(x)
#define BR_CORS_TEXT_MAX_S CORS_STR(BR_CORS_TEXT_MAX)

const char *br_cors_check(const br_cors *c)
{
    const br_str texts[] = {c->origins, c->methods, c->headers, c->expose};
    static const char *const bad[] = {
        "cors origins: longer than " BR_CORS_TEXT_MAX_S " bytes or not printable ASCII",
        "cors methods: longer than " BR_CORS_TEXT_MAX_S " bytes or not printable ASCII",
        "cors headers: longer than " BR_CORS_TEXT_MAX_S " bytes or not printable ASCII",
        "cors expose: longer than " BR_CORS_TEXT_MAX_S " bytes or not printable ASCII",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        if (!cors_text_ok(texts[i]))
            return bad[i];
    }
    if (c->credentials && cors_has_star(c->origins))
        return "cors: origins \"*\" with credentials is refused by browsers; "
               "list the origins instead";
    return NULL;
}

static bool ready_ok(const br_ready *m)
{
    if (!str_ok(m->worker_id) || m->kind > BR_KIND_CPU)
        return false;
    if (!PRESENT(m->services, m->nservices) || !PRESENT(m->tasks, m->ntasks) ||
        !PRESENT(m->public_tasks, m->npublic_tasks) || !PRESENT(m->schedules, m->nschedules))
        return false;
    /* A schedule of a task the READY does not list, or with a bad interval or cron, is
     * well-formed: the gateway refuses it alone (logged). */
    for (uint32_t i = 0; i < m->nschedules; i++) {
        const br_schedule_decl *s = &m->schedules[i];
        if (!str_ok(s->name) || s->name.len == 0 || !str_ok(s->task) || !str_ok(s->cron) ||
            (s->payload.len > 0 && !s->payload.ptr))
            return false;
    }
    for (uint32_t i = 0; i < m->nservices; i++) {
        const br_service *s = &m->services[i];
        /* A service whose kind differs from the worker's is well-formed: the broker
         * refuses it with a GOODBYE that says why, which it could not do if decoding
         * failed here. */
        if (!str_ok(s->name) || s->kind > BR_KIND_CPU || !PRESENT(s->routes, s->nroutes))
            return false;
        if (s->has_cors && br_cors_check(&s->cors) != NULL)
            return false;
        for (uint32_t j = 0; j < s->nroutes; j++) {
            if (!route_ok(&s->routes[j]))
                return false;
        }
    }
    for (uint32_t i = 0; i < m->ntasks; i++) {
        if (!str_ok(m->tasks[i]))
            return false;
    }
    /* A public task the READY does not also list in tasks is well-formed: the gateway
     * ignores it (a worker cannot publish what it does not run). */
    for (uint32_t i = 0; i < m->npublic_tasks; i++) {
        if (!str_ok(m->public_tasks[i]))
            return false;
    }
    return true;
}

static bool request_ok(const br_request *m)
{
    return str_ok(m->service) && str_ok(m->route) && str_ok(m->method) && str_ok(m->path) &&
           pairs_ok(m->params, m->nparams) && pairs_ok(m->query, m->nquery) &&
           pairs_ok(m->headers, m->nheaders) && str_ok(m->content_type) && str_ok(m->body) &&
           m->deadline_ms >= 1 && str_ok(m->trace) && str_ok(m->request_id) &&
           str_ok(m->identity) && pairs_ok(m->cookies, m->ncookies) && str_ok(m->actor_type) &&
           str_ok(m->actor_key) && (m->actor_type.len == 0) == (m->actor_key.len == 0) &&
           m->tick_kind <= BR_TICK_REMINDER && str_ok(m->tick_name) &&
           (m->tick_kind == BR_TICK_NONE) == (m->tick_name.len == 0);
}

static bool reply_ok(const br_reply *m)
{
    if (m->status < 100 || m->status > 599 || !pairs_ok(m->headers, m->nheaders))
        return false;
    if (!str_ok(m->content_type) || !str_ok(m->body) || !PRESENT(m->jobs, m->njobs))
        return false;
    for (uint32_t i = 0; i < m->njobs; i++) {
        const br_job_spec *j = &m->jobs[i];
        if (!str_ok(j->task) || j->task.len == 0 || !str_ok(j->payload) ||
            !str_ok(j->idempotency_key))
            return false;
    }
    return true;
}

int br__msg_validate(const br_msg *msg)
{
    bool ok;
    switch (msg->type) {
    case BR_MSG_READY:
        ok = ready_ok(&msg->u.ready);
        break;
    case BR_MSG_WELCOME:
        ok = str_ok(msg->u.welcome.broker_id);
        break;
    case BR_MSG_REQUEST:
    case BR_MSG_CALL:
        ok = request_ok(&msg->u.request);
        break;
    case BR_MSG_REPLY:
        ok = reply_ok(&msg->u.reply);
        break;
    case BR_MSG_CREDIT:
        ok = msg->u.credit.credit >= 1;
        break;
    case BR_MSG_HEARTBEAT:
    case BR_MSG_CANCEL:
        ok = true;
        break;
    case BR_MSG_GOODBYE:
        ok = str_ok(msg->u.goodbye.reason);
        break;
    case BR_MSG_JOB:
        ok = str_ok(msg->u.job.job_id) && str_ok(msg->u.job.task) && str_ok(msg->u.job.payload) &&
             msg->u.job.attempt >= 1 && msg->u.job.lease_ms >= 1 && str_ok(msg->u.job.identity);
        break;
    case BR_MSG_JOB_ACK:
        ok = str_ok(msg->u.job_ack.job_id);
        break;
    case BR_MSG_JOB_RESULT:
        ok = str_ok(msg->u.job_result.job_id) && msg->u.job_result.outcome <= BR_JOB_FATAL &&
             str_ok(msg->u.job_result.result) && str_ok(msg->u.job_result.error);
        break;
    case BR_MSG_ACTOR_REQUEST: {
        const br_actor_request *a = &msg->u.actor_request;
        ok = str_ok(a->actor_type) && a->actor_type.len > 0 && str_ok(a->key) && str_ok(a->state) &&
             request_ok(&a->req);
        break;
    }
    case BR_MSG_ACTOR_REPLY: {
        const br_actor_reply *a = &msg->u.actor_reply;
        ok = a->op <= BR_STATE_DELETE && str_ok(a->state) && reply_ok(&a->reply);
        break;
    }
    case BR_MSG_DEACTIVATE:
        ok = str_ok(msg->u.deactivate.actor_type) && str_ok(msg->u.deactivate.key);
        break;
    case BR_MSG_ACTOR_TIMER: {
        const br_actor_timer *t = &msg->u.actor_timer;
        ok = str_ok(t->actor_type) && t->actor_type.len > 0 && str_ok(t->key) && str_ok(t->name) &&
             t->name.len > 0 && t->name.len <= BR_ACTOR_TIMER_NAME_MAX;
        break;
    }
    case BR_MSG_JOB_PROGRESS:
        ok = str_ok(msg->u.job_progress.job_id) && str_ok(msg->u.job_progress.note) &&
             (!msg->u.job_progress.has_progress || isfinite(msg->u.job_progress.progress));
        break;
    case BR_MSG_JOB_CANCEL:
        ok = str_ok(msg->u.job_cancel.job_id);
        break;
    case BR_MSG_JOB_HANDOFF:
        ok = str_ok(msg->u.job_handoff.job_id) && msg->u.job_handoff.attempt >= 1 &&
             msg->u.job_handoff.outcome <= BR_JOB_FATAL && str_ok(msg->u.job_handoff.result) &&
             str_ok(msg->u.job_handoff.error);
        break;
    case BR_MSG_WORKFLOW:
        ok = str_ok(msg->u.workflow.canvas) && msg->u.workflow.canvas.len > 0 &&
             str_ok(msg->u.workflow.parent_job) && str_ok(msg->u.workflow.identity);
        break;
    case BR_MSG_WORKFLOW_REPLY:
        ok = msg->u.workflow_reply.status >= 100 && msg->u.workflow_reply.status <= 599 &&
             str_ok(msg->u.workflow_reply.workflow_id) && str_ok(msg->u.workflow_reply.detail);
        break;
    case BR_MSG_TASK_POLICY:
        ok = PRESENT(msg->u.task_policy.policies, msg->u.task_policy.npolicies);
        for (uint32_t i = 0; ok && i < msg->u.task_policy.npolicies; i++) {
            const br_task_policy *p = &msg->u.task_policy.policies[i];
            ok = str_ok(p->task) && p->task.len > 0 && p->priority >= 0 && p->priority <= 255 &&
                 isfinite(p->rate) && p->rate >= 0;
        }
        break;
    case BR_MSG_WS_OPEN: {
        const br_msg_ws_open *o = &msg->u.ws_open;
        ok = o->conn != 0 && str_ok(o->service) && str_ok(o->route) && str_ok(o->path) &&
             pairs_ok(o->params, o->nparams) && pairs_ok(o->query, o->nquery) &&
             pairs_ok(o->headers, o->nheaders) && str_ok(o->subprotocol) && str_ok(o->identity) &&
             str_ok(o->request_id);
        break;
    }
    case BR_MSG_WS_MESSAGE:
        ok = msg->u.ws_message.conn != 0 && str_ok(msg->u.ws_message.data);
        break;
    case BR_MSG_WS_CLOSE:
        ok = msg->u.ws_close.conn != 0 && msg->u.ws_close.code >= 1000 &&
             msg->u.ws_close.code <= 4999 && str_ok(msg->u.ws_close.reason);
        break;
    case BR_MSG_WS_CREDIT:
        ok = msg->u.ws_credit.conn != 0 && msg->u.ws_credit.credit >= 1;
        break;
    case BR_MSG_WS_GROUP:
        ok = msg->u.ws_group.op <= BR_WS_BROADCAST && msg->u.ws_group.group.len > 0 &&
             str_ok(msg->u.ws_group.group) && str_ok(msg->u.ws_group.data);
        break;
    case BR_MSG_WS_BATCH:
        ok = br__ws_batch_ok(msg->u.ws_batch.messages);
        break;
    case BR_MSG_STREAM_START:
    case BR_MSG_CALL_STREAM_START:
        ok = msg->u.stream_start.status >= 200 && msg->u.stream_start.status <= 599 &&
             pairs_ok(msg->u.stream_start.headers, msg->u.stream_start.nheaders) &&
             str_ok(msg->u.stream_start.content_type);
        break;
    case BR_MSG_STREAM_CHUNK:
    case BR_MSG_CALL_STREAM_CHUNK:
        ok = str_ok(msg->u.stream_chunk.data);
        break;
    case BR_MSG_STREAM_END:
    case BR_MSG_CALL_STREAM_END:
        ok = str_ok(msg->u.stream_end.error);
        break;
    case BR_MSG_STREAM_WINDOW:
    case BR_MSG_CALL_STREAM_WINDOW:
        ok = msg->u.stream_window.bytes >= 1;
        break;
    default:
        ok = false;
        break;
    }
    return ok ? 0 : BR_EINVAL;
}
