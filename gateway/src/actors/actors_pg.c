/*
 * actors_pg.c - the networked actor state backend: PostgreSQL through libpq.
 *
 * The same table and the same rules as actors_sqlite.c: a load claims epoch + 1 for
 * the key (INSERT ... ON CONFLICT DO UPDATE ... RETURNING, one statement, so two
 * gateways loading the same key at once get two different epochs: the row lock
 * orders them), and a commit updates the state only WHERE epoch is still its own.
 * Because the epoch lives in the database, several gateways can share one store and
 * a commit from an activation another gateway replaced is fenced.
 *
 * A batch is one transaction sent in libpq's pipeline mode: BEGIN, every operation,
 * COMMIT and one sync go out together and the answers are read back in order, so a
 * batch of N operations costs one round trip and one commit (group commit), not N.
 * libpq reads while it writes when the socket is full, so a large batch cannot
 * deadlock on the socket buffers.  A transaction the server aborts for a deadlock
 * with another gateway's batch (or a serialization failure) is retried whole; a lost
 * connection fails the batch (BR_EIO) and the next batch reconnects.
 */
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "actors_store.h"
#include "log.h"

/* PostgreSQL's binary int8: 8 bytes, big-endian. */
static void put_be64(unsigned char *out, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        out[i] = (unsigned char)v;
}

static uint64_t get_be64(const char *in)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | (unsigned char)in[i];
    return v;
}

/* Times a batch is retried after the server aborted it for a deadlock. */
#define ACTORS_PG_RETRIES 5
/* run_batch's answer when the batch should run again (not an error code). */
#define BATCH_RETRY 1

typedef struct pg_backend {
    gw_actor_backend base; /* the hooks (first) */
    PGconn *conn;          /* the connection (used by one thread at a time) */
    bool prepared;         /* the statements exist on this session */
} pg_backend;

/* The table, created (under a lock, so that gateways starting together do not race
 * on the catalog) when missing. */
static const char schema_sql[] =
    "SET client_min_messages = warning; BEGIN; SELECT pg_advisory_xact_lock(4242001);"
    "CREATE TABLE IF NOT EXISTS barista_actor_state (type BYTEA NOT NULL, key BYTEA NOT NULL,"
    " epoch BIGINT NOT NULL, state BYTEA, PRIMARY KEY (type, key)); COMMIT";

/* The statements, prepared once per session: their names are their indexes. */
enum { ST_LOAD, ST_SET, ST_DEL, ST_COUNT };
static const char *const st_names[ST_COUNT] = {"actor_load", "actor_set", "actor_del"};
static const char *const st_sql[ST_COUNT] = {
    ("INSERT INTO barista_actor_state AS a (type, key, epoch) VALUES ($1, $2, 1) "
     "ON CONFLICT (type, key) DO UPDATE SET epoch = a.epoch + 1 RETURNING a.epoch, a.state"),
    "UPDATE barista_actor_state SET state = $3 WHERE type = $1 AND key = $2 AND epoch = $4",
    "UPDATE barista_actor_state SET state = NULL WHERE type = $1 AND key = $2 AND epoch = $3",
};

/* Runs sql outside a pipeline.  0 or BR_EIO (logged). */
static int pg_exec(pg_backend *s, const char *sql)
{
    PGresult *r = PQexec(s->conn, sql);
    ExecStatusType st = PQresultStatus(r);
    int rc = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? 0 : BR_EIO;
    if (rc != 0)
        gw_log(GW_LOG_ERROR, "actors", "postgres: %s", PQerrorMessage(s->conn));
    PQclear(r);
    return rc;
}

/* Makes the session usable: reconnects a broken one and prepares the statements.
 * 0 or BR_EIO (logged). */
