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
    br__credit_link links[3] = {
        {true, true, 0, false}, {true, true, 0, false}, {true, true, 0, false}};
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
    br__credit_link links[2] = {{true, true, 0, false}, {true, true, 0, false}};
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
    br__credit_link links[2] = {{true, true, 0, false}, {true, true, 4, false}};
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
    br__credit_link links[2] = {{true, false, 0, false}, {true, true, 5, false}};
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
    br__credit_link links[2] = {{false, false, 0, false}, {true, true, 0, false}};
    uint32_t grant[2];
    assert_int_equal(br__credit_plan(1, 0, 0, links, 2, grant), 1);
    assert_int_equal(grant[1], 1);
    /* While the lost broker's request still runs (an orphan), nothing moves. */
    assert_int_equal(br__credit_plan(1, 1, 0, links, 2, grant), 0);
    assert_int_equal(grant[1], 0);
    /* Broker 0 is back and registers: the slot stays where it is, never two. */
    links[0] = (br__credit_link){true, true, 0, false};
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

static void a_returning_broker_takes_a_cpu_slot_back_once_it_is_live(void **state)
{
    (void)state;
    /* Broker 0 (first in order) lost its slot to broker 1 while it was away; now it is
     * back and registered with nothing: broker 1 re-registers to hand the slot back. */
    br__credit_link links[2] = {{true, true, 0, true}, {true, true, 1, true}};
    assert_int_equal(br__credit_yield(1, 0, 0, links, 2), 1);
    /* Not while broker 0 has not registered yet (it may be gone again). */
    links[0].live = false;
    assert_int_equal(br__credit_yield(1, 0, 0, links, 2), -1);
    /* Not while an orphan still holds a slot: it frees one without taking any back. */
    links[0].live = true;
    assert_int_equal(br__credit_yield(1, 1, 0, links, 2), -1);
    /* With the other order, broker 1 holds the slot where it belongs. */
    assert_int_equal(br__credit_yield(1, 0, 1, links, 2), -1);
    /* Once broker 1 re-registered with nothing, the plan gives the slot to broker 0. */
    links[1].window = 0;
    uint32_t grant[2];
    assert_int_equal(br__credit_plan(1, 0, 0, links, 2, grant), 1);
    assert_true(grant[0] == 1 && grant[1] == 0);
}

static void an_added_broker_gets_slots_from_the_one_most_over_its_share(void **state)
{
    (void)state;
    /* 12 slots over two brokers, then a third appears and registers: shares are 4 each,
     * the brokers holding 7 and 5 are over, the one with 7 gives first. */
    br__credit_link links[3] = {
        {true, true, 5, true}, {true, true, 7, true}, {true, true, 0, true}};
    assert_int_equal(br__credit_yield(12, 0, 0, links, 3), 1);
    links[1].window = 0; /* re-registered: 7 free, 4 back to it, 3 to the new one */
    uint32_t grant[3];
    assert_int_equal(br__credit_plan(12, 0, 0, links, 3, grant), 7);
    assert_int_equal(grant[1], 4);
    assert_int_equal(grant[2], 3);
    links[1].window = 4;
    links[2].window = 3;
    /* The new one is still short by one: the broker holding 5 gives next. */
    assert_int_equal(br__credit_yield(12, 0, 0, links, 3), 0);
    links[0].window = 4;
    links[2].window = 4;
    assert_int_equal(br__credit_yield(12, 0, 0, links, 3), -1);
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
        cmocka_unit_test(a_returning_broker_takes_a_cpu_slot_back_once_it_is_live),
        cmocka_unit_test(an_added_broker_gets_slots_from_the_one_most_over_its_share),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
