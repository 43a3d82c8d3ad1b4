/*
 * routes.h - the gateway's own routes (answered in the gateway, never by a worker).
 */
#ifndef BARISTA_GW_ROUTES_H
#define BARISTA_GW_ROUTES_H

#include <stdbool.h>

#include <barista/proto.h>

#include "router.h"

/* Adds GET /healthz (liveness: 200 {"status":"ok"} while the loop runs).  Returns 0 or
 * gw_router_add()'s error. */
int gw_routes_add_builtin(gw_router *router);

/* True when a worker may not announce `method path` because it would shadow the
 * gateway's own routes: a template whose first segment is healthz, readyz, metrics,
 * openapi.json, docs or jobs (any method, any depth: those trees are the gateway's),
 * or one of one or two segments starting with a parameter, unless the method is GET
 * (with GET the gateway's literal segments always rank first, HEAD included; any
 * other method would answer there instead of the gateway's 405, and HEAD would beat
 * the gateway's GET).  The registry refuses such a READY. */
bool gw_routes_reserved(br_str method, br_str path);

#endif /* BARISTA_GW_ROUTES_H */
