/*
 * test_contract_decl.c - a worker refuses a service whose typed contract breaks
 * barista/schema.h's rules before it ever connects, and takes one that keeps them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "barista/worker.h"

static void handler(br_req *req)
{
    br_reply_status(req, 204);
}

static br_worker *worker_with_mode(br_body_mode mode, const br_schema *body,
                                   const br_response_spec *responses, size_t n)
{
    const br_route_spec routes[] = {{.method = "POST",
                                     .path = "/x",
                                     .handler = handler,
                                     .body = mode,
                                     .body_schema = body,
                                     .responses = responses,
                                     .nresponses = n}};
    const br_service_spec service = {
        .name = "x", .kind = BR_KIND_IO, .routes = routes, .nroutes = 1};
    const br_service_spec *services[] = {&service};
    br_worker_options opts = {.connect = "tcp://127.0.0.1:1"};
    return br_worker_new(services, 1, &opts);
}

static br_worker *worker_for(const br_schema *body, const br_response_spec *responses, size_t n)
{
    return worker_with_mode(BR_BODY_MSGPACK, body, responses, n);
}

static void takes_a_contract_that_keeps_the_rules(void **state)
{
    (void)state;
    const br_field fields[] = {
        {"n", &(const br_schema){.type = BR_SCHEMA_INTEGER, BR_GE(0)}, true}};
    const br_schema body = {.type = BR_SCHEMA_OBJECT, .title = "In", BR_FIELDS(fields)};
    const br_response_spec responses[] = {{201, NULL, &body}, {404, NULL, &br_schema_http_error}};
    br_worker *w = worker_for(&body, responses, 2);
    assert_non_null(w);
    br_worker_destroy(&w);
}

static void refuses_a_contract_that_breaks_them(void **state)
{
    (void)state;
    const br_schema bad_default = {.type = BR_SCHEMA_INTEGER, .def = "many"};
    const br_field fields[] = {{"n", &bad_default, false}};
    const br_schema body = {.type = BR_SCHEMA_OBJECT, BR_FIELDS(fields)};
    assert_null(worker_for(&body, NULL, 0));
    const br_schema bounds_on_text = {.type = BR_SCHEMA_STRING, BR_GE(1)};
    assert_null(worker_for(&bounds_on_text, NULL, 0));
    const br_response_spec bad_status[] = {{99, NULL, NULL}};
    assert_null(worker_for(NULL, bad_status, 1));
    /* A body schema on a RAW route: the gateway converts MSGPACK bodies only. */
    const br_schema any_object = {.type = BR_SCHEMA_OBJECT};
    assert_null(worker_with_mode(BR_BODY_RAW, &any_object, NULL, 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(takes_a_contract_that_keeps_the_rules),
        cmocka_unit_test(refuses_a_contract_that_breaks_them),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
