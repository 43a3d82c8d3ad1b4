/*
 * testing_int.h - the insides of the test client (barista/testing.h), shared by
 * testing.c (the worker, the loop, the broker's side of the protocol) and route.c
 * (what the gateway does to a request before it reaches a worker, and to a reply
 * after: routing, parameters, JSON).
 */
#ifndef BARISTA_TESTING_INT_H
#define BARISTA_TESTING_INT_H

#include "barista/proto.h"
#include "barista/testing.h"

/* Strings a test client owns until the pool is emptied. */
typedef struct tc_pool {
    char **items; /* heap strings */
    size_t n;     /* entries used */
    size_t cap;   /* entries allocated */
} tc_pool;

/* A NUL-terminated heap copy of s[0..len) kept in p; NULL when out of memory. */
char *tc_pool_dup(tc_pool *p, const char *s, size_t len);

/* Frees every string of p (the pool stays usable). */
void tc_pool_clear(tc_pool *p);

/* Frees p entirely. */
void tc_pool_free(tc_pool *p);

/* The most path parameters, query parameters and headers of one test request. */
#define TC_MAX_PAIRS 64

/* A request after the gateway's part: matched to a route, its parameters decoded. */
typedef struct tc_routed {
    const br_service_spec *service; /* the service serving it */
    const br_route_spec *route;     /* its route */
    br_pair params[TC_MAX_PAIRS];   /* path parameters (decoded, in pool strings) */
    uint32_t nparams;               /* entries in params */
    br_pair query[TC_MAX_PAIRS];    /* query parameters (decoded) */
    uint32_t nquery;                /* entries in query */
    br_str path;                    /* the path without its query */
} tc_routed;

/* Matches method and target ("/path?query") against the services' routes, as the
 * gateway's router does (HEAD is served by GET routes; {name} matches one non-empty
 * segment).  Returns 200 with *out filled, 404 when no template matches the path,
 * 405 when only another method's does, or 500 when out of memory (or over
 * TC_MAX_PAIRS).  Decoded strings live in pool. */
int tc_route(const br_service_spec *const *services, size_t n, const char *method,
             const char *target, tc_pool *pool, tc_routed *out);

/* JSON text -> msgpack into out (cleared first); 0 or BR_EVALUE. */
int tc_json_to_msgpack(const char *json, size_t len, br_buf *out);

/* msgpack -> a NUL-terminated JSON string in pool, or NULL when it does not convert. */
char *tc_msgpack_to_json(br_str mp, tc_pool *pool);

#endif /* BARISTA_TESTING_INT_H */
