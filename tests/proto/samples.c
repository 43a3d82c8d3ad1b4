/*
 * samples.c - valid messages of every type in three shapes, and deep equality.
 */
#include <stdlib.h>
#include <string.h>

#include "samples.h"

#define S(lit)                                                                                     \
    {                                                                                              \
        lit, sizeof(lit) - 1                                                                       \
    }

/* The msgpack encoding of {"message":"hello world"}: a typical structured reply body. */
static const char hello_body[] = "\x81\xa7message\xabhello world";

/* Storage for the maximal shape, sized by the default limits. */
static br_pair max_pairs[3][256];
static br_service max_services[64];
static br_route max_routes[128];
static br_param max_params[32];
static br_str max_tasks[128];
static br_str max_public_tasks[128];
static br_job_spec max_jobs[64];

/* Schemas: {"type":"string","enum":["a","b"]} and
 * {"type":"object","properties":{"ms":{"type":"integer"}},"required":["ms"]}. */
#define ENUM_SCHEMA                                                                                \
    "\x82\xa4type\xa6string\xa4"                                                                   \
    "enum\x92\xa1"                                                                                 \
    "a\xa1"                                                                                        \
    "b"
#define BODY_SCHEMA                                                                                \
    "\x83\xa4type\xa6object\xaaproperties\x81\xa2ms\x81\xa4type\xa7integer\xa8required\x91\xa2ms"

static br_param hello_params[] = {
    {S("name"), BR_IN_PATH, BR_TYPE_STR, true, true, true, 1, 64, S("who to greet"), {0}, {0}},
};
static br_param sleep_params[] = {
    {S("ms"), BR_IN_QUERY, BR_TYPE_INT, true, true, true, 0, 60000, S("milliseconds"), {0}, {0}},
    {S("x-ratio"), BR_IN_HEADER, BR_TYPE_FLOAT, false, true, false, -1.5, 0, S(""), {0}, {0}},
    {S("mode"), BR_IN_COOKIE, BR_TYPE_STR, false, false, false, 0, 0, S(""), S(ENUM_SCHEMA),
     S("sleep-mode")},
};
static br_response sleep_responses[] = {
    {201, S("Created"), S(BODY_SCHEMA)},
    {404, S(""), {0}},
};
static br_route hello_routes[] = {
    {S("GET"), S("/hello"), 0,     BR_BODY_NONE, S("Say hello"), NULL, 0,   BR_AUTH_DEFAULT,
     S(""),    false,       {0},   false,        NULL,           0,    {0}, {0},
     0,        false,       false, {0},          false,          0},
    {S("GET"),
     S("/hello/{name}"),
     0,
     BR_BODY_NONE,
     S("Greet by name"),
     hello_params,
     1,
     BR_AUTH_REQUIRED,
     S("read write"),
     true,
     {0},
     false,
     NULL,
     0,
     {0},
     {0},
     0,
     false,
     false,
     {0},
     false,
     0},
};
static br_route sleep_routes[] = {
    {S("GET"),   S("/sleep"),
     61000,      BR_BODY_NONE,
     S("Sleep"), sleep_params,
     3,          BR_AUTH_NONE,
     S(""),      false,
     {0},        false,
     NULL,       0,
     {0},        {0},
     0,          false,
     false,      {0},
     false,      0},
    {S("POST"),
     S("/sleep"),
     0,
     BR_BODY_MSGPACK,
     S(""),
     NULL,
     0,
     BR_AUTH_OPTIONAL,
     S("admin"),
     false,
     S(BODY_SCHEMA),
     true,
     sleep_responses,
     2,
     {0},
     {0},
     0,
     false,
     false,
     {0},
     false,
     0},
};
static br_route counter_routes[] = {
    {.method = S("POST"),
     .path = S("/counters/{id}/increment"),
     .summary = S(""),
     .scopes = S(""),
     .actor_type = S("counter"),
     .actor_key = S("id"),
     .actor_idle_ms = 30000,
     .actor_reentrant = true},
};
static br_service services[] = {
    {.name = S("hello"), .kind = BR_KIND_IO, .routes = hello_routes, .nroutes = 2},
    {.name = S("sleep"),
     .kind = BR_KIND_IO,
     .routes = sleep_routes,
     .nroutes = 2,
     .has_cors = true,
     .cors = {S("https://app.example, https://admin.example"), S("GET, POST"), S("content-type"),
              S("x-total"), true, 300}},
    {.name = S("counter"), .kind = BR_KIND_IO, .routes = counter_routes, .nroutes = 1},
};
static br_str tasks[] = {S("email"), S("thumbnail")};
static br_str public_tasks[] = {S("thumbnail")};
static br_schedule_decl schedules[] = {{S("nightly"), S("email"), S("\x01"), 0, S("0 3 * * *"), 1}};

