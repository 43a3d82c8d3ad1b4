/*
 * reply.c - how a handler answers: the reply's headers, a structured value through the
 * request's br_writer, raw bytes, FastAPI-shaped errors (a detail string, or the list
 * of validation errors recorded on the request), jobs aside (jobs.c).  Every reply
 * ends the request (see barista/worker.h and request.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "request.h"

/* One recorded validation error (all strings in the request's arena). */
typedef struct br__verr {
    const char *where; /* "path", "query", "header" or "body" */
    const char *name;  /* parameter name or dotted body path; NULL for the whole body */
    const char *msg;   /* pydantic's message */
    const char *type;  /* pydantic's error type */
    const char *input; /* the offending value as text, or NULL */
} br__verr;

static bool status_ok(uint16_t status)
{
    return status >= 100 && status <= 599;
}

/* Appends to the body, up to BR_REPLY_BODY_MAX; records why it could not. */
static int body_write(void *data, const char *bytes, size_t len)
{
    br_req *req = data;
    req->body.max = BR_REPLY_BODY_MAX;
    int rc = br_buf_append(&req->body, bytes, len);
    if (rc != 0) {
        req->body_err = rc;
        return -1;
    }
    return 0;
}

/* Ends the request: for an I/O handler the dispatcher sends the reply now; a CPU
 * handler's reply goes out when the compute job returns to the loop. */
static int finish(br_req *req, int rc)
{
    if (rc != 0) {
        req->status = 500;
        req->content_type = NULL;
        req->body.len = 0;
        req->nrheaders = 0;
    }
    req->ended = true;
    req->writing = false;
    if (!req->on_thread)
        br__dispatch_replied(req);
    return rc;
}

/* Headers a handler may not set: the gateway derives the content headers from the
 * reply itself and never forwards hop-by-hop ones (PROTOCOL.md 11). */
static bool header_reserved(const char *lower)
{
    static const char *const reserved[] = {"content-type", "content-length",    "connection",
                                           "keep-alive",   "transfer-encoding", "te",
                                           "upgrade"};
    for (size_t i = 0; i < BR_NELEMS(reserved); i++) {
        if (strcmp(lower, reserved[i]) == 0)
            return true;
    }
    return strncmp(lower, "proxy-", 6) == 0;
}

int br_reply_header(br_req *req, const char *name, const char *value)
{
    if ((req->ended && !req->in_after) || !*name)
        return BR_EINVAL;
    if (req->nrheaders == BR_REPLY_MAX_HEADERS)
        return BR_EFULL;
    if (!req->rheaders) {
        req->rheaders = br_req_alloc(req, BR_REPLY_MAX_HEADERS * sizeof(br_pair));
        if (!req->rheaders)
            return BR_ENOMEM;
    }
    char *n = br_req_strdup(req, br_str_c(name));
    char *v = br_req_strdup(req, br_str_c(value));
    if (!n || !v)
        return BR_ENOMEM;
    for (char *c = n; *c; c++) {
        if (*c >= 'A' && *c <= 'Z')
            *c = (char)(*c - 'A' + 'a');
    }
    if (header_reserved(n))
        return BR_EINVAL;
    req->rheaders[req->nrheaders].name = br_str_c(n);
    req->rheaders[req->nrheaders].value = br_str_c(v);
    req->nrheaders++;
    return 0;
}

/* ---------------------------------------------------------------------------------- */
/* Structured replies.                                                                 */

br_writer *br_reply_start(br_req *req, uint16_t status)
{
    if (req->ended)
        return NULL;
    if (!req->writer) {
        req->writer = br_req_alloc(req, sizeof(*req->writer));
        if (!req->writer) {
            /* Out of arena: the reply cannot be written; it will be a 500. */
            finish(req, BR_ENOMEM);
            return NULL;
        }
    }
    req->status = status;
    req->content_type = "application/msgpack";
    req->body.max = BR_REPLY_BODY_MAX;
    req->body_err = 0;
    req->writing = true;
    br__writer_init(req->writer, &req->body);
    return req->writer;
}

int br_reply_send(br_req *req)
{
    if (req->ended)
        return BR_EINVAL;
    if (req->nerrors)
        return br_reply_invalid(req);
    if (!req->writing || !status_ok(req->status))
        return finish(req, BR_EINVAL);
    return finish(req, br_writer_error(req->writer));
}

int br_reply_pack(br_req *req, uint16_t status, const char *fmt, ...)
{
    br_writer *w = br_reply_start(req, status);
    if (!w)
        return BR_EINVAL;
    va_list ap;
    va_start(ap, fmt);
    br_w_vpack(w, fmt, ap);
    va_end(ap);
    return br_reply_send(req);
}

