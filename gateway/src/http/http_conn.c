/*
 * http_conn.c - one client connection: reading (parsing itself is http_parse.c), the
 * in-order write queue, error answers, timeouts, closing, and accepting.
 *
 * A connection holds a FIFO of requests.  A request enters it when its first byte
 * arrives and leaves it once its answer is written; answers produced out of order
 * wait in their request until everything before them is out.  Parsing pauses when
 * the FIFO holds max_pipeline requests or max_output_bytes of requests and answers
 * not yet written (the unparsed input is kept and reading stops: backpressure, not
 * an error).
 *
 * Bytes are copied from the shared read buffer into the request's arena as llhttp
 * reports them, so nothing points into the read buffer after a read returns.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "barista/proto.h"
#include "http_conn.h"
#include "log.h"

static void conn_fail(gw_conn *conn, int status, const char *detail);
static void conn_update_phase(gw_conn *conn);
static void start_reading(gw_conn *conn);
static void abort_pending(gw_conn *conn, bool forget);

static const char continue_line[] = "HTTP/1.1 100 Continue\r\n\r\n";

/* ---------------------------------------------------------------------------------- */
/* Request objects: pooled per connection, buffers kept between requests.              */

gw_http_req *gw__req_get(gw_conn *conn)
{
    gw_http_req *r = conn->free_reqs;
    if (r) {
        conn->free_reqs = r->next;
        conn->nfree--;
    } else if (!(r = calloc(1, sizeof(*r)))) {
        return NULL;
    }
    memset(&r->pub, 0, sizeof(r->pub));
    r->conn = conn;
    r->next = NULL;
    r->state = GW_REQ_PARSING;
    r->arena.len = r->resp.len = 0;
    r->nhdrs = r->url_len = r->body_off = r->body_len = 0;
    r->abort_fn = NULL;
    r->abort_arg = NULL;
    r->head = r->http10 = r->keep_alive = r->close_after = false;
    r->continue_pending = r->headers_done = false;
    r->held = r->buffered = 0;
    r->sbuf.len = 0;
    r->drain_fn = NULL;
    r->drain_arg = NULL;
    r->stream_bytes = 0;
    r->stream_chunked = r->stream_ended = r->stream_inflight = r->stream_filtered = false;
    return r;
}

/* Gives the request's body bytes back to the server's budget. */
static void req_release_body(gw_http_req *r)
{
    r->conn->server->body_bytes -= r->buffered;
    r->buffered = 0;
}

static void req_free(gw_http_req *r)
{
    req_release_body(r);
    br_buf_free(&r->arena);
    br_buf_free(&r->resp);
    br_buf_free(&r->sbuf);
    free(r->hdrs);
    free(r);
}

static void req_recycle(gw_conn *conn, gw_http_req *r)
{
    req_release_body(r);
    if (conn->closing || conn->nfree >= conn->server->cfg.max_pipeline) {
        req_free(r);
        return;
    }
    if (r->arena.cap > GW_HTTP_ARENA_KEEP)
        br_buf_free(&r->arena);
    /* The answer's buffers are not kept: the next request on this connection holds
     * its object for as long as a worker takes (a second, with 10,000 others), and an
     * answer is built in one go, so a fresh buffer costs one malloc. */
    br_buf_free(&r->resp);
    br_buf_free(&r->sbuf);
    r->next = conn->free_reqs;
    conn->free_reqs = r;
    conn->nfree++;
}

void gw__conn_release_pool(gw_conn *conn)
{
    for (gw_http_req *r = conn->free_reqs, *next; r; r = next) {
        next = r->next;
        req_free(r);
    }
    conn->free_reqs = NULL;
    conn->nfree = 0;
}

void gw__conn_push(gw_conn *conn, gw_http_req *r)
{
    if (conn->tail)
        conn->tail->next = r;
    else
        conn->head = r;
    conn->tail = r;
}

/* ---------------------------------------------------------------------------------- */
/* Timeouts (the server's lists and timer: http_timeouts.c).                            */

void gw__conn_timed_out(gw_conn *conn)
{
    if (conn->phase == GW_PHASE_NONE || conn->closing)
        return;
    switch (conn->phase) {
    case GW_PHASE_WS:
    case GW_PHASE_WS_CLOSE:
        gw__ws_timer(conn);
        break;
    case GW_PHASE_HEADERS:
    case GW_PHASE_BODY:
        conn_fail(conn, 408, "Request Timeout: the request was not received in time");
        conn_update_phase(conn);
        break;
    default: /* idle keep-alive, stalled write, linger: close without a word */
        gw__conn_close(conn);
        break;
    }
}

