/*
 * test_metrics.c - the Prometheus text the /metrics sections write: checked line by
 * line against the exposition format's rules, and for the numbers it must carry.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "barista/proto.h"
#include "metrics.h"
#include "registry.h"
#include "router.h"

/* Checks out is well-formed text format 0.0.4: every sample belongs to the family
 * whose # HELP and # TYPE lines precede it, counters end in _total, histogram
 * samples are _bucket/_sum/_count, every value is a number.  Returns the samples. */
static size_t check_exposition(const br_buf *out)
{
    char family[128] = "", type[16] = "";
    size_t samples = 0;
    const char *p = (const char *)out->data, *end = p + out->len;
    assert_true(out->len > 0 && end[-1] == '\n');
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        char line[1024];
        size_t n = (size_t)(nl - p);
        assert_true(n < sizeof(line));
        memcpy(line, p, n);
        line[n] = '\0';
        p = nl + 1;
        char name[128];
        if (strncmp(line, "# HELP ", 7) == 0) {
            assert_int_equal(sscanf(line + 7, "%127s", family), 1);
            type[0] = '\0';
            continue;
        }
        if (strncmp(line, "# TYPE ", 7) == 0) {
            assert_int_equal(sscanf(line + 7, "%127s %15s", name, type), 2);
            assert_string_equal(name, family);
            if (strcmp(type, "counter") == 0)
                assert_non_null(strstr(family, "_total"));
            continue;
        }
        assert_true(type[0] != '\0'); /* a sample after its family's HELP and TYPE */
        size_t len = strcspn(line, "{ ");
        assert_true(len < sizeof(name));
        memcpy(name, line, len);
        name[len] = '\0';
        if (strcmp(type, "histogram") == 0) {
            size_t fl = strlen(family);
            assert_memory_equal(name, family, fl);
            const char *suffix = name + fl;
            assert_true(strcmp(suffix, "_bucket") == 0 || strcmp(suffix, "_sum") == 0 ||
                        strcmp(suffix, "_count") == 0);
        } else {
            assert_string_equal(name, family);
        }
        if (line[len] == '{') {
            const char *close = strstr(line + len, "} ");
            assert_non_null(close);
            len = (size_t)(close - line) + 1;
        }
        assert_int_equal(line[len], ' ');
        char *num_end;
        strtod(line + len + 1, &num_end);
        assert_true(num_end != line + len + 1 && *num_end == '\0');
        samples++;
    }
    return samples;
}

/* True when out holds the line `want` (without its newline). */
static bool has_line(const br_buf *out, const char *want)
{
    size_t n = strlen(want);
    const char *p = (const char *)out->data, *end = p + out->len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if ((size_t)(nl - p) == n && memcmp(p, want, n) == 0)
            return true;
        p = nl + 1;
    }
    return false;
}

#define assert_line(out, want)                                                                     \
    do {                                                                                           \
        if (!has_line(out, want))                                                                  \
            fail_msg("missing line: %s\n%.*s", want, (int)(out)->len, (out)->data);                \
    } while (0)

static void http_histogram_is_cumulative_and_ends_with_inf(void **state)
{
    (void)state;
    gw_http_stats st = {.accepted = 7, .rejected = 1, .bytes_in = 300, .bytes_out = 900};
    st.status[1] = 5;
    st.status[3] = 2;
    st.duration[0] = 1;                        /* <= 0.5 ms */
    st.duration[2] = 3;                        /* <= 2.5 ms */
    st.duration[GW_HTTP_DURATION_BUCKETS] = 1; /* > 10 s */
    st.duration_sum_us = 12500000;
    br_buf out = {0};
    assert_int_equal(gw_metrics_http(&out, &st, 4), 0);
    check_exposition(&out);
    assert_line(&out, "barista_http_requests_total{code=\"2xx\"} 5");
    assert_line(&out, "barista_http_requests_total{code=\"4xx\"} 2");
    assert_line(&out, "barista_http_connections_open 4");
    assert_line(&out, "barista_http_connections_accepted_total 7");
    assert_line(&out, "barista_http_connections_rejected_total 1");
    assert_line(&out, "barista_http_received_bytes_total 300");
    assert_line(&out, "barista_http_sent_bytes_total 900");
    assert_line(&out, "barista_http_request_duration_seconds_bucket{le=\"0.0005\"} 1");
    assert_line(&out, "barista_http_request_duration_seconds_bucket{le=\"0.001\"} 1");
    assert_line(&out, "barista_http_request_duration_seconds_bucket{le=\"0.0025\"} 4");
    assert_line(&out, "barista_http_request_duration_seconds_bucket{le=\"10\"} 4");
    assert_line(&out, "barista_http_request_duration_seconds_bucket{le=\"+Inf\"} 5");
    assert_line(&out, "barista_http_request_duration_seconds_sum 12.500000");
    assert_line(&out, "barista_http_request_duration_seconds_count 5");
    br_buf_free(&out);
}

