/*
 * dispatch.c - the life of one request in the broker.
 *
 * An HTTP request that matched an announced route becomes a gw_call: validated,
 * its body converted, given an id (the key of the broker's id map) and a deadline (a
 * node in the broker's deadline heap).  It is then either in flight at a worker (on
 * the worker's `calls` list, one credit spent) or waiting in its service's queue.  It
 * ends when the worker replies, or - while the client still waits - when the deadline
 * passes (504), the worker dies (retry or 502), or the client leaves.  A call whose
 * client was answered or left while the worker still holds it stays, "cancelled", on
 * the worker's list until the worker's REPLY returns the credit or the worker dies:
 * that is how the broker never has more requests at a worker than its credit.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "broker_int.h"
#include "json.h"
#include "params.h"

/* Length of a W3C traceparent: "00-" 32 hex "-" 16 hex "-" 2 hex. */
#define TRACE_LEN 55
/* Longest content type copied from a REPLY; a longer one becomes octet-stream. */
#define CONTENT_TYPE_MAX 255
/* Longest error detail the broker writes. */
#define DETAIL_MAX 512

typedef struct gw_call {
    uint64_t id;              /* REQUEST id, key in b->calls */
    gw_broker *broker;        /* owner */
    gw_req *req;              /* the waiting client; NULL once answered or gone */
    gw_route_entry *route;    /* the matched announced route */
    gw_worker *worker;        /* where it is in flight; NULL while queued */
    gw_list link;             /* in worker->calls or in the service's queue */
    gw_deadline deadline;     /* in b->deadlines while the client waits */
    uint32_t budget_ms;       /* the whole budget, for the 504 detail */
    bool idempotent;          /* GET or HEAD: may be retried once */
    bool retried;             /* already re-sent after a worker died */
    bool want_msgpack;        /* the client's Accept names application/msgpack */
    br_pair *params;          /* path parameters, percent-decoded into scratch */
    uint32_t nparams;
    br_pair *query;           /* query pairs, percent-decoded into scratch */
    uint32_t nquery;
    br_pair *headers;         /* forwarded headers (pointing into req) */
    uint32_t nheaders;
    br_str content_type;      /* body's media type, maybe empty */
    br_str body;              /* into req->body or `converted` */
    br_buf converted;         /* JSON body as msgpack (MSGPACK routes) */
    char *scratch;            /* decoded parameter text (in this allocation) */
    size_t scratch_cap;       /* bytes at scratch */
    size_t query_cap;         /* entries allocated at query */
    size_t headers_cap;       /* entries allocated at headers */
    char trace[TRACE_LEN + 1];/* traceparent sent to the worker */
} gw_call;

static bool is_hop_by_hop(const char *name, size_t len)
{
    static const char *const hop[] = {"connection", "keep-alive", "transfer-encoding", "te",
                                      "upgrade"};
    for (size_t i = 0; i < sizeof(hop) / sizeof(hop[0]); i++)
        if (strlen(hop[i]) == len && strncasecmp(name, hop[i], len) == 0)
            return true;
    return len >= 6 && strncasecmp(name, "proxy-", 6) == 0;
}

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
/* Answers the broker makes itself.                                                    */

/* Appends the NUL-terminated pieces to out; 0 or the first error. */
static int append_all(br_buf *out, const char *const *pieces, size_t n)
{
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = gw_buf_append(out, pieces[i], strlen(pieces[i]));
    return rc;
}

/* {"detail":DETAIL} with `status`; with Retry-After: 1 when retry_after is set. */
static void respond_detail(gw_broker *b, gw_req *req, int status, bool retry_after,
                           const char *detail)
{
    if (status == 502)
        b->stats.status_502++;
    else if (status == 503)
        b->stats.status_503++;
    else if (status == 504)
        b->stats.status_504++;
    if (!retry_after) {
        gw_req_respond_detail(req, status, detail);
        return;
    }
    static const gw_header retry = {"Retry-After", 11, "1", 1};
    br_buf body = {.max = DETAIL_MAX * 8};
    if (gw_buf_append(&body, "{\"detail\":", 10) == 0 &&
        gw_json_append_string(&body, detail, strlen(detail)) == 0 &&
        gw_buf_append(&body, "}", 1) == 0)
        gw_req_respond(req, status, &retry, 1, "application/json", body.data, body.len);
    else
        gw_req_respond_detail(req, status, detail);
    br_buf_free(&body);
}

