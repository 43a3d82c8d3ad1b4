/*
 * redis_int.h - the insides of barista/redis.h, shared by redis_conn.c (a hiredis
 * connection on the loop: resolve, connect, AUTH/SELECT, close), redis.c (the pool and
 * its commands) and redis_sub.c (pub/sub).
 *
 * Lifetimes.  hiredis owns its redisAsyncContext and frees it itself when the
 * connection drops (after calling every pending reply callback with a NULL reply, then
 * the event library's cleanup, then the disconnect callback).  Our rconn outlives it:
 * it is freed only once hiredis called cleanup (or never had a context) and no
 * callback of ours is running on it.
 */
#ifndef BARISTA_WORKER_REDIS_INT_H
#define BARISTA_WORKER_REDIS_INT_H

#include "barista/dl_hiredis.h"

#include "barista/redis.h"
#include "db_int.h"
#include "worker_int.h"

/* Longest failure detail kept. */
#define REDIS_DETAIL_MAX 256

typedef enum rconn_state {
    R_RESOLVING,  /* the host's address is being looked up */
    R_CONNECTING, /* hiredis connects */
    R_HANDSHAKE,  /* AUTH / SELECT sent */
    R_READY       /* takes commands */
} rconn_state;

typedef struct rconn rconn;
typedef struct rop rop;
typedef struct rsub rsub;

/* What a connection is for: one of the pool's, or the subscriber. */
typedef struct rconn_ops {
    void (*ready)(rconn *c);                   /* connected, AUTH and SELECT done */
    void (*failed)(rconn *c, const char *why); /* could not connect (or refused AUTH) */
    void (*gone)(rconn *c, const char *why);   /* closed, whatever the reason: forget it */
} rconn_ops;

/* The poll handle hiredis's events drive; freed in its close callback. */
typedef struct rwatch {
    uv_poll_t poll;        /* the socket */
    rconn *conn;           /* its connection */
    redisAsyncContext *ac; /* NULL after hiredis's cleanup */
    int events;            /* UV_READABLE | UV_WRITABLE watched */
} rwatch;

struct rconn {
    br_redis_pool *pool;   /* its pool */
    const rconn_ops *ops;  /* what it is for */
    void *owner;           /* the subscriber, for its connection */
    redisAsyncContext *ac; /* hiredis's context; NULL once freed or never made */
    rwatch *watch;         /* the socket's poll, or NULL */
    rconn_state state;     /* see above */
    rconn *prev, *next;    /* in the pool's connections */
    br__due due;           /* the connect deadline */
    br__resolve *resolve;  /* the host lookup in flight */
    rop *head, *tail;      /* commands sent, oldest first */
    uint32_t pending;      /* replies outstanding */
    unsigned handshake;    /* AUTH / SELECT replies still due */
    bool closing;          /* being closed: take no command */
    bool gone;             /* ops->gone ran */
    bool ac_done;          /* hiredis let go of it (cleanup ran, or no context) */
    unsigned io;           /* nesting of our callbacks on it: free after them */
};

struct br_redis_pool {
    uv_loop_t *loop;                          /* everything runs here */
    br_redis_options opt;                     /* with defaults; strings below are owned copies */
    char *host, *username, *password;         /* owned */
    bool unix_socket;                         /* host is a socket path */
    bool resolve;                             /* host is a name to resolve */
    br__dues dues;                            /* every deadline, one timer */
    rconn *conns;                             /* the pool's connections */
    uint32_t nconns;                          /* their number */
    uint32_t nconnecting;                     /* of which not ready yet */
    br__waitq waiters;                        /* commands waiting for a connection */
    uint32_t failures;                        /* connects failed in a row */
    uint64_t retry_at;                        /* no connect before this uv_now() */
    bool down;                                /* the last connect failed */
    char down_why[REDIS_DETAIL_MAX];          /* why */
    uint64_t rng;                             /* backoff jitter */
    uint64_t connects, connect_fails, resets; /* for br_redis_pool_stats */
    rsub *sub;                                /* pub/sub, or NULL */
    bool destroying;                          /* br_redis_pool_destroy runs */
};

/* ---- redis_conn.c ---- */

/* Opens a connection (pooled: counted in the pool's list).  NULL when it failed at
 * once (ops->failed and ops->gone ran) or memory ran out. */
rconn *redis__conn_open(br_redis_pool *p, const rconn_ops *ops, void *owner, bool pooled);

/* Closes c: hiredis calls every pending reply callback with NULL first. */
void redis__conn_close(rconn *c);

/* Frees c once it is gone, hiredis let go and no callback runs on it. */
void redis__conn_maybe_free(rconn *c);

/* ---- redis_sub.c ---- */
void redis__sub_destroy(br_redis_pool *p);

#endif /* BARISTA_WORKER_REDIS_INT_H */
