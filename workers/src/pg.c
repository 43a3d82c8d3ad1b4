/*
 * pg.c - the PostgreSQL pool (barista/pg.h): operations waiting for a connection,
 * queries running on one, transactions holding one, and connections going back to
 * the pool only when clean.  pg_conn.c moves the bytes; pg_result.c reads answers.
 *
 * Callbacks into handlers run only from loop callbacks of our own (a socket's poll, the
 * deadline timer), never from inside a call a handler made: a failure found while a
 * handler calls us (no connection can be had, a send fails) is turned into a due that
 * fires on the next loop iteration.
 */
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg_int.h"

typedef enum pg_op_kind {
    OP_QUERY,   /* br_pg_query */
    OP_EXEC,    /* br_pg_exec: no request */
    OP_BEGIN,   /* br_pg_begin */
    OP_TXQ,     /* br_pg_tx_query */
    OP_COMMIT,  /* br_pg_commit */
    OP_ROLLBACK /* br_pg_rollback */
} pg_op_kind;

/* One operation: a statement to run, and whom to tell. */
struct pg_op {
    br__op op;            /* in the request's operations (all kinds but EXEC) */
    br__dbc dbc;          /* hears a broker cancel */
    br__due due;          /* its deadline, or a failure to report on the next turn */
    br_pg_pool *pool;     /* the pool */
    br_req *req;          /* the request, or NULL (EXEC) */
    br_pg_tx *tx;         /* TXQ, COMMIT, ROLLBACK: the transaction */
    pg_conn *conn;        /* the connection running it, or NULL */
    pg_op *wprev, *wnext; /* in the pool's waiters */
    bool waiting;         /* in the pool's waiters */
    bool retried;         /* it was moved once to another connection */
    pg_op_kind kind;      /* which call made it */
    br_pg_isolation iso;  /* BEGIN: the isolation level */
    union {
        br_pg_fn q;      /* QUERY, TXQ, COMMIT, ROLLBACK */
        br_pg_exec_fn x; /* EXEC */
        br_pg_tx_fn t;   /* BEGIN */
    } cb;
    void *arg;                    /* the callback's argument */
    uint32_t budget_ms;           /* its time, for messages */
    uint64_t deadline;            /* uv_now() at which it fails with 504 */
    uint64_t acquire_by;          /* uv_now() by which it must have a connection (503) */
    uint16_t fail_status;         /* a failure reported on the next turn: status ... */
    char fail_why[PG_DETAIL_MAX]; /* ... and detail */
    int nparams;                  /* entries in the arrays below */
    const char *sql;              /* the statement (copied, after the arrays) */
    const char **values;          /* parameter texts or bytes; NULL for SQL NULL */
    Oid *types;                   /* parameter type OIDs; 0: inferred */
    int *lengths;                 /* byte lengths of binary parameters */
    int *formats;                 /* 1 for binary (bytea), 0 for text */
};

struct br_pg_tx {
    br__op op;                    /* in the request's operations: rolled back at its end */
    br_pg_pool *pool;             /* the pool */
    br_req *req;                  /* the request */
    pg_conn *conn;                /* its connection; NULL once lost */
    pg_op *running;               /* the statement running, or NULL */
    uint16_t lost_status;         /* why the connection was lost (503, 504, 499) ... */
    char lost_why[PG_DETAIL_MAX]; /* ... in words */
};

static void pool_submit(br_pg_pool *p, pg_op *op);
static void conn_settle(pg_conn *c);
static void op_complete(pg_op *op, PGresult *r, uint16_t status, const char *why);
static void tx_abort(br__op *o);

/* A cancel request for the query a connection runs, on the thread pool (PQcancel
 * connects to the server and waits for it: it blocks). */
typedef struct pg_cancel_job {
    pg_conn *conn;    /* first member: conn_closing clears it through c->cancel */
    uv_work_t work;   /* the libuv job */
    PGcancel *cancel; /* libpq's cancel handle, independent of the connection */
    int ok;           /* what PQcancel returned */
    char err[256];    /* its message */
} pg_cancel_job;

/* ---------------------------------------------------------------------------------- */
/* Connection states and the pool's lists.                                            */

static void set_state(pg_conn *c, pg_conn_state s)
{
    br_pg_pool *p = c->pool;
    bool pooled = c->owner == NULL;
    if (pooled) {
        if (c->state == PG_RESOLVING || c->state == PG_CONNECTING)
            p->nconnecting--;
        if (c->state == PG_DRAINING)
            p->ndraining--;
        if (s == PG_DRAINING)
            p->ndraining++;
    }
    c->state = s;
}

static void idle_remove(pg_conn *c)
{
    br_pg_pool *p = c->pool;
    if (c->iprev)
        c->iprev->inext = c->inext;
    else
        p->idle = c->inext;
    if (c->inext)
        c->inext->iprev = c->iprev;
    c->iprev = c->inext = NULL;
    p->nidle--;
}

