/*
 * request.c - what a handler sees of a request: reading it, its arena and handles,
 * cancellation, and building the reply (see barista/worker.h and request.h).
 */
#include "request.h"

#include "async_int.h"
#include "worker_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Room left in the first arena block for the handler's own small allocations (a
 * uv_timer_t and a little state fit), so that a typical request costs one malloc.  It
 * is paid by every request in flight: 10,000 sleeps hold 10,000 of them. */
#define REQ_ARENA_SLACK 256
static const char empty_string[] = "";

static size_t align_up(size_t n)
{
    return (n + alignof(max_align_t) - 1) & ~(alignof(max_align_t) - 1);
}

/* Re-points s from the frame at `from` into its copy at `to`.  A string that is not
 * inside the frame (the decoder never makes one, but nothing is assumed) is copied. */
static br_str rebase(br_req *req, br_str s, const char *from, size_t len, const char *to)
{
    br_str out = {empty_string, 0};
    if (s.len == 0 || !s.ptr)
        return out;
    if (s.ptr >= from && s.len <= len && (size_t)(s.ptr - from) <= len - s.len) {
        out.ptr = to + (s.ptr - from);
    } else {
        char *copy = br__arena_alloc(&req->arena, s.len);
        if (!copy)
            return out;
        memcpy(copy, s.ptr, s.len);
        out.ptr = copy;
    }
    out.len = s.len;
    return out;
}

/* Copies a pair array into the arena, re-pointing every string.  NULL on failure. */
static br_pair *rebase_pairs(br_req *req, const br_pair *src, uint32_t n, const char *from,
                             size_t len, const char *to)
{
    if (n == 0)
        return NULL;
    br_pair *dst = br__arena_alloc(&req->arena, n * sizeof(*dst));
    if (!dst)
        return NULL;
    for (uint32_t i = 0; i < n; i++) {
        dst[i].name = rebase(req, src[i].name, from, len, to);
        dst[i].value = rebase(req, src[i].value, from, len, to);
    }
    return dst;
}

br_req *br__req_new(struct br_worker *w, const br_route_spec *spec, const br_request *m,
                    const void *frame, size_t len)
{
    size_t npairs = (size_t)m->nparams + m->nquery + m->nheaders + m->ncookies;
    size_t first = align_up(len) + npairs * sizeof(br_pair) + REQ_ARENA_SLACK;
    br_req *req = malloc(sizeof(*req) + first);
    if (!req)
        return NULL;
    memset(req, 0, sizeof(*req));
    br__arena_init(&req->arena, req->first, first, BR_ARENA_MAX);
    req->worker = w;
    req->spec = spec;
    req->t_recv_ns = uv_hrtime();
    atomic_init(&req->cancelled, false);

    char *copy = br__arena_alloc(&req->arena, len);
    if (!copy)
        goto fail;
    memcpy(copy, frame, len);
    const char *from = frame;
    req->msg = *m;
    br_request *r = &req->msg;
    r->service = rebase(req, m->service, from, len, copy);
    r->route = rebase(req, m->route, from, len, copy);
    r->method = rebase(req, m->method, from, len, copy);
    r->path = rebase(req, m->path, from, len, copy);
    r->content_type = rebase(req, m->content_type, from, len, copy);
    r->body = rebase(req, m->body, from, len, copy);
    r->trace = rebase(req, m->trace, from, len, copy);
    r->request_id = rebase(req, m->request_id, from, len, copy);
    r->identity = rebase(req, m->identity, from, len, copy);
    r->actor_type = rebase(req, m->actor_type, from, len, copy);
    r->actor_key = rebase(req, m->actor_key, from, len, copy);
    r->tick_name = rebase(req, m->tick_name, from, len, copy);
    r->params = rebase_pairs(req, m->params, m->nparams, from, len, copy);
    r->query = rebase_pairs(req, m->query, m->nquery, from, len, copy);
    r->headers = rebase_pairs(req, m->headers, m->nheaders, from, len, copy);
    r->cookies = rebase_pairs(req, m->cookies, m->ncookies, from, len, copy);
    if ((m->nparams && !r->params) || (m->nquery && !r->query) || (m->nheaders && !r->headers) ||
        (m->ncookies && !r->cookies))
        goto fail;
    return req;
fail:
    br__arena_release(&req->arena);
    free(req);
    return NULL;
}

/* ---------------------------------------------------------------------------------- */
/* Reading.                                                                            */

uint64_t br_req_id(const br_req *req)
{
    return req->msg.id;
}

