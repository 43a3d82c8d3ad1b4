/*
 * fuzz_http.c - the gateway's HTTP front under arbitrary bytes.
 *
 * The seam is the server's own socket: one real gw_http_server listens on loopback
 * for the whole run, and each input is one client connection to it.  So the bytes go
 * through exactly what a client's would - uv accept, on_read, llhttp (strict) with
 * http_parse.c's callbacks and limits, the router, the in-order write queue,
 * uv_try_write/uv_write, shutdown and linger - with nothing added to the production
 * sources.  The client is a non-blocking socket driven from this thread between
 * uv_run(UV_RUN_NOWAIT) turns, so the loop never blocks.
 *
 * Input layout: byte 0 chooses how the rest is cut into writes (low 6 bits: the
 * largest piece, 0 = everything in one write; bit 6: a slow reader, with a small
 * receive window, that reads answers only when its writes are stuck, so backpressure
 * builds; bit 7: leave with a reset right after the last piece, while requests may
 * still be in handlers, instead of waiting, half-closing and reading to EOF), byte 1
 * seeds the piece sizes.  The
 * client sets TCP_NODELAY and lets the server read each piece before it writes the
 * next, so every piece boundary is a read boundary.
 *
 * Routes answer synchronously (GET /sync, POST /echo, GET /big) or a few loop turns
 * later from a check handle, as the broker does (GET /async/{n}).  Every handler
 * answer carries X-Seq, the request's arrival number, and every handler records what
 * it was given (method, path, query, headers, body).
 *
 * The same bytes are also read by a strict reader written here from RFC 9112, not
 * from llhttp, with the server's limits: CRLF line ends only, no obs-fold, one SP
 * between the request line's parts, HTTP/1.0 or 1.1, Host rules, Content-Length xor
 * chunked (1.1 only), chunk lines, trailers, keep-alive.  It is strict where a
 * difference could frame requests differently (smuggling) and lenient where the
 * server may refuse more (an unknown method, a byte llhttp does not allow in a target,
 * the grammar of a chunk extension): the server may always refuse, but what it hands a
 * handler must be what the strict reading says, request by request.
 *
 * After the input, the client waits until nothing moves, half-closes and reads to EOF
 * (or resets), and checks:
 *   - the bytes read are a sequence of well-formed HTTP/1.1 answers (status line,
 *     header lines, exactly one Content-Length that the body matches), with nothing
 *     after an answer that says Connection: close;
 *   - handler answers arrive exactly once each, in arrival order, none missing unless
 *     the request was aborted because the client left (then none after it either),
 *     or the client reset the connection;
 *   - answers the server makes itself are FastAPI-shaped {"detail": ...} errors;
 *   - the connection is gone afterwards and no request is left pending;
 *   - handlers were given exactly the requests of the strict reading that route to
 *     them, in order, each with the same method, path, query, headers and body, and
 *     none after a request the strict reading refuses or that ends the connection;
 *   - the n-th answer is for the strict reading's n-th request: a handler's answer
 *     for one routed to that handler, 404 or 405 for one the router answers so, and
 *     anything else is a refusal, the last answer on the connection.
 * ASan, UBSan and LeakSanitizer catch the rest.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include "barista/proto.h"
#include "fuzz.h"
#include "http.h"
#include "http_server.h"

/* The largest input used (libFuzzer's -max_len should stay below it). */
#define FZ_MAX_INPUT (64 * 1024)
/* Requests one connection can have in a handler at once (max_pipeline below). */
#define FZ_PIPELINE 4
/* Bytes of answers kept per input; /big answers are FZ_BIG_BODY each. */
#define FZ_MAX_OUTPUT (4 * 1024 * 1024)
#define FZ_BIG_BODY   (96 * 1024)
/* Handler answers tracked per input (past this, arrival numbers are not checked). */
#define FZ_MAX_SEQ 4096
/* Loop turns without progress that count as "nothing moves". */
#define FZ_QUIET_TURNS 2
/* Loop turns after which a connection that never closes is a failure. */
#define FZ_MAX_TURNS 200000
/* The server's limits (setup), which the strict reading applies too. */
#define FZ_MAX_URL       256
#define FZ_MAX_HEAD      1024
#define FZ_MAX_HEADERS   12
#define FZ_MAX_BODY      4096
#define FZ_MAX_CHUNK_EXT 64
/* Final answers kept per input for the comparison (one per request at most). */
#define FZ_MAX_ANSWERS (FZ_MAX_SEQ + 1)

/* What happened to one handled request. */
typedef enum fz_fate { FZ_PENDING, FZ_ANSWERED, FZ_ABORTED } fz_fate;

/* A growable byte buffer (requests in canonical form). */
typedef struct fz_buf {
    char *data;
    size_t len, cap;
} fz_buf;

/* Where a request goes: a handler, or an answer the router makes. */
typedef enum fz_route { FZ_ROUTE_HANDLER, FZ_ROUTE_404, FZ_ROUTE_405 } fz_route;

/* One request of the strict reading. */
typedef struct fz_strict_req {
    size_t off, len; /* its canonical form in fz.strict */
    fz_route route;  /* where the router sends it */
} fz_strict_req;

/* Why the strict reading stopped. */
typedef enum fz_stop {
    FZ_STOP_REFUSED, /* a request is malformed, over a limit, or cut short by the input */
    FZ_STOP_CLOSED   /* a request ends the connection (close, HTTP/1.0, Upgrade, CONNECT) */
} fz_stop;

