/*
 * test_idmap.c - the request-id hash map: lookups survive growth and deletions, the
 * entry limit holds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "barista/proto.h"
#include "idmap.h"

/* Values are the addresses of slots in this array, so each key has its own value. */
#define N 20000
static char values[N + 1];

static void maps_and_takes_many_keys_across_growth(void **state)
{
    (void)state;
    gw_idmap *m = gw_idmap_new(N);
    assert_non_null(m);
    for (uint64_t k = 1; k <= N; k++)
        assert_int_equal(gw_idmap_put(m, k, &values[k]), 0);
    assert_int_equal(gw_idmap_count(m), N);
    for (uint64_t k = 1; k <= N; k++)
        assert_ptr_equal(gw_idmap_get(m, k), &values[k]);
    /* Take every third key, then check that every other key is still found. */
    for (uint64_t k = 3; k <= N; k += 3)
        assert_ptr_equal(gw_idmap_take(m, k), &values[k]);
    for (uint64_t k = 1; k <= N; k++) {
        if (k % 3 == 0)
            assert_null(gw_idmap_get(m, k));
        else
            assert_ptr_equal(gw_idmap_get(m, k), &values[k]);
    }
    assert_int_equal(gw_idmap_count(m), N - N / 3);
    gw_idmap_destroy(&m);
    assert_null(m);
    gw_idmap_destroy(&m);
}

static void deletion_keeps_colliding_keys_reachable(void **state)
{
    (void)state;
    /* Random keys in a small table produce long probe runs; deleting from their middle
     * must not hide the keys behind. */
    gw_idmap *m = gw_idmap_new(600);
    assert_non_null(m);
    uint64_t keys[600];
    uint64_t x = 88172645463325252ULL;
    for (int i = 0; i < 600; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        keys[i] = x | 1;
        assert_int_equal(gw_idmap_put(m, keys[i], &values[i]), 0);
    }
    for (int i = 0; i < 600; i += 2)
        assert_ptr_equal(gw_idmap_take(m, keys[i]), &values[i]);
    for (int i = 1; i < 600; i += 2)
        assert_ptr_equal(gw_idmap_get(m, keys[i]), &values[i]);
    for (int i = 0; i < 600; i += 2)
        assert_null(gw_idmap_get(m, keys[i]));
    gw_idmap_destroy(&m);
}

static void refuses_zero_duplicates_and_past_limit(void **state)
{
    (void)state;
    gw_idmap *m = gw_idmap_new(2);
    assert_non_null(m);
    assert_int_equal(gw_idmap_put(m, 0, &values[0]), BR_EINVAL);
    assert_int_equal(gw_idmap_put(m, 1, NULL), BR_EINVAL);
    assert_int_equal(gw_idmap_put(m, 1, &values[1]), 0);
    assert_int_equal(gw_idmap_put(m, 1, &values[2]), BR_EINVAL);
    assert_int_equal(gw_idmap_put(m, 2, &values[2]), 0);
    assert_int_equal(gw_idmap_put(m, 3, &values[3]), BR_EFULL);
    assert_null(gw_idmap_take(m, 3));
    assert_null(gw_idmap_get(m, 0));
    assert_ptr_equal(gw_idmap_take(m, 1), &values[1]);
    assert_int_equal(gw_idmap_put(m, 3, &values[3]), 0);
    gw_idmap_destroy(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(maps_and_takes_many_keys_across_growth),
        cmocka_unit_test(deletion_keeps_colliding_keys_reachable),
        cmocka_unit_test(refuses_zero_duplicates_and_past_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
