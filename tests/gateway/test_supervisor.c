/*
 * test_supervisor.c - local mode's supervisor, with real child processes.
 *
 * Every test runs its own loop; the teardown stops the supervisor with SIGKILL and
 * closes the loop, so no child outlives a failing test.  Children that must be running
 * a while use "exec sleep 30" so that the signalled pid is the sleeper itself.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "barista/proto.h"
#include "supervisor.h"

/* Generous bound on any wait; each normally takes well under two seconds. */
#define WAIT_LIMIT_MS 8000

typedef struct fixture {
    uv_loop_t loop;
    gw_supervisor *sup;
    char path[64]; /* a temporary file children write into */
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f || uv_loop_init(&f->loop) != 0)
        return -1;
    f->sup = gw_supervisor_new(&f->loop);
    if (!f->sup)
        return -1;
    snprintf(f->path, sizeof f->path, "/tmp/barista-sup-XXXXXX");
    int fd = mkstemp(f->path);
    if (fd < 0)
        return -1;
    close(fd);
    *state = f;
    return 0;
}

/* ---------------------------------------------------------------------------------- */
/* Waiting on the loop.                                                                */

typedef bool (*cond_fn)(fixture *f, void *arg);

/* A poll timer evaluating a condition; lives on the waiting function's stack. */
typedef struct waiter {
    uv_timer_t timer;
    fixture *f;
    cond_fn cond;
    void *arg;
    bool met;
} waiter;

static void on_poll(uv_timer_t *timer)
{
    waiter *w = timer->data;
    if (!w->met && w->cond(w->f, w->arg))
        w->met = true;
}

/* Runs the loop until cond holds (checked every 5 ms) or WAIT_LIMIT_MS pass. */
static bool run_until(fixture *f, cond_fn cond, void *arg)
{
    waiter w = {.f = f, .cond = cond, .arg = arg};
    uv_timer_init(&f->loop, &w.timer);
    w.timer.data = &w;
    uv_timer_start(&w.timer, on_poll, 0, 5);
    uv_update_time(&f->loop);
    uint64_t deadline = uv_now(&f->loop) + WAIT_LIMIT_MS;
    while (!w.met && uv_now(&f->loop) < deadline)
        uv_run(&f->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&w.timer, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    return w.met;
}

static void on_stopped(void *arg)
{
    *(bool *)arg = true;
}

static bool flag_set(fixture *f, void *arg)
{
    (void)f;
    return *(bool *)arg;
}

/* Stops the supervisor, waits for done, destroys it and closes the loop cleanly. */
static bool stop_and_close(fixture *f, uint64_t grace_ms)
{
    bool done = false;
    gw_supervisor_shutdown(f->sup, grace_ms, on_stopped, &done);
    bool ok = run_until(f, flag_set, &done);
    if (ok)
        gw_supervisor_destroy(&f->sup);
    return ok && uv_run(&f->loop, UV_RUN_DEFAULT) == 0 && uv_loop_close(&f->loop) == 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    int rc = 0;
    if (f->sup && !stop_and_close(f, 0))
        rc = -1;
    unlink(f->path);
    free(f);
    return rc;
}

static gw_supervisor_proc_info info_of(fixture *f, unsigned index)
{
    gw_supervisor_proc_info info;
    assert_int_equal(gw_supervisor_proc_get(f->sup, index, &info), 0);
    return info;
}

static bool file_has_content(fixture *f, void *arg)
{
    (void)arg;
    FILE *fp = fopen(f->path, "r");
    if (!fp)
        return false;
    int c = fgetc(fp);
    fclose(fp);
    return c != EOF;
}

/* ---------------------------------------------------------------------------------- */

static const char *const sleeper[] = {"/bin/sh", "-c", "exec sleep 30", NULL};

static void spawns_count_processes_and_stops_them(void **state)
{
    fixture *f = *state;
    assert_int_equal(gw_supervisor_add(f->sup, "io-worker", sleeper, NULL, 3), 0);
    gw_supervisor_stats stats;
    gw_supervisor_stats_get(f->sup, &stats);
    assert_int_equal(stats.running, 3);
    assert_int_equal(stats.restarts, 0);
    assert_int_equal(gw_supervisor_count(f->sup), 3);
    int pids[3];
    for (unsigned i = 0; i < 3; i++) {
        gw_supervisor_proc_info info = info_of(f, i);
        assert_true(info.running);
        assert_string_equal(info.label, "io-worker");
        pids[i] = info.pid;
        assert_true(pids[i] > 0);
        assert_int_equal(kill(pids[i], 0), 0);
    }
    assert_true(pids[0] != pids[1] && pids[1] != pids[2] && pids[0] != pids[2]);
    gw_supervisor_proc_info none;
    assert_int_equal(gw_supervisor_proc_get(f->sup, 3, &none), BR_ENOTFOUND);

    bool done = false;
    gw_supervisor_shutdown(f->sup, 5000, on_stopped, &done);
    assert_false(done); /* never from inside stop */
    assert_true(run_until(f, flag_set, &done));
    gw_supervisor_stats_get(f->sup, &stats);
    assert_int_equal(stats.running, 0);
    assert_int_equal(stats.restarts, 0);
    for (unsigned i = 0; i < 3; i++)
        assert_int_equal(info_of(f, i).term_signal, SIGTERM);
    gw_supervisor_destroy(&f->sup);
    gw_supervisor_destroy(&f->sup);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&f->loop), 0);
}