/* Re-derives the phase once parsing is not in progress. */
static void conn_update_phase(gw_conn *conn)
{
    if (conn->closing || conn->lingering || (conn->ws && !conn->head))
        return;
    if (conn->peer_eof && !conn->writing) {
        gw__conn_close(conn);
        return;
    }
    if (conn->parsing)
        return;
    if (conn->writing) {
        if (conn->phase != GW_PHASE_SEND)
            gw__conn_set_phase(conn, GW_PHASE_SEND, conn->server->cfg.send_timeout_ms);
    } else if (conn->head) {
        gw__conn_set_phase(conn, GW_PHASE_NONE, 0);
    } else if (conn->server->draining || conn->want_close) {
        gw__conn_close(conn);
    } else if (conn->phase != GW_PHASE_IDLE) {
        gw__conn_set_phase(conn, GW_PHASE_IDLE, conn->server->cfg.keepalive_timeout_ms);
    }
}

/* ---------------------------------------------------------------------------------- */
/* Reading.                                                                            */

bool gw__conn_can_parse(const gw_conn *conn)
{
    const gw_http_config *cfg = &conn->server->cfg;
    /* Requests held count with their answers: pipelined large bodies would otherwise
     * pile up max_pipeline deep before the first answer made output_bytes grow. */
    return !conn->want_close && conn->nqueued < cfg->max_pipeline &&
           conn->output_bytes + conn->input_bytes < cfg->max_output_bytes;
}

static void stop_reading(gw_conn *conn)
{
    if (conn->reading)
        uv_read_stop((uv_stream_t *)&conn->tcp);
    conn->reading = false;
}

/* Keeps input that arrived past a pause for when parsing resumes. */
static void keep_unparsed(gw_conn *conn, const char *from, const char *end)
{
    size_t n = (size_t)(end - from);
    br_buf *b = &conn->pending_in;
    const char *kept = (const char *)b->data;
    if (kept && from >= kept && from <= kept + b->cap) {
        memmove(b->data, from, n);
        b->len = n;
        return;
    }
    b->len = 0;
    b->max = GW_HTTP_READ_BUFFER;
    if (br_buf_append(b, from, n) != 0)
        gw__conn_close(conn);
}

/* Answers an error llhttp reported. */
static void conn_parse_error(gw_conn *conn, llhttp_errno_t err)
{
    if (conn->err_status)
        conn_fail(conn, conn->err_status, conn->err_detail);
    else if (err == HPE_PAUSED_H2_UPGRADE)
        conn_fail(conn, 400, "Bad Request: HTTP/2 is not served on this port");
    else
        conn_fail(conn, 400, llhttp_get_error_reason(&conn->parser));
}

/* The scanner and llhttp agree on where a head ends: llhttp pauses only at the end of
 * one, and has read the whole head (or the whole request, after trailers) once the
 * scanner has found its end.  They always should; if not, the request is refused
 * rather than read one way by the server and another by something in front of it. */
static bool head_agrees(const gw_conn *conn, gw_head_result head, const char *pos, const char *stop)
{
    if (pos != stop)
        return false;
    if (head != GW_HEAD_DONE || !conn->parsing)
        return true;
    return !conn->scan.trailers && conn->parsing->headers_done;
}

/* Runs llhttp over data, in pieces: while a head (or a trailer section) is being read,
 * http_head.c scans it first and llhttp is given the bytes up to the head's end, or up
 * to the first byte the scanner refuses - so an error llhttp finds earlier is the one
 * answered.  llhttp pauses where a request ends and where a chunked body's last chunk
 * line ends; each piece goes on from there.  Bytes of a chunked body's chunk lines
 * are counted here (the callbacks take off data and the shortest framing). */
