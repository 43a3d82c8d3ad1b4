/*
 * test_services.c - the built-in service table, the rules for which services can
 * share a process, routing a REQUEST to its handler, and the hash arithmetic.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "registry.h"
#include "services.h"

/* The built-in service called name, or NULL. */
static const br_service_spec *builtin(const char *name)
{
    for (size_t i = 0; i < br_builtin_count; i++) {
        if (strcmp(br_builtin_services[i]->name, name) == 0)
            return br_builtin_services[i];
    }
    return NULL;
}

static void builtin_services_are_listed_by_name(void **state)
{
    (void)state;
    assert_ptr_equal(builtin("hello"), &br_hello_service);
    assert_ptr_equal(builtin("hash"), &br_hash_service);
    assert_null(builtin("hell"));
    assert_int_equal(br_builtin_count, 14);
    assert_ptr_equal(builtin("relay"), &br_relay_service);
    assert_ptr_equal(builtin("chat"), &br_chat_service);
    assert_ptr_equal(builtin("counter"), &br_counter_service);
    assert_ptr_equal(builtin("clock"), &br_clock_service);
    assert_ptr_equal(builtin("upload"), &br_upload_service);
    assert_ptr_equal(builtin("email"), &br_email_service);
    assert_ptr_equal(builtin("dashboard"), &br_dashboard_service);
    assert_ptr_equal(builtin("fetch"), &br_fetch_service);
    assert_int_equal(br_hash_service.kind, BR_KIND_CPU);
    assert_int_equal(br_sleep_service.kind, BR_KIND_IO);
}

static void io_and_cpu_services_never_share_a_process(void **state)
{
    (void)state;
    char why[256];
    const br_service_spec *mixed[] = {&br_hello_service, &br_sleep_service, &br_hash_service};
    assert_int_equal(br_services_check(mixed, 3, why, sizeof(why)), BR_EINVAL);
    assert_non_null(strstr(why, "hello (io)"));
    assert_non_null(strstr(why, "hash (cpu)"));

    const br_service_spec *io[] = {&br_hello_service, &br_sleep_service, &br_echo_service};
    assert_int_equal(br_services_check(io, 3, why, sizeof(why)), 0);
    const br_service_spec *twice[] = {&br_echo_service, &br_echo_service};
    assert_int_equal(br_services_check(twice, 2, why, sizeof(why)), BR_EINVAL);
    assert_int_equal(br_services_check(io, 0, why, sizeof(why)), BR_EINVAL);
}

static void handler(br_req *req)
{
    (void)req;
}

static void two_services_may_not_claim_one_route(void **state)
{
    (void)state;
    static const br_route_spec routes[] = {{.method = "GET", .path = "/hello", .handler = handler}};
    static const br_service_spec copycat = {
        .name = "copycat", .kind = BR_KIND_IO, .routes = routes, .nroutes = 1};
    const br_service_spec *both[] = {&br_hello_service, &copycat};
    char why[256];
    assert_int_equal(br_services_check(both, 2, why, sizeof(why)), BR_EINVAL);
    assert_non_null(strstr(why, "GET /hello"));
}

/* A service's CORS spec reaches READY's service record (missing lists empty, a zero
 * max age the default); one that could break a response header, or "*" with
 * credentials, stops the worker at start-up with a one-line reason. */
