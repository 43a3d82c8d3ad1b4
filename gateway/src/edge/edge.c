/*
 * edge.c - the HTTP server's filter: per-request state, request ids and trace
 * context, and the order in which the edge's pieces see a request and its answer.
 *
 * A request meets, in order: the client's address (proxy.c), its id and traceparent
 * (here), CORS (a preflight is answered at once), the per-address and per-route rate
 * limits, authentication, the per-subject rate limit, and compression (a gzip body is
 * inflated; the answer's coding chosen).  Its answer - whoever makes it - gets the
 * X-Request-ID and traceparent headers, CORS headers, RateLimit-* headers, and a
 * compressed body when it should; then one access-log line.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edge_int.h"
#include "json.h"
#include "log.h"

void gw_edge_config_defaults(gw_edge_config *cfg)
{
    *cfg = (gw_edge_config){
        .access_log = GW_EDGE_ACCESS_LOG,
        .access_log_json = GW_EDGE_ACCESS_LOG_JSON,
        .access_log_sample = GW_EDGE_ACCESS_LOG_SAMPLE,
        .cors_origins = "",
        .cors_methods = GW_EDGE_CORS_METHODS,
        .cors_headers = GW_EDGE_CORS_HEADERS,
        .cors_expose = "",
        .cors_credentials = false,
        .cors_max_age_s = GW_EDGE_CORS_MAX_AGE_S,
        .compress = GW_EDGE_COMPRESS,
        .compress_min_bytes = GW_EDGE_COMPRESS_MIN_BYTES,
        .gzip_level = GW_EDGE_GZIP_LEVEL,
        .brotli_quality = GW_EDGE_BROTLI_QUALITY,
        .max_inflated_bytes = GW_EDGE_MAX_INFLATED_BYTES,
        .auth_default = GW_EDGE_AUTH_DEFAULT,
        .jwt_secret_file = "",
        .jwt_public_key_file = "",
        .jwks_file = "",
        .jwt_issuer = "",
        .jwt_audience = "",
        .jwt_leeway_s = GW_EDGE_JWT_LEEWAY_S,
        .api_keys_file = "",
        .rate_burst_factor = GW_EDGE_RATE_BURST_FACTOR,
        .rate_max_buckets = GW_EDGE_RATE_MAX_BUCKETS,
        .trusted_proxies = "",
    };
}

/* ---------------------------------------------------------------------------------- */
/* Small helpers the edge's files share.                                               */

const gw_header *gw__edge_header(const gw_req *req, const char *name)
{
    return gw_req_header(req, name);
}

void gw__edge_add_header(gw_http_answer *a, const char *name, const char *value, size_t len)
{
    if (!value || a->nextra >= a->extra_cap)
        return;
    a->extra[a->nextra++] = (gw_header){name, strlen(name), value, len};
}

const char *gw__edge_keep(gw_edge *e, const char *value, size_t len)
{
    if (e->ans_hdr_used + len + 1 > sizeof(e->ans_hdr))
        return NULL;
    char *dst = e->ans_hdr + e->ans_hdr_used;
    memcpy(dst, value, len);
    dst[len] = '\0';
    e->ans_hdr_used += len + 1;
    return dst;
}

void gw__edge_refuse(gw_req *req, int status, const char *detail, const gw_header *extra,
                     size_t nextra)
{
    br_buf body = {.max = GW_DETAIL_MAX * 8};
    if (gw_json_append_detail(&body, detail) != 0) {
        gw_req_respond_detail(req, status, detail);
        return;
    }
    gw_req_respond(req, status, extra, nextra, "application/json", body.data, body.len);
    br_buf_free(&body);
}

/* ---------------------------------------------------------------------------------- */
/* Ids.                                                                                */

