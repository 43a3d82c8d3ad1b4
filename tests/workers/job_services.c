/*
 * job_services.c - the test-only job services of barista-worker-test (test_services.h):
 * `probe`, a public task that sleeps and fails on demand, and `public-email`, the
 * built-in email task declared public.  Never linked into the shipped barista-worker.
 */
#include <stdio.h>
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

/* Sleeps ms, or less when the job is cancelled meanwhile: in slices, so that a cancel
 * is seen within one.  With `progress`, each slice reports how far it got.  True when
 * the whole time was slept. */
static bool probe_sleep(br_jobctx *job, uint64_t ms, bool progress)
{
    enum { SLICE_MS = 50 };
    for (uint64_t done = 0; done < ms; done += SLICE_MS) {
        if (br_job_cancelled(job))
            return false;
        uint64_t step = ms - done < SLICE_MS ? ms - done : SLICE_MS;
        struct timespec ts = {0, (long)step * 1000000L};
        while (nanosleep(&ts, &ts) != 0) {
            /* interrupted: sleep the rest */
        }
        if (progress) {
            char note[64];
            snprintf(note, sizeof(note), "slept %llu ms", (unsigned long long)(done + step));
            br_job_report(job, (double)(done + step) / (double)ms, note);
        }
    }
    return !br_job_cancelled(job);
}

/* A CPU task: blocking in it is allowed (it runs on the compute thread). */
static void probe(br_jobctx *job)
{
    br_value p;
    if (br_value_parse(br_job_payload(job), &p) != 0)
        p = (br_value){NULL, 0}; /* not one value: every field takes its default */
    uint64_t sleep_ms = field_uint(p, "sleep_ms", PROBE_MAX_SLEEP_MS);
    bool fail = field_true(p, "fail"), fatal = field_true(p, "fatal");
    if (!probe_sleep(job, sleep_ms, field_true(p, "progress"))) {
        br_job_fail(job, true, "cancelled while sleeping");
        return;
    }
    if (fail || fatal) {
        br_job_fail(job, !fatal, fatal ? "asked to fail for good" : "asked to fail");
        return;
    }
    /* The subject of the caller who caused the job, "" when anonymous. */
    br_value who;
    br_str sub = {"", 0};
    if (br_value_parse(br_job_identity(job), &who) == 0)
        br_value_str(br_value_get(who, "sub"), &sub);
    br_writer *result = br_writer_new(0);
    br_w_pack(result, "{s:I, s:S}", "slept_ms", (int64_t)sleep_ms, "sub", sub);
    br_str bytes = result ? br_writer_bytes(result) : (br_str){"", 0};
    if (bytes.len)
        br_job_succeed(job, bytes.ptr, bytes.len);
    else
        br_job_fail(job, true, "out of memory");
    br_writer_destroy(&result);
}

static const br_task_spec probe_tasks[] = {
    {.name = "probe", .handler = probe, .is_public = true},
    /* The same handler under per-task policies (TASK_POLICY). */
    {.name = "probe-strict",
     .handler = probe,
     .is_public = true,
     .max_attempts = 1,
     .timeout_ms = 1000,
     .priority = 9},
    {.name = "probe-slow", .handler = probe, .is_public = true, .rate = 4},
};

/* POST /probe/enqueue: the body becomes a probe job of the reply, with the
 * Idempotency-Key the client sent (so that the test finds it) - a handler's job, which
 * carries the identity of the request's caller. */
static void probe_enqueue(br_req *req)
{
    br_str key = {"", 0};
    br_req_header(req, "x-probe-key", &key);
    char k[64];
    snprintf(k, sizeof(k), "%.*s", (int)(key.len < 63 ? key.len : 63), key.ptr);
    br_str body = br_req_body(req);
    if (br_reply_add_job(req, "probe", body.ptr, body.len, k, 0) != 0) {
        br_reply_error(req, 500, "cannot enqueue the probe");
        return;
    }
    br_reply_pack(req, 201, "{s:s}", "enqueued", k);
}

static const br_route_spec probe_routes[] = {
    {.method = "POST",
     .path = "/probe/enqueue",
     .handler = probe_enqueue,
     .body = BR_BODY_MSGPACK,
     .summary = "test only: a reply that enqueues a probe job"},
};

const br_service_spec br_test_probe_service = {
    .name = "probe",
    .kind = BR_KIND_CPU,
    .summary = "test only: a public task that sleeps and fails on demand",
    .routes = probe_routes,
    .nroutes = BR_NELEMS(probe_routes),
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
