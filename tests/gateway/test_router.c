/*
 * test_router.c - the router's precedence, parameters, 404/405 and template checks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "barista/proto.h"
#include "router.h"

/* Distinct handlers so a test can tell which route matched. */
static void handler_a(struct gw_req *req, void *data)
{
    (void)req;
    (void)data;
}

static void handler_b(struct gw_req *req, void *data)
{
    (void)req;
    (void)data;
}

static int setup(void **state)
{
    gw_router *r = gw_router_new();
    if (!r)
        return -1;
    *state = r;
    return 0;
}

static int teardown(void **state)
{
    gw_router *r = *state;
    gw_router_destroy(&r);
    assert_null(r);
    gw_router_destroy(&r); /* safe twice */
    return 0;
}

/* Matches method and path, failing the test unless the result is `want`. */
static gw_route_match match_ok(gw_router *r, const char *method, const char *path)
{
    gw_route_match m;
    memset(&m, 0, sizeof(m));
    assert_int_equal(gw_router_match(r, method, path, strlen(path), &m, NULL, 0), 0);
    return m;
}

static void literal_beats_template(void **state)
{
    gw_router *r = *state;
    int a = 1, b = 2;
    assert_int_equal(gw_router_add(r, "GET", "/users/{id}", handler_a, &a), 0);
    assert_int_equal(gw_router_add(r, "GET", "/users/me", handler_b, &b), 0);
    gw_route_match m = match_ok(r, "GET", "/users/me");
    assert_ptr_equal(m.route->data, &b);
    assert_int_equal(m.nparams, 0);
    m = match_ok(r, "GET", "/users/42");
    assert_ptr_equal(m.route->data, &a);
    assert_ptr_equal(m.route->handler, handler_a);
}

static void leftmost_literal_segment_wins(void **state)
{
    gw_router *r = *state;
    int a = 1, b = 2;
    assert_int_equal(gw_router_add(r, "GET", "/{x}/b", handler_a, &a), 0);
    assert_int_equal(gw_router_add(r, "GET", "/a/{y}", handler_b, &b), 0);
    assert_ptr_equal(match_ok(r, "GET", "/a/b").route->data, &b);
    assert_ptr_equal(match_ok(r, "GET", "/z/b").route->data, &a);
}

static void extracts_path_params_in_order(void **state)
{
    gw_router *r = *state;
    assert_int_equal(gw_router_add(r, "GET", "/orgs/{org}/repos/{repo}", handler_a, NULL), 0);
    gw_route_match m = match_ok(r, "GET", "/orgs/acme/repos/rocket%20sled");
    assert_int_equal(m.nparams, 2);
    gw_path_param p0 = gw_route_match_param(&m, 0), p1 = gw_route_match_param(&m, 1);
    assert_int_equal(p0.name_len, 3);
    assert_memory_equal(p0.name, "org", 3);
    assert_int_equal(p0.value_len, 4);
    assert_memory_equal(p0.value, "acme", 4);
    assert_int_equal(p1.name_len, 4);
    assert_memory_equal(p1.name, "repo", 4);
    assert_int_equal(p1.value_len, strlen("rocket%20sled"));
    assert_memory_equal(p1.value, "rocket%20sled", p1.value_len);
    assert_string_equal(m.route->pattern, "/orgs/{org}/repos/{repo}");
}

static void param_never_matches_empty_segment(void **state)
{
    gw_router *r = *state;
    gw_route_match m;
    assert_int_equal(gw_router_add(r, "GET", "/hello/{name}", handler_a, NULL), 0);
    assert_int_equal(gw_router_match(r, "GET", "/hello/", 7, &m, NULL, 0), BR_ENOTFOUND);
    assert_int_equal(gw_router_match(r, "GET", "/hello", 6, &m, NULL, 0), BR_ENOTFOUND);
    assert_int_equal(gw_router_match(r, "GET", "/hello/a/b", 10, &m, NULL, 0), BR_ENOTFOUND);
}

static void root_and_trailing_slash_are_distinct(void **state)
{
    gw_router *r = *state;
    int a = 1, b = 2;
    assert_int_equal(gw_router_add(r, "GET", "/", handler_a, &a), 0);
    assert_int_equal(gw_router_add(r, "GET", "/x/", handler_b, &b), 0);
    assert_ptr_equal(match_ok(r, "GET", "/").route->data, &a);
    assert_ptr_equal(match_ok(r, "GET", "/x/").route->data, &b);
    gw_route_match m;
    assert_int_equal(gw_router_match(r, "GET", "/x", 2, &m, NULL, 0), BR_ENOTFOUND);
}

