/*
 * typed_service.c - a test-only io service that declares typed contracts, so that the
 * integration tests can drive every rule of the gateway's validation end to end:
 *
 *   POST /typed/orders          an Order body (nested items, enum, formats, bounds,
 *                               extra keys forbidden); answers 201 with the body it
 *                               received, so a test sees the conversion
 *   POST /typed/signup-form     a small model that also takes urlencoded forms
 *   GET  /typed/items/{id}      parameters: uuid path, enum/list/default/date query,
 *                               an aliased header and a cookie; echoes what it got
 *   GET  /typed/broken          declares {"count": integer} and answers a string
 *   POST /typed/bench           the 10-field schema of the benchmark; answers 204
 *   POST /typed/bench-raw       the same route without a schema; answers 204
 *
 * barista-worker-test (worker_test_main.c) hosts it beside the built-in services.
 */
#include <stdio.h>
#include <string.h>

#include "test_services.h"

/* ---------------------------------------------------------------------------------- */
/* Schemas.                                                                            */

static const char *const priorities[] = {"low", "normal", "high"};

static const br_schema item_schema = {
    .type = BR_SCHEMA_OBJECT,
    .title = "OrderItem",
    .fields =
        (const br_field[]){
            {"sku", &(const br_schema){.type = BR_SCHEMA_STRING, .pattern = "^[A-Z]{3}-[0-9]+$"},
             true},
            {"qty", &(const br_schema){.type = BR_SCHEMA_INTEGER, BR_GE(1), BR_LT(100)}, true},
        },
    .nfields = 2,
    .extra = BR_EXTRA_FORBID,
};

static const br_field order_fields[] = {
    {"customer", &(const br_schema){.type = BR_SCHEMA_STRING, .min_length = 1, .max_length = 20},
     true},
    {"email", &(const br_schema){.type = BR_SCHEMA_STRING, .format = BR_FORMAT_EMAIL}, true},
    {"items",
     &(const br_schema){
         .type = BR_SCHEMA_ARRAY, .items = &item_schema, .min_length = 1, .max_length = 5},
     true},
    {"priority", &(const br_schema){.type = BR_SCHEMA_STRING, BR_ENUM(priorities), .def = "normal"},
     false},
    {"express", &(const br_schema){.type = BR_SCHEMA_BOOLEAN, .def = "false"}, false},
    {"weight", &(const br_schema){.type = BR_SCHEMA_NUMBER, BR_GT(0)}, false},
    {"ref", &(const br_schema){.type = BR_SCHEMA_STRING, .format = BR_FORMAT_UUID}, false},
    {"due", &(const br_schema){.type = BR_SCHEMA_STRING, .format = BR_FORMAT_DATE}, false},
    {"at", &(const br_schema){.type = BR_SCHEMA_STRING, .format = BR_FORMAT_DATE_TIME}, false},
    {"meta", &(const br_schema){.type = BR_SCHEMA_OBJECT}, false},
};

static const br_schema order_schema = {
    .type = BR_SCHEMA_OBJECT,
    .title = "Order",
    .description = "An order of one to five items",
    BR_FIELDS(order_fields),
    .extra = BR_EXTRA_FORBID,
};

static const br_response_spec order_responses[] = {
    {201, "The order as the gateway converted it", &order_schema},
    {409, "A duplicate order", &br_schema_http_error},
};

static const br_field form_fields[] = {
    {"name", &(const br_schema){.type = BR_SCHEMA_STRING, .min_length = 2}, true},
    {"age", &(const br_schema){.type = BR_SCHEMA_INTEGER, BR_GE(0)}, true},
    {"tags",
     &(const br_schema){.type = BR_SCHEMA_ARRAY,
                        .items = &(const br_schema){.type = BR_SCHEMA_STRING}},
     false},
};

static const br_schema form_schema = {
    .type = BR_SCHEMA_OBJECT, .title = "SignupForm", BR_FIELDS(form_fields)};

static const char *const kinds[] = {"a", "b"};
static const br_param_spec item_params[] = {
    {.name = "id",
     .in = BR_IN_PATH,
     .type = BR_TYPE_STR,
     .required = true,
     .schema = &(const br_schema){.type = BR_SCHEMA_STRING, .format = BR_FORMAT_UUID}},
    {.name = "kind",
     .in = BR_IN_QUERY,
     .type = BR_TYPE_STR,
     .schema = &(const br_schema){.type = BR_SCHEMA_STRING, BR_ENUM(kinds), .def = "a"},
     .summary = "a or b"},
    {.name = "tag",
     .in = BR_IN_QUERY,
     .type = BR_TYPE_STR,
     .schema = &(const br_schema){.type = BR_SCHEMA_ARRAY,
                                  .max_length = 3,
                                  .items = &(const br_schema){.type = BR_SCHEMA_STRING,
                                                              .pattern = "^[a-z]+$"}}},
    {.name = "limit",
     .in = BR_IN_QUERY,
     .type = BR_TYPE_INT,
     .schema = &(const br_schema){.type = BR_SCHEMA_INTEGER, BR_GE(1), BR_LE(100), .def = "10"}},
    {.name = "day",
     .in = BR_IN_QUERY,
     .type = BR_TYPE_STR,
     .schema = &(const br_schema){.type = BR_SCHEMA_STRING, .format = BR_FORMAT_DATE}},
    {.name = "request_id", .in = BR_IN_HEADER, .type = BR_TYPE_STR, .alias = "X-Request-Id"},
    {.name = "session",
     .in = BR_IN_COOKIE,
     .type = BR_TYPE_STR,
     .required = true,
     .has_min = true,
     .min = 3},
};

