/*
 * hop_client.c - sends exactly N keep-alive `GET PATH` requests over C connections and
 * exits when every answer arrived; the fixed-count load of the hop path profile
 * (tests/bench/hop_profile.sh), where wrk's fixed duration would make the request count
 * depend on the machine's load.
 *
 *   hop_client PORT PATH CONNECTIONS REQUESTS
 *
 * Each connection keeps one request outstanding (a closed loop, like wrk).  Prints
 * "requests N non2xx M seconds S"; exits 1 on a connection error or a non-2xx answer.
 * Answers are framed by Content-Length only: it is a client for our own gateway.
 */
#define _GNU_SOURCE /* memmem */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench_http.h"

#define MAX_CONNS 4096

typedef struct conn {
    int fd;
    char in[8192]; /* the answer being read */
    size_t len;    /* bytes in `in` */
} conn;

static char request[512];
static size_t request_len;

static int send_request(conn *c)
{
    ssize_t n = write(c->fd, request, request_len);
    if (n != (ssize_t)request_len) {
        perror("hop_client: write");
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: hop_client PORT PATH CONNECTIONS REQUESTS\n");
        return 2;
    }
    long port = bench_parse_arg(argv[1], 65535);
    long nconns = bench_parse_arg(argv[3], MAX_CONNS), total = bench_parse_arg(argv[4], LONG_MAX);
    if (port < 0 || nconns < 0 || total < 0) {
        fprintf(stderr, "hop_client: bad arguments\n");
        return 2;
    }
    if (nconns > total)
        nconns = total;
    request_len = (size_t)snprintf(request, sizeof(request),
                                   "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", argv[2]);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    static conn conns[MAX_CONNS];
    int ep = epoll_create1(0);
    long sent = 0, done = 0, non2xx = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0; i < nconns; i++) {
        conn *c = &conns[i];
        c->fd = socket(AF_INET, SOCK_STREAM, 0);
        int one = 1;
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (connect(c->fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
            perror("hop_client: connect");
            return 1;
        }
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
        if (send_request(c) != 0)
            return 1;
        sent++;
    }
    while (done < total) {
        struct epoll_event evs[256];
        int n = epoll_wait(ep, evs, 256, 10000);
        if (n <= 0) {
            fprintf(stderr, "hop_client: no answer for 10 s (%ld of %ld done)\n", done, total);
            return 1;
        }
        for (int i = 0; i < n; i++) {
            conn *c = evs[i].data.ptr;
            ssize_t r = read(c->fd, c->in + c->len, sizeof(c->in) - c->len);
            if (r <= 0) {
                fprintf(stderr, "hop_client: connection closed (%ld of %ld done)\n", done, total);
                return 1;
            }
            c->len += (size_t)r;
            int status = 0;
            long alen;
            while ((alen = bench_answer_len(c->in, c->len, sizeof(c->in), &status)) > 0) {
                done++;
                if (status < 200 || status > 299)
                    non2xx++;
                memmove(c->in, c->in + alen, c->len - (size_t)alen);
                c->len -= (size_t)alen;
                if (sent < total) {
                    if (send_request(c) != 0)
                        return 1;
                    sent++;
                }
            }
            if (alen < 0) {
                fprintf(stderr, "hop_client: an answer it cannot frame\n");
                return 1;
            }
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("requests %ld non2xx %ld seconds %.3f\n", done, non2xx, secs);
    for (long i = 0; i < nconns; i++)
        close(conns[i].fd);
    return non2xx ? 1 : 0;
}
