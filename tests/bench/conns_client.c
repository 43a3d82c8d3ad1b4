/*
 * conns_client.c - holds many connections open at once, each in a closed loop of
 * `GET PATH` requests (for /sleep?ms=1000: one request in flight per connection), for a
 * bounded time; the load of tests/bench/conns_50k.sh.
 *
 *   conns_client PORT PATH CONNECTIONS SECONDS SOURCE_ADDRESS
 *
 * Every connection is bound to SOURCE_ADDRESS (127.0.0.2, 127.0.0.3, ...) before it
 * connects, so that several clients together pass the ~28,000 ephemeral ports one
 * source address has towards one destination.  Connects are non-blocking, at most
 * CONNECT_BATCH outstanding, so the listen backlog is not flooded.  After SECONDS no new
 * request is sent; the client waits up to GRACE_S for the answers in flight, then
 * prints
 *
 *   open N peak P failed F requests R non2xx X closed C last_non2xx S
 *
 * (connections established, most open at once, connects that failed, answers, non-2xx
 * answers, connections the server closed, the last non-2xx status or 0) and exits 0, or 1 when a
 * connection failed or an answer was not 2xx.  Answers are framed by Content-Length only: it is a
 * client for our own gateway.  One process holds at most RLIMIT_NOFILE connections; the script
 * starts one per source address.
 */
#define _GNU_SOURCE /* memmem */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench_http.h"

#define CONNECT_BATCH 512 /* non-blocking connects outstanding at once */
#define GRACE_S       10  /* seconds to wait for the answers in flight at the end */
#define IN_BYTES      1024

typedef struct conn {
    int fd;
    bool connected;     /* the connect completed */
    bool waiting;       /* a request is outstanding */
    unsigned short len; /* bytes in `in` */
    char in[IN_BYTES];  /* the answer being read */
} conn;

static char request[512];
static size_t request_len;

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static bool send_request(conn *c)
{
    if (write(c->fd, request, request_len) != (ssize_t)request_len)
        return false;
    c->waiting = true;
    return true;
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: conns_client PORT PATH CONNECTIONS SECONDS SOURCE_ADDRESS\n");
        return 2;
    }
    long port = bench_parse_arg(argv[1], 65535), nconns = bench_parse_arg(argv[3], 1000000);
    long secs = bench_parse_arg(argv[4], 3600);
    struct sockaddr_in src = {.sin_family = AF_INET};
    if (port < 0 || nconns < 0 || secs < 0 || inet_pton(AF_INET, argv[5], &src.sin_addr) != 1) {
        fprintf(stderr, "conns_client: bad arguments\n");
        return 2;
    }
    request_len = (size_t)snprintf(request, sizeof(request),
                                   "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", argv[2]);
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    dst.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    conn *conns = calloc((size_t)nconns, sizeof(*conns));
    int ep = epoll_create1(0);
    if (!conns || ep < 0) {
        perror("conns_client");
        return 2;
    }
    long started = 0, pending = 0, open = 0, peak = 0, failed = 0, closed = 0;
    long answers = 0, non2xx = 0, waiting = 0;
    int last_bad = 0; /* the last non-2xx status seen */
    double stop_at = now_s() + (double)secs, give_up = stop_at + GRACE_S;
    for (;;) {
        double t = now_s();
        bool sending = t < stop_at;
        while (sending && started < nconns && pending < CONNECT_BATCH) {
            conn *c = &conns[started++];
            int one = 1;
            c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
            if (c->fd < 0 ||
                setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one)) != 0 ||
                bind(c->fd, (struct sockaddr *)&src, sizeof(src)) != 0 ||
                (connect(c->fd, (struct sockaddr *)&dst, sizeof(dst)) != 0 &&
                 errno != EINPROGRESS)) {
                if (failed++ == 0)
                    perror("conns_client: connect");
                if (c->fd >= 0)
                    close(c->fd);
                c->fd = -1;
                continue;
            }
            struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
            epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
            pending++;
        }
        if ((!sending && waiting == 0 && pending == 0) || t > give_up)
            break;
        struct epoll_event evs[512];
        int n = epoll_wait(ep, evs, 512, 100);
        for (int i = 0; i < n; i++) {
            conn *c = evs[i].data.ptr;
            if (!c->connected) {
                int err = 0;
                socklen_t elen = sizeof(err);
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &elen);
                pending--;
                if (err != 0) {
                    if (failed++ == 0)
                        fprintf(stderr, "conns_client: connect: %s\n", strerror(err));
                    close(c->fd);
                    c->fd = -1;
                    continue;
                }
                c->connected = true;
                if (++open > peak)
                    peak = open;
                struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
                epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                if (now_s() < stop_at && send_request(c))
                    waiting++;
                continue;
            }
            ssize_t r = read(c->fd, c->in + c->len, sizeof(c->in) - c->len);
            if (r <= 0) {
                if (r < 0 && errno == EAGAIN)
                    continue;
                closed++;
                open--;
                if (c->waiting)
                    waiting--;
                close(c->fd);
                c->fd = -1;
                c->connected = false;
                continue;
            }
            c->len = (unsigned short)(c->len + r);
            int status = 0;
            long alen;
            while ((alen = bench_answer_len(c->in, c->len, sizeof(c->in), &status)) > 0) {
                answers++;
                if (status < 200 || status > 299) {
                    non2xx++;
                    last_bad = status;
                }
                memmove(c->in, c->in + alen, c->len - (size_t)alen);
                c->len = (unsigned short)(c->len - alen);
                c->waiting = false;
                waiting--;
                if (now_s() < stop_at && send_request(c))
                    waiting++;
            }
            if (alen < 0) {
                fprintf(stderr, "conns_client: an answer it cannot frame\n");
                return 1;
            }
        }
    }
    printf("open %ld peak %ld failed %ld requests %ld non2xx %ld closed %ld last_non2xx %d\n", open,
           peak, failed, answers, non2xx, closed, last_bad);
    for (long i = 0; i < started; i++)
        if (conns[i].fd >= 0)
            close(conns[i].fd);
    free(conns);
    return failed || non2xx || closed ? 1 : 0;
}
