/*
 * http_parse.c - llhttp's callbacks for one connection: copying the request into its
 * arena, the limits on target, headers and body, the checks llhttp leaves to us
 * (Transfer-Encoding other than chunked, obs-fold, Host, versions), and dispatch to
 * the router once a request is complete.
 *
 * A failing callback records the answer it wants in the connection's err_status and
 * err_detail and returns -1; http_conn.c turns that into the error answer once
 * llhttp_execute() has returned.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "barista/proto.h"
#include "http_conn.h"

/* The arena's first allocation.  br_buf's own first step is 512 bytes; a typical
 * request line and headers fit in 256, and with 10,000 connections each holding a
 * request the difference is 2.5 MB (scenario 2 of tests/bench/compare). */
#define GW_HTTP_ARENA_INITIAL 256

static size_t arena_max(const gw_http_config *c)
{
    return c->max_url_bytes + c->max_header_bytes + 2 * c->max_headers + c->max_body_bytes + 16;
}

static int fail_cb(gw_conn *conn, int status, const char *detail)
{
    conn->err_status = status;
    conn->err_detail = detail;
    return -1;
}

static int on_message_begin(llhttp_t *p)
{
    gw_conn *conn = p->data;
    gw_http_req *r = gw__req_get(conn);
    if (!r)
        return fail_cb(conn, 503, "Service Unavailable: out of memory");
    /* Set per request: recycling may have freed the arena, and br_buf_free zeroes it.
     * A failed first allocation is left to the first append to report. */
    r->arena.max = arena_max(&conn->server->cfg);
    if (!r->arena.data && (r->arena.data = malloc(GW_HTTP_ARENA_INITIAL)))
        r->arena.cap = GW_HTTP_ARENA_INITIAL;
    gw__conn_push(conn, r);
    conn->parsing = r;
    conn->header_bytes = 0;
    conn->host_count = 0;
    conn->expect_continue = conn->field_open = false;
    r->pub.received_ns = uv_hrtime();
    gw__conn_set_phase(conn, GW_PHASE_HEADERS, conn->server->cfg.header_timeout_ms);
    return 0;
}

/* Counts header-section bytes against the limit. */
static int count_header_bytes(gw_conn *conn, size_t n)
{
    conn->header_bytes += n;
    if (conn->header_bytes > conn->server->cfg.max_header_bytes)
        return fail_cb(conn, 431, "Request Header Fields Too Large");
    return 0;
}

static int arena_append(gw_conn *conn, const char *at, size_t n)
{
    int rc = br_buf_append(&conn->parsing->arena, at, n);
    return rc == 0 ? 0 : fail_cb(conn, 503, "Service Unavailable: out of memory");
}

static int on_url(llhttp_t *p, const char *at, size_t n)
{
    gw_conn *conn = p->data;
    gw_http_req *r = conn->parsing;
    r->url_len += n;
    if (r->url_len > conn->server->cfg.max_url_bytes)
        return fail_cb(conn, 414, "URI Too Long");
    if (count_header_bytes(conn, n) != 0)
        return -1;
    return arena_append(conn, at, n);
}

static int on_url_complete(llhttp_t *p)
{
    return arena_append(p->data, "", 1);
}

static int on_header_field(llhttp_t *p, const char *at, size_t n)
{
    gw_conn *conn = p->data;
    gw_http_req *r = conn->parsing;
    const gw_http_config *cfg = &conn->server->cfg;
    if (r->headers_done) /* a chunked trailer: counted, then dropped */
        return count_header_bytes(conn, n);
    if (!conn->field_open) {
        if (r->nhdrs >= cfg->max_headers)
            return fail_cb(conn, 431, "Request Header Fields Too Large: too many headers");
        if (r->nhdrs == r->hdr_cap) {
            size_t cap = r->hdr_cap ? r->hdr_cap * 2 : GW_HTTP_HEADERS_INITIAL;
            cap = cap > cfg->max_headers ? cfg->max_headers : cap;
            gw_hdr_off *offs = realloc(r->offs, cap * sizeof(*offs));
            if (offs)
                r->offs = offs;
            gw_header *hdrs = offs ? realloc(r->hdrs, cap * sizeof(*hdrs)) : NULL;
            if (!hdrs)
                return fail_cb(conn, 503, "Service Unavailable: out of memory");
            r->hdrs = hdrs;
            r->hdr_cap = cap;
        }
        r->offs[r->nhdrs].name_off = (uint32_t)r->arena.len;
        conn->field_open = true;
    }
    if (count_header_bytes(conn, n) != 0)
        return -1;
    if (arena_append(conn, at, n) != 0)
        return -1;
    char *name = (char *)r->arena.data + r->arena.len - n;
    for (size_t i = 0; i < n; i++)
        if (name[i] >= 'A' && name[i] <= 'Z')
            name[i] = (char)(name[i] - 'A' + 'a');
    return 0;
}