static void conn_closing(pg_conn *c)
{
    br_pg_pool *p = c->pool;
    if (c->state == PG_IDLE)
        idle_remove(c);
    if (c->state == PG_RESOLVING || c->state == PG_CONNECTING)
        p->nconnecting--;
    if (c->state == PG_DRAINING)
        p->ndraining--;
    if (c->prev)
        c->prev->next = c->next;
    else
        p->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    p->nconns--;
    if (c->cancel)
        c->cancel->conn = NULL; /* the job ends on its own, and lets go */
    c->cancel = NULL;
    if (c->tx) {
        c->tx->conn = NULL;
        if (!c->tx->lost_status) {
            c->tx->lost_status = 503;
            snprintf(c->tx->lost_why, sizeof(c->tx->lost_why),
                     "database connection lost; the transaction was rolled back");
        }
        c->tx = NULL;
    }
    if (c->op) {
        pg_op *op = c->op;
        c->op = NULL;
        op->conn = NULL;
        op_complete(op, NULL, 503, "database connection closed");
    }
}

/* Opens one more connection when operations wait for one and the pool may. */
static void pool_kick(br_pg_pool *p);

/* ---------------------------------------------------------------------------------- */
/* Operations: completing, failing later, abandoning.                                 */

static void op_free(pg_op *op)
{
    free(op);
}

static void waiter_remove(pg_op *op)
{
    br_pg_pool *p = op->pool;
    if (!op->waiting)
        return;
    if (op->wprev)
        op->wprev->wnext = op->wnext;
    else
        p->wait_head = op->wnext;
    if (op->wnext)
        op->wnext->wprev = op->wprev;
    else
        p->wait_tail = op->wprev;
    op->wprev = op->wnext = NULL;
    op->waiting = false;
    p->nwaiting--;
}

/* Calls a request-bound callback under the stall watchdog. */
static void call_q(pg_op *op, br_pg_tx *tx, const br_pg_result *res)
{
    br_req *req = op->req;
    br__watch_enter(req->worker, req->spec);
    if (op->kind == OP_BEGIN)
        op->cb.t(req, tx, res, op->arg);
    else
        op->cb.q(req, res, op->arg);
    br__watch_leave(req->worker);
}

/* The result a request keeps until it ends: the answer is freed by the abort of an
 * operation linked to the request. */
typedef struct pg_res_hold {
    br__op op;        /* in the request's operations: frees pg at its end */
    pg_res_impl impl; /* what res.impl points to */
    br_pg_result res; /* handed to the callback */
} pg_res_hold;

static void hold_abort(br__op *o)
{
    pg_res_hold *h = (pg_res_hold *)o;
    PQclear(h->impl.pg);
    h->impl.pg = NULL;
}

/* Ends op with the answer r (owned from here on; NULL for a failure of our own with
 * status and why).  Unlinks it from everything, builds the result, calls back and
 * frees it. */
static void op_complete(pg_op *op, PGresult *r, uint16_t status, const char *why)
{
    br_pg_pool *p = op->pool;
    waiter_remove(op);
    br__dues_del(&p->dues, &op->due);
    br__dbc_forget(&op->dbc);
    if (op->req)
        br__op_unlink(op->req, &op->op);
    char why_buf[PG_DETAIL_MAX];
    br_pg_result res;
    memset(&res, 0, sizeof(res));
    if (r) {
        pg__result_fill(&res, r, op->kind == OP_COMMIT, why_buf);
    } else {
        res.status = status;
        res.detail = br_str_c(why);
    }
    /* Transactions: a BEGIN that worked makes one; COMMIT and ROLLBACK end theirs. */
    br_pg_tx *tx = NULL;
    if (op->kind == OP_BEGIN && res.status == 200 && !op->conn) {
        res.status = 503;
        res.detail = br_str_c("database connection lost");
    } else if (op->kind == OP_BEGIN && res.status == 200) {
        tx = calloc(1, sizeof(*tx));
        if (tx) {
            tx->pool = p;
            tx->req = op->req;
            tx->conn = op->conn;
            op->conn->tx = tx;
            br__op_link(op->req, &tx->op);
            tx->op.abort = tx_abort;
        } else {
            res.status = 500;
            res.detail = br_str_c("out of memory opening a transaction");
        }
    }
    if (op->tx) {
        op->tx->running = NULL;
        if (op->kind == OP_COMMIT || op->kind == OP_ROLLBACK) {
            br__op_unlink(op->req, &op->tx->op);
            free(op->tx);
            op->tx = NULL;
        }
    }
    /* The connection: back to its transaction, or settled into the pool. */
    pg_conn *c = op->conn;
    op->conn = NULL;
    if (c && !c->closed) {
        c->op = NULL;
        if (tx || (op->tx && c->tx)) {
            set_state(c, PG_HELD);
        } else {
            if (c->tx) {
                c->tx = NULL; /* the transaction ended with this statement */
            }
            conn_settle(c);
        }
    }
    if (op->kind == OP_EXEC) {
        pg_res_impl impl = {r, NULL, NULL};
        res.impl = &impl;
        op->cb.x(&res, op->arg);
        pg__res_impl_free_blocks(&impl);
        if (r)
            PQclear(r);
        op_free(op);
        return;
    }
    br_req *req = op->req;
    pg_res_hold *h = br_req_alloc(req, sizeof(*h));
    char *d = res.detail.len ? br_req_strdup(req, res.detail) : NULL;
    if (!h || (res.detail.len && !d)) {
        if (r)
            PQclear(r);
        memset(&res, 0, sizeof(res));
        res.status = 500;
        res.detail = br_str_c("out of memory keeping a query's result");
        static const pg_res_impl none = {NULL, NULL, NULL};
        res.impl = &none;
        call_q(op, tx, &res);
        op_free(op);
        return;
    }
    if (d)
        res.detail = br_str_c(d);
    h->impl.pg = r;
    h->impl.req = req;
    h->impl.blocks = NULL;
    h->res = res;
    h->res.impl = &h->impl;
    if (r) {
        h->op.abort = hold_abort;
        br__op_link(req, &h->op);
    }
    call_q(op, tx, &h->res);
    op_free(op);
}

