/*
 * job_services.c - the test-only job services (job_services.h).  Never linked into the
 * shipped barista-worker: barista-worker-test finds them through its wrapped
 * br_builtin_find (stall_service.c).
 */
#include <string.h>
#include <time.h>

#include "job_services.h"
#include "services.h"

/* The longest a probe may sleep: 10 minutes, past any lease a test sets. */
#define PROBE_MAX_SLEEP_MS 600000u

static uint64_t field_uint(const msgpack_object *p, const char *key, uint64_t max)
{
    const msgpack_object *v = br_payload_get(p, key);
    if (!v || v->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return 0;
    return v->via.u64 < max ? v->via.u64 : max;
}

static bool field_true(const msgpack_object *p, const char *key)
{
    const msgpack_object *v = br_payload_get(p, key);
    return v && v->type == MSGPACK_OBJECT_BOOLEAN && v->via.boolean;
}

/* A CPU task: blocking in it is allowed (it runs on the compute thread). */
static void probe(br_jobctx *job)
{
    msgpack_zone zone;
    msgpack_zone_init(&zone, 1024);
    msgpack_object p = {.type = MSGPACK_OBJECT_NIL};
    if (br_payload_unpack(br_job_payload(job), &zone, &p) != 0)
        p.type = MSGPACK_OBJECT_NIL;
    uint64_t sleep_ms = field_uint(&p, "sleep_ms", PROBE_MAX_SLEEP_MS);
    bool fail = field_true(&p, "fail"), fatal = field_true(&p, "fatal");
    msgpack_zone_destroy(&zone);
    struct timespec ts = {(time_t)(sleep_ms / 1000), (long)(sleep_ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
        /* interrupted: sleep the rest */
    }
    if (fail || fatal) {
        br_job_fail(job, !fatal, fatal ? "asked to fail for good" : "asked to fail");
        return;
    }
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    br_pack_cstr(&pk, "slept_ms");
    msgpack_pack_uint64(&pk, sleep_ms);
    if (sb.data)
        br_job_succeed(job, sb.data, sb.size);
    else
        br_job_fail(job, true, "out of memory");
    msgpack_sbuffer_destroy(&sb);
}

static const br_task_spec probe_tasks[] = {
    {.name = "probe", .handler = probe, .is_public = true},
};

static const br_service_spec probe_service = {
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

static const br_service_spec *public_email(void)
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

const br_service_spec *test_job_service_find(const char *name, size_t len)
{
    if (len == 5 && memcmp(name, "probe", 5) == 0)
        return &probe_service;
    if (len == 12 && memcmp(name, "public-email", 12) == 0)
        return public_email();
    return NULL;
}
