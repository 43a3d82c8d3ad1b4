/*
 * jobs_int.h - what jobs.c (the queue: jobs, the store, timers), jobs_tasks.c (the task
 * table and its life cycle), jobs_payload.c (which bytes stay in memory, and reading
 * the others back), jobs_api.c (HTTP and REPLY.jobs), jobs_dispatch.c (workers,
 * leases, results, policies), jobs_schedule.c and jobs_cron.c (schedules),
 * jobs_page.c (GET /jobs/ui) and jobs_stats.c (the numbers for /metrics) share, and
 * the hooks it attaches to the broker.  Not for use outside the job queue.
 *
 * A job lives in memory from its submission to its expiry; the store holds the same
 * rows for the next start, and the payloads and results memory does not keep.  At any
 * moment a durable job is on exactly one of:
 *   - its task's ready queue: queued and due, its payload in memory;
 *   - its task's spilled queue: queued and due, its payload only in the store;
 *   - its task's loading list: its payload being read back from the store;
 *   - the delayed heap: queued or failed, not yet due (payload only in the store);
 *   - a worker's leased list: running, with a node in the lease heap (the payload went
 *     with the JOB and is only in the store);
 *   - the finished list: succeeded or dead (no payload).
 * A job that is not durable yet is on none of them, holds its payload in memory, and
 * is never dispatched before its 202 could have been sent.
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

/* Tasks that exist at once (announced by a registered worker, or in their grace
 * period).  Retired tasks that still hold jobs are not counted: jobs bound them. */
#define GW_JOBS_MAX_TASKS 1024u
/* Tasks one worker may announce; the rest of its READY.tasks are refused (logged). */
#define GW_JOBS_WORKER_TASKS_MAX 64u
/* Period of the timer that releases delayed jobs, expires leases, old jobs and tasks. */
#define GW_JOBS_TICK_MS 50u
/* Finished jobs deleted per tick, at most (expiry never floods the store). */
#define GW_JOBS_EXPIRE_BATCH 10000u
/* Longest error text kept from a JOB_RESULT. */
#define GW_JOBS_ERROR_MAX 1024u
/* Payload bytes of one task's due jobs kept in memory for its workers; beyond it they
 * wait in the store and are read back in batches as workers take them. */
#define GW_JOBS_TASK_WINDOW (4u * 1024u * 1024u)
/* Jobs read back from the store in one batch, at most. */
#define GW_JOBS_LOAD_BATCH 256u
/* GET /jobs/{id} reads of results not kept in memory, in flight at once (503 beyond). */
#define GW_JOBS_READS_MAX 64u
/* Longest task name shown from a store row (GET of a job another gateway holds). */
#define GW_JOBS_ROW_TASK_MAX 256u
/* Bytes of an idempotency digest (BLAKE2b of task and key), and of an owner digest
 * (BLAKE2b of an identity's kind and subject). */
#define GW_JOBS_IDEM_BYTES 16u
/* Longest identity a job keeps (the msgpack map of its verified caller); a longer one
 * is kept without its claims. */
#define GW_JOBS_IDENTITY_MAX 4096u
/* Longest progress note kept from a JOB_PROGRESS. */
#define GW_JOBS_NOTE_MAX 256u
/* GET /jobs: most jobs in one page, the default, and most jobs looked at per page
 * (a selective filter over many jobs answers a shorter page and a cursor). */
#define GW_JOBS_LIST_MAX     200u
#define GW_JOBS_LIST_DEFAULT 50u
#define GW_JOBS_LIST_SCAN    100000u
/* JOB_HANDOFFs parked for jobs not held here yet (jobs_handoff.c), at most, and their
 * bytes (results included). */
#define GW_JOBS_PARKED_MAX   4096u
#define GW_JOBS_PARKED_BYTES (64u * 1024u * 1024u)

typedef struct gw_job gw_job;
typedef struct gw_jobs_schedule gw_jobs_schedule;

/* Workflows (jobs_flow.c): most members in one, and the deepest nesting of its
 * canvas. */
#define GW_JOBS_FLOW_MAX   1000u
#define GW_JOBS_FLOW_DEPTH 16u
/* Length of a workflow id: 32 hex digits. */
#define GW_JOBS_FLOW_ID_LEN 32u

