/*
 * bench_worker.c - measures the real barista-worker from a test broker (not a test;
 * run by hand from a release build):
 *
 *   workers_bench hello N WINDOW   N hello requests, WINDOW in flight: requests/s
 *   workers_bench sleep N MS       N sleeps of MS in flight at once: wall time and the
 *                                  worker's peak RSS
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "broker_harness.h"

/* The worker's resident set in KiB, from /proc. */
static long rss_kib(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kib = -1;
    while (f && fgets(line, sizeof(line), f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            kib = strtol(line + 6, NULL, 10);
    if (f)
        fclose(f);
    return kib;
}

/* CPU seconds the worker has used, from /proc. */
static double cpu_seconds(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* Fields after the ")" that closes the command name: state is field 3, utime 14. */
    char *p = strrchr(buf, ')');
    unsigned long long utime = 0, stime = 0;
    if (!p ||
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) != 2)
        return -1;
    return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

static int wait_replies(harness *h, long n, long *peak_rss)
{
    for (long got = 0; got < n; got++) {
        br_msg m;
        if (harness_expect(h, BR_MSG_REPLY, &m, 60000, NULL) != 0) {
            fprintf(stderr, "no reply after %ld\n", got);
            return -1;
        }
        if (m.u.reply.status != 200) {
            fprintf(stderr, "reply %llu: status %u\n", (unsigned long long)m.u.reply.id,
                    m.u.reply.status);
            return -1;
        }
        if (peak_rss && got % 1000 == 0) {
            long r = rss_kib(h->pid);
            if (r > *peak_rss)
                *peak_rss = r;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: workers_bench hello N WINDOW | sleep N MS\n");
        return 2;
    }
    long n = strtol(argv[2], NULL, 10), arg = strtol(argv[3], NULL, 10);
    bool sleep = strcmp(argv[1], "sleep") == 0;
    harness h;
    static const char *const args[] = {"--concurrency", "20000", NULL};
    if (harness_start(&h, sleep ? "sleep" : "hello", 1000, args) != 0 ||
        harness_register(&h, "bench", NULL, NULL) != 0) {
        harness_stop(&h);
        return 1;
    }
    long long t0 = harness_now_ms();
    double cpu0 = cpu_seconds(h.pid);
    long peak = rss_kib(h.pid), idle = peak;
    int rc = 0;
    if (sleep) {
        for (long i = 0; i < n; i++)
            harness_request(&h, (uint64_t)i + 1, "sleep", "GET", "/sleep", "/sleep", 60000, "ms",
                            argv[3], NULL);
        rc = wait_replies(&h, n, &peak);
    } else {
        long sent = 0;
        for (; sent < arg && sent < n; sent++)
            harness_request(&h, (uint64_t)sent + 1, "hello", "GET", "/hello", "/hello", 5000, NULL);
        for (long got = 0; rc == 0 && got < n; got++) {
            rc = wait_replies(&h, 1, NULL);
            if (sent < n) {
                harness_request(&h, (uint64_t)sent + 1, "hello", "GET", "/hello", "/hello", 5000,
                                NULL);
                sent++;
            }
        }
    }
    long long took = harness_now_ms() - t0;
    if (rc == 0) {
        double cpu = cpu_seconds(h.pid) - cpu0;
        printf("%s: %ld requests in %lld ms (%.0f/s); worker CPU %.2f us/request; "
               "worker RSS idle %ld KiB, peak %ld KiB\n",
               argv[1], n, took, took ? n * 1000.0 / took : 0.0, cpu * 1e6 / (double)n, idle, peak);
    }
    kill(h.pid, SIGTERM);
    int status;
    harness_wait_exit(&h, 10000, &status);
    harness_stop(&h);
    return rc == 0 ? 0 : 1;
}
