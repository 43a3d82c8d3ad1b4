/*
 * test_websocket.c - WebSocket connections on the real HTTP server (ws_conn.c): the
 * handshake's refusals (400, 426) and its 101 with Sec-WebSocket-Accept and the chosen
 * subprotocol, echo of fragmented text with a UTF-8 sequence split across frames,
 * ping/pong, the close handshake, the protocol errors 1002/1007/1009, idle pings, and
 * 1001 at shutdown.
 *
 * As in test_http_server.c, the server runs on this thread's loop and a blocking
 * client runs in a second thread, writing a transcript of what it saw; the assertions
 * run once both are done.
 */
#include <setjmp.h>
#include <stdarg.h>
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
#include "websocket.h"
#include "ws_frame.h"

#define TRANSCRIPT       8192
#define CLIENT_TIMEOUT_S 10
/* The test server's message limit: small, so that 1009 is cheap to reach. */
#define TEST_MAX_MESSAGE 1000

typedef struct fixture {
    uv_loop_t loop;
    gw_router *router;
    gw_http_server *server;
    uv_async_t client_done;
    int port;
    bool signalled;
    void (*client)(struct fixture *f);
    gw_ws_config ws_cfg;
    char log[TRANSCRIPT]; /* the client's transcript */
    size_t log_len;
    char server_log[TRANSCRIPT]; /* the server side's: on_close codes */
    size_t server_log_len;
} fixture;

__attribute__((format(printf, 3, 4))) static void logf_(char *buf, size_t *len, const char *fmt,
                                                        ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *len, TRANSCRIPT - *len, fmt, ap);
    va_end(ap);
    if (n > 0 && *len + (size_t)n < TRANSCRIPT)
        *len += (size_t)n;
}

/* ---------------------------------------------------------------------------------- */
/* The server side: an echo endpoint.                                                  */

static void on_ws_message(void *data, gw_ws_conn *ws, bool text, const uint8_t *msg, size_t len)
{
    (void)data;
    gw_ws_send(ws, text, msg, len);
}

static void on_ws_close(void *data, gw_ws_conn *ws, uint16_t code, const char *reason, size_t len)
{
    fixture *f = data;
    (void)ws;
    logf_(f->server_log, &f->server_log_len, "closed %u %.*s\n", code, (int)len, reason);
}

static void ws_handler(gw_req *req, void *data)
{
    fixture *f = data;
    static const gw_ws_hooks hooks = {.on_message = on_ws_message, .on_close = on_ws_close};
    const char *chosen;
    if (gw_req_upgrade(req, "chat superchat", &f->ws_cfg, &hooks, f, &chosen))
        logf_(f->server_log, &f->server_log_len, "open [%s]\n", chosen);
}

static void on_server_stopped(void *arg)
{
    fixture *f = arg;
    uv_close((uv_handle_t *)&f->client_done, NULL);
}

static void on_client_done(uv_async_t *a)
{
    fixture *f = a->data;
    if (!f->server)
        return;
    gw_http_server_shutdown(f->server, 1000, on_server_stopped, f);
}

static void client_thread(void *arg)
{
    fixture *f = arg;
    f->client(f);
    if (!f->signalled)
        uv_async_send(&f->client_done);
}

static fixture *run_client(void **state, void (*client)(fixture *f), uint32_t ping_ms)
{
    fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    *state = f;
    f->client = client;
    gw_ws_config_defaults(&f->ws_cfg);
    f->ws_cfg.max_message_bytes = TEST_MAX_MESSAGE;
    f->ws_cfg.max_frame_bytes = TEST_MAX_MESSAGE;
    if (ping_ms)
        f->ws_cfg.ping_interval_ms = f->ws_cfg.pong_timeout_ms = ping_ms;
    signal(SIGPIPE, SIG_IGN);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->router = gw_router_new();
    assert_int_equal(gw_router_add(f->router, "GET", "/ws", ws_handler, f), 0);
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
    return f;
}

static int free_fixture(void **state)
{
    free(*state);
    *state = NULL;
    return 0;
}

/* ---------------------------------------------------------------------------------- */
/* The client side (no cmocka calls: they are not thread-safe).                        */

/* Sends a request head and reads the answer's head (and body, by Content-Length) into
 * the transcript; returns the fd. */
static int client_request(fixture *f, const char *head)
{
    int fd = loopback_connect(f->port, CLIENT_TIMEOUT_S);
    loopback_send_all(fd, head, strlen(head));
    char got[2048];
    size_t len = 0;
    while (len < sizeof(got) - 1) {
        ssize_t n = recv(fd, got + len, 1, 0); /* byte by byte: frames may follow */
        if (n <= 0)
            break;
        len++;
        if (len >= 4 && memcmp(got + len - 4, "\r\n\r\n", 4) == 0)
            break;
    }
    got[len] = '\0';
    char *cl = strstr(got, "Content-Length: ");
    size_t body = cl ? strtoul(cl + 16, NULL, 10) : 0;
    while (body > 0 && len < sizeof(got) - 1) {
        ssize_t n = recv(fd, got + len, body < sizeof(got) - 1 - len ? body : 1, 0);
        if (n <= 0)
            break;
        len += (size_t)n;
        body -= (size_t)n;
    }
    got[len] = '\0';
    logf_(f->log, &f->log_len, "%s\n", got);
    return fd;
}

