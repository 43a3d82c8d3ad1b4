/*
 * redis.c - the Redis pool (barista/redis.h): commands pipelined over a few
 * connections, replies converted into the request's arena, deadlines, cancels, and
 * reconnects with backoff.
 *
 * A command (or a pipeline: several commands sent back to back, one callback) is a rop.
 * It is formatted once, when it is made; sent on the least busy ready connection (or,
 * while the first connections open, queued); and answered by hiredis's reply callback,
 * once per command, in order.  A rop the handler no longer waits for (its request
 * ended, its deadline passed, a cancel) is `finished`: the replies still due for it
 * are dropped as they come, and it is freed after the last one - Redis cannot take a
 * command back.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "redis_int.h"

/* The command waiting at the head of p's queue, or NULL. */
#define FIRST_WAITER(p)                                                                            \
    ((p)->waiters.head ? (rop *)((char *)(p)->waiters.head - offsetof(rop, wait)) : NULL)

struct rop {
    br__op op;           /* in the request's operations (not for exec) */
    br__dbc dbc;         /* hears a broker cancel */
    br__due due;         /* its deadline, or a failure for the next turn */
    br_redis_pool *pool; /* the pool */
    br_req *req;         /* the request, or NULL (exec) */
    rconn *conn;         /* the connection it was sent on, or NULL */
    rop *cprev, *cnext;  /* in the connection's sent list */
    br__waiter wait;     /* in the pool's waiting list */
    bool finished;       /* nobody waits for it any more (answered, abandoned) */
    bool pipeline;       /* made by br_redis_pipeline */
    bool reset_if_stuck; /* cancelled at its deadline: drop a connection stuck on it */
    union {
        br_redis_fn one;           /* br_redis_command */
        br_redis_pipeline_fn many; /* br_redis_pipeline */
        br_redis_exec_fn exec;     /* br_redis_exec */
    } cb;
    void *arg;                       /* the callback's argument */
    uint32_t budget_ms;              /* its time, for messages */
    uint64_t deadline;               /* uv_now() of the deadline */
    uint16_t fail_status;            /* a failure for the next turn: status ... */
    char fail_why[REDIS_DETAIL_MAX]; /* ... and detail */
    size_t n;                        /* commands */
    size_t nsent;                    /* commands handed to hiredis */
    size_t received;                 /* replies received (or NULLs for a lost connection) */
    uint32_t live;                   /* replies hiredis still owes us */
    char *cmd;                       /* the formatted commands, back to back (until sent) */
    size_t *cmd_end;                 /* where each one ends in cmd */
    br_redis_result *results;        /* one per command */
    br__arena arena;                 /* replies of an exec rop (a request's go to its arena) */
};

/* A broker cancel this close to the deadline is the deadline's. */
#define REDIS_DEADLINE_SLACK_MS 50

static void pool_submit(br_redis_pool *p, rop *op);

/* ---------------------------------------------------------------------------------- */
/* Operations.                                                                         */

static void rop_free(rop *op)
{
    free(op->cmd);
    br__arena_release(&op->arena);
    free(op);
}

static void rop_maybe_free(rop *op)
{
    if (op->finished && op->live == 0 && !op->wait.waiting)
        rop_free(op);
}

static void waiter_remove(rop *op)
{
    br_redis_pool *p = op->pool;
    br__waitq_remove(&p->waiters, &op->wait);
}

static void sent_remove(rop *op)
{
    rconn *c = op->conn;
    if (!c)
        return;
    if (op->cprev)
        op->cprev->cnext = op->cnext;
    else
        c->head = op->cnext;
    if (op->cnext)
        op->cnext->cprev = op->cprev;
    else
        c->tail = op->cprev;
    op->cprev = op->cnext = NULL;
    op->conn = NULL;
}

static void *rop_alloc(rop *op, size_t n)
{
    return op->req ? br_req_alloc(op->req, n) : br__arena_alloc(&op->arena, n);
}

