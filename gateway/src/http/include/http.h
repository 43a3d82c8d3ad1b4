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
    void *filter_state;   /* the server's filter's per-request state (gw_http_filter);
                             NULL without a filter or before it ran */
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

/* The address of the peer the request arrived from (the TCP peer, not a client behind
 * a proxy).  Returns 0, or BR_EIO when the socket cannot tell (logged nowhere). */
int gw_req_peer(const gw_req *req, struct sockaddr_storage *out);

/* Replaces the request body the handler will see (a filter that decompressed it).
 * `body` must stay valid until the request is answered or aborted; the caller keeps
 * ownership. */
void gw_req_set_body(gw_req *req, const char *body, size_t body_len);

/* ---------------------------------------------------------------------------------- */
/* Filters: the server's per-request hooks, like an nginx module's phase handlers.      */

/* An answer as a filter sees it while it is built: it may add headers (appending to
 * `extra`, up to `extra_cap`; the pointed-to bytes must stay valid until the answer is
 * built) and may replace the body and its content type (compression).  The server
 * copies everything once the hook returns. */
typedef struct gw_http_answer {
    int status;               /* the status being answered */
    const char *content_type; /* may be replaced; NULL for none */
    const void *body;         /* may be replaced */
    size_t body_len;          /* bytes at body */
    gw_header *extra;         /* the handler's extra headers, then the filter's */
    size_t nextra;            /* entries used in extra */
    size_t extra_cap;         /* entries extra can hold */
    bool head;                /* a HEAD request: the body is not sent */
} gw_http_answer;

/* Extra header slots the server reserves for its filter on every answer. */
#define GW_HTTP_FILTER_HEADERS 16

/* The hooks of the one filter a server may have (see gw_http_server_set_filter).
 * Every slot may be NULL; `data` is the pointer given with the table. */
typedef struct gw_http_filter {
    /* A complete request, after routing (req->match.route is NULL when no route
     * matched) and before its handler, or the 404/405 answer, runs.  Returns true when
     * the filter answered the request itself (a preflight, a 401, a 429): then nothing
     * else runs for it. */
    bool (*on_request)(void *data, gw_req *req);
    /* An answer is being built (by a handler or by the server itself, in which case
     * on_request may not have run and filter_state may be NULL). */
    void (*on_answer)(void *data, gw_req *req, gw_http_answer *answer);
    /* The request is over: answered (status and bytes of the serialised answer) or
     * aborted (status 499, bytes 0).  Runs once per request that reached on_request or
     * on_answer; the filter releases filter_state here. */
    void (*on_done)(void *data, gw_req *req, int status, size_t bytes);
} gw_http_filter;

#endif /* BARISTA_GW_HTTP_H */
