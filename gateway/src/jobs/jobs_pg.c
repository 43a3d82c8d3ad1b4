/*
 * jobs_pg.c - the networked job store: PostgreSQL through libpq, written by one thread.
 *
 * The same contract as jobs_sqlite.c (jobs_store.h): the loop appends operations to a
 * queue under a mutex; the writer thread takes everything queued (up to
 * GW_JOBS_STORE_BATCH_MAX) and sends it as one transaction in libpq's pipeline mode -
 * BEGIN, every statement, COMMIT and one sync go out together and the answers come back
 * in order - so a batch of any size costs one round trip and one commit (group
 * commit).  It then moves the batch to a done list and wakes the loop (uv_async),
 * which runs the callbacks in order.  Reads ride in the same pipeline, so a read sees
 * every write queued before it.  libpq reads while it writes when the socket fills, so
 * a batch of large payloads cannot deadlock on the socket buffers.
 *
 * Several gateways share a queue, each scheduling the jobs it owns (docs/jobs.md,
 * "Several gateways on one PostgreSQL queue").  A gateway registers in
 * barista_gateways with a lease; every batch starts by renewing it (the fence: a
 * batch of a gateway whose row is gone fails whole, and the gateway exits, since the
 * jobs in its memory now belong to another), and the writer renews it every third of
 * the lease when idle.  Jobs carry their owner.  On the same beat the writer adopts
 * the jobs of one gateway whose lease ran out: it deletes that gateway's row (FOR
 * UPDATE SKIP LOCKED: one survivor adopts it, and never while one of its batches is
 * open, since the batch holds the row) and takes its jobs, which go to the loop as
 * load's rows did.  A lost connection fails the batch under way (BR_EIO: the callers
 * answer 503 or retry) and the next batch reconnects; the lease is a row, so it
 * survives the reconnect.  A cancel or retry asked at another gateway is a bit in the
 * job's row (request); the beat also takes those of this gateway's jobs for the loop.
 *
 * Tables: barista_jobs, barista_job_tasks, barista_job_schedules, with the SQLite
 * schema's columns (strings as BYTEA: task names, keys and errors are bytes here).  A
 * database made before workflows gets barista_jobs.links added at open.  A workflow's
 * members (insert_many) are queued as one glued run that the writer never splits
 * across batches, so they commit in one transaction or not at all.
 */
#include <inttypes.h>
#include <stdio.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "barista/dl_pq.h"

#include "jobs_store.h"
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

/* Gateways sharing one queue, at most: each gets a distinct tag for its job keys. */
#define JOBS_PG_TAGS 256u
/* Dead gateways adopted per beat, at most. */
#define JOBS_PG_ADOPT_MAX 16

typedef enum op_kind {
    OP_INSERT,
    OP_UPDATE,
    OP_DELETE,
    OP_PUT_TASK,
    OP_DEL_TASK,
    OP_READ,
    OP_PUT_SCHEDULE,
    OP_DEL_SCHEDULE,
    OP_ADOPT,     /* the writer's own: jobs taken from a dead gateway, for the loop */
    OP_REQUEST,   /* a cancel or retry recorded for another gateway's job */
    OP_REQUESTED, /* the writer's own: requests for this gateway's jobs, for the loop */
    OP_SCHEDULES  /* every schedule read (read_schedules) */
} op_kind;

/* The prepared statement of each kind (OP_READ: the payload one; detail below). */
static const char *const st_names[] = {
    "job_insert",  "job_update",    "job_delete",      "job_put_task", "job_del_task",
    "job_payload", "job_put_sched", "job_del_sched",   "job_detail",   "gw_renew",
    "gw_adopt",    "gw_adopt_jobs", "job_insert_tick", "job_row",      "job_request",
    "gw_requests", "job_schedules"};
#define ST_DETAIL      8
#define ST_RENEW       9
#define ST_ADOPT       10
#define ST_ADOPT_JOBS  11
#define ST_INSERT_TICK 12
#define ST_ROW         13
#define ST_REQUEST     14
#define ST_REQUESTS    15
#define ST_SCHEDULES   16
/* The columns of a schedule, in schedule_at's order. */
#define SCHEDULE_COLUMNS " id, task, payload, cron, interval_ms, last_tick, catch_up, identity"
/* The columns load reads and adoption returns, in each_job's order. */
#define JOB_COLUMNS                                                                                \
    " id, task, coalesce(octet_length(payload), 0)::bigint, idem_key, status, attempts, run_at,"   \
    " updated, result, error, public_id, identity, links"
static const char *const st_sql[] = {
    ("INSERT INTO barista_jobs (id, public_id, task, payload, idem_key, status, attempts, run_at,"
     " updated, result, error, identity, links, owner) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9,"
     " $10, $11, $12, $13, $14)"),
    /* $8 <> 0: $9 replaces the payload (a workflow member given its parents' results). */
    ("UPDATE barista_jobs SET status = $2, attempts = $3, run_at = $4, updated = $5, result = $6,"
     " error = $7, payload = CASE WHEN $8::bigint <> 0 THEN $9::bytea ELSE payload END"
     " WHERE id = $1"),
    "DELETE FROM barista_jobs WHERE id = $1",
    ("INSERT INTO barista_job_tasks (name, public) VALUES ($1, $2)"
     " ON CONFLICT (name) DO UPDATE SET public = EXCLUDED.public"),
    "DELETE FROM barista_job_tasks WHERE name = $1",
    "SELECT id, payload FROM barista_jobs WHERE id = ANY ($1::bigint[])",
    ("INSERT INTO barista_job_schedules (id, task, payload, cron, interval_ms, last_tick, catch_up,"
     " identity) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO UPDATE SET"
     " task = EXCLUDED.task, payload = EXCLUDED.payload, cron = EXCLUDED.cron,"
     " interval_ms = EXCLUDED.interval_ms,"
     " last_tick = greatest(barista_job_schedules.last_tick, EXCLUDED.last_tick),"
     " catch_up = EXCLUDED.catch_up, identity = EXCLUDED.identity"),
    "DELETE FROM barista_job_schedules WHERE id = $1",
    "SELECT id, result, error FROM barista_jobs WHERE id = ANY ($1::bigint[])",
    /* The lease: renewed, or an error (division by zero) when the row is gone, which
     * aborts the transaction it opens.  It holds the row until the commit. */
    ("WITH r AS (UPDATE barista_gateways SET lease_until = clock_timestamp() + $2::bigint * "
     "interval"
     " '1 millisecond' WHERE id = $1 RETURNING 1) SELECT 1 / count(*) FROM r"),
    ("DELETE FROM barista_gateways WHERE id = (SELECT id FROM barista_gateways WHERE"
     " lease_until < clock_timestamp() AND id <> $1 ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)"
     " RETURNING id"),
    "UPDATE barista_jobs SET owner = $1 WHERE owner = $2 RETURNING" JOB_COLUMNS,
    /* A schedule's tick ($15: the schedule, $16: the tick, $17: the latest last tick
     * that leaves it unmade): claimed and its job written in one statement, or
     * neither (another gateway of the queue made the tick). */
    ("WITH c AS (UPDATE barista_job_schedules SET last_tick = $16::bigint WHERE id = $15::bytea"
     " AND last_tick <= $17::bigint RETURNING 1)"
     " INSERT INTO barista_jobs (id, public_id, task, payload, idem_key, status, attempts, run_at,"
     " updated, result, error, identity, links, owner) SELECT $1::bigint, $2::bytea, $3::bytea,"
     " $4::bytea, $5::bytea, $6::bigint, $7::bigint, $8::bigint, $9::bigint, $10::bytea,"
     " $11::bytea, $12::bytea, $13::bytea, $14::bigint WHERE EXISTS (SELECT 1 FROM c)"),
    ("SELECT id, result, error, task, public_id, identity, status, attempts FROM barista_jobs"
     " WHERE id = ANY ($1::bigint[])"),
    /* A request for a job's owner ($2: gw_jobs_request bits), whoever owns it. */
    "UPDATE barista_jobs SET request = request | $2 WHERE id = $1",
    /* The owner's beat takes the requests for its jobs (each once; RETURNING shows the
     * new value, so the old one comes from the locked rows). */
    ("UPDATE barista_jobs j SET request = 0 FROM (SELECT id, request FROM barista_jobs"
     " WHERE owner = $1 AND request <> 0 FOR UPDATE) o WHERE j.id = o.id"
     " RETURNING j.id, o.request"),
    "SELECT" SCHEDULE_COLUMNS " FROM barista_job_schedules ORDER BY id",
};
#define ST_COUNT (sizeof(st_sql) / sizeof(st_sql[0]))

