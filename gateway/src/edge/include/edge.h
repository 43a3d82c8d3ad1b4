/*
 * edge.h - what every request meets at the gateway's edge, before a handler and as
 * it is answered: request ids and tracing, the client's address behind trusted
 * proxies, CORS, rate limits, authentication (JWT, API keys), compression both ways,
 * and the access log.
 *
 * The edge is the HTTP server's one filter (http.h, gw_http_filter): it sees each
 * request after routing and before its handler, may answer it itself (a preflight, a
 * 401, a 429, a zip bomb's 413), adds its headers to every answer, compresses bodies,
 * and writes one access-log line when the request is over.  Per-route declarations
 * (auth mode, scopes, the service's CORS) come from the route's gw_route_policy;
 * everything else is gateway-wide configuration.  Components above (the broker) read what the edge
 * established about a request with gw_edge_req_info().
 *
 * Everything runs on the gateway's loop; nothing blocks but the access log's write(2)
 * to a local file, once per loop turn.
 *
 * Lifecycle:
 *     gw_edge_config cfg;  gw_edge_config_defaults(&cfg);  (set fields)
 *     edge = gw_edge_new(loop, &cfg);          loads keys, opens the access log
 *     gw_edge_attach(edge, http_server);       installs the filter
 *     gw_edge_set_router(edge, router);        preflights find their route's CORS
 *     ...                                      SIGHUP: gw_edge_reopen(edge)
 *     gw_edge_close(edge);                     flushes the log, closes its handles
 *     (after the loop ended)  gw_edge_destroy(&edge);
 */
#ifndef BARISTA_GW_EDGE_H
#define BARISTA_GW_EDGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include <barista/proto.h>

#include "http.h"
#include "http_server.h"

/* Defaults of gw_edge_config, by name (docs/edge.md gives the reasoning). */
#define GW_EDGE_ACCESS_LOG         "-"
#define GW_EDGE_ACCESS_LOG_JSON    false
#define GW_EDGE_ACCESS_LOG_SAMPLE  1u
#define GW_EDGE_CORS_METHODS       "GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS"
#define GW_EDGE_CORS_HEADERS       "authorization, content-type, x-request-id, x-api-key"
#define GW_EDGE_CORS_MAX_AGE_S     600u
#define GW_EDGE_COMPRESS           true
#define GW_EDGE_COMPRESS_MIN_BYTES 1024u
#define GW_EDGE_GZIP_LEVEL         6u
#define GW_EDGE_BROTLI_QUALITY     4u
#define GW_EDGE_MAX_INFLATED_BYTES (8u * 1024 * 1024)
#define GW_EDGE_AUTH_DEFAULT       BR_AUTH_NONE
#define GW_EDGE_JWT_LEEWAY_S       30u
#define GW_EDGE_RATE_BURST_FACTOR  2u
#define GW_EDGE_RATE_MAX_BUCKETS   65536u

/* Longest X-Request-ID accepted from a client; a longer or malformed one is replaced
 * by a fresh id (never refused). */
#define GW_EDGE_REQUEST_ID_MAX 128

/* Longest value of a text option of the edge (paths, lists). */
#define GW_EDGE_TEXT_MAX 1024

/* Every option of the edge; each is also a gateway option (config.c).  Strings are
 * borrowed for the duration of gw_edge_new(), which copies or loads what it needs.
 * An empty string means "off" for the optional features. */
