/*
 * edge_int.h - what the edge's files share: edge.c (the filter's hooks, per-request
 * state, request ids), accesslog.c, cors.c, compress.c, auth.c (JWT and API keys),
 * ratelimit.c and proxy.c.  Nothing outside gateway/src/edge includes it.
 */
#ifndef BARISTA_GW_EDGE_INT_H
#define BARISTA_GW_EDGE_INT_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "edge.h"

/* Length of a W3C traceparent: "00-" 32 hex "-" 16 hex "-" 2 hex. */
#define GW_EDGE_TRACE_LEN 55
/* Bytes of a client address as text (the longest IPv6 form and its NUL). */
#define GW_EDGE_ADDR_MAX INET6_ADDRSTRLEN
/* Bytes of a request id kept inside edge_req: a generated id (32 hex digits) or a
 * UUID fits; a longer client-given id is allocated. */
#define GW_EDGE_ID_INLINE 40
/* The compressed-answer buffer: its bound (an answer is at most 17 MiB; compression
 * never makes one much larger), and the capacity kept between answers. */
#define GW_EDGE_ZBUF_MAX  (18u * 1024 * 1024)
#define GW_EDGE_ZBUF_KEEP (256u * 1024)
/* Per-request state objects kept for reuse; more are freed when done. */
#define GW_EDGE_POOL_KEEP 4096
/* Bytes of the edge's own header values on one answer. */
#define GW_EDGE_HEADER_TEXT 512
/* Longest error reason kept for the access log. */
#define GW_EDGE_REASON_MAX 200
/* Longest worker id kept for the access log. */
#define GW_EDGE_WORKER_MAX 96
/* Longest route scopes / subject kept. */
#define GW_EDGE_SUBJECT_MAX 256

/* Response codings the edge can produce. */
typedef enum edge_coding { EDGE_IDENTITY = 0, EDGE_GZIP = 1, EDGE_BR = 2 } edge_coding;

/* The buffers of a request whose body was inflated or whose caller was verified: made
 * the first time a request needs one (gw__edge_req_bufs), then kept with the pooled
 * edge_req for the requests after it. */
typedef struct edge_req_bufs {
    br_buf inflated_body; /* the inflated body (gw_req_set_body points here) */
    br_buf identity;      /* msgpack map of the verified caller; empty: none */
} edge_req_bufs;

/* The edge's state for one request: from on_request (or the first on_answer of a
 * request the server refused itself) to on_done.  Pooled. */
typedef struct edge_req {
    struct edge_req *next;             /* free list */
    uint64_t start_ns;                 /* the request's first byte (uv_hrtime) */
    uint64_t sent_ns;                  /* dispatched to a worker; 0: not (yet) */
    char worker[GW_EDGE_WORKER_MAX];   /* the worker it was last sent to; "" none */
    char *id;                          /* X-Request-ID answered: id_inline, or
                                          malloc'd when longer (NUL-terminated) */
    size_t id_len;                     /* bytes of id */
    char id_inline[GW_EDGE_ID_INLINE]; /* a short id's bytes */
    char trace[GW_EDGE_TRACE_LEN + 1]; /* traceparent answered and forwarded */
    char client[GW_EDGE_ADDR_MAX];     /* client address as text ("-" when unknown) */
    char *subject;                     /* the authenticated caller (malloc'd, at most
                                          GW_EDGE_SUBJECT_MAX - 1 bytes); NULL:
                                          anonymous.  Most requests have none, so
                                          it takes no room in the others */
    const char *origin;                /* Origin header (into the request), NULL: none */
    size_t origin_len;                 /* bytes of origin */
    const gw_cors_policy *cors;        /* the service's CORS the request meets (for a
                                          preflight, the asked-for route's); NULL: the
                                          gateway's */
    bool cors_ok;                      /* origin allowed: CORS headers on the answer */
    bool inflated;                     /* the body was inflated from gzip */
    bool drop_auth;                    /* authorization is not forwarded */
    bool ran_request;                  /* on_request ran (not a server-refused request) */
    uint8_t coding;                    /* edge_coding the answer may use */
    uint8_t zcoding;                   /* edge_coding of zstream */
    int rate_remaining;                /* RateLimit-Remaining to answer; -1: no limit */
    uint32_t rate_limit;               /* RateLimit-Limit */
    uint32_t rate_reset_s;             /* RateLimit-Reset */
    void *zstream;                     /* a streamed answer's compressor (z_stream or
                                          BrotliEncoderState, by zcoding); NULL: none */
    edge_req_bufs *bufs;               /* its buffers, NULL until a request needed
                                          them (kept across the pool) */
} edge_req;

