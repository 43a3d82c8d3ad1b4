/*
 * jobs_store.h - where durable jobs are written down: a small interface, so that a
 * networked backend can join the embedded SQLite one later.
 *
 * The job queue itself lives in the gateway's memory (jobs.c); the store is its
 * write-ahead record.  Every change that must survive a crash - a new job, its end,
 * a retry, its expiry - is handed to the store as one row, and the caller learns on
 * the loop, through a callback, when that row is durable.  Rows are applied in the
 * order they were handed over, so a later row for a job always wins.  At start the
 * gateway reads every row back once (gw__jobs_store_load), before it serves requests.
 *
 * A backend never blocks the loop: it writes on its own thread (or socket) and runs
 * the callbacks on the loop.  All functions are called on the loop thread.
 */
#ifndef BARISTA_GW_JOBS_STORE_H
#define BARISTA_GW_JOBS_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include <barista/proto.h>

/* Rows waiting to be written, at most; a put beyond it is refused with BR_EFULL. */
#define GW_JOBS_STORE_MAX_PENDING 200000u
/* Rows written in one transaction, at most (one group commit). */
#define GW_JOBS_STORE_BATCH_MAX 8192u

/* Where a job is in its life (the API shows the names). */
typedef enum gw_job_status {
    GW_JOB_QUEUED = 0,    /* waiting to run (maybe not before run_at_ms) */
    GW_JOB_RUNNING = 1,   /* leased to a worker */
    GW_JOB_SUCCEEDED = 2, /* finished; result holds its value */
    GW_JOB_FAILED = 3,    /* an attempt failed; it runs again after run_at_ms */
    GW_JOB_DEAD = 4       /* failed for good; kept for inspection until it expires */
} gw_job_status;

/* One job as the store keeps it.  Strings point at the caller's memory; a put copies
 * them. */
typedef struct gw_job_row {
    uint64_t id;        /* unique, > 0 */
    br_str task;        /* task name */
    br_str payload;     /* msgpack argument */
    br_str idem_key;    /* Idempotency-Key, maybe empty */
    uint8_t status;     /* gw_job_status */
    uint32_t attempts;  /* runs started so far */
    int64_t run_at_ms;  /* wall-clock ms: not to run before */
    int64_t updated_ms; /* wall-clock ms of the last change (retention counts from it) */
    br_str result;      /* msgpack result when succeeded, else empty */
    br_str error;       /* last error text, maybe empty */
} gw_job_row;

/* Told on the loop when a write is durable (status 0) or failed (a negative br_err,
 * logged by the backend). */
typedef void (*gw_jobs_store_done_fn)(void *arg, int status);

typedef struct gw_jobs_store gw_jobs_store;

/* A backend: one table of hooks, each slot a verb of the interface below. */
typedef struct gw_jobs_store_ops {
    /* Reads every job and every known task name, calling row() and task() for each.
     * Only before the first write.  0 or BR_EIO. */
    int (*load)(gw_jobs_store *self, void (*row)(const gw_job_row *r, void *arg),
                void (*task)(br_str name, void *arg), void *arg);
    /* Inserts or replaces the job r->id (copied). */
    int (*put)(gw_jobs_store *self, const gw_job_row *r, gw_jobs_store_done_fn done, void *arg);
    /* Deletes the job `id`. */
    int (*del)(gw_jobs_store *self, uint64_t id, gw_jobs_store_done_fn done, void *arg);
    /* Records a task name as known (an announced task stays known across restarts). */
    int (*add_task)(gw_jobs_store *self, br_str name, gw_jobs_store_done_fn done, void *arg);
    /* Writes what is pending, stops, then runs closed(arg) on the loop. */
    void (*close)(gw_jobs_store *self, void (*closed)(void *arg), void *arg);
    /* Frees the backend after close's callback. */
    void (*destroy)(gw_jobs_store *self);
} gw_jobs_store_ops;

/* Every backend's struct starts with this. */
struct gw_jobs_store {
    const gw_jobs_store_ops *ops; /* the backend's hooks */
};

/* The interface: each forwards to the backend.  Writes return 0 when the write was
 * queued (done runs later, exactly once), BR_EFULL past GW_JOBS_STORE_MAX_PENDING,
 * BR_ECLOSED after close, BR_ENOMEM; on error done is not called. */
static inline int gw__jobs_store_load(gw_jobs_store *s, void (*row)(const gw_job_row *, void *),
                                      void (*task)(br_str, void *), void *arg)
{
    return s->ops->load(s, row, task, arg);
}
static inline int gw__jobs_store_put(gw_jobs_store *s, const gw_job_row *r,
                                     gw_jobs_store_done_fn done, void *arg)
{
    return s->ops->put(s, r, done, arg);
}
static inline int gw__jobs_store_delete(gw_jobs_store *s, uint64_t id, gw_jobs_store_done_fn done,
                                        void *arg)
{
    return s->ops->del(s, id, done, arg);
}
static inline int gw__jobs_store_add_task(gw_jobs_store *s, br_str name, gw_jobs_store_done_fn done,
                                          void *arg)
{
    return s->ops->add_task(s, name, done, arg);
}
/* Flushes and stops; closed(arg) runs on the loop when the store holds nothing open.
 * Every queued write's done has run by then. */
static inline void gw__jobs_store_shutdown(gw_jobs_store *s, void (*closed)(void *), void *arg)
{
    s->ops->close(s, closed, arg);
}
/* Frees *self_p (after close's callback, or if it never ran a write) and sets it to
 * NULL; safe on NULL. */
static inline void gw__jobs_store_destroy(gw_jobs_store **self_p)
{
    if (self_p && *self_p) {
        (*self_p)->ops->destroy(*self_p);
        *self_p = NULL;
    }
}

/* How durable a SQLite commit is (PRAGMA synchronous).  NORMAL in WAL mode survives
 * the death of any process (the WAL is in the OS page cache) but may lose the last
 * commits on power loss; FULL fsyncs the WAL at every commit and survives both. */
typedef enum gw_jobs_sync { GW_JOBS_SYNC_NORMAL = 1, GW_JOBS_SYNC_FULL = 2 } gw_jobs_sync;

/* Opens (creating if need be) the SQLite database at `path` in WAL mode and starts its
 * writer thread, which commits whatever has queued up in one transaction (group
 * commit) and hands completions back to `loop` through a uv_async.  NULL on failure
 * (logged with SQLite's message).  Caller owns the result. */
gw_jobs_store *gw__jobs_sqlite_open(uv_loop_t *loop, const char *path, gw_jobs_sync sync);

#endif /* BARISTA_GW_JOBS_STORE_H */
