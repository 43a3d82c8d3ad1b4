/*
 * jobs_store.h - where durable jobs are written down: a small interface with two
 * backends, the embedded SQLite one (jobs_sqlite.c) and PostgreSQL (jobs_pg.c), chosen
 * by the store's name (--jobs-db FILE or postgres://...).
 *
 * The job queue itself lives in the gateway's memory (jobs.c); the store is its
 * write-ahead record, and where payloads and results wait that memory does not hold
 * (jobs_payload.c).  Every change that must survive a crash - a new job, its end, a
 * retry, its expiry - is handed to the store as one row, and the caller learns on the
 * loop, through a callback, when that row is durable.  Writes and reads are applied in
 * the order they were handed over, so a later row for a job always wins and a read
 * sees every write queued before it.  At start the gateway reads every row back once
 * (gw__jobs_store_load), before it serves requests.
 *
 * A backend never blocks the loop: it writes on its own thread (or socket) and runs
 * the callbacks on the loop.  All functions are called on the loop thread.
 */
#ifndef BARISTA_GW_JOBS_STORE_H
#define BARISTA_GW_JOBS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

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
    GW_JOB_DEAD = 4,      /* failed for good; kept for inspection until it expires */
    GW_JOB_CANCELLED = 5, /* cancelled (DELETE /jobs/{id}); finished, expires like the others */
    GW_JOB_WAITING = 6    /* a workflow member waiting for its parents (jobs_flow.c) */
} gw_job_status;

/* Longest job id: 36 hex digits.  A new id is the job's sequence number (16 hex
 * digits: the millisecond it was made, then a counter) and 80 random bits (20 hex
 * digits): time-ordered, unguessable.  A job stored before ids were random keeps its
 * decimal integer id, which is also its sequence number (docs/jobs.md, "Job ids"). */
#define GW_JOB_ID_MAX 36

/* One job as the store keeps it.  Strings point at the caller's memory; a write copies
 * them. */
typedef struct gw_job_row {
    uint64_t seq;         /* the store's key: unique among rows, > 0, < 2^63 */
    br_str id;            /* the id clients see, 1..GW_JOB_ID_MAX bytes of [0-9a-f] */
    br_str task;          /* task name */
    br_str payload;       /* msgpack argument (empty in what load reports) */
    uint32_t payload_len; /* the payload's length (load reports it without the bytes) */
    br_str idem_key;      /* Idempotency-Key, maybe empty */
    uint8_t status;       /* gw_job_status */
    uint32_t attempts;    /* runs started so far */
    int64_t run_at_ms;    /* wall-clock ms: not to run before */
    int64_t updated_ms;   /* wall-clock ms of the last change (retention counts from it) */
    br_str result;        /* msgpack result when succeeded, else empty */
    br_str error;         /* last error text, maybe empty */
    br_str identity;      /* the verified caller who submitted it (a msgpack map), maybe
                             empty; written by insert only */
    br_str links;         /* its workflow membership (opaque bytes, jobs_flow.c), maybe
                             empty; written by insert only, reported by load */
    bool set_payload;     /* update only: payload (payload_len bytes) replaces the stored
                             one (a workflow member gets its parents' results) */
    br_str claim;         /* insert only, a shared store: the job of tick claim_tick of
                             schedule `claim` (its id).  The row is written only if the
                             tick is this gateway's to make - the schedule's last tick is
                             at most claim_floor, and becomes claim_tick in the same
                             statement - else done hears BR_ENOTFOUND (another gateway made
                             it).  Empty: a plain insert; a store of one gateway ignores it */
    int64_t claim_tick;   /* the tick (wall-clock ms) */
    int64_t claim_floor;  /* the latest last tick that leaves claim_tick unmade */
} gw_job_row;

/* A schedule as the store keeps it (jobs_schedule.c).  Strings point at the caller's
 * memory; a write copies them. */
typedef struct gw_schedule_row {
    br_str id;            /* the schedule's id (32 hex digits) */
    br_str task;          /* the task its jobs run */
    br_str payload;       /* their argument (msgpack) */
    br_str cron;          /* a cron expression, or empty for an interval */
    uint64_t interval_ms; /* the interval, when cron is empty */
    int64_t last_tick_ms; /* the last tick a job was made for (wall clock) */
    uint32_t catch_up;    /* ticks missed while the gateway was down made up at most */
    br_str identity;      /* its owner (a msgpack map), maybe empty */
} gw_schedule_row;

