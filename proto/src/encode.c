/*
 * encode.c - br_msg to msgpack bytes, through msgpack-c's packer.
 *
 * The packer writes through a callback into a br_buf that refuses to grow past its
 * maximum; the first refusal is remembered and every later write fails fast, so one
 * check at the end tells whether the whole message fit.  Field order is the order of
 * the structs in proto.h, which is the order PROTOCOL.md specifies.
 */
#include <msgpack.h>
#include <string.h>

#include "internal.h"

typedef br__enc enc;

int br__enc_write(void *data, const char *bytes, size_t len)
{
    enc *e = data;
    br_buf *buf = e->buf;
    if (len == 0) /* empty strings may come with a NULL pointer: nothing to copy */
        return e->err == 0 ? 0 : -1;
    /* The packer writes in pieces of a few bytes: when they fit in what is already
     * allocated (which never exceeds the maximum), copy them without the growth path. */
    if (e->err == 0 && len <= buf->cap - buf->len) {
        memcpy(buf->data + buf->len, bytes, len);
        buf->len += len;
        return 0;
    }
    if (e->err == 0)
        e->err = br_buf_append(buf, bytes, len);
    return e->err == 0 ? 0 : -1;
}

static void pack_str(msgpack_packer *pk, br_str s)
{
    msgpack_pack_str(pk, s.len);
    msgpack_pack_str_body(pk, s.ptr, s.len);
}

static void pack_bin(msgpack_packer *pk, br_str s)
{
    msgpack_pack_bin(pk, s.len);
    msgpack_pack_bin_body(pk, s.ptr, s.len);
}

static void pack_pairs(msgpack_packer *pk, const br_pair *pairs, uint32_t n)
{
    msgpack_pack_array(pk, n);
    for (uint32_t i = 0; i < n; i++) {
        msgpack_pack_array(pk, 2);
        pack_str(pk, pairs[i].name);
        pack_str(pk, pairs[i].value);
    }
}

/* The header of a message: the array, version and type. */
/* The envelope version the message is being written in (br_msg_encode_version). */
static uint8_t version_of(const msgpack_packer *pk)
{
    return ((const enc *)pk->data)->version;
}

static void pack_head(msgpack_packer *pk, uint8_t type)
{
    msgpack_pack_array(pk, 2 + br__msg_nfields(type));
    msgpack_pack_uint8(pk, version_of(pk));
    msgpack_pack_uint8(pk, type);
}

/* A schema: nil when absent, else its msgpack value as it is (br__schema_bytes_ok
 * checked that it is exactly one value). */
static void pack_schema(msgpack_packer *pk, br_str s)
{
    if (s.len == 0)
        msgpack_pack_nil(pk);
    else
        pk->callback(pk->data, s.ptr, s.len);
}

static void pack_bool(msgpack_packer *pk, bool v)
{
    if (v)
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
}

/* An optional bound: nil when absent, else a float64. */
static void pack_bound(msgpack_packer *pk, bool has, double v)
{
    if (has)
        msgpack_pack_double(pk, v);
    else
        msgpack_pack_nil(pk);
}