/* A failure found while a handler calls us: reported on the next loop iteration. */
static void op_failed_due(br__due *d)
{
    pg_op *op = (pg_op *)((char *)d - offsetof(pg_op, due));
    op_complete(op, NULL, op->fail_status, op->fail_why);
}

static void op_fail_soon(pg_op *op, uint16_t status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void op_fail_soon(pg_op *op, uint16_t status, const char *fmt, ...)
{
    br_pg_pool *p = op->pool;
    waiter_remove(op);
    br__dues_del(&p->dues, &op->due);
    op->fail_status = status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(op->fail_why, sizeof(op->fail_why), fmt, ap);
    va_end(ap);
    br__dues_add(&p->dues, &op->due, 0, op_failed_due);
}

static void cancel_run(uv_work_t *w)
{
    pg_cancel_job *j = w->data;
    j->ok = PQcancel(j->cancel, j->err, sizeof(j->err));
}

static void cancel_done(uv_work_t *w, int status)
{
    (void)status;
    pg_cancel_job *j = w->data;
    PQfreeCancel(j->cancel);
    pg_conn *c = j->conn;
    if (c) {
        c->cancel = NULL;
        if (!j->ok)
            br__log("pg: cancel request failed: %s", j->err);
        c->io++;
        if (c->state == PG_DRAINING)
            conn_settle(c);
        c->io--;
        if (c->closed && !c->io)
            free(c);
    }
    free(j);
}

static void conn_drain(pg_conn *c);

/* The connection's query was abandoned: cancel it on the server, and drain. */
static void conn_abandon(pg_conn *c)
{
    br_pg_pool *p = c->pool;
    c->op = NULL;
    if (c->tx) {
        c->tx->conn = NULL;
        c->tx = NULL;
    }
    conn_drain(c);
    if (c->cancel || !c->pg)
        return;
    pg_cancel_job *j = calloc(1, sizeof(*j));
    if (!j)
        return; /* the drain deadline closes it instead */
    j->cancel = PQgetCancel(c->pg);
    j->conn = c;
    j->work.data = j;
    if (!j->cancel || uv_queue_work(p->loop, &j->work, cancel_run, cancel_done) != 0) {
        if (j->cancel)
            PQfreeCancel(j->cancel);
        free(j);
        return;
    }
    c->cancel = (struct pg_cancel_job *)j;
    p->cancels++;
}

/* Detaches op from wherever it is, and (when it was running) cancels its query. */
static void op_detach(pg_op *op)
{
    waiter_remove(op);
    br__dues_del(&op->pool->dues, &op->due);
    br__dbc_forget(&op->dbc);
    pg_conn *c = op->conn;
    op->conn = NULL;
    if (op->tx) {
        op->tx->running = NULL;
        if (!op->tx->lost_status) {
            op->tx->lost_status = 409;
            snprintf(op->tx->lost_why, sizeof(op->tx->lost_why),
                     "the transaction was rolled back: a statement did not finish");
        }
    }
    if (c && c->op == op)
        conn_abandon(c);
}

/* The request ended first: no callback. */
static void op_abort(br__op *o)
{
    pg_op *op = (pg_op *)o;
    op_detach(op);
    op_free(op); /* a transaction's own abort runs too, from the request's list */
}

/* The deadline (or the acquire timeout) passed. */
static void op_expired(br__due *d)
{
    pg_op *op = (pg_op *)((char *)d - offsetof(pg_op, due));
    br_pg_pool *p = op->pool;
    uint64_t now = uv_now(p->loop);
    char why[PG_DETAIL_MAX];
    uint16_t status = 504;
    if (op->waiting) {
        if (now < op->deadline) {
            status = 503;
            snprintf(why, sizeof(why), "no database connection free within %u ms (all %u in use)",
                     p->opt.acquire_timeout_ms, p->opt.size);
        } else {
            snprintf(why, sizeof(why),
                     "no database connection free before the deadline (%u ms; all %u in use)",
                     op->budget_ms, p->opt.size);
        }
    } else {
        snprintf(why, sizeof(why), "query did not finish within %u ms; cancelled on the server",
                 op->budget_ms);
    }
    op_detach(op);
    op_complete(op, NULL, status, why);
}

/* A broker cancel: the operation stops, and reports 499 on the next turn (never from
 * inside the cancel, which may not be followed by handler code). */
static void op_cancelled(br__dbc *dbc)
{
    pg_op *op = (pg_op *)((char *)dbc - offsetof(pg_op, dbc));
    op_detach(op);
    op_fail_soon(op, 499, "request cancelled");
}

/* ---------------------------------------------------------------------------------- */
/* Running an operation on a connection.                                              */

static const char *const begin_sql[] = {
    [BR_PG_READ_COMMITTED] = "BEGIN",
    [BR_PG_REPEATABLE_READ] = "BEGIN ISOLATION LEVEL REPEATABLE READ",
    [BR_PG_SERIALIZABLE] = "BEGIN ISOLATION LEVEL SERIALIZABLE",
};

static void op_run(pg_op *op, pg_conn *c)
{
    br_pg_pool *p = op->pool;
    op->conn = c;
    c->op = op;
    set_state(c, PG_BUSY);
    br__dues_del(&p->dues, &op->due);
    br__dues_add(&p->dues, &op->due, op->deadline, op_expired);
    int ok;
    switch (op->kind) {
    case OP_BEGIN:
        ok = PQsendQuery(c->pg, begin_sql[op->iso]);
        break;
    case OP_COMMIT:
        ok = PQsendQuery(c->pg, "COMMIT");
        break;
    case OP_ROLLBACK:
        ok = PQsendQuery(c->pg, "ROLLBACK");
        break;
    default:
        ok = PQsendQueryParams(c->pg, op->sql, op->nparams, op->types, op->values, op->lengths,
                               op->formats, 0);
        break;
    }
    if (ok && pg__conn_flush(c) == 0)
        return;
    char msg[PG_DETAIL_MAX];
    pg__conn_error(c, msg, sizeof(msg));
    c->op = NULL;
    op->conn = NULL;
    pg__conn_close(c);
    if (!op->retried && !op->tx) {
        /* Nothing reached the server: another connection may do. */
        op->retried = true;
        pool_submit(p, op);
        return;
    }
    op_fail_soon(op, 503, "database connection lost: %s", msg);
}

/* ---------------------------------------------------------------------------------- */
/* Connections of the pool.                                                            */

static void conn_idle_expired(br__due *d)
{
    pg_conn *c = (pg_conn *)((char *)d - offsetof(pg_conn, due));
    pg__conn_close(c);
}

static void conn_drain_expired(br__due *d)
{
    pg_conn *c = (pg_conn *)((char *)d - offsetof(pg_conn, due));
    br__log("pg: a cancelled query did not finish within %d ms: closing its connection",
            BR_PG_DRAIN_MS);
    pg__conn_close(c);
}

/* The connection is finishing something nobody waits for; BR_PG_DRAIN_MS at most. */
static void conn_drain(pg_conn *c)
{
    if (c->state == PG_DRAINING)
        return;
    br_pg_pool *p = c->pool;
    set_state(c, PG_DRAINING);
    br__dues_del(&p->dues, &c->due);
    br__dues_add(&p->dues, &c->due, uv_now(p->loop) + BR_PG_DRAIN_MS, conn_drain_expired);
}

/* A clean connection: to the first waiter, or idle. */
static void conn_to_pool(pg_conn *c)
{
    br_pg_pool *p = c->pool;
    br__dues_del(&p->dues, &c->due);
    if (p->wait_head && !p->destroying) {
        pg_op *op = p->wait_head;
        waiter_remove(op);
        op_run(op, c);
        return;
    }
    set_state(c, PG_IDLE);
    c->iprev = NULL;
    c->inext = p->idle;
    if (p->idle)
        p->idle->iprev = c;
    p->idle = c;
    p->nidle++;
    if (p->opt.idle_timeout_ms != UINT32_MAX)
        br__dues_add(&p->dues, &c->due, uv_now(p->loop) + p->opt.idle_timeout_ms,
                     conn_idle_expired);
}

/* A connection that no operation or transaction holds: into the pool once clean (no
 * answer pending, no cancel in flight, no transaction open). */
static void conn_settle(pg_conn *c)
{
    if (c->closed)
        return;
    if (PQstatus(c->pg) != CONNECTION_OK) {
        pg__conn_close(c);
        return;
    }
    if (c->result || PQisBusy(c->pg))
        conn_drain(c);
    if (c->state == PG_DRAINING && (c->cancel || PQisBusy(c->pg)))
        return;
    switch (PQtransactionStatus(c->pg)) {
    case PQTRANS_IDLE:
        conn_to_pool(c);
        return;
    case PQTRANS_INTRANS:
    case PQTRANS_INERROR:
        if (PQsendQuery(c->pg, "ROLLBACK") && pg__conn_flush(c) == 0) {
            conn_drain(c);
            return;
        }
        pg__conn_close(c);
        return;
    case PQTRANS_ACTIVE:
        conn_drain(c); /* its answer is still coming */
        return;
    default:
        pg__conn_close(c);
        return;
    }
}

/* Every answer of the running statement arrived (PQgetResult said NULL). */
static void conn_answered(pg_conn *c)
{
    PGresult *r = c->result;
    c->result = NULL;
    if (c->copy_refused) {
        c->copy_refused = false;
        if (r)
            PQclear(r);
        r = NULL;
    }
    pg_op *op = c->op;
    if (!op) {
        if (r)
            PQclear(r);
        conn_settle(c);
        return;
    }
    if (!r) {
        op_complete(op, NULL, 500, "COPY is not supported: use INSERT or SELECT");
        return;
    }
    if (PQstatus(c->pg) != CONNECTION_OK) {
        /* The statement's answer came with the end of the connection (a terminated
         * backend sends its reason first): report it, and close. */
        c->op = NULL;
        op->conn = NULL;
        pg__conn_close(c);
    } else if (PQresultMemorySize(r) > BR_PG_MAX_RESULT_BYTES) {
        PQclear(r);
        char why[PG_DETAIL_MAX];
        snprintf(why, sizeof(why), "query result is larger than %u bytes",
                 (unsigned)BR_PG_MAX_RESULT_BYTES);
        op_complete(op, NULL, 502, why);
        return;
    }
    op_complete(op, r, 0, NULL);
}

/* The connection is gone (EOF, reset): its operation fails with 503. */
static void conn_lost(pg_conn *c)
{
    char msg[PG_DETAIL_MAX], why[PG_DETAIL_MAX + 32];
    pg__conn_error(c, msg, sizeof(msg));
    pg_op *op = c->op;
    PGresult *r = c->result;
    c->result = NULL;
    c->op = NULL;
    if (op)
        op->conn = NULL;
    pg__conn_close(c);
    if (!op) {
        if (r)
            PQclear(r);
        return;
    }
    if (r && PQresultStatus(r) == PGRES_FATAL_ERROR) {
        op_complete(op, r, 0, NULL); /* the server said why (57P01 terminated: 503) */
        return;
    }
    if (r)
        PQclear(r);
    snprintf(why, sizeof(why), "database connection lost: %s", msg);
    op_complete(op, NULL, 503, why);
}

static void pool_readable(pg_conn *c)
{
    if (!PQconsumeInput(c->pg)) {
        conn_lost(c);
        return;
    }
    PGnotify *n;
    while ((n = PQnotifies(c->pg)))
        PQfreemem(n); /* only the listening connection listens */
    if (c->state == PG_IDLE || c->state == PG_HELD) {
        if (PQstatus(c->pg) != CONNECTION_OK)
            conn_lost(c);
        return;
    }
    while (!PQisBusy(c->pg)) {
        PGresult *r = PQgetResult(c->pg);
        if (!r) {
            conn_answered(c);
            return;
        }
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH) {
            PQclear(r);
            c->copy_refused = true;
            if (st == PGRES_COPY_IN) {
                if (PQputCopyEnd(c->pg, "COPY FROM STDIN is not supported") < 0 ||
                    pg__conn_flush(c) < 0) {
                    conn_lost(c);
                    return;
                }
                continue;
            }
            if (st == PGRES_COPY_BOTH) {
                conn_lost(c);
                return;
            }
            char *buf;
            int got;
            while ((got = PQgetCopyData(c->pg, &buf, 1)) > 0)
                PQfreemem(buf);
            if (got == 0)
                return; /* more later */
            continue;
        }
        /* One statement, one answer; keep the first error if several came. */
        if (c->result && PQresultStatus(c->result) == PGRES_FATAL_ERROR) {
            PQclear(r);
        } else {
            if (c->result)
                PQclear(c->result);
            c->result = r;
        }
    }
}

