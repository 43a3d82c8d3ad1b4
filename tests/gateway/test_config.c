/*
 * test_config.c - the gateway's options: defaults, environment, flags, units and
 * refusals.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "barista/proto.h"
#include "config.h"
#include "log.h"

/* Every variable a test may set, cleared before and after each test. */
static const char *const envs[] = {"BARISTA_LISTEN",
                                   "BARISTA_MAX_BODY_BYTES",
                                   "BARISTA_HEADER_TIMEOUT",
                                   "BARISTA_MAX_PIPELINE",
                                   "BARISTA_CURVE_SECRET_KEY_FILE",
                                   "BARISTA_CURVE_AUTHORIZED_KEYS",
                                   "BARISTA_CURVE_WATCH",
                                   "BARISTA_LOG_LEVEL",
                                   "BARISTA_LOG_FORMAT",
                                   "BARISTA_BROKER",
                                   "BARISTA_INSECURE_BROKER",
                                   "BARISTA_LOCAL",
                                   "BARISTA_PROCESSES"};

static int clear_env(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(envs) / sizeof(envs[0]); i++)
        unsetenv(envs[i]);
    return 0;
}

/* Loads argv (NULL-terminated, program name first) with errors to a scratch file. */
static gw_config_result load(gw_config *cfg, const char **argv)
{
    int argc = 0;
    while (argv[argc])
        argc++;
    FILE *err = tmpfile();
    assert_non_null(err);
    gw_config_result r = gw__config_load(cfg, argc, (char **)argv, err);
    fclose(err);
    return r;
}

/* Like load(), keeping what was written to `err` in buf. */
static gw_config_result load_err(gw_config *cfg, const char **argv, char *buf, size_t cap)
{
    int argc = 0;
    while (argv[argc])
        argc++;
    FILE *err = tmpfile();
    assert_non_null(err);
    gw_config_result r = gw__config_load(cfg, argc, (char **)argv, err);
    rewind(err);
    size_t n = fread(buf, 1, cap - 1, err);
    buf[n] = '\0';
    fclose(err);
    return r;
}

static size_t count_lines(const char *text)
{
    size_t n = 0;
    for (; *text; text++)
        n += *text == '\n';
    return n;
}

static void defaults_are_the_documented_ones(void **state)
{
    gw_config cfg;
    const char *argv[] = {"gw", NULL};
    assert_int_equal(load(&cfg, argv), GW_CONFIG_RUN);
    gw_http_config d;
    gw_http_config_defaults(&d);
    assert_string_equal(cfg.listen, "0.0.0.0:8000");
    const struct sockaddr_in *sin = (const struct sockaddr_in *)&cfg.listen_addr;
    assert_int_equal(sin->sin_family, AF_INET);
    assert_int_equal(ntohs(sin->sin_port), 8000);
    assert_int_equal(cfg.http.max_url_bytes, d.max_url_bytes);
    assert_int_equal(cfg.http.max_url_bytes, 8192);
    assert_int_equal(cfg.http.max_header_bytes, 32 * 1024);
    assert_int_equal(cfg.http.max_headers, 100);
    assert_int_equal(cfg.http.max_body_bytes, 1024 * 1024);
    assert_int_equal(cfg.http.header_timeout_ms, 10000);
    assert_int_equal(cfg.http.body_timeout_ms, 30000);
    assert_int_equal(cfg.http.keepalive_timeout_ms, 60000);
    assert_int_equal(cfg.http.send_timeout_ms, 60000);
    assert_int_equal(cfg.http.max_connections, 16384);
    assert_int_equal(cfg.http.max_pipeline, 32);
    assert_int_equal(cfg.http.max_output_bytes, 1024 * 1024);
    assert_int_equal(cfg.shutdown_timeout_ms, 10000);
    assert_int_equal(cfg.log_level, GW_LOG_INFO);
    assert_int_equal(cfg.log_json, 0);
}

