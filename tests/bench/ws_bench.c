/*
 * ws_bench.c - a WebSocket load generator on libuv: N connections, each in a closed
 * loop (send one masked text message, wait for its echo, send the next), for a fixed
 * time; prints messages per second and latency percentiles.  With --idle it opens the
 * connections, prints "ready N" and holds them, sending nothing, until SIGINT/SIGTERM
 * or the time is up (the 10,000 idle connections benchmark).
 *
 *   ws_bench HOST PORT PATH CONNECTIONS SECONDS [MESSAGE_BYTES] [--idle]
 *
 * Frames are read with the gateway's own parser (gateway/src/ws, unmasked server
 * frames allowed); it is a benchmark client, not a conformance tool.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "ws_frame.h"

#define MAX_LAT_US 2000000u

typedef struct client {
    uv_tcp_t tcp;
    uv_connect_t connect;
    uv_write_t write;
    gw_ws_parser parser;
    char head[1024];
    size_t head_len;
    bool open;
    uint64_t sent_ns;
    struct bench *b;
} client;

typedef struct bench {
    uv_loop_t *loop;
    struct sockaddr_in addr;
    const char *host, *path;
    size_t conns, msg_bytes;
    bool idle;
    size_t opened, failed;
    uint64_t messages;
    uint64_t start_ns;
    bool stopping;
    uint32_t *lat; /* counts per microsecond, MAX_LAT_US + 1 buckets */
    uint8_t *frame;
    size_t frame_len;
    char read_buf[65536];
    client *clients;
} bench;

static void send_message(client *c);

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    client *c = h->data;
    (void)suggested;
    buf->base = c->b->read_buf;
    buf->len = sizeof(c->b->read_buf);
}

static void on_written(uv_write_t *w, int status)
{
    (void)w;
    (void)status;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    client *c = s->data;
    bench *b = c->b;
    if (n < 0) {
        uv_read_stop(s);
        if (!c->open)
            b->failed++;
        return;
    }
    const uint8_t *p = (const uint8_t *)buf->base;
    size_t len = (size_t)n;
    if (!c->open) {
        size_t take =
            len < sizeof(c->head) - 1 - c->head_len ? len : sizeof(c->head) - 1 - c->head_len;
        memcpy(c->head + c->head_len, p, take);
        c->head_len += take;
        c->head[c->head_len] = '\0';
        char *end = strstr(c->head, "\r\n\r\n");
        if (!end)
            return;
        if (strncmp(c->head, "HTTP/1.1 101", 12) != 0) {
            b->failed++;
            uv_read_stop(s);
            return;
        }
        size_t consumed = (size_t)(end + 4 - c->head) - (c->head_len - take);
        p += consumed;
        len -= consumed;
        c->open = true;
        b->opened++;
        if (b->opened + b->failed == b->conns) {
            printf("ready %zu\n", b->opened);
            fflush(stdout);
            b->start_ns = uv_hrtime();
            if (!b->idle)
                for (size_t i = 0; i < b->conns; i++)
                    if (b->clients[i].open)
                        send_message(&b->clients[i]);
        }
    }
    while (len > 0) {
        gw_ws_event ev;
        size_t used;
        gw_ws_event_kind k = gw_ws_parser_feed(&c->parser, p, len, &used, &ev);
        p += used;
        len -= used;
        if (k == GW_WS_EV_MESSAGE && b->start_ns && !b->stopping) {
            uint64_t us = (uv_hrtime() - c->sent_ns) / 1000;
            b->lat[us > MAX_LAT_US ? MAX_LAT_US : us]++;
            b->messages++;
            send_message(c);
        } else if (k == GW_WS_EV_CLOSE || k == GW_WS_EV_ERROR) {
            uv_read_stop(s);
            return;
        }
    }
}

static void send_message(client *c)
{
    bench *b = c->b;
    c->sent_ns = uv_hrtime();
    uv_buf_t buf = uv_buf_init((char *)b->frame, (unsigned)b->frame_len);
    if (uv_try_write((uv_stream_t *)&c->tcp, &buf, 1) == (int)b->frame_len)
        return;
    uv_write(&c->write, (uv_stream_t *)&c->tcp, &buf, 1, on_written);
}