static void cors_spec_is_checked_and_described_for_ready(void **state)
{
    (void)state;
    static const br_route_spec routes[] = {{.method = "GET", .path = "/c", .handler = handler}};
    static const br_cors_spec cors = {.origins = "https://a.example", .credentials = true};
    static const br_service_spec with = {
        .name = "with", .kind = BR_KIND_IO, .routes = routes, .nroutes = 1, .cors = &cors};
    const br_service_spec *both[] = {&br_hello_service, &with};
    br__registry reg;
    char why[256];
    assert_int_equal(br__registry_init(&reg, both, 2, why, sizeof(why)), 0);
    assert_false(reg.wire[0].has_cors);
    assert_true(reg.wire[1].has_cors);
    assert_true(br_str_eq(reg.wire[1].cors.origins, "https://a.example"));
    assert_int_equal(reg.wire[1].cors.methods.len, 0);
    assert_int_equal(reg.wire[1].cors.expose.len, 0);
    assert_true(reg.wire[1].cors.credentials);
    assert_int_equal(reg.wire[1].cors.max_age_s, BR_CORS_MAX_AGE_S);
    br__registry_release(&reg);

    static const br_cors_spec bad[] = {
        {.origins = "https://a.example\r\nSet-Cookie: x=1"},
        {.origins = "https://a.example", .headers = "x-\xc3\xa9"},
        {.origins = "*", .credentials = true},
    };
    static const char *const reason[] = {"cors origins", "cors headers", "credentials"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        br_service_spec svc = with;
        svc.cors = &bad[i];
        const br_service_spec *one[] = {&svc};
        assert_int_equal(br_services_check(one, 1, why, sizeof(why)), BR_EINVAL);
        assert_non_null(strstr(why, "service with: "));
        assert_non_null(strstr(why, reason[i]));
        assert_null(strchr(why, '\n'));
    }
}

static void requests_are_routed_by_service_method_and_template(void **state)
{
    (void)state;
    const br_service_spec *io[] = {&br_hello_service, &br_echo_service};
    br__registry reg;
    char why[256];
    assert_int_equal(br__registry_init(&reg, io, 2, why, sizeof(why)), 0);
    assert_int_equal(reg.kind, BR_KIND_IO);
    assert_true(br_str_eq(reg.wire[0].routes[1].path, "/hello/{name}"));
    assert_int_equal(reg.wire[0].routes[1].nparams, 1);

    const br_route_spec *r = br__registry_route(&reg, br_str_c("hello"), br_str_c("GET"),
                                                br_str_c("/hello/{name}"), NULL);
    assert_ptr_equal(r, &br_hello_service.routes[1]);
    /* HEAD is served by the GET route. */
    r = br__registry_route(&reg, br_str_c("hello"), br_str_c("HEAD"), br_str_c("/hello"), NULL);
    assert_ptr_equal(r, &br_hello_service.routes[0]);
    assert_null(
        br__registry_route(&reg, br_str_c("hello"), br_str_c("POST"), br_str_c("/hello"), NULL));
    assert_null(
        br__registry_route(&reg, br_str_c("echo"), br_str_c("GET"), br_str_c("/hello"), NULL));
    assert_null(
        br__registry_route(&reg, br_str_c("nope"), br_str_c("GET"), br_str_c("/hello"), NULL));
    br__registry_release(&reg);
    br__registry_release(&reg);
}

/* Expected values from Python: d = hashlib.sha256(DATA).digest(), then N-1 times
 * d = hashlib.sha256(d).digest(); print(d.hex()). */
static void hash_rounds_match_hashlib(void **state)
{
    (void)state;
    static const struct {
        const char *data;
        uint64_t n;
        const char *hex;
    } cases[] = {
        {"abc", 1, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abc", 2, "4f8b42c22dd3729b519ba6f68d2da7cc5b2d606d05daed5ad5128cc03e6c6358"},
        {"", 1, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"barista", 1000, "6505e2f47deea9058b67b973afd2239d9257e8d847f5c71cdecaba5ef3499f83"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t d[BR_HASH_BYTES];
        br_hash_first(d, cases[i].data, strlen(cases[i].data));
        br_hash_more(d, cases[i].n - 1);
        char hex[BR_HASH_BYTES * 2 + 1];
        sodium_bin2hex(hex, sizeof(hex), d, sizeof(d));
        assert_string_equal(hex, cases[i].hex);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(builtin_services_are_listed_by_name),
        cmocka_unit_test(io_and_cpu_services_never_share_a_process),
        cmocka_unit_test(two_services_may_not_claim_one_route),
        cmocka_unit_test(cors_spec_is_checked_and_described_for_ready),
        cmocka_unit_test(requests_are_routed_by_service_method_and_template),
        cmocka_unit_test(hash_rounds_match_hashlib),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