br_str br_req_method(const br_req *req)
{
    return req->msg.method;
}

br_str br_req_path(const br_req *req)
{
    return req->msg.path;
}

br_str br_req_route(const br_req *req)
{
    return req->msg.route;
}

void br_req_set_state(br_req *req, void *state)
{
    req->state = state;
}

void *br_req_state(const br_req *req)
{
    return req->state;
}

br_str br_req_request_id(const br_req *req)
{
    return req->msg.request_id;
}

br_str br_req_identity(const br_req *req)
{
    return req->msg.identity;
}

br_str br_req_body(const br_req *req)
{
    return req->msg.body;
}

br_str br_req_content_type(const br_req *req)
{
    return req->msg.content_type;
}

static unsigned char ascii_lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c - 'A' + 'a') : c;
}

static bool ascii_case_eq(br_str s, const char *c)
{
    size_t n = strlen(c);
    if (s.len != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (ascii_lower((unsigned char)s.ptr[i]) != ascii_lower((unsigned char)c[i]))
            return false;
    }
    return true;
}

/* The first pair named `name` (exactly, or ignoring ASCII case). */
static int find_pair(const br_pair *pairs, uint32_t n, const char *name, bool any_case, br_str *out)
{
    for (uint32_t i = 0; i < n; i++) {
        bool hit = any_case ? ascii_case_eq(pairs[i].name, name) : br_str_eq(pairs[i].name, name);
        if (hit) {
            *out = pairs[i].value;
            return 0;
        }
    }
    out->ptr = empty_string;
    out->len = 0;
    return BR_ENOTFOUND;
}

int br_req_param(const br_req *req, const char *name, br_str *out)
{
    return find_pair(req->msg.params, req->msg.nparams, name, false, out);
}

int br_req_query(const br_req *req, const char *name, br_str *out)
{
    return find_pair(req->msg.query, req->msg.nquery, name, false, out);
}

int br_req_header(const br_req *req, const char *name, br_str *out)
{
    return find_pair(req->msg.headers, req->msg.nheaders, name, true, out);
}

int br_req_cookie(const br_req *req, const char *name, br_str *out)
{
    return find_pair(req->msg.cookies, req->msg.ncookies, name, false, out);
}

int br_req_str(const br_req *req, br_param_in in, const char *name, br_str *out)
{
    switch (in) {
    case BR_IN_PATH:
        return br_req_param(req, name, out);
    case BR_IN_QUERY:
        return br_req_query(req, name, out);
    case BR_IN_HEADER:
        return br_req_header(req, name, out);
    case BR_IN_COOKIE:
        return br_req_cookie(req, name, out);
    }
    out->ptr = empty_string;
    out->len = 0;
    return BR_ENOTFOUND;
}

int br_req_int(const br_req *req, br_param_in in, const char *name, int64_t *out)
{
    br_str s;
    int rc = br_req_str(req, in, name, &s);
    return rc != 0 ? rc : br_param_parse_int(s, out);
}

int br_req_float(const br_req *req, br_param_in in, const char *name, double *out)
{
    br_str s;
    int rc = br_req_str(req, in, name, &s);
    return rc != 0 ? rc : br_param_parse_float(s, out);
}

int br_req_bool(const br_req *req, br_param_in in, const char *name, bool *out)
{
    br_str s;
    int rc = br_req_str(req, in, name, &s);
    return rc != 0 ? rc : br_param_parse_bool(s, out);
}

int br_req_query_int(const br_req *req, const char *name, int64_t *out)
{
    return br_req_int(req, BR_IN_QUERY, name, out);
}

static const char *const where_names[] = {"path", "query", "header", "cookie"};

/* Records that parameter `name` in `in` does not parse as `what` (pydantic's words). */
static void record_parse_error(br_req *req, br_param_in in, const char *name, const char *type,
                               const char *msg)
{
    br_str s;
    br_req_str(req, in, name, &s);
    char *input = br_req_strdup(req, s);
    br_req_invalid(req, in <= BR_IN_COOKIE ? where_names[in] : "query", name, msg, type, input);
}

int64_t br_req_int_or(br_req *req, br_param_in in, const char *name, int64_t def)
{
    int64_t v;
    int rc = br_req_int(req, in, name, &v);
    if (rc == 0)
        return v;
    if (rc == BR_EVALUE)
        record_parse_error(req, in, name, "int_parsing",
                           "Input should be a valid integer, unable to parse string as an "
                           "integer");
    return def;
}