/* Copies hiredis's reply into memory that lives as long as the result must. */
static int convert(rop *op, const redisReply *r, br_redis_reply *out)
{
    memset(out, 0, sizeof(*out));
    switch (r->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR: {
        out->type = r->type == REDIS_REPLY_STRING   ? BR_REDIS_STRING
                    : r->type == REDIS_REPLY_STATUS ? BR_REDIS_STATUS
                                                    : BR_REDIS_ERROR;
        if (r->len > UINT32_MAX - 1)
            return -1;
        char *s = rop_alloc(op, r->len + 1);
        if (!s)
            return -1;
        if (r->len)
            memcpy(s, r->str, r->len);
        s[r->len] = '\0';
        out->str = (br_str){s, (uint32_t)r->len};
        return 0;
    }
    case REDIS_REPLY_INTEGER:
        out->type = BR_REDIS_INT;
        out->integer = r->integer;
        return 0;
    case REDIS_REPLY_ARRAY: {
        out->type = BR_REDIS_ARRAY;
        out->n = r->elements;
        if (!r->elements)
            return 0;
        br_redis_reply *e = rop_alloc(op, r->elements * sizeof(*e));
        if (!e)
            return -1;
        for (size_t i = 0; i < r->elements; i++)
            if (convert(op, r->element[i], &e[i]) != 0)
                return -1;
        out->elems = e;
        return 0;
    }
    default:
        out->type = BR_REDIS_NIL;
        return 0;
    }
}

/* The status an error reply deserves: the server's own trouble is a 503. */
static uint16_t status_of_error(br_str e)
{
    static const char *const unavailable[] = {"LOADING", "BUSY",     "READONLY",    "MASTERDOWN",
                                              "OOM",     "TRYAGAIN", "CLUSTERDOWN", "NOAUTH"};
    for (size_t i = 0; i < BR_NELEMS(unavailable); i++) {
        size_t n = strlen(unavailable[i]);
        if (e.len >= n && memcmp(e.ptr, unavailable[i], n) == 0 && (e.len == n || e.ptr[n] == ' '))
            return 503;
    }
    return 500;
}

/* Fills every result not answered yet with status and why. */
static void fill_rest(rop *op, uint16_t status, const char *why)
{
    for (size_t i = 0; i < op->n; i++) {
        if (op->results[i].status)
            continue;
        op->results[i].status = status;
        op->results[i].reply = NULL;
        size_t len = strlen(why);
        char *d = rop_alloc(op, len + 1);
        if (d)
            memcpy(d, why, len + 1);
        op->results[i].detail = d ? (br_str){d, (uint32_t)len} : br_str_c("redis failed");
    }
}

/* Hands op's results to its callback (once) and marks it finished. */
static void rop_complete(rop *op)
{
    br_redis_pool *p = op->pool;
    op->finished = true;
    waiter_remove(op);
    br__dues_del(&p->dues, &op->due);
    br__dbc_forget(&op->dbc);
    if (op->req) {
        br_req *req = op->req;
        br_worker *w = req->worker; /* the callback may end the request */
        br__op_unlink(req, &op->op);
        br__watch_enter(w, req->spec);
        if (op->pipeline)
            op->cb.many(req, op->results, op->n, op->arg);
        else
            op->cb.one(req, &op->results[0], op->arg);
        br__watch_leave(w);
    } else {
        op->cb.exec(&op->results[0], op->arg);
    }
}

