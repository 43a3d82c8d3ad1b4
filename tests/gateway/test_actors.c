/*
 * test_actors.c - keyed actors in the gateway: the placement function's properties
 * (stable, balanced, ~1/N of keys move when a worker joins or leaves, only the keys of
 * the worker that left or the one that joined), the state store's fencing (a commit
 * from a replaced activation's epoch is refused) and its reminders (set and unset
 * fenced by the epoch; a due reminder claimed by one of two processes sharing the
 * store, never both; a tick's end moving it on, a failed one retried), against SQLite
 * and, when BARISTA_TEST_STORE=pg, against the PostgreSQL server at BARISTA_TEST_PG_URL
 * (tests/integration/dbservers.py starts one for CTest's gateway_test_actors_pg),
 * where two backends on one database stand for two gateways sharing it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "actors_store.h"
#include "registry.h"

#define KEYS 10000
#define MAXW 8

/* A service with n live workers named w0..w(n-1) (ids in names[]). */
typedef struct fixture {
    gw_service svc;
    gw_worker workers[MAXW + 1];
    gw_worker *ptrs[MAXW + 1];
    char names[MAXW + 1][16];
} fixture;

static void fixture_init(fixture *f, size_t n)
{
    memset(f, 0, sizeof(*f));
    for (size_t i = 0; i <= MAXW; i++) {
        snprintf(f->names[i], sizeof(f->names[i]), "host:%zu", 1000 + i);
        f->workers[i].id = f->names[i];
        f->workers[i].proto_version = 2;
        f->ptrs[i] = &f->workers[i];
    }
    f->svc.workers = f->ptrs;
    f->svc.nworkers = n;
}

/* The index of the worker key k is placed on. */
static size_t place(const fixture *f, size_t k)
{
    char key[32];
    int len = snprintf(key, sizeof(key), "k%zu", k);
    gw_worker *w = gw_registry_place(&f->svc, "counter", 7, key, (size_t)len);
    assert_non_null(w);
    return (size_t)(w - f->workers);
}

static void same_key_always_reaches_the_same_worker(void **state)
{
    (void)state;
    fixture f;
    fixture_init(&f, 3);
    for (size_t k = 0; k < 1000; k++)
        assert_int_equal(place(&f, k), place(&f, k));
    /* The order of the service's workers does not matter. */
    size_t before[1000];
    for (size_t k = 0; k < 1000; k++)
        before[k] = place(&f, k);
    gw_worker *tmp = f.ptrs[0];
    f.ptrs[0] = f.ptrs[2];
    f.ptrs[2] = tmp;
    for (size_t k = 0; k < 1000; k++)
        assert_int_equal(place(&f, k), before[k]);
}

static void keys_spread_evenly_over_workers(void **state)
{
    (void)state;
    fixture f;
    fixture_init(&f, 4);
    size_t count[MAXW] = {0};
    for (size_t k = 0; k < KEYS; k++)
        count[place(&f, k)]++;
    /* 2500 each on average; a fair hash stays well within +-10 %. */
    for (size_t i = 0; i < 4; i++) {
        assert_true(count[i] > 2250);
        assert_true(count[i] < 2750);
    }
}

static void a_joining_worker_takes_about_one_nth_and_nothing_else_moves(void **state)
{
    (void)state;
    fixture f;
    fixture_init(&f, 3);
    static size_t before[KEYS];
    for (size_t k = 0; k < KEYS; k++)
        before[k] = place(&f, k);
    f.svc.nworkers = 4; /* worker 3 joins */
    size_t moved = 0;
    for (size_t k = 0; k < KEYS; k++) {
        size_t now = place(&f, k);
        if (now != before[k]) {
            assert_int_equal(now, 3); /* a key only ever moves to the newcomer */
            moved++;
        }
    }
    /* 1/4 of the keys expected: 2500. */
    assert_true(moved > 2250 && moved < 2750);
}

