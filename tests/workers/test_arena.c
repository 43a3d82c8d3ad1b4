/*
 * test_arena.c - request-scoped memory: alignment, growth past the first block, the
 * hard maximum, and release.
 */
#include <setjmp.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "arena.h"

static void allocations_are_aligned_and_distinct(void **state)
{
    (void)state;
    alignas(max_align_t) char first[256];
    br__arena a;
    br__arena_init(&a, first, sizeof(first), 1 << 20);
    char *prev = NULL;
    for (size_t n = 0; n < 40; n++) {
        char *p = br__arena_alloc(&a, n);
        assert_non_null(p);
        assert_int_equal((uintptr_t)p % alignof(max_align_t), 0);
        assert_true(p != prev);
        memset(p, 0xab, n); /* ASan reports it if the block is too small */
        prev = p;
    }
    br__arena_release(&a);
}

static void grows_past_the_first_block_into_the_heap(void **state)
{
    (void)state;
    alignas(max_align_t) char first[64];
    br__arena a;
    br__arena_init(&a, first, sizeof(first), 1 << 20);
    char *small = br__arena_alloc(&a, 32);
    assert_true(small >= first && small < first + sizeof(first));
    char *big = br__arena_alloc(&a, 10000);
    assert_non_null(big);
    assert_true(big < first || big >= first + sizeof(first));
    memset(big, 1, 10000);
    assert_non_null(a.chunks);
    br__arena_release(&a);
    assert_null(a.chunks);
    br__arena_release(&a); /* twice is fine */
}

static void refuses_to_pass_its_maximum(void **state)
{
    (void)state;
    br__arena a;
    br__arena_init(&a, NULL, 0, 8192);
    assert_null(br__arena_alloc(&a, 8193));
    void *p = br__arena_alloc(&a, 6000);
    assert_non_null(p);
    /* The doubling stopped at the limit; what remains is still usable. */
    assert_null(br__arena_alloc(&a, 4096));
    assert_non_null(br__arena_alloc(&a, 16));
    br__arena_release(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(allocations_are_aligned_and_distinct),
        cmocka_unit_test(grows_past_the_first_block_into_the_heap),
        cmocka_unit_test(refuses_to_pass_its_maximum),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
