/*
 * barista/redis.h - Redis for I/O services (redis-py's asyncio client in the seeds):
 * a small pool of connections on the worker's loop over which every request's commands
 * are pipelined, binary-safe arguments, typed replies, pipelines (MULTI/EXEC inside
 * one), pub/sub callbacks and reconnects - without ever blocking the loop.
 *
 * hiredis (Debian's libhiredis) speaks the protocol; its connections are driven by the
 * loop through uv_poll, and a host name is resolved on the thread pool first.
 *
 *   static void counted(br_req *req, const br_redis_result *res, void *arg)
 *   {
 *       if (!br_redis_ok(res)) {             503 down, 504 too slow, 500 error reply
 *           br_redis_reply_error(req, res);
 *           return;
 *       }
 *       ...res->reply->integer...
 *   }
 *   br_str argv[] = {br_str_c("INCR"), key};
 *   br_redis_command(req, pool, argv, 2, counted, NULL);
 *
 * As with barista/pg.h, a command belongs to its request: its callback runs once on the
 * loop unless the request ends first, its deadline is the request's remaining deadline,
 * and a broker cancel fails it with 499 when the handler registered no cancel callback.
 * Redis cannot stop a command it received; a command still unanswered at its deadline
 * fails with 504, and when it is the oldest one on its connection (so the server is
 * stuck on it, or gone) that connection is dropped and the commands behind it fail with
 * 503 rather than wait.
 */
#ifndef BARISTA_REDIS_H
#define BARISTA_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "barista/worker.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Defaults of br_redis_options. */
#define BR_REDIS_DEFAULT_HOST            "127.0.0.1"
#define BR_REDIS_DEFAULT_PORT            6379
#define BR_REDIS_DEFAULT_SIZE            2
#define BR_REDIS_DEFAULT_CONNECT_MS      5000
#define BR_REDIS_DEFAULT_MAX_PENDING     4096
#define BR_REDIS_DEFAULT_EXEC_TIMEOUT_MS 30000
#define BR_REDIS_DEFAULT_BACKOFF_MS      100
#define BR_REDIS_DEFAULT_BACKOFF_MAX_MS  5000
/* Most arguments of one command, and commands of one pipeline. */
#define BR_REDIS_MAX_ARGS     4096
#define BR_REDIS_MAX_PIPELINE 1024
/* Most bytes of one command (or pipeline) as sent. */
#define BR_REDIS_MAX_COMMAND_BYTES (64u * 1024u * 1024u)
/* Most bytes a br_redis_exec reply may take once converted (a request's replies live
 * in its arena, which BR_ARENA_MAX bounds): more fails with 502. */
#define BR_REDIS_MAX_REPLY_BYTES (64u * 1024u * 1024u)
/* Most channels and patterns one pool subscribes to. */
#define BR_REDIS_MAX_SUBSCRIPTIONS 64

/* How a pool connects.  Zero fields take the defaults above. */
typedef struct br_redis_options {
    const char *host;            /* name or address, or a Unix socket path ("/...") */
    uint16_t port;               /* TCP port */
    const char *username;        /* ACL user for AUTH (Redis 6+); NULL: none */
    const char *password;        /* AUTH after connecting; NULL: none */
    uint32_t db;                 /* SELECT after connecting (0: stay on 0) */
    uint32_t size;               /* connections; every command is pipelined on one */
    uint32_t connect_timeout_ms; /* a connection not ready by then is given up */
    uint32_t max_pending;        /* commands in flight per connection; past that on
                                    every connection, commands fail at once with 503 */
    uint32_t exec_timeout_ms;    /* br_redis_exec's default deadline */
    uint32_t backoff_ms;         /* after a failed connect, the first wait ... */
    uint32_t backoff_max_ms;     /* ... doubling up to this; meanwhile commands that
                                    find no connection fail at once with 503 */
} br_redis_options;

typedef struct br_redis_pool br_redis_pool;

/* Creates a pool on loop; connections open when the first command needs one.  Returns
 * 0 and sets *out (caller owns it), BR_EINVAL (a bad option: the reason in why when
 * not NULL), BR_EIO (libhiredis.so.0.14 could not be loaded: the SDK loads it when the
 * first pool is made; the reason in why) or BR_ENOMEM. */
int br_redis_pool_new(uv_loop_t *loop, const br_redis_options *options, br_redis_pool **out,
                      char *why, size_t why_len);

/* Closes every connection (commands in flight fail with 503 first) and frees the pool
 * once its handles closed: the loop must run on afterwards.  Sets *self_p to NULL;
 * safe on NULL. */
void br_redis_pool_destroy(br_redis_pool **self_p);

/* A snapshot of the pool. */
typedef struct br_redis_stats {
    uint32_t size;          /* the pool's maximum */
    uint32_t open;          /* connections open or opening */
    uint32_t ready;         /* of which ready for commands */
    uint32_t pending;       /* commands sent and not yet answered */
    uint32_t waiting;       /* commands waiting for a connection */
    bool down;              /* the last connect failed; backing off */
    uint64_t connects;      /* connections made */
    uint64_t connect_fails; /* connect attempts that failed */
    uint64_t resets;        /* connections dropped because a command timed out */
} br_redis_stats;
void br_redis_pool_stats(const br_redis_pool *pool, br_redis_stats *out);

/* ---------------------------------------------------------------------------------- */
/* Replies.                                                                            */

