/*
 * calls.c - service-to-service CALLs: a worker asks the broker for a route.
 *
 * A CALL is REQUEST-shaped, with an id the caller chose and no route or params: the
 * broker matches method + path in the router like an HTTP request, copies what the
 * frame holds into a gw_exchange (frames live only during the receive callback),
 * validates the declared params and dispatches it through the same queue, credit,
 * deadline and retry machinery.  Whatever answers - the target's REPLY, or a broker
 * error with a FastAPI-shaped detail as msgpack (400, 404, 405, 422, 502, 503, 504) -
 * goes back to the caller as REPLY(its id).  Calls spend the target worker's credit, never the
 * caller's; the caller may CANCEL one, and its calls are cancelled if it leaves.
 */
#include <stdlib.h>
#include <string.h>

#include "broker_int.h"
#include "json.h"
#include "params.h"

/* REPLY(id) carrying a broker error whose FastAPI-shaped JSON is json[0..len), sent
 * as msgpack: callers are workers, and workers never parse JSON (PROTOCOL.md 10.1). */
static void reply_error(gw_broker *b, gw_worker *caller, uint64_t id, int status, bool retry_after,
                        const void *json, size_t len)
{
    br_buf body = {.max = b->cfg.limits.max_body};
    br_pair retry = {br_str_c("retry-after"), br_str_c("1")};
    char err[GW_DETAIL_MAX];
    if (gw_json_to_msgpack(json, len, &body, err, sizeof(err)) != 0)
        body.len = 0;
    br_msg m = {.type = BR_MSG_REPLY,
                .u.reply = {.id = id,
                            .status = (uint16_t)status,
                            .headers = retry_after ? &retry : NULL,
                            .nheaders = retry_after ? 1 : 0,
                            .content_type = br_str_c(body.len ? "application/msgpack" : ""),
                            .body = {(const char *)body.data, (uint32_t)body.len}}};
    gw__broker_send(b, caller, NULL, 0, &m);
    br_buf_free(&body);
}

void gw__calls_reply_detail(gw_broker *b, gw_worker *caller, uint64_t id, int status,
                            bool retry_after, const char *detail)
{
    gw__broker_count_status(b, status);
    br_buf json = {.max = GW_DETAIL_MAX * 8};
    if (gw_json_append_detail(&json, detail) != 0)
        json.len = 0;
    reply_error(b, caller, id, status, retry_after, json.data, json.len);
    br_buf_free(&json);
}

void gw__calls_forward(gw_broker *b, gw_worker *caller, uint64_t id, const br_reply *r)
{
    br_msg m = {.type = BR_MSG_REPLY, .u.reply = *r};
    m.u.reply.id = id;
    /* Jobs a reply asks for are the gateway's business, not the caller's. */
    m.u.reply.jobs = NULL;
    m.u.reply.njobs = 0;
    gw__broker_send(b, caller, NULL, 0, &m);
}

/* Copies s to *cursor and advances it; the copy is not NUL-terminated. */
static br_str copy_str(char **cursor, br_str s)
{
    br_str out = {*cursor, s.len};
    if (s.len)
        memcpy(*cursor, s.ptr, s.len);
    *cursor += s.len;
    return out;
}

/* A call holding copies of everything m says, in one allocation: the struct, the pair
 * arrays, then the bytes (path, decoded path parameters, pairs, type, body).  NULL
 * when out of memory. */
static gw_exchange *call_from(gw_broker *b, const br_request *m, const gw_route_match *match,
                              gw_route_entry *e)
{
    size_t bytes = 2 * (size_t)m->path.len + m->content_type.len + m->body.len + m->request_id.len +
                   m->identity.len + m->method.len + m->actor_key.len;
    for (uint32_t i = 0; i < m->nquery; i++)
        bytes += m->query[i].name.len + m->query[i].value.len;
    for (uint32_t i = 0; i < m->nheaders; i++)
        bytes += m->headers[i].name.len + m->headers[i].value.len;
    size_t npairs = match->nparams + m->nquery + m->nheaders;
    size_t actor = e->actor_type[0] ? sizeof(gw_exchange_actor) : 0;
    gw_exchange *c = calloc(1, sizeof(*c) + actor + npairs * sizeof(br_pair) + bytes);
    if (!c)
        return NULL;
    c->broker = b;
    c->route = e;
    gw_list_init(&c->link);
    gw_list_init(&c->caller_link);
    if (actor)
        c->ax = (gw_exchange_actor *)(void *)(c + 1);
    c->params = (br_pair *)(void *)((char *)(c + 1) + actor);
    c->query = c->params + match->nparams;
    c->headers = c->query + m->nquery;
    char *cursor = (char *)(c->headers + m->nheaders);
    c->path = copy_str(&cursor, m->path);
    for (uint32_t i = 0; i < m->nquery; i++) {
        c->query[i].name = copy_str(&cursor, m->query[i].name);
        c->query[i].value = copy_str(&cursor, m->query[i].value);
    }
    c->nquery = m->nquery;
    for (uint32_t i = 0; i < m->nheaders; i++) {
        if (gw__is_hop_by_hop(m->headers[i].name.ptr, m->headers[i].name.len))
            continue;
        c->headers[c->nheaders].name = copy_str(&cursor, m->headers[i].name);
        c->headers[c->nheaders].value = copy_str(&cursor, m->headers[i].value);
        c->nheaders++;
    }
    c->content_type = copy_str(&cursor, m->content_type);
    c->body = copy_str(&cursor, m->body);
    /* The caller's request id and verified identity travel on to the target. */
    c->request_id = copy_str(&cursor, m->request_id);
    c->identity = copy_str(&cursor, m->identity);
    if (c->ax) {
        c->ax->method = copy_str(&cursor, m->method);
        c->ax->direct_key = copy_str(&cursor, m->actor_key);
    }
    c->scratch = cursor; /* m->path.len bytes left: decoded path parameters */
    c->scratch_cap = m->path.len;
    c->idempotent = br_str_eq(m->method, "GET") || br_str_eq(m->method, "HEAD");
    return c;
}