static void unknown_path_is_not_found(void **state)
{
    gw_router *r = *state;
    gw_route_match m;
    char allow[64] = "untouched";
    assert_int_equal(gw_router_add(r, "GET", "/healthz", handler_a, NULL), 0);
    assert_int_equal(gw_router_match(r, "GET", "/nope", 5, &m, allow, sizeof(allow)), BR_ENOTFOUND);
    assert_string_equal(allow, "untouched");
}

static void wrong_method_is_405_with_allow(void **state)
{
    gw_router *r = *state;
    gw_route_match m;
    char allow[64];
    assert_int_equal(gw_router_add(r, "GET", "/items/{id}", handler_a, NULL), 0);
    assert_int_equal(gw_router_add(r, "DELETE", "/items/{id}", handler_a, NULL), 0);
    assert_int_equal(gw_router_add(r, "PUT", "/items/special", handler_a, NULL), 0);
    assert_int_equal(gw_router_match(r, "POST", "/items/7", 8, &m, allow, sizeof(allow)),
                     BR_EINVAL);
    assert_string_equal(allow, "GET, HEAD, DELETE");
    assert_int_equal(gw_router_match(r, "POST", "/items/special", 14, &m, allow, sizeof(allow)),
                     BR_EINVAL);
    assert_string_equal(allow, "GET, HEAD, DELETE, PUT");
}

static void allow_list_is_truncated_to_capacity(void **state)
{
    gw_router *r = *state;
    gw_route_match m;
    char allow[8];
    assert_int_equal(gw_router_add(r, "GET", "/a", handler_a, NULL), 0);
    assert_int_equal(gw_router_add(r, "OPTIONS", "/a", handler_a, NULL), 0);
    assert_int_equal(gw_router_match(r, "POST", "/a", 2, &m, allow, sizeof(allow)), BR_EINVAL);
    assert_string_equal(allow, "GET");
}

static void head_falls_back_to_get(void **state)
{
    gw_router *r = *state;
    int get = 1, head = 2;
    assert_int_equal(gw_router_add(r, "GET", "/a", handler_a, &get), 0);
    assert_int_equal(gw_router_add(r, "GET", "/b", handler_a, &get), 0);
    assert_int_equal(gw_router_add(r, "HEAD", "/b", handler_b, &head), 0);
    assert_ptr_equal(match_ok(r, "HEAD", "/a").route->data, &get);
    assert_ptr_equal(match_ok(r, "HEAD", "/b").route->data, &head);
}

static void refuses_malformed_templates(void **state)
{
    gw_router *r = *state;
    const char *bad[] = {"",      "hello", "/{}",     "/{name",   "/name}",
                         "/a{b}", "/{a}b", "/{a{b}}", "/{x}/{x}", "/x/{}/y"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = gw_router_add(r, "GET", bad[i], handler_a, NULL);
        if (rc != BR_EINVAL)
            fail_msg("template \"%s\" gave %d, want BR_EINVAL", bad[i], rc);
    }
    assert_int_equal(gw_router_add(r, "get", "/a", handler_a, NULL), BR_EINVAL);
    assert_int_equal(gw_router_add(r, "", "/a", handler_a, NULL), BR_EINVAL);
    assert_int_equal(gw_router_add(r, "GET", "/a", NULL, NULL), BR_EINVAL);
}

static void refuses_duplicate_routes_ignoring_param_names(void **state)
{
    gw_router *r = *state;
    assert_int_equal(gw_router_add(r, "GET", "/u/{id}", handler_a, NULL), 0);
    assert_int_equal(gw_router_add(r, "GET", "/u/{name}", handler_b, NULL), BR_EFULL);
    assert_int_equal(gw_router_add(r, "GET", "/u/{id}", handler_b, NULL), BR_EFULL);
    assert_int_equal(gw_router_add(r, "POST", "/u/{id}", handler_b, NULL), 0);
    assert_int_equal(gw_router_add(r, "GET", "/u/me", handler_b, NULL), 0);
}

static void removed_route_no_longer_matches(void **state)
{
    gw_router *r = *state;
    gw_route_match m;
    int a = 1, b = 2;
    assert_int_equal(gw_router_add(r, "GET", "/u/me", handler_a, &a), 0);
    assert_int_equal(gw_router_add(r, "GET", "/u/{id}", handler_b, &b), 0);
    assert_int_equal(gw_router_remove(r, "GET", "/u/me"), 0);
    assert_ptr_equal(match_ok(r, "GET", "/u/me").route->data, &b);
    assert_int_equal(gw_router_remove(r, "GET", "/u/me"), BR_ENOTFOUND);
    assert_int_equal(gw_router_remove(r, "GET", "/u/{id}"), 0);
    assert_int_equal(gw_router_match(r, "GET", "/u/me", 5, &m, NULL, 0), BR_ENOTFOUND);
    /* The slot is free again. */
    assert_int_equal(gw_router_add(r, "GET", "/u/{id}", handler_b, &b), 0);
}

