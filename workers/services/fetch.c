/*
 * fetch.c - an external API call with an async client (httpx.AsyncClient).
 *
 *   GET /fetch  -> {"status": S, "content_type": "...", "body": "..."} of a GET to the
 *                  upstream URL the worker was configured with
 *
 * The upstream is the service's option --upstream-url (BARISTA_UPSTREAM_URL).  The
 * route takes no URL from the client, so the worker is no open proxy.  The transfer
 * runs on the worker's loop and is bound to the request's deadline: an unreachable
 * upstream answers 502, a slow one 504, each with a detail naming the cause.
 */
#include <string.h>

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
    br_writer *w = br_reply_start(req, 200);
    br_w_obj(w);
    br_w_key_int(w, "status", res->status);
    br_w_key_str(w, "content_type", res->content_type);
    br_w_key_str(w, "body", res->body);
    br_w_end(w);
    br_reply_send(req);
}

static void cancelled(br_req *req, void *arg)
{
    (void)arg;
    br_reply_status(req, 499); /* ending the request aborts the transfer */
}

static void fetch(br_req *req)
{
    const char *url = br_svc_option(br_req_svc(req), "upstream-url");
    if (!url || !*url) {
        br_reply_error(req, 503, "no upstream configured (--upstream-url, BARISTA_UPSTREAM_URL)");
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

/* An upstream is an http:// or https:// URL (the option's check). */
static const char *check_url(const char *value)
{
    if (!*value || strncmp(value, "http://", 7) == 0 || strncmp(value, "https://", 8) == 0)
        return NULL;
    return "want http:// or https://";
}

static const br_option_spec options[] = {
    {.name = "upstream-url",
     .env = "BARISTA_UPSTREAM_URL",
     .help = "the one upstream the fetch service calls",
     .check = check_url},
};

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
    .options = options,
    .noptions = BR_NELEMS(options),
};