#define UPGRADE_HEAD(extra)                                                                        \
    "GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" extra "\r\n"
#define GOOD_KEY "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
#define V13      "Sec-WebSocket-Version: 13\r\n"

static const uint8_t cmask[4] = {1, 2, 3, 4};

static void send_frame(int fd, bool fin, uint8_t op, const void *p, size_t n, bool masked)
{
    uint8_t buf[4096];
    size_t h = gw_ws_frame_header(buf, fin, op, n, masked ? cmask : NULL);
    memcpy(buf + h, p, n);
    if (masked)
        gw_ws_mask(buf + h, n, cmask, 0);
    loopback_send_all(fd, buf, h + n);
}

static bool recv_exact(int fd, uint8_t *p, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = recv(fd, p + got, n - got, 0);
        if (r <= 0)
            return false;
        got += (size_t)r;
    }
    return true;
}

/* Reads one server frame and logs it: "frame OP LEN payload" (close: "close CODE
 * reason"); at EOF logs "eof" and returns false. */
static bool read_frame(fixture *f, int fd)
{
    uint8_t h[2];
    if (!recv_exact(fd, h, 2)) {
        logf_(f->log, &f->log_len, "eof\n");
        return false;
    }
    uint64_t len = h[1] & 0x7f;
    if (len == 126) {
        uint8_t e[2];
        recv_exact(fd, e, 2);
        len = (uint64_t)e[0] << 8 | e[1];
    }
    if (h[1] & 0x80)
        logf_(f->log, &f->log_len, "masked server frame!\n");
    uint8_t p[4096];
    if (len > sizeof(p) || !recv_exact(fd, p, (size_t)len)) {
        logf_(f->log, &f->log_len, "bad frame\n");
        return false;
    }
    uint8_t op = h[0] & 0x0f;
    if (op == GW_WS_OP_CLOSE && len >= 2)
        logf_(f->log, &f->log_len, "close %u\n", (unsigned)(p[0] << 8 | p[1]));
    else
        logf_(f->log, &f->log_len, "frame %u %s%u %.*s\n", op, (h[0] & 0x80) ? "" : "nofin ",
              (unsigned)len, (int)len, (const char *)p);
    return true;
}

/* ---------------------------------------------------------------------------------- */

static void client_bad_handshakes(fixture *f)
{
    close(client_request(f, UPGRADE_HEAD(V13)));                                     /* no key */
    close(client_request(f, UPGRADE_HEAD(GOOD_KEY "Sec-WebSocket-Version: 8\r\n"))); /* v8 */
    close(client_request(f, "GET /ws HTTP/1.1\r\nHost: t\r\n" GOOD_KEY V13 "\r\n")); /* plain */
    close(client_request(f, UPGRADE_HEAD(V13 "Sec-WebSocket-Key: c2hvcnQ=\r\n")));   /* short */
}

static void refuses_bad_handshakes_with_400_and_426(void **state)
{
    fixture *f = run_client(state, client_bad_handshakes, 0);
    const char *p = f->log;
    p = strstr(p, "HTTP/1.1 400 ");
    assert_non_null(p);
    p = strstr(p, "HTTP/1.1 426 ");
    assert_non_null(p);
    const char *v = strstr(p, "Sec-WebSocket-Version: 13\r\n");
    assert_non_null(v);
    p = strstr(p + 1, "HTTP/1.1 426 ");
    assert_non_null(p);
    assert_non_null(strstr(p, "Upgrade: websocket\r\n"));
    p = strstr(p, "HTTP/1.1 400 ");
    assert_non_null(p);
    assert_null(strstr(f->log, " 101 "));
    assert_int_equal(f->server_log_len, 0);
}

static void client_echo_and_close(fixture *f)
{
    int fd = client_request(f, UPGRADE_HEAD(GOOD_KEY V13 "Sec-WebSocket-Protocol: v9, superchat, "
                                                         "chat\r\n"));
    /* "café" with the é split across two fragments and a ping between them. */
    send_frame(fd, false, GW_WS_OP_TEXT, "caf\xc3", 4, true);
    send_frame(fd, true, GW_WS_OP_PING, "pp", 2, true);
    send_frame(fd, true, GW_WS_OP_CONT, "\xa9", 1, true);
    read_frame(f, fd);
    read_frame(f, fd);
    send_frame(fd, true, GW_WS_OP_BINARY, "\x00\xff\x01", 3, true);
    read_frame(f, fd);
    uint8_t pl[GW_WS_MAX_CONTROL];
    size_t n = gw_ws_close_payload(pl, 4001, "bye", 3);
    send_frame(fd, true, GW_WS_OP_CLOSE, pl, n, true);
    read_frame(f, fd);
    read_frame(f, fd);
    close(fd);
}