static void on_connect(uv_connect_t *req, int status)
{
    client *c = req->data;
    if (status < 0) {
        c->b->failed++;
        return;
    }
    static char hs[512];
    int n =
        snprintf(hs, sizeof(hs),
                 "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                 c->b->path, c->b->host);
    uv_buf_t buf = uv_buf_init(hs, (unsigned)n);
    uv_try_write((uv_stream_t *)&c->tcp, &buf, 1);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static void on_stop(uv_timer_t *t)
{
    bench *b = t->data;
    b->stopping = true;
    uv_stop(b->loop);
}

static void on_signal(uv_signal_t *s, int signum)
{
    (void)signum;
    on_stop((uv_timer_t *)(void *)s);
}

int main(int argc, char **argv)
{
    if (argc < 6) {
        fprintf(stderr, "usage: ws_bench HOST PORT PATH CONNECTIONS SECONDS [BYTES] [--idle]\n");
        return 2;
    }
    static bench b;
    b.loop = uv_default_loop();
    b.host = argv[1];
    b.path = argv[3];
    b.conns = strtoul(argv[4], NULL, 10);
    unsigned seconds = (unsigned)strtoul(argv[5], NULL, 10);
    b.msg_bytes = argc > 6 && argv[6][0] != '-' ? strtoul(argv[6], NULL, 10) : 32;
    b.idle = strcmp(argv[argc - 1], "--idle") == 0;
    if (b.conns == 0 || seconds == 0 || seconds > 60 || b.msg_bytes > 65536) {
        fprintf(stderr, "ws_bench: 1..60 seconds, at least one connection, at most 64 KiB\n");
        return 2;
    }
    uv_ip4_addr(argv[1], (int)strtoul(argv[2], NULL, 10), &b.addr);
    b.lat = calloc(MAX_LAT_US + 1, sizeof(*b.lat));
    b.frame = malloc(b.msg_bytes + GW_WS_MAX_HEADER);
    b.clients = calloc(b.conns, sizeof(client));
    static const uint8_t mask[4] = {0x11, 0x22, 0x33, 0x44};
    b.frame_len = gw_ws_frame_header(b.frame, true, GW_WS_OP_TEXT, b.msg_bytes, mask);
    memset(b.frame + b.frame_len, 'm', b.msg_bytes);
    gw_ws_mask(b.frame + b.frame_len, b.msg_bytes, mask, 0);
    b.frame_len += b.msg_bytes;
    gw_ws_limits lim = {.max_frame = 1 << 20, .max_message = 1 << 20, .require_mask = false};
    for (size_t i = 0; i < b.conns; i++) {
        client *c = &b.clients[i];
        c->b = &b;
        gw_ws_parser_init(&c->parser, &lim);
        uv_tcp_init(b.loop, &c->tcp);
        uv_tcp_nodelay(&c->tcp, 1);
        c->tcp.data = c->connect.data = c;
        uv_tcp_connect(&c->connect, &c->tcp, (const struct sockaddr *)&b.addr, on_connect);
    }
    uv_timer_t stop;
    uv_timer_init(b.loop, &stop);
    stop.data = &b;
    /* The clock starts once every connection is open (or failed); the deadline below
     * bounds the whole run, opening included. */
    uv_timer_start(&stop, on_stop, (uint64_t)seconds * 1000 + 30000, 0);
    uv_signal_t sig_int, sig_term;
    uv_signal_init(b.loop, &sig_int);
    uv_signal_init(b.loop, &sig_term);
    sig_int.data = sig_term.data = &b;
    uv_signal_start(&sig_int, on_signal, SIGINT);
    uv_signal_start(&sig_term, on_signal, SIGTERM);
    /* Runs until the stop timer; the measured window is from "ready" for `seconds`. */
    uv_timer_t window;
    uv_timer_init(b.loop, &window);
    window.data = &b;
    while (!b.stopping) {
        uv_run(b.loop, UV_RUN_ONCE);
        if (b.start_ns && !uv_is_active((uv_handle_t *)&window))
            uv_timer_start(&window, on_stop, (uint64_t)seconds * 1000, 0);
    }
    double secs = b.start_ns ? (double)(uv_hrtime() - b.start_ns) / 1e9 : 0;
    uint64_t total = 0, p50 = 0, p99 = 0, p999 = 0;
    for (uint32_t i = 0; i <= MAX_LAT_US; i++)
        total += b.lat[i];
    uint64_t acc = 0;
    for (uint32_t i = 0; i <= MAX_LAT_US && total; i++) {
        acc += b.lat[i];
        if (!p50 && acc * 100 >= total * 50)
            p50 = i;
        if (!p99 && acc * 100 >= total * 99)
            p99 = i;
        if (!p999 && acc * 1000 >= total * 999)
            p999 = i;
    }
    printf("connections %zu opened %zu failed %zu seconds %.2f messages %llu msgs_per_s %.0f "
           "p50_us %llu p99_us %llu p999_us %llu\n",
           b.conns, b.opened, b.failed, secs, (unsigned long long)b.messages,
           secs > 0 ? (double)b.messages / secs : 0.0, (unsigned long long)p50,
           (unsigned long long)p99, (unsigned long long)p999);
    return b.failed ? 1 : 0;
}
