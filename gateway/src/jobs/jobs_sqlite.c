/*
 * jobs_sqlite.c - the embedded job store: SQLite in WAL mode, written by one thread.
 *
 * The loop never touches the database after load.  It appends operations to a queue
 * under a mutex; the writer thread takes everything queued (up to
 * GW_JOBS_STORE_BATCH_MAX), runs it as one transaction - one commit, one WAL sync for
 * the whole batch however many requests are waiting - and moves the batch to a done
 * list, waking the loop with uv_async_send.  The loop then runs each operation's
 * callback in order.  Under load the batches grow by themselves: while one commit
 * syncs, the next batch queues up.  Reads (payloads of due jobs, results of GET
 * /jobs/{id}) ride in the same queue, so a read sees every write queued before it;
 * the writer copies what it read into the operation for the loop.
 *
 * Schema version 4 (GW_JOBS_SCHEMA_VERSION): jobs keyed by their integer sequence
 * number (the rowid: appends in time order, one B-tree), with the id clients see
 * beside it and the identity of the caller who submitted it; tasks with a public
 * flag; and a workflow member's links.  Version-0, 2 and 3 files are migrated when
 * opened (migrate_v0, migrate_v2_v3).
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "jobs_store.h"
#include "log.h"

/* How long a statement waits for a lock held by another connection (a second
 * gateway on the same file, or the sqlite3 shell) before failing. */
#define SQLITE_BUSY_TIMEOUT_MS 5000

typedef enum op_kind {
    OP_INSERT,
    OP_UPDATE,
    OP_DELETE,
    OP_PUT_TASK,
    OP_DEL_TASK,
    OP_READ,
    OP_PUT_SCHEDULE,
    OP_DEL_SCHEDULE
} op_kind;

/* One queued operation; strings copied into the same allocation. */
typedef struct op {
    struct op *next;            /* in the pending or done list */
    op_kind kind;               /* what to do */
    gw_job_row row;             /* INSERT/UPDATE: the row; DELETE: row.seq; tasks: row.task,
                                   and PUT_TASK's flag in row.status */
    gw_jobs_store_done_fn done; /* a write's callback, on the loop */
    gw_jobs_store_read_fn read; /* OP_READ's callback, on the loop */
    void *arg;                  /* their argument */
    bool glued;                 /* the next op is in the same transaction (insert_many) */
    int status;                 /* the outcome, set by the writer thread */
    int read_status;            /* OP_READ: its own outcome (a read never fails the batch) */
    uint64_t *seqs;             /* OP_READ: the jobs to read (in data) */
    size_t nids;                /* entries in seqs */
    unsigned what;              /* OP_READ: gw_jobs_read_what */
    gw_job_row *rows;           /* OP_READ: what was read (heap, by the writer), or NULL */
    char data[];                /* the row's strings, or OP_READ's seqs */
} op;

/* A singly-linked FIFO of ops. */
typedef struct op_list {
    op *head; /* oldest */
    op *tail; /* newest */
    size_t n; /* entries */
} op_list;

typedef struct sqlite_store {
    gw_jobs_store base;        /* the interface (first) */
    uv_loop_t *loop;           /* where callbacks run */
    sqlite3 *db;               /* the connection, used by the writer thread after load */
    sqlite3_stmt *insert;      /* INSERT INTO jobs */
    sqlite3_stmt *update;      /* UPDATE jobs SET (the changing columns) */
    sqlite3_stmt *set_payload; /* UPDATE jobs SET payload (a workflow member's) */
    sqlite3_stmt *del;         /* DELETE FROM jobs */
    sqlite3_stmt *put_task;    /* INSERT OR REPLACE INTO tasks */
    sqlite3_stmt *del_task;    /* DELETE FROM tasks */
    sqlite3_stmt *payload;     /* SELECT payload */
    sqlite3_stmt *detail;      /* SELECT result, error */
    sqlite3_stmt *put_sched;   /* INSERT OR REPLACE INTO schedules */
    sqlite3_stmt *del_sched;   /* DELETE FROM schedules */
    uv_thread_t thread;        /* the writer */
    bool thread_started;       /* thread must be joined */
    uv_mutex_t mu;             /* guards pending, done, stopping */
    uv_cond_t cv;              /* signals the writer: work or stop */
    op_list pending;           /* queued by the loop, not yet taken by the writer */
    op_list done;              /* written, callbacks not yet run */
    bool stopping;             /* close was called: write what is left and exit */
    bool closed;               /* close was called (loop side) */
    uv_async_t async;          /* wakes the loop for the done list */
    void (*on_closed)(void *); /* close's callback */
    void *closed_arg;          /* its argument */
} sqlite_store;

