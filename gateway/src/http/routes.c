/*
 * routes.c - the gateway's own routes: /healthz here; /readyz in app/main.c; /metrics,
 * /openapi.json and /docs in admin/introspection.c; /jobs/... in jobs/jobs_api.c.
 * And the paths they keep workers away from.
 */
#include "routes.h"

#include <string.h>

#include "http.h"

static void healthz(gw_req *req, void *data)
{
    static const char body[] = "{\"status\":\"ok\"}";
    (void)data;
    gw_req_respond(req, 200, NULL, 0, "application/json", body, sizeof(body) - 1);
}

int gw_routes_add_builtin(gw_router *router)
{
    return gw_router_add(router, "GET", "/healthz", healthz, NULL);
}

/* First path segments that belong to the gateway. */
static const char *const reserved_roots[] = {"healthz",      "readyz", "metrics",
                                             "openapi.json", "docs",   "jobs"};

bool gw_routes_reserved(br_str method, br_str path)
{
    if (path.len < 2 || path.ptr[0] != '/')
        return false;
    const char *first = path.ptr + 1;
    const char *end = path.ptr + path.len;
    const char *slash = memchr(first, '/', (size_t)(end - first));
    size_t first_len = (size_t)((slash ? slash : end) - first);
    for (size_t i = 0; i < sizeof(reserved_roots) / sizeof(reserved_roots[0]); i++)
        if (strlen(reserved_roots[i]) == first_len &&
            memcmp(reserved_roots[i], first, first_len) == 0)
            return true;
    if (first[0] != '{' || br_str_eq(method, "GET"))
        return false;
    /* A parameter first: it matches /healthz (one segment) or /jobs/ID (two). */
    size_t segments = 1;
    for (const char *p = first; p < end; p++)
        segments += *p == '/';
    return segments <= 2;
}