static int ensure_session(pg_backend *s)
{
    if (PQstatus(s->conn) != CONNECTION_OK) {
        PQreset(s->conn);
        s->prepared = false;
        if (PQstatus(s->conn) != CONNECTION_OK) {
            gw_log(GW_LOG_ERROR, "actors", "postgres: reconnect failed: %s",
                   PQerrorMessage(s->conn));
            return BR_EIO;
        }
    }
    if (s->prepared)
        return 0;
    for (int i = 0; i < ST_COUNT; i++) {
        PGresult *r = PQprepare(s->conn, st_names[i], st_sql[i], 0, NULL);
        bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        PQclear(r);
        if (!ok) {
            gw_log(GW_LOG_ERROR, "actors", "postgres: PREPARE %s failed: %s", st_names[i],
                   PQerrorMessage(s->conn));
            return BR_EIO;
        }
    }
    s->prepared = true;
    return 0;
}

/* True when op has a statement: a load, or a commit that sets or deletes the state
 * (BR_STATE_KEEP changes nothing, as in actors_sqlite.c). */
static bool writes(const gw_actor_op *op)
{
    return op->load || op->op != BR_STATE_KEEP;
}

/* Sends one operation into the pipeline.  0 or BR_EIO. */
static int send_op(pg_backend *s, const gw_actor_op *op)
{
    unsigned char epoch[8];
    put_be64(epoch, op->epoch);
    const char *values[4] = {op->type.ptr, op->key.len ? op->key.ptr : "", NULL, NULL};
    int lengths[4] = {(int)op->type.len, (int)op->key.len, 0, 8};
    static const int formats[4] = {1, 1, 1, 1};
    int st, n;
    if (op->load) {
        st = ST_LOAD, n = 2;
    } else if (op->op == BR_STATE_SET) {
        st = ST_SET, n = 4;
        values[2] = op->state.len ? (const char *)op->state.data : "";
        lengths[2] = (int)op->state.len;
        values[3] = (const char *)epoch;
    } else { /* BR_STATE_DELETE */
        st = ST_DEL, n = 3;
        values[2] = (const char *)epoch;
        lengths[2] = 8;
    }
    return PQsendQueryPrepared(s->conn, st_names[st], n, values, lengths, formats, 1) == 1 ? 0
                                                                                           : BR_EIO;
}

/* The next query's result, with the NULL that ends it consumed.  NULL when the
 * connection has nothing more (lost). */
static PGresult *next_result(PGconn *conn)
{
    PGresult *r = PQgetResult(conn);
    if (r && PQresultStatus(r) != PGRES_PIPELINE_SYNC) {
        PGresult *extra;
        while ((extra = PQgetResult(conn)) != NULL)
            PQclear(extra);
    }
    return r;
}

/* An op's answer from its result: 0, BR_EVALUE (fenced) or BR_EIO. */
static int take_result(gw_actor_op *op, PGresult *r)
{
    if (op->load) {
        if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1 || PQgetlength(r, 0, 0) != 8)
            return BR_EIO;
        op->epoch = get_be64(PQgetvalue(r, 0, 0));
        op->state.len = 0;
        int len = PQgetisnull(r, 0, 1) ? 0 : PQgetlength(r, 0, 1);
        return len > 0 ? br_buf_append(&op->state, PQgetvalue(r, 0, 1), (size_t)len) : 0;
    }
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        return BR_EIO;
    return strcmp(PQcmdTuples(r), "1") == 0 ? 0 : BR_EVALUE;
}

/* True when r failed because the server aborted the transaction for a deadlock or a
 * serialization conflict: the batch may simply run again. */
static bool retryable(const PGresult *r)
{
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    return state && (strcmp(state, "40P01") == 0 || strcmp(state, "40001") == 0);
}

/* One attempt at the batch.  0, BATCH_RETRY or BR_EIO; ops' statuses set
 * when 0. */
