/*
 * test_registry.c - READY validation, the routing table the registry builds in a real
 * router, and worker selection.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "barista/proto.h"
#include "registry.h"
#include "router.h"

static void handler(struct gw_req *req, void *data)
{
    (void)req;
    (void)data;
}

static void other_handler(struct gw_req *req, void *data)
{
    (void)req;
    (void)data;
}

typedef struct fixture {
    gw_router *router;
    gw_registry *reg;
    int arg; /* its address is the registry's handler argument */
} fixture;

static int setup(void **state)
{
    static fixture f;
    f.router = gw_router_new();
    f.reg = gw_registry_new(f.router, handler, &f.arg, 4);
    if (!f.router || !f.reg)
        return -1;
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    gw_registry_destroy(&f->reg);
    assert_null(f->reg);
    gw_registry_destroy(&f->reg);
    gw_router_destroy(&f->router);
    return 0;
}

/* A READY with one service of `kind` serving the given routes. */
typedef struct ready_builder {
    br_ready ready;
    br_service services[2];
    br_route routes[4];
    br_param params[2];
} ready_builder;

static br_ready *one_service(ready_builder *b, const char *name, uint8_t kind,
                             const char *const *paths, uint32_t npaths, uint32_t capacity)
{
    memset(b, 0, sizeof(*b));
    for (uint32_t i = 0; i < npaths; i++) {
        b->routes[i].method = br_str_c("GET");
        b->routes[i].path = br_str_c(paths[i]);
    }
    b->services[0].name = br_str_c(name);
    b->services[0].kind = kind;
    b->services[0].routes = b->routes;
    b->services[0].nroutes = npaths;
    b->ready.worker_id = br_str_c("test:1");
    b->ready.kind = kind;
    b->ready.capacity = capacity;
    b->ready.services = b->services;
    b->ready.nservices = 1;
    return &b->ready;
}

/* The registry's entry for GET path, or NULL. */
static gw_route_entry *entry_for(gw_router *router, const char *path)
{
    gw_route_match m;
    if (gw_router_match(router, "GET", path, strlen(path), &m, NULL, 0) != 0)
        return NULL;
    return m.route->data;
}

/* The entry for GET path, failing the test when there is none. */
static gw_route_entry *entry_must(gw_router *router, const char *path)
{
    static gw_route_entry none; /* never returned: keeps -Wnull-dereference quiet */
    gw_route_entry *e = entry_for(router, path);
    assert_non_null(e);
    return e ? e : &none;
}

static gw_worker *add_ok(fixture *f, const char *ident, const br_ready *r)
{
    char reason[256] = "";
    gw_worker *w = NULL;
    assert_int_equal(
        gw_registry_add(f->reg, ident, strlen(ident), r, 1000, &w, reason, sizeof(reason)), 0);
    assert_non_null(w);
    return w;
}

/* Registers r at ident expecting refusal with `want`; the reason must contain
 * `because`. */
static void add_refused(fixture *f, const char *ident, const br_ready *r, int want,
                        const char *because)
{
    char reason[256] = "";
    gw_worker *w = NULL;
    assert_int_equal(
        gw_registry_add(f->reg, ident, strlen(ident), r, 0, &w, reason, sizeof(reason)), want);
    assert_null(w);
    assert_non_null(strstr(reason, because));
}

