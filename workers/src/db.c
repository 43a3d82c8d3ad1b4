/*
 * db.c - the pieces the database clients share (db_int.h): the deadline list, the
 * broker-cancel hook, reconnect backoff and name resolution on the thread pool.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "db_int.h"
#include "request.h"

/* ---------------------------------------------------------------------------------- */
/* Deadlines.                                                                          */

static void dues_arm(br__dues *q);

static void dues_fire(uv_timer_t *t)
{
    br__dues *q = t->data;
    q->timer_on = false;
    uint64_t now = uv_now(t->loop);
    /* A fire may add or remove other dues (and run a handler that does): read the
     * head again every time. */
    while (q->head && q->head->at <= now && !q->closed) {
        br__due *d = q->head;
        br__dues_del(q, d);
        d->fire(d);
    }
    if (!q->closed)
        dues_arm(q);
}

static void dues_arm(br__dues *q)
{
    if (!q->head || q->closed)
        return;
    uint64_t at = q->head->at;
    if (q->timer_on && q->timer_at <= at)
        return;
    uint64_t now = uv_now(q->timer.loop);
    q->timer_at = at;
    q->timer_on = true;
    q->timer.data = q;
    uv_timer_start(&q->timer, dues_fire, at > now ? at - now : 0, 0);
}

void br__dues_init(uv_loop_t *loop, br__dues *q)
{
    memset(q, 0, sizeof(*q));
    uv_timer_init(loop, &q->timer);
    q->timer.data = q;
}

void br__dues_add(br__dues *q, br__due *d, uint64_t at, br__due_fn fire)
{
    d->at = at;
    d->fire = fire;
    d->armed = true;
    /* Most dues are added in time order (a fixed timeout from now): scan from the tail. */
    br__due *after = q->tail;
    while (after && after->at > at)
        after = after->prev;
    d->prev = after;
    d->next = after ? after->next : q->head;
    if (d->next)
        d->next->prev = d;
    else
        q->tail = d;
    if (after)
        after->next = d;
    else
        q->head = d;
    if (q->head == d)
        dues_arm(q);
}

void br__dues_del(br__dues *q, br__due *d)
{
    if (!d->armed)
        return;
    if (d->prev)
        d->prev->next = d->next;
    else
        q->head = d->next;
    if (d->next)
        d->next->prev = d->prev;
    else
        q->tail = d->prev;
    d->prev = d->next = NULL;
    d->armed = false;
}

void br__dues_close(br__dues *q, uv_close_cb cb)
{
    while (q->head)
        br__dues_del(q, q->head);
    q->closed = true;
    uv_close((uv_handle_t *)&q->timer, cb);
}

/* ---------------------------------------------------------------------------------- */
/* Broker cancels.                                                                     */

/* The request's watching operations (in its arena). */
typedef struct br__dbcs {
    br__dbc *head;
} br__dbcs;

static void dbc_on_cancel(br_req *req, void *arg)
{
    br__dbcs *l = arg;
    /* Each cancel completes its operation, whose callback may reply and so end the
     * request (aborting the rest, which forget themselves). */
    while (l->head && !req->ended) {
        br__dbc *c = l->head;
        br__dbc_forget(c);
        c->cancel(c);
    }
}

void br__dbc_watch(br_req *req, br__dbc *c, void (*cancel)(br__dbc *c))
{
    c->list = NULL;
    c->cancel = cancel;
    br__dbcs *l;
    if (req->on_cancel == dbc_on_cancel) {
        l = req->cancel_arg;
    } else if (!req->on_cancel) {
        l = br_req_alloc(req, sizeof(*l));
        if (!l)
            return;
        l->head = NULL;
        br_req_on_cancel(req, dbc_on_cancel, l);
    } else {
        return; /* the handler handles its cancels */
    }
    c->list = l;
    c->prev = NULL;
    c->next = l->head;
    if (l->head)
        l->head->prev = c;
    l->head = c;
}

void br__dbc_forget(br__dbc *c)
{
    br__dbcs *l = c->list;
    if (!l)
        return;
    if (c->prev)
        c->prev->next = c->next;
    else
        l->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    c->list = NULL;
}

/* ---------------------------------------------------------------------------------- */
/* Backoff and names.                                                                  */

uint64_t br__rng_seed(void)
{
    uint64_t s = uv_hrtime() ^ ((uint64_t)uv_os_getpid() << 32);
    return s ? s : 0x9e3779b97f4a7c15ull;
}

uint32_t br__backoff_ms(uint32_t failures, uint32_t first_ms, uint32_t max_ms, uint64_t *rng)
{
    uint64_t d = first_ms;
    for (uint32_t i = 1; i < failures && d < max_ms; i++)
        d *= 2;
    if (d > max_ms)
        d = max_ms;
    uint64_t x = *rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *rng = x;
    /* d/2 .. 3d/2 */
    return (uint32_t)(d / 2 + x % (d + 1));
}

bool br__host_is_numeric(const char *host)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

struct br__resolve {
    uv_getaddrinfo_t req; /* the lookup */
    br__resolve_fn cb;    /* NULL once cancelled */
    void *arg;            /* cb's argument */
};

static void resolved(uv_getaddrinfo_t *gr, int status, struct addrinfo *res)
{
    br__resolve *r = gr->data;
    char addr[INET6_ADDRSTRLEN] = "";
    const char *why = NULL;
    if (status != 0) {
        why = uv_strerror(status);
    } else {
        for (struct addrinfo *ai = res; ai && !addr[0]; ai = ai->ai_next) {
            if (ai->ai_family == AF_INET)
                uv_ip4_name((struct sockaddr_in *)ai->ai_addr, addr, sizeof(addr));
            else if (ai->ai_family == AF_INET6)
                uv_ip6_name((struct sockaddr_in6 *)ai->ai_addr, addr, sizeof(addr));
        }
        if (!addr[0])
            why = "no IPv4 or IPv6 address";
    }
    uv_freeaddrinfo(res);
    if (r->cb)
        r->cb(r->arg, why ? NULL : addr, why);
    free(r);
}

br__resolve *br__resolve_start(uv_loop_t *loop, const char *host, br__resolve_fn cb, void *arg)
{
    br__resolve *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->cb = cb;
    r->arg = arg;
    r->req.data = r;
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if (uv_getaddrinfo(loop, &r->req, resolved, host, NULL, &hints) != 0) {
        free(r);
        return NULL;
    }
    return r;
}

void br__resolve_cancel(br__resolve *r)
{
    r->cb = NULL;
}