static int on_header_field_complete(llhttp_t *p)
{
    gw_conn *conn = p->data;
    gw_http_req *r = conn->parsing;
    if (r->headers_done)
        return 0;
    gw_hdr_off *o = &r->offs[r->nhdrs];
    o->name_len = (uint32_t)(r->arena.len - o->name_off);
    if (arena_append(conn, "", 1) != 0)
        return -1;
    o->value_off = (uint32_t)r->arena.len;
    conn->field_open = false;
    conn->value_pieces = false;
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t n)
{
    gw_conn *conn = p->data;
    if (conn->parsing->headers_done)
        return count_header_bytes(conn, n);
    /* llhttp reports an obs-fold continuation as a second piece of the same value.  A
     * value split across two reads also comes in pieces, but then the earlier piece
     * ended exactly where that read's bytes did. */
    if (conn->value_pieces && !conn->value_at_end)
        return fail_cb(conn, 400, "Bad Request: obsolete line folding in a header");
    conn->value_pieces = true;
    conn->value_at_end = at + n == conn->exec_end;
    if (count_header_bytes(conn, n) != 0)
        return -1;
    return arena_append(conn, at, n);
}

/* Checks one complete header for what llhttp lets through. */
static int check_header(gw_conn *conn, const char *name, const char *value)
{
    if (strcmp(name, "transfer-encoding") == 0 && strcasecmp(value, "chunked") != 0)
        return fail_cb(conn, 400, "Bad Request: Transfer-Encoding other than chunked");
    if (strcmp(name, "host") == 0 && ++conn->host_count > 1)
        return fail_cb(conn, 400, "Bad Request: more than one Host header");
    if (strcmp(name, "expect") == 0) {
        if (strcasecmp(value, "100-continue") != 0)
            return fail_cb(conn, 417, "Expectation Failed");
        conn->expect_continue = true;
    }
    return 0;
}

static int on_header_value_complete(llhttp_t *p)
{
    gw_conn *conn = p->data;
    gw_http_req *r = conn->parsing;
    if (r->headers_done)
        return 0;
    gw_hdr_off *o = &r->offs[r->nhdrs];
    size_t len = r->arena.len - o->value_off;
    const char *v = (const char *)r->arena.data + o->value_off;
    while (len && (v[len - 1] == ' ' || v[len - 1] == '\t'))
        len--;
    r->arena.len = o->value_off + len;
    if (arena_append(conn, "", 1) != 0)
        return -1;
    o->value_len = (uint32_t)len;
    r->nhdrs++;
    const char *arena = (const char *)r->arena.data;
    return check_header(conn, arena + o->name_off, arena + o->value_off);
}

static int on_headers_complete(llhttp_t *p)
{
    gw_conn *conn = p->data;
    gw_http_req *r = conn->parsing;
    const gw_http_config *cfg = &conn->server->cfg;
    if (p->http_major != 1 || p->http_minor > 1)
        return fail_cb(conn, 400, "Bad Request: unsupported HTTP version");
    r->http10 = p->http_minor == 0;
    if (!r->http10 && conn->host_count == 0)
        return fail_cb(conn, 400, "Bad Request: missing Host header");
    bool has_body = (p->flags & F_CHUNKED) || ((p->flags & F_CONTENT_LENGTH) && p->content_length);
    if ((p->flags & F_CONTENT_LENGTH) && p->content_length > cfg->max_body_bytes)
        return fail_cb(conn, 413, "Content Too Large");
    r->head = p->method == HTTP_HEAD;
    r->headers_done = true;
    r->body_off = r->arena.len;
    if (has_body && conn->expect_continue && !r->http10) {
        r->continue_pending = true;
        gw__server_schedule_flush(conn->server, conn);
    }
    if (has_body)
        gw__conn_set_phase(conn, GW_PHASE_BODY, cfg->body_timeout_ms);
    else
        gw__conn_set_phase(conn, GW_PHASE_NONE, 0);
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t n)
{
    gw_conn *conn = p->data;
    gw_http_req *r = conn->parsing;
    if (n > conn->server->cfg.max_body_bytes - r->body_len)
        return fail_cb(conn, 413, "Content Too Large");
    r->body_len += n;
    return arena_append(conn, at, n);
}

