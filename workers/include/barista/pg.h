/*
 * barista/pg.h - PostgreSQL for I/O services (asyncpg's role): a connection pool on
 * the worker's loop, parameterised queries, typed results, transactions and
 * LISTEN/NOTIFY, all without blocking the loop.
 *
 * libpq's asynchronous API does the talking (PQconnectStart/PQconnectPoll,
 * PQsendQueryParams, the connection's socket watched by the loop); the only blocking
 * calls libpq has - resolving a host name and sending a cancel request - run on the
 * libuv thread pool.
 *
 *   br_pg_pool *pool;
 *   br_pg_pool_new(loop, &(br_pg_options){.conninfo = "postgresql://app@db/app"}, &pool);
 *
 *   static void got(br_req *req, const br_pg_result *res, void *arg)
 *   {
 *       if (!br_pg_ok(res)) {            503 down, 504 too slow, 409 conflict, ...
 *           br_pg_reply_error(req, res);
 *           return;
 *       }
 *       ...br_pg_get(res, 0, 0)...        typed values
 *   }
 *   br_pg_value p[] = {br_pg_int(id)};
 *   br_pg_query(req, pool, "SELECT title FROM notes WHERE id = $1", p, 1, got, NULL);
 *
 * SQL text is always a constant of the program: values travel separately as
 * parameters ($1, $2, ...), so no value is ever spliced into SQL.
 *
 * Every operation of a request belongs to it, as in barista/async.h: its callback runs
 * once on the loop, unless the request ends first (then no callback runs, and a query
 * still running is cancelled on the server).  Its deadline is the request's remaining
 * deadline (or the pool's query_timeout_ms when shorter): a query still running then
 * fails with 504 and is cancelled on the server.  A broker cancel (the client went
 * away) fails it with 499 when the handler registered no cancel callback of its own.
 * A connection goes back to the pool only when it is clean: no query running, no
 * transaction open.
 *
 * Everything here runs on the loop thread of the loop the pool was made with.
 */
#ifndef BARISTA_PG_H
#define BARISTA_PG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "barista/worker.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------- */
/* Values: query parameters, and what results hold.                                   */

/* What a value is.  Results map PostgreSQL's types: bool is BOOL; int2, int4, int8
 * and oid are INT; float4 and float8 are FLOAT; bytea is BYTES; everything else
 * (text, varchar, numeric, json, uuid, timestamps, ...) is TEXT, in PostgreSQL's text
 * form, with its type's OID in `oid`. */
typedef enum br_pg_type {
    BR_PG_NULL = 0, /* SQL NULL */
    BR_PG_BOOL,     /* b */
    BR_PG_INT,      /* i */
    BR_PG_FLOAT,    /* f */
    BR_PG_TEXT,     /* s: text (no NUL bytes) */
    BR_PG_BYTES     /* s: any bytes (bytea) */
} br_pg_type;

/* One value.  As a parameter, `oid` 0 lets the server infer the type from the SQL
 * (a TEXT parameter then fits text, json, uuid, timestamp, numeric... columns alike);
 * BOOL, INT, FLOAT and BYTES parameters go as bool, int8, float8 and bytea unless
 * `oid` says otherwise.  In a result, strings point into the result and live as long
 * as it does. */
typedef struct br_pg_value {
    br_pg_type type; /* which member holds the value */
    uint32_t oid;    /* the PostgreSQL type OID; 0: the default above */
    union {
        bool b;    /* BOOL */
        int64_t i; /* INT */
        double f;  /* FLOAT */
        br_str s;  /* TEXT, BYTES */
    } v;
} br_pg_value;

/* Parameter constructors. */
static inline br_pg_value br_pg_null(void)
{
    br_pg_value x = {BR_PG_NULL, 0, {.i = 0}};
    return x;
}
static inline br_pg_value br_pg_bool(bool b)
{
    br_pg_value x = {BR_PG_BOOL, 0, {.b = b}};
    return x;
}
static inline br_pg_value br_pg_int(int64_t i)
{
    br_pg_value x = {BR_PG_INT, 0, {.i = i}};
    return x;
}
static inline br_pg_value br_pg_float(double f)
{
    br_pg_value x = {BR_PG_FLOAT, 0, {.f = f}};
    return x;
}
static inline br_pg_value br_pg_text(br_str s)
{
    br_pg_value x = {BR_PG_TEXT, 0, {.s = s}};
    return x;
}
static inline br_pg_value br_pg_bytes(const void *p, size_t len)
{
    br_pg_value x = {BR_PG_BYTES, 0, {.s = {(const char *)p, (uint32_t)len}}};
    return x;
}

