/*
 * test_job_worker.c - the real worker running background jobs for a test broker:
 * READY announces the tasks and which of them are public, a JOB is acknowledged and
 * answered with a JOB_RESULT (OK with the result, RETRY, FATAL), an unknown task fails
 * at once, the shipped report task has no test switches, the email task's line is in
 * the outbox before its JOB_RESULT, and a handler's br_reply_add_job rides in its
 * REPLY.  The worker is barista-worker-test: barista-worker plus the test-only job
 * services (test_services.h), whose `probe` task fails on demand.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "broker_harness.h"

#define HB_MS   100
#define WAIT_MS 30000

/* msgpack {"n": 3} and {"fail": true}, {"fatal": true}, {"to": "ada@x"}. */
static const char N3[] = "\x81\xa1n\x03";
static const char FAIL[] = "\x81\xa4"
                           "fail\xc3";
static const char FATAL[] = "\x81\xa5"
                            "fatal\xc3";
static const char TO_ADA[] = "\x81\xa2to\xa5"
                             "ada@x";

static int setup_report(void **state)
{
    static harness h;
    return harness_setup(state, &h, "report", HB_MS, NULL);
}

static int setup_probe(void **state)
{
    static harness h;
    return harness_setup(state, &h, "probe", HB_MS, NULL);
}

/* The outbox of the email fixture. */
static char outbox[64];

static int setup_email(void **state)
{
    static harness h;
    snprintf(outbox, sizeof(outbox), "/tmp/barista-outbox-%ld.txt", (long)getpid());
    unlink(outbox);
    static const char *args[3];
    args[0] = "--outbox";
    args[1] = outbox;
    args[2] = NULL;
    return harness_setup(state, &h, "email", HB_MS, args);
}

static int teardown_email(void **state)
{
    unlink(outbox);
    return harness_teardown(state);
}

static int send_job(harness *h, const char *id, const char *task, const char *payload, size_t len)
{
    br_msg m = {.type = BR_MSG_JOB,
                .u.job = {.job_id = br_str_c(id),
                          .task = br_str_c(task),
                          .payload = {payload, (uint32_t)len},
                          .attempt = 1,
                          .lease_ms = 60000}};
    return harness_send(h, &m);
}

/* Expects JOB_ACK(id) then JOB_RESULT(id); returns the result (valid until the next
 * receive). */
static br_job_result expect_result(harness *h, const char *id, bool acked)
{
    br_msg m;
    if (acked) {
        assert_int_equal(harness_expect(h, BR_MSG_JOB_ACK, &m, WAIT_MS, NULL), 0);
        assert_true(br_str_eq(m.u.job_ack.job_id, id));
    }
    assert_int_equal(harness_expect(h, BR_MSG_JOB_RESULT, &m, WAIT_MS, NULL), 0);
    assert_true(br_str_eq(m.u.job_result.job_id, id));
    return m.u.job_result;
}

static void ready_announces_the_tasks(void **state)
{
    harness *h = *state;
    br_msg m;
    assert_int_equal(harness_expect(h, BR_MSG_READY, &m, WAIT_MS, NULL), 0);
    assert_int_equal(m.u.ready.kind, BR_KIND_CPU);
    assert_int_equal(m.u.ready.ntasks, 1);
    assert_true(br_str_eq(m.u.ready.tasks[0], "report"));
    /* report is public: the README's quick start POSTs /jobs/report. */
    assert_int_equal(m.u.ready.npublic_tasks, 1);
    assert_true(br_str_eq(m.u.ready.public_tasks[0], "report"));
    /* A service with tasks and no routes announces no routes. */
    assert_int_equal(m.u.ready.nservices, 1);
    assert_int_equal(m.u.ready.services[0].nroutes, 0);
}

static void job_is_acknowledged_run_and_answered_with_its_result(void **state)
{
    harness *h = *state;
    assert_int_equal(harness_register(h, "b1", NULL, NULL), 0);
    assert_int_equal(send_job(h, "42", "report", N3, sizeof(N3) - 1), 0);
    br_job_result r = expect_result(h, "42", true);
    assert_int_equal(r.outcome, BR_JOB_OK);
    assert_int_equal(r.error.len, 0);
    /* sha256("42") three times, as hashlib computes it. */
    assert_true(body_has_str(r.result, "digest",
                             "917f85f675b0c12acf5be0acb9035482ead65f9cd21da85c9c69003ee22e004f"));
}

static void task_policies_follow_the_welcome(void **state)
{
    harness *h = *state;
    assert_int_equal(harness_register(h, "b1", NULL, NULL), 0);
    br_msg m;
    assert_int_equal(harness_expect(h, BR_MSG_TASK_POLICY, &m, WAIT_MS, NULL), 0);
    /* probe declares none; probe-strict and probe-slow do. */
    assert_int_equal(m.u.task_policy.npolicies, 2);
    const br_task_policy *strict = &m.u.task_policy.policies[0];
    assert_true(br_str_eq(strict->task, "probe-strict"));
    assert_int_equal(strict->max_attempts, 1);
    assert_int_equal(strict->timeout_ms, 1000);
    assert_int_equal(strict->priority, 9);
    assert_true(br_str_eq(m.u.task_policy.policies[1].task, "probe-slow"));
    assert_true(m.u.task_policy.policies[1].rate == 4.0);
}

