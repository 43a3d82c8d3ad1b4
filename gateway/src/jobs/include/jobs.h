/*
 * jobs.h - durable background jobs: the gateway's job queue (docs/jobs.md).
 *
 * POST /jobs/{task} writes a job down (jobs_store.h) and answers 202 only once it is
 * durable; GET /jobs/{id} shows it.  Workers announce the tasks they run, and which of
 * them HTTP clients may submit (the others are internal: only a service's reply
 * enqueues them); a task exists while a registered worker announces it, and retires a
 * grace period after the last one left.  Queued jobs go to workers as JOB messages
 * under the same credit as requests, leased to one worker at a time.  A worker that
 * dies or outlives its lease gives the job back; a failed attempt is retried with
 * exponential backoff and jitter until the last attempt makes it dead; finished jobs
 * expire after the retention period.  Delivery is at-least-once.  Job ids are random;
 * payloads and results are held in memory within a byte budget, the rest waits in the
 * store.
 *
 * Lifecycle (after the broker exists, before it starts):
 *     gw_jobs_config cfg;  gw_jobs_config_defaults(&cfg);  (set fields)
 *     j = gw_jobs_new(loop, router, broker, &cfg);   opens the store, loads, adds routes
 *     ...                                          the loop runs
 *     gw_jobs_shutdown(j, done, arg);                 after the broker's shutdown
 *     (after done) gw_jobs_destroy(&j);
 */
#ifndef BARISTA_GW_JOBS_H
#define BARISTA_GW_JOBS_H

#include <stdint.h>

#include <uv.h>

#include "broker.h"
#include "router.h"

/* Defaults of gw_jobs_config, by name.
 *
 * Configuration, as in every gateway subsystem: gw_jobs_config_defaults() is the one
 * place these are written; a caller starts from it and changes fields.  gw_jobs_new()
 * takes the configuration as given and refuses one without a store path or with a
 * zero limit: zero never means "the default". */
#define GW_JOBS_DB             "./barista-jobs.db"
#define GW_JOBS_RETENTION_MS   (24u * 3600u * 1000u)
#define GW_JOBS_MAX_ATTEMPTS   5u
#define GW_JOBS_LEASE_MS       60000u
#define GW_JOBS_BACKOFF_MS     1000u
#define GW_JOBS_BACKOFF_CAP_MS 300000u
#define GW_JOBS_TASK_LIMIT     1000000u
/* A gateway sharing a PostgreSQL queue that has not renewed its own lease this long
 * is dead: another adopts its jobs. */
#define GW_JOBS_GATEWAY_LEASE_MS 10000u
/* Payload, result and error bytes held in memory, every task together (a quarter for
 * new jobs being written, half for due jobs waiting for a worker, a quarter for
 * results: docs/jobs.md, "Memory"). */
#define GW_JOBS_MEMORY (256u * 1024u * 1024u)
/* Payload bytes of one task's unfinished jobs, in memory and in the store together. */
#define GW_JOBS_TASK_BYTES (1024u * 1024u * 1024u)
/* A task whose last worker left stays submittable this long, then retires. */
#define GW_JOBS_TASK_GRACE_MS 60000u
/* Jobs held at once (in memory and in the store), every task together.  When it is
 * reached, the oldest finished jobs expire early to make room; only unfinished ones
 * can fill it (then POST answers 503). */
#define GW_JOBS_MAX 1000000u
/* Longest task name and Idempotency-Key. */
#define GW_JOBS_NAME_MAX 128u
#define GW_JOBS_KEY_MAX  256u
/* Longest delay a job may ask for: 30 days. */
#define GW_JOBS_DELAY_MAX_MS (30u * 24u * 3600u * 1000u)

typedef struct gw_jobs_config {
    const char *db;          /* SQLite file (copied); "./barista-jobs.db" */
    uint32_t fsync;          /* 1: synchronous=FULL (survives power loss); 0: NORMAL (default) */
    uint32_t retention_ms;   /* finished jobs are deleted this long after they end */
    uint32_t max_attempts;   /* runs before a failing job is dead; 5 */
    uint32_t lease_ms;       /* a job without a result this long after JOB is requeued */
    uint32_t backoff_ms;     /* first retry delay; doubles per attempt; 1000 */
    uint32_t backoff_cap_ms; /* the most a retry waits; 300000 */
    uint32_t task_limit;     /* unfinished jobs per task (503 beyond); 1000000 */
    size_t memory;           /* job bytes held in memory (503 beyond); 256 MiB */
    size_t task_bytes;       /* payload bytes of a task's unfinished jobs (503 beyond); 1 GiB */
    uint32_t task_grace_ms;  /* a task without workers retires after this; 60000 */
    /* PostgreSQL: a gateway silent this long is dead and another adopts its jobs; 10000 */
    uint32_t gateway_lease_ms;
} gw_jobs_config;

