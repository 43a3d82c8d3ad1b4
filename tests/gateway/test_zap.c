/*
 * test_zap.c - worker authentication.  The ZAP handler on a real CURVE ROUTER and
 * real DEALER clients, all on one libuv loop: an authorised key's messages arrive
 * carrying the key as User-Id; an unknown key, a wrong server key and a client
 * without CURVE never deliver anything; closing the handler lets the context
 * terminate and the loop close cleanly.  And the certificate set (keys.c): loading a
 * directory of CZMQ certificates, refusing bad ones with the file at fault, the
 * services a certificate allows, and a reload on the thread pool.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <czmq.h>
#include <zmq.h>

#include <barista/curve.h>
#include <barista/zsock.h>

#include "zap.h"

typedef struct rig {
    uv_loop_t loop;
    void *ctx;
    gw_zap *zap;
    br_zsock *router;      /* the CURVE server: records what arrives */
    gw_curve curve;        /* its keys and the authorised certificates */
    char endpoint[64];     /* where the router listens */
    char got[8][16];       /* bodies received, in order */
    char user[8][48];      /* their User-Id properties */
    int ngot;              /* entries in got */
    int closed;            /* close callbacks run */
    uv_timer_t check;      /* polls the stop condition */
    uv_timer_t guard;      /* fails the test instead of hanging */
    uint64_t want_refused; /* stop when the handler refused this many ... */
    int want_got;          /* ... and this many messages arrived */
} rig;

