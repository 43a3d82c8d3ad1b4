/*
 * dashboard.c - asyncio.gather with deadlines and partial results.
 *
 *   GET /dashboard[?timeout_ms=N]  -> {"hello": {...}, "sleep": {...}, "hash": {...}}
 *
 * Three calls to other services start at once: hello, sleep (100 ms) and hash
 * (n=1000, on a CPU worker).  The answer comes when the slowest has answered, not
 * after the sum.  A branch that fails - no answer within timeout_ms (1..60000, default
 * the request's deadline), no worker for its service, an error - appears as
 * {"error": {"status": S, "detail": "..."}} and the others are still returned, 200.
 */
#include <string.h>

#include "services.h"

#define DASHBOARD_TIMEOUT_MAX 60000

/* The branches, in gather order: the key in the answer and the call. */
static const struct {
    const char *key;
    const char *path;
} branches[] = {
    {"hello", "/hello"},
    {"sleep", "/sleep?ms=100"},
    {"hash", "/hash?n=1000&data=dashboard"},
};

/* One branch's outcome: its structured answer as it is, another media type's text, or
 * {"error": {"status": S, "detail": "..."}}. */
static void write_branch(br_writer *w, const br_result *r)
{
    br_value v;
    if (br_result_ok(r) && br_str_eq(r->content_type, "application/msgpack") &&
        br_value_parse(r->body, &v) == 0)
        br_w_msgpack(w, r->body);
    else if (br_result_ok(r))
        br_w_str(w, r->body);
    else
        br_w_pack(w, "{s:{s:i, s:S}}", "error", "status", (int)r->status, "detail", r->detail);
}

static void gathered(br_req *req, const br_result *results, size_t n, void *arg)
{
    (void)arg;
    br_writer *w = br_reply_start(req, 200);
    br_w_obj(w);
    for (size_t i = 0; i < n; i++) {
        br_w_key(w, branches[i].key);
        write_branch(w, &results[i]);
    }
    br_w_end(w);
    br_reply_send(req);
}

static void cancelled(br_req *req, void *arg)
{
    (void)arg;
    br_reply_status(req, 499); /* ending the request cancels the calls */
}

static void dashboard(br_req *req)
{
    int64_t timeout = 0;
    int rc = br_req_query_int(req, "timeout_ms", &timeout);
    if (rc == BR_EVALUE || (rc == 0 && (timeout < 1 || timeout > DASHBOARD_TIMEOUT_MAX))) {
        br_reply_error(req, 422, "timeout_ms must be an integer from 1 to 60000");
        return;
    }
    br_gather *g = br_gather_new(req, (uint32_t)timeout, gathered, NULL);
    if (!g) {
        br_reply_error(req, 500, "out of memory");
        return;
    }
    for (size_t i = 0; i < BR_NELEMS(branches); i++) {
        br_call_spec call = {.method = "GET", .path = branches[i].path};
        br_gather_call(g, &call);
    }
    br_req_on_cancel(req, cancelled, NULL);
    br_gather_start(g);
}

static const br_param_spec params[] = {
    {.name = "timeout_ms",
     .in = BR_IN_QUERY,
     .type = BR_TYPE_INT,
     .has_min = true,
     .min = 1,
     .has_max = true,
     .max = DASHBOARD_TIMEOUT_MAX,
     .summary = "how long to wait for the branches; late ones become errors"},
};

static const br_route_spec routes[] = {
    {.method = "GET",
     .path = "/dashboard",
     .handler = dashboard,
     .summary = "hello, sleep and hash gathered concurrently into one object",
     .params = params,
     .nparams = BR_NELEMS(params)},
};

const br_service_spec br_dashboard_service = {
    .name = "dashboard",
    .kind = BR_KIND_IO,
    .summary = "asyncio.gather with deadlines and partial results",
    .routes = routes,
    .nroutes = BR_NELEMS(routes),
};
