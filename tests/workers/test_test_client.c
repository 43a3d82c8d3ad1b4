/*
 * test_test_client.c - the test client of barista/testing.h, on the built-in services
 * and on small services of its own: requests routed and converted as the gateway
 * would, the gateway's own 404/405/422/504, calls answered by the worker's own routes
 * and by stubs, jobs recorded and run, and the service life cycle (data, options,
 * init before the first request, fini after the drain, an init that fails).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "barista/testing.h"
#include "services.h"

static void routes_answer_as_a_client_sees_them(void **state)
{
    (void)state;
    const br_service_spec *io[] = {&br_hello_service, &br_sleep_service, &br_echo_service};
    br_test *t = br_test_new(io, BR_NELEMS(io), NULL);
    assert_non_null(t);
    br_test_reply r;
    assert_int_equal(br_test_get(t, "/hello/ada%20l", &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.content_type, "application/json");
    assert_string_equal(r.body, "{\"message\":\"hello ada l\"}");
    assert_true(r.msgpack.len > 0);

    assert_int_equal(br_test_get(t, "/sleep?ms=5", &r), 0);
    assert_string_equal(r.body, "{\"slept_ms\":5}");

    br_test_req echo = {
        .method = "POST", .target = "/echo", .body = "hi!", .content_type = "text/plain"};
    assert_int_equal(br_test_request(t, &echo, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.content_type, "text/plain");
    assert_int_equal(r.body_len, 3);
    assert_string_equal(r.body, "hi!");

    /* What never reaches a handler is the gateway's answer. */
    assert_int_equal(br_test_get(t, "/nope", &r), 0);
    assert_int_equal(r.status, 404);
    assert_string_equal(r.body, "{\"detail\":\"Not Found\"}");
    assert_int_equal(br_test_post(t, "/hello", "{}", &r), 0);
    assert_int_equal(r.status, 405);
    br_test_destroy(&t);
    br_test_destroy(&t);
}

static void a_late_reply_is_a_504_and_the_worker_carries_on(void **state)
{
    (void)state;
    const br_service_spec *io[] = {&br_sleep_service};
    br_test *t = br_test_new(io, 1, NULL);
    assert_non_null(t);
    br_test_reply r;
    br_test_req slow = {.target = "/sleep?ms=5000", .timeout_ms = 50};
    assert_int_equal(br_test_request(t, &slow, &r), 0);
    assert_int_equal(r.status, 504);
    assert_non_null(strstr(r.body, "Gateway Timeout"));
    assert_int_equal(br_test_get(t, "/sleep?ms=1", &r), 0);
    assert_int_equal(r.status, 200);
    br_test_destroy(&t);
}

