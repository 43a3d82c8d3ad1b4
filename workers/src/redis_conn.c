/*
 * redis_conn.c - one hiredis connection on the worker's loop (redis_int.h): the host
 * resolved on the thread pool, hiredis's non-blocking connect, its read and write
 * events driven by a uv_poll (our own adapter, which also hands socket errors to
 * hiredis instead of dropping them), AUTH and SELECT, and closing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis_int.h"

/* ---------------------------------------------------------------------------------- */
/* hiredis's event hooks.                                                              */

static void on_io(uv_poll_t *h, int status, int events)
{
    rwatch *w = h->data;
    rconn *c = w->conn;
    c->io++;
    if (status < 0)
        events = UV_READABLE | UV_WRITABLE; /* hiredis's read or write finds the error */
    if ((events & UV_READABLE) && w->ac)
        redisAsyncHandleRead(w->ac);
    if ((events & UV_WRITABLE) && w->ac)
        redisAsyncHandleWrite(w->ac);
    c->io--;
    redis__conn_maybe_free(c);
}

static void set_events(rwatch *w, int events)
{
    if (events == w->events)
        return;
    w->events = events;
    if (events)
        uv_poll_start(&w->poll, events, on_io);
    else
        uv_poll_stop(&w->poll);
}

static void add_read(void *priv)
{
    rwatch *w = priv;
    set_events(w, w->events | UV_READABLE);
}

static void del_read(void *priv)
{
    rwatch *w = priv;
    set_events(w, w->events & ~UV_READABLE);
}

static void add_write(void *priv)
{
    rwatch *w = priv;
    set_events(w, w->events | UV_WRITABLE);
}

static void del_write(void *priv)
{
    rwatch *w = priv;
    set_events(w, w->events & ~UV_WRITABLE);
}

static void watch_closed(uv_handle_t *h)
{
    free(h->data);
}

/* hiredis frees the context: our last word on it. */
static void cleanup(void *priv)
{
    rwatch *w = priv;
    rconn *c = w->conn;
    w->ac = NULL;
    w->poll.data = w;
    uv_close((uv_handle_t *)&w->poll, watch_closed);
    c->watch = NULL;
    c->ac = NULL;
    c->ac_done = true;
}

static int attach(rconn *c)
{
    rwatch *w = calloc(1, sizeof(*w));
    if (!w)
        return -1;
    int rc = uv_poll_init_socket(c->pool->loop, &w->poll, c->ac->c.fd);
    if (rc != 0) {
        br__log("redis: uv_poll_init_socket: %s", uv_strerror(rc));
        free(w);
        return -1;
    }
    w->poll.data = w;
    w->conn = c;
    w->ac = c->ac;
    c->watch = w;
    c->ac->ev.data = w;
    c->ac->ev.addRead = add_read;
    c->ac->ev.delRead = del_read;
    c->ac->ev.addWrite = add_write;
    c->ac->ev.delWrite = del_write;
    c->ac->ev.cleanup = cleanup;
    return 0;
}

/* ---------------------------------------------------------------------------------- */
/* Connecting.                                                                         */

static void conn_gone(rconn *c, const char *why)
{
    if (c->gone)
        return;
    c->gone = true;
    c->closing = true;
    br__dues_del(&c->pool->dues, &c->due);
    if (c->resolve)
        br__resolve_cancel(c->resolve);
    c->resolve = NULL;
    c->ops->gone(c, why);
}

static void conn_failed(rconn *c, const char *why)
{
    if (c->gone)
        return;
    c->ops->failed(c, why);
    conn_gone(c, why);
}

static void handshake_done(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)priv;
    rconn *c = ac->data;
    redisReply *r = reply;
    if (!r || c->gone)
        return; /* the connection went: its disconnect says so */
    if (r->type == REDIS_REPLY_ERROR) {
        char why[REDIS_DETAIL_MAX];
        snprintf(why, sizeof(why), "redis refused %s: %s",
                 c->pool->password && c->handshake == 2 ? "AUTH" : "the handshake", r->str);
        conn_failed(c, why);
        redis__conn_close(c);
        return;
    }
    if (--c->handshake == 0) {
        c->state = R_READY;
        c->ops->ready(c);
    }
}

static void on_connect(const redisAsyncContext *cac, int status)
{
    redisAsyncContext *ac = (redisAsyncContext *)cac;
    rconn *c = ac->data;
    br_redis_pool *p = c->pool;
    if (status != REDIS_OK) {
        /* hiredis frees the context after this returns. */
        char why[REDIS_DETAIL_MAX];
        snprintf(why, sizeof(why), "%s", ac->errstr[0] ? ac->errstr : "connect failed");
        conn_failed(c, why);
        return;
    }
    br__dues_del(&p->dues, &c->due);
    c->state = R_HANDSHAKE;
    c->handshake = 0;
    if (p->password) {
        const char *argv[3];
        size_t lens[3];
        int argc = 0;
        argv[argc] = "AUTH";
        lens[argc++] = 4;
        if (p->username) {
            argv[argc] = p->username;
            lens[argc++] = strlen(p->username);
        }
        argv[argc] = p->password;
        lens[argc++] = strlen(p->password);
        redisAsyncCommandArgv(ac, handshake_done, NULL, argc, argv, lens);
        c->handshake++;
    }
    if (p->opt.db) {
        char db[16];
        snprintf(db, sizeof(db), "%u", p->opt.db);
        const char *argv[2] = {"SELECT", db};
        size_t lens[2] = {6, strlen(db)};
        redisAsyncCommandArgv(ac, handshake_done, NULL, 2, argv, lens);
        c->handshake++;
    }
    if (c->handshake == 0) {
        c->state = R_READY;
        c->ops->ready(c);
    }
}