static void accepts_ready_and_routes_to_copies_of_the_declaration(void **state)
{
    fixture *f = *state;
    ready_builder b;
    /* Strings in writable memory, overwritten after registration: the entry must
     * hold copies. */
    char path[] = "/hello/{name}";
    char pname[] = "name";
    const char *paths[] = {"/hello", path};
    br_ready *r = one_service(&b, "hello", BR_KIND_IO, paths, 2, 8);
    b.params[0] = (br_param){.name = br_str_c(pname),
                             .in = BR_IN_PATH,
                             .type = BR_TYPE_STR,
                             .required = true,
                             .has_max = true,
                             .max = 10};
    b.routes[1].params = b.params;
    b.routes[1].nparams = 1;
    b.routes[1].timeout_ms = 250;
    b.routes[1].body = BR_BODY_RAW;
    gw_worker *w = add_ok(f, "\x01\x02", r);
    memset(path, 'x', sizeof(path) - 1);
    memset(pname, 'y', sizeof(pname) - 1);

    assert_int_equal(w->credit, 8);
    assert_true(gw_worker_live(w));
    gw_route_entry *e = entry_must(f->router, "/hello/bob");
    assert_ptr_equal(e->arg, &f->arg);
    assert_string_equal(e->service->name, "hello");
    assert_string_equal(e->path, "/hello/{name}");
    assert_int_equal(e->timeout_ms, 250);
    assert_int_equal(e->body, BR_BODY_RAW);
    assert_int_equal(e->nparams, 1);
    assert_true(br_str_eq(e->params[0].name, "name"));
    assert_true(e->params[0].required);
    assert_non_null(entry_for(f->router, "/hello"));
    assert_ptr_equal(gw_registry_find(f->reg, "\x01\x02", 2), w);
    assert_true(gw_registry_ready(f->reg));
}

static void later_worker_adds_its_routes_to_the_service(void **state)
{
    fixture *f = *state;
    ready_builder b;
    const char *first[] = {"/a"};
    const char *second[] = {"/a", "/b"};
    add_ok(f, "w1", one_service(&b, "svc", BR_KIND_IO, first, 1, 1));
    assert_null(entry_for(f->router, "/b"));
    gw_worker *w2 = add_ok(f, "w2", one_service(&b, "svc", BR_KIND_IO, second, 2, 1));
    gw_route_entry *e = entry_must(f->router, "/b");
    assert_ptr_equal(e->service, w2->services[0]);
    assert_int_equal(e->service->nroutes, 2);
    assert_int_equal(e->service->nworkers, 2);
    assert_int_equal(gw_registry_nservices(f->reg), 1);
}

static void refuses_a_worker_mixing_kinds(void **state)
{
    fixture *f = *state;
    ready_builder b;
    const char *paths[] = {"/mixed"};
    br_ready *r = one_service(&b, "mixed", BR_KIND_CPU, paths, 1, 1);
    r->kind = BR_KIND_IO;
    add_refused(f, "w", r, BR_EVALUE, "mixed kinds");
    assert_null(entry_for(f->router, "/mixed"));
    assert_int_equal(gw_registry_nworkers(f->reg), 0);
}

static void refuses_a_service_announced_with_another_kind(void **state)
{
    fixture *f = *state;
    ready_builder b;
    const char *paths[] = {"/hash"};
    add_ok(f, "cpu", one_service(&b, "hash", BR_KIND_CPU, paths, 1, 1));
    const char *more[] = {"/hash2"};
    add_refused(f, "io", one_service(&b, "hash", BR_KIND_IO, more, 1, 1), BR_EVALUE,
                "already registered as cpu");
    assert_null(entry_for(f->router, "/hash2"));
}

static void refuses_a_route_owned_by_another_service_and_changes_nothing(void **state)
{
    fixture *f = *state;
    ready_builder b;
    const char *paths[] = {"/shared"};
    add_ok(f, "w1", one_service(&b, "one", BR_KIND_IO, paths, 1, 1));
    const char *grab[] = {"/fresh", "/shared"};
    add_refused(f, "w2", one_service(&b, "two", BR_KIND_IO, grab, 2, 1), BR_EVALUE,
                "owned by service 'one'");
    assert_null(entry_for(f->router, "/fresh"));
    assert_int_equal(gw_registry_nservices(f->reg), 1);
    assert_string_equal(entry_must(f->router, "/shared")->service->name, "one");
}

/* Issue 13, route shadowing: a literal route of one service that a template of
 * another matches would outrank it in the router and take its traffic. */