static void list_push(op_list *l, op *o)
{
    o->next = NULL;
    if (l->tail)
        l->tail->next = o;
    else
        l->head = o;
    l->tail = o;
    l->n++;
}

/* Moves the whole of src to the end of dst. */
static void list_splice(op_list *dst, op_list *src)
{
    if (!src->head)
        return;
    if (dst->tail)
        dst->tail->next = src->head;
    else
        dst->head = src->head;
    dst->tail = src->tail;
    dst->n += src->n;
    *src = (op_list){0};
}

/* Takes up to max ops from the front of src into out, and past max the rest of a
 * glued run (one insert_many is never split across transactions). */
static void list_take(op_list *src, size_t max, op_list *out)
{
    *out = (op_list){0};
    while (src->head && (out->n < max || (out->tail && out->tail->glued))) {
        op *o = src->head;
        src->head = o->next;
        if (!src->head)
            src->tail = NULL;
        src->n--;
        list_push(out, o);
    }
}

static void log_sqlite(sqlite3 *db, const char *call)
{
    gw_log(GW_LOG_ERROR, "jobs", "%s failed: %s", call, db ? sqlite3_errmsg(db) : "out of memory");
}

/* ---------------------------------------------------------------------------------- */
/* The writer thread.                                                                  */

static void bind_str(sqlite3_stmt *st, int i, br_str s, bool blob)
{
    if (blob)
        sqlite3_bind_blob(st, i, s.len ? s.ptr : "", (int)s.len, SQLITE_STATIC);
    else
        sqlite3_bind_text(st, i, s.len ? s.ptr : "", (int)s.len, SQLITE_STATIC);
}

/* Steps a write statement once and resets it.  0 or BR_EIO (logged). */
static int step_write(sqlite_store *s, sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_DONE) {
        log_sqlite(s->db, "sqlite3_step(write)");
        return BR_EIO;
    }
    return 0;
}

static br_str column_str(sqlite3_stmt *st, int i)
{
    const void *p = sqlite3_column_type(st, i) == SQLITE_BLOB ? sqlite3_column_blob(st, i)
                                                              : sqlite3_column_text(st, i);
    int n = sqlite3_column_bytes(st, i);
    return (br_str){p, p ? (uint32_t)n : 0};
}

/* Copies the read columns into one heap block, kept at row->payload or row->result.
 * 0 or BR_ENOMEM. */
static int keep_read(gw_job_row *row, uint64_t seq, br_str a, br_str b, bool detail)
{
    char *p = malloc((size_t)a.len + b.len + 1);
    if (!p)
        return BR_ENOMEM;
    if (a.len)
        memcpy(p, a.ptr, a.len);
    if (b.len)
        memcpy(p + a.len, b.ptr, b.len);
    row->seq = seq;
    if (detail) {
        row->result = (br_str){p, a.len};
        row->error = (br_str){p + a.len, b.len};
    } else {
        row->payload = (br_str){p, a.len};
        row->payload_len = a.len;
    }
    return 0;
}

/* The block keep_read allocated for row, if any. */
static void *kept_block(const gw_job_row *row)
{
    return (void *)(row->result.ptr ? row->result.ptr : row->payload.ptr);
}

/* Runs an OP_READ: one row per seq, its seq 0 when the job is not there.  0, BR_EIO or
 * BR_ENOMEM. */
static int apply_read(sqlite_store *s, op *o)
{
    bool detail = o->what == GW_JOBS_READ_DETAIL;
    sqlite3_stmt *st = detail ? s->detail : s->payload;
    o->rows = calloc(o->nids, sizeof(*o->rows));
    if (!o->rows)
        return BR_ENOMEM;
    for (size_t i = 0; i < o->nids; i++) {
        sqlite3_bind_int64(st, 1, (sqlite3_int64)o->seqs[i]);
        int rc = sqlite3_step(st);
        int kept = 0;
        if (rc == SQLITE_ROW)
            kept = keep_read(&o->rows[i], o->seqs[i], column_str(st, 0),
                             detail ? column_str(st, 1) : (br_str){0}, detail);
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
            log_sqlite(s->db, "sqlite3_step(read)");
            return BR_EIO;
        }
        if (kept != 0)
            return kept;
    }
    return 0;
}