/* Created when missing, under a transaction lock so that gateways starting together
 * do not race on the catalog. */
static const char schema_sql[] =
    "SET client_min_messages = warning; BEGIN; SELECT pg_advisory_xact_lock(4242003);"
    "CREATE TABLE IF NOT EXISTS barista_jobs (id BIGINT PRIMARY KEY, public_id BYTEA,"
    " task BYTEA NOT NULL, payload BYTEA, idem_key BYTEA, status BIGINT NOT NULL,"
    " attempts BIGINT NOT NULL, run_at BIGINT NOT NULL, updated BIGINT NOT NULL,"
    " result BYTEA, error BYTEA, identity BYTEA, links BYTEA);"
    "ALTER TABLE barista_jobs ADD COLUMN IF NOT EXISTS links BYTEA;"
    "CREATE TABLE IF NOT EXISTS barista_job_tasks (name BYTEA PRIMARY KEY,"
    " public BIGINT NOT NULL DEFAULT 0);"
    "CREATE TABLE IF NOT EXISTS barista_job_schedules (id BYTEA PRIMARY KEY, task BYTEA NOT NULL,"
    " payload BYTEA, cron BYTEA, interval_ms BIGINT NOT NULL, last_tick BIGINT NOT NULL,"
    " catch_up BIGINT NOT NULL, identity BYTEA);"
    "ALTER TABLE barista_jobs ADD COLUMN IF NOT EXISTS owner BIGINT;"
    "ALTER TABLE barista_jobs ADD COLUMN IF NOT EXISTS request BIGINT NOT NULL DEFAULT 0;"
    "CREATE INDEX IF NOT EXISTS barista_jobs_requests ON barista_jobs (owner)"
    " WHERE request <> 0;"
    "CREATE TABLE IF NOT EXISTS barista_gateways (id BIGINT PRIMARY KEY, tag BIGINT NOT NULL,"
    " lease_until TIMESTAMPTZ NOT NULL);"
    "CREATE SEQUENCE IF NOT EXISTS barista_gateway_ids; COMMIT";

/* A starting gateway ($1) first takes the jobs of gateways whose lease has run out
 * (their rows go, skipping one another gateway is adopting), those nobody owns
 * (written before gateways shared a queue) and those whose owner's row is gone (a late
 * batch of an adopted gateway); then registers ($2: its lease in ms) with the smallest
 * tag no row holds.  In one transaction under a transaction lock, so gateways starting
 * together do not take the same tag or job. */
static const char claim_sql[] =
    "WITH dead AS (DELETE FROM barista_gateways WHERE id IN (SELECT id FROM barista_gateways"
    " WHERE lease_until < clock_timestamp() FOR UPDATE SKIP LOCKED) RETURNING id)"
    " UPDATE barista_jobs SET owner = $1 WHERE owner IS NULL OR owner IN (SELECT id FROM dead)"
    " OR owner NOT IN (SELECT id FROM barista_gateways)";
static const char register_sql[] =
    "WITH t AS (SELECT min(n)::bigint AS tag FROM generate_series(0, 255) n WHERE n NOT IN"
    " (SELECT tag FROM barista_gateways))"
    " INSERT INTO barista_gateways (id, tag, lease_until) SELECT $1, tag, clock_timestamp() +"
    " $2::bigint * interval '1 millisecond' FROM t WHERE tag IS NOT NULL"
    " RETURNING tag, (SELECT coalesce(max(id), 0) FROM barista_jobs)";

typedef gw_jobs_store_schedules_fn sched_fn;

/* One queued operation; strings copied into the same allocation. */
typedef struct op {
    struct op *next;            /* in the pending or done list */
    op_kind kind;               /* what to do */
    gw_job_row row;             /* the row (see enqueue's callers for non-job kinds) */
    gw_jobs_store_done_fn done; /* a write's callback, on the loop */
    gw_jobs_store_read_fn read; /* OP_READ's callback, on the loop */
    sched_fn schedules;         /* OP_SCHEDULES' callback, on the loop */
    void *arg;                  /* their argument */
    bool glued;                 /* the next op is in the same transaction (insert_many) */
    bool claim_lost;            /* OP_INSERT with a claim: another gateway made the tick;
                                   OP_REQUEST: no such job */
    int status;                 /* the outcome, set by the writer thread */
    int read_status;            /* OP_READ: its own outcome (a read never fails the batch) */
    uint64_t *seqs;             /* OP_READ: the jobs to read (in data) */
    size_t nids;                /* entries in seqs */
    unsigned what;              /* OP_READ: gw_jobs_read_what */
    gw_job_row *rows;           /* OP_READ: what was read (heap, by the writer), or NULL */
    char *ids_text;             /* OP_READ: seqs as a PostgreSQL array literal (writer) */
    PGresult *adopted;          /* OP_ADOPT: the jobs taken over, OP_REQUESTED: the
                                   requests taken, OP_SCHEDULES: the schedules read
                                   (writer), or NULL */
    char data[];                /* the row's strings, or OP_READ's seqs */
} op;

/* A FIFO of ops. */
typedef struct op_fifo {
    op *head, *tail; /* oldest, newest */
    size_t n;        /* entries */
} op_fifo;

