/*
 * test_middleware.c - a service's before/after hooks (br_service_spec.before/.after),
 * run by the SDK's test client on a real worker loop: the before hook refuses a
 * request without a tenant (the handler never runs), hands the tenant to the handler
 * in request memory otherwise, and the after hook adds a header to every reply - the
 * handler's, the hook's own refusal, and a CPU service's computed on its thread.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "barista/testing.h"
#include "barista/worker.h"

/* Handlers that ran: the before hook's refusals must not count. */
static int handled;

/* The tenant the before hook picked, for the handler (request memory). */
typedef struct tenant {
    char name[32];
} tenant;

static bool pick_tenant(br_req *req)
{
    br_str t;
    if (br_req_header(req, "x-tenant", &t) != 0 || t.len == 0 ||
        t.len >= sizeof(((tenant *)0)->name)) {
        br_reply_error(req, 403, "no tenant");
        return false;
    }
    tenant *tn = br_req_alloc(req, sizeof(*tn));
    if (!tn) {
        br_reply_error(req, 503, "out of memory");
        return false;
    }
    memcpy(tn->name, t.ptr, t.len);
    tn->name[t.len] = '\0';
    br_req_set_state(req, tn);
    return true;
}

/* A hook that says no and forgets to reply: the SDK answers 500 for it. */
static bool forgetful(br_req *req)
{
    (void)req;
    return false;
}

static void stamp(br_req *req, uint16_t status)
{
    char v[16];
    snprintf(v, sizeof(v), "%u", status);
    br_reply_header(req, "x-after", v);
}

static void whoami(br_req *req)
{
    handled++;
    const tenant *tn = br_req_state(req);
    br_reply_pack(req, 200, "{s:s}", "tenant", tn->name);
}

static const br_route_spec io_routes[] = {{.method = "GET", .path = "/who", .handler = whoami}};
static const br_service_spec io_service = {.name = "mw",
                                           .kind = BR_KIND_IO,
                                           .routes = io_routes,
                                           .nroutes = 1,
                                           .before = pick_tenant,
                                           .after = stamp};
static const br_service_spec cpu_service = {.name = "mwcpu",
                                            .kind = BR_KIND_CPU,
                                            .routes = io_routes,
                                            .nroutes = 1,
                                            .before = pick_tenant,
                                            .after = stamp};
static const br_route_spec lost_routes[] = {{.method = "GET", .path = "/lost", .handler = whoami}};
static const br_service_spec lost_service = {
    .name = "lost", .kind = BR_KIND_IO, .routes = lost_routes, .nroutes = 1, .before = forgetful};

static void run_hooks(const br_service_spec *svc)
{
    const br_service_spec *const services[] = {svc};
    br_test *t = br_test_new(services, 1, NULL);
    assert_non_null(t);
    handled = 0;
    br_test_reply r;
    assert_int_equal(br_test_get(t, "/who", &r), 0);
    assert_int_equal(r.status, 403);
    assert_string_equal(r.body, "{\"detail\":\"no tenant\"}");
    assert_string_equal(br_test_header(&r, "x-after"), "403");
    assert_int_equal(handled, 0);

    static const char *const hdrs[] = {"X-Tenant: acme", NULL};
    br_test_req rq = {.target = "/who", .headers = hdrs};
    assert_int_equal(br_test_request(t, &rq, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"tenant\":\"acme\"}");
    assert_string_equal(br_test_header(&r, "x-after"), "200");
    assert_int_equal(handled, 1);
    br_test_destroy(&t);
}

static void io_service_hooks_refuse_pass_and_stamp(void **state)
{
    (void)state;
    run_hooks(&io_service);
}

static void cpu_service_hooks_run_on_the_loop_around_the_thread(void **state)
{
    (void)state;
    run_hooks(&cpu_service);
}

static void before_hook_that_forgets_to_reply_gets_a_500(void **state)
{
    (void)state;
    const br_service_spec *const services[] = {&lost_service};
    br_test *t = br_test_new(services, 1, NULL);
    assert_non_null(t);
    handled = 0;
    br_test_reply r;
    assert_int_equal(br_test_get(t, "/lost", &r), 0);
    assert_int_equal(r.status, 500);
    assert_int_equal(handled, 0);
    br_test_destroy(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(io_service_hooks_refuse_pass_and_stamp),
        cmocka_unit_test(cpu_service_hooks_run_on_the_loop_around_the_thread),
        cmocka_unit_test(before_hook_that_forgets_to_reply_gets_a_500),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
