/*
 * proto_bench.c - nanoseconds per encode and per decode of the two messages on the hot
 * path: a typical REQUEST envelope (GET /hello/world, 8 headers, one query pair) and a
 * typical REPLY (200, msgpack body {"message":"hello world"}).  For comparison it also
 * times msgpack-c's msgpack_unpack_next on the same REQUEST bytes, which builds an
 * object tree and checks nothing about the protocol.
 *
 * Usage: proto_bench [iterations]  (default 1000000; best of 5 runs is reported)
 */
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "samples.h"

#define BENCH_RUNS 5

/* One timed operation on a prepared message. */
typedef struct bench {
    const char *name;           /* printed */
    const br_msg *msg;          /* message to encode */
    const br_buf *wire;         /* bytes to decode */
    int (*op)(struct bench *b); /* the operation; returns 0 on success */
    br_buf out;                 /* encode target, reused */
    br_decoder *dec;            /* decoder, reused */
    msgpack_unpacked up;        /* msgpack-c result, reused */
} bench;

static int op_encode(bench *b)
{
    b->out.len = 0;
    return br_msg_encode(b->msg, &b->out);
}

static int op_decode(bench *b)
{
    br_msg m;
    return br_decoder_decode(b->dec, b->wire->data, b->wire->len, &m);
}

static int op_msgpack_unpack(bench *b)
{
    size_t off = 0;
    return msgpack_unpack_next(&b->up, (const char *)b->wire->data, b->wire->len, &off) ==
                   MSGPACK_UNPACK_SUCCESS
               ? 0
               : -1;
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void run(bench *b, long iterations)
{
    double best = 0;
    for (int r = 0; r < BENCH_RUNS; r++) {
        double t0 = now_ns();
        for (long i = 0; i < iterations; i++) {
            if (b->op(b) != 0) {
                fprintf(stderr, "proto_bench: %s failed\n", b->name);
                exit(1);
            }
        }
        double per = (now_ns() - t0) / (double)iterations;
        if (r == 0 || per < best)
            best = per;
    }
    printf("%-34s %8.1f ns  (%zu bytes)\n", b->name, best, b->wire->len);
}

int main(int argc, char **argv)
{
    long iterations = argc > 1 ? strtol(argv[1], NULL, 10) : 1000000;
    if (iterations <= 0) {
        fprintf(stderr, "usage: proto_bench [iterations > 0]\n");
        return 2;
    }
    br_msg req, rep;
    br_buf req_wire = {0}, rep_wire = {0};
    sample_msg(BR_MSG_REQUEST, SAMPLE_TYPICAL, &req);
    sample_msg(BR_MSG_REPLY, SAMPLE_TYPICAL, &rep);
    rep.u.reply.headers = NULL; /* the typical reply of a hello handler: no extra headers */
    rep.u.reply.nheaders = 0;
    rep.u.reply.jobs = NULL;
    rep.u.reply.njobs = 0;
    if (br_msg_encode(&req, &req_wire) < 0 || br_msg_encode(&rep, &rep_wire) < 0)
        return 1;

    br_decoder *dec = br_decoder_new(NULL);
    bench benches[] = {
        {.name = "encode REQUEST", .msg = &req, .wire = &req_wire, .op = op_encode},
        {.name = "decode REQUEST", .msg = &req, .wire = &req_wire, .op = op_decode},
        {.name = "encode REPLY", .msg = &rep, .wire = &rep_wire, .op = op_encode},
        {.name = "decode REPLY", .msg = &rep, .wire = &rep_wire, .op = op_decode},
        {.name = "msgpack_unpack_next REQUEST (ref)",
         .msg = &req,
         .wire = &req_wire,
         .op = op_msgpack_unpack},
    };
    for (size_t i = 0; i < sizeof benches / sizeof benches[0]; i++) {
        benches[i].dec = dec;
        msgpack_unpacked_init(&benches[i].up);
        run(&benches[i], iterations);
        msgpack_unpacked_destroy(&benches[i].up);
        br_buf_free(&benches[i].out);
    }
    br_decoder_destroy(&dec);
    br_buf_free(&req_wire);
    br_buf_free(&rep_wire);
    return 0;
}