typedef enum br_redis_type {
    BR_REDIS_NIL = 0, /* a nil (GET of a missing key) */
    BR_REDIS_STRING,  /* str: a bulk string (any bytes) */
    BR_REDIS_INT,     /* integer */
    BR_REDIS_ARRAY,   /* elems[0..n) */
    BR_REDIS_STATUS,  /* str: a status ("OK", "PONG") */
    BR_REDIS_ERROR    /* str: an error reply ("WRONGTYPE ...") */
} br_redis_type;

/* One reply, as Redis sent it. */
typedef struct br_redis_reply {
    br_redis_type type;                 /* which fields hold it */
    int64_t integer;                    /* INT */
    br_str str;                         /* STRING, STATUS, ERROR (NUL-terminated too) */
    size_t n;                           /* ARRAY: elements */
    const struct br_redis_reply *elems; /* ARRAY: the elements */
} br_redis_reply;

/* A command's outcome.  status:
 *   200  a reply came (reply says what; not an error reply)
 *   500  an error reply (reply->str and detail hold it)
 *   503  Redis is down or unreachable, the connection was lost, the pool is
 *        exhausted, or Redis answered LOADING / BUSY / READONLY / MASTERDOWN / OOM
 *   504  no answer within the deadline
 *   499  the request was cancelled
 *   502  a reply too large to keep */
typedef struct br_redis_result {
    uint16_t status;             /* as above */
    br_str detail;               /* why it failed; "" on success */
    const br_redis_reply *reply; /* the reply (200 and 500), else NULL */
} br_redis_result;

static inline bool br_redis_ok(const br_redis_result *r)
{
    return r->status == 200;
}

/* Sends res's failure as {"detail": ...} with its status (503 with Retry-After: 1)
 * and ends the request. */
int br_redis_reply_error(br_req *req, const br_redis_result *res);

/* ---------------------------------------------------------------------------------- */
/* Commands.                                                                           */

/* Called once on the loop; res and its reply live until the request ends. */
typedef void (*br_redis_fn)(br_req *req, const br_redis_result *res, void *arg);

/* Sends one command, argv[0..argc) (any bytes; copied), for req, pipelined on the
 * least busy connection.  Returns 0 (cb will run unless the request ends first),
 * BR_EINVAL (NULL arguments, a CPU or ended request, or a command that would hold or
 * change a shared connection: the blocking ones (BLPOP, BRPOP, BLMOVE, BZPOPMIN,
 * XREAD ... BLOCK, WAIT ...), SUBSCRIBE and its kin (br_redis_subscribe), MONITOR,
 * SELECT, AUTH, QUIT, RESET, CLIENT REPLY, WATCH, MULTI/EXEC/DISCARD (in a
 * br_redis_pipeline they are fine)), BR_ELIMIT (past BR_REDIS_MAX_ARGS or
 * BR_REDIS_MAX_COMMAND_BYTES), BR_ECLOSED (deadline passed, request cancelled) or
 * BR_ENOMEM; then cb never runs. */
int br_redis_command(br_req *req, br_redis_pool *pool, const br_str *argv, size_t argc,
                     br_redis_fn cb, void *arg);

/* One command of a pipeline. */
typedef struct br_redis_cmd {
    const br_str *argv; /* its arguments */
    size_t argc;        /* their number */
} br_redis_cmd;

/* Called once with every command's outcome, results[i] for cmds[i]. */
typedef void (*br_redis_pipeline_fn)(br_req *req, const br_redis_result *results, size_t n,
                                     void *arg);

/* Sends cmds[0..n) back to back on one connection, nothing else in between, and calls
 * cb once with all the replies.  MULTI ... EXEC (or DISCARD) inside makes them a
 * transaction; a MULTI must be closed within the pipeline.  Returns as
 * br_redis_command (BR_ELIMIT past BR_REDIS_MAX_PIPELINE commands). */
int br_redis_pipeline(br_req *req, br_redis_pool *pool, const br_redis_cmd *cmds, size_t n,
                      br_redis_pipeline_fn cb, void *arg);

/* Called once with the outcome of br_redis_exec; res lives until it returns. */
typedef void (*br_redis_exec_fn)(const br_redis_result *res, void *arg);

/* br_redis_command outside any request (init, timers, background tasks); its deadline
 * is timeout_ms (0: the pool's exec_timeout_ms). */
int br_redis_exec(br_redis_pool *pool, const br_str *argv, size_t argc, uint32_t timeout_ms,
                  br_redis_exec_fn cb, void *arg);

/* ---------------------------------------------------------------------------------- */
/* Pub/sub.                                                                            */

/* Called on the loop for each message: the channel it was published to, the pattern
 * that matched it (empty for a plain subscription) and the message. */
typedef void (*br_redis_message_fn)(br_str channel, br_str pattern, br_str message, void *arg);

/* Subscribes to `channel` (a glob pattern when `pattern`) on the pool's one
 * subscriber connection, opened on first use outside the pool's size and opened again
 * with backoff (subscribing again) when lost; messages published meanwhile are lost.
 * Subscribing again replaces the callback.  Returns 0, BR_EINVAL, BR_EFULL
 * (BR_REDIS_MAX_SUBSCRIPTIONS) or BR_ENOMEM.  Publish with a PUBLISH command. */
int br_redis_subscribe(br_redis_pool *pool, const char *channel, bool pattern,
                       br_redis_message_fn cb, void *arg);

/* Unsubscribes.  Returns 0 or BR_ENOTFOUND. */
int br_redis_unsubscribe(br_redis_pool *pool, const char *channel, bool pattern);

/* True while the subscriber connection is up and Redis confirmed every subscription. */
bool br_redis_subscribed(const br_redis_pool *pool);

#ifdef __cplusplus
}
#endif

#endif /* BARISTA_REDIS_H */
