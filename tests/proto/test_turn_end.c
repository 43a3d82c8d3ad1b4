/*
 * test_turn_end.c - br_turn_end runs its callback in the turn it was armed in, also when
 * it was armed before the loop's poll (a timer, a prepare handle) and nothing else is
 * due: one uv_run(UV_RUN_ONCE) ends without waiting for a far timer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "barista/turn_end.h"

typedef struct fixture {
    uv_loop_t loop;
    br_turn_end t;
    uv_timer_t far;   /* due long after the test: fires only if the loop waited */
    uv_timer_t now;   /* arms t from a timer */
    uv_prepare_t pre; /* arms t from a prepare handle, just before the poll */
    int ran;          /* t's callback runs */
    int far_fired;    /* far's callback runs */
    int closed;       /* close callbacks run */
} fixture;

static void on_turn_end(void *arg)
{
    fixture *f = arg;
    f->ran++;
}

static void on_far(uv_timer_t *h)
{
    fixture *f = h->data;
    f->far_fired++;
}

static void arm_from_timer(uv_timer_t *h)
{
    fixture *f = h->data;
    br_turn_end_arm(&f->t);
    br_turn_end_arm(&f->t); /* armed twice in a turn: still one run */
}

static void arm_from_prepare(uv_prepare_t *h)
{
    fixture *f = h->data;
    uv_prepare_stop(h);
    br_turn_end_arm(&f->t);
}

static void on_closed(uv_handle_t *h)
{
    fixture *f = ((br_turn_end *)h->data)->arg;
    f->closed++;
}

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static fixture *setup_fixture(void)
{
    static fixture f;
    memset(&f, 0, sizeof(f));
    assert_int_equal(uv_loop_init(&f.loop), 0);
    br_turn_end_init(&f.t, &f.loop, on_turn_end, &f);
    uv_timer_init(&f.loop, &f.far);
    uv_timer_init(&f.loop, &f.now);
    uv_prepare_init(&f.loop, &f.pre);
    f.far.data = f.now.data = f.pre.data = &f;
    /* 5 s: a loop that waited for it would run this callback within the same uv_run. */
    uv_timer_start(&f.far, on_far, 5000, 0);
    return &f;
}

static void teardown_fixture(fixture *f)
{
    br_turn_end_close(&f->t, on_closed);
    uv_walk(&f->loop, close_walk, NULL);
    while (uv_run(&f->loop, UV_RUN_DEFAULT) != 0)
        ;
    assert_int_equal(f->closed, 2);
    assert_int_equal(uv_loop_close(&f->loop), 0);
}

static void armed_in_a_timer_runs_before_the_loop_waits(void **state)
{
    (void)state;
    fixture *f = setup_fixture();
    uv_timer_start(&f->now, arm_from_timer, 0, 0);
    uv_run(&f->loop, UV_RUN_ONCE); /* the 0 ms timer, then the check */
    assert_int_equal(f->ran, 1);
    assert_int_equal(f->far_fired, 0);
    /* Not armed again: another turn runs nothing. */
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(f->ran, 1);
    teardown_fixture(f);
}

static void armed_in_a_prepare_runs_before_the_loop_waits(void **state)
{
    (void)state;
    fixture *f = setup_fixture();
    uv_prepare_start(&f->pre, arm_from_prepare);
    uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(f->ran, 1);
    assert_int_equal(f->far_fired, 0);
    teardown_fixture(f);
}

static void closing_an_armed_one_runs_nothing(void **state)
{
    (void)state;
    fixture *f = setup_fixture();
    br_turn_end_arm(&f->t);
    uv_timer_stop(&f->far);
    teardown_fixture(f); /* closes t while armed */
    assert_int_equal(f->ran, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(armed_in_a_timer_runs_before_the_loop_waits),
        cmocka_unit_test(armed_in_a_prepare_runs_before_the_loop_waits),
        cmocka_unit_test(closing_an_armed_one_runs_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
