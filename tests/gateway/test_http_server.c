/*
 * test_http_server.c - the HTTP server with handlers that answer later: a real server
 * on a loopback port inside this process, a plain blocking-socket client in a second
 * thread.  The loop thread runs the server; the client thread only records what it
 * saw, and the assertions run on the main thread once both are done.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "barista/proto.h"
#include "http.h"
#include "http_server.h"
#include "loopback.h"

/* Bytes of responses a client reads in one test. */
#define CLIENT_BUF (64 * 1024)
/* Socket timeout: a test that hangs fails instead. */
#define CLIENT_TIMEOUT_S 10

/* One test's world: the loop, the server and what both threads observed. */
typedef struct fixture {
    uv_loop_t loop;
    gw_router *router;
    gw_http_server *server;
    uv_async_t client_done; /* the client thread finished */
    uint32_t shutdown_ms;   /* shutdown timeout once the client is done */
    int port;
    void (*client)(struct fixture *f);
    atomic_int aborts;     /* abort callbacks run */
    bool signalled;        /* the client already asked for shutdown */
    int second_respond_rc; /* what answering twice returned */
    char got[CLIENT_BUF];  /* everything the client read */
    size_t got_len;
} fixture;

/* A request a timer answers later. */
typedef struct delayed {
    uv_timer_t timer;
    gw_req *req;
} delayed;

static void on_delayed_closed(uv_handle_t *h)
{
    free(h->data);
}

static void on_delay(uv_timer_t *t)
{
    delayed *d = t->data;
    gw_req_respond(d->req, 200, NULL, 0, "text/plain", d->req->path, d->req->path_len);
    uv_close((uv_handle_t *)&d->timer, on_delayed_closed);
}

static void on_delayed_abort(gw_req *req, void *arg)
{
    delayed *d = arg;
    (void)req;
    uv_close((uv_handle_t *)&d->timer, on_delayed_closed);
}

/* GET /slow/{ms}: answers its own path after ms milliseconds. */
static void slow_handler(gw_req *req, void *data)
{
    fixture *f = data;
    delayed *d = calloc(1, sizeof(*d));
    assert_non_null(d);
    d->req = req;
    uv_timer_init(&f->loop, &d->timer);
    d->timer.data = d;
    unsigned ms = (unsigned)strtoul(gw_route_match_param(&req->match, 0).value, NULL, 10);
    uv_timer_start(&d->timer, on_delay, ms, 0);
    gw_req_on_abort(req, on_delayed_abort, d);
}

/* GET /fast/{x}: answers its path at once. */
static void fast_handler(gw_req *req, void *data)
{
    (void)data;
    gw_req_respond(req, 200, NULL, 0, "text/plain", req->path, req->path_len);
}

static void count_abort(gw_req *req, void *arg)
{
    fixture *f = arg;
    (void)req;
    atomic_fetch_add(&f->aborts, 1);
}

/* GET /never: never answers; counts aborts. */
static void never_handler(gw_req *req, void *data)
{
    gw_req_on_abort(req, count_abort, data);
}

/* POST /echo/{name}: answers what it saw, then tries to answer again. */
static void echo_handler(gw_req *req, void *data)
{
    fixture *f = data;
    char out[1024];
    gw_path_param name = gw_route_match_param(&req->match, 0);
    const gw_header *ua = gw_req_header(req, "x-test");
    int n = snprintf(out, sizeof(out), "m=%s p=%s q=%s name=%.*s x-test=%s n=%zu body=%.*s",
                     req->method, req->path, req->query, (int)name.value_len, name.value,
                     ua ? ua->value : "-", req->nheaders, (int)req->body_len,
                     req->body ? req->body : "");
    /* Counted, not NUL-terminated: "X-Fine" is cut from a longer buffer. */
    gw_header extra[] = {{"X-Evil", 6, "a\r\nSet-Cookie: x", 16},
                         {"content-LENGTH", 14, "1", 1},
                         {"X-Fine-and-more", 6, "yes-and-more", 3},
                         {"X-Ctl", 5, "a\x01b", 3},
                         {"X-Empty", 7, NULL, 0}};
    gw_req_respond(req, 201, extra, 5, "text/plain", out, (size_t)n);
    f->second_respond_rc = gw_req_respond(req, 200, NULL, 0, NULL, NULL, 0);
}

