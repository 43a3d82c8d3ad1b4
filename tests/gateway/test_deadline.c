/*
 * test_deadline.c - the deadline heap: earliest first, removal from anywhere, limit.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "barista/proto.h"
#include "deadline.h"

#define N 5000

static void pops_in_deadline_order_after_removals(void **state)
{
    (void)state;
    static gw_deadline nodes[N];
    gw_deadline_heap h;
    gw_deadline_heap_init(&h, N);
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    for (int i = 0; i < N; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        nodes[i].index = 0;
        nodes[i].when = x % 100000;
        assert_int_equal(gw_deadline_heap_push(&h, &nodes[i]), 0);
        assert_true(gw_deadline_pending(&nodes[i]));
    }
    /* Remove every fourth node from wherever it sits in the heap. */
    for (int i = 0; i < N; i += 4) {
        gw_deadline_heap_remove(&h, &nodes[i]);
        assert_false(gw_deadline_pending(&nodes[i]));
        gw_deadline_heap_remove(&h, &nodes[i]); /* harmless twice */
    }
    uint64_t last = 0;
    size_t popped = 0;
    gw_deadline *top;
    while ((top = gw_deadline_heap_top(&h))) {
        assert_true(top->when >= last);
        last = top->when;
        gw_deadline_heap_remove(&h, top);
        popped++;
    }
    assert_int_equal(popped, N - N / 4);
    gw_deadline_heap_free(&h);
    gw_deadline_heap_free(&h);
}

static void refuses_past_its_limit(void **state)
{
    (void)state;
    gw_deadline a = {.when = 5}, b = {.when = 3}, c = {.when = 1};
    gw_deadline_heap h;
    gw_deadline_heap_init(&h, 2);
    assert_int_equal(gw_deadline_heap_push(&h, &a), 0);
    assert_int_equal(gw_deadline_heap_push(&h, &b), 0);
    assert_int_equal(gw_deadline_heap_push(&h, &c), BR_EFULL);
    assert_false(gw_deadline_pending(&c));
    assert_ptr_equal(gw_deadline_heap_top(&h), &b);
    gw_deadline_heap_free(&h);
    /* Freeing the heap leaves its nodes marked as out of it. */
    assert_false(gw_deadline_pending(&a));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(pops_in_deadline_order_after_removals),
        cmocka_unit_test(refuses_past_its_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