static void refuses_a_route_overlapping_another_services(void **state)
{
    fixture *f = *state;
    ready_builder b;
    const char *hello[] = {"/hello/{name}", "/items/{id}/tags"};
    add_ok(f, "w1", one_service(&b, "hello", BR_KIND_IO, hello, 2, 1));
    static const struct {
        const char *method, *path, *overlaps;
    } refused[] = {{"GET", "/hello/world", "overlaps GET /hello/{name} of service 'hello'"},
                   {"HEAD", "/hello/{who}", "overlaps GET /hello/{name}"},
                   {"GET", "/{x}/bob", "overlaps GET /hello/{name}"},
                   {"GET", "/items/7/{t}", "overlaps GET /items/{id}/tags"}};
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        const char *paths[] = {"/mine", refused[i].path};
        br_ready *r = one_service(&b, "rogue", BR_KIND_IO, paths, 2, 1);
        b.routes[1].method = br_str_c(refused[i].method);
        add_refused(f, "w2", r, BR_EVALUE, refused[i].overlaps);
        assert_null(entry_for(f->router, "/mine"));
    }
    assert_string_equal(entry_must(f->router, "/hello/world")->service->name, "hello");
    /* No path matches both: another method, another depth, another literal, or an
     * empty segment that no parameter matches. */
    const char *fine[] = {"/hello/a/b", "/hello", "/items/7/labels", "/hello/"};
    add_ok(f, "w2", one_service(&b, "other", BR_KIND_IO, fine, 4, 1));
    const char *posts[] = {"/hello/world"};
    br_ready *r = one_service(&b, "poster", BR_KIND_IO, posts, 1, 1);
    b.routes[0].method = br_str_c("POST");
    add_ok(f, "w3", r);
    /* The service itself may add a literal beside its own template. */
    const char *own[] = {"/hello/{name}", "/hello/me"};
    add_ok(f, "w4", one_service(&b, "hello", BR_KIND_IO, own, 2, 1));
    assert_string_equal(entry_must(f->router, "/hello/me")->service->name, "hello");
}

static void refuses_a_ready_whose_own_services_overlap(void **state)
{
    fixture *f = *state;
    ready_builder b;
    const char *paths[] = {"/a/{x}"};
    br_ready *r = one_service(&b, "one", BR_KIND_IO, paths, 1, 1);
    b.services[1] = b.services[0];
    b.services[1].name = br_str_c("two");
    b.routes[1].method = br_str_c("GET");
    b.routes[1].path = br_str_c("/a/b");
    b.services[1].routes = &b.routes[1];
    b.services[1].nroutes = 1;
    r->nservices = 2;
    add_refused(f, "w", r, BR_EVALUE, "route GET /a/{x} of service 'one' overlaps GET /a/b");
    assert_int_equal(gw_registry_nservices(f->reg), 0);
}

static void a_retired_service_leaves_the_router_and_readiness(void **state)
{
    fixture *f = *state;
    ready_builder b;
    const char *stay[] = {"/stay"}, *gone[] = {"/gone/{x}"};
    add_ok(f, "w1", one_service(&b, "stay", BR_KIND_IO, stay, 1, 1));
    gw_worker *w = add_ok(f, "w2", one_service(&b, "gone", BR_KIND_IO, gone, 1, 1));
    gw_service *s = w->services[0];
    assert_int_equal(s->empty_since, 0);
    gw_registry_remove(f->reg, w, 4242);
    assert_int_equal(s->empty_since, 4242);
    assert_false(gw_registry_ready(f->reg));
    gw_registry_retire(f->reg, s);
    assert_null(entry_for(f->router, "/gone/x"));
    assert_int_equal(gw_registry_nservices(f->reg), 1);
    assert_true(gw_registry_ready(f->reg));
    /* Its routes are free again, for any service. */
    add_ok(f, "w3", one_service(&b, "newcomer", BR_KIND_IO, gone, 1, 1));
    assert_string_equal(entry_must(f->router, "/gone/y")->service->name, "newcomer");
}