typedef struct pg_store {
    gw_jobs_store base; /* the interface (first) */
    uv_loop_t *loop;    /* where callbacks run */
    PGconn *conn;       /* used by the writer thread after load */
    bool prepared;      /* statements prepared */
    int64_t me;         /* this gateway's row in barista_gateways */
    uint32_t lease_ms;  /* its lease */
    bool watching;      /* watch was called: beat, adopt */
    uint64_t beat_due;  /* uv_hrtime when the writer next renews and adopts */
    void (*adopt_row)(const gw_job_row *, void *); /* watch's callbacks */
    void (*adopted)(void *, size_t);
    void (*requested)(void *, uint64_t, unsigned);
    void *adopt_arg;           /* their argument */
    uv_thread_t thread;        /* the writer */
    bool thread_started;       /* thread must be joined */
    uv_mutex_t mu;             /* guards pending, done, stopping */
    uv_cond_t cv;              /* signals the writer: work or stop */
    op_fifo pending;           /* queued by the loop, not yet taken by the writer */
    op_fifo done;              /* written, callbacks not yet run */
    bool stopping;             /* close was called: write what is left and exit */
    bool closed;               /* close was called (loop side) */
    uv_async_t async;          /* wakes the loop for the done list */
    void (*on_closed)(void *); /* close's callback */
    void *closed_arg;          /* its argument */
} pg_store;

static void fifo_push(op_fifo *f, op *o)
{
    o->next = NULL;
    *(f->tail ? &f->tail->next : &f->head) = o;
    f->tail = o;
    f->n++;
}

/* ---------------------------------------------------------------------------------- */
/* The session.                                                                        */

static int exec_simple(PGconn *c, const char *sql, const char *what)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    PQclear(r);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        return 0;
    gw_log(GW_LOG_ERROR, "jobs", "postgres: %s failed: %s", what, PQerrorMessage(c));
    return BR_EIO;
}

/* Takes the owner lock and prepares the statements, reconnecting first if the
 * session was lost.  0 or BR_EIO (logged). */
static int ensure_session(pg_store *s)
{
    if (PQstatus(s->conn) != CONNECTION_OK) {
        PQreset(s->conn);
        s->prepared = false;
        if (PQstatus(s->conn) != CONNECTION_OK) {
            gw_log(GW_LOG_ERROR, "jobs", "postgres: reconnect failed: %s", PQerrorMessage(s->conn));
            return BR_EIO;
        }
    }
    if (s->prepared)
        return 0;
    for (size_t i = 0; i < ST_COUNT; i++) {
        PGresult *r = PQprepare(s->conn, st_names[i], st_sql[i], 0, NULL);
        bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        PQclear(r);
        if (!ok) {
            gw_log(GW_LOG_ERROR, "jobs", "postgres: PREPARE %s failed: %s", st_names[i],
                   PQerrorMessage(s->conn));
            return BR_EIO;
        }
    }
    s->prepared = true;
    return 0;
}

/* ---------------------------------------------------------------------------------- */
/* The writer thread.                                                                  */

/* Parameters of one statement, all in binary format. */
typedef struct params {
    const char *values[17];    /* each parameter's bytes */
    int lengths[17];           /* their lengths */
    int formats[17];           /* 1: binary; 0: text */
    unsigned char ints[17][8]; /* big-endian integers the values point at */
    int n;                     /* parameters set */
} params;

static void p_str(params *p, br_str v)
{
    p->values[p->n] = v.len ? v.ptr : "";
    p->lengths[p->n] = (int)v.len;
    p->formats[p->n++] = 1;
}

static void p_int(params *p, int64_t v)
{
    put_be64(p->ints[p->n], (uint64_t)v);
    p->values[p->n] = (const char *)p->ints[p->n];
    p->lengths[p->n] = 8;
    p->formats[p->n++] = 1;
}

/* The seqs of an OP_READ as an array literal, {1,2,3}.  NULL when out of memory. */
static char *ids_literal(const op *o)
{
    char *text = malloc(o->nids * 21 + 3);
    if (!text)
        return NULL;
    size_t at = 0;
    text[at++] = '{';
    for (size_t i = 0; i < o->nids; i++)
        at += (size_t)snprintf(text + at, 22, "%s%" PRIu64, i ? "," : "", o->seqs[i]);
    text[at++] = '}';
    text[at] = '\0';
    return text;
}

/* Sends one op into the pipeline.  0 or BR_EIO / BR_ENOMEM. */
static int send_op(pg_store *s, op *o)
{
    const gw_job_row *r = &o->row;
    params p = {.n = 0};
    int st = (int)o->kind;
    switch (o->kind) {
    case OP_INSERT:
        p_int(&p, (int64_t)r->seq);
        p_str(&p, r->id);
        p_str(&p, r->task);
        p_str(&p, r->payload);
        p_str(&p, r->idem_key);
        p_int(&p, r->status);
        p_int(&p, r->attempts);
        p_int(&p, r->run_at_ms);
        p_int(&p, r->updated_ms);
        p_str(&p, r->result);
        p_str(&p, r->error);
        p_str(&p, r->identity);
        p_str(&p, r->links);
        p_int(&p, s->me);
        if (r->claim.len > 0) {
            st = ST_INSERT_TICK;
            p_str(&p, r->claim);
            p_int(&p, r->claim_tick);
            p_int(&p, r->claim_floor);
        }
        break;
    case OP_UPDATE:
        p_int(&p, (int64_t)r->seq);
        p_int(&p, r->status);
        p_int(&p, r->attempts);
        p_int(&p, r->run_at_ms);
        p_int(&p, r->updated_ms);
        p_str(&p, r->result);
        p_str(&p, r->error);
        p_int(&p, r->set_payload ? 1 : 0);
        p_str(&p, r->payload);
        break;
    case OP_DELETE:
        p_int(&p, (int64_t)r->seq);
        break;
    case OP_PUT_TASK:
        p_str(&p, r->task);
        p_int(&p, r->status ? 1 : 0);
        break;
    case OP_DEL_TASK:
        p_str(&p, r->task);
        break;
    case OP_READ:
        if (o->what == GW_JOBS_READ_DETAIL)
            st = ST_DETAIL;
        else if (o->what == GW_JOBS_READ_ROW)
            st = ST_ROW;
        o->ids_text = ids_literal(o);
        if (!o->ids_text)
            return BR_ENOMEM;
        p.values[0] = o->ids_text;
        p.lengths[0] = 0;
        p.formats[0] = 0;
        p.n = 1;
        break;
    case OP_PUT_SCHEDULE: /* a schedule carried in a job row: see pg_put_schedule */
        p_str(&p, r->id);
        p_str(&p, r->task);
        p_str(&p, r->payload);
        p_str(&p, r->idem_key);
        p_int(&p, r->updated_ms);
        p_int(&p, r->run_at_ms);
        p_int(&p, r->attempts);
        p_str(&p, r->identity);
        break;
    case OP_DEL_SCHEDULE:
        p_str(&p, r->id);
        break;
    case OP_SCHEDULES:
        st = ST_SCHEDULES;
        break;
    case OP_REQUEST:
        st = ST_REQUEST;
        p_int(&p, (int64_t)r->seq);
        p_int(&p, r->status);
        break;
    case OP_ADOPT: /* never queued */
    case OP_REQUESTED:
        return BR_EINVAL;
    }
    return PQsendQueryPrepared(s->conn, st_names[st], p.n, p.values, p.lengths, p.formats, 1) == 1
               ? 0
               : BR_EIO;
}

static br_str value_str(const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        return (br_str){0};
    return (br_str){PQgetvalue(r, row, col), (uint32_t)PQgetlength(r, row, col)};
}

