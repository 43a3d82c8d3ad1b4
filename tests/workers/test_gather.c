/*
 * test_gather.c - gather bookkeeping on a real loop: results in branch order, one
 * callback, never before start, a deadline that turns pending branches into 504s and
 * ignores late ones, limits, calls that cannot start, and a request that ends first.
 * The worker here has no broker connection; branches are completed by hand the way
 * any async operation completes them (br_gather_done).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "worker_int.h"

static void noop(br_req *req)
{
    (void)req;
}

static const br_route_spec route = {.method = "GET", .path = "/g", .handler = noop};

/* What the gather callback saw. */
typedef struct seen {
    int calls;                        /* callbacks so far */
    size_t n;                         /* branches reported */
    br_result results[BR_GATHER_MAX]; /* copies of the results */
} seen;

typedef struct fixture {
    br_worker w; /* only its loop is used (no socket: calls fail to start) */
    br_req *req; /* the request the gathers belong to */
    seen s;      /* what the callback saw */
} fixture;

static void on_gathered(br_req *req, const br_result *results, size_t n, void *arg)
{
    (void)req;
    seen *s = arg;
    s->calls++;
    s->n = n;
    memcpy(s->results, results, n * sizeof(*results));
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->w.loop), 0);
    char frame[1] = {0};
    br_request m = {
        .id = 1, .method = br_str_c("GET"), .path = br_str_c("/g"), .deadline_ms = 60000};
    f->req = br__req_new(&f->w, &route, &m, frame, sizeof(frame));
    assert_non_null(f->req);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    if (f->req)
        br__req_release(f->req);
    uv_run(&f->w.loop, UV_RUN_DEFAULT); /* close callbacks */
    assert_int_equal(uv_loop_close(&f->w.loop), 0);
    free(f);
    return 0;
}

static br_result result(uint16_t status)
{
    return (br_result){.status = status,
                       .content_type = br_str_c(""),
                       .body = br_str_c(""),
                       .detail = br_str_c("")};
}

static void reports_every_branch_in_order_once_after_start(void **state)
{
    fixture *f = *state;
    br_gather *g = br_gather_new(f->req, 0, on_gathered, &f->s);
    assert_non_null(g);
    void *a, *b;
    assert_int_equal(br_gather_branch(g, &a), 0);
    assert_int_equal(br_gather_branch(g, &b), 1);
    br_result r1 = result(201), r0 = result(200);
    br_gather_done(f->req, &r1, b);
    br_gather_done(f->req, &r0, a);
    assert_int_equal(f->s.calls, 0); /* not started yet */
    assert_int_equal(br_gather_start(g), 0);
    assert_int_equal(f->s.calls, 0); /* never from inside start */
    uv_run(&f->w.loop, UV_RUN_NOWAIT);
    assert_int_equal(f->s.calls, 1);
    assert_int_equal(f->s.n, 2);
    assert_int_equal(f->s.results[0].status, 200);
    assert_int_equal(f->s.results[1].status, 201);
    assert_int_equal(br_gather_start(g), BR_EINVAL);
}

static void the_last_branch_finishing_after_start_completes_it(void **state)
{
    fixture *f = *state;
    br_gather *g = br_gather_new(f->req, 0, on_gathered, &f->s);
    void *a;
    br_gather_branch(g, &a);
    br_gather_start(g);
    br_result r = result(200);
    br_gather_done(f->req, &r, a);
    assert_int_equal(f->s.calls, 1);
    br_gather_done(f->req, &r, a); /* twice: ignored */
    assert_int_equal(f->s.calls, 1);
}

static void the_deadline_turns_pending_branches_into_504s_and_keeps_the_rest(void **state)
{
    fixture *f = *state;
    br_gather *g = br_gather_new(f->req, 20, on_gathered, &f->s);
    void *fast, *slow;
    br_gather_branch(g, &fast);
    br_gather_branch(g, &slow);
    br_result ok = result(200);
    br_gather_done(f->req, &ok, fast);
    br_gather_start(g);
    uv_run(&f->w.loop, UV_RUN_ONCE); /* waits for the 20 ms timer */
    assert_int_equal(f->s.calls, 1);
    assert_int_equal(f->s.results[0].status, 200);
    assert_int_equal(f->s.results[1].status, 504);
    assert_true(f->s.results[1].detail.len > 0);
    br_gather_done(f->req, &ok, slow); /* too late: ignored */
    assert_int_equal(f->s.calls, 1);
}

static void a_call_that_cannot_start_is_a_failed_branch_not_a_failed_gather(void **state)
{
    fixture *f = *state;
    br_gather *g = br_gather_new(f->req, 0, on_gathered, &f->s);
    br_call_spec spec = {.path = "/hello"};
    void *other;
    assert_int_equal(br_gather_call(g, &spec), 0);
    assert_int_equal(br_gather_branch(g, &other), 1);
    br_result ok = result(200);
    br_gather_done(f->req, &ok, other);
    br_gather_start(g);
    uv_run(&f->w.loop, UV_RUN_NOWAIT);
    assert_int_equal(f->s.calls, 1);
    assert_int_equal(f->s.results[0].status, 503); /* no broker connection */
    assert_true(br_str_eq(f->s.results[0].detail, "no connection to the broker"));
    assert_int_equal(f->s.results[1].status, 200);
}

static void branches_are_bounded_and_closed_after_start(void **state)
{
    fixture *f = *state;
    br_gather *g = br_gather_new(f->req, 0, on_gathered, &f->s);
    void *arg;
    for (int i = 0; i < BR_GATHER_MAX; i++)
        assert_int_equal(br_gather_branch(g, &arg), i);
    assert_int_equal(br_gather_branch(g, &arg), BR_EFULL);
    br_gather *g2 = br_gather_new(f->req, 0, on_gathered, &f->s);
    br_gather_start(g2);
    assert_int_equal(br_gather_branch(g2, &arg), BR_EINVAL);
}

static void a_request_that_ends_first_gets_no_callback(void **state)
{
    fixture *f = *state;
    br_gather *g = br_gather_new(f->req, 10, on_gathered, &f->s);
    void *a;
    br_gather_branch(g, &a);
    br_gather_start(g);
    br__req_release(f->req); /* closes the deadline timer with the request */
    f->req = NULL;
    uv_run(&f->w.loop, UV_RUN_DEFAULT);
    assert_int_equal(f->s.calls, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(reports_every_branch_in_order_once_after_start, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(the_last_branch_finishing_after_start_completes_it, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            the_deadline_turns_pending_branches_into_504s_and_keeps_the_rest, setup, teardown),
        cmocka_unit_test_setup_teardown(
            a_call_that_cannot_start_is_a_failed_branch_not_a_failed_gather, setup, teardown),
        cmocka_unit_test_setup_teardown(branches_are_bounded_and_closed_after_start, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_request_that_ends_first_gets_no_callback, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