static void pack_route(msgpack_packer *pk, const br_route *r)
{
    /* A streamed-body route needs fields 12-13, a WebSocket route 14-15, an actor route
     * 16-17; fields before those that the route does not use (other features' optional
     * fields) are nil then, "absent". */
    bool actor = r->actor_type.len > 0;
    bool ws_fields = actor || r->websocket || r->subprotocols.len > 0;
    bool stream_fields = r->stream_body || r->body_max > 0;
    msgpack_pack_array(pk, actor ? 18 : ws_fields ? 16 : stream_fields ? 14 : 12);
    pack_str(pk, r->method);
    pack_str(pk, r->path);
    msgpack_pack_uint32(pk, r->timeout_ms);
    msgpack_pack_uint8(pk, r->body);
    pack_str(pk, r->summary);
    msgpack_pack_array(pk, r->nparams);
    for (uint32_t i = 0; i < r->nparams; i++) {
        const br_param *p = &r->params[i];
        msgpack_pack_array(pk, 9);
        pack_str(pk, p->name);
        msgpack_pack_uint8(pk, p->in);
        msgpack_pack_uint8(pk, p->type);
        pack_bool(pk, p->required);
        pack_bound(pk, p->has_min, p->min);
        pack_bound(pk, p->has_max, p->max);
        pack_str(pk, p->summary);
        pack_schema(pk, p->schema);
        pack_str(pk, p->alias);
    }
    msgpack_pack_uint8(pk, r->auth);
    pack_str(pk, r->scopes);
    pack_bool(pk, r->forward_token);
    pack_schema(pk, r->body_schema);
    msgpack_pack_array(pk, r->nresponses);
    for (uint32_t i = 0; i < r->nresponses; i++) {
        const br_response *resp = &r->responses[i];
        msgpack_pack_array(pk, 3);
        msgpack_pack_uint16(pk, resp->status);
        pack_str(pk, resp->description);
        pack_schema(pk, resp->schema);
    }
    pack_bool(pk, r->body_form);
    if (!stream_fields && !ws_fields)
        return;
    if (stream_fields) {
        pack_bool(pk, r->stream_body);
        msgpack_pack_uint64(pk, r->body_max);
    } else {
        msgpack_pack_nil(pk);
        msgpack_pack_nil(pk);
    }
    if (!ws_fields)
        return;
    pack_bool(pk, r->websocket);
    pack_str(pk, r->subprotocols);
    if (!actor)
        return;
    pack_str(pk, r->actor_type);
    msgpack_pack_array(pk, 3);
    pack_str(pk, r->actor_key);
    msgpack_pack_uint32(pk, r->actor_idle_ms);
    pack_bool(pk, r->actor_reentrant);
}

static void pack_cors(msgpack_packer *pk, const br_cors *c)
{
    msgpack_pack_array(pk, 6);
    pack_str(pk, c->origins);
    pack_str(pk, c->methods);
    pack_str(pk, c->headers);
    pack_str(pk, c->expose);
    pack_bool(pk, c->credentials);
    msgpack_pack_uint32(pk, c->max_age_s);
}

static void pack_ready(msgpack_packer *pk, const br_ready *m)
{
    /* public_tasks and schedules are optional and trailing: left out when empty, so
     * that a READY without them is byte for byte what older workers send (schedules
     * need public_tasks before them, empty or not). */
    uint32_t trailing = m->features ? 3 : m->nschedules ? 2 : m->npublic_tasks ? 1 : 0;
    msgpack_pack_array(pk, 2 + br__msg_nfields(BR_MSG_READY) + trailing);
    msgpack_pack_uint8(pk, version_of(pk));
    msgpack_pack_uint8(pk, BR_MSG_READY);
    pack_str(pk, m->worker_id);
    msgpack_pack_uint8(pk, m->kind);
    msgpack_pack_uint32(pk, m->capacity);
    msgpack_pack_uint32(pk, m->heartbeat_ms);
    msgpack_pack_array(pk, m->nservices);
    for (uint32_t i = 0; i < m->nservices; i++) {
        const br_service *s = &m->services[i];
        /* cors is optional and trailing: left out when the service has none. */
        msgpack_pack_array(pk, s->has_cors ? 4 : 3);
        pack_str(pk, s->name);
        msgpack_pack_uint8(pk, s->kind);
        msgpack_pack_array(pk, s->nroutes);
        for (uint32_t j = 0; j < s->nroutes; j++)
            pack_route(pk, &s->routes[j]);
        if (s->has_cors)
            pack_cors(pk, &s->cors);
    }
    msgpack_pack_array(pk, m->ntasks);
    for (uint32_t i = 0; i < m->ntasks; i++)
        pack_str(pk, m->tasks[i]);
    if (trailing == 0)
        return;
    msgpack_pack_array(pk, m->npublic_tasks);
    for (uint32_t i = 0; i < m->npublic_tasks; i++)
        pack_str(pk, m->public_tasks[i]);
    if (trailing == 1)
        return;
    msgpack_pack_array(pk, m->nschedules);
    for (uint32_t i = 0; i < m->nschedules; i++) {
        const br_schedule_decl *s = &m->schedules[i];
        msgpack_pack_array(pk, 6);
        pack_str(pk, s->name);
        pack_str(pk, s->task);
        pack_bin(pk, s->payload);
        msgpack_pack_uint64(pk, s->interval_ms);
        pack_str(pk, s->cron);
        msgpack_pack_uint32(pk, s->catch_up);
    }
    if (trailing == 3)
        msgpack_pack_uint32(pk, m->features);
}