static int64_t value_int(const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col) || PQgetlength(r, row, col) != 8)
        return 0;
    return (int64_t)get_be64(PQgetvalue(r, row, col));
}

/* Copies a read's columns into one heap block kept at row->payload or row->result.
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

static br_str put_str(br_str v, char **cursor);

/* A GW_JOBS_READ_ROW row (ST_ROW's columns) into one heap block at row->result.  0 or
 * BR_ENOMEM. */
static int keep_row(gw_job_row *row, uint64_t seq, const PGresult *r, int t)
{
    br_str cols[5] = {value_str(r, t, 1), value_str(r, t, 2), value_str(r, t, 3),
                      value_str(r, t, 4), value_str(r, t, 5)};
    size_t size = 1;
    for (size_t i = 0; i < 5; i++)
        size += cols[i].len;
    char *p = malloc(size);
    if (!p)
        return BR_ENOMEM;
    br_str *dst[5] = {&row->result, &row->error, &row->task, &row->id, &row->identity};
    char *cursor = p;
    for (size_t i = 0; i < 5; i++)
        *dst[i] = put_str(cols[i], &cursor);
    row->result.ptr = p; /* op_free frees the block through it, even when empty */
    row->seq = seq;
    row->status = (uint8_t)value_int(r, t, 6);
    row->attempts = (uint32_t)value_int(r, t, 7);
    return 0;
}

/* OP_READ's answer: one row per seq (its seq 0 when the job is not there).  0 or
 * BR_ENOMEM. */
static int take_read(op *o, const PGresult *r)
{
    bool detail = o->what == GW_JOBS_READ_DETAIL;
    o->rows = calloc(o->nids, sizeof(*o->rows));
    if (!o->rows)
        return BR_ENOMEM;
    for (int t = 0; t < PQntuples(r); t++) {
        uint64_t seq = (uint64_t)value_int(r, t, 0);
        for (size_t i = 0; i < o->nids; i++) {
            if (o->seqs[i] != seq || o->rows[i].seq != 0)
                continue;
            int rc = o->what == GW_JOBS_READ_ROW
                         ? keep_row(&o->rows[i], seq, r, t)
                         : keep_read(&o->rows[i], seq, value_str(r, t, 1),
                                     detail ? value_str(r, t, 2) : (br_str){0}, detail);
            if (rc != 0)
                return rc;
        }
    }
    return 0;
}

/* The next query's result, with the NULL that ends it consumed; NULL when the
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

/* The lease's parameters: this gateway, its length. */
static void renew_params(const pg_store *s, params *p)
{
    p->n = 0;
    p_int(p, s->me);
    p_int(p, s->lease_ms);
}

/* This gateway's row is gone: another gateway adopted its jobs (its lease ran out
 * while it could not reach the server, or its writer stalled).  The jobs in its
 * memory are no longer its own, and running them would run them twice: it exits, and
 * its supervisor starts it again as a new gateway. */
static void lease_lost(void)
{
    gw_log(GW_LOG_ERROR, "jobs",
           "postgres: this gateway's lease on the job queue ran out and another gateway "
           "adopted its jobs; exiting so that none runs twice");
    _exit(75);
}

/* True when r is the renewal's error that says the gateway's row is gone. */
static bool renewal_refused(const PGresult *r)
{
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    return state && strcmp(state, "22012") == 0; /* division_by_zero: no row */
}

/* Writes a batch as one transaction, which first renews this gateway's lease (and
 * fails whole if the lease is gone).  0 or BR_EIO (logged); reads' own outcomes in
 * read_status. */
static int run_batch(pg_store *s, op_fifo *batch)
{
    if (ensure_session(s) != 0)
        return BR_EIO;
    PGconn *c = s->conn;
    if (PQenterPipelineMode(c) != 1)
        return BR_EIO;
    params lease;
    renew_params(s, &lease);
    bool sent = PQsendQueryParams(c, "BEGIN", 0, NULL, NULL, NULL, NULL, 0) == 1 &&
                PQsendQueryPrepared(c, st_names[ST_RENEW], lease.n, lease.values, lease.lengths,
                                    lease.formats, 1) == 1;
    int nsent = 0;
    int local = 0; /* a failure before the server saw the op */
    for (op *o = batch->head; o && sent && local == 0; o = o->next, nsent++) {
        local = send_op(s, o);
        sent = local != BR_EIO;
    }
    /* An op that failed here (out of memory) fails the batch: nothing of it is kept. */
    sent = sent &&
           PQsendQueryParams(c, local ? "ROLLBACK" : "COMMIT", 0, NULL, NULL, NULL, NULL, 0) == 1;
    sent = sent && PQpipelineSync(c) == 1;
    if (!sent) {
        gw_log(GW_LOG_ERROR, "jobs", "postgres: send failed: %s", PQerrorMessage(c));
        PQreset(c); /* the pipeline is in an unknown state: a new session */
        s->prepared = false;
        return BR_EIO;
    }
    if (local != 0)
        nsent--; /* the op that failed locally was not sent */
    int rc = local;
    op *o = batch->head;
    /* BEGIN, the renewal, the ops, COMMIT. */
    for (int i = 0; i < nsent + 3; i++) {
        PGresult *r = next_result(c);
        if (!r) {
            rc = BR_EIO;
            break;
        }
        ExecStatusType st = PQresultStatus(r);
        bool is_op = i > 1 && i <= nsent + 1;
        if (st == PGRES_FATAL_ERROR) {
            if (i == 1 && renewal_refused(r))
                lease_lost();
            if (rc == 0)
                gw_log(GW_LOG_ERROR, "jobs", "postgres: %s", PQresultErrorMessage(r));
            rc = rc ? rc : BR_EIO;
        } else if (st == PGRES_PIPELINE_ABORTED) {
            rc = rc ? rc : BR_EIO;
        } else if (rc == 0 && is_op && o->kind == OP_READ) {
            o->read_status = take_read(o, r);
        } else if (rc == 0 && is_op && o->kind == OP_SCHEDULES) {
            o->adopted = r; /* kept for the loop */
            r = NULL;
        } else if (rc == 0 && is_op &&
                   ((o->kind == OP_INSERT && o->row.claim.len > 0) || o->kind == OP_REQUEST)) {
            o->claim_lost = strcmp(PQcmdTuples(r), "0") == 0;
        }
        if (is_op)
            o = o->next;
        PQclear(r);
    }
    PGresult *sync = rc == 0 || PQstatus(c) == CONNECTION_OK ? PQgetResult(c) : NULL;
    if (!sync || PQresultStatus(sync) != PGRES_PIPELINE_SYNC) {
        if (rc == 0)
            gw_log(GW_LOG_ERROR, "jobs", "postgres: batch lost: %s", PQerrorMessage(c));
        rc = BR_EIO;
    }
    PQclear(sync);
    if (PQexitPipelineMode(c) != 1) {
        PQreset(c);
        s->prepared = false;
    }
    return rc;
}