static void defaults_come_from_the_subsystems(void **state)
{
    gw_config cfg;
    const char *argv[] = {"gw", NULL};
    assert_int_equal(load(&cfg, argv), GW_CONFIG_RUN);
    gw_http_config h;
    gw_http_config_defaults(&h);
    gw_broker_config b;
    gw_broker_config_defaults(&b);
    gw_jobs_config j;
    gw_jobs_config_defaults(&j);
    assert_int_equal(cfg.http.max_header_bytes, h.max_header_bytes);
    assert_int_equal(cfg.http.max_output_bytes, h.max_output_bytes);
    assert_int_equal(cfg.http.backlog, h.backlog);
    assert_string_equal(b.endpoint, "tcp://127.0.0.1:5555");
    assert_string_equal(cfg.broker_endpoint, b.endpoint); /* "auto" outside local mode */
    assert_int_equal(cfg.broker.max_worker_credit, b.max_worker_credit);
    assert_int_equal(cfg.broker.max_worker_bytes, b.max_worker_bytes);
    assert_int_equal(cfg.broker.service_max_pending, b.service_max_pending);
    assert_int_equal(cfg.broker.cancel_grace_ms, b.cancel_grace_ms);
    assert_int_equal(cfg.broker.service_grace_ms, b.service_grace_ms);
    assert_int_equal(cfg.worker_header, b.worker_header);
    assert_false(b.worker_header);
    assert_int_equal(cfg.broker.heartbeat_ms, b.heartbeat_ms);
    assert_int_equal(cfg.broker.max_timeout_ms, b.max_timeout_ms);
    assert_int_equal(cfg.broker.max_workers, b.max_workers);
    assert_int_equal(cfg.broker.retry_min_budget_ms, b.retry_min_budget_ms);
    assert_int_equal(cfg.broker.limits.max_pairs, b.limits.max_pairs);
    assert_int_equal(cfg.broker_retry, b.retry_idempotent);
    assert_string_equal(cfg.jobs_db, j.db);
    assert_int_equal(cfg.jobs.fsync, j.fsync);
    assert_int_equal(cfg.jobs.retention_ms, j.retention_ms);
    assert_int_equal(cfg.jobs.task_limit, j.task_limit);
    assert_int_equal(cfg.jobs.memory, j.memory);
    assert_int_equal(cfg.jobs.task_bytes, j.task_bytes);
    assert_int_equal(cfg.jobs.task_grace_ms, j.task_grace_ms);
}

static void job_byte_limits_and_grace_are_options(void **state)
{
    gw_config cfg;
    const char *flags[] = {"gw", "--jobs-memory",     "64m", "--jobs-task-bytes",
                           "2m", "--jobs-task-grace", "5s",  NULL};
    assert_int_equal(load(&cfg, flags), GW_CONFIG_RUN);
    assert_int_equal(cfg.jobs.memory, 64u * 1024 * 1024);
    assert_int_equal(cfg.jobs.task_bytes, 2u * 1024 * 1024);
    assert_int_equal(cfg.jobs.task_grace_ms, 5000);
    /* The memory budget must hold a largest payload in its quarter for new jobs. */
    char err[512];
    const char *small[] = {"gw", "--jobs-memory", "8m", NULL};
    assert_int_equal(load_err(&cfg, small, err, sizeof(err)), GW_CONFIG_BAD);
    assert_non_null(strstr(err, "--jobs-memory"));
}

static void log_level_and_format_are_options(void **state)
{
    gw_config cfg;
    const char *flags[] = {"gw", "--log-level", "warn", "--log-format=json", NULL};
    assert_int_equal(load(&cfg, flags), GW_CONFIG_RUN);
    assert_int_equal(cfg.log_level, GW_LOG_WARN);
    assert_int_equal(cfg.log_json, 1);
    setenv("BARISTA_LOG_LEVEL", "debug", 1);
    setenv("BARISTA_LOG_FORMAT", "json", 1);
    const char *none[] = {"gw", NULL};
    assert_int_equal(load(&cfg, none), GW_CONFIG_RUN);
    assert_int_equal(cfg.log_level, GW_LOG_DEBUG);
    assert_int_equal(cfg.log_json, 1);
    const char *back[] = {"gw", "--log-level=error", "--log-format", "text", NULL};
    assert_int_equal(load(&cfg, back), GW_CONFIG_RUN);
    assert_int_equal(cfg.log_level, GW_LOG_ERROR);
    assert_int_equal(cfg.log_json, 0);
}

