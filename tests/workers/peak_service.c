/*
 * peak_service.c - a test-only CPU service that counts how many of its requests run
 * at once in this process, for the test that a CPU worker serving several brokers
 * never runs two requests together (tests/integration/test_multibroker.py).
 *
 *   GET /peak?ms=N   runs for N ms (0..10000) on the CPU path, then answers
 *                    {"peak": P, "served": S}: P is the most requests of this service
 *                    that ever ran at the same time in this process, S how many ran.
 */
#include <stdatomic.h>
#include <time.h>

#include "test_services.h"

#define PEAK_MAX_MS 10000

/* Process-wide: a worker process hosts one copy of the service. */
static atomic_int running;
static atomic_int peak;
static atomic_int served;

static void sleep_ms(int64_t ms)
{
    struct timespec t = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&t, &t) != 0)
        ;
}

static void run(br_req *req)
{
    int64_t ms;
    if (br_req_query_int(req, "ms", &ms) != 0 || ms < 0 || ms > PEAK_MAX_MS) {
        br_reply_error(req, 422, "ms must be an integer from 0 to 10000");
        return;
    }
    int now = atomic_fetch_add(&running, 1) + 1;
    int seen = atomic_load(&peak);
    while (now > seen && !atomic_compare_exchange_weak(&peak, &seen, now))
        ;
    sleep_ms(ms);
    atomic_fetch_sub(&running, 1);
    int total = atomic_fetch_add(&served, 1) + 1;
    br_writer *w = br_reply_start(req, 200);
    br_w_obj(w);
    br_w_key_int(w, "peak", atomic_load(&peak));
    br_w_key_int(w, "served", total);
    br_w_end(w);
    br_reply_send(req);
}

static const br_route_spec routes[] = {
    {.method = "GET", .path = "/peak", .handler = run, .summary = "count concurrent runs"},
};

const br_service_spec br_test_peak_service = {
    .name = "peak",
    .kind = BR_KIND_CPU,
    .summary = "test only: counts requests running at once",
    .routes = routes,
    .nroutes = BR_NELEMS(routes),
};