/* Runs one prepared statement outside the pipeline (the writer's beat). */
static PGresult *exec_prepared(pg_store *s, int st, const params *p)
{
    return PQexecPrepared(s->conn, st_names[st], p->n, p->values, p->lengths, p->formats, 1);
}

/* Takes over the jobs of one gateway whose lease ran out, in one transaction: its row
 * goes, its jobs become ours.  Their rows (maybe none), or NULL when no gateway is
 * dead or the server failed (logged; the next beat tries again). */
static PGresult *adopt_one(pg_store *s)
{
    if (exec_simple(s->conn, "BEGIN", "adopting") != 0)
        return NULL;
    params p = {.n = 0};
    p_int(&p, s->me);
    PGresult *dead = exec_prepared(s, ST_ADOPT, &p);
    PGresult *jobs = NULL;
    if (PQresultStatus(dead) == PGRES_TUPLES_OK && PQntuples(dead) == 1) {
        int64_t gone = value_int(dead, 0, 0);
        p_int(&p, gone);
        jobs = exec_prepared(s, ST_ADOPT_JOBS, &p);
        if (PQresultStatus(jobs) != PGRES_TUPLES_OK) {
            gw_log(GW_LOG_ERROR, "jobs", "postgres: adopting failed: %s",
                   PQresultErrorMessage(jobs));
            PQclear(jobs);
            jobs = NULL;
        } else {
            gw_log(GW_LOG_INFO, "jobs", "postgres: gateway %" PRId64 " is gone: %d jobs adopted",
                   gone, PQntuples(jobs));
        }
    } else if (PQresultStatus(dead) != PGRES_TUPLES_OK) {
        gw_log(GW_LOG_ERROR, "jobs", "postgres: looking for dead gateways failed: %s",
               PQresultErrorMessage(dead));
    }
    PQclear(dead);
    if (exec_simple(s->conn, jobs ? "COMMIT" : "ROLLBACK", "adopting") != 0 && jobs) {
        PQclear(jobs);
        jobs = NULL;
    }
    return jobs;
}

/* Hands what the beat took (adopted jobs, requests: o->adopted) to the loop. */
static void hand_over(pg_store *s, op *o)
{
    uv_mutex_lock(&s->mu);
    fifo_push(&s->done, o);
    uv_mutex_unlock(&s->mu);
    uv_async_send(&s->async);
}

/* Takes the requests other gateways recorded for this gateway's jobs, after the
 * adoptions (the loop holds every job they name by then).  A request taken is told
 * once: if this gateway dies before it applies it, it is lost, as a cancel or retry
 * whose answer was lost (the client asks again). */
static void take_requests(pg_store *s)
{
    op *o = s->requested ? calloc(1, sizeof(*o)) : NULL;
    if (!o)
        return; /* nothing taken: the next beat tries again */
    params p = {.n = 0};
    p_int(&p, s->me);
    PGresult *r = exec_prepared(s, ST_REQUESTS, &p);
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0) {
        o->kind = OP_REQUESTED;
        o->adopted = r;
        hand_over(s, o);
        return;
    }
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        gw_log(GW_LOG_ERROR, "jobs", "postgres: taking requests failed: %s",
               PQresultErrorMessage(r));
    PQclear(r);
    free(o);
}

/* The writer's beat: renews the lease, then adopts the jobs of dead gateways and hands
 * them to the loop (an OP_ADOPT on the done list), then the requests for its jobs (an
 * OP_REQUESTED).  Called without the mutex. */
static void beat(pg_store *s)
{
    if (ensure_session(s) != 0)
        return;
    params p;
    renew_params(s, &p);
    PGresult *r = exec_prepared(s, ST_RENEW, &p);
    if (PQresultStatus(r) == PGRES_FATAL_ERROR && renewal_refused(r))
        lease_lost();
    bool renewed = PQresultStatus(r) == PGRES_TUPLES_OK;
    if (!renewed)
        gw_log(GW_LOG_WARN, "jobs", "postgres: renewing the gateway's lease failed: %s",
               PQresultErrorMessage(r));
    PQclear(r);
    for (int i = 0; renewed && i < JOBS_PG_ADOPT_MAX; i++) {
        op *o = calloc(1, sizeof(*o));
        if (!o)
            return; /* nothing taken: the next beat tries again */
        o->kind = OP_ADOPT;
        o->adopted = adopt_one(s);
        if (!o->adopted) {
            free(o);
            break;
        }
        hand_over(s, o);
    }
    if (renewed)
        take_requests(s);
}

/* True when the beat is due (under the mutex). */
static bool beat_due(const pg_store *s, uint64_t now)
{
    return s->watching && !s->stopping && now >= s->beat_due;
}

static void writer_main(void *arg)
{
    pg_store *s = arg;
    uv_mutex_lock(&s->mu);
    for (;;) {
        uint64_t now = uv_hrtime();
        while (!s->pending.head && !s->stopping && !beat_due(s, now)) {
            if (s->watching)
                uv_cond_timedwait(&s->cv, &s->mu, s->beat_due - now);
            else
                uv_cond_wait(&s->cv, &s->mu);
            now = uv_hrtime();
        }
        if (beat_due(s, now)) {
            s->beat_due = now + (uint64_t)s->lease_ms / 3 * 1000000u;
            uv_mutex_unlock(&s->mu);
            beat(s);
            uv_mutex_lock(&s->mu);
            continue;
        }
        if (!s->pending.head)
            break; /* stopping, and everything is written */
        op_fifo batch = {0};
        /* Past the batch's size only to finish a glued run (one insert_many). */
        while (s->pending.head &&
               (batch.n < GW_JOBS_STORE_BATCH_MAX || (batch.tail && batch.tail->glued))) {
            op *o = s->pending.head;
            s->pending.head = o->next;
            s->pending.n--;
            fifo_push(&batch, o);
        }
        if (!s->pending.head)
            s->pending.tail = NULL;
        uv_mutex_unlock(&s->mu);
        int status = run_batch(s, &batch);
        for (op *o = batch.head; o; o = o->next)
            o->status = status != 0          ? status
                        : o->kind == OP_READ ? o->read_status
                        : o->claim_lost      ? BR_ENOTFOUND
                                             : 0;
        uv_mutex_lock(&s->mu);
        if (batch.head) {
            *(s->done.tail ? &s->done.tail->next : &s->done.head) = batch.head;
            s->done.tail = batch.tail;
        }
        uv_async_send(&s->async);
    }
    uv_mutex_unlock(&s->mu);
}

/* ---------------------------------------------------------------------------------- */
/* The loop side.                                                                      */

static void op_free(op *o)
{
    if (o->rows)
        for (size_t i = 0; i < o->nids; i++)
            free((void *)(o->rows[i].result.ptr ? o->rows[i].result.ptr : o->rows[i].payload.ptr));
    free(o->rows);
    free(o->ids_text);
    PQclear(o->adopted);
    free(o);
}

static void job_at(const PGresult *r, int t, gw_job_row *row, char *decimal, size_t cap);

/* Hands the jobs adopted from a dead gateway to the queue, as load did its own. */
static void run_adopted(pg_store *s, const PGresult *r)
{
    int n = PQntuples(r);
    for (int t = 0; t < n; t++) {
        char decimal[24];
        gw_job_row row;
        job_at(r, t, &row, decimal, sizeof(decimal));
        s->adopt_row(&row, s->adopt_arg);
    }
    s->adopted(s->adopt_arg, (size_t)n);
}

