/*
 * pg_int.h - the insides of barista/pg.h, shared by pg.c (the pool: connections and
 * operations), pg_result.c (results and their values) and pg_listen.c (LISTEN/NOTIFY).
 *
 * A connection's life: RESOLVING (a host name on the thread pool) -> CONNECTING
 * (PQconnectPoll driven by its socket) -> IDLE in the pool <-> BUSY running one
 * operation, or HELD by a transaction between its statements.  An operation that is
 * abandoned while its query runs (its request ended, its deadline passed, a broker
 * cancel) leaves the connection DRAINING: a cancel request goes to the server from the
 * thread pool, the rest of the answer is read and dropped, an open transaction is
 * rolled back, and only then is the connection reused - or closed when that takes
 * longer than BR_PG_DRAIN_MS.
 */
#ifndef BARISTA_WORKER_PG_INT_H
#define BARISTA_WORKER_PG_INT_H

#include "barista/dl_pq.h"

#include "barista/pg.h"
#include "db_int.h"
#include "worker_int.h"

/* Longest failure detail kept by the pool or an operation. */
#define PG_DETAIL_MAX 256

typedef enum pg_conn_state {
    PG_RESOLVING,  /* waiting for the host name's address */
    PG_CONNECTING, /* PQconnectPoll in progress */
    PG_IDLE,       /* in the pool, ready */
    PG_BUSY,       /* running conn->op */
    PG_HELD,       /* between two statements of conn->tx */
    PG_DRAINING    /* finishing an abandoned query or a rollback; not reusable yet */
} pg_conn_state;

typedef struct pg_conn pg_conn;
typedef struct pg_op pg_op;
typedef struct pg_listener pg_listener;

/* What a connection is for: one of the pool's, or the listening one. */
typedef struct pg_conn_ops {
    void (*ready)(pg_conn *c);                   /* the connection is up */
    void (*failed)(pg_conn *c, const char *why); /* it could not connect; c is closed after */
    void (*readable)(pg_conn *c);                /* input arrived (after the connect) */
    void (*writable)(pg_conn *c);                /* output can go on (after the connect) */
    void (*closing)(pg_conn *c);                 /* it is being closed: forget it */
} pg_conn_ops;

/* A poll handle on a connection's socket, allocated apart since the socket may change
 * while libpq connects, and freed in its close callback. */
typedef struct pg_watch {
    uv_poll_t poll; /* the socket's readiness */
    pg_conn *conn;  /* NULL once the connection let go of it */
} pg_watch;

struct pg_conn {
    br_pg_pool *pool;             /* the pool it belongs to */
    const pg_conn_ops *ops;       /* what it is for */
    void *owner;                  /* the listener, for the listening connection */
    PGconn *pg;                   /* libpq's connection; NULL before the connect starts */
    pg_watch *watch;              /* its socket's poll, or NULL */
    int fd;                       /* the socket watched, or -1 */
    int events;                   /* UV_READABLE | UV_WRITABLE being watched */
    pg_conn_state state;          /* see the file comment */
    pg_conn *prev, *next;         /* in the pool's list of connections */
    pg_conn *iprev, *inext;       /* in the pool's idle list (IDLE only) */
    br__due due;                  /* connect timeout, idle expiry or drain deadline */
    br__resolve *resolve;         /* the host lookup in flight, or NULL */
    pg_op *op;                    /* the operation running (BUSY) */
    br_pg_tx *tx;                 /* the transaction holding it, or NULL */
    struct pg_cancel_job *cancel; /* a cancel request in flight, or NULL */
    PGresult *result;             /* the running query's answer so far */
    bool copy_refused;            /* the query started a COPY, which is refused */
    unsigned io;                  /* nesting of its I/O callback: free after it */
    bool closed;                  /* closed while in its I/O callback: free after it */
};

struct br_pg_pool {
    uv_loop_t *loop;                           /* everything runs here */
    br_pg_options opt;                         /* options with defaults filled in */
    char **keywords, **values;                 /* the conninfo, parsed; a slot left for hostaddr */
    int host_index;                            /* the "host" slot, or -1 */
    int hostaddr_index;                        /* the slot for a resolved hostaddr */
    bool resolve;                              /* host is a name to resolve before connecting */
    br__dues dues;                             /* every deadline of the pool, one timer */
    pg_conn *conns;                            /* every connection but the listener's */
    pg_conn *idle;                             /* idle ones, most recently used first */
    uint32_t nconns;                           /* entries in conns */
    uint32_t nidle;                            /* entries in idle */
    uint32_t nconnecting;                      /* of conns, RESOLVING or CONNECTING */
    uint32_t ndraining;                        /* of conns, DRAINING */
    br__waitq waiters;                         /* operations waiting for a connection */
    uint32_t failures;                         /* connect failures in a row */
    uint64_t retry_at;                         /* no new connect before this uv_now() */
    bool down;                                 /* the last connect failed */
    char down_why[PG_DETAIL_MAX];              /* why */
    uint64_t rng;                              /* backoff jitter */
    uint64_t connects, connect_fails, cancels; /* counters for br_pg_pool_stats */
    pg_listener *listener;                     /* LISTEN/NOTIFY, or NULL */
    bool destroying;                           /* br_pg_pool_destroy runs */
    unsigned closing;                          /* handles whose close callback is pending */
};

