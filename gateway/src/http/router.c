/*
 * router.c - method + path templates -> handlers.
 *
 * Routes live in a flat array of pointers: the table holds tens to a few hundred
 * routes, so a linear scan over pre-split templates costs less than a trie would to
 * keep correct under run-time add/remove.  Each template is split once, at add time,
 * into segments, and gets a rank: bit (31 - i) is set when segment i is literal.  Among
 * templates with the same number of segments, the higher rank is the one that is
 * literal at the leftmost segment where the two differ - the precedence router.h
 * promises - so matching keeps the highest rank seen.
 */
#include "router.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "barista/proto.h"

/* The table's own bound on routes; the broker adds at most br_limits_default's
 * services x routes, well under this. */
#define ROUTER_MAX_ROUTES 8192

/* Bytes of a method name; longer ones are refused as malformed. */
#define ROUTER_MAX_METHOD 32

/* One segment of a split template or path. */
typedef struct segment {
    const char *text; /* literal text or parameter name (without braces); not NUL-ended */
    uint32_t len;     /* bytes of text */
    bool param;       /* true for "{name}" */
} segment;

/* A route as stored: the public part first, so &entry->pub is what matches return. */
typedef struct route_entry {
    gw_route pub;                        /* method, pattern, handler, data */
    char *method;                        /* owned copy behind pub.method */
    char *pattern;                       /* owned copy behind pub.pattern */
    segment segs[GW_ROUTE_MAX_SEGMENTS]; /* the template split at '/' */
    uint32_t nsegs;                      /* segments used */
    uint32_t rank;                       /* literal bits, leftmost segment highest */
} route_entry;

struct gw_router {
    route_entry **routes; /* registration order; entries are heap-stable */
    size_t nroutes;       /* entries used */
    size_t cap;           /* entries allocated */
};

gw_router *gw_router_new(void)
{
    return calloc(1, sizeof(gw_router));
}

static void entry_free(route_entry *e)
{
    if (!e)
        return;
    free(e->method);
    free(e->pattern);
    free(e);
}

void gw_router_destroy(gw_router **self_p)
{
    if (!self_p || !*self_p)
        return;
    gw_router *self = *self_p;
    for (size_t i = 0; i < self->nroutes; i++)
        entry_free(self->routes[i]);
    free(self->routes);
    free(self);
    *self_p = NULL;
}

/* Splits a path (not a template) into segments.  "/" has none; "/a/" has "a" and "".
 * Returns the count, or -1 when the path has more than `max` segments or does not
 * start with '/'. */
static int split_path(const char *path, size_t len, segment *out, size_t max)
{
    if (len == 0 || path[0] != '/')
        return -1;
    if (len == 1)
        return 0;
    size_t n = 0, start = 1;
    for (size_t i = 1; i <= len; i++) {
        if (i < len && path[i] != '/')
            continue;
        if (n == max)
            return -1;
        out[n].text = path + start;
        out[n].len = (uint32_t)(i - start);
        out[n].param = false;
        n++;
        start = i + 1;
    }
    return (int)n;
}

/* Splits and validates a template into e->segs.  Returns 0, BR_EINVAL or BR_ELIMIT. */
static int parse_template(route_entry *e)
{
    const char *p = e->pattern;
    size_t len = strlen(p);
    if (len == 0 || p[0] != '/')
        return BR_EINVAL;
    int n = split_path(p, len, e->segs, GW_ROUTE_MAX_SEGMENTS);
    if (n < 0)
        return BR_ELIMIT;
    e->nsegs = (uint32_t)n;
    size_t nparams = 0;
    for (uint32_t i = 0; i < e->nsegs; i++) {
        segment *s = &e->segs[i];
        const char *open = memchr(s->text, '{', s->len);
        const char *close = memchr(s->text, '}', s->len);
        if (!open && !close) {
            e->rank |= 1u << (31 - i);
            continue;
        }
        /* A parameter is a whole segment: "{name}", nothing around it, non-empty. */
        if (open != s->text || close != s->text + s->len - 1 || s->len < 3)
            return BR_EINVAL;
        if (memchr(s->text + 1, '{', s->len - 2) || memchr(s->text + 1, '}', s->len - 2))
            return BR_EINVAL;
        s->text++;
        s->len -= 2;
        s->param = true;
        if (++nparams > GW_ROUTE_MAX_PARAMS)
            return BR_ELIMIT;
        for (uint32_t j = 0; j < i; j++) {
            const segment *o = &e->segs[j];
            if (o->param && o->len == s->len && memcmp(o->text, s->text, s->len) == 0)
                return BR_EINVAL;
        }
    }
    return 0;
}

