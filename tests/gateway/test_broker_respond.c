/*
 * test_broker_respond.c - a worker's reply whose HTTP answer cannot be built (failure
 * injection, issue 13).  The real HTTP server, the real broker and a DEALER playing
 * the worker share one loop in this process; a blocking client in a second thread
 * sends GET /hello.  gw_req_respond and gw_req_respond_error are replaced at link time
 * (-Wl,--wrap) so that a test can make the next calls fail as an allocation failure
 * would.  The broker must then answer a short 502, and when even that fails it must
 * leave no abort callback pointing at the request's freed exchange: the client
 * closing its connection afterwards runs the server's abort path (ASan checks it).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>
#include <zmq.h>

#include "barista/proto.h"
#include "barista/zsock.h"
#include "broker.h"
#include "http.h"
#include "http_server.h"
#include "router.h"

/* Every wait is bounded by this; the conditions are met in milliseconds. */
#define GUARD_MS 10000

/* Calls of each answer function to fail, counted down by the wrappers. */
static int fail_respond;
static int fail_respond_error;

int __real_gw_req_respond(gw_req *req, int status, const gw_header *extra, size_t nextra,
                          const char *content_type, const void *body, size_t body_len);
int __wrap_gw_req_respond(gw_req *req, int status, const gw_header *extra, size_t nextra,
                          const char *content_type, const void *body, size_t body_len);
int __real_gw_req_respond_error(gw_req *req, int status, bool retry_after, const char *detail);
int __wrap_gw_req_respond_error(gw_req *req, int status, bool retry_after, const char *detail);

int __wrap_gw_req_respond(gw_req *req, int status, const gw_header *extra, size_t nextra,
                          const char *content_type, const void *body, size_t body_len)
{
    if (fail_respond > 0) {
        fail_respond--;
        return BR_ENOMEM; /* what gw_req_respond returns when not even its 500 fits */
    }
    return __real_gw_req_respond(req, status, extra, nextra, content_type, body, body_len);
}

int __wrap_gw_req_respond_error(gw_req *req, int status, bool retry_after, const char *detail)
{
    if (fail_respond_error > 0) {
        fail_respond_error--;
        return BR_ENOMEM;
    }
    return __real_gw_req_respond_error(req, status, retry_after, detail);
}

typedef struct fx {
    uv_loop_t loop;
    gw_router *router;
    gw_broker *broker;
    gw_http_server *http;
    int port;               /* the HTTP server's */
    void *ctx;              /* the fake worker's ZeroMQ context */
    br_zsock *dealer;       /* the fake worker */
    br_decoder *decoder;    /* decodes what the broker sends it */
    int welcomed;           /* WELCOMEs received */
    int requests;           /* REQUESTs received (each answered 200 "hi") */
    uv_async_t client_done; /* the client thread finished */
    atomic_int client_over; /* set by the client thread */
    char got[4096];         /* what the client read */
    uv_timer_t guard;       /* ends a wait that would otherwise hang */
    bool timed_out;         /* the guard fired */
    int closed;             /* close callbacks run */
} fx;

static void send_msg(fx *x, const br_msg *m)
{
    br_buf buf = {0};
    assert_int_equal(br_msg_encode(m, &buf), 0);
    assert_int_equal(br_zsock_send(x->dealer, NULL, 0, buf.data, buf.len), 0);
    br_buf_free(&buf);
}

/* The fake worker: WELCOMEs are counted, every REQUEST is answered 200 "hi". */
static void dealer_recv(br_zsock *zs, const br_zframe *f, size_t n, void *arg)
{
    fx *x = arg;
    (void)zs;
    br_msg m;
    if (n != 1 || br_decoder_decode(x->decoder, f[0].data, f[0].len, &m) != 0)
        return;
    if (m.type == BR_MSG_WELCOME)
        x->welcomed++;
    if (m.type != BR_MSG_REQUEST)
        return;
    x->requests++;
    br_msg reply = {.type = BR_MSG_REPLY,
                    .u.reply = {.id = m.u.request.id,
                                .status = 200,
                                .content_type = br_str_c("text/plain"),
                                .body = br_str_c("hi")}};
    send_msg(x, &reply);
}

static void on_guard(uv_timer_t *t)
{
    ((fx *)t->data)->timed_out = true;
}

/* Runs the loop until *counter >= want or the guard fires. */
static bool run_until(fx *x, const int *counter, int want)
{
    x->timed_out = false;
    uv_timer_start(&x->guard, on_guard, GUARD_MS, 0);
    while (*counter < want && !x->timed_out)
        uv_run(&x->loop, UV_RUN_ONCE);
    uv_timer_stop(&x->guard);
    return *counter >= want;
}