static uint64_t rng_next(gw_edge *e)
{
    /* xorshift128+: ids must be unique, not secret; seeded from the OS at start. */
    uint64_t s1 = e->rng[0];
    const uint64_t s0 = e->rng[1];
    e->rng[0] = s0;
    s1 ^= s1 << 23;
    e->rng[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
    return e->rng[1] + s0;
}

static void put_hex(char *dst, uint64_t v, int digits)
{
    static const char hex[] = "0123456789abcdef";
    for (int i = digits - 1; i >= 0; i--) {
        dst[i] = hex[v & 15];
        v >>= 4;
    }
}

/* A client's X-Request-ID is kept when it is 1..GW_EDGE_REQUEST_ID_MAX printable
 * characters from a conservative set (no spaces, quotes or separators that would
 * break a log line). */
static bool request_id_ok(const char *v, size_t n)
{
    if (n == 0 || n > GW_EDGE_REQUEST_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = v[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  strchr("-_.:+/=@", c) != NULL;
        if (!ok || c == '\0')
            return false;
    }
    return true;
}

static bool is_lower_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

static bool all_zero(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != '0')
            return false;
    return true;
}

/* A W3C traceparent of version 00: "00-" 32 hex "-" 16 hex "-" 2 hex, ids not zero. */
static bool traceparent_ok(const char *v, size_t n)
{
    return n == GW_EDGE_TRACE_LEN && v[0] == '0' && v[1] == '0' && v[2] == '-' && v[35] == '-' &&
           v[52] == '-' && is_lower_hex(v + 3, 32) && !all_zero(v + 3, 32) &&
           is_lower_hex(v + 36, 16) && !all_zero(v + 36, 16) && is_lower_hex(v + 53, 2);
}

/* The request's id and trace context.  A valid traceparent is passed on as it came
 * (the gateway propagates the caller's span and records none of its own); without
 * one, a new trace starts, sampled.  A request without a valid X-Request-ID gets the
 * trace id as its id, so that logs and traces join up. */
static void assign_ids(gw_edge *e, const gw_req *req, edge_req *er)
{
    char *t = er->trace;
    const gw_header *tp = req ? gw_req_header(req, "traceparent") : NULL;
    if (tp && traceparent_ok(tp->value, tp->value_len)) {
        memcpy(t, tp->value, GW_EDGE_TRACE_LEN);
    } else {
        memcpy(t, "00-", 3);
        put_hex(t + 3, rng_next(e), 16);
        put_hex(t + 19, rng_next(e), 16);
        t[35] = '-';
        put_hex(t + 36, rng_next(e) | 1, 16);
        memcpy(t + 52, "-01", 3);
    }
    t[GW_EDGE_TRACE_LEN] = '\0';
    const gw_header *rid = req ? gw_req_header(req, "x-request-id") : NULL;
    er->id = er->id_inline;
    if (rid && request_id_ok(rid->value, rid->value_len)) {
        char *id =
            rid->value_len < sizeof(er->id_inline) ? er->id_inline : malloc(rid->value_len + 1);
        if (id) {
            er->id = id;
            memcpy(er->id, rid->value, rid->value_len);
            er->id_len = rid->value_len;
            er->id[er->id_len] = '\0';
            return;
        }
        /* Out of memory for a long id: the generated one serves. */
    }
    memcpy(er->id, t + 3, 32);
    er->id_len = 32;
    er->id[er->id_len] = '\0';
}

int gw__edge_set_subject(edge_req *er, const char *text)
{
    free(er->subject);
    er->subject = NULL;
    if (!text || !*text) /* a token without a subject: anonymous, as before */
        return 0;
    size_t n = strnlen(text, GW_EDGE_SUBJECT_MAX - 1);
    if (!(er->subject = malloc(n + 1)))
        return BR_ENOMEM;
    memcpy(er->subject, text, n);
    er->subject[n] = '\0';
    return 0;
}

/* ---------------------------------------------------------------------------------- */
/* Per-request state.                                                                  */

static edge_req *req_state_new(gw_edge *e, gw_req *req)
{
    edge_req *er = e->pool;
    if (er) {
        e->pool = er->next;
        e->npool--;
    } else if (!(er = calloc(1, sizeof(*er)))) {
        return NULL;
    }
    edge_req_bufs *bufs = er->bufs;
    if (bufs)
        bufs->inflated_body.len = bufs->identity.len = 0;
    /* Only the scalar head is reset; the text buffers are written before read. */
    memset(er, 0, offsetof(edge_req, bufs));
    er->start_ns = req->received_ns ? req->received_ns : uv_hrtime();
    er->rate_remaining = -1;
    assign_ids(e, req, er);
    gw__proxy_client(e, req, er);
    req->filter_state = er;
    return er;
}

edge_req_bufs *gw__edge_req_bufs(edge_req *er)
{
    if (!er->bufs)
        er->bufs = calloc(1, sizeof(*er->bufs));
    return er->bufs;
}

static void req_bufs_free(edge_req *er)
{
    if (!er->bufs)
        return;
    br_buf_free(&er->bufs->inflated_body);
    br_buf_free(&er->bufs->identity);
    free(er->bufs);
    er->bufs = NULL;
}

static void req_state_free(gw_edge *e, edge_req *er)
{
    gw__compress_stream_free(er);
    gw__edge_set_subject(er, NULL);
    if (er->id != er->id_inline)
        free(er->id);
    er->id = NULL;
    if (e->npool >= GW_EDGE_POOL_KEEP || (er->bufs && er->bufs->inflated_body.cap > 64 * 1024)) {
        req_bufs_free(er);
        if (e->npool >= GW_EDGE_POOL_KEEP) {
            free(er);
            return;
        }
    }
    er->next = e->pool;
    e->pool = er;
    e->npool++;
}

/* ---------------------------------------------------------------------------------- */
/* The filter's hooks.                                                                 */

static bool on_request(void *data, gw_req *req)
{
    gw_edge *e = data;
    edge_req *er = req_state_new(e, req);
    if (!er) {
        gw_req_respond_error(req, 503, true, "Service Unavailable: out of memory");
        return true;
    }
    er->ran_request = true;
    if (gw__cors_request(e, req, er))
        return true;
    if (gw__rate_request(e, req, er))
        return true;
    if (gw__auth_request(e, req, er))
        return true;
    if (gw__rate_subject(e, req, er))
        return true;
    return gw__compress_request(e, req, er);
}

/* Keeps the detail of an error answer ({"detail":"..."}) for the access log. */
static void keep_reason(gw_edge *e, const gw_http_answer *a)
{
    char *reason = e->ans_reason;
    reason[0] = '\0';
    if (a->status < 400 || !a->body || a->body_len < 12)
        return;
    const char *b = a->body;
    if (memcmp(b, "{\"detail\":\"", 11) != 0)
        return;
    size_t n = 0;
    for (size_t i = 11; i < a->body_len && b[i] != '"' && n + 1 < sizeof(e->ans_reason); i++) {
        if (b[i] == '\\' && i + 1 < a->body_len)
            i++;
        reason[n++] = b[i];
    }
    reason[n] = '\0';
}

static void on_answer(void *data, gw_req *req, gw_http_answer *a)
{
    gw_edge *e = data;
    edge_req *er = req->filter_state;
    if (!er && !(er = req_state_new(e, req)))
        return;
    e->ans_req = req;
    /* The worker it was sent to (gw_edge_req_dispatched), or the one a reply header
     * names (x-barista-worker, when the broker is told to add it): for the log. */
    memcpy(e->ans_worker, er->worker, sizeof(e->ans_worker));
    e->ans_hdr_used = 0;
    for (size_t i = 0; i < a->nextra; i++) {
        const gw_header *h = &a->extra[i];
        if (h->name_len == 16 && memcmp(h->name, "x-barista-worker", 16) == 0) {
            size_t max = sizeof(e->ans_worker) - 1;
            size_t n = h->value_len < max ? h->value_len : max;
            memcpy(e->ans_worker, h->value, n);
            e->ans_worker[n] = '\0';
        }
    }
    keep_reason(e, a);
    gw__edge_add_header(a, "X-Request-ID", er->id, er->id_len);
    gw__edge_add_header(a, "traceparent", er->trace, GW_EDGE_TRACE_LEN);
    bool vary_origin = false, vary_encoding = false;
    gw__cors_answer(e, er, a, &vary_origin);
    gw__rate_answer(e, er, a);
    gw__compress_answer(e, er, a, &vary_encoding);
    if (vary_origin || vary_encoding) {
        const char *v = vary_origin && vary_encoding ? "Origin, Accept-Encoding"
                        : vary_origin                ? "Origin"
                                                     : "Accept-Encoding";
        gw__edge_add_header(a, "Vary", v, strlen(v));
    }
}

static void on_done(void *data, gw_req *req, int status, size_t bytes)
{
    gw_edge *e = data;
    edge_req *er = req->filter_state;
    if (!er)
        return;
    if (e->ans_req != req) /* aborted: no answer was built for it */
        e->ans_worker[0] = e->ans_reason[0] = '\0';
    gw__log_request(e, req, er, status, bytes);
    e->ans_req = NULL;
    /* A large compressed answer's buffer is not kept for the small ones that follow. */
    if (e->zbuf.cap > GW_EDGE_ZBUF_KEEP)
        br_buf_free(&e->zbuf);
    req_state_free(e, er);
}

static bool on_stream_data(void *data, gw_req *req, const void *in, size_t len, bool final,
                           br_buf *out)
{
    gw_edge *e = data;
    edge_req *er = req->filter_state;
    if (!er || !er->zstream)
        return false;
    int rc = gw__compress_stream(e, er, in, len, final, out);
    if (rc != 0) {
        /* Raw bytes inside a compressed body would corrupt it: what fails is dropped,
         * and the client's decoder reports the damage. */
        gw_log(GW_LOG_WARN, "edge", "request %s: compressing %zu stream bytes failed: %s", er->id,
               len, br_strerror(rc));
        out->len = 0;
    }
    return true;
}

static const gw_http_filter edge_filter = {
    .on_request = on_request,
    .on_answer = on_answer,
    .on_done = on_done,
    .on_stream_data = on_stream_data,
};

/* ---------------------------------------------------------------------------------- */
/* What the broker reads.                                                              */

int gw_edge_req_info(const gw_req *req, gw_edge_info *out)
{
    *out = (gw_edge_info){0};
    const edge_req *er = req ? req->filter_state : NULL;
    if (!er)
        return BR_ENOTFOUND;
    out->request_id = (br_str){er->id, (uint32_t)er->id_len};
    out->trace = (br_str){er->trace, GW_EDGE_TRACE_LEN};
    out->identity =
        er->bufs ? (br_str){(const char *)er->bufs->identity.data, (uint32_t)er->bufs->identity.len}
                 : (br_str){0};
    out->client = br_str_c(er->client);
    out->body_inflated = er->inflated;
    out->drop_authorization = er->drop_auth;
    return 0;
}

void gw_edge_req_dispatched(gw_req *req, const char *worker)
{
    edge_req *er = req ? req->filter_state : NULL;
    if (!er)
        return;
    /* Copied: the broker's worker may be gone by the time the answer is logged. */
    snprintf(er->worker, sizeof(er->worker), "%s", worker ? worker : "");
    if (!er->sent_ns)
        er->sent_ns = uv_hrtime();
}

/* ---------------------------------------------------------------------------------- */
/* Lifecycle.                                                                          */

/* Copies a text option into dst (GW_EDGE_TEXT_MAX bytes).  0 or -1 when too long. */
static int copy_text(char *dst, const char *src, const char *name, char *why, size_t cap)
{
    if (!src)
        src = "";
    if (strlen(src) >= GW_EDGE_TEXT_MAX) {
        snprintf(why, cap, "%s: longer than %d characters", name, GW_EDGE_TEXT_MAX - 1);
        return -1;
    }
    memcpy(dst, src, strlen(src) + 1);
    return 0;
}

gw_edge *gw_edge_new(uv_loop_t *loop, const gw_edge_config *cfg, char *why, size_t why_cap)
{
    if (!loop || !cfg || cfg->access_log_sample == 0 || cfg->gzip_level < 1 ||
        cfg->gzip_level > 9 || cfg->brotli_quality > 11 || cfg->auth_default > BR_AUTH_REQUIRED ||
        cfg->rate_burst_factor == 0 || cfg->rate_max_buckets == 0) {
        snprintf(why, why_cap, "edge: invalid configuration");
        return NULL;
    }
    gw_edge *e = calloc(1, sizeof(*e));
    if (!e) {
        snprintf(why, why_cap, "edge: out of memory");
        return NULL;
    }
    e->loop = loop;
    e->cfg = *cfg;
    e->log.fd = -1;
    if (uv_random(NULL, NULL, e->rng, sizeof(e->rng), 0, NULL) != 0) {
        e->rng[0] = uv_hrtime() ^ 0x9e3779b97f4a7c15ull;
        e->rng[1] = (uint64_t)(uintptr_t)e ^ 0xbf58476d1ce4e5b9ull;
    }
    if (!e->rng[0] && !e->rng[1])
        e->rng[0] = 1;
    if (copy_text(e->cors_origins, cfg->cors_origins, "--cors-origins", why, why_cap) ||
        copy_text(e->cors_methods, cfg->cors_methods, "--cors-methods", why, why_cap) ||
        copy_text(e->cors_headers, cfg->cors_headers, "--cors-headers", why, why_cap) ||
        copy_text(e->cors_expose, cfg->cors_expose, "--cors-expose", why, why_cap))
        goto fail;
    if (gw__cors_init(e, why, why_cap) != 0 || gw__proxy_init(e, why, why_cap) != 0 ||
        gw__auth_init(e, why, why_cap) != 0 || gw__rate_init(e, why, why_cap) != 0 ||
        gw__log_open(e, why, why_cap) != 0)
        goto fail;
    return e;
fail:
    /* gw__log_open is last and leaves no handle behind when it fails. */
    e->closed = true;
    gw_edge_destroy(&e);
    return NULL;
}

int gw_edge_attach(gw_edge *self, gw_http_server *http)
{
    if (!self || !http)
        return BR_EINVAL;
    return gw_http_server_set_filter(http, &edge_filter, self);
}

void gw_edge_set_router(gw_edge *self, const gw_router *router)
{
    if (self)
        self->router = router;
}

int gw_edge_reopen(gw_edge *self)
{
    return self ? gw__log_reopen(self) : BR_EINVAL;
}

void gw_edge_close(gw_edge *self)
{
    if (!self || self->closed)
        return;
    self->closed = true;
    gw__log_close(self);
}

void gw_edge_destroy(gw_edge **self_p)
{
    if (!self_p || !*self_p)
        return;
    gw_edge *e = *self_p;
    while (e->pool) {
        edge_req *er = e->pool;
        e->pool = er->next;
        req_bufs_free(er);
        free(er);
    }
    br_buf_free(&e->zbuf);
    gw__compress_free(e);
    br_buf_free(&e->log.buf);
    free(e->proxies);
    gw__auth_free(e);
    gw__rate_free(e);
    free(e);
    *self_p = NULL;
}
