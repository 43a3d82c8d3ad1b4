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
 *
 * Reminders live in barista_actor_reminder(type, key, name, due, period, lease, gen),
 * under the rules of actors_sqlite.c, each operation one statement of the pipeline:
 * SET and UNSET read the key's row FOR SHARE in the same statement, so a load that
 * claims a new epoch meanwhile (another gateway) either commits first and fences them
 * or waits for them; CLAIM selects due, unleased rows FOR UPDATE SKIP LOCKED and
 * leases them in the same statement, so gateways claiming at once take different rows
 * instead of queueing behind each other (or both taking one).
 */
#include <stdlib.h>
#include <string.h>

#include "barista/dl_pq.h"

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
    " epoch BIGINT NOT NULL, state BYTEA, PRIMARY KEY (type, key));"
    "CREATE TABLE IF NOT EXISTS barista_actor_reminder (type BYTEA NOT NULL, key BYTEA NOT NULL,"
    " name BYTEA NOT NULL, due BIGINT NOT NULL, period BIGINT NOT NULL, lease BIGINT NOT NULL,"
    " gen BIGINT NOT NULL, PRIMARY KEY (type, key, name));"
    "CREATE INDEX IF NOT EXISTS barista_actor_reminder_due ON barista_actor_reminder (type, due);"
    "COMMIT";

/* The statements, prepared once per session: their names are their indexes. */
enum { ST_LOAD, ST_SET, ST_DEL, ST_R_SET, ST_R_UNSET, ST_R_CLAIM, ST_R_OK, ST_R_RETRY, ST_COUNT };
static const char *const st_names[ST_COUNT] = {
    "actor_load",         "actor_set",          "actor_del",       "actor_remind_set",
    "actor_remind_unset", "actor_remind_claim", "actor_remind_ok", "actor_remind_retry"};
static const char *const st_sql[ST_COUNT] = {
    ("INSERT INTO barista_actor_state AS a (type, key, epoch) VALUES ($1, $2, 1) "
     "ON CONFLICT (type, key) DO UPDATE SET epoch = a.epoch + 1 RETURNING a.epoch, a.state"),
    "UPDATE barista_actor_state SET state = $3 WHERE type = $1 AND key = $2 AND epoch = $4",
    "UPDATE barista_actor_state SET state = NULL WHERE type = $1 AND key = $2 AND epoch = $3",
    /* $1 type, $2 key, $3 name, $4 due, $5 period, $6 gen, $7 epoch: one row or none
     * (fenced). */
    ("WITH f AS (SELECT 1 FROM barista_actor_state WHERE type = $1 AND key = $2 AND epoch = "
     "$7::bigint FOR SHARE) INSERT INTO barista_actor_reminder (type, key, name, due, period, "
     "lease, gen) SELECT $1::bytea, $2::bytea, $3::bytea, $4::bigint, $5::bigint, 0, $6::bigint "
     "FROM f ON CONFLICT (type, key, name) DO UPDATE SET due = excluded.due, period = "
     "excluded.period, lease = 0, gen = excluded.gen"),
    /* $1 type, $2 key, $3 name, $4 epoch: answers whether the epoch is the key's. */
    ("WITH f AS (SELECT 1 FROM barista_actor_state WHERE type = $1 AND key = $2 AND epoch = "
     "$4::bigint FOR SHARE), d AS (DELETE FROM barista_actor_reminder WHERE type = $1 AND key = "
     "$2 AND name = $3 AND EXISTS (SELECT 1 FROM f)) SELECT count(*) FROM f"),
    /* $1 type, $2 now, $3 most, $4 leased until. */
    ("WITH due AS (SELECT key, name FROM barista_actor_reminder WHERE type = $1 AND due <= "
     "$2::bigint AND lease <= $2::bigint ORDER BY due LIMIT $3::bigint FOR UPDATE SKIP LOCKED) "
     "UPDATE barista_actor_reminder r SET lease = $4::bigint FROM due WHERE r.type = $1 AND "
     "r.key = due.key AND r.name = due.name RETURNING r.key, r.name, r.gen"),
    /* $1 type, $2 key, $3 name, $4 gen, $5 now: a periodic one moves on, a one-shot one
     * goes (disjoint rows: the two parts never touch one row). */
    ("WITH n AS (UPDATE barista_actor_reminder SET due = GREATEST(due + period, $5::bigint), "
     "lease = 0 WHERE type = $1 AND key = $2 AND name = $3 AND gen = $4::bigint AND period > 0 "
     "RETURNING 1) DELETE FROM barista_actor_reminder WHERE type = $1 AND key = $2 AND name = $3 "
     "AND gen = $4::bigint AND period = 0"),
    /* $1 type, $2 key, $3 name, $4 gen, $5 retry at. */
    ("UPDATE barista_actor_reminder SET lease = $5::bigint WHERE type = $1 AND key = $2 AND "
     "name = $3 AND gen = $4::bigint"),
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
    return op->remind != GW_REMIND_NONE || op->load || op->op != BR_STATE_KEEP;
}

