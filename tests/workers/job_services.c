/*
 * job_services.c - the test-only job services of barista-worker-test (test_services.h):
 * `probe`, a public task that sleeps and fails on demand, `calc` (the workflows' task:
 * it adds up its parents' results), and `public-email`, the
 * built-in email task declared public.  Never linked into the shipped barista-worker.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

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

static void calc_log(br_jobctx *job);

/* A CPU task: blocking in it is allowed (it runs on the compute thread).  With
 * "log": true a success is counted in $BARISTA_TEST_RUNLOG, as calc's are. */
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
    if (field_true(p, "log"))
        calc_log(job);
    br_writer *result = br_writer_new(0);
    br_w_pack(result, "{s:I, s:S}", "slept_ms", (int64_t)sleep_ms, "sub", sub);
    br_str bytes = result ? br_writer_bytes(result) : (br_str){"", 0};
    if (bytes.len)
        br_job_succeed(job, bytes.ptr, bytes.len);
    else
        br_job_fail(job, true, "out of memory");
    br_writer_destroy(&result);
}

/* The integer a calc argument stands for: itself, the sum of a list's, 0 otherwise. */
static int64_t calc_value(br_value v)
{
    int64_t n = 0;
    if (br_value_type(v) == BR_MP_ARRAY) {
        br_value_iter it = br_value_items(v);
        br_value e;
        while (br_value_next(&it, NULL, &e))
            n += calc_value(e);
        return n;
    }
    return br_value_int(v, INT32_MIN, INT32_MAX, &n) == 0 ? n : 0;
}

/* Appends "<job id> <attempt> <wall-clock ms>\n" to $BARISTA_TEST_RUNLOG (when set),
 * fsynced, as a run succeeds: a success counted there happened (and when: the jobs
 * benchmark measures a schedule's jitter with it). */
static void calc_log(br_jobctx *job)
{
    const char *path = getenv("BARISTA_TEST_RUNLOG");
    if (!path || !*path)
        return;
    char line[160];
    br_str id = br_job_id(job);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long long ms = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    int n = snprintf(line, sizeof(line), "%.*s %u %lld\n", (int)id.len, id.ptr, br_job_attempt(job),
                     ms);
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return;
    if (write(fd, line, (size_t)n) == n)
        fsync(fd);
    close(fd);
}

/* True when the file `path` exists (a test opens the gate when it wants the job to
 * end, whatever the timing). */
static bool calc_gate_open(br_str path)
{
    char p[512];
    snprintf(p, sizeof(p), "%.*s", (int)(path.len < 511 ? path.len : 511), path.ptr);
    return access(p, F_OK) == 0;
}

/* calc, the workflows' test task (a CPU task).  Its argument: an integer n (a chain's
 * previous result) gives n + 1; a list of them (a chord's results) their sum; options
 * {"add": k, "fail": bool, "sleep_ms": ms, "gate": path} give k (an attempt before
 * the file `path` exists fails, to be retried); [value, options] (a step with its
 * own args after its parents' results) gives value + k. */
static void calc(br_jobctx *job)
{
    br_value p, opts = {NULL, 0};
    if (br_value_parse(br_job_payload(job), &p) != 0)
        p = (br_value){NULL, 0};
    int64_t result;
    uint32_t len = br_value_len(p);
    if (br_value_type(p) == BR_MP_MAP) {
        opts = p;
        result = 0;
    } else if (br_value_type(p) == BR_MP_ARRAY && len == 2 &&
               br_value_type(br_value_index(p, 1)) == BR_MP_MAP) {
        opts = br_value_index(p, 1);
        result = calc_value(br_value_index(p, 0));
    } else {
        result = calc_value(p) + (br_value_type(p) == BR_MP_ARRAY ? 0 : 1);
    }
    int64_t add = 0;
    if (br_value_type(opts) == BR_MP_MAP)
        br_value_int(br_value_get(opts, "add"), INT32_MIN, INT32_MAX, &add);
    br_str gate;
    if (br_value_str(br_value_get(opts, "gate"), &gate) == 0 && !calc_gate_open(gate)) {
        /* Not a worker blocked on it: the job comes back after its backoff. */
        br_job_fail(job, true, "the gate is closed");
        return;
    }
    if (!probe_sleep(job, field_uint(opts, "sleep_ms", PROBE_MAX_SLEEP_MS), false)) {
        br_job_fail(job, true, "cancelled while sleeping");
        return;
    }
    if (field_true(opts, "fail")) {
        br_job_fail(job, false, "calc asked to fail");
        return;
    }
    br_writer *w = br_writer_new(0);
    br_w_pack(w, "I", result + add);
    br_str bytes = w ? br_writer_bytes(w) : (br_str){"", 0};
    if (bytes.len) {
        calc_log(job);
        br_job_succeed(job, bytes.ptr, bytes.len);
    } else {
        br_job_fail(job, true, "out of memory");
    }
    br_writer_destroy(&w);
}

static const br_task_spec probe_tasks[] = {
    {.name = "calc", .handler = calc, .is_public = true},
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

/* ticker: a task whose schedules the service declares (READY.schedules). */
static const br_schedule_spec ticker_schedules[] = {
    {.name = "fast",
     .interval_ms = 200,
     .payload = "\x81\xa3"
                "add\x01",
     .payload_len = 6,
     .catch_up = 1000},
    {.name = "nightly", .cron = "0 3 * * *", .catch_up = 0},
};

static const br_task_spec ticker_tasks[] = {
    {.name = "tick",
     .handler = calc,
     .schedules = ticker_schedules,
     .nschedules = BR_NELEMS(ticker_schedules)},
};

const br_service_spec br_test_ticker_service = {
    .name = "ticker",
    .kind = BR_KIND_CPU,
    .summary = "test only: a task with declared schedules",
    .tasks = ticker_tasks,
    .ntasks = BR_NELEMS(ticker_tasks),
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
