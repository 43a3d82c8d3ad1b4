/*
 * turn_end.c - one callback at the end of the current loop turn (barista/turn_end.h).
 */
#include "barista/turn_end.h"

static void on_wake(uv_idle_t *h)
{
    (void)h; /* being started is its whole job: the loop's poll does not wait */
}

static void on_check(uv_check_t *h)
{
    br_turn_end *t = h->data;
    uv_check_stop(&t->check);
    uv_idle_stop(&t->wake);
    t->fn(t->arg); /* may arm again: that runs at the end of the next turn */
}

void br_turn_end_init(br_turn_end *t, uv_loop_t *loop, void (*fn)(void *arg), void *arg)
{
    uv_check_init(loop, &t->check);
    uv_idle_init(loop, &t->wake);
    t->check.data = t->wake.data = t;
    t->fn = fn;
    t->arg = arg;
}

void br_turn_end_arm(br_turn_end *t)
{
    uv_check_start(&t->check, on_check); /* both no-ops while started */
    uv_idle_start(&t->wake, on_wake);
}

void br_turn_end_close(br_turn_end *t, uv_close_cb cb)
{
    uv_check_stop(&t->check);
    uv_idle_stop(&t->wake);
    uv_close((uv_handle_t *)&t->check, cb);
    uv_close((uv_handle_t *)&t->wake, cb);
}
