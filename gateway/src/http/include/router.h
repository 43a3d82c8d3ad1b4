/*
 * router.h - method + path templates -> handlers, changeable at run time.
 *
 * Templates are absolute paths whose segments are either literal ("/hello") or a
 * parameter ("/hello/{name}"); a parameter matches one whole non-empty segment.  When
 * several routes match a path the most literal one wins, segment by segment from the
 * left ("/users/me" beats "/users/{id}").  The broker adds the routes workers announce
 * while the gateway runs, so the table is plain data, not code.
 */
#ifndef BARISTA_GW_ROUTER_H
#define BARISTA_GW_ROUTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct gw_req;

/* Handler type; see http.h.  route_data is what gw_router_add() was given. */
typedef void (*gw_handler_fn)(struct gw_req *req, void *route_data);

/* Upper bounds a template must respect; a longer one is refused with BR_ELIMIT. */
#define GW_ROUTE_MAX_SEGMENTS 32
#define GW_ROUTE_MAX_PARAMS   16
#define GW_ROUTE_MAX_PATH     UINT16_MAX /* a match keeps 16-bit spans of the path */

/* A service's own CORS policy (PROTOCOL.md 5.1, br_cors), as NUL-terminated text the
 * edge answers with instead of its gateway-wide options.  Owned like gw_route_policy. */
typedef struct gw_cors_policy {
    const char *origins; /* comma-separated origins, or "*"; "": no origin is allowed */
    const char *methods; /* methods a preflight may ask for; "": the gateway's */
    const char *headers; /* request headers a preflight may ask for, or "*"; "": the
                            gateway's */
    const char *expose;  /* response headers a page may read; "" none */
    bool credentials;    /* Access-Control-Allow-Credentials: true */
    uint32_t max_age_s;  /* how long a browser may cache a preflight */
} gw_cors_policy;

/* What a route declared for the edge (gateway/src/edge): who may call it and who
 * answers it.  Plain data owned by whoever set it (gw_router_set_policy), which keeps
 * it alive while the route exists. */
typedef struct gw_route_policy {
    uint8_t auth;             /* br_auth_mode (barista/proto.h); BR_AUTH_DEFAULT: the gateway's */
    const char *scopes;       /* space-separated scopes a caller must all hold; "" or NULL: none */
    const char *service;      /* the service answering it, for the access log; NULL: the gateway */
    bool forward_token;       /* the raw Authorization header travels to the worker */
    uint64_t stream_body_max; /* non-zero: the route takes its body as a stream (gw_req_body_read)
                                 of at most this many bytes; 0: buffered, max_body_bytes */
    const gw_cors_policy *cors; /* the service's CORS; NULL: the gateway's */
} gw_route_policy;

/* One registered route.  Read-only outside router.c; valid until removed. */
typedef struct gw_route {
    const char *method;  /* "GET", ... (NUL-terminated, owned by the router) */
    const char *pattern; /* the template, e.g. "/hello/{name}" (owned by the router) */
    gw_handler_fn handler;
    void *data;                    /* the caller's; the router never touches it */
    const gw_route_policy *policy; /* the edge's declarations; NULL: the gateway's defaults */
} gw_route;

/* A path parameter of a match.  name points into the route, value into the matched
 * path (not NUL-terminated, not percent-decoded). */
typedef struct gw_path_param {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
} gw_path_param;

/* Where a parameter's value lies in the matched path: path[off .. off + len). */
typedef struct gw_path_span {
    uint16_t off;
    uint16_t len;
} gw_path_span;

/* The result of a successful match.  Valid while the route and the path are.  It
 * keeps spans of the path rather than pointers (every HTTP request in flight holds
 * one: 88 bytes instead of 528); gw_route_match_param gives a parameter whole. */
typedef struct gw_route_match {
    const gw_route *route;
    const char *path;                        /* the matched path */
    gw_path_span spans[GW_ROUTE_MAX_PARAMS]; /* the parameters' values, in template order */
    size_t nparams;                          /* entries in spans */
} gw_route_match;

typedef struct gw_router gw_router;

/* Creates an empty router; caller owns it.  NULL when out of memory. */
gw_router *gw_router_new(void);

/* Destroys *self_p and sets it to NULL; safe on NULL and twice. */
void gw_router_destroy(gw_router **self_p);

/* Adds a route.  Returns 0; BR_EINVAL for a malformed template (not starting with
 * '/', an empty or unclosed "{}", a parameter name repeated); BR_ELIMIT past the
 * bounds above; BR_EFULL when the same method and template (parameter names aside)
 * is already registered; BR_ENOMEM. */
int gw_router_add(gw_router *self, const char *method, const char *pattern, gw_handler_fn handler,
                  void *data);

/* Points the route with this method and template at `policy` (borrowed; NULL for the
 * gateway's defaults).  Returns 0 or BR_ENOTFOUND. */
int gw_router_set_policy(gw_router *self, const char *method, const char *pattern,
                         const gw_route_policy *policy);

/* Removes the route with this method and template.  Returns 0 or BR_ENOTFOUND. */
int gw_router_remove(gw_router *self, const char *method, const char *pattern);

/* Finds the route for method and path (path without query string).  Returns 0 and
 * fills *out; BR_ENOTFOUND when no template matches the path (404); or BR_EINVAL
 * when templates match the path but not for this method (405) - then `allow`
 * receives the comma-separated methods that do match ("GET, HEAD"), truncated to
 * allow_cap bytes including the NUL.  A HEAD request matches a GET route when no HEAD
 * route exists.  A path longer than GW_ROUTE_MAX_PATH bytes matches nothing. */
int gw_router_match(const gw_router *self, const char *method, const char *path, size_t path_len,
                    gw_route_match *out, char *allow, size_t allow_cap);

/* Path parameter i (< m->nparams) of a successful match, in template order: its name
 * from the route, its value from the path. */
gw_path_param gw_route_match_param(const gw_route_match *m, size_t i);

#endif /* BARISTA_GW_ROUTER_H */
