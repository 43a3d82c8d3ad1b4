/*
 * test_cli.c - the worker command line of br_worker_main, through barista-worker: --list
 * and --help (the services' options included), the one-line reason and exit code 2 for
 * every refusal, flags winning over environment variables; and a service whose init
 * fails (barista-worker-test's `life`): exit 1 with the reason, never connecting.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "broker_harness.h"

#define OUT_MAX 4096

static int run(const char *const *args, char *out)
{
    int code = -1;
    assert_int_equal(harness_run(args, out, OUT_MAX, &code), 0);
    return code;
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static void list_prints_each_service_with_kind_and_routes(void **state)
{
    (void)state;
    char out[OUT_MAX];
    static const char *const args[] = {"--list", NULL};
    assert_int_equal(run(args, out), 0);
    assert_int_equal(count_lines(out), 14);
    assert_non_null(strstr(out, "chat     io   GET /ws/echo, GET /chat/{room}\n"));
    assert_non_null(strstr(out, "hello    io   GET /hello, GET /hello/{name}\n"));
    assert_non_null(strstr(out, "sleep    io   GET /sleep\n"));
    assert_non_null(strstr(out, "echo     io   POST /echo\n"));
    assert_non_null(strstr(out, "hash     cpu  GET /hash\n"));
    assert_non_null(strstr(out, "signup   io   POST /signup\n"));
    assert_non_null(strstr(out, "email    io   task email\n"));
    assert_non_null(strstr(out, "report   cpu  task report\n"));
    assert_non_null(strstr(out, "dashboard io   GET /dashboard\n"));
    assert_non_null(strstr(out, "fetch    io   GET /fetch\n"));
    assert_non_null(
        strstr(out, "counter  io   POST /counters/{id}/increment, GET /counters/{id}, POST "
                    "/counter-calls/{id}, POST /tickers/{id}/timers/{name}, DELETE "
                    "/tickers/{id}/timers/{name}, POST /tickers/{id}/reminders/{name}, DELETE "
                    "/tickers/{id}/reminders/{name}, GET /tickers/{id}\n"));
    assert_non_null(strstr(out, "clock    io   GET /clock, GET /clock/lines, GET /clock/stats\n"));
    assert_non_null(strstr(out, "upload   io   POST /upload/hash, POST /upload/form\n"));
    assert_non_null(
        strstr(out, "relay    io   GET /relay/gather, GET /relay/lines, GET /relay/summary\n"));
}

static void help_exits_0_with_usage(void **state)
{
    (void)state;
    char out[OUT_MAX];
    static const char *const args[] = {"--help", NULL};
    assert_int_equal(run(args, out), 0);
    assert_non_null(strstr(out, "usage: barista-worker"));
    assert_non_null(strstr(out, "--drain-timeout-ms"));
    assert_non_null(strstr(out, "--max-requests N"));
    /* Services' own options are listed with their service, variable and default. */
    assert_non_null(strstr(out, "Service options:"));
    assert_non_null(strstr(out, "--outbox VALUE"));
    assert_non_null(strstr(out, "email: the file the email task appends to (BARISTA_OUTBOX,"));
    assert_non_null(strstr(out, "--upstream-url VALUE"));
}

static void a_failing_init_exits_1_with_its_reason_before_connecting(void **state)
{
    (void)state;
    char out[OUT_MAX];
    int code = -1;
    static const char *const args[] = {
        "--services", "life", "--life-fail", "no database", "--connect", "tcp://127.0.0.1:1", NULL};
    assert_int_equal(harness_run_program(BARISTA_WORKER_TEST_BIN, args, out, OUT_MAX, &code), 0);
    assert_int_equal(code, 1);
    assert_non_null(strstr(out, "service life: init failed: no database"));
    assert_null(strstr(out, "connecting to"));
    assert_null(strstr(out, "life: fini"));
}

static void refusals_exit_2_with_one_line(void **state)
{
    (void)state;
    static const struct {
        const char *args[6];
        const char *says;
    } cases[] = {
        {{"--services", "hello", "--bogus", NULL}, "--bogus"},
        {{"--services", "nope", NULL}, "unknown service 'nope'"},
        {{"--services", "hello,hash", NULL}, "hello (io) and hash (cpu)"},
        {{"--services", "hello,hello", NULL}, "listed twice"},
        {{"--services", "hello", "--concurrency", "0", NULL}, "--concurrency: 0"},
        {{"--services", "hello", "--heartbeat-ms", "1x", NULL}, "--heartbeat-ms: 1x"},
        {{"--services", "hello", "--resolve-ms", "99", NULL}, "--resolve-ms: 99"},
        {{"--services", "hash", "--nice", "20", NULL}, "--nice: 20"},
        {{"--services", "hash", "--cpus", "3-1", NULL}, "--cpus: 3-1"},
        {{"--services", "hash", "--cpus", "4096", NULL}, "CPU 4096 is past"},
        {{"--services", "hash", "--cpus", "1023", NULL}, "--cpus names no CPU"},
        {{"--services", "hello", "--connect", "http://x", NULL}, "--connect"},
        {{"--services", "hello", "stray", NULL}, "unexpected argument: stray"},
        {{"--connect", "tcp://127.0.0.1:1", NULL}, "--services is required"},
        {{"--services", NULL}, "--services"},
        {{"--services", "fetch", "--upstream-url", "ftp://x", NULL}, "--upstream-url: ftp://x"},
        {{"--services", "hello", "--max-requests", "-1", NULL}, "--max-requests: -1"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char out[OUT_MAX];
        assert_int_equal(run(cases[i].args, out), 2);
        assert_int_equal(count_lines(out), 1);
        assert_non_null(strstr(out, cases[i].says));
    }
}

static void environment_fills_in_and_flags_win(void **state)
{
    (void)state;
    char out[OUT_MAX];
    static const char *const bad_env[] = {"--services", "hello", NULL};
    assert_int_equal(setenv("BARISTA_CONCURRENCY", "abc", 1), 0);
    assert_int_equal(run(bad_env, out), 2);
    assert_non_null(strstr(out, "BARISTA_CONCURRENCY: abc"));

    /* The flag wins over the variable, even a bad one; BARISTA_SERVICES is ignored
     * because --services is given; BARISTA_WORKER_ID fills in. */
    assert_int_equal(setenv("BARISTA_SERVICES", "nope", 1), 0);
    assert_int_equal(setenv("BARISTA_WORKER_ID", "from-env", 1), 0);
    harness h;
    static const char *const args[] = {"--concurrency", "77", NULL};
    assert_int_equal(harness_start(&h, "echo", 100, args), 0);
    br_msg m;
    int rc = harness_expect(&h, BR_MSG_READY, &m, 10000, NULL);
    bool ok = rc == 0 && m.u.ready.capacity == 77 && m.u.ready.nservices == 1 &&
              br_str_eq(m.u.ready.services[0].name, "echo") &&
              br_str_eq(m.u.ready.worker_id, "from-env");
    harness_stop(&h);
    unsetenv("BARISTA_CONCURRENCY");
    unsetenv("BARISTA_SERVICES");
    unsetenv("BARISTA_WORKER_ID");
    assert_true(ok);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(list_prints_each_service_with_kind_and_routes),
        cmocka_unit_test(help_exits_0_with_usage),
        cmocka_unit_test(a_failing_init_exits_1_with_its_reason_before_connecting),
        cmocka_unit_test(refusals_exit_2_with_one_line),
        cmocka_unit_test(environment_fills_in_and_flags_win),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