/* Fills *cfg with the defaults above.  fsync is off: SQLite's synchronous=NORMAL in
 * WAL mode, which survives the death of any process (docs/jobs.md has the numbers and
 * the power-loss trade-off). */
void gw_jobs_config_defaults(gw_jobs_config *cfg);

typedef struct gw_jobs gw_jobs;

/* Opens the store at cfg->db and loads it (jobs that were running go back to queued:
 * their lease died with the previous gateway), adds POST /jobs/{task} and
 * GET /jobs/{id} to router and attaches itself to broker, which hands it workers'
 * tasks, JOB_ACK, JOB_RESULT and REPLY.jobs.  The configuration is copied.  Caller
 * owns the result; NULL on failure, or when cfg is NULL, has no db or has a zero
 * limit (logged) - then what it had opened on the loop is closing, and is freed once
 * the loop has run. */
gw_jobs *gw_jobs_new(uv_loop_t *loop, gw_router *router, gw_broker *broker,
                     const gw_jobs_config *cfg);

/* Stops the timers, writes what is pending and closes the store; done(arg) runs when
 * everything is closed.  Call after the broker's shutdown. */
void gw_jobs_shutdown(gw_jobs *self, void (*done)(void *arg), void *arg);

/* Removes the routes and frees everything; sets *self_p to NULL; safe on NULL and
 * twice.  After close's done, or when the loop never ran. */
void gw_jobs_destroy(gw_jobs **self_p);

/* The job queue's numbers for GET /metrics.  Gauges describe now (computed when
 * asked, from the queues' own counts); counters only grow. */
typedef struct gw_jobs_stats {
    uint64_t held;      /* gauge: jobs held, unfinished and finished */
    uint64_t ready;     /* gauge: queued and due, waiting for a worker with credit */
    uint64_t running;   /* gauge: leased to a worker */
    uint64_t scheduled; /* gauge: other unfinished jobs: delayed, waiting out a retry's
                           backoff, or not durable yet */
    uint64_t finished;  /* gauge: succeeded or dead, kept until they expire */
    unsigned tasks;     /* gauge: tasks that exist (announced, or in their grace period) */
    uint64_t memory;    /* gauge: payload, result and error bytes held in memory */
    uint64_t accepted;  /* new jobs submitted (a repeated Idempotency-Key is not new) */
    uint64_t completed; /* jobs that succeeded */
    uint64_t retried;   /* attempts that ended with the job to run again */
    uint64_t dead;      /* jobs that failed for good */
    uint64_t cancelled; /* jobs cancelled (DELETE /jobs/{id}) */
} gw_jobs_stats;

/* Fills *out (zeroes when self is NULL). */
void gw_jobs_stats_get(const gw_jobs *self, gw_jobs_stats *out);

/* Histogram buckets of the per-task timings: upper bounds in seconds (a last, +Inf
 * bucket is implied). */
#define GW_JOBS_HIST_BUCKETS 14
extern const double gw_jobs_hist_bounds[GW_JOBS_HIST_BUCKETS];

/* A histogram of durations: counts per bucket (not cumulative; the last entry is the
 * +Inf bucket), their sum and count. */
typedef struct gw_jobs_hist {
    uint64_t buckets[GW_JOBS_HIST_BUCKETS + 1]; /* observations per bucket */
    uint64_t count;                             /* observations */
    double sum_s;                               /* their sum, seconds */
} gw_jobs_hist;

/* One task's numbers for GET /metrics. */
typedef struct gw_jobs_task_stats {
    const char *task;           /* its name (valid until the queue changes) */
    uint64_t queued;            /* gauge: unfinished and not running (due, delayed, retrying) */
    uint64_t running;           /* gauge: leased to a worker */
    uint64_t succeeded;         /* counter: jobs that succeeded */
    uint64_t failed;            /* counter: attempts that failed and left the job to run again */
    uint64_t dead;              /* counter: jobs that failed for good */
    uint64_t cancelled;         /* counter: jobs cancelled */
    gw_jobs_hist queue_latency; /* from due (submitted, delay or backoff over) to sent */
    gw_jobs_hist run_time;      /* from sent to its JOB_RESULT */
} gw_jobs_task_stats;

/* Tasks the queue knows (any state), for gw_jobs_task_stats_get; 0 when self is NULL. */
size_t gw_jobs_task_count(const gw_jobs *self);

/* Fills *out for task number i (< gw_jobs_task_count).  Counters start when the task
 * record is made (a gateway start, or a task that comes back after it retired). */
void gw_jobs_task_stats_get(const gw_jobs *self, size_t i, gw_jobs_task_stats *out);

/* The delay before retry number `attempt` (1 = after the first failure):
 * base * 2^(attempt-1), capped at cap, then jittered into [d/2, d] by `rnd`
 * (any random number), so that jobs failing together do not retry in step. */
uint64_t gw_jobs_backoff_ms(uint32_t attempt, uint32_t base_ms, uint32_t cap_ms, uint64_t rnd);

#endif /* BARISTA_GW_JOBS_H */