static void a_peer_registering_again_is_added_beside_its_old_registration(void **state)
{
    fixture *f = *state;
    ready_builder b;
    br_ready *r = one_service(&b, "svc", BR_KIND_IO, NULL, 0, 1);
    add_ok(f, "1", r);
    add_ok(f, "2", r);
    add_ok(f, "3", r);
    gw_worker *old = add_ok(f, "4", r);
    /* At max_workers, the same routing id still registers (the caller drops the old). */
    gw_worker *fresh = add_ok(f, "4", r);
    assert_ptr_equal(gw_registry_find(f->reg, "4", 1), old);
    gw_registry_remove(f->reg, old, 1);
    assert_ptr_equal(gw_registry_find(f->reg, "4", 1), fresh);
    add_refused(f, "5", r, BR_EFULL, "too many workers");
}

static void rolls_back_routes_when_the_router_refuses_one(void **state)
{
    fixture *f = *state;
    /* A route the broker does not own (not a reserved path: those never reach the
     * router). */
    assert_int_equal(gw_router_add(f->router, "GET", "/owned", other_handler, NULL), 0);
    ready_builder b;
    const char *paths[] = {"/ok", "/also-ok", "/owned"};
    add_refused(f, "w", one_service(&b, "greedy", BR_KIND_IO, paths, 3, 1), BR_EVALUE, "/owned");
    assert_null(entry_for(f->router, "/ok"));
    assert_null(entry_for(f->router, "/also-ok"));
    assert_int_equal(gw_registry_nservices(f->reg), 0);
    gw_route_match m;
    assert_int_equal(gw_router_match(f->router, "GET", "/owned", 6, &m, NULL, 0), 0);
    assert_ptr_equal(m.route->handler, other_handler);
}

/* The gateway's own paths, HEAD included, and catch-alls that would answer there. */
static void refuses_routes_that_shadow_the_gateway(void **state)
{
    fixture *f = *state;
    static const struct {
        const char *method, *path;
    } refused[] = {{"HEAD", "/healthz"},      {"GET", "/readyz"},     {"GET", "/metrics"},
                   {"POST", "/openapi.json"}, {"GET", "/docs"},       {"GET", "/jobs/{id}"},
                   {"POST", "/jobs/mine"},    {"GET", "/jobs"},       {"HEAD", "/{any}"},
                   {"POST", "/{a}/{b}"},      {"DELETE", "/{x}/jobs"}};
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        ready_builder b;
        const char *paths[] = {"/fine", refused[i].path};
        br_ready *r = one_service(&b, "shadow", BR_KIND_IO, paths, 2, 1);
        b.routes[1].method = br_str_c(refused[i].method);
        add_refused(f, "w", r, BR_EVALUE, "reserved for the gateway");
        assert_null(entry_for(f->router, "/fine"));
    }
    /* GET catch-alls never win over the gateway's literal paths; lookalikes are fine. */
    ready_builder b;
    const char *fine[] = {"/{slug}", "/{a}/{b}", "/jobsearch", "/status/healthz"};
    add_ok(f, "w", one_service(&b, "fine", BR_KIND_IO, fine, 4, 1));
    assert_int_equal(gw_registry_nservices(f->reg), 1);
}

static void routes_stay_after_the_last_worker_leaves(void **state)
{
    fixture *f = *state;
    ready_builder b;
    const char *paths[] = {"/stay"};
    gw_worker *w = add_ok(f, "w", one_service(&b, "stay", BR_KIND_IO, paths, 1, 1));
    gw_service *s = w->services[0];
    gw_registry_remove(f->reg, w, 1);
    assert_int_equal(gw_registry_nworkers(f->reg), 0);
    gw_route_entry *e = entry_must(f->router, "/stay");
    assert_ptr_equal(e->service, s);
    assert_int_equal(gw_service_live(s), 0);
    assert_false(gw_registry_ready(f->reg));
    /* A returning worker of the service makes the gateway ready again. */
    add_ok(f, "w2", one_service(&b, "stay", BR_KIND_IO, paths, 1, 1));
    assert_true(gw_registry_ready(f->reg));
}