/* True when a and b are the same template once parameter names are ignored. */
static bool same_shape(const route_entry *a, const route_entry *b)
{
    if (a->nsegs != b->nsegs || a->rank != b->rank)
        return false;
    for (uint32_t i = 0; i < a->nsegs; i++) {
        const segment *x = &a->segs[i], *y = &b->segs[i];
        if (!x->param && (x->len != y->len || memcmp(x->text, y->text, x->len) != 0))
            return false;
    }
    return true;
}

static bool method_ok(const char *method)
{
    size_t n = strlen(method);
    if (n == 0 || n > ROUTER_MAX_METHOD)
        return false;
    for (size_t i = 0; i < n; i++)
        if (method[i] < 'A' || method[i] > 'Z')
            return false;
    return true;
}

int gw_router_add(gw_router *self, const char *method, const char *pattern, gw_handler_fn handler,
                  void *data)
{
    if (!self || !method || !pattern || !handler || !method_ok(method))
        return BR_EINVAL;
    route_entry *e = calloc(1, sizeof(*e));
    if (!e)
        return BR_ENOMEM;
    int rc = BR_ENOMEM;
    e->method = strdup(method);
    e->pattern = strdup(pattern);
    if (!e->method || !e->pattern)
        goto fail;
    rc = parse_template(e);
    if (rc != 0)
        goto fail;
    for (size_t i = 0; i < self->nroutes; i++) {
        const route_entry *o = self->routes[i];
        if (strcmp(o->method, method) == 0 && same_shape(o, e)) {
            rc = BR_EFULL;
            goto fail;
        }
    }
    if (self->nroutes == self->cap) {
        rc = BR_ELIMIT;
        if (self->cap == ROUTER_MAX_ROUTES)
            goto fail;
        size_t cap = self->cap ? self->cap * 2 : 16;
        route_entry **grown = realloc(self->routes, cap * sizeof(*grown));
        rc = BR_ENOMEM;
        if (!grown)
            goto fail;
        self->routes = grown;
        self->cap = cap;
    }
    e->pub.method = e->method;
    e->pub.pattern = e->pattern;
    e->pub.handler = handler;
    e->pub.data = data;
    self->routes[self->nroutes++] = e;
    return 0;
fail:
    entry_free(e);
    return rc;
}

int gw_router_set_policy(gw_router *self, const char *method, const char *pattern,
                         const gw_route_policy *policy)
{
    if (!self || !method || !pattern)
        return BR_EINVAL;
    for (size_t i = 0; i < self->nroutes; i++) {
        route_entry *e = self->routes[i];
        if (strcmp(e->method, method) == 0 && strcmp(e->pattern, pattern) == 0) {
            e->pub.policy = policy;
            return 0;
        }
    }
    return BR_ENOTFOUND;
}

int gw_router_remove(gw_router *self, const char *method, const char *pattern)
{
    if (!self || !method || !pattern)
        return BR_EINVAL;
    for (size_t i = 0; i < self->nroutes; i++) {
        route_entry *e = self->routes[i];
        if (strcmp(e->method, method) != 0 || strcmp(e->pattern, pattern) != 0)
            continue;
        entry_free(e);
        memmove(&self->routes[i], &self->routes[i + 1],
                (self->nroutes - i - 1) * sizeof(*self->routes));
        self->nroutes--;
        return 0;
    }
    return BR_ENOTFOUND;
}