static void a_leaving_worker_gives_away_only_its_own_keys(void **state)
{
    (void)state;
    fixture f;
    fixture_init(&f, 4);
    static size_t before[KEYS];
    for (size_t k = 0; k < KEYS; k++)
        before[k] = place(&f, k);
    f.workers[1].lost = true; /* not live: out of the placement */
    size_t moved = 0;
    for (size_t k = 0; k < KEYS; k++) {
        size_t now = place(&f, k);
        assert_int_not_equal(now, 1);
        if (before[k] != 1)
            assert_int_equal(now, before[k]);
        else
            moved++;
    }
    assert_true(moved > 2250 && moved < 2750);
}

static void no_live_worker_places_nothing(void **state)
{
    (void)state;
    fixture f;
    fixture_init(&f, 2);
    f.workers[0].draining = true;
    f.workers[1].unhealthy = true;
    assert_null(gw_registry_place(&f.svc, "counter", 7, "k", 1));
}

static void version_1_workers_get_no_keys(void **state)
{
    (void)state;
    fixture f;
    fixture_init(&f, 2);
    f.workers[0].proto_version = 1;
    for (size_t k = 0; k < 100; k++)
        assert_int_equal(place(&f, k), 1);
    f.workers[1].proto_version = 1;
    assert_null(gw_registry_place(&f.svc, "counter", 7, "k", 1));
}

static void score_tells_type_and_key_boundaries_apart(void **state)
{
    (void)state;
    assert_int_not_equal(gw_placement_score("ab", 2, "c", 1, "w"),
                         gw_placement_score("a", 1, "bc", 2, "w"));
}

/* ---------------------------------------------------------------------------------- */
/* The store.                                                                          */

/* The store under test: ":memory:" (SQLite) or a PostgreSQL URL. */
static const char *store_db = ":memory:";
/* The actor type of the test running: a new one per test, so that tests sharing a
 * PostgreSQL database start from no rows. */
static char actor_type[64] = "counter";

static gw_actor_backend *open_store(void)
{
    static unsigned n;
    snprintf(actor_type, sizeof(actor_type), "counter-%ld-%u", (long)getpid(), n++);
    return gw__actors_store_open(store_db, false);
}

static gw_actor_op op_load(const char *key)
{
    return (gw_actor_op){.load = true, .type = br_str_c(actor_type), .key = br_str_c(key)};
}

static gw_actor_op op_set(const char *key, uint64_t epoch, const char *state)
{
    gw_actor_op op = {
        .type = br_str_c(actor_type), .key = br_str_c(key), .epoch = epoch, .op = BR_STATE_SET};
    assert_int_equal(br_buf_append(&op.state, state, strlen(state)), 0);
    return op;
}

static void apply1(gw_actor_backend *b, gw_actor_op *op)
{
    gw_actor_op *ops[1] = {op};
    gw__actors_store_apply(b, ops, 1);
}

static void store_refuses_a_commit_from_a_replaced_epoch(void **state)
{
    (void)state;
    gw_actor_backend *b = open_store();
    assert_non_null(b);
    gw_actor_op a = op_load("k1");
    apply1(b, &a);
    assert_int_equal(a.status, 0);
    assert_int_equal(a.epoch, 1);
    assert_int_equal(a.state.len, 0);
    gw_actor_op c1 = op_set("k1", 1, "one");
    apply1(b, &c1);
    assert_int_equal(c1.status, 0);
    /* The key moves: the new activation claims epoch 2 and sees "one". */
    gw_actor_op a2 = op_load("k1");
    apply1(b, &a2);
    assert_int_equal(a2.epoch, 2);
    assert_int_equal(a2.state.len, 3);
    assert_memory_equal(a2.state.data, "one", 3);
    /* The old activation (epoch 1) tries to commit: fenced, nothing changes. */
    gw_actor_op stale = op_set("k1", 1, "stale");
    apply1(b, &stale);
    assert_int_equal(stale.status, BR_EVALUE);
    gw_actor_op c2 = op_set("k1", 2, "two");
    apply1(b, &c2);
    assert_int_equal(c2.status, 0);
    gw_actor_op a3 = op_load("k1");
    apply1(b, &a3);
    assert_int_equal(a3.epoch, 3);
    assert_memory_equal(a3.state.data, "two", 3);
    /* A delete keeps the epoch row: the state is gone, the fence stays. */
    gw_actor_op del = {
        .type = br_str_c(actor_type), .key = br_str_c("k1"), .epoch = 3, .op = BR_STATE_DELETE};
    apply1(b, &del);
    assert_int_equal(del.status, 0);
    gw_actor_op a4 = op_load("k1");
    apply1(b, &a4);
    assert_int_equal(a4.epoch, 4);
    assert_int_equal(a4.state.len, 0);
    gw_actor_op *all[] = {&a, &c1, &a2, &stale, &c2, &a3, &del, &a4};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        br_buf_free(&all[i]->state);
    gw__actors_store_close(&b);
    gw__actors_store_close(&b); /* safe twice */
}