/* Optional fields a REQUEST or CALL carries after the ones every peer knows: 14-16
 * always; 17 (actor), 18 (tick) and 19 (stream_window) only when set, so that other
 * messages stay as they were. */
static uint32_t request_optional_fields(const br_request *m)
{
    return m->stream_window ? 6 : m->tick_kind ? 5 : m->actor_type.len ? 4 : 3;
}

/* The fields of a REQUEST or CALL after version and type (ACTOR_REQUEST's too). */
static void pack_request_fields(msgpack_packer *pk, const br_request *m)
{
    msgpack_pack_uint64(pk, m->id);
    pack_str(pk, m->service);
    pack_str(pk, m->route);
    pack_str(pk, m->method);
    pack_str(pk, m->path);
    pack_pairs(pk, m->params, m->nparams);
    pack_pairs(pk, m->query, m->nquery);
    pack_pairs(pk, m->headers, m->nheaders);
    pack_str(pk, m->content_type);
    pack_bin(pk, m->body);
    msgpack_pack_uint32(pk, m->deadline_ms);
    pack_str(pk, m->trace);
    pack_str(pk, m->request_id);
    pack_bin(pk, m->identity);
    pack_pairs(pk, m->cookies, m->ncookies);
    uint32_t optional = request_optional_fields(m);
    if (optional >= 4) {
        if (m->actor_type.len) {
            msgpack_pack_array(pk, 2);
            pack_str(pk, m->actor_type);
            pack_str(pk, m->actor_key);
        } else {
            msgpack_pack_nil(pk);
        }
    }
    if (optional >= 5) {
        if (m->tick_kind) {
            msgpack_pack_array(pk, 2);
            msgpack_pack_uint8(pk, m->tick_kind);
            pack_str(pk, m->tick_name);
        } else {
            msgpack_pack_nil(pk);
        }
    }
    if (optional >= 6)
        msgpack_pack_uint32(pk, m->stream_window);
}

static void pack_request(msgpack_packer *pk, uint8_t type, const br_request *m)
{
    msgpack_pack_array(pk, 2 + br__msg_nfields(type) + request_optional_fields(m));
    msgpack_pack_uint8(pk, version_of(pk));
    msgpack_pack_uint8(pk, type);
    pack_request_fields(pk, m);
}

/* [v, 40, actor_type, key, epoch, activate, state, <REQUEST fields>]. */
static void pack_actor_request(msgpack_packer *pk, const br_actor_request *m)
{
    msgpack_pack_array(pk, 2 + br__msg_nfields(BR_MSG_ACTOR_REQUEST) +
                               request_optional_fields(&m->req));
    msgpack_pack_uint8(pk, version_of(pk));
    msgpack_pack_uint8(pk, BR_MSG_ACTOR_REQUEST);
    pack_str(pk, m->actor_type);
    pack_str(pk, m->key);
    msgpack_pack_uint64(pk, m->epoch);
    pack_bool(pk, m->activate);
    pack_bin(pk, m->state);
    pack_request_fields(pk, &m->req);
}

/* The fields of a REPLY after version and type (ACTOR_REPLY's too). */
static void pack_reply_fields(msgpack_packer *pk, const br_reply *m)
{
    msgpack_pack_uint64(pk, m->id);
    msgpack_pack_uint16(pk, m->status);
    pack_pairs(pk, m->headers, m->nheaders);
    pack_str(pk, m->content_type);
    pack_bin(pk, m->body);
    msgpack_pack_array(pk, m->njobs);
    for (uint32_t i = 0; i < m->njobs; i++) {
        const br_job_spec *j = &m->jobs[i];
        msgpack_pack_array(pk, 4);
        pack_str(pk, j->task);
        pack_bin(pk, j->payload);
        pack_str(pk, j->idempotency_key);
        msgpack_pack_uint32(pk, j->delay_ms);
    }
}

