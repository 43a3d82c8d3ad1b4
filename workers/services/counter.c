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
 *
 * The same service shows the rest of the actor API:
 *
 *   POST   /counter-calls/{id}[?type=T]          a CALL naming actor (T, id) directly
 *                                                 (no route): the counter's on_call adds
 *                                                 one; answers what the counter answered
 *   POST   /tickers/{id}/timers/{name}?due_ms=&period_ms=     start a volatile timer
 *   DELETE /tickers/{id}/timers/{name}                        stop it
 *   POST   /tickers/{id}/reminders/{name}?due_ms=&period_ms=  set a durable reminder
 *   DELETE /tickers/{id}/reminders/{name}                     unset it
 *   GET    /tickers/{id} -> {"id", "timer_ticks", "reminder_ticks", "last_pid", "last"}
 *
 * A ticker's ticks run as its turns (on_tick) and count themselves in its state, with
 * the pid of the worker that ran the last one and the name of its timer or reminder.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

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

/* A CALL that named the counter directly: POST /increment adds one, GET / reads. */
static void counter_call(br_req *req)
{
    br_str path = br_req_path(req);
    if (br_str_eq(br_req_method(req), "POST") && br_str_eq(path, "/increment"))
        add_one(req);
    else if (br_str_eq(br_req_method(req), "GET") && br_str_eq(path, "/"))
        read_count(req);
    else
        br_reply_errorf(req, 404, "the counter has no operation %.*s %.*s",
                        (int)br_req_method(req).len, br_req_method(req).ptr, (int)path.len,
                        path.ptr);
}

static const br_actor_spec counter_actor = {
    .type = "counter", .key_param = "id", .on_call = counter_call};

static void after_direct(br_req *req, const br_result *res, void *arg)
{
    (void)arg;
    if (res->status >= 500 || res->body.len == 0 || res->content_type.len == 0) {
        br_reply_errorf(req, res->status ? res->status : 502, "the actor call failed: %.*s",
                        (int)res->detail.len, res->detail.ptr);
        return;
    }
    char type[64];
    snprintf(type, sizeof(type), "%.*s", (int)res->content_type.len, res->content_type.ptr);
    br_reply_raw(req, res->status, type, res->body.ptr, res->body.len);
}

/* POST /counter-calls/{id}: a stateless route calling the actor by type and key. */
static void call_direct(br_req *req)
{
    char type[64] = "counter";
    br_str t;
    if (br_req_query(req, "type", &t) == 0 && t.len > 0 && t.len < sizeof(type)) {
        memcpy(type, t.ptr, t.len);
        type[t.len] = '\0';
    }
    char key[130];
    br_str id = {0};
    (void)br_req_param(req, "id", &id);
    snprintf(key, sizeof(key), "%.*s", (int)id.len, id.ptr);
    br_call_spec spec = {
        .method = "POST", .path = "/increment", .actor_type = type, .actor_key = key};
    if (br_call(req, &spec, after_direct, NULL, NULL) != 0)
        br_reply_error(req, 503, "cannot make the call");
}

/* ---------------------------------------------------------------------------------- */
/* Tickers: state [timer_ticks, reminder_ticks, last_pid, last_name].                 */

typedef struct ticker {
    int64_t timer_ticks, reminder_ticks, last_pid;
    br_str last;
} ticker;

static ticker ticker_of(br_req *req)
{
    ticker t = {0};
    br_str s = br_actor_state(req);
    br_cursor c = {(const uint8_t *)s.ptr, (const uint8_t *)s.ptr + s.len};
    uint32_t n;
    if (s.len == 0 || br_cursor_array(&c, &n) != 0 || n < 4 ||
        br_cursor_int(&c, &t.timer_ticks) != 0 || br_cursor_int(&c, &t.reminder_ticks) != 0 ||
        br_cursor_int(&c, &t.last_pid) != 0 || br_cursor_str(&c, &t.last, 256) != 0)
        return (ticker){0};
    return t;
}

static void ticker_answer(br_req *req, const ticker *t)
{
    br_writer *w = br_reply_start(req, 200);
    br_w_obj(w);
    br_w_key(w, "id");
    br_w_str(w, br_actor_key(req));
    br_w_key_int(w, "timer_ticks", t->timer_ticks);
    br_w_key_int(w, "reminder_ticks", t->reminder_ticks);
    br_w_key_int(w, "last_pid", t->last_pid);
    br_w_key_str(w, "last", t->last);
    br_w_end(w);
    br_reply_send(req);
}

static void ticker_tick(br_req *req)
{
    ticker t = ticker_of(req);
    if (br_actor_tick_is_reminder(req))
        t.reminder_ticks++;
    else
        t.timer_ticks++;
    t.last_pid = (int64_t)getpid();
    t.last = br_actor_tick_name(req);
    br_writer *w = br_writer_new(512);
    if (!w) {
        br_reply_error(req, 503, "out of memory");
        return;
    }
    br_w_arr(w);
    br_w_int(w, t.timer_ticks);
    br_w_int(w, t.reminder_ticks);
    br_w_int(w, t.last_pid);
    br_w_str(w, t.last);
    br_w_end(w);
    br_str mp = br_writer_bytes(w);
    int rc = br_actor_set_state(req, mp.ptr, mp.len);
    br_writer_destroy(&w);
    if (rc != 0)
        br_reply_error(req, 503, "out of memory");
    else
        ticker_answer(req, &t);
}