/* Runs one op.  0 or a negative br_err (logged). */
static int apply(sqlite_store *s, op *o)
{
    const gw_job_row *r = &o->row;
    sqlite3_stmt *st;
    switch (o->kind) {
    case OP_INSERT:
        st = s->insert;
        sqlite3_bind_int64(st, 1, (sqlite3_int64)r->seq);
        bind_str(st, 11, r->id, false);
        bind_str(st, 2, r->task, false);
        bind_str(st, 3, r->payload, true);
        bind_str(st, 4, r->idem_key, false);
        sqlite3_bind_int(st, 5, r->status);
        sqlite3_bind_int64(st, 6, r->attempts);
        sqlite3_bind_int64(st, 7, r->run_at_ms);
        sqlite3_bind_int64(st, 8, r->updated_ms);
        bind_str(st, 9, r->result, true);
        bind_str(st, 10, r->error, false);
        bind_str(st, 12, r->identity, true);
        bind_str(st, 13, r->links, true);
        return step_write(s, st);
    case OP_UPDATE:
        st = s->update;
        sqlite3_bind_int(st, 1, r->status);
        sqlite3_bind_int64(st, 2, r->attempts);
        sqlite3_bind_int64(st, 3, r->run_at_ms);
        sqlite3_bind_int64(st, 4, r->updated_ms);
        bind_str(st, 5, r->result, true);
        bind_str(st, 6, r->error, false);
        sqlite3_bind_int64(st, 7, (sqlite3_int64)r->seq);
        int rc = step_write(s, st);
        if (rc != 0 || !r->set_payload)
            return rc;
        bind_str(s->set_payload, 1, r->payload, true);
        sqlite3_bind_int64(s->set_payload, 2, (sqlite3_int64)r->seq);
        return step_write(s, s->set_payload);
    case OP_DELETE:
        sqlite3_bind_int64(s->del, 1, (sqlite3_int64)r->seq);
        return step_write(s, s->del);
    case OP_PUT_TASK:
        bind_str(s->put_task, 1, r->task, false);
        sqlite3_bind_int(s->put_task, 2, r->status ? 1 : 0);
        return step_write(s, s->put_task);
    case OP_DEL_TASK:
        bind_str(s->del_task, 1, r->task, false);
        return step_write(s, s->del_task);
    case OP_READ:
        o->read_status = apply_read(s, o);
        return 0;
    case OP_PUT_SCHEDULE: /* a schedule carried in a job row: see sq_put_schedule */
        st = s->put_sched;
        bind_str(st, 1, r->id, false);
        bind_str(st, 2, r->task, false);
        bind_str(st, 3, r->payload, true);
        bind_str(st, 4, r->idem_key, false);
        sqlite3_bind_int64(st, 5, r->updated_ms);
        sqlite3_bind_int64(st, 6, r->run_at_ms);
        sqlite3_bind_int64(st, 7, r->attempts);
        bind_str(st, 8, r->identity, true);
        return step_write(s, st);
    case OP_DEL_SCHEDULE:
        bind_str(s->del_sched, 1, r->id, false);
        return step_write(s, s->del_sched);
    }
    return BR_EINVAL;
}