/* Prepared call c of `caller` goes on: trace, the caller's bookkeeping, admission with
 * the caller's remaining budget - never more than route e allows. */
static void call_admit(gw_broker *b, gw_worker *caller, const br_request *m, gw_exchange *c,
                       gw_route_entry *e)
{
    gw__exchange_trace(c, m->trace);
    c->caller = caller;
    c->caller_id = m->id;
    /* A streamed answer only for a caller that reads CALL_STREAM_*; any other gets it
     * gathered into one REPLY (stream.c). */
    c->call_stream = m->stream_window > 0 && caller->call_stream;
    c->caller_window = c->call_stream ? m->stream_window : 0;
    gw_list_push_back(&caller->outgoing, &c->caller_link);
    uint32_t budget = gw__route_budget(b, e);
    if (m->deadline_ms > 0 && m->deadline_ms < budget)
        budget = m->deadline_ms;
    gw__exchange_admit(c, budget);
}

/* A CALL that names an actor by type and key (field 17): no route is matched; it
 * goes to the key's activation and runs the type's on_call there (PROTOCOL.md 10.1). */
static void call_direct(gw_broker *b, gw_worker *caller, const br_request *m)
{
    char detail[GW_DETAIL_MAX];
    gw_route_entry *e = gw__actors_type_route(b, m->actor_type);
    if (!e) {
        snprintf(detail, sizeof(detail), "Not Found: no service serves actor type '%.*s'",
                 (int)(m->actor_type.len > 64 ? 64 : m->actor_type.len), m->actor_type.ptr);
        gw__calls_reply_detail(b, caller, m->id, 404, false, detail);
        return;
    }
    gw_route_match match = {.nparams = 0};
    gw_exchange *c = call_from(b, m, &match, e);
    if (!c) {
        gw__calls_reply_detail(b, caller, m->id, 503, true, "Service Unavailable: out of memory");
        return;
    }
    c->ax->direct = true; /* e is an actor type's route: c has its actor part */
    c->nparams = 0;
    call_admit(b, caller, m, c, e);
}

void gw__calls_handle(gw_broker *b, gw_worker *caller, const br_request *m)
{
    if (b->closing) {
        gw__calls_reply_detail(b, caller, m->id, 503, true,
                               "Service Unavailable: the gateway is shutting down");
        return;
    }
    if (m->actor_type.len) {
        if (m->method.len == 0 || m->method.len > GW_METHOD_MAX)
            gw__calls_reply_detail(b, caller, m->id, 400, false, "Bad Request: malformed method");
        else
            call_direct(b, caller, m);
        return;
    }
    char method[GW_METHOD_MAX + 1];
    if (m->method.len == 0 || m->method.len > GW_METHOD_MAX) {
        gw__calls_reply_detail(b, caller, m->id, 400, false, "Bad Request: malformed method");
        return;
    }
    memcpy(method, m->method.ptr, m->method.len);
    method[m->method.len] = '\0';
    gw_route_match match;
    char allow[128];
    int rc = gw_router_match(b->router, method, m->path.ptr ? m->path.ptr : "", m->path.len, &match,
                             allow, sizeof(allow));
    if (rc == BR_EINVAL) {
        gw__calls_reply_detail(b, caller, m->id, 405, false, "Method Not Allowed");
        return;
    }
    /* Only routes workers announced: the gateway's own (/healthz...) are not callable. */
    if (rc != 0 || match.route->handler != gw__dispatch_handler) {
        gw__calls_reply_detail(b, caller, m->id, 404, false, "Not Found");
        return;
    }
    gw_route_entry *e = match.route->data;
    gw_exchange *c = call_from(b, m, &match, e);
    if (!c) {
        gw__calls_reply_detail(b, caller, m->id, 503, true, "Service Unavailable: out of memory");
        return;
    }
    br_buf detail = {.max = b->cfg.limits.max_body};
    if (gw__exchange_path_params(c, &match, c->scratch, c->scratch_cap) != 0) {
        gw__calls_reply_detail(b, caller, m->id, 400, false,
                               "Malformed path: bad percent-encoding");
        gw__exchange_free(c);
        return;
    }
    rc = gw_params_validate(e->params, e->nparams, c->params, c->nparams, c->query, c->nquery,
                            c->headers, c->nheaders, &detail);
    if (rc != 0) {
        reply_error(b, caller, m->id, rc == BR_EVALUE ? 422 : 500, false, detail.data, detail.len);
        br_buf_free(&detail);
        gw__exchange_free(c);
        return;
    }
    br_buf_free(&detail);
    call_admit(b, caller, m, c, e);
}

void gw__calls_cancel(gw_broker *b, gw_worker *caller, uint64_t id)
{
    (void)b;
    for (gw_list *n = caller->outgoing.next; n != &caller->outgoing; n = n->next) {
        gw_exchange *c = GW_CONTAINER_OF(n, gw_exchange, caller_link);
        if (c->caller_id == id) {
            gw__exchange_abandon(c);
            return;
        }
    }
}

void gw__calls_caller_gone(gw_broker *b, gw_worker *caller)
{
    (void)b;
    while (!gw_list_empty(&caller->outgoing))
        gw__exchange_abandon(GW_CONTAINER_OF(caller->outgoing.next, gw_exchange, caller_link));
}