static void ticker_read(br_req *req)
{
    ticker t = ticker_of(req);
    ticker_answer(req, &t);
}

/* POST/DELETE /tickers/{id}/timers|reminders/{name}. */
static void ticker_change(br_req *req, bool durable)
{
    char name[BR_ACTOR_TIMER_NAME_MAX + 1];
    br_str n = {0};
    (void)br_req_param(req, "name", &n);
    snprintf(name, sizeof(name), "%.*s", (int)n.len, n.ptr);
    bool start = br_str_eq(br_req_method(req), "POST");
    int64_t due = 0, period = 0;
    (void)br_req_query_int(req, "due_ms", &due);
    (void)br_req_query_int(req, "period_ms", &period);
    int rc = durable ? start ? br_actor_reminder_set(req, name, (uint64_t)due, (uint64_t)period)
                             : br_actor_reminder_unset(req, name)
             : start ? br_actor_timer_start(req, name, (uint64_t)due, (uint64_t)period)
                     : br_actor_timer_stop(req, name);
    if (rc != 0) {
        br_reply_errorf(req, 503, "cannot change the timer: %s", br_strerror(rc));
        return;
    }
    ticker_read(req);
}

static void ticker_timer(br_req *req)
{
    ticker_change(req, false);
}

static void ticker_reminder(br_req *req)
{
    ticker_change(req, true);
}

static const br_actor_spec ticker_actor = {
    .type = "ticker", .key_param = "id", .on_tick = ticker_tick};

/* The {id} path parameter: the actor's key. */
#define ID_PARAM(what)                                                                             \
    {                                                                                              \
        .name = "id", .in = BR_IN_PATH, .type = BR_TYPE_STR, .required = true, .has_min = true,    \
        .min = 1, .has_max = true, .max = 128, .summary = what                                     \
    }

/* An optional integer query parameter in 0..max. */
#define INT_QUERY(pname, pmax, what)                                                               \
    {                                                                                              \
        .name = pname, .in = BR_IN_QUERY, .type = BR_TYPE_INT, .has_min = true, .min = 0,          \
        .has_max = true, .max = pmax, .summary = what                                              \
    }

static const br_param_spec id_param[] = {
    ID_PARAM("the counter's id"),
};

static const br_param_spec increment_params[] = {
    ID_PARAM("the counter's id"),
    INT_QUERY("call_ms", 10000,
              "first await a call to /sleep for this long, holding the counter's turn"),
    INT_QUERY("hold_ms", 10000,
              "first wait this long on a local timer, holding the counter's turn"),
};

static const br_param_spec ticker_params[] = {
    ID_PARAM("the ticker's id"),
    {.name = "name",
     .in = BR_IN_PATH,
     .type = BR_TYPE_STR,
     .required = true,
     .has_min = true,
     .min = 1,
     .has_max = true,
     .max = BR_ACTOR_TIMER_NAME_MAX,
     .summary = "the timer's or reminder's name"},
    INT_QUERY("due_ms", 86400000, "first tick this long from now"),
    INT_QUERY("period_ms", 86400000, "then every period_ms; 0: once"),
};

static const br_param_spec call_params[] = {
    ID_PARAM("the counter's id"),
    {.name = "type",
     .in = BR_IN_QUERY,
     .type = BR_TYPE_STR,
     .has_max = true,
     .max = 63,
     .summary = "the actor type to call (default counter)"},
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
    {.method = "POST",
     .path = "/counter-calls/{id}",
     .handler = call_direct,
     .summary = "Add one to a counter through a CALL naming the actor directly",
     .params = call_params,
     .nparams = BR_NELEMS(call_params)},
    {.method = "POST",
     .path = "/tickers/{id}/timers/{name}",
     .handler = ticker_timer,
     .summary = "Start a ticker's volatile timer",
     .params = ticker_params,
     .nparams = BR_NELEMS(ticker_params),
     .actor = &ticker_actor},
    {.method = "DELETE",
     .path = "/tickers/{id}/timers/{name}",
     .handler = ticker_timer,
     .summary = "Stop a ticker's timer",
     .params = ticker_params,
     .nparams = 2,
     .actor = &ticker_actor},
    {.method = "POST",
     .path = "/tickers/{id}/reminders/{name}",
     .handler = ticker_reminder,
     .summary = "Set a ticker's durable reminder",
     .params = ticker_params,
     .nparams = BR_NELEMS(ticker_params),
     .actor = &ticker_actor},
    {.method = "DELETE",
     .path = "/tickers/{id}/reminders/{name}",
     .handler = ticker_reminder,
     .summary = "Unset a ticker's reminder",
     .params = ticker_params,
     .nparams = 2,
     .actor = &ticker_actor},
    {.method = "GET",
     .path = "/tickers/{id}",
     .handler = ticker_read,
     .summary = "Read a ticker",
     .params = ticker_params,
     .nparams = 1,
     .actor = &ticker_actor},
};

const br_service_spec br_counter_service = {
    .name = "counter",
    .kind = BR_KIND_IO,
    .summary = "a keyed actor: counters whose counts the gateway keeps",
    .routes = routes,
    .nroutes = BR_NELEMS(routes),
};
