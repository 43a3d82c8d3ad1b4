/*
 * intake.c - the broker's route handler: an HTTP request becomes a gw_exchange.
 *
 * Every route a worker announced is answered here.  The handler decodes the query
 * and the path parameters, checks them and the body against the route's contract
 * (contracts.h: 422 with every error, defaults and aliases filled in, the body
 * validated and converted when the route declares a schema), prepares the body by the
 * route's body mode (JSON to msgpack for MSGPACK routes),
 * picks the headers to forward and the traceparent, gives the call an id and a
 * deadline, and hands it to dispatch.c to send or queue.  docs/broker.md lists every
 * answer it can give.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "broker_int.h"
#include "json.h"
#include "params.h"

/* Case-insensitive: does text[0..len) contain needle? */
static bool contains_ci(const char *text, size_t len, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; i + n <= len; i++)
        if (strncasecmp(text + i, needle, n) == 0)
            return true;
    return false;
}

/* True when the media type of a Content-Type (parameters ignored) is `type`. */
static bool media_is(const char *ct, size_t len, const char *type)
{
    size_t n = 0;
    while (n < len && ct[n] != ';' && ct[n] != ' ' && ct[n] != '\t')
        n++;
    return n == strlen(type) && strncasecmp(ct, type, n) == 0;
}

static bool is_json_media(const char *ct, size_t len)
{
    size_t n = 0;
    while (n < len && ct[n] != ';' && ct[n] != ' ' && ct[n] != '\t')
        n++;
    return media_is(ct, len, "application/json") ||
           (n > 5 && strncasecmp(ct + n - 5, "+json", 5) == 0);
}

/* ---------------------------------------------------------------------------------- */
/* Building a call from an HTTP request.                                               */

/* A new call sized for req: its pair arrays and decoding scratch share its
 * allocation. */
static gw_exchange *call_new(gw_broker *b, gw_req *req, gw_route_entry *route)
{
    size_t max_pairs = b->cfg.limits.max_pairs;
    /* Every query pair takes at least two bytes ("a&"), so this bounds the count. */
    size_t nquery = req->query_len ? req->query_len / 2 + 1 : 0;
    if (nquery > max_pairs)
        nquery = max_pairs;
    size_t nheaders = req->nheaders < max_pairs ? req->nheaders : max_pairs;
    /* The contract may add a pair per declared parameter (a default, a value under its
     * name rather than its alias, a cookie) to the query, the headers or the cookies. */
    size_t fills = gw_contract_max_fills(route->contract, nquery + nheaders);
    size_t npairs = req->match.nparams + nquery + nheaders + 3 * fills;
    /* Decoded text is never longer than its source. */
    size_t scratch = req->query_len + req->path_len + 2;
    /* The optional parts right after the struct: the actor part for an actor type's
     * route, the body stream's for a body gw__dispatch_handler attaches (not a
     * WebSocket's). */
    size_t actor = route->actor_type[0] ? sizeof(gw_exchange_actor) : 0;
    size_t body = req->body_streamed && !route->websocket ? sizeof(gw_exchange_body) : 0;
    gw_exchange *c = calloc(1, sizeof(*c) + actor + body + npairs * sizeof(br_pair) +
                                   fills * sizeof(gw_fill) + scratch);
    if (!c)
        return NULL;
    char *part = (char *)(c + 1);
    if (actor)
        c->ax = (gw_exchange_actor *)(void *)part;
    if (body)
        c->sbody = (gw_exchange_body *)(void *)(part + actor);
    c->params = (br_pair *)(void *)(part + actor + body);
    c->query = c->params + req->match.nparams;
    c->headers = c->query + nquery + fills;
    c->cookies = c->headers + nheaders + fills;
    c->fills = (gw_fill *)(void *)(c->cookies + fills);
    c->scratch = (char *)(c->fills + fills);
    c->scratch_cap = scratch;
    c->query_cap = nquery;
    c->headers_cap = nheaders;
    c->fills_cap = fills;
    c->broker = b;
    c->req = req;
    c->route = route;
    c->path = (br_str){req->path, (uint32_t)req->path_len};
    gw_list_init(&c->link);
    gw_list_init(&c->caller_link);
    c->idempotent = strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0;
    c->converted.max = b->cfg.limits.max_body;
    return c;
}

/* Percent-decodes the query and the path parameters into the call's scratch space.
 * 0, or the client was answered 400 and an error is returned. */
