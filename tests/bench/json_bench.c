/*
 * json_bench.c - nanoseconds per conversion at the JSON edge.
 *
 * Times gw_msgpack_to_json (every structured reply) and gw_json_to_msgpack (every JSON
 * request body) on a minimal reply and on a ~1 KiB document, reusing one output buffer
 * as the gateway does.  Each case runs for about half a second.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "json.h"

/* Wall time each case runs for. */
#define BENCH_NS 500000000ull

static const char small_doc[] = "{\"message\":\"hello world\"}";

static const char large_doc[] =
    "{\"id\":184467440737,\"name\":\"Barista order service\",\"active\":true,"
    "\"ratio\":0.7321,\"tags\":[\"coffee\",\"tea\",\"espresso\",\"latte\",\"mocha\"],"
    "\"owner\":{\"login\":\"ada\",\"email\":\"ada@example.com\",\"since\":\"2019-04-01\","
    "\"roles\":[\"admin\",\"barista\"],\"score\":98.5},"
    "\"items\":[{\"sku\":\"A-1001\",\"qty\":2,\"price\":3.5,\"note\":\"extra hot\"},"
    "{\"sku\":\"B-2002\",\"qty\":1,\"price\":4.25,\"note\":\"oat milk, no sugar\"},"
    "{\"sku\":\"C-3003\",\"qty\":3,\"price\":2.75,\"note\":null},"
    "{\"sku\":\"D-4004\",\"qty\":12,\"price\":1.1,\"note\":\"to go \\\"please\\\"\"}],"
    "\"history\":[1,2,3,5,8,13,21,34,55,89,144,233,377,610,987,1597,2584,4181],"
    "\"hours\":{\"mon\":\"07:00-18:00\",\"tue\":\"07:00-18:00\",\"sat\":\"09:00-13:00\"},"
    "\"location\":{\"lat\":48.8566,\"lon\":2.3522,\"city\":\"Paris\",\"zip\":\"75001\"},"
    "\"description\":\"A small service that takes coffee orders, tracks them through the "
    "bar and reports when they are ready. It exists to exercise the gateway with a "
    "realistic mix of strings, numbers, nested objects and arrays.\","
    "\"flags\":{\"beta\":false,\"audit\":true,\"limit\":-42,\"unicode\":\"caf\\u00e9 \\u2615\"}}";

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* One case: converts `in` into a reused buffer until BENCH_NS pass; ns per call. */
static double bench(int to_json, const void *in, size_t len, size_t *outlen)
{
    br_buf out = {0};
    uint64_t iters = 0, start = now_ns(), elapsed;
    do {
        for (int i = 0; i < 1000; i++) {
            out.len = 0;
            int rc = to_json ? gw_msgpack_to_json(in, len, &out)
                             : gw_json_to_msgpack(in, len, &out, NULL, 0);
            if (rc != 0) {
                fprintf(stderr, "json_bench: conversion failed: %s\n", br_strerror(rc));
                br_buf_free(&out);
                return -1;
            }
        }
        iters += 1000;
        elapsed = now_ns() - start;
    } while (elapsed < BENCH_NS);
    *outlen = out.len;
    br_buf_free(&out);
    return (double)elapsed / (double)iters;
}

static int run(const char *name, const char *json)
{
    br_buf mp = {0};
    if (gw_json_to_msgpack(json, strlen(json), &mp, NULL, 0) != 0) {
        fprintf(stderr, "json_bench: %s does not parse\n", name);
        return 1;
    }
    size_t jlen, mlen;
    double to_json = bench(1, mp.data, mp.len, &jlen);
    double to_mp = bench(0, json, strlen(json), &mlen);
    printf("%-6s JSON %5zu B, msgpack %5zu B: msgpack->JSON %8.0f ns   JSON->msgpack %8.0f ns\n",
           name, strlen(json), mp.len, to_json, to_mp);
    br_buf_free(&mp);
    return to_json < 0 || to_mp < 0;
}

int main(void)
{
    return run("small", small_doc) | run("1KiB", large_doc);
}