/* One final answer as the client read it. */
typedef struct fz_answer {
    int status;   /* 200 ... 599 */
    unsigned seq; /* X-Seq of a handler's answer; 0 for the server's own */
} fz_answer;

/* A request answered later from the check handle. */
typedef struct fz_async {
    gw_req *req;    /* NULL: free slot */
    unsigned seq;   /* its arrival number */
    unsigned turns; /* loop turns left before it is answered */
} fz_async;

/* The process-wide server and the current input's bookkeeping. */
typedef struct fz_state {
    uv_loop_t loop;                    /* the one loop */
    gw_router *router;                 /* the routes below */
    gw_http_server *server;            /* listening on 127.0.0.1:port */
    struct sockaddr_in addr;           /* where it listens */
    uv_check_t async_check;            /* answers async requests */
    fz_async async[FZ_PIPELINE];       /* requests waiting for their answer */
    size_t nasync;                     /* used slots */
    unsigned seq;                      /* handler-dispatched requests of this input */
    fz_fate fate[FZ_MAX_SEQ + 1];      /* by arrival number */
    bool head[FZ_MAX_SEQ + 1];         /* by arrival number: a HEAD request (no body back) */
    size_t seen_off[FZ_MAX_SEQ + 1];   /* by arrival number: what the handler was given, */
    size_t seen_len[FZ_MAX_SEQ + 1];   /* in canonical form in `seen` */
    fz_buf seen;                       /* requests as handlers saw them */
    fz_buf strict;                     /* requests as the strict reading has them */
    fz_strict_req reqs[FZ_MAX_SEQ];    /* the strict reading's requests, in order */
    size_t nreqs;                      /* ... how many */
    fz_stop stop;                      /* ... and why it stopped */
    fz_answer answers[FZ_MAX_ANSWERS]; /* final answers the client read, in order */
    size_t nanswers;                   /* ... how many */
    char *out;                         /* FZ_MAX_OUTPUT bytes: what the server sent */
    bool ready;                        /* started */
} fz_state;

static fz_state fz;

static char big_body[FZ_BIG_BODY];

static void fail(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz_http: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    abort();
}

/* ---------------------------------------------------------------------------------- */
/* Requests in canonical form: each field as a 4-byte length and its bytes - method,
 * path, query, the header count, each header's lower-case name and trimmed value, and
 * the body.  Handlers and the strict reading write it the same way, so comparing two
 * requests is comparing bytes.                                                        */

static void buf_put(fz_buf *b, const void *p, size_t n)
{
    if (n > b->cap - b->len) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap - b->len < n)
            cap *= 2;
        if (!(b->data = realloc(b->data, cap)))
            fail("realloc", NULL);
        b->cap = cap;
    }
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
}