/* A workflow: its members in creation order (a member's parents come before it). */
typedef struct gw_jobs_flow {
    char id[GW_JOBS_FLOW_ID_LEN + 1]; /* the id clients see (NUL-terminated) */
    uint64_t hash;                    /* gw__jobs_hash of id: key in jobs->byflow */
    struct gw_jobs_flow *hash_next;   /* next workflow whose id has the same hash */
    gw_job **members;                 /* size slots; NULL once a member expired */
    uint32_t size;                    /* members it was made with */
    uint32_t held;                    /* members still in memory: it goes at 0 */
    char parent[GW_JOB_ID_MAX + 1];   /* the job whose task made it (WORKFLOW), or "" */
} gw_jobs_flow;

/* Schedules: most at once, the longest cron text, the shortest interval, and the most
 * missed ticks one may make up after a restart. */
#define GW_JOBS_SCHEDULES_MAX   10000u
#define GW_JOBS_CRON_MAX        128u
#define GW_JOBS_INTERVAL_MIN_MS 10u
#define GW_JOBS_CATCH_UP_MAX    1000u

/* How often a gateway of a shared queue reads the store's schedules (jobs_schedule.c). */
#define GW_JOBS_SCHEDULES_SYNC_MS 1000

/* A parsed cron expression (jobs_cron.c): one bit per allowed value. */
typedef struct gw_jobs_cron {
    uint64_t minutes; /* bits 0..59 */
    uint32_t hours;   /* bits 0..23 */
    uint32_t mdays;   /* bits 1..31 */
    uint16_t months;  /* bits 1..12 */
    uint8_t wdays;    /* bits 0..6, Sunday 0 */
    bool mday_star;   /* the day-of-month field was `*` */
    bool wday_star;   /* the day-of-week field was `*` */
} gw_jobs_cron;

/* Where a task is in its life (docs/jobs.md, "Tasks"). */
typedef enum gw_task_state {
    GW_TASK_LIVE = 0,   /* announced by at least one registered worker */
    GW_TASK_GRACE = 1,  /* its last worker left less than task_grace_ms ago */
    GW_TASK_RETIRED = 2 /* gone: not submittable; kept only while it holds jobs */
} gw_task_state;

/* A task: its name, its state and its queues of due jobs. */
typedef struct gw_jobs_task {
    char *name;                     /* task name (in the same allocation) */
    uint64_t hash;                  /* hash of the name: key in jobs->bytask */
    struct gw_jobs_task *hash_next; /* next task whose name has the same hash */
    size_t index;                   /* position in jobs->tasks */
    uint8_t state;                  /* gw_task_state */
    bool is_public;                 /* HTTP clients may submit it: every worker announcing it
                                       marks it public (kept through the grace period) */
    unsigned declarers;             /* registered workers announcing it */
    unsigned public_declarers;      /* of which marking it public */
    int64_t grace_end_ms;           /* GRACE: wall clock when it retires */
    gw_list grace_link;             /* in jobs->grace while GRACE */
    bool recorded;                  /* the store's tasks table has it */
    bool recorded_public;           /* with this public flag */
    gw_list ready;                  /* due jobs with their payload in memory, oldest first */
    size_t nready;                  /* entries in ready */
    gw_list spilled;                /* due jobs whose payload is only in the store */
    size_t nspilled;                /* entries in spilled */
    gw_list loading;                /* jobs whose payload is being read back */
    size_t nloading;                /* entries in loading */
    size_t ready_bytes;             /* payload bytes on ready and being loaded (the window) */
    size_t unfinished;              /* jobs neither succeeded nor dead (the per-task limit) */
    uint64_t bytes;                 /* payload bytes of unfinished jobs, anywhere (task_bytes) */
    size_t njobs;                   /* jobs of this task held, any status */
    size_t nrunning;                /* of which leased to a worker */
    br_task_policy policy;          /* as its workers declared it (TASK_POLICY; task empty);
                                       a 0 field: the gateway's option */
    double tokens;                  /* rate limit: JOBs it may send now (policy.rate > 0) */
    int64_t tokens_ms;              /* wall clock of the last refill */
    uint64_t nsucceeded, nfailed, ndead, ncancelled; /* counters for /metrics */
    gw_jobs_hist queue_latency;                      /* due -> sent, per JOB */
    gw_jobs_hist run_time; /* sent -> JOB_RESULT, per attempt that answered */
    bool touched;          /* on_tick's mark: due jobs joined it this tick */
} gw_jobs_task;

