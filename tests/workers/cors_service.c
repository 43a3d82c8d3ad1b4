/*
 * cors_service.c - a test-only service that declares its own CORS policy
 * (br_service_spec.cors), so that the integration tests can check that a policy
 * written with the SDK reaches the gateway and answers for the service's routes.
 *
 *   GET /cors-sdk     {"cors": "sdk"}
 *
 * barista-worker-test (worker_test_main.c) hosts it beside the built-in services.
 */
#include "test_services.h"

static void hello(br_req *req)
{
    br_writer *w = br_reply_start(req, 200);
    br_w_obj(w);
    br_w_key_str(w, "cors", br_str_c("sdk"));
    br_w_end(w);
    br_reply_send(req);
}

static const br_route_spec routes[] = {
    {.method = "GET", .path = "/cors-sdk", .handler = hello, .summary = "CORS of its own"},
};

static const br_cors_spec cors = {
    .origins = "https://sdk.example",
    .methods = "GET",
    .headers = "x-sdk",
    .expose = "x-request-id",
    .credentials = true,
    .max_age_s = 120,
};

const br_service_spec br_test_cors_service = {
    .name = "cors-sdk",
    .kind = BR_KIND_IO,
    .summary = "declares its own CORS policy (tests only)",
    .routes = routes,
    .nroutes = sizeof(routes) / sizeof(routes[0]),
    .cors = &cors,
};