/* Writes a batch as one transaction and sets every op's status. */
static void write_batch(sqlite_store *s, op_list *batch)
{
    int status = 0;
    if (sqlite3_exec(s->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
        log_sqlite(s->db, "sqlite3_exec(BEGIN)");
        status = BR_EIO;
    }
    for (op *o = batch->head; o && status == 0; o = o->next)
        status = apply(s, o);
    if (status == 0 && sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        log_sqlite(s->db, "sqlite3_exec(COMMIT)");
        status = BR_EIO;
    }
    if (status != 0 && !sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    for (op *o = batch->head; o; o = o->next)
        o->status = status != 0 ? status : o->kind == OP_READ ? o->read_status : 0;
}

static void writer_main(void *arg)
{
    sqlite_store *s = arg;
    uv_mutex_lock(&s->mu);
    for (;;) {
        while (!s->pending.head && !s->stopping)
            uv_cond_wait(&s->cv, &s->mu);
        if (!s->pending.head)
            break; /* stopping, and everything is written */
        op_list batch;
        list_take(&s->pending, GW_JOBS_STORE_BATCH_MAX, &batch);
        uv_mutex_unlock(&s->mu);
        write_batch(s, &batch);
        uv_mutex_lock(&s->mu);
        list_splice(&s->done, &batch);
        uv_async_send(&s->async);
    }
    uv_mutex_unlock(&s->mu);
}

/* ---------------------------------------------------------------------------------- */
/* The loop side.                                                                      */

/* Frees an op and what a read kept in it. */
static void op_free(op *o)
{
    if (o->rows)
        for (size_t i = 0; i < o->nids; i++)
            free(kept_block(&o->rows[i]));
    free(o->rows);
    free(o);
}

/* Runs the callbacks of every finished op, in order. */
static void run_done(sqlite_store *s)
{
    uv_mutex_lock(&s->mu);
    op_list done = s->done;
    s->done = (op_list){0};
    uv_mutex_unlock(&s->mu);
    while (done.head) {
        op *o = done.head;
        done.head = o->next;
        if (o->kind == OP_READ)
            o->read(o->arg, o->status, o->status == 0 ? o->rows : NULL,
                    o->status == 0 ? o->nids : 0);
        else if (o->done)
            o->done(o->arg, o->status);
        op_free(o);
    }
}

static void on_async(uv_async_t *a)
{
    run_done(a->data);
}

/* Copies s into *dst at *cursor. */
static br_str copy_str(br_str s, char **cursor)
{
    br_str out = {*cursor, s.len};
    if (s.len)
        memcpy(*cursor, s.ptr, s.len);
    *cursor += s.len;
    return out;
}

/* Queues o for the writer, or frees it.  0; BR_ECLOSED; BR_EFULL. */
static int submit(sqlite_store *s, op *o)
{
    uv_mutex_lock(&s->mu);
    if (s->pending.n >= GW_JOBS_STORE_MAX_PENDING) {
        uv_mutex_unlock(&s->mu);
        free(o);
        return BR_EFULL;
    }
    list_push(&s->pending, o);
    uv_cond_signal(&s->cv);
    uv_mutex_unlock(&s->mu);
    return 0;
}

/* A new op of `kind` holding a copy of r, or NULL (out of memory). */
static op *op_make(op_kind kind, const gw_job_row *r, gw_jobs_store_done_fn done, void *arg)
{
    size_t extra = (size_t)r->id.len + r->task.len + r->payload.len + r->idem_key.len +
                   r->result.len + r->error.len + r->identity.len + r->links.len;
    op *o = malloc(sizeof(*o) + extra);
    if (!o)
        return NULL;
    *o = (op){.kind = kind, .row = *r}; /* the strings' bytes follow, copied below */
    char *cursor = o->data;
    o->row.id = copy_str(r->id, &cursor);
    o->row.task = copy_str(r->task, &cursor);
    o->row.payload = copy_str(r->payload, &cursor);
    o->row.idem_key = copy_str(r->idem_key, &cursor);
    o->row.result = copy_str(r->result, &cursor);
    o->row.error = copy_str(r->error, &cursor);
    o->row.identity = copy_str(r->identity, &cursor);
    o->row.links = copy_str(r->links, &cursor);
    o->done = done;
    o->arg = arg;
    o->glued = false;
    return o;
}

static int enqueue(sqlite_store *s, op_kind kind, const gw_job_row *r, gw_jobs_store_done_fn done,
                   void *arg)
{
    if (s->closed)
        return BR_ECLOSED;
    op *o = op_make(kind, r, done, arg);
    return o ? submit(s, o) : BR_ENOMEM;
}

static int sq_insert(gw_jobs_store *self, const gw_job_row *r, gw_jobs_store_done_fn done,
                     void *arg)
{
    return enqueue((sqlite_store *)self, OP_INSERT, r, done, arg);
}

/* The rows are queued as a glued run under one lock: the writer takes them into one
 * transaction, and only the last carries done (they commit or fail together). */
static int sq_insert_many(gw_jobs_store *self, const gw_job_row *rows, size_t n,
                          gw_jobs_store_done_fn done, void *arg)
{
    sqlite_store *s = (sqlite_store *)self;
    if (s->closed)
        return BR_ECLOSED;
    if (n == 0)
        return BR_EINVAL;
    op_list run = {0};
    for (size_t i = 0; i < n; i++) {
        op *o = op_make(OP_INSERT, &rows[i], i + 1 == n ? done : NULL, i + 1 == n ? arg : NULL);
        if (!o) {
            for (op *f = run.head, *next; f; f = next) {
                next = f->next;
                free(f);
            }
            return BR_ENOMEM;
        }
        o->glued = i + 1 < n;
        list_push(&run, o);
    }
    uv_mutex_lock(&s->mu);
    if (s->pending.n + n > GW_JOBS_STORE_MAX_PENDING) {
        uv_mutex_unlock(&s->mu);
        for (op *f = run.head, *next; f; f = next) {
            next = f->next;
            free(f);
        }
        return BR_EFULL;
    }
    list_splice(&s->pending, &run);
    uv_cond_signal(&s->cv);
    uv_mutex_unlock(&s->mu);
    return 0;
}

static int sq_update(gw_jobs_store *self, const gw_job_row *r, gw_jobs_store_done_fn done,
                     void *arg)
{
    /* The payload (unless replaced) and key are not rewritten: leave them out of the
     * copy. */
    gw_job_row u = *r;
    if (!u.set_payload)
        u.payload = (br_str){0};
    u.idem_key = (br_str){0};
    u.task = (br_str){0};
    u.identity = (br_str){0};
    u.links = (br_str){0};
    return enqueue((sqlite_store *)self, OP_UPDATE, &u, done, arg);
}

static int sq_del(gw_jobs_store *self, uint64_t seq, gw_jobs_store_done_fn done, void *arg)
{
    gw_job_row r = {.seq = seq};
    return enqueue((sqlite_store *)self, OP_DELETE, &r, done, arg);
}

static int sq_put_task(gw_jobs_store *self, br_str name, bool is_public, gw_jobs_store_done_fn done,
                       void *arg)
{
    gw_job_row r = {.task = name, .status = is_public};
    return enqueue((sqlite_store *)self, OP_PUT_TASK, &r, done, arg);
}

static int sq_del_task(gw_jobs_store *self, br_str name, gw_jobs_store_done_fn done, void *arg)
{
    gw_job_row r = {.task = name};
    return enqueue((sqlite_store *)self, OP_DEL_TASK, &r, done, arg);
}

/* A schedule rides in a job row's fields through the same queue: id, task, payload,
 * the cron text as idem_key, the interval as updated_ms, the last tick as run_at_ms,
 * catch_up as attempts, and the identity. */
static int sq_put_schedule(gw_jobs_store *self, const gw_schedule_row *sr,
                           gw_jobs_store_done_fn done, void *arg)
{
    gw_job_row r = {.id = sr->id,
                    .task = sr->task,
                    .payload = sr->payload,
                    .idem_key = sr->cron,
                    .updated_ms = (int64_t)sr->interval_ms,
                    .run_at_ms = sr->last_tick_ms,
                    .attempts = sr->catch_up,
                    .identity = sr->identity};
    return enqueue((sqlite_store *)self, OP_PUT_SCHEDULE, &r, done, arg);
}

static int sq_del_schedule(gw_jobs_store *self, br_str id, gw_jobs_store_done_fn done, void *arg)
{
    gw_job_row r = {.id = id};
    return enqueue((sqlite_store *)self, OP_DEL_SCHEDULE, &r, done, arg);
}

static int sq_read(gw_jobs_store *self, const uint64_t *seqs, size_t n, unsigned what,
                   gw_jobs_store_read_fn done, void *arg)
{
    sqlite_store *s = (sqlite_store *)self;
    if (s->closed)
        return BR_ECLOSED;
    if (n == 0 || !done)
        return BR_EINVAL;
    op *o = calloc(1, sizeof(*o) + n * sizeof(uint64_t));
    if (!o)
        return BR_ENOMEM;
    o->kind = OP_READ;
    o->read = done;
    o->arg = arg;
    o->what = what;
    o->nids = n;
    o->seqs = (uint64_t *)(void *)o->data;
    memcpy(o->seqs, seqs, n * sizeof(uint64_t));
    return submit(s, o);
}

/* Runs `sql` and calls each() for every row.  0 or BR_EIO. */
static int select_all(sqlite_store *s, const char *sql, void (*each)(sqlite3_stmt *, void *),
                      void *arg)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
        log_sqlite(s->db, "sqlite3_prepare_v2(load)");
        return BR_EIO;
    }
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        each(st, arg);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        log_sqlite(s->db, "sqlite3_step(load)");
        return BR_EIO;
    }
    return 0;
}

