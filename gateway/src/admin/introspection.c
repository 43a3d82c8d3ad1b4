/*
 * introspection.c - GET /metrics, /openapi.json and /docs (introspection.h).
 *
 * Each answer is rendered into one buffer that keeps its memory between requests,
 * so that a scrape every few seconds does not allocate once the buffer has grown.
 */
#include "introspection.h"

#include <stdio.h>

#include "docs_page.h"
#include "http.h"
#include "log.h"
#include "openapi.h"

/* Answers the rendering in intro->scratch, or 500 when rendering failed with rc. */
static void respond_rendered(gw_req *req, gw_introspection *intro, int rc, const char *content_type)
{
    if (rc != 0) {
        gw_log(GW_LOG_ERROR, "admin", "rendering %s failed: %s", req->path, br_strerror(rc));
        gw_req_respond_detail(req, 500, "Internal Server Error");
        return;
    }
    gw_req_respond(req, 200, NULL, 0, content_type, intro->scratch.data, intro->scratch.len);
}

static void metrics(gw_req *req, void *data)
{
    gw_introspection *intro = data;
    intro->scratch.len = 0;
    int rc = gw_metrics_render(&intro->src, &intro->scratch);
    respond_rendered(req, intro, rc, GW_METRICS_CONTENT_TYPE);
}

static void openapi(gw_req *req, void *data)
{
    gw_introspection *intro = data;
    const gw_registry *reg = intro->src.broker ? gw_broker_registry(intro->src.broker) : NULL;
    intro->scratch.len = 0;
    int rc = gw__openapi_render(reg, intro->src.jobs != NULL, intro->auth_default, &intro->scratch);
    respond_rendered(req, intro, rc, "application/json");
}

static void docs(gw_req *req, void *data)
{
    (void)data;
    gw_req_respond(req, 200, NULL, 0, "text/html; charset=utf-8", gw_docs_html, gw_docs_html_len);
}

int gw_introspection_add_routes(gw_router *router, gw_introspection *intro)
{
    intro->scratch.max = GW_INTROSPECTION_MAX;
    int rc = gw_router_add(router, "GET", "/metrics", metrics, intro);
    if (rc == 0)
        rc = gw_router_add(router, "GET", "/openapi.json", openapi, intro);
    if (rc == 0)
        rc = gw_router_add(router, "GET", "/docs", docs, NULL);
    return rc;
}

void gw_introspection_free(gw_introspection *intro)
{
    br_buf_free(&intro->scratch);
}