/* er's buffers, made (empty) when it has none yet; NULL when out of memory. */
edge_req_bufs *gw__edge_req_bufs(edge_req *er);

/* A parsed address or CIDR (proxy.c). */
typedef struct edge_cidr {
    int family;       /* AF_INET or AF_INET6 */
    uint8_t addr[16]; /* network bytes */
    unsigned bits;    /* prefix length */
} edge_cidr;

struct edge_auth;
struct edge_rate;

/* Access log sink (accesslog.c). */
typedef struct edge_log {
    char path[GW_EDGE_TEXT_MAX]; /* file path; "" for stderr */
    int fd;                      /* where lines go; -1: off */
    bool json;                   /* JSON lines */
    uint32_t sample;             /* 1 in N successes */
    uint64_t seen;               /* successes seen (sampling counter) */
    br_buf buf;                  /* lines not yet written */
    uv_check_t flush;            /* writes buf once per loop turn */
    bool flush_started;          /* flush is active */
    uint64_t dropped;            /* lines lost to a full buffer or a failed write */
    int64_t when_sec;            /* the second `when` was formatted for, or -1 */
    char when[32];               /* "[07/Dec/2026:04:19:00 +0000] " for when_sec */
    size_t when_len;             /* bytes in when */
} edge_log;

struct gw_edge {
    uv_loop_t *loop;    /* the gateway's loop */
    gw_edge_config cfg; /* copy; strings point into the fields below */
    edge_req *pool;     /* free per-request objects */
    size_t npool;       /* entries in pool */
    uint64_t rng[2];    /* xorshift128+ state for ids */
    edge_log log;       /* the access log */
    /* CORS */
    bool cors_on;                        /* cors_origins is set */
    bool cors_any;                       /* "*" */
    char cors_origins[GW_EDGE_TEXT_MAX]; /* the list as given */
    char cors_methods[GW_EDGE_TEXT_MAX];
    char cors_headers[GW_EDGE_TEXT_MAX];
    char cors_expose[GW_EDGE_TEXT_MAX];
    const gw_router *router; /* where a preflight finds the route it asks about (its
                                service's CORS); NULL: preflights meet the gateway's */
    /* compression */
    br_buf zbuf;    /* compressed answer scratch (build() copies it) */
    void *deflater; /* z_stream kept between answers (deflateReset) */
    void *inflater; /* z_stream kept between request bodies */
    /* proxies */
    edge_cidr *proxies; /* trusted proxies */
    size_t nproxies;    /* entries in proxies */
    /* auth and rate limits */
    struct edge_auth *auth; /* NULL: no credentials configured */
    struct edge_rate *rate; /* NULL: no limits */
    bool closed;            /* gw_edge_close ran */
    /* The answer being built: on_answer fills these, on_done (which follows it within
     * the same call) logs them.  Kept here rather than per request, since one answer is
     * built at a time: 10,000 requests in flight cost that much less. */
    const gw_req *ans_req;               /* the request they belong to; NULL: none */
    char ans_worker[GW_EDGE_WORKER_MAX]; /* the worker that answered; "" none */
    char ans_reason[GW_EDGE_REASON_MAX]; /* an error answer's detail; "" none */
    char ans_hdr[GW_EDGE_HEADER_TEXT];   /* text of the edge's header values */
    size_t ans_hdr_used;                 /* bytes of ans_hdr in use */
};