static gw_schedule_row schedule_at(const PGresult *r, int t);

/* Hands the schedules read to read_schedules' caller. */
static void run_schedules(op *o)
{
    int n = o->status == 0 && o->adopted ? PQntuples(o->adopted) : 0;
    gw_schedule_row *rows = calloc(n > 0 ? (size_t)n : 1, sizeof(*rows));
    if (!rows) {
        o->schedules(o->arg, BR_ENOMEM, NULL, 0);
        return;
    }
    for (int t = 0; t < n; t++)
        rows[t] = schedule_at(o->adopted, t);
    if (o->status == 0 && !o->adopted)
        o->status = BR_EIO;
    o->schedules(o->arg, o->status, o->status == 0 ? rows : NULL, (size_t)n);
    free(rows);
}

static void run_done(pg_store *s)
{
    uv_mutex_lock(&s->mu);
    op *o = s->done.head;
    s->done = (op_fifo){0};
    uv_mutex_unlock(&s->mu);
    while (o) {
        op *next = o->next;
        if (o->kind == OP_READ)
            o->read(o->arg, o->status, o->status == 0 ? o->rows : NULL,
                    o->status == 0 ? o->nids : 0);
        else if (o->kind == OP_ADOPT)
            run_adopted(s, o->adopted);
        else if (o->kind == OP_SCHEDULES)
            run_schedules(o);
        else if (o->kind == OP_REQUESTED)
            for (int t = 0; t < PQntuples(o->adopted); t++)
                s->requested(s->adopt_arg, (uint64_t)value_int(o->adopted, t, 0),
                             (unsigned)value_int(o->adopted, t, 1));
        else if (o->done)
            o->done(o->arg, o->status);
        op_free(o);
        o = next;
    }
}

static void on_async(uv_async_t *a)
{
    run_done(a->data);
}

static int submit(pg_store *s, op *o)
{
    uv_mutex_lock(&s->mu);
    bool full = s->pending.n >= GW_JOBS_STORE_MAX_PENDING;
    if (!full) {
        fifo_push(&s->pending, o);
        uv_cond_signal(&s->cv);
    }
    uv_mutex_unlock(&s->mu);
    if (full)
        free(o);
    return full ? BR_EFULL : 0;
}

/* Appends s's bytes at *cursor and returns where they went. */
static br_str put_str(br_str v, char **cursor)
{
    br_str out = {*cursor, v.len};
    if (v.len)
        memcpy(*cursor, v.ptr, v.len);
    *cursor += v.len;
    return out;
}

/* A new op of `kind` holding a copy of r, or NULL (out of memory). */
static op *op_make(op_kind kind, const gw_job_row *r, gw_jobs_store_done_fn done, void *arg)
{
    const br_str *strs[] = {&r->id,    &r->task,     &r->payload, &r->idem_key, &r->result,
                            &r->error, &r->identity, &r->links,   &r->claim};
    size_t extra = 0;
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
        extra += strs[i]->len;
    op *o = malloc(sizeof(*o) + extra);
    if (!o)
        return NULL;
    *o = (op){.kind = kind, .row = *r, .done = done, .arg = arg};
    char *cursor = o->data;
    br_str *dst[] = {&o->row.id,       &o->row.task,   &o->row.payload,
                     &o->row.idem_key, &o->row.result, &o->row.error,
                     &o->row.identity, &o->row.links,  &o->row.claim};
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
        *dst[i] = put_str(*strs[i], &cursor);
    return o;
}

static int enqueue(pg_store *s, op_kind kind, const gw_job_row *r, gw_jobs_store_done_fn done,
                   void *arg)
{
    if (s->closed)
        return BR_ECLOSED;
    op *o = op_make(kind, r, done, arg);
    return o ? submit(s, o) : BR_ENOMEM;
}

static void free_run(op_fifo *run)
{
    for (op *o = run->head, *next; o; o = next) {
        next = o->next;
        free(o);
    }
}

/* The rows are queued as a glued run under one lock: the writer sends them in one
 * transaction, and only the last carries done (they commit or fail together). */
static int pg_insert_many(gw_jobs_store *self, const gw_job_row *rows, size_t n,
                          gw_jobs_store_done_fn done, void *arg)
{
    pg_store *s = (pg_store *)self;
    if (s->closed)
        return BR_ECLOSED;
    if (n == 0)
        return BR_EINVAL;
    op_fifo run = {0};
    for (size_t i = 0; i < n; i++) {
        bool last = i + 1 == n;
        op *o = op_make(OP_INSERT, &rows[i], last ? done : NULL, last ? arg : NULL);
        if (!o) {
            free_run(&run);
            return BR_ENOMEM;
        }
        o->glued = !last;
        fifo_push(&run, o);
    }
    uv_mutex_lock(&s->mu);
    bool full = s->pending.n + n > GW_JOBS_STORE_MAX_PENDING;
    if (!full) {
        *(s->pending.tail ? &s->pending.tail->next : &s->pending.head) = run.head;
        s->pending.tail = run.tail;
        s->pending.n += run.n;
        uv_cond_signal(&s->cv);
    }
    uv_mutex_unlock(&s->mu);
    if (full)
        free_run(&run);
    return full ? BR_EFULL : 0;
}

static int pg_insert(gw_jobs_store *self, const gw_job_row *r, gw_jobs_store_done_fn done,
                     void *arg)
{
    return enqueue((pg_store *)self, OP_INSERT, r, done, arg);
}

static int pg_update(gw_jobs_store *self, const gw_job_row *r, gw_jobs_store_done_fn done,
                     void *arg)
{
    /* Only the changing columns are written: copy nothing else. */
    gw_job_row u = {.seq = r->seq,
                    .status = r->status,
                    .attempts = r->attempts,
                    .run_at_ms = r->run_at_ms,
                    .updated_ms = r->updated_ms,
                    .result = r->result,
                    .error = r->error,
                    .set_payload = r->set_payload,
                    .payload = r->set_payload ? r->payload : (br_str){0}};
    return enqueue((pg_store *)self, OP_UPDATE, &u, done, arg);
}

static int pg_del(gw_jobs_store *self, uint64_t seq, gw_jobs_store_done_fn done, void *arg)
{
    return enqueue((pg_store *)self, OP_DELETE, &(gw_job_row){.seq = seq}, done, arg);
}

static int pg_put_task(gw_jobs_store *self, br_str name, bool is_public, gw_jobs_store_done_fn done,
                       void *arg)
{
    gw_job_row r = {.task = name, .status = is_public};
    return enqueue((pg_store *)self, OP_PUT_TASK, &r, done, arg);
}

static int pg_del_task(gw_jobs_store *self, br_str name, gw_jobs_store_done_fn done, void *arg)
{
    return enqueue((pg_store *)self, OP_DEL_TASK, &(gw_job_row){.task = name}, done, arg);
}

/* A schedule rides in a job row: id, task, payload, cron as idem_key, the interval as
 * updated_ms, the last tick as run_at_ms, catch_up as attempts, and the identity. */