/* What the job queue knows of a registered worker. */
typedef struct gw_jobs_worker {
    gw_worker *w;         /* the broker's worker */
    gw_jobs_task **tasks; /* the tasks it announced (and the queue accepted) */
    bool *is_public;      /* per task: it marked it public */
    size_t ntasks;        /* entries in tasks */
    char **waiting;       /* names refused while the task table was full (owned): declared
                             as soon as it has room */
    bool *waiting_public; /* per waiting name: it marked it public */
    size_t nwaiting;      /* entries in waiting */
    gw_list leased;       /* jobs leased to it */
    uint32_t nleased;     /* entries in leased */
    uint32_t stale;       /* jobs it still runs whose lease expired: their credit comes
                             back with their (ignored) JOB_RESULT */
    size_t next;          /* where the round robin over its tasks starts next */
} gw_jobs_worker;

/* Someone waiting for a job to become durable: an HTTP client or a held reply. */
typedef struct gw_job_waiter {
    gw_list link; /* in the job's waiters */
    /* Called once: status 0 when job is durable, else the write failed (job is about
     * to be freed).  The waiter is unlinked before. */
    void (*ready)(struct gw_job_waiter *self, gw_job *job, int status);
} gw_job_waiter;

/* Where a job's payload is counted while memory holds it. */
typedef enum gw_payload_in {
    GW_PAYLOAD_NONE = 0,      /* not in memory (only in the store) */
    GW_PAYLOAD_INSERTING = 1, /* being written: jobs->insert_bytes */
    GW_PAYLOAD_READY = 2      /* due, on its task's ready queue: the ready_bytes */
} gw_payload_in;

struct gw_job {
    uint64_t seq;                     /* sequence number: the store's key, jobs->byid's */
    char id[GW_JOB_ID_MAX + 1];       /* the id clients see (NUL-terminated) */
    uint8_t id_len;                   /* its length */
    struct gw_jobs *owner;            /* the queue it belongs to (store callbacks need it) */
    gw_jobs_task *task;               /* its task */
    br_str payload;                   /* msgpack argument (owned) while in memory, else empty */
    uint32_t payload_len;             /* the payload's length, in memory or not */
    uint8_t payload_in;               /* gw_payload_in: which count holds payload */
    bool has_key;                     /* it was submitted with an Idempotency-Key */
    uint8_t idem[GW_JOBS_IDEM_BYTES]; /* digest of its task and key; jobs->bykey */
    gw_job *idem_next;                /* next job whose digest has the same hash */
    br_str result;                    /* msgpack result (owned) once succeeded */
    br_str error;                     /* last error (owned), maybe empty */
    bool detail_on_disk;              /* result and error are only in the store */
    uint8_t status;                   /* gw_job_status */
    uint32_t attempts;                /* runs started */
    int64_t run_at_ms;                /* wall clock: not before */
    int64_t updated_ms;               /* wall clock of the last change */
    int64_t sent_ms;                  /* wall clock of its last JOB (run time) */
    bool durable;                     /* its first write committed */
    bool loading;                     /* on its task's loading list */
    bool cancel_wanted;               /* DELETE while running: cancelled when the attempt ends */
    bool timed_out;                   /* ran past its task's timeout: JOB_CANCEL sent; the
                                         attempt ends as a failure */
    bool has_owner;                   /* submitted by a verified caller */
    uint8_t owned_by[GW_JOBS_IDEM_BYTES]; /* digest of that caller's kind and subject */
    br_str identity;                      /* that caller's msgpack map (owned), or empty */
    float progress;                       /* last progress reported, 0..1; < 0: none */
    char *note;                           /* last progress note (owned), or NULL */
    gw_list all;                          /* in jobs->all, by sequence number */
    gw_list link;                         /* ready, spilled, loading, leased or finished list */
    gw_deadline timer;                    /* delayed heap (run_at) or lease heap (lease end) */
    gw_jobs_worker *holder;               /* the worker holding its lease, or NULL */
    bool held;                            /* RUNNING at a worker of a gateway gone: its
                                             JOB_HANDOFFs renew the lease (jobs_handoff.c) */
    gw_list waiters;                      /* gw_job_waiter: wait for durability */
    gw_jobs_flow *flow;                   /* its workflow, or NULL */
    uint32_t flow_index;                  /* its place in flow->members */
    uint32_t nparents;                    /* members whose results it waits for */
    uint32_t *parents;                    /* their indexes (owned), in result order */
    bool flow_args;                       /* its own argument follows its parents' results */
    bool flow_join;                       /* its parents' results come as a list (a chord) */
    bool advancing;                       /* WAITING: its parents' results are being read */
};