static int call_decode_params(gw_exchange *c)
{
    gw_req *req = c->req;
    size_t npairs = 0;
    int rc =
        gw_req_query_parse(req, c->scratch, req->query_len + 1, c->query, c->query_cap, &npairs);
    if (rc != 0)
        return rc;
    c->nquery = (uint32_t)npairs;
    if (gw__exchange_path_params(c, &req->match, c->scratch + req->query_len + 1,
                                 c->scratch_cap - (req->query_len + 1)) != 0) {
        gw_req_respond_detail(req, 400, "Malformed path: bad percent-encoding");
        return BR_EVALUE;
    }
    return 0;
}

int gw__exchange_path_params(gw_exchange *c, const gw_route_match *match, char *dst, size_t cap)
{
    for (size_t i = 0; i < match->nparams; i++) {
        gw_path_param p = gw_route_match_param(match, i);
        size_t len = 0;
        if (gw_percent_decode(p.value, p.value_len, false, dst, cap, &len) != 0)
            return BR_EVALUE;
        /* Names point into the route, which lives as long as the broker. */
        c->params[i].name = (br_str){p.name, (uint32_t)p.name_len};
        c->params[i].value = (br_str){dst, (uint32_t)len};
        dst += len;
        cap -= len;
    }
    c->nparams = (uint32_t)match->nparams;
    return 0;
}

void gw__exchange_trace(gw_exchange *c, br_str given)
{
    if (given.len == GW_TRACE_LEN && given.ptr[2] == '-' && given.ptr[35] == '-' &&
        given.ptr[52] == '-') {
        memcpy(c->trace, given.ptr, GW_TRACE_LEN);
        return;
    }
    /* A fresh trace: version 00, random trace and parent ids, sampled. */
    static const char hex[] = "0123456789abcdef";
    gw_broker *b = c->broker;
    char *p = c->trace;
    memcpy(p, "00-", 3);
    for (int i = 0; i < 48; i++) {
        if (i % 16 == 0) {
            b->rng ^= b->rng << 13;
            b->rng ^= b->rng >> 7;
            b->rng ^= b->rng << 17;
        }
        p[3 + i + (i >= 32)] = hex[(b->rng >> ((i % 16) * 4)) & 15];
    }
    p[35] = '-';
    memcpy(p + 52, "-01", 4);
}

/* Collects the headers to forward (hop-by-hop and Content-Length left out), notes the
 * client's Accept, and picks up or makes the traceparent. */
static void call_headers(gw_exchange *c)
{
    const gw_req *req = c->req;
    br_str trace = {0};
    /* What the edge established: the request id, its trace context and the verified
     * caller travel to the worker; an inflated body loses its Content-Encoding, and a
     * token the route did not ask for stays at the gateway. */
    gw_edge_info edge;
    bool from_edge = gw_edge_req_info(req, &edge) == 0;
    c->request_id = edge.request_id;
    c->identity = edge.identity;
    for (size_t i = 0; i < req->nheaders; i++) {
        const gw_header *h = &req->headers[i];
        if ((edge.body_inflated && strcmp(h->name, "content-encoding") == 0) ||
            (edge.drop_authorization &&
             (strcmp(h->name, "authorization") == 0 || strcmp(h->name, "x-api-key") == 0)))
            continue;
        if (strcmp(h->name, "accept") == 0 &&
            contains_ci(h->value, h->value_len, "application/msgpack"))
            c->want_msgpack = true;
        if (strcmp(h->name, "traceparent") == 0)
            trace = (br_str){h->value, (uint32_t)h->value_len};
        if (gw__is_hop_by_hop(h->name, h->name_len) || strcmp(h->name, "content-length") == 0 ||
            c->nheaders == c->headers_cap)
            continue;
        c->headers[c->nheaders].name = (br_str){h->name, (uint32_t)h->name_len};
        c->headers[c->nheaders].value = (br_str){h->value, (uint32_t)h->value_len};
        c->nheaders++;
    }
    gw__exchange_trace(c, from_edge ? edge.trace : trace);
}

/* Sets the call's body by the route's body mode.  0, or answers the client (415, 422,
 * 413) and returns an error. */