static br_pair path_params[] = {{S("name"), S("world")}};
static br_pair cookies[] = {{S("session"), S("abc")}};
static br_pair query[] = {{S("lang"), S("en")}};
static br_pair headers[] = {
    {S("host"), S("localhost:8000")},
    {S("user-agent"), S("wrk/4.2")},
    {S("accept"), S("*/*")},
    {S("accept-encoding"), S("gzip")},
    {S("accept-language"), S("en-GB")},
    {S("x-request-id"), S("7d1c0a5e")},
    {S("cache-control"), S("no-cache")},
    {S("x-forwarded-for"), S("10.0.0.7")},
};
static br_pair reply_headers[] = {{S("x-served-by"), S("hello")}};
static br_job_spec jobs[] = {{S("email"),
                              S("\x81\xa2to\xa5"
                                "a@b.c"),
                              S("signup-42"), 250}};

static void fill_maximal_lists(void)
{
    for (size_t l = 0; l < 3; l++) {
        for (size_t i = 0; i < 256; i++)
            max_pairs[l][i] = (br_pair){S("k"), S("v")};
    }
    for (size_t i = 0; i < 32; i++)
        max_params[i] = sleep_params[0];
    for (size_t i = 0; i < 128; i++) {
        max_routes[i] = hello_routes[1];
        max_tasks[i] = tasks[i % 2];
        max_public_tasks[i] = tasks[i % 2];
    }
    max_routes[0].params = max_params;
    max_routes[0].nparams = 32;
    for (size_t i = 0; i < 64; i++) {
        max_services[i] = (br_service){.name = S("svc"),
                                       .kind = BR_KIND_IO,
                                       .routes = max_routes,
                                       .nroutes = i == 0 ? 128 : 1};
        max_jobs[i] = jobs[0];
    }
}

static void sample_ready(sample_shape shape, br_ready *m)
{
    *m = (br_ready){
        S("host:4242:9f3e"), BR_KIND_IO, 1000,      1000, services,           3, tasks, 2,
        public_tasks,        1,          schedules, 1,    BR_FEATURE_WS_BATCH};
    if (shape == SAMPLE_EMPTY)
        *m = (br_ready){S(""), BR_KIND_CPU, 0, 0, NULL, 0, NULL, 0, NULL, 0, NULL, 0, 0};
    if (shape == SAMPLE_MAXIMAL) {
        m->services = max_services;
        m->nservices = 64;
        m->tasks = max_tasks;
        m->ntasks = 128;
        m->public_tasks = max_public_tasks;
        m->npublic_tasks = 128;
    }
}

