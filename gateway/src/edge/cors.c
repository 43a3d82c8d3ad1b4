/*
 * cors.c - Cross-Origin Resource Sharing, answered at the gateway.
 *
 * A preflight (OPTIONS with Origin and Access-Control-Request-Method) is answered
 * here, for any path, without a worker hop: 204 with the allowed methods, headers and
 * max-age when the origin, method and headers are all allowed, else 400 naming what
 * was not (Starlette's CORSMiddleware does the same).  Any other request from an
 * allowed origin gets Access-Control-Allow-Origin (and -Credentials, -Expose-Headers)
 * on its answer.  With a list of origins (or credentials) the answer depends on the
 * Origin header, so edge.c adds Vary: Origin to every answer, CORS or not.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "edge_int.h"

int gw__cors_init(gw_edge *e, char *why, size_t cap)
{
    (void)why;
    (void)cap;
    e->cors_on = e->cors_origins[0] != '\0';
    e->cors_any = strcmp(e->cors_origins, "*") == 0;
    return 0;
}

/* Calls fn on each comma-separated, space-trimmed token of list until it says true. */
static bool list_any(const char *list, const char *s, size_t n, bool nocase)
{
    const char *p = list;
    while (*p) {
        while (*p == ' ' || *p == ',' || *p == '\t')
            p++;
        const char *start = p;
        while (*p && *p != ',')
            p++;
        const char *end = p;
        while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
            end--;
        size_t len = (size_t)(end - start);
        if (len && len == n && (nocase ? strncasecmp(start, s, n) == 0 : memcmp(start, s, n) == 0))
            return true;
    }
    return false;
}

static bool origin_allowed(const gw_edge *e, const char *origin, size_t n)
{
    return e->cors_any || list_any(e->cors_origins, origin, n, true);
}

/* True when every header named in the preflight's Access-Control-Request-Headers is
 * allowed. */
static bool headers_allowed(const gw_edge *e, const gw_header *h)
{
    if (!h || strcmp(e->cors_headers, "*") == 0)
        return true;
    const char *p = h->value, *end = h->value + h->value_len;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == ',' || *p == '\t'))
            p++;
        const char *start = p;
        while (p < end && *p != ',')
            p++;
        const char *tok_end = p;
        while (tok_end > start && (tok_end[-1] == ' ' || tok_end[-1] == '\t'))
            tok_end--;
        size_t n = (size_t)(tok_end - start);
        if (n && !list_any(e->cors_headers, start, n, true))
            return false;
    }
    return true;
}

bool gw__cors_request(gw_edge *e, gw_req *req, edge_req *er)
{
    if (!e->cors_on)
        return false;
    const gw_header *origin = gw_req_header(req, "origin");
    if (!origin)
        return false;
    er->origin = origin->value;
    er->origin_len = origin->value_len;
    er->cors_ok = origin_allowed(e, origin->value, origin->value_len);
    const gw_header *method = gw_req_header(req, "access-control-request-method");
    if (strcmp(req->method, "OPTIONS") != 0 || !method)
        return false;
    const gw_header *hdrs = gw_req_header(req, "access-control-request-headers");
    bool method_ok = list_any(e->cors_methods, method->value, method->value_len, false);
    bool hdrs_ok = headers_allowed(e, hdrs);
    if (!er->cors_ok || !method_ok || !hdrs_ok) {
        const char *detail = !er->cors_ok ? "Disallowed CORS origin"
                             : !method_ok ? "Disallowed CORS method"
                                          : "Disallowed CORS headers";
        gw__edge_refuse(req, 400, detail, NULL, 0);
        return true;
    }
    gw_header out[3];
    size_t n = 0;
    out[n++] =
        (gw_header){"Access-Control-Allow-Methods", 28, e->cors_methods, strlen(e->cors_methods)};
    /* "*" with credentials is not honoured by browsers: name what was asked. */
    if (strcmp(e->cors_headers, "*") == 0 && hdrs)
        out[n++] = (gw_header){"Access-Control-Allow-Headers", 28, hdrs->value, hdrs->value_len};
    else
        out[n++] = (gw_header){"Access-Control-Allow-Headers", 28, e->cors_headers,
                               strlen(e->cors_headers)};
    char age[16];
    int len = snprintf(age, sizeof(age), "%u", e->cfg.cors_max_age_s);
    out[n++] = (gw_header){"Access-Control-Max-Age", 22, age, (size_t)len};
    gw_req_respond(req, 204, out, n, NULL, NULL, 0);
    return true;
}

void gw__cors_answer(gw_edge *e, edge_req *er, gw_http_answer *a)
{
    if (!er->cors_ok)
        return;
    if (e->cors_any && !e->cfg.cors_credentials)
        gw__edge_add_header(a, "Access-Control-Allow-Origin", "*", 1);
    else
        gw__edge_add_header(a, "Access-Control-Allow-Origin", er->origin, er->origin_len);
    if (e->cfg.cors_credentials)
        gw__edge_add_header(a, "Access-Control-Allow-Credentials", "true", 4);
    if (e->cors_expose[0])
        gw__edge_add_header(a, "Access-Control-Expose-Headers", e->cors_expose,
                            strlen(e->cors_expose));
}