static bool restarted_twice(fixture *f, void *arg)
{
    (void)arg;
    gw_supervisor_stats stats;
    gw_supervisor_stats_get(f->sup, &stats);
    return stats.restarts >= 2;
}

static void restarts_a_process_that_exits(void **state)
{
    fixture *f = *state;
    const char *const argv[] = {"/bin/true", NULL};
    assert_int_equal(gw_supervisor_add(f->sup, "io-worker", argv, NULL, 1), 0);
    int first_pid = info_of(f, 0).pid;
    assert_true(run_until(f, restarted_twice, NULL));
    gw_supervisor_proc_info info = info_of(f, 0);
    assert_true(info.pid != first_pid);
    assert_int_equal(info.exit_status, 0);
    assert_true(stop_and_close(f, 1000));
}

/* Collects each new restart delay until `want` of them are seen. */
typedef struct delays {
    uint64_t seen[8];
    size_t n, want;
} delays;

static bool collected_delays(fixture *f, void *arg)
{
    delays *d = arg;
    gw_supervisor_proc_info info;
    gw_supervisor_proc_get(f->sup, 0, &info);
    if (info.last_delay_ms != 0 && (d->n == 0 || d->seen[d->n - 1] != info.last_delay_ms))
        d->seen[d->n++] = info.last_delay_ms;
    return d->n >= d->want;
}

static void backoff_doubles_while_a_process_keeps_failing(void **state)
{
    fixture *f = *state;
    const char *const argv[] = {"/bin/false", NULL};
    assert_int_equal(gw_supervisor_add(f->sup, "cpu-worker", argv, NULL, 1), 0);
    delays d = {.want = 4};
    assert_true(run_until(f, collected_delays, &d));
    assert_int_equal(d.seen[0], 100);
    assert_int_equal(d.seen[1], 200);
    assert_int_equal(d.seen[2], 400);
    assert_int_equal(d.seen[3], 800);
    assert_int_equal(info_of(f, 0).exit_status, 1);
    assert_true(stop_and_close(f, 1000));
}

static bool crash_looping(fixture *f, void *arg)
{
    (void)arg;
    gw_supervisor_stats stats;
    gw_supervisor_stats_get(f->sup, &stats);
    return stats.crash_looping > 0;
}

static void five_quick_exits_mark_a_crash_loop(void **state)
{
    fixture *f = *state;
    const char *const failing[] = {"/bin/false", NULL};
    assert_int_equal(gw_supervisor_add(f->sup, "cpu-worker", failing, NULL, 1), 0);
    assert_int_equal(gw_supervisor_add(f->sup, "io-worker", sleeper, NULL, 1), 0);
    assert_true(run_until(f, crash_looping, NULL));
    gw_supervisor_stats stats;
    gw_supervisor_stats_get(f->sup, &stats);
    assert_int_equal(stats.crash_looping, 1);
    assert_int_equal(stats.restarts, 4); /* exits 1-4 were restarted; the 5th waits 10 s */
    gw_supervisor_proc_info info = info_of(f, 0);
    assert_true(info.crash_looping);
    assert_int_equal(info.last_delay_ms, GW_SUPERVISOR_BACKOFF_MAX_MS);
    assert_false(info_of(f, 1).crash_looping);
    assert_true(info_of(f, 1).running);
    assert_true(stop_and_close(f, 1000));
}