/* edge.c: a header's value by lower-case name in req, NULL when absent. */
const gw_header *gw__edge_header(const gw_req *req, const char *name);
/* edge.c: appends a header to the answer if there is room; the value must stay valid
 * until the answer is built (gw__edge_keep's or a literal). */
void gw__edge_add_header(gw_http_answer *a, const char *name, const char *value, size_t len);
/* edge.c: copies a value into the answer's header text and returns it (NULL when
 * full); valid until the answer is built. */
const char *gw__edge_keep(gw_edge *e, const char *value, size_t len);
/* edge.c: sets er's subject to a copy of text (NULL or "": anonymous), truncated to
 * GW_EDGE_SUBJECT_MAX - 1 bytes.  0 or BR_ENOMEM (then anonymous). */
int gw__edge_set_subject(edge_req *er, const char *text);
/* edge.c: answers req {"detail": detail} with `status` and extra headers. */
void gw__edge_refuse(gw_req *req, int status, const char *detail, const gw_header *extra,
                     size_t nextra);

/* accesslog.c */
int gw__log_open(gw_edge *e, char *why, size_t cap);
void gw__log_request(gw_edge *e, const gw_req *req, const edge_req *er, int status, size_t bytes);
int gw__log_reopen(gw_edge *e);
void gw__log_close(gw_edge *e);

/* cors.c */
int gw__cors_init(gw_edge *e, char *why, size_t cap);
/* Notes the request's Origin; answers a preflight.  True when it answered. */
bool gw__cors_request(gw_edge *e, gw_req *req, edge_req *er);
void gw__cors_answer(gw_edge *e, edge_req *er, gw_http_answer *a, bool *vary_origin);

/* compress.c */
/* Picks the answer's coding and inflates a gzip body.  True when it answered (413,
 * 400, 415). */
bool gw__compress_request(gw_edge *e, gw_req *req, edge_req *er);
/* Compresses the answer's body when it should; adds Content-Encoding. */
void gw__compress_answer(gw_edge *e, edge_req *er, gw_http_answer *a, bool *vary);
/* Parses Accept-Encoding: the best coding the edge has (test_edge reads it). */
edge_coding gw__compress_choose(const char *accept, size_t len);
/* compress.c: a streamed answer's bytes (final: its end) compressed into out, flushed
 * so that what the client has received so far decompresses completely.  0, or a
 * negative br_err (logged by the caller). */
int gw__compress_stream(gw_edge *e, edge_req *er, const void *in, size_t len, bool final,
                        br_buf *out);
/* compress.c: releases er's stream compressor, if any. */
void gw__compress_stream_free(edge_req *er);
void gw__compress_free(gw_edge *e);

/* proxy.c */
int gw__proxy_init(gw_edge *e, char *why, size_t cap);
/* Writes the client's address (behind trusted proxies) into er->client. */
void gw__proxy_client(gw_edge *e, const gw_req *req, edge_req *er);
/* Parses "ADDR" or "ADDR/BITS".  0 or BR_EINVAL. */
int gw__cidr_parse(const char *text, size_t len, edge_cidr *out);
/* True when the address (family, bytes) is in c. */
bool gw__cidr_contains(const edge_cidr *c, int family, const uint8_t *addr);

/* auth.c */
int gw__auth_init(gw_edge *e, char *why, size_t cap);
void gw__auth_free(gw_edge *e);
/* Checks credentials against the route's policy.  True when it answered (401, 403). */
bool gw__auth_request(gw_edge *e, gw_req *req, edge_req *er);

/* ratelimit.c */
int gw__rate_init(gw_edge *e, char *why, size_t cap);
void gw__rate_free(gw_edge *e);
/* Spends a token of each bucket the request falls in.  True when it answered 429. */
bool gw__rate_request(gw_edge *e, gw_req *req, edge_req *er);
/* After authentication: the subject's bucket.  True when it answered 429. */
bool gw__rate_subject(gw_edge *e, gw_req *req, edge_req *er);
void gw__rate_answer(gw_edge *e, edge_req *er, gw_http_answer *a);

#endif /* BARISTA_GW_EDGE_INT_H */