double br_req_float_or(br_req *req, br_param_in in, const char *name, double def)
{
    double v;
    int rc = br_req_float(req, in, name, &v);
    if (rc == 0)
        return v;
    if (rc == BR_EVALUE)
        record_parse_error(req, in, name, "float_parsing",
                           "Input should be a valid number, unable to parse string as a number");
    return def;
}

bool br_req_bool_or(br_req *req, br_param_in in, const char *name, bool def)
{
    bool v;
    int rc = br_req_bool(req, in, name, &v);
    if (rc == 0)
        return v;
    if (rc == BR_EVALUE)
        record_parse_error(req, in, name, "bool_parsing",
                           "Input should be a valid boolean, unable to interpret input");
    return def;
}

uint32_t br_req_remaining_ms(const br_req *req)
{
    uint64_t elapsed_ms = (uv_hrtime() - req->t_recv_ns) / 1000000u;
    if (elapsed_ms >= req->msg.deadline_ms)
        return 0;
    return (uint32_t)(req->msg.deadline_ms - elapsed_ms);
}

bool br_req_cancelled(const br_req *req)
{
    return atomic_load(&req->cancelled);
}

/* ---------------------------------------------------------------------------------- */
/* Memory, handles, cancel.                                                            */

void *br_req_alloc(br_req *req, size_t n)
{
    return br__arena_alloc(&req->arena, n);
}

char *br_req_strdup(br_req *req, br_str s)
{
    char *c = br__arena_alloc(&req->arena, (size_t)s.len + 1);
    if (!c)
        return NULL;
    if (s.len)
        memcpy(c, s.ptr, s.len);
    c[s.len] = '\0';
    return c;
}

int br_req_adopt(br_req *req, uv_handle_t *handle)
{
    if (req->nhandles == BR_REQ_MAX_HANDLES)
        return BR_EFULL;
    req->handles[req->nhandles++] = handle;
    return 0;
}

void br_req_on_cancel(br_req *req, br_cancel_fn fn, void *arg)
{
    req->on_cancel = fn;
    req->cancel_arg = arg;
}

void br__req_cancel(br_req *req)
{
    if (atomic_exchange(&req->cancelled, true))
        return;
    /* A CPU handler owns the rest of the request until it returns: only the flag. */
    if (req->on_thread || req->ended)
        return;
    br__req_stream *st = req->stream;
    if (st && st->on_body_end && !st->body_over) {
        /* A streamed body will not end: its handler hears that first (and may reply,
         * which ends the request). */
        br_worker *w = req->worker;
        uint64_t id = req->msg.id;
        st->body_over = true;
        st->on_body_end(req, false, st->body_arg);
        if (br__dispatch_find(w, id) != req || req->ended)
            return;
    }
    br_cancel_fn fn = req->on_cancel;
    req->on_cancel = NULL;
    if (fn)
        fn(req, req->cancel_arg);
}

/* ---------------------------------------------------------------------------------- */
/* The runtime's side.                                                                 */

void br__req_reply_msg(br_req *req, br_reply *out)
{
    memset(out, 0, sizeof(*out));
    out->id = req->msg.id;
    if (atomic_load(&req->cancelled)) {
        out->status = 499;
        return;
    }
    if (!req->ended) {
        /* A CPU handler returned without replying. */
        out->status = 500;
        return;
    }
    out->status = req->status;
    out->content_type = br_str_c(req->content_type);
    out->body.ptr = (const char *)req->body.data;
    out->body.len = (uint32_t)req->body.len;
    out->headers = req->rheaders;
    out->nheaders = req->nrheaders;
    out->jobs = req->jobs;
    out->njobs = req->njobs;
}

static void free_now(br_req *req)
{
    free(req->body.data);
    if (req->ax)
        br_buf_free(&req->ax->turn_state);
    if (req->stream)
        free(req->stream->squeue.data);
    br__arena_release(&req->arena);
    free(req);
}

static void on_handle_closed(uv_handle_t *h)
{
    br_req *req = h->data;
    if (--req->closing == 0)
        free_now(req);
}

void br__req_release(br_req *req)
{
    br__ops_abort(req);
    if (req->pins) {
        req->release_deferred = true;
        return;
    }
    if (req->nhandles == 0) {
        free_now(req);
        return;
    }
    /* The arena may hold the handles themselves: free only after every close. */
    req->closing = req->nhandles;
    for (unsigned i = 0; i < req->nhandles; i++) {
        uv_handle_t *h = req->handles[i];
        h->data = req;
        uv_close(h, on_handle_closed);
    }
}