static void conn_feed(gw_conn *conn, const char *data, size_t len)
{
    const gw_http_config *cfg = &conn->server->cfg;
    const char *p = data, *end = data + len;
    while (p < end) {
        const char *stop = end;
        gw_head_result head = GW_HEAD_MORE;
        bool in_head = conn->scan.active, chunk_lines = conn->chunk_lines;
        if (in_head)
            head = gw__head_scan(&conn->scan, p, end, cfg->max_header_bytes, &stop);
        llhttp_errno_t err = HPE_OK;
        if (stop > p)
            err = llhttp_execute(&conn->parser, p, (size_t)(stop - p));
        const char *pos = stop;
        if (err == HPE_PAUSED) {
            pos = llhttp_get_error_pos(&conn->parser);
            llhttp_resume(&conn->parser);
        } else if (err != HPE_OK) {
            if (err == HPE_PAUSED_UPGRADE) { /* after a request on_message_complete closed */
                stop_reading(conn);
                if (conn->upgrade_req)
                    keep_unparsed(conn, llhttp_get_error_pos(&conn->parser), end);
                return;
            }
            conn_parse_error(conn, err);
            return;
        }
        if (head != GW_HEAD_MORE && head != GW_HEAD_DONE) {
            int status;
            const char *detail = gw__head_error(head, &status);
            conn_fail(conn, status, detail);
            return;
        }
        if (in_head && !head_agrees(conn, head, pos, stop)) {
            /* The HTTP/2 preface's empty line is not the end of a head to llhttp. */
            bool h2 = conn->parser.method == HTTP_PRI;
            conn_fail(conn, 400,
                      h2 ? "Bad Request: HTTP/2 is not served on this port"
                         : "Bad Request: malformed request head");
            return;
        }
        if (chunk_lines && conn->parsing) {
            /* While a line is being read its shortest form is not yet taken off; at the
             * last chunk's pause the count is exact. */
            conn->chunk_excess += pos - p;
            int64_t slack = conn->chunk_lines ? GW_HTTP_CHUNK_LINE_SLACK : 0;
            if (conn->chunk_excess > (int64_t)cfg->max_chunk_ext_bytes + slack) {
                conn_fail(conn, 400, "Bad Request: chunk extensions too long");
                return;
            }
        }
        if (conn->failed || conn->closing)
            return;
        /* A streamed body's consumer paused it: the rest waits until it resumes. */
        if (err == HPE_PAUSED && conn->parsing && conn->parsing->body_paused) {
            stop_reading(conn);
            keep_unparsed(conn, pos, end);
            return;
        }
        /* Backpressure applies between requests only: the pause after a last chunk is
         * inside one, and its trailers are read on. */
        if (err == HPE_PAUSED && !conn->parsing && !gw__conn_can_parse(conn)) {
            stop_reading(conn);
            /* After an upgrade request the rest may be the new protocol's (frames). */
            if (!conn->want_close || conn->upgrade_req)
                keep_unparsed(conn, pos, end);
            return;
        }
        p = pos;
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    gw_conn *conn = h->data;
    buf->base = conn->server->read_buf;
    buf->len = GW_HTTP_READ_BUFFER;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    gw_conn *conn = s->data;
    if (nread == 0)
        return;
    if (nread < 0) {
        if (nread != UV_EOF || conn->lingering || (conn->ws && !conn->head)) {
            gw__conn_close(conn);
            return;
        }
        /* The client shut down its side, or left.  A half-close means nothing in
         * HTTP/1.1, so no more is read and unanswered requests are abandoned (their
         * handlers are told); answers already made still go out, then it closes. */
        conn->peer_eof = conn->want_close = true;
        stop_reading(conn);
        abort_pending(conn, true);
        gw__conn_flush(conn);
        if (!conn->writing)
            gw__conn_close(conn);
        return;
    }
    if (conn->lingering)
        return;
    if (conn->ws && !conn->head) {
        conn->server->stats.bytes_in += (size_t)nread;
        gw__ws_read(conn, (const uint8_t *)buf->base, (size_t)nread);
        return;
    }
    if (conn->want_close)
        return;
    conn->server->stats.bytes_in += (size_t)nread;
    conn_feed(conn, buf->base, (size_t)nread);
    conn_update_phase(conn);
}

void gw__conn_start_reading(gw_conn *conn)
{
    start_reading(conn);
}

static void start_reading(gw_conn *conn)
{
    if (conn->reading || conn->closing)
        return;
    int rc = uv_read_start((uv_stream_t *)&conn->tcp, on_alloc, on_read);
    if (rc < 0) {
        gw_log(GW_LOG_ERROR, "http", "uv_read_start failed: %s", uv_strerror(rc));
        gw__conn_close(conn);
        return;
    }
    conn->reading = true;
}

/* Parsing was paused for backpressure; continue once there is room. */
static void maybe_resume(gw_conn *conn)
{
    if (conn->closing || conn->reading || conn->lingering || !gw__conn_can_parse(conn))
        return;
    if (conn->pending_in.len) {
        size_t n = conn->pending_in.len;
        conn->pending_in.len = 0;
        conn_feed(conn, (const char *)conn->pending_in.data, n);
        if (!gw__conn_can_parse(conn) || conn->closing)
            return;
    }
    start_reading(conn);
}

void gw__conn_body_resume(gw_conn *conn)
{
    if (conn->closing || conn->lingering || conn->reading || !conn->parsing)
        return;
    gw__conn_set_phase(conn, GW_PHASE_BODY, conn->server->cfg.body_timeout_ms);
    if (!conn->pending_in.len) {
        /* The pause may have come with the body's last byte: llhttp owes the request's
         * end, which it gives only when run again, with nothing more to read. */
        llhttp_errno_t err = llhttp_execute(&conn->parser, "", 0);
        if (err == HPE_PAUSED)
            llhttp_resume(&conn->parser);
        else if (err != HPE_OK)
            conn_parse_error(conn, err);
        if (conn->closing || conn->failed || (conn->parsing && conn->parsing->body_paused))
            return;
        conn_update_phase(conn);
        if (!gw__conn_can_parse(conn) && !conn->parsing)
            return;
    } else {
        size_t n = conn->pending_in.len;
        conn->pending_in.len = 0;
        conn_feed(conn, (const char *)conn->pending_in.data, n);
        if (conn->closing || conn->reading || (conn->parsing && conn->parsing->body_paused))
            return;
        conn_update_phase(conn);
        if (!gw__conn_can_parse(conn))
            return;
    }
    start_reading(conn);
}

/* ---------------------------------------------------------------------------------- */
/* Errors, writing and closing.                                                        */

/* Queues an error answer after whatever is before it, and stops reading for good. */
static void conn_fail(gw_conn *conn, int status, const char *detail)
{
    if (conn->failed || conn->closing)
        return;
    conn->failed = conn->want_close = true;
    conn->pending_in.len = 0;
    stop_reading(conn);
    gw_http_req *r = conn->parsing;
    conn->parsing = NULL;
    if (r && r->pub.body_streamed) {
        /* Its handler holds it: the body's consumer learns the failure and answers;
         * the connection ends with that answer. */
        r->close_after = true;
        r->continue_pending = false;
        gw__conn_set_phase(conn, GW_PHASE_NONE, 0);
        if (r->body_streaming)
            gw__body_deliver(r, NULL, 0, status);
        gw__server_schedule_flush(conn->server, conn);
        return;
    }
    if (!r) {
        if (!(r = gw__req_get(conn))) {
            gw__conn_close(conn);
            return;
        }
        gw__conn_push(conn, r);
    }
    /* What was read of the refused request is never used: its memory and its share of
     * the body budget go back now, not once a slow client has read the answer. */
    req_release_body(r);
    br_buf_free(&r->arena);
    r->continue_pending = false;
    r->close_after = true;
    r->state = GW_REQ_HANDLING;
    conn->nqueued++;
    gw__conn_set_phase(conn, GW_PHASE_NONE, 0);
    gw_header retry = {"Retry-After", 11, "1", 1};
    gw__req_answer_detail(r, status, detail, &retry, status == 503 ? 1 : 0);
}

void gw__req_answered(gw_http_req *r)
{
    gw_conn *conn = r->conn;
    r->state = GW_REQ_READY;
    conn->output_bytes += r->resp.len;
    gw__server_schedule_flush(conn->server, conn);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    gw_conn *conn = req->data;
    free(req);
    if (status < 0 || conn->closing) {
        gw__conn_close(conn);
        return;
    }
    /* Drain what the client still sends so that closing does not reset the
     * connection under the answer it has not read yet. */
    gw__conn_set_phase(conn, GW_PHASE_LINGER, GW_HTTP_LINGER_MS);
    start_reading(conn);
}

/* The last answer is out: send FIN, then linger. */
static void conn_finish(gw_conn *conn)
{
    gw__conn_finish(conn);
}

void gw__conn_finish(gw_conn *conn)
{
    conn->lingering = true;
    stop_reading(conn);
    gw__conn_set_phase(conn, GW_PHASE_LINGER, GW_HTTP_LINGER_MS);
    /* Allocated here, once a connection ends, rather than carried by every open one;
     * libuv calls on_shutdown (which frees it) even when the handle closes first. */
    uv_shutdown_t *req = malloc(sizeof(*req));
    if (req)
        req->data = conn;
    if (!req || uv_shutdown(req, (uv_stream_t *)&conn->tcp, on_shutdown) < 0) {
        free(req);
        gw__conn_close(conn);
    }
}

/* The answers of the last write are out: recycle them, then carry on. */
static void write_done(gw_conn *conn)
{
    bool finish = false, upgraded = false;
    while (conn->head && conn->head->state == GW_REQ_WRITING) {
        gw_http_req *r = conn->head;
        conn->head = r->next;
        if (!conn->head)
            conn->tail = NULL;
        conn->nqueued--;
        conn->output_bytes -= r->resp.len;
        conn->input_bytes -= r->held;
        finish = finish || r->close_after;
        upgraded = upgraded || r->upgrade;
        req_recycle(conn, r);
    }
    if (!finish && conn->head && conn->head->state == GW_REQ_STREAMING &&
        conn->head->stream_inflight) {
        gw__stream_written(conn->head); /* may write more, end the stream, or close */
        if (conn->closing)
            return;
    }
    if (finish) {
        conn_finish(conn);
        return;
    }
    if (upgraded && conn->ws) {
        gw__ws_start(conn);
        return;
    }
    gw__conn_flush(conn);
    maybe_resume(conn);
    conn_update_phase(conn);
}

/* A write request exists only while a write waits on the socket: answers usually leave
 * whole through uv_try_write, so carrying a uv_write_t (192 bytes) in every connection
 * would cost 1.9 MB at 10,000 connections for a request that is rarely used. */
int gw__conn_write(gw_conn *conn, const uv_buf_t *bufs, unsigned n, uv_write_cb cb)
{
    uv_write_t *req = malloc(sizeof(*req));
    if (!req)
        return UV_ENOMEM;
    req->data = conn;
    int rc = uv_write(req, (uv_stream_t *)&conn->tcp, bufs, n, cb);
    if (rc < 0)
        free(req);
    return rc;
}

gw_conn *gw__conn_written(uv_write_t *req)
{
    gw_conn *conn = req->data;
    free(req);
    return conn;
}

static void on_write(uv_write_t *req, int status)
{
    gw_conn *conn = gw__conn_written(req);
    conn->writing = false;
    if (status < 0 || conn->closing) {
        gw__conn_close(conn);
        return;
    }
    write_done(conn);
}

/* Drops the first `sent` bytes from bufs[0..*n); returns the first unsent buffer. */
static uv_buf_t *skip_sent(uv_buf_t *bufs, size_t *n, size_t sent)
{
    while (*n && sent >= bufs->len) {
        sent -= bufs->len;
        bufs++;
        (*n)--;
    }
    if (*n) {
        bufs->base += sent;
        bufs->len -= sent;
    }
    return bufs;
}

void gw__conn_flush(gw_conn *conn)
{
    if (conn->closing || conn->lingering)
        return;
    gw_http_req *p = conn->parsing;
    if (p && p->pub.body_streamed && p->body_streaming && !p->body_paused && !conn->reading &&
        !conn->failed) {
        gw__conn_body_resume(conn); /* its consumer resumed it (http_body.c) */
        if (conn->closing)
            return;
    }
    if (conn->writing)
        return;
    size_t n = 0, total = 0, cap = conn->server->cfg.max_pipeline + 2;
    /* One gather list for the whole loop rather than one per connection (544 bytes
     * each, 5 MB at 10,000 connections): a flush fills and writes it at once, and
     * uv_write keeps its own copy of what is left. */
    uv_buf_t *bufs = conn->server->gather;
    for (gw_http_req *r = conn->head; r && n < cap; r = r->next) {
        if (r == conn->parsing && r->pub.body_streamed) {
            /* Its body is still being read: any answer waits for the end (recycling it
             * now would pull it from under the parser). */
            if (r->continue_pending) {
                bufs[n++] = uv_buf_init((char *)continue_line, sizeof(continue_line) - 1);
                total += sizeof(continue_line) - 1;
                r->continue_pending = false;
            }
            break;
        }
        if (r->state == GW_REQ_READY) {
            bufs[n++] = uv_buf_init((char *)r->resp.data, (unsigned)r->resp.len);
            total += r->resp.len;
            r->state = GW_REQ_WRITING;
            if (r->close_after)
                break;
            continue;
        }
        if (r->state == GW_REQ_STREAMING) {
            /* The stream's bytes so far go; those that come meanwhile collect in sbuf.
             * resp is empty here: its last write was accounted in write_done. */
            if (r->sbuf.len == 0 && !r->stream_ended)
                break;
            br_buf t = r->resp;
            r->resp = r->sbuf;
            r->sbuf = t;
            r->sbuf.len = 0;
            bufs[n++] = uv_buf_init((char *)r->resp.data, (unsigned)r->resp.len);
            total += r->resp.len;
            if (!r->stream_ended) {
                r->stream_inflight = true;
                break;
            }
            r->state = GW_REQ_WRITING; /* the rest is an answer like any other */
            if (r->close_after)
                break;
            continue;
        }
        if (r->state == GW_REQ_PARSING && r->continue_pending) {
            bufs[n++] = uv_buf_init((char *)continue_line, sizeof(continue_line) - 1);
            total += sizeof(continue_line) - 1;
            r->continue_pending = false;
        }
        break;
    }
    if (n == 0)
        return;
    /* Try the socket first: an answer that fits (the usual case) then costs one
     * writev and no write request - libuv would otherwise re-arm the poll watcher
     * after every completed uv_write, one epoll_ctl per answer. */
    int sent = uv_try_write((uv_stream_t *)&conn->tcp, bufs, (unsigned)n);
    if (sent < 0 && sent != UV_EAGAIN) {
        gw__conn_close(conn);
        return;
    }
    if (sent >= 0 && (size_t)sent == total) {
        write_done(conn);
        return;
    }
    uv_buf_t *rest = skip_sent(bufs, &n, sent > 0 ? (size_t)sent : 0);
    int rc = gw__conn_write(conn, rest, (unsigned)n, on_write);
    if (rc < 0) {
        gw__conn_close(conn);
        return;
    }
    conn->writing = true;
    conn_update_phase(conn);
}

static void conn_free(gw_conn *conn)
{
    gw_http_server *server = conn->server;
    if (conn->flush_queued) {
        for (gw_conn **pp = &server->flush_list; *pp; pp = &(*pp)->flush_next) {
            if (*pp == conn) {
                *pp = conn->flush_next;
                break;
            }
        }
    }
    for (gw_http_req *r = conn->head, *next; r; r = next) {
        next = r->next;
        req_free(r);
    }
    for (gw_http_req *r = conn->free_reqs, *next; r; r = next) {
        next = r->next;
        req_free(r);
    }
    br_buf_free(&conn->pending_in);
    gw__ws_free(conn);
    gw__server_conn_closed(server, conn);
    free(conn);
}

static void on_handle_closed(uv_handle_t *h)
{
    gw_conn *conn = h->data;
    if (--conn->open_handles == 0)
        conn_free(conn);
}

/* Tells every handler still holding a request of this connection that it died.  With
 * `forget`, the requests are also marked so that no answer is expected from them
 * (before the callback runs, so that an answer from it is refused). */
static void abort_pending(gw_conn *conn, bool forget)
{
    for (gw_http_req *r = conn->head; r; r = r->next) {
        bool open_stream = r->state == GW_REQ_STREAMING && !r->stream_ended;
        if (r->state != GW_REQ_HANDLING && !open_stream)
            continue;
        if (open_stream && !forget)
            continue; /* the shutdown's 503s are for unanswered requests only */
        r->drain_fn = NULL;
        gw_abort_fn fn = r->abort_fn;
        r->abort_fn = NULL;
        if (forget)
            r->state = GW_REQ_ABORTED;
        if (fn)
            fn(&r->pub, r->abort_arg);
        if (forget)
            gw__req_filter_done(r, 499, 0);
    }
}

void gw__conn_close(gw_conn *conn)
{
    if (conn->closing)
        return;
    conn->closing = true;
    stop_reading(conn);
    abort_pending(conn, true);
    if (conn->ws)
        gw__ws_closed(conn);
    gw__timeouts_remove(conn);
    uv_close((uv_handle_t *)&conn->tcp, on_handle_closed);
}

void gw__conn_drain(gw_conn *conn)
{
    if (conn->closing || conn->lingering)
        return;
    if (conn->ws && !conn->head) {
        gw__ws_going_away(conn);
        return;
    }
    if (!conn->head && !conn->writing) {
        gw__conn_close(conn);
        return;
    }
    /* A request being read may still finish (it will say Connection: close); with
     * none, no further request is read. */
    if (!conn->parsing) {
        conn->want_close = true;
        stop_reading(conn);
    }
}

void gw__conn_force_close(gw_conn *conn)
{
    if (conn->closing || conn->lingering)
        return;
    abort_pending(conn, false);
    for (gw_http_req *r = conn->head; r; r = r->next) {
        if (r->state != GW_REQ_HANDLING)
            continue;
        r->close_after = r->next == NULL || r->next == conn->parsing;
        gw__req_answer_detail(r, 503, "Service Unavailable: the server is shutting down", NULL, 0);
        if (conn->closing)
            return;
    }
    conn->want_close = true;
    if (conn->parsing)
        conn_fail(conn, 503, "Service Unavailable: the server is shutting down");
    else if (!conn->head)
        gw__conn_close(conn);
}

/* ---------------------------------------------------------------------------------- */
/* Accepting.                                                                          */

static void on_reject_written(uv_write_t *req, int status)
{
    gw_conn *conn = gw__conn_written(req);
    if (status < 0 || conn->closing)
        gw__conn_close(conn);
    else
        conn_finish(conn);
}

/* Answers a connection past max_connections with 503 and closes it. */
static void conn_reject(gw_conn *conn)
{
    gw_http_server *server = conn->server;
    if (server->nrejecting > GW_HTTP_MAX_REJECTING) {
        gw__conn_close(conn);
        return;
    }
    static const char body[] = "{\"detail\":\"Service Unavailable: too many connections\"}";
    char head[256];
    size_t date_len;
    const char *date = gw__server_date(server, &date_len);
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 503 Service Unavailable\r\n%.*sContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nRetry-After: 1\r\nConnection: close\r\n\r\n",
                     (int)date_len, date, sizeof(body) - 1);
    br_buf *b = &conn->pending_in;
    b->max = 1024;
    if (n < 0 || (size_t)n >= sizeof(head) || br_buf_append(b, head, (size_t)n) != 0 ||
        br_buf_append(b, body, sizeof(body) - 1) != 0) {
        gw__conn_close(conn);
        return;
    }
    uv_buf_t buf = uv_buf_init((char *)b->data, (unsigned)b->len);
    gw__conn_set_phase(conn, GW_PHASE_LINGER, GW_HTTP_LINGER_MS);
    conn->lingering = true;
    if (gw__conn_write(conn, &buf, 1, on_reject_written) < 0)
        gw__conn_close(conn);
}

