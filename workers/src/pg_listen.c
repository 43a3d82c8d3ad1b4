/*
 * pg_listen.c - LISTEN/NOTIFY (barista/pg.h): one connection per pool, outside its
 * size, that LISTENs to every channel asked for and hands each notification to its
 * channel's callback.  Lost, it is opened again after a backoff and LISTENs again;
 * whenever the set of channels changes it re-sends the whole set (LISTEN is
 * idempotent), so there is never a partial state to track.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg_int.h"

/* A channel listened to. */
typedef struct listen_chan {
    char *name;         /* as given */
    br_pg_notify_fn cb; /* its callback */
    void *arg;          /* the callback's argument */
} listen_chan;

struct pg_listener {
    br_pg_pool *pool;                      /* its pool (conninfo, loop, deadlines) */
    pg_conn *conn;                         /* the connection, or NULL */
    listen_chan chans[BR_PG_MAX_CHANNELS]; /* channels, in the order asked */
    size_t n;                              /* entries in chans */
    br__due retry;                         /* the reconnect after a backoff */
    uint32_t failures;                     /* connects failed in a row */
    uint64_t rng;                          /* backoff jitter */
    bool up;                               /* connected */
    bool in_flight;                        /* a LISTEN batch awaits its answers */
    bool dirty;                            /* the channels changed since it was sent */
    bool synced;                           /* the server LISTENs to exactly chans */
};

static void listener_connect(pg_listener *l);

/* Sends "UNLISTEN *; LISTEN a; LISTEN b; ..." with every name quoted. */
static void resync(pg_listener *l)
{
    pg_conn *c = l->conn;
    if (!c || !l->up)
        return;
    if (l->in_flight) {
        l->dirty = true;
        return;
    }
    size_t cap = 16;
    for (size_t i = 0; i < l->n; i++)
        cap += 2 * strlen(l->chans[i].name) + 16;
    char *sql = malloc(cap);
    if (!sql)
        return;
    size_t len = (size_t)snprintf(sql, cap, "UNLISTEN *");
    for (size_t i = 0; i < l->n; i++) {
        const char *name = l->chans[i].name;
        char *q = PQescapeIdentifier(c->pg, name, strlen(name));
        if (!q) {
            free(sql);
            return;
        }
        len += (size_t)snprintf(sql + len, cap - len, "; LISTEN %s", q);
        PQfreemem(q);
    }
    int ok = PQsendQuery(c->pg, sql);
    free(sql);
    if (!ok || pg__conn_flush(c) < 0) {
        pg__conn_close(c);
        return;
    }
    l->in_flight = true;
    l->dirty = false;
    l->synced = false;
}

static void on_ready(pg_conn *c)
{
    pg_listener *l = c->owner;
    if (l->failures)
        br__log("pg: listening connection up again");
    l->failures = 0;
    l->up = true;
    c->state = PG_IDLE;
    resync(l);
}

static void on_failed(pg_conn *c, const char *why)
{
    pg_listener *l = c->owner;
    l->failures++;
    if (l->failures == 1)
        br__log("pg: listening connection cannot connect: %s", why);
}

static void deliver(pg_listener *l, PGnotify *n)
{
    for (size_t i = 0; i < l->n; i++) {
        if (strcmp(l->chans[i].name, n->relname) == 0) {
            const char *payload = n->extra ? n->extra : "";
            l->chans[i].cb(n->relname, br_str_c(payload), l->chans[i].arg);
            return;
        }
    }
}

static void on_readable(pg_conn *c)
{
    pg_listener *l = c->owner;
    if (!PQconsumeInput(c->pg)) {
        char why[PG_DETAIL_MAX];
        pg__conn_error(c, why, sizeof(why));
        br__log("pg: listening connection lost: %s", why);
        pg__conn_close(c);
        return;
    }
    while (l->in_flight && !PQisBusy(c->pg)) {
        PGresult *r = PQgetResult(c->pg);
        if (!r) {
            l->in_flight = false;
            l->synced = !l->dirty;
            if (l->dirty)
                resync(l);
            break;
        }
        if (PQresultStatus(r) == PGRES_FATAL_ERROR)
            br__log("pg: LISTEN failed: %s", PQresultErrorMessage(r));
        PQclear(r);
    }
    PGnotify *n;
    while (l->conn == c && (n = PQnotifies(c->pg))) {
        deliver(l, n);
        PQfreemem(n);
    }
}

