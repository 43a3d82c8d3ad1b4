/*
 * counter.c - a keyed actor: one counter per id, its count kept by the gateway.
 *
 *   POST /counters/{id}/increment[?call_ms=N|hold_ms=N] -> {"id": ID, "count": C}, plus 1
 *   GET  /counters/{id}                        -> {"id": ID, "count": C}
 *
 * Every request for one id reaches the one worker where that counter is active, one
 * at a time, so the read-modify-write below needs no lock and no compare-and-set; the
 * new count is committed with the reply.  With call_ms the increment first awaits a
 * call to GET /sleep?ms=N: its counter's turn stays held meanwhile (other counters
 * keep going), which is what makes `count` exact even across awaits.
 */
#include <stdio.h>

#include <barista/async.h>
#include <barista/mpread.h>

#include "services.h"

/* The state: one msgpack integer; none is 0. */
static int64_t count_of(br_req *req)
{
    br_str s = br_actor_state(req);
    br_cursor c = {(const uint8_t *)s.ptr, (const uint8_t *)s.ptr + s.len};
    int64_t v = 0;
    if (s.len == 0 || br_cursor_int(&c, &v) != 0)
        return 0;
    return v;
}

static void answer(br_req *req, int64_t count)
{
    br_writer *w = br_reply_start(req, 200);
    br_w_obj(w);
    br_w_key(w, "id");
    br_w_str(w, br_actor_key(req));
    br_w_key_int(w, "count", count);
    br_w_end(w);
    br_reply_send(req);
}

/* Adds one to the count, stores it and answers. */
static void add_one(br_req *req)
{
    int64_t count = count_of(req) + 1;
    uint8_t buf[16];
    br_writer *w = br_writer_new(sizeof(buf) * 4);
    if (!w) {
        br_reply_error(req, 503, "out of memory");
        return;
    }
    br_w_int(w, count);
    br_str mp = br_writer_bytes(w);
    int rc = br_actor_set_state(req, mp.ptr, mp.len);
    br_writer_destroy(&w);
    if (rc != 0) {
        br_reply_error(req, 503, "out of memory");
        return;
    }
    answer(req, count);
}

static void after_call(br_req *req, const br_result *res, void *arg)
{
    (void)arg;
    if (!br_result_ok(res)) {
        br_reply_errorf(req, 502, "the awaited call failed: %u", (unsigned)res->status);
        return;
    }
    add_one(req);
}

static void on_hold(uv_timer_t *timer)
{
    add_one(timer->data);
}

static void increment(br_req *req)
{
    int64_t hold_ms = 0;
    if (br_req_query_int(req, "hold_ms", &hold_ms) == 0 && hold_ms > 0) {
        uv_timer_t *t = br_req_alloc(req, sizeof(*t));
        if (!t || uv_timer_init(br_req_loop(req), t) != 0) {
            br_reply_error(req, 503, "out of memory");
            return;
        }
        t->data = req;
        br_req_adopt(req, (uv_handle_t *)t);
        uv_timer_start(t, on_hold, (uint64_t)hold_ms, 0);
        return;
    }
    int64_t call_ms = 0;
    if (br_req_query_int(req, "call_ms", &call_ms) != 0 || call_ms <= 0) {
        add_one(req);
        return;
    }
    char path[48];
    snprintf(path, sizeof(path), "/sleep?ms=%lld", (long long)call_ms);
    br_call_spec spec = {.method = "GET", .path = path};
    if (br_call(req, &spec, after_call, NULL, NULL) != 0)
        br_reply_error(req, 503, "cannot make the call");
}

static void read_count(br_req *req)
{
    answer(req, count_of(req));
}

static const br_actor_spec counter_actor = {.type = "counter", .key_param = "id"};

static const br_param_spec id_param[] = {
    {.name = "id",
     .in = BR_IN_PATH,
     .type = BR_TYPE_STR,
     .required = true,
     .has_min = true,
     .min = 1,
     .has_max = true,
     .max = 128,
     .summary = "the counter's id"},
};

static const br_param_spec increment_params[] = {
    {.name = "id",
     .in = BR_IN_PATH,
     .type = BR_TYPE_STR,
     .required = true,
     .has_min = true,
     .min = 1,
     .has_max = true,
     .max = 128,
     .summary = "the counter's id"},
    {.name = "call_ms",
     .in = BR_IN_QUERY,
     .type = BR_TYPE_INT,
     .has_min = true,
     .min = 0,
     .has_max = true,
     .max = 10000,
     .summary = "first await a call to /sleep for this long, holding the counter's turn"},
    {.name = "hold_ms",
     .in = BR_IN_QUERY,
     .type = BR_TYPE_INT,
     .has_min = true,
     .min = 0,
     .has_max = true,
     .max = 10000,
     .summary = "first wait this long on a local timer, holding the counter's turn"},
};

static const br_route_spec routes[] = {
    {.method = "POST",
     .path = "/counters/{id}/increment",
     .handler = increment,
     .summary = "Add one to a counter",
     .params = increment_params,
     .nparams = BR_NELEMS(increment_params),
     .actor = &counter_actor},
    {.method = "GET",
     .path = "/counters/{id}",
     .handler = read_count,
     .summary = "Read a counter",
     .params = id_param,
     .nparams = BR_NELEMS(id_param),
     .actor = &counter_actor},
};

const br_service_spec br_counter_service = {
    .name = "counter",
    .kind = BR_KIND_IO,
    .summary = "a keyed actor: counters whose counts the gateway keeps",
    .routes = routes,
    .nroutes = BR_NELEMS(routes),
};