static int call_body(gw_exchange *c)
{
    gw_req *req = c->req;
    uint8_t mode = c->route->body;
    if (mode == BR_BODY_NONE || (req->body_len == 0 && !req->body_streamed))
        return 0;
    const gw_header *ct = gw_req_header(req, "content-type");
    const char *type = ct ? ct->value : "";
    size_t type_len = ct ? ct->value_len : 0;
    if (mode == BR_BODY_RAW) {
        c->content_type = (br_str){type, (uint32_t)type_len};
        c->body = (br_str){req->body, (uint32_t)req->body_len};
        return 0;
    }
    if (media_is(type, type_len, "application/msgpack") ||
        media_is(type, type_len, "application/x-msgpack")) {
        c->content_type = br_str_c("application/msgpack");
        c->body = (br_str){req->body, (uint32_t)req->body_len};
        return 0;
    }
    if (type_len > 0 && !is_json_media(type, type_len)) {
        gw_req_respond_detail(req, 415,
                              "Unsupported Media Type: send application/json or "
                              "application/msgpack");
        return BR_EVALUE;
    }
    char err[GW_DETAIL_MAX];
    err[0] = '\0';
    int rc = gw_json_to_msgpack(req->body, req->body_len, &c->converted, err, sizeof(err));
    if (rc == BR_EVALUE) {
        gw_req_respond_json_invalid(req, err);
        return rc;
    }
    if (rc != 0) {
        gw_req_respond_detail(req, 413, "Request body too large or too deeply nested");
        return rc;
    }
    c->content_type = br_str_c("application/msgpack");
    c->body = (br_str){(const char *)c->converted.data, (uint32_t)c->converted.len};
    return 0;
}

/* Reads a body for a route with a body schema into msgpack: msgpack as it came, JSON
 * (or no content type) converted, a form for routes that take one.  *raw holds what
 * was converted.  0, or the client was answered (415, 422 json_invalid, 413) and an
 * error is returned. */
static int contract_body(gw_exchange *c, br_buf *raw, br_str *body)
{
    gw_req *req = c->req;
    const gw_contract *k = c->route->contract;
    const gw_header *ct = gw_req_header(req, "content-type");
    const char *type = ct ? ct->value : "";
    size_t type_len = ct ? ct->value_len : 0;
    if (media_is(type, type_len, "application/msgpack") ||
        media_is(type, type_len, "application/x-msgpack")) {
        *body = (br_str){req->body, (uint32_t)req->body_len};
        return 0;
    }
    int rc;
    if (gw_contract_takes_form(k) &&
        media_is(type, type_len, "application/x-www-form-urlencoded")) {
        size_t max = c->broker->cfg.limits.max_pairs, n = 0;
        br_pair *pairs = calloc(max, sizeof *pairs);
        char *text = malloc(req->body_len + 1);
        rc = pairs && text
                 ? gw_query_parse(req->body, req->body_len, text, req->body_len + 1, pairs, max, &n)
                 : BR_ENOMEM;
        if (rc == 0)
            rc = gw_contract_form_to_msgpack(k, pairs, n, raw);
        free(pairs);
        free(text);
        if (rc == BR_EVALUE)
            gw_req_respond_detail(req, 400, "Malformed form body: bad percent-encoding");
        else if (rc != 0)
            gw_req_respond_detail(req, 413, "Request body too large");
        if (rc != 0)
            return rc;
    } else if (type_len > 0 && !is_json_media(type, type_len)) {
        gw_req_respond_detail(req, 415,
                              gw_contract_takes_form(k)
                                  ? "Unsupported Media Type: send application/json, "
                                    "application/x-www-form-urlencoded or application/msgpack"
                                  : "Unsupported Media Type: send application/json or "
                                    "application/msgpack");
        return BR_EVALUE;
    } else {
        char err[GW_DETAIL_MAX];
        err[0] = '\0';
        rc = gw_json_to_msgpack(req->body, req->body_len, raw, err, sizeof(err));
        if (rc == BR_EVALUE) {
            gw_req_respond_json_invalid(req, err);
            return rc;
        }
        if (rc != 0) {
            gw_req_respond_detail(req, 413, "Request body too large or too deeply nested");
            return rc;
        }
    }
    *body = (br_str){(const char *)raw->data, (uint32_t)raw->len};
    return 0;
}

/* Adds what the contract check filled in to the lists the REQUEST carries. */
static void apply_fills(gw_exchange *c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const gw_fill *f = &c->fills[i];
        if (f->in == BR_IN_QUERY)
            c->query[c->nquery++] = f->kv;
        else if (f->in == BR_IN_HEADER)
            c->headers[c->nheaders++] = f->kv;
        else if (f->in == BR_IN_COOKIE)
            c->cookies[c->ncookies++] = f->kv;
    }
}