static void pool_writable(pg_conn *c)
{
    if (pg__conn_flush(c) < 0)
        conn_lost(c);
}

static void pool_ready(pg_conn *c)
{
    br_pg_pool *p = c->pool;
    if (p->down)
        br__log("pg: connected to the database again");
    p->failures = 0;
    p->down = false;
    p->connects++;
    conn_to_pool(c);
    pool_kick(p);
}

static void pool_failed(pg_conn *c, const char *why)
{
    br_pg_pool *p = c->pool;
    p->failures++;
    p->connect_fails++;
    uint32_t wait = br__backoff_ms(p->failures, p->opt.backoff_ms, p->opt.backoff_max_ms, &p->rng);
    p->retry_at = uv_now(p->loop) + wait;
    if (!p->down || p->failures <= 1 || strcmp(p->down_why, why) != 0)
        br__log("pg: cannot connect: %s (retrying in %u ms)", why, wait);
    p->down = true;
    snprintf(p->down_why, sizeof(p->down_why), "%s", why);
}

static void pool_closing(pg_conn *c)
{
    conn_closing(c);
    pool_kick(c->pool);
}

static const pg_conn_ops pool_conn_ops = {
    .ready = pool_ready,
    .failed = pool_failed,
    .readable = pool_readable,
    .writable = pool_writable,
    .closing = pool_closing,
};

