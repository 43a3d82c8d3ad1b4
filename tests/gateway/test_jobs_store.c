/*
 * test_jobs_store.c - the SQLite job store (a real database in a temporary directory)
 * and the retry schedule: rows written in order survive a reopen, group commits
 * report every write, deletes and task names persist, and backoff doubles, caps and
 * jitters within its bounds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "jobs.h"
#include "jobs_store.h"

/* Rows written in the many-rows test: enough for several group commits. */
#define MANY 5000

typedef struct fixture {
    char dir[64];  /* mkdtemp directory */
    char path[96]; /* the database file in it */
    uv_loop_t loop;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/barista-store-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->path, sizeof(f->path), "%s/jobs.db", f->dir);
    uv_loop_init(&f->loop);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    char p[128];
    static const char *const suffix[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(p, sizeof(p), "%s%s", f->path, suffix[i]);
        unlink(p);
    }
    rmdir(f->dir);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f);
    return 0;
}

/* Counts write completions and remembers their order. */
typedef struct counter {
    int done;         /* callbacks run */
    int failed;       /* of which with an error */
    uint64_t last_id; /* the id of the last callback, to check order */
    bool in_order;    /* every callback came after the one before it */
} counter;

typedef struct write_ctx {
    counter *c;  /* shared */
    uint64_t id; /* the row written */
} write_ctx;

static void on_written(void *arg, int status)
{
    write_ctx *w = arg;
    w->c->done++;
    if (status != 0)
        w->c->failed++;
    if (w->id <= w->c->last_id)
        w->c->in_order = false;
    w->c->last_id = w->id;
}

static void on_closed(void *arg)
{
    *(bool *)arg = true;
}

/* Closes the store and runs the loop until it is closed. */
static void close_store(fixture *f, gw_jobs_store **s)
{
    bool closed = false;
    gw__jobs_store_shutdown(*s, on_closed, &closed);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_true(closed);
    gw__jobs_store_destroy(s);
    assert_null(*s);
}

/* What load found. */
typedef struct loaded {
    size_t rows;      /* rows seen */
    size_t tasks;     /* task names seen */
    gw_job_row first; /* copy of the row with id 1 (strings not kept) */
    char payload[32]; /* its payload */
    char result[32];  /* its result */
    char key[32];     /* its idempotency key */
    uint64_t max_id;  /* largest id */
    bool saw_email;   /* task "email" was loaded */
} loaded;

static void copy_out(char *dst, size_t cap, br_str s)
{
    size_t n = s.len < cap - 1 ? s.len : cap - 1;
    if (n)
        memcpy(dst, s.ptr, n);
    dst[n] = '\0';
}

static void on_row(const gw_job_row *r, void *arg)
{
    loaded *l = arg;
    l->rows++;
    if (r->id > l->max_id)
        l->max_id = r->id;
    if (r->id == 1) {
        l->first = *r;
        copy_out(l->payload, sizeof(l->payload), r->payload);
        copy_out(l->result, sizeof(l->result), r->result);
        copy_out(l->key, sizeof(l->key), r->idem_key);
    }
}

static void on_task(br_str name, void *arg)
{
    loaded *l = arg;
    l->tasks++;
    if (br_str_eq(name, "email"))
        l->saw_email = true;
}

static gw_job_row row(uint64_t id, uint8_t status)
{
    return (gw_job_row){.id = id,
                        .task = br_str_c("email"),
                        .payload = {"\x81\xa2to\xa3"
                                    "a@b",
                                    8},
                        .status = status,
                        .attempts = 0,
                        .run_at_ms = 1000,
                        .updated_ms = 1000};
}

static void rows_survive_a_reopen_and_later_writes_win(void **state)
{
    fixture *f = *state;
    gw_jobs_store *s = gw__jobs_sqlite_open(&f->loop, f->path, GW_JOBS_SYNC_FULL);
    assert_non_null(s);
    counter c = {.in_order = true};
    write_ctx w[4] = {{&c, 1}, {&c, 2}, {&c, 3}, {&c, 4}};
    gw_job_row r1 = row(1, GW_JOB_QUEUED);
    r1.idem_key = br_str_c("key-1");
    assert_int_equal(gw__jobs_store_put(s, &r1, on_written, &w[0]), 0);
    /* The same job again, finished: the later row must win. */
    gw_job_row r1b = r1;
    r1b.status = GW_JOB_SUCCEEDED;
    r1b.attempts = 1;
    r1b.result = (br_str){"\xc3", 1};
    assert_int_equal(gw__jobs_store_put(s, &r1b, on_written, &w[1]), 0);
    gw_job_row r2 = row(2, GW_JOB_RUNNING);
    assert_int_equal(gw__jobs_store_put(s, &r2, on_written, &w[2]), 0);
    assert_int_equal(gw__jobs_store_add_task(s, br_str_c("email"), on_written, &w[3]), 0);
    /* Writes never run their callback before the loop does. */
    assert_int_equal(c.done, 0);
    close_store(f, &s);
    assert_int_equal(c.done, 4);
    assert_int_equal(c.failed, 0);
    assert_true(c.in_order);

    s = gw__jobs_sqlite_open(&f->loop, f->path, GW_JOBS_SYNC_NORMAL);
    assert_non_null(s);
    loaded l = {0};
    assert_int_equal(gw__jobs_store_load(s, on_row, on_task, &l), 0);
    assert_int_equal(l.rows, 2);
    assert_int_equal(l.tasks, 1);
    assert_true(l.saw_email);
    assert_int_equal(l.first.status, GW_JOB_SUCCEEDED);
    assert_int_equal(l.first.attempts, 1);
    assert_int_equal(l.first.run_at_ms, 1000);
    assert_string_equal(l.result, "\xc3");
    assert_string_equal(l.key, "key-1");
    assert_memory_equal(l.payload,
                        "\x81\xa2to\xa3"
                        "a@b",
                        8);
    close_store(f, &s);
}

