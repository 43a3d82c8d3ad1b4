/*
 * http_body.c - streamed request bodies: a route whose policy sets stream_body_max gets
 * its handler called once the headers are read (http_parse.c), and its body piece by
 * piece as llhttp reads it, straight from the read buffer.  Nothing of the body is
 * kept: a consumer that cannot take more pauses it, the parser stops after the piece,
 * the rest of that read waits in the connection's pending_in (one read buffer at most)
 * and the socket is not read until the consumer resumes.  Memory per connection stays
 * one read buffer whatever the body's size.
 */
#include "http_conn.h"

static gw_http_req *body_req(gw_req *req)
{
    gw_http_req *r = (gw_http_req *)req;
    return r && r->pub.body_streamed ? r : NULL;
}

int gw_req_body_read(gw_req *req, gw_body_fn fn, void *arg)
{
    gw_http_req *r = body_req(req);
    if (!r)
        return BR_EINVAL;
    r->body_fn = fn;
    r->body_arg = arg;
    return 0;
}

void gw_req_body_pause(gw_req *req)
{
    gw_http_req *r = body_req(req);
    if (r && r->body_streaming)
        r->body_paused = true;
}

void gw_req_body_resume(gw_req *req)
{
    gw_http_req *r = body_req(req);
    if (!r || !r->body_paused)
        return;
    r->body_paused = false;
    /* Not from here: the caller may be deep in its own bookkeeping, and reading on
     * delivers more body and maybe the next request.  The flush runs it. */
    if (r->body_streaming)
        gw__server_schedule_flush(r->conn->server, r->conn);
}

void gw__body_deliver(gw_http_req *r, const char *data, size_t len, int status)
{
    if (!data) {
        r->body_streaming = false;
        r->body_paused = false;
    }
    gw_body_fn fn = r->body_fn;
    if (!data)
        r->body_fn = NULL;
    if (fn)
        fn(&r->pub, data, len, status, r->body_arg);
}