static int pg_put_schedule(gw_jobs_store *self, const gw_schedule_row *sr,
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
    return enqueue((pg_store *)self, OP_PUT_SCHEDULE, &r, done, arg);
}

static int pg_del_schedule(gw_jobs_store *self, br_str id, gw_jobs_store_done_fn done, void *arg)
{
    return enqueue((pg_store *)self, OP_DEL_SCHEDULE, &(gw_job_row){.id = id}, done, arg);
}

static int pg_request(gw_jobs_store *self, uint64_t seq, unsigned what, gw_jobs_store_done_fn done,
                      void *arg)
{
    gw_job_row r = {.seq = seq, .status = (uint8_t)what};
    return enqueue((pg_store *)self, OP_REQUEST, &r, done, arg);
}

static int pg_read(gw_jobs_store *self, const uint64_t *seqs, size_t n, unsigned what,
                   gw_jobs_store_read_fn done, void *arg)
{
    pg_store *s = (pg_store *)self;
    if (s->closed)
        return BR_ECLOSED;
    if (n == 0 || !done)
        return BR_EINVAL;
    op *o = calloc(1, sizeof(*o) + n * sizeof(uint64_t));
    if (!o)
        return BR_ENOMEM;
    *o = (op){.kind = OP_READ, .read = done, .arg = arg, .what = what, .nids = n};
    o->seqs = (uint64_t *)(void *)o->data;
    memcpy(o->seqs, seqs, n * sizeof(uint64_t));
    return submit(s, o);
}

static int pg_read_schedules(gw_jobs_store *self, gw_jobs_store_schedules_fn done, void *arg)
{
    pg_store *s = (pg_store *)self;
    if (s->closed)
        return BR_ECLOSED;
    if (!done)
        return BR_EINVAL;
    op *o = calloc(1, sizeof(*o));
    if (!o)
        return BR_ENOMEM;
    *o = (op){.kind = OP_SCHEDULES, .schedules = done, .arg = arg};
    return submit(s, o);
}

/* Runs a query on the loop thread (load only, before the writer writes) and calls
 * each() for every row, streamed one row at a time.  0 or BR_EIO (logged). */
static int select_each(pg_store *s, const char *sql, const params *p,
                       void (*each)(const PGresult *, void *), void *arg)
{
    if (PQsendQueryParams(s->conn, sql, p ? p->n : 0, NULL, p ? p->values : NULL,
                          p ? p->lengths : NULL, p ? p->formats : NULL, 1) != 1 ||
        PQsetSingleRowMode(s->conn) != 1) {
        gw_log(GW_LOG_ERROR, "jobs", "postgres: load failed: %s", PQerrorMessage(s->conn));
        return BR_EIO;
    }
    int rc = 0;
    PGresult *r;
    while ((r = PQgetResult(s->conn)) != NULL) {
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_SINGLE_TUPLE && rc == 0)
            each(r, arg);
        else if (st != PGRES_TUPLES_OK && st != PGRES_SINGLE_TUPLE && rc == 0) {
            gw_log(GW_LOG_ERROR, "jobs", "postgres: load failed: %s", PQresultErrorMessage(r));
            rc = BR_EIO;
        }
        PQclear(r);
    }
    return rc;
}

typedef struct load_ctx {
    void (*row)(const gw_job_row *, void *);        /* the caller's job callback */
    void (*task)(br_str, bool, void *);             /* its task callback */
    void (*sched)(const gw_schedule_row *, void *); /* or its schedule callback */
    void *arg;                                      /* their argument */
} load_ctx;

static void each_task(const PGresult *r, void *arg)
{
    load_ctx *c = arg;
    c->task(value_str(r, 0, 0), value_int(r, 0, 1) != 0, c->arg);
}

/* Row t of a result with JOB_COLUMNS as a job row; decimal holds an old job's id. */
static void job_at(const PGresult *r, int t, gw_job_row *row, char *decimal, size_t cap)
{
    uint64_t seq = (uint64_t)value_int(r, t, 0);
    br_str id = value_str(r, t, 10);
    if (id.len == 0) { /* not written by this backend: the number is the id */
        int n = snprintf(decimal, cap, "%" PRIu64, seq);
        id = (br_str){decimal, (uint32_t)n};
    }
    *row = (gw_job_row){
        .seq = seq,
        .id = id,
        .task = value_str(r, t, 1),
        .payload_len = (uint32_t)value_int(r, t, 2),
        .idem_key = value_str(r, t, 3),
        .status = (uint8_t)value_int(r, t, 4),
        .attempts = (uint32_t)value_int(r, t, 5),
        .run_at_ms = value_int(r, t, 6),
        .updated_ms = value_int(r, t, 7),
        .result = value_str(r, t, 8),
        .error = value_str(r, t, 9),
        .identity = value_str(r, t, 11),
        .links = value_str(r, t, 12),
    };
}

static void each_job(const PGresult *r, void *arg)
{
    load_ctx *c = arg;
    char decimal[24];
    gw_job_row row;
    job_at(r, 0, &row, decimal, sizeof(decimal));
    c->row(&row, c->arg);
}

static int pg_load(gw_jobs_store *self, void (*row)(const gw_job_row *, void *),
                   void (*task)(br_str, bool, void *), void *arg)
{
    pg_store *s = (pg_store *)self;
    load_ctx c = {.row = row, .task = task, .arg = arg};
    int rc = select_each(s, "SELECT name, public FROM barista_job_tasks", NULL, each_task, &c);
    /* Payloads stay in the database: the queue reads them back when their job is due.
     * The jobs of other gateways are theirs (adopted when they die). */
    params p = {.n = 0};
    p_int(&p, s->me);
    if (rc == 0)
        rc = select_each(s, "SELECT" JOB_COLUMNS " FROM barista_jobs WHERE owner = $1 ORDER BY id",
                         &p, each_job, &c);
    return rc;
}

static gw_schedule_row schedule_at(const PGresult *r, int t)
{
    return (gw_schedule_row){
        .id = value_str(r, t, 0),
        .task = value_str(r, t, 1),
        .payload = value_str(r, t, 2),
        .cron = value_str(r, t, 3),
        .interval_ms = (uint64_t)value_int(r, t, 4),
        .last_tick_ms = value_int(r, t, 5),
        .catch_up = (uint32_t)value_int(r, t, 6),
        .identity = value_str(r, t, 7),
    };
}

static void each_schedule(const PGresult *r, void *arg)
{
    load_ctx *c = arg;
    gw_schedule_row row = schedule_at(r, 0);
    c->sched(&row, c->arg);
}

static int pg_load_schedules(gw_jobs_store *self, void (*row)(const gw_schedule_row *, void *),
                             void *arg)
{
    load_ctx c = {.sched = row, .arg = arg};
    return select_each((pg_store *)self,
                       "SELECT" SCHEDULE_COLUMNS " FROM barista_job_schedules ORDER BY id", NULL,
                       each_schedule, &c);
}

static void stop_writer(pg_store *s)
{
    uv_mutex_lock(&s->mu);
    s->stopping = true;
    uv_cond_signal(&s->cv);
    uv_mutex_unlock(&s->mu);
    uv_thread_join(&s->thread);
    s->thread_started = false;
}