void gw__conn_accept(gw_http_server *server, bool reject)
{
    gw_conn *conn = calloc(1, sizeof(*conn));
    if (!conn) {
        gw_log(GW_LOG_ERROR, "http", "accept: out of memory");
        return;
    }
    conn->server = server;
    uv_tcp_init(server->loop, &conn->tcp);
    conn->tcp.data = conn;
    conn->open_handles = 1;
    gw_list_init(&conn->tlink);
    if (reject) {
        conn->rejecting = true;
        server->nrejecting++;
    } else {
        conn->next = server->conns;
        if (server->conns)
            server->conns->prev = conn;
        server->conns = conn;
        server->nconns++;
    }
    int rc = uv_accept((uv_stream_t *)&server->listener, (uv_stream_t *)&conn->tcp);
    if (rc < 0) {
        gw_log(GW_LOG_ERROR, "http", "uv_accept failed: %s", uv_strerror(rc));
        gw__conn_close(conn);
        return;
    }
    if (reject) {
        server->stats.rejected++;
        conn_reject(conn);
        return;
    }
    server->stats.accepted++;
    int len = (int)sizeof(conn->peer);
    if (uv_tcp_getpeername(&conn->tcp, &conn->peer.sa, &len) != 0 || len > (int)sizeof(conn->peer))
        memset(&conn->peer, 0, sizeof(conn->peer));
    llhttp_init(&conn->parser, HTTP_REQUEST, &gw__parser_settings);
    conn->parser.data = conn;
    gw__head_begin(&conn->scan);
    uv_tcp_nodelay(&conn->tcp, 1);
    gw__conn_set_phase(conn, GW_PHASE_IDLE, server->cfg.header_timeout_ms);
    start_reading(conn);
}
