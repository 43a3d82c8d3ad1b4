/*
 * introspection.h - the gateway's routes that describe the gateway itself:
 * GET /metrics (metrics.h), GET /openapi.json (openapi.h) and GET /docs (docs_page.h).
 */
#ifndef BARISTA_GW_INTROSPECTION_H
#define BARISTA_GW_INTROSPECTION_H

#include <barista/proto.h>

#include "metrics.h"
#include "router.h"

/* Most bytes a /metrics or /openapi.json answer may take (a 500 past it, logged). */
#define GW_INTROSPECTION_MAX (8u * 1024u * 1024u)

/* What the three routes read.  The caller owns it (it must outlive the routes) and
 * fills src as the components come to exist; requests only arrive once the HTTP
 * front runs, after all of them. */
typedef struct gw_introspection {
    gw_metrics_sources src; /* the components: counters, and the broker's registry */
    br_buf scratch;         /* the answer being rendered, kept between requests */
    uint8_t auth_default;   /* br_auth_mode of routes that declare none (--auth-default):
                               the document's top-level security */
} gw_introspection;

/* Adds GET /metrics, GET /openapi.json and GET /docs to router, each with intro as
 * its data.  0 or gw_router_add()'s error. */
int gw_introspection_add_routes(gw_router *router, gw_introspection *intro);

/* Frees the scratch buffer; safe twice.  The routes must be gone or never used again. */
void gw_introspection_free(gw_introspection *intro);

#endif /* BARISTA_GW_INTROSPECTION_H */
