/*
 * test_jobs_queue.c - the job queue against a fake broker: lifecycle, leases, retries,
 * idempotency, retention, workers that leave, restarts and REPLY.jobs.
 *
 * The queue is the real one (gw_jobs_new on a real uv loop, a real SQLite store in a
 * temporary directory, a real router); the broker is fake_broker.c, linked in place of
 * gw_broker (tests/gateway/CMakeLists.txt says how).  The tests play the workers
 * through it: READY, CREDIT, JOB_ACK, JOB_RESULT and a worker's death each reach the
 * queue's hooks as broker.c sends them, with credit counted the same way.  Submission
 * goes through gw__jobs_submit (jobs_int.h), what POST /jobs/{task} calls: a gw_req
 * only exists inside the real HTTP server.
 *
 * Leases, backoffs and retention are tens of milliseconds; every wait is bounded
 * (RUN_UNTIL), so that a broken queue fails a test instead of hanging it.
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

#include "fake_broker.h"
#include "jobs_int.h"

/* The longest a test waits for something that should happen. */
#define WAIT_MS 3000

/* ---------------------------------------------------------------------------------- */
/* The fixture: a loop, a router, the fake broker, the queue's configuration.          */

typedef struct fixture {
    char dir[64];            /* mkdtemp directory */
    char path[96];           /* the database file in it */
    uv_loop_t loop;          /* the queue's loop */
    uv_timer_t guard;        /* ends a bounded wait */
    bool timed_out;          /* the guard fired */
    gw_router *router;       /* where the queue adds its routes */
    struct gw_broker broker; /* the fake */
    gw_jobs_config cfg;      /* what open_queue uses */
    gw_jobs *jobs;           /* the queue, while open */
} fixture;

static void on_guard(uv_timer_t *t)
{
    ((fixture *)t->data)->timed_out = true;
}

static void run_start(fixture *f, uint64_t ms)
{
    f->timed_out = false;
    uv_timer_start(&f->guard, on_guard, ms, 0);
}

static void run_stop(fixture *f)
{
    uv_timer_stop(&f->guard);
}

/* Runs the loop until cond holds, for ms at most, then asserts cond. */
#define RUN_UNTIL(f, cond, ms)                                                                     \
    do {                                                                                           \
        run_start((f), (ms));                                                                      \
        while (!(cond) && !(f)->timed_out)                                                         \
            uv_run(&(f)->loop, UV_RUN_ONCE);                                                       \
        run_stop(f);                                                                               \
        assert_true(cond);                                                                         \
    } while (0)

/* Runs the loop for ms (to see that something does not happen). */
static void run_for(fixture *f, uint64_t ms)
{
    run_start(f, ms);
    while (!f->timed_out)
        uv_run(&f->loop, UV_RUN_ONCE);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/barista-queue-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->path, sizeof(f->path), "%s/jobs.db", f->dir);
    if (uv_loop_init(&f->loop) != 0 || !(f->router = gw_router_new()))
        return -1;
    uv_timer_init(&f->loop, &f->guard);
    f->guard.data = f;
    f->loop.data = f;
    fake_broker_init(&f->broker);
    gw_jobs_config_defaults(&f->cfg);
    f->cfg.db = f->path;
    *state = f;
    return 0;
}

static void on_closed(void *arg)
{
    *(bool *)arg = true;
}

static void open_queue(fixture *f)
{
    f->jobs = gw_jobs_new(&f->loop, f->router, &f->broker, &f->cfg);
    assert_non_null(f->jobs);
}

/* Closes the queue as the gateway does, and frees it. */
static void close_queue(fixture *f)
{
    bool closed = false;
    gw_jobs_shutdown(f->jobs, on_closed, &closed);
    RUN_UNTIL(f, closed, WAIT_MS);
    gw_jobs_destroy(&f->jobs);
    assert_null(f->jobs);
}

typedef struct handle_count {
    size_t all;  /* handles besides the guard, closing ones included */
    size_t open; /* of which not closing */
} handle_count;

static void count_handle(uv_handle_t *h, void *arg)
{
    fixture *f = h->loop->data;
    handle_count *c = arg;
    if (h == (uv_handle_t *)&f->guard)
        return;
    c->all++;
    if (!uv_is_closing(h))
        c->open++;
}

static handle_count handles_of(fixture *f)
{
    handle_count c = {0, 0};
    uv_walk(&f->loop, count_handle, &c);
    return c;
}

