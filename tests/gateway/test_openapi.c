/*
 * test_openapi.c - the OpenAPI document written from a real registry (and router):
 * parsed back with jansson and checked for the structure clients rely on.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "barista/proto.h"
#include "openapi.h"
#include "registry.h"
#include "router.h"

static void handler(struct gw_req *req, void *data)
{
    (void)req;
    (void)data;
}

typedef struct fixture {
    gw_router *router;
    gw_registry *reg;
    json_t *doc;          /* the last document rendered */
    uint8_t auth_default; /* --auth-default for render() */
} fixture;

static int setup(void **state)
{
    static fixture f;
    memset(&f, 0, sizeof(f));
    f.router = gw_router_new();
    f.reg = gw_registry_new(f.router, handler, NULL, 8);
    *state = &f;
    return f.router && f.reg ? 0 : -1;
}

static int teardown(void **state)
{
    fixture *f = *state;
    json_decref(f->doc);
    gw_registry_destroy(&f->reg);
    gw_router_destroy(&f->router);
    return 0;
}

/* Renders the document and parses it back into f->doc, which must be valid JSON. */
static json_t *render(fixture *f, bool with_jobs)
{
    br_buf out = {.max = 1u << 20};
    assert_int_equal(gw__openapi_render(f->reg, with_jobs, f->auth_default, &out), 0);
    json_error_t err;
    json_decref(f->doc);
    f->doc = json_loadb((const char *)out.data, out.len, 0, &err);
    if (!f->doc)
        fail_msg("invalid JSON: %s at %d: %.*s", err.text, err.position, (int)out.len, out.data);
    br_buf_free(&out);
    return f->doc;
}

/* doc.paths[path][method], failing the test when absent. */
static json_t *op(fixture *f, const char *path, const char *method)
{
    json_t *o = json_object_get(json_object_get(json_object_get(f->doc, "paths"), path), method);
    if (!o)
        fail_msg("no %s %s in the document", method, path);
    return o;
}

/* The parameter named name of operation o. */
static json_t *param(json_t *o, const char *name)
{
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(o, "parameters"), i, p)
    {
        if (strcmp(json_string_value(json_object_get(p, "name")), name) == 0)
            return p;
    }
    fail_msg("no parameter %s", name);
    return NULL;
}

/* Registers worker `ident` hosting `name` with the routes given. */
static gw_worker *join(fixture *f, const char *ident, const char *name, br_route *routes,
                       uint32_t nroutes)
{
    br_service s = {
        .name = br_str_c(name), .kind = BR_KIND_IO, .routes = routes, .nroutes = nroutes};
    br_ready r = {.worker_id = br_str_c(ident),
                  .kind = BR_KIND_IO,
                  .capacity = 4,
                  .services = &s,
                  .nservices = 1};
    gw_worker *w = NULL;
    char reason[256] = "";
    assert_int_equal(
        gw_registry_add(f->reg, ident, strlen(ident), &r, 0, &w, reason, sizeof(reason)), 0);
    return w;
}

static void lists_the_gateway_routes_and_error_schemas_with_no_worker(void **state)
{
    fixture *f = *state;
    json_t *doc = render(f, true);
    assert_string_equal(json_string_value(json_object_get(doc, "openapi")), "3.1.0");
    const char *own[] = {"/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"};
    for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++)
        op(f, own[i], "get");
    json_t *post = op(f, "/jobs/{task}", "post");
    json_t *get = op(f, "/jobs/{id}", "get");
    /* Job ids are random text (issue 13): the document says so, and POST may be 404. */
    json_t *id_schema =
        json_object_get(json_array_get(json_object_get(get, "parameters"), 0), "schema");
    assert_string_equal(json_string_value(json_object_get(id_schema, "type")), "string");
    assert_string_equal(json_string_value(json_object_get(id_schema, "pattern")),
                        "^[0-9a-f]{1,36}$");
    assert_non_null(json_object_get(json_object_get(post, "responses"), "404"));
    json_t *schemas = json_object_get(json_object_get(doc, "components"), "schemas");
    json_t *detail = json_object_get(
        json_object_get(json_object_get(schemas, "HTTPValidationError"), "properties"), "detail");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(detail, "items"), "$ref")),
        "#/components/schemas/ValidationError");
    assert_non_null(json_object_get(schemas, "ValidationError"));
    /* Without the job queue its routes are left out. */
    render(f, false);
    assert_null(json_object_get(json_object_get(f->doc, "paths"), "/jobs/{id}"));
}