/* What load's row walkers need. */
typedef struct load_ctx {
    void (*row)(const gw_job_row *, void *); /* the caller's row callback */
    void (*task)(br_str, bool, void *);      /* the caller's task callback */
    void *arg;                               /* their argument */
} load_ctx;

static void each_task(sqlite3_stmt *st, void *arg)
{
    load_ctx *c = arg;
    c->task(column_str(st, 0), sqlite3_column_int(st, 1) != 0, c->arg);
}

static void each_job(sqlite3_stmt *st, void *arg)
{
    load_ctx *c = arg;
    /* A job from before random ids has none: its integer id is its id. */
    char decimal[24];
    uint64_t seq = (uint64_t)sqlite3_column_int64(st, 0);
    br_str id = column_str(st, 10);
    if (id.len == 0) {
        int n = snprintf(decimal, sizeof(decimal), "%llu", (unsigned long long)seq);
        id = (br_str){decimal, (uint32_t)n};
    }
    gw_job_row r = {
        .seq = seq,
        .id = id,
        .task = column_str(st, 1),
        .payload_len = (uint32_t)sqlite3_column_int64(st, 2),
        .idem_key = column_str(st, 3),
        .status = (uint8_t)sqlite3_column_int(st, 4),
        .attempts = (uint32_t)sqlite3_column_int64(st, 5),
        .run_at_ms = sqlite3_column_int64(st, 6),
        .updated_ms = sqlite3_column_int64(st, 7),
        .result = column_str(st, 8),
        .error = column_str(st, 9),
        .identity = column_str(st, 11),
        .links = column_str(st, 12),
    };
    c->row(&r, c->arg);
}

