/*
 * ratelimit.c - token buckets per client address, per authenticated subject (or API
 * key) and per route template.
 *
 * Each bucket holds up to rate x burst_factor tokens and refills at `rate` per second;
 * a request spends one token from every bucket it falls in, and one empty bucket is a
 * 429 with Retry-After (seconds until a token is back) and the RateLimit-Limit,
 * -Remaining and -Reset headers (draft-ietf-httpapi-ratelimit-headers) of the
 * tightest bucket.  Answers that pass carry the same headers.
 *
 * Buckets are kept per gateway process: N gateway processes behind SO_REUSEPORT each
 * allow the rate, so a host's limit is N times it (docs/edge.md).  The table is keyed
 * by a 64-bit hash of (kind, key) and bounded: past rate_max_buckets entries per kind
 * the full (idle) buckets are dropped - a bucket that refilled is the same as a new
 * one - and if none is, the table starts afresh (logged), so memory never grows with
 * the number of clients.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge_int.h"
#include "log.h"

typedef enum rate_kind { RATE_IP = 0, RATE_KEY = 1, RATE_ROUTE = 2, RATE_KINDS = 3 } rate_kind;

typedef struct bucket {
    uint64_t hash; /* hash of (kind, key); 0: empty slot */
    double tokens; /* tokens left at `last` */
    uint64_t last; /* loop time (ms) of the last refill */
} bucket;

typedef struct table {
    bucket *slots; /* open addressing, linear probing */
    size_t cap;    /* slots (a power of two) */
    size_t used;   /* non-empty slots */
} table;

struct edge_rate {
    table t[RATE_KINDS];       /* one table per kind */
    uint32_t rate[RATE_KINDS]; /* tokens per second; 0: kind off */
    uint64_t resets;           /* tables started afresh */
};

int gw__rate_init(gw_edge *e, char *why, size_t cap)
{
    const gw_edge_config *c = &e->cfg;
    if (!c->rate_ip && !c->rate_key && !c->rate_route)
        return 0;
    struct edge_rate *r = calloc(1, sizeof(*r));
    if (!r) {
        snprintf(why, cap, "edge: out of memory");
        return -1;
    }
    r->rate[RATE_IP] = c->rate_ip;
    r->rate[RATE_KEY] = c->rate_key;
    r->rate[RATE_ROUTE] = c->rate_route;
    e->rate = r;
    return 0;
}

void gw__rate_free(gw_edge *e)
{
    if (!e->rate)
        return;
    for (int k = 0; k < RATE_KINDS; k++)
        free(e->rate->t[k].slots);
    free(e->rate);
    e->rate = NULL;
}

static uint64_t hash_key(rate_kind kind, const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull ^ (uint64_t)kind;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h ? h : 1;
}

static bucket *probe(table *t, uint64_t hash)
{
    size_t mask = t->cap - 1;
    for (size_t i = hash & mask;; i = (i + 1) & mask)
        if (t->slots[i].hash == hash || t->slots[i].hash == 0)
            return &t->slots[i];
}

/* Re-inserts every kept bucket into a table of `cap` slots; `keep` decides. */
static int rehash(table *t, size_t cap, bool (*keep)(const bucket *, void *), void *arg)
{
    bucket *slots = calloc(cap, sizeof(*slots));
    if (!slots)
        return BR_ENOMEM;
    table n = {slots, cap, 0};
    for (size_t i = 0; i < t->cap; i++) {
        const bucket *b = &t->slots[i];
        if (b->hash && (!keep || keep(b, arg))) {
            *probe(&n, b->hash) = *b;
            n.used++;
        }
    }
    free(t->slots);
    *t = n;
    return 0;
}

typedef struct sweep {
    uint64_t now; /* loop time */
    double rate;  /* tokens per ms */
    double burst; /* bucket size */
} sweep;

/* A bucket worth keeping: one that has not refilled to full since it was used. */
static bool not_full(const bucket *b, void *arg)
{
    const sweep *s = arg;
    return b->tokens + (double)(s->now - b->last) * s->rate < s->burst;
}