static void on_async_closed(uv_handle_t *h)
{
    pg_store *s = h->data;
    if (s->on_closed)
        s->on_closed(s->closed_arg);
}

static void pg_close(gw_jobs_store *self, void (*closed)(void *), void *arg)
{
    pg_store *s = (pg_store *)self;
    if (s->closed)
        return;
    s->closed = true;
    s->on_closed = closed;
    s->closed_arg = arg;
    /* The writer sends what is queued (one last commit) and exits; waiting for it here
     * blocks the loop at shutdown only.  Then the lease ends now: another gateway (or
     * this one's next start) adopts the jobs left at its next beat. */
    stop_writer(s);
    params p = {.n = 0};
    p_int(&p, s->me);
    PGresult *r = PQexecParams(s->conn,
                               "UPDATE barista_gateways SET lease_until = clock_timestamp() -"
                               " interval '1 second' WHERE id = $1",
                               p.n, NULL, p.values, p.lengths, p.formats, 1);
    PQclear(r); /* at worst the lease runs out by itself */
    run_done(s);
    uv_close((uv_handle_t *)&s->async, on_async_closed);
}

static void pg_destroy(gw_jobs_store *self)
{
    pg_store *s = (pg_store *)self;
    if (s->thread_started)
        stop_writer(s); /* destroyed without close (a failed start) */
    op_fifo lists[2] = {s->pending, s->done};
    for (int i = 0; i < 2; i++)
        for (op *o = lists[i].head, *next; o; o = next) {
            next = o->next;
            op_free(o);
        }
    PQfinish(s->conn);
    uv_cond_destroy(&s->cv);
    uv_mutex_destroy(&s->mu);
    free(s);
}

static int pg_watch(gw_jobs_store *self, void (*row)(const gw_job_row *, void *),
                    void (*adopted)(void *, size_t), void (*requested)(void *, uint64_t, unsigned),
                    void *arg)
{
    pg_store *s = (pg_store *)self;
    uv_mutex_lock(&s->mu);
    s->adopt_row = row;
    s->adopted = adopted;
    s->requested = requested;
    s->adopt_arg = arg;
    s->watching = true;
    s->beat_due = 0; /* at once: a previous life's jobs are waiting */
    uv_cond_signal(&s->cv);
    uv_mutex_unlock(&s->mu);
    return 0;
}

/* Runs sql with this gateway's id and, when lease, its lease as parameters.  Its
 * result (the caller clears it). */
static PGresult *exec_mine(pg_store *s, const char *sql, bool lease)
{
    params p = {.n = 0};
    p_int(&p, s->me);
    if (lease)
        p_int(&p, s->lease_ms);
    return PQexecParams(s->conn, sql, p.n, NULL, p.values, p.lengths, p.formats, 1);
}

/* Takes a gateway id, the jobs of dead gateways and unowned ones, then registers (its
 * tag, the largest job key so far), in one transaction.  0 or BR_EIO (logged). */
static int register_gateway(pg_store *s)
{
    if (exec_simple(s->conn, "BEGIN; SELECT pg_advisory_xact_lock(4242004)", "registering") != 0)
        return BR_EIO;
    PGresult *r = PQexecParams(s->conn, "SELECT nextval('barista_gateway_ids')", 0, NULL, NULL,
                               NULL, NULL, 1);
    bool ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
    s->me = ok ? value_int(r, 0, 0) : 0;
    PQclear(r);
    if (ok) {
        r = exec_mine(s, claim_sql, false);
        ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        PQclear(r);
    }
    if (ok) {
        r = exec_mine(s, register_sql, true);
        ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
        if (ok) {
            s->base.seq_stride = JOBS_PG_TAGS;
            s->base.seq_tag = (uint32_t)value_int(r, 0, 0);
            s->base.seq_floor = (uint64_t)value_int(r, 0, 1);
        } else if (PQresultStatus(r) == PGRES_TUPLES_OK) {
            gw_log(GW_LOG_ERROR, "jobs", "postgres: %u gateways share this job queue already",
                   JOBS_PG_TAGS);
        }
        PQclear(r);
    }
    if (!ok)
        gw_log(GW_LOG_ERROR, "jobs", "postgres: registering the gateway failed: %s",
               PQerrorMessage(s->conn));
    if (exec_simple(s->conn, ok ? "COMMIT" : "ROLLBACK", "registering") != 0)
        return BR_EIO;
    if (ok)
        gw_log(GW_LOG_INFO, "jobs", "postgres: gateway %" PRId64 " (tag %u) joined the queue",
               s->me, s->base.seq_tag);
    return ok ? 0 : BR_EIO;
}

static void on_failed_closed(uv_handle_t *h)
{
    pg_destroy(h->data);
}

static const gw_jobs_store_ops pg_ops = {
    .load = pg_load,
    .insert = pg_insert,
    .insert_many = pg_insert_many,
    .update = pg_update,
    .del = pg_del,
    .put_task = pg_put_task,
    .del_task = pg_del_task,
    .read = pg_read,
    .put_schedule = pg_put_schedule,
    .del_schedule = pg_del_schedule,
    .load_schedules = pg_load_schedules,
    .read_schedules = pg_read_schedules,
    .close = pg_close,
    .destroy = pg_destroy,
    .watch = pg_watch,
    .request = pg_request,
};

gw_jobs_store *gw__jobs_pg_open(uv_loop_t *loop, const char *url, uint32_t lease_ms)
{
    char why[BR__DL_ERROR_MAX];
    if (br__dl_pq_load(why, sizeof(why)) != 0) { /* libpq is mapped from here on */
        gw_log(GW_LOG_ERROR, "jobs", "postgres: %s", why);
        return NULL;
    }
    pg_store *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->base.ops = &pg_ops;
    s->loop = loop;
    s->lease_ms = lease_ms;
    uv_mutex_init(&s->mu);
    uv_cond_init(&s->cv);
    s->conn = PQconnectdb(url); /* PQreset reconnects with the same parameters */
    if (PQstatus(s->conn) != CONNECTION_OK) {
        gw_log(GW_LOG_ERROR, "jobs", "postgres: cannot connect: %s",
               s->conn ? PQerrorMessage(s->conn) : "out of memory");
        goto fail;
    }
    if (exec_simple(s->conn, schema_sql, "creating the tables") != 0 || register_gateway(s) != 0 ||
        ensure_session(s) != 0)
        goto fail;
    if (uv_async_init(loop, &s->async, on_async) != 0) {
        gw_log(GW_LOG_ERROR, "jobs", "uv_async_init failed");
        goto fail;
    }
    s->async.data = s;
    int rc = uv_thread_create(&s->thread, writer_main, s);
    if (rc != 0) {
        gw_log(GW_LOG_ERROR, "jobs", "uv_thread_create failed: %s", uv_strerror(rc));
        uv_close((uv_handle_t *)&s->async, on_failed_closed); /* freed on the next turn */
        return NULL;
    }
    s->thread_started = true;
    return &s->base;
fail:
    pg_destroy(&s->base);
    return NULL;
}