/* True when template e matches the split path. */
static bool entry_matches(const route_entry *e, const segment *path, size_t n)
{
    if (e->nsegs != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        const segment *t = &e->segs[i];
        if (t->param) {
            if (path[i].len == 0)
                return false;
        } else if (t->len != path[i].len || memcmp(t->text, path[i].text, t->len) != 0) {
            return false;
        }
    }
    return true;
}

/* Appends method to the comma-separated allow list unless already there; truncates
 * silently at cap (the caller sized it for the common case). */
static void allow_append(char *allow, size_t cap, size_t *used, const char *method)
{
    size_t mlen = strlen(method);
    for (const char *p = allow; p && *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == mlen && memcmp(p, method, mlen) == 0)
            return;
        p = end ? end + 2 : NULL;
    }
    size_t need = (*used ? 2 : 0) + mlen;
    if (*used + need + 1 > cap)
        return;
    if (*used) {
        memcpy(allow + *used, ", ", 2);
        *used += 2;
    }
    memcpy(allow + *used, method, mlen);
    *used += mlen;
    allow[*used] = '\0';
}

int gw_router_match(const gw_router *self, const char *method, const char *path, size_t path_len,
                    gw_route_match *out, char *allow, size_t allow_cap)
{
    if (!self || !method || !path || !out)
        return BR_EINVAL;
    segment segs[GW_ROUTE_MAX_SEGMENTS];
    int n = path_len <= GW_ROUTE_MAX_PATH ? split_path(path, path_len, segs, GW_ROUTE_MAX_SEGMENTS)
                                          : -1;
    if (n < 0)
        return BR_ENOTFOUND;
    bool head = strcmp(method, "HEAD") == 0;
    const route_entry *best = NULL, *best_get = NULL;
    bool any = false;
    for (size_t i = 0; i < self->nroutes; i++) {
        const route_entry *e = self->routes[i];
        if (!entry_matches(e, segs, (size_t)n))
            continue;
        any = true;
        if (strcmp(e->method, method) == 0) {
            if (!best || e->rank > best->rank)
                best = e;
        } else if (head && strcmp(e->method, "GET") == 0) {
            if (!best_get || e->rank > best_get->rank)
                best_get = e;
        }
    }
    if (!best)
        best = best_get;
    if (!best) {
        if (!any)
            return BR_ENOTFOUND;
        if (allow && allow_cap) {
            size_t used = 0;
            allow[0] = '\0';
            for (size_t i = 0; i < self->nroutes; i++) {
                const route_entry *e = self->routes[i];
                if (!entry_matches(e, segs, (size_t)n))
                    continue;
                allow_append(allow, allow_cap, &used, e->method);
                if (strcmp(e->method, "GET") == 0)
                    allow_append(allow, allow_cap, &used, "HEAD");
            }
        }
        return BR_EINVAL;
    }
    out->route = &best->pub;
    out->path = path;
    out->nparams = 0;
    for (uint32_t i = 0; i < best->nsegs; i++) {
        if (!best->segs[i].param)
            continue;
        gw_path_span *v = &out->spans[out->nparams++];
        v->off = (uint16_t)(segs[i].text - path);
        v->len = (uint16_t)segs[i].len;
    }
    return 0;
}

gw_path_param gw_route_match_param(const gw_route_match *m, size_t i)
{
    /* pub is the entry's first member: the route a match names is an entry's. */
    const route_entry *e = (const route_entry *)m->route;
    size_t k = 0;
    for (uint32_t s = 0; s < e->nsegs; s++) {
        const segment *t = &e->segs[s];
        if (!t->param || k++ != i)
            continue;
        const gw_path_span *v = &m->spans[i];
        return (gw_path_param){t->text, t->len, m->path + v->off, v->len};
    }
    return (gw_path_param){"", 0, "", 0};
}