static void store_applies_a_batch_in_order_in_one_transaction(void **state)
{
    (void)state;
    gw_actor_backend *b = open_store();
    assert_non_null(b);
    enum { N = 1000 };
    static gw_actor_op ops[2 * N];
    static gw_actor_op *ptrs[2 * N];
    static char keys[N][16];
    for (size_t i = 0; i < N; i++) {
        snprintf(keys[i], sizeof(keys[i]), "k%zu", i);
        ops[2 * i] = op_load(keys[i]);
        ops[2 * i + 1] = op_set(keys[i], 1, keys[i]);
        ptrs[2 * i] = &ops[2 * i];
        ptrs[2 * i + 1] = &ops[2 * i + 1];
    }
    gw__actors_store_apply(b, ptrs, 2 * N);
    for (size_t i = 0; i < 2 * N; i++) {
        assert_int_equal(ops[i].status, 0);
        br_buf_free(&ops[i].state);
    }
    gw_actor_op check = op_load("k999");
    apply1(b, &check);
    assert_int_equal(check.epoch, 2);
    assert_memory_equal(check.state.data, "k999", 4);
    br_buf_free(&check.state);
    gw__actors_store_close(&b);
}

/* A turn that leaves the state alone (BR_STATE_KEEP) commits nothing: the state and
 * the epoch stay as they were. */
static void a_commit_that_keeps_the_state_changes_nothing(void **state)
{
    (void)state;
    gw_actor_backend *b = open_store();
    assert_non_null(b);
    gw_actor_op a = op_load("kept");
    gw_actor_op set = op_set("kept", 1, "value");
    gw_actor_op keep = {
        .type = br_str_c(actor_type), .key = br_str_c("kept"), .epoch = 1, .op = BR_STATE_KEEP};
    gw_actor_op *batch[] = {&a, &set, &keep};
    gw__actors_store_apply(b, batch, 3);
    assert_int_equal(a.status, 0);
    assert_int_equal(set.status, 0);
    assert_int_equal(keep.status, 0);
    gw_actor_op check = op_load("kept");
    apply1(b, &check);
    assert_int_equal(check.epoch, 2);
    assert_int_equal(check.state.len, 5);
    assert_memory_equal(check.state.data, "value", 5);
    gw_actor_op *all[] = {&a, &set, &keep, &check};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        br_buf_free(&all[i]->state);
    gw__actors_store_close(&b);
}

/* Two gateways on one PostgreSQL store: the second activation of a key claims the
 * next epoch whichever gateway made the first, and the first's commit is fenced. */