/* The bucket for hash, made (full) when new.  NULL only when out of memory. */
static bucket *bucket_get(gw_edge *e, rate_kind kind, uint64_t hash, double burst, double per_ms,
                          uint64_t now)
{
    struct edge_rate *r = e->rate;
    table *t = &r->t[kind];
    if (!t->slots && rehash(t, 1024, NULL, NULL) != 0)
        return NULL;
    bucket *b = probe(t, hash);
    if (b->hash)
        return b;
    if ((t->used + 1) * 2 > t->cap) { /* keep the load under a half */
        if (t->used + 1 > e->cfg.rate_max_buckets) {
            sweep s = {now, per_ms, burst};
            if (rehash(t, t->cap, not_full, &s) != 0)
                return NULL;
            if (t->used + 1 > e->cfg.rate_max_buckets) {
                if (r->resets++ == 0)
                    gw_log(GW_LOG_WARN, "edge",
                           "rate limit table full (%u busy buckets): starting afresh",
                           e->cfg.rate_max_buckets);
                if (rehash(t, t->cap, not_full, &(sweep){now, 0, -1}) != 0)
                    return NULL;
            }
        } else if (rehash(t, t->cap * 2, NULL, NULL) != 0) {
            return NULL;
        }
        b = probe(t, hash);
    }
    b->hash = hash;
    b->tokens = burst;
    b->last = now;
    t->used++;
    return b;
}

/* Spends one token of kind/key.  True when the request may pass; the tightest
 * bucket's numbers go into er for the headers, and *retry_s when refused. */
static bool spend(gw_edge *e, edge_req *er, rate_kind kind, const char *key, size_t n,
                  uint32_t *retry_s)
{
    struct edge_rate *r = e->rate;
    uint32_t rate = r->rate[kind];
    if (!rate)
        return true;
    double burst = (double)rate * e->cfg.rate_burst_factor;
    double per_ms = rate / 1000.0;
    uint64_t now = uv_now(e->loop);
    bucket *b = bucket_get(e, kind, hash_key(kind, key, n), burst, per_ms, now);
    if (!b)
        return true; /* out of memory: fail open, never a false 429 */
    b->tokens += (double)(now - b->last) * per_ms;
    if (b->tokens > burst)
        b->tokens = burst;
    b->last = now;
    bool ok = b->tokens >= 1.0;
    if (ok)
        b->tokens -= 1.0;
    int remaining = (int)floor(b->tokens);
    if (er->rate_remaining < 0 || remaining < er->rate_remaining || !ok) {
        er->rate_remaining = remaining;
        er->rate_limit = (uint32_t)burst;
        er->rate_reset_s = (uint32_t)ceil((burst - b->tokens) / rate);
    }
    if (!ok)
        *retry_s = (uint32_t)ceil((1.0 - b->tokens) / rate);
    return ok;
}

static bool refuse(gw_req *req, uint32_t retry_s)
{
    char v[16]; /* gw_req_respond copies it */
    int n = snprintf(v, sizeof(v), "%u", retry_s ? retry_s : 1);
    gw_header h = {"Retry-After", 11, v, (size_t)n};
    gw__edge_refuse(req, 429, "Too Many Requests", &h, 1);
    return true;
}

bool gw__rate_request(gw_edge *e, gw_req *req, edge_req *er)
{
    if (!e->rate)
        return false;
    uint32_t retry = 0;
    if (!spend(e, er, RATE_IP, er->client, strlen(er->client), &retry))
        return refuse(req, retry);
    const gw_route *route = req->match.route;
    if (route) {
        char key[GW_EDGE_TEXT_MAX];
        int n = snprintf(key, sizeof(key), "%s %s", route->method, route->pattern);
        if (n > 0 && !spend(e, er, RATE_ROUTE, key, (size_t)n, &retry))
            return refuse(req, retry);
    }
    return false;
}

bool gw__rate_subject(gw_edge *e, gw_req *req, edge_req *er)
{
    if (!e->rate || !er->subject)
        return false;
    uint32_t retry = 0;
    if (!spend(e, er, RATE_KEY, er->subject, strlen(er->subject), &retry))
        return refuse(req, retry);
    return false;
}

void gw__rate_answer(gw_edge *e, edge_req *er, gw_http_answer *a)
{
    if (!e->rate || er->rate_remaining < 0)
        return;
    char v[16];
    int n = snprintf(v, sizeof(v), "%u", er->rate_limit);
    gw__edge_add_header(a, "RateLimit-Limit", gw__edge_keep(e, v, (size_t)n), (size_t)n);
    n = snprintf(v, sizeof(v), "%d", er->rate_remaining);
    gw__edge_add_header(a, "RateLimit-Remaining", gw__edge_keep(e, v, (size_t)n), (size_t)n);
    n = snprintf(v, sizeof(v), "%u", er->rate_reset_s);
    gw__edge_add_header(a, "RateLimit-Reset", gw__edge_keep(e, v, (size_t)n), (size_t)n);
}
