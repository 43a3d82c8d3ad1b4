/*
 * job_services.c - the test-only job services of barista-worker-test (test_services.h):
 * `probe`, a public task that sleeps and fails on demand, and `public-email`, the
 * built-in email task declared public.  Never linked into the shipped barista-worker.
 */
#include <time.h>

#include "test_services.h"

/* The longest a probe may sleep: 10 minutes, past any lease a test sets. */
#define PROBE_MAX_SLEEP_MS 600000u

/* A non-negative integer field of the payload, at most max, or 0 when absent or not
 * one. */
static uint64_t field_uint(br_value p, const char *key, uint64_t max)
{
    uint64_t v;
    if (br_value_uint(br_value_get(p, key), &v) != 0)
        return 0;
    return v < max ? v : max;
}

static bool field_true(br_value p, const char *key)
{
    bool v;
    return br_value_bool(br_value_get(p, key), &v) == 0 && v;
}

/* A CPU task: blocking in it is allowed (it runs on the compute thread). */
static void probe(br_jobctx *job)
{
    br_value p;
    if (br_value_parse(br_job_payload(job), &p) != 0)
        p = (br_value){NULL, 0}; /* not one value: every field takes its default */
    uint64_t sleep_ms = field_uint(p, "sleep_ms", PROBE_MAX_SLEEP_MS);
    bool fail = field_true(p, "fail"), fatal = field_true(p, "fatal");
    struct timespec ts = {(time_t)(sleep_ms / 1000), (long)(sleep_ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
        /* interrupted: sleep the rest */
    }
    if (fail || fatal) {
        br_job_fail(job, !fatal, fatal ? "asked to fail for good" : "asked to fail");
        return;
    }
    br_writer *result = br_writer_new(0);
    br_w_pack(result, "{s:I}", "slept_ms", (int64_t)sleep_ms);
    br_str bytes = result ? br_writer_bytes(result) : (br_str){"", 0};
    if (bytes.len)
        br_job_succeed(job, bytes.ptr, bytes.len);
    else
        br_job_fail(job, true, "out of memory");
    br_writer_destroy(&result);
}

static const br_task_spec probe_tasks[] = {
    {.name = "probe", .handler = probe, .is_public = true},
};

const br_service_spec br_test_probe_service = {
    .name = "probe",
    .kind = BR_KIND_CPU,
    .summary = "test only: a public task that sleeps and fails on demand",
    .tasks = probe_tasks,
    .ntasks = BR_NELEMS(probe_tasks),
};

/* public-email: the shipped email task's handler under the same name, made public.
 * Built on first use, since another object's field is no constant initializer. */
static br_task_spec public_email_tasks[1];
static br_service_spec public_email_service;

const br_service_spec *br_test_public_email_service(void)
{
    if (!public_email_service.name) {
        public_email_tasks[0] = br_email_service.tasks[0];
        public_email_tasks[0].is_public = true;
        public_email_service = br_email_service;
        public_email_service.name = "public-email";
        public_email_service.summary = "test only: the email task, public";
        public_email_service.tasks = public_email_tasks;
        public_email_service.ntasks = 1;
    }
    return &public_email_service;
}