/* A reply (or NULL: the connection is gone) for op's next command. */
static void on_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    rop *op = priv;
    rconn *c = op->conn;
    redisReply *r = reply;
    op->live--;
    if (c)
        c->pending--;
    size_t i = op->received++;
    if (!op->finished && i < op->n) {
        br_redis_result *res = &op->results[i];
        if (!r) {
            char why[REDIS_DETAIL_MAX];
            snprintf(why, sizeof(why), "redis connection lost: %s",
                     ac->errstr[0] ? ac->errstr : "closed");
            fill_rest(op, 503, why);
        } else {
            br_redis_reply *out = rop_alloc(op, sizeof(*out));
            if (!out || convert(op, r, out) != 0) {
                res->status = 502;
                res->detail = br_str_c("redis reply too large to keep");
            } else {
                res->reply = out;
                res->status = out->type == BR_REDIS_ERROR ? status_of_error(out->str) : 200;
                res->detail = out->type == BR_REDIS_ERROR ? out->str : br_str_c("");
            }
        }
    }
    if (op->received == op->nsent) {
        sent_remove(op);
        if (!op->finished)
            rop_complete(op);
    }
    rop_maybe_free(op);
}

/* A failure found while a handler calls us: reported on the next loop iteration. */
static void reset_stuck(rop *op, rconn *c)
{
    br_redis_pool *p = op->pool;
    p->resets++;
    br__log("redis: no answer within %u ms: dropping the connection", op->budget_ms);
    redis__conn_close(c); /* the NULL replies that follow free op */
}

static void failed_due(br__due *d)
{
    rop *op = (rop *)((char *)d - offsetof(rop, due));
    rconn *c = op->conn;
    bool stuck = op->reset_if_stuck && c && c->head == op && !c->closing;
    fill_rest(op, op->fail_status, op->fail_why);
    rop_complete(op);
    if (stuck)
        reset_stuck(op, c);
    else
        rop_maybe_free(op);
}