/* ---- pg.c: connections, for pg_listen.c ---- */

/* Opens a connection of the pool with `ops` (not counted in the pool's connections
 * when `pooled` is false).  Returns it (the connect goes on) or NULL (out of memory;
 * logged). */
pg_conn *pg__conn_open(br_pg_pool *pool, const pg_conn_ops *ops, void *owner, bool pooled);

/* Closes c now (its I/O callback frees it after it returns). */
void pg__conn_close(pg_conn *c);

/* Watches c's socket for `events` (UV_READABLE | UV_WRITABLE). */
void pg__conn_watch(pg_conn *c, int events);

/* Flushes c's output: watches for writability while some is left.  -1 on failure. */
int pg__conn_flush(pg_conn *c);

/* Copies libpq's message for c into buf, one line, without "ERROR:" or newlines. */
void pg__conn_error(pg_conn *c, char *buf, size_t len);

/* ---- pg.c: operations (struct pg_op) and transactions ---- */

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
    br__op op;           /* in the request's operations (all kinds but EXEC) */
    br__dbc dbc;         /* hears a broker cancel */
    br__due due;         /* its deadline, or a failure to report on the next turn */
    br_pg_pool *pool;    /* the pool */
    br_req *req;         /* the request, or NULL (EXEC) */
    br_pg_tx *tx;        /* TXQ, COMMIT, ROLLBACK: the transaction */
    pg_conn *conn;       /* the connection running it, or NULL */
    br__waiter wait;     /* in the pool's waiters */
    bool retried;        /* it was moved once to another connection */
    pg_op_kind kind;     /* which call made it */
    br_pg_isolation iso; /* BEGIN: the isolation level */
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

/* Ends op with the answer r (owned from here on; NULL for a failure of our own with
 * status and why): unlinks it from everything, settles its connection, calls back and
 * frees it. */
void pg__op_complete(pg_op *op, PGresult *r, uint16_t status, const char *why);

/* Reports a failure found while a handler calls us on the next loop iteration. */
void pg__op_fail_soon(pg_op *op, uint16_t status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Sends op's statement on c (a failure to send moves it to another connection once). */
void pg__op_run(pg_op *op, pg_conn *c);

/* An operation's deadline (or acquire timeout) passed: the due function. */
void pg__op_expired(br__due *d);

/* ---- pg_pool.c: the pool's side ---- */

/* Runs op on an idle connection, or queues it for one (opening connections as the
 * pool may), or fails it soon with 503. */
void pg__pool_submit(br_pg_pool *p, pg_op *op);

/* Takes op out of the pool's waiters (nothing when it is not waiting). */
void pg__waiter_remove(pg_op *op);

/* Moves c to state s, keeping the pool's counts. */
void pg__conn_set_state(pg_conn *c, pg_conn_state s);

/* A connection no operation or transaction holds: into the pool once clean (drained,
 * no cancel in flight, no transaction open - it sends ROLLBACK if one is). */
void pg__conn_settle(pg_conn *c);

/* c's query was abandoned: cancel it on the server (thread pool) and drain. */
void pg__conn_abandon(pg_conn *c);

/* ---- pg_result.c ---- */

/* Fills *res from a finished query's answer pg (status, sqlstate, detail, counts).
 * `commit` is true for the answer to a COMMIT.  The strings of detail point into pg or
 * into why_buf (PG_DETAIL_MAX bytes). */
void pg__result_fill(br_pg_result *res, PGresult *pg, bool commit, char *why_buf);

/* Where the values of a result get memory for decoded bytea: the request's arena, or
 * a list of blocks freed after a br_pg_exec callback. */
typedef struct pg_res_impl {
    PGresult *pg; /* the answer (owned by whoever made the impl) */
    br_req *req;  /* allocate from its arena, or ... */
    void *blocks; /* ... malloc'd blocks, each starting with the next's pointer */
} pg_res_impl;

/* Frees the blocks of a br_pg_exec result. */
void pg__res_impl_free_blocks(pg_res_impl *impl);

/* ---- pg_listen.c ---- */

/* Closes the listener (pool destroy). */
void pg__listener_destroy(br_pg_pool *pool);

/* The operation waiting at the head of p's queue, or NULL. */
#define PG_FIRST_WAITER(p)                                                                         \
    ((p)->waiters.head ? (pg_op *)((char *)(p)->waiters.head - offsetof(pg_op, wait)) : NULL)

#endif /* BARISTA_WORKER_PG_INT_H */
