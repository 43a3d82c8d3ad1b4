/*
 * http_stream.c - streamed answers: a status and headers first, then the body in
 * pieces as the handler produces them, then the end.
 *
 * A stream's bytes are framed as they come (a chunk each for HTTP/1.1; as they are for
 * HTTP/1.0, whose body ends with the connection) into the request's sbuf.  When the
 * request reaches the front of its connection's queue, a flush swaps sbuf and resp and
 * writes resp; bytes that come meanwhile collect in the other buffer, so nothing moves
 * under a write and a stream costs two buffers however long it runs.  What the server
 * holds for one stream is bounded (GW_HTTP_MAX_STREAM_HELD) as a backstop; the real
 * bound is the caller's flow control, which gw_req_stream_pending and the drain
 * callback serve.
 *
 * An answer cut short (complete = false) never gets its terminating chunk, and the
 * connection closes after the bytes already framed: the client sees a truncated body,
 * never a complete-looking one.
 */
#include <string.h>

#include "http_conn.h"

/* Bytes of a chunk's size line at most: 16 hex digits and CRLF. */
#define CHUNK_LINE_MAX 18

static gw_http_req *streaming(gw_req *req)
{
    gw_http_req *r = (gw_http_req *)req;
    return r && r->state == GW_REQ_STREAMING && !r->stream_ended ? r : NULL;
}

int gw_req_stream_start(gw_req *req, int status, const gw_header *extra, size_t nextra,
                        const char *content_type)
{
    gw_http_req *r = (gw_http_req *)req;
    if (!r || r->state != GW_REQ_HANDLING || status < 200 || status > 599 || status == 204 ||
        status == 304)
        return BR_EINVAL;
    gw_framing framing = r->http10 ? GW_FRAME_CLOSE : GW_FRAME_CHUNKED;
    if (framing == GW_FRAME_CLOSE && !r->head)
        r->close_after = true;
    r->sbuf.len = 0;
    r->sbuf.max = GW_HTTP_MAX_STREAM_HELD;
    int rc = gw__response_stream_head(r, status, extra, nextra, content_type, framing, &r->sbuf);
    if (rc != 0)
        return rc;
    r->state = GW_REQ_STREAMING;
    r->stream_status = status;
    r->stream_chunked = framing == GW_FRAME_CHUNKED;
    r->stream_ended = r->stream_inflight = false;
    r->stream_bytes = r->sbuf.len;
    r->conn->output_bytes += r->sbuf.len;
    gw__server_schedule_flush(r->conn->server, r->conn);
    return 0;
}

/* Frames len bytes at data into sbuf (one chunk, or as they are). */
static int frame(gw_http_req *r, const void *data, size_t len)
{
    if (len == 0 || r->head)
        return 0;
    if (r->resp.len + r->sbuf.len + len + CHUNK_LINE_MAX + 2 > GW_HTTP_MAX_STREAM_HELD)
        return BR_ELIMIT;
    size_t before = r->sbuf.len;
    int rc = br_buf_reserve(&r->sbuf, len + CHUNK_LINE_MAX + 2);
    if (rc != 0)
        return rc;
    char *p = (char *)r->sbuf.data + r->sbuf.len;
    if (r->stream_chunked) {
        static const char hex[] = "0123456789abcdef";
        char line[CHUNK_LINE_MAX];
        size_t n = 0;
        for (size_t v = len; v; v >>= 4)
            line[n++] = hex[v & 15];
        while (n)
            *p++ = line[--n];
        *p++ = '\r';
        *p++ = '\n';
    }
    memcpy(p, data, len);
    p += len;
    if (r->stream_chunked) {
        *p++ = '\r';
        *p++ = '\n';
    }
    r->sbuf.len = (size_t)(p - (char *)r->sbuf.data);
    size_t added = r->sbuf.len - before;
    r->stream_bytes += added;
    r->conn->output_bytes += added;
    r->conn->server->stats.bytes_out += added;
    gw__server_schedule_flush(r->conn->server, r->conn);
    return 0;
}

/* Runs len bytes (or, final, the end) through the filter and frames what it gives. */
static int put_filtered(gw_http_req *r, const void *data, size_t len, bool final)
{
    if (!r->stream_filtered || r->head)
        return frame(r, data, len);
    gw_http_server *server = r->conn->server;
    br_buf *tmp = &server->stream_tmp;
    tmp->len = 0;
    tmp->max = GW_HTTP_MAX_STREAM_HELD;
    if (!server->filter.on_stream_data(server->filter_data, &r->pub, data, len, final, tmp))
        return frame(r, data, len);
    return frame(r, tmp->data, tmp->len);
}

int gw_req_stream_write(gw_req *req, const void *data, size_t len)
{
    gw_http_req *r = streaming(req);
    if (!r || (!data && len))
        return BR_EINVAL;
    if (len == 0)
        return 0;
    return put_filtered(r, data, len, false);
}

int gw_req_stream_end(gw_req *req, bool complete)
{
    gw_http_req *r = streaming(req);
    if (!r)
        return BR_EINVAL;
    if (complete) {
        if (put_filtered(r, NULL, 0, true) != 0)
            complete = false;
        else if (r->stream_chunked && !r->head && br_buf_append(&r->sbuf, "0\r\n\r\n", 5) == 0) {
            r->stream_bytes += 5;
            r->conn->output_bytes += 5;
            r->conn->server->stats.bytes_out += 5;
        } else if (r->stream_chunked && !r->head) {
            complete = false;
        }
    }
    if (!complete)
        r->close_after = true; /* truncated: the client must see the cut */
    r->stream_ended = true;
    r->drain_fn = NULL;
    r->abort_fn = NULL;
    gw__req_filter_done(r, complete ? r->stream_status : 502, r->stream_bytes);
    gw__server_schedule_flush(r->conn->server, r->conn);
    return 0;
}

size_t gw_req_stream_pending(const gw_req *req)
{
    const gw_http_req *r = (const gw_http_req *)req;
    return r ? r->sbuf.len + r->resp.len : 0;
}

void gw_req_on_drain(gw_req *req, gw_stream_drain_fn fn, void *arg)
{
    gw_http_req *r = (gw_http_req *)req;
    if (!r)
        return;
    r->drain_fn = fn;
    r->drain_arg = arg;
}

void gw__stream_written(gw_http_req *r)
{
    r->conn->output_bytes -= r->resp.len;
    r->resp.len = 0;
    r->stream_inflight = false;
    if (r->drain_fn && !r->stream_ended)
        r->drain_fn(&r->pub, r->drain_arg);
}