static void canon_u32(fz_buf *b, size_t v)
{
    uint8_t n[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    buf_put(b, n, 4);
}

static void canon_field(fz_buf *b, const void *p, size_t n)
{
    canon_u32(b, n);
    buf_put(b, p, n);
}

/* Appends what a handler was given. */
static void canon_req(fz_buf *b, const gw_req *req)
{
    canon_field(b, req->method, strlen(req->method));
    canon_field(b, req->path, req->path_len);
    canon_field(b, req->query, req->query_len);
    canon_u32(b, req->nheaders);
    for (size_t i = 0; i < req->nheaders; i++) {
        canon_field(b, req->headers[i].name, req->headers[i].name_len);
        canon_field(b, req->headers[i].value, req->headers[i].value_len);
    }
    canon_field(b, req->body, req->body_len);
}

/* Prints a canonical request readably (for a failure report). */
static void canon_print(const char *who, const char *p, size_t len)
{
    static const char *const names[] = {"method", "path", "query"};
    const char *end = p + len;
    size_t field = 0, nheaders = 0;
    fprintf(stderr, "  %s:\n", who);
    while (p + 4 <= end) {
        size_t n = (uint8_t)p[0] | (size_t)(uint8_t)p[1] << 8 | (size_t)(uint8_t)p[2] << 16 |
                   (size_t)(uint8_t)p[3] << 24;
        p += 4;
        if (field == 3) {
            nheaders = n;
            fprintf(stderr, "    %zu headers\n", n);
            field++;
            continue;
        }
        const char *what = field < 3                  ? names[field]
                           : field < 4 + 2 * nheaders ? ((field - 4) % 2 ? "  value" : "  name")
                                                      : "body";
        fprintf(stderr, "    %s (%zu): \"%.*s\"\n", what, n, (int)(n > 200 ? 200 : n), p);
        p += n;
        field++;
    }
}

/* ---------------------------------------------------------------------------------- */
/* Routes.                                                                             */

static unsigned next_seq(const gw_req *req)
{
    fz.seq++;
    if (fz.seq <= FZ_MAX_SEQ) {
        fz.fate[fz.seq] = FZ_PENDING;
        fz.head[fz.seq] = strcmp(req->method, "HEAD") == 0;
        fz.seen_off[fz.seq] = fz.seen.len;
        canon_req(&fz.seen, req);
        fz.seen_len[fz.seq] = fz.seen.len - fz.seen_off[fz.seq];
    }
    return fz.seq;
}

static void set_fate(unsigned seq, fz_fate f)
{
    if (seq <= FZ_MAX_SEQ)
        fz.fate[seq] = f;
}

static void answer(gw_req *req, unsigned seq, int status, const char *type, const void *body,
                   size_t len)
{
    char num[16];
    int n = snprintf(num, sizeof(num), "%u", seq);
    gw_header h = {"X-Seq", 5, num, (size_t)n};
    if (gw_req_respond(req, status, &h, 1, type, body, len) != 0)
        fail("gw_req_respond refused a first answer", NULL);
    set_fate(seq, FZ_ANSWERED);
}

static void on_sync(gw_req *req, void *data)
{
    answer(req, next_seq(req), 200, "text/plain", "sync", 4);
}

static void on_echo(gw_req *req, void *data)
{
    answer(req, next_seq(req), 200, "application/octet-stream", req->body, req->body_len);
}

static void on_big(gw_req *req, void *data)
{
    answer(req, next_seq(req), 200, "text/plain", big_body, sizeof(big_body));
}

static void on_async_abort(gw_req *req, void *arg)
{
    fz_async *a = arg;
    if (a->req != req)
        fail("abort callback for a request not pending", NULL);
    set_fate(a->seq, FZ_ABORTED);
    a->req = NULL;
    fz.nasync--;
}

static void on_async(gw_req *req, void *data)
{
    unsigned seq = next_seq(req);
    fz_async *slot = NULL;
    for (size_t i = 0; i < FZ_PIPELINE && !slot; i++)
        if (!fz.async[i].req)
            slot = &fz.async[i];
    if (!slot) /* more requests in handlers than max_pipeline allows */
        fail("more async requests in flight than max_pipeline", NULL);
    const char *n = req->match.nparams ? gw_route_match_param(&req->match, 0).value : "0";
    slot->req = req;
    slot->seq = seq;
    slot->turns = (unsigned)(n[0] & 3);
    fz.nasync++;
    gw_req_on_abort(req, on_async_abort, slot);
}

/* Answers the async requests whose turn has come (a check callback, as broker
 * replies arrive after the poll phase). */
static void on_async_check(uv_check_t *h)
{
    for (size_t i = 0; i < FZ_PIPELINE; i++) {
        fz_async *a = &fz.async[i];
        if (!a->req)
            continue;
        if (a->turns) {
            a->turns--;
            continue;
        }
        gw_req *req = a->req;
        a->req = NULL;
        fz.nasync--;
        answer(req, a->seq, 200, "application/json", "{\"ok\":true}", 11);
    }
}

/* ---------------------------------------------------------------------------------- */
/* The server, started once per process.                                               */

static void teardown_done(void *arg)
{
    *(bool *)arg = true;
}

static void teardown(void)
{
    if (!fz.ready)
        return;
    bool done = false;
    gw_http_server_shutdown(fz.server, 1000, teardown_done, &done);
    while (!done)
        uv_run(&fz.loop, UV_RUN_ONCE);
    gw_http_server_destroy(&fz.server);
    uv_close((uv_handle_t *)&fz.async_check, NULL);
    uv_run(&fz.loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&fz.loop) != 0)
        fail("uv_loop_close: handles left open", NULL);
    gw_router_destroy(&fz.router);
    free(fz.out);
    free(fz.seen.data);
    free(fz.strict.data);
    fz.ready = false;
}

static void setup(void)
{
    memset(big_body, 'b', sizeof(big_body));
    if (!(fz.out = malloc(FZ_MAX_OUTPUT)))
        fail("setup", "malloc");
    if (uv_loop_init(&fz.loop) != 0 || !(fz.router = gw_router_new()))
        fail("setup", "loop or router");
    if (gw_router_add(fz.router, "GET", "/sync", on_sync, NULL) != 0 ||
        gw_router_add(fz.router, "POST", "/echo", on_echo, NULL) != 0 ||
        gw_router_add(fz.router, "GET", "/big", on_big, NULL) != 0 ||
        gw_router_add(fz.router, "GET", "/async/{n}", on_async, NULL) != 0)
        fail("setup", "gw_router_add");
    /* Small limits, so that short inputs reach every one of them. */
    gw_http_config cfg;
    gw_http_config_defaults(&cfg);
    cfg.max_url_bytes = FZ_MAX_URL;
    cfg.max_header_bytes = FZ_MAX_HEAD;
    cfg.max_headers = FZ_MAX_HEADERS;
    cfg.max_body_bytes = FZ_MAX_BODY;
    cfg.max_chunk_ext_bytes = FZ_MAX_CHUNK_EXT;
    /* Two pipelined full bodies pass it: the budget's 503 and its release are reached. */
    cfg.max_body_buffer = 2 * FZ_MAX_BODY;
    cfg.max_pipeline = FZ_PIPELINE;
    cfg.max_output_bytes = 64 * 1024;
    if (!(fz.server = gw_http_server_new(&fz.loop, fz.router, &cfg)))
        fail("setup", "gw_http_server_new");
    struct sockaddr_in any;
    uv_ip4_addr("127.0.0.1", 0, &any);
    struct sockaddr_storage bound;
    if (gw_http_server_start(fz.server, (const struct sockaddr *)&any) != 0 ||
        gw_http_server_address(fz.server, &bound) != 0)
        fail("setup", "gw_http_server_start");
    memcpy(&fz.addr, &bound, sizeof(fz.addr));
    uv_check_init(&fz.loop, &fz.async_check);
    uv_check_start(&fz.async_check, on_async_check);
    uv_unref((uv_handle_t *)&fz.async_check);
    fz.ready = true;
    atexit(teardown);
}