int br_reply_raw(br_req *req, uint16_t status, const char *content_type, const void *body,
                 size_t len)
{
    if (req->ended)
        return BR_EINVAL;
    if (!status_ok(status))
        return finish(req, BR_EINVAL);
    req->status = status;
    req->body.len = 0;
    if (len && body_write(req, body, len) != 0)
        return finish(req, req->body_err);
    req->content_type = NULL;
    if (content_type && *content_type) {
        req->content_type = br_req_strdup(req, br_str_c(content_type));
        if (!req->content_type)
            return finish(req, BR_ENOMEM);
    }
    return finish(req, 0);
}

int br_reply_error(br_req *req, uint16_t status, const char *detail)
{
    br_writer *w = br_reply_start(req, status);
    if (!w)
        return BR_EINVAL;
    br_w_obj(w);
    br_w_key_cstr(w, "detail", detail ? detail : "");
    br_w_end(w);
    return br_reply_send(req);
}

int br_reply_errorf(br_req *req, uint16_t status, const char *fmt, ...)
{
    char detail[BR_WRITER_STRF_MAX + 1];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof(detail), fmt, ap);
    va_end(ap);
    return br_reply_error(req, status, detail);
}

int br_reply_status(br_req *req, uint16_t status)
{
    return br_reply_raw(req, status, NULL, NULL, 0);
}

/* ---------------------------------------------------------------------------------- */
/* Validation errors (FastAPI's 422 list).                                             */

int br_req_invalid(br_req *req, const char *where, const char *name, const char *msg,
                   const char *type, const char *input)
{
    if (req->ended)
        return BR_EINVAL;
    if (req->nerrors == BR_REQ_MAX_ERRORS)
        return BR_EFULL;
    if (!req->errors) {
        req->errors = br_req_alloc(req, BR_REQ_MAX_ERRORS * sizeof(*req->errors));
        if (!req->errors)
            return BR_ENOMEM;
    }
    br__verr *e = &req->errors[req->nerrors];
    e->where = br_req_strdup(req, br_str_c(where ? where : "body"));
    e->name = name ? br_req_strdup(req, br_str_c(name)) : NULL;
    e->msg = br_req_strdup(req, br_str_c(msg));
    e->type = br_req_strdup(req, br_str_c(type));
    e->input = input ? br_req_strdup(req, br_str_c(input)) : NULL;
    if (!e->where || (name && !e->name) || !e->msg || !e->type || (input && !e->input))
        return BR_ENOMEM;
    req->nerrors++;
    return 0;
}

size_t br_req_errors(const br_req *req)
{
    return req->nerrors;
}

/* True when s[0..n) is a non-empty run of decimal digits (an array index). */
static bool all_digits(const char *s, size_t n)
{
    if (n == 0 || n > 9)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
    }
    return true;
}

/* "loc": [where, name] - or, for a body field, [where, each part of the dotted path,
 * numeric parts as numbers]. */
static void write_loc(br_writer *w, const br__verr *e)
{
    br_w_key(w, "loc");
    br_w_arr(w);
    br_w_cstr(w, e->where);
    if (e->name && strcmp(e->where, "body") != 0) {
        br_w_cstr(w, e->name);
    } else if (e->name) {
        const char *p = e->name;
        for (;;) {
            const char *dot = strchr(p, '.');
            size_t n = dot ? (size_t)(dot - p) : strlen(p);
            if (all_digits(p, n)) {
                int64_t index = 0;
                for (size_t i = 0; i < n; i++)
                    index = index * 10 + (p[i] - '0');
                br_w_int(w, index);
            } else {
                br_w_str(w, (br_str){p, (uint32_t)n});
            }
            if (!dot)
                break;
            p = dot + 1;
        }
    }
    br_w_end(w);
}

int br_reply_invalid(br_req *req)
{
    static const br__verr none = {"body", NULL, "the request was refused without a reason",
                                  "value_error", NULL};
    br_writer *w = br_reply_start(req, 422);
    if (!w)
        return BR_EINVAL;
    br_w_obj(w);
    br_w_key(w, "detail");
    br_w_arr(w);
    size_t n = req->nerrors ? req->nerrors : 1;
    for (size_t i = 0; i < n; i++) {
        const br__verr *e = req->nerrors ? &req->errors[i] : &none;
        br_w_obj(w);
        br_w_key_cstr(w, "type", e->type);
        write_loc(w, e);
        br_w_key_cstr(w, "msg", e->msg);
        br_w_key_cstr(w, "input", e->input);
        br_w_end(w);
    }
    br_w_end(w);
    br_w_end(w);
    return finish(req, br_writer_error(w));
}
