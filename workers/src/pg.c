/*
 * pg.c - PostgreSQL operations (barista/pg.h): queries and transactions, their
 * deadlines and cancels, and handing their answers to handlers.  pg_pool.c keeps the
 * connections; pg_conn.c moves the bytes; pg_result.c reads answers.
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

static void tx_abort(br__op *o);

/* ---------------------------------------------------------------------------------- */
/* Operations: completing, failing later, abandoning.                                 */

static void op_free(pg_op *op)
{
    free(op);
}

/* Calls a request-bound callback under the stall watchdog. */
static void call_q(pg_op *op, br_pg_tx *tx, const br_pg_result *res)
{
    br_req *req = op->req;
    br_worker *w = req->worker; /* the callback may end the request */
    br__watch_enter(w, req->spec);
    if (op->kind == OP_BEGIN)
        op->cb.t(req, tx, res, op->arg);
    else
        op->cb.q(req, res, op->arg);
    br__watch_leave(w);
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
void pg__op_complete(pg_op *op, PGresult *r, uint16_t status, const char *why)
{
    br_pg_pool *p = op->pool;
    pg__waiter_remove(op);
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
            pg__conn_set_state(c, PG_HELD);
        } else {
            if (c->tx) {
                c->tx = NULL; /* the transaction ended with this statement */
            }
            pg__conn_settle(c);
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
    pg__op_complete(op, NULL, op->fail_status, op->fail_why);
}

void pg__op_fail_soon(pg_op *op, uint16_t status, const char *fmt, ...)
{
    br_pg_pool *p = op->pool;
    pg__waiter_remove(op);
    br__dues_del(&p->dues, &op->due);
    op->fail_status = status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(op->fail_why, sizeof(op->fail_why), fmt, ap);
    va_end(ap);
    br__dues_add(&p->dues, &op->due, 0, op_failed_due);
}

/* Detaches op from wherever it is, and (when it was running) cancels its query. */
static void op_detach(pg_op *op)
{
    pg__waiter_remove(op);
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
        pg__conn_abandon(c);
}

/* The request ended first: no callback. */
static void op_abort(br__op *o)
{
    pg_op *op = (pg_op *)o;
    op_detach(op);
    op_free(op); /* a transaction's own abort runs too, from the request's list */
}

/* The deadline (or the acquire timeout) passed. */
void pg__op_expired(br__due *d)
{
    pg_op *op = (pg_op *)((char *)d - offsetof(pg_op, due));
    br_pg_pool *p = op->pool;
    uint64_t now = uv_now(p->loop);
    char why[PG_DETAIL_MAX];
    uint16_t status = 504;
    if (op->wait.waiting) {
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
    pg__op_complete(op, NULL, status, why);
}

/* A broker cancel: the operation stops, and reports 499 on the next turn (never from
 * inside the cancel, which may not be followed by handler code). */
static void op_cancelled(br__dbc *dbc)
{
    pg_op *op = (pg_op *)((char *)dbc - offsetof(pg_op, dbc));
    op_detach(op);
    pg__op_fail_soon(op, 499, "request cancelled");
}

/* ---------------------------------------------------------------------------------- */
/* Running an operation on a connection.                                              */

static const char *const begin_sql[] = {
    [BR_PG_READ_COMMITTED] = "BEGIN",
    [BR_PG_REPEATABLE_READ] = "BEGIN ISOLATION LEVEL REPEATABLE READ",
    [BR_PG_SERIALIZABLE] = "BEGIN ISOLATION LEVEL SERIALIZABLE",
};

void pg__op_run(pg_op *op, pg_conn *c)
{
    br_pg_pool *p = op->pool;
    op->conn = c;
    c->op = op;
    pg__conn_set_state(c, PG_BUSY);
    br__dues_del(&p->dues, &op->due);
    br__dues_add(&p->dues, &op->due, op->deadline, pg__op_expired);
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
        pg__pool_submit(p, op);
        return;
    }
    pg__op_fail_soon(op, 503, "database connection lost: %s", msg);
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
    pg__pool_submit(pool, op);
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
    pg__pool_submit(pool, op);
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
    pg__pool_submit(pool, op);
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
        pg__op_run(op, tx->conn);
    } else if (kind == OP_ROLLBACK) {
        pg__op_fail_soon(op, 200, "%s", ""); /* rolled back already, with its connection */
    } else {
        pg__op_fail_soon(op, tx->lost_status ? tx->lost_status : 503, "%s",
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
            pg__conn_settle(c); /* sends ROLLBACK */
    }
    free(tx);
}
