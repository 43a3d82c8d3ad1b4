/*
 * test_cpu_worker.c - the real barista-worker hosting the cpu service `hash`, driven
 * by a test broker: READY, correct digests, heartbeats during a long computation,
 * cancel, re-registration with the computation still running, and the drain.
 *
 * Expected digests were computed independently with Python's hashlib:
 *   d = hashlib.sha256(DATA).digest(); then N-1 times d = hashlib.sha256(d).digest()
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "broker_harness.h"

#define HB_MS   100
#define WAIT_MS 30000
/* 5,000,000 rounds: long enough for many heartbeats (about 2 s here). */
#define LONG_N      "5000000"
#define LONG_DIGEST "0a369f8dd679d7cc3ae48c642baf79ea518f1de4811547127670a555fc8481eb"

static int setup(void **state)
{
    static harness h;
    return harness_setup(state, &h, "hash", HB_MS, NULL);
}

static int setup_cpus_auto(void **state)
{
    static harness h;
    static const char *const extra[] = {"--cpus", "auto", NULL};
    return harness_setup(state, &h, "hash", HB_MS, extra);
}

static br_reply expect_reply(harness *h, uint64_t id, int *heartbeats)
{
    br_reply r;
    assert_int_equal(harness_expect_reply(h, id, &r, WAIT_MS, heartbeats), 0);
    return r;
}

static void hash(harness *h, uint64_t id, const char *n, const char *data)
{
    assert_int_equal(
        harness_request(h, id, "hash", "GET", "/hash", "/hash", 60000, "n", n, "data", data, NULL),
        0);
}

/* Count and lowest of the CPUs in a /proc "Cpus_allowed_list" such as "0-3,6". */
static void cpu_list_stats(const char *list, int *count, int *lowest)
{
    *count = 0;
    *lowest = -1;
    for (const char *p = list; *p && *p != '\n';) {
        char *end;
        long lo = strtol(p, &end, 10), hi = lo;
        if (*end == '-')
            hi = strtol(end + 1, &end, 10);
        if (*lowest < 0 || lo < *lowest)
            *lowest = (int)lo;
        *count += (int)(hi - lo + 1);
        p = *end == ',' ? end + 1 : end;
        if (p == end && *p != '\0' && *p != '\n')
            break;
    }
}

/* The "Cpus_allowed_list:" line of /proc/PID/status (pid 0: this process). */
static void allowed_cpus(int pid, char *out, size_t len)
{
    char path[64], line[256];
    if (pid)
        snprintf(path, sizeof(path), "/proc/%d/status", pid);
    else
        snprintf(path, sizeof(path), "/proc/self/status");
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    out[0] = '\0';
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, "Cpus_allowed_list:", 18) == 0)
            snprintf(out, len, "%s", line + 18 + strspn(line + 18, " \t"));
    fclose(f);
    assert_true(out[0] != '\0');
}

static void cpus_auto_leaves_the_lowest_cpu_to_the_io_path(void **state)
{
    harness *h = *state;
    assert_int_equal(harness_register(h, "b1", NULL, NULL), 0);
    char mine[128], its[128];
    allowed_cpus(0, mine, sizeof(mine));
    allowed_cpus((int)h->pid, its, sizeof(its));
    int n_mine, low_mine, n_its, low_its;
    cpu_list_stats(mine, &n_mine, &low_mine);
    cpu_list_stats(its, &n_its, &low_its);
    if (n_mine < 2) {
        /* One CPU: nothing to leave, the worker keeps it. */
        assert_string_equal(its, mine);
        return;
    }
    assert_int_equal(n_its, n_mine - 1);
    assert_true(low_its > low_mine);
    /* ... and it still computes. */
    hash(h, 1, "2", "abc");
    br_reply r;
    assert_int_equal(harness_expect_reply(h, 1, &r, WAIT_MS, NULL), 0);
    assert_int_equal(r.status, 200);
}

static void ready_announces_one_cpu_slot(void **state)
{
    harness *h = *state;
    uint32_t capacity = 0;
    uint8_t kind = 0;
    assert_int_equal(harness_register(h, "b1", &capacity, &kind), 0);
    assert_int_equal(kind, BR_KIND_CPU);
    assert_int_equal(capacity, 1);
    /* Niced at start (default 10): the nice value is field 19 of /proc/PID/stat. */
    char path[64], stat[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)h->pid);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(stat, 1, sizeof(stat) - 1, f);
    fclose(f);
    stat[n] = '\0';
    const char *p = strrchr(stat, ')');
    assert_non_null(p);
    long nice = -100;
    assert_int_equal(sscanf(p + 2,
                            "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d "
                            "%*d %ld",
                            &nice),
                     1);
    assert_true(nice >= 10);
}

