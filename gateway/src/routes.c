/*
 * routes.c - the gateway's own routes.  /readyz, /metrics, /openapi.json and /docs
 * join /healthz here as their components land.
 */
#include "routes.h"

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
