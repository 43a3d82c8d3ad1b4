/*
 * fetch.c - an external API call with an async client (httpx.AsyncClient).
 *
 *   GET /fetch  -> {"status": S, "content_type": "...", "body": "..."} of a GET to the
 *                  upstream URL the worker was configured with
 *
 * The upstream is BARISTA_UPSTREAM_URL (barista-worker --upstream-url sets it).  The
 * route takes no URL from the client, so the worker is no open proxy.  The transfer
 * runs on the worker's loop and is bound to the request's deadline: an unreachable
 * upstream answers 502, a slow one 504, each with a detail naming the cause.
 */
#include <stdlib.h>

#include "services.h"

/* The transfer gives up this much before the request's deadline, so that its own 504,
 * which names the upstream, reaches the client before the gateway's generic one. */
#define FETCH_REPLY_MARGIN_MS 100

static void fetched(br_req *req, const br_result *res, void *arg)
{
    (void)arg;
    if (res->detail.len) {
        char *detail = br_req_strdup(req, res->detail);
        br_reply_error(req, res->status, detail ? detail : "upstream failed");
        return;
    }
    msgpack_packer *pk = br_reply_begin(req, 200);
    msgpack_pack_map(pk, 3);
    br_pack_cstr(pk, "status");
    msgpack_pack_uint16(pk, res->status);
    br_pack_cstr(pk, "content_type");
    br_pack_str(pk, res->content_type);
    br_pack_cstr(pk, "body");
    br_pack_str(pk, res->body);
    br_reply_end(req);
}

static void cancelled(br_req *req, void *arg)
{
    (void)arg;
    br_reply_status(req, 499); /* ending the request aborts the transfer */
}

static void fetch(br_req *req)
{
    const char *url = getenv("BARISTA_UPSTREAM_URL");
    if (!url || !*url) {
        br_reply_error(req, 503, "no upstream configured (BARISTA_UPSTREAM_URL)");
        return;
    }
    uint32_t budget = br_req_remaining_ms(req);
    if (budget > 2 * FETCH_REPLY_MARGIN_MS)
        budget -= FETCH_REPLY_MARGIN_MS;
    br_http_spec spec = {.method = "GET", .url = url, .timeout_ms = budget};
    int rc = br_http_fetch(req, &spec, fetched, NULL);
    if (rc != 0) {
        br_reply_error(req, rc == BR_ECLOSED ? 504 : 502, br_strerror(rc));
        return;
    }
    br_req_on_cancel(req, cancelled, NULL);
}

static const br_route_spec routes[] = {
    {.method = "GET",
     .path = "/fetch",
     .handler = fetch,
     .summary = "status and body of a call to the configured upstream"},
};

const br_service_spec br_fetch_service = {
    .name = "fetch",
    .kind = BR_KIND_IO,
    .summary = "external API calls with an async HTTP client",
    .routes = routes,
    .nroutes = BR_NELEMS(routes),
};
