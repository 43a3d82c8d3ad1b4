/*
 * priority.c - scheduling policy and niceness of a CPU worker (see priority.h).
 *
 * SCHED_IDLE threads are preempted as soon as a normal task wakes, so they cannot
 * delay the gateway or an I/O worker by a scheduler slice; but anything else that keeps
 * the CPUs busy (a build, another service) starves them: a hash under ctest -j2 on a
 * loaded machine missed a 10 s wait.  So the default stays the normal policy at nice 10
 * and SCHED_IDLE is an option for machines that serve nothing else.  The measurements
 * are in docs/benchmarks.md.
 */
#define _GNU_SOURCE /* SCHED_IDLE, SCHED_BATCH */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "priority.h"

int br__sched_parse(const char *s, br__sched *out)
{
    if (strcmp(s, "idle") == 0)
        *out = BR__SCHED_IDLE;
    else if (strcmp(s, "batch") == 0)
        *out = BR__SCHED_BATCH;
    else if (strcmp(s, "other") == 0)
        *out = BR__SCHED_OTHER;
    else
        return -1;
    return 0;
}

int br__sched_apply(br__sched policy, int nice)
{
    struct sched_param param = {.sched_priority = 0};
    int kernel_policy = policy == BR__SCHED_IDLE    ? SCHED_IDLE
                        : policy == BR__SCHED_BATCH ? SCHED_BATCH
                                                    : SCHED_OTHER;
    int rc = 0;

    /* Niceness first: it still orders SCHED_IDLE threads among themselves. */
    if (setpriority(PRIO_PROCESS, 0, nice) != 0) {
        fprintf(stderr, "barista-worker: setpriority(%d): %s\n", nice, strerror(errno));
        rc = -1;
    }
    if (sched_setscheduler(0, kernel_policy, &param) != 0) {
        fprintf(stderr, "barista-worker: sched_setscheduler(%d): %s\n", kernel_policy,
                strerror(errno));
        rc = -1;
    }
    return rc;
}

int br__cpus_parse(const char *s, br__cpus *out, char *why, size_t why_len)
{
    memset(out, 0, sizeof(*out));
    if (strcmp(s, "all") == 0) {
        out->mode = BR__CPUS_ALL;
        return 0;
    }
    if (strcmp(s, "auto") == 0) {
        out->mode = BR__CPUS_AUTO;
        return 0;
    }
    out->mode = BR__CPUS_LIST;
    const char *p = s;
    const unsigned max = sizeof(out->set) * 8;
    for (;;) {
        char *end;
        errno = 0;
        unsigned long lo = strtoul(p, &end, 10), hi;
        if (end == p || errno != 0 || *p < '0' || *p > '9')
            goto bad;
        hi = lo;
        if (*end == '-') {
            p = end + 1;
            hi = strtoul(p, &end, 10);
            if (end == p || errno != 0 || *p < '0' || *p > '9' || hi < lo)
                goto bad;
        }
        if (hi >= max) {
            snprintf(why, why_len, "CPU %lu is past the last one this worker knows (%u)", hi,
                     max - 1);
            return -1;
        }
        for (unsigned long c = lo; c <= hi; c++)
            out->set[c / 8] |= (unsigned char)(1u << (c % 8));
        p = end;
        if (*p != ',')
            break;
        p++;
    }
    if (*p == '\0')
        return 0;
bad:
    snprintf(why, why_len, "want all, auto or CPU numbers such as 1-3,6");
    return -1;
}

int br__cpus_apply(const br__cpus *cpus, char *chosen, size_t chosen_len)
{
    cpu_set_t allowed, want;
    if (chosen_len > 0)
        chosen[0] = '\0';
    if (cpus->mode == BR__CPUS_ALL)
        return 0;
    if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0) {
        fprintf(stderr, "barista-worker: sched_getaffinity: %s\n", strerror(errno));
        return -1;
    }
    CPU_ZERO(&want);
    int lowest = -1;
    for (int c = 0; c < CPU_SETSIZE; c++) {
        if (!CPU_ISSET(c, &allowed))
            continue;
        if (cpus->mode == BR__CPUS_AUTO) {
            if (lowest < 0) {
                lowest = c; /* left to the I/O path */
                continue;
            }
            CPU_SET(c, &want);
        } else if ((size_t)c < sizeof(cpus->set) * 8 && (cpus->set[c / 8] >> (c % 8)) & 1) {
            CPU_SET(c, &want);
        }
    }
    if (CPU_COUNT(&want) == 0) {
        if (cpus->mode == BR__CPUS_AUTO)
            return 0; /* one CPU: nothing to leave to anyone */
        fprintf(stderr, "barista-worker: --cpus names no CPU this process may use\n");
        return -1;
    }
    if (sched_setaffinity(0, sizeof(want), &want) != 0) {
        fprintf(stderr, "barista-worker: sched_setaffinity: %s\n", strerror(errno));
        return -1;
    }
    size_t len = 0;
    for (int c = 0; c < CPU_SETSIZE && len + 8 < chosen_len; c++)
        if (CPU_ISSET(c, &want))
            len += (size_t)snprintf(chosen + len, chosen_len - len, "%s%d", len ? "," : "", c);
    return 0;
}