struct gw_jobs {
    uv_loop_t *loop;            /* the gateway's loop */
    gw_router *router;          /* where the API routes are (the caller's) */
    gw_broker *broker;          /* sends JOBs; the queue is attached to it */
    gw_jobs_config cfg;         /* a copy of the caller's */
    char *db;                   /* cfg.db's own copy */
    gw_jobs_store *store;       /* durable rows */
    gw_idmap *byid;             /* seq -> gw_job */
    gw_idmap *bykey;            /* idempotency digest hash -> gw_job chain */
    gw_idmap *bytask;           /* task name hash -> gw_jobs_task chain */
    gw_jobs_task **tasks;       /* every task record, any state */
    size_t ntasks;              /* entries in tasks */
    size_t tasks_cap;           /* slots allocated */
    size_t nexisting;           /* of which LIVE or GRACE (GW_JOBS_MAX_TASKS) */
    gw_list grace;              /* GRACE tasks, oldest grace end first */
    gw_jobs_worker **workers;   /* registered workers that announced tasks */
    size_t nworkers;            /* entries in workers */
    size_t workers_cap;         /* slots allocated */
    gw_deadline_heap delayed;   /* jobs waiting for run_at */
    gw_deadline_heap leases;    /* leased jobs by lease end */
    gw_list finished;           /* succeeded, dead and cancelled jobs, oldest change first */
    gw_list waiting;            /* workflow members waiting for their parents */
    gw_idmap *byflow;           /* workflow id hash -> gw_jobs_flow chain */
    gw_list flow_asks;          /* WORKFLOWs being written whose worker waits (jobs_flow.c) */
    bool flow_routes_added;     /* the /workflows routes are in the router */
    gw_list all;                /* every job held, oldest sequence number first (GET /jobs) */
    uv_timer_t tick;            /* delayed jobs, leases, expiry, grace */
    uint64_t rng;               /* xorshift state for backoff jitter */
    uint64_t last_seq;          /* the largest sequence number handed out or loaded */
    uint8_t pool[4096];         /* random bytes for ids, drawn from libsodium in bulk */
    size_t pool_left;           /* unused bytes at the end of pool */
    size_t njobs;               /* jobs held (GW_JOBS_MAX) */
    size_t insert_bytes;        /* payload bytes of jobs not durable yet */
    size_t ready_bytes;         /* payload bytes on ready queues and being loaded */
    size_t detail_bytes;        /* result and error bytes held */
    unsigned reads;             /* GET reads in flight (GW_JOBS_READS_MAX) */
    bool refill_wanted;         /* a task's spilled jobs wait for memory: retry each tick */
    bool rate_waiting;          /* a rate-limited task's ready jobs wait for tokens */
    br_buf scratch;             /* JSON rendering of GET /jobs/{id} */
    bool routes_added;          /* the API routes are in the router */
    bool schedule_routes_added; /* the /schedules routes are in the router */
    gw_list schedules;          /* gw_jobs_schedule, in creation order */
    size_t nschedules;          /* entries in schedules (GW_JOBS_SCHEDULES_MAX) */
    uint64_t sched_gen;         /* local schedule changes so far (a shared store) */
    uint64_t sched_del_gen;     /* sched_gen at the last local delete */
    uint64_t sched_read_gen;    /* sched_gen when the store read in flight was queued */
    bool sched_reading;         /* a read of the store's schedules is in flight */
    int64_t sched_sync_ms;      /* when the next read is due (wall clock) */
    bool closing;               /* gw_jobs_shutdown was called */
    bool destroying;            /* gw_jobs_destroy runs: tasks stay until the end */
    unsigned closes_pending;    /* the timer and the store, until closed */
    void (*done)(void *arg);    /* close's callback */
    void *done_arg;             /* its argument */
    gw_jobs_stats stats;        /* counters (gauges are computed on demand) */
    gw_list parked;             /* JOB_HANDOFFs of jobs not held yet (jobs_handoff.c) */
    size_t nparked;             /* entries in parked (GW_JOBS_PARKED_MAX) */
    size_t parked_bytes;        /* their bytes (GW_JOBS_PARKED_BYTES) */
};

/* ---- per-task policy: the task's declaration, else the gateway's option ---------- */

