/*
 * jobs_int.h - what jobs.c (the queue: jobs, tasks, the store, timers), jobs_api.c
 * (HTTP and REPLY.jobs), jobs_dispatch.c (workers, leases, results) and jobs_stats.c
 * (the numbers for /metrics) share, and the hooks it attaches to the broker.  Not for
 * use outside the job queue.
 *
 * A job lives in memory from its submission to its expiry; the store holds the same
 * rows for the next start.  At any moment a durable job is on exactly one of: its
 * task's ready queue (queued, due), the delayed heap (queued or failed, not yet due),
 * a worker's leased list (running, with a node in the lease heap), or the finished
 * list (succeeded or dead).  A job that is not durable yet is on none of them: it is
 * never dispatched before its 202 could have been sent.
 */
#ifndef BARISTA_GW_JOBS_INT_H
#define BARISTA_GW_JOBS_INT_H

#include "broker.h"
#include "deadline.h"
#include "http.h"
#include "idmap.h"
#include "jobs.h"
#include "jobs_store.h"
#include "list.h"
#include "log.h"
#include "registry.h"

/* Tasks known at once (announced by workers or found in the store). */
#define GW_JOBS_MAX_TASKS 1024u
/* Period of the timer that releases delayed jobs, expires leases and old jobs. */
#define GW_JOBS_TICK_MS 50u
/* Finished jobs deleted per tick, at most (expiry never floods the store). */
#define GW_JOBS_EXPIRE_BATCH 10000u
/* Longest error text kept from a JOB_RESULT. */
#define GW_JOBS_ERROR_MAX 1024u

typedef struct gw_job gw_job;

/* A task: its name and its queue of due jobs. */
typedef struct gw_jobs_task {
    char *name;        /* task name (owned) */
    gw_list ready;     /* durable queued jobs that are due, oldest first */
    size_t nready;     /* entries in ready */
    size_t unfinished; /* jobs neither succeeded nor dead (the per-task limit) */
} gw_jobs_task;

/* What the job queue knows of a registered worker. */
typedef struct gw_jobs_worker {
    gw_worker *w;         /* the broker's worker */
    gw_jobs_task **tasks; /* the tasks it announced */
    size_t ntasks;        /* entries in tasks */
    gw_list leased;       /* jobs leased to it */
    uint32_t nleased;     /* entries in leased */
    uint32_t stale;       /* jobs it still runs whose lease expired: their credit comes
                             back with their (ignored) JOB_RESULT */
} gw_jobs_worker;

/* Someone waiting for a job to become durable: an HTTP client or a held reply. */
typedef struct gw_job_waiter {
    gw_list link; /* in the job's waiters */
    /* Called once: status 0 when job is durable, else the write failed (job is about
     * to be freed).  The waiter is unlinked before. */
    void (*ready)(struct gw_job_waiter *self, gw_job *job, int status);
} gw_job_waiter;

struct gw_job {
    uint64_t id;            /* unique, > 0; key in jobs->byid */
    struct gw_jobs *owner;  /* the queue it belongs to (store callbacks need it) */
    gw_jobs_task *task;     /* its task */
    br_str payload;         /* msgpack argument (owned; may be empty) */
    br_str idem_key;        /* Idempotency-Key (owned; may be empty) */
    uint64_t idem_hash;     /* key in jobs->bykey when idem_key is set */
    gw_job *idem_next;      /* next job whose key has the same hash */
    br_str result;          /* msgpack result (owned) once succeeded */
    br_str error;           /* last error (owned), maybe empty */
    uint8_t status;         /* gw_job_status */
    uint32_t attempts;      /* runs started */
    int64_t run_at_ms;      /* wall clock: not before */
    int64_t updated_ms;     /* wall clock of the last change */
    bool durable;           /* its first write committed */
    gw_list link;           /* ready queue, leased list or finished list */
    gw_deadline timer;      /* delayed heap (run_at) or lease heap (lease end) */
    gw_jobs_worker *holder; /* the worker holding its lease, or NULL */
    gw_list waiters;        /* gw_job_waiter: wait for durability */
};

