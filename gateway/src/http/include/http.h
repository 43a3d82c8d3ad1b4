/*
 * http.h - the gateway's HTTP/1.1 server as its handlers see it.
 *
 * The server (http_server.c) owns connections, parsing (llhttp, strict), limits and
 * response framing.  Everything above it - the router, the gateway's own routes, the
 * broker - sees only a complete request (headers and body read) and answers it, at
 * once or later from any callback on the same loop.
 */
#ifndef BARISTA_GW_HTTP_H
#define BARISTA_GW_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "router.h"

/* Longest error detail the gateway composes for a {"detail": ...} answer. */
#define GW_DETAIL_MAX 512

/* A header as the server hands it over: name lower-cased, value trimmed.  Both are
 * NUL-terminated and stay valid until the request is answered or aborted. */
typedef struct gw_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
} gw_header;

/* A complete request.  Every pointer stays valid until gw_req_respond() returns or
 * the abort callback has run; handlers treat the fields as read-only. */
typedef struct gw_req {
    const char *method; /* "GET", NUL-terminated */
    const char *path;   /* percent-decoding NOT applied; no query; NUL-terminated */
    size_t path_len;
    const char *query; /* raw text after '?', NUL-terminated, "" when none */
    size_t query_len;
    const gw_header *headers; /* in arrival order */
    size_t nheaders;
    const char *body; /* de-chunked body; NULL when empty */
    size_t body_len;
    gw_route_match match; /* what the router matched: route and path parameters */
    uint64_t received_ns; /* uv_hrtime() when the request line began */
    void *user;           /* free for the handler's use */
} gw_req;

/* Called for each complete request whose method and path matched a route. The handler
 * must answer it exactly once with gw_req_respond(), now or later - unless the abort
 * callback runs first. */
typedef void (*gw_handler_fn)(gw_req *req, void *route_data);

/* Called when the client goes away (or the server shuts down past its timeout) before
 * the request was answered.  After it returns the request is gone: never respond to
 * it, never touch it. */
typedef void (*gw_abort_fn)(gw_req *req, void *arg);

/* Registers fn to be told if req dies unanswered; one per request, a later call
 * replaces it. */
void gw_req_on_abort(gw_req *req, gw_abort_fn fn, void *arg);

/* Answers req.  `extra` are additional headers (the server always writes Date,
 * Content-Length, Content-Type and, when it closes, Connection: close).  The body is
 * copied; the caller keeps ownership of everything passed.  A HEAD request gets the
 * headers only.  Returns 0, or BR_EINVAL when req was already answered. */
int gw_req_respond(gw_req *req, int status, const gw_header *extra, size_t nextra,
                   const char *content_type, const void *body, size_t body_len);

/* Answers with FastAPI's error shape, {"detail":"<detail>"}, as application/json;
 * `detail` is JSON-escaped.  Returns as gw_req_respond(). */
int gw_req_respond_detail(gw_req *req, int status, const char *detail);

/* As gw_req_respond_detail, with Retry-After: 1 when retry_after (503s). */
int gw_req_respond_error(gw_req *req, int status, bool retry_after, const char *detail);

/* Finds a request header by lower-case name; NULL when absent. */
const gw_header *gw_req_header(const gw_req *req, const char *name);

#endif /* BARISTA_GW_HTTP_H */
