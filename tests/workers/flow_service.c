/*
 * flow_service.c - the test-only `flow` service of barista-worker-test
 * (test_services.h): workflows asked for through the SDK, from a handler and from a
 * task (br_req_workflow_submit, br_job_workflow_submit), made of the probe service's
 * `calc` jobs.
 */
#include <stdio.h>

#include "test_services.h"

/* Writes a calc step, {"task": "calc", "args": {"add": k}}, into w. */
static void calc_step(br_writer *w, int64_t k)
{
    br_w_pack(w, "{s:s, s:{s:I}}", "task", "calc", "args", "add", k);
}

static void chain_made(const br_workflow_result *res, void *arg)
{
    br_req *req = arg;
    if (res->status == 202)
        br_reply_pack(req, 202, "{s:S}", "workflow_id", res->workflow_id);
    else
        br_reply_errorf(req, res->status, "%.*s", (int)res->detail.len, res->detail.ptr);
}

/* POST /flow/chain {"n": N}: a chain calc(add N) -> calc -> calc(add 10), whose id the
 * reply carries (202) once the gateway made it; a refusal's status and detail
 * otherwise.  {"task": NAME} puts that task first instead (a bad canvas, for tests). */
static void chain(br_req *req)
{
    br_value body;
    int64_t n = 0;
    br_str first = br_str_c("calc");
    if (br_value_parse(br_req_body(req), &body) == 0) {
        br_value_int(br_value_get(body, "n"), INT32_MIN, INT32_MAX, &n);
        br_value_str(br_value_get(body, "task"), &first);
    }
    br_writer *w = br_writer_new(0);
    br_w_pack(w, "{s:[{s:S, s:{s:I}}, {s:s}, {s:s, s:{s:i}}]}", "chain", "task", first, "args",
              "add", n, "task", "calc", "task", "calc", "args", "add", 10);
    br_str canvas = w ? br_writer_bytes(w) : (br_str){"", 0};
    int rc = br_req_workflow_submit(req, canvas.ptr, canvas.len, chain_made, req);
    br_writer_destroy(&w);
    if (rc != 0)
        br_reply_errorf(req, 500, "br_req_workflow_submit: %s", br_strerror(rc));
}

static void chord_made(const br_workflow_result *res, void *arg)
{
    br_jobctx *job = arg;
    if (res->status != 202) {
        char why[300];
        snprintf(why, sizeof(why), "%u %.*s", res->status, (int)res->detail.len, res->detail.ptr);
        br_job_fail(job, false, why);
        return;
    }
    br_writer *w = br_writer_new(0);
    br_w_pack(w, "{s:S}", "workflow_id", res->workflow_id);
    br_str bytes = w ? br_writer_bytes(w) : (br_str){"", 0};
    if (bytes.len)
        br_job_succeed(job, bytes.ptr, bytes.len);
    else
        br_job_fail(job, true, "out of memory");
    br_writer_destroy(&w);
}

/* Task `fanout` {"n": N}: a chord of calc(add 0) .. calc(add N-1) with the body
 * calc(add 1000), linked to this job; the job's result is {"workflow_id": ID}. */
static void fanout(br_jobctx *job)
{
    br_value p;
    int64_t n = 0;
    if (br_value_parse(br_job_payload(job), &p) == 0)
        br_value_int(br_value_get(p, "n"), 1, 1000, &n);
    br_writer *w = br_writer_new(0);
    br_w_pack(w, "{s:{s:[", "chord", "header");
    for (int64_t i = 0; i < n; i++)
        calc_step(w, i);
    br_w_pack(w, "], s:", "body");
    calc_step(w, 1000);
    br_w_pack(w, "}}");
    br_str canvas = w ? br_writer_bytes(w) : (br_str){"", 0};
    int rc = br_job_workflow_submit(job, canvas.ptr, canvas.len, chord_made, job);
    br_writer_destroy(&w);
    if (rc != 0) {
        char why[96];
        snprintf(why, sizeof(why), "br_job_workflow_submit: %s", br_strerror(rc));
        br_job_fail(job, false, why);
    }
}

static const br_task_spec flow_tasks[] = {{.name = "fanout", .handler = fanout, .is_public = true}};

static const br_route_spec flow_routes[] = {
    {.method = "POST",
     .path = "/flow/chain",
     .handler = chain,
     .body = BR_BODY_MSGPACK,
     .summary = "test only: a handler that asks for a chain of calc jobs"},
};

const br_service_spec br_test_flow_service = {
    .name = "flow",
    .kind = BR_KIND_IO,
    .summary = "test only: workflows asked for by a handler and by a task",
    .routes = flow_routes,
    .nroutes = BR_NELEMS(flow_routes),
    .tasks = flow_tasks,
    .ntasks = BR_NELEMS(flow_tasks),
};