static void describes_declared_parameters_with_types_and_bounds(void **state)
{
    fixture *f = *state;
    br_param params[] = {
        {.name = br_str_c("id"), .in = BR_IN_PATH, .type = BR_TYPE_INT, .has_min = true, .min = 1},
        {.name = br_str_c("q"),
         .in = BR_IN_QUERY,
         .type = BR_TYPE_STR,
         .has_min = true,
         .min = 2,
         .has_max = true,
         .max = 10,
         .summary = br_str_c("search \"text\"\n")},
        {.name = br_str_c("ratio"),
         .in = BR_IN_QUERY,
         .type = BR_TYPE_FLOAT,
         .required = true,
         .has_max = true,
         .max = 0.5},
        {.name = br_str_c("x-flag"), .in = BR_IN_HEADER, .type = BR_TYPE_BOOL},
    };
    br_route route = {.method = br_str_c("GET"),
                      .path = br_str_c("/items/{id}/{rest}"),
                      .summary = br_str_c("An item"),
                      .params = params,
                      .nparams = 4,
                      .timeout_ms = 1500};
    join(f, "w1", "items", &route, 1);
    render(f, true);
    json_t *o = op(f, "/items/{id}/{rest}", "get");
    assert_string_equal(json_string_value(json_object_get(o, "summary")), "An item");
    assert_string_equal(json_string_value(json_array_get(json_object_get(o, "tags"), 0)), "items");
    assert_true(json_is_true(json_object_get(o, "x-barista-available")));
    assert_int_equal(json_integer_value(json_object_get(o, "x-barista-timeout-ms")), 1500);

    json_t *id = param(o, "id");
    assert_string_equal(json_string_value(json_object_get(id, "in")), "path");
    assert_true(json_is_true(json_object_get(id, "required"))); /* path: always */
    json_t *s = json_object_get(id, "schema");
    assert_string_equal(json_string_value(json_object_get(s, "type")), "integer");
    assert_int_equal(json_integer_value(json_object_get(s, "minimum")), 1);
    assert_null(json_object_get(s, "maximum"));

    json_t *q = param(o, "q");
    assert_true(json_is_false(json_object_get(q, "required")));
    assert_string_equal(json_string_value(json_object_get(q, "description")), "search \"text\"\n");
    s = json_object_get(q, "schema");
    assert_string_equal(json_string_value(json_object_get(s, "type")), "string");
    assert_int_equal(json_integer_value(json_object_get(s, "minLength")), 2);
    assert_int_equal(json_integer_value(json_object_get(s, "maxLength")), 10);

    s = json_object_get(param(o, "ratio"), "schema");
    assert_string_equal(json_string_value(json_object_get(s, "type")), "number");
    assert_true(json_real_value(json_object_get(s, "maximum")) == 0.5);
    json_t *flag = param(o, "x-flag");
    assert_string_equal(json_string_value(json_object_get(flag, "in")), "header");
    assert_string_equal(json_string_value(json_object_get(json_object_get(flag, "schema"), "type")),
                        "boolean");
    /* {rest} was not declared: described as a required string all the same. */
    json_t *rest = param(o, "rest");
    assert_true(json_is_true(json_object_get(rest, "required")));
    assert_string_equal(json_string_value(json_object_get(json_object_get(rest, "schema"), "type")),
                        "string");

    json_t *responses = json_object_get(o, "responses");
    const char *codes[] = {"200", "422", "502", "503", "504"};
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
        assert_non_null(json_object_get(responses, codes[i]));
}

static void groups_methods_of_one_template_and_shows_bodies(void **state)
{
    fixture *f = *state;
    br_route a[] = {{.method = br_str_c("GET"), .path = br_str_c("/things")},
                    {.method = br_str_c("PURGE"), .path = br_str_c("/things")}};
    br_route b[] = {
        {.method = br_str_c("POST"), .path = br_str_c("/things"), .body = BR_BODY_MSGPACK},
        {.method = br_str_c("PUT"), .path = br_str_c("/raw"), .body = BR_BODY_RAW}};
    join(f, "w1", "reader", a, 2);
    join(f, "w2", "writer", b, 2);
    render(f, true);
    json_t *item = json_object_get(json_object_get(f->doc, "paths"), "/things");
    assert_int_equal(json_object_size(item), 2); /* get and post; PURGE has no field */
    assert_null(json_object_get(op(f, "/things", "get"), "requestBody"));
    json_t *content =
        json_object_get(json_object_get(op(f, "/things", "post"), "requestBody"), "content");
    assert_non_null(json_object_get(content, "application/json"));
    assert_non_null(json_object_get(content, "application/msgpack"));
    content = json_object_get(json_object_get(op(f, "/raw", "put"), "requestBody"), "content");
    assert_non_null(json_object_get(content, "*/*"));
    assert_string_equal(json_string_value(json_object_get(op(f, "/raw", "put"), "operationId")),
                        "writer_put__raw");
}

