/*
 * redis_sub.c - pub/sub (barista/redis.h): one subscriber connection per pool, outside
 * its size, subscribed to every channel and pattern asked for.  hiredis keeps the
 * callback given with SUBSCRIBE and calls it for the confirmation and for every
 * message; lost, the connection is opened again after a backoff and subscribes again.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis_int.h"

/* A channel or pattern subscribed to. */
typedef struct rsub_entry {
    char *name;             /* channel or pattern */
    bool pattern;           /* PSUBSCRIBE */
    bool confirmed;         /* Redis confirmed it on the current connection */
    br_redis_message_fn cb; /* its callback */
    void *arg;              /* the callback's argument */
} rsub_entry;

struct rsub {
    br_redis_pool *pool;                            /* its pool */
    rconn *conn;                                    /* the connection, or NULL */
    rsub_entry entries[BR_REDIS_MAX_SUBSCRIPTIONS]; /* in the order asked */
    size_t n;                                       /* entries used */
    br__due retry;                                  /* reconnect after a backoff */
    uint32_t failures;                              /* connects failed in a row */
    uint64_t rng;                                   /* backoff jitter */
};

static void sub_connect(rsub *s);

static rsub_entry *find(rsub *s, const char *name, size_t len, bool pattern)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->entries[i].pattern == pattern && strlen(s->entries[i].name) == len &&
            memcmp(s->entries[i].name, name, len) == 0)
            return &s->entries[i];
    return NULL;
}

static br_str str_of(const redisReply *r)
{
    return r->type == REDIS_REPLY_STRING ? (br_str){r->str, (uint32_t)r->len} : br_str_c("");
}

/* Every message, and every (un)subscribe confirmation. */
static void on_message(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    rsub *s = priv;
    redisReply *r = reply;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 3 ||
        r->element[0]->type != REDIS_REPLY_STRING)
        return;
    const char *kind = r->element[0]->str;
    if (strcmp(kind, "message") == 0) {
        br_str ch = str_of(r->element[1]);
        rsub_entry *e = find(s, ch.ptr, ch.len, false);
        if (e)
            e->cb(ch, br_str_c(""), str_of(r->element[2]), e->arg);
    } else if (strcmp(kind, "pmessage") == 0 && r->elements >= 4) {
        br_str pat = str_of(r->element[1]);
        rsub_entry *e = find(s, pat.ptr, pat.len, true);
        if (e)
            e->cb(str_of(r->element[2]), pat, str_of(r->element[3]), e->arg);
    } else if (strcmp(kind, "subscribe") == 0 || strcmp(kind, "psubscribe") == 0) {
        br_str ch = str_of(r->element[1]);
        rsub_entry *e = find(s, ch.ptr, ch.len, kind[0] == 'p');
        if (e)
            e->confirmed = true;
    }
}

static void send_sub(rsub *s, const char *verb, const char *name)
{
    if (!s->conn || s->conn->state != R_READY || !s->conn->ac)
        return;
    const char *argv[2] = {verb, name};
    size_t lens[2] = {strlen(verb), strlen(name)};
    redisAsyncCommandArgv(s->conn->ac, on_message, s, 2, argv, lens);
}

static void on_ready(rconn *c)
{
    rsub *s = c->owner;
    if (s->failures)
        br__log("redis: subscriber connection up again");
    s->failures = 0;
    for (size_t i = 0; i < s->n; i++) {
        s->entries[i].confirmed = false;
        send_sub(s, s->entries[i].pattern ? "PSUBSCRIBE" : "SUBSCRIBE", s->entries[i].name);
    }
}

static void on_failed(rconn *c, const char *why)
{
    rsub *s = c->owner;
    if (s->failures++ == 0)
        br__log("redis: subscriber connection cannot connect: %s", why);
}

static void retry_due(br__due *d)
{
    rsub *s = (rsub *)((char *)d - offsetof(rsub, retry));
    sub_connect(s);
}

static void on_gone(rconn *c, const char *why)
{
    (void)why;
    rsub *s = c->owner;
    br_redis_pool *p = s->pool;
    s->conn = NULL;
    for (size_t i = 0; i < s->n; i++)
        s->entries[i].confirmed = false;
    if (p->destroying || s->n == 0)
        return;
    if (!s->failures)
        s->failures = 1;
    uint32_t wait = br__backoff_ms(s->failures, p->opt.backoff_ms, p->opt.backoff_max_ms, &s->rng);
    br__dues_del(&p->dues, &s->retry);
    br__dues_add(&p->dues, &s->retry, uv_now(p->loop) + wait, retry_due);
}

static const rconn_ops sub_ops = {
    .ready = on_ready,
    .failed = on_failed,
    .gone = on_gone,
};

static void sub_connect(rsub *s)
{
    if (s->conn || s->retry.armed || s->pool->destroying)
        return;
    s->conn = redis__conn_open(s->pool, &sub_ops, s, false);
}

int br_redis_subscribe(br_redis_pool *p, const char *channel, bool pattern, br_redis_message_fn cb,
                       void *arg)
{
    if (!p || !channel || !channel[0] || !cb || p->destroying)
        return BR_EINVAL;
    if (!p->sub) {
        p->sub = calloc(1, sizeof(*p->sub));
        if (!p->sub)
            return BR_ENOMEM;
        p->sub->pool = p;
        p->sub->rng = br__rng_seed();
    }
    rsub *s = p->sub;
    rsub_entry *e = find(s, channel, strlen(channel), pattern);
    if (e) {
        e->cb = cb;
        e->arg = arg;
        return 0;
    }
    if (s->n == BR_REDIS_MAX_SUBSCRIPTIONS)
        return BR_EFULL;
    char *name = strdup(channel);
    if (!name)
        return BR_ENOMEM;
    s->entries[s->n++] = (rsub_entry){name, pattern, false, cb, arg};
    if (s->conn)
        send_sub(s, pattern ? "PSUBSCRIBE" : "SUBSCRIBE", name);
    else
        sub_connect(s);
    return 0;
}

int br_redis_unsubscribe(br_redis_pool *p, const char *channel, bool pattern)
{
    rsub *s = p ? p->sub : NULL;
    rsub_entry *e = s && channel ? find(s, channel, strlen(channel), pattern) : NULL;
    if (!e)
        return BR_ENOTFOUND;
    send_sub(s, pattern ? "PUNSUBSCRIBE" : "UNSUBSCRIBE", channel);
    free(e->name);
    size_t i = (size_t)(e - s->entries);
    memmove(e, e + 1, (s->n - i - 1) * sizeof(*e));
    s->n--;
    return 0;
}

bool br_redis_subscribed(const br_redis_pool *p)
{
    const rsub *s = p ? p->sub : NULL;
    if (!s || !s->conn || s->conn->state != R_READY)
        return false;
    for (size_t i = 0; i < s->n; i++)
        if (!s->entries[i].confirmed)
            return false;
    return true;
}

void redis__sub_destroy(br_redis_pool *p)
{
    rsub *s = p->sub;
    if (!s)
        return;
    br__dues_del(&p->dues, &s->retry);
    if (s->conn)
        redis__conn_close(s->conn);
    for (size_t i = 0; i < s->n; i++)
        free(s->entries[i].name);
    free(s);
    p->sub = NULL;
}