static int sq_load(gw_jobs_store *self, void (*row)(const gw_job_row *, void *),
                   void (*task)(br_str, bool, void *), void *arg)
{
    sqlite_store *s = (sqlite_store *)self;
    load_ctx c = {row, task, arg};
    int rc = select_all(s, "SELECT name, public FROM tasks", each_task, &c);
    /* Payloads stay on disk: the queue reads them back when their job is due. */
    if (rc == 0)
        rc = select_all(s,
                        "SELECT id, task, length(payload), idem_key, status, attempts, run_at, "
                        "updated, result, error, public_id, identity, links FROM jobs "
                        "ORDER BY id",
                        each_job, &c);
    return rc;
}

typedef struct sched_ctx {
    void (*row)(const gw_schedule_row *, void *); /* the caller's callback */
    void *arg;                                    /* its argument */
} sched_ctx;

static void each_schedule(sqlite3_stmt *st, void *arg)
{
    sched_ctx *c = arg;
    gw_schedule_row r = {
        .id = column_str(st, 0),
        .task = column_str(st, 1),
        .payload = column_str(st, 2),
        .cron = column_str(st, 3),
        .interval_ms = (uint64_t)sqlite3_column_int64(st, 4),
        .last_tick_ms = sqlite3_column_int64(st, 5),
        .catch_up = (uint32_t)sqlite3_column_int64(st, 6),
        .identity = column_str(st, 7),
    };
    c->row(&r, c->arg);
}

static int sq_load_schedules(gw_jobs_store *self, void (*row)(const gw_schedule_row *, void *),
                             void *arg)
{
    sched_ctx c = {row, arg};
    return select_all((sqlite_store *)self,
                      "SELECT id, task, payload, cron, interval_ms, last_tick, catch_up, identity "
                      "FROM schedules ORDER BY id",
                      each_schedule, &c);
}

static void on_async_closed(uv_handle_t *h)
{
    sqlite_store *s = h->data;
    if (s->on_closed)
        s->on_closed(s->closed_arg);
}

static void sq_close(gw_jobs_store *self, void (*closed)(void *), void *arg)
{
    sqlite_store *s = (sqlite_store *)self;
    if (s->closed)
        return;
    s->closed = true;
    s->on_closed = closed;
    s->closed_arg = arg;
    uv_mutex_lock(&s->mu);
    s->stopping = true;
    uv_cond_signal(&s->cv);
    uv_mutex_unlock(&s->mu);
    /* The writer finishes what is queued (one last commit) and exits; waiting for it
     * here is the one block of the loop, at shutdown only. */
    uv_thread_join(&s->thread);
    s->thread_started = false;
    run_done(s);
    uv_close((uv_handle_t *)&s->async, on_async_closed);
}

static void sq_destroy(gw_jobs_store *self)
{
    sqlite_store *s = (sqlite_store *)self;
    if (s->thread_started) {
        /* Destroyed without close (a failed start): stop the writer first. */
        uv_mutex_lock(&s->mu);
        s->stopping = true;
        uv_cond_signal(&s->cv);
        uv_mutex_unlock(&s->mu);
        uv_thread_join(&s->thread);
    }
    for (op *o = s->pending.head, *next; o; o = next) {
        next = o->next;
        op_free(o);
    }
    for (op *o = s->done.head, *next; o; o = next) {
        next = o->next;
        op_free(o);
    }
    sqlite3_stmt *stmts[] = {s->insert,   s->update,  s->set_payload, s->del,       s->put_task,
                             s->del_task, s->payload, s->detail,      s->put_sched, s->del_sched};
    for (size_t i = 0; i < sizeof(stmts) / sizeof(stmts[0]); i++)
        sqlite3_finalize(stmts[i]);
    sqlite3_close(s->db);
    uv_cond_destroy(&s->cv);
    uv_mutex_destroy(&s->mu);
    free(s);
}

static void on_failed_closed(uv_handle_t *h)
{
    sq_destroy(h->data);
}

static const gw_jobs_store_ops sqlite_ops = {
    .load = sq_load,
    .insert = sq_insert,
    .insert_many = sq_insert_many,
    .update = sq_update,
    .del = sq_del,
    .put_task = sq_put_task,
    .del_task = sq_del_task,
    .read = sq_read,
    .put_schedule = sq_put_schedule,
    .del_schedule = sq_del_schedule,
    .load_schedules = sq_load_schedules,
    .close = sq_close,
    .destroy = sq_destroy,
};