static void respond_unavailable(gw_broker *b, gw_req *req, const gw_service *s)
{
    char detail[DETAIL_MAX];
    snprintf(detail, sizeof(detail), "Service '%s' is unavailable: no live worker", s->name);
    respond_detail(b, req, 503, true, detail);
}

/* FastAPI's answer to a body that is not JSON: 422 json_invalid at the error's char
 * position.  `err` is the converter's reason, "Expecting value: line 1 column 5 (char
 * 4)": the position comes from "(char N)" and ctx.error is the text before ": line". */
static void respond_json_invalid(gw_req *req, const char *err)
{
    const char *pos = strstr(err, "(char ");
    char at[24];
    snprintf(at, sizeof(at), "%lu", pos ? strtoul(pos + 6, NULL, 10) : 0ul);
    const char *cut = strstr(err, ": line");
    br_buf body = {.max = DETAIL_MAX * 8};
    const char *const head[] = {"{\"detail\":[{\"type\":\"json_invalid\",\"loc\":[\"body\",", at,
                                "],\"msg\":\"JSON decode error\",\"input\":{},\"ctx\":{\"error\":"};
    if (append_all(&body, head, 3) == 0 &&
        gw_json_append_string(&body, err, cut ? (size_t)(cut - err) : strlen(err)) == 0 &&
        gw_buf_append(&body, "}}]}", 4) == 0)
        gw_req_respond(req, 422, NULL, 0, "application/json", body.data, body.len);
    else
        gw_req_respond_detail(req, 422, "JSON decode error");
    br_buf_free(&body);
}

/* ---------------------------------------------------------------------------------- */
/* Call bookkeeping.                                                                   */

/* Frees c after taking it off every structure it is on.  c->req must be NULL or
 * answered already. */
static void call_free(gw_call *c)
{
    gw_broker *b = c->broker;
    if (c->worker) {
        c->worker->inflight--;
        c->worker = NULL;
    } else if (c->link.next != &c->link) {
        c->route->service->nqueued--;
    }
    gw_list_remove(&c->link);
    gw_deadline_heap_remove(&b->deadlines, &c->deadline);
    gw_idmap_take(b->calls, c->id);
    br_buf_free(&c->converted);
    free(c);
}

/* Answers c's client with a broker error and frees c (which must not be in flight). */
static void call_fail(gw_call *c, int status, bool retry_after, const char *detail)
{
    gw_req *req = c->req;
    c->req = NULL;
    if (req)
        respond_detail(c->broker, req, status, retry_after, detail);
    call_free(c);
}

/* Tells the worker holding c that nobody waits for it any more.  c stays on the
 * worker's list until its REPLY comes back. */
static void call_cancel(gw_call *c)
{
    gw_broker *b = c->broker;
    c->req = NULL;
    gw_deadline_heap_remove(&b->deadlines, &c->deadline);
    br_msg m = {.type = BR_MSG_CANCEL, .u.cancel = {.id = c->id}};
    if (gw_broker_send(b, c->worker, NULL, 0, &m) == 0)
        b->stats.cancels++;
}

/* Sends c to w.  0, or gw_broker_send's error (nothing changed then). */
static int call_send(gw_call *c, gw_worker *w)
{
    gw_broker *b = c->broker;
    uint64_t now = uv_now(b->loop);
    uint64_t left = c->deadline.when > now ? c->deadline.when - now : 1;
    const gw_req *req = c->req;
    br_msg m = {.type = BR_MSG_REQUEST};
    br_request *r = &m.u.request;
    r->id = c->id;
    r->service = br_str_c(c->route->service->name);
    r->route = br_str_c(c->route->path);
    /* HEAD reaches a GET route as GET: the gateway drops the body itself. */
    r->method = br_str_c(c->route->method);
    r->path = (br_str){req->path, (uint32_t)req->path_len};
    r->params = c->params;
    r->nparams = c->nparams;
    r->query = c->query;
    r->nquery = c->nquery;
    r->headers = c->headers;
    r->nheaders = c->nheaders;
    r->content_type = c->content_type;
    r->body = c->body;
    r->deadline_ms = left > UINT32_MAX ? UINT32_MAX : (uint32_t)left;
    r->trace = br_str_c(c->trace);
    int rc = gw_broker_send(b, w, NULL, 0, &m);
    if (rc != 0)
        return rc;
    if (c->link.next != &c->link)
        c->route->service->nqueued--;
    gw_list_remove(&c->link);
    gw_list_push_back(&w->calls, &c->link);
    c->worker = w;
    w->credit--;
    w->inflight++;
    b->stats.dispatched++;
    return 0;
}