static void digests_match_hashlib(void **state)
{
    harness *h = *state;
    static const struct {
        const char *n, *data, *digest;
    } cases[] = {
        {"1", "abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"2", "abc", "4f8b42c22dd3729b519ba6f68d2da7cc5b2d606d05daed5ad5128cc03e6c6358"},
        {"1000", "barista", "6505e2f47deea9058b67b973afd2239d9257e8d847f5c71cdecaba5ef3499f83"},
        {"65537", "", "3a9dff3e7a96d9bbb1f41c6475375935ce9dee05c4c5d064a15cc10fc18e4390"},
    };
    assert_int_equal(harness_register(h, "b1", NULL, NULL), 0);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        hash(h, i + 1, cases[i].n, cases[i].data);
        br_reply r = expect_reply(h, i + 1, NULL);
        assert_int_equal(r.status, 200);
        assert_true(br_str_eq(r.content_type, "application/msgpack"));
        assert_true(body_has_str(r.body, "digest", cases[i].digest));
        assert_true(body_has_int(r.body, "n", strtoll(cases[i].n, NULL, 10)));
    }
    hash(h, 10, "0", "abc");
    assert_int_equal(expect_reply(h, 10, NULL).status, 422);
}

static void heartbeats_keep_flowing_during_a_long_hash(void **state)
{
    harness *h = *state;
    assert_int_equal(harness_register(h, "b1", NULL, NULL), 0);
    long long t0 = harness_now_ms();
    hash(h, 1, LONG_N, "long");
    int beats = 0;
    br_reply r = expect_reply(h, 1, &beats);
    long long took = harness_now_ms() - t0;
    assert_int_equal(r.status, 200);
    assert_true(body_has_str(r.body, "digest", LONG_DIGEST));
    /* A blocked loop would send none; allow for a slow, shared machine. */
    if (took >= 10 * HB_MS)
        assert_true(beats >= 2);
}

static void cancel_stops_a_long_hash_with_499(void **state)
{
    harness *h = *state;
    assert_int_equal(harness_register(h, "b1", NULL, NULL), 0);
    hash(h, 1, "10000000", "long");
    br_msg c = {.type = BR_MSG_CANCEL};
    c.u.cancel.id = 1;
    assert_int_equal(harness_send(h, &c), 0);
    assert_int_equal(expect_reply(h, 1, NULL).status, 499);
    /* The slot is free again. */
    hash(h, 2, "1", "abc");
    assert_int_equal(expect_reply(h, 2, NULL).status, 200);
}

static void reregistering_during_a_hash_returns_its_slot_as_credit(void **state)
{
    harness *h = *state;
    assert_int_equal(harness_register(h, "b1", NULL, NULL), 0);
    hash(h, 1, "10000000", "long");
    assert_int_equal(harness_send_goodbye(h, "unknown worker"), 0);
    uint32_t capacity = 99;
    assert_int_equal(harness_register(h, "b2", &capacity, NULL), 0);
    /* The hash still runs when READY goes out, so READY leaves its slot out ... */
    assert_int_equal(capacity, 0);
    /* ... and the cancelled hash gives it back instead of a stale REPLY. */
    br_msg m;
    assert_int_equal(harness_expect(h, BR_MSG_CREDIT, &m, WAIT_MS, NULL), 0);
    assert_int_equal(m.u.credit.credit, 1);
    hash(h, 2, "1", "abc");
    assert_int_equal(expect_reply(h, 2, NULL).status, 200);
}

static void sigterm_finishes_the_hash_then_exits_0(void **state)
{
    harness *h = *state;
    assert_int_equal(harness_register(h, "b1", NULL, NULL), 0);
    hash(h, 1, LONG_N, "long");
    /* A second request while the first computes is refused at once (the broker
     * overstepped the credit), which shows the first is running before SIGTERM. */
    hash(h, 2, "1", "abc");
    assert_int_equal(expect_reply(h, 2, NULL).status, 503);
    assert_int_equal(kill(h->pid, SIGTERM), 0);
    br_msg m;
    assert_int_equal(harness_expect(h, BR_MSG_GOODBYE, &m, WAIT_MS, NULL), 0);
    br_reply r = expect_reply(h, 1, NULL);
    assert_int_equal(r.status, 200);
    assert_true(body_has_str(r.body, "digest", LONG_DIGEST));
    assert_int_equal(harness_send_goodbye(h, "drain acknowledged"), 0);
    assert_true(harness_exited_cleanly(h, WAIT_MS));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(ready_announces_one_cpu_slot, setup, harness_teardown),
        cmocka_unit_test_setup_teardown(digests_match_hashlib, setup, harness_teardown),
        cmocka_unit_test_setup_teardown(cpus_auto_leaves_the_lowest_cpu_to_the_io_path,
                                        setup_cpus_auto, harness_teardown),
        cmocka_unit_test_setup_teardown(heartbeats_keep_flowing_during_a_long_hash, setup,
                                        harness_teardown),
        cmocka_unit_test_setup_teardown(cancel_stops_a_long_hash_with_499, setup, harness_teardown),
        cmocka_unit_test_setup_teardown(reregistering_during_a_hash_returns_its_slot_as_credit,
                                        setup, harness_teardown),
        cmocka_unit_test_setup_teardown(sigterm_finishes_the_hash_then_exits_0, setup,
                                        harness_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