struct gw_jobs {
    uv_loop_t *loop;                        /* the gateway's loop */
    gw_router *router;                      /* where the API routes are (the caller's) */
    gw_broker *broker;                      /* sends JOBs; the queue is attached to it */
    gw_jobs_config cfg;                     /* a copy of the caller's */
    char *db;                               /* cfg.db's own copy */
    gw_jobs_store *store;                   /* durable rows */
    gw_idmap *byid;                         /* job id -> gw_job */
    gw_idmap *bykey;                        /* idempotency-key hash -> gw_job chain */
    gw_jobs_task *tasks[GW_JOBS_MAX_TASKS]; /* known tasks */
    size_t ntasks;                          /* entries in tasks */
    gw_jobs_worker **workers;               /* registered workers that announced tasks */
    size_t nworkers;                        /* entries in workers */
    size_t workers_cap;                     /* slots allocated */
    gw_deadline_heap delayed;               /* jobs waiting for run_at */
    gw_deadline_heap leases;                /* leased jobs by lease end */
    gw_list finished;                       /* succeeded and dead jobs, oldest change first */
    uv_timer_t tick;                        /* delayed jobs, leases, expiry */
    uint64_t next_id;                       /* last job id handed out */
    uint64_t rng;                           /* xorshift state for backoff jitter */
    size_t njobs;                           /* jobs held (GW_JOBS_MAX) */
    br_buf scratch;                         /* JSON rendering of GET /jobs/{id} */
    bool routes_added;                      /* the API routes are in the router */
    bool closing;                           /* gw_jobs_shutdown was called */
    unsigned closes_pending;                /* the timer and the store, until closed */
    void (*done)(void *arg);                /* close's callback */
    void *done_arg;                         /* its argument */
    gw_jobs_stats stats;                    /* counters (gauges are computed on demand) */
};

/* ---- jobs.c ---------------------------------------------------------------------- */

/* Wall-clock milliseconds since the epoch. */
int64_t gw__jobs_now_ms(void);

/* The task named `name`, or NULL. */
gw_jobs_task *gw__jobs_task_find(gw_jobs *j, br_str name);

/* The task named `name`, created (and recorded in the store) when new.  NULL when
 * GW_JOBS_MAX_TASKS are known, the name is empty or too long, or memory runs out. */
gw_jobs_task *gw__jobs_task_get(gw_jobs *j, br_str name);

/* The job with id `id`, or NULL. */
gw_job *gw__jobs_find(gw_jobs *j, uint64_t id);

/* Creates a job (or finds the one with the same idempotency key) and writes it down.
 * When `waiter` is given it is told once the job is durable - at once, before this
 * returns, for an existing durable job.  *out is the job.  0; BR_EFULL when the task
 * or the gateway holds its limit of jobs or the store's queue is full; BR_ENOMEM. */
int gw__jobs_submit(gw_jobs *j, gw_jobs_task *t, br_str payload, br_str key, uint32_t delay_ms,
                    gw_job_waiter *waiter, gw_job **out);

/* An attempt of a running job ended (its holder was detached already): OK makes it
 * succeeded with `result`; RETRY (and a lost lease) makes it failed and scheduled
 * again after a backoff, or dead after the last attempt; FATAL makes it dead.
 * lost: the attempt ended with the worker (lease expired, worker died) - it is
 * requeued at once.  The change is written to the store. */
void gw__jobs_attempt_ended(gw_jobs *j, gw_job *job, int outcome, br_str result, br_str error,
                            bool lost);

/* Puts a durable queued job on its task's ready queue or the delayed heap. */
void gw__jobs_schedule(gw_jobs *j, gw_job *job);

/* ---- jobs_dispatch.c ------------------------------------------------------------- */

/* Sends due jobs of t to live workers that run it and have credit. */
void gw__jobs_pump_task(gw_jobs *j, gw_jobs_task *t);

/* A lease ran out: the job leaves its holder (whose credit stays spent until its
 * late JOB_RESULT) and is retried. */
void gw__jobs_lease_expired(gw_jobs *j, gw_job *job);

/* Frees the per-worker records (close). */
void gw__jobs_workers_free(gw_jobs *j);

/* ---- jobs_api.c ------------------------------------------------------------------ */

/* Adds POST /jobs/{task} and GET /jobs/{id}.  0 or gw_router_add's error. */
int gw__jobs_routes_add(gw_jobs *j);

/* Removes them (destroy). */
void gw__jobs_routes_remove(gw_jobs *j);

/* The hooks the queue attaches to the broker (jobs_dispatch.c, jobs_api.c). */
extern const gw_broker_hooks gw__jobs_hooks;

/* jobs_api.c: the reply_jobs hook. */
bool gw__jobs_reply_hold(void *data, gw_req *req, const br_reply *r, bool want_msgpack);

#endif /* BARISTA_GW_JOBS_INT_H */