/* Sends c to the least loaded live worker of its service or queues it (at the front
 * for a retry, which was admitted already; at the back, bounded, for a new one).
 * Answers the client itself when neither is possible. */
static void call_route(gw_call *c, bool front)
{
    gw_broker *b = c->broker;
    gw_service *s = c->route->service;
    /* A new request waits behind queued ones, so that the queue stays FIFO. */
    while (front || gw_list_empty(&s->queue)) {
        gw_worker *w = gw_registry_pick(s);
        if (!w)
            break;
        int rc = call_send(c, w);
        if (rc == 0)
            return;
        if (!gw_broker_send_failed(rc)) {
            call_fail(c, rc == BR_ELIMIT ? 413 : 500, false,
                      rc == BR_ELIMIT ? "Request Entity Too Large" : "Internal Server Error");
            return;
        }
        /* w is marked lost now: pick another one. */
    }
    if (gw_service_live(s) == 0) {
        gw_req *req = c->req;
        c->req = NULL;
        respond_unavailable(b, req, s);
        call_free(c);
        return;
    }
    if (!front && s->nqueued >= b->cfg.queue_limit) {
        char detail[DETAIL_MAX];
        snprintf(detail, sizeof(detail),
                 "Service '%s' is overloaded: %zu requests are waiting already", s->name,
                 s->nqueued);
        call_fail(c, 503, true, detail);
        return;
    }
    if (front)
        gw_list_push_front(&s->queue, &c->link);
    else
        gw_list_push_back(&s->queue, &c->link);
    s->nqueued++;
}

void gw_dispatch_pump(gw_broker *b, gw_service *s)
{
    while (!gw_list_empty(&s->queue)) {
        gw_worker *w = gw_registry_pick(s);
        if (!w)
            break;
        gw_call *c = GW_CONTAINER_OF(s->queue.next, gw_call, link);
        int rc = call_send(c, w);
        if (rc != 0 && !gw_broker_send_failed(rc))
            call_fail(c, rc == BR_ELIMIT ? 413 : 500, false,
                      rc == BR_ELIMIT ? "Request Entity Too Large" : "Internal Server Error");
    }
    if (gw_service_live(s) > 0)
        return;
    while (!gw_list_empty(&s->queue)) {
        gw_call *c = GW_CONTAINER_OF(s->queue.next, gw_call, link);
        gw_req *req = c->req;
        c->req = NULL;
        respond_unavailable(b, req, s);
        call_free(c);
    }
}

/* ---------------------------------------------------------------------------------- */
/* Building a call from an HTTP request.                                               */

/* A new call sized for req: its pair arrays and decoding scratch share its
 * allocation. */
static gw_call *call_new(gw_broker *b, gw_req *req, gw_route_entry *route)
{
    size_t max_pairs = b->cfg.limits.max_pairs;
    /* Every query pair takes at least two bytes ("a&"), so this bounds the count. */
    size_t nquery = req->query_len ? req->query_len / 2 + 1 : 0;
    if (nquery > max_pairs)
        nquery = max_pairs;
    size_t nheaders = req->nheaders < max_pairs ? req->nheaders : max_pairs;
    size_t npairs = req->match.nparams + nquery + nheaders;
    /* Decoded text is never longer than its source. */
    size_t scratch = req->query_len + req->path_len + 2;
    gw_call *c = calloc(1, sizeof(*c) + npairs * sizeof(br_pair) + scratch);
    if (!c)
        return NULL;
    c->params = (br_pair *)(void *)(c + 1);
    c->query = c->params + req->match.nparams;
    c->headers = c->query + nquery;
    c->scratch = (char *)(c->headers + nheaders);
    c->scratch_cap = scratch;
    c->query_cap = nquery;
    c->headers_cap = nheaders;
    c->broker = b;
    c->req = req;
    c->route = route;
    gw_list_init(&c->link);
    c->idempotent = strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0;
    c->converted.max = b->cfg.limits.max_body;
    return c;
}

/* Percent-decodes the query and the path parameters into the call's scratch space.
 * 0, or the detail of a 400 answer. */
