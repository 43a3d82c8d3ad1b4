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

/* Applies policy and niceness (-20..19) to the calling thread, before it creates any
 * other.  Returns 0, or -1 after logging the failed call with errno; the worker still
 * runs, at the priority it had. */
int br__sched_apply(br__sched policy, int nice);

#endif /* BARISTA_WORKER_PRIORITY_H */
