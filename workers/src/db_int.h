/*
 * db_int.h - what the database clients (pg.c, pg_listen.c, redis.c) share: a deadline
 * list with one timer, the hook that lets a broker cancel reach a query, reconnect
 * backoff, and host-name resolution off the loop.
 *
 * Deadlines.  A pool has many things that expire - requests waiting for a connection,
 * queries running, connections connecting, idle or draining - and most are removed
 * long before they expire.  Giving each its own uv_timer_t would cost a handle to
 * close for every query; instead each is a br__due in one list sorted by time, and one
 * timer is armed for the earliest.  Removing the earliest leaves the timer as it is:
 * when it fires with nothing due it simply re-arms for the new head.
 */
#ifndef BARISTA_WORKER_DB_INT_H
#define BARISTA_WORKER_DB_INT_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "barista/worker.h"

/* ---------------------------------------------------------------------------------- */
/* Deadlines.                                                                          */

typedef struct br__due br__due;
typedef void (*br__due_fn)(br__due *d);

/* One thing that expires.  Embedded in the owner's struct; zeroed means not armed. */
struct br__due {
    br__due *prev, *next; /* in the list, earliest first */
    uint64_t at;          /* uv_now() milliseconds at which it fires */
    br__due_fn fire;      /* what runs then (after it left the list) */
    bool armed;           /* in the list */
};

/* A sorted list of dues and the timer armed for its head. */
typedef struct br__dues {
    br__due *head, *tail; /* earliest first */
    uv_timer_t timer;     /* fires at head->at (or earlier, then re-arms) */
    uint64_t timer_at;    /* when the timer fires; valid while timer_on */
    bool timer_on;        /* the timer is started */
    bool closed;          /* br__dues_close was called: never start the timer again */
} br__dues;

/* Initialises q's timer on loop (the caller sets q->timer.data only for closing). */
void br__dues_init(uv_loop_t *loop, br__dues *q);

/* Arms d to fire(d) at `at` (uv_now() ms; a time already past fires on the next loop
 * iteration, never from this call).  d must not be armed. */
void br__dues_add(br__dues *q, br__due *d, uint64_t at, br__due_fn fire);

/* Disarms d; nothing when it is not armed. */
void br__dues_del(br__dues *q, br__due *d);

/* Forgets every due and closes the timer; cb(timer) runs when it is closed. */
void br__dues_close(br__dues *q, uv_close_cb cb);

/* ---------------------------------------------------------------------------------- */
/* Broker cancels.                                                                     */

/* An operation that wants to hear that its request was cancelled (the client went
 * away, or the broker's deadline passed).  When the handler registered no cancel
 * callback of its own, the database clients register one that calls every watching
 * operation's `cancel`; a handler that registers its own later takes over (and its
 * reply ends the request, which aborts the operations anyway). */
typedef struct br__dbc {
    struct br__dbc *prev, *next;       /* in the request's list */
    struct br__dbcs *list;             /* that list, or NULL when not watching */
    void (*cancel)(struct br__dbc *c); /* the request was cancelled */
} br__dbc;

/* Starts watching req's cancel with c.  Does nothing when the handler has a cancel
 * callback of its own, or the arena is full (the deadline still stops the work). */
void br__dbc_watch(br_req *req, br__dbc *c, void (*cancel)(br__dbc *c));

/* Stops watching; safe when c is not watching. */
void br__dbc_forget(br__dbc *c);

/* ---------------------------------------------------------------------------------- */
/* Reconnects and addresses.                                                           */

/* The delay before reconnect attempt number `failures` (1 for the first failure):
 * first_ms doubling up to max_ms, then a random half of it added or taken away, so
 * that many workers do not reconnect in step.  *rng is xorshift state (non-zero). */
uint32_t br__backoff_ms(uint32_t failures, uint32_t first_ms, uint32_t max_ms, uint64_t *rng);

/* A non-zero seed for br__backoff_ms's state. */
uint64_t br__rng_seed(void);

/* True when host is an IPv4 or IPv6 address literal (no name to resolve). */
bool br__host_is_numeric(const char *host);

/* A name resolution running on the thread pool (uv_getaddrinfo). */
typedef struct br__resolve br__resolve;

/* Called on the loop with the first address found as text, or NULL and a reason. */
typedef void (*br__resolve_fn)(void *arg, const char *addr, const char *why);

/* Resolves host (a name: resolving one is a blocking call, which is why it runs off
 * the loop).  Returns the resolution for br__resolve_cancel, or NULL when it could not
 * start (then cb never runs). */
br__resolve *br__resolve_start(uv_loop_t *loop, const char *host, br__resolve_fn cb, void *arg);

/* Abandons a resolution: its cb never runs.  Its memory goes when the lookup ends. */
void br__resolve_cancel(br__resolve *r);

/* ---------------------------------------------------------------------------------- */
/* Waiting for a connection: the pools' FIFO of operations, intrusive.                */

/* The link an operation embeds to wait in a br__waitq. */
typedef struct br__waiter {
    struct br__waiter *prev, *next; /* neighbours while waiting */
    bool waiting;                   /* in a queue now */
} br__waiter;

/* Operations waiting for a connection, oldest first. */
typedef struct br__waitq {
    br__waiter *head, *tail; /* oldest, newest */
    uint32_t n;              /* entries */
} br__waitq;

/* Appends w (which must not be waiting). */
static inline void br__waitq_push(br__waitq *q, br__waiter *w)
{
    w->waiting = true;
    w->next = NULL;
    w->prev = q->tail;
    if (q->tail)
        q->tail->next = w;
    else
        q->head = w;
    q->tail = w;
    q->n++;
}

/* Takes w out of q; nothing when it is not waiting. */
static inline void br__waitq_remove(br__waitq *q, br__waiter *w)
{
    if (!w->waiting)
        return;
    if (w->prev)
        w->prev->next = w->next;
    else
        q->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        q->tail = w->prev;
    w->prev = w->next = NULL;
    w->waiting = false;
    q->n--;
}

#endif /* BARISTA_WORKER_DB_INT_H */