static void failing_jobs_report_retry_or_fatal(void **state)
{
    harness *h = *state;
    assert_int_equal(harness_register(h, "b1", NULL, NULL), 0);
    assert_int_equal(send_job(h, "1", "probe", FAIL, sizeof(FAIL) - 1), 0);
    br_job_result r = expect_result(h, "1", true);
    assert_int_equal(r.outcome, BR_JOB_RETRY);
    assert_true(br_str_eq(r.error, "asked to fail"));
    assert_int_equal(send_job(h, "2", "probe", FATAL, sizeof(FATAL) - 1), 0);
    r = expect_result(h, "2", true);
    assert_int_equal(r.outcome, BR_JOB_FATAL);
    assert_true(br_str_eq(r.error, "asked to fail for good"));
}

/* The shipped report task is public, so it must not obey test switches a client
 * could use to fail jobs or tie up CPU workers (issue 13, item 15). */
static void report_has_no_test_switches(void **state)
{
    harness *h = *state;
    assert_int_equal(harness_register(h, "b1", NULL, NULL), 0);
    assert_int_equal(send_job(h, "3", "report", FAIL, sizeof(FAIL) - 1), 0);
    br_job_result r = expect_result(h, "3", true);
    assert_int_equal(r.outcome, BR_JOB_OK);
    assert_int_equal(send_job(h, "4", "report", FATAL, sizeof(FATAL) - 1), 0);
    r = expect_result(h, "4", true);
    assert_int_equal(r.outcome, BR_JOB_OK);
}

/* email is internal: only signup enqueues it. */
static void email_is_announced_internal(void **state)
{
    harness *h = *state;
    br_msg m;
    assert_int_equal(harness_expect(h, BR_MSG_READY, &m, WAIT_MS, NULL), 0);
    assert_int_equal(m.u.ready.ntasks, 1);
    assert_true(br_str_eq(m.u.ready.tasks[0], "email"));
    assert_int_equal(m.u.ready.npublic_tasks, 0);
}

static void unknown_task_fails_for_good_at_once(void **state)
{
    harness *h = *state;
    assert_int_equal(harness_register(h, "b1", NULL, NULL), 0);
    assert_int_equal(send_job(h, "7", "no-such-task", N3, sizeof(N3) - 1), 0);
    br_job_result r = expect_result(h, "7", false);
    assert_int_equal(r.outcome, BR_JOB_FATAL);
}

static void email_line_is_in_the_outbox_before_the_result(void **state)
{
    harness *h = *state;
    assert_int_equal(harness_register(h, "b1", NULL, NULL), 0);
    assert_int_equal(send_job(h, "9", "email", TO_ADA, sizeof(TO_ADA) - 1), 0);
    br_job_result r = expect_result(h, "9", true);
    assert_int_equal(r.outcome, BR_JOB_OK);
    FILE *f = fopen(outbox, "r");
    assert_non_null(f);
    char line[64] = "";
    assert_non_null(fgets(line, sizeof(line), f));
    fclose(f);
    assert_string_equal(line, "9 ada@x\n");
}

static int setup_signup(void **state)
{
    static harness h;
    return harness_setup(state, &h, "signup", HB_MS, NULL);
}

static void reply_carries_the_jobs_a_handler_added(void **state)
{
    harness *h = *state;
    assert_int_equal(harness_register(h, "b1", NULL, NULL), 0);
    static const char body[] = "\x81\xa5"
                               "email\xa5"
                               "ada@x";
    br_msg m = {.type = BR_MSG_REQUEST,
                .u.request = {.id = 5,
                              .service = br_str_c("signup"),
                              .route = br_str_c("/signup"),
                              .method = br_str_c("POST"),
                              .path = br_str_c("/signup"),
                              .content_type = br_str_c("application/msgpack"),
                              .body = {body, sizeof(body) - 1},
                              .deadline_ms = 5000}};
    assert_int_equal(harness_send(h, &m), 0);
    br_reply r;
    assert_int_equal(harness_expect_reply(h, 5, &r, WAIT_MS, NULL), 0);
    assert_int_equal(r.status, 201);
    assert_true(body_has_str(r.body, "email", "ada@x"));
    assert_int_equal(r.njobs, 1);
    assert_true(br_str_eq(r.jobs[0].task, "email"));
    assert_true(body_has_str(r.jobs[0].payload, "to", "ada@x"));
    assert_int_equal(r.jobs[0].idempotency_key.len, 0);
    assert_int_equal(r.jobs[0].delay_ms, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(ready_announces_the_tasks, setup_report, harness_teardown),
        cmocka_unit_test_setup_teardown(job_is_acknowledged_run_and_answered_with_its_result,
                                        setup_report, harness_teardown),
        cmocka_unit_test_setup_teardown(task_policies_follow_the_welcome, setup_probe,
                                        harness_teardown),
        cmocka_unit_test_setup_teardown(failing_jobs_report_retry_or_fatal, setup_probe,
                                        harness_teardown),
        cmocka_unit_test_setup_teardown(report_has_no_test_switches, setup_report,
                                        harness_teardown),
        cmocka_unit_test_setup_teardown(email_is_announced_internal, setup_email, teardown_email),
        cmocka_unit_test_setup_teardown(unknown_task_fails_for_good_at_once, setup_report,
                                        harness_teardown),
        cmocka_unit_test_setup_teardown(email_line_is_in_the_outbox_before_the_result, setup_email,
                                        teardown_email),
        cmocka_unit_test_setup_teardown(reply_carries_the_jobs_a_handler_added, setup_signup,
                                        harness_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