/* Version 4 (version 2, the identity column of 3 and the links of 4): the integer key is the job's
 * sequence number (time-ordered, so rows append); public_id is the id clients see (NULL for jobs
 * from version 0, whose integer is their id); tasks carry a public flag. */
#define JOBS_TABLE_V2                                                                              \
    "CREATE TABLE jobs(id INTEGER PRIMARY KEY, task TEXT NOT NULL, payload BLOB,"                  \
    " idem_key TEXT, status INTEGER NOT NULL, attempts INTEGER NOT NULL,"                          \
    " run_at INTEGER NOT NULL, updated INTEGER NOT NULL, result BLOB, error TEXT,"                 \
    " public_id TEXT, identity BLOB, links BLOB);"
#define TASKS_TABLE_V2                                                                             \
    "CREATE TABLE tasks(name TEXT PRIMARY KEY, public INTEGER NOT NULL DEFAULT 0);"

/* Schedules (jobs_schedule.c): created when missing, in every schema version 4 file. */
#define SCHEDULES_TABLE                                                                            \
    "CREATE TABLE IF NOT EXISTS schedules(id TEXT PRIMARY KEY, task TEXT NOT NULL, payload BLOB,"  \
    " cron TEXT, interval_ms INTEGER NOT NULL, last_tick INTEGER NOT NULL,"                        \
    " catch_up INTEGER NOT NULL, identity BLOB);"

/* Runs a query returning one integer.  0 or BR_EIO (logged). */
static int query_int(sqlite3 *db, const char *sql, int64_t *out)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *out = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW) {
        log_sqlite(db, sql);
        return BR_EIO;
    }
    return 0;
}

static int exec(sqlite3 *db, const char *sql)
{
    if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) {
        log_sqlite(db, "sqlite3_exec(schema)");
        return BR_EIO;
    }
    return 0;
}

/* A version-0 file (integer ids only, tasks without a public flag) becomes version 4
 * in one transaction: three columns are added and no row is rewritten.  Every old job
 * keeps its id (public_id NULL: its integer is its id), so status URLs handed out
 * before stay valid until their jobs expire; every recorded task is internal until a
 * worker announces it again.  A file without tables gets version 4's.  0 or BR_EIO. */
static int migrate_v0(sqlite3 *db, bool has_jobs, bool has_tasks, const char *path)
{
    int rc = exec(db, "BEGIN IMMEDIATE");
    if (rc == 0)
        rc = exec(db, has_jobs ? "ALTER TABLE jobs ADD COLUMN public_id TEXT;"
                                 "ALTER TABLE jobs ADD COLUMN identity BLOB;"
                                 "ALTER TABLE jobs ADD COLUMN links BLOB;"
                               : JOBS_TABLE_V2);
    if (rc == 0)
        rc = exec(db, has_tasks ? "ALTER TABLE tasks ADD COLUMN public INTEGER NOT NULL DEFAULT 0;"
                                : TASKS_TABLE_V2);
    if (rc == 0)
        rc = exec(db, "PRAGMA user_version = 4; COMMIT");
    if (rc != 0) {
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        return rc;
    }
    if (has_jobs)
        gw_log(GW_LOG_INFO, "jobs", "%s: migrated to schema 4 (old jobs keep their ids)", path);
    return 0;
}

/* A version-2 file gets the identity column (its jobs have no owner), a version-3 one
 * the links column (no job of it is in a workflow).  0 or BR_EIO. */
static int migrate_v2_v3(sqlite3 *db, int64_t version, const char *path)
{
    int rc = exec(db, version == 2 ? "BEGIN IMMEDIATE; ALTER TABLE jobs ADD COLUMN identity BLOB;"
                                     "ALTER TABLE jobs ADD COLUMN links BLOB;"
                                     "PRAGMA user_version = 4; COMMIT"
                                   : "BEGIN IMMEDIATE; ALTER TABLE jobs ADD COLUMN links BLOB;"
                                     "PRAGMA user_version = 4; COMMIT");
    if (rc != 0) {
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        return rc;
    }
    gw_log(GW_LOG_INFO, "jobs", "%s: migrated from schema %lld to 4", path, (long long)version);
    return 0;
}