static inline uint32_t gw__jobs_max_attempts(const gw_jobs *j, const gw_jobs_task *t)
{
    return t->policy.max_attempts ? t->policy.max_attempts : j->cfg.max_attempts;
}
static inline uint32_t gw__jobs_lease_ms(const gw_jobs *j, const gw_jobs_task *t)
{
    return t->policy.lease_ms ? t->policy.lease_ms : j->cfg.lease_ms;
}
static inline uint32_t gw__jobs_backoff_ms(const gw_jobs *j, const gw_jobs_task *t)
{
    return t->policy.backoff_ms ? t->policy.backoff_ms : j->cfg.backoff_ms;
}
static inline uint32_t gw__jobs_backoff_cap_ms(const gw_jobs *j, const gw_jobs_task *t)
{
    return t->policy.backoff_cap_ms ? t->policy.backoff_cap_ms : j->cfg.backoff_cap_ms;
}
/* A task's queue limit never passes the gateway's --jobs-task-limit. */
static inline uint32_t gw__jobs_task_limit(const gw_jobs *j, const gw_jobs_task *t)
{
    return t->policy.queue_limit && t->policy.queue_limit < j->cfg.task_limit
               ? t->policy.queue_limit
               : j->cfg.task_limit;
}

/* True when the queue shares its store with other gateways (PostgreSQL). */
static inline bool gw__jobs_shared(const gw_jobs *j)
{
    return j->store && j->store->ops->watch != NULL;
}

/* ---- jobs.c ---------------------------------------------------------------------- */

/* Wall-clock milliseconds since the epoch. */
int64_t gw__jobs_now_ms(void);

/* FNV-1a of s; never 0 (the id map's empty mark). */
uint64_t gw__jobs_hash(br_str s);

/* The sequence number an id stands for (its first 16 hex digits, or a decimal id's
 * value); 0 for no id. */
uint64_t gw__jobs_seq_of(br_str id);

/* The job with id `id` (as clients see it), or NULL. */
gw_job *gw__jobs_find(gw_jobs *j, br_str id);

/* The job with sequence number `seq`, or NULL. */
gw_job *gw__jobs_find_seq(gw_jobs *j, uint64_t seq);

/* Creates a job (or finds the one with the same idempotency key in the same task) and
 * writes it down.  When `waiter` is given it is told once the job is durable - at once,
 * before this returns, for an existing durable job.  *out is the job.  0; BR_EFULL
 * when the task or the gateway holds its limit of jobs or the store's queue is full;
 * BR_ELIMIT when its payload would pass the task's bytes or the memory budget;
 * BR_ENOMEM. */
int gw__jobs_submit(gw_jobs *j, gw_jobs_task *t, br_str payload, br_str key, uint32_t delay_ms,
                    br_str identity, gw_job_waiter *waiter, gw_job **out);

/* gw__jobs_submit for tick `tick` of a schedule (its id): on a shared store the job
 * is written only if no other gateway made the tick (the schedule's last tick is at
 * most `floor`; jobs_store.h, gw_job_row.claim) - else it is dropped quietly. */
int gw__jobs_submit_tick(gw_jobs *j, gw_jobs_task *t, br_str payload, br_str key, br_str identity,
                         br_str schedule, int64_t tick, int64_t floor, gw_job **out);

/* The digest of an identity's kind and subject into out; false for an empty or
 * unreadable identity (anonymous). */
bool gw__jobs_owner_digest(br_str identity, uint8_t out[GW_JOBS_IDEM_BYTES]);

/* True when a caller with `identity` may see something with this owner: it has none,
 * or the caller is it. */
bool gw__jobs_owner_matches(bool has_owner, const uint8_t owned_by[GW_JOBS_IDEM_BYTES],
                            br_str identity);

/* The value of up to 16 lowercase hex digits; 0 for any other character. */
uint64_t gw__jobs_hex64(br_str s);

/* True when a caller with `identity` may see and control job: the job has no owner, or
 * the caller is its owner. */
bool gw__jobs_visible(const gw_job *job, br_str identity);

/* True for succeeded, dead and cancelled jobs. */
bool gw__jobs_finished(const gw_job *job);

/* DELETE: a queued or failed job is cancelled at once (0); a running one is asked to
 * stop (JOB_CANCEL to its worker) and is cancelled when its attempt ends, unless it
 * succeeds (1); one whose payload is being read back is cancelled when the read ends
 * (1).  BR_EINVAL for a finished job or one not durable yet. */
int gw__jobs_cancel(gw_jobs *j, gw_job *job);

/* Takes a queued or failed durable job off whatever queue it waits on (its payload
 * leaves memory).  A job being read back stays on its task's loading list. */
void gw__jobs_unqueue(gw_jobs *j, gw_job *job);