static void picks_the_live_worker_with_most_credit(void **state)
{
    fixture *f = *state;
    ready_builder b;
    const char *paths[] = {"/p"};
    gw_worker *small = add_ok(f, "a", one_service(&b, "p", BR_KIND_IO, paths, 1, 2));
    gw_worker *big = add_ok(f, "b", one_service(&b, "p", BR_KIND_IO, paths, 1, 5));
    gw_service *s = big->services[0];
    assert_ptr_equal(gw_registry_pick(s, SIZE_MAX), big);
    big->draining = true;
    assert_ptr_equal(gw_registry_pick(s, SIZE_MAX), small);
    assert_int_equal(gw_service_live(s), 1);
    /* A worker at its byte bound, or unhealthy, is passed over. */
    big->draining = false;
    big->bytes = 100;
    assert_ptr_equal(gw_registry_pick(s, 100), small);
    assert_ptr_equal(gw_registry_pick(s, 101), big);
    big->unhealthy = true;
    assert_ptr_equal(gw_registry_pick(s, SIZE_MAX), small);
    assert_int_equal(gw_service_live(s), 1);
    small->credit = 0;
    assert_null(gw_registry_pick(s, SIZE_MAX));
    small->lost = true;
    assert_int_equal(gw_service_live(s), 0);
    assert_false(gw_registry_ready(f->reg));
}

static void refuses_workers_past_the_limit(void **state)
{
    fixture *f = *state;
    ready_builder b;
    br_ready *r = one_service(&b, "many", BR_KIND_IO, NULL, 0, 1);
    add_ok(f, "1", r);
    add_ok(f, "2", r);
    add_ok(f, "3", r);
    add_ok(f, "4", r);
    add_refused(f, "5", r, BR_EFULL, "too many workers");
}

/* Services outlive their workers, so a peer that keeps joining with new service names
 * (no routes needed) must not grow the table - and the linear scans over it - without
 * bound. */
static void refuses_services_past_the_limit(void **state)
{
    fixture *f = *state;
    ready_builder b;
    char name[32];
    for (unsigned i = 0; i < GW_MAX_SERVICES; i++) {
        snprintf(name, sizeof(name), "svc%u", i);
        gw_registry_remove(f->reg, add_ok(f, "w", one_service(&b, name, BR_KIND_IO, NULL, 0, 1)),
                           1);
    }
    assert_int_equal(gw_registry_nservices(f->reg), GW_MAX_SERVICES);
    add_refused(f, "w", one_service(&b, "one-more", BR_KIND_IO, NULL, 0, 1), BR_EFULL,
                "too many services");
    assert_int_equal(gw_registry_nservices(f->reg), GW_MAX_SERVICES);
    /* A service the gateway knows already still joins. */
    add_ok(f, "w", one_service(&b, "svc7", BR_KIND_IO, NULL, 0, 1));
}

static void destroy_takes_its_routes_out_of_the_router(void **state)
{
    fixture *f = *state;
    ready_builder b;
    const char *paths[] = {"/gone"};
    add_ok(f, "w", one_service(&b, "gone", BR_KIND_IO, paths, 1, 1));
    gw_registry_destroy(&f->reg);
    assert_null(entry_for(f->router, "/gone"));
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(accepts_ready_and_routes_to_copies_of_the_declaration),
        T(later_worker_adds_its_routes_to_the_service),
        T(refuses_a_worker_mixing_kinds),
        T(refuses_a_service_announced_with_another_kind),
        T(refuses_a_route_owned_by_another_service_and_changes_nothing),
        T(refuses_a_route_overlapping_another_services),
        T(refuses_a_ready_whose_own_services_overlap),
        T(a_retired_service_leaves_the_router_and_readiness),
        T(a_peer_registering_again_is_added_beside_its_old_registration),
        T(rolls_back_routes_when_the_router_refuses_one),
        T(refuses_routes_that_shadow_the_gateway),
        T(routes_stay_after_the_last_worker_leaves),
        T(picks_the_live_worker_with_most_credit),
        T(refuses_workers_past_the_limit),
        T(refuses_services_past_the_limit),
        T(destroy_takes_its_routes_out_of_the_router),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
