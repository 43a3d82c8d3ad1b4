/*
 * openapi.h - GET /openapi.json: the OpenAPI 3.1 document of what live workers
 * announced (DESIGN.md, principle 2), plus the gateway's own routes.
 *
 * The document is written from the broker's registry at each request, so it changes
 * as workers join: every announced route with its declared parameters (in, required,
 * type, bounds), its body mode and FastAPI's error responses; a tag per service.
 * Routes whose service has no live worker stay listed (they answer 503) and carry
 * "x-barista-available": false.
 */
#ifndef BARISTA_GW_OPENAPI_H
#define BARISTA_GW_OPENAPI_H

#include <stdbool.h>

#include <barista/proto.h>

#include "registry.h"

/* Appends the document as compact JSON to out: the routes of every service in reg
 * (NULL: none), and the gateway's routes (/healthz, /readyz, /metrics, /openapi.json,
 * /docs; with_jobs adds POST /jobs/{task} and GET /jobs/{id}).  auth_default is the
 * br_auth_mode of routes that declare none: the document's top-level `security`, which
 * routes declaring their own override (the gateway's probes and docs are open).
 * Methods OpenAPI has no field for (anything but GET, PUT, POST, DELETE, OPTIONS,
 * HEAD, PATCH, TRACE) are left out.  0, or br_buf_append's error (out is then to be
 * discarded). */
int gw__openapi_render(const gw_registry *reg, bool with_jobs, uint8_t auth_default, br_buf *out);

#endif /* BARISTA_GW_OPENAPI_H */
