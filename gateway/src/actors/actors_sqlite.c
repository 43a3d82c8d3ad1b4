/*
 * actors_sqlite.c - the embedded actor state backend: one SQLite file in WAL mode.
 *
 * One table, actor_state(type, key, epoch, state).  A load claims epoch + 1 for the
 * key (inserting the row at epoch 1 when it has none) and reads its state; a commit
 * updates the state only WHERE epoch = the commit's epoch, so a commit from an
 * activation that was replaced changes nothing and is reported fenced.  Each batch is
 * one transaction (BEGIN IMMEDIATE ... COMMIT): the group commit.
 *
 * Reminders live in a second table, actor_reminder(type, key, name, due, period,
 * lease, gen).  Setting or unsetting one is fenced like a commit: it is applied only
 * while the asking activation's epoch is the key's.  A claim takes due, unleased rows
 * and leases them in the same write transaction, so that gateway processes sharing the
 * file (--processes) never claim one row twice; the tick's end moves it on (or, failed,
 * lets it be retried), matched by generation so that a reminder set again meanwhile
 * is not disturbed.
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
    sqlite3_stmt *fence;   /* is the epoch the key's? */
    sqlite3_stmt *r_set;   /* INSERT ... ON CONFLICT a reminder */
    sqlite3_stmt *r_del;   /* DELETE a reminder */
    sqlite3_stmt *r_due;   /* SELECT due, unleased reminders of a type */
    sqlite3_stmt *r_lease; /* UPDATE lease */
    sqlite3_stmt *r_next;  /* UPDATE due of a periodic one after its tick */
    sqlite3_stmt *r_once;  /* DELETE a one-shot one after its tick */
    sqlite3_stmt *r_retry; /* UPDATE lease after a failed tick */
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

/* The prepared statements, in the order of the struct's pointers from `select`. */
#define STMTS 12

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
                    "WITHOUT ROWID") != 0 ||
        exec(s->db, "CREATE TABLE IF NOT EXISTS actor_reminder (type TEXT NOT NULL, key BLOB NOT "
                    "NULL, name TEXT NOT NULL, due INTEGER NOT NULL, period INTEGER NOT NULL, "
                    "lease INTEGER NOT NULL, gen INTEGER NOT NULL, PRIMARY KEY (type, key, "
                    "name)) WITHOUT ROWID") != 0 ||
        exec(s->db, "CREATE INDEX IF NOT EXISTS actor_reminder_due ON actor_reminder (type, "
                    "due)") != 0) {
        close_failed(s);
        return NULL;
    }
    static const char *const sql[STMTS] = {
        "SELECT epoch, state FROM actor_state WHERE type = ?1 AND key = ?2",
        ("INSERT INTO actor_state (type, key, epoch, state) VALUES (?1, ?2, 1, NULL) "
         "ON CONFLICT (type, key) DO UPDATE SET epoch = epoch + 1"),
        "UPDATE actor_state SET state = ?3 WHERE type = ?1 AND key = ?2 AND epoch = ?4",
        "UPDATE actor_state SET state = NULL WHERE type = ?1 AND key = ?2 AND epoch = ?4",
        "SELECT 1 FROM actor_state WHERE type = ?1 AND key = ?2 AND epoch = ?4",
        ("INSERT INTO actor_reminder (type, key, name, due, period, lease, gen) VALUES (?1, ?2, "
         "?3, ?4, ?5, 0, ?6) ON CONFLICT (type, key, name) DO UPDATE SET due = excluded.due, "
         "period = excluded.period, lease = 0, gen = excluded.gen"),
        "DELETE FROM actor_reminder WHERE type = ?1 AND key = ?2 AND name = ?3",
        ("SELECT key, name, gen FROM actor_reminder WHERE type = ?1 AND due <= ?4 AND lease <= "
         "?4 ORDER BY due LIMIT ?5"),
        "UPDATE actor_reminder SET lease = ?4 WHERE type = ?1 AND key = ?2 AND name = ?3",
        ("UPDATE actor_reminder SET due = max(due + period, ?5), lease = 0 WHERE type = ?1 AND "
         "key = ?2 AND name = ?3 AND gen = ?4 AND period > 0"),
        ("DELETE FROM actor_reminder WHERE type = ?1 AND key = ?2 AND name = ?3 AND gen = ?4 AND "
         "period = 0"),
        ("UPDATE actor_reminder SET lease = ?5 WHERE type = ?1 AND key = ?2 AND name = ?3 AND "
         "gen = ?4"),
    };
    sqlite3_stmt **stmts[STMTS] = {&s->select,  &s->claim,  &s->set,    &s->del,
                                   &s->fence,   &s->r_set,  &s->r_del,  &s->r_due,
                                   &s->r_lease, &s->r_next, &s->r_once, &s->r_retry};
    for (int i = 0; i < STMTS; i++)
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
    sqlite3_stmt *all[STMTS] = {s->select, s->claim, s->set,     s->del,    s->fence,  s->r_set,
                                s->r_del,  s->r_due, s->r_lease, s->r_next, s->r_once, s->r_retry};
    for (int i = 0; i < STMTS; i++)
        sqlite3_finalize(all[i]);
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

