/*
 * pg_pool.c - the PostgreSQL pool's connections (pg_int.h): opening them on demand up
 * to the pool's size, handing them to waiting operations, reading answers, settling a
 * connection back into the pool only when it is clean (an abandoned query cancelled on
 * the server from the thread pool and drained, an open transaction rolled back),
 * recycling idle ones, and backing off while the database is down.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg_int.h"

typedef struct pg_cancel_job {
    pg_conn *conn;    /* the connection it cancels for; NULL once that one closed */
    uv_work_t work;   /* the libuv job */
    PGcancel *cancel; /* libpq's cancel handle, independent of the connection */
    int ok;           /* what PQcancel returned */
    char err[256];    /* its message */
} pg_cancel_job;

/* ---------------------------------------------------------------------------------- */
/* Connection states and the pool's lists.                                            */

void pg__conn_set_state(pg_conn *c, pg_conn_state s)
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
        pg__op_complete(op, NULL, 503, "database connection closed");
    }
}

/* Opens one more connection when operations wait for one and the pool may. */
static void pool_kick(br_pg_pool *p);

void pg__waiter_remove(pg_op *op)
{
    br_pg_pool *p = op->pool;
    br__waitq_remove(&p->waiters, &op->wait);
}

/* On a pool thread: PQcancel connects to the server and waits for it. */
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
            pg__conn_settle(c);
        c->io--;
        if (c->closed && !c->io)
            free(c);
    }
    free(j);
}

static void conn_drain(pg_conn *c);

/* The connection's query was abandoned: cancel it on the server, and drain. */
void pg__conn_abandon(pg_conn *c)
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
    pg__conn_set_state(c, PG_DRAINING);
    br__dues_del(&p->dues, &c->due);
    br__dues_add(&p->dues, &c->due, uv_now(p->loop) + BR_PG_DRAIN_MS, conn_drain_expired);
}

/* A clean connection: to the first waiter, or idle. */
static void conn_to_pool(pg_conn *c)
{
    br_pg_pool *p = c->pool;
    br__dues_del(&p->dues, &c->due);
    if (PG_FIRST_WAITER(p) && !p->destroying) {
        pg_op *op = PG_FIRST_WAITER(p);
        pg__waiter_remove(op);
        pg__op_run(op, c);
        return;
    }
    pg__conn_set_state(c, PG_IDLE);
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
void pg__conn_settle(pg_conn *c)
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
        pg__conn_settle(c);
        return;
    }
    if (!r) {
        pg__op_complete(op, NULL, 500, "COPY is not supported: use INSERT or SELECT");
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
        pg__op_complete(op, NULL, 502, why);
        return;
    }
    pg__op_complete(op, r, 0, NULL);
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
        pg__op_complete(op, r, 0, NULL); /* the server said why (57P01 terminated: 503) */
        return;
    }
    if (r)
        PQclear(r);
    snprintf(why, sizeof(why), "database connection lost: %s", msg);
    pg__op_complete(op, NULL, 503, why);
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
    while (p->waiters.n > p->nconnecting && p->nconns < p->opt.size && now >= p->retry_at &&
           !(p->down && p->nconnecting > 0)) {
        if (!pg__conn_open(p, &pool_conn_ops, NULL, true))
            break;
    }
    if (p->nconns > 0)
        return;
    /* Nothing is open or opening: what the waiters wait for is not coming. */
    while (PG_FIRST_WAITER(p)) {
        pg_op *op = PG_FIRST_WAITER(p);
        pg__op_fail_soon(op, 503, "database unavailable: %s",
                         p->down_why[0] ? p->down_why : "no connection");
    }
}

void pg__pool_submit(br_pg_pool *p, pg_op *op)
{
    if (p->destroying) {
        pg__op_fail_soon(op, 503, "database pool closed");
        return;
    }
    if (p->idle) {
        pg_conn *c = p->idle;
        idle_remove(c);
        br__dues_del(&p->dues, &c->due);
        pg__op_run(op, c);
        return;
    }
    if (p->waiters.n >= p->opt.max_waiters) {
        pg__op_fail_soon(op, 503, "database pool exhausted: %u operations already waiting",
                         p->waiters.n);
        return;
    }
    br__waitq_push(&p->waiters, &op->wait);
    br__dues_del(&p->dues, &op->due);
    br__dues_add(&p->dues, &op->due, op->acquire_by < op->deadline ? op->acquire_by : op->deadline,
                 pg__op_expired);
    pool_kick(p);
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
    int rc = br__dl_pq_load(why, why_len); /* libpq is mapped from the first pool on */
    if (rc)
        return rc;
    br_pg_pool *p = calloc(1, sizeof(*p));
    if (!p)
        return BR_ENOMEM;
    rc = parse_conninfo(p, o->conninfo, why, why_len);
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
    while (PG_FIRST_WAITER(p))
        pg__op_complete(PG_FIRST_WAITER(p), NULL, 503, "database pool closed");
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
    s->waiting = p->waiters.n;
    s->down = p->down;
    s->connects = p->connects;
    s->connect_fails = p->connect_fails;
    s->cancels = p->cancels;
}
