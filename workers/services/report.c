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

/* An unsigned integer field of the payload, or `def` when absent or not one. */
static uint64_t field_uint(const msgpack_object *p, const char *key, uint64_t def, uint64_t max)
{
    const msgpack_object *v = br_payload_get(p, key);
    if (!v || v->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return def;
    return v->via.u64 < max ? v->via.u64 : max;
}

static void report(br_jobctx *job)
{
    msgpack_zone zone;
    msgpack_zone_init(&zone, 1024);
    msgpack_object p = {.type = MSGPACK_OBJECT_NIL};
    if (br_payload_unpack(br_job_payload(job), &zone, &p) != 0)
        p.type = MSGPACK_OBJECT_NIL;
    uint64_t n = field_uint(&p, "n", REPORT_DEFAULT_ROUNDS, REPORT_MAX_ROUNDS);
    msgpack_zone_destroy(&zone);
    br_str id = br_job_id(job);
    uint8_t digest[BR_HASH_BYTES];
    br_hash_first(digest, id.ptr, id.len);
    if (n > 1)
        br_hash_more(digest, n - 1);
    char hex[BR_HASH_BYTES * 2 + 1];
    sodium_bin2hex(hex, sizeof(hex), digest, sizeof(digest));
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    br_pack_cstr(&pk, "digest");
    br_pack_cstr(&pk, hex);
    br_pack_cstr(&pk, "n");
    msgpack_pack_uint64(&pk, n);
    if (sb.data)
        br_job_succeed(job, sb.data, sb.size);
    else
        br_job_fail(job, true, "out of memory");
    msgpack_sbuffer_destroy(&sb);
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
