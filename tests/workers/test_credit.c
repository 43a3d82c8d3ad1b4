/*
 * test_credit.c - the split of a worker's capacity between its brokers (credit.h):
 * equal shares with the remainder first, one slot at a time for a CPU worker, slots
 * that move only when they are free, and never more promised than the capacity.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "credit.h"

static uint32_t total(const br__credit_link *links, size_t n, const uint32_t *grant)
{
    uint32_t t = 0;
    for (size_t i = 0; i < n; i++)
        t += links[i].window + grant[i];
    return t;
}

static void shares_split_equally_with_the_remainder_first(void **state)
{
    (void)state;
    assert_int_equal(br__credit_share(10, 3, 0), 4);
    assert_int_equal(br__credit_share(10, 3, 1), 3);
    assert_int_equal(br__credit_share(10, 3, 2), 3);
    assert_int_equal(br__credit_share(1024, 2, 0), 512);
    assert_int_equal(br__credit_share(1024, 2, 1), 512);
    assert_int_equal(br__credit_share(5, 0, 0), 0);
    assert_int_equal(br__credit_share(5, 2, 2), 0);
}

static void a_single_slot_goes_to_one_broker_only(void **state)
{
    (void)state;
    assert_int_equal(br__credit_share(1, 3, 0), 1);
    assert_int_equal(br__credit_share(1, 3, 1), 0);
    assert_int_equal(br__credit_share(1, 3, 2), 0);
    br__credit_link links[3] = {{true, true, 0}, {true, true, 0}, {true, true, 0}};
    uint32_t grant[3];
    /* The offset picks which broker gets it: workers spread over the brokers. */
    assert_int_equal(br__credit_plan(1, 0, 2, links, 3, grant), 1);
    assert_int_equal(grant[0], 0);
    assert_int_equal(grant[1], 0);
    assert_int_equal(grant[2], 1);
    assert_int_equal(br__credit_plan(1, 0, 1, links, 3, grant), 1);
    assert_int_equal(grant[1], 1);
}

static void fresh_brokers_get_their_shares(void **state)
{
    (void)state;
    br__credit_link links[2] = {{true, true, 0}, {true, true, 0}};
    uint32_t grant[2];
    assert_int_equal(br__credit_plan(1024, 0, 0, links, 2, grant), 1024);
    assert_int_equal(grant[0], 512);
    assert_int_equal(grant[1], 512);
}

static void orphans_hold_their_slots_until_they_finish(void **state)
{
    (void)state;
    /* Broker 0 came back while 3 of its old requests still run: it gets the rest of
     * its share now, and the 3 only when they end. */
    br__credit_link links[2] = {{true, true, 0}, {true, true, 4}};
    uint32_t grant[2];
    assert_int_equal(br__credit_plan(8, 3, 0, links, 2, grant), 1);
    assert_int_equal(grant[0], 1);
    assert_int_equal(grant[1], 0);
    links[0].window = 1;
    assert_int_equal(br__credit_plan(8, 0, 0, links, 2, grant), 3);
    assert_int_equal(grant[0], 3);
    assert_int_equal(total(links, 2, grant), 8);
}

static void a_lost_brokers_share_waits_for_it_when_shares_are_kept(void **state)
{
    (void)state;
    /* counted but not open: its share is not handed to the other broker. */
    br__credit_link links[2] = {{true, false, 0}, {true, true, 5}};
    uint32_t grant[2];
    assert_int_equal(br__credit_plan(10, 0, 0, links, 2, grant), 0);
    assert_int_equal(grant[1], 0);
    assert_int_equal(br__credit_free(10, 0, links, 2), 5);
}

static void a_cpu_slot_moves_to_a_live_broker_when_its_own_is_lost(void **state)
{
    (void)state;
    /* One slot, broker 0 preferred; broker 0 is lost (not counted) and its request
     * finished: the slot goes to broker 1. */
    br__credit_link links[2] = {{false, false, 0}, {true, true, 0}};
    uint32_t grant[2];
    assert_int_equal(br__credit_plan(1, 0, 0, links, 2, grant), 1);
    assert_int_equal(grant[1], 1);
    /* While the lost broker's request still runs (an orphan), nothing moves. */
    assert_int_equal(br__credit_plan(1, 1, 0, links, 2, grant), 0);
    assert_int_equal(grant[1], 0);
    /* Broker 0 is back and registers: the slot stays where it is, never two. */
    links[0] = (br__credit_link){true, true, 0};
    links[1].window = 1;
    assert_int_equal(br__credit_plan(1, 0, 0, links, 2, grant), 0);
    assert_int_equal(total(links, 2, grant), 1);
}

static void never_promises_more_than_the_capacity(void **state)
{
    (void)state;
    /* Every mix of windows, orphans, offsets and link states. */
    for (uint32_t cap = 1; cap <= 9; cap++)
        for (uint32_t orphans = 0; orphans <= cap; orphans++)
            for (uint32_t mask = 0; mask < 64; mask++)
                for (size_t offset = 0; offset < 3; offset++) {
                    br__credit_link links[3];
                    uint32_t used = orphans;
                    for (size_t i = 0; i < 3; i++) {
                        links[i].counted = mask >> i & 1;
                        links[i].open = mask >> (i + 3) & 1;
                        links[i].window = used < cap && links[i].open ? (cap - used) / 3 : 0;
                        used += links[i].window;
                    }
                    uint32_t grant[3];
                    uint32_t given = br__credit_plan(cap, orphans, offset, links, 3, grant);
                    assert_true(total(links, 3, grant) + orphans <= cap);
                    uint32_t sum = 0;
                    for (size_t i = 0; i < 3; i++) {
                        if (!links[i].open || !links[i].counted)
                            assert_int_equal(grant[i], 0);
                        sum += grant[i];
                    }
                    assert_int_equal(sum, given);
                }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(shares_split_equally_with_the_remainder_first),
        cmocka_unit_test(a_single_slot_goes_to_one_broker_only),
        cmocka_unit_test(fresh_brokers_get_their_shares),
        cmocka_unit_test(orphans_hold_their_slots_until_they_finish),
        cmocka_unit_test(a_lost_brokers_share_waits_for_it_when_shares_are_kept),
        cmocka_unit_test(a_cpu_slot_moves_to_a_live_broker_when_its_own_is_lost),
        cmocka_unit_test(never_promises_more_than_the_capacity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