static void rop_fail_soon(rop *op, uint16_t status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void rop_fail_soon(rop *op, uint16_t status, const char *fmt, ...)
{
    br_redis_pool *p = op->pool;
    waiter_remove(op);
    br__dues_del(&p->dues, &op->due);
    op->fail_status = status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(op->fail_why, sizeof(op->fail_why), fmt, ap);
    va_end(ap);
    br__dues_add(&p->dues, &op->due, 0, failed_due);
}

/* The deadline passed. */
static void rop_expired(br__due *d)
{
    rop *op = (rop *)((char *)d - offsetof(rop, due));
    char why[REDIS_DETAIL_MAX];
    rconn *c = op->conn;
    if (op->wait.waiting)
        snprintf(why, sizeof(why), "no redis connection within %u ms", op->budget_ms);
    else
        snprintf(why, sizeof(why), "redis did not answer within %u ms", op->budget_ms);
    bool stuck = c && c->head == op && !c->closing;
    fill_rest(op, 504, why);
    rop_complete(op);
    /* The oldest command on its connection unanswered all this time: the server is
     * stuck on it, or gone.  Drop the connection rather than queue more behind it (the
     * NULL replies that follow free op). */
    if (stuck)
        reset_stuck(op, c);
    else
        rop_maybe_free(op);
}

static void rop_abort(br__op *o)
{
    rop *op = (rop *)o;
    op->finished = true;
    waiter_remove(op);
    br__dues_del(&op->pool->dues, &op->due);
    br__dbc_forget(&op->dbc);
    rop_maybe_free(op);
}

static void rop_cancelled(br__dbc *dbc)
{
    rop *op = (rop *)((char *)dbc - offsetof(rop, dbc));
    /* The broker's cancel at the deadline races our own timer: it is the same deadline
     * (the broker's clock started a little earlier, hence the slack). */
    op->reset_if_stuck = op->req && br_req_remaining_ms(op->req) <= REDIS_DEADLINE_SLACK_MS;
    rop_fail_soon(op, 499, "request cancelled");
}

/* ---------------------------------------------------------------------------------- */
/* Connections of the pool.                                                            */

static void send_on(rop *op, rconn *c)
{
    size_t start = 0;
    for (size_t i = 0; i < op->n; i++) {
        if (redisAsyncFormattedCommand(c->ac, on_reply, op, op->cmd + start,
                                       op->cmd_end[i] - start) != REDIS_OK)
            break; /* only a context already disconnecting refuses */
        op->live++;
        op->nsent++;
        c->pending++;
        start = op->cmd_end[i];
    }
    free(op->cmd);
    op->cmd = NULL;
    if (op->nsent < op->n)
        rop_fail_soon(op, 503, "redis connection closing");
    if (op->nsent == 0)
        return;
    op->conn = c;
    op->cprev = c->tail;
    op->cnext = NULL;
    if (c->tail)
        c->tail->cnext = op;
    else
        c->head = op;
    c->tail = op;
}

static rconn *pick(br_redis_pool *p)
{
    rconn *best = NULL;
    for (rconn *c = p->conns; c; c = c->next)
        if (c->state == R_READY && !c->closing && c->pending < p->opt.max_pending &&
            (!best || c->pending < best->pending))
            best = c;
    return best;
}

static void pool_ready(rconn *c)
{
    br_redis_pool *p = c->pool;
    if (p->down)
        br__log("redis: connected again");
    p->down = false;
    p->failures = 0;
    p->connects++;
    p->nconnecting--;
    while (FIRST_WAITER(p)) {
        rconn *to = pick(p);
        if (!to)
            break;
        rop *op = FIRST_WAITER(p);
        waiter_remove(op);
        br__dues_del(&p->dues, &op->due);
        br__dues_add(&p->dues, &op->due, op->deadline, rop_expired);
        send_on(op, to);
    }
}

static void pool_failed(rconn *c, const char *why)
{
    br_redis_pool *p = c->pool;
    p->failures++;
    p->connect_fails++;
    uint32_t wait = br__backoff_ms(p->failures, p->opt.backoff_ms, p->opt.backoff_max_ms, &p->rng);
    p->retry_at = uv_now(p->loop) + wait;
    if (!p->down || strcmp(p->down_why, why) != 0)
        br__log("redis: cannot connect: %s (retrying in %u ms)", why, wait);
    p->down = true;
    snprintf(p->down_why, sizeof(p->down_why), "%s", why);
}

static void pool_gone(rconn *c, const char *why)
{
    br_redis_pool *p = c->pool;
    if (c->state != R_READY)
        p->nconnecting--;
    else if (!p->destroying && c->pending)
        br__log("redis: connection lost: %s", why);
    if (c->prev)
        c->prev->next = c->next;
    else
        p->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    p->nconns--;
    /* Waiters wait for a connection that is opening: none left means none coming. */
    if (p->nconnecting == 0 && !p->destroying) {
        while (FIRST_WAITER(p))
            rop_fail_soon(FIRST_WAITER(p), 503, "redis unavailable: %s",
                          p->down_why[0] ? p->down_why : why);
    }
}

static const rconn_ops pool_ops = {
    .ready = pool_ready,
    .failed = pool_failed,
    .gone = pool_gone,
};

static void pool_submit(br_redis_pool *p, rop *op)
{
    rconn *c = pick(p);
    uint64_t now = uv_now(p->loop);
    /* Another connection when every one is busy (and the pool may grow); while Redis
     * is down, one attempt at a time. */
    if (p->nconns < p->opt.size && now >= p->retry_at && p->nconnecting == 0 &&
        (!c || c->pending > 0) && !p->destroying)
        redis__conn_open(p, &pool_ops, NULL, true);
    if (!c)
        c = pick(p);
    br__dues_add(&p->dues, &op->due, op->deadline, rop_expired);
    if (c) {
        send_on(op, c);
        return;
    }
    if (p->nconnecting > 0 && p->waiters.n < p->opt.max_pending) {
        br__waitq_push(&p->waiters, &op->wait);
        return;
    }
    if (p->nconns > 0)
        rop_fail_soon(op, 503, "redis pool exhausted: %u commands in flight on each connection",
                      p->opt.max_pending);
    else
        rop_fail_soon(op, 503, "redis unavailable: %s",
                      p->down_why[0] ? p->down_why : "no connection");
}

/* ---------------------------------------------------------------------------------- */
/* Making commands.                                                                    */

static bool name_is(br_str s, const char *name)
{
    size_t n = strlen(name);
    if (s.len != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (toupper((unsigned char)s.ptr[i]) != name[i])
            return false;
    return true;
}

/* Commands that would block a shared connection or change its state for everybody. */
static bool refused(const br_str *argv, size_t argc, bool in_pipeline)
{
    static const char *const never[] = {
        "SUBSCRIBE",  "PSUBSCRIBE", "SSUBSCRIBE", "UNSUBSCRIBE", "PUNSUBSCRIBE", "SUNSUBSCRIBE",
        "MONITOR",    "SELECT",     "AUTH",       "HELLO",       "QUIT",         "RESET",
        "WATCH",      "UNWATCH",    "SYNC",       "PSYNC",       "BLPOP",        "BRPOP",
        "BRPOPLPUSH", "BLMOVE",     "BLMPOP",     "BZPOPMIN",    "BZPOPMAX",     "BZMPOP",
        "WAIT",       "WAITAOF"};
    br_str name = argv[0];
    for (size_t i = 0; i < BR_NELEMS(never); i++)
        if (name_is(name, never[i]))
            return true;
    if (!in_pipeline &&
        (name_is(name, "MULTI") || name_is(name, "EXEC") || name_is(name, "DISCARD")))
        return true;
    if (name_is(name, "CLIENT") && argc > 1 && name_is(argv[1], "REPLY"))
        return true;
    if (name_is(name, "XREAD") || name_is(name, "XREADGROUP"))
        for (size_t i = 1; i < argc; i++)
            if (name_is(argv[i], "BLOCK"))
                return true;
    return false;
}

static int rop_new(br_redis_pool *p, const br_redis_cmd *cmds, size_t n, bool pipeline, rop **out)
{
    if (!p || !cmds || n == 0)
        return BR_EINVAL;
    if (n > BR_REDIS_MAX_PIPELINE)
        return BR_ELIMIT;
    int depth = 0;
    for (size_t i = 0; i < n; i++) {
        if (!cmds[i].argv || cmds[i].argc == 0)
            return BR_EINVAL;
        if (cmds[i].argc > BR_REDIS_MAX_ARGS)
            return BR_ELIMIT;
        if (refused(cmds[i].argv, cmds[i].argc, pipeline))
            return BR_EINVAL;
        br_str name = cmds[i].argv[0];
        if (name_is(name, "MULTI") && depth++ > 0)
            return BR_EINVAL;
        if ((name_is(name, "EXEC") || name_is(name, "DISCARD")) && depth-- != 1)
            return BR_EINVAL;
    }
    if (depth != 0)
        return BR_EINVAL; /* a MULTI left open would catch other requests' commands */
    rop *op = calloc(1, sizeof(*op) + n * (sizeof(size_t) + sizeof(br_redis_result)));
    if (!op)
        return BR_ENOMEM;
    op->results = (br_redis_result *)(void *)(op + 1);
    op->cmd_end = (size_t *)(void *)(op->results + n);
    op->n = n;
    op->pool = p;
    op->pipeline = pipeline;
    br__arena_init(&op->arena, NULL, 0, BR_REDIS_MAX_REPLY_BYTES);
    size_t total = 0;
    const char *argv_s[BR_REDIS_MAX_ARGS];
    size_t lens[BR_REDIS_MAX_ARGS];
    for (size_t i = 0; i < n; i++) {
        for (size_t a = 0; a < cmds[i].argc; a++) {
            argv_s[a] = cmds[i].argv[a].ptr ? cmds[i].argv[a].ptr : "";
            lens[a] = cmds[i].argv[a].len;
        }
        char *one = NULL;
        int len = redisFormatCommandArgv(&one, (int)cmds[i].argc, argv_s, lens);
        if (len < 0 || !one) {
            rop_free(op);
            return BR_ENOMEM;
        }
        if (total + (size_t)len > BR_REDIS_MAX_COMMAND_BYTES) {
            redisFreeCommand(one);
            rop_free(op);
            return BR_ELIMIT;
        }
        char *grown = realloc(op->cmd, total + (size_t)len);
        if (!grown) {
            redisFreeCommand(one);
            rop_free(op);
            return BR_ENOMEM;
        }
        op->cmd = grown;
        memcpy(op->cmd + total, one, (size_t)len);
        redisFreeCommand(one);
        total += (size_t)len;
        op->cmd_end[i] = total;
    }
    *out = op;
    return 0;
}

static void rop_arm(rop *op, uint32_t budget)
{
    op->budget_ms = budget;
    op->deadline = uv_now(op->pool->loop) + budget;
}

static int req_rop(br_req *req, br_redis_pool *p, const br_redis_cmd *cmds, size_t n, bool pipeline,
                   rop **out)
{
    if (!req || req->on_thread || req->ended)
        return BR_EINVAL;
    if (br_req_cancelled(req))
        return BR_ECLOSED;
    uint32_t budget = br__req_budget(req, 0);
    if (budget == 0)
        return BR_ECLOSED;
    rop *op;
    int rc = rop_new(p, cmds, n, pipeline, &op);
    if (rc)
        return rc;
    op->req = req;
    rop_arm(op, budget);
    op->op.abort = rop_abort;
    br__op_link(req, &op->op);
    br__dbc_watch(req, &op->dbc, rop_cancelled);
    *out = op;
    return 0;
}

int br_redis_command(br_req *req, br_redis_pool *pool, const br_str *argv, size_t argc,
                     br_redis_fn cb, void *arg)
{
    if (!cb)
        return BR_EINVAL;
    br_redis_cmd cmd = {argv, argc};
    rop *op;
    int rc = req_rop(req, pool, &cmd, 1, false, &op);
    if (rc)
        return rc;
    op->cb.one = cb;
    op->arg = arg;
    pool_submit(pool, op);
    return 0;
}

int br_redis_pipeline(br_req *req, br_redis_pool *pool, const br_redis_cmd *cmds, size_t n,
                      br_redis_pipeline_fn cb, void *arg)
{
    if (!cb)
        return BR_EINVAL;
    rop *op;
    int rc = req_rop(req, pool, cmds, n, true, &op);
    if (rc)
        return rc;
    op->cb.many = cb;
    op->arg = arg;
    pool_submit(pool, op);
    return 0;
}

int br_redis_exec(br_redis_pool *pool, const br_str *argv, size_t argc, uint32_t timeout_ms,
                  br_redis_exec_fn cb, void *arg)
{
    if (!cb || !pool)
        return BR_EINVAL;
    br_redis_cmd cmd = {argv, argc};
    rop *op;
    int rc = rop_new(pool, &cmd, 1, false, &op);
    if (rc)
        return rc;
    op->cb.exec = cb;
    op->arg = arg;
    rop_arm(op, timeout_ms ? timeout_ms : pool->opt.exec_timeout_ms);
    pool_submit(pool, op);
    return 0;
}

int br_redis_reply_error(br_req *req, const br_redis_result *res)
{
    uint16_t status = res->status == 200 ? 500 : res->status;
    if (status == 503)
        br_reply_header(req, "retry-after", "1");
    char *detail = br_req_strdup(req, res->detail);
    return br_reply_error(req, status, detail ? detail : "redis error");
}

/* ---------------------------------------------------------------------------------- */
/* The pool.                                                                           */

static char *dup_opt(const char *s, bool *oom)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        *oom = true;
    return d;
}

int br_redis_pool_new(uv_loop_t *loop, const br_redis_options *o, br_redis_pool **out, char *why,
                      size_t why_len)
{
    if (why && why_len)
        why[0] = '\0';
    if (!loop || !o || !out)
        return BR_EINVAL;
    if (o->password && (strlen(o->password) == 0)) {
        if (why && why_len)
            snprintf(why, why_len, "redis password is empty");
        return BR_EINVAL;
    }
    if (o->username && !o->password) {
        if (why && why_len)
            snprintf(why, why_len, "redis username given without a password");
        return BR_EINVAL;
    }
    int rc = br__dl_hiredis_load(why, why_len); /* hiredis is mapped from the first pool on */
    if (rc)
        return rc;
    br_redis_pool *p = calloc(1, sizeof(*p));
    if (!p)
        return BR_ENOMEM;
    bool oom = false;
    p->host = dup_opt(o->host && o->host[0] ? o->host : BR_REDIS_DEFAULT_HOST, &oom);
    p->username = dup_opt(o->username, &oom);
    p->password = dup_opt(o->password, &oom);
    if (oom) {
        free(p->host);
        free(p->username);
        free(p->password);
        free(p);
        return BR_ENOMEM;
    }
    p->loop = loop;
    p->opt = *o;
    p->opt.host = p->opt.username = p->opt.password = NULL;
    if (!p->opt.port)
        p->opt.port = BR_REDIS_DEFAULT_PORT;
    if (!p->opt.size)
        p->opt.size = BR_REDIS_DEFAULT_SIZE;
    if (!p->opt.connect_timeout_ms)
        p->opt.connect_timeout_ms = BR_REDIS_DEFAULT_CONNECT_MS;
    if (!p->opt.max_pending)
        p->opt.max_pending = BR_REDIS_DEFAULT_MAX_PENDING;
    if (!p->opt.exec_timeout_ms)
        p->opt.exec_timeout_ms = BR_REDIS_DEFAULT_EXEC_TIMEOUT_MS;
    if (!p->opt.backoff_ms)
        p->opt.backoff_ms = BR_REDIS_DEFAULT_BACKOFF_MS;
    if (!p->opt.backoff_max_ms)
        p->opt.backoff_max_ms = BR_REDIS_DEFAULT_BACKOFF_MAX_MS;
    if (p->opt.backoff_max_ms < p->opt.backoff_ms)
        p->opt.backoff_max_ms = p->opt.backoff_ms;
    p->unix_socket = p->host[0] == '/';
    p->resolve = !p->unix_socket && !br__host_is_numeric(p->host);
    p->rng = br__rng_seed();
    br__dues_init(loop, &p->dues);
    *out = p;
    return 0;
}

static void pool_freed(uv_handle_t *h)
{
    br_redis_pool *p = (br_redis_pool *)((char *)h - offsetof(br_redis_pool, dues.timer));
    free(p->host);
    free(p->username);
    free(p->password);
    free(p);
}

void br_redis_pool_destroy(br_redis_pool **self_p)
{
    br_redis_pool *p = self_p ? *self_p : NULL;
    if (!p)
        return;
    *self_p = NULL;
    p->destroying = true;
    redis__sub_destroy(p);
    while (FIRST_WAITER(p)) {
        rop *op = FIRST_WAITER(p);
        waiter_remove(op);
        fill_rest(op, 503, "redis pool closed");
        rop_complete(op);
        rop_maybe_free(op);
    }
    while (p->conns)
        redis__conn_close(p->conns); /* sent commands get NULL: 503 */
    while (p->dues.head) {
        br__due *d = p->dues.head;
        br__dues_del(&p->dues, d);
        d->fire(d);
    }
    br__dues_close(&p->dues, pool_freed);
}

void br_redis_pool_stats(const br_redis_pool *p, br_redis_stats *s)
{
    memset(s, 0, sizeof(*s));
    s->size = p->opt.size;
    s->open = p->nconns;
    for (const rconn *c = p->conns; c; c = c->next) {
        s->ready += c->state == R_READY && !c->closing;
        s->pending += c->pending;
    }
    s->waiting = p->waiters.n;
    s->down = p->down;
    s->connects = p->connects;
    s->connect_fails = p->connect_fails;
    s->resets = p->resets;
}