/* ---------------------------------------------------------------------------------- */
/* The client side of one input.                                                       */

typedef struct fz_client {
    int fd;        /* non-blocking loopback socket */
    char *out;     /* bytes the server sent */
    size_t len;    /* bytes in out */
    bool eof;      /* the server closed its side (or reset) */
    bool hold;     /* a slow reader: answers are read only when sending is stuck */
    bool progress; /* the last turn moved something */
} fz_client;

/* One loop turn, then everything the server sent. */
static void turn(fz_client *c)
{
    c->progress = false;
    uv_run(&fz.loop, UV_RUN_NOWAIT);
    while (!c->eof && !c->hold) {
        if (c->len == FZ_MAX_OUTPUT)
            fail("answers past FZ_MAX_OUTPUT", NULL);
        ssize_t n = recv(c->fd, c->out + c->len, FZ_MAX_OUTPUT - c->len, 0);
        if (n > 0) {
            c->len += (size_t)n;
            c->progress = true;
        } else if (n == 0 || errno == ECONNRESET) {
            c->eof = c->progress = true;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            break;
        } else if (errno != EINTR) {
            fail("recv", strerror(errno));
        }
    }
    if (fz.nasync)
        c->progress = true;
}

static void turn_until_quiet(fz_client *c)
{
    for (int quiet = 0, turns = 0; quiet < FZ_QUIET_TURNS; turns++) {
        if (turns > FZ_MAX_TURNS)
            fail("the server never settled", NULL);
        turn(c);
        quiet = c->progress ? 0 : quiet + 1;
    }
}

/* Writes one piece, turning the loop while the socket is full, then lets the server
 * read it (and with `settle`, waits until the answers are in).  A server that closed
 * (an error answer) may refuse the rest: that ends the input. */
static bool send_piece(fz_client *c, const uint8_t *p, size_t n, bool settle)
{
    while (n) {
        ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && (errno == EPIPE || errno == ECONNRESET))
            return false;
        if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            fail("send", strerror(errno));
        /* The socket is full: let the server read, and read its answers (it may
         * have stopped reading until they are taken). */
        bool hold = c->hold;
        c->hold = false;
        turn(c);
        c->hold = hold;
    }
    /* Let the server read this piece before the next one is written. */
    turn(c);
    if (settle && !c->hold)
        turn_until_quiet(c);
    return true;
}

static int connect_client(bool slow_reader)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        fail("socket", strerror(errno));
    /* A small receive window and segment size (set before connecting, so that the
     * server's side is sized by them: Linux sizes a send buffer from the segment size,
     * megabytes with loopback's 64 KiB) make large answers go out in parts: uv_write
     * and its callback instead of one uv_try_write. */
    int small_buf = 4096, small_seg = 1024;
    if (slow_reader) {
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small_buf, sizeof(small_buf));
        setsockopt(fd, IPPROTO_TCP, TCP_MAXSEG, &small_seg, sizeof(small_seg));
    }
    /* Loopback connect completes from the listen backlog, before the accept.  The
     * timer libFuzzer arms for -timeout can interrupt it; the handshake then goes on
     * without us, and poll says when it is done. */
    if (connect(fd, (const struct sockaddr *)&fz.addr, sizeof(fz.addr)) != 0) {
        if (errno != EINTR)
            fail("connect", strerror(errno));
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        while (poll(&p, 1, -1) < 0)
            if (errno != EINTR)
                fail("poll", strerror(errno));
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0)
            fail("connect", strerror(err ? err : errno));
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

/* ---------------------------------------------------------------------------------- */
/* The strict reading of the client's bytes (RFC 9112 sections 2-7, with the server's
 * limits from setup).  A whole input is read at once, request by request, until one is
 * refused, cut short, or ends the connection.                                         */

