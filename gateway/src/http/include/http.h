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

#include "barista/proto.h"
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
    bool body_streamed;   /* the route streams its body: the handler ran once the headers
                             were read, body is NULL, gw_req_body_read delivers it */
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
/* Streamed answers: the status and headers now, the body in pieces, then the end.      */
/* HTTP/1.1 clients get chunked transfer-coding; HTTP/1.0 clients a body delimited by   */
/* the connection's close.  The abort callback stays in force until the stream ends:   */
/* a client that leaves mid-stream is reported through it.                             */

/* Called after some of a stream's bytes reached the socket (see gw_req_stream_pending).
 * It may write more or end the stream. */
typedef void (*gw_stream_drain_fn)(gw_req *req, void *arg);

/* Starts a streamed answer to req (instead of gw_req_respond): the status line and
 * headers as gw_req_respond writes them, with Transfer-Encoding: chunked (HTTP/1.1) or
 * Connection: close (HTTP/1.0) in place of Content-Length.  A HEAD request gets the
 * headers only and its stream's bytes are dropped.  Returns 0; BR_EINVAL when req was
 * answered already or status is not 200..599 (or is 204/304); BR_ENOMEM. */
int gw_req_stream_start(gw_req *req, int status, const gw_header *extra, size_t nextra,
                        const char *content_type);

/* Appends len bytes to the stream (copied, framed as one chunk; the server's filter
 * may transform them first, as compression does).  Nothing is sent for len 0.  Returns
 * 0; BR_EINVAL when req is not a started, unended stream; BR_ELIMIT when the bytes the
 * server holds for it would pass GW_HTTP_MAX_STREAM_HELD (the caller's flow control
 * failed); BR_ENOMEM. */
int gw_req_stream_write(gw_req *req, const void *data, size_t len);

/* Ends the stream.  complete: the terminating chunk goes out and the connection may
 * carry the next request.  Not complete (the source failed): no terminating chunk; the
 * connection closes once what was written is out, so the client sees a truncated body.
 * After it returns req is answered: never touch it again.  Returns 0 or BR_EINVAL. */
int gw_req_stream_end(gw_req *req, bool complete);

/* Bytes of the stream the server holds that the socket has not taken yet. */
size_t gw_req_stream_pending(const gw_req *req);

/* Registers fn to be called whenever a write of the stream's bytes completed (one per
 * stream; NULL removes it). */
void gw_req_on_drain(gw_req *req, gw_stream_drain_fn fn, void *arg);

/* The most stream bytes the server holds for one request before gw_req_stream_write
 * refuses more: a backstop behind the caller's own flow control. */
#define GW_HTTP_MAX_STREAM_HELD (16u * 1024 * 1024)

/* ---------------------------------------------------------------------------------- */
/* Streamed request bodies: for a route whose policy sets stream_body_max, the handler   */
/* runs as soon as the headers are read and takes the body piece by piece.  The server   */
/* holds no more than one read of it (GW_HTTP_READ_BUFFER): a consumer that pauses stops */
/* the socket being read.                                                                 */

/* A piece of a streamed body (data, len > 0), or its end: data NULL, len 0, and status
 * 0 when the body arrived complete, else the HTTP status its failure deserves (413 past
 * the route's cap, 400 for broken framing).  After the end nothing more comes; the
 * client leaving mid-body is reported through the abort callback instead. */
typedef void (*gw_body_fn)(gw_req *req, const char *data, size_t len, int status, void *arg);

/* Registers the consumer of req's streamed body (from the handler; NULL: none, the
 * rest of the body is read and dropped).  Pieces already read are not kept: register
 * before returning from the handler.  Returns 0, or BR_EINVAL when req's body is not
 * streamed. */
int gw_req_body_read(gw_req *req, gw_body_fn fn, void *arg);

/* Stops reading the body after the piece being delivered (backpressure), until
 * gw_req_body_resume.  While paused the body timeout does not run. */
void gw_req_body_pause(gw_req *req);
void gw_req_body_resume(gw_req *req);

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
    bool stream;              /* a streamed answer (gw_req_stream_start): no body yet; the
                                 filter's on_stream_data sees its bytes */
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
    /* A streamed answer's bytes (final: its end, with len 0): the filter appends what
     * goes to the client instead to `out` (which the server empties first) and returns
     * true; false: the bytes go as they are.  Runs only for streams on_answer saw. */
    bool (*on_stream_data)(void *data, gw_req *req, const void *in, size_t len, bool final,
                           br_buf *out);
} gw_http_filter;

#endif /* BARISTA_GW_HTTP_H */