static void refuses_bad_log_options_with_one_line(void **state)
{
    char err[512];
    gw_config cfg;
    const char *level[] = {"gw", "--log-level", "warning", NULL};
    assert_int_equal(load_err(&cfg, level, err, sizeof(err)), GW_CONFIG_BAD);
    assert_non_null(strstr(err, "--log-level"));
    assert_non_null(strstr(err, "want debug, info, warn or error"));
    assert_int_equal(count_lines(err), 1);
    const char *format[] = {"gw", "--log-format", "xml", NULL};
    assert_int_equal(load_err(&cfg, format, err, sizeof(err)), GW_CONFIG_BAD);
    assert_non_null(strstr(err, "want text or json"));
    setenv("BARISTA_LOG_LEVEL", "", 1);
    const char *none[] = {"gw", NULL};
    assert_int_equal(load_err(&cfg, none, err, sizeof(err)), GW_CONFIG_BAD);
    assert_non_null(strstr(err, "BARISTA_LOG_LEVEL"));
}

static void help_shows_each_default_as_it_is_given(void **state)
{
    FILE *out = tmpfile();
    assert_non_null(out);
    gw__config_usage(out);
    rewind(out);
    char text[16384];
    size_t n = fread(text, 1, sizeof(text) - 1, out);
    text[n] = '\0';
    fclose(out);
    assert_non_null(strstr(text, "default 0.0.0.0:8000; env BARISTA_LISTEN"));
    assert_non_null(strstr(text, "default 8k; env BARISTA_MAX_URL_BYTES"));
    assert_non_null(strstr(text, "default 1m; env BARISTA_MAX_BODY_BYTES"));
    assert_non_null(strstr(text, "default 86400s; env BARISTA_JOBS_RETENTION"));
    assert_non_null(strstr(text, "default auto; env BARISTA_BROKER"));
    assert_non_null(strstr(text, "default 0; env BARISTA_INSECURE_BROKER"));
    assert_non_null(strstr(text, "default 16384; env BARISTA_MAX_WORKER_CREDIT"));
    assert_non_null(strstr(text, "default 32m; env BARISTA_MAX_WORKER_BYTES"));
    assert_non_null(strstr(text, "default 25000; env BARISTA_SERVICE_MAX_PENDING"));
    assert_non_null(strstr(text, "default 10s; env BARISTA_CANCEL_GRACE"));
    assert_non_null(strstr(text, "default 60s; env BARISTA_SERVICE_GRACE"));
    assert_non_null(strstr(text, "default 0; env BARISTA_WORKER_HEADER"));
    assert_non_null(strstr(text, "default none; env BARISTA_CURVE_SECRET_KEY_FILE"));
    assert_non_null(strstr(text, "default info; env BARISTA_LOG_LEVEL"));
    assert_non_null(strstr(text, "default text; env BARISTA_LOG_FORMAT"));
}

static void units_scale_sizes_and_durations(void **state)
{
    gw_config cfg;
    const char *argv[] = {
        "gw",    "--max-body-bytes", "2m", "--max-header-bytes=16k", "--header-timeout",
        "250ms", "--body-timeout",   "2",  "--keepalive-timeout",    "1m",
        NULL};
    assert_int_equal(load(&cfg, argv), GW_CONFIG_RUN);
    assert_int_equal(cfg.http.max_body_bytes, 2 * 1024 * 1024);
    assert_int_equal(cfg.http.max_header_bytes, 16 * 1024);
    assert_int_equal(cfg.http.header_timeout_ms, 250);
    assert_int_equal(cfg.http.body_timeout_ms, 2000);
    assert_int_equal(cfg.http.keepalive_timeout_ms, 60000);
}