/* POST /jobs/{id}/retry: a dead, cancelled or failed job runs again now with a fresh
 * attempt count (a workflow member's descendants that ended with it wait again).  0;
 * BR_EINVAL when it is not in one of those states; BR_EVALUE for a workflow member
 * whose parents did not all succeed; BR_EFULL or BR_ELIMIT at the task's limits. */
int gw__jobs_retry(gw_jobs *j, gw_job *job);

/* An attempt of a running job ended (its holder was detached already): OK makes it
 * succeeded with `result`; RETRY (and a lost lease) makes it failed and scheduled
 * again after a backoff, or dead after the last attempt; FATAL makes it dead.
 * lost: the attempt ended with the worker (lease expired, worker died) - it is
 * requeued at once.  The change is written to the store. */
void gw__jobs_attempt_ended(gw_jobs *j, gw_job *job, int outcome, br_str result, br_str error,
                            bool lost);

/* ---- jobs_tasks.c ---------------------------------------------------------------- */

/* The task record named `name`, in any state, or NULL. */
gw_jobs_task *gw__jobs_task_find(gw_jobs *j, br_str name);

/* The task named `name` if a service may enqueue it (REPLY.jobs): LIVE or GRACE. */
gw_jobs_task *gw__jobs_task_open(gw_jobs *j, br_str name);

/* The task named `name` if HTTP clients may submit it: open and public. */
gw_jobs_task *gw__jobs_task_public(gw_jobs *j, br_str name);

/* A registered worker announces `name` (is_public: it marks it public).  Creates or
 * revives the task.  NULL when the name is empty or too long, GW_JOBS_MAX_TASKS exist
 * already, or memory runs out. */
gw_jobs_task *gw__jobs_task_declare(gw_jobs *j, br_str name, bool is_public);

/* A worker that announced t is gone; t's grace period starts with its last one. */
void gw__jobs_task_undeclare(gw_jobs *j, gw_jobs_task *t, bool is_public);

/* Loading: a task recorded in the store starts its grace period now (its workers
 * reconnect on their own); a task only named by a job row is retired.  NULL when it
 * cannot be kept (logged). */
gw_jobs_task *gw__jobs_task_loaded(gw_jobs *j, br_str name, bool recorded, bool is_public);

/* A job of t was freed: a retired task without jobs goes. */
void gw__jobs_task_unref(gw_jobs *j, gw_jobs_task *t);

/* Retires the tasks whose grace period ended by `now`. */
void gw__jobs_tasks_tick(gw_jobs *j, int64_t now);

/* Frees every task record (destroy; their jobs are gone). */
void gw__jobs_tasks_free(gw_jobs *j);

/* ---- jobs_payload.c -------------------------------------------------------------- */

/* Frees job's payload if held (counted where it was). */
void gw__jobs_payload_drop(gw_jobs *j, gw_job *job);

/* Puts a durable queued job where it waits: due on ready (payload kept, within the
 * task's window and the memory budget) or spilled (payload dropped), not yet due on
 * the delayed heap (payload dropped). */
void gw__jobs_schedule(gw_jobs *j, gw_job *job);

/* A due job whose payload is only in the store joins its task's spilled queue (at the
 * front: it has waited already). */
void gw__jobs_spill_front(gw_jobs *j, gw_job *job);

/* Reads back the payloads of t's first spilled jobs when a worker runs t and the
 * memory budget has room (else tries again each tick). */
void gw__jobs_refill(gw_jobs *j, gw_jobs_task *t);

/* Replaces job's result and error (copies; error truncated to GW_JOBS_ERROR_MAX) and
 * keeps them in memory if the result budget allows; otherwise only the store (which
 * the caller writes next) holds them. */
void gw__jobs_detail_set(gw_jobs *j, gw_job *job, br_str result, br_str error);

/* Frees job's result and error if held. */
void gw__jobs_detail_drop(gw_jobs *j, gw_job *job);

/* Reads a job's result and error from the store (for GET when detail_on_disk):
 * done(arg, job, result, error, status) runs on the loop with the job found again by
 * id (NULL if it expired meanwhile).  0; BR_EFULL at GW_JOBS_READS_MAX or a full
 * store queue; BR_ENOMEM. */
typedef void (*gw_jobs_detail_fn)(void *arg, gw_job *job, br_str result, br_str error, int status);
int gw__jobs_detail_read(gw_jobs *j, gw_job *job, gw_jobs_detail_fn done, void *arg);

/* ---- jobs_dispatch.c ------------------------------------------------------------- */