static void sample_request(unsigned type, sample_shape shape, br_request *m)
{
    *m = (br_request){.id = 1,
                      .service = S("hello"),
                      .route = S("/hello/{name}"),
                      .method = S("GET"),
                      .path = S("/hello/world"),
                      .params = path_params,
                      .nparams = 1,
                      .query = query,
                      .nquery = 1,
                      .headers = headers,
                      .nheaders = 8,
                      .deadline_ms = 30000,
                      .trace = S("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
                      .request_id = S("req-7d1c0a5e"),
                      .identity = S("\x82\xa4"
                                    "kind\xa3"
                                    "jwt\xa3"
                                    "sub\xa5"
                                    "alice"),
                      .cookies = cookies,
                      .ncookies = 1};
    if (type == BR_MSG_CALL) {
        m->id = 9000;
        m->route = (br_str){NULL, 0};
        m->params = NULL;
        m->nparams = 0;
        if (shape == SAMPLE_MAXIMAL) {
            /* Field 17: an actor addressed by type and key. */
            m->actor_type = (br_str)S("counter");
            m->actor_key = (br_str)S("k42");
        }
    }
    if (shape == SAMPLE_EMPTY)
        *m = (br_request){.deadline_ms = 1};
    if (shape == SAMPLE_MAXIMAL) {
        *m = (br_request){.id = UINT64_MAX,
                          .service = S("echo"),
                          .route = S("/echo"),
                          .method = S("POST"),
                          .path = S("/echo"),
                          .params = max_pairs[0],
                          .nparams = 256,
                          .query = max_pairs[1],
                          .nquery = 256,
                          .headers = max_pairs[2],
                          .nheaders = 256,
                          .content_type = S("application/octet-stream"),
                          .body = S("\x00\x01\x02\xff"),
                          .deadline_ms = UINT32_MAX};
    }
}

static void sample_reply(sample_shape shape, br_reply *m)
{
    *m = (br_reply){
        1,    200, reply_headers, 1, S("application/msgpack"), {hello_body, sizeof hello_body - 1},
        jobs, 1};
    if (shape == SAMPLE_EMPTY)
        *m = (br_reply){.status = 100};
    if (shape == SAMPLE_MAXIMAL) {
        m->status = 599;
        m->headers = max_pairs[0];
        m->nheaders = 256;
        m->jobs = max_jobs;
        m->njobs = 64;
    }
}

void sample_msg(unsigned type, sample_shape shape, br_msg *msg)
{
    memset(msg, 0, sizeof *msg);
    msg->type = (uint8_t)type;
    if (shape == SAMPLE_MAXIMAL)
        fill_maximal_lists();
    bool empty = shape == SAMPLE_EMPTY;
    switch (type) {
    case BR_MSG_READY:
        sample_ready(shape, &msg->u.ready);
        break;
    case BR_MSG_WELCOME:
        msg->u.welcome =
            empty ? (br_welcome){0} : (br_welcome){S("broker-7f3a"), 1000, BR_FEATURE_WS_BATCH};
        break;
    case BR_MSG_REQUEST:
    case BR_MSG_CALL:
        sample_request(type, shape, &msg->u.request);
        break;
    case BR_MSG_REPLY:
        sample_reply(shape, &msg->u.reply);
        break;
    case BR_MSG_CREDIT:
        msg->u.credit.credit = empty ? 1 : 16;
        break;
    case BR_MSG_CANCEL:
        msg->u.cancel.id = empty ? 0 : 77;
        break;
    case BR_MSG_GOODBYE:
        msg->u.goodbye.reason = empty ? (br_str){0} : (br_str)S("draining");
        break;
    case BR_MSG_JOB:
        msg->u.job = empty ? (br_job){.attempt = 1, .lease_ms = 1}
                           : (br_job){S("j-000123"),
                                      S("email"),
                                      S("\x91\x01"),
                                      2,
                                      30000,
                                      S("\x81\xa3"
                                        "sub\xa5"
                                        "alice")};
        break;
    case BR_MSG_JOB_ACK:
        msg->u.job_ack.job_id = empty ? (br_str){0} : (br_str)S("j-000123");
        break;
    case BR_MSG_JOB_RESULT:
        msg->u.job_result = empty ? (br_job_result){0}
                                  : (br_job_result){S("j-000123"), BR_JOB_RETRY, S("\xc0"),
                                                    S("smtp: connection refused")};
        break;
    case BR_MSG_ACTOR_REQUEST:
        sample_request(BR_MSG_REQUEST, shape, &msg->u.actor_request.req);
        if (!empty) {
            msg->u.actor_request.actor_type = (br_str)S("counter");
            msg->u.actor_request.key = (br_str)S("k42");
            msg->u.actor_request.epoch = shape == SAMPLE_MAXIMAL ? UINT64_MAX : 7;
            msg->u.actor_request.activate = true;
            msg->u.actor_request.state = (br_str)S("\x2a");
            if (shape == SAMPLE_MAXIMAL) { /* field 18: a reminder's tick */
                msg->u.actor_request.req.tick_kind = BR_TICK_REMINDER;
                msg->u.actor_request.req.tick_name = (br_str)S("nightly");
            }
        } else {
            msg->u.actor_request.actor_type = (br_str)S("c");
        }
        break;
    case BR_MSG_ACTOR_REPLY:
        sample_reply(shape, &msg->u.actor_reply.reply);
        if (!empty) {
            msg->u.actor_reply.epoch = 7;
            msg->u.actor_reply.op = shape == SAMPLE_MAXIMAL ? BR_STATE_DELETE : BR_STATE_SET;
            msg->u.actor_reply.state = shape == SAMPLE_MAXIMAL ? (br_str){0} : (br_str)S("\x2b");
        }
        break;
    case BR_MSG_DEACTIVATE:
        if (!empty)
            msg->u.deactivate = (br_deactivate){S("counter"), S("k42"), 7};
        break;
    case BR_MSG_ACTOR_TIMER:
        if (!empty)
            msg->u.actor_timer = (br_actor_timer){S("counter"), S("k42"), 7,
                                                  S("nightly"), true,     shape == SAMPLE_MAXIMAL,
                                                  1500,         60000};
        else
            msg->u.actor_timer = (br_actor_timer){.actor_type = S("c"), .name = S("t")};
        break;
    case BR_MSG_JOB_PROGRESS:
        msg->u.job_progress = empty ? (br_job_progress){0}
                                    : (br_job_progress){S("j-000123"), true, 0.25, S("a quarter")};
        break;
    case BR_MSG_JOB_CANCEL:
        msg->u.job_cancel.job_id = empty ? (br_str){0} : (br_str)S("j-000123");
        break;
    case BR_MSG_JOB_HANDOFF:
        msg->u.job_handoff =
            empty ? (br_job_handoff){.attempt = 1}
                  : (br_job_handoff){S("j-000123"), shape == SAMPLE_MAXIMAL ? UINT32_MAX : 2,
                                     true,          BR_JOB_OK,
                                     S("\xa2ok"),   {0}};
        break;
    case BR_MSG_WORKFLOW:
        msg->u.workflow = empty ? (br_workflow){.canvas = S("\xc0")}
                                : (br_workflow){shape == SAMPLE_MAXIMAL ? UINT64_MAX : 9,
                                                S("\x81\xa4"
                                                  "task"
                                                  "\xa5"
                                                  "email"),
                                                S("j-000123"), S("\x80")};
        break;
    case BR_MSG_WORKFLOW_REPLY:
        msg->u.workflow_reply = empty ? (br_workflow_reply){.status = 202}
                                      : (br_workflow_reply){9, 422, {0}, S("a workflow is empty")};
        break;
    case BR_MSG_TASK_POLICY: {
        static br_task_policy policies[] = {
            {S("email"), 3, 500, 60000, 30000, 1000, 120000, 7, 2.5},
            {S("report"), 0, 0, 0, 0, 0, 0, 0, 0},
        };
        msg->u.task_policy = empty ? (br_task_policies){0} : (br_task_policies){policies, 2};
        break;
    }
    case BR_MSG_WS_OPEN: {
        br_msg_ws_open *o = &msg->u.ws_open;
        o->conn = shape == SAMPLE_MAXIMAL ? UINT64_MAX : empty ? 1 : 42;
        if (!empty) {
            o->service = (br_str)S("chat");
            o->route = (br_str)S("/chat/{room}");
            o->path = (br_str)S("/chat/lobby");
            o->subprotocol = (br_str)S("chat.v1");
            o->identity = (br_str)S("user-7");
            o->request_id = (br_str)S("req-1");
        }
        if (shape == SAMPLE_TYPICAL) {
            static br_pair ws_params[] = {{S("room"), S("lobby")}};
            static br_pair ws_headers[] = {{S("host"), S("example.com")},
                                           {S("sec-websocket-protocol"), S("chat.v1")}};
            o->params = ws_params;
            o->nparams = 1;
            o->headers = ws_headers;
            o->nheaders = 2;
        } else if (shape == SAMPLE_MAXIMAL) {
            o->params = max_pairs[0];
            o->query = max_pairs[1];
            o->headers = max_pairs[2];
            o->nparams = o->nquery = o->nheaders = 256;
        }
        break;
    }
    case BR_MSG_WS_MESSAGE:
        msg->u.ws_message = empty ? (br_msg_ws_message){.conn = 1}
                                  : (br_msg_ws_message){42, shape == SAMPLE_MAXIMAL, S("hello")};
        break;
    case BR_MSG_WS_CLOSE:
        msg->u.ws_close = empty ? (br_msg_ws_close){.conn = 1, .code = 1000}
                                : (br_msg_ws_close){42, 4999, S("going away")};
        break;
    case BR_MSG_WS_CREDIT:
        msg->u.ws_credit = (br_msg_ws_credit){empty ? 1 : 42, empty ? 1 : 16};
        break;
    case BR_MSG_WS_GROUP:
        msg->u.ws_group =
            empty ? (br_msg_ws_group){.op = BR_WS_JOIN, .group = S("g"), .conn = 0}
                  : (br_msg_ws_group){BR_WS_BROADCAST, S("lobby"), 42, false, S("hi all")};
        break;
    case BR_MSG_WS_BATCH:
        /* Two WS_CREDITs ([2, 33, 1, 1] and [2, 33, 42, 16]) and a REPLY ([2, 4, 5, 200,
         * [], "", b"", []]: feature 8), or one WS_CREDIT. */
        msg->u.ws_batch = empty ? (br_msg_ws_batch){S("\x94\x02\x21\x01\x01")}
                                : (br_msg_ws_batch){{"\x94\x02\x21\x01\x01\x94\x02\x21\x2a\x10"
                                                     "\x98\x02\x04\x05\xcc\xc8\x90\xa0\xc4\x00\x90",
                                                     21}};
        break;
    case BR_MSG_STREAM_START:
    case BR_MSG_CALL_STREAM_START: {
        static br_pair sse_headers[] = {{S("cache-control"), S("no-cache")}};
        msg->u.stream_start =
            empty ? (br_stream_head){.status = 200}
                  : (br_stream_head){77, 200, sse_headers, 1, S("text/event-stream")};
        break;
    }
    case BR_MSG_STREAM_CHUNK:
    case BR_MSG_CALL_STREAM_CHUNK:
        msg->u.stream_chunk = empty ? (br_stream_chunk){0}
                                    : (br_stream_chunk){77, S("id: 1\nevent: tick\ndata: {}\n\n")};
        break;
    case BR_MSG_STREAM_END:
    case BR_MSG_CALL_STREAM_END:
        msg->u.stream_end = empty ? (br_stream_fin){0} : (br_stream_fin){77, S("cancelled")};
        break;
    case BR_MSG_STREAM_WINDOW:
    case BR_MSG_CALL_STREAM_WINDOW:
        msg->u.stream_window = (br_stream_window){empty ? 0 : 77, empty ? 1 : 262144};
        break;
    default:
        break; /* HEARTBEAT has no fields */
    }
}

/* ---------------------------------------------------------------------------------- */
/* Hostile inputs: each stops at a declared count or length of about four billion.    */

#define H(what, lit)                                                                               \
    {                                                                                              \
        what, lit, sizeof(lit) - 1                                                                 \
    }

static const sample_hostile hostiles[] = {
    H("top-level array32 of extras", "\xdd\xff\xff\xff\xff\x01\x06"),
    H("extra map32", "\x93\x01\x06\xdf\xff\xff\xff\xff"),
    H("extra ext32", "\x93\x01\x06\xc9\xff\xff\xff\xff\x01"),
    H("extra array16", "\x93\x01\x06\xdc\xff\xff"),
    H("request service str32", "\x9f\x01\x03\x01\xdb\xff\xff\xff\xff"),
    H("request params array32", "\x9f\x01\x03\x01\xa1s\xa0\xa3GET\xa1/\xdd\xff\xff\xff\xff"),
    H("request query array16", "\x9f\x01\x03\x01\xa1s\xa0\xa3GET\xa1/\x90\xdc\xff\xff"),
    H("request headers array32",
      "\x9f\x01\x03\x01\xa1s\xa0\xa3GET\xa1/\x90\x90\xdd\xff\xff\xff\xff"),
    H("request body bin32",
      "\x9f\x01\x03\x01\xa1s\xa0\xa3GET\xa1/\x90\x90\x90\xa0\xc6\xff\xff\xff\xff"),
    H("request body str32",
      "\x9f\x01\x03\x01\xa1s\xa0\xa3GET\xa1/\x90\x90\x90\xa0\xdb\xff\xff\xff\xff"),
    H("pair with extras",
      "\x9f\x01\x03\x01\xa1s\xa0\xa3GET\xa1/\x91\xdd\xff\xff\xff\xff\xa1k\xa1v"),
    H("ready services array32", "\x98\x01\x01\xa1w\x00\x01\x01\xdd\xff\xff\xff\xff"),
    H("ready tasks array32", "\x98\x01\x01\xa1w\x00\x01\x01\x90\xdd\xff\xff\xff\xff"),
    H("ready public_tasks array32", "\x99\x01\x01\xa1w\x00\x01\x01\x90\x90\xdd\xff\xff\xff\xff"),
    H("service routes array32",
      "\x98\x01\x01\xa1w\x00\x01\x01\x91\x93\xa1s\x00\xdd\xff\xff\xff\xff"),
    H("route params array32",
      "\x98\x01\x01\xa1w\x00\x01\x01\x91\x93\xa1s\x00\x91\x96\xa3GET\xa1/\x00\x00\xa0"
      "\xdd\xff\xff\xff\xff"),
    H("reply jobs array32", "\x98\x01\x04\x01\xcc\xc8\x90\xa0\xc4\x00\xdd\xff\xff\xff\xff"),
    H("job payload bin32", "\x97\x01\x0a\xa1j\xa1t\xc6\xff\xff\xff\xff"),
};

const sample_hostile *sample_hostile_get(size_t i)
{
    return i < sizeof hostiles / sizeof hostiles[0] ? &hostiles[i] : NULL;
}

/* ---------------------------------------------------------------------------------- */
/* Equality.                                                                          */

static bool str_equal(br_str a, br_str b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static bool pairs_equal(const br_pair *a, uint32_t na, const br_pair *b, uint32_t nb)
{
    if (na != nb)
        return false;
    for (uint32_t i = 0; i < na; i++) {
        if (!str_equal(a[i].name, b[i].name) || !str_equal(a[i].value, b[i].value))
            return false;
    }
    return true;
}

static bool param_equal(const br_param *a, const br_param *b)
{
    return str_equal(a->name, b->name) && a->in == b->in && a->type == b->type &&
           a->required == b->required && a->has_min == b->has_min && a->has_max == b->has_max &&
           (!a->has_min || a->min == b->min) && (!a->has_max || a->max == b->max) &&
           str_equal(a->summary, b->summary) && str_equal(a->schema, b->schema) &&
           str_equal(a->alias, b->alias);
}

static bool route_equal(const br_route *a, const br_route *b)
{
    if (!str_equal(a->method, b->method) || !str_equal(a->path, b->path) ||
        a->timeout_ms != b->timeout_ms || a->body != b->body ||
        !str_equal(a->summary, b->summary) || a->nparams != b->nparams || a->auth != b->auth ||
        !str_equal(a->scopes, b->scopes) || a->forward_token != b->forward_token ||
        !str_equal(a->actor_type, b->actor_type) || !str_equal(a->actor_key, b->actor_key) ||
        a->actor_idle_ms != b->actor_idle_ms || a->actor_reentrant != b->actor_reentrant)
        return false;
    for (uint32_t i = 0; i < a->nparams; i++) {
        if (!param_equal(&a->params[i], &b->params[i]))
            return false;
    }
    if (!str_equal(a->body_schema, b->body_schema) || a->body_form != b->body_form ||
        a->nresponses != b->nresponses || a->websocket != b->websocket ||
        !str_equal(a->subprotocols, b->subprotocols) || a->stream_body != b->stream_body ||
        a->body_max != b->body_max)
        return false;
    for (uint32_t i = 0; i < a->nresponses; i++) {
        const br_response *x = &a->responses[i], *y = &b->responses[i];
        if (x->status != y->status || !str_equal(x->description, y->description) ||
            !str_equal(x->schema, y->schema))
            return false;
    }
    return true;
}

static bool ready_equal(const br_ready *a, const br_ready *b)
{
    if (!str_equal(a->worker_id, b->worker_id) || a->kind != b->kind ||
        a->capacity != b->capacity || a->heartbeat_ms != b->heartbeat_ms ||
        a->nservices != b->nservices || a->ntasks != b->ntasks ||
        a->npublic_tasks != b->npublic_tasks)
        return false;
    for (uint32_t i = 0; i < a->nservices; i++) {
        const br_service *x = &a->services[i], *y = &b->services[i];
        if (!str_equal(x->name, y->name) || x->kind != y->kind || x->nroutes != y->nroutes ||
            x->has_cors != y->has_cors)
            return false;
        if (x->has_cors &&
            (!str_equal(x->cors.origins, y->cors.origins) ||
             !str_equal(x->cors.methods, y->cors.methods) ||
             !str_equal(x->cors.headers, y->cors.headers) ||
             !str_equal(x->cors.expose, y->cors.expose) ||
             x->cors.credentials != y->cors.credentials || x->cors.max_age_s != y->cors.max_age_s))
            return false;
        for (uint32_t j = 0; j < x->nroutes; j++) {
            if (!route_equal(&x->routes[j], &y->routes[j]))
                return false;
        }
    }
    for (uint32_t i = 0; i < a->ntasks; i++) {
        if (!str_equal(a->tasks[i], b->tasks[i]))
            return false;
    }
    for (uint32_t i = 0; i < a->npublic_tasks; i++) {
        if (!str_equal(a->public_tasks[i], b->public_tasks[i]))
            return false;
    }
    if (a->nschedules != b->nschedules || a->features != b->features)
        return false;
    for (uint32_t i = 0; i < a->nschedules; i++) {
        const br_schedule_decl *x = &a->schedules[i], *y = &b->schedules[i];
        if (!str_equal(x->name, y->name) || !str_equal(x->task, y->task) ||
            !str_equal(x->payload, y->payload) || !str_equal(x->cron, y->cron) ||
            x->interval_ms != y->interval_ms || x->catch_up != y->catch_up)
            return false;
    }
    return true;
}

static bool request_equal(const br_request *a, const br_request *b)
{
    return a->id == b->id && str_equal(a->service, b->service) && str_equal(a->route, b->route) &&
           str_equal(a->method, b->method) && str_equal(a->path, b->path) &&
           pairs_equal(a->params, a->nparams, b->params, b->nparams) &&
           pairs_equal(a->query, a->nquery, b->query, b->nquery) &&
           pairs_equal(a->headers, a->nheaders, b->headers, b->nheaders) &&
           str_equal(a->content_type, b->content_type) && str_equal(a->body, b->body) &&
           a->deadline_ms == b->deadline_ms && str_equal(a->trace, b->trace) &&
           str_equal(a->request_id, b->request_id) && str_equal(a->identity, b->identity) &&
           pairs_equal(a->cookies, a->ncookies, b->cookies, b->ncookies) &&
           str_equal(a->actor_type, b->actor_type) && str_equal(a->actor_key, b->actor_key) &&
           a->tick_kind == b->tick_kind && str_equal(a->tick_name, b->tick_name);
}

static bool reply_equal(const br_reply *a, const br_reply *b)
{
    if (a->id != b->id || a->status != b->status ||
        !pairs_equal(a->headers, a->nheaders, b->headers, b->nheaders) ||
        !str_equal(a->content_type, b->content_type) || !str_equal(a->body, b->body) ||
        a->njobs != b->njobs)
        return false;
    for (uint32_t i = 0; i < a->njobs; i++) {
        const br_job_spec *x = &a->jobs[i], *y = &b->jobs[i];
        if (!str_equal(x->task, y->task) || !str_equal(x->payload, y->payload) ||
            !str_equal(x->idempotency_key, y->idempotency_key) || x->delay_ms != y->delay_ms)
            return false;
    }
    return true;
}

bool sample_equal(const br_msg *a, const br_msg *b)
{
    if (a->type != b->type)
        return false;
    const br_job *ja = &a->u.job, *jb = &b->u.job;
    const br_job_result *ra = &a->u.job_result, *rb = &b->u.job_result;
    switch (a->type) {
    case BR_MSG_READY:
        return ready_equal(&a->u.ready, &b->u.ready);
    case BR_MSG_WELCOME:
        return str_equal(a->u.welcome.broker_id, b->u.welcome.broker_id) &&
               a->u.welcome.heartbeat_ms == b->u.welcome.heartbeat_ms &&
               a->u.welcome.features == b->u.welcome.features;
    case BR_MSG_REQUEST:
    case BR_MSG_CALL:
        return request_equal(&a->u.request, &b->u.request);
    case BR_MSG_REPLY:
        return reply_equal(&a->u.reply, &b->u.reply);
    case BR_MSG_ACTOR_REQUEST: {
        const br_actor_request *x = &a->u.actor_request, *y = &b->u.actor_request;
        return str_equal(x->actor_type, y->actor_type) && str_equal(x->key, y->key) &&
               x->epoch == y->epoch && x->activate == y->activate &&
               str_equal(x->state, y->state) && request_equal(&x->req, &y->req);
    }
    case BR_MSG_ACTOR_REPLY: {
        const br_actor_reply *x = &a->u.actor_reply, *y = &b->u.actor_reply;
        return x->epoch == y->epoch && x->op == y->op && str_equal(x->state, y->state) &&
               reply_equal(&x->reply, &y->reply);
    }
    case BR_MSG_DEACTIVATE:
        return str_equal(a->u.deactivate.actor_type, b->u.deactivate.actor_type) &&
               str_equal(a->u.deactivate.key, b->u.deactivate.key) &&
               a->u.deactivate.epoch == b->u.deactivate.epoch;
    case BR_MSG_ACTOR_TIMER: {
        const br_actor_timer *x = &a->u.actor_timer, *y = &b->u.actor_timer;
        return str_equal(x->actor_type, y->actor_type) && str_equal(x->key, y->key) &&
               x->epoch == y->epoch && str_equal(x->name, y->name) && x->start == y->start &&
               x->durable == y->durable && x->due_ms == y->due_ms && x->period_ms == y->period_ms;
    }
    case BR_MSG_CREDIT:
        return a->u.credit.credit == b->u.credit.credit;
    case BR_MSG_CANCEL:
        return a->u.cancel.id == b->u.cancel.id;
    case BR_MSG_GOODBYE:
        return str_equal(a->u.goodbye.reason, b->u.goodbye.reason);
    case BR_MSG_JOB:
        return str_equal(ja->job_id, jb->job_id) && str_equal(ja->task, jb->task) &&
               str_equal(ja->payload, jb->payload) && ja->attempt == jb->attempt &&
               ja->lease_ms == jb->lease_ms && str_equal(ja->identity, jb->identity);
    case BR_MSG_JOB_ACK:
        return str_equal(a->u.job_ack.job_id, b->u.job_ack.job_id);
    case BR_MSG_JOB_RESULT:
        return str_equal(ra->job_id, rb->job_id) && ra->outcome == rb->outcome &&
               str_equal(ra->result, rb->result) && str_equal(ra->error, rb->error);
    case BR_MSG_JOB_PROGRESS:
        return str_equal(a->u.job_progress.job_id, b->u.job_progress.job_id) &&
               a->u.job_progress.has_progress == b->u.job_progress.has_progress &&
               (!a->u.job_progress.has_progress ||
                a->u.job_progress.progress == b->u.job_progress.progress) &&
               str_equal(a->u.job_progress.note, b->u.job_progress.note);
    case BR_MSG_JOB_CANCEL:
        return str_equal(a->u.job_cancel.job_id, b->u.job_cancel.job_id);
    case BR_MSG_JOB_HANDOFF:
        return str_equal(a->u.job_handoff.job_id, b->u.job_handoff.job_id) &&
               a->u.job_handoff.attempt == b->u.job_handoff.attempt &&
               a->u.job_handoff.ended == b->u.job_handoff.ended &&
               a->u.job_handoff.outcome == b->u.job_handoff.outcome &&
               str_equal(a->u.job_handoff.result, b->u.job_handoff.result) &&
               str_equal(a->u.job_handoff.error, b->u.job_handoff.error);
    case BR_MSG_WORKFLOW:
        return a->u.workflow.id == b->u.workflow.id &&
               str_equal(a->u.workflow.canvas, b->u.workflow.canvas) &&
               str_equal(a->u.workflow.parent_job, b->u.workflow.parent_job) &&
               str_equal(a->u.workflow.identity, b->u.workflow.identity);
    case BR_MSG_WORKFLOW_REPLY:
        return a->u.workflow_reply.id == b->u.workflow_reply.id &&
               a->u.workflow_reply.status == b->u.workflow_reply.status &&
               str_equal(a->u.workflow_reply.workflow_id, b->u.workflow_reply.workflow_id) &&
               str_equal(a->u.workflow_reply.detail, b->u.workflow_reply.detail);
    case BR_MSG_TASK_POLICY:
        if (a->u.task_policy.npolicies != b->u.task_policy.npolicies)
            return false;
        for (uint32_t i = 0; i < a->u.task_policy.npolicies; i++) {
            const br_task_policy *pa = &a->u.task_policy.policies[i],
                                 *pb = &b->u.task_policy.policies[i];
            if (!str_equal(pa->task, pb->task) || pa->max_attempts != pb->max_attempts ||
                pa->backoff_ms != pb->backoff_ms || pa->backoff_cap_ms != pb->backoff_cap_ms ||
                pa->lease_ms != pb->lease_ms || pa->queue_limit != pb->queue_limit ||
                pa->timeout_ms != pb->timeout_ms || pa->priority != pb->priority ||
                pa->rate != pb->rate)
                return false;
        }
        return true;
    case BR_MSG_WS_OPEN: {
        const br_msg_ws_open *x = &a->u.ws_open, *y = &b->u.ws_open;
        return x->conn == y->conn && str_equal(x->service, y->service) &&
               str_equal(x->route, y->route) && str_equal(x->path, y->path) &&
               pairs_equal(x->params, x->nparams, y->params, y->nparams) &&
               pairs_equal(x->query, x->nquery, y->query, y->nquery) &&
               pairs_equal(x->headers, x->nheaders, y->headers, y->nheaders) &&
               str_equal(x->subprotocol, y->subprotocol) && str_equal(x->identity, y->identity) &&
               str_equal(x->request_id, y->request_id);
    }
    case BR_MSG_WS_MESSAGE:
        return a->u.ws_message.conn == b->u.ws_message.conn &&
               a->u.ws_message.binary == b->u.ws_message.binary &&
               str_equal(a->u.ws_message.data, b->u.ws_message.data);
    case BR_MSG_WS_CLOSE:
        return a->u.ws_close.conn == b->u.ws_close.conn &&
               a->u.ws_close.code == b->u.ws_close.code &&
               str_equal(a->u.ws_close.reason, b->u.ws_close.reason);
    case BR_MSG_WS_CREDIT:
        return a->u.ws_credit.conn == b->u.ws_credit.conn &&
               a->u.ws_credit.credit == b->u.ws_credit.credit;
    case BR_MSG_WS_GROUP:
        return a->u.ws_group.op == b->u.ws_group.op &&
               str_equal(a->u.ws_group.group, b->u.ws_group.group) &&
               a->u.ws_group.conn == b->u.ws_group.conn &&
               a->u.ws_group.binary == b->u.ws_group.binary &&
               str_equal(a->u.ws_group.data, b->u.ws_group.data);
    case BR_MSG_WS_BATCH:
        return str_equal(a->u.ws_batch.messages, b->u.ws_batch.messages);
    case BR_MSG_STREAM_START:
    case BR_MSG_CALL_STREAM_START:
        return a->u.stream_start.id == b->u.stream_start.id &&
               a->u.stream_start.status == b->u.stream_start.status &&
               pairs_equal(a->u.stream_start.headers, a->u.stream_start.nheaders,
                           b->u.stream_start.headers, b->u.stream_start.nheaders) &&
               str_equal(a->u.stream_start.content_type, b->u.stream_start.content_type);
    case BR_MSG_STREAM_CHUNK:
    case BR_MSG_CALL_STREAM_CHUNK:
        return a->u.stream_chunk.id == b->u.stream_chunk.id &&
               str_equal(a->u.stream_chunk.data, b->u.stream_chunk.data);
    case BR_MSG_STREAM_END:
    case BR_MSG_CALL_STREAM_END:
        return a->u.stream_end.id == b->u.stream_end.id &&
               str_equal(a->u.stream_end.error, b->u.stream_end.error);
    case BR_MSG_STREAM_WINDOW:
    case BR_MSG_CALL_STREAM_WINDOW:
        return a->u.stream_window.id == b->u.stream_window.id &&
               a->u.stream_window.bytes == b->u.stream_window.bytes;
    default:
        return true; /* HEARTBEAT */
    }
}

/* ---------------------------------------------------------------------------------- */
/* The decode property.                                                               */

static bool all_zero(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        if (b[i])
            return false;
    }
    return true;
}

int sample_decode_check(const void *buf, size_t len)
{
    br_decoder *first = br_decoder_new(NULL);
    br_decoder *second = br_decoder_new(NULL);
    br_buf again = {0};
    br_msg a, b;
    if (!first || !second)
        abort();
    int rc = br_decoder_decode(first, buf, len, &a);
    if (rc < 0 && !all_zero(&a, sizeof a))
        rc = SAMPLE_BROKEN;
    if (rc == 0 &&
        (br_msg_encode(&a, &again) < 0 ||
         br_decoder_decode(second, again.data, again.len, &b) < 0 || !sample_equal(&a, &b)))
        rc = SAMPLE_BROKEN;
    br_buf_free(&again);
    br_decoder_destroy(&second);
    br_decoder_destroy(&first);
    return rc;
}