static void environment_sets_and_flag_wins(void **state)
{
    gw_config cfg;
    setenv("BARISTA_MAX_BODY_BYTES", "4k", 1);
    setenv("BARISTA_MAX_PIPELINE", "7", 1);
    const char *argv[] = {"gw", "--max-pipeline", "9", NULL};
    assert_int_equal(load(&cfg, argv), GW_CONFIG_RUN);
    assert_int_equal(cfg.http.max_body_bytes, 4096);
    assert_int_equal(cfg.http.max_pipeline, 9);
    clear_env(NULL);
}

static void refuses_bad_values_and_unknown_options(void **state)
{
    const char *bad[][4] = {
        {"gw", "--max-headers", "0", NULL},
        {"gw", "--max-headers", "x", NULL},
        {"gw", "--max-headers", "-1", NULL},
        {"gw", "--header-timeout", "3h", NULL},
        {"gw", "--max-body-bytes", NULL},
        {"gw", "--nope", "1", NULL},
        {"gw", "stray", NULL},
        {"gw", "--max-body-bytes", "9m", NULL},
        {"gw", "--max-connections", "99999999999999999999999", NULL},
        {"gw", "--listen", "1.2.3.4", NULL},
        {"gw", "--listen", "1.2.3.4:70000", NULL},
        {"gw", "--listen", "[::1]8000", NULL},
        {"gw", "--listen", "host:80", NULL},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        gw_config cfg;
        if (load(&cfg, bad[i]) != GW_CONFIG_BAD)
            fail_msg("case %zu (%s %s) was accepted", i, bad[i][1], bad[i][2] ? bad[i][2] : "");
    }
    gw_config cfg;
    setenv("BARISTA_HEADER_TIMEOUT", "soon", 1);
    const char *argv[] = {"gw", NULL};
    assert_int_equal(load(&cfg, argv), GW_CONFIG_BAD);
    clear_env(NULL);
}

static void parses_ipv4_and_ipv6_addresses(void **state)
{
    struct sockaddr_storage ss;
    assert_int_equal(gw__config_parse_addr("127.0.0.1:0", &ss), 0);
    assert_int_equal(ss.ss_family, AF_INET);
    assert_int_equal(gw__config_parse_addr("[::1]:8000", &ss), 0);
    assert_int_equal(ss.ss_family, AF_INET6);
    assert_int_equal(ntohs(((struct sockaddr_in6 *)&ss)->sin6_port), 8000);
    assert_int_equal(gw__config_parse_addr("[::]:1", &ss), 0);
    assert_int_equal(gw__config_parse_addr("::1:8000", &ss), BR_EINVAL);
    assert_int_equal(gw__config_parse_addr("127.0.0.1:", &ss), BR_EINVAL);
    assert_int_equal(gw__config_parse_addr("127.0.0.1:+80", &ss), BR_EINVAL);
    assert_int_equal(gw__config_parse_addr(NULL, &ss), BR_EINVAL);
}

static void curve_paths_are_off_by_default_and_may_be_emptied(void **state)
{
    gw_config cfg;
    const char *none[] = {"gw", NULL};
    assert_int_equal(load(&cfg, none), GW_CONFIG_RUN);
    assert_string_equal(cfg.curve_secret_key_file, "");
    assert_string_equal(cfg.curve_authorized_keys, "");
    /* Changes to the authorised keys are watched unless told otherwise. */
    assert_int_equal(cfg.curve_watch, 1);
    const char *unwatched[] = {"gw", "--curve-watch", "0", NULL};
    assert_int_equal(load(&cfg, unwatched), GW_CONFIG_RUN);
    assert_int_equal(cfg.curve_watch, 0);
    setenv("BARISTA_CURVE_SECRET_KEY_FILE", "/keys/gw.key", 1);
    setenv("BARISTA_CURVE_AUTHORIZED_KEYS", "/keys/authorized", 1);
    assert_int_equal(load(&cfg, none), GW_CONFIG_RUN);
    assert_string_equal(cfg.curve_secret_key_file, "/keys/gw.key");
    assert_string_equal(cfg.curve_authorized_keys, "/keys/authorized");
    /* An empty flag turns a variable's setting off again. */
    const char *off[] = {"gw", "--curve-secret-key-file=", "--curve-authorized-keys", "", NULL};
    assert_int_equal(load(&cfg, off), GW_CONFIG_RUN);
    assert_string_equal(cfg.curve_secret_key_file, "");
    assert_string_equal(cfg.curve_authorized_keys, "");
}