/* Told on the loop when a write is durable (status 0) or failed (a negative br_err,
 * logged by the backend). */
typedef void (*gw_jobs_store_done_fn)(void *arg, int status);

/* What a read fetches (gw__jobs_store_read). */
typedef enum gw_jobs_read_what {
    GW_JOBS_READ_PAYLOAD = 1, /* the payload: a due job about to be sent */
    GW_JOBS_READ_DETAIL = 2,  /* result and error: GET /jobs/{id} of a job whose detail
                                 is not kept in memory */
    GW_JOBS_READ_ROW = 4      /* a shared store only: id, task, status, attempts, identity,
                                 result and error - GET /jobs/{id} of a job another
                                 gateway of the queue holds */
} gw_jobs_read_what;

/* What a client asked of a job another gateway of a shared queue holds (request; the
 * owner hears it through watch's requested).  Bits: both may be pending at once, and
 * the owner applies a cancel before a retry. */
typedef enum gw_jobs_request {
    GW_JOBS_REQUEST_CANCEL = 1, /* DELETE /jobs/{id} */
    GW_JOBS_REQUEST_RETRY = 2   /* POST /jobs/{id}/retry */
} gw_jobs_request;

/* Told on the loop when a read is done: rows[i] answers seqs[i] (its seq 0 when the
 * store has no such job).  Strings point into the store's memory, valid during the
 * call.  status 0, or a negative br_err (then rows is NULL). */
typedef void (*gw_jobs_store_read_fn)(void *arg, int status, const gw_job_row *rows, size_t n);

/* Told on the loop when a read of every schedule is done (read_schedules): rows[0..n),
 * strings in the store's memory, valid during the call.  status 0, or a negative
 * br_err (then rows is NULL). */
typedef void (*gw_jobs_store_schedules_fn)(void *arg, int status, const gw_schedule_row *rows,
                                           size_t n);

typedef struct gw_jobs_store gw_jobs_store;

/* A backend: one table of hooks, each slot a verb of the interface below. */
typedef struct gw_jobs_store_ops {
    /* Reads every job (payload bytes left out: payload_len says their size) and every
     * recorded task with its public flag, calling row() and task() for each.  Only
     * before the first write.  0 or BR_EIO. */
    int (*load)(gw_jobs_store *self, void (*row)(const gw_job_row *r, void *arg),
                void (*task)(br_str name, bool is_public, void *arg), void *arg);
    /* Writes a new job r->seq with every field (copied).  Never replaces a row. */
    int (*insert)(gw_jobs_store *self, const gw_job_row *r, gw_jobs_store_done_fn done, void *arg);
    /* Writes the new jobs rows[0..n) (as insert does) in one transaction: after a crash
     * the store holds all of them or none (a workflow's members).  done runs once. */
    int (*insert_many)(gw_jobs_store *self, const gw_job_row *rows, size_t n,
                       gw_jobs_store_done_fn done, void *arg);
    /* Updates job r->seq's status, attempts, run_at, updated, result and error; its
     * payload and key stay as inserted (the payload may not be in memory any more),
     * unless r->set_payload: then r->payload replaces the payload. */
    int (*update)(gw_jobs_store *self, const gw_job_row *r, gw_jobs_store_done_fn done, void *arg);
    /* Deletes the job `seq`. */
    int (*del)(gw_jobs_store *self, uint64_t seq, gw_jobs_store_done_fn done, void *arg);
    /* Records a task as declared (and whether it is public), or forgets it (retired):
     * tasks recorded are in their grace period after the next start. */
    int (*put_task)(gw_jobs_store *self, br_str name, bool is_public, gw_jobs_store_done_fn done,
                    void *arg);
    int (*del_task)(gw_jobs_store *self, br_str name, gw_jobs_store_done_fn done, void *arg);
    /* Reads `what` of the jobs seqs[0..n) (copied), after every write queued before it. */
    int (*read)(gw_jobs_store *self, const uint64_t *seqs, size_t n, unsigned what,
                gw_jobs_store_read_fn done, void *arg);
    /* Writes a schedule (insert or replace, by id), or deletes it.  A shared store never
     * moves a schedule's last tick back (another gateway may have made later ones). */
    int (*put_schedule)(gw_jobs_store *self, const gw_schedule_row *r, gw_jobs_store_done_fn done,
                        void *arg);
    int (*del_schedule)(gw_jobs_store *self, br_str id, gw_jobs_store_done_fn done, void *arg);
    /* Reads every schedule, calling row() for each.  Only before the first write. */
    int (*load_schedules)(gw_jobs_store *self, void (*row)(const gw_schedule_row *r, void *arg),
                          void *arg);
    /* Writes what is pending, stops, then runs closed(arg) on the loop. */
    void (*close)(gw_jobs_store *self, void (*closed)(void *arg), void *arg);
    /* Frees the backend after close's callback. */
    void (*destroy)(gw_jobs_store *self);
    /* A shared store (PostgreSQL; NULL in SQLite): after load, starts the gateway's
     * lease on the queue and hands over the jobs of gateways whose lease ran out -
     * each as row(), as load reports them, then adopted(arg, n) once per handover.
     * Then, on the same beat, it takes the requests other gateways recorded for the
     * jobs this one owns (request) and tells each once as requested(arg, seq, what),
     * after every row and adoption it told before. */
    int (*watch)(gw_jobs_store *self, void (*row)(const gw_job_row *r, void *arg),
                 void (*adopted)(void *arg, size_t n),
                 void (*requested)(void *arg, uint64_t seq, unsigned what), void *arg);
    /* A shared store (NULL in SQLite): records, durably, that a client asked `what`
     * (gw_jobs_request bits) of job seq, whichever gateway owns it; its owner applies it
     * on its next beat (watch's requested), or its adopter once it is adopted.  done
     * hears BR_ENOTFOUND when the store has no job seq. */
    int (*request)(gw_jobs_store *self, uint64_t seq, unsigned what, gw_jobs_store_done_fn done,
                   void *arg);
    /* A shared store (NULL in SQLite): reads every schedule, after every write queued
     * before it (the other gateways' schedules reach this one: jobs_schedule.c). */
    int (*read_schedules)(gw_jobs_store *self, gw_jobs_store_schedules_fn done, void *arg);
} gw_jobs_store_ops;

