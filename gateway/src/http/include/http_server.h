/*
 * http_server.h - the gateway's HTTP/1.1 server: listening, connections, limits.
 *
 * One server runs on one libuv loop and serves one listening address.  Complete
 * requests go to the router given at creation (see http.h for what handlers see).
 * Every buffer and timer has a limit in gw_http_config; docs/gateway.md lists them
 * with their defaults and the reasoning behind each.
 */
#ifndef BARISTA_GW_HTTP_SERVER_H
#define BARISTA_GW_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "router.h"

struct gw_http_filter;

/* Defaults of gw_http_config, by name (docs/gateway.md gives the reasoning). */
#define GW_HTTP_MAX_URL_BYTES        (8u * 1024)
#define GW_HTTP_MAX_HEADER_BYTES     (32u * 1024)
#define GW_HTTP_MAX_HEADERS          100u
#define GW_HTTP_MAX_BODY_BYTES       (1024u * 1024)
#define GW_HTTP_HEADER_TIMEOUT_MS    10000u
#define GW_HTTP_BODY_TIMEOUT_MS      30000u
#define GW_HTTP_KEEPALIVE_TIMEOUT_MS 60000u
#define GW_HTTP_SEND_TIMEOUT_MS      60000u
#define GW_HTTP_MAX_CONNECTIONS      16384u
#define GW_HTTP_MAX_PIPELINE         32u
#define GW_HTTP_MAX_OUTPUT_BYTES     (1024u * 1024)
#define GW_HTTP_MAX_CHUNK_EXT_BYTES  (4u * 1024)
#define GW_HTTP_MAX_BODY_BUFFER      (64u * 1024 * 1024)
#define GW_HTTP_BACKLOG              511

/* Every limit of the server; each field is also a gateway option (config.c).
 *
 * Configuration, as in every gateway subsystem: gw_http_config_defaults() is the one
 * place the defaults above are written; a caller starts from it and changes fields.
 * gw_http_server_new() takes the configuration as given and refuses one with a zero
 * limit: zero never means "the default". */
typedef struct gw_http_config {
    size_t max_url_bytes;          /* request target length; longer -> 414 */
    size_t max_header_bytes;       /* bytes of a request's head: empty lines before it, the
                                      request line, header lines and line ends, plus a
                                      chunked body's trailers -> 431 */
    uint32_t max_headers;          /* header fields in one request -> 431 */
    size_t max_body_bytes;         /* request body, declared or de-chunked -> 413 */
    uint32_t header_timeout_ms;    /* first byte of a request to end of its headers -> 408;
                                      also how long a new connection may stay silent */
    uint32_t body_timeout_ms;      /* longest pause between two reads of a body -> 408 */
    uint32_t keepalive_timeout_ms; /* idle keep-alive connection is closed silently */
    uint32_t send_timeout_ms;      /* a response write that makes no progress this long
                                      closes the connection (slow readers) */
    uint32_t max_connections;      /* open connections; one more gets 503 + Retry-After */
    uint32_t max_pipeline;         /* parsed requests waiting on one connection before
                                      the server stops reading it (backpressure) */
    size_t max_output_bytes;       /* request and response bytes one connection holds
                                      unwritten before the server stops reading it */
    size_t max_chunk_ext_bytes;    /* bytes of a chunked body's lines beyond the shortest
                                      form (extensions, zeros before a size) -> 400 */
    size_t max_body_buffer;        /* request body bytes held by all connections together
                                      (read, not yet answered) -> 503 + Retry-After */
    int backlog;                   /* listen(2) backlog */
    bool reuse_port;               /* listen with SO_REUSEPORT: several processes share
                                      the port, the kernel spreads connections (off by
                                      default: a second gateway on the port is an error) */
} gw_http_config;

/* Fills *cfg with the defaults above. */
void gw_http_config_defaults(gw_http_config *cfg);

typedef struct gw_http_server gw_http_server;

/* Creates a server on loop that dispatches to router (borrowed: it must outlive the
 * server).  *config is copied.  Caller owns the result; NULL when out of memory, or
 * (logged) when config is NULL or a limit is zero. */
gw_http_server *gw_http_server_new(uv_loop_t *loop, gw_router *router,
                                   const gw_http_config *config);

/* Installs the server's filter (http.h): its hooks run for every request from now on.
 * `hooks` is copied; `data` (borrowed) must outlive the server.  NULL removes it.
 * Returns 0 or BR_EINVAL. */
int gw_http_server_set_filter(gw_http_server *self, const struct gw_http_filter *hooks, void *data);

/* Binds addr and starts accepting.  Returns 0 or BR_EIO (logged with the failing
 * call and its error). */
int gw_http_server_start(gw_http_server *self, const struct sockaddr *addr);

/* The bound address (useful after binding port 0).  Returns 0 or BR_EIO. */
int gw_http_server_address(const gw_http_server *self, struct sockaddr_storage *out);

/* Open connections right now. */
size_t gw_http_server_connections(const gw_http_server *self);

/* Buckets of the request duration histogram (GET /metrics): upper bounds in
 * microseconds, ascending; one more bucket (+Inf) takes the rest. */
#define GW_HTTP_DURATION_BUCKETS 14
extern const uint32_t gw_http_duration_bounds_us[GW_HTTP_DURATION_BUCKETS];

/* The server's counters, kept as plain integers on the loop thread.  Counters only
 * grow; the duration of a request runs from its first byte (received_ns) to its
 * answer being built. */
typedef struct gw_http_stats {
    uint64_t accepted;  /* connections accepted and served */
    uint64_t rejected;  /* connections turned away with 503 at max_connections */
    uint64_t bytes_in;  /* bytes read from clients */
    uint64_t bytes_out; /* bytes of answers built (status line, headers, body) */
    uint64_t status[5]; /* answers by status class: [0] 1xx ... [4] 5xx */
    uint64_t duration[GW_HTTP_DURATION_BUCKETS + 1]; /* answers per bucket (not
                                                      cumulative); the last is +Inf */
    uint64_t duration_sum_us; /* sum of the durations counted, microseconds */
} gw_http_stats;

/* Copies the counters into *out (zeroes when self is NULL). */
void gw_http_server_stats_get(const gw_http_server *self, gw_http_stats *out);

/* Stops accepting and closes idle connections at once; connections with requests in
 * flight finish them (answers carry Connection: close) for up to timeout_ms.  Then
 * requests still unanswered are aborted (gw_abort_fn) and answered 503, and every
 * remaining connection is closed.  done(arg) runs once every handle of the server is
 * closed; the server may then be destroyed.  Calling it twice is BR_ECLOSED. */
int gw_http_server_shutdown(gw_http_server *self, uint32_t timeout_ms, void (*done)(void *arg),
                            void *arg);

/* Destroys *self_p and sets it to NULL; safe on NULL and twice.  A started server
 * must have finished gw_http_server_shutdown() first. */
void gw_http_server_destroy(gw_http_server **self_p);

#endif /* BARISTA_GW_HTTP_SERVER_H */