static void marks_routes_of_a_service_without_live_workers(void **state)
{
    fixture *f = *state;
    br_route r = {.method = br_str_c("GET"), .path = br_str_c("/gone")};
    gw_worker *w = join(f, "w1", "gone", &r, 1);
    render(f, true);
    assert_true(json_is_true(json_object_get(op(f, "/gone", "get"), "x-barista-available")));
    gw_registry_remove(f->reg, w, 1);
    render(f, true);
    assert_true(json_is_false(json_object_get(op(f, "/gone", "get"), "x-barista-available")));
    /* The service keeps its tag, saying it has no live worker. */
    json_t *tag = json_array_get(json_object_get(f->doc, "tags"), 0);
    assert_string_equal(json_string_value(json_object_get(tag, "name")), "gone");
    assert_non_null(strstr(json_string_value(json_object_get(tag, "description")), "0 live"));
}

static void reports_a_document_larger_than_its_buffer(void **state)
{
    fixture *f = *state;
    br_buf out = {.max = 64};
    assert_int_equal(gw__openapi_render(f->reg, true, BR_AUTH_DEFAULT, &out), BR_ELIMIT);
    br_buf_free(&out);
}

/* --auth-default is the document's top-level requirement: routes that declare nothing
 * follow it, routes that declare their own say so, and the gateway's probes and docs
 * stay open with an empty list. */
static void security_follows_the_auth_default(void **state)
{
    fixture *f = *state;
    br_route routes[] = {
        {.method = br_str_c("GET"), .path = br_str_c("/dflt")},
        {.method = br_str_c("GET"), .path = br_str_c("/open"), .auth = BR_AUTH_NONE},
        {.method = br_str_c("GET"),
         .path = br_str_c("/admin"),
         .auth = BR_AUTH_REQUIRED,
         .scopes = br_str_c("admin write")},
        {.method = br_str_c("GET"), .path = br_str_c("/scoped"), .scopes = br_str_c("read")},
    };
    join(f, "w1", "guarded", routes, 4);

    json_t *doc = render(f, true);
    assert_null(json_object_get(doc, "security")); /* no --auth-default: nothing */
    assert_null(json_object_get(op(f, "/dflt", "get"), "security"));

    f->auth_default = BR_AUTH_OPTIONAL;
    doc = render(f, true);
    json_t *top = json_object_get(doc, "security");
    assert_int_equal(json_array_size(top), 3);
    assert_int_equal(json_object_size(json_array_get(top, 2)), 0); /* {}: anonymous too */
    assert_null(json_object_get(op(f, "/dflt", "get"), "security"));
    assert_null(json_object_get(op(f, "/jobs/{id}", "get"), "security"));
    assert_int_equal(json_array_size(json_object_get(op(f, "/open", "get"), "security")), 0);
    assert_non_null(json_object_get(op(f, "/open", "get"), "security"));
    const char *own[] = {"/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"};
    for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++) {
        json_t *sec = json_object_get(op(f, own[i], "get"), "security");
        assert_true(json_is_array(sec));
        assert_int_equal(json_array_size(sec), 0);
    }
    json_t *admin = json_object_get(op(f, "/admin", "get"), "security");
    assert_int_equal(json_array_size(admin), 2);
    json_t *bearer = json_object_get(json_array_get(admin, 0), "bearerAuth");
    assert_int_equal(json_array_size(bearer), 2);
    assert_string_equal(json_string_value(json_array_get(bearer, 1)), "write");
    /* Scopes on a route that follows the default: the default's mode, with them. */
    json_t *scoped = json_object_get(op(f, "/scoped", "get"), "security");
    assert_int_equal(json_array_size(scoped), 3);
    assert_string_equal(json_string_value(json_array_get(
                            json_object_get(json_array_get(scoped, 0), "bearerAuth"), 0)),
                        "read");
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(lists_the_gateway_routes_and_error_schemas_with_no_worker),
        T(describes_declared_parameters_with_types_and_bounds),
        T(groups_methods_of_one_template_and_shows_bodies),
        T(marks_routes_of_a_service_without_live_workers),
        T(reports_a_document_larger_than_its_buffer),
        T(security_follows_the_auth_default),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