static void on_disconnect(const redisAsyncContext *cac, int status)
{
    redisAsyncContext *ac = (redisAsyncContext *)cac;
    rconn *c = ac->data;
    char why[REDIS_DETAIL_MAX];
    snprintf(why, sizeof(why), "%s",
             status == REDIS_OK ? "connection closed"
                                : (ac->errstr[0] ? ac->errstr : "connection lost"));
    c->ac = NULL;
    conn_gone(c, why);
}

static void connect_expired(br__due *d)
{
    rconn *c = (rconn *)((char *)d - offsetof(rconn, due));
    char why[96];
    snprintf(why, sizeof(why), "no connection within %u ms", c->pool->opt.connect_timeout_ms);
    c->io++;
    conn_failed(c, why);
    redis__conn_close(c);
    c->io--;
    redis__conn_maybe_free(c);
}

static void conn_start(rconn *c, const char *addr)
{
    br_redis_pool *p = c->pool;
    c->ac = p->unix_socket ? redisAsyncConnectUnix(p->host) : redisAsyncConnect(addr, p->opt.port);
    if (!c->ac) {
        c->ac_done = true;
        conn_failed(c, "out of memory making a connection");
        return;
    }
    if (c->ac->err) {
        char why[REDIS_DETAIL_MAX];
        snprintf(why, sizeof(why), "%s", c->ac->errstr);
        redisAsyncFree(c->ac); /* no event hooks yet: nothing calls back */
        c->ac = NULL;
        c->ac_done = true;
        conn_failed(c, why);
        return;
    }
    c->ac->data = c;
    if (attach(c) != 0) {
        redisAsyncFree(c->ac);
        c->ac = NULL;
        c->ac_done = true;
        conn_failed(c, "cannot watch the connection's socket");
        return;
    }
    c->state = R_CONNECTING;
    redisAsyncSetDisconnectCallback(c->ac, on_disconnect);
    redisAsyncSetConnectCallback(c->ac, on_connect); /* starts waiting for writability */
}

static void resolved(void *arg, const char *addr, const char *why)
{
    rconn *c = arg;
    c->resolve = NULL;
    c->io++;
    if (addr) {
        conn_start(c, addr);
    } else {
        char msg[REDIS_DETAIL_MAX];
        snprintf(msg, sizeof(msg), "cannot resolve host \"%s\": %s", c->pool->host, why);
        c->ac_done = true;
        conn_failed(c, msg);
    }
    c->io--;
    redis__conn_maybe_free(c);
}

rconn *redis__conn_open(br_redis_pool *p, const rconn_ops *ops, void *owner, bool pooled)
{
    rconn *c = calloc(1, sizeof(*c));
    if (!c) {
        br__log("redis: out of memory opening a connection");
        return NULL;
    }
    c->pool = p;
    c->ops = ops;
    c->owner = owner;
    c->state = R_RESOLVING;
    if (pooled) {
        c->next = p->conns;
        if (p->conns)
            p->conns->prev = c;
        p->conns = c;
        p->nconns++;
        p->nconnecting++;
    }
    c->io++;
    br__dues_add(&p->dues, &c->due, uv_now(p->loop) + p->opt.connect_timeout_ms, connect_expired);
    if (p->resolve) {
        c->resolve = br__resolve_start(p->loop, p->host, resolved, c);
        if (!c->resolve) {
            c->ac_done = true;
            conn_failed(c, "cannot start resolving the host name");
        }
    } else {
        conn_start(c, p->host);
    }
    c->io--;
    if (c->gone) {
        redis__conn_maybe_free(c);
        return NULL;
    }
    return c;
}

void redis__conn_close(rconn *c)
{
    if (c->closing && !c->ac)
        return;
    c->closing = true;
    c->io++;
    redisAsyncContext *ac = c->ac;
    if (ac) {
        /* Pending callbacks get NULL, then cleanup, then (if it was connected) the
         * disconnect callback; inside a hiredis callback this happens on its return. */
        c->ac = NULL;
        redisAsyncFree(ac);
    } else if (!c->watch) {
        c->ac_done = true; /* resolving, or never made a context */
    }
    conn_gone(c, "connection closed");
    c->io--;
    redis__conn_maybe_free(c);
}

void redis__conn_maybe_free(rconn *c)
{
    if (c->gone && c->ac_done && c->io == 0)
        free(c);
}