/* Issue 13: the broker is never reachable from other hosts without CURVE unless the
 * operator says so in as many words. */
static void refuses_a_network_broker_without_curve_unless_told(void **state)
{
    gw_config cfg;
    char err[1024];
    const char *plain[] = {"gw", NULL};
    assert_int_equal(load(&cfg, plain), GW_CONFIG_RUN);
    assert_string_equal(cfg.broker_endpoint, "tcp://127.0.0.1:5555");
    const char *local[] = {"gw", "--local", NULL};
    assert_int_equal(load(&cfg, local), GW_CONFIG_RUN);
    assert_string_equal(cfg.broker_endpoint, "auto"); /* an ipc:// socket, made at start */
    static const char *const fine[] = {"tcp://127.0.0.1:5555", "tcp://127.8.9.10:*",
                                       "tcp://[::1]:7",        "tcp://localhost:5555",
                                       "ipc:///tmp/b",         "inproc://x"};
    for (size_t i = 0; i < sizeof(fine) / sizeof(fine[0]); i++) {
        const char *argv[] = {"gw", "--broker", fine[i], NULL};
        assert_int_equal(load(&cfg, argv), GW_CONFIG_RUN);
        assert_true(gw_broker_endpoint_local(fine[i]));
    }
    static const char *const open[] = {
        "tcp://0.0.0.0:5555",  "tcp://*:5555",    "tcp://eth0:5555", "tcp://10.1.2.3:5555",
        "tcp://127.0.0.1.x:5", "tcp://[::]:5555", "tcp://127.0.0.1", "pgm://eth0;239.1.1.1:5555",
        "tcp://gateway:5555"};
    for (size_t i = 0; i < sizeof(open) / sizeof(open[0]); i++) {
        const char *argv[] = {"gw", "--broker", open[i], NULL};
        assert_false(gw_broker_endpoint_local(open[i]));
        assert_int_equal(load_err(&cfg, argv, err, sizeof(err)), GW_CONFIG_BAD);
        assert_int_equal(count_lines(err), 1);
        assert_non_null(strstr(err, open[i]));
        assert_non_null(strstr(err, "--insecure-broker"));
        const char *told[] = {"gw", "--broker", open[i], "--insecure-broker", NULL};
        assert_int_equal(load(&cfg, told), GW_CONFIG_RUN);
        const char *curve[] = {
            "gw", "--broker", open[i], "--curve-secret-key-file", "k", "--curve-authorized-keys",
            "a",  NULL};
        assert_int_equal(load(&cfg, curve), GW_CONFIG_RUN);
    }
    setenv("BARISTA_BROKER", "tcp://0.0.0.0:5555", 1);
    assert_int_equal(load(&cfg, plain), GW_CONFIG_BAD);
    setenv("BARISTA_INSECURE_BROKER", "1", 1);
    assert_int_equal(load(&cfg, plain), GW_CONFIG_RUN);
}

static void help_is_its_own_result(void **state)
{
    gw_config cfg;
    const char *argv[] = {"gw", "--max-pipeline", "3", "--help", NULL};
    /* --help prints to stdout; the result tells main() to exit 0. */
    assert_int_equal(load(&cfg, argv), GW_CONFIG_HELP);
}

