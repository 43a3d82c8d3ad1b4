/*
 * http_response.c - answers: the handler-facing gw_req_* calls and the bytes of a
 * response (status line, Date, Content-Type, Content-Length, extra headers, body).
 *
 * An answer is serialised into the request's own buffer at once, whatever its turn;
 * http_conn.c sends the buffers in request order, several per uv_write.  Extra
 * headers never override the framing the server owns (Content-Length, Connection,
 * Transfer-Encoding, Date) and never carry CR or LF, so a handler - or a worker
 * behind the broker - cannot split a response.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "barista/proto.h"
#include "http_conn.h"
#include "json.h"

/* The largest answer body the server serialises: a maximal protocol body. */
#define GW_HTTP_MAX_RESPONSE (17u * 1024 * 1024)

/* The most req->resp may hold: that body plus its status line and headers. */
#define GW_HTTP_MAX_RESPONSE_BUF (GW_HTTP_MAX_RESPONSE + 64u * 1024)

/* The longest {"detail":...} body the server writes (a detail escapes to at most six
 * bytes per byte). */
#define GW_HTTP_MAX_DETAIL (64u * 1024)

/* Reason phrases for the statuses the gateway and its workers use. */
static const struct {
    int status;
    const char *reason;
} reasons[] = {
    {100, "Continue"},
    {200, "OK"},
    {201, "Created"},
    {202, "Accepted"},
    {204, "No Content"},
    {301, "Moved Permanently"},
    {302, "Found"},
    {303, "See Other"},
    {304, "Not Modified"},
    {307, "Temporary Redirect"},
    {308, "Permanent Redirect"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {408, "Request Timeout"},
    {409, "Conflict"},
    {410, "Gone"},
    {411, "Length Required"},
    {413, "Content Too Large"},
    {414, "URI Too Long"},
    {415, "Unsupported Media Type"},
    {417, "Expectation Failed"},
    {422, "Unprocessable Entity"},
    {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"},
    {499, "Client Closed Request"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
    {505, "HTTP Version Not Supported"},
};

static const char *status_reason(int status)
{
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
        if (reasons[i].status == status)
            return reasons[i].reason;
    return status < 400 ? "Other" : status < 500 ? "Client Error" : "Server Error";
}

/* Copies n bytes at *p and advances it; the caller reserved the room. */
static void put(char **p, const void *s, size_t n)
{
    if (n == 0)
        return;
    memcpy(*p, s, n);
    *p += n;
}

static void put_str(char **p, const char *s)
{
    put(p, s, strlen(s));
}

static void put_uint(char **p, size_t v)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[sizeof(tmp) - 1 - n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    put(p, tmp + sizeof(tmp) - n, n);
}

/* True for a header the server writes itself or that must not cross a hop. */
static bool header_reserved(const char *name, size_t len)
{
    static const char *const reserved[] = {"content-length",    "content-type", "connection",
                                           "transfer-encoding", "date",         "keep-alive"};
    for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
        if (strlen(reserved[i]) == len && strncasecmp(name, reserved[i], len) == 0)
            return true;
    return false;
}

/* True when a field value holds no control character but HTAB (so no CR or LF).  Eight
 * bytes at a time while none of them is below 0x20 or 0x7f (the usual value); a word
 * that has one, a tab say, is decided byte by byte. */
static bool value_safe(const char *v, size_t n)
{
    const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t x;
        memcpy(&x, v + i, 8);
        uint64_t del = x ^ (0x7f * ones);
        if (((x - 0x20 * ones) & ~x & highs) || ((del - ones) & ~del & highs))
            break;
    }
    for (; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return false;
    }
    return true;
}

/* RFC 9110 tchar: visible ASCII except the separators.  A switch, not strchr over the
 * separators: it runs for every byte of every answer header. */
static bool token_char(unsigned char c)
{
    if (c <= ' ' || c >= 0x7f)
        return false;
    switch (c) {
    case '"':
    case '(':
    case ')':
    case ',':
    case '/':
    case ':':
    case ';':
    case '<':
    case '=':
    case '>':
    case '?':
    case '@':
    case '[':
    case '\\':
    case ']':
    case '{':
    case '}':
        return false;
    default:
        return true;
    }
}

/* True when the name is a token, the value is safe, and the server does not own the
 * header.  Names and values are counted, not NUL-terminated (the broker builds them
 * from msgpack strings). */
static bool header_safe(const gw_header *h)
{
    if (!h->name || (!h->value && h->value_len) || h->name_len == 0)
        return false;
    for (size_t i = 0; i < h->name_len; i++)
        if (!token_char((unsigned char)h->name[i]))
            return false;
    return value_safe(h->value, h->value_len) && !header_reserved(h->name, h->name_len);
}

/* Whether this answer ends the connection: its own request said so, or the
 * connection is closing and nothing parsed follows it. */
static bool answer_closes(gw_http_req *req)
{
    gw_conn *conn = req->conn;
    if (!req->close_after && conn->want_close && (req->next == NULL || req->next == conn->parsing))
        req->close_after = true;
    return req->close_after;
}

/* Extra headers an answer passes to the filter from a stack array; more take one
 * allocation. */
#define GW_HTTP_ANSWER_STACK 32

static int build(gw_http_req *req, int status, const gw_header *extra, size_t nextra,
                 const char *content_type, const void *body, size_t body_len, gw_framing framing,
                 br_buf *out);

/* Runs the filter's on_answer over an answer (it adds its headers after the handler's
 * and may replace the body), then builds it into `out`; build() copies everything
 * before the filter's memory is released in on_done. */
static int filter_and_build(gw_http_req *req, gw_http_answer *a, gw_framing framing, br_buf *out)
{
    gw_http_server *server = req->conn->server;
    gw_header stack[GW_HTTP_ANSWER_STACK + GW_HTTP_FILTER_HEADERS];
    size_t cap = a->nextra + GW_HTTP_FILTER_HEADERS;
    gw_header *all = cap <= sizeof(stack) / sizeof(stack[0]) ? stack : malloc(cap * sizeof(*all));
    if (!all)
        return BR_ENOMEM;
    if (a->nextra)
        memcpy(all, a->extra, a->nextra * sizeof(*all));
    a->extra = all;
    a->extra_cap = cap;
    a->head = req->head;
    server->filter.on_answer(server->filter_data, &req->pub, a);
    int rc = build(req, a->status, a->extra, a->nextra, a->content_type, a->body, a->body_len,
                   framing, out);
    if (all != stack)
        free(all);
    return rc;
}

int gw__response_build(gw_http_req *req, int status, const gw_header *extra, size_t nextra,
                       const char *content_type, const void *body, size_t body_len)
{
    gw_http_server *server = req->conn->server;
    if (!server->filter.on_answer)
        return build(req, status, extra, nextra, content_type, body, body_len, GW_FRAME_LENGTH,
                     &req->resp);
    gw_http_answer a = {.status = status,
                        .content_type = content_type,
                        .body = body,
                        .body_len = body_len,
                        .extra = (gw_header *)extra,
                        .nextra = nextra};
    int rc = filter_and_build(req, &a, GW_FRAME_LENGTH, &req->resp);
    if (rc == 0)
        gw__req_filter_done(req, status, req->resp.len);
    return rc;
}

void gw__req_filter_done(gw_http_req *req, int status, size_t bytes)
{
    gw_http_server *server = req->conn->server;
    if (!req->pub.filter_state)
        return;
    if (server->filter.on_done)
        server->filter.on_done(server->filter_data, &req->pub, status, bytes);
    req->pub.filter_state = NULL;
}

int gw__response_stream_head(gw_http_req *req, int status, const gw_header *extra, size_t nextra,
                             const char *content_type, gw_framing framing, br_buf *out)
{
    gw_http_server *server = req->conn->server;
    req->stream_filtered = false;
    if (!server->filter.on_answer)
        return build(req, status, extra, nextra, content_type, NULL, 0, framing, out);
    /* As gw__response_build, except that the filter's request state lives on until the
     * stream ends (gw__req_filter_done then). */
    gw_http_answer a = {.status = status,
                        .content_type = content_type,
                        .extra = (gw_header *)extra,
                        .nextra = nextra,
                        .stream = true};
    int rc = filter_and_build(req, &a, framing, out);
    req->stream_filtered = rc == 0 && server->filter.on_stream_data && req->pub.filter_state;
    return rc;
}

static int build(gw_http_req *req, int status, const gw_header *extra, size_t nextra,
                 const char *content_type, const void *body, size_t body_len, gw_framing framing,
                 br_buf *out)
{
    gw_http_server *server = req->conn->server;
    bool closes = answer_closes(req);
    bool bodyless = status == 204 || status == 304 || (status >= 100 && status < 200);
    size_t date_len;
    const char *date = gw__server_date(server, &date_len);

    if (content_type && !value_safe(content_type, strlen(content_type)))
        content_type = "application/octet-stream";
    size_t need = 160 + date_len + (content_type ? strlen(content_type) : 0);
    for (size_t i = 0; i < nextra; i++)
        need += extra[i].name_len + extra[i].value_len + 4;
    if (body_len > GW_HTTP_MAX_RESPONSE)
        return BR_ELIMIT;
    need += req->head || bodyless ? 0 : body_len;

    out->len = 0;
    out->max = GW_HTTP_MAX_RESPONSE_BUF; /* br_buf_free() in recycling clears it */
    int rc = br_buf_reserve(out, need);
    if (rc != 0)
        return rc;
    char *p = (char *)out->data;
    put(&p, "HTTP/1.1 ", 9);
    put_uint(&p, (size_t)status);
    put(&p, " ", 1);
    put_str(&p, status_reason(status));
    put(&p, "\r\n", 2);
    put(&p, date, date_len);
    if (content_type && *content_type && !bodyless) {
        put(&p, "Content-Type: ", 14);
        put_str(&p, content_type);
        put(&p, "\r\n", 2);
    }
    if (!bodyless && framing == GW_FRAME_LENGTH) {
        put(&p, "Content-Length: ", 16);
        put_uint(&p, body_len);
        put(&p, "\r\n", 2);
    } else if (!bodyless && framing == GW_FRAME_CHUNKED) {
        put(&p, "Transfer-Encoding: chunked\r\n", 28);
    }
    for (size_t i = 0; i < nextra; i++) {
        if (!header_safe(&extra[i]))
            continue;
        put(&p, extra[i].name, extra[i].name_len);
        put(&p, ": ", 2);
        put(&p, extra[i].value, extra[i].value_len);
        put(&p, "\r\n", 2);
    }
    if (closes)
        put(&p, "Connection: close\r\n", 19);
    else if (req->http10)
        put(&p, "Connection: keep-alive\r\n", 24);
    put(&p, "\r\n", 2);
    if (!req->head && !bodyless && body_len)
        put(&p, body, body_len);
    out->len = (size_t)(p - (char *)out->data);
    gw__response_count(req, status, out->len);
    return 0;
}

int gw__response_detail(gw_http_req *req, int status, const char *detail, const gw_header *extra,
                        size_t nextra)
{
    br_buf body = {.max = GW_HTTP_MAX_DETAIL};
    int rc = gw_json_append_detail(&body, detail ? detail : "");
    if (rc == 0)
        rc =
            gw__response_build(req, status, extra, nextra, "application/json", body.data, body.len);
    br_buf_free(&body);
    return rc;
}

/* Answers a request the server itself refuses, as the handler would. */
void gw__req_answer_detail(gw_http_req *r, int status, const char *detail, const gw_header *extra,
                           size_t nextra)
{
    if (gw__response_detail(r, status, detail, extra, nextra) == 0)
        gw__req_answered(r);
    else
        gw__conn_close(r->conn);
}

int gw_req_respond(gw_req *req, int status, const gw_header *extra, size_t nextra,
                   const char *content_type, const void *body, size_t body_len)
{
    gw_http_req *r = (gw_http_req *)req;
    if (!r || r->state != GW_REQ_HANDLING || status < 200 || status > 599)
        return BR_EINVAL;
    int rc = gw__response_build(r, status, extra, nextra, content_type, body, body_len);
    if (rc != 0)
        rc = gw__response_detail(r, 500, "Internal Server Error", NULL, 0);
    if (rc != 0)
        return rc;
    gw__req_answered(r);
    return 0;
}

int gw_req_respond_detail(gw_req *req, int status, const char *detail)
{
    gw_http_req *r = (gw_http_req *)req;
    if (!r || r->state != GW_REQ_HANDLING || status < 200 || status > 599)
        return BR_EINVAL;
    int rc = gw__response_detail(r, status, detail, NULL, 0);
    if (rc != 0)
        return rc;
    gw__req_answered(r);
    return 0;
}

int gw_req_respond_error(gw_req *req, int status, bool retry_after, const char *detail)
{
    static const gw_header retry = {"Retry-After", 11, "1", 1};
    gw_http_req *r = (gw_http_req *)req;
    if (!r || r->state != GW_REQ_HANDLING || status < 200 || status > 599)
        return BR_EINVAL;
    int rc = gw__response_detail(r, status, detail, retry_after ? &retry : NULL, retry_after);
    if (rc != 0)
        return rc;
    gw__req_answered(r);
    return 0;
}

int gw_req_peer(const gw_req *req, struct sockaddr_storage *out)
{
    const gw_http_req *r = (const gw_http_req *)req;
    if (!r || !out || r->conn->peer.sa.sa_family == 0)
        return BR_EIO;
    memset(out, 0, sizeof(*out));
    memcpy(out, &r->conn->peer, sizeof(r->conn->peer));
    return 0;
}

void gw_req_set_body(gw_req *req, const char *body, size_t body_len)
{
    if (!req)
        return;
    req->body = body_len ? body : NULL;
    req->body_len = body_len;
}

const gw_header *gw_req_header(const gw_req *req, const char *name)
{
    if (!req || !name)
        return NULL;
    size_t n = strlen(name);
    for (size_t i = 0; i < req->nheaders; i++) {
        const gw_header *h = &req->headers[i];
        if (h->name_len == n && memcmp(h->name, name, n) == 0)
            return h;
    }
    return NULL;
}

void gw_req_on_abort(gw_req *req, gw_abort_fn fn, void *arg)
{
    gw_http_req *r = (gw_http_req *)req;
    if (!r)
        return;
    r->abort_fn = fn;
    r->abort_arg = arg;
}
