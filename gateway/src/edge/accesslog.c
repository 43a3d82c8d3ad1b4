/*
 * accesslog.c - one line per request: the common log format with named extras, or a
 * JSON object per line.
 *
 * Lines are appended to a buffer and written with one write(2) per loop turn (a check
 * handle, after the poll phase in which the answers were made), so that a busy gateway
 * does not make a system call per request.  The file is opened with O_APPEND and
 * reopened on SIGHUP: logrotate moves it, signals, and the next line goes to a new
 * file.  Answers below 400 may be sampled (1 in N); errors are always written.
 *
 * A line is on the path of every request, so it is built without printf: the date is
 * formatted once per second, numbers by hand, and escaping appends runs of plain bytes
 * (the hop path profile in docs/benchmarks.md: snprintf with %.3f and strftime per
 * line were 39 % of the gateway's instructions per proxied request).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "edge_int.h"
#include "json.h"
#include "log.h"

/* Most bytes held before a write is forced in the middle of a loop turn, and the
 * buffer's hard limit (lines past it are dropped and counted). */
#define LOG_FLUSH_AT (64u * 1024)
#define LOG_BUF_MAX  (1024u * 1024)
/* Longest request target written (longer ones are cut, marked with "..."). */
#define LOG_TARGET_MAX 1024

static void log_write(edge_log *l)
{
    size_t off = 0;
    while (off < l->buf.len) {
        ssize_t n = write(l->fd, l->buf.data + off, l->buf.len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            l->dropped++;
            break;
        }
        off += (size_t)n;
    }
    l->buf.len = 0;
}

static void on_flush(uv_check_t *h)
{
    edge_log *l = h->data;
    if (l->buf.len)
        log_write(l);
    uv_check_stop(h);
    l->flush_started = false;
}

static int open_file(const char *path, char *why, size_t cap)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        snprintf(why, cap, "--access-log %s: open failed: %s", path, strerror(errno));
    return fd;
}

int gw__log_open(gw_edge *e, char *why, size_t cap)
{
    edge_log *l = &e->log;
    const char *dest = e->cfg.access_log ? e->cfg.access_log : "";
    l->json = e->cfg.access_log_json;
    l->sample = e->cfg.access_log_sample;
    l->buf.max = LOG_BUF_MAX;
    l->fd = -1;
    l->when_sec = -1;
    if (dest[0] == '\0' || strcmp(dest, "off") == 0)
        return 0;
    if (strcmp(dest, "-") == 0) {
        l->path[0] = '\0';
        l->fd = STDERR_FILENO;
    } else {
        if (strlen(dest) >= sizeof(l->path)) {
            snprintf(why, cap, "--access-log: path too long");
            return -1;
        }
        snprintf(l->path, sizeof(l->path), "%s", dest);
        if ((l->fd = open_file(l->path, why, cap)) < 0)
            return -1;
    }
    uv_check_init(e->loop, &l->flush);
    l->flush.data = l;
    return 0;
}

int gw__log_reopen(gw_edge *e)
{
    edge_log *l = &e->log;
    if (l->fd < 0 || l->path[0] == '\0')
        return 0;
    if (l->buf.len)
        log_write(l);
    char why[GW_EDGE_TEXT_MAX + 64];
    int fd = open_file(l->path, why, sizeof(why));
    if (fd < 0) {
        gw_log(GW_LOG_ERROR, "edge", "%s; still writing to the old file", why);
        return BR_EIO;
    }
    close(l->fd);
    l->fd = fd;
    gw_log(GW_LOG_INFO, "edge", "access log reopened: %s", l->path);
    return 0;
}

void gw__log_close(gw_edge *e)
{
    edge_log *l = &e->log;
    if (l->fd < 0)
        return;
    if (l->buf.len)
        log_write(l);
    if (l->dropped)
        gw_log(GW_LOG_WARN, "edge", "%llu access-log writes failed",
               (unsigned long long)l->dropped);
    uv_close((uv_handle_t *)&l->flush, NULL);
    if (l->path[0])
        close(l->fd);
    l->fd = -1;
}

/* ---------------------------------------------------------------------------------- */
/* Formatting.                                                                         */

/* Appends text with every byte outside printable ASCII, '"' and '\\' written as \xHH,
 * so that a log line stays one line and its quoted fields stay quoted.  Runs of plain
 * bytes go in with one append. */
static void put_escaped(br_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
            continue;
        br_buf_append(b, s + run, i - run);
        char esc[4] = {'\\', 'x', hex[c >> 4], hex[c & 15]};
        br_buf_append(b, esc, 4);
        run = i + 1;
    }
    br_buf_append(b, s + run, n - run);
}

static void put(br_buf *b, const char *s)
{
    br_buf_append(b, s, strlen(s));
}

