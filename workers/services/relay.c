/*
 * relay.c - a handler calling a streaming service (`httpx.stream()` inside a route):
 * each route calls the clock's GET /clock/lines?n=N (a streamed body of numbered lines;
 * hold=1 is passed on too) through the gateway, in one of the two ways barista/async.h
 * offers.
 *
 *   GET /relay/gather?n=N  -> br_call: the gateway gathers the stream into one answer
 *                             (up to its --call-gather-max); replies {"status",
 *                             "bytes","lines","last"} - or the call's error status and
 *                             detail (502 past the limit; 503 when the gateway's
 *                             --call-gather-total has no room)
 *   GET /relay/lines?n=N   -> br_call_stream: the lines passed on to this route's own
 *                             streamed response as they come; a slow client pauses
 *                             the call, which pauses the clock
 *   GET /relay/summary?n=N -> br_call_stream: counts the lines as they come and checks
 *                             their order without keeping them; replies {"status",
 *                             "complete","bytes","lines","in_order"}
 *
 * A client of any of them that leaves cancels this request; its call goes with it
 * (CANCEL), and the gateway cancels the clock's stream (and frees what it gathered).
 */
#include <stdio.h>
#include <string.h>

#include "barista/stream.h"
#include "services.h"

/* Bytes of one clock line ("%09d abcdefghijklmnopqrstuvwxyz\n"). */
#define RELAY_LINE_LEN 37
/* /relay/lines pauses its call while its own stream holds this much for the client. */
#define RELAY_QUEUE_HIGH (BR_STREAM_QUEUE_MAX / 2)

/* The clock path for this request's n and hold, in the arena; NULL when out of memory. */
static const char *clock_path(br_req *req)
{
    int64_t n, hold;
    if (br_req_query_int(req, "n", &n) != 0)
        n = 1000;
    if (br_req_query_int(req, "hold", &hold) != 0)
        hold = 0;
    char *path = br_req_alloc(req, 64);
    if (path)
        snprintf(path, 64, "/clock/lines?n=%lld&hold=%d", (long long)n, hold != 0);
    return path;
}

/* Starts the streamed call of this request to the clock with fns; `state` (size
 * bytes, zeroed, in the arena) is their argument.  NULL when it could not start (the
 * request was answered then). */
static void *stream_clock(br_req *req, const br_call_stream_fns *fns, size_t size, br_call_op **op)
{
    const char *path = clock_path(req);
    void *state = br_req_alloc(req, size);
    if (!path || !state) {
        br_reply_error(req, 500, "out of memory");
        return NULL;
    }
    memset(state, 0, size);
    br_call_spec spec = {.path = path};
    int rc = br_call_stream(req, &spec, fns, state, op);
    if (rc != 0) {
        br_reply_errorf(req, 503, "cannot call the clock: %s", br_strerror(rc));
        return NULL;
    }
    return state;
}

/* ---------------------------------------------------------------------------------- */
/* /relay/gather: one call, one gathered answer.                                       */

static void gathered(br_req *req, const br_result *res, void *arg)
{
    (void)arg;
    if (!br_result_ok(res)) {
        br_reply_errorf(req, res->status, "the clock answered %u: %.*s", res->status,
                        (int)res->detail.len, res->detail.ptr);
        return;
    }
    br_str last = {"", 0};
    if (res->body.len >= RELAY_LINE_LEN)
        last = (br_str){res->body.ptr + res->body.len - RELAY_LINE_LEN, RELAY_LINE_LEN - 1};
    br_reply_pack(req, 200, "{sI sI sI sS}", "status", (int64_t)res->status, "bytes",
                  (int64_t)res->body.len, "lines", (int64_t)(res->body.len / RELAY_LINE_LEN),
                  "last", last);
}

/* The client left: ending the request now abandons its call (CANCEL to the gateway,
 * which cancels the clock and drops what it gathered); without this callback the call
 * would run on to its answer or its deadline. */
static void gather_cancel(br_req *req, void *arg)
{
    (void)arg;
    br_reply_error(req, 499, "the client left");
}

static void relay_gather(br_req *req)
{
    const char *path = clock_path(req);
    br_call_spec spec = {.path = path};
    int rc = path ? br_call(req, &spec, gathered, NULL, NULL) : BR_ENOMEM;
    if (rc != 0) {
        br_reply_errorf(req, 503, "cannot call the clock: %s", br_strerror(rc));
        return;
    }
    br_req_on_cancel(req, gather_cancel, NULL);
}

/* ---------------------------------------------------------------------------------- */
/* /relay/lines: the call's chunks become this route's stream.                         */

/* One /relay/lines relay; lives in the request's arena. */
typedef struct relay {
    br_call_op *call; /* the streamed call while it runs */
    bool started;     /* this route's own stream started */
} relay;

static void lines_head(br_req *req, const br_call_head *head, void *arg)
{
    relay *r = arg;
    if (head->status != 200) {
        /* An error answer: passed on as this route's error; the call ends with it. */
        br_reply_errorf(req, head->status, "the clock answered %u: %.*s", head->status,
                        (int)head->detail.len, head->detail.ptr);
        return;
    }
    if (br_stream_start(req, 200, "text/plain; charset=utf-8") != 0) {
        br_reply_error(req, 500, "cannot start the stream");
        return;
    }
    r->started = true;
}