/* Sends due jobs of t to live workers that run it and have credit. */
void gw__jobs_pump_task(gw_jobs *j, gw_jobs_task *t);

/* True when a live registered worker runs t. */
bool gw__jobs_task_has_worker(gw_jobs *j, const gw_jobs_task *t);

/* Running jobs past their task's timeout get JOB_CANCEL and will fail (the tick). */
void gw__jobs_timeouts(gw_jobs *j, int64_t now);

/* True when a task with a rate limit has ready jobs waiting for tokens (the tick pumps
 * it again). */
bool gw__jobs_rate_waiting(gw_jobs *j, gw_jobs_task *t);

/* Asks job's worker to stop it (JOB_CANCEL). */
void gw__jobs_send_cancel(gw_jobs *j, gw_job *job);

/* A lease ran out: the job leaves its holder (whose credit stays spent until its
 * late JOB_RESULT) and is retried. */
void gw__jobs_lease_expired(gw_jobs *j, gw_job *job);

/* Frees the per-worker records (close). */
void gw__jobs_workers_free(gw_jobs *j);

/* The task table has room again: workers' tasks refused while it was full are
 * declared now (as far as room goes). */
void gw__jobs_workers_retry(gw_jobs *j);

/* Makes a job of t (with a copy of payload, owned by identity) in status QUEUED or
 * WAITING, indexed and counted but not written: the caller writes it (jobs_flow.c
 * writes a workflow's members at once).  0; BR_EFULL or BR_ELIMIT at the limits;
 * BR_ENOMEM. */
int gw__jobs_make(gw_jobs *j, gw_jobs_task *t, br_str payload, br_str identity, uint8_t status,
                  gw_job **out);

/* Frees a job made by gw__jobs_make whose write failed (nobody was told of it). */
void gw__jobs_unmake(gw_jobs *j, gw_job *job);

/* A job made by gw__jobs_make is durable: a QUEUED one joins its queue. */
void gw__jobs_made_durable(gw_jobs *j, gw_job *job);

/* job ended for good (succeeded, dead or cancelled): the caller wrote it already. */
void gw__jobs_finish(gw_jobs *j, gw_job *job, uint8_t status);

/* Writes job's state; nobody waits. */
void gw__jobs_persist(gw_jobs *j, gw_job *job);

/* ---- jobs_handoff.c ------------------------------------------------------------- */

/* The takes_handoffs hook: true on a shared (PostgreSQL) store. */
bool gw__jobs_takes_handoffs(void *data);

/* The job_handoff hook: news of a job another gateway gave a worker (applied to a job
 * held here at that attempt, else parked until the job is adopted). */
bool gw__jobs_on_handoff(void *data, gw_worker *w, const br_job_handoff *m);

/* Jobs were adopted: parked handoffs of jobs now held are applied. */
void gw__jobs_handoffs_adopted(gw_jobs *j);

/* Parked handoffs without news for a lease are dropped (the tick). */
void gw__jobs_handoffs_tick(gw_jobs *j, int64_t now);

/* Frees every parked handoff (destroy). */
void gw__jobs_handoffs_free(gw_jobs *j);

/* ---- jobs_flow.c ----------------------------------------------------------------- */

/* A loaded row's links (its workflow membership) are read into job and its workflow.
 * 0, or BR_EVALUE for links that do not parse (logged; the job is kept alone). */
int gw__jobs_flow_load(gw_jobs *j, gw_job *job, br_str links);

/* After loading: members whose parents all ended (the gateway died between a parent's
 * end and its child's update) are advanced or failed now. */
void gw__jobs_flows_recover(gw_jobs *j);

/* job, a workflow member, ended for good and its row was queued: its waiting
 * children run (all their parents succeeded) or fail with it. */
void gw__jobs_flow_ended(gw_jobs *j, gw_job *job);

/* A WAITING member is cancelled (DELETE): 0 at once (its waiting children with it), 1
 * when its parents' results are being read (cancelled when that ends). */
int gw__jobs_flow_cancel_waiting(gw_jobs *j, gw_job *job);

/* job is freed: its workflow forgets it (and goes with its last member). */
void gw__jobs_flow_forget(gw_jobs *j, gw_job *job);

/* Frees every workflow record (destroy; their jobs are gone). */
void gw__jobs_flows_free(gw_jobs *j);

/* The broker's workflow hook: WORKFLOW from w (a handler's or a task's) is compiled and
 * written, and w hears WORKFLOW_REPLY (202 with the workflow's id once it is durable,
 * or why not). */