static void on_writable(pg_conn *c)
{
    if (pg__conn_flush(c) < 0)
        pg__conn_close(c);
}

static void retry_due(br__due *d)
{
    pg_listener *l = (pg_listener *)((char *)d - offsetof(pg_listener, retry));
    listener_connect(l);
}

static void on_closing(pg_conn *c)
{
    pg_listener *l = c->owner;
    br_pg_pool *p = l->pool;
    l->conn = NULL;
    l->up = l->in_flight = l->synced = false;
    if (p->destroying || l->n == 0)
        return;
    if (!l->failures)
        l->failures = 1; /* a lost connection waits the first backoff too */
    uint32_t wait = br__backoff_ms(l->failures, p->opt.backoff_ms, p->opt.backoff_max_ms, &l->rng);
    br__dues_del(&p->dues, &l->retry);
    br__dues_add(&p->dues, &l->retry, uv_now(p->loop) + wait, retry_due);
}

static const pg_conn_ops listen_ops = {
    .ready = on_ready,
    .failed = on_failed,
    .readable = on_readable,
    .writable = on_writable,
    .closing = on_closing,
};

static void listener_connect(pg_listener *l)
{
    if (l->conn || l->retry.armed || l->pool->destroying)
        return;
    l->conn = pg__conn_open(l->pool, &listen_ops, l, false);
}

int br_pg_listen(br_pg_pool *p, const char *channel, br_pg_notify_fn cb, void *arg)
{
    if (!p || !channel || !channel[0] || !cb || p->destroying)
        return BR_EINVAL;
    if (!p->listener) {
        p->listener = calloc(1, sizeof(*p->listener));
        if (!p->listener)
            return BR_ENOMEM;
        p->listener->pool = p;
        p->listener->rng = br__rng_seed();
    }
    pg_listener *l = p->listener;
    for (size_t i = 0; i < l->n; i++) {
        if (strcmp(l->chans[i].name, channel) == 0) {
            l->chans[i].cb = cb;
            l->chans[i].arg = arg;
            return 0;
        }
    }
    if (l->n == BR_PG_MAX_CHANNELS)
        return BR_EFULL;
    char *name = strdup(channel);
    if (!name)
        return BR_ENOMEM;
    l->chans[l->n++] = (listen_chan){name, cb, arg};
    if (l->conn)
        resync(l);
    else
        listener_connect(l);
    return 0;
}

int br_pg_unlisten(br_pg_pool *p, const char *channel)
{
    pg_listener *l = p ? p->listener : NULL;
    if (!l || !channel)
        return BR_ENOTFOUND;
    for (size_t i = 0; i < l->n; i++) {
        if (strcmp(l->chans[i].name, channel) == 0) {
            free(l->chans[i].name);
            memmove(&l->chans[i], &l->chans[i + 1], (l->n - i - 1) * sizeof(l->chans[0]));
            l->n--;
            resync(l);
            return 0;
        }
    }
    return BR_ENOTFOUND;
}

bool br_pg_listening(const br_pg_pool *p)
{
    const pg_listener *l = p ? p->listener : NULL;
    return l && l->up && l->synced;
}

void pg__listener_destroy(br_pg_pool *p)
{
    pg_listener *l = p->listener;
    if (!l)
        return;
    br__dues_del(&p->dues, &l->retry);
    if (l->conn)
        pg__conn_close(l->conn);
    for (size_t i = 0; i < l->n; i++)
        free(l->chans[i].name);
    free(l);
    p->listener = NULL;
}
