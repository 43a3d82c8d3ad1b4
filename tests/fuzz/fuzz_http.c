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
 * answer carries X-Seq, the request's arrival number.  After the input, the client
 * waits until nothing moves, half-closes and reads to EOF (or resets), and checks:
 *   - the bytes read are a sequence of well-formed HTTP/1.1 answers (status line,
 *     header lines, exactly one Content-Length that the body matches), with nothing
 *     after an answer that says Connection: close;
 *   - handler answers arrive exactly once each, in arrival order, none missing unless
 *     the request was aborted because the client left (then none after it either),
 *     or the client reset the connection;
 *   - answers the server makes itself are FastAPI-shaped {"detail": ...} errors;
 *   - the connection is gone afterwards and no request is left pending.
 * ASan, UBSan and LeakSanitizer catch the rest.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

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

/* What happened to one handled request. */
typedef enum fz_fate { FZ_PENDING, FZ_ANSWERED, FZ_ABORTED } fz_fate;

/* A request answered later from the check handle. */
typedef struct fz_async {
    gw_req *req;    /* NULL: free slot */
    unsigned seq;   /* its arrival number */
    unsigned turns; /* loop turns left before it is answered */
} fz_async;

/* The process-wide server and the current input's bookkeeping. */
typedef struct fz_state {
    uv_loop_t loop;               /* the one loop */
    gw_router *router;            /* the routes below */
    gw_http_server *server;       /* listening on 127.0.0.1:port */
    struct sockaddr_in addr;      /* where it listens */
    uv_check_t async_check;       /* answers async requests */
    fz_async async[FZ_PIPELINE];  /* requests waiting for their answer */
    size_t nasync;                /* used slots */
    unsigned seq;                 /* handler-dispatched requests of this input */
    fz_fate fate[FZ_MAX_SEQ + 1]; /* by arrival number */
    bool head[FZ_MAX_SEQ + 1];    /* by arrival number: a HEAD request (no body back) */
    char *out;                    /* FZ_MAX_OUTPUT bytes: what the server sent */
    bool ready;                   /* started */
} fz_state;

static fz_state fz;

static char big_body[FZ_BIG_BODY];

static void fail(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz_http: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    abort();
}

/* ---------------------------------------------------------------------------------- */
/* Routes.                                                                             */

static unsigned next_seq(const gw_req *req)
{
    fz.seq++;
    if (fz.seq <= FZ_MAX_SEQ) {
        fz.fate[fz.seq] = FZ_PENDING;
        fz.head[fz.seq] = strcmp(req->method, "HEAD") == 0;
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
    const char *n = req->match.nparams ? req->match.params[0].value : "0";
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
    cfg.max_url_bytes = 256;
    cfg.max_header_bytes = 1024;
    cfg.max_headers = 12;
    cfg.max_body_bytes = 4096;
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
    /* Loopback connect completes from the listen backlog, before the accept. */
    if (connect(fd, (const struct sockaddr *)&fz.addr, sizeof(fz.addr)) != 0)
        fail("connect", strerror(errno));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
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
    return 0;
}