/* tchar (RFC 9110 5.6.2): the bytes of a method or a field name. */
static bool is_tchar(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* A visible byte (VCHAR or obs-text). */
static bool is_visible(uint8_t c)
{
    return (c > 0x20 && c < 0x7f) || c >= 0x80;
}

static int hex_value(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
        return (c | 0x20) - 'a' + 10;
    return -1;
}

static bool ieq(const uint8_t *p, size_t n, const char *word)
{
    return strlen(word) == n && strncasecmp((const char *)p, word, n) == 0;
}

/* The reader's cursor over one input. */
typedef struct fz_reader {
    const uint8_t *p, *end; /* the unread bytes */
    size_t head;            /* bytes of the current request's head and trailers */
} fz_reader;

/* Finds the CRLF ending the line at rd->p: *len is the line's length without it.  False
 * when the input ends first, or on a CR or LF that is not part of a CRLF. */
static bool read_line(fz_reader *rd, size_t *len)
{
    for (const uint8_t *q = rd->p; q < rd->end; q++) {
        if (*q == '\n')
            return false;
        if (*q == '\r') {
            if (q + 1 == rd->end || q[1] != '\n')
                return false;
            *len = (size_t)(q - rd->p);
            return true;
        }
    }
    return false;
}

/* A line of the head: counted against the head limit. */
static bool head_line(fz_reader *rd, size_t *len)
{
    if (!read_line(rd, len))
        return false;
    rd->head += *len + 2;
    return rd->head <= FZ_MAX_HEAD;
}

/* One field line (name ":" OWS value OWS) of len bytes at rd->p.  Value trimmed. */
static bool field_line(const uint8_t *p, size_t len, const uint8_t **name, size_t *nlen,
                       const uint8_t **value, size_t *vlen)
{
    const uint8_t *colon = memchr(p, ':', len), *end = p + len;
    if (!colon || colon == p)
        return false;
    for (const uint8_t *q = p; q < colon; q++)
        if (!is_tchar(*q)) /* SP or HTAB first is obs-fold: refused here */
            return false;
    const uint8_t *v = colon + 1;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    const uint8_t *vend = end;
    while (vend > v && (vend[-1] == ' ' || vend[-1] == '\t'))
        vend--;
    for (const uint8_t *q = v; q < vend; q++)
        if (!is_visible(*q) && *q != ' ' && *q != '\t')
            return false;
    *name = p;
    *nlen = (size_t)(colon - p);
    *value = v;
    *vlen = (size_t)(vend - v);
    return true;
}

/* Whether a comma-separated header value lists `token` (case-insensitive). */
static bool lists_token(const uint8_t *v, size_t n, const char *token)
{
    const uint8_t *end = v + n;
    while (v < end) {
        const uint8_t *comma = memchr(v, ',', (size_t)(end - v));
        const uint8_t *e = comma ? comma : end, *b = v;
        while (b < e && (*b == ' ' || *b == '\t'))
            b++;
        while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if (ieq(b, (size_t)(e - b), token))
            return true;
        v = comma ? comma + 1 : end;
    }
    return false;
}

/* A chunked body: chunks, the last chunk, trailers.  Appends the body to b. */
static bool read_chunked(fz_reader *rd, fz_buf *b)
{
    size_t total = 0, excess = 0;
    for (;;) {
        size_t len;
        if (!read_line(rd, &len))
            return false;
        const uint8_t *q = rd->p, *end = rd->p + len;
        size_t size = 0, digits = 0;
        for (; q < end && hex_value(*q) >= 0; q++) {
            if (size || hex_value(*q))
                digits++;
            size = size * 16 + (size_t)hex_value(*q);
            if (size > FZ_MAX_BODY)
                return false;
        }
        if (q == rd->p || (q < end && *q != ';'))
            return false; /* no size, or something but an extension after it */
        /* Bytes past the shortest form of the line: extensions, zeros before the size. */
        excess += len - (digits ? digits : 1);
        if (excess > FZ_MAX_CHUNK_EXT)
            return false;
        rd->p += len + 2;
        if (size == 0)
            break;
        total += size;
        if (total > FZ_MAX_BODY || (size_t)(rd->end - rd->p) < size + 2 || rd->p[size] != '\r' ||
            rd->p[size + 1] != '\n')
            return false;
        buf_put(b, rd->p, size);
        rd->p += size + 2;
    }
    for (;;) { /* trailers: field lines counted with the head, then dropped */
        size_t len, nlen, vlen;
        const uint8_t *name, *value;
        if (!head_line(rd, &len))
            return false;
        const uint8_t *line = rd->p;
        rd->p += len + 2;
        if (len == 0)
            return true;
        if (!field_line(line, len, &name, &nlen, &value, &vlen))
            return false;
    }
}

/* The target as the server hands it on: an absolute-form target's scheme and
 * authority dropped ("/" when no path follows), a fragment dropped, path and query
 * split at the first '?'. */
static void split_target(const uint8_t *t, size_t n, const uint8_t **path, size_t *plen,
                         const uint8_t **query, size_t *qlen)
{
    static const uint8_t slash = '/';
    size_t skip = 0;
    if (n >= 7 && strncasecmp((const char *)t, "http://", 7) == 0)
        skip = 7;
    else if (n >= 8 && strncasecmp((const char *)t, "https://", 8) == 0)
        skip = 8;
    bool root = false;
    if (skip) {
        while (skip < n && t[skip] != '/' && t[skip] != '?')
            skip++;
        root = skip == n || t[skip] == '?';
    }
    t += skip;
    n -= skip;
    const uint8_t *hash = memchr(t, '#', n);
    if (hash)
        n = (size_t)(hash - t);
    const uint8_t *q = memchr(t, '?', n);
    size_t path_len = q ? (size_t)(q - t) : n;
    *path = root ? &slash : t;
    *plen = root ? 1 : path_len;
    *query = q ? q + 1 : t;
    *qlen = q ? n - path_len - 1 : 0;
}

/* Where the server's router sends method + path. */
static fz_route route_of(const uint8_t *method, size_t mlen, const uint8_t *path, size_t plen)
{
    char m[64], allow[128];
    if (mlen >= sizeof(m))
        return FZ_ROUTE_404; /* longer than any method llhttp knows: refused anyway */
    memcpy(m, method, mlen);
    m[mlen] = '\0';
    gw_route_match match;
    int rc = gw_router_match(fz.router, m, (const char *)path, plen, &match, allow, sizeof(allow));
    return rc == 0 ? FZ_ROUTE_HANDLER : rc == BR_EINVAL ? FZ_ROUTE_405 : FZ_ROUTE_404;
}

/* Reads one request.  True: it is well-formed and within the limits; its canonical
 * form is in fz.strict and *keep says whether the connection goes on after it. */
static bool read_request(fz_reader *rd, fz_strict_req *out, bool *keep)
{
    size_t len;
    rd->head = 0;
    /* RFC 9112 2.2: empty lines (CRLF) before a request line are ignored. */
    while (rd->end - rd->p >= 2 && rd->p[0] == '\r' && rd->p[1] == '\n') {
        rd->p += 2;
        rd->head += 2;
    }
    /* request-line = method SP request-target SP HTTP-version CRLF */
    if (!head_line(rd, &len))
        return false;
    const uint8_t *line = rd->p, *end = rd->p + len;
    const uint8_t *sp1 = memchr(line, ' ', len);
    const uint8_t *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(end - sp1 - 1)) : NULL;
    if (!sp1 || !sp2 || sp1 == line || sp2 == sp1 + 1 || end - sp2 - 1 != 8)
        return false;
    for (const uint8_t *q = line; q < sp1; q++)
        if (!is_tchar(*q))
            return false;
    for (const uint8_t *q = sp1 + 1; q < sp2; q++)
        if (!is_visible(*q))
            return false;
    bool http10 = memcmp(sp2 + 1, "HTTP/1.0", 8) == 0;
    if (!http10 && memcmp(sp2 + 1, "HTTP/1.1", 8) != 0)
        return false;
    const uint8_t *method = line, *target = sp1 + 1;
    size_t mlen = (size_t)(sp1 - line), tlen = (size_t)(sp2 - target);
    if (tlen > FZ_MAX_URL)
        return false;
    rd->p += len + 2;

    /* Header fields, up to the empty line. */
    struct {
        const uint8_t *name, *value;
        size_t nlen, vlen;
    } h[FZ_MAX_HEADERS];
    size_t nh = 0;
    for (;;) {
        if (!head_line(rd, &len))
            return false;
        line = rd->p;
        rd->p += len + 2;
        if (len == 0)
            break;
        if (nh == FZ_MAX_HEADERS ||
            !field_line(line, len, &h[nh].name, &h[nh].nlen, &h[nh].value, &h[nh].vlen))
            return false;
        nh++;
    }

    /* What the fields mean for framing and the connection. */
    int hosts = 0, lengths = 0, encodings = 0;
    bool close = false, keep_alive = false, upgrade_token = false, upgrade = false;
    size_t length = 0;
    for (size_t i = 0; i < nh; i++) {
        const uint8_t *v = h[i].value;
        size_t vl = h[i].vlen;
        if (ieq(h[i].name, h[i].nlen, "host")) {
            hosts++;
        } else if (ieq(h[i].name, h[i].nlen, "content-length")) {
            if (++lengths > 1 || vl == 0)
                return false;
            for (size_t k = 0; k < vl; k++) {
                if (v[k] < '0' || v[k] > '9')
                    return false;
                length = length * 10 + (size_t)(v[k] - '0');
                if (length > FZ_MAX_BODY)
                    return false;
            }
        } else if (ieq(h[i].name, h[i].nlen, "transfer-encoding")) {
            /* Only "chunked", alone: any other coding leaves the length unknown. */
            if (++encodings > 1 || !ieq(v, vl, "chunked"))
                return false;
        } else if (ieq(h[i].name, h[i].nlen, "connection")) {
            close = close || lists_token(v, vl, "close");
            keep_alive = keep_alive || lists_token(v, vl, "keep-alive");
            upgrade_token = upgrade_token || lists_token(v, vl, "upgrade");
        } else if (ieq(h[i].name, h[i].nlen, "upgrade")) {
            upgrade = true;
        }
    }
    if (hosts > 1 || (!http10 && hosts == 0))
        return false;
    /* RFC 9112 6.1: Transfer-Encoding in 1.0 is faulty framing; with Content-Length it
     * is a smuggling attempt. */
    if (encodings && (http10 || lengths))
        return false;
    bool connect = ieq(method, mlen, "CONNECT");
    *keep = (http10 ? keep_alive && !close : !close) && !(upgrade && upgrade_token) && !connect;

    /* Canonical form: what a handler must be given. */
    fz_buf *b = &fz.strict;
    out->off = b->len;
    const uint8_t *path, *query;
    size_t plen, qlen;
    split_target(target, tlen, &path, &plen, &query, &qlen);
    out->route = route_of(method, mlen, path, plen);
    canon_field(b, method, mlen);
    canon_field(b, path, plen);
    canon_field(b, query, qlen);
    canon_u32(b, nh);
    for (size_t i = 0; i < nh; i++) {
        char name[FZ_MAX_HEAD];
        for (size_t k = 0; k < h[i].nlen; k++) {
            uint8_t c = h[i].name[k];
            name[k] = (char)(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
        }
        canon_field(b, name, h[i].nlen);
        canon_field(b, h[i].value, h[i].vlen);
    }
    /* The body: none for CONNECT (what follows would be a tunnel's). */
    size_t body_at = b->len;
    canon_u32(b, 0);
    if (encodings && !connect) {
        if (!read_chunked(rd, b))
            return false;
    } else if (lengths && !connect) {
        if ((size_t)(rd->end - rd->p) < length)
            return false;
        buf_put(b, rd->p, length);
        rd->p += length;
    }
    size_t body_len = b->len - body_at - 4;
    for (int k = 0; k < 4; k++)
        b->data[body_at + (size_t)k] = (char)(body_len >> (8 * k));
    out->len = b->len - out->off;
    return true;
}

/* Reads the whole input into fz.reqs, fz.nreqs and fz.stop. */
static void strict_read(const uint8_t *data, size_t size)
{
    fz_reader rd = {.p = data, .end = data + size};
    fz.strict.len = 0;
    fz.nreqs = 0;
    fz.stop = FZ_STOP_REFUSED;
    while (fz.nreqs < FZ_MAX_SEQ) {
        bool keep;
        if (!read_request(&rd, &fz.reqs[fz.nreqs], &keep))
            return;
        fz.nreqs++;
        if (!keep) {
            fz.stop = FZ_STOP_CLOSED;
            return;
        }
    }
}

/* Compares what handlers were given and what the client was answered with the strict
 * reading (see the top of the file); aborts on a difference. */
static void check_reading(void)
{
    size_t handled = 0; /* the strict reading's requests routed to a handler, so far */
    unsigned routed[FZ_MAX_SEQ];
    for (size_t i = 0; i < fz.nreqs; i++) {
        routed[i] = 0;
        if (fz.reqs[i].route != FZ_ROUTE_HANDLER)
            continue;
        routed[i] = (unsigned)++handled;
        if (handled > fz.seq || handled > FZ_MAX_SEQ)
            continue;
        const fz_strict_req *want = &fz.reqs[i];
        if (want->len != fz.seen_len[handled] ||
            memcmp(fz.strict.data + want->off, fz.seen.data + fz.seen_off[handled], want->len)) {
            fprintf(stderr, "fuzz_http: request %zu of the strict reading (handler's #%zu):\n",
                    i + 1, handled);
            canon_print("strict reading", fz.strict.data + want->off, want->len);
            canon_print("handler was given", fz.seen.data + fz.seen_off[handled],
                        fz.seen_len[handled]);
            fail("a handler was given a request other than the strict reading's", NULL);
        }
    }
    if (fz.seq > handled) {
        fprintf(stderr, "fuzz_http: %u handled, %zu in the strict reading (%zu requests, %s)\n",
                fz.seq, handled, fz.nreqs, fz.stop == FZ_STOP_CLOSED ? "closed" : "refused");
        fail("a handler was given a request the strict reading refuses", NULL);
    }
    for (size_t i = 0; i < fz.nanswers; i++) {
        const fz_answer *a = &fz.answers[i];
        bool known = i < fz.nreqs;
        if (a->seq) {
            if (!known || a->seq != routed[i])
                fail("a handler's answer is not for the strict reading's request in its place",
                     NULL);
        } else if (a->status == 404 || a->status == 405) {
            fz_route want = a->status == 404 ? FZ_ROUTE_404 : FZ_ROUTE_405;
            if (!known || fz.reqs[i].route != want)
                fail("a 404/405 for a request the strict reading refuses or routes elsewhere",
                     NULL);
        } else if (!known && fz.stop == FZ_STOP_CLOSED) {
            fail("an answer after a request that ends the connection", NULL);
        }
    }
}

/* ---------------------------------------------------------------------------------- */
/* Checking what came back.                                                            */

/* Finds the value of header `name` (lower case) in the header block [h, end). */
static const char *find_header(const char *h, const char *end, const char *name, size_t *len,
                               int *count)
{
    const char *found = NULL;
    size_t nlen = strlen(name);
    *count = 0;
    for (const char *line = h; line < end;) {
        const char *eol = memchr(line, '\r', (size_t)(end - line));
        if (!eol)
            eol = end;
        if ((size_t)(eol - line) > nlen + 1 && strncasecmp(line, name, nlen) == 0 &&
            line[nlen] == ':') {
            const char *v = line + nlen + 1;
            while (v < eol && *v == ' ')
                v++;
            found = v;
            *len = (size_t)(eol - v);
            (*count)++;
        }
        line = eol + 2;
    }
    return found;
}

/* Checks every answer in out (see the top of the file); aborts on a broken promise. */
static void check_answers(const char *out, size_t len, bool complete)
{
    unsigned expect_seq = 1;
    fz.nanswers = 0;
    bool closed = false;
    for (size_t pos = 0; pos < len;) {
        if (closed)
            fail("bytes after an answer that said Connection: close", NULL);
        const char *start = out + pos, *end = out + len;
        const char *hend = NULL;
        for (const char *s = start; s + 4 <= end; s++) {
            if (memcmp(s, "\r\n\r\n", 4) == 0) {
                hend = s + 2;
                break;
            }
        }
        if (!hend && !complete) /* after a reset the last answer may be cut anywhere */
            break;
        if (!hend)
            fail("an answer's head is cut short", NULL);
        if ((size_t)(end - start) < 17 || memcmp(start, "HTTP/1.1 ", 9) != 0)
            fail("an answer does not start with a status line", NULL);
        int status = (start[9] - '0') * 100 + (start[10] - '0') * 10 + (start[11] - '0');
        if (status < 100 || status > 599 || start[12] != ' ')
            fail("bad status code", NULL);
        const char *headers = (const char *)memchr(start, '\n', (size_t)(hend - start)) + 1;
        for (const char *s = start; s < hend; s++) {
            if ((*s == '\n' && s[-1] != '\r') || (*s == '\r' && s[1] != '\n'))
                fail("a bare CR or LF in an answer's head", NULL);
        }
        if (status == 100) {
            if (headers != hend)
                fail("100 Continue with headers", NULL);
            pos = (size_t)(hend + 2 - out);
            continue;
        }
        size_t cl_len = 0, seq_len = 0, conn_len = 0;
        int cl_count, seq_count, conn_count;
        const char *cl = find_header(headers, hend, "content-length", &cl_len, &cl_count);
        const char *seq = find_header(headers, hend, "x-seq", &seq_len, &seq_count);
        const char *cn = find_header(headers, hend, "connection", &conn_len, &conn_count);
        if (cl_count != 1 || cl_len == 0 || cl_len > 9)
            fail("an answer without exactly one Content-Length", NULL);
        size_t body_len = 0;
        for (size_t i = 0; i < cl_len; i++) {
            if (cl[i] < '0' || cl[i] > '9')
                fail("Content-Length is not a number", NULL);
            body_len = body_len * 10 + (size_t)(cl[i] - '0');
        }
        const char *body = hend + 2;
        unsigned seqno = seq ? (unsigned)strtoul(seq, NULL, 10) : 0;
        /* A HEAD answer has no body.  Handlers know their request's method; the
         * server's own answers have a JSON body, so one that does not start with '{'
         * is the head-only form. */
        bool head_form =
            seq ? seqno <= FZ_MAX_SEQ && fz.head[seqno] : body_len && (body == end || *body != '{');
        if (!head_form && (size_t)(end - body) < body_len && !complete)
            break;
        if (!head_form && (size_t)(end - body) < body_len)
            fail("an answer's body is shorter than its Content-Length", NULL);
        if (seq) {
            if (seq_count != 1 || seqno != expect_seq)
                fail("handler answers out of order, repeated or missing", NULL);
            expect_seq++;
        } else if (status < 400) {
            fail("a success answer the handlers did not make", NULL);
        } else if (!head_form && (body_len < 12 || memcmp(body, "{\"detail\":", 10) != 0)) {
            fail("an error answer that is not {\"detail\": ...}", NULL);
        }
        closed = cn && conn_len == 5 && strncasecmp(cn, "close", 5) == 0;
        pos = (size_t)(body - out) + (head_form ? 0 : body_len);
        if (fz.nanswers < FZ_MAX_ANSWERS)
            fz.answers[fz.nanswers++] = (fz_answer){status, seq ? seqno : 0};
    }
    /* Every handler answer came, unless the client left while one was still in its
     * handler: that one is aborted, and answers after it are never written. */
    unsigned got = expect_seq - 1;
    if (got > fz.seq)
        fail("more handler answers than handled requests", NULL);
    if (complete && got < fz.seq && got < FZ_MAX_SEQ && fz.fate[got + 1] != FZ_ABORTED)
        fail("a handler answer never arrived", NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2 || size > FZ_MAX_INPUT)
        return 0;
    if (!fz.ready)
        setup();
    uint8_t mode = data[0];
    size_t max_piece = mode & 0x3f;
    bool slow_reader = mode & 0x40, abrupt = mode & 0x80;
    uint32_t rng = data[1] * 2654435761u + 1;
    data += 2;
    size -= 2;
    fz.seq = 0;
    fz.seen.len = 0;
    strict_read(data, size);

    fz_client c = {.fd = connect_client(slow_reader), .out = fz.out, .hold = slow_reader};
    size_t before = gw_http_server_connections(fz.server);
    for (int turns = 0; gw_http_server_connections(fz.server) == before; turns++) {
        if (turns > FZ_MAX_TURNS)
            fail("the server never accepted", NULL);
        uv_run(&fz.loop, UV_RUN_NOWAIT);
    }
    if (fcntl(c.fd, F_SETFL, O_NONBLOCK) != 0)
        fail("fcntl", strerror(errno));

    for (size_t off = 0; off < size && !c.eof;) {
        size_t n = size - off;
        if (max_piece) {
            rng ^= rng << 13;
            rng ^= rng >> 17;
            rng ^= rng << 5;
            size_t piece = 1 + rng % max_piece;
            n = piece < n ? piece : n;
        }
        /* An abrupt client resets right after its last piece, before handlers answer. */
        if (!send_piece(&c, data + off, n, !abrupt || off + n < size))
            break;
        off += n;
    }
    c.hold = false;
    if (!abrupt) {
        turn_until_quiet(&c);
        if (fz.nasync)
            fail("async requests still pending after the loop settled", NULL);
        /* The client leaves politely: half-close, read to EOF. */
        shutdown(c.fd, SHUT_WR);
        for (int turns = 0; !c.eof; turns++) {
            if (turns > FZ_MAX_TURNS)
                fail("the server never closed after the client's EOF", NULL);
            turn(&c);
        }
    }
    /* Then - or at once, requests still in handlers and answers still being written -
     * a reset, which also leaves no TIME_WAIT behind when the server closed first. */
    struct linger lg = {1, 0};
    setsockopt(c.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(c.fd);
    for (int turns = 0; gw_http_server_connections(fz.server) > 0 || fz.nasync; turns++) {
        if (turns > FZ_MAX_TURNS)
            fail("the connection was never freed", NULL);
        uv_run(&fz.loop, UV_RUN_NOWAIT);
    }
    if (getenv("FUZZ_HTTP_TRACE")) /* to see what a seed exercises */
        fprintf(stderr, "--- %u handled, %zu bytes back:\n%.*s\n", fz.seq, c.len,
                (int)(c.len > 4096 ? 4096 : c.len), c.out);
    check_answers(c.out, c.len, !abrupt);
    check_reading();
    return 0;
}