static void pool_kick(br_pg_pool *p)
{
    if (p->destroying)
        return;
    uint64_t now = uv_now(p->loop);
    /* While the database is down, one connect at a time probes it. */
    while (p->nwaiting > p->nconnecting && p->nconns < p->opt.size && now >= p->retry_at &&
           !(p->down && p->nconnecting > 0)) {
        if (!pg__conn_open(p, &pool_conn_ops, NULL, true))
            break;
    }
    if (p->nconns > 0)
        return;
    /* Nothing is open or opening: what the waiters wait for is not coming. */
    while (p->wait_head) {
        pg_op *op = p->wait_head;
        op_fail_soon(op, 503, "database unavailable: %s",
                     p->down_why[0] ? p->down_why : "no connection");
    }
}

static void pool_submit(br_pg_pool *p, pg_op *op)
{
    if (p->destroying) {
        op_fail_soon(op, 503, "database pool closed");
        return;
    }
    if (p->idle) {
        pg_conn *c = p->idle;
        idle_remove(c);
        br__dues_del(&p->dues, &c->due);
        op_run(op, c);
        return;
    }
    if (p->nwaiting >= p->opt.max_waiters) {
        op_fail_soon(op, 503, "database pool exhausted: %u operations already waiting",
                     p->nwaiting);
        return;
    }
    op->waiting = true;
    op->wnext = NULL;
    op->wprev = p->wait_tail;
    if (p->wait_tail)
        p->wait_tail->wnext = op;
    else
        p->wait_head = op;
    p->wait_tail = op;
    p->nwaiting++;
    br__dues_del(&p->dues, &op->due);
    br__dues_add(&p->dues, &op->due, op->acquire_by < op->deadline ? op->acquire_by : op->deadline,
                 op_expired);
    pool_kick(p);
}

