/*
 * priority.h - how much CPU a CPU worker may take from the I/O path.
 *
 * CPU workers share the machine with the gateway and the I/O workers.  The issue's
 * target is that /hello stays fast (p99 <= 5 ms) while every CPU worker is busy, so a
 * CPU worker lowers its own scheduling priority before it starts any thread; threads
 * created later (ZeroMQ's I/O thread, the libuv thread pool that runs handlers)
 * inherit it.
 */
#ifndef BARISTA_WORKER_PRIORITY_H
#define BARISTA_WORKER_PRIORITY_H

#include <stddef.h>

/* Scheduling policies a CPU worker can ask for. */
typedef enum br__sched {
    BR__SCHED_IDLE,  /* SCHED_IDLE: runs on CPU time nothing else wants; preempted at
                        once when a normal task wakes.  Starves when anything else
                        keeps the machine busy, hence not the default */
    BR__SCHED_BATCH, /* SCHED_BATCH at the given niceness: never preempts on wake-up */
    BR__SCHED_OTHER, /* the normal policy at the given niceness (the default) */
} br__sched;

/* Parses "idle", "batch" or "other" into *out; returns 0, or -1 for anything else. */
int br__sched_parse(const char *s, br__sched *out);

/* Which CPUs a CPU worker may run on (--cpus). */
typedef struct br__cpus {
    enum {
        BR__CPUS_ALL,  /* every CPU the process may use (no change) */
        BR__CPUS_AUTO, /* every one but the lowest, when two or more: that one is left to
                          the gateway and the I/O workers, which wake per request */
        BR__CPUS_LIST, /* the CPUs in set */
    } mode;
    unsigned char set[128]; /* bit n = CPU n, for BR__CPUS_LIST (CPUs 0..1023) */
} br__cpus;

/* Parses "all", "auto" or a list such as "1-3,6" into *out; returns 0, or -1 with a
 * reason in why (why_len bytes) for anything else. */
int br__cpus_parse(const char *s, br__cpus *out, char *why, size_t why_len);

/* Restricts the calling thread (and the threads it creates later) to the CPUs asked
 * for, within those it may use now, and writes them to chosen as a list ("" when
 * nothing changed).  Returns 0, or -1 after logging why - a list that names no CPU the
 * process may use, or a failed call. */
int br__cpus_apply(const br__cpus *cpus, char *chosen, size_t chosen_len);

/* Applies policy and niceness (-20..19) to the calling thread, before it creates any
 * other.  Returns 0, or -1 after logging the failed call with errno; the worker still
 * runs, at the priority it had. */
int br__sched_apply(br__sched policy, int nice);

#endif /* BARISTA_WORKER_PRIORITY_H */
