/*
 * test_zap.c - the ZAP handler on a real CURVE ROUTER and real DEALER clients, all on
 * one libuv loop: an authorised key's messages arrive; an unknown key, a wrong server
 * key and a client without CURVE never deliver anything; closing the handler lets
 * the context terminate and the loop close cleanly.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <zmq.h>

#include <barista/curve.h>
#include <barista/zsock.h>

#include "zap.h"

typedef struct rig {
    uv_loop_t loop;
    void *ctx;
    gw_zap *zap;
    br_zsock *router;         /* the CURVE server: records what arrives */
    br_curve_keypair server;  /* its keys */
    br_curve_keyset *allowed; /* the authorised keys */
    char endpoint[64];        /* where the router listens */
    char got[8][16];          /* bodies received, in order */
    int ngot;                 /* entries in got */
    int closed;               /* close callbacks run */
    uv_timer_t check;         /* polls the stop condition */
    uv_timer_t guard;         /* fails the test instead of hanging */
    uint64_t want_refused;    /* stop when the handler refused this many ... */
    int want_got;             /* ... and this many messages arrived */
} rig;

static void on_router(br_zsock *zs, const br_zframe *f, size_t n, void *arg)
{
    rig *r = arg;
    assert_int_equal(n, 2);
    assert_true(r->ngot < 8 && f[1].len < 16);
    memcpy(r->got[r->ngot], f[1].data, f[1].len);
    r->got[r->ngot++][f[1].len] = '\0';
}

static void on_closed(void *arg)
{
    ((rig *)arg)->closed++;
}

static void on_guard(uv_timer_t *t)
{
    fail_msg("timed out: %d messages, %llu refused", ((rig *)t->data)->ngot,
             (unsigned long long)gw_zap_refused(((rig *)t->data)->zap));
}

static void on_check(uv_timer_t *t)
{
    rig *r = t->data;
    if (r->ngot >= r->want_got && gw_zap_refused(r->zap) >= r->want_refused)
        uv_stop(&r->loop);
}

static int setup(void **state)
{
    static rig r;
    memset(&r, 0, sizeof(r));
    if (uv_loop_init(&r.loop) != 0 || br_curve_keypair_generate(&r.server) != 0)
        return -1;
    r.ctx = zmq_ctx_new();
    r.allowed = br_curve_keyset_new();
    r.zap = gw_zap_new(&r.loop, r.ctx, r.allowed);
    if (!r.ctx || !r.allowed || !r.zap)
        return -1;
    void *s = zmq_socket(r.ctx, ZMQ_ROUTER);
    int zero = 0;
    size_t len = sizeof(r.endpoint);
    char why[256];
    if (zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof(zero)) != 0 ||
        br_curve_server_setup(s, &r.server, GW_ZAP_DOMAIN, why, sizeof(why)) != 0 ||
        zmq_bind(s, "tcp://127.0.0.1:*") != 0 ||
        zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, r.endpoint, &len) != 0)
        return -1;
    r.router = br_zsock_new(&r.loop, s, on_router, &r);
    uv_timer_init(&r.loop, &r.check);
    uv_timer_init(&r.loop, &r.guard);
    r.check.data = r.guard.data = &r;
    *state = &r;
    return r.router ? 0 : -1;
}

static int teardown(void **state)
{
    rig *r = *state;
    br_zsock_close(r->router, on_closed, r);
    gw_zap_shutdown(r->zap, on_closed, r);
    uv_close((uv_handle_t *)&r->check, NULL);
    uv_close((uv_handle_t *)&r->guard, NULL);
    uv_run(&r->loop, UV_RUN_DEFAULT);
    assert_int_equal(r->closed, 2);
    zmq_ctx_term(r->ctx); /* would hang if a socket were left open */
    br_curve_keyset_destroy(&r->allowed);
    return uv_loop_close(&r->loop) == 0 ? 0 : -1;
}

/* A DEALER that sends `body` once connected; CURVE with `keys` unless NULL, trusting
 * `server_key`. */