static void route_handler(struct gw_req *req, void *data)
{
    (void)req;
    (void)data;
}

static void broker_section_has_workers_by_kind_and_escaped_service_labels(void **state)
{
    (void)state;
    gw_router *router = gw_router_new();
    gw_registry *reg = gw_registry_new(router, route_handler, NULL, 4);
    assert_non_null(reg);
    br_route route = {.method = br_str_c("GET"), .path = br_str_c("/odd")};
    br_service svc = {
        .name = br_str_c("we\"ird\\svc"), .kind = BR_KIND_CPU, .routes = &route, .nroutes = 1};
    br_ready ready = {.worker_id = br_str_c("w"),
                      .kind = BR_KIND_CPU,
                      .capacity = 1,
                      .services = &svc,
                      .nservices = 1};
    gw_worker *w = NULL;
    char reason[128];
    assert_int_equal(gw_registry_add(reg, "id", 2, &ready, 0, &w, reason, sizeof(reason)), 0);

    gw_broker_stats st = {.workers = 1,
                          .services = 1,
                          .dispatched = 10,
                          .status_503 = 2,
                          .stale_replies = 3,
                          .workers_unhealthy = 1,
                          .cancelled = 4,
                          .inflight_bytes = 5,
                          .services_retired = 6,
                          .ws_opened = 7,
                          .ws_messages_out = 8};
    br_buf out = {0};
    assert_int_equal(gw_metrics_broker(&out, &st, reg), 0);
    check_exposition(&out);
    assert_line(&out, "barista_broker_workers{kind=\"io\"} 0");
    assert_line(&out, "barista_broker_workers{kind=\"cpu\"} 1");
    assert_line(&out, "barista_broker_errors_total{code=\"503\"} 2");
    assert_line(&out, "barista_broker_dispatched_total 10");
    assert_line(&out, "barista_broker_stale_replies_total 3");
    assert_line(&out, "barista_broker_workers_unhealthy 1");
    assert_line(&out, "barista_broker_cancelled 4");
    assert_line(&out, "barista_broker_inflight_bytes 5");
    assert_line(&out, "barista_broker_services_retired_total 6");
    assert_line(&out, "barista_websocket_opened_total 7");
    assert_line(&out, "barista_websocket_messages_in_total 0");
    assert_line(&out, "barista_websocket_messages_out_total 8");
    assert_line(&out, "barista_service_workers{service=\"we\\\"ird\\\\svc\",kind=\"cpu\"} 1");
    assert_line(&out, "barista_service_queued{service=\"we\\\"ird\\\\svc\"} 0");
    br_buf_free(&out);
    gw_registry_destroy(&reg);
    gw_router_destroy(&router);
}

static void jobs_and_supervisor_sections_carry_their_numbers(void **state)
{
    (void)state;
    gw_jobs_stats jobs = {.ready = 1,
                          .running = 2,
                          .scheduled = 3,
                          .finished = 4,
                          .tasks = 2,
                          .memory = 4096,
                          .accepted = 10,
                          .completed = 4,
                          .retried = 6,
                          .dead = 1,
                          .cancelled = 7};
    gw_supervisor_stats sup = {.running = 3, .restarts = 5, .crash_looping = 1};
    br_buf out = {0};
    assert_int_equal(gw_metrics_jobs(&out, &jobs), 0);
    assert_int_equal(gw_metrics_supervisor(&out, &sup), 0);
    assert_int_equal(check_exposition(&out), 14);
    assert_line(&out, "barista_jobs{state=\"running\"} 2");
    assert_line(&out, "barista_jobs_cancelled_total 7");
    assert_line(&out, "barista_jobs_memory_bytes 4096");
    assert_line(&out, "barista_jobs{state=\"finished\"} 4");
    assert_line(&out, "barista_jobs_retried_total 6");
    assert_line(&out, "barista_jobs_dead_total 1");
    assert_line(&out, "barista_supervisor_processes_running 3");
    assert_line(&out, "barista_supervisor_restarts_total 5");
    assert_line(&out, "barista_supervisor_crash_looping 1");
    br_buf_free(&out);
}

static void renders_only_the_components_it_has(void **state)
{
    (void)state;
    gw_metrics_sources none = {0};
    br_buf out = {0};
    assert_int_equal(gw_metrics_render(&none, &out), 0);
    assert_int_equal(out.len, 0);
    br_buf_free(&out);
}

static void reports_text_larger_than_its_buffer(void **state)
{
    (void)state;
    gw_jobs_stats jobs = {0};
    br_buf out = {.max = 100};
    assert_int_equal(gw_metrics_jobs(&out, &jobs), BR_ELIMIT);
    br_buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(http_histogram_is_cumulative_and_ends_with_inf),
        cmocka_unit_test(broker_section_has_workers_by_kind_and_escaped_service_labels),
        cmocka_unit_test(jobs_and_supervisor_sections_carry_their_numbers),
        cmocka_unit_test(renders_only_the_components_it_has),
        cmocka_unit_test(reports_text_larger_than_its_buffer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