/* ---------------------------------------------------------------------------------- */
/* The pool.                                                                          */

/* Defaults of br_pg_options. */
#define BR_PG_DEFAULT_SIZE            8
#define BR_PG_DEFAULT_CONNECT_MS      5000
#define BR_PG_DEFAULT_IDLE_MS         60000
#define BR_PG_DEFAULT_MAX_WAITERS     1024
#define BR_PG_DEFAULT_EXEC_TIMEOUT_MS 30000
#define BR_PG_DEFAULT_BACKOFF_MS      100
#define BR_PG_DEFAULT_BACKOFF_MAX_MS  5000
/* How long a connection whose query was abandoned may take to finish it (after the
 * cancel) before it is closed instead of reused. */
#define BR_PG_DRAIN_MS 5000
/* Most parameters of one query (the protocol's limit). */
#define BR_PG_MAX_PARAMS 65535
/* Most bytes of one query's SQL and parameters together. */
#define BR_PG_MAX_QUERY_BYTES (64u * 1024u * 1024u)
/* Most bytes libpq may hold for one result: a query returning more fails with 502
 * (bound large results with LIMIT, or page through them). */
#define BR_PG_MAX_RESULT_BYTES (64u * 1024u * 1024u)

/* How a pool connects and behaves.  Zero fields take the defaults above. */
typedef struct br_pg_options {
    const char *conninfo;        /* libpq connection string or URI ("host=... dbname=..."
                                    or "postgresql://user@host/db"); "" for libpq's
                                    defaults (PG* variables).  A host name is resolved on
                                    the thread pool; a comma-separated host list is
                                    passed to libpq as it is (and resolved by it, which
                                    blocks). */
    uint32_t size;               /* connections at most (busy, idle and connecting) */
    uint32_t connect_timeout_ms; /* a connection not ready by then is given up */
    uint32_t idle_timeout_ms;    /* an idle connection unused this long is closed
                                    (UINT32_MAX: never) */
    uint32_t max_waiters;        /* operations waiting for a free connection; more fail
                                    at once with 503 */
    uint32_t acquire_timeout_ms; /* the longest an operation waits for a connection
                                    before failing with 503 (0: up to its deadline,
                                    then 504) */
    uint32_t query_timeout_ms;   /* a request's query never runs longer (0: only the
                                    request's deadline) */
    uint32_t exec_timeout_ms;    /* br_pg_exec's default deadline */
    uint32_t backoff_ms;         /* after a failed connect, the first wait ... */
    uint32_t backoff_max_ms;     /* ... doubling up to this; while it runs, operations
                                    that find no connection fail at once with 503 */
} br_pg_options;

typedef struct br_pg_pool br_pg_pool;

/* Creates a pool on loop.  No connection is opened until the first operation needs
 * one.  Returns 0 and sets *out (caller owns it), BR_EINVAL (a conninfo libpq cannot
 * parse: the reason goes to why[0..why_len) when why is not NULL), BR_EIO (libpq.so.5
 * could not be loaded: the SDK loads it when the first pool is made, and the reason,
 * dlerror()'s, goes to why) or BR_ENOMEM. */
int br_pg_pool_new(uv_loop_t *loop, const br_pg_options *options, br_pg_pool **out, char *why,
                   size_t why_len);

/* Closes every connection and frees the pool once their handles closed (so the loop
 * must run on afterwards, as it does after a service's fini).  Operations still
 * waiting or running fail with 503 first.  Sets *self_p to NULL; safe on NULL. */
void br_pg_pool_destroy(br_pg_pool **self_p);