static void gateways_sharing_a_store_fence_each_other(void **state)
{
    (void)state;
    gw_actor_backend *a = open_store();
    gw_actor_backend *b = gw__actors_store_open(store_db, false);
    assert_non_null(a);
    assert_non_null(b);
    gw_actor_op la = op_load("shared");
    apply1(a, &la);
    assert_int_equal(la.status, 0);
    gw_actor_op ca = op_set("shared", la.epoch, "from-a");
    apply1(a, &ca);
    assert_int_equal(ca.status, 0);
    gw_actor_op lb = op_load("shared");
    apply1(b, &lb);
    assert_int_equal(lb.status, 0);
    assert_int_equal(lb.epoch, la.epoch + 1);
    assert_int_equal(lb.state.len, 6);
    assert_memory_equal(lb.state.data, "from-a", 6);
    gw_actor_op stale = op_set("shared", la.epoch, "stale");
    apply1(a, &stale);
    assert_int_equal(stale.status, BR_EVALUE);
    gw_actor_op cb = op_set("shared", lb.epoch, "from-b");
    apply1(b, &cb);
    assert_int_equal(cb.status, 0);
    gw_actor_op check = op_load("shared");
    apply1(a, &check);
    assert_int_equal(check.epoch, lb.epoch + 1);
    assert_memory_equal(check.state.data, "from-b", 6);
    gw_actor_op *all[] = {&la, &ca, &lb, &stale, &cb, &check};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        br_buf_free(&all[i]->state);
    gw__actors_store_close(&a);
    gw__actors_store_close(&b);
}

/* A server that is not there: the open fails (logged), nothing crashes. */
static void an_unreachable_server_fails_the_open(void **state)
{
    (void)state;
    assert_null(
        gw__actors_store_open("postgres://nobody@127.0.0.1:1/none?connect_timeout=2", false));
}

/* ---------------------------------------------------------------------------------- */
/* Reminders.                                                                          */

static char ticker[64] = "ticker"; /* the test's actor type: fresh in a shared database */

/* Two backends on one store stand for two gateway processes: the PostgreSQL database
 * under test (true), or a fresh SQLite file made from the mkstemp template path
 * (":memory:" is not shared).  Picks a fresh actor type in `ticker` too. */
static bool shared_store(char *path)
{
    static unsigned n;
    snprintf(ticker, sizeof(ticker), "ticker-%ld-%u", (long)getpid(), n++);
    if (gw__actors_store_is_pg(store_db))
        return true;
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    return false;
}

/* Removes a SQLite store's file and its WAL companions. */
static void remove_sqlite_files(const char *path)
{
    char aux[256];
    const char *suffixes[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(aux, sizeof(aux), "%s%s", path, suffixes[i]);
        unlink(aux);
    }
}

static gw_actor_op op_remind(uint8_t kind, const char *key, const char *name, uint64_t now)
{
    return (gw_actor_op){.remind = kind,
                         .type = br_str_c(ticker),
                         .key = br_str_c(key ? key : ""),
                         .name = br_str_c(name ? name : ""),
                         .now_ms = now};
}

static gw_actor_op op_claim(uint64_t now)
{
    gw_actor_op op = op_remind(GW_REMIND_CLAIM, NULL, NULL, now);
    op.claim_max = 16;
    op.lease_ms = 5000;
    return op;
}

/* How many reminders a claim at `now` through b takes (0 when it fails). */
static size_t claimed(gw_actor_backend *b, uint64_t now)
{
    gw_actor_op op = op_claim(now);
    apply1(b, &op);
    size_t n = op.status == 0 ? op.nclaimed : 0;
    assert_int_equal(op.status, 0);
    gw__actor_op_free_claimed(&op);
    return n;
}

