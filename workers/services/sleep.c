/*
 * sleep.c - awaiting a timer without blocking (`await asyncio.sleep(ms / 1000)`).
 *
 *   GET /sleep?ms=N     -> {"slept_ms": N} after N ms, 0 <= N <= 60000
 *
 * The handler starts a libuv timer and returns; the loop serves other requests
 * meanwhile, and the timer's callback replies.  A cancel stops the timer and ends
 * the request at once.
 */
#include "services.h"

#define SLEEP_MAX_MS 60000

/* What the timer callback needs; lives in the request's arena. */
typedef struct nap {
    uv_timer_t timer; /* adopted by the request: the runtime closes it */
    br_req *req;      /* the request to answer */
    int64_t ms;       /* how long it sleeps */
} nap;

static void wake(uv_timer_t *timer)
{
    nap *n = timer->data;
    br_writer *w = br_reply_start(n->req, 200);
    br_w_obj(w);
    br_w_key_int(w, "slept_ms", n->ms);
    br_w_end(w);
    br_reply_send(n->req);
}

static void cancel(br_req *req, void *arg)
{
    nap *n = arg;
    uv_timer_stop(&n->timer);
    br_reply_status(req, 499);
}

static void sleep_for(br_req *req)
{
    int64_t ms;
    if (br_req_query_int(req, "ms", &ms) != 0 || ms < 0 || ms > SLEEP_MAX_MS) {
        br_reply_error(req, 422, "ms must be an integer from 0 to 60000");
        return;
    }
    nap *n = br_req_alloc(req, sizeof(*n));
    if (!n) {
        br_reply_error(req, 500, "out of memory");
        return;
    }
    n->req = req;
    n->ms = ms;
    uv_timer_init(br_req_loop(req), &n->timer);
    n->timer.data = n;
    br_req_adopt(req, (uv_handle_t *)&n->timer); /* the first handle: cannot be full */
    br_req_on_cancel(req, cancel, n);
    uv_timer_start(&n->timer, wake, (uint64_t)ms, 0);
}

static const br_param_spec ms_param[] = {
    {.name = "ms",
     .in = BR_IN_QUERY,
     .type = BR_TYPE_INT,
     .required = true,
     .has_min = true,
     .min = 0,
     .has_max = true,
     .max = SLEEP_MAX_MS,
     .summary = "milliseconds to sleep"},
};

static const br_route_spec routes[] = {
    {.method = "GET",
     .path = "/sleep",
     .handler = sleep_for,
     .timeout_ms = SLEEP_MAX_MS + 5000,
     .summary = "Sleep without blocking, then answer",
     .params = ms_param,
     .nparams = BR_NELEMS(ms_param)},
};

const br_service_spec br_sleep_service = {
    .name = "sleep",
    .kind = BR_KIND_IO,
    .summary = "awaiting a timer without blocking",
    .routes = routes,
    .nroutes = BR_NELEMS(routes),
};
