/*
 * routes.h - the gateway's own routes (answered in the gateway, never by a worker).
 */
#ifndef BARISTA_GW_ROUTES_H
#define BARISTA_GW_ROUTES_H

#include "router.h"

/* Adds GET /healthz (liveness: 200 {"status":"ok"} while the loop runs).  Returns 0 or
 * gw_router_add()'s error. */
int gw_routes_add_builtin(gw_router *router);

#endif /* BARISTA_GW_ROUTES_H */
