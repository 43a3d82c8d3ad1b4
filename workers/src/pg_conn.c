/*
 * pg_conn.c - PostgreSQL connections on the worker's loop (pg_int.h): the connect
 * (a host name resolved on the thread pool, then PQconnectStartParams and
 * PQconnectPoll driven by the socket), the socket's poll handle, flushing, and
 * closing.  What a connection is for - one of the pool's, or the listening one - is
 * its pg_conn_ops; this file only moves bytes and states.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg_int.h"

static void conn_free_if_done(pg_conn *c)
{
    if (c->closed && c->io == 0)
        free(c);
}

static void watch_closed(uv_handle_t *h)
{
    free(h->data);
}

static void watch_drop(pg_conn *c)
{
    if (!c->watch)
        return;
    c->watch->conn = NULL;
    c->watch->poll.data = c->watch;
    uv_close((uv_handle_t *)&c->watch->poll, watch_closed);
    c->watch = NULL;
    c->fd = -1;
    c->events = 0;
}

void pg__conn_error(pg_conn *c, char *buf, size_t len)
{
    const char *m = c->pg ? PQerrorMessage(c->pg) : "";
    if (!m || !*m)
        m = "no message from libpq";
    if (strncmp(m, "ERROR:  ", 8) == 0 || strncmp(m, "FATAL:  ", 8) == 0)
        m += 8;
    size_t n = 0;
    for (; *m && n + 1 < len; m++) {
        char ch = *m == '\n' || *m == '\r' || *m == '\t' ? ' ' : *m;
        if (ch == ' ' && (n == 0 || buf[n - 1] == ' '))
            continue; /* one line, single spaces */
        buf[n++] = ch;
    }
    while (n && buf[n - 1] == ' ')
        n--;
    buf[n] = '\0';
}

static void connect_failed(pg_conn *c, const char *why)
{
    c->ops->failed(c, why);
    pg__conn_close(c);
}

static void connect_failed_libpq(pg_conn *c, const char *what)
{
    char msg[PG_DETAIL_MAX];
    char why[PG_DETAIL_MAX + 32];
    pg__conn_error(c, msg, sizeof(msg));
    snprintf(why, sizeof(why), "%s%s", what, msg);
    connect_failed(c, why);
}

/* Drops libpq's notices (a WARNING for a ROLLBACK outside a transaction, say), which
 * it would otherwise print to stderr. */
static void ignore_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

/* One PQconnectPoll step, when the socket is ready as libpq asked. */
static void connect_step(pg_conn *c)
{
    switch (PQconnectPoll(c->pg)) {
    case PGRES_POLLING_READING:
        pg__conn_watch(c, UV_READABLE);
        return;
    case PGRES_POLLING_WRITING:
        pg__conn_watch(c, UV_WRITABLE);
        return;
    case PGRES_POLLING_OK:
        if (PQsetnonblocking(c->pg, 1) != 0) {
            connect_failed_libpq(c, "cannot make the connection non-blocking: ");
            return;
        }
        PQsetNoticeProcessor(c->pg, ignore_notice, NULL);
        br__dues_del(&c->pool->dues, &c->due);
        pg__conn_watch(c, UV_READABLE);
        c->ops->ready(c);
        return;
    default:
        connect_failed_libpq(c, "");
        return;
    }
}

static void on_io(uv_poll_t *h, int status, int events)
{
    pg_watch *w = h->data;
    pg_conn *c = w->conn;
    if (!c)
        return;
    c->io++;
    if (c->state == PG_CONNECTING) {
        connect_step(c);
    } else {
        if (status < 0)
            events = UV_READABLE | UV_WRITABLE; /* let libpq find the error */
        if (events & UV_WRITABLE)
            c->ops->writable(c);
        if (!c->closed && (events & UV_READABLE))
            c->ops->readable(c);
    }
    c->io--;
    conn_free_if_done(c);
}