/* Up to 7 binary parameters of one statement. */
typedef struct pg_params {
    const char *values[7];
    int lengths[7];
    unsigned char ints[4][8]; /* the int8 parameters' bytes */
    int n, nints;
} pg_params;

static void param_bytes(pg_params *p, const void *ptr, size_t len)
{
    p->values[p->n] = len ? ptr : "";
    p->lengths[p->n++] = (int)len;
}

static void param_int(pg_params *p, uint64_t v)
{
    put_be64(p->ints[p->nints], v);
    param_bytes(p, p->ints[p->nints++], 8);
}

/* Sends one operation into the pipeline.  0 or BR_EIO. */
static int send_op(pg_backend *s, const gw_actor_op *op)
{
    pg_params p = {.n = 0};
    static const int formats[7] = {1, 1, 1, 1, 1, 1, 1};
    param_bytes(&p, op->type.ptr, op->type.len);
    int st;
    switch (op->remind) {
    case GW_REMIND_SET:
        st = ST_R_SET;
        param_bytes(&p, op->key.ptr, op->key.len);
        param_bytes(&p, op->name.ptr, op->name.len);
        param_int(&p, op->now_ms + op->due_ms);
        param_int(&p, op->period_ms);
        param_int(&p, op->gen);
        param_int(&p, op->epoch);
        break;
    case GW_REMIND_UNSET:
        st = ST_R_UNSET;
        param_bytes(&p, op->key.ptr, op->key.len);
        param_bytes(&p, op->name.ptr, op->name.len);
        param_int(&p, op->epoch);
        break;
    case GW_REMIND_CLAIM:
        st = ST_R_CLAIM;
        param_int(&p, op->now_ms);
        param_int(&p, op->claim_max);
        param_int(&p, op->now_ms + op->lease_ms);
        break;
    case GW_REMIND_DONE:
        st = op->ok ? ST_R_OK : ST_R_RETRY;
        param_bytes(&p, op->key.ptr, op->key.len);
        param_bytes(&p, op->name.ptr, op->name.len);
        param_int(&p, op->gen);
        param_int(&p, op->ok ? op->now_ms : op->now_ms + op->lease_ms);
        break;
    default:
        param_bytes(&p, op->key.ptr, op->key.len);
        if (op->load) {
            st = ST_LOAD;
        } else if (op->op == BR_STATE_SET) {
            st = ST_SET;
            param_bytes(&p, op->state.data, op->state.len);
            param_int(&p, op->epoch);
        } else { /* BR_STATE_DELETE */
            st = ST_DEL;
            param_int(&p, op->epoch);
        }
    }
    return PQsendQueryPrepared(s->conn, st_names[st], p.n, p.values, p.lengths, formats, 1) == 1
               ? 0
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

static br_str dup_value(const PGresult *r, int row, int col)
{
    int len = PQgetlength(r, row, col);
    char *copy = malloc((size_t)len + 1);
    if (!copy)
        return (br_str){0};
    memcpy(copy, PQgetvalue(r, row, col), (size_t)len);
    copy[len] = '\0';
    return (br_str){copy, (uint32_t)len};
}

/* A CLAIM's answer: the rows it leased, into op->claimed. */
static int take_claimed(gw_actor_op *op, PGresult *r)
{
    gw__actor_op_free_claimed(op); /* an earlier attempt's, when the batch ran again */
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        return BR_EIO;
    int rows = PQntuples(r);
    if (rows == 0)
        return 0;
    op->claimed = calloc((size_t)rows, sizeof(*op->claimed));
    if (!op->claimed)
        return BR_ENOMEM;
    for (int i = 0; i < rows; i++) {
        if (PQgetlength(r, i, 2) != 8)
            return BR_EIO;
        gw_actor_reminder *c = &op->claimed[op->nclaimed++];
        c->key = dup_value(r, i, 0);
        c->name = dup_value(r, i, 1);
        c->gen = get_be64(PQgetvalue(r, i, 2));
        if (!c->key.ptr || !c->name.ptr)
            return BR_ENOMEM;
    }
    return 0;
}

/* An op's answer from its result: 0, BR_EVALUE (fenced) or BR_EIO. */
static int take_result(gw_actor_op *op, PGresult *r)
{
    switch (op->remind) {
    case GW_REMIND_UNSET:
        if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1 || PQgetlength(r, 0, 0) != 8)
            return BR_EIO;
        return get_be64(PQgetvalue(r, 0, 0)) > 0 ? 0 : BR_EVALUE;
    case GW_REMIND_CLAIM:
        return take_claimed(op, r);
    case GW_REMIND_DONE: /* a reminder set again since (another gen) is left alone: 0 */
        return PQresultStatus(r) == PGRES_COMMAND_OK ? 0 : BR_EIO;
    default: /* SET as a commit: one row written, or fenced */
        break;
    }
    if (op->load && op->remind == GW_REMIND_NONE) {
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
    char why[BR__DL_ERROR_MAX];
    if (br__dl_pq_load(why, sizeof(why)) != 0) { /* libpq is mapped from here on */
        gw_log(GW_LOG_ERROR, "actors", "postgres: %s", why);
        return NULL;
    }
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