static void calls_are_routed_to_own_routes_or_stubs_and_recorded(void **state)
{
    (void)state;
    const br_service_spec *io[] = {&br_dashboard_service, &br_hello_service, &br_sleep_service};
    br_test *t = br_test_new(io, BR_NELEMS(io), NULL);
    assert_non_null(t);
    assert_int_equal(br_test_stub(t, "GET", "/hash", 200, "{\"digest\":\"ab\",\"n\":1000}"), 0);
    br_test_reply r;
    assert_int_equal(br_test_get(t, "/dashboard", &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"hello\":{\"message\":\"hello\"},\"sleep\":{\"slept_ms\":100},"
                                "\"hash\":{\"digest\":\"ab\",\"n\":1000}}");
    assert_int_equal(br_test_ncalls(t), 3);
    const br_test_call *c = br_test_call_at(t, 2);
    assert_string_equal(c->method, "GET");
    assert_string_equal(c->path, "/hash?n=1000&data=dashboard");
    assert_int_equal(c->status, 200);
    assert_int_equal(br_test_call_at(t, 0)->status, 200);
    assert_null(br_test_call_at(t, 3));

    /* Without the stub, no worker serves /hash: the branch is an error object. */
    br_test_clear(t);
    assert_int_equal(br_test_stub(t, "GET", "/hash", 503, "{\"detail\":\"no worker\"}"), 0);
    assert_int_equal(br_test_get(t, "/dashboard", &r), 0);
    assert_non_null(
        strstr(r.body, "\"hash\":{\"error\":{\"status\":503,\"detail\":\"no worker\"}}"));
    br_test_destroy(&t);
}

static void jobs_are_recorded_and_run(void **state)
{
    (void)state;
    char dir[] = "/tmp/barista-test-client-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char outbox[sizeof(dir) + 16];
    snprintf(outbox, sizeof(outbox), "%s/outbox.txt", dir);
    const br_service_spec *io[] = {&br_signup_service, &br_email_service};
    const char *const options[] = {"outbox", outbox, NULL};
    br_test *t = br_test_new(io, BR_NELEMS(io), options);
    assert_non_null(t);
    br_test_reply r;
    assert_int_equal(br_test_post(t, "/signup", "{\"email\":\"ada@example.com\"}", &r), 0);
    assert_int_equal(r.status, 201);
    assert_int_equal(br_test_njobs(t), 1);
    const br_test_job *j = br_test_job_at(t, 0);
    assert_string_equal(j->task, "email");
    assert_string_equal(j->payload, "{\"to\":\"ada@example.com\"}");

    br_test_job_result res;
    assert_int_equal(br_test_run_job(t, j->task, j->payload, &res), 0);
    assert_int_equal(res.outcome, BR_TEST_JOB_OK);
    assert_int_equal(br_test_run_job(t, "email", "{}", &res), 0);
    assert_int_equal(res.outcome, BR_TEST_JOB_FATAL);
    assert_non_null(strstr(res.error, "payload"));
    assert_int_equal(br_test_run_job(t, "nope", NULL, &res), BR_ENOTFOUND);

    /* A body that is not JSON never reaches the handler. */
    assert_int_equal(br_test_post(t, "/signup", "{nope", &r), 0);
    assert_int_equal(r.status, 422);
    assert_non_null(strstr(r.body, "json_invalid"));
    br_test_destroy(&t);

    char line[256] = "";
    FILE *f = fopen(outbox, "r");
    assert_non_null(f);
    assert_non_null(fgets(line, sizeof(line), f));
    fclose(f);
    assert_non_null(strstr(line, " ada@example.com\n"));
    unlink(outbox);
    rmdir(dir);
}

static void a_cpu_service_computes_on_its_thread(void **state)
{
    (void)state;
    const br_service_spec *cpu[] = {&br_hash_service};
    br_test *t = br_test_new(cpu, 1, NULL);
    assert_non_null(t);
    br_test_reply r;
    assert_int_equal(br_test_get(t, "/hash?n=1&data=abc", &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"digest\":\"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb4"
                                "10ff61f20015ad\",\"n\":1}");
    br_test_destroy(&t);
}

/* ---------------------------------------------------------------------------------- */
/* A service with a life cycle: a counter in its data, an option, init and fini.       */

/* What the counter service's hooks saw, for the test to check. */
static struct {
    int inits;     /* init calls */
    int finis;     /* fini calls */
    int last_seen; /* the count fini found */
} seen;

typedef struct counter {
    int64_t n;    /* requests counted */
    int64_t step; /* the "step" option */
} counter;

static int counter_init(br_svc *svc)
{
    seen.inits++;
    if (br_svc_option(svc, "fail-with"))
        return br_svc_fail(svc, "asked to fail: %s", br_svc_option(svc, "fail-with"));
    counter *c = calloc(1, sizeof(*c));
    if (!c)
        return br_svc_fail(svc, "out of memory");
    if (br_svc_option_int(svc, "step", &c->step) != 0)
        c->step = 1;
    assert_non_null(br_svc_loop(svc));
    br_svc_set_data(svc, c);
    return 0;
}

static void counter_fini(br_svc *svc)
{
    counter *c = br_svc_data(svc);
    seen.finis++;
    seen.last_seen = (int)c->n;
    free(c);
}

static void count(br_req *req)
{
    counter *c = br_req_data(req);
    c->n += c->step;
    br_writer *w = br_reply_start(req, 200);
    br_w_obj(w);
    br_w_key_int(w, "n", c->n);
    br_w_key_cstr(w, "service", br_svc_name(br_req_svc(req)));
    br_w_end(w);
    br_reply_send(req);
}

static const br_route_spec counter_routes[] = {
    {.method = "GET", .path = "/count", .handler = count},
};

static const br_option_spec counter_options[] = {
    {.name = "step", .type = BR_TYPE_INT, .has_min = true, .min = 1, .def = "1"},
    {.name = "fail-with", .help = "make init fail"},
};

static const br_service_spec counter_service = {
    .name = "counter",
    .kind = BR_KIND_IO,
    .routes = counter_routes,
    .nroutes = BR_NELEMS(counter_routes),
    .options = counter_options,
    .noptions = BR_NELEMS(counter_options),
    .init = counter_init,
    .fini = counter_fini,
};

static void data_lives_from_init_to_fini(void **state)
{
    (void)state;
    memset(&seen, 0, sizeof(seen));
    const br_service_spec *svc[] = {&counter_service};
    const char *const options[] = {"step", "5", NULL};
    br_test *t = br_test_new(svc, 1, options);
    assert_non_null(t);
    assert_int_equal(seen.inits, 1);
    br_test_reply r;
    assert_int_equal(br_test_get(t, "/count", &r), 0);
    assert_int_equal(br_test_get(t, "/count", &r), 0);
    assert_string_equal(r.body, "{\"n\":10,\"service\":\"counter\"}");
    assert_int_equal(seen.finis, 0);
    br_test_destroy(&t);
    assert_int_equal(seen.finis, 1);
    assert_int_equal(seen.last_seen, 10);
}

static void a_failed_init_never_serves_and_bad_options_never_start(void **state)
{
    (void)state;
    memset(&seen, 0, sizeof(seen));
    const br_service_spec *both[] = {&br_hello_service, &counter_service};
    const char *const fail[] = {"fail-with", "no database", NULL};
    assert_null(br_test_new(both, 2, fail));
    assert_int_equal(seen.inits, 1);
    assert_int_equal(seen.finis, 0); /* its own fini never runs */

    const char *const bad[] = {"step", "0", NULL};
    assert_null(br_test_new(both, 2, bad));
    const char *const unknown[] = {"nope", "1", NULL};
    assert_null(br_test_new(both, 2, unknown));
    assert_int_equal(seen.inits, 1);
}

/* ---------------------------------------------------------------------------------- */
/* A service whose data the runtime allocates (data_size), with service memory.        */

typedef struct tally {
    int64_t total; /* sum of every ?by= */
    br_str last;   /* the last ?note=, copied into the service's memory */
} tally;

static void add(br_req *req)
{
    tally *t = br_req_data(req);
    br_str note;
    t->total += br_req_int_or(req, BR_IN_QUERY, "by", 1);
    if (br_req_query(req, "note", &note) == 0)
        t->last = br_svc_copy(br_req_svc(req), note);
    br_reply_pack(req, 200, "{s:I, s:S}", "total", t->total, "last", t->last);
}

static const br_route_spec tally_routes[] = {{.method = "GET", .path = "/tally", .handler = add}};

static const br_service_spec tally_service = {.name = "tally",
                                              .kind = BR_KIND_IO,
                                              .routes = tally_routes,
                                              .nroutes = 1,
                                              .data_size = sizeof(tally)};

static void runtime_data_and_service_memory_outlive_requests(void **state)
{
    (void)state;
    const br_service_spec *svc[] = {&tally_service};
    br_test *t = br_test_new(svc, 1, NULL);
    assert_non_null(t);
    br_test_reply r;
    assert_int_equal(br_test_get(t, "/tally?by=2&note=first", &r), 0);
    assert_string_equal(r.body, "{\"total\":2,\"last\":\"first\"}");
    assert_int_equal(br_test_get(t, "/tally", &r), 0);
    assert_string_equal(r.body, "{\"total\":3,\"last\":\"first\"}");
    /* A bad ?by= is recorded: the reply the handler sends becomes the 422. */
    assert_int_equal(br_test_get(t, "/tally?by=x", &r), 0);
    assert_int_equal(r.status, 422);
    assert_string_equal(r.body, "{\"detail\":[{\"type\":\"int_parsing\",\"loc\":[\"query\",\"by\"],"
                                "\"msg\":\"Input should be a valid integer, unable to parse string "
                                "as an integer\",\"input\":\"x\"}]}");
    br_test_destroy(&t);
}

/* ---------------------------------------------------------------------------------- */
/* Body fields read FastAPI's way.                                                     */

static void order(br_req *req)
{
    br_str item = br_req_field_str(req, "items.0.name");
    int64_t qty = br_req_field_int(req, "items.0.qty");
    double price = br_req_field_float_or(req, "price", 1.5);
    bool gift = br_req_field_bool_or(req, "gift", false);
    br_str note = br_req_field_str_or(req, "note", "none");
    br_reply_pack(req, 200, "{s:S, s:I, s:f, s:b, s:S, s:i}", "item", item, "qty", qty, "price",
                  price, "gift", gift, "note", note, "keys", (int)br_value_len(br_req_json(req)));
}

static const br_route_spec order_routes[] = {
    {.method = "POST", .path = "/order", .handler = order, .body = BR_BODY_MSGPACK}};

static const br_service_spec order_service = {
    .name = "order", .kind = BR_KIND_IO, .routes = order_routes, .nroutes = 1};

static void body_fields_are_read_by_path_and_errors_listed(void **state)
{
    (void)state;
    const br_service_spec *svc[] = {&order_service};
    br_test *t = br_test_new(svc, 1, NULL);
    assert_non_null(t);
    br_test_reply r;
    assert_int_equal(
        br_test_post(t, "/order", "{\"items\":[{\"name\":\"tea\",\"qty\":2}],\"gift\":true}", &r),
        0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"item\":\"tea\",\"qty\":2,\"price\":1.5,\"gift\":true,"
                                "\"note\":\"none\",\"keys\":2}");
    assert_int_equal(br_test_post(t, "/order", "{\"items\":[{\"qty\":2.5}],\"gift\":\"yes\"}", &r),
                     0);
    assert_int_equal(r.status, 422);
    assert_string_equal(
        r.body, "{\"detail\":[{\"type\":\"missing\",\"loc\":[\"body\",\"items\",0,\"name\"],"
                "\"msg\":\"Field required\",\"input\":null},"
                "{\"type\":\"int_type\",\"loc\":[\"body\",\"items\",0,\"qty\"],"
                "\"msg\":\"Input should be a valid integer\",\"input\":null},"
                "{\"type\":\"bool_type\",\"loc\":[\"body\",\"gift\"],"
                "\"msg\":\"Input should be a valid boolean\",\"input\":null}]}");
    br_test_destroy(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(routes_answer_as_a_client_sees_them),
        cmocka_unit_test(a_late_reply_is_a_504_and_the_worker_carries_on),
        cmocka_unit_test(calls_are_routed_to_own_routes_or_stubs_and_recorded),
        cmocka_unit_test(jobs_are_recorded_and_run),
        cmocka_unit_test(a_cpu_service_computes_on_its_thread),
        cmocka_unit_test(data_lives_from_init_to_fini),
        cmocka_unit_test(a_failed_init_never_serves_and_bad_options_never_start),
        cmocka_unit_test(runtime_data_and_service_memory_outlive_requests),
        cmocka_unit_test(body_fields_are_read_by_path_and_errors_listed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