static void enforces_segment_and_param_limits(void **state)
{
    gw_router *r = *state;
    char tmpl[512];
    size_t used = 0;
    for (int i = 0; i < GW_ROUTE_MAX_SEGMENTS; i++)
        used += (size_t)snprintf(tmpl + used, sizeof(tmpl) - used, "/s%d", i);
    assert_int_equal(gw_router_add(r, "GET", tmpl, handler_a, NULL), 0);
    snprintf(tmpl + used, sizeof(tmpl) - used, "/one-more");
    assert_int_equal(gw_router_add(r, "GET", tmpl, handler_a, NULL), BR_ELIMIT);

    used = 0;
    for (int i = 0; i <= GW_ROUTE_MAX_PARAMS; i++)
        used += (size_t)snprintf(tmpl + used, sizeof(tmpl) - used, "/{p%d}", i);
    assert_int_equal(gw_router_add(r, "GET", tmpl, handler_a, NULL), BR_ELIMIT);

    /* A path longer than any template simply does not match. */
    gw_route_match m;
    char path[512];
    used = 0;
    for (int i = 0; i < GW_ROUTE_MAX_SEGMENTS + 4; i++)
        used += (size_t)snprintf(path + used, sizeof(path) - used, "/x");
    assert_int_equal(gw_router_match(r, "GET", path, used, &m, NULL, 0), BR_ENOTFOUND);
}

static void sixteen_params_fill_the_match(void **state)
{
    gw_router *r = *state;
    char tmpl[512], path[256];
    size_t used = 0, plen = 0;
    for (int i = 0; i < GW_ROUTE_MAX_PARAMS; i++) {
        used += (size_t)snprintf(tmpl + used, sizeof(tmpl) - used, "/{p%d}", i);
        plen += (size_t)snprintf(path + plen, sizeof(path) - plen, "/v%d", i);
    }
    assert_int_equal(gw_router_add(r, "GET", tmpl, handler_a, NULL), 0);
    gw_route_match m = match_ok(r, "GET", path);
    assert_int_equal(m.nparams, GW_ROUTE_MAX_PARAMS);
    gw_path_param last = gw_route_match_param(&m, 15);
    assert_memory_equal(last.name, "p15", 3);
    assert_memory_equal(last.value, "v15", 3);
}

/* A match keeps 16-bit spans of the path: a value right below the bound is found
 * whole, a path past it matches nothing rather than a wrapped span. */
static void long_path_values_and_the_bound(void **state)
{
    gw_router *r = *state;
    assert_int_equal(gw_router_add(r, "GET", "/a/{x}", handler_a, NULL), 0);
    size_t len = GW_ROUTE_MAX_PATH;
    char *path = malloc(len + 1);
    assert_non_null(path);
    memset(path, 'v', len);
    memcpy(path, "/a/", 3);
    gw_route_match m;
    assert_int_equal(gw_router_match(r, "GET", path, len, &m, NULL, 0), 0);
    gw_path_param x = gw_route_match_param(&m, 0);
    assert_int_equal(x.value_len, len - 3);
    assert_ptr_equal(x.value, path + 3);
    path[len] = 'v';
    assert_int_equal(gw_router_match(r, "GET", path, len + 1, &m, NULL, 0), BR_ENOTFOUND);
    free(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(literal_beats_template, setup, teardown),
        cmocka_unit_test_setup_teardown(leftmost_literal_segment_wins, setup, teardown),
        cmocka_unit_test_setup_teardown(extracts_path_params_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(param_never_matches_empty_segment, setup, teardown),
        cmocka_unit_test_setup_teardown(root_and_trailing_slash_are_distinct, setup, teardown),
        cmocka_unit_test_setup_teardown(unknown_path_is_not_found, setup, teardown),
        cmocka_unit_test_setup_teardown(wrong_method_is_405_with_allow, setup, teardown),
        cmocka_unit_test_setup_teardown(allow_list_is_truncated_to_capacity, setup, teardown),
        cmocka_unit_test_setup_teardown(head_falls_back_to_get, setup, teardown),
        cmocka_unit_test_setup_teardown(refuses_malformed_templates, setup, teardown),
        cmocka_unit_test_setup_teardown(refuses_duplicate_routes_ignoring_param_names, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(removed_route_no_longer_matches, setup, teardown),
        cmocka_unit_test_setup_teardown(enforces_segment_and_param_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(sixteen_params_fill_the_match, setup, teardown),
        cmocka_unit_test_setup_teardown(long_path_values_and_the_bound, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