/* Every backend's struct starts with this. */
struct gw_jobs_store {
    const gw_jobs_store_ops *ops; /* the backend's hooks */
    /* Sequence numbers this gateway hands out: those equal to seq_tag modulo
     * seq_stride, above seq_floor.  Gateways sharing a store get distinct tags, so
     * their jobs never share a key.  0, 0, 0 in a store of one gateway. */
    uint32_t seq_stride;
    uint32_t seq_tag;
    uint64_t seq_floor;
};

/* The interface: each forwards to the backend.  Writes and reads return 0 when queued
 * (done runs later, exactly once), BR_EFULL past GW_JOBS_STORE_MAX_PENDING, BR_ECLOSED
 * after close, BR_ENOMEM; on error done is not called. */
static inline int gw__jobs_store_load(gw_jobs_store *s, void (*row)(const gw_job_row *, void *),
                                      void (*task)(br_str, bool, void *), void *arg)
{
    return s->ops->load(s, row, task, arg);
}
static inline int gw__jobs_store_insert(gw_jobs_store *s, const gw_job_row *r,
                                        gw_jobs_store_done_fn done, void *arg)
{
    return s->ops->insert(s, r, done, arg);
}
static inline int gw__jobs_store_insert_many(gw_jobs_store *s, const gw_job_row *rows, size_t n,
                                             gw_jobs_store_done_fn done, void *arg)
{
    return s->ops->insert_many(s, rows, n, done, arg);
}
static inline int gw__jobs_store_update(gw_jobs_store *s, const gw_job_row *r,
                                        gw_jobs_store_done_fn done, void *arg)
{
    return s->ops->update(s, r, done, arg);
}
static inline int gw__jobs_store_delete(gw_jobs_store *s, uint64_t seq, gw_jobs_store_done_fn done,
                                        void *arg)
{
    return s->ops->del(s, seq, done, arg);
}
static inline int gw__jobs_store_put_task(gw_jobs_store *s, br_str name, bool is_public,
                                          gw_jobs_store_done_fn done, void *arg)
{
    return s->ops->put_task(s, name, is_public, done, arg);
}
static inline int gw__jobs_store_delete_task(gw_jobs_store *s, br_str name,
                                             gw_jobs_store_done_fn done, void *arg)
{
    return s->ops->del_task(s, name, done, arg);
}
static inline int gw__jobs_store_read(gw_jobs_store *s, const uint64_t *seqs, size_t n,
                                      unsigned what, gw_jobs_store_read_fn done, void *arg)
{
    return s->ops->read(s, seqs, n, what, done, arg);
}
static inline int gw__jobs_store_put_schedule(gw_jobs_store *s, const gw_schedule_row *r,
                                              gw_jobs_store_done_fn done, void *arg)
{
    return s->ops->put_schedule(s, r, done, arg);
}
static inline int gw__jobs_store_delete_schedule(gw_jobs_store *s, br_str id,
                                                 gw_jobs_store_done_fn done, void *arg)
{
    return s->ops->del_schedule(s, id, done, arg);
}
static inline int gw__jobs_store_load_schedules(gw_jobs_store *s,
                                                void (*row)(const gw_schedule_row *, void *),
                                                void *arg)
{
    return s->ops->load_schedules(s, row, arg);
}
/* Starts handing over dead gateways' jobs (a shared store); 0 when the store is not
 * shared. */