/* Appends v in decimal. */
static void put_uint(br_buf *b, uint64_t v)
{
    char d[20];
    size_t i = sizeof(d);
    do {
        d[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    br_buf_append(b, d + i, sizeof(d) - i);
}

/* Appends the nanoseconds ns as milliseconds with three decimals ("%.3f" of ns / 1e6,
 * rounded to the microsecond). */
static void put_ms(br_buf *b, uint64_t ns)
{
    uint64_t us = (ns + 500) / 1000;
    put_uint(b, us / 1000);
    char frac[4] = {'.', (char)('0' + us / 100 % 10), (char)('0' + us / 10 % 10),
                    (char)('0' + us % 10)};
    br_buf_append(b, frac, sizeof(frac));
}

static void put_json(br_buf *b, const char *key, const char *s, size_t n)
{
    put(b, ",\"");
    put(b, key);
    put(b, "\":");
    gw_json_append_string(b, s, n);
}

/* Nanoseconds from a to b (uv_hrtime); 0 when b < a. */
static uint64_t ns_between(uint64_t a, uint64_t b)
{
    return b > a ? b - a : 0;
}

/* The common log format's date, "[07/Dec/2026:04:19:00 +0000] ", formatted again only
 * when the second changed. */
static void put_when(edge_log *l, br_buf *b, time_t sec)
{
    if ((int64_t)sec != l->when_sec) {
        struct tm tm;
        gmtime_r(&sec, &tm);
        l->when_len = strftime(l->when, sizeof(l->when), "[%d/%b/%Y:%H:%M:%S +0000] ", &tm);
        l->when_sec = (int64_t)sec;
    }
    br_buf_append(b, l->when, l->when_len);
}

static void format_text(gw_edge *e, br_buf *b, const gw_req *req, const edge_req *er, int status,
                        size_t bytes, const char *route, const char *service, uint64_t dur,
                        uint64_t wait)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    put(b, er->client);
    put(b, " - ");
    put(b, er->subject ? er->subject : "-");
    put(b, " ");
    put_when(&e->log, b, ts.tv_sec);
    put(b, "\"");
    const char *method = req->method ? req->method : "-";
    put_escaped(b, method, strlen(method));
    put(b, " ");
    size_t plen = req->path ? req->path_len : 1;
    put_escaped(b, req->path ? req->path : "-", plen > LOG_TARGET_MAX ? LOG_TARGET_MAX : plen);
    if (req->query_len && plen < LOG_TARGET_MAX) {
        put(b, "?");
        size_t q = req->query_len;
        put_escaped(b, req->query, q > LOG_TARGET_MAX - plen ? LOG_TARGET_MAX - plen : q);
    }
    put(b, " HTTP/1.1\" ");
    put_uint(b, (uint64_t)(status < 0 ? 0 : status));
    put(b, " ");
    put_uint(b, bytes);
    put(b, " rid=");
    put_escaped(b, er->id, er->id_len);
    put(b, " route=\"");
    put_escaped(b, route, strlen(route));
    put(b, "\" service=");
    put(b, service);
    put(b, " worker=");
    put(b, e->ans_worker[0] ? e->ans_worker : "-");
    put(b, " in=");
    put_uint(b, req->body_len);
    put(b, " dur_ms=");
    put_ms(b, dur);
    put(b, " wait_ms=");
    put_ms(b, wait);
    if (e->ans_reason[0]) {
        put(b, " reason=\"");
        put_escaped(b, e->ans_reason, strlen(e->ans_reason));
        put(b, "\"");
    }
    put(b, "\n");
}

static void format_json(const gw_edge *e, br_buf *b, const gw_req *req, const edge_req *er,
                        int status, size_t bytes, const char *route, const char *service,
                        uint64_t dur, uint64_t wait)
{
    char num[160];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(num, sizeof(num), "{\"ts\":%lld.%03ld", (long long)ts.tv_sec, ts.tv_nsec / 1000000);
    put(b, num);
    put_json(b, "request_id", er->id, er->id_len);
    put_json(b, "client", er->client, strlen(er->client));
    const char *method = req->method ? req->method : "";
    put_json(b, "method", method, strlen(method));
    put_json(b, "path", req->path ? req->path : "", req->path ? req->path_len : 0);
    put_json(b, "route", route, strlen(route));
    put_json(b, "service", service, strlen(service));
    put_json(b, "worker", e->ans_worker, strlen(e->ans_worker));
    put_json(b, "subject", er->subject ? er->subject : "", er->subject ? strlen(er->subject) : 0);
    snprintf(num, sizeof(num),
             ",\"status\":%d,\"bytes_in\":%zu,\"bytes_out\":%zu,\"duration_ms\":", status,
             req->body_len, bytes);
    put(b, num);
    put_ms(b, dur);
    put(b, ",\"queue_wait_ms\":");
    put_ms(b, wait);
    if (e->ans_reason[0])
        put_json(b, "reason", e->ans_reason, strlen(e->ans_reason));
    put(b, "}\n");
}

void gw__log_request(gw_edge *e, const gw_req *req, const edge_req *er, int status, size_t bytes)
{
    edge_log *l = &e->log;
    if (l->fd < 0)
        return;
    if (status < 400 && l->sample > 1 && (l->seen++ % l->sample) != 0)
        return;
    const gw_route *route = er->ran_request ? req->match.route : NULL;
    const char *tmpl = route ? route->pattern : "";
    const char *service = route && route->policy && route->policy->service ? route->policy->service
                          : route                                          ? "gateway"
                                                                           : "-";
    uint64_t now = uv_hrtime();
    uint64_t dur = ns_between(er->start_ns, now);
    uint64_t wait = er->sent_ns ? ns_between(er->start_ns, er->sent_ns) : 0;
    size_t before = l->buf.len;
    if (l->json)
        format_json(e, &l->buf, req, er, status, bytes, tmpl, service, dur, wait);
    else
        format_text(e, &l->buf, req, er, status, bytes, tmpl, service, dur, wait);
    if (l->buf.len == 0 || l->buf.data[l->buf.len - 1] != '\n') {
        /* The buffer filled mid-line: drop the partial line, count it. */
        l->buf.len = before;
        l->dropped++;
    }
    if (l->buf.len >= LOG_FLUSH_AT) {
        log_write(l);
        return;
    }
    if (!l->flush_started && l->buf.len) {
        uv_check_start(&l->flush, on_flush);
        l->flush_started = true;
    }
}