static void reminders_are_fenced_claimed_once_and_moved_on(void **state)
{
    (void)state;
    char path[] = "/tmp/barista-test-remindXXXXXX";
    bool pg = shared_store(path);
    gw_actor_backend *one = gw__actors_store_open(pg ? store_db : path, false);
    gw_actor_backend *two = gw__actors_store_open(pg ? store_db : path, false);
    assert_non_null(one);
    assert_non_null(two);
    gw_actor_op load = op_load("k1");
    load.type = br_str_c(ticker);
    apply1(one, &load);
    assert_int_equal(load.epoch, 1);
    /* Set by the activation of epoch 1: due at 1000 + 100, every 500. */
    gw_actor_op set = op_remind(GW_REMIND_SET, "k1", "beat", 1000);
    set.epoch = 1;
    set.due_ms = 100;
    set.period_ms = 500;
    set.gen = 7;
    apply1(one, &set);
    assert_int_equal(set.status, 0);
    /* From a replaced epoch: refused. */
    gw_actor_op stale = op_remind(GW_REMIND_SET, "k1", "other", 1000);
    stale.epoch = 2;
    apply1(one, &stale);
    assert_int_equal(stale.status, BR_EVALUE);
    /* Not due yet. */
    assert_int_equal(claimed(one, 1050), 0);
    /* Due: one process claims it; the other, at once after, finds it leased. */
    gw_actor_op c1 = op_claim(1200);
    apply1(one, &c1);
    assert_int_equal(c1.status, 0);
    assert_int_equal(c1.nclaimed, 1);
    assert_true(br_str_eq(c1.claimed[0].key, "k1"));
    assert_true(br_str_eq(c1.claimed[0].name, "beat"));
    assert_int_equal(c1.claimed[0].gen, 7);
    assert_int_equal(claimed(two, 1200), 0);
    /* The tick succeeded: next due at 1100 + 500. */
    gw_actor_op done = op_remind(GW_REMIND_DONE, "k1", "beat", 1250);
    done.gen = 7;
    done.ok = true;
    apply1(one, &done);
    assert_int_equal(done.status, 0);
    assert_int_equal(claimed(two, 1500), 0);
    assert_int_equal(claimed(two, 1600), 1);
    /* That tick failed: tried again after lease_ms (retry delay), by either process. */
    gw_actor_op failed = op_remind(GW_REMIND_DONE, "k1", "beat", 1650);
    failed.gen = 7;
    failed.lease_ms = 1000;
    apply1(two, &failed);
    assert_int_equal(failed.status, 0);
    assert_int_equal(claimed(one, 2000), 0);
    assert_int_equal(claimed(one, 2700), 1);
    /* A DONE of an older generation (the reminder was set again since) changes
     * nothing; an unset from the key's epoch removes it. */
    gw_actor_op old = op_remind(GW_REMIND_DONE, "k1", "beat", 2800);
    old.gen = 6;
    old.ok = true;
    apply1(one, &old);
    assert_int_equal(old.status, 0);
    gw_actor_op unset = op_remind(GW_REMIND_UNSET, "k1", "beat", 2800);
    unset.epoch = 1;
    apply1(one, &unset);
    assert_int_equal(unset.status, 0);
    assert_int_equal(claimed(one, 100000), 0);
    /* A one-shot reminder is removed once its tick succeeded. */
    gw_actor_op once = op_remind(GW_REMIND_SET, "k1", "once", 3000);
    once.epoch = 1;
    once.gen = 9;
    apply1(one, &once);
    assert_int_equal(claimed(two, 3000), 1);
    gw_actor_op fired = op_remind(GW_REMIND_DONE, "k1", "once", 3001);
    fired.gen = 9;
    fired.ok = true;
    apply1(two, &fired);
    assert_int_equal(claimed(one, 100000), 0);
    gw__actors_store_close(&one);
    gw__actors_store_close(&two);
    gw__actor_op_free_claimed(&c1);
    br_buf_free(&load.state);
    if (!pg)
        remove_sqlite_files(path);
}

/* Two processes claiming at once from one store, each in its own thread and session. */
#define RACE_REMINDERS 40

typedef struct race_side {
    gw_actor_backend *b;      /* this process's backend */
    int seen[RACE_REMINDERS]; /* how many times it claimed reminder r<i> */
    int failed;               /* claims that did not answer 0, or named no reminder of ours */
} race_side;

static void race_claim(void *arg)
{
    race_side *side = arg;
    for (;;) {
        gw_actor_op op = op_claim(10000);
        op.claim_max = 3;
        apply1(side->b, &op);
        size_t n = op.status == 0 ? op.nclaimed : 0;
        side->failed += op.status != 0;
        for (size_t i = 0; i < n; i++) {
            char *end;
            long which = strtol(op.claimed[i].name.ptr + 1, &end, 10);
            if (*end == '\0' && which >= 0 && which < RACE_REMINDERS)
                side->seen[which]++;
            else
                side->failed++; /* a name this test never set */
        }
        gw__actor_op_free_claimed(&op);
        if (n == 0 && op.status == 0)
            return; /* nothing due and unleased is left */
    }
}

