/*
 * http_parse.c - llhttp's callbacks for one connection: copying the request into its
 * arena, the limits on target, header count and body, the checks llhttp leaves to us
 * (Transfer-Encoding other than chunked or in HTTP/1.0, Host, versions), the body
 * buffer budget, and dispatch to the router once a request is complete.  The head's
 * line structure and size are http_head.c's; http_conn.c runs both over the input.
 *
 * A failing callback records the answer it wants in the connection's err_status and
 * err_detail and returns -1; http_conn.c turns that into the error answer once
 * llhttp_execute() has returned.  on_message_complete and the last chunk's
 * on_chunk_header pause the parser (HPE_PAUSED), so that http_conn.c learns where a
 * request and a chunked body's chunks end.
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

/* Unused bytes of a complete request's arena or header slots worth a realloc to give
 * back (req_fit). */
#define GW_HTTP_FIT_SLACK 64

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
    conn->host_count = 0;
    conn->chunk_excess = 0;
    conn->expect_continue = conn->transfer_encoding = conn->chunk_lines = false;
    conn->connection_close = conn->connection_keep_alive = false;
    conn->field_open = false;
    r->pub.received_ns = uv_hrtime();
    gw__conn_set_phase(conn, GW_PHASE_HEADERS, conn->server->cfg.header_timeout_ms);
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
    if (r->headers_done) { /* a chunked trailer: its bytes count in the head, then dropped */
        conn->field_open = conn->field_open || n > 0;
        return 0;
    }
    if (!conn->field_open) {
        if (r->nhdrs >= cfg->max_headers)
            return fail_cb(conn, 431, "Request Header Fields Too Large: too many headers");
        if (r->nhdrs == r->hdr_cap) {
            /* From a fitted size (req_fit) straight back to the usual first one. */
            size_t cap =
                r->hdr_cap >= GW_HTTP_HEADERS_INITIAL ? r->hdr_cap * 2 : GW_HTTP_HEADERS_INITIAL;
            cap = cap > cfg->max_headers ? cfg->max_headers : cap;
            gw_header *hdrs = realloc(r->hdrs, cap * sizeof(*hdrs));
            if (!hdrs)
                return fail_cb(conn, 503, "Service Unavailable: out of memory");
            r->hdrs = hdrs;
            r->hdr_cap = cap;
        }
        gw__hdr_off(r, r->nhdrs)->name_off = (uint32_t)r->arena.len;
        conn->field_open = true;
    }
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
    if (r->headers_done) {
        bool named = conn->field_open;
        conn->field_open = false;
        return named ? 0 : fail_cb(conn, 400, "Bad Request: a trailer line without a name");
    }
    gw_hdr_off *o = gw__hdr_off(r, r->nhdrs);
    o->name_len = (uint32_t)(r->arena.len - o->name_off);
    if (o->name_len == 0) /* llhttp lets ": value" through */
        return fail_cb(conn, 400, "Bad Request: a header line without a name");
    if (arena_append(conn, "", 1) != 0)
        return -1;
    o->value_off = (uint32_t)r->arena.len;
    conn->field_open = false;
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t n)
{
    gw_conn *conn = p->data;
    if (conn->parsing->headers_done)
        return 0;
    /* An obs-fold continuation would come as a further piece of the value; http_head.c
     * refuses the folded line before llhttp sees it. */
    return arena_append(conn, at, n);
}

/* Notes the close and keep-alive options of a Connection header (a comma-separated
 * list; case-insensitive).  llhttp reads Proxy-Connection the same way, which no
 * other server or proxy need agree with, so the gateway decides from these alone. */
static void read_connection(gw_conn *conn, const char *v)
{
    while (*v) {
        while (*v == ' ' || *v == '\t' || *v == ',')
            v++;
        size_t n = strcspn(v, ",");
        size_t len = n;
        while (len && (v[len - 1] == ' ' || v[len - 1] == '\t'))
            len--;
        if (len == 5 && strncasecmp(v, "close", 5) == 0)
            conn->connection_close = true;
        else if (len == 10 && strncasecmp(v, "keep-alive", 10) == 0)
            conn->connection_keep_alive = true;
        v += n;
    }
}

