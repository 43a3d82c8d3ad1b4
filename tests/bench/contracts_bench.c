/*
 * contracts_bench.c - what schema validation adds to a request on the gateway's loop.
 *
 * Times, on the benchmark's 1 KiB body (contracts_body.h), what a route without a
 * schema pays (JSON to msgpack) and what a route with the 10-field BenchUser model pays
 * (JSON to msgpack, then gw_contract_check: validation and conversion), reusing
 * buffers as the gateway does.  The model is the one typed_service.c declares for
 * POST /typed/bench.  The two cases alternate in ten rounds of about 0.1 s each and
 * each reports its fastest round: the machine is shared, and the minimum is the cost
 * with the least interference.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "contracts.h"
#include "contracts_body.h"
#include "json.h"

#define BENCH_NS     100000000ull
#define BENCH_ROUNDS 10

static const char body[] = CONTRACTS_BENCH_BODY;

static const char *const roles[] = {"low", "normal", "high"};
static const br_schema str200 = {.type = BR_SCHEMA_STRING, .max_length = 200};
static const br_schema nonneg = {.type = BR_SCHEMA_INTEGER, BR_GE(0)};
static const br_field fields[] = {
    {"id", &(const br_schema){.type = BR_SCHEMA_STRING, .format = BR_FORMAT_UUID}, true},
    {"name", &str200, true},
    {"email", &(const br_schema){.type = BR_SCHEMA_STRING, .format = BR_FORMAT_EMAIL}, true},
    {"age", &nonneg, true},
    {"score", &(const br_schema){.type = BR_SCHEMA_NUMBER, BR_GE(0), BR_LE(100)}, true},
    {"active", &(const br_schema){.type = BR_SCHEMA_BOOLEAN}, true},
    {"role", &(const br_schema){.type = BR_SCHEMA_STRING, BR_ENUM(roles)}, true},
    {"tags", &(const br_schema){.type = BR_SCHEMA_ARRAY, .items = &str200, .max_length = 20}, true},
    {"bio", &str200, true},
    {"visits", &nonneg, false},
};
static const br_schema model = {.type = BR_SCHEMA_OBJECT, .title = "BenchUser", BR_FIELDS(fields)};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int main(void)
{
    br_buf schema = {0}, mp = {0}, out = {0}, errors = {.max = GW_CONTRACT_MAX_ERROR_BODY};
    if (br_schema_encode(&model, &schema) != 0)
        return 1;
    br_route route = {.body = BR_BODY_MSGPACK,
                      .body_schema = {(const char *)schema.data, (uint32_t)schema.len}};
    gw_contract *c = NULL;
    char why[256];
    if (gw_contract_new(&route, &c, why, sizeof why) != 0) {
        fprintf(stderr, "contracts_bench: %s\n", why);
        return 1;
    }
    size_t len = sizeof body - 1;
    double ns[2] = {1e30, 1e30};
    for (int round = 0; round < 2 * BENCH_ROUNDS; round++) {
        int with_schema = round % 2;
        uint64_t n = 0, t0 = now_ns(), t;
        do {
            for (int i = 0; i < 1000; i++, n++) {
                mp.len = 0;
                out.len = 0;
                errors.len = 0;
                if (gw_json_to_msgpack(body, len, &mp, NULL, 0) != 0)
                    return 1;
                if (!with_schema)
                    continue;
                gw_contract_req r = {.has_body = true,
                                     .body = {(const char *)mp.data, (uint32_t)mp.len}};
                gw_fill fills[1];
                size_t nfills;
                if (gw_contract_check(c, &r, &out, fills, &nfills, &errors) != 0) {
                    fprintf(stderr, "contracts_bench: the body does not validate: %.*s\n",
                            (int)errors.len, (const char *)errors.data);
                    return 1;
                }
            }
        } while ((t = now_ns()) - t0 < BENCH_NS);
        double per = (double)(t - t0) / (double)n;
        if (per < ns[with_schema])
            ns[with_schema] = per;
    }
    printf("contracts_bench: %zu-byte JSON body, 10-field model\n", len);
    printf("  json -> msgpack (no schema)            %8.0f ns\n", ns[0]);
    printf("  json -> msgpack + validate and convert %8.0f ns\n", ns[1]);
    printf("  validation and conversion alone        %8.0f ns\n", ns[1] - ns[0]);
    gw_contract_destroy(&c);
    br_buf_free(&schema);
    br_buf_free(&mp);
    br_buf_free(&out);
    br_buf_free(&errors);
    return 0;
}