/* Two gateways claiming the same due reminders at the same time take each exactly once
 * between them (PostgreSQL: FOR UPDATE SKIP LOCKED; SQLite: one writer at a time). */
static void concurrent_claims_never_take_one_reminder_twice(void **state)
{
    (void)state;
    char path[] = "/tmp/barista-test-raceXXXXXX";
    bool pg = shared_store(path);
    race_side sides[2] = {{.b = gw__actors_store_open(pg ? store_db : path, false)},
                          {.b = gw__actors_store_open(pg ? store_db : path, false)}};
    assert_non_null(sides[0].b);
    assert_non_null(sides[1].b);
    gw_actor_op load = op_load("k");
    load.type = br_str_c(ticker);
    apply1(sides[0].b, &load);
    assert_int_equal(load.status, 0);
    for (int i = 0; i < RACE_REMINDERS; i++) {
        char name[16];
        snprintf(name, sizeof(name), "r%d", i);
        gw_actor_op set = op_remind(GW_REMIND_SET, "k", name, 1000);
        set.epoch = load.epoch;
        set.gen = 1;
        apply1(sides[0].b, &set);
        assert_int_equal(set.status, 0);
    }
    uv_thread_t threads[2];
    for (int t = 0; t < 2; t++)
        assert_int_equal(uv_thread_create(&threads[t], race_claim, &sides[t]), 0);
    for (int t = 0; t < 2; t++)
        uv_thread_join(&threads[t]);
    for (int i = 0; i < RACE_REMINDERS; i++)
        assert_int_equal(sides[0].seen[i] + sides[1].seen[i], 1);
    assert_int_equal(sides[0].failed + sides[1].failed, 0);
    gw__actors_store_close(&sides[0].b);
    gw__actors_store_close(&sides[1].b);
    br_buf_free(&load.state);
    if (!pg)
        remove_sqlite_files(path);
}

/* The store's tests again against PostgreSQL: BARISTA_TEST_STORE=pg. */
static int run_pg(void)
{
    const char *url = getenv("BARISTA_TEST_PG_URL");
    if (!url || !*url) {
        fprintf(stderr, "skipped: BARISTA_TEST_STORE=pg without BARISTA_TEST_PG_URL (run "
                        "through tests/integration/dbservers.py --pg)\n");
        return 77;
    }
    store_db = url;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(store_refuses_a_commit_from_a_replaced_epoch),
        cmocka_unit_test(store_applies_a_batch_in_order_in_one_transaction),
        cmocka_unit_test(a_commit_that_keeps_the_state_changes_nothing),
        cmocka_unit_test(gateways_sharing_a_store_fence_each_other),
        cmocka_unit_test(an_unreachable_server_fails_the_open),
        cmocka_unit_test(reminders_are_fenced_claimed_once_and_moved_on),
        cmocka_unit_test(concurrent_claims_never_take_one_reminder_twice),
    };
    return cmocka_run_group_tests_name("actors store on PostgreSQL", tests, NULL, NULL);
}

int main(void)
{
    const char *which = getenv("BARISTA_TEST_STORE");
    if (which && strcmp(which, "pg") == 0)
        return run_pg();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(same_key_always_reaches_the_same_worker),
        cmocka_unit_test(keys_spread_evenly_over_workers),
        cmocka_unit_test(a_joining_worker_takes_about_one_nth_and_nothing_else_moves),
        cmocka_unit_test(a_leaving_worker_gives_away_only_its_own_keys),
        cmocka_unit_test(no_live_worker_places_nothing),
        cmocka_unit_test(version_1_workers_get_no_keys),
        cmocka_unit_test(score_tells_type_and_key_boundaries_apart),
        cmocka_unit_test(store_refuses_a_commit_from_a_replaced_epoch),
        cmocka_unit_test(store_applies_a_batch_in_order_in_one_transaction),
        cmocka_unit_test(reminders_are_fenced_claimed_once_and_moved_on),
        cmocka_unit_test(concurrent_claims_never_take_one_reminder_twice),
        cmocka_unit_test(a_commit_that_keeps_the_state_changes_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