static inline int gw__jobs_store_watch(gw_jobs_store *s, void (*row)(const gw_job_row *, void *),
                                       void (*adopted)(void *, size_t),
                                       void (*requested)(void *, uint64_t, unsigned), void *arg)
{
    return s->ops->watch ? s->ops->watch(s, row, adopted, requested, arg) : 0;
}
/* Records a cancel or retry for the owner of job seq (a shared store); BR_EINVAL when
 * the store is not shared. */
static inline int gw__jobs_store_request(gw_jobs_store *s, uint64_t seq, unsigned what,
                                         gw_jobs_store_done_fn done, void *arg)
{
    return s->ops->request ? s->ops->request(s, seq, what, done, arg) : BR_EINVAL;
}
/* Reads every schedule in order with the writes (a shared store); BR_EINVAL when the
 * store is not shared. */
static inline int gw__jobs_store_read_schedules(gw_jobs_store *s, gw_jobs_store_schedules_fn done,
                                                void *arg)
{
    return s->ops->read_schedules ? s->ops->read_schedules(s, done, arg) : BR_EINVAL;
}
/* Flushes and stops; closed(arg) runs on the loop when the store holds nothing open.
 * Every queued write's and read's done has run by then. */
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

/* The SQLite schema's version (PRAGMA user_version).  Version 0 (before issue 13) had
 * integer job ids only and task names without a public flag: opening such a file
 * migrates it in one transaction (two added columns; every old job keeps its integer
 * id, shown as decimal text).  Version 2 had no identity column: it is added (old jobs
 * have no owner).  Version 3 had no links column (workflows): it is added.  A file of a
 * newer version is refused. */
#define GW_JOBS_SCHEMA_VERSION 4

/* Opens (creating or migrating if need be) the SQLite database at `path` in WAL mode
 * and starts its writer thread, which commits whatever has queued up in one
 * transaction (group commit), runs reads in order with the writes, and hands
 * completions back to `loop` through a uv_async.  NULL on failure (logged with
 * SQLite's message).  Caller owns the result. */
gw_jobs_store *gw__jobs_sqlite_open(uv_loop_t *loop, const char *path, gw_jobs_sync sync);

/* True when db names a PostgreSQL database (a postgres:// or postgresql:// URL)
 * rather than a SQLite file. */
static inline bool gw__jobs_store_is_pg(const char *db)
{
    return strncmp(db, "postgres://", 11) == 0 || strncmp(db, "postgresql://", 13) == 0;
}

/* Connects to the PostgreSQL database at url (libpq URL), creates the tables when
 * missing, registers this gateway in barista_gateways with a lease of lease_ms (renewed
 * by every commit and every third of it; load reads the jobs it owns: unowned ones and
 * those of gateways gone) and starts the writer thread, which sends whatever has
 * queued up as one transaction in pipeline mode (group commit) and hands completions
 * back to `loop`.  A commit is as durable as the server's synchronous_commit (on by
 * default).  NULL on failure (logged with the server's message).  Caller owns the
 * result. */
gw_jobs_store *gw__jobs_pg_open(uv_loop_t *loop, const char *url, uint32_t lease_ms);

#endif /* BARISTA_GW_JOBS_STORE_H */