/* Skips the scheme and authority of an absolute-form target ("http://h/p" -> "/p"),
 * which RFC 9112 obliges a server to accept.  Returns the offset of the path. */
static size_t origin_offset(const char *url, size_t len)
{
    size_t skip = 0;
    if (len >= 7 && strncasecmp(url, "http://", 7) == 0)
        skip = 7;
    else if (len >= 8 && strncasecmp(url, "https://", 8) == 0)
        skip = 8;
    if (!skip)
        return 0;
    while (skip < len && url[skip] != '/' && url[skip] != '?')
        skip++;
    return skip;
}

/* Points the public request at its arena: target split into path and query. */
static void req_finish(gw_http_req *r, const llhttp_t *p)
{
    char *arena = (char *)r->arena.data;
    size_t origin = origin_offset(arena, r->url_len);
    if (origin && (origin == r->url_len || arena[origin] == '?'))
        arena[--origin] = '/'; /* "http://h" means "/": reuse the host's last byte */
    char *url = arena + origin;
    gw_req *pub = &r->pub;
    pub->method = llhttp_method_name((llhttp_method_t)p->method);
    char *hash = memchr(url, '#', r->url_len - origin);
    size_t url_len = hash ? (size_t)(hash - url) : r->url_len - origin;
    url[url_len] = '\0';
    char *q = memchr(url, '?', url_len);
    pub->path = url;
    pub->path_len = q ? (size_t)(q - url) : url_len;
    pub->query = q ? q + 1 : "";
    pub->query_len = q ? url_len - pub->path_len - 1 : 0;
    if (q)
        *q = '\0';
    for (size_t i = 0; i < r->nhdrs; i++) {
        r->hdrs[i].name = arena + r->offs[i].name_off;
        r->hdrs[i].name_len = r->offs[i].name_len;
        r->hdrs[i].value = arena + r->offs[i].value_off;
        r->hdrs[i].value_len = r->offs[i].value_len;
    }
    pub->headers = r->hdrs;
    pub->nheaders = r->nhdrs;
    pub->body = r->body_len ? arena + r->body_off : NULL;
    pub->body_len = r->body_len;
}

static void dispatch(gw_conn *conn, gw_http_req *r)
{
    char allow[128];
    gw_req *pub = &r->pub;
    gw_http_server *server = conn->server;
    int rc = gw_router_match(server->router, pub->method, pub->path, pub->path_len, &pub->match,
                             allow, sizeof(allow));
    if (rc != 0)
        pub->match.route = NULL;
    /* The filter sees every request first: it may answer it itself (a preflight for a
     * path that has no OPTIONS route, a refused token) before routing's answer. */
    if (server->filter.on_request && server->filter.on_request(server->filter_data, pub))
        return;
    if (rc == 0) {
        pub->match.route->handler(pub, pub->match.route->data);
    } else if (rc == BR_EINVAL) {
        gw_header h = {"Allow", 5, allow, strlen(allow)};
        gw__req_answer_detail(r, 405, "Method Not Allowed", &h, 1);
    } else {
        gw__req_answer_detail(r, 404, "Not Found", NULL, 0);
    }
}

static int on_message_complete(llhttp_t *p)
{
    gw_conn *conn = p->data;
    gw_http_req *r = conn->parsing;
    conn->parsing = NULL;
    conn->nqueued++;
    r->held = r->arena.len;
    conn->input_bytes += r->held;
    r->state = GW_REQ_HANDLING;
    r->continue_pending = false;
    /* An Upgrade (or CONNECT) is never granted; llhttp would hand over the bytes that
     * follow as another protocol's, so the connection ends with this answer. */
    r->keep_alive = llhttp_should_keep_alive(p) && !p->upgrade && !conn->server->draining;
    if (!r->keep_alive) {
        r->close_after = true;
        conn->want_close = true;
    }
    gw__conn_set_phase(conn, GW_PHASE_NONE, 0);
    req_finish(r, p);
    dispatch(conn, r);
    return gw__conn_can_parse(conn) ? 0 : HPE_PAUSED;
}

const llhttp_settings_t gw__parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_url_complete = on_url_complete,
    .on_header_field = on_header_field,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};
