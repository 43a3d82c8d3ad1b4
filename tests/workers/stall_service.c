/*
 * stall_service.c - a test-only service that blocks on purpose, and the hook that adds
 * it to barista-worker-test (the production barista-worker never hosts it).
 *
 *   GET /stall/block?ms=N    blocks the loop for N ms, then {"blocked_ms": N}: the
 *                            mistake the watchdog exists to catch
 *   GET /stall/later?ms=N    blocks for N ms in a timer callback of its own, which the
 *                            runtime does not wrap: the loop-level measurement sees it
 *   GET /stall/offload?ms=N  the same blocking call on the thread pool (br_offload),
 *                            then {"offloaded_ms": N}: the fix
 *
 * barista-worker-test (worker_test_main.c) hosts it beside the built-in services.
 */
#include <time.h>

#include "test_services.h"

#define STALL_MAX_MS 10000

/* Sleeps ms milliseconds, resuming after signals. */
static void block_for(int64_t ms)
{
    struct timespec t = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&t, &t) != 0)
        ;
}

static int read_ms(br_req *req, int64_t *ms)
{
    if (br_req_query_int(req, "ms", ms) != 0 || *ms < 0 || *ms > STALL_MAX_MS) {
        br_reply_error(req, 422, "ms must be an integer from 0 to 10000");
        return -1;
    }
    return 0;
}

static void reply_ms(br_req *req, const char *key, int64_t ms)
{
    br_writer *w = br_reply_start(req, 200);
    br_w_obj(w);
    br_w_key_int(w, key, ms);
    br_w_end(w);
    br_reply_send(req);
}

static void block(br_req *req)
{
    int64_t ms;
    if (read_ms(req, &ms) != 0)
        return;
    block_for(ms); /* on the loop thread: deliberately wrong */
    reply_ms(req, "blocked_ms", ms);
}

/* The state of /stall/later, in the request's arena. */
typedef struct later {
    uv_timer_t timer; /* adopted by the request */
    br_req *req;      /* the request to answer */
    int64_t ms;       /* how long to block */
} later;

static void block_later(uv_timer_t *t)
{
    later *l = t->data;
    block_for(l->ms);
    reply_ms(l->req, "blocked_ms", l->ms);
}

static void block_in_timer(br_req *req)
{
    later *l = br_req_alloc(req, sizeof(*l));
    if (!l) {
        br_reply_error(req, 500, "out of memory");
        return;
    }
    if (read_ms(req, &l->ms) != 0)
        return;
    l->req = req;
    uv_timer_init(br_req_loop(req), &l->timer);
    l->timer.data = l;
    br_req_adopt(req, (uv_handle_t *)&l->timer); /* the first handle: cannot be full */
    uv_timer_start(&l->timer, block_later, 0, 0);
}

static uint16_t offloaded_work(void *arg)
{
    block_for(*(int64_t *)arg);
    return 200;
}

static void offloaded(br_req *req, const br_result *res, void *arg)
{
    (void)res;
    reply_ms(req, "offloaded_ms", *(int64_t *)arg);
}

static void offload(br_req *req)
{
    int64_t *ms = br_req_alloc(req, sizeof(*ms));
    if (!ms) {
        br_reply_error(req, 500, "out of memory");
        return;
    }
    if (read_ms(req, ms) != 0)
        return;
    int rc = br_offload(req, offloaded_work, offloaded, ms);
    if (rc != 0)
        br_reply_error(req, 503, br_strerror(rc));
}

static const br_route_spec routes[] = {
    {.method = "GET", .path = "/stall/block", .handler = block, .summary = "block the loop"},
    {.method = "GET",
     .path = "/stall/later",
     .handler = block_in_timer,
     .summary = "block the loop in a timer"},
    {.method = "GET",
     .path = "/stall/offload",
     .handler = offload,
     .summary = "block a pool thread"},
};

const br_service_spec br_test_stall_service = {
    .name = "stall",
    .kind = BR_KIND_IO,
    .summary = "test only: blocks on purpose",
    .routes = routes,
    .nroutes = BR_NELEMS(routes),
};