/* --processes: process i's broker endpoint and job store, and SO_REUSEPORT for all. */
static void each_process_gets_its_own_endpoint_and_store(void **state)
{
    (void)state;
    gw_config cfg;
    const char *none[] = {"gw", NULL};
    assert_int_equal(load(&cfg, none), GW_CONFIG_RUN);
    assert_int_equal(cfg.processes, 1);
    assert_false(cfg.http.reuse_port);
    static const struct {
        const char *broker, *want; /* want NULL: refused */
    } cases[] = {
        {"tcp://127.0.0.1:5555", "tcp://127.0.0.1:5557"},
        {"tcp://[::1]:7000", "tcp://[::1]:7002"},
        {"tcp://127.0.0.1:*", "tcp://127.0.0.1:*"},
        {"ipc:///tmp/b", "ipc:///tmp/b.2"},
        {"tcp://127.0.0.1:65534", NULL},
        {"inproc://x", NULL},
    };
    FILE *err = tmpfile();
    assert_non_null(err);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *argv[] = {"gw",        "--processes", "3", "--broker", cases[i].broker,
                              "--jobs-db", "/tmp/j.db",   NULL};
        assert_int_equal(load(&cfg, argv), GW_CONFIG_RUN);
        assert_int_equal(cfg.processes, 3);
        gw_config zero = cfg;
        assert_int_equal(gw__config_for_process(&zero, 0, err), 0);
        assert_string_equal(zero.broker_endpoint, cases[i].broker);
        assert_string_equal(zero.jobs_db, "/tmp/j.db");
        assert_true(zero.http.reuse_port);
        int rc = gw__config_for_process(&cfg, 2, err);
        if (!cases[i].want) {
            assert_int_equal(rc, BR_EINVAL);
            continue;
        }
        assert_int_equal(rc, 0);
        assert_string_equal(cfg.broker_endpoint, cases[i].want);
        assert_string_equal(cfg.jobs_db, "/tmp/j.db.2");
    }
    fclose(err);
}

/* A PostgreSQL job queue is shared by the processes (each a gateway with its own
 * lease): every process keeps the URL as given, while a SQLite file is one process's. */
static void processes_share_a_postgres_job_queue(void **state)
{
    (void)state;
    gw_config cfg;
    const char *argv[] = {"gw", "--processes", "2", "--jobs-db", "postgres://u@db:5432/jobs", NULL};
    assert_int_equal(load(&cfg, argv), GW_CONFIG_RUN);
    FILE *err = tmpfile();
    assert_non_null(err);
    gw_config zero = cfg;
    assert_int_equal(gw__config_for_process(&zero, 0, err), 0);
    assert_string_equal(zero.jobs_db, "postgres://u@db:5432/jobs");
    assert_int_equal(gw__config_for_process(&cfg, 1, err), 0);
    assert_string_equal(cfg.jobs_db, "postgres://u@db:5432/jobs");
    fclose(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(defaults_are_the_documented_ones, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(defaults_come_from_the_subsystems, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(job_byte_limits_and_grace_are_options, clear_env,
                                        clear_env),
        cmocka_unit_test_setup_teardown(log_level_and_format_are_options, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(refuses_bad_log_options_with_one_line, clear_env,
                                        clear_env),
        cmocka_unit_test_setup_teardown(help_shows_each_default_as_it_is_given, clear_env,
                                        clear_env),
        cmocka_unit_test_setup_teardown(units_scale_sizes_and_durations, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(environment_sets_and_flag_wins, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(refuses_bad_values_and_unknown_options, clear_env,
                                        clear_env),
        cmocka_unit_test_setup_teardown(parses_ipv4_and_ipv6_addresses, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(curve_paths_are_off_by_default_and_may_be_emptied,
                                        clear_env, clear_env),
        cmocka_unit_test_setup_teardown(refuses_a_network_broker_without_curve_unless_told,
                                        clear_env, clear_env),
        cmocka_unit_test_setup_teardown(help_is_its_own_result, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(processes_share_a_postgres_job_queue, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(each_process_gets_its_own_endpoint_and_store, clear_env,
                                        clear_env),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