static void *client(rig *r, const br_curve_keypair *keys, const char *server_key, const char *body)
{
    void *s = zmq_socket(r->ctx, ZMQ_DEALER);
    int zero = 0;
    char why[256];
    assert_non_null(s);
    assert_int_equal(zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof(zero)), 0);
    if (keys)
        assert_int_equal(br_curve_client_setup(s, server_key, keys, why, sizeof(why)), 0);
    assert_int_equal(zmq_connect(s, r->endpoint), 0);
    assert_int_equal(zmq_send(s, body, strlen(body), ZMQ_DONTWAIT), (int)strlen(body));
    return s;
}

/* Runs the loop until `got` messages arrived and `refused` peers were refused. */
static void run_until(rig *r, int got, uint64_t refused)
{
    r->want_got = got;
    r->want_refused = refused;
    uv_timer_start(&r->check, on_check, 5, 5);
    uv_timer_start(&r->guard, on_guard, 20000, 0);
    uv_run(&r->loop, UV_RUN_DEFAULT);
    uv_timer_stop(&r->check);
    uv_timer_stop(&r->guard);
}

static void admits_an_authorised_key_and_refuses_an_unknown_one(void **state)
{
    rig *r = *state;
    br_curve_keypair good, bad;
    assert_int_equal(br_curve_keypair_generate(&good), 0);
    assert_int_equal(br_curve_keypair_generate(&bad), 0);
    assert_int_equal(br_curve_keyset_add(r->allowed, good.public_key, BR_CURVE_Z85_LEN, "w", 1), 0);
    void *intruder = client(r, &bad, r->server.public_key, "intruder");
    run_until(r, 0, 1);
    void *worker = client(r, &good, r->server.public_key, "worker");
    run_until(r, 1, 1);
    assert_int_equal(r->ngot, 1);
    assert_string_equal(r->got[0], "worker");
    zmq_close(intruder);
    zmq_close(worker);
}

static void logs_a_burst_of_refusals_once(void **state)
{
    rig *r = *state;
    enum { BURST = 8 };
    void *s[BURST];
    for (int i = 0; i < BURST; i++) {
        br_curve_keypair k;
        assert_int_equal(br_curve_keypair_generate(&k), 0);
        s[i] = client(r, &k, r->server.public_key, "stranger");
    }
    run_until(r, 0, BURST);
    assert_int_equal(r->ngot, 0);
    /* One line per second at most: eight lines would take the burst seven seconds. */
    assert_true(gw_zap_logged(r->zap) >= 1);
    assert_true(gw_zap_logged(r->zap) < BURST);
    for (int i = 0; i < BURST; i++)
        zmq_close(s[i]);
}

static void delivers_nothing_from_clients_without_the_right_handshake(void **state)
{
    rig *r = *state;
    br_curve_keypair good, fake_server;
    assert_int_equal(br_curve_keypair_generate(&good), 0);
    assert_int_equal(br_curve_keypair_generate(&fake_server), 0);
    assert_int_equal(br_curve_keyset_add(r->allowed, good.public_key, BR_CURVE_Z85_LEN, "", 0), 0);
    /* No CURVE at all, and an authorised key that trusts the wrong server: both fail
     * before ZAP is asked.  A later authorised client's message proves the router was
     * listening all along. */
    void *plain = client(r, NULL, NULL, "plain");
    void *misled = client(r, &good, fake_server.public_key, "misled");
    void *worker = client(r, &good, r->server.public_key, "worker");
    run_until(r, 1, 0);
    assert_int_equal(r->ngot, 1);
    assert_string_equal(r->got[0], "worker");
    assert_int_equal(gw_zap_refused(r->zap), 0);
    zmq_close(plain);
    zmq_close(misled);
    zmq_close(worker);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(admits_an_authorised_key_and_refuses_an_unknown_one, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(delivers_nothing_from_clients_without_the_right_handshake,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(logs_a_burst_of_refusals_once, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