/* A snapshot of the pool, for health checks and tests. */
typedef struct br_pg_stats {
    uint32_t size;          /* the pool's maximum */
    uint32_t open;          /* connections open or opening */
    uint32_t idle;          /* of which idle */
    uint32_t draining;      /* of which finishing an abandoned query */
    uint32_t waiting;       /* operations waiting for a connection */
    bool down;              /* the last connect failed; backing off */
    uint64_t connects;      /* connections made since the pool started */
    uint64_t connect_fails; /* connect attempts that failed */
    uint64_t cancels;       /* cancel requests sent to the server */
} br_pg_stats;
void br_pg_pool_stats(const br_pg_pool *pool, br_pg_stats *out);

/* ---------------------------------------------------------------------------------- */
/* Results.                                                                            */

/* The outcome of one query.  `status` says how it went, HTTP-style, so that a handler
 * can pass a failure on (br_pg_reply_error):
 *
 *   200  the query ran; the rows are below (none for a command)
 *   409  integrity violation (SQLSTATE class 23: unique, foreign key, check...), or a
 *        COMMIT that rolled back because an earlier statement failed
 *   422  the server refused a value (class 22: bad input syntax, out of range...)
 *   499  the request was cancelled while the query ran (it was cancelled on the server)
 *   500  any other SQL error (syntax, undefined table...; sqlstate and detail say which)
 *   502  the answer was larger than BR_PG_MAX_RESULT_BYTES
 *   503  the database is down, refusing, restarting or overloaded (no connection,
 *        connection lost, too many clients, serialization failure, deadlock), or the
 *        pool is exhausted; worth retrying later
 *   504  the deadline passed (waiting for a connection, or running: then the query was
 *        cancelled on the server)
 */
typedef struct br_pg_result {
    uint16_t status;   /* as above */
    br_str detail;     /* why it failed ("" on success) */
    char sqlstate[6];  /* the server's SQLSTATE for a server error, else "" */
    uint32_t nrows;    /* rows returned */
    uint32_t ncols;    /* columns returned */
    uint64_t affected; /* rows inserted, updated, deleted... by a command */
    const void *impl;  /* the runtime's; do not touch */
} br_pg_result;

/* True for a 200. */
static inline bool br_pg_ok(const br_pg_result *r)
{
    return r->status == 200;
}

/* Row `row`, column `col` as a typed value (see br_pg_type); BR_PG_NULL for SQL NULL
 * and for a position out of range.  A BYTES value is decoded once into the request's
 * arena (for br_pg_exec results: memory freed after the callback). */
br_pg_value br_pg_get(const br_pg_result *res, uint32_t row, uint32_t col);

/* Column `col`'s name and type OID; "" and 0 out of range. */
br_str br_pg_col_name(const br_pg_result *res, uint32_t col);
uint32_t br_pg_col_type(const br_pg_result *res, uint32_t col);

/* The index of the column named `name`, or -1. */
int br_pg_col(const br_pg_result *res, const char *name);

/* Writes row `row` into w (barista/writer.h) as an object {column name: value}: SQL
 * NULL as null, BOOL, INT and FLOAT as JSON's booleans and numbers, TEXT and BYTES as
 * strings (numeric, json, uuid, timestamps... in PostgreSQL's text form).  A row out
 * of range writes null. */
void br_pg_write_row(br_writer *w, const br_pg_result *res, uint32_t row);

/* Writes every row of res into w as an array of such objects. */
void br_pg_write_rows(br_writer *w, const br_pg_result *res);

/* Sends res's failure as a FastAPI-shaped error, {"detail": ...}, with its status (a
 * 503 with Retry-After: 1), and ends the request.  As br_reply_error returns. */
int br_pg_reply_error(br_req *req, const br_pg_result *res);

/* ---------------------------------------------------------------------------------- */
/* Queries.                                                                            */

/* Called once on the loop with a query's outcome.  res and everything it points to
 * live until the request ends. */
typedef void (*br_pg_fn)(br_req *req, const br_pg_result *res, void *arg);