static const char *call_decode_params(gw_call *c)
{
    const gw_req *req = c->req;
    size_t npairs = 0;
    int rc = gw_query_parse(req->query, req->query_len, c->scratch, req->query_len + 1,
                            c->query, c->query_cap, &npairs);
    if (rc == BR_ELIMIT)
        return "Too many query parameters";
    if (rc != 0)
        return "Malformed query string: bad percent-encoding";
    c->nquery = (uint32_t)npairs;
    char *dst = c->scratch + req->query_len + 1;
    size_t cap = c->scratch_cap - (req->query_len + 1);
    for (size_t i = 0; i < req->match.nparams; i++) {
        const gw_path_param *p = &req->match.params[i];
        size_t len = 0;
        if (gw_percent_decode(p->value, p->value_len, false, dst, cap, &len) != 0)
            return "Malformed path: bad percent-encoding";
        c->params[i].name = (br_str){p->name, (uint32_t)p->name_len};
        c->params[i].value = (br_str){dst, (uint32_t)len};
        dst += len;
        cap -= len;
    }
    c->nparams = (uint32_t)req->match.nparams;
    return NULL;
}

/* Collects the headers to forward (hop-by-hop and Content-Length left out), notes the
 * client's Accept, and picks up or makes the traceparent. */
static void call_headers(gw_call *c)
{
    const gw_req *req = c->req;
    bool have_trace = false;
    for (size_t i = 0; i < req->nheaders; i++) {
        const gw_header *h = &req->headers[i];
        if (strcmp(h->name, "accept") == 0 &&
            contains_ci(h->value, h->value_len, "application/msgpack"))
            c->want_msgpack = true;
        if (strcmp(h->name, "traceparent") == 0 && h->value_len == TRACE_LEN &&
            h->value[2] == '-' && h->value[35] == '-' && h->value[52] == '-') {
            memcpy(c->trace, h->value, TRACE_LEN);
            have_trace = true;
        }
        if (is_hop_by_hop(h->name, h->name_len) || strcmp(h->name, "content-length") == 0 ||
            c->nheaders == c->headers_cap)
            continue;
        c->headers[c->nheaders].name = (br_str){h->name, (uint32_t)h->name_len};
        c->headers[c->nheaders].value = (br_str){h->value, (uint32_t)h->value_len};
        c->nheaders++;
    }
    if (have_trace)
        return;
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

/* Sets the call's body by the route's body mode.  0, or answers the client (415, 422,
 * 413) and returns an error. */
static int call_body(gw_call *c)
{
    gw_req *req = c->req;
    uint8_t mode = c->route->body;
    if (mode == BR_BODY_NONE || req->body_len == 0)
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
    char err[DETAIL_MAX];
    err[0] = '\0';
    int rc = gw_json_to_msgpack(req->body, req->body_len, &c->converted, err, sizeof(err));
    if (rc == BR_EVALUE) {
        respond_json_invalid(req, err);
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

/* The budget of a request on route e: its timeout or the default, capped. */
static uint32_t route_budget(const gw_broker *b, const gw_route_entry *e)
{
    uint32_t budget = e->timeout_ms ? e->timeout_ms : b->cfg.default_timeout_ms;
    return budget < b->cfg.max_timeout_ms ? budget : b->cfg.max_timeout_ms;
}

/* The client left before it was answered. */
static void on_abort(gw_req *req, void *arg)
{
    gw_call *c = arg;
    (void)req;
    c->req = NULL;
    if (c->worker)
        call_cancel(c);
    else
        call_free(c);
}

/* Arms the deadline timer for the earliest deadline, if any. */
static void arm_deadline_timer(gw_broker *b)
{
    gw_deadline *top = gw_deadline_heap_top(&b->deadlines);
    if (!top || b->closing)
        return;
    uint64_t now = uv_now(b->loop);
    uv_timer_start(&b->deadline_timer, gw_dispatch_on_deadline,
                   top->when > now ? top->when - now : 0, 0);
}

void gw_dispatch_handler(gw_req *req, void *route_data)
{
    gw_route_entry *e = route_data;
    gw_broker *b = e->arg;
    if (!b->started || b->closing) {
        respond_detail(b, req, 503, true, "Service Unavailable: the gateway is shutting down");
        return;
    }
    if (gw_service_live(e->service) == 0) {
        respond_unavailable(b, req, e->service);
        return;
    }
    gw_call *c = call_new(b, req, e);
    if (!c) {
        respond_detail(b, req, 503, true, "Service Unavailable: out of memory");
        return;
    }
    const char *bad = call_decode_params(c);
    if (bad) {
        c->req = NULL;
        gw_req_respond_detail(req, 400, bad);
        call_free(c);
        return;
    }
    call_headers(c);
    br_buf detail = {.max = b->cfg.limits.max_body};
    if (gw_params_validate(e->params, e->nparams, c->params, c->nparams, c->query, c->nquery,
                           c->headers, c->nheaders, &detail) != 0) {
        c->req = NULL;
        gw_req_respond(req, 422, NULL, 0, "application/json", detail.data, detail.len);
        br_buf_free(&detail);
        call_free(c);
        return;
    }
    br_buf_free(&detail);
    if (call_body(c) != 0) {
        c->req = NULL;
        call_free(c);
        return;
    }
    c->id = ++b->next_id;
    c->budget_ms = route_budget(b, e);
    c->deadline.when = uv_now(b->loop) + c->budget_ms;
    if (gw_idmap_put(b->calls, c->id, c) != 0 ||
        gw_deadline_heap_push(&b->deadlines, &c->deadline) != 0) {
        call_fail(c, 503, true, "Service Unavailable: too many requests in flight");
        return;
    }
    if (gw_deadline_heap_top(&b->deadlines) == &c->deadline)
        arm_deadline_timer(b);
    gw_req_on_abort(req, on_abort, c);
    call_route(c, false);
}

/* ---------------------------------------------------------------------------------- */
/* Replies, deadlines, dead workers.                                                   */

/* A REPLY header the client may see: not hop-by-hop, not one the server writes, and
 * free of bytes that could split the response. */
static bool reply_header_ok(const br_pair *h)
{
    static const char *const own[] = {"content-length", "content-type", "date"};
    if (h->name.len == 0 || is_hop_by_hop(h->name.ptr, h->name.len))
        return false;
    for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++)
        if (strlen(own[i]) == h->name.len && strncasecmp(h->name.ptr, own[i], h->name.len) == 0)
            return false;
    for (uint32_t i = 0; i < h->name.len; i++)
        if (h->name.ptr[i] <= ' ' || h->name.ptr[i] > '~' || h->name.ptr[i] == ':')
            return false;
    for (uint32_t i = 0; i < h->value.len; i++)
        if (h->value.ptr[i] == '\r' || h->value.ptr[i] == '\n' || h->value.ptr[i] == '\0')
            return false;
    return true;
}

/* Sends the worker's answer to the client: msgpack bodies become JSON unless the
 * client asked for msgpack; extra headers are copied NUL-terminated. */
static void respond_reply(gw_broker *b, gw_req *req, const br_reply *r, bool want_msgpack)
{
    if (r->status < 200) {
        respond_detail(b, req, 502, false, "Bad Gateway: the worker sent an interim status");
        return;
    }
    char type[CONTENT_TYPE_MAX + 1];
    const char *content_type = "application/octet-stream";
    const void *body = r->body.ptr;
    size_t body_len = r->body.len;
    if (br_str_eq(r->content_type, "application/msgpack") && !want_msgpack) {
        b->json.len = 0;
        if (gw_msgpack_to_json(r->body.ptr, r->body.len, &b->json) != 0) {
            respond_detail(b, req, 502, false, "Bad Gateway: the worker sent invalid msgpack");
            return;
        }
        content_type = "application/json";
        body = b->json.data;
        body_len = b->json.len;
    } else if (r->content_type.len > 0 && r->content_type.len <= CONTENT_TYPE_MAX) {
        memcpy(type, r->content_type.ptr, r->content_type.len);
        type[r->content_type.len] = '\0';
        content_type = type;
    }
    size_t text_len = 0;
    for (uint32_t i = 0; i < r->nheaders; i++)
        text_len += r->headers[i].name.len + r->headers[i].value.len + 2;
    gw_header *extra = r->nheaders ? calloc(r->nheaders, sizeof(*extra)) : NULL;
    char *text = r->nheaders ? malloc(text_len) : NULL;
    size_t nextra = 0;
    if (r->nheaders && (!extra || !text)) {
        gw_broker_log("calloc(reply headers) failed: dropping %u headers", r->nheaders);
    } else {
        char *cursor = text;
        for (uint32_t i = 0; i < r->nheaders; i++) {
            const br_pair *h = &r->headers[i];
            if (!reply_header_ok(h))
                continue;
            gw_header *x = &extra[nextra++];
            x->name = cursor;
            x->name_len = h->name.len;
            memcpy(cursor, h->name.ptr, h->name.len);
            cursor[h->name.len] = '\0';
            cursor += h->name.len + 1;
            x->value = cursor;
            x->value_len = h->value.len;
            if (h->value.len)
                memcpy(cursor, h->value.ptr, h->value.len);
            cursor[h->value.len] = '\0';
            cursor += h->value.len + 1;
        }
    }
    gw_req_respond(req, r->status, extra, nextra, content_type, body, body_len);
    free(extra);
    free(text);
}

void gw_dispatch_reply(gw_broker *b, gw_worker *w, const br_reply *r)
{
    gw_call *c = gw_idmap_get(b->calls, r->id);
    if (!c || c->worker != w) {
        b->stats.stale_replies++;
        return;
    }
    if (r->njobs > 0 && !b->jobs_logged) {
        gw_broker_log("worker %s: REPLY carries %u jobs; jobs are not supported yet, ignored",
                      w->id, r->njobs);
        b->jobs_logged = true;
    }
    if (w->credit < GW_CREDIT_MAX)
        w->credit++;
    gw_req *req = c->req;
    c->req = NULL;
    if (req) {
        respond_reply(b, req, r, c->want_msgpack);
        b->stats.replies++;
    } else {
        b->stats.stale_replies++;
    }
    call_free(c);
    if (w->draining && w->inflight == 0) {
        gw_broker_forget(b, w, "drained");
        return;
    }
    for (size_t i = 0; i < w->nservices; i++)
        if (!gw_list_empty(&w->services[i]->queue))
            gw_dispatch_pump(b, w->services[i]);
}

void gw_dispatch_on_deadline(uv_timer_t *timer)
{
    gw_broker *b = timer->data;
    uint64_t now = uv_now(b->loop);
    gw_deadline *top;
    while ((top = gw_deadline_heap_top(&b->deadlines)) && top->when <= now) {
        gw_call *c = GW_CONTAINER_OF(top, gw_call, deadline);
        gw_deadline_heap_remove(&b->deadlines, top);
        char detail[DETAIL_MAX];
        snprintf(detail, sizeof(detail), "Gateway Timeout: no reply from service '%s' within %u ms",
                 c->route->service->name, c->budget_ms);
        gw_req *req = c->req;
        if (req)
            respond_detail(b, req, 504, false, detail);
        if (c->worker)
            call_cancel(c);
        else
            call_free(c);
    }
    arm_deadline_timer(b);
}

/* True when a request of w's that died may go to another worker: an idempotent
 * method, not retried before, retries enabled, budget left, and somewhere to go. */
static bool may_retry(const gw_broker *b, const gw_call *c)
{
    uint64_t now = uv_now(b->loop);
    return b->cfg.retry_idempotent && c->idempotent && !c->retried &&
           c->deadline.when > now + b->cfg.retry_min_budget_ms &&
           gw_service_live(c->route->service) > 0;
}

void gw_dispatch_worker_gone(gw_broker *b, gw_worker *w)
{
    while (!gw_list_empty(&w->calls)) {
        gw_call *c = GW_CONTAINER_OF(w->calls.next, gw_call, link);
        gw_list_remove(&c->link);
        c->worker = NULL;
        w->inflight--;
        if (!c->req) {
            call_free(c);
        } else if (may_retry(b, c)) {
            c->retried = true;
            b->stats.retries++;
            call_route(c, true);
        } else {
            call_fail(c, 502, false, "Bad Gateway: worker died while handling the request");
        }
    }
}

void gw_dispatch_fail_all(gw_broker *b)
{
    static const char detail[] = "Service Unavailable: the gateway is shutting down";
    for (size_t i = 0; i < gw_registry_nservices(b->reg); i++) {
        gw_service *s = gw_registry_service(b->reg, i);
        while (!gw_list_empty(&s->queue))
            call_fail(GW_CONTAINER_OF(s->queue.next, gw_call, link), 503, true, detail);
    }
    for (size_t i = 0; i < gw_registry_nworkers(b->reg); i++) {
        gw_worker *w = gw_registry_worker(b->reg, i);
        while (!gw_list_empty(&w->calls))
            call_fail(GW_CONTAINER_OF(w->calls.next, gw_call, link), 503, true, detail);
    }
}
