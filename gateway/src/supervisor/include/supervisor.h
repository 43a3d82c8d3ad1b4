/*
 * supervisor.h - local mode: spawn and supervise worker processes.
 *
 * One command runs the whole platform: the gateway starts N I/O and N CPU worker
 * processes and keeps them running.  A process that exits is restarted after a backoff
 * that grows while it keeps failing; one that fails too often is reported loudly as
 * crash looping but still retried, slowly.  Children share the gateway's stdout and
 * stderr so their logs appear with the gateway's.  Everything runs on the caller's loop.
 */
#ifndef BARISTA_GW_SUPERVISOR_H
#define BARISTA_GW_SUPERVISOR_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

/* Restart policy (see gw_supervisor_stats_get). */
#define GW_SUPERVISOR_BACKOFF_MIN_MS 100   /* first restart delay */
#define GW_SUPERVISOR_BACKOFF_MAX_MS 10000 /* the delay stops doubling here */
#define GW_SUPERVISOR_STABLE_MS      10000 /* up this long: backoff resets */
#define GW_SUPERVISOR_LOOP_EXITS     5     /* this many exits ... */
#define GW_SUPERVISOR_LOOP_WINDOW_MS 30000 /* ... within this window: crash looping */
/* Most processes one supervisor holds. */
#define GW_SUPERVISOR_MAX_PROCS 1024

typedef struct gw_supervisor gw_supervisor;

typedef struct gw_supervisor_stats {
    unsigned running;       /* processes alive right now */
    uint64_t restarts;      /* restarts since the supervisor was created */
    unsigned crash_looping; /* processes currently marked crash looping */
} gw_supervisor_stats;

/* What one supervised process is doing; for metrics, logs and tests. */
typedef struct gw_supervisor_proc_info {
    const char *label;      /* the label it was added with (owned by the supervisor) */
    int pid;                /* current or last pid; 0 if it never started */
    bool running;           /* alive right now */
    bool crash_looping;     /* marked crash looping */
    uint64_t restarts;      /* times it was restarted */
    uint64_t last_delay_ms; /* delay of the latest restart scheduled; 0 before any */
    int64_t exit_status;    /* exit status of the latest exit (-1 for a failed spawn) */
    int term_signal;        /* signal that ended the latest exit, 0 if none */
} gw_supervisor_proc_info;

/* Creates an empty supervisor on loop; caller owns it.  NULL when out of memory. */
gw_supervisor *gw_supervisor_new(uv_loop_t *loop);

/* Adds `count` processes running argv (argv[0] a path; the array and strings are copied),
 * labelled `label` in logs ("io-worker", "cpu-worker"), started at once. 0, BR_ENOMEM,
 * BR_EIO (spawn failed: logged).
 * env_extra (NULL-terminated "NAME=value" strings, or NULL) is added to the gateway's own
 * environment, overriding variables of the same name.  When a spawn fails, the processes
 * already started by this call stay supervised and the rest are not added.  BR_EINVAL
 * after gw_supervisor_shutdown(), BR_ELIMIT past GW_SUPERVISOR_MAX_PROCS. */
int gw_supervisor_add(gw_supervisor *self, const char *label, const char *const *argv,
                      const char *const *env_extra, unsigned count);

/* A process that exits while the supervisor runs is restarted after a backoff: 100 ms
 * doubling to 10 s, reset once a process has stayed up 10 s. 5 or more exits within 30 s
 * makes it "crash looping": logged loudly once (label, pid, exit status/signal, restarts),
 * still restarted at the max backoff, and counted in stats.  (Staying up 10 s also clears
 * the crash-looping mark.) */
void gw_supervisor_stats_get(const gw_supervisor *self, gw_supervisor_stats *out);

/* The number of processes added so far, and the state of the one at index (in the order
 * added).  proc_get: 0, or BR_ENOTFOUND when index is out of range. */
unsigned gw_supervisor_count(const gw_supervisor *self);
int gw_supervisor_proc_get(const gw_supervisor *self, unsigned index, gw_supervisor_proc_info *out);

/* Sends sig to every live process (e.g. SIGHUP passed on by a parent). */
void gw_supervisor_signal(gw_supervisor *self, int sig);

/* SIGTERM to every process; SIGKILL to those still alive after grace_ms; done(arg) once
 * every child has exited and every handle is closed. Nothing restarts after this.
 * done is always called from the loop, never from inside this call; a second stop is
 * ignored. */
void gw_supervisor_shutdown(gw_supervisor *self, uint64_t grace_ms, void (*done)(void *),
                            void *arg);

/* Frees *self_p and NULLs it; safe on NULL and twice.  Only after stop's done, or if
 * nothing was ever added. */
void gw_supervisor_destroy(
    gw_supervisor **self_p); /* only after stop's done, or if never started */

#endif /* BARISTA_GW_SUPERVISOR_H */