static void pack_reply(msgpack_packer *pk, const br_reply *m)
{
    pack_head(pk, BR_MSG_REPLY);
    pack_reply_fields(pk, m);
}

/* [v, 41, epoch, op, state, <REPLY fields>]. */
static void pack_actor_reply(msgpack_packer *pk, const br_actor_reply *m)
{
    pack_head(pk, BR_MSG_ACTOR_REPLY);
    msgpack_pack_uint64(pk, m->epoch);
    msgpack_pack_uint8(pk, m->op);
    pack_bin(pk, m->state);
    pack_reply_fields(pk, &m->reply);
}

static void pack_msg(msgpack_packer *pk, const br_msg *msg)
{
    switch (msg->type) {
    case BR_MSG_READY:
        pack_ready(pk, &msg->u.ready);
        break;
    case BR_MSG_WELCOME:
        /* features is optional and trailing: left out when none. */
        msgpack_pack_array(pk, 2 + br__msg_nfields(msg->type) + (msg->u.welcome.features ? 1 : 0));
        msgpack_pack_uint8(pk, version_of(pk));
        msgpack_pack_uint8(pk, msg->type);
        pack_str(pk, msg->u.welcome.broker_id);
        msgpack_pack_uint32(pk, msg->u.welcome.heartbeat_ms);
        if (msg->u.welcome.features)
            msgpack_pack_uint32(pk, msg->u.welcome.features);
        break;
    case BR_MSG_REQUEST:
    case BR_MSG_CALL:
        pack_request(pk, msg->type, &msg->u.request);
        break;
    case BR_MSG_REPLY:
        pack_reply(pk, &msg->u.reply);
        break;
    case BR_MSG_CREDIT:
        pack_head(pk, msg->type);
        msgpack_pack_uint32(pk, msg->u.credit.credit);
        break;
    case BR_MSG_HEARTBEAT:
        pack_head(pk, msg->type);
        break;
    case BR_MSG_CANCEL:
        pack_head(pk, msg->type);
        msgpack_pack_uint64(pk, msg->u.cancel.id);
        break;
    case BR_MSG_GOODBYE:
        pack_head(pk, msg->type);
        pack_str(pk, msg->u.goodbye.reason);
        break;
    case BR_MSG_JOB:
        /* The identity is an optional trailing field: left out when empty. */
        msgpack_pack_array(pk, 2 + br__msg_nfields(msg->type) + (msg->u.job.identity.len ? 1 : 0));
        msgpack_pack_uint8(pk, version_of(pk));
        msgpack_pack_uint8(pk, msg->type);
        pack_str(pk, msg->u.job.job_id);
        pack_str(pk, msg->u.job.task);
        pack_bin(pk, msg->u.job.payload);
        msgpack_pack_uint32(pk, msg->u.job.attempt);
        msgpack_pack_uint32(pk, msg->u.job.lease_ms);
        if (msg->u.job.identity.len)
            pack_bin(pk, msg->u.job.identity);
        break;
    case BR_MSG_JOB_ACK:
        pack_head(pk, msg->type);
        pack_str(pk, msg->u.job_ack.job_id);
        break;
    case BR_MSG_JOB_RESULT:
        pack_head(pk, msg->type);
        pack_str(pk, msg->u.job_result.job_id);
        msgpack_pack_uint8(pk, msg->u.job_result.outcome);
        pack_bin(pk, msg->u.job_result.result);
        pack_str(pk, msg->u.job_result.error);
        break;
    case BR_MSG_ACTOR_REQUEST:
        pack_actor_request(pk, &msg->u.actor_request);
        break;
    case BR_MSG_ACTOR_REPLY:
        pack_actor_reply(pk, &msg->u.actor_reply);
        break;
    case BR_MSG_DEACTIVATE:
        pack_head(pk, msg->type);
        pack_str(pk, msg->u.deactivate.actor_type);
        pack_str(pk, msg->u.deactivate.key);
        msgpack_pack_uint64(pk, msg->u.deactivate.epoch);
        break;
    case BR_MSG_ACTOR_TIMER:
        pack_head(pk, msg->type);
        pack_str(pk, msg->u.actor_timer.actor_type);
        pack_str(pk, msg->u.actor_timer.key);
        msgpack_pack_uint64(pk, msg->u.actor_timer.epoch);
        pack_str(pk, msg->u.actor_timer.name);
        pack_bool(pk, msg->u.actor_timer.start);
        pack_bool(pk, msg->u.actor_timer.durable);
        msgpack_pack_uint64(pk, msg->u.actor_timer.due_ms);
        msgpack_pack_uint64(pk, msg->u.actor_timer.period_ms);
        break;
    case BR_MSG_JOB_PROGRESS:
        pack_head(pk, msg->type);
        pack_str(pk, msg->u.job_progress.job_id);
        if (msg->u.job_progress.has_progress)
            msgpack_pack_double(pk, msg->u.job_progress.progress);
        else
            msgpack_pack_nil(pk);
        pack_str(pk, msg->u.job_progress.note);
        break;
    case BR_MSG_JOB_CANCEL:
        pack_head(pk, msg->type);
        pack_str(pk, msg->u.job_cancel.job_id);
        break;
    case BR_MSG_JOB_HANDOFF:
        pack_head(pk, msg->type);
        pack_str(pk, msg->u.job_handoff.job_id);
        msgpack_pack_uint32(pk, msg->u.job_handoff.attempt);
        pack_bool(pk, msg->u.job_handoff.ended);
        msgpack_pack_uint8(pk, msg->u.job_handoff.outcome);
        pack_bin(pk, msg->u.job_handoff.result);
        pack_str(pk, msg->u.job_handoff.error);
        break;
    case BR_MSG_WORKFLOW:
        pack_head(pk, msg->type);
        msgpack_pack_uint64(pk, msg->u.workflow.id);
        pack_bin(pk, msg->u.workflow.canvas);
        pack_str(pk, msg->u.workflow.parent_job);
        pack_bin(pk, msg->u.workflow.identity);
        break;
    case BR_MSG_WORKFLOW_REPLY:
        pack_head(pk, msg->type);
        msgpack_pack_uint64(pk, msg->u.workflow_reply.id);
        msgpack_pack_uint16(pk, msg->u.workflow_reply.status);
        pack_str(pk, msg->u.workflow_reply.workflow_id);
        pack_str(pk, msg->u.workflow_reply.detail);
        break;
    case BR_MSG_TASK_POLICY:
        pack_head(pk, msg->type);
        msgpack_pack_array(pk, msg->u.task_policy.npolicies);
        for (uint32_t i = 0; i < msg->u.task_policy.npolicies; i++) {
            const br_task_policy *p = &msg->u.task_policy.policies[i];
            msgpack_pack_array(pk, 9);
            pack_str(pk, p->task);
            msgpack_pack_uint32(pk, p->max_attempts);
            msgpack_pack_uint32(pk, p->backoff_ms);
            msgpack_pack_uint32(pk, p->backoff_cap_ms);
            msgpack_pack_uint32(pk, p->lease_ms);
            msgpack_pack_uint32(pk, p->queue_limit);
            msgpack_pack_uint32(pk, p->timeout_ms);
            msgpack_pack_uint8(pk, (uint8_t)p->priority);
            if (p->rate > 0)
                msgpack_pack_double(pk, p->rate);
            else
                msgpack_pack_nil(pk);
        }
        break;
    case BR_MSG_WS_OPEN: {
        const br_msg_ws_open *o = &msg->u.ws_open;
        pack_head(pk, msg->type);
        msgpack_pack_uint64(pk, o->conn);
        pack_str(pk, o->service);
        pack_str(pk, o->route);
        pack_str(pk, o->path);
        pack_pairs(pk, o->params, o->nparams);
        pack_pairs(pk, o->query, o->nquery);
        pack_pairs(pk, o->headers, o->nheaders);
        pack_str(pk, o->subprotocol);
        pack_bin(pk, o->identity);
        pack_str(pk, o->request_id);
        break;
    }
    case BR_MSG_WS_MESSAGE:
        pack_head(pk, msg->type);
        msgpack_pack_uint64(pk, msg->u.ws_message.conn);
        pack_bool(pk, msg->u.ws_message.binary);
        pack_bin(pk, msg->u.ws_message.data);
        break;
    case BR_MSG_WS_CLOSE:
        pack_head(pk, msg->type);
        msgpack_pack_uint64(pk, msg->u.ws_close.conn);
        msgpack_pack_uint16(pk, msg->u.ws_close.code);
        pack_str(pk, msg->u.ws_close.reason);
        break;
    case BR_MSG_WS_CREDIT:
        pack_head(pk, msg->type);
        msgpack_pack_uint64(pk, msg->u.ws_credit.conn);
        msgpack_pack_uint32(pk, msg->u.ws_credit.credit);
        break;
    case BR_MSG_WS_GROUP:
        pack_head(pk, msg->type);
        msgpack_pack_uint8(pk, msg->u.ws_group.op);
        pack_str(pk, msg->u.ws_group.group);
        msgpack_pack_uint64(pk, msg->u.ws_group.conn);
        pack_bool(pk, msg->u.ws_group.binary);
        pack_bin(pk, msg->u.ws_group.data);
        break;
    case BR_MSG_WS_BATCH:
        pack_head(pk, msg->type);
        pack_bin(pk, msg->u.ws_batch.messages);
        break;
    case BR_MSG_STREAM_START:
    case BR_MSG_CALL_STREAM_START:
        pack_head(pk, msg->type);
        msgpack_pack_uint64(pk, msg->u.stream_start.id);
        msgpack_pack_uint16(pk, msg->u.stream_start.status);
        pack_pairs(pk, msg->u.stream_start.headers, msg->u.stream_start.nheaders);
        pack_str(pk, msg->u.stream_start.content_type);
        break;
    case BR_MSG_STREAM_CHUNK:
    case BR_MSG_CALL_STREAM_CHUNK:
        pack_head(pk, msg->type);
        msgpack_pack_uint64(pk, msg->u.stream_chunk.id);
        pack_bin(pk, msg->u.stream_chunk.data);
        break;
    case BR_MSG_STREAM_END:
    case BR_MSG_CALL_STREAM_END:
        pack_head(pk, msg->type);
        msgpack_pack_uint64(pk, msg->u.stream_end.id);
        pack_str(pk, msg->u.stream_end.error);
        break;
    case BR_MSG_STREAM_WINDOW:
    case BR_MSG_CALL_STREAM_WINDOW:
        pack_head(pk, msg->type);
        msgpack_pack_uint64(pk, msg->u.stream_window.id);
        msgpack_pack_uint32(pk, msg->u.stream_window.bytes);
        break;
    }
}

int br_msg_encode(const br_msg *msg, br_buf *buf)
{
    return br_msg_encode_version(msg, BR_PROTO_VERSION, buf);
}

int br_msg_encode_version(const br_msg *msg, unsigned version, br_buf *buf)
{
    if (!msg || !buf)
        return BR_EINVAL;
    if (version < BR_PROTO_VERSION_MIN || version > BR_PROTO_VERSION)
        return BR_EVERSION;
    if (br__msg_known(msg->type) && !br_msg_type_in_version(msg->type, version))
        return BR_EMSGTYPE;
    int rc = br__msg_validate(msg);
    if (rc < 0)
        return rc;
    size_t start = buf->len;
    enc e = {buf, 0, (uint8_t)version};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &e, br__enc_write);
    pack_msg(&pk, msg);
    if (e.err < 0)
        buf->len = start;
    return e.err;
}
