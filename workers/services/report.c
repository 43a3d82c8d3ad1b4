/*
 * report.c - a CPU task with a result.
 *
 *   task report, payload {"n": ROUNDS, "fail": BOOL, "fatal": BOOL, "sleep_ms": MS}
 *   result {"digest": HEX, "n": ROUNDS}: SHA-256 applied ROUNDS times (as /hash does)
 *   to the job's id.
 *
 * "fail" makes every attempt fail with retry, "fatal" fail for good, and "sleep_ms"
 * hold the worker that long first: switches for tests of retries, dead jobs and
 * leases.
 */
#include <sodium.h>
#include <time.h>

#include "services.h"

#define REPORT_DEFAULT_ROUNDS 1000
#define REPORT_MAX_ROUNDS     10000000
#define REPORT_MAX_SLEEP_MS   600000

/* A non-negative integer field of the payload, at most max, or `def` when absent or
 * not one. */
static uint64_t field_uint(br_value p, const char *key, uint64_t def, uint64_t max)
{
    uint64_t v;
    if (br_value_uint(br_value_get(p, key), &v) != 0)
        return def;
    return v < max ? v : max;
}

static bool field_true(br_value p, const char *key)
{
    bool v;
    return br_value_bool(br_value_get(p, key), &v) == 0 && v;
}

static void report(br_jobctx *job)
{
    br_value p;
    if (br_value_parse(br_job_payload(job), &p) != 0)
        p = (br_value){NULL, 0}; /* not one value: every field takes its default */
    uint64_t n = field_uint(p, "n", REPORT_DEFAULT_ROUNDS, REPORT_MAX_ROUNDS);
    uint64_t sleep_ms = field_uint(p, "sleep_ms", 0, REPORT_MAX_SLEEP_MS);
    bool fail = field_true(p, "fail"), fatal = field_true(p, "fatal");
    if (sleep_ms) {
        struct timespec ts = {(time_t)(sleep_ms / 1000), (long)(sleep_ms % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) != 0) {
            /* interrupted: sleep the rest */
        }
    }
    if (fail || fatal) {
        br_job_fail(job, !fatal, fatal ? "asked to fail for good" : "asked to fail");
        return;
    }
    br_str id = br_job_id(job);
    uint8_t digest[BR_HASH_BYTES];
    br_hash_first(digest, id.ptr, id.len);
    if (n > 1)
        br_hash_more(digest, n - 1);
    char hex[BR_HASH_BYTES * 2 + 1];
    sodium_bin2hex(hex, sizeof(hex), digest, sizeof(digest));
    br_writer *result = br_writer_new(0);
    br_w_pack(result, "{s:s, s:I}", "digest", hex, "n", (int64_t)n);
    br_str bytes = result ? br_writer_bytes(result) : (br_str){"", 0};
    if (bytes.len)
        br_job_succeed(job, bytes.ptr, bytes.len);
    else
        br_job_fail(job, true, "out of memory");
    br_writer_destroy(&result);
}

static const br_task_spec tasks[] = {
    {.name = "report", .handler = report},
};

const br_service_spec br_report_service = {
    .name = "report",
    .kind = BR_KIND_CPU,
    .summary = "a CPU task with a result",
    .tasks = tasks,
    .ntasks = BR_NELEMS(tasks),
};