static void on_router(br_zsock *zs, const br_zframe *f, size_t n, void *arg)
{
    rig *r = arg;
    assert_int_equal(n, 2);
    assert_true(r->ngot < 8 && f[1].len < 16);
    memcpy(r->got[r->ngot], f[1].data, f[1].len);
    r->got[r->ngot][f[1].len] = '\0';
    const char *user = zmq_msg_gets(f[1].msg, "User-Id");
    snprintf(r->user[r->ngot++], sizeof(r->user[0]), "%s", user ? user : "");
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
    if (uv_loop_init(&r.loop) != 0 || br_curve_keypair_generate(&r.curve.server) != 0)
        return -1;
    r.ctx = zmq_ctx_new();
    r.curve.on = true;
    r.curve.clients = zcertstore_new(NULL);
    r.zap = gw_zap_new(&r.loop, r.ctx, &r.curve);
    if (!r.ctx || !r.curve.clients || !r.zap)
        return -1;
    void *s = zmq_socket(r.ctx, ZMQ_ROUTER);
    int zero = 0;
    size_t len = sizeof(r.endpoint);
    char why[256];
    if (zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof(zero)) != 0 ||
        br_curve_server_setup(s, &r.curve.server, GW_ZAP_DOMAIN, why, sizeof(why)) != 0 ||
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
    gw_curve_release(&r->curve);
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

/* Authorises kp's public key in c with the given services metadata (NULL: none). */
static void authorise(gw_curve *c, const br_curve_keypair *kp, const char *services)
{
    uint8_t pub[BR_CURVE_KEY_LEN], none[BR_CURVE_KEY_LEN] = {0};
    assert_true(br_curve_key_valid(kp->public_key, BR_CURVE_Z85_LEN, pub));
    zcert_t *cert = zcert_new_from(pub, none);
    assert_non_null(cert);
    zcert_set_meta(cert, "name", "w");
    if (services)
        zcert_set_meta(cert, "services", "%s", services);
    zcertstore_insert(c->clients, &cert);
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
    authorise(&r->curve, &good, "hello");
    void *intruder = client(r, &bad, r->curve.server.public_key, "intruder");
    run_until(r, 0, 1);
    void *worker = client(r, &good, r->curve.server.public_key, "worker");
    run_until(r, 1, 1);
    assert_int_equal(r->ngot, 1);
    assert_string_equal(r->got[0], "worker");
    /* The broker finds the key's certificate by the connection's User-Id. */
    assert_string_equal(r->user[0], good.public_key);
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
        s[i] = client(r, &k, r->curve.server.public_key, "stranger");
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
    authorise(&r->curve, &good, "*");
    /* No CURVE at all, and an authorised key that trusts the wrong server: both fail
     * before ZAP is asked.  A later authorised client's message proves the router was
     * listening all along. */
    void *plain = client(r, NULL, NULL, "plain");
    void *misled = client(r, &good, fake_server.public_key, "misled");
    void *worker = client(r, &good, r->curve.server.public_key, "worker");
    run_until(r, 1, 0);
    assert_int_equal(r->ngot, 1);
    assert_string_equal(r->got[0], "worker");
    assert_int_equal(gw_zap_refused(r->zap), 0);
    zmq_close(plain);
    zmq_close(misled);
    zmq_close(worker);
}

/* ---------------------------------------------------------------------------------- */
/* The certificate set.                                                                */

/* A fresh temporary directory in dir (64 bytes). */
static void temp_dir(char *dir)
{
    snprintf(dir, 64, "/tmp/barista-keys-XXXXXX");
    assert_non_null(mkdtemp(dir));
}

static void remove_dir(const char *dir)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* Saves a new certificate as dir/name (+ _secret); its public key into pub (41). */
static void save_cert(const char *dir, const char *name, const char *services, char *pub)
{
    char path[256];
    zcert_t *cert = zcert_new();
    assert_non_null(cert);
    zcert_set_meta(cert, "name", "%s", name);
    if (services)
        zcert_set_meta(cert, "services", "%s", services);
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    assert_int_equal(zcert_save(cert, path), 0);
    if (pub)
        memcpy(pub, zcert_public_txt(cert), BR_CURVE_Z85_LEN + 1);
    zcert_destroy(&cert);
}

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void loads_certificates_and_checks_their_services(void **state)
{
    (void)state;
    char dir[64], auth[96], secret[128];
    char io[BR_CURVE_Z85_LEN + 1], any[BR_CURVE_Z85_LEN + 1], none[BR_CURVE_Z85_LEN + 1];
    temp_dir(dir);
    snprintf(auth, sizeof(auth), "%s/authorized", dir);
    assert_int_equal(mkdir(auth, 0700), 0);
    save_cert(dir, "gateway", NULL, NULL);
    save_cert(auth, "io", "hello,echo", io);
    save_cert(auth, "any", "*", any);
    save_cert(auth, "none", NULL, none);
    write_file(auth, ".hidden", "not a certificate");
    snprintf(secret, sizeof(secret), "%s/gateway_secret", dir);
    gw_curve c;
    assert_int_equal(gw_curve_load(&c, secret, auth), 0);
    assert_true(c.on);
    /* The _secret files beside the public ones and hidden files are skipped. */
    assert_int_equal(c.nclients, 3);
    char why[256];
    assert_int_equal(gw_curve_may_serve(&c, io, br_str_c("hello"), why, sizeof(why)), 0);
    assert_int_equal(gw_curve_may_serve(&c, io, br_str_c("echo"), why, sizeof(why)), 0);
    assert_int_equal(gw_curve_may_serve(&c, io, br_str_c("ech"), why, sizeof(why)), BR_EVALUE);
    assert_int_equal(gw_curve_may_serve(&c, io, br_str_c("hash"), why, sizeof(why)), BR_EVALUE);
    assert_non_null(strstr(why, "key io may not serve service 'hash' (its certificate allows: "
                                "hello,echo)"));
    assert_int_equal(gw_curve_may_serve(&c, any, br_str_c("hash"), why, sizeof(why)), 0);
    assert_int_equal(gw_curve_may_serve(&c, none, br_str_c("hello"), why, sizeof(why)), BR_EVALUE);
    assert_non_null(strstr(why, "allows: no service"));
    assert_int_equal(
        gw_curve_may_serve(&c, c.server.public_key, br_str_c("hello"), why, sizeof(why)),
        BR_EVALUE);
    assert_string_equal(gw_curve_name(&c, io), "io");
    /* Local mode: the gateway's own key serves anything, and still after a reload. */
    assert_int_equal(gw_curve_authorise_self(&c), 0);
    assert_int_equal(gw_curve_may_serve(&c, c.server.public_key, br_str_c("x"), why, sizeof(why)),
                     0);
    gw_curve_release(&c);
    remove_dir(dir);
}

static void refuses_bad_certificate_sets_naming_the_file(void **state)
{
    (void)state;
    static const struct {
        const char *name, *text, *because;
    } bad[] = {
        {"old", "# io\nrq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7 io-1\n", "before certificates"},
        {"broken", "curve\n    public-key = \"tooshort\"\n", "not 40 Z85 characters"},
        {"empty", "metadata\n    name = \"x\"\n", "no curve section"},
    };
    char dir[64], secret[96];
    temp_dir(dir);
    save_cert(dir, "gateway", NULL, NULL);
    snprintf(secret, sizeof(secret), "%s/gateway_secret", dir);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char auth[128];
        snprintf(auth, sizeof(auth), "%s/auth%zu", dir, i);
        assert_int_equal(mkdir(auth, 0700), 0);
        write_file(auth, bad[i].name, bad[i].text);
        gw_curve c;
        assert_int_equal(gw_curve_load(&c, secret, auth), -1);
        assert_false(c.on);
    }
    /* The same key twice, and a public certificate given as the gateway's secret. */
    char auth[128], pub[BR_CURVE_Z85_LEN + 1], twice[300], path[128];
    snprintf(auth, sizeof(auth), "%s/twice", dir);
    assert_int_equal(mkdir(auth, 0700), 0);
    save_cert(auth, "a", "*", pub);
    snprintf(twice, sizeof(twice), "curve\n    public-key = \"%s\"\n", pub);
    write_file(auth, "b", twice);
    gw_curve c;
    assert_int_equal(gw_curve_load(&c, secret, auth), -1);
    snprintf(path, sizeof(path), "%s/gateway", dir);
    assert_int_equal(gw_curve_load(&c, path, auth), -1);
    /* Half a configuration. */
    assert_int_equal(gw_curve_load(&c, secret, ""), -1);
    assert_int_equal(gw_curve_load(&c, "", ""), 0);
    assert_false(c.on);
    remove_dir(dir);
}

