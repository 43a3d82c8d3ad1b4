/*
 * jobs_sqlite.c - the embedded job store: SQLite in WAL mode, written by one thread.
 *
 * The loop never touches the database after load.  It appends write operations to a
 * queue under a mutex; the writer thread takes everything queued (up to
 * GW_JOBS_STORE_BATCH_MAX), runs it as one transaction - one commit, one WAL sync
 * for the whole batch however many requests are waiting - and moves the batch to a
 * done list, waking the loop with uv_async_send.  The loop then runs each
 * operation's callback in order.  Under load the batches grow by themselves: while
 * one commit syncs, the next batch queues up.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "jobs_store.h"
#include "log.h"

/* How long a statement waits for a lock held by another connection (a second
 * gateway on the same file, or the sqlite3 shell) before failing. */
#define SQLITE_BUSY_TIMEOUT_MS 5000

typedef enum op_kind { OP_PUT, OP_DELETE, OP_TASK } op_kind;

/* One queued write; strings copied into the same allocation. */
typedef struct op {
    struct op *next;            /* in the pending or done list */
    op_kind kind;               /* what to write */
    gw_job_row row;             /* OP_PUT: the row; OP_DELETE: row.id; OP_TASK: row.task */
    gw_jobs_store_done_fn done; /* told on the loop */
    void *arg;                  /* its argument */
    int status;                 /* the write's outcome, set by the writer thread */
    char data[];                /* the row's strings */
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
    sqlite3_stmt *put;         /* INSERT OR REPLACE INTO jobs */
    sqlite3_stmt *del;         /* DELETE FROM jobs */
    sqlite3_stmt *task;        /* INSERT OR IGNORE INTO tasks */
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

/* Takes up to max ops from the front of src into out. */
static void list_take(op_list *src, size_t max, op_list *out)
{
    *out = (op_list){0};
    while (src->head && out->n < max) {
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

/* Runs one op's statement.  0 or BR_EIO (logged). */
static int apply(sqlite_store *s, const op *o)
{
    sqlite3_stmt *st = o->kind == OP_PUT ? s->put : o->kind == OP_DELETE ? s->del : s->task;
    const gw_job_row *r = &o->row;
    if (o->kind == OP_PUT) {
        sqlite3_bind_int64(st, 1, (sqlite3_int64)r->id);
        bind_str(st, 2, r->task, false);
        bind_str(st, 3, r->payload, true);
        bind_str(st, 4, r->idem_key, false);
        sqlite3_bind_int(st, 5, r->status);
        sqlite3_bind_int64(st, 6, r->attempts);
        sqlite3_bind_int64(st, 7, r->run_at_ms);
        sqlite3_bind_int64(st, 8, r->updated_ms);
        bind_str(st, 9, r->result, true);
        bind_str(st, 10, r->error, false);
    } else if (o->kind == OP_DELETE) {
        sqlite3_bind_int64(st, 1, (sqlite3_int64)r->id);
    } else {
        bind_str(st, 1, r->task, false);
    }
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_DONE) {
        log_sqlite(s->db, "sqlite3_step(write)");
        return BR_EIO;
    }
    return 0;
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
        o->status = status;
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

/* Runs the callbacks of every written op, in order. */
static void run_done(sqlite_store *s)
{
    uv_mutex_lock(&s->mu);
    op_list done = s->done;
    s->done = (op_list){0};
    uv_mutex_unlock(&s->mu);
    while (done.head) {
        op *o = done.head;
        done.head = o->next;
        if (o->done)
            o->done(o->arg, o->status);
        free(o);
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

static int enqueue(sqlite_store *s, op_kind kind, const gw_job_row *r, gw_jobs_store_done_fn done,
                   void *arg)
{
    if (s->closed)
        return BR_ECLOSED;
    size_t extra =
        (size_t)r->task.len + r->payload.len + r->idem_key.len + r->result.len + r->error.len;
    op *o = malloc(sizeof(*o) + extra);
    if (!o)
        return BR_ENOMEM;
    o->kind = kind;
    o->row = *r;
    char *cursor = o->data;
    o->row.task = copy_str(r->task, &cursor);
    o->row.payload = copy_str(r->payload, &cursor);
    o->row.idem_key = copy_str(r->idem_key, &cursor);
    o->row.result = copy_str(r->result, &cursor);
    o->row.error = copy_str(r->error, &cursor);
    o->done = done;
    o->arg = arg;
    o->status = 0;
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

static int sq_put(gw_jobs_store *self, const gw_job_row *r, gw_jobs_store_done_fn done, void *arg)
{
    return enqueue((sqlite_store *)self, OP_PUT, r, done, arg);
}

static int sq_del(gw_jobs_store *self, uint64_t id, gw_jobs_store_done_fn done, void *arg)
{
    gw_job_row r = {.id = id};
    return enqueue((sqlite_store *)self, OP_DELETE, &r, done, arg);
}

static int sq_add_task(gw_jobs_store *self, br_str name, gw_jobs_store_done_fn done, void *arg)
{
    gw_job_row r = {.task = name};
    return enqueue((sqlite_store *)self, OP_TASK, &r, done, arg);
}

static br_str column_str(sqlite3_stmt *st, int i)
{
    const void *p = sqlite3_column_type(st, i) == SQLITE_BLOB ? sqlite3_column_blob(st, i)
                                                              : sqlite3_column_text(st, i);
    int n = sqlite3_column_bytes(st, i);
    return (br_str){p, p ? (uint32_t)n : 0};
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
    void (*task)(br_str, void *);            /* the caller's task callback */
    void *arg;                               /* their argument */
} load_ctx;

static void each_task(sqlite3_stmt *st, void *arg)
{
    load_ctx *c = arg;
    c->task(column_str(st, 0), c->arg);
}

static void each_job(sqlite3_stmt *st, void *arg)
{
    load_ctx *c = arg;
    gw_job_row r = {
        .id = (uint64_t)sqlite3_column_int64(st, 0),
        .task = column_str(st, 1),
        .payload = column_str(st, 2),
        .idem_key = column_str(st, 3),
        .status = (uint8_t)sqlite3_column_int(st, 4),
        .attempts = (uint32_t)sqlite3_column_int64(st, 5),
        .run_at_ms = sqlite3_column_int64(st, 6),
        .updated_ms = sqlite3_column_int64(st, 7),
        .result = column_str(st, 8),
        .error = column_str(st, 9),
    };
    c->row(&r, c->arg);
}

static int sq_load(gw_jobs_store *self, void (*row)(const gw_job_row *, void *),
                   void (*task)(br_str, void *), void *arg)
{
    sqlite_store *s = (sqlite_store *)self;
    load_ctx c = {row, task, arg};
    int rc = select_all(s, "SELECT name FROM tasks", each_task, &c);
    if (rc == 0)
        rc = select_all(s,
                        "SELECT id, task, payload, idem_key, status, attempts, run_at, updated, "
                        "result, error FROM jobs ORDER BY id",
                        each_job, &c);
    return rc;
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
        free(o);
    }
    for (op *o = s->done.head, *next; o; o = next) {
        next = o->next;
        free(o);
    }
    sqlite3_finalize(s->put);
    sqlite3_finalize(s->del);
    sqlite3_finalize(s->task);
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
    .put = sq_put,
    .del = sq_del,
    .add_task = sq_add_task,
    .close = sq_close,
    .destroy = sq_destroy,
};

static const char schema[] =
    "PRAGMA journal_mode=WAL;"
    "CREATE TABLE IF NOT EXISTS jobs(id INTEGER PRIMARY KEY, task TEXT NOT NULL, payload BLOB,"
    " idem_key TEXT, status INTEGER NOT NULL, attempts INTEGER NOT NULL, run_at INTEGER NOT NULL,"
    " updated INTEGER NOT NULL, result BLOB, error TEXT);"
    "CREATE TABLE IF NOT EXISTS tasks(name TEXT PRIMARY KEY);";

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
    if (sqlite3_exec(s->db, schema, NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_exec(s->db, pragma, NULL, NULL, NULL) != SQLITE_OK) {
        log_sqlite(s->db, "sqlite3_exec(schema)");
        goto fail;
    }
    if (sqlite3_prepare_v2(s->db,
                           "INSERT OR REPLACE INTO jobs(id, task, payload, idem_key, status, "
                           "attempts, run_at, updated, result, error) "
                           "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           -1, &s->put, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(s->db, "DELETE FROM jobs WHERE id = ?", -1, &s->del, NULL) !=
            SQLITE_OK ||
        sqlite3_prepare_v2(s->db, "INSERT OR IGNORE INTO tasks(name) VALUES(?)", -1, &s->task,
                           NULL) != SQLITE_OK) {
        log_sqlite(s->db, "sqlite3_prepare_v2");
        goto fail;
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
