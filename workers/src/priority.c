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