static int teardown(void **state)
{
    fixture *f = *state;
    if (f->jobs)
        close_queue(f);
    /* Every handle the queue opened closes (bounded: a handle left open would keep
     * the loop running forever), and then the loop closes cleanly. */
    RUN_UNTIL(f, handles_of(f).all == 0, WAIT_MS);
    uv_close((uv_handle_t *)&f->guard, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    gw_router_destroy(&f->router);
    char p[128];
    static const char *const suffix[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(p, sizeof(p), "%s%s", f->path, suffix[i]);
        unlink(p);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

/* A live worker holding `credit`, registered with the fake broker. */
static gw_worker *new_worker(fixture *f, uint32_t credit)
{
    gw_worker *w = fake_worker_new(&f->broker, credit);
    assert_non_null(w);
    return w;
}

/* ---------------------------------------------------------------------------------- */
/* Submitting.                                                                         */

/* A job id, held by value. */
typedef struct jid {
    char s[GW_JOB_ID_MAX + 1];
} jid;

static jid jid_of(const gw_job *job)
{
    jid i;
    snprintf(i.s, sizeof(i.s), "%s", job->id);
    return i;
}

static bool jid_eq(jid a, jid b)
{
    return strcmp(a.s, b.s) == 0;
}

/* A client waiting for its job to be durable (what POST /jobs/{task} waits for). */
typedef struct test_waiter {
    gw_job_waiter base; /* in the job's waiters */
    fixture *f;         /* to read the broker when told */
    int told;           /* times told */
    int status;         /* the last status told */
    jid job_id;         /* the job it was told about */
    size_t sent_then;   /* JOBs the broker had sent when it was told */
} test_waiter;

static void on_told(gw_job_waiter *base, gw_job *job, int status)
{
    test_waiter *w = (test_waiter *)base;
    w->told++;
    w->status = status;
    w->job_id = jid_of(job);
    w->sent_then = w->f->broker.nsent;
}

static test_waiter waiter(fixture *f)
{
    return (test_waiter){.base.ready = on_told, .f = f};
}

static const br_str PAYLOAD = {"\x81\xa2to\xa3"
                               "a@b",
                               8};
static const br_str RESULT = {"\xa2ok", 3};

/* Submits a job of a known task as POST /jobs/{task} does; rc is the submit's. */
static int try_submit(fixture *f, const char *task, br_str payload, const char *key,
                      uint32_t delay_ms, test_waiter *w, gw_job **out)
{
    gw_jobs_task *t = gw__jobs_task_find(f->jobs, br_str_c(task));
    assert_non_null(t);
    return gw__jobs_submit(f->jobs, t, payload, br_str_c(key), delay_ms, (br_str){NULL, 0},
                           w ? &w->base : NULL, out);
}

/* Submits a job that must be accepted; its id. */
static jid submit(fixture *f, const char *task, const char *key, uint32_t delay_ms, test_waiter *w)
{
    gw_job *job = NULL;
    assert_int_equal(try_submit(f, task, PAYLOAD, key, delay_ms, w, &job), 0);
    assert_non_null(job);
    return jid_of(job);
}

/* The job with id `id`, or NULL. */
static gw_job *find(fixture *f, jid id)
{
    return gw__jobs_find(f->jobs, br_str_c(id.s));
}

static gw_job *job_of(fixture *f, jid id)
{
    gw_job *job = find(f, id);
    assert_non_null(job);
    return job;
}

static gw_jobs_task *task_of(fixture *f, const char *name)
{
    return gw__jobs_task_find(f->jobs, br_str_c(name));
}

static gw_jobs_stats stats_of(fixture *f)
{
    gw_jobs_stats s;
    gw_jobs_stats_get(f->jobs, &s);
    return s;
}

static void assert_str(br_str s, const char *bytes, size_t len)
{
    assert_int_equal(s.len, len);
    if (len)
        assert_memory_equal(s.ptr, bytes, len);
}

static const char *const EMAIL[] = {"email", NULL};

/* ---------------------------------------------------------------------------------- */
/* Attaching.                                                                          */

static void attaches_its_hooks_and_routes_and_detaches_at_close(void **state)
{
    fixture *f = *state;
    open_queue(f);
    assert_int_equal(f->broker.attaches, 1);
    assert_ptr_equal(f->broker.data, f->jobs);
    assert_non_null(f->broker.hooks.worker_joined);
    assert_non_null(f->broker.hooks.worker_gone);
    assert_non_null(f->broker.hooks.credit);
    assert_non_null(f->broker.hooks.job_ack);
    assert_non_null(f->broker.hooks.job_result);
    assert_non_null(f->broker.hooks.reply_jobs);
    gw_route_match m;
    assert_int_equal(gw_router_match(f->router, "POST", "/jobs/email", 11, &m, NULL, 0), 0);
    assert_ptr_equal(m.route->data, f->jobs);
    assert_int_equal(gw_router_match(f->router, "GET", "/jobs/42", 8, &m, NULL, 0), 0);
    close_queue(f);
    assert_int_equal(f->broker.detaches, 1);
    assert_null(f->broker.data);
    assert_int_equal(gw_router_match(f->router, "POST", "/jobs/email", 11, &m, NULL, 0),
                     BR_ENOTFOUND);
}

static void close_starts_closing_every_handle_it_opened(void **state)
{
    fixture *f = *state;
    open_queue(f);
    assert_true(handles_of(f).open > 0);
    bool closed = false;
    gw_jobs_shutdown(f->jobs, on_closed, &closed);
    /* A gateway that sweeps the loop's leftover handles after closing the queue
     * (main.c on a failed start) must find none of the queue's still open. */
    assert_int_equal(handles_of(f).open, 0);
    RUN_UNTIL(f, closed, WAIT_MS);
    gw_jobs_destroy(&f->jobs);
    assert_int_equal(handles_of(f).all, 0);
}

static void a_broker_without_room_fails_the_start_and_leaves_the_loop_clean(void **state)
{
    fixture *f = *state;
    f->broker.attach_rc = BR_ELIMIT;
    assert_null(gw_jobs_new(&f->loop, f->router, &f->broker, &f->cfg));
    gw_route_match m;
    assert_int_equal(gw_router_match(f->router, "POST", "/jobs/email", 11, &m, NULL, 0),
                     BR_ENOTFOUND);
    /* What the failed start opened closes on the loop (teardown checks that the loop
     * closes cleanly); the store can then be opened again. */
    run_for(f, 20);
    f->broker.attach_rc = 0;
    open_queue(f);
    assert_int_equal(f->broker.attaches, 1);
}

static void not_mine(gw_req *req, void *data)
{
    (void)req;
    (void)data;
}

static void a_taken_route_fails_the_start_and_stays_its_owners(void **state)
{
    fixture *f = *state;
    assert_int_equal(gw_router_add(f->router, "GET", "/jobs/{id}", not_mine, f), 0);
    assert_null(gw_jobs_new(&f->loop, f->router, &f->broker, &f->cfg));
    assert_null(f->broker.data);
    gw_route_match m;
    assert_int_equal(gw_router_match(f->router, "GET", "/jobs/42", 8, &m, NULL, 0), 0);
    assert_ptr_equal(m.route->handler, not_mine);
    /* POST /jobs/{task}, added before the clash, left again: only GET matches (405). */
    assert_int_equal(gw_router_match(f->router, "POST", "/jobs/email", 11, &m, NULL, 0), BR_EINVAL);
}

/* ---------------------------------------------------------------------------------- */
/* Lifecycle.                                                                          */

static void queued_job_goes_to_the_worker_with_credit_once_durable(void **state)
{
    fixture *f = *state;
    open_queue(f);
    gw_worker *a = new_worker(f, 2);
    fake_worker_join(&f->broker, a, EMAIL);
    assert_int_equal(stats_of(f).tasks, 1);

    test_waiter w = waiter(f);
    jid id = submit(f, "email", NULL, 0, &w);
    /* Not durable yet: nobody is told, nothing is sent. */
    assert_int_equal(w.told, 0);
    assert_false(job_of(f, id)->durable);
    assert_int_equal(f->broker.nsent, 0);
    gw_jobs_stats s = stats_of(f);
    assert_int_equal(s.accepted, 1);
    assert_int_equal(s.held, 1);
    assert_int_equal(s.scheduled, 1);
    assert_int_equal(s.ready, 0);
    assert_int_equal(s.running, 0);

    RUN_UNTIL(f, w.told == 1, WAIT_MS);
    assert_int_equal(w.status, 0);
    assert_string_equal(w.job_id.s, id.s);
    assert_int_equal(w.sent_then, 0); /* the client heard before the worker */
    assert_int_equal(f->broker.nsent, 1);
    const sent_job *sj = &f->broker.sent[0];
    assert_ptr_equal(sj->w, a);
    assert_string_equal(sj->id, id.s);
    assert_string_equal(sj->task, "email");
    assert_int_equal(sj->payload_len, PAYLOAD.len);
    assert_memory_equal(sj->payload, PAYLOAD.ptr, PAYLOAD.len);
    assert_int_equal(sj->attempt, 1);
    assert_int_equal(sj->lease_ms, GW_JOBS_LEASE_MS);
    assert_int_equal(a->credit, 1);
    assert_int_equal(job_of(f, id)->status, GW_JOB_RUNNING);
    s = stats_of(f);
    assert_int_equal(s.running, 1);
    assert_int_equal(s.scheduled, 0);
    assert_int_equal(s.ready, 0);

    assert_true(fake_worker_ack(&f->broker, a, id.s));
    assert_false(fake_worker_ack(&f->broker, a, "0123")); /* names no job it holds */

    assert_int_equal(fake_worker_result(&f->broker, a, id.s, BR_JOB_OK, RESULT, NULL),
                     GW_JOB_SETTLE_DONE);
    assert_int_equal(a->credit, 2);
    gw_job *job = job_of(f, id);
    assert_int_equal(job->status, GW_JOB_SUCCEEDED);
    assert_int_equal(job->attempts, 1);
    assert_str(job->result, RESULT.ptr, RESULT.len);
    assert_int_equal(job->error.len, 0);
    s = stats_of(f);
    assert_int_equal(s.completed, 1);
    assert_int_equal(s.finished, 1);
    assert_int_equal(s.held, 1);
    assert_int_equal(s.running, 0);
    assert_int_equal(s.retried, 0);
    assert_int_equal(s.dead, 0);
    /* The same result again is for nothing the worker holds: no credit for it. */
    assert_int_equal(fake_worker_result(&f->broker, a, id.s, BR_JOB_OK, RESULT, NULL),
                     GW_JOB_SETTLE_UNKNOWN);
    assert_int_equal(a->credit, 2);
    assert_int_equal(f->broker.nsent, 1);
}

static void never_sends_to_a_worker_without_credit_or_not_live(void **state)
{
    fixture *f = *state;
    open_queue(f);
    gw_worker *a = new_worker(f, 0);
    gw_worker *b = new_worker(f, 3);
    gw_worker *c = new_worker(f, 3);
    fake_worker_join(&f->broker, a, EMAIL);
    fake_worker_join(&f->broker, b, EMAIL);
    b->draining = true; /* said GOODBYE: credit, but no new work */
    fake_worker_join(&f->broker, c, (const char *const[]){"resize", NULL});
    test_waiter w1 = waiter(f), w2 = waiter(f);
    jid id1 = submit(f, "email", NULL, 0, &w1);
    submit(f, "email", NULL, 0, &w2);
    RUN_UNTIL(f, w1.told && w2.told, WAIT_MS);
    run_for(f, 3 * GW_JOBS_TICK_MS);
    assert_int_equal(f->broker.nsent, 0);
    assert_int_equal(f->broker.refused, 0); /* the queue did not even try */
    assert_int_equal(stats_of(f).ready, 2);

    fake_worker_credit(&f->broker, a, 1);
    assert_int_equal(f->broker.nsent, 1);
    assert_ptr_equal(f->broker.sent[0].w, a);
    assert_string_equal(f->broker.sent[0].id, id1.s); /* oldest first */
    assert_int_equal(a->credit, 0);
    assert_int_equal(stats_of(f).ready, 1);
    assert_int_equal(f->broker.refused, 0);
}

static void delayed_job_is_sent_when_its_time_comes(void **state)
{
    fixture *f = *state;
    open_queue(f);
    gw_worker *a = new_worker(f, 1);
    fake_worker_join(&f->broker, a, EMAIL);
    test_waiter w = waiter(f);
    int64_t submitted = gw__jobs_now_ms();
    jid id = submit(f, "email", NULL, 80, &w);
    RUN_UNTIL(f, w.told == 1, WAIT_MS);
    assert_int_equal(stats_of(f).scheduled, 1);
    RUN_UNTIL(f, f->broker.nsent == 1, WAIT_MS);
    assert_string_equal(f->broker.sent[0].id, id.s);
    assert_true(f->broker.sent[0].at_ms >= submitted + 80);
}

/* ---------------------------------------------------------------------------------- */
/* Leases.                                                                             */

static void expired_lease_sends_the_job_again_and_the_late_result_only_returns_credit(void **state)
{
    fixture *f = *state;
    f->cfg.lease_ms = 60;
    open_queue(f);
    gw_worker *a = new_worker(f, 1);
    fake_worker_join(&f->broker, a, EMAIL);
    jid id = submit(f, "email", NULL, 0, NULL);
    RUN_UNTIL(f, f->broker.nsent == 1, WAIT_MS);
    gw_worker *b = new_worker(f, 1);
    fake_worker_join(&f->broker, b, EMAIL);
    assert_int_equal(f->broker.nsent, 1);

    RUN_UNTIL(f, f->broker.nsent == 2, WAIT_MS);
    const sent_job *first = &f->broker.sent[0], *again = &f->broker.sent[1];
    assert_ptr_equal(again->w, b);
    assert_string_equal(again->id, id.s);
    assert_int_equal(again->attempt, 2);
    assert_int_equal(again->lease_ms, 60);
    assert_true(again->at_ms - first->at_ms >= 60);
    assert_int_equal(a->credit, 0); /* spent until its late JOB_RESULT */
    gw_job *job = job_of(f, id);
    assert_int_equal(job->attempts, 2);
    assert_ptr_equal(job->holder->w, b);
    assert_int_equal(stats_of(f).retried, 1);
    assert_int_equal(stats_of(f).running, 1);

    br_str late = {"\xa4late", 5};
    assert_int_equal(fake_worker_result(&f->broker, a, id.s, BR_JOB_OK, late, NULL),
                     GW_JOB_SETTLE_LATE);
    assert_int_equal(a->credit, 1);
    assert_int_equal(job->status, GW_JOB_RUNNING);
    assert_int_equal(job->result.len, 0);
    /* One late result per expired lease: a second one is for nothing. */
    assert_int_equal(fake_worker_result(&f->broker, a, id.s, BR_JOB_OK, late, NULL),
                     GW_JOB_SETTLE_UNKNOWN);
    assert_int_equal(a->credit, 1);

    assert_int_equal(fake_worker_result(&f->broker, b, id.s, BR_JOB_OK, RESULT, NULL),
                     GW_JOB_SETTLE_DONE);
    assert_int_equal(b->credit, 1);
    assert_int_equal(job->status, GW_JOB_SUCCEEDED);
    assert_str(job->result, RESULT.ptr, RESULT.len);
    assert_int_equal(stats_of(f).completed, 1);
    assert_int_equal(f->broker.nsent, 2);
}

static void late_result_frees_the_credit_that_runs_the_job_again(void **state)
{
    fixture *f = *state;
    f->cfg.lease_ms = 60;
    open_queue(f);
    gw_worker *a = new_worker(f, 1);
    fake_worker_join(&f->broker, a, EMAIL);
    jid id = submit(f, "email", NULL, 0, NULL);
    RUN_UNTIL(f, f->broker.nsent == 1, WAIT_MS);
    RUN_UNTIL(f, stats_of(f).ready == 1, WAIT_MS); /* the lease expired */
    gw_job *job = job_of(f, id);
    assert_int_equal(job->status, GW_JOB_QUEUED);
    assert_int_equal(job->attempts, 1);
    assert_str(job->error, "lease expired", 13);
    /* Its payload is read back for a (the worker of its task), which has no credit. */
    RUN_UNTIL(f, task_of(f, "email")->nready == 1, WAIT_MS);
    assert_int_equal(f->broker.nsent, 1);

    assert_int_equal(fake_worker_result(&f->broker, a, id.s, BR_JOB_RETRY, (br_str){0}, "slow"),
                     GW_JOB_SETTLE_LATE);
    /* The credit that came back took the job at once. */
    assert_int_equal(f->broker.nsent, 2);
    assert_ptr_equal(f->broker.sent[1].w, a);
    assert_int_equal(f->broker.sent[1].attempt, 2);
    assert_int_equal(a->credit, 0);
    assert_int_equal(job->status, GW_JOB_RUNNING);
    assert_int_equal(fake_worker_result(&f->broker, a, id.s, BR_JOB_OK, RESULT, NULL),
                     GW_JOB_SETTLE_DONE);
    assert_int_equal(job->status, GW_JOB_SUCCEEDED);
    assert_int_equal(job->attempts, 2);
}

/* ---------------------------------------------------------------------------------- */
/* Cron expressions.                                                                   */

/* Milliseconds of a UTC time. */
static int64_t utc(int y, int mo, int d, int h, int mi)
{
    return ((gw__jobs_days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * 60000;
}

static int64_t next_of(const char *expr, int64_t after)
{
    gw_jobs_cron c;
    assert_int_equal(gw__jobs_cron_parse(expr, &c), 0);
    return gw__jobs_cron_next(&c, after);
}

static void cron_expressions_find_their_next_minute(void **state)
{
    (void)state;
    int64_t t = utc(2026, 12, 7, 2, 30) + 15000; /* Monday 02:30:15 */
    assert_true(utc(1970, 1, 1, 0, 0) == 0);
    assert_true(utc(2000, 3, 1, 0, 0) == 951868800000ll);
    assert_true(next_of("* * * * *", t) == utc(2026, 12, 7, 2, 31));
    assert_true(next_of("*/15 * * * *", t) == utc(2026, 12, 7, 2, 45));
    assert_true(next_of("0 * * * *", t) == utc(2026, 12, 7, 3, 0));
    assert_true(next_of("30 2 * * *", t) == utc(2026, 12, 8, 2, 30)); /* 02:30 has passed */
    assert_true(next_of("0 9-17/4 * * 1-5", t) == utc(2026, 12, 7, 9, 0));
    assert_true(next_of("0 0 * * 0", t) == utc(2026, 12, 13, 0, 0)); /* Sunday */
    assert_true(next_of("0 0 * * 7", t) == utc(2026, 12, 13, 0, 0)); /* 7 is Sunday too */
    assert_true(next_of("0 0 1 1 *", t) == utc(2027, 1, 1, 0, 0));
    assert_true(next_of("0 0 29 2 *", t) == utc(2028, 2, 29, 0, 0)); /* the next leap day */
    assert_true(next_of("5,10 0 1,15 * *", t) == utc(2026, 12, 15, 0, 5));
    /* Both day fields restricted: either matches (the 1st, or a Friday). */
    assert_true(next_of("0 12 1 * 5", t) == utc(2026, 12, 11, 12, 0));
    /* A day that never comes. */
    assert_true(next_of("0 0 31 2 *", t) == -1);
}

static void malformed_cron_expressions_are_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",          "* * * *",      "* * * * * *", "60 * * * *",  "* 24 * * *",
        "* * 0 * *", "* * * 13 *",   "* * * * 8",   "5-1 * * * *", "*/0 * * * *",
        "a * * * *", "1,,2 * * * *", "MON * * * *", "* * ? * *",   "1- * * * *",
    };
    gw_jobs_cron c;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (gw__jobs_cron_parse(bad[i], &c) != BR_EVALUE)
            fail_msg("accepted \"%s\"", bad[i]);
}

static void progress_renews_the_lease_and_is_kept(void **state)
{
    fixture *f = *state;
    open_queue(f);
    gw_worker *a = new_worker(f, 1), *b = new_worker(f, 1);
    fake_worker_join(&f->broker, a, EMAIL);
    jid id = submit(f, "email", NULL, 0, NULL);
    RUN_UNTIL(f, f->broker.nsent == 1, WAIT_MS);
    gw_job *job = job_of(f, id);
    uint64_t lease_end = job->timer.when;
    /* Only the holder renews: from another worker, or for another job, it is stale. */
    assert_false(fake_worker_progress(&f->broker, b, id.s, 0.5, "x"));
    assert_false(fake_worker_progress(&f->broker, a, "0123", 0.5, "x"));
    assert_true(job->progress < 0);
    assert_null(job->note);
    /* The holder's renewal moves the lease end to now + lease: never earlier. */
    assert_true(fake_worker_progress(&f->broker, a, id.s, -1, NULL));
    assert_true(job->timer.when >= lease_end);
    assert_true(gw_deadline_pending(&job->timer));
    assert_true(job->progress < 0); /* nothing reported yet */
    assert_true(fake_worker_progress(&f->broker, a, id.s, 7.0, "half way"));
    assert_true(job->progress == 1.0f); /* clamped */
    assert_string_equal(job->note, "half way");
    assert_true(fake_worker_progress(&f->broker, a, id.s, 0.25, NULL));
    assert_true(job->progress == 0.25f);
    assert_string_equal(job->note, "half way"); /* no note: the last one stays */
    assert_int_equal(job->status, GW_JOB_RUNNING);
}

static void cancelling_a_queued_job_ends_it_and_a_retry_runs_it(void **state)
{
    fixture *f = *state;
    open_queue(f);
    gw_worker *a = new_worker(f, 0); /* it takes nothing until given credit */
    fake_worker_join(&f->broker, a, EMAIL);
    jid id = submit(f, "email", NULL, 0, NULL);
    jid later = submit(f, "email", NULL, 600000, NULL);
    gw_job *job = job_of(f, id), *delayed = job_of(f, later);
    assert_int_equal(gw__jobs_cancel(f->jobs, job), BR_EINVAL); /* not durable yet */
    RUN_UNTIL(f, job->durable && delayed->durable, WAIT_MS);
    assert_int_equal(gw__jobs_cancel(f->jobs, job), 0);
    assert_int_equal(gw__jobs_cancel(f->jobs, delayed), 0);
    assert_int_equal(job->status, GW_JOB_CANCELLED);
    assert_int_equal(delayed->status, GW_JOB_CANCELLED);
    assert_false(gw_deadline_pending(&delayed->timer));
    assert_int_equal(task_of(f, "email")->nready, 0);
    assert_int_equal(task_of(f, "email")->unfinished, 0);
    assert_int_equal(stats_of(f).cancelled, 2);
    assert_int_equal(gw__jobs_cancel(f->jobs, job), BR_EINVAL); /* finished */
    fake_worker_credit(&f->broker, a, 1);
    assert_int_equal(f->broker.nsent, 0); /* nothing left to run */
    /* Retried: queued again with a fresh count; its payload comes back from the store. */
    assert_int_equal(gw__jobs_retry(f->jobs, delayed), 0);
    assert_int_equal(delayed->status == GW_JOB_QUEUED || delayed->status == GW_JOB_RUNNING, 1);
    assert_int_equal(delayed->attempts == 0 || delayed->attempts == 1, 1);
    RUN_UNTIL(f, f->broker.nsent == 1, WAIT_MS);
    assert_string_equal(f->broker.sent[0].id, later.s);
    assert_int_equal(f->broker.sent[0].attempt, 1);
    assert_int_equal(gw__jobs_retry(f->jobs, delayed), BR_EINVAL); /* running */
}

static void cancelling_a_running_job_asks_its_worker_and_ends_it_cancelled(void **state)
{
    fixture *f = *state;
    open_queue(f);
    gw_worker *a = new_worker(f, 2);
    fake_worker_join(&f->broker, a, EMAIL);
    jid id = submit(f, "email", NULL, 0, NULL), ok = submit(f, "email", NULL, 0, NULL);
    RUN_UNTIL(f, f->broker.nsent == 2, WAIT_MS);
    gw_job *job = job_of(f, id), *done = job_of(f, ok);
    assert_int_equal(gw__jobs_cancel(f->jobs, job), 1);
    assert_int_equal(f->broker.cancels, 1);
    assert_string_equal(f->broker.cancelled, id.s);
    assert_int_equal(gw__jobs_cancel(f->jobs, job), 1); /* asked once only */
    assert_int_equal(f->broker.cancels, 1);
    assert_int_equal(job->status, GW_JOB_RUNNING);
    /* A retryable failure of a cancelled job ends it: it is not retried. */
    assert_int_equal(fake_worker_result(&f->broker, a, id.s, BR_JOB_RETRY, (br_str){0}, "stopped"),
                     GW_JOB_SETTLE_DONE);
    assert_int_equal(job->status, GW_JOB_CANCELLED);
    assert_str(job->error, "stopped", 7);
    /* One that succeeds anyway is succeeded. */
    assert_int_equal(gw__jobs_cancel(f->jobs, done), 1);
    assert_int_equal(fake_worker_result(&f->broker, a, ok.s, BR_JOB_OK, RESULT, NULL),
                     GW_JOB_SETTLE_DONE);
    assert_int_equal(done->status, GW_JOB_SUCCEEDED);
    assert_int_equal(stats_of(f).cancelled, 1);
    assert_int_equal(f->broker.nsent, 2);
}

static void a_task_policy_sets_priority_attempts_and_lease(void **state)
{
    fixture *f = *state;
    open_queue(f);
    static const char *const BOTH[] = {"email", "urgent", NULL};
    gw_worker *a = new_worker(f, 0);
    fake_worker_join(&f->broker, a, BOTH);
    br_task_policy urgent = {
        .task = br_str_c("urgent"), .priority = 9, .max_attempts = 1, .lease_ms = 1234};
    fake_worker_policy(&f->broker, a, &urgent);
    /* A policy for a task the worker did not announce changes nothing. */
    br_task_policy other = {.task = br_str_c("nobody"), .priority = 200};
    fake_worker_policy(&f->broker, a, &other);
    for (int i = 0; i < 3; i++) {
        submit(f, "email", NULL, 0, NULL);
        submit(f, "urgent", NULL, 0, NULL);
    }
    RUN_UNTIL(f, task_of(f, "email")->nready == 3 && task_of(f, "urgent")->nready == 3, WAIT_MS);
    /* Credit for three: all three go to the urgent task, submitted later or not. */
    fake_worker_credit(&f->broker, a, 3);
    assert_int_equal(f->broker.nsent, 3);
    for (int i = 0; i < 3; i++) {
        assert_string_equal(f->broker.sent[i].task, "urgent");
        assert_int_equal(f->broker.sent[i].lease_ms, 1234);
    }
    /* Its one attempt is its last: a retryable failure makes it dead. */
    assert_int_equal(
        fake_worker_result(&f->broker, a, f->broker.sent[0].id, BR_JOB_RETRY, (br_str){0}, "no"),
        GW_JOB_SETTLE_DONE);
    gw_job *first = gw__jobs_find(f->jobs, br_str_c(f->broker.sent[0].id));
    assert_non_null(first);
    assert_int_equal(first->status, GW_JOB_DEAD);
    /* No urgent job is left: the credit that came back goes to email, with the
     * gateway's lease. */
    assert_int_equal(f->broker.nsent, 4);
    assert_string_equal(f->broker.sent[3].task, "email");
    assert_int_equal(f->broker.sent[3].lease_ms, GW_JOBS_LEASE_MS);
}

static void expired_leases_count_as_attempts_until_the_job_is_dead(void **state)
{
    fixture *f = *state;
    f->cfg.lease_ms = 40;
    f->cfg.max_attempts = 2;
    open_queue(f);
    gw_worker *a = new_worker(f, 2);
    fake_worker_join(&f->broker, a, EMAIL);
    jid id = submit(f, "email", NULL, 0, NULL);
    RUN_UNTIL(f, stats_of(f).dead == 1, WAIT_MS);
    assert_int_equal(f->broker.nsent, 2);
    assert_int_equal(f->broker.sent[1].attempt, 2);
    gw_job *job = job_of(f, id);
    assert_int_equal(job->status, GW_JOB_DEAD);
    assert_int_equal(job->attempts, 2);
    assert_str(job->error, "lease expired", 13);
    assert_int_equal(a->credit, 0);
    /* Both late results give their credit back, and no more. */
    assert_int_equal(fake_worker_result(&f->broker, a, id.s, BR_JOB_OK, RESULT, NULL),
                     GW_JOB_SETTLE_LATE);
    assert_int_equal(fake_worker_result(&f->broker, a, id.s, BR_JOB_OK, RESULT, NULL),
                     GW_JOB_SETTLE_LATE);
    assert_int_equal(fake_worker_result(&f->broker, a, id.s, BR_JOB_OK, RESULT, NULL),
                     GW_JOB_SETTLE_UNKNOWN);
    assert_int_equal(a->credit, 2);
    assert_int_equal(job->status, GW_JOB_DEAD);
    assert_int_equal(job->result.len, 0);
}

/* ---------------------------------------------------------------------------------- */
/* Retries.                                                                            */

static void retry_outcome_runs_the_job_again_after_a_bounded_backoff(void **state)
{
    fixture *f = *state;
    f->cfg.backoff_ms = 40;
    open_queue(f);
    gw_worker *a = new_worker(f, 1);
    fake_worker_join(&f->broker, a, EMAIL);
    jid id = submit(f, "email", NULL, 0, NULL);
    RUN_UNTIL(f, f->broker.nsent == 1, WAIT_MS);

    assert_int_equal(fake_worker_result(&f->broker, a, id.s, BR_JOB_RETRY, (br_str){0}, "boom"),
                     GW_JOB_SETTLE_DONE);
    gw_job *job = job_of(f, id);
    assert_int_equal(job->status, GW_JOB_FAILED);
    assert_str(job->error, "boom", 4);
    /* gw_jobs_backoff_ms(1, 40, ...) lies in [20, 40]. */
    int64_t delay = job->run_at_ms - job->updated_ms;
    assert_in_range(delay, 20, 40);
    assert_int_equal(f->broker.nsent, 1); /* a has credit, but the job is not due */
    gw_jobs_stats s = stats_of(f);
    assert_int_equal(s.retried, 1);
    assert_int_equal(s.scheduled, 1);
    assert_int_equal(s.ready, 0);

    RUN_UNTIL(f, f->broker.nsent == 2, WAIT_MS);
    assert_int_equal(f->broker.sent[1].attempt, 2);
    assert_true(f->broker.sent[1].at_ms >= job->run_at_ms);
    assert_int_equal(fake_worker_result(&f->broker, a, id.s, BR_JOB_RETRY, (br_str){0}, "boom"),
                     GW_JOB_SETTLE_DONE);
    /* The second retry waits twice as long: [40, 80]. */
    delay = job->run_at_ms - job->updated_ms;
    assert_in_range(delay, 40, 80);
    RUN_UNTIL(f, f->broker.nsent == 3, WAIT_MS);
    assert_int_equal(fake_worker_result(&f->broker, a, id.s, BR_JOB_OK, RESULT, NULL),
                     GW_JOB_SETTLE_DONE);
    assert_int_equal(job->status, GW_JOB_SUCCEEDED);
    assert_int_equal(job->attempts, 3);
    assert_int_equal(job->error.len, 0);
}

static void fatal_outcome_makes_the_job_dead_at_once(void **state)
{
    fixture *f = *state;
    open_queue(f);
    gw_worker *a = new_worker(f, 1);
    fake_worker_join(&f->broker, a, EMAIL);
    jid id = submit(f, "email", NULL, 0, NULL);
    RUN_UNTIL(f, f->broker.nsent == 1, WAIT_MS);
    assert_int_equal(
        fake_worker_result(&f->broker, a, id.s, BR_JOB_FATAL, (br_str){0}, "bad input"),
        GW_JOB_SETTLE_DONE);
    gw_job *job = job_of(f, id);
    assert_int_equal(job->status, GW_JOB_DEAD);
    assert_int_equal(job->attempts, 1);
    assert_str(job->error, "bad input", 9);
    gw_jobs_stats s = stats_of(f);
    assert_int_equal(s.dead, 1);
    assert_int_equal(s.retried, 0);
    assert_int_equal(s.finished, 1);
    run_for(f, 3 * GW_JOBS_TICK_MS);
    assert_int_equal(f->broker.nsent, 1);
    assert_int_equal(a->credit, 1);
}

static void failing_every_attempt_makes_the_job_dead_after_max_attempts(void **state)
{
    fixture *f = *state;
    f->cfg.max_attempts = 3;
    f->cfg.backoff_ms = 10;
    f->cfg.backoff_cap_ms = 20;
    open_queue(f);
    gw_worker *a = new_worker(f, 1);
    fake_worker_join(&f->broker, a, EMAIL);
    jid id = submit(f, "email", NULL, 0, NULL);
    for (uint32_t attempt = 1; attempt <= 3; attempt++) {
        RUN_UNTIL(f, f->broker.nsent == attempt, WAIT_MS);
        assert_int_equal(f->broker.sent[attempt - 1].attempt, attempt);
        assert_int_equal(fake_worker_result(&f->broker, a, id.s, BR_JOB_RETRY, (br_str){0}, "boom"),
                         GW_JOB_SETTLE_DONE);
    }
    gw_job *job = job_of(f, id);
    assert_int_equal(job->status, GW_JOB_DEAD);
    assert_int_equal(job->attempts, 3);
    gw_jobs_stats s = stats_of(f);
    assert_int_equal(s.retried, 2);
    assert_int_equal(s.dead, 1);
    run_for(f, 3 * GW_JOBS_TICK_MS);
    assert_int_equal(f->broker.nsent, 3);
}

static void unsendable_job_is_dead_and_the_jobs_behind_it_still_go(void **state)
{
    fixture *f = *state;
    open_queue(f);
    gw_worker *a = new_worker(f, 0);
    fake_worker_join(&f->broker, a, EMAIL);
    br_str big = {"\xa3"
                  "big",
                  4};
    f->broker.unsendable = big;
    gw_job *bad = NULL, *good = NULL;
    test_waiter w1 = waiter(f), w2 = waiter(f);
    assert_int_equal(try_submit(f, "email", big, NULL, 0, &w1, &bad), 0);
    assert_int_equal(try_submit(f, "email", PAYLOAD, NULL, 0, &w2, &good), 0);
    jid bad_id = jid_of(bad), good_id = jid_of(good);
    RUN_UNTIL(f, w1.told && w2.told, WAIT_MS);

    fake_worker_credit(&f->broker, a, 2);
    assert_int_equal(job_of(f, bad_id)->status, GW_JOB_DEAD);
    assert_int_equal(f->broker.nsent, 1);
    assert_string_equal(f->broker.sent[0].id, good_id.s);
    assert_int_equal(a->credit, 1);
    assert_int_equal(stats_of(f).dead, 1);
}

/* ---------------------------------------------------------------------------------- */
/* Idempotency.                                                                        */

static void same_idempotency_key_returns_the_same_job(void **state)
{
    fixture *f = *state;
    open_queue(f);
    fake_worker_join(&f->broker, new_worker(f, 0), EMAIL);
    test_waiter w1 = waiter(f), w2 = waiter(f), w3 = waiter(f);
    jid id = submit(f, "email", "order-17", 0, &w1);
    gw_job *again = NULL;
    br_str other = {"\xa5other", 6};
    assert_int_equal(try_submit(f, "email", other, "order-17", 0, &w2, &again), 0);
    assert_string_equal(again->id, id.s);
    assert_str(again->payload, PAYLOAD.ptr, PAYLOAD.len); /* the first one's */
    RUN_UNTIL(f, w1.told && w2.told, WAIT_MS);
    assert_string_equal(w2.job_id.s, id.s);
    /* Once durable, a repeat is told at once. */
    assert_true(jid_eq(submit(f, "email", "order-17", 0, &w3), id));
    assert_int_equal(w3.told, 1);
    assert_int_equal(w3.status, 0);
    gw_jobs_stats s = stats_of(f);
    assert_int_equal(s.accepted, 1);
    assert_int_equal(s.held, 1);
}

static void different_idempotency_keys_make_different_jobs(void **state)
{
    fixture *f = *state;
    open_queue(f);
    fake_worker_join(&f->broker, new_worker(f, 0), EMAIL);
    jid k1 = submit(f, "email", "k1", 0, NULL);
    jid k2 = submit(f, "email", "k2", 0, NULL);
    jid n1 = submit(f, "email", NULL, 0, NULL);
    jid n2 = submit(f, "email", NULL, 0, NULL);
    jid all[] = {k1, k2, n1, n2};
    for (size_t x = 0; x < 4; x++)
        for (size_t y = x + 1; y < 4; y++)
            assert_false(jid_eq(all[x], all[y]));
    assert_true(jid_eq(submit(f, "email", "k2", 0, NULL), k2));
    assert_int_equal(stats_of(f).accepted, 4);
    assert_int_equal(stats_of(f).held, 4);
}

/* ---------------------------------------------------------------------------------- */
/* Retention and limits.                                                               */

static void finished_jobs_expire_after_retention_and_free_their_key(void **state)
{
    fixture *f = *state;
    f->cfg.retention_ms = 60;
    open_queue(f);
    gw_worker *a = new_worker(f, 1);
    fake_worker_join(&f->broker, a, EMAIL);
    jid id = submit(f, "email", "once", 0, NULL);
    RUN_UNTIL(f, f->broker.nsent == 1, WAIT_MS);
    assert_int_equal(fake_worker_result(&f->broker, a, id.s, BR_JOB_OK, RESULT, NULL),
                     GW_JOB_SETTLE_DONE);
    int64_t ended = job_of(f, id)->updated_ms;
    /* Until it expires, its key finds the finished job. */
    assert_true(jid_eq(submit(f, "email", "once", 0, NULL), id));
    /* A running job is never expired. */
    jid running = submit(f, "email", NULL, 0, NULL);
    RUN_UNTIL(f, f->broker.nsent == 2, WAIT_MS);

    RUN_UNTIL(f, find(f, id) == NULL, WAIT_MS);
    assert_true(gw__jobs_now_ms() - ended >= 60);
    gw_jobs_stats s = stats_of(f);
    assert_int_equal(s.finished, 0);
    assert_int_equal(s.held, 1);
    assert_int_equal(s.completed, 1);
    run_for(f, 2 * GW_JOBS_TICK_MS);
    assert_int_equal(job_of(f, running)->status, GW_JOB_RUNNING);
    /* The key is free again: a new job. */
    jid fresh = submit(f, "email", "once", 0, NULL);
    assert_false(jid_eq(fresh, id));
    assert_int_equal(stats_of(f).accepted, 3);
}

static void task_limit_refuses_more_unfinished_jobs_with_efull(void **state)
{
    fixture *f = *state;
    f->cfg.task_limit = 2;
    open_queue(f);
    gw_worker *a = new_worker(f, 1);
    fake_worker_join(&f->broker, a, EMAIL);
    fake_worker_join(&f->broker, new_worker(f, 0), (const char *const[]){"resize", NULL});
    jid first = submit(f, "email", "first", 0, NULL);
    submit(f, "email", NULL, 0, NULL);
    static gw_job not_set;
    gw_job *job = &not_set;
    assert_int_equal(try_submit(f, "email", PAYLOAD, NULL, 0, NULL, &job), BR_EFULL);
    assert_null(job);
    /* A repeated key is not a new job: it is found, not refused. */
    assert_true(jid_eq(submit(f, "email", "first", 0, NULL), first));
    /* The limit is per task. */
    submit(f, "resize", NULL, 0, NULL);
    gw_jobs_stats s = stats_of(f);
    assert_int_equal(s.accepted, 3);
    assert_int_equal(s.held, 3);

    RUN_UNTIL(f, f->broker.nsent == 1, WAIT_MS);
    assert_int_equal(
        fake_worker_result(&f->broker, a, f->broker.sent[0].id, BR_JOB_OK, RESULT, NULL),
        GW_JOB_SETTLE_DONE);
    /* A finished job no longer counts. */
    submit(f, "email", NULL, 0, NULL);
    assert_int_equal(try_submit(f, "email", PAYLOAD, NULL, 0, NULL, &job), BR_EFULL);
}

/* ---------------------------------------------------------------------------------- */
/* Workers that leave.                                                                 */

static void worker_gone_gives_its_jobs_to_another_worker_at_once(void **state)
{
    fixture *f = *state;
    open_queue(f);
    gw_worker *a = new_worker(f, 2);
    fake_worker_join(&f->broker, a, EMAIL);
    jid id1 = submit(f, "email", NULL, 0, NULL);
    jid id2 = submit(f, "email", NULL, 0, NULL);
    RUN_UNTIL(f, f->broker.nsent == 2, WAIT_MS);
    assert_true(fake_worker_ack(&f->broker, a, id1.s));
    assert_true(fake_worker_ack(&f->broker, a, id2.s));
    gw_worker *b = new_worker(f, 2);
    fake_worker_join(&f->broker, b, EMAIL);
    assert_int_equal(f->broker.nsent, 2);

    /* No lease expiry needed: the jobs go back at once.  Their payloads left memory
     * with their JOBs, so they are read back from the store on the way to b. */
    fake_worker_gone(&f->broker, a);
    assert_int_equal(stats_of(f).ready, 2);
    RUN_UNTIL(f, f->broker.nsent == 4, WAIT_MS);
    bool got1 = false, got2 = false;
    for (size_t i = 2; i < 4; i++) {
        assert_ptr_equal(f->broker.sent[i].w, b);
        assert_int_equal(f->broker.sent[i].attempt, 2);
        assert_int_equal(f->broker.sent[i].payload_len, PAYLOAD.len);
        assert_memory_equal(f->broker.sent[i].payload, PAYLOAD.ptr, PAYLOAD.len);
        got1 = got1 || strcmp(f->broker.sent[i].id, id1.s) == 0;
        got2 = got2 || strcmp(f->broker.sent[i].id, id2.s) == 0;
    }
    assert_true(got1 && got2);
    assert_int_equal(b->credit, 0);
    gw_jobs_stats s = stats_of(f);
    assert_int_equal(s.retried, 2);
    assert_int_equal(s.running, 2);
    assert_str(job_of(f, id1)->error, "the worker went away while running it", 37);
    assert_int_equal(fake_worker_result(&f->broker, b, id1.s, BR_JOB_OK, RESULT, NULL),
                     GW_JOB_SETTLE_DONE);
    assert_int_equal(job_of(f, id1)->status, GW_JOB_SUCCEEDED);
    assert_int_equal(job_of(f, id1)->attempts, 2);
}

/* Jobs of many tasks, interleaved, then one more task's: the gone worker's jobs of
 * every task go on, however many it held. */
static void worker_gone_requeues_jobs_of_every_task_it_held(void **state)
{
    enum { PAIRS = 520 };
    fixture *f = *state;
    open_queue(f);
    gw_worker *a = new_worker(f, 2 * PAIRS + 10);
    fake_worker_join(&f->broker, a, (const char *const[]){"alpha", "beta", "gamma", NULL});
    gw_worker *b = new_worker(f, 1);
    fake_worker_join(&f->broker, b, (const char *const[]){"gamma", NULL});
    for (int i = 0; i < PAIRS; i++) {
        submit(f, "alpha", NULL, 0, NULL);
        submit(f, "beta", NULL, 0, NULL);
    }
    jid last = submit(f, "gamma", NULL, 0, NULL);
    RUN_UNTIL(f, f->broker.nsent == 2 * PAIRS + 1, 4 * WAIT_MS);
    assert_ptr_equal(f->broker.sent[2 * PAIRS].w, a);
    assert_string_equal(f->broker.sent[2 * PAIRS].id, last.s);

    fake_worker_gone(&f->broker, a);
    RUN_UNTIL(f, f->broker.nsent == 2 * PAIRS + 2, WAIT_MS);
    assert_ptr_equal(f->broker.sent[2 * PAIRS + 1].w, b);
    assert_string_equal(f->broker.sent[2 * PAIRS + 1].id, last.s);
    assert_int_equal(stats_of(f).ready, 2 * PAIRS);
}

/* ---------------------------------------------------------------------------------- */
/* Durability and REPLY.jobs.                                                          */

static void jobs_survive_a_restart_and_running_ones_are_queued_again(void **state)
{
    fixture *f = *state;
    open_queue(f);
    gw_worker *a = new_worker(f, 2);
    fake_worker_join(&f->broker, a, EMAIL);
    jid done = submit(f, "email", "one", 0, NULL);
    jid running = submit(f, "email", NULL, 0, NULL);
    RUN_UNTIL(f, f->broker.nsent == 2, WAIT_MS);
    assert_int_equal(fake_worker_result(&f->broker, a, done.s, BR_JOB_OK, RESULT, NULL),
                     GW_JOB_SETTLE_DONE);
    test_waiter w = waiter(f);
    jid later = submit(f, "email", NULL, 60000, &w);
    RUN_UNTIL(f, w.told == 1, WAIT_MS);
    int64_t later_at = job_of(f, later)->run_at_ms;
    jid dead = submit(f, "email", NULL, 0, NULL);
    RUN_UNTIL(f, f->broker.nsent == 3, WAIT_MS);
    assert_int_equal(fake_worker_result(&f->broker, a, dead.s, BR_JOB_FATAL, (br_str){0}, "bad"),
                     GW_JOB_SETTLE_DONE);
    close_queue(f);

    open_queue(f);
    gw_jobs_stats s = stats_of(f);
    assert_int_equal(s.held, 4);
    assert_int_equal(s.finished, 2);
    assert_int_equal(s.ready, 1);
    assert_int_equal(s.scheduled, 1);
    assert_int_equal(s.running, 0);
    assert_int_equal(s.tasks, 1);
    assert_int_equal(s.accepted, 0); /* counters start again */
    gw_job *job = job_of(f, done);
    assert_int_equal(job->status, GW_JOB_SUCCEEDED);
    assert_int_equal(job->attempts, 1);
    assert_str(job->result, RESULT.ptr, RESULT.len);
    assert_true(job->durable);
    job = job_of(f, running);
    assert_int_equal(job->status, GW_JOB_QUEUED);
    assert_int_equal(job->attempts, 0); /* a lease is not written (jobs.c) */
    /* Its payload waits in the store until a worker runs its task. */
    assert_int_equal(job->payload.len, 0);
    assert_int_equal(job->payload_len, PAYLOAD.len);
    job = job_of(f, later);
    assert_int_equal(job->status, GW_JOB_QUEUED);
    assert_int_equal(job->run_at_ms, later_at);
    job = job_of(f, dead);
    assert_int_equal(job->status, GW_JOB_DEAD);
    assert_str(job->error, "bad", 3);
    /* Keys carry on; a new id is none of the old ones. */
    assert_true(jid_eq(submit(f, "email", "one", 0, NULL), done));
    jid fresh = submit(f, "email", NULL, 0, NULL);
    jid old[] = {done, running, later, dead};
    for (size_t i = 0; i < 4; i++)
        assert_false(jid_eq(fresh, old[i]));

    /* The requeued job goes to the first worker of its task, its payload read back. */
    gw_worker *b = new_worker(f, 1);
    fake_worker_join(&f->broker, b, EMAIL);
    RUN_UNTIL(f, f->broker.nsent == 4, WAIT_MS);
    assert_ptr_equal(f->broker.sent[3].w, b);
    assert_string_equal(f->broker.sent[3].id, running.s);
    assert_int_equal(f->broker.sent[3].attempt, 1);
    assert_int_equal(f->broker.sent[3].payload_len, PAYLOAD.len);
    assert_memory_equal(f->broker.sent[3].payload, PAYLOAD.ptr, PAYLOAD.len);
}

static void reply_jobs_without_a_client_submits_the_jobs(void **state)
{
    fixture *f = *state;
    open_queue(f);
    gw_worker *a = new_worker(f, 0);
    fake_worker_join(&f->broker, a, (const char *const[]){"email", "resize", NULL});
    br_str resize_payload = {"\xa3"
                             "big",
                             4};
    br_job_spec specs[] = {
        {.task = br_str_c("email"), .payload = PAYLOAD, .idempotency_key = br_str_c("r1")},
        {.task = br_str_c("resize"), .payload = resize_payload},
        {.task = br_str_c(""), .payload = PAYLOAD}, /* no such task can exist: skipped */
    };
    br_reply r = {.id = 7,
                  .status = 200,
                  .content_type = br_str_c("application/json"),
                  .body = br_str_c("{}"),
                  .jobs = specs,
                  .njobs = 3};
    assert_false(f->broker.hooks.reply_jobs(f->broker.data, NULL, &r, false));
    gw_jobs_stats s = stats_of(f);
    assert_int_equal(s.accepted, 2);
    assert_int_equal(s.tasks, 2);
    RUN_UNTIL(f, stats_of(f).ready == 2, WAIT_MS);

    fake_worker_credit(&f->broker, a, 2);
    assert_int_equal(f->broker.nsent, 2);
    const sent_job *e = &f->broker.sent[0], *z = &f->broker.sent[1];
    if (strcmp(e->task, "email") != 0) {
        const sent_job *t = e;
        e = z;
        z = t;
    }
    assert_string_equal(e->task, "email");
    assert_memory_equal(e->payload, PAYLOAD.ptr, PAYLOAD.len);
    assert_string_equal(z->task, "resize");
    assert_int_equal(z->payload_len, 4);
    assert_memory_equal(z->payload, resize_payload.ptr, 4);

    /* The same reply again: its keyed job is found, the other is new. */
    assert_false(f->broker.hooks.reply_jobs(f->broker.data, NULL, &r, false));
    assert_int_equal(stats_of(f).accepted, 3);
    /* A reply without jobs is not taken over. */
    r.njobs = 0;
    assert_false(f->broker.hooks.reply_jobs(f->broker.data, NULL, &r, false));
    assert_int_equal(stats_of(f).accepted, 3);
    assert_int_equal(f->broker.responses, 0);
}

/* ---------------------------------------------------------------------------------- */
/* Tasks exist while a worker announces them (issue 13, item 5).                       */

static void a_reply_may_enqueue_only_tasks_that_exist(void **state)
{
    fixture *f = *state;
    open_queue(f);
    fake_worker_join(&f->broker, new_worker(f, 0), EMAIL);
    br_job_spec specs[] = {
        {.task = br_str_c("junk-3-7"), .payload = PAYLOAD}, /* no worker announces it */
        {.task = br_str_c("email"), .payload = PAYLOAD},
    };
    br_reply r = {.id = 9, .status = 200, .jobs = specs, .njobs = 2};
    assert_false(f->broker.hooks.reply_jobs(f->broker.data, NULL, &r, false));
    assert_int_equal(stats_of(f).accepted, 1);
    assert_int_equal(stats_of(f).tasks, 1);
    assert_null(task_of(f, "junk-3-7")); /* not created, not recorded */
    close_queue(f);
    open_queue(f);
    assert_null(task_of(f, "junk-3-7"));
}

static void tasks_of_workers_that_left_retire_after_the_grace_period(void **state)
{
    fixture *f = *state;
    f->cfg.task_grace_ms = 80;
    open_queue(f);
    gw_worker *a = new_worker(f, 0);
    gw_worker *b = new_worker(f, 0);
    fake_worker_join_public(&f->broker, a, (const char *const[]){"email", "junk", NULL},
                            (const char *const[]){"email", NULL});
    fake_worker_join(&f->broker, b, EMAIL);
    /* b does not mark email public: a task is public only while all its workers say so. */
    assert_non_null(gw__jobs_task_open(f->jobs, br_str_c("email")));
    assert_null(gw__jobs_task_public(f->jobs, br_str_c("email")));
    fake_worker_gone(&f->broker, b);
    assert_non_null(gw__jobs_task_public(f->jobs, br_str_c("email")));
    assert_int_equal(stats_of(f).tasks, 2);

    int64_t gone = gw__jobs_now_ms();
    fake_worker_gone(&f->broker, a);
    /* In the grace period both still exist, email still public. */
    assert_non_null(gw__jobs_task_public(f->jobs, br_str_c("email")));
    assert_non_null(gw__jobs_task_open(f->jobs, br_str_c("junk")));
    RUN_UNTIL(f, stats_of(f).tasks == 0, WAIT_MS);
    assert_true(gw__jobs_now_ms() - gone >= 80);
    assert_null(gw__jobs_task_open(f->jobs, br_str_c("email")));
    assert_null(gw__jobs_task_public(f->jobs, br_str_c("email")));
    assert_null(task_of(f, "junk")); /* no jobs: the record is gone too */
    /* Nor are they recorded for the next start. */
    close_queue(f);
    open_queue(f);
    assert_int_equal(stats_of(f).tasks, 0);
    assert_null(task_of(f, "email"));
}

static void tasks_recorded_in_the_store_get_a_grace_period_after_a_restart(void **state)
{
    fixture *f = *state;
    f->cfg.task_grace_ms = 200;
    open_queue(f);
    fake_worker_join_public(&f->broker, new_worker(f, 0), EMAIL, EMAIL);
    close_queue(f);
    fake_broker_init(&f->broker);
    open_queue(f);
    /* No worker yet: its grace period runs, public as it was recorded. */
    assert_non_null(gw__jobs_task_public(f->jobs, br_str_c("email")));
    RUN_UNTIL(f, stats_of(f).tasks == 0, WAIT_MS);
    assert_null(gw__jobs_task_open(f->jobs, br_str_c("email")));
}

static void queued_jobs_of_a_retired_task_wait_for_a_worker_of_it(void **state)
{
    fixture *f = *state;
    f->cfg.task_grace_ms = 40;
    open_queue(f);
    gw_worker *a = new_worker(f, 0);
    fake_worker_join(&f->broker, a, EMAIL);
    test_waiter w = waiter(f);
    jid id = submit(f, "email", NULL, 0, &w);
    RUN_UNTIL(f, w.told == 1, WAIT_MS);
    fake_worker_gone(&f->broker, a);
    RUN_UNTIL(f, stats_of(f).tasks == 0, WAIT_MS);
    /* Retired: not submittable, but the record stays with its job, which waits in the
     * store (not in memory) for a worker of its task. */
    gw_jobs_task *t = task_of(f, "email");
    assert_non_null(t);
    assert_int_equal(t->state, GW_TASK_RETIRED);
    assert_null(gw__jobs_task_open(f->jobs, br_str_c("email")));
    assert_int_equal(job_of(f, id)->status, GW_JOB_QUEUED);
    assert_int_equal(job_of(f, id)->payload.len, 0);
    assert_int_equal(stats_of(f).memory, 0);
    gw_worker *b = new_worker(f, 1);
    fake_worker_join(&f->broker, b, EMAIL);
    assert_non_null(gw__jobs_task_open(f->jobs, br_str_c("email")));
    RUN_UNTIL(f, f->broker.nsent == 1, WAIT_MS);
    assert_string_equal(f->broker.sent[0].id, id.s);
    assert_memory_equal(f->broker.sent[0].payload, PAYLOAD.ptr, PAYLOAD.len);
}

static void readys_cannot_fill_the_task_table_for_good(void **state)
{
    enum { JUNK = 128 };
    fixture *f = *state;
    f->cfg.task_grace_ms = 40;
    open_queue(f);
    static char names[FAKE_WORKERS_MAX][JUNK][16];
    static const char *lists[FAKE_WORKERS_MAX][JUNK + 1];
    size_t rogues = GW_JOBS_MAX_TASKS / GW_JOBS_WORKER_TASKS_MAX + 1;
    assert_true(rogues < FAKE_WORKERS_MAX);
    gw_worker *rogue[FAKE_WORKERS_MAX];
    for (size_t i = 0; i < rogues; i++) {
        for (size_t k = 0; k < JUNK; k++) {
            snprintf(names[i][k], sizeof(names[i][k]), "junk-%zu-%zu", i, k);
            lists[i][k] = names[i][k];
        }
        lists[i][JUNK] = NULL;
        rogue[i] = new_worker(f, 1000000);
        fake_worker_join_public(&f->broker, rogue[i], lists[i], lists[i]);
    }
    /* Each READY brought at most GW_JOBS_WORKER_TASKS_MAX; the table is full. */
    assert_int_equal(stats_of(f).tasks, GW_JOBS_MAX_TASKS);
    assert_null(task_of(f, "junk-0-64"));
    /* A real worker joining now: its task waits for room. */
    gw_worker *real = new_worker(f, 1);
    fake_worker_join(&f->broker, real, EMAIL);
    assert_null(gw__jobs_task_open(f->jobs, br_str_c("email")));

    /* The rogues leave: after the grace period the table recovers, and the waiting
     * task is declared without its worker announcing it again. */
    for (size_t i = 0; i < rogues; i++)
        fake_worker_gone(&f->broker, rogue[i]);
    RUN_UNTIL(f, stats_of(f).tasks == 1, WAIT_MS);
    assert_null(gw__jobs_task_open(f->jobs, br_str_c("junk-3-7")));
    assert_non_null(gw__jobs_task_open(f->jobs, br_str_c("email")));
    submit(f, "email", NULL, 0, NULL);
    RUN_UNTIL(f, f->broker.nsent == 1, WAIT_MS);
    assert_ptr_equal(f->broker.sent[0].w, real);
}

/* ---------------------------------------------------------------------------------- */
/* Public tasks (item 14), keys per task (item 12), ids (item 13).                     */

static void tasks_are_internal_unless_their_workers_mark_them_public(void **state)
{
    fixture *f = *state;
    open_queue(f);
    fake_worker_join_public(&f->broker, new_worker(f, 0),
                            (const char *const[]){"email", "report", NULL},
                            (const char *const[]){"report", "not-announced", NULL});
    assert_non_null(gw__jobs_task_open(f->jobs, br_str_c("email")));
    assert_null(gw__jobs_task_public(f->jobs, br_str_c("email")));
    assert_non_null(gw__jobs_task_public(f->jobs, br_str_c("report")));
    /* A public name the worker does not run makes no task. */
    assert_null(task_of(f, "not-announced"));
}

static void idempotency_keys_are_scoped_per_task(void **state)
{
    fixture *f = *state;
    open_queue(f);
    fake_worker_join(&f->broker, new_worker(f, 0), (const char *const[]){"email", "report", NULL});
    jid report = submit(f, "report", "same-key", 0, NULL);
    jid email = submit(f, "email", "same-key", 0, NULL);
    assert_false(jid_eq(report, email));
    assert_string_equal(job_of(f, email)->task->name, "email");
    assert_true(jid_eq(submit(f, "email", "same-key", 0, NULL), email));
    assert_true(jid_eq(submit(f, "report", "same-key", 0, NULL), report));
    assert_int_equal(stats_of(f).accepted, 2);
    /* Still apart after a restart (the digest is made again from the stored key). */
    test_waiter w = waiter(f);
    submit(f, "email", "sync", 0, &w);
    RUN_UNTIL(f, w.told == 1, WAIT_MS);
    close_queue(f);
    open_queue(f);
    assert_true(jid_eq(submit(f, "email", "same-key", 0, NULL), email));
    assert_true(jid_eq(submit(f, "report", "same-key", 0, NULL), report));
}

static bool is_hex_id(const char *s)
{
    if (strlen(s) != GW_JOB_ID_MAX)
        return false;
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
            return false;
    return true;
}

static void job_ids_are_random_and_never_handed_out_again(void **state)
{
    enum { N = 200 };
    fixture *f = *state;
    f->cfg.retention_ms = 30;
    open_queue(f);
    gw_worker *a = new_worker(f, N);
    fake_worker_join(&f->broker, a, EMAIL);
    static jid ids[2 * N];
    for (size_t i = 0; i < N; i++) {
        ids[i] = submit(f, "email", NULL, 0, NULL);
        assert_true(is_hex_id(ids[i].s));
    }
    RUN_UNTIL(f, f->broker.nsent == N, WAIT_MS);
    for (size_t i = 0; i < N; i++)
        assert_int_equal(fake_worker_result(&f->broker, a, ids[i].s, BR_JOB_OK, RESULT, NULL),
                         GW_JOB_SETTLE_DONE);
    /* Every one expires and is deleted; then the gateway restarts. */
    RUN_UNTIL(f, stats_of(f).held == 0, WAIT_MS);
    close_queue(f);
    fake_broker_init(&f->broker);
    open_queue(f);
    a = new_worker(f, 0);
    fake_worker_join(&f->broker, a, EMAIL);
    for (size_t i = N; i < 2 * N; i++)
        ids[i] = submit(f, "email", NULL, 0, NULL);
    for (size_t x = 0; x < 2 * N; x++)
        for (size_t y = x + 1; y < 2 * N; y++)
            assert_false(jid_eq(ids[x], ids[y]));
    /* An old status URL names nothing now. */
    assert_null(find(f, ids[0]));
}

/* ---------------------------------------------------------------------------------- */
/* Bytes (item 11).                                                                    */

static void delayed_jobs_keep_their_payload_in_the_store_until_due(void **state)
{
    fixture *f = *state;
    open_queue(f);
    gw_worker *a = new_worker(f, 1);
    fake_worker_join(&f->broker, a, EMAIL);
    static char big[4096];
    memset(big, 'x', sizeof(big));
    big[0] = (char)0xc5; /* bin16 of 4093 bytes: one msgpack value */
    big[1] = (char)(4093 >> 8);
    big[2] = (char)(4093 & 0xff);
    br_str payload = {big, sizeof(big)};
    gw_job *job = NULL;
    test_waiter w = waiter(f);
    assert_int_equal(try_submit(f, "email", payload, NULL, 150, &w, &job), 0);
    jid id = jid_of(job);
    /* Until it is durable its payload is in memory, counted. */
    assert_int_equal(stats_of(f).memory, sizeof(big));
    RUN_UNTIL(f, w.told == 1, WAIT_MS);
    assert_int_equal(job_of(f, id)->payload.len, 0);
    assert_int_equal(job_of(f, id)->payload_len, sizeof(big));
    assert_int_equal(stats_of(f).memory, 0);
    assert_int_equal(f->broker.nsent, 0);
    /* Due: read back and sent whole. */
    RUN_UNTIL(f, f->broker.nsent == 1, WAIT_MS);
    assert_int_equal(f->broker.sent[0].payload_len, sizeof(big));
    assert_memory_equal(f->broker.sent[0].payload, big, FAKE_PAYLOAD_MAX);
    /* Sent: memory keeps nothing of it. */
    assert_int_equal(stats_of(f).memory, 0);
}

static void memory_budget_refuses_payloads_past_it_and_spills_the_rest(void **state)
{
    fixture *f = *state;
    f->cfg.memory = 8 * PAYLOAD.len; /* 2 payloads being written, 4 waiting in memory */
    open_queue(f);
    gw_worker *a = new_worker(f, 0);
    fake_worker_join(&f->broker, a, EMAIL);
    test_waiter w1 = waiter(f), w2 = waiter(f);
    submit(f, "email", NULL, 0, &w1);
    submit(f, "email", NULL, 0, &w2);
    gw_job *job = NULL;
    assert_int_equal(try_submit(f, "email", PAYLOAD, NULL, 0, NULL, &job), BR_ELIMIT);
    assert_null(job);
    RUN_UNTIL(f, w1.told && w2.told, WAIT_MS);
    /* Durable, they moved to the ready half; new ones may be written again. */
    for (int i = 0; i < 6; i++) {
        test_waiter w = waiter(f);
        submit(f, "email", NULL, 0, &w);
        RUN_UNTIL(f, w.told == 1, WAIT_MS);
    }
    /* 8 due jobs, no credit: 4 payloads in memory (half the budget), 4 in the store. */
    gw_jobs_task *t = task_of(f, "email");
    assert_int_equal(t->nready, 4);
    assert_int_equal(t->nspilled, 4);
    assert_true(stats_of(f).memory <= f->cfg.memory);
    assert_int_equal(stats_of(f).ready, 8);
    /* All run, in order, as credit comes. */
    for (uint32_t i = 0; i < 8; i++) {
        fake_worker_credit(&f->broker, a, 1);
        RUN_UNTIL(f, f->broker.nsent == i + 1, WAIT_MS);
        assert_memory_equal(f->broker.sent[i].payload, PAYLOAD.ptr, PAYLOAD.len);
        assert_true(stats_of(f).memory <= f->cfg.memory);
    }
    assert_int_equal(stats_of(f).memory, 0);
}

static void task_bytes_bound_a_tasks_unfinished_payloads(void **state)
{
    fixture *f = *state;
    f->cfg.task_bytes = 2 * PAYLOAD.len;
    open_queue(f);
    gw_worker *a = new_worker(f, 1);
    fake_worker_join(&f->broker, a, (const char *const[]){"email", "resize", NULL});
    jid first = submit(f, "email", NULL, 60000, NULL); /* delayed: in the store, counted */
    submit(f, "email", NULL, 60000, NULL);
    gw_job *job = NULL;
    assert_int_equal(try_submit(f, "email", PAYLOAD, NULL, 0, NULL, &job), BR_ELIMIT);
    submit(f, "resize", NULL, 0, NULL); /* the bound is per task */
    RUN_UNTIL(f, f->broker.nsent == 1, WAIT_MS);
    /* The resize job ran; email's bytes free up when one of its jobs finishes. */
    assert_int_equal(
        fake_worker_result(&f->broker, a, f->broker.sent[0].id, BR_JOB_OK, RESULT, NULL),
        GW_JOB_SETTLE_DONE);
    assert_int_equal(try_submit(f, "email", PAYLOAD, NULL, 0, NULL, &job), BR_ELIMIT);
    (void)first;
}

/* What gw__jobs_detail_read told. */
typedef struct read_result {
    bool told;         /* the callback ran */
    int status;        /* its status */
    gw_job *job;       /* the job found again */
    char result[32];   /* the result's first bytes */
    size_t result_len; /* its length */
} read_result;

static void on_read(void *arg, gw_job *job, br_str result, br_str error, int status)
{
    (void)error;
    read_result *r = arg;
    r->told = true;
    r->status = status;
    r->job = job;
    r->result_len = result.len;
    if (result.len)
        memcpy(r->result, result.ptr,
               result.len < sizeof(r->result) ? result.len : sizeof(r->result));
}

static void results_past_their_budget_are_read_from_the_store(void **state)
{
    fixture *f = *state;
    f->cfg.memory = 16; /* results get 4 bytes */
    open_queue(f);
    gw_worker *a = new_worker(f, 1);
    fake_worker_join(&f->broker, a, EMAIL);
    br_str small = {"\x01", 1};
    gw_job *job = NULL;
    assert_int_equal(try_submit(f, "email", small, NULL, 0, NULL, &job), 0);
    jid id = jid_of(job);
    RUN_UNTIL(f, f->broker.nsent == 1, WAIT_MS);
    br_str big = {"\xa9too-large", 10};
    assert_int_equal(fake_worker_result(&f->broker, a, id.s, BR_JOB_OK, big, NULL),
                     GW_JOB_SETTLE_DONE);
    job = job_of(f, id);
    assert_true(job->detail_on_disk);
    assert_int_equal(job->result.len, 0);
    assert_int_equal(stats_of(f).memory, 0);
    read_result got = {0};
    assert_int_equal(gw__jobs_detail_read(f->jobs, job, on_read, &got), 0);
    RUN_UNTIL(f, got.told, WAIT_MS);
    assert_int_equal(got.status, 0);
    assert_ptr_equal(got.job, job);
    assert_int_equal(got.result_len, 10);
    assert_memory_equal(got.result, big.ptr, 10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
        T(attaches_its_hooks_and_routes_and_detaches_at_close),
        T(close_starts_closing_every_handle_it_opened),
        T(a_broker_without_room_fails_the_start_and_leaves_the_loop_clean),
        T(a_taken_route_fails_the_start_and_stays_its_owners),
        T(queued_job_goes_to_the_worker_with_credit_once_durable),
        T(never_sends_to_a_worker_without_credit_or_not_live),
        T(delayed_job_is_sent_when_its_time_comes),
        T(expired_lease_sends_the_job_again_and_the_late_result_only_returns_credit),
        T(late_result_frees_the_credit_that_runs_the_job_again),
        T(expired_leases_count_as_attempts_until_the_job_is_dead),
        T(cron_expressions_find_their_next_minute),
        T(malformed_cron_expressions_are_refused),
        T(progress_renews_the_lease_and_is_kept),
        T(a_task_policy_sets_priority_attempts_and_lease),
        T(cancelling_a_queued_job_ends_it_and_a_retry_runs_it),
        T(cancelling_a_running_job_asks_its_worker_and_ends_it_cancelled),
        T(retry_outcome_runs_the_job_again_after_a_bounded_backoff),
        T(fatal_outcome_makes_the_job_dead_at_once),
        T(failing_every_attempt_makes_the_job_dead_after_max_attempts),
        T(unsendable_job_is_dead_and_the_jobs_behind_it_still_go),
        T(same_idempotency_key_returns_the_same_job),
        T(different_idempotency_keys_make_different_jobs),
        T(finished_jobs_expire_after_retention_and_free_their_key),
        T(task_limit_refuses_more_unfinished_jobs_with_efull),
        T(worker_gone_gives_its_jobs_to_another_worker_at_once),
        T(worker_gone_requeues_jobs_of_every_task_it_held),
        T(jobs_survive_a_restart_and_running_ones_are_queued_again),
        T(reply_jobs_without_a_client_submits_the_jobs),
        T(a_reply_may_enqueue_only_tasks_that_exist),
        T(tasks_of_workers_that_left_retire_after_the_grace_period),
        T(tasks_recorded_in_the_store_get_a_grace_period_after_a_restart),
        T(queued_jobs_of_a_retired_task_wait_for_a_worker_of_it),
        T(readys_cannot_fill_the_task_table_for_good),
        T(tasks_are_internal_unless_their_workers_mark_them_public),
        T(idempotency_keys_are_scoped_per_task),
        T(job_ids_are_random_and_never_handed_out_again),
        T(delayed_jobs_keep_their_payload_in_the_store_until_due),
        T(memory_budget_refuses_payloads_past_it_and_spills_the_rest),
        T(task_bytes_bound_a_tasks_unfinished_payloads),
        T(results_past_their_budget_are_read_from_the_store),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
