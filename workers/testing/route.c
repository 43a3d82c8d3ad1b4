/*
 * route.c - the gateway's part of a test request: which route serves it, its path and
 * query parameters (percent-decoded), and the JSON <-> msgpack conversions, done with
 * the gateway's own converter (gateway/src/common/json*.c, compiled into this
 * library) so that a test sees the bytes a client would.
 */
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "testing_int.h"

/* ---------------------------------------------------------------------------------- */
/* String pools.                                                                       */

char *tc_pool_dup(tc_pool *p, const char *s, size_t len)
{
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 16;
        char **items = realloc(p->items, cap * sizeof(*items));
        if (!items)
            return NULL;
        p->items = items;
        p->cap = cap;
    }
    char *c = malloc(len + 1);
    if (!c)
        return NULL;
    if (len)
        memcpy(c, s, len);
    c[len] = '\0';
    p->items[p->n++] = c;
    return c;
}

void tc_pool_clear(tc_pool *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->items[i]);
    p->n = 0;
}

void tc_pool_free(tc_pool *p)
{
    tc_pool_clear(p);
    free(p->items);
    p->items = NULL;
    p->cap = 0;
}

/* ---------------------------------------------------------------------------------- */
/* Decoding.                                                                           */

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* s[0..len) with %XX decoded (and '+' as a space in a query), into pool. */
static br_str decode(const char *s, size_t len, bool query, tc_pool *pool)
{
    br_str out = {"", 0};
    char *d = tc_pool_dup(pool, s, len);
    if (!d)
        return out;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        int hi, lo;
        if (s[i] == '%' && i + 2 < len && (hi = hex_digit(s[i + 1])) >= 0 &&
            (lo = hex_digit(s[i + 2])) >= 0) {
            d[n++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            d[n++] = query && s[i] == '+' ? ' ' : s[i];
        }
    }
    d[n] = '\0';
    out.ptr = d;
    out.len = (uint32_t)n;
    return out;
}

/* ---------------------------------------------------------------------------------- */
/* Routing.                                                                            */

/* Matches path against template; fills params (decoded) on a match. */
static bool match(const char *tmpl, br_str path, tc_routed *out, tc_pool *pool)
{
    const char *t = tmpl, *p = path.ptr, *end = path.ptr + path.len;
    out->nparams = 0;
    while (*t && p < end) {
        if (*t != '/' || *p != '/')
            return false;
        t++;
        p++;
        const char *tseg = t;
        size_t tlen = strcspn(t, "/");
        const char *pseg = p;
        while (p < end && *p != '/')
            p++;
        size_t plen = (size_t)(p - pseg);
        if (tlen >= 2 && tseg[0] == '{' && tseg[tlen - 1] == '}') {
            if (plen == 0 || out->nparams == TC_MAX_PAIRS)
                return false;
            br_pair *pr = &out->params[out->nparams++];
            pr->name = (br_str){tseg + 1, (uint32_t)(tlen - 2)};
            pr->value = decode(pseg, plen, false, pool);
        } else if (tlen != plen || memcmp(tseg, pseg, plen) != 0) {
            return false;
        }
        t += tlen;
    }
    return *t == '\0' && p == end;
}

/* Splits a query string into decoded pairs. */
static int split_query(const char *q, tc_routed *out, tc_pool *pool)
{
    out->nquery = 0;
    while (q && *q) {
        size_t len = strcspn(q, "&");
        if (len) {
            if (out->nquery == TC_MAX_PAIRS)
                return -1;
            const char *eq = memchr(q, '=', len);
            size_t nlen = eq ? (size_t)(eq - q) : len;
            br_pair *pr = &out->query[out->nquery++];
            pr->name = decode(q, nlen, true, pool);
            pr->value = eq ? decode(eq + 1, len - nlen - 1, true, pool) : (br_str){"", 0};
        }
        q += len;
        if (*q == '&')
            q++;
    }
    return 0;
}

int tc_route(const br_service_spec *const *services, size_t n, const char *method,
             const char *target, tc_pool *pool, tc_routed *out)
{
    memset(out, 0, sizeof(*out));
    const char *qmark = strchr(target, '?');
    out->path = (br_str){target, (uint32_t)(qmark ? (size_t)(qmark - target) : strlen(target))};
    if (split_query(qmark ? qmark + 1 : NULL, out, pool) != 0)
        return 500;
    bool other_method = false;
    const char *want = strcmp(method, "HEAD") == 0 ? "GET" : method;
    for (size_t i = 0; i < n; i++) {
        for (size_t r = 0; r < services[i]->nroutes; r++) {
            const br_route_spec *route = &services[i]->routes[r];
            if (!match(route->path, out->path, out, pool))
                continue;
            if (strcmp(route->method, method) != 0 && strcmp(route->method, want) != 0) {
                other_method = true;
                continue;
            }
            out->service = services[i];
            out->route = route;
            return 200;
        }
    }
    return other_method ? 405 : 404;
}

/* ---------------------------------------------------------------------------------- */
/* JSON.                                                                               */

int tc_json_to_msgpack(const char *json, size_t len, br_buf *out)
{
    out->len = 0;
    out->max = BR_REPLY_BODY_MAX;
    return gw_json_to_msgpack(json, len, out, NULL, 0) == 0 ? 0 : BR_EVALUE;
}

char *tc_msgpack_to_json(br_str mp, tc_pool *pool)
{
    br_buf text = {.max = 4 * (size_t)BR_REPLY_BODY_MAX};
    char *s = NULL;
    if (gw_msgpack_to_json(mp.ptr, mp.len, &text) == 0)
        s = tc_pool_dup(pool, (const char *)text.data, text.len);
    br_buf_free(&text);
    return s;
}