/* ---------------------------------------------------------------------------------- */
/* Making operations.                                                                  */

#define ALIGN8(n) (((n) + 7u) & ~(size_t)7u)
/* Room for an int64, a double or a bool as text. */
#define NUM_TEXT_MAX 32

static int op_new(br_pg_pool *p, pg_op_kind kind, const char *sql, const br_pg_value *params,
                  size_t n, pg_op **out)
{
    if (n > BR_PG_MAX_PARAMS)
        return BR_ELIMIT;
    if (n && !params)
        return BR_EINVAL;
    size_t sql_len = sql ? strlen(sql) : 0;
    size_t bytes = sql_len + 1;
    for (size_t i = 0; i < n; i++) {
        const br_pg_value *v = &params[i];
        switch (v->type) {
        case BR_PG_NULL:
            break;
        case BR_PG_BOOL:
        case BR_PG_INT:
        case BR_PG_FLOAT:
            bytes += NUM_TEXT_MAX;
            break;
        case BR_PG_TEXT:
            if (v->v.s.len && memchr(v->v.s.ptr, '\0', v->v.s.len))
                return BR_EINVAL; /* libpq sends text parameters NUL-terminated */
            bytes += (size_t)v->v.s.len + 1;
            break;
        case BR_PG_BYTES:
            bytes += v->v.s.len;
            break;
        default:
            return BR_EINVAL;
        }
        if (bytes > BR_PG_MAX_QUERY_BYTES)
            return BR_ELIMIT;
    }
    size_t head = ALIGN8(sizeof(pg_op));
    size_t arrays = n * (sizeof(char *) + sizeof(Oid) + 2 * sizeof(int));
    pg_op *op = calloc(1, head + arrays + bytes);
    if (!op)
        return BR_ENOMEM;
    char *at = (char *)op + head;
    op->values = (const char **)(void *)at;
    at += n * sizeof(char *);
    op->types = (Oid *)(void *)at;
    at += n * sizeof(Oid);
    op->lengths = (int *)(void *)at;
    at += n * sizeof(int);
    op->formats = (int *)(void *)at;
    at += n * sizeof(int);
    char *text = at;
    op->sql = text;
    if (sql_len)
        memcpy(text, sql, sql_len);
    text[sql_len] = '\0';
    text += sql_len + 1;
    for (size_t i = 0; i < n; i++) {
        const br_pg_value *v = &params[i];
        op->types[i] = v->oid;
        switch (v->type) {
        case BR_PG_NULL:
            op->values[i] = NULL;
            continue;
        case BR_PG_BOOL:
            snprintf(text, NUM_TEXT_MAX, "%s", v->v.b ? "t" : "f");
            if (!op->types[i])
                op->types[i] = 16; /* bool */
            break;
        case BR_PG_INT:
            snprintf(text, NUM_TEXT_MAX, "%lld", (long long)v->v.i);
            if (!op->types[i])
                op->types[i] = 20; /* int8 */
            break;
        case BR_PG_FLOAT:
            if (isnan(v->v.f))
                snprintf(text, NUM_TEXT_MAX, "NaN");
            else if (isinf(v->v.f))
                snprintf(text, NUM_TEXT_MAX, "%s", v->v.f > 0 ? "Infinity" : "-Infinity");
            else
                snprintf(text, NUM_TEXT_MAX, "%.17g", v->v.f);
            if (!op->types[i])
                op->types[i] = 701; /* float8 */
            break;
        case BR_PG_TEXT:
            if (v->v.s.len)
                memcpy(text, v->v.s.ptr, v->v.s.len);
            text[v->v.s.len] = '\0';
            op->values[i] = text;
            text += (size_t)v->v.s.len + 1;
            continue;
        case BR_PG_BYTES:
            if (v->v.s.len)
                memcpy(text, v->v.s.ptr, v->v.s.len);
            op->values[i] = text;
            op->lengths[i] = (int)v->v.s.len;
            op->formats[i] = 1;
            if (!op->types[i])
                op->types[i] = 17; /* bytea */
            text += v->v.s.len;
            continue;
        }
        op->values[i] = text;
        text += NUM_TEXT_MAX;
    }
    op->nparams = (int)n;
    op->pool = p;
    op->kind = kind;
    *out = op;
    return 0;
}

/* Sets op's deadline: budget ms from now, and the acquire timeout within it. */
static void op_arm(pg_op *op, uint32_t budget)
{
    br_pg_pool *p = op->pool;
    uint64_t now = uv_now(p->loop);
    op->budget_ms = budget;
    op->deadline = now + budget;
    uint32_t acq = p->opt.acquire_timeout_ms;
    op->acquire_by = acq && acq < budget ? now + acq : op->deadline;
}

static int req_usable(br_req *req)
{
    if (!req || req->on_thread || req->ended)
        return BR_EINVAL;
    if (br_req_cancelled(req))
        return BR_ECLOSED;
    return 0;
}

