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
 *
 * The policy is the service's when the route's service declared one
 * (gw_route_policy.cors; a preflight, which matches no route itself, looks up the
 * route for the method it asks about), else the gateway-wide --cors-* options.  A
 * service's empty methods or headers list means the gateway's.
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

/* The policy one request meets, resolved to text. */
typedef struct cors_view {
    const char *origins; /* allowed origins; "*" (as a token): any */
    const char *methods; /* methods a preflight may ask for */
    const char *headers; /* request headers a preflight may ask for; "*": any */
    const char *expose;  /* Access-Control-Expose-Headers; "" none */
    bool any;            /* any origin */
    bool credentials;    /* Access-Control-Allow-Credentials: true */
    uint32_t max_age_s;  /* Access-Control-Max-Age */
} cors_view;

/* Fills *v with the service's policy p, or the gateway's when p is NULL.  False when
 * neither applies (no policy declared and --cors-origins empty): no CORS at all. */
static bool view_of(const gw_edge *e, const gw_cors_policy *p, cors_view *v)
{
    if (!p) {
        if (!e->cors_on)
            return false;
        *v = (cors_view){e->cors_origins,      e->cors_methods, e->cors_headers,
                         e->cors_expose,       e->cors_any,     e->cfg.cors_credentials,
                         e->cfg.cors_max_age_s};
        return true;
    }
    *v = (cors_view){p->origins,
                     p->methods[0] ? p->methods : e->cors_methods,
                     p->headers[0] ? p->headers : e->cors_headers,
                     p->expose,
                     list_any(p->origins, "*", 1, false),
                     p->credentials,
                     p->max_age_s};
    return true;
}

/* The CORS policy of the route req matched; NULL: the gateway's. */
static const gw_cors_policy *route_cors(const gw_route *route)
{
    return route && route->policy ? route->policy->cors : NULL;
}

/* The CORS policy of the route a preflight asks about: (Access-Control-Request-Method,
 * path) looked up in the router.  When the path is served but not for that method, the
 * policy of the path's first route (in the router's Allow order) answers - so that a
 * service refuses a method it does not serve by its own rules.  NULL (the gateway's)
 * when no route serves the path. */
static const gw_cors_policy *preflight_cors(const gw_edge *e, const gw_req *req,
                                            const gw_header *method)
{
    char name[32], allow[64];
    gw_route_match match;
    if (!e->router || method->value_len == 0 || method->value_len >= sizeof(name))
        return NULL;
    memcpy(name, method->value, method->value_len);
    name[method->value_len] = '\0';
    int rc =
        gw_router_match(e->router, name, req->path, req->path_len, &match, allow, sizeof(allow));
    if (rc == BR_EINVAL) {
        size_t n = strcspn(allow, ", ");
        if (n == 0 || n >= sizeof(name))
            return NULL;
        memcpy(name, allow, n);
        name[n] = '\0';
        rc = gw_router_match(e->router, name, req->path, req->path_len, &match, NULL, 0);
    }
    return rc == 0 ? route_cors(match.route) : NULL;
}

/* True when every header named in the preflight's Access-Control-Request-Headers is
 * allowed. */
static bool headers_allowed(const cors_view *v, const gw_header *h)
{
    if (!h || strcmp(v->headers, "*") == 0)
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
        if (n && !list_any(v->headers, start, n, true))
            return false;
    }
    return true;
}

bool gw__cors_request(gw_edge *e, gw_req *req, edge_req *er)
{
    bool options = strcmp(req->method, "OPTIONS") == 0;
    er->cors = route_cors(req->match.route);
    /* No policy this request could meet: skip the header lookups. */
    if (!e->cors_on && !er->cors && !(options && e->router))
        return false;
    const gw_header *origin = gw_req_header(req, "origin");
    const gw_header *method =
        origin && options ? gw_req_header(req, "access-control-request-method") : NULL;
    if (method)
        er->cors = preflight_cors(e, req, method);
    cors_view v;
    if (!origin || !view_of(e, er->cors, &v))
        return false;
    er->origin = origin->value;
    er->origin_len = origin->value_len;
    er->cors_ok = v.any || list_any(v.origins, origin->value, origin->value_len, true);
    if (!method)
        return false;
    const gw_header *hdrs = gw_req_header(req, "access-control-request-headers");
    bool method_ok = list_any(v.methods, method->value, method->value_len, false);
    bool hdrs_ok = headers_allowed(&v, hdrs);
    if (!er->cors_ok || !method_ok || !hdrs_ok) {
        const char *detail = !er->cors_ok ? "Disallowed CORS origin"
                             : !method_ok ? "Disallowed CORS method"
                                          : "Disallowed CORS headers";
        gw__edge_refuse(req, 400, detail, NULL, 0);
        return true;
    }
    gw_header out[3];
    size_t n = 0;
    out[n++] = (gw_header){"Access-Control-Allow-Methods", 28, v.methods, strlen(v.methods)};
    /* "*" with credentials is not honoured by browsers: name what was asked. */
    if (strcmp(v.headers, "*") == 0 && hdrs)
        out[n++] = (gw_header){"Access-Control-Allow-Headers", 28, hdrs->value, hdrs->value_len};
    else
        out[n++] = (gw_header){"Access-Control-Allow-Headers", 28, v.headers, strlen(v.headers)};
    char age[16];
    int len = snprintf(age, sizeof(age), "%u", v.max_age_s);
    out[n++] = (gw_header){"Access-Control-Max-Age", 22, age, (size_t)len};
    gw_req_respond(req, 204, out, n, NULL, NULL, 0);
    return true;
}

void gw__cors_answer(gw_edge *e, edge_req *er, gw_http_answer *a, bool *vary_origin)
{
    cors_view v;
    /* A request the server refused before the filter saw it meets the gateway's. */
    if (!view_of(e, er->ran_request ? er->cors : NULL, &v))
        return;
    *vary_origin = !v.any || v.credentials;
    if (!er->cors_ok)
        return;
    if (v.any && !v.credentials)
        gw__edge_add_header(a, "Access-Control-Allow-Origin", "*", 1);
    else
        gw__edge_add_header(a, "Access-Control-Allow-Origin", er->origin, er->origin_len);
    if (v.credentials)
        gw__edge_add_header(a, "Access-Control-Allow-Credentials", "true", 4);
    if (v.expose[0])
        gw__edge_add_header(a, "Access-Control-Expose-Headers", v.expose, strlen(v.expose));
}