typedef struct gw_edge_config {
    /* Access log. */
    const char *access_log;     /* "-": stderr; a path: appended, reopened on SIGHUP;
                                   "" or "off": no access log */
    bool access_log_json;       /* JSON lines instead of the common-log text */
    uint32_t access_log_sample; /* log 1 in N answers below 400 (errors always); >= 1 */
    /* CORS: off while cors_origins is empty. */
    const char *cors_origins; /* comma-separated origins, or "*" for any */
    const char *cors_methods; /* allowed methods, comma-separated */
    const char *cors_headers; /* allowed request headers, comma-separated; "*": any */
    const char *cors_expose;  /* response headers a page may read; "" none */
    bool cors_credentials;    /* Access-Control-Allow-Credentials: true */
    uint32_t cors_max_age_s;  /* how long a browser may cache a preflight */
    /* Compression. */
    bool compress;             /* compress answers the client accepts compressed */
    size_t compress_min_bytes; /* smaller bodies go as they are */
    uint32_t gzip_level;       /* 1..9 */
    uint32_t brotli_quality;   /* 0..11 */
    size_t max_inflated_bytes; /* a gzip request body inflating past this -> 413 */
    /* Authentication. */
    uint8_t auth_default;            /* br_auth_mode of routes that declare none */
    const char *jwt_secret_file;     /* HS256 shared secret (the file's bytes) */
    const char *jwt_public_key_file; /* PEM public key: RSA (RS256) or EC P-256 (ES256) */
    const char *jwks_file;           /* a JWKS document: keys chosen by the token's kid */
    const char *jwt_issuer;          /* required iss; "" any */
    const char *jwt_audience;        /* required aud; "" any */
    uint32_t jwt_leeway_s;           /* clock skew allowed on exp and nbf */
    const char *api_keys_file;       /* lines "NAME SHA256-HEX [SCOPE...]" */
    /* Rate limits: requests per second, 0 = off; bursts of rate x factor. */
    uint32_t rate_ip;           /* per client address */
    uint32_t rate_key;          /* per authenticated subject or API key */
    uint32_t rate_route;        /* per route template (all clients together) */
    uint32_t rate_burst_factor; /* bucket size = rate x this */
    uint32_t rate_max_buckets;  /* buckets kept per kind; the idle ones go first */
    /* Client address behind proxies. */
    const char *trusted_proxies; /* comma-separated addresses or CIDRs; "" none */
} gw_edge_config;

/* Fills *cfg with the defaults above (strings point at static literals). */
void gw_edge_config_defaults(gw_edge_config *cfg);

typedef struct gw_edge gw_edge;

/* Creates the edge: parses the lists, reads the key files, opens the access log.
 * Returns NULL on a bad configuration or an unreadable file, after writing a one-line
 * reason to `why` (why_cap bytes, NUL-terminated).  Caller owns the result. */
gw_edge *gw_edge_new(uv_loop_t *loop, const gw_edge_config *cfg, char *why, size_t why_cap);

/* Installs the edge as the server's filter.  0 or BR_EINVAL. */
int gw_edge_attach(gw_edge *self, gw_http_server *http);

/* Gives the edge the router (borrowed: it must outlive the edge) so that a CORS
 * preflight, which matches no route of its own, meets the CORS policy of the route it
 * asks about (the service's, gw_route_policy.cors).  Without it, every preflight meets
 * the gateway-wide options. */
void gw_edge_set_router(gw_edge *self, const gw_router *router);

/* Reopens the access log file (SIGHUP, after logrotate moved it).  0 or BR_EIO
 * (logged; the old file stays in use). */
int gw_edge_reopen(gw_edge *self);

/* Writes what the access log holds and closes the edge's handles; the loop can then
 * end.  Safe twice. */
void gw_edge_close(gw_edge *self);

/* Destroys *self_p (after gw_edge_close and the loop's end) and NULLs it; safe on NULL
 * and twice. */
void gw_edge_destroy(gw_edge **self_p);

/* ---------------------------------------------------------------------------------- */
/* What the edge established about one request, for the broker to pass on.             */

typedef struct gw_edge_info {
    br_str request_id;       /* X-Request-ID as answered (accepted or made) */
    br_str trace;            /* the traceparent the gateway answers and forwards */
    br_str identity;         /* msgpack map of the verified caller (PROTOCOL.md 5.3); empty */
    br_str client;           /* the client's address as text (behind trusted proxies) */
    bool body_inflated;      /* the body was gzip on the wire and is now plain: drop
                                content-encoding when forwarding */
    bool drop_authorization; /* the route does not want the raw token: drop
                                authorization (and x-api-key) when forwarding */
} gw_edge_info;

/* Fills *out for req.  Returns 0, or BR_ENOTFOUND (and an empty *out) when no edge
 * saw the request.  The strings stay valid until the request is answered. */
int gw_edge_req_info(const gw_req *req, gw_edge_info *out);

/* The broker sent req to `worker` now: the access log's queue wait ends here and names
 * the worker (copied). */
void gw_edge_req_dispatched(gw_req *req, const char *worker);

#endif /* BARISTA_GW_EDGE_H */