/* Makes a request's operation and arms it; the caller starts it. */
static int req_op(br_req *req, br_pg_pool *p, pg_op_kind kind, const char *sql,
                  const br_pg_value *params, size_t n, pg_op **out)
{
    int rc = req_usable(req);
    if (rc)
        return rc;
    uint32_t budget = br__req_budget(req, p->opt.query_timeout_ms);
    if (budget == 0)
        return BR_ECLOSED;
    pg_op *op;
    rc = op_new(p, kind, sql, params, n, &op);
    if (rc)
        return rc;
    op->req = req;
    op_arm(op, budget);
    op->op.abort = op_abort;
    br__op_link(req, &op->op);
    br__dbc_watch(req, &op->dbc, op_cancelled);
    *out = op;
    return 0;
}

int br_pg_query(br_req *req, br_pg_pool *pool, const char *sql, const br_pg_value *params,
                size_t nparams, br_pg_fn cb, void *arg)
{
    if (!pool || !sql || !cb)
        return BR_EINVAL;
    pg_op *op;
    int rc = req_op(req, pool, OP_QUERY, sql, params, nparams, &op);
    if (rc)
        return rc;
    op->cb.q = cb;
    op->arg = arg;
    pool_submit(pool, op);
    return 0;
}

int br_pg_exec(br_pg_pool *pool, const char *sql, const br_pg_value *params, size_t nparams,
               uint32_t timeout_ms, br_pg_exec_fn cb, void *arg)
{
    if (!pool || !sql || !cb)
        return BR_EINVAL;
    pg_op *op;
    int rc = op_new(pool, OP_EXEC, sql, params, nparams, &op);
    if (rc)
        return rc;
    op->cb.x = cb;
    op->arg = arg;
    op_arm(op, timeout_ms ? timeout_ms : pool->opt.exec_timeout_ms);
    pool_submit(pool, op);
    return 0;
}

/* ---------------------------------------------------------------------------------- */
/* Transactions.                                                                       */

int br_pg_begin(br_req *req, br_pg_pool *pool, br_pg_isolation iso, br_pg_tx_fn cb, void *arg)
{
    if (!pool || !cb || (unsigned)iso > BR_PG_SERIALIZABLE)
        return BR_EINVAL;
    pg_op *op;
    int rc = req_op(req, pool, OP_BEGIN, NULL, NULL, 0, &op);
    if (rc)
        return rc;
    op->iso = iso;
    op->cb.t = cb;
    op->arg = arg;
    pool_submit(pool, op);
    return 0;
}

/* A statement of tx: on its connection, or failed on the next turn when it is lost. */
static int tx_op(br_pg_tx *tx, pg_op_kind kind, const char *sql, const br_pg_value *params,
                 size_t n, br_pg_fn cb, void *arg)
{
    if (!tx || !cb || tx->running)
        return BR_EINVAL;
    pg_op *op;
    int rc = req_op(tx->req, tx->pool, kind, sql, params, n, &op);
    if (rc)
        return rc;
    op->cb.q = cb;
    op->arg = arg;
    op->tx = tx;
    tx->running = op;
    if (tx->conn && tx->conn->state == PG_HELD) {
        op_run(op, tx->conn);
    } else if (kind == OP_ROLLBACK) {
        op_fail_soon(op, 200, "%s", ""); /* rolled back already, with its connection */
    } else {
        op_fail_soon(op, tx->lost_status ? tx->lost_status : 503, "%s",
                     tx->lost_why[0] ? tx->lost_why : "database connection lost");
    }
    return 0;
}

int br_pg_tx_query(br_pg_tx *tx, const char *sql, const br_pg_value *params, size_t nparams,
                   br_pg_fn cb, void *arg)
{
    if (!sql)
        return BR_EINVAL;
    return tx_op(tx, OP_TXQ, sql, params, nparams, cb, arg);
}

int br_pg_commit(br_pg_tx *tx, br_pg_fn cb, void *arg)
{
    return tx_op(tx, OP_COMMIT, NULL, NULL, 0, cb, arg);
}

int br_pg_rollback(br_pg_tx *tx, br_pg_fn cb, void *arg)
{
    return tx_op(tx, OP_ROLLBACK, NULL, NULL, 0, cb, arg);
}

/* The request ended with the transaction open: roll it back, then reuse the
 * connection. */
static void tx_abort(br__op *o)
{
    br_pg_tx *tx = (br_pg_tx *)o;
    if (tx->running)
        tx->running->tx = NULL; /* its own abort follows; it must not touch tx */
    pg_conn *c = tx->conn;
    if (c) {
        c->tx = NULL;
        if (c->state == PG_HELD)
            conn_settle(c); /* sends ROLLBACK */
    }
    free(tx);
}

/* ---------------------------------------------------------------------------------- */
/* The pool.                                                                           */

static void free_conninfo(br_pg_pool *p)
{
    if (p->keywords)
        for (size_t i = 0; p->keywords[i]; i++) {
            free(p->keywords[i]);
            free(p->values[i]);
        }
    free(p->keywords);
    free(p->values);
    p->keywords = p->values = NULL;
}

/* Parses the conninfo into keyword/value arrays with a free slot for hostaddr, and
 * decides whether the host needs resolving first. */
