/*
 * life_service.c - a test-only service with a life cycle, for the tests that run it
 * in a process of its own (barista-worker-test --services life):
 *
 *   GET /life   -> {"served": N}: requests served since init
 *
 * init allocates the counter (or fails with --life-fail's text as the reason), fini
 * logs how many requests it saw and frees it.
 */
#include <stdio.h>
#include <stdlib.h>

#include "test_services.h"

static int life_init(br_svc *svc)
{
    const char *fail = br_svc_option(svc, "life-fail");
    if (fail)
        return br_svc_fail(svc, "%s", fail);
    int64_t *served = calloc(1, sizeof(*served));
    if (!served)
        return br_svc_fail(svc, "out of memory");
    br_svc_set_data(svc, served);
    return 0;
}

static void life_fini(br_svc *svc)
{
    int64_t *served = br_svc_data(svc);
    fprintf(stderr, "life: fini after %lld requests\n", (long long)*served);
    free(served);
}

static void life(br_req *req)
{
    int64_t *served = br_req_data(req);
    ++*served;
    br_writer *w = br_reply_start(req, 200);
    br_w_obj(w);
    br_w_key_int(w, "served", *served);
    br_w_end(w);
    br_reply_send(req);
}

static const br_route_spec routes[] = {
    {.method = "GET", .path = "/life", .handler = life, .summary = "requests served"},
};

static const br_option_spec options[] = {
    {.name = "life-fail", .env = "BARISTA_LIFE_FAIL", .help = "make init fail with this reason"},
};

const br_service_spec br_test_life_service = {
    .name = "life",
    .kind = BR_KIND_IO,
    .summary = "test only: init, data and fini",
    .routes = routes,
    .nroutes = BR_NELEMS(routes),
    .options = options,
    .noptions = BR_NELEMS(options),
    .init = life_init,
    .fini = life_fini,
};