static void deletes_persist(void **state)
{
    fixture *f = *state;
    gw_jobs_store *s = gw__jobs_sqlite_open(&f->loop, f->path, GW_JOBS_SYNC_NORMAL);
    assert_non_null(s);
    counter c = {.in_order = true};
    write_ctx w[3] = {{&c, 1}, {&c, 2}, {&c, 3}};
    gw_job_row r1 = row(1, GW_JOB_QUEUED), r2 = row(2, GW_JOB_QUEUED);
    assert_int_equal(gw__jobs_store_put(s, &r1, on_written, &w[0]), 0);
    assert_int_equal(gw__jobs_store_put(s, &r2, on_written, &w[1]), 0);
    assert_int_equal(gw__jobs_store_delete(s, 1, on_written, &w[2]), 0);
    close_store(f, &s);
    assert_int_equal(c.done, 3);

    s = gw__jobs_sqlite_open(&f->loop, f->path, GW_JOBS_SYNC_NORMAL);
    assert_non_null(s);
    loaded l = {0};
    assert_int_equal(gw__jobs_store_load(s, on_row, on_task, &l), 0);
    assert_int_equal(l.rows, 1);
    assert_int_equal(l.max_id, 2);
    close_store(f, &s);
}

/* Many writes queued at once: each is reported once, in order, and all are there. */
static void many_writes_group_commit_and_all_land(void **state)
{
    fixture *f = *state;
    gw_jobs_store *s = gw__jobs_sqlite_open(&f->loop, f->path, GW_JOBS_SYNC_FULL);
    assert_non_null(s);
    counter c = {.in_order = true};
    write_ctx *w = calloc(MANY, sizeof(*w));
    assert_non_null(w);
    for (uint64_t i = 0; i < MANY; i++) {
        w[i] = (write_ctx){&c, i + 1};
        gw_job_row r = row(i + 1, GW_JOB_QUEUED);
        assert_int_equal(gw__jobs_store_put(s, &r, on_written, &w[i]), 0);
    }
    /* Run until every callback came (the store's async wakes the loop). */
    while (c.done < MANY)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(c.failed, 0);
    assert_true(c.in_order);
    close_store(f, &s);
    free(w);

    s = gw__jobs_sqlite_open(&f->loop, f->path, GW_JOBS_SYNC_FULL);
    assert_non_null(s);
    loaded l = {0};
    assert_int_equal(gw__jobs_store_load(s, on_row, on_task, &l), 0);
    assert_int_equal(l.rows, MANY);
    assert_int_equal(l.max_id, MANY);
    close_store(f, &s);
}

static void writes_after_close_are_refused(void **state)
{
    fixture *f = *state;
    gw_jobs_store *s = gw__jobs_sqlite_open(&f->loop, f->path, GW_JOBS_SYNC_NORMAL);
    assert_non_null(s);
    bool closed = false;
    gw__jobs_store_shutdown(s, on_closed, &closed);
    gw_job_row r = row(1, GW_JOB_QUEUED);
    assert_int_equal(gw__jobs_store_put(s, &r, NULL, NULL), BR_ECLOSED);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_true(closed);
    gw__jobs_store_destroy(&s);
}

static void opening_an_unwritable_path_fails(void **state)
{
    fixture *f = *state;
    char bad[128];
    snprintf(bad, sizeof(bad), "%s/no/such/dir/jobs.db", f->dir);
    assert_null(gw__jobs_sqlite_open(&f->loop, bad, GW_JOBS_SYNC_NORMAL));
}

/* ---------------------------------------------------------------------------------- */
/* The retry schedule.                                                                 */

static void backoff_doubles_per_attempt_within_jitter(void **state)
{
    (void)state;
    for (uint32_t attempt = 1; attempt <= 6; attempt++) {
        uint64_t full = 1000ull << (attempt - 1);
        for (uint64_t rnd = 0; rnd < 2000; rnd += 7) {
            uint64_t d = gw_jobs_backoff_ms(attempt, 1000, 1000000, rnd * 2654435761u);
            assert_true(d >= full / 2);
            assert_true(d <= full);
        }
    }
}

static void backoff_is_capped(void **state)
{
    (void)state;
    for (uint64_t rnd = 0; rnd < 1000; rnd++) {
        uint64_t d = gw_jobs_backoff_ms(40, 1000, 300000, rnd * 11400714819323198485ull);
        assert_true(d >= 150000);
        assert_true(d <= 300000);
    }
    /* Huge attempt numbers neither overflow nor loop for long. */
    assert_true(gw_jobs_backoff_ms(UINT32_MAX, 1000, 300000, 12345) <= 300000);
}

static void backoff_jitter_spreads_retries(void **state)
{
    (void)state;
    /* Jobs that failed together must not all come back at the same moment. */
    uint64_t lo = UINT64_MAX, hi = 0;
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < 100; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        uint64_t d = gw_jobs_backoff_ms(3, 1000, 300000, x);
        lo = d < lo ? d : lo;
        hi = d > hi ? d : hi;
    }
    assert_true(hi - lo >= 1000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(rows_survive_a_reopen_and_later_writes_win, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(deletes_persist, setup, teardown),
        cmocka_unit_test_setup_teardown(many_writes_group_commit_and_all_land, setup, teardown),
        cmocka_unit_test_setup_teardown(writes_after_close_are_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(opening_an_unwritable_path_fails, setup, teardown),
        cmocka_unit_test(backoff_doubles_per_attempt_within_jitter),
        cmocka_unit_test(backoff_is_capped),
        cmocka_unit_test(backoff_jitter_spreads_retries),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
