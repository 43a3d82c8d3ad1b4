/*
 * watchdog.c - notices code that blocks an I/O worker's loop, and names the route.
 *
 * Two measurements.  Every time the runtime runs handler code (a handler, or the
 * continuation of a call, gather, fetch or offload) it times that run: one longer
 * than the threshold is logged with the request's route.  And once per loop iteration
 * (a uv_prepare, just before the loop waits for I/O) it takes the time since the last
 * iteration minus the time the loop spent waiting (libuv's idle-time metric): what is
 * left was spent in callbacks, so a stall in code the runtime does not see (a handler's
 * own timer callback, say) is logged too, naming the last route the runtime ran.
 * Each stall is logged once, and loop-level lines at most once per
 * WATCH_LOOP_LOG_MS, since a loaded loop (thousands of timers due at once) would
 * otherwise log every iteration.
 */
#include <stdlib.h>

#include "worker_int.h"

/* Least time between two loop-level stall lines; the ones in between are counted. */
#define WATCH_LOOP_LOG_MS 1000

struct br__watch {
    uv_prepare_t prepare;         /* once per loop iteration */
    uint64_t iter_ns;             /* uv_hrtime() at the last iteration's prepare */
    uint64_t idle_ns;             /* the loop's idle time then */
    uint64_t stall_ns;            /* the threshold */
    const br_route_spec *current; /* the route whose code runs now, or NULL */
    const br_route_spec *last;    /* the last route whose code ran */
    uint64_t enter_ns;            /* when the outermost run started */
    unsigned depth;               /* nested runs (a continuation inside a callback) */
    bool reported;                /* this iteration's stall is logged already */
    uint64_t loop_logged_ns;      /* when the last loop-level line was logged */
    unsigned loop_suppressed;     /* loop-level stalls not logged since */
};

static void on_prepare(uv_prepare_t *p)
{
    br_worker *w = p->data;
    br__watch *wd = w->watch;
    uint64_t now = uv_hrtime();
    uint64_t idle = uv_metrics_idle_time(&w->loop);
    uint64_t busy = now - wd->iter_ns;
    uint64_t waited = idle - wd->idle_ns;
    busy = busy > waited ? busy - waited : 0;
    if (busy > wd->stall_ns && !wd->reported) {
        const br_route_spec *r = wd->last;
        if (wd->loop_logged_ns && now - wd->loop_logged_ns < WATCH_LOOP_LOG_MS * 1000000ull) {
            wd->loop_suppressed++;
        } else {
            br__log("stall: the loop was blocked for %llu ms (threshold %u ms); last route: "
                    "%s %s (%u more since the last line)",
                    (unsigned long long)(busy / 1000000u), w->stall_ms, r ? r->method : "-",
                    r ? r->path : "-", wd->loop_suppressed);
            wd->loop_logged_ns = now;
            wd->loop_suppressed = 0;
        }
    }
    wd->iter_ns = now;
    wd->idle_ns = idle;
    wd->reported = false;
}

int br__watch_open(br_worker *w)
{
    if (w->reg.kind == BR_KIND_CPU)
        return 0; /* a CPU worker's handler runs on a thread: its loop never blocks */
    int rc = uv_loop_configure(&w->loop, UV_METRICS_IDLE_TIME);
    if (rc != 0) {
        br__log("uv_loop_configure(UV_METRICS_IDLE_TIME): %s", uv_strerror(rc));
        return BR_EIO;
    }
    w->watch = calloc(1, sizeof(*w->watch));
    if (!w->watch)
        return BR_ENOMEM;
    br__watch *wd = w->watch;
    wd->stall_ns = (uint64_t)w->stall_ms * 1000000u;
    wd->iter_ns = uv_hrtime();
    uv_prepare_init(&w->loop, &wd->prepare);
    wd->prepare.data = w;
    uv_prepare_start(&wd->prepare, on_prepare);
    uv_unref((uv_handle_t *)&wd->prepare); /* it never keeps the loop alive */
    br__log("watchdog: logging loop stalls over %u ms", w->stall_ms);
    return 0;
}

static void on_closed(uv_handle_t *h)
{
    free(h->data);
}

void br__watch_close(br_worker *w)
{
    if (!w->watch)
        return;
    w->watch->prepare.data = w->watch;
    uv_close((uv_handle_t *)&w->watch->prepare, on_closed);
    w->watch = NULL;
}

void br__watch_enter(br_worker *w, const br_route_spec *spec)
{
    br__watch *wd = w->watch;
    if (!wd || wd->depth++)
        return;
    wd->current = wd->last = spec;
    wd->enter_ns = uv_hrtime();
}

void br__watch_leave(br_worker *w)
{
    br__watch *wd = w->watch;
    if (!wd || --wd->depth)
        return;
    uint64_t took = uv_hrtime() - wd->enter_ns;
    const br_route_spec *r = wd->current;
    wd->current = NULL;
    if (took > wd->stall_ns && r) {
        br__log("stall: %s %s blocked the loop for %llu ms (threshold %u ms)", r->method, r->path,
                (unsigned long long)(took / 1000000u), w->stall_ms);
        wd->reported = true;
    }
}
