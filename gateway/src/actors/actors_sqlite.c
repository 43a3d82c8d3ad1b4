/*
 * actors_sqlite.c - the embedded actor state backend: one SQLite file in WAL mode.
 *
 * One table, actor_state(type, key, epoch, state).  A load claims epoch + 1 for the
 * key (inserting the row at epoch 1 when it has none) and reads its state; a commit
 * updates the state only WHERE epoch = the commit's epoch, so a commit from an
 * activation that was replaced changes nothing and is reported fenced.  Each batch is
 * one transaction (BEGIN IMMEDIATE ... COMMIT): the group commit.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "actors_store.h"
#include "log.h"

typedef struct sqlite_backend {
    gw_actor_backend base; /* the hooks (first) */
    sqlite3 *db;           /* the connection (used by one thread at a time) */
    sqlite3_stmt *select;  /* SELECT epoch, state by key */
    sqlite3_stmt *claim;   /* INSERT ... ON CONFLICT DO UPDATE epoch */
    sqlite3_stmt *set;     /* UPDATE state WHERE epoch matches */
    sqlite3_stmt *del;     /* UPDATE state = NULL WHERE epoch matches */
} sqlite_backend;

static void sqlite_apply(gw_actor_backend *self, gw_actor_op **ops, size_t n)
{
    gw__actors_sqlite_apply(self, ops, n);
}

static void sqlite_close(gw_actor_backend *self)
{
    gw__actors_sqlite_close(&self);
}

static const gw_actor_backend_ops sqlite_ops = {.apply = sqlite_apply, .close = sqlite_close};

static void close_failed(sqlite_backend *s)
{
    gw_actor_backend *b = &s->base;
    gw__actors_sqlite_close(&b);
}

static int exec(sqlite3 *db, const char *sql)
{
    char *err = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) == SQLITE_OK)
        return 0;
    gw_log(GW_LOG_ERROR, "actors", "sqlite3_exec(%s) failed: %s", sql, err ? err : "?");
    sqlite3_free(err);
    return BR_EIO;
}

/* How long a statement waits for another process's lock on the file. */
#define ACTORS_BUSY_TIMEOUT_MS 5000

gw_actor_backend *gw__actors_sqlite_open(const char *path, bool fsync)
{
    sqlite_backend *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->base.ops = &sqlite_ops;
    if (sqlite3_open_v2(path, &s->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        gw_log(GW_LOG_ERROR, "actors", "sqlite3_open_v2(%s) failed: %s", path,
               s->db ? sqlite3_errmsg(s->db) : "out of memory");
        close_failed(s);
        return NULL;
    }
    /* Every gateway process of --processes N opens this file (docs/gateway.md): a
     * writer that finds it locked waits for the other instead of failing.  Writes run
     * on the thread pool, so the wait never holds the loop; only the set-up below does,
     * once, at start. */
    sqlite3_busy_timeout(s->db, ACTORS_BUSY_TIMEOUT_MS);
    if (exec(s->db, "PRAGMA journal_mode=WAL") != 0 ||
        exec(s->db, fsync ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL") != 0 ||
        exec(s->db, "CREATE TABLE IF NOT EXISTS actor_state (type TEXT NOT NULL, key BLOB NOT "
                    "NULL, epoch INTEGER NOT NULL, state BLOB, PRIMARY KEY (type, key)) "
                    "WITHOUT ROWID") != 0) {
        close_failed(s);
        return NULL;
    }
    static const char *const sql[4] = {
        "SELECT epoch, state FROM actor_state WHERE type = ?1 AND key = ?2",
        ("INSERT INTO actor_state (type, key, epoch, state) VALUES (?1, ?2, 1, NULL) "
         "ON CONFLICT (type, key) DO UPDATE SET epoch = epoch + 1"),
        "UPDATE actor_state SET state = ?3 WHERE type = ?1 AND key = ?2 AND epoch = ?4",
        "UPDATE actor_state SET state = NULL WHERE type = ?1 AND key = ?2 AND epoch = ?4",
    };
    sqlite3_stmt **stmts[4] = {&s->select, &s->claim, &s->set, &s->del};
    for (int i = 0; i < 4; i++)
        if (sqlite3_prepare_v2(s->db, sql[i], -1, stmts[i], NULL) != SQLITE_OK) {
            gw_log(GW_LOG_ERROR, "actors", "sqlite3_prepare_v2(%s) failed: %s", sql[i],
                   sqlite3_errmsg(s->db));
            close_failed(s);
            return NULL;
        }
    return &s->base;
}

void gw__actors_sqlite_close(gw_actor_backend **self_p)
{
    if (!self_p || !*self_p)
        return;
    sqlite_backend *s = (sqlite_backend *)*self_p;
    sqlite3_finalize(s->select);
    sqlite3_finalize(s->claim);
    sqlite3_finalize(s->set);
    sqlite3_finalize(s->del);
    sqlite3_close(s->db);
    free(s);
    *self_p = NULL;
}

static void bind_key(sqlite3_stmt *st, const gw_actor_op *op)
{
    sqlite3_reset(st);
    sqlite3_bind_text(st, 1, op->type.ptr, (int)op->type.len, SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, op->key.len ? op->key.ptr : "", (int)op->key.len, SQLITE_STATIC);
}

/* Claims the next epoch and reads the state. */
static int apply_load(sqlite_backend *s, gw_actor_op *op)
{
    bind_key(s->claim, op);
    if (sqlite3_step(s->claim) != SQLITE_DONE)
        return BR_EIO;
    bind_key(s->select, op);
    if (sqlite3_step(s->select) != SQLITE_ROW)
        return BR_EIO;
    op->epoch = (uint64_t)sqlite3_column_int64(s->select, 0);
    const void *blob = sqlite3_column_blob(s->select, 1);
    int len = sqlite3_column_bytes(s->select, 1);
    op->state.len = 0;
    int rc = blob && len > 0 ? br_buf_append(&op->state, blob, (size_t)len) : 0;
    sqlite3_reset(s->select);
    return rc;
}

static int apply_commit(sqlite_backend *s, gw_actor_op *op)
{
    if (op->op == BR_STATE_KEEP)
        return 0;
    sqlite3_stmt *st = op->op == BR_STATE_SET ? s->set : s->del;
    bind_key(st, op);
    if (op->op == BR_STATE_SET)
        sqlite3_bind_blob(st, 3, op->state.len ? (const void *)op->state.data : "",
                          (int)op->state.len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)op->epoch);
    if (sqlite3_step(st) != SQLITE_DONE)
        return BR_EIO;
    return sqlite3_changes(s->db) == 1 ? 0 : BR_EVALUE;
}

void gw__actors_sqlite_apply(gw_actor_backend *self, gw_actor_op **ops, size_t n)
{
    sqlite_backend *s = (sqlite_backend *)self;
    if (exec(s->db, "BEGIN IMMEDIATE") != 0) {
        for (size_t i = 0; i < n; i++)
            ops[i]->status = BR_EIO;
        return;
    }
    for (size_t i = 0; i < n; i++)
        ops[i]->status = ops[i]->load ? apply_load(s, ops[i]) : apply_commit(s, ops[i]);
    if (exec(s->db, "COMMIT") != 0) {
        exec(s->db, "ROLLBACK");
        for (size_t i = 0; i < n; i++)
            ops[i]->status = BR_EIO;
    }
}