typedef struct reload_rig {
    uv_loop_t loop;
    int calls; /* done callbacks */
    int rc;    /* the last one's rc */
} reload_rig;

static void on_reloaded(void *arg, int rc)
{
    reload_rig *rr = arg;
    rr->calls++;
    rr->rc = rc;
}

static void reloads_on_the_thread_pool_and_keeps_the_old_set_on_error(void **state)
{
    (void)state;
    char dir[64], auth[96], secret[96];
    char first[BR_CURVE_Z85_LEN + 1], second[BR_CURVE_Z85_LEN + 1];
    temp_dir(dir);
    snprintf(auth, sizeof(auth), "%s/authorized", dir);
    assert_int_equal(mkdir(auth, 0700), 0);
    save_cert(dir, "gateway", NULL, NULL);
    save_cert(auth, "first", "*", first);
    snprintf(secret, sizeof(secret), "%s/gateway_secret", dir);
    gw_curve c;
    reload_rig rr = {0};
    assert_int_equal(uv_loop_init(&rr.loop), 0);
    assert_int_equal(gw_curve_load(&c, secret, auth), 0);
    assert_int_equal(gw_curve_authorise_self(&c), 0);
    /* A second certificate appears, the first goes: after the reload only the second
     * (and the gateway's own key, local mode) is known. */
    save_cert(auth, "second", "*", second);
    char path[160];
    snprintf(path, sizeof(path), "%s/first", auth);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(gw_curve_reload(&c, &rr.loop, on_reloaded, &rr), 0);
    assert_int_equal(gw_curve_reload(&c, &rr.loop, on_reloaded, &rr), BR_EFULL);
    assert_true(gw_curve_known(&c, first)); /* not swapped before the loop runs */
    uv_run(&rr.loop, UV_RUN_DEFAULT);
    assert_int_equal(rr.calls, 1);
    assert_int_equal(rr.rc, 0);
    assert_false(gw_curve_known(&c, first));
    assert_true(gw_curve_known(&c, second));
    assert_true(gw_curve_known(&c, c.server.public_key));
    /* A broken file makes the next reload fail: the set stays as it was. */
    write_file(auth, "broken", "public-key: x\n");
    assert_int_equal(gw_curve_reload(&c, &rr.loop, on_reloaded, &rr), 0);
    uv_run(&rr.loop, UV_RUN_DEFAULT);
    assert_int_equal(rr.calls, 2);
    assert_int_equal(rr.rc, -1);
    assert_true(gw_curve_known(&c, second));
    gw_curve_release(&c);
    assert_int_equal(uv_loop_close(&rr.loop), 0);
    remove_dir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(admits_an_authorised_key_and_refuses_an_unknown_one, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(delivers_nothing_from_clients_without_the_right_handshake,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(logs_a_burst_of_refusals_once, setup, teardown),
        cmocka_unit_test(loads_certificates_and_checks_their_services),
        cmocka_unit_test(refuses_bad_certificate_sets_naming_the_file),
        cmocka_unit_test(reloads_on_the_thread_pool_and_keeps_the_old_set_on_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