/* Binds (type, key, name) to ?1 ?2 ?3 of st (reset first). */
static void bind_name(sqlite3_stmt *st, const gw_actor_op *op)
{
    bind_key(st, op);
    sqlite3_bind_text(st, 3, op->name.len ? op->name.ptr : "", (int)op->name.len, SQLITE_STATIC);
}

static int step_done(sqlite3_stmt *st)
{
    return sqlite3_step(st) == SQLITE_DONE ? 0 : BR_EIO;
}

/* SET and UNSET apply only while op->epoch is the key's. */
static int apply_remind_change(sqlite_backend *s, gw_actor_op *op)
{
    bind_key(s->fence, op);
    sqlite3_bind_int64(s->fence, 4, (sqlite3_int64)op->epoch);
    int rc = sqlite3_step(s->fence);
    sqlite3_reset(s->fence);
    if (rc == SQLITE_DONE)
        return BR_EVALUE;
    if (rc != SQLITE_ROW)
        return BR_EIO;
    if (op->remind == GW_REMIND_UNSET) {
        bind_name(s->r_del, op);
        return step_done(s->r_del);
    }
    bind_name(s->r_set, op);
    sqlite3_bind_int64(s->r_set, 4, (sqlite3_int64)(op->now_ms + op->due_ms));
    sqlite3_bind_int64(s->r_set, 5, (sqlite3_int64)op->period_ms);
    sqlite3_bind_int64(s->r_set, 6, (sqlite3_int64)op->gen);
    return step_done(s->r_set);
}

static br_str dup_column(sqlite3_stmt *st, int col)
{
    const void *p = sqlite3_column_blob(st, col);
    int len = sqlite3_column_bytes(st, col);
    char *copy = malloc((size_t)len + 1);
    if (!copy)
        return (br_str){0};
    if (len > 0)
        memcpy(copy, p, (size_t)len);
    copy[len] = '\0';
    return (br_str){copy, (uint32_t)len};
}

/* Reads the due reminders of op->type, then leases each (same transaction). */
static int apply_remind_claim(sqlite_backend *s, gw_actor_op *op)
{
    gw__actor_op_free_claimed(op);
    if (op->claim_max == 0)
        return 0;
    op->claimed = calloc(op->claim_max, sizeof(*op->claimed));
    if (!op->claimed)
        return BR_ENOMEM;
    sqlite3_reset(s->r_due);
    sqlite3_bind_text(s->r_due, 1, op->type.ptr, (int)op->type.len, SQLITE_STATIC);
    sqlite3_bind_int64(s->r_due, 4, (sqlite3_int64)op->now_ms);
    sqlite3_bind_int64(s->r_due, 5, (sqlite3_int64)op->claim_max);
    int rc;
    while (op->nclaimed < op->claim_max && (rc = sqlite3_step(s->r_due)) == SQLITE_ROW) {
        gw_actor_reminder *r = &op->claimed[op->nclaimed];
        r->key = dup_column(s->r_due, 0);
        r->name = dup_column(s->r_due, 1);
        r->gen = (uint64_t)sqlite3_column_int64(s->r_due, 2);
        op->nclaimed++;
        if (!r->key.ptr || !r->name.ptr) {
            sqlite3_reset(s->r_due);
            return BR_ENOMEM;
        }
    }
    sqlite3_reset(s->r_due);
    for (size_t i = 0; i < op->nclaimed; i++) {
        gw_actor_op one = {
            .type = op->type, .key = op->claimed[i].key, .name = op->claimed[i].name};
        bind_name(s->r_lease, &one);
        sqlite3_bind_int64(s->r_lease, 4, (sqlite3_int64)(op->now_ms + op->lease_ms));
        if (step_done(s->r_lease) != 0)
            return BR_EIO;
    }
    return 0;
}

static int apply_remind_done(sqlite_backend *s, gw_actor_op *op)
{
    sqlite3_stmt *sts[2] = {op->ok ? s->r_next : s->r_retry, op->ok ? s->r_once : NULL};
    for (int i = 0; i < 2 && sts[i]; i++) {
        bind_name(sts[i], op);
        sqlite3_bind_int64(sts[i], 4, (sqlite3_int64)op->gen);
        if (sts[i] != s->r_once)
            sqlite3_bind_int64(sts[i], 5,
                               (sqlite3_int64)(op->ok ? op->now_ms : op->now_ms + op->lease_ms));
        if (step_done(sts[i]) != 0)
            return BR_EIO;
    }
    return 0;
}

static int apply_one(sqlite_backend *s, gw_actor_op *op)
{
    switch (op->remind) {
    case GW_REMIND_SET:
    case GW_REMIND_UNSET:
        return apply_remind_change(s, op);
    case GW_REMIND_CLAIM:
        return apply_remind_claim(s, op);
    case GW_REMIND_DONE:
        return apply_remind_done(s, op);
    default:
        return op->load ? apply_load(s, op) : apply_commit(s, op);
    }
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
        ops[i]->status = apply_one(s, ops[i]);
    if (exec(s->db, "COMMIT") != 0) {
        exec(s->db, "ROLLBACK");
        for (size_t i = 0; i < n; i++)
            ops[i]->status = BR_EIO;
    }
}