/* Checks the request against the route's contract: parameters always, the body when
 * the route declares a schema (then c->body is the converted msgpack).  0, or the
 * client was answered and an error is returned. */
static int call_contract(gw_exchange *c)
{
    gw_req *req = c->req;
    const gw_contract *k = c->route->contract;
    bool with_body = gw_contract_has_body(k);
    br_buf raw = {.max = c->broker->cfg.limits.max_body};
    /* msgpack is no longer than the JSON it comes from: one allocation up front. */
    if (with_body && req->body_len > 0 && br_buf_reserve(&raw, req->body_len + 64) != 0) {
        gw_req_respond_detail(req, 413, "Request body too large");
        return BR_ELIMIT;
    }
    gw_contract_req r = {c->params,  c->nparams,  c->query,          c->nquery,
                         c->headers, c->nheaders, req->body_len > 0, {0}};
    if (with_body && req->body_len > 0 && contract_body(c, &raw, &r.body) != 0) {
        br_buf_free(&raw);
        return BR_EVALUE;
    }
    if (!with_body)
        r.has_body = false;
    br_buf errors = {.max = GW_CONTRACT_MAX_ERROR_BODY};
    size_t nfills = 0;
    int rc = gw_contract_check(k, &r, &c->converted, c->fills, &nfills, &errors);
    br_buf_free(&raw);
    if (rc == BR_EVALUE)
        gw_req_respond(req, 422, NULL, 0, "application/json", errors.data, errors.len);
    else if (rc == BR_ENOMEM)
        gw_broker_respond_error(c->broker, req, 503, true, "Service Unavailable: out of memory");
    else if (rc == BR_ELIMIT)
        gw_req_respond_detail(req, 413, "Request body too large or too deeply nested");
    else if (rc == BR_EFULL)
        gw_req_respond_detail(req, 413,
                              "Payload Too Large: checking its patterns would take longer than "
                              "the gateway allows one request");
    else if (rc != 0)
        gw_req_respond_detail(req, 400, "Malformed msgpack body");
    br_buf_free(&errors);
    if (rc != 0)
        return rc;
    apply_fills(c, nfills);
    if (with_body && r.has_body) {
        c->content_type = br_str_c("application/msgpack");
        c->body = (br_str){(const char *)c->converted.data, (uint32_t)c->converted.len};
    }
    return 0;
}

uint32_t gw__route_budget(const gw_broker *b, const gw_route_entry *e)
{
    uint32_t budget = e->timeout_ms ? e->timeout_ms : b->cfg.default_timeout_ms;
    return budget < b->cfg.max_timeout_ms ? budget : b->cfg.max_timeout_ms;
}

/* The client left before it was answered. */
static void on_abort(gw_req *req, void *arg)
{
    (void)req;
    gw__exchange_abandon(arg);
}

/* Decodes, validates and fills in everything the REQUEST will carry.  0, or the
 * client was answered (400, 413, 415, 422) and an error is returned. */
static int call_prepare(gw_exchange *c)
{
    int rc = call_decode_params(c);
    if (rc != 0)
        return rc;
    call_headers(c);
    if (gw_contract_has_body(c->route->contract))
        return call_contract(c);
    rc = call_contract(c);
    return rc != 0 ? rc : call_body(c);
}

void gw__dispatch_handler(gw_req *req, void *route_data)
{
    gw_route_entry *e = route_data;
    gw_broker *b = e->arg;
    if (!b->started || b->closing) {
        gw_broker_respond_error(b, req, 503, true,
                                "Service Unavailable: the gateway is shutting down");
        return;
    }
    if (gw_service_live(e->service) == 0) {
        gw__dispatch_respond_unavailable(b, req, e->service);
        return;
    }
    gw_exchange *c = call_new(b, req, e);
    if (!c) {
        gw_broker_respond_error(b, req, 503, true, "Service Unavailable: out of memory");
        return;
    }
    if (call_prepare(c) != 0) {
        c->req = NULL; /* answered by call_prepare */
        gw__exchange_free(c);
        return;
    }
    if (e->websocket) {
        gw__ws_open(c);
        return;
    }
    /* Registered first: routing may answer (and free) the call at once. */
    gw_req_on_abort(req, on_abort, c);
    if (c->sbody)
        gw__body_attach(c);
    gw__exchange_admit(c, gw__route_budget(b, e));
}