static void stop_kills_a_process_that_ignores_sigterm(void **state)
{
    fixture *f = *state;
    /* The child marks the file once its trap is set, so SIGTERM cannot come too early. */
    const char *const stubborn[] = {"/bin/sh", "-c",
                                    "trap '' TERM; echo up > \"$0\"; exec sleep 30", f->path, NULL};
    assert_int_equal(gw_supervisor_add(f->sup, "cpu-worker", stubborn, NULL, 1), 0);
    assert_int_equal(gw_supervisor_add(f->sup, "io-worker", sleeper, NULL, 1), 0);
    assert_true(run_until(f, file_has_content, NULL));
    bool done = false;
    gw_supervisor_shutdown(f->sup, 200, on_stopped, &done);
    assert_true(run_until(f, flag_set, &done));
    assert_int_equal(info_of(f, 0).term_signal, SIGKILL);
    assert_int_equal(info_of(f, 1).term_signal, SIGTERM);
    gw_supervisor_stats stats;
    gw_supervisor_stats_get(f->sup, &stats);
    assert_int_equal(stats.running, 0);
    assert_int_equal(stats.restarts, 0);
    gw_supervisor_destroy(&f->sup);
    assert_int_equal(uv_loop_close(&f->loop), 0);
}

static void children_get_extra_environment(void **state)
{
    fixture *f = *state;
    const char *const argv[] = {"/bin/sh", "-c",
                                "printf '%s,%s' \"$BARISTA_TEST_VAR\" \"${PATH:+path}\" > \"$0\"; "
                                "exec sleep 30",
                                f->path, NULL};
    const char *const env[] = {"BARISTA_TEST_VAR=hello", NULL};
    assert_int_equal(gw_supervisor_add(f->sup, "io-worker", argv, env, 1), 0);
    assert_true(run_until(f, file_has_content, NULL));
    char text[32] = "";
    FILE *fp = fopen(f->path, "r");
    assert_non_null(fp);
    assert_non_null(fgets(text, sizeof text, fp));
    fclose(fp);
    assert_string_equal(text, "hello,path");
    assert_true(stop_and_close(f, 1000));
}

static void add_reports_a_failed_spawn_and_never_restarts_it(void **state)
{
    fixture *f = *state;
    const char *const argv[] = {"/nonexistent/barista-worker", NULL};
    assert_int_equal(gw_supervisor_add(f->sup, "io-worker", argv, NULL, 2), BR_EIO);
    assert_int_equal(gw_supervisor_count(f->sup), 1);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    gw_supervisor_stats stats;
    gw_supervisor_stats_get(f->sup, &stats);
    assert_int_equal(stats.running, 0);
    assert_int_equal(stats.restarts, 0);
    assert_int_equal(info_of(f, 0).exit_status, -1);
    assert_true(stop_and_close(f, 1000));
}

static void stop_with_nothing_added_completes_on_the_loop(void **state)
{
    fixture *f = *state;
    assert_true(stop_and_close(f, 1000));
    /* A supervisor that never started needs no stop at all. */
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    gw_supervisor *sup = gw_supervisor_new(&loop);
    assert_non_null(sup);
    gw_supervisor_destroy(&sup);
    assert_null(sup);
    gw_supervisor_destroy(NULL);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void add_after_stop_is_refused(void **state)
{
    fixture *f = *state;
    bool done = false;
    gw_supervisor_shutdown(f->sup, 1000, on_stopped, &done);
    assert_int_equal(gw_supervisor_add(f->sup, "io-worker", sleeper, NULL, 1), BR_EINVAL);
    assert_true(run_until(f, flag_set, &done));
    gw_supervisor_destroy(&f->sup);
    assert_int_equal(uv_loop_close(&f->loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(spawns_count_processes_and_stops_them, setup, teardown),
        cmocka_unit_test_setup_teardown(restarts_a_process_that_exits, setup, teardown),
        cmocka_unit_test_setup_teardown(backoff_doubles_while_a_process_keeps_failing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(five_quick_exits_mark_a_crash_loop, setup, teardown),
        cmocka_unit_test_setup_teardown(stop_kills_a_process_that_ignores_sigterm, setup, teardown),
        cmocka_unit_test_setup_teardown(children_get_extra_environment, setup, teardown),
        cmocka_unit_test_setup_teardown(add_reports_a_failed_spawn_and_never_restarts_it, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(stop_with_nothing_added_completes_on_the_loop, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(add_after_stop_is_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