static void lines_chunk(br_req *req, const void *data, size_t len, void *arg)
{
    relay *r = arg;
    if (!r->started)
        return;
    int rc = br_stream_write(req, data, len);
    if (rc != 0 && rc != BR_ECLOSED) {
        br_stream_abort(req, "the relay's queue is full");
        return;
    }
    /* Our client reads slower than the clock writes: stop granting the call. */
    if (br_stream_queued(req) >= RELAY_QUEUE_HIGH)
        br_call_stream_pause(r->call);
}

static void lines_writable(br_req *req, void *arg)
{
    relay *r = arg;
    (void)req;
    if (r->call)
        br_call_stream_resume(r->call);
}

static void lines_end(br_req *req, bool complete, br_str error, void *arg)
{
    relay *r = arg;
    r->call = NULL;
    if (!r->started) {
        br_reply_errorf(req, 502, "the call to the clock failed: %.*s", (int)error.len, error.ptr);
        return;
    }
    if (complete)
        br_stream_end(req);
    else
        br_stream_abort(req, "the clock's stream was cut");
}

/* Our client left: ending the request cancels the call, and the clock's stream. */
static void lines_cancel(br_req *req, void *arg)
{
    relay *r = arg;
    if (r->started)
        br_stream_end(req);
    else
        br_reply_error(req, 499, "cancelled");
}

static void relay_lines(br_req *req)
{
    static const br_call_stream_fns fns = {lines_head, lines_chunk, lines_end};
    br_call_op *call;
    relay *r = stream_clock(req, &fns, sizeof(*r), &call);
    if (!r)
        return;
    r->call = call;
    br_req_on_cancel(req, lines_cancel, r);
    br_stream_on_writable(req, lines_writable, r);
}

/* ---------------------------------------------------------------------------------- */
/* /relay/summary: the call's chunks counted, never kept.                              */

/* One /relay/summary count; lives in the request's arena. */
typedef struct summary {
    uint16_t status;           /* the answer's status */
    int64_t bytes;             /* body bytes seen */
    int64_t lines;             /* whole lines seen */
    bool in_order;             /* every line's number was the one expected */
    size_t partial;            /* bytes of the current line seen so far */
    char line[RELAY_LINE_LEN]; /* the current line's first bytes */
} summary;

static void summary_head(br_req *req, const br_call_head *head, void *arg)
{
    summary *s = arg;
    (void)req;
    s->status = head->status;
}

/* The number a clock line starts with, or -1. */
static int64_t line_number(const char *p)
{
    int64_t n = 0;
    for (int i = 0; i < 9; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        n = n * 10 + (p[i] - '0');
    }
    return n;
}

static void summary_chunk(br_req *req, const void *data, size_t len, void *arg)
{
    summary *s = arg;
    const char *p = data;
    (void)req;
    s->bytes += (int64_t)len;
    for (size_t i = 0; i < len; i++) {
        s->line[s->partial++] = p[i];
        if (s->partial < RELAY_LINE_LEN)
            continue;
        if (line_number(s->line) != s->lines || s->line[RELAY_LINE_LEN - 1] != '\n')
            s->in_order = false;
        s->lines++;
        s->partial = 0;
    }
}

static void summary_end(br_req *req, bool complete, br_str error, void *arg)
{
    summary *s = arg;
    if (!complete && s->status == 0) {
        br_reply_errorf(req, 502, "the call to the clock failed: %.*s", (int)error.len, error.ptr);
        return;
    }
    br_reply_pack(req, 200, "{sI sb sI sI sb}", "status", (int64_t)s->status, "complete",
                  complete && s->partial == 0, "bytes", s->bytes, "lines", s->lines, "in_order",
                  s->in_order);
}

static void relay_summary(br_req *req)
{
    static const br_call_stream_fns fns = {summary_head, summary_chunk, summary_end};
    summary *s = stream_clock(req, &fns, sizeof(*s), NULL);
    if (s)
        s->in_order = true; /* until a line says otherwise */
}

/* Every route takes the clock's own n and passes it on. */
#define RELAY_ROUTE(p, h, what)                                                                    \
    {                                                                                              \
        .method = "GET", .path = p, .handler = h, .summary = what,                                 \
        .params = br_clock_lines_params, .nparams = BR_NELEMS(br_clock_lines_params)               \
    }

static const br_route_spec routes[] = {
    RELAY_ROUTE("/relay/gather", relay_gather, "The clock's stream, gathered into one answer"),
    RELAY_ROUTE("/relay/lines", relay_lines, "The clock's stream, called as a stream, relayed"),
    RELAY_ROUTE("/relay/summary", relay_summary, "The clock's stream, counted as it comes"),
};

const br_service_spec br_relay_service = {
    .name = "relay",
    .kind = BR_KIND_IO,
    .summary = "calling a streaming service: gathered, relayed, summarised",
    .routes = routes,
    .nroutes = BR_NELEMS(routes),
};