void pg__conn_watch(pg_conn *c, int events)
{
    int fd = PQsocket(c->pg);
    if (c->watch && fd != c->fd)
        watch_drop(c); /* libpq moved to another socket (another host or address) */
    if (fd < 0)
        return;
    if (!c->watch) {
        pg_watch *w = calloc(1, sizeof(*w));
        if (!w)
            return; /* the connect or query deadline gives up on it */
        int rc = uv_poll_init_socket(c->pool->loop, &w->poll, fd);
        if (rc != 0) {
            br__log("pg: uv_poll_init_socket: %s", uv_strerror(rc));
            free(w);
            return;
        }
        w->poll.data = w;
        w->conn = c;
        c->watch = w;
        c->fd = fd;
        c->events = 0;
    }
    if (events != c->events) {
        uv_poll_start(&c->watch->poll, events, on_io);
        c->events = events;
    }
}

int pg__conn_flush(pg_conn *c)
{
    int rc = PQflush(c->pg);
    if (rc < 0)
        return -1;
    pg__conn_watch(c, rc == 1 ? UV_READABLE | UV_WRITABLE : UV_READABLE);
    return 0;
}

/* The connect deadline. */
static void connect_expired(br__due *d)
{
    pg_conn *c = (pg_conn *)((char *)d - offsetof(pg_conn, due));
    char why[96];
    snprintf(why, sizeof(why), "no connection within %u ms", c->pool->opt.connect_timeout_ms);
    c->io++;
    connect_failed(c, why);
    c->io--;
    conn_free_if_done(c);
}

static void conn_start(pg_conn *c, const char *hostaddr)
{
    br_pg_pool *p = c->pool;
    p->values[p->hostaddr_index] = (char *)hostaddr;
    c->pg =
        PQconnectStartParams((const char *const *)p->keywords, (const char *const *)p->values, 0);
    p->values[p->hostaddr_index] = NULL;
    if (!c->pg) {
        connect_failed(c, "out of memory starting a connection");
        return;
    }
    if (PQstatus(c->pg) == CONNECTION_BAD) {
        connect_failed_libpq(c, "");
        return;
    }
    c->state = PG_CONNECTING;
    /* libpq: act as if PQconnectPoll had asked for writability. */
    pg__conn_watch(c, UV_WRITABLE);
    if (!c->watch)
        connect_failed(c, "cannot watch the connection's socket");
}

static void resolved(void *arg, const char *addr, const char *why)
{
    pg_conn *c = arg;
    c->resolve = NULL;
    c->io++;
    if (addr) {
        conn_start(c, addr);
    } else {
        char msg[PG_DETAIL_MAX];
        const char *host = c->pool->values[c->pool->host_index];
        snprintf(msg, sizeof(msg), "cannot resolve host \"%s\": %s", host, why);
        connect_failed(c, msg);
    }
    c->io--;
    conn_free_if_done(c);
}

pg_conn *pg__conn_open(br_pg_pool *p, const pg_conn_ops *ops, void *owner, bool pooled)
{
    pg_conn *c = calloc(1, sizeof(*c));
    if (!c) {
        br__log("pg: out of memory opening a connection");
        return NULL;
    }
    c->pool = p;
    c->ops = ops;
    c->owner = owner;
    c->fd = -1;
    c->state = PG_RESOLVING;
    if (pooled) {
        c->next = p->conns;
        if (p->conns)
            p->conns->prev = c;
        p->conns = c;
        p->nconns++;
        p->nconnecting++;
    }
    c->io++; /* a failure right away closes c: free it only on the way out */
    br__dues_add(&p->dues, &c->due, uv_now(p->loop) + p->opt.connect_timeout_ms, connect_expired);
    if (p->resolve) {
        c->resolve = br__resolve_start(p->loop, p->values[p->host_index], resolved, c);
        if (!c->resolve)
            connect_failed(c, "cannot start resolving the host name");
    } else {
        conn_start(c, NULL);
    }
    c->io--;
    if (c->closed) {
        conn_free_if_done(c);
        return NULL;
    }
    return c;
}

void pg__conn_close(pg_conn *c)
{
    if (c->closed)
        return;
    c->closed = true;
    br_pg_pool *p = c->pool;
    c->ops->closing(c);
    br__dues_del(&p->dues, &c->due);
    if (c->resolve)
        br__resolve_cancel(c->resolve);
    c->resolve = NULL;
    watch_drop(c);
    if (c->result)
        PQclear(c->result);
    c->result = NULL;
    if (c->pg)
        PQfinish(c->pg);
    c->pg = NULL;
    conn_free_if_done(c);
}