/* Runs one SQL statement with params[0..nparams) as $1..$n, for req, on a pooled
 * connection (waiting for one when all are busy: see br_pg_options).  sql and params
 * are copied.  Returns 0 (cb will run unless the request ends first), BR_EINVAL (a
 * NULL argument, a CPU request or an ended one, a TEXT parameter holding a NUL byte),
 * BR_ELIMIT (more than BR_PG_MAX_PARAMS, or over BR_PG_MAX_QUERY_BYTES), BR_ECLOSED
 * (the deadline passed or the request was cancelled) or BR_ENOMEM; then cb never runs.
 * Failures that need the database (down, slow, refusing) come through cb. */
int br_pg_query(br_req *req, br_pg_pool *pool, const char *sql, const br_pg_value *params,
                size_t nparams, br_pg_fn cb, void *arg);

/* Called once with the outcome of br_pg_exec; res lives until the callback returns. */
typedef void (*br_pg_exec_fn)(const br_pg_result *res, void *arg);

/* br_pg_query outside any request: from a service's init, a timer, a background
 * task.  Its deadline is timeout_ms (0: the pool's exec_timeout_ms).  Returns as
 * br_pg_query (BR_EINVAL for a NULL argument). */
int br_pg_exec(br_pg_pool *pool, const char *sql, const br_pg_value *params, size_t nparams,
               uint32_t timeout_ms, br_pg_exec_fn cb, void *arg);

/* ---------------------------------------------------------------------------------- */
/* Transactions: several statements on one connection, all or nothing.                */

typedef struct br_pg_tx br_pg_tx;

typedef enum br_pg_isolation {
    BR_PG_READ_COMMITTED = 0, /* PostgreSQL's default */
    BR_PG_REPEATABLE_READ,
    BR_PG_SERIALIZABLE
} br_pg_isolation;

/* Called once when BEGIN ran: tx is the open transaction, or NULL with res saying why
 * it could not start. */
typedef void (*br_pg_tx_fn)(br_req *req, br_pg_tx *tx, const br_pg_result *res, void *arg);

/* Takes a connection for req and opens a transaction on it.  Returns as br_pg_query.
 * The transaction belongs to the request: when the request ends with it still open,
 * it is rolled back (and its connection reused only once that finished). */
int br_pg_begin(br_req *req, br_pg_pool *pool, br_pg_isolation iso, br_pg_tx_fn cb, void *arg);

/* Runs a statement inside tx; one at a time (BR_EINVAL while another runs, or after
 * the transaction ended).  A failed statement leaves the transaction aborted: later
 * statements fail and COMMIT rolls back (409). */
int br_pg_tx_query(br_pg_tx *tx, const char *sql, const br_pg_value *params, size_t nparams,
                   br_pg_fn cb, void *arg);

/* Ends tx with COMMIT or ROLLBACK; cb gets the outcome (COMMIT of an aborted
 * transaction: 409).  tx is gone when cb runs.  Returns as br_pg_tx_query. */
int br_pg_commit(br_pg_tx *tx, br_pg_fn cb, void *arg);
int br_pg_rollback(br_pg_tx *tx, br_pg_fn cb, void *arg);

/* ---------------------------------------------------------------------------------- */
/* LISTEN/NOTIFY.                                                                      */

/* Most channels one pool listens to. */
#define BR_PG_MAX_CHANNELS 64

/* Called on the loop for each notification on a channel the pool listens to. */
typedef void (*br_pg_notify_fn)(const char *channel, br_str payload, void *arg);

/* Listens to `channel` (any name; quoted as an identifier) on the pool's one
 * listening connection, opened on first use outside the pool's size and re-opened
 * (with backoff) when lost; notifications sent while it was down are lost.  A channel
 * has one callback; listening again replaces it.  Returns 0, BR_EINVAL, BR_EFULL
 * (BR_PG_MAX_CHANNELS) or BR_ENOMEM.  Send with br_pg_query("SELECT pg_notify($1, $2)"). */
int br_pg_listen(br_pg_pool *pool, const char *channel, br_pg_notify_fn cb, void *arg);

/* Stops listening to channel.  Returns 0 or BR_ENOTFOUND. */
int br_pg_unlisten(br_pg_pool *pool, const char *channel);

/* True while the listening connection is up and LISTENs to every channel. */
bool br_pg_listening(const br_pg_pool *pool);

#ifdef __cplusplus
}
#endif

#endif /* BARISTA_PG_H */
