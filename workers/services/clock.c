/*
 * clock.c - streamed responses: Server-Sent Events on a timer, and a bulk text stream
 * written as fast as the client reads it (Starlette's StreamingResponse).
 *
 *   GET /clock?n=5&interval_ms=200   -> text/event-stream: `retry: 1000`, then n events
 *                                       `id: I`, `event: tick`, `data: {"seq":I,"n":N}`
 *                                       every interval_ms, then the end
 *   GET /clock/lines?n=N             -> text/plain, N lines "%09d abcdefghijklmnopqrstuvwxyz\n"
 *                                       (seq from 0), written whenever there is room;
 *                                       with hold=1 the stream stays open after the
 *                                       last line until the client leaves (what an
 *                                       answer in progress holds, for tests)
 *   GET /clock/stats                 -> {"started","completed","cancelled"}: this
 *                                       worker's streams, to watch cancels arrive
 *
 * A client that leaves mid-stream cancels the request: the cancel callback stops the
 * work, counts it and ends the stream.
 */
#include <stdio.h>
#include <string.h>

#include "services.h"

#define CLOCK_MAX_EVENTS   100000
#define CLOCK_MAX_INTERVAL 60000
#define LINES_MAX          100000000
/* Bytes of /clock/lines written per call: many lines per chunk. */
#define LINES_BATCH (16 * 1024)
#define LINE_LEN    37

/* The service's counters (its data). */
typedef struct clock_stats {
    int64_t started;   /* streams begun */
    int64_t completed; /* streams that reached their end */
    int64_t cancelled; /* streams whose client left (or that idled out) */
} clock_stats;

static clock_stats *stats_of(br_req *req)
{
    return br_req_data(req);
}

/* One /clock stream; lives in the request's arena. */
typedef struct ticker {
    uv_timer_t timer; /* adopted: the runtime closes it */
    br_req *req;      /* the stream */
    int64_t seq;      /* events sent */
    int64_t n;        /* events to send */
} ticker;

static void tick(uv_timer_t *timer)
{
    ticker *t = timer->data;
    char id[24], data[64];
    snprintf(id, sizeof(id), "%lld", (long long)t->seq);
    int len = snprintf(data, sizeof(data), "{\"seq\":%lld,\"n\":%lld}", (long long)t->seq,
                       (long long)t->n);
    int rc = br_sse_event(t->req, id, "tick", data, (size_t)len);
    if (rc == BR_ECLOSED)
        return; /* the cancel callback ends it */
    if (rc != 0) {
        uv_timer_stop(&t->timer);
        br_stream_abort(t->req, "the client does not keep up");
        return;
    }
    if (++t->seq < t->n)
        return;
    uv_timer_stop(&t->timer);
    stats_of(t->req)->completed++;
    br_stream_end(t->req);
}

static void ticker_cancel(br_req *req, void *arg)
{
    ticker *t = arg;
    uv_timer_stop(&t->timer);
    stats_of(req)->cancelled++;
    br_stream_end(req);
}

static void clock_sse(br_req *req)
{
    int64_t n, interval;
    if (br_req_query_int(req, "n", &n) != 0)
        n = 5;
    if (br_req_query_int(req, "interval_ms", &interval) != 0)
        interval = 200;
    ticker *t = br_req_alloc(req, sizeof(*t));
    if (!t) {
        br_reply_error(req, 500, "out of memory");
        return;
    }
    *t = (ticker){.req = req, .n = n};
    if (br_sse_start(req) != 0) {
        br_reply_error(req, 500, "cannot start the stream");
        return;
    }
    stats_of(req)->started++;
    br_sse_retry(req, 1000);
    uv_timer_init(br_req_loop(req), &t->timer);
    t->timer.data = t;
    br_req_adopt(req, (uv_handle_t *)&t->timer);
    br_req_on_cancel(req, ticker_cancel, t);
    uv_timer_start(&t->timer, tick, 0, (uint64_t)(interval > 0 ? interval : 1));
}

/* One /clock/lines stream; lives in the request's arena. */
typedef struct liner {
    int64_t next; /* the next line's number */
    int64_t n;    /* lines to send */
    bool hold;    /* after the last line, wait for the cancel instead of ending */
    char batch[LINES_BATCH];
} liner;