static const br_schema count_schema = {
    .type = BR_SCHEMA_OBJECT,
    .title = "Count",
    .fields = (const br_field[]){{"count", &(const br_schema){.type = BR_SCHEMA_INTEGER}, true}},
    .nfields = 1,
};
static const br_response_spec broken_responses[] = {{200, "A count", &count_schema}};

/* The benchmark's model: ten fields of the common kinds. */
static const br_schema bench_str = {.type = BR_SCHEMA_STRING, .max_length = 200};
static const br_schema bench_int = {.type = BR_SCHEMA_INTEGER, BR_GE(0)};
static const br_field bench_fields[] = {
    {"id", &(const br_schema){.type = BR_SCHEMA_STRING, .format = BR_FORMAT_UUID}, true},
    {"name", &bench_str, true},
    {"email", &(const br_schema){.type = BR_SCHEMA_STRING, .format = BR_FORMAT_EMAIL}, true},
    {"age", &bench_int, true},
    {"score", &(const br_schema){.type = BR_SCHEMA_NUMBER, BR_GE(0), BR_LE(100)}, true},
    {"active", &(const br_schema){.type = BR_SCHEMA_BOOLEAN}, true},
    {"role", &(const br_schema){.type = BR_SCHEMA_STRING, BR_ENUM(priorities)}, true},
    {"tags", &(const br_schema){.type = BR_SCHEMA_ARRAY, .items = &bench_str, .max_length = 20},
     true},
    {"bio", &bench_str, true},
    {"visits", &bench_int, false},
};
static const br_schema bench_schema = {
    .type = BR_SCHEMA_OBJECT, .title = "BenchUser", BR_FIELDS(bench_fields)};

/* ---------------------------------------------------------------------------------- */
/* Handlers.                                                                           */

/* Answers the converted body back as structured data. */
static void echo_converted(br_req *req)
{
    br_str body = br_req_body(req);
    br_reply_raw(req, 201, "application/msgpack", body.ptr, body.len);
}

/* Appends "name":"value" (JSON-escaped) to buf. */
static void put_pair(char *buf, size_t cap, const char *name, br_str v, bool found)
{
    size_t n = strlen(buf);
    if (n + 8 + strlen(name) >= cap)
        return;
    n += (size_t)snprintf(buf + n, cap - n, "%s\"%s\":", buf[n - 1] == '{' ? "" : ",", name);
    if (!found) {
        snprintf(buf + n, cap - n, "null");
        return;
    }
    buf[n++] = '"';
    for (uint32_t i = 0; i < v.len && n + 8 < cap; i++) {
        unsigned char c = (unsigned char)v.ptr[i];
        if (c == '"' || c == '\\')
            buf[n++] = '\\';
        if (c < 0x20)
            c = '?';
        buf[n++] = (char)c;
    }
    buf[n++] = '"';
    buf[n] = '\0';
}

static void items_get(br_req *req)
{
    char json[2048] = "{";
    br_str v;
    int rc = br_req_param(req, "id", &v);
    put_pair(json, sizeof json, "id", v, rc == 0);
    rc = br_req_query(req, "kind", &v);
    put_pair(json, sizeof json, "kind", v, rc == 0);
    rc = br_req_query(req, "limit", &v);
    put_pair(json, sizeof json, "limit", v, rc == 0);
    rc = br_req_header(req, "request_id", &v);
    put_pair(json, sizeof json, "request_id", v, rc == 0);
    rc = br_req_cookie(req, "session", &v);
    put_pair(json, sizeof json, "session", v, rc == 0);
    size_t n = strlen(json);
    snprintf(json + n, sizeof json - n, "}");
    br_reply_raw(req, 200, "application/json", json, strlen(json));
}

static void broken(br_req *req)
{
    static const char body[] = "\x81\xa5"
                               "count\xa4many";
    br_reply_raw(req, 200, "application/msgpack", body, sizeof body - 1);
}

static void no_content(br_req *req)
{
    br_reply_status(req, 204);
}

static const br_response_spec created[] = {{201, NULL, NULL}};
static const br_response_spec empty[] = {{204, NULL, NULL}};

static const br_route_spec typed_routes[] = {
    {.method = "POST",
     .path = "/typed/orders",
     .handler = echo_converted,
     .body = BR_BODY_MSGPACK,
     .summary = "Place an order",
     .body_schema = &order_schema,
     .responses = order_responses,
     .nresponses = BR_NELEMS(order_responses)},
    {.method = "POST",
     .path = "/typed/signup-form",
     .handler = echo_converted,
     .body = BR_BODY_MSGPACK,
     .summary = "Sign up with a form",
     .body_schema = &form_schema,
     .body_form = true,
     .responses = created,
     .nresponses = 1},
    {.method = "GET",
     .path = "/typed/items/{id}",
     .handler = items_get,
     .summary = "Read an item",
     .params = item_params,
     .nparams = BR_NELEMS(item_params)},
    {.method = "GET",
     .path = "/typed/broken",
     .handler = broken,
     .summary = "Breaks its own contract",
     .responses = broken_responses,
     .nresponses = 1},
    {.method = "POST",
     .path = "/typed/bench",
     .handler = no_content,
     .body = BR_BODY_MSGPACK,
     .summary = "Benchmark: a 10-field model",
     .body_schema = &bench_schema,
     .responses = empty,
     .nresponses = 1},
    {.method = "POST",
     .path = "/typed/bench-raw",
     .handler = no_content,
     .body = BR_BODY_MSGPACK,
     .summary = "Benchmark: no schema",
     .responses = empty,
     .nresponses = 1},
};

const br_service_spec br_test_typed_service = {
    .name = "typed",
    .kind = BR_KIND_IO,
    .summary = "typed contracts, for the tests",
    .routes = typed_routes,
    .nroutes = BR_NELEMS(typed_routes),
};