static int run_batch(pg_backend *s, gw_actor_op **ops, size_t n)
{
    if (ensure_session(s) != 0)
        return BR_EIO;
    PGconn *c = s->conn;
    if (PQenterPipelineMode(c) != 1)
        return BR_EIO;
    int sent_ok = PQsendQueryParams(c, "BEGIN", 0, NULL, NULL, NULL, NULL, 0) == 1;
    size_t nsent = 0;
    for (size_t i = 0; i < n && sent_ok; i++) {
        ops[i]->status = 0; /* a commit that keeps the state writes nothing */
        if (writes(ops[i])) {
            sent_ok = send_op(s, ops[i]) == 0;
            nsent++;
        }
    }
    sent_ok = sent_ok && PQsendQueryParams(c, "COMMIT", 0, NULL, NULL, NULL, NULL, 0) == 1;
    sent_ok = sent_ok && PQpipelineSync(c) == 1;
    if (!sent_ok) {
        gw_log(GW_LOG_ERROR, "actors", "postgres: send failed: %s", PQerrorMessage(c));
        PQreset(c); /* the pipeline is in an unknown state: start a new session */
        s->prepared = false;
        return BR_EIO;
    }
    int rc = 0;
    size_t next = 0; /* the op whose result comes next, among those sent */
    for (size_t i = 0; i < nsent + 2; i++) {
        PGresult *r = next_result(c);
        if (!r) {
            rc = BR_EIO;
            break;
        }
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_FATAL_ERROR) {
            if (rc == 0 && !retryable(r))
                gw_log(GW_LOG_ERROR, "actors", "postgres: %s", PQresultErrorMessage(r));
            rc = rc != 0 ? rc : retryable(r) ? BATCH_RETRY : BR_EIO;
        } else if (st == PGRES_PIPELINE_ABORTED) {
            rc = rc != 0 ? rc : BR_EIO;
        } else if (rc == 0 && i > 0 && i <= nsent) {
            while (!writes(ops[next]))
                next++;
            gw_actor_op *op = ops[next++];
            op->status = take_result(op, r);
            if (op->status == BR_EIO || op->status == BR_ENOMEM)
                rc = BR_EIO; /* the commit below still ran: only the answers are lost */
        }
        PQclear(r);
    }
    PGresult *sync = rc == 0 || PQstatus(c) == CONNECTION_OK ? PQgetResult(c) : NULL;
    if (!sync || PQresultStatus(sync) != PGRES_PIPELINE_SYNC) {
        rc = BR_EIO;
        gw_log(GW_LOG_ERROR, "actors", "postgres: batch lost: %s", PQerrorMessage(c));
    }
    PQclear(sync);
    if (PQexitPipelineMode(c) != 1) {
        PQreset(c);
        s->prepared = false;
    }
    return rc;
}

static void pg_apply(gw_actor_backend *self, gw_actor_op **ops, size_t n)
{
    pg_backend *s = (pg_backend *)self;
    int rc = BATCH_RETRY;
    for (int attempt = 0; attempt <= ACTORS_PG_RETRIES && rc == BATCH_RETRY; attempt++)
        rc = run_batch(s, ops, n);
    if (rc != 0)
        for (size_t i = 0; i < n; i++)
            ops[i]->status = BR_EIO;
}

static void pg_close(gw_actor_backend *self)
{
    pg_backend *s = (pg_backend *)self;
    PQfinish(s->conn);
    free(s);
}

static const gw_actor_backend_ops pg_ops = {.apply = pg_apply, .close = pg_close};

gw_actor_backend *gw__actors_pg_open(const char *url)
{
    pg_backend *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->base.ops = &pg_ops;
    s->conn = PQconnectdb(url);
    if (PQstatus(s->conn) != CONNECTION_OK) {
        gw_log(GW_LOG_ERROR, "actors", "postgres: cannot connect: %s",
               s->conn ? PQerrorMessage(s->conn) : "out of memory");
        pg_close(&s->base);
        return NULL;
    }
    if (pg_exec(s, schema_sql) != 0 || ensure_session(s) != 0) {
        pg_close(&s->base);
        return NULL;
    }
    return &s->base;
}
