/*
 * report.c - a CPU task with a result, public: HTTP clients submit it with
 * POST /jobs/report (the README's quick start).
 *
 *   task report, payload {"n": ROUNDS}
 *   result {"digest": HEX, "n": ROUNDS}: SHA-256 applied ROUNDS times (as /hash does)
 *   to the job's id.
 *
 * Test behaviour (failing on demand, sleeping past a lease) is not here: it lives in
 * the test-only `probe` task of barista-worker-test (tests/workers/job_services.c).
 */
#include <sodium.h>

#include "services.h"

#define REPORT_DEFAULT_ROUNDS 1000
#define REPORT_MAX_ROUNDS     10000000

/* A non-negative integer field of the payload, at most max, or `def` when absent or
 * not one. */
static uint64_t field_uint(br_value p, const char *key, uint64_t def, uint64_t max)
{
    uint64_t v;
    if (br_value_uint(br_value_get(p, key), &v) != 0)
        return def;
    return v < max ? v : max;
}

static void report(br_jobctx *job)
{
    br_value p;
    if (br_value_parse(br_job_payload(job), &p) != 0)
        p = (br_value){NULL, 0}; /* not one value: every field takes its default */
    uint64_t n = field_uint(p, "n", REPORT_DEFAULT_ROUNDS, REPORT_MAX_ROUNDS);
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
    {.name = "report", .handler = report, .is_public = true},
};

const br_service_spec br_report_service = {
    .name = "report",
    .kind = BR_KIND_CPU,
    .summary = "a CPU task with a result",
    .tasks = tasks,
    .ntasks = BR_NELEMS(tasks),
};