/* Writes line n, LINE_LEN bytes: n in nine digits (n < LINES_MAX), then the alphabet. */
static void put_line(char *p, int64_t n)
{
    static const char tail[] = " abcdefghijklmnopqrstuvwxyz\n";
    for (int i = 8; i >= 0; i--) {
        p[i] = (char)('0' + n % 10);
        n /= 10;
    }
    memcpy(p + 9, tail, sizeof(tail) - 1);
}

/* Writes lines until the stream's queue is full or every line is out. */
static void lines_more(br_req *req, void *arg)
{
    liner *l = arg;
    while (l->next < l->n) {
        size_t len = 0;
        int64_t from = l->next;
        while (l->next < l->n && len + LINE_LEN <= sizeof(l->batch)) {
            put_line(l->batch + len, l->next);
            len += LINE_LEN;
            l->next++;
        }
        int rc = br_stream_write(req, l->batch, len);
        if (rc == BR_EFULL) {
            l->next = from; /* again when there is room */
            return;
        }
        if (rc != 0)
            return; /* cancelled: the cancel callback ends it */
    }
    if (l->hold)
        return; /* the cancel callback ends it */
    stats_of(req)->completed++;
    br_stream_end(req);
}

static void lines_cancel(br_req *req, void *arg)
{
    (void)arg;
    stats_of(req)->cancelled++;
    br_stream_end(req);
}

static void clock_lines(br_req *req)
{
    int64_t n, hold;
    if (br_req_query_int(req, "n", &n) != 0)
        n = 1000;
    if (br_req_query_int(req, "hold", &hold) != 0)
        hold = 0;
    liner *l = br_req_alloc(req, sizeof(*l));
    if (!l) {
        br_reply_error(req, 500, "out of memory");
        return;
    }
    l->next = 0;
    l->n = n;
    l->hold = hold != 0;
    if (br_stream_start(req, 200, "text/plain; charset=utf-8") != 0) {
        br_reply_error(req, 500, "cannot start the stream");
        return;
    }
    stats_of(req)->started++;
    br_req_on_cancel(req, lines_cancel, l);
    br_stream_on_writable(req, lines_more, l);
    lines_more(req, l);
}

static void clock_stats_get(br_req *req)
{
    const clock_stats *s = stats_of(req);
    br_reply_pack(req, 200, "{sI sI sI}", "started", s->started, "completed", s->completed,
                  "cancelled", s->cancelled);
}

static const br_param_spec clock_params[] = {
    {.name = "n",
     .in = BR_IN_QUERY,
     .type = BR_TYPE_INT,
     .has_min = true,
     .min = 1,
     .has_max = true,
     .max = CLOCK_MAX_EVENTS,
     .summary = "events to send (default 5)"},
    {.name = "interval_ms",
     .in = BR_IN_QUERY,
     .type = BR_TYPE_INT,
     .has_min = true,
     .min = 0,
     .has_max = true,
     .max = CLOCK_MAX_INTERVAL,
     .summary = "milliseconds between events (default 200)"},
};

/* Exported: the relay service takes the same n (services.h). */
const br_param_spec br_clock_lines_params[2] = {
    {.name = "n",
     .in = BR_IN_QUERY,
     .type = BR_TYPE_INT,
     .has_min = true,
     .min = 0,
     .has_max = true,
     .max = LINES_MAX,
     .summary = "lines to send (default 1000)"},
    {.name = "hold",
     .in = BR_IN_QUERY,
     .type = BR_TYPE_INT,
     .has_min = true,
     .min = 0,
     .has_max = true,
     .max = 1,
     .summary = "1: keep the stream open after the last line until the client leaves"},
};

static const br_route_spec routes[] = {
    {.method = "GET",
     .path = "/clock",
     .handler = clock_sse,
     .summary = "Server-Sent Events: a tick every interval_ms, n times",
     .params = clock_params,
     .nparams = BR_NELEMS(clock_params)},
    {.method = "GET",
     .path = "/clock/lines",
     .handler = clock_lines,
     .summary = "A streamed text body of n numbered lines, as fast as the client reads",
     .params = br_clock_lines_params,
     .nparams = BR_NELEMS(br_clock_lines_params)},
    {.method = "GET",
     .path = "/clock/stats",
     .handler = clock_stats_get,
     .summary = "This worker's streams: started, completed, cancelled"},
};

const br_service_spec br_clock_service = {
    .name = "clock",
    .kind = BR_KIND_IO,
    .summary = "streamed responses: Server-Sent Events and a bulk text stream",
    .routes = routes,
    .nroutes = BR_NELEMS(routes),
    .data_size = sizeof(clock_stats),
};