void gw__jobs_flow_submit(void *data, gw_worker *w, const br_workflow *m);

/* w is gone: the WORKFLOWs it waits for are written without telling it. */
void gw__jobs_flow_worker_gone(gw_jobs *j, gw_worker *w);

/* POST /jobs/{id}/retry of a workflow member: false when a parent of job did not
 * succeed (it never had its argument: the parent is what to retry). */
bool gw__jobs_flow_may_retry(const gw_job *job);

/* A dead or cancelled member runs again: the members after it that ended without
 * running because of it wait again for their parents (written), so that the workflow
 * goes on when it succeeds. */
void gw__jobs_flow_revive(gw_jobs *j, gw_job *job);

/* Adds and removes POST /workflows, GET and DELETE /workflows/{id}. */
int gw__jobs_flow_routes_add(gw_jobs *j);
void gw__jobs_flow_routes_remove(gw_jobs *j);

/* ---- jobs_cron.c, jobs_schedule.c ------------------------------------------------ */

/* Days from 1970-01-01 to the civil date y-m-d (proleptic Gregorian, UTC). */
int64_t gw__jobs_days_from_civil(int y, int m, int d);

/* Parses a five-field cron expression.  0 or BR_EVALUE. */
int gw__jobs_cron_parse(const char *text, gw_jobs_cron *out);

/* The first minute after after_ms (wall clock, ms) that c matches, in ms; -1 when none
 * comes within five years. */
int64_t gw__jobs_cron_next(const gw_jobs_cron *c, int64_t after_ms);

/* Reads the store's schedules (at start).  0 or the store's error. */
int gw__jobs_schedules_load(gw_jobs *j);

/* A registered worker's READY declares schedules of its tasks: each is made, replaced
 * when its declaration changed, or left as it is (one per task and name). */
void gw__jobs_schedules_declare(gw_jobs *j, const br_ready *r);

/* Makes the jobs of the ticks due by `now` (the timer). */
void gw__jobs_schedules_tick(gw_jobs *j, int64_t now);
/* The earliest tick of any schedule still to come (ms since the epoch), or -1. */
int64_t gw__jobs_schedules_next_ms(const gw_jobs *j);

/* Frees every schedule (destroy). */
void gw__jobs_schedules_free(gw_jobs *j);

/* Adds and removes POST/GET /schedules and DELETE /schedules/{id}. */
int gw__jobs_schedule_routes_add(gw_jobs *j);
void gw__jobs_schedule_routes_remove(gw_jobs *j);

/* ---- jobs_page.c ------------------------------------------------------------------ */

/* The jobs page (GET /jobs/ui), NUL-terminated, and its length without the NUL. */
extern const char gw__jobs_page_html[];
extern const size_t gw__jobs_page_html_len;

/* ---- jobs_stats.c ---------------------------------------------------------------- */

/* Adds a duration of ms milliseconds to h. */
void gw__jobs_hist_observe(gw_jobs_hist *h, int64_t ms);

/* ---- jobs_api.c ------------------------------------------------------------------ */

/* A route of the job queue's, for gw__jobs_router_add. */
typedef struct gw_jobs_route {
    const char *method;    /* "GET", ... */
    const char *path;      /* the template */
    gw_handler_fn handler; /* called with the queue as its data */
} gw_jobs_route;

/* Adds n routes (all or none: on failure the ones added are removed).  0 or
 * gw_router_add's error. */
int gw__jobs_router_add(gw_jobs *j, const gw_jobs_route *routes, size_t n);

/* Removes n routes added by gw__jobs_router_add. */
void gw__jobs_router_remove(gw_jobs *j, const gw_jobs_route *routes, size_t n);

/* The verified caller of req (the edge's identity), or empty. */
br_str gw__jobs_caller(const gw_req *req);

/* Adds POST /jobs/{task} and GET /jobs/{id}.  0 or gw_router_add's error. */
int gw__jobs_routes_add(gw_jobs *j);

/* Removes them (destroy). */
void gw__jobs_routes_remove(gw_jobs *j);

/* The hooks the queue attaches to the broker (jobs_dispatch.c, jobs_api.c). */
extern const gw_broker_hooks gw__jobs_hooks;

/* jobs_api.c: the reply_jobs hook. */
bool gw__jobs_reply_hold(void *data, gw_req *req, const br_reply *r, bool want_msgpack);

#endif /* BARISTA_GW_JOBS_INT_H */