static void echoes_fragmented_text_answers_pings_and_closes(void **state)
{
    fixture *f = run_client(state, client_echo_and_close, 0);
    assert_non_null(strstr(f->log, "HTTP/1.1 101 Switching Protocols\r\n"));
    assert_non_null(strstr(f->log, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
    assert_non_null(strstr(f->log, "Sec-WebSocket-Protocol: superchat\r\n"));
    const char *p = strstr(f->log, "frame 10 2 pp\n");
    assert_non_null(p);
    p = strstr(p, "frame 1 5 caf\xc3\xa9\n");
    assert_non_null(p);
    p = strstr(p, "frame 2 3 ");
    assert_non_null(p);
    p = strstr(p, "close 4001\neof\n");
    assert_non_null(p);
    assert_non_null(strstr(f->server_log, "open [superchat]\nclosed 4001 bye\n"));
}

static void client_protocol_errors(fixture *f)
{
    /* Invalid UTF-8, an unmasked frame, a message over the limit, a ping of 126. */
    int fd = client_request(f, UPGRADE_HEAD(GOOD_KEY V13));
    send_frame(fd, true, GW_WS_OP_TEXT, "a\xc0\xaf", 3, true);
    read_frame(f, fd);
    read_frame(f, fd);
    close(fd);
    fd = client_request(f, UPGRADE_HEAD(GOOD_KEY V13));
    send_frame(fd, true, GW_WS_OP_TEXT, "hi", 2, false);
    read_frame(f, fd);
    read_frame(f, fd);
    close(fd);
    fd = client_request(f, UPGRADE_HEAD(GOOD_KEY V13));
    static uint8_t big[TEST_MAX_MESSAGE];
    memset(big, 'x', sizeof(big));
    send_frame(fd, false, GW_WS_OP_BINARY, big, sizeof(big) - 10, true);
    send_frame(fd, true, GW_WS_OP_CONT, big, 11, true);
    read_frame(f, fd);
    read_frame(f, fd);
    close(fd);
}

static void closes_with_1007_1002_1009_on_protocol_errors(void **state)
{
    fixture *f = run_client(state, client_protocol_errors, 0);
    const char *p = strstr(f->log, "close 1007\neof\n");
    assert_non_null(p);
    p = strstr(p, "close 1002\neof\n");
    assert_non_null(p);
    p = strstr(p, "close 1009\neof\n");
    assert_non_null(p);
    p = strstr(f->server_log, "closed 1007 ");
    assert_non_null(p);
    p = strstr(p, "closed 1002 ");
    assert_non_null(p);
    assert_non_null(strstr(p, "closed 1009 "));
}

static void client_silent(fixture *f)
{
    int fd = client_request(f, UPGRADE_HEAD(GOOD_KEY V13));
    /* Never answers: the server pings, then drops the connection. */
    while (read_frame(f, fd))
        ;
    close(fd);
}

static void pings_a_silent_client_then_drops_it(void **state)
{
    fixture *f = run_client(state, client_silent, 50);
    assert_non_null(strstr(f->log, "frame 9 0 \neof\n"));
    assert_non_null(strstr(f->server_log, "closed 1006 "));
}

static void client_until_shutdown(fixture *f)
{
    int fd = client_request(f, UPGRADE_HEAD(GOOD_KEY V13));
    send_frame(fd, true, GW_WS_OP_TEXT, "x", 1, true);
    read_frame(f, fd); /* the echo: the connection is open */
    f->signalled = true;
    uv_async_send(&f->client_done);
    read_frame(f, fd);
    send_frame(fd, true, GW_WS_OP_CLOSE, "\x03\xe9", 2, true);
    read_frame(f, fd);
    close(fd);
}

static void shutdown_closes_websockets_with_1001(void **state)
{
    fixture *f = run_client(state, client_until_shutdown, 0);
    assert_non_null(strstr(f->log, "frame 1 1 x\nclose 1001\neof\n"));
    assert_non_null(strstr(f->server_log, "closed 1001 "));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(refuses_bad_handshakes_with_400_and_426, free_fixture),
        cmocka_unit_test_teardown(echoes_fragmented_text_answers_pings_and_closes, free_fixture),
        cmocka_unit_test_teardown(closes_with_1007_1002_1009_on_protocol_errors, free_fixture),
        cmocka_unit_test_teardown(pings_a_silent_client_then_drops_it, free_fixture),
        cmocka_unit_test_teardown(shutdown_closes_websockets_with_1001, free_fixture),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