static int parse_conninfo(br_pg_pool *p, const char *conninfo, char *why, size_t why_len)
{
    char *err = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo ? conninfo : "", &err);
    if (!opts) {
        if (why && why_len)
            snprintf(why, why_len, "bad PostgreSQL conninfo: %s", err ? err : "out of memory");
        int rc = err ? BR_EINVAL : BR_ENOMEM;
        PQfreemem(err);
        return rc;
    }
    size_t n = 0;
    for (PQconninfoOption *o = opts; o->keyword; o++)
        n++;
    /* + host (from PGHOST), fallback_application_name, hostaddr, the terminator */
    p->keywords = calloc(n + 4, sizeof(char *));
    p->values = calloc(n + 4, sizeof(char *));
    int rc = BR_ENOMEM;
    if (!p->keywords || !p->values)
        goto out;
    size_t k = 0;
    bool has_hostaddr = false, has_app = false;
    p->host_index = -1;
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (!o->val || !o->val[0])
            continue;
        if (strcmp(o->keyword, "host") == 0)
            p->host_index = (int)k;
        has_hostaddr |= strcmp(o->keyword, "hostaddr") == 0;
        has_app |= strcmp(o->keyword, "fallback_application_name") == 0;
        p->keywords[k] = strdup(o->keyword);
        p->values[k] = strdup(o->val);
        if (!p->keywords[k] || !p->values[k]) {
            k++;
            goto out;
        }
        k++;
    }
    const char *env_host = getenv("PGHOST");
    if (p->host_index < 0 && env_host && env_host[0]) {
        p->host_index = (int)k;
        p->keywords[k] = strdup("host");
        p->values[k] = strdup(env_host);
        if (!p->keywords[k++] || !p->values[k - 1])
            goto out;
    }
    if (!has_app) {
        p->keywords[k] = strdup("fallback_application_name");
        p->values[k] = strdup("barista-worker");
        if (!p->keywords[k++] || !p->values[k - 1])
            goto out;
    }
    p->hostaddr_index = (int)k;
    p->keywords[k] = strdup(has_hostaddr ? "hostaddr_unused" : "hostaddr");
    if (!p->keywords[k])
        goto out;
    k++;
    const char *host = p->host_index >= 0 ? p->values[p->host_index] : NULL;
    p->resolve = !has_hostaddr && host && host[0] != '/' && host[0] != '@' && !strchr(host, ',') &&
                 !br__host_is_numeric(host);
    rc = 0;
out:
    PQconninfoFree(opts);
    return rc;
}

int br_pg_pool_new(uv_loop_t *loop, const br_pg_options *o, br_pg_pool **out, char *why,
                   size_t why_len)
{
    if (why && why_len)
        why[0] = '\0';
    if (!loop || !o || !out)
        return BR_EINVAL;
    br_pg_pool *p = calloc(1, sizeof(*p));
    if (!p)
        return BR_ENOMEM;
    int rc = parse_conninfo(p, o->conninfo, why, why_len);
    if (rc) {
        free_conninfo(p);
        free(p);
        return rc;
    }
    p->loop = loop;
    p->opt = *o;
    p->opt.conninfo = NULL; /* parsed; not kept */
    if (!p->opt.size)
        p->opt.size = BR_PG_DEFAULT_SIZE;
    if (!p->opt.connect_timeout_ms)
        p->opt.connect_timeout_ms = BR_PG_DEFAULT_CONNECT_MS;
    if (!p->opt.idle_timeout_ms)
        p->opt.idle_timeout_ms = BR_PG_DEFAULT_IDLE_MS;
    if (!p->opt.max_waiters)
        p->opt.max_waiters = BR_PG_DEFAULT_MAX_WAITERS;
    if (!p->opt.exec_timeout_ms)
        p->opt.exec_timeout_ms = BR_PG_DEFAULT_EXEC_TIMEOUT_MS;
    if (!p->opt.backoff_ms)
        p->opt.backoff_ms = BR_PG_DEFAULT_BACKOFF_MS;
    if (!p->opt.backoff_max_ms)
        p->opt.backoff_max_ms = BR_PG_DEFAULT_BACKOFF_MAX_MS;
    if (p->opt.backoff_max_ms < p->opt.backoff_ms)
        p->opt.backoff_max_ms = p->opt.backoff_ms;
    p->rng = br__rng_seed();
    br__dues_init(loop, &p->dues);
    *out = p;
    return 0;
}

static void pool_freed(uv_handle_t *h)
{
    br_pg_pool *p = (br_pg_pool *)((char *)h - offsetof(br_pg_pool, dues.timer));
    free(p);
}

void br_pg_pool_destroy(br_pg_pool **self_p)
{
    br_pg_pool *p = self_p ? *self_p : NULL;
    if (!p)
        return;
    *self_p = NULL;
    p->destroying = true;
    pg__listener_destroy(p);
    while (p->wait_head)
        op_complete(p->wait_head, NULL, 503, "database pool closed");
    while (p->conns)
        pg__conn_close(p->conns); /* a running operation fails with 503 */
    /* What is left in the deadline list are failures waiting for the next turn. */
    while (p->dues.head) {
        br__due *d = p->dues.head;
        br__dues_del(&p->dues, d);
        d->fire(d);
    }
    free_conninfo(p);
    br__dues_close(&p->dues, pool_freed);
}

void br_pg_pool_stats(const br_pg_pool *p, br_pg_stats *s)
{
    memset(s, 0, sizeof(*s));
    s->size = p->opt.size;
    s->open = p->nconns;
    s->idle = p->nidle;
    s->draining = p->ndraining;
    s->waiting = p->nwaiting;
    s->down = p->down;
    s->connects = p->connects;
    s->connect_fails = p->connect_fails;
    s->cancels = p->cancels;
}