/* Brings the file to GW_JOBS_SCHEMA_VERSION.  0 or BR_EIO (logged). */
static int prepare_schema(sqlite3 *db, const char *path)
{
    int64_t version = 0, has_jobs = 0, has_tasks = 0;
    int rc = query_int(db, "PRAGMA user_version", &version);
    if (rc != 0)
        return rc;
    if (version == GW_JOBS_SCHEMA_VERSION)
        return 0;
    if (version == 2 || version == 3)
        return migrate_v2_v3(db, version, path);
    if (version != 0) {
        gw_log(GW_LOG_ERROR, "jobs",
               "%s: schema version %lld is not one this gateway reads (it reads 0, 2, 3 and %d)",
               path, (long long)version, GW_JOBS_SCHEMA_VERSION);
        return BR_EIO;
    }
    rc = query_int(db, "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='jobs'",
                   &has_jobs);
    if (rc == 0)
        rc = query_int(db, "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='tasks'",
                       &has_tasks);
    return rc == 0 ? migrate_v0(db, has_jobs != 0, has_tasks != 0, path) : rc;
}

gw_jobs_store *gw__jobs_sqlite_open(uv_loop_t *loop, const char *path, gw_jobs_sync sync)
{
    sqlite_store *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->base.ops = &sqlite_ops;
    s->loop = loop;
    uv_mutex_init(&s->mu);
    uv_cond_init(&s->cv);
    char pragma[64];
    snprintf(pragma, sizeof(pragma), "PRAGMA synchronous=%s",
             sync == GW_JOBS_SYNC_FULL ? "FULL" : "NORMAL");
    if (sqlite3_open_v2(path, &s->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        gw_log(GW_LOG_ERROR, "jobs", "sqlite3_open_v2(%s) failed: %s", path,
               s->db ? sqlite3_errmsg(s->db) : "out of memory");
        goto fail;
    }
    sqlite3_busy_timeout(s->db, SQLITE_BUSY_TIMEOUT_MS);
    if (exec(s->db, "PRAGMA journal_mode=WAL") != 0 || exec(s->db, pragma) != 0 ||
        prepare_schema(s->db, path) != 0 || exec(s->db, SCHEDULES_TABLE) != 0)
        goto fail;
    static const struct {
        size_t offset;
        const char *sql;
    } statements[] = {
        {offsetof(sqlite_store, insert),
         "INSERT INTO jobs(id, task, payload, idem_key, status, attempts, run_at, updated, "
         "result, error, public_id, identity, links) "
         "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"},
        {offsetof(sqlite_store, update),
         "UPDATE jobs SET status = ?, attempts = ?, run_at = ?, updated = ?, result = ?, "
         "error = ? WHERE id = ?"},
        {offsetof(sqlite_store, set_payload), "UPDATE jobs SET payload = ? WHERE id = ?"},
        {offsetof(sqlite_store, del), "DELETE FROM jobs WHERE id = ?"},
        {offsetof(sqlite_store, put_task),
         "INSERT OR REPLACE INTO tasks(name, public) VALUES(?, ?)"},
        {offsetof(sqlite_store, del_task), "DELETE FROM tasks WHERE name = ?"},
        {offsetof(sqlite_store, payload), "SELECT payload FROM jobs WHERE id = ?"},
        {offsetof(sqlite_store, detail), "SELECT result, error FROM jobs WHERE id = ?"},
        {offsetof(sqlite_store, put_sched),
         "INSERT OR REPLACE INTO schedules(id, task, payload, cron, interval_ms, last_tick, "
         "catch_up, identity) VALUES(?, ?, ?, ?, ?, ?, ?, ?)"},
        {offsetof(sqlite_store, del_sched), "DELETE FROM schedules WHERE id = ?"},
    };
    for (size_t i = 0; i < sizeof(statements) / sizeof(statements[0]); i++) {
        sqlite3_stmt **st = (sqlite3_stmt **)(void *)((char *)s + statements[i].offset);
        if (sqlite3_prepare_v2(s->db, statements[i].sql, -1, st, NULL) != SQLITE_OK) {
            log_sqlite(s->db, "sqlite3_prepare_v2");
            goto fail;
        }
    }
    if (uv_async_init(loop, &s->async, on_async) != 0) {
        gw_log(GW_LOG_ERROR, "jobs", "uv_async_init failed");
        goto fail;
    }
    s->async.data = s;
    int rc = uv_thread_create(&s->thread, writer_main, s);
    if (rc != 0) {
        gw_log(GW_LOG_ERROR, "jobs", "uv_thread_create failed: %s", uv_strerror(rc));
        /* Freed once the handle has closed, on the loop's next turn. */
        uv_close((uv_handle_t *)&s->async, on_failed_closed);
        return NULL;
    }
    s->thread_started = true;
    return &s->base;
fail:
    sq_destroy(&s->base);
    return NULL;
}