static int setup(void **state)
{
    static fx x;
    memset(&x, 0, sizeof(x));
    signal(SIGPIPE, SIG_IGN);
    if (uv_loop_init(&x.loop) != 0)
        return -1;
    x.router = gw_router_new();
    gw_broker_config cfg;
    gw_broker_config_defaults(&cfg);
    cfg.endpoint = "tcp://127.0.0.1:*";
    x.broker = gw_broker_new(&x.loop, x.router, &cfg);
    gw_http_config hcfg;
    gw_http_config_defaults(&hcfg);
    x.http = gw_http_server_new(&x.loop, x.router, &hcfg);
    struct sockaddr_in addr;
    struct sockaddr_storage bound;
    uv_ip4_addr("127.0.0.1", 0, &addr);
    if (!x.router || !x.broker || !x.http || gw_broker_start(x.broker) != 0 ||
        gw_http_server_start(x.http, (const struct sockaddr *)&addr) != 0 ||
        gw_http_server_address(x.http, &bound) != 0)
        return -1;
    x.port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
    char endpoint[256];
    if (gw_broker_endpoint(x.broker, endpoint, sizeof(endpoint)) != 0)
        return -1;
    x.ctx = zmq_ctx_new();
    void *sock = zmq_socket(x.ctx, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof(zero));
    if (zmq_connect(sock, endpoint) != 0)
        return -1;
    x.dealer = br_zsock_new(&x.loop, sock, dealer_recv, &x);
    x.decoder = br_decoder_new(NULL);
    uv_timer_init(&x.loop, &x.guard);
    x.guard.data = &x;
    if (!x.dealer || !x.decoder)
        return -1;
    /* Register as the worker of GET /hello. */
    br_route route = {.method = br_str_c("GET"), .path = br_str_c("/hello")};
    br_service service = {
        .name = br_str_c("hello"), .kind = BR_KIND_IO, .routes = &route, .nroutes = 1};
    br_msg ready = {.type = BR_MSG_READY,
                    .u.ready = {.worker_id = br_str_c("fake:1"),
                                .kind = BR_KIND_IO,
                                .capacity = 4,
                                .heartbeat_ms = 1000,
                                .services = &service,
                                .nservices = 1}};
    send_msg(&x, &ready);
    if (!run_until(&x, &x.welcomed, 1))
        return -1;
    *state = &x;
    return 0;
}

static void on_closed(void *arg)
{
    ((fx *)arg)->closed++;
}

static void on_handle_closed(uv_handle_t *h)
{
    on_closed(h->data);
}

static int teardown(void **state)
{
    fx *x = *state;
    br_zsock_close(x->dealer, on_closed, x);
    gw_http_server_shutdown(x->http, 0, on_closed, x);
    gw_broker_shutdown(x->broker, on_closed, x);
    uv_close((uv_handle_t *)&x->guard, on_handle_closed);
    while (x->closed < 4)
        uv_run(&x->loop, UV_RUN_ONCE);
    gw_http_server_destroy(&x->http);
    gw_broker_destroy(&x->broker);
    gw_router_destroy(&x->router);
    br_decoder_destroy(&x->decoder);
    zmq_ctx_term(x->ctx);
    assert_int_equal(uv_loop_close(&x->loop), 0);
    fail_respond = fail_respond_error = 0;
    return 0;
}

/* The client thread: GET /hello, read whatever comes within `wait_ms`, then close.
 * No cmocka calls here (not thread-safe): what it read lands in x->got. */
typedef struct client_args {
    fx *x;
    int wait_ms;
} client_args;

static void client_thread(void *arg)
{
    client_args *a = arg;
    fx *x = a->x;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)x->port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {.tv_sec = a->wait_ms / 1000, .tv_usec = (a->wait_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
        static const char request[] = "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n";
        if (send(fd, request, sizeof(request) - 1, 0) == (ssize_t)(sizeof(request) - 1)) {
            ssize_t n = recv(fd, x->got, sizeof(x->got) - 1, 0);
            if (n > 0)
                x->got[n] = '\0';
        }
    }
    close(fd); /* the server notices: an unanswered request is aborted */
    atomic_store(&x->client_over, 1);
    uv_async_send(&x->client_done);
}

static void on_client_done(uv_async_t *a)
{
    (void)a;
}

/* Runs the client against the gateway until it has closed and the server has seen
 * the close (a few more loop turns after the client's signal). */
static void run_client(fx *x, int wait_ms)
{
    client_args args = {x, wait_ms};
    uv_async_init(&x->loop, &x->client_done, on_client_done);
    x->client_done.data = x;
    uv_thread_t thread;
    assert_int_equal(uv_thread_create(&thread, client_thread, &args), 0);
    x->timed_out = false;
    uv_timer_start(&x->guard, on_guard, GUARD_MS, 0);
    while (!atomic_load(&x->client_over) && !x->timed_out)
        uv_run(&x->loop, UV_RUN_ONCE);
    uv_thread_join(&thread);
    assert_false(x->timed_out);
    /* Let the server read the close and run its abort path. */
    uv_timer_start(&x->guard, on_guard, 200, 0);
    x->timed_out = false;
    while (!x->timed_out)
        uv_run(&x->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&x->client_done, NULL);
    uv_run(&x->loop, UV_RUN_NOWAIT);
}

static void a_reply_that_cannot_be_built_is_answered_502(void **state)
{
    fx *x = *state;
    fail_respond = 1;
    run_client(x, GUARD_MS);
    assert_int_equal(x->requests, 1);
    assert_int_equal(fail_respond, 0); /* the worker's reply reached gw_req_respond */
    assert_non_null(strstr(x->got, "HTTP/1.1 502 "));
    assert_non_null(strstr(x->got, "Bad Gateway: the reply could not be forwarded"));
    gw_broker_stats st;
    gw_broker_stats_get(x->broker, &st);
    assert_int_equal(st.status_502, 1);
}

static void nothing_dangles_when_no_answer_can_be_built(void **state)
{
    fx *x = *state;
    fail_respond = 1;
    fail_respond_error = 1;
    /* No answer comes; the client gives up and closes: the server aborts the request,
     * which must not reach the exchange the broker freed. */
    run_client(x, 300);
    assert_int_equal(x->requests, 1);
    assert_int_equal(fail_respond + fail_respond_error, 0);
    assert_string_equal(x->got, "");
    /* The broker carries on: the next request is served. */
    memset(x->got, 0, sizeof(x->got));
    atomic_store(&x->client_over, 0);
    run_client(x, GUARD_MS);
    assert_non_null(strstr(x->got, "HTTP/1.1 200 "));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(a_reply_that_cannot_be_built_is_answered_502, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(nothing_dangles_when_no_answer_can_be_built, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
