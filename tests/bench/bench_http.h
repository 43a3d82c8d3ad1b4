/*
 * bench_http.h - what the load clients of tests/bench share (hop_client.c,
 * conns_client.c): framing an answer of our own gateway, and reading a numeric argument.
 */
#ifndef BARISTA_BENCH_HTTP_H
#define BARISTA_BENCH_HTTP_H

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The length of one complete answer at the front of in[0..len), 0 while incomplete, -1
 * on an answer these clients cannot frame (or one that would not fit in cap bytes).
 * *status gets its status code.  Answers are framed by Content-Length only. */
static inline long bench_answer_len(const char *in, size_t len, size_t cap, int *status)
{
    const char *end = memmem(in, len, "\r\n\r\n", 4);
    if (!end)
        return len == cap ? -1 : 0;
    size_t head = (size_t)(end - in) + 4;
    if (len < 12 || memcmp(in, "HTTP/1.1 ", 9) != 0)
        return -1;
    char *after;
    long code = strtol(in + 9, &after, 10);
    if (after != in + 12 || code < 100 || code > 599)
        return -1;
    *status = (int)code;
    const char *cl = memmem(in, head, "\r\ncontent-length:", 17);
    if (!cl)
        cl = memmem(in, head, "\r\nContent-Length:", 17);
    size_t body = cl ? strtoul(cl + 17, NULL, 10) : 0;
    if (head + body > cap)
        return -1;
    return len >= head + body ? (long)(head + body) : 0;
}

/* A whole decimal argument in 1..max, or -1. */
static inline long bench_parse_arg(const char *text, long max)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    return errno == 0 && end != text && *end == '\0' && v >= 1 && v <= max ? v : -1;
}

#endif /* BARISTA_BENCH_HTTP_H */