/* Checks one complete header for what llhttp lets through. */
static int check_header(gw_conn *conn, const char *name, const char *value)
{
    if (strcmp(name, "transfer-encoding") == 0) {
        if (strcasecmp(value, "chunked") != 0)
            return fail_cb(conn, 400, "Bad Request: Transfer-Encoding other than chunked");
        conn->transfer_encoding = true;
    }
    if (strcmp(name, "host") == 0 && ++conn->host_count > 1)
        return fail_cb(conn, 400, "Bad Request: more than one Host header");
    if (strcmp(name, "connection") == 0)
        read_connection(conn, value);
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
    gw_hdr_off *o = gw__hdr_off(r, r->nhdrs);
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

static size_t origin_offset(const char *url, size_t len);

/* The stream cap of the route a request with a body goes to: its policy's
 * stream_body_max, or 0 for a buffered body (no route, or an ordinary one).  The path
 * is read from the arena without changing it: req_finish has not run yet. */
static uint64_t stream_route(gw_conn *conn, gw_http_req *r, const llhttp_t *p)
{
    const char *url = (const char *)r->arena.data;
    size_t origin = origin_offset(url, r->url_len);
    size_t n = r->url_len - origin;
    const char *path = url + origin;
    for (size_t i = 0; i < n; i++)
        if (path[i] == '?' || path[i] == '#')
            n = i;
    if (n == 0)
        return 0;
    gw_route_match match;
    char allow[128];
    if (gw_router_match(conn->server->router, llhttp_method_name((llhttp_method_t)p->method), path,
                        n, &match, allow, sizeof(allow)) != 0 ||
        !match.route->policy)
        return 0;
    return match.route->policy->stream_body_max;
}

static void req_finish(gw_http_req *r, const llhttp_t *p);
static void req_fit(gw_http_req *r);
static void dispatch(gw_conn *conn, gw_http_req *r);

/* A request whose route streams its body: handled now, its body delivered as it is
 * read (http_body.c).  It stays the request being parsed until its body ends. */
static void start_body_stream(gw_conn *conn, gw_http_req *r, const llhttp_t *p, uint64_t max)
{
    conn->nqueued++;
    r->held = r->arena.len;
    conn->input_bytes += r->held;
    r->state = GW_REQ_HANDLING;
    r->body_streaming = true;
    r->body_paused = false;
    r->body_max = max;
    r->body_seen = 0;
    r->body_fn = NULL;
    req_finish(r, p);
    r->pub.body_streamed = true;
    dispatch(conn, r);
}

static int on_headers_complete(llhttp_t *p)
{
    gw_conn *conn = p->data;
    gw_http_req *r = conn->parsing;
    const gw_http_config *cfg = &conn->server->cfg;
    if (p->http_major != 1 || p->http_minor > 1)
        return fail_cb(conn, 400, "Bad Request: unsupported HTTP version");
    /* method SP target SP HTTP/1.x CRLF, one space each: llhttp skips repeated
     * spaces, which another parser may split differently. */
    size_t line = strlen(llhttp_method_name((llhttp_method_t)p->method)) + r->url_len + 12;
    if (conn->scan.request_line != line)
        return fail_cb(conn, 400, "Bad Request: malformed request line");
    r->http10 = p->http_minor == 0;
    if (!r->http10 && conn->host_count == 0)
        return fail_cb(conn, 400, "Bad Request: missing Host header");
    /* RFC 9112 6.1: Transfer-Encoding in HTTP/1.0 is faulty framing, whatever else the
     * message says; reading it as chunked would disagree with a 1.0 intermediary. */
    if (r->http10 && conn->transfer_encoding)
        return fail_cb(conn, 400, "Bad Request: Transfer-Encoding in an HTTP/1.0 request");
    bool has_body = (p->flags & F_CHUNKED) || ((p->flags & F_CONTENT_LENGTH) && p->content_length);
    uint64_t stream_max = has_body ? stream_route(conn, r, p) : 0;
    uint64_t max = stream_max ? stream_max : cfg->max_body_bytes;
    if ((p->flags & F_CONTENT_LENGTH) && p->content_length > max)
        return fail_cb(conn, 413, "Content Too Large");
    r->head = p->method == HTTP_HEAD;
    r->headers_done = true;
    r->body_off = r->arena.len;
    if (has_body && conn->expect_continue && !r->http10) {
        r->continue_pending = true;
        gw__server_schedule_flush(conn->server, conn);
    }
    conn->chunk_lines = (p->flags & F_CHUNKED) != 0;
    if (has_body)
        gw__conn_set_phase(conn, GW_PHASE_BODY, cfg->body_timeout_ms);
    else
        gw__conn_set_phase(conn, GW_PHASE_NONE, 0);
    if (stream_max)
        start_body_stream(conn, r, p, stream_max);
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t n)
{
    gw_conn *conn = p->data;
    gw_http_req *r = conn->parsing;
    gw_http_server *server = conn->server;
    const gw_http_config *cfg = &server->cfg;
    if (r->body_streaming) {
        if (n > r->body_max - r->body_seen)
            return fail_cb(conn, 413, "Content Too Large");
        r->body_seen += n;
        if (conn->chunk_lines)
            conn->chunk_excess -= (int64_t)n;
        gw__conn_set_phase(conn, GW_PHASE_BODY, cfg->body_timeout_ms);
        gw__body_deliver(r, at, n, 0);
        if (!r->body_paused)
            return 0;
        gw__conn_set_phase(conn, GW_PHASE_NONE, 0); /* the consumer's pause, not the client's */
        return HPE_PAUSED;
    }
    if (n > cfg->max_body_bytes - r->body_len)
        return fail_cb(conn, 413, "Content Too Large");
    /* The budget all connections share: past it a body is refused, not buffered. */
    if (n > cfg->max_body_buffer - server->body_bytes)
        return fail_cb(conn, 503,
                       "Service Unavailable: the gateway holds too many request "
                       "bodies; retry");
    server->body_bytes += n;
    r->buffered += n;
    r->body_len += n;
    if (conn->chunk_lines)
        conn->chunk_excess -= (int64_t)n;
    /* Only bytes of the body itself show progress: a client sending chunk framing
     * alone does not keep the connection past the body timeout. */
    gw__conn_set_phase(conn, GW_PHASE_BODY, cfg->body_timeout_ms);
    return arena_append(conn, at, n);
}

/* A chunk's size line has been read.  Its shortest form - the size in hex without
 * leading zeros, CRLF, and the CRLF after the data - is taken off the chunk lines'
 * byte count (http_conn.c adds every byte read), which leaves what the limit bounds:
 * extensions and padding.  After the last chunk the trailers are a head of their own;
 * the parser pauses so that http_conn.c starts scanning them at the right byte. */
static int on_chunk_header(llhttp_t *p)
{
    gw_conn *conn = p->data;
    uint64_t size = p->content_length;
    int64_t shortest = 2 + (size ? 2 : 0);
    do {
        shortest++;
        size >>= 4;
    } while (size);
    conn->chunk_excess -= shortest;
    if (p->content_length)
        return 0;
    conn->chunk_lines = false;
    gw__head_begin_trailers(&conn->scan);
    return HPE_PAUSED;
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

/* A complete request gives back the slack of its arena and header slots before
 * pointers into them are made: it may wait on a worker for a long time (10,000
 * requests of a second each hold 4 MB of slack), and the arena's doubling leaves up
 * to half of a large body's buffer unused.  The next request on the connection grows
 * them again if it needs more; one of the same shape fits as it is. */
static void req_fit(gw_http_req *r)
{
    if (r->arena.cap - r->arena.len >= GW_HTTP_FIT_SLACK && r->arena.len > 0) {
        uint8_t *a = realloc(r->arena.data, r->arena.len);
        if (a) {
            r->arena.data = a;
            r->arena.cap = r->arena.len;
        }
    }
    if ((r->hdr_cap - r->nhdrs) * sizeof(*r->hdrs) >= GW_HTTP_FIT_SLACK) {
        if (r->nhdrs == 0) {
            free(r->hdrs);
            r->hdrs = NULL;
            r->hdr_cap = 0;
        } else {
            gw_header *h = realloc(r->hdrs, r->nhdrs * sizeof(*h));
            if (h) {
                r->hdrs = h;
                r->hdr_cap = r->nhdrs;
            }
        }
    }
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
    /* The offsets share the slots' memory (gw__hdr_off); from the last header down,
     * slot i only covers offsets at i and above, which are converted already. */
    for (size_t i = r->nhdrs; i-- > 0;) {
        gw_hdr_off o = *gw__hdr_off(r, i);
        r->hdrs[i] = (gw_header){arena + o.name_off, o.name_len, arena + o.value_off, o.value_len};
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

/* Keep-alive: the default in 1.1 unless "close"; in 1.0 only with "keep-alive" and
 * without "close" (llhttp would keep a 1.0 connection with both).  An Upgrade (or
 * CONNECT) is never granted; llhttp would hand over the bytes that follow as another
 * protocol's, so the connection ends with this answer. */
static void decide_keep_alive(gw_conn *conn, gw_http_req *r, const llhttp_t *p)
{
    bool keep = r->http10 ? conn->connection_keep_alive && !conn->connection_close
                          : !conn->connection_close;
    r->keep_alive = keep && !p->upgrade && !conn->server->draining;
    conn->upgrade_req = p->upgrade;
    if (!r->keep_alive) {
        r->close_after = true;
        conn->want_close = true;
    }
}

static int on_message_complete(llhttp_t *p)
{
    gw_conn *conn = p->data;
    gw_http_req *r = conn->parsing;
    conn->parsing = NULL;
    conn->chunk_lines = false;
    gw__head_begin(&conn->scan);
    if (r->pub.body_streamed) {
        /* Handled since its headers: only the body's end is news. */
        r->continue_pending = false;
        decide_keep_alive(conn, r, p);
        gw__conn_set_phase(conn, GW_PHASE_NONE, 0);
        if (r->body_streaming)
            gw__body_deliver(r, NULL, 0, 0);
        gw__server_schedule_flush(conn->server, conn); /* an answer may wait for this */
        return HPE_PAUSED;
    }
    conn->nqueued++;
    r->held = r->arena.len;
    conn->input_bytes += r->held;
    r->state = GW_REQ_HANDLING;
    r->continue_pending = false;
    decide_keep_alive(conn, r, p);
    gw__conn_set_phase(conn, GW_PHASE_NONE, 0);
    req_fit(r);
    req_finish(r, p);
    dispatch(conn, r);
    /* Always paused: the next request's head is scanned from where this one ended. */
    return HPE_PAUSED;
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
    .on_chunk_header = on_chunk_header,
    .on_message_complete = on_message_complete,
};