/* GET /detail: a detail that needs JSON escaping. */
static void detail_handler(gw_req *req, void *data)
{
    (void)data;
    gw_req_respond_detail(req, 422, "bad \"value\"\nline\\2");
}

/* GET /ctype: a content type that tries to inject a header. */
static void ctype_handler(gw_req *req, void *data)
{
    (void)data;
    gw_req_respond(req, 200, NULL, 0, "text/plain\r\nX-Injected: 1", "xy", 2);
}

static void on_server_stopped(void *arg)
{
    fixture *f = arg;
    uv_close((uv_handle_t *)&f->client_done, NULL);
}

static void on_client_done(uv_async_t *a)
{
    fixture *f = a->data;
    gw_http_server_shutdown(f->server, f->shutdown_ms, on_server_stopped, f);
}

static void client_thread(void *arg)
{
    fixture *f = arg;
    f->client(f);
    if (!f->signalled)
        uv_async_send(&f->client_done);
}

/* Runs f->client against a fresh server until it is done and the server stopped. */
static void run_fixture(fixture *f)
{
    signal(SIGPIPE, SIG_IGN);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->router = gw_router_new();
    assert_non_null(f->router);
    assert_int_equal(gw_router_add(f->router, "GET", "/slow/{ms}", slow_handler, f), 0);
    assert_int_equal(gw_router_add(f->router, "GET", "/fast/{x}", fast_handler, f), 0);
    assert_int_equal(gw_router_add(f->router, "GET", "/never", never_handler, f), 0);
    assert_int_equal(gw_router_add(f->router, "POST", "/echo/{name}", echo_handler, f), 0);
    assert_int_equal(gw_router_add(f->router, "GET", "/detail", detail_handler, f), 0);
    assert_int_equal(gw_router_add(f->router, "GET", "/ctype", ctype_handler, f), 0);
    gw_http_config cfg;
    gw_http_config_defaults(&cfg);
    f->server = gw_http_server_new(&f->loop, f->router, &cfg);
    assert_non_null(f->server);
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", 0, &addr);
    assert_int_equal(gw_http_server_start(f->server, (const struct sockaddr *)&addr), 0);
    struct sockaddr_storage bound;
    assert_int_equal(gw_http_server_address(f->server, &bound), 0);
    f->port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
    uv_async_init(&f->loop, &f->client_done, on_client_done);
    f->client_done.data = f;

    uv_thread_t thread;
    assert_int_equal(uv_thread_create(&thread, client_thread, f), 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    uv_thread_join(&thread);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    gw_http_server_destroy(&f->server);
    gw_router_destroy(&f->router);
}

/* A fixture for `client` that the test's teardown frees, run to completion. */
static fixture *run_client(void **state, void (*client)(fixture *f), uint32_t shutdown_ms)
{
    fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    *state = f;
    f->client = client;
    f->shutdown_ms = shutdown_ms;
    run_fixture(f);
    return f;
}

static int free_fixture(void **state)
{
    free(*state);
    *state = NULL;
    return 0;
}

/* ---------------------------------------------------------------------------------- */
/* The client side: blocking sockets with a timeout.  No cmocka calls here (it is not
 * thread-safe); failures show up as missing bytes in f->got.                          */

static void client_send(int fd, const char *s)
{
    size_t len = strlen(s), off = 0;
    while (off < len) {
        ssize_t n = send(fd, s + off, len - off, 0);
        if (n <= 0)
            return;
        off += (size_t)n;
    }
}

/* Reads until `count` complete responses (by Content-Length) are in f->got, or EOF. */
static void client_read_responses(fixture *f, int fd, int count)
{
    int done = 0;
    size_t scan = f->got_len;
    while (done < count && f->got_len < sizeof(f->got) - 1) {
        ssize_t n = recv(fd, f->got + f->got_len, sizeof(f->got) - 1 - f->got_len, 0);
        if (n <= 0)
            break;
        f->got_len += (size_t)n;
        f->got[f->got_len] = '\0';
        for (;;) {
            char *end = strstr(f->got + scan, "\r\n\r\n");
            if (!end)
                break;
            char *cl = strstr(f->got + scan, "Content-Length: ");
            size_t body = cl && cl < end ? strtoul(cl + 16, NULL, 10) : 0;
            size_t total = (size_t)(end + 4 - (f->got + scan)) + body;
            if (scan + total > f->got_len)
                break;
            scan += total;
            done++;
        }
    }
}

/* Sends `requests` on a new connection and reads `answers` responses into f->got. */
static void client_exchange(fixture *f, const char *requests, int answers)
{
    int fd = loopback_connect(f->port, CLIENT_TIMEOUT_S);
    client_send(fd, requests);
    client_read_responses(f, fd, answers);
    close(fd);
}

static void client_pipelined_async(fixture *f)
{
    client_exchange(f,
                    "GET /slow/150 HTTP/1.1\r\nHost: t\r\n\r\n"
                    "GET /fast/a HTTP/1.1\r\nHost: t\r\n\r\n"
                    "GET /slow/60 HTTP/1.1\r\nHost: t\r\n\r\n"
                    "GET /slow/1 HTTP/1.1\r\nHost: t\r\n\r\n"
                    "GET /fast/b HTTP/1.1\r\nHost: t\r\n\r\n",
                    5);
}

static void answers_async_pipelined_requests_in_request_order(void **state)
{
    fixture *f = run_client(state, client_pipelined_async, 1000);
    const char *order[] = {"/slow/150", "/fast/a", "/slow/60", "/slow/1", "/fast/b"};
    const char *p = f->got;
    for (size_t i = 0; i < 5; i++) {
        const char *hit = strstr(p, "\r\n\r\n");
        assert_non_null(hit);
        assert_memory_equal(hit + 4, order[i], strlen(order[i]));
        p = hit + 4 + strlen(order[i]);
    }
}

static void client_echo(fixture *f)
{
    client_exchange(f,
                    "POST /echo/ann%20b?x=1&y=2 HTTP/1.1\r\nHost: t\r\nX-TEST:  spaced value  \r\n"
                    "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n"
                    "X-Trailer: dropped\r\n\r\n"
                    "GET /detail HTTP/1.1\r\nHost: t\r\n\r\n"
                    "GET /ctype HTTP/1.1\r\nHost: t\r\n\r\n",
                    3);
}

static void handler_sees_request_and_cannot_split_the_response(void **state)
{
    fixture *f = run_client(state, client_echo, 1000);
    assert_non_null(strstr(f->got, "HTTP/1.1 201 Created\r\n"));
    assert_non_null(strstr(f->got, "m=POST p=/echo/ann%20b q=x=1&y=2 name=ann%20b "
                                   "x-test=spaced value n=3 body=hello world"));
    /* Unsafe or reserved extra headers are dropped; safe ones pass. */
    assert_null(strstr(f->got, "Set-Cookie"));
    assert_null(strstr(f->got, "Content-Length: 1\r\n"));
    assert_non_null(strstr(f->got, "X-Fine: yes\r\n"));
    assert_null(strstr(f->got, "X-Ctl"));
    assert_null(strstr(f->got, "X-Injected"));
    assert_non_null(strstr(f->got, "Content-Type: application/octet-stream\r\n"));
    assert_non_null(strstr(f->got, "X-Empty: \r\n"));
    assert_int_equal(f->second_respond_rc, BR_EINVAL);
    /* The detail goes through the one JSON string writer (json.h): quotes, backslashes
     * and control characters escaped as Python's json.dumps escapes them. */
    assert_non_null(strstr(f->got, "{\"detail\":\"bad \\\"value\\\"\\nline\\\\2\"}"));
}

static void client_disconnects(fixture *f)
{
    int fd = loopback_connect(f->port, CLIENT_TIMEOUT_S);
    client_send(fd, "GET /never HTTP/1.1\r\nHost: t\r\n\r\n"
                    "GET /slow/100000 HTTP/1.1\r\nHost: t\r\n\r\n");
    uv_sleep(100);
    close(fd);
    for (int i = 0; i < 1000 && atomic_load(&f->aborts) == 0; i++)
        uv_sleep(10);
}

static void client_disconnect_aborts_pending_requests(void **state)
{
    fixture *f = run_client(state, client_disconnects, 1000);
    assert_int_equal(atomic_load(&f->aborts), 1);
}

static void client_half_closes(fixture *f)
{
    int fd = loopback_connect(f->port, CLIENT_TIMEOUT_S);
    client_send(fd, "GET /fast/first HTTP/1.1\r\nHost: t\r\n\r\n"
                    "GET /never HTTP/1.1\r\nHost: t\r\n\r\n"
                    "GET /fast/after HTTP/1.1\r\nHost: t\r\n\r\n");
    shutdown(fd, SHUT_WR);
    client_read_responses(f, fd, 3);
    close(fd);
}

static void half_close_sends_ready_answers_and_aborts_the_rest(void **state)
{
    fixture *f = run_client(state, client_half_closes, 1000);
    /* The answer before the abandoned request goes out; the one after it cannot
     * (answers leave in order) and the connection closes. */
    assert_non_null(strstr(f->got, "/fast/first"));
    assert_null(strstr(f->got, "/fast/after"));
    assert_int_equal(atomic_load(&f->aborts), 1);
}

static void client_waits_for_never(fixture *f)
{
    int fd = loopback_connect(f->port, CLIENT_TIMEOUT_S);
    client_send(fd, "GET /never HTTP/1.1\r\nHost: t\r\n\r\n");
    uv_sleep(100);
    /* Ask for shutdown now, then read what the server says. */
    f->signalled = true;
    uv_async_send(&f->client_done);
    client_read_responses(f, fd, 1);
    close(fd);
}

static void shutdown_timeout_aborts_and_answers_503(void **state)
{
    fixture *f = run_client(state, client_waits_for_never, 100);
    assert_non_null(strstr(f->got, "HTTP/1.1 503 Service Unavailable\r\n"));
    assert_non_null(strstr(f->got, "Connection: close\r\n"));
    assert_int_equal(atomic_load(&f->aborts), 1);
}

static void config_with_a_zero_limit_is_refused(void **state)
{
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    gw_router *r = gw_router_new();
    gw_http_config cfg;
    gw_http_config_defaults(&cfg);
    cfg.max_pipeline = 0;
    assert_null(gw_http_server_new(&loop, r, &cfg));
    gw_http_config_defaults(&cfg);
    gw_http_server *s = gw_http_server_new(&loop, r, &cfg);
    assert_non_null(s);
    gw_http_server_destroy(&s);
    assert_null(s);
    gw_http_server_destroy(&s);
    gw_router_destroy(&r);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(answers_async_pipelined_requests_in_request_order, free_fixture),
        cmocka_unit_test_teardown(handler_sees_request_and_cannot_split_the_response, free_fixture),
        cmocka_unit_test_teardown(client_disconnect_aborts_pending_requests, free_fixture),
        cmocka_unit_test_teardown(half_close_sends_ready_answers_and_aborts_the_rest, free_fixture),
        cmocka_unit_test_teardown(shutdown_timeout_aborts_and_answers_503, free_fixture),
        cmocka_unit_test(config_with_a_zero_limit_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
