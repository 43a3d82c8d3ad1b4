/*
 * test_zsock.c - br_zsock moves every message between a ROUTER and a DEALER on one
 * libuv loop, including bursts larger than a drain batch, sends made from inside the
 * receive callback, and a close from inside the callback.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <zmq.h>

#include "barista/proto.h"
#include "barista/zsock.h"

typedef struct pair {
    uv_loop_t loop;
    void *ctx;
    br_zsock *router;      /* echoes every message back to its sender */
    br_zsock *dealer;      /* counts the echoes */
    int echoed;            /* messages the router echoed */
    int received;          /* echoes the dealer got */
    int expect;            /* stop when the dealer has this many */
    int closed;            /* br_zsock_close callbacks run */
    uint32_t last_seq;     /* sequence number of the last echo, to check order */
    int close_in_callback; /* the dealer closes itself from its callback at `expect` */
    uv_timer_t guard;      /* fails the test instead of hanging */
} pair;

static void on_closed(void *arg)
{
    ((pair *)arg)->closed++;
}

static void router_recv(br_zsock *zs, const br_zframe *f, size_t n, void *arg)
{
    pair *p = arg;
    assert_int_equal(n, 2);
    assert_int_equal(br_zsock_send(zs, f[0].data, f[0].len, f[1].data, f[1].len), 0);
    p->echoed++;
}

static void stop_all(pair *p)
{
    uv_timer_stop(&p->guard);
    uv_close((uv_handle_t *)&p->guard, NULL);
    br_zsock_close(p->router, on_closed, p);
    if (!p->close_in_callback)
        br_zsock_close(p->dealer, on_closed, p);
}

static void dealer_recv(br_zsock *zs, const br_zframe *f, size_t n, void *arg)
{
    pair *p = arg;
    uint32_t seq;
    assert_int_equal(n, 1);
    assert_int_equal(f[0].len, sizeof(seq));
    memcpy(&seq, f[0].data, sizeof(seq));
    if (p->received > 0)
        assert_true(seq == p->last_seq + 1);
    p->last_seq = seq;
    if (++p->received == p->expect) {
        if (p->close_in_callback)
            br_zsock_close(zs, on_closed, p);
        stop_all(p);
    }
}

static void on_guard(uv_timer_t *t)
{
    fail_msg("timed out: %d of %d messages", ((pair *)t->data)->received,
             ((pair *)t->data)->expect);
}

static void pair_open(pair *p, int expect)
{
    memset(p, 0, sizeof(*p));
    p->expect = expect;
    assert_int_equal(uv_loop_init(&p->loop), 0);
    p->ctx = zmq_ctx_new();
    void *r = zmq_socket(p->ctx, ZMQ_ROUTER);
    void *d = zmq_socket(p->ctx, ZMQ_DEALER);
    int zero = 0, hwm = 100000;
    zmq_setsockopt(r, ZMQ_LINGER, &zero, sizeof(zero));
    zmq_setsockopt(d, ZMQ_LINGER, &zero, sizeof(zero));
    zmq_setsockopt(r, ZMQ_SNDHWM, &hwm, sizeof(hwm));
    zmq_setsockopt(d, ZMQ_SNDHWM, &hwm, sizeof(hwm));
    zmq_setsockopt(r, ZMQ_RCVHWM, &hwm, sizeof(hwm));
    zmq_setsockopt(d, ZMQ_RCVHWM, &hwm, sizeof(hwm));
    assert_int_equal(zmq_bind(r, "inproc://zsock-test"), 0);
    assert_int_equal(zmq_connect(d, "inproc://zsock-test"), 0);
    p->router = br_zsock_new(&p->loop, r, router_recv, p);
    p->dealer = br_zsock_new(&p->loop, d, dealer_recv, p);
    assert_non_null(p->router);
    assert_non_null(p->dealer);
    uv_timer_init(&p->loop, &p->guard);
    p->guard.data = p;
    uv_timer_start(&p->guard, on_guard, 10000, 0);
}

static void pair_run_and_close(pair *p)
{
    assert_int_equal(uv_run(&p->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(p->closed, 2);
    assert_int_equal(uv_loop_close(&p->loop), 0);
    zmq_ctx_term(p->ctx);
}

static void send_burst(pair *p, int count)
{
    for (uint32_t i = 0; i < (uint32_t)count; i++)
        assert_int_equal(br_zsock_send(p->dealer, NULL, 0, &i, sizeof(i)), 0);
}

static void echoes_a_single_message(void **state)
{
    pair p;
    pair_open(&p, 1);
    send_burst(&p, 1);
    pair_run_and_close(&p);
    assert_int_equal(p.echoed, 1);
}

static void delivers_bursts_larger_than_a_batch_in_order(void **state)
{
    pair p;
    int n = BR_ZSOCK_BATCH * 40 + 17;
    pair_open(&p, n);
    send_burst(&p, n);
    pair_run_and_close(&p);
    assert_int_equal(p.echoed, n);
    assert_int_equal(p.received, n);
}

static void survives_close_from_inside_the_callback(void **state)
{
    pair p;
    pair_open(&p, 10);
    p.close_in_callback = 1;
    send_burst(&p, 50); /* more arrive after the close; they must not be delivered */
    pair_run_and_close(&p);
    assert_int_equal(p.received, 10);
}

static void closes_cleanly_without_a_callback(void **state)
{
    uv_loop_t loop;
    void *ctx = zmq_ctx_new();
    void *d = zmq_socket(ctx, ZMQ_DEALER);
    assert_int_equal(uv_loop_init(&loop), 0);
    br_zsock *zs = br_zsock_new(&loop, d, router_recv, NULL);
    assert_non_null(zs);
    br_zsock_close(zs, NULL, NULL);
    br_zsock_close(zs, NULL, NULL); /* ignored: already closing */
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
    zmq_ctx_term(ctx);
}

static void reports_unroutable_peers_on_a_mandatory_router(void **state)
{
    uv_loop_t loop;
    pair p = {0};
    void *ctx = zmq_ctx_new();
    void *r = zmq_socket(ctx, ZMQ_ROUTER);
    int one = 1, zero = 0;
    zmq_setsockopt(r, ZMQ_ROUTER_MANDATORY, &one, sizeof(one));
    zmq_setsockopt(r, ZMQ_LINGER, &zero, sizeof(zero));
    assert_int_equal(uv_loop_init(&loop), 0);
    br_zsock *zs = br_zsock_new(&loop, r, router_recv, &p);
    assert_non_null(zs);
    assert_int_equal(br_zsock_send(zs, "nobody", 6, "x", 1), BR_ENOTFOUND);
    br_zsock_close(zs, on_closed, &p);
    assert_int_equal(br_zsock_send(zs, "nobody", 6, "x", 1), BR_ECLOSED);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(p.closed, 1);
    assert_int_equal(uv_loop_close(&loop), 0);
    zmq_ctx_term(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(echoes_a_single_message),
        cmocka_unit_test(delivers_bursts_larger_than_a_batch_in_order),
        cmocka_unit_test(survives_close_from_inside_the_callback),
        cmocka_unit_test(closes_cleanly_without_a_callback),
        cmocka_unit_test(reports_unroutable_peers_on_a_mandatory_router),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
