/*
 * ws_conn.c - a connection after its 101: WebSocket framing on the HTTP server's
 * socket (frames: gateway/src/ws).
 *
 * The upgrade request stays the connection's only request until its 101 is written;
 * then reading goes to the frame parser instead of llhttp, and writing to a FIFO of
 * frames, each one heap block of header and payload, written through the connection's
 * write path (gw__conn_write; an HTTP answer never follows).  An idle WebSocket holds this state,
 * its parser and nothing else: config and hooks are borrowed, buffers go with the
 * message that needed them (docs/benchmarks.md, idle connections).  The connection's timeout
 * (http_timeouts.c) measures silence: after ping_interval_ms without a byte from the client it is
 * pinged, after pong_timeout_ms more it is dropped.  Closing is the RFC's handshake:
 * whoever closes first sends a close frame, the other answers with one, and the server
 * then shuts the TCP connection down (close_timeout_ms bounds the wait for an answer).
 * With permessage-deflate, a data message of deflate_min_bytes or more goes out
 * compressed by the server's shared deflater (ws_deflate.h) when that makes it smaller.
 */
#include <stdlib.h>
#include <string.h>

#include "http_conn.h"
#include "log.h"
#include "websocket.h"
#include "ws_deflate.h"
#include "ws_frame.h"
#include "ws_handshake.h"

/* WebSocket states carved from one pool chunk (pool.h: away from the handshake's
 * transient blocks). */
#define WS_POOL_CHUNK 64

/* Frames written in one uv_write at most. */
#define WS_WRITE_BATCH 64

/* The server's compression buffer is released after a message larger than this. */
#define WS_DEFLATED_KEEP (64 * 1024)

typedef struct ws_chunk {
    struct ws_chunk *next; /* next in the output FIFO */
    size_t len;            /* bytes at data */
    bool message;          /* a data message of the owner's (counted for on_sent) */
    uint8_t data[];        /* header and payload */
} ws_chunk;

struct gw_ws_conn {
    gw_conn *conn;            /* the connection it lives on */
    const gw_ws_config *cfg;  /* limits and timers (borrowed: the owner's, shared) */
    const gw_ws_hooks *hooks; /* the owner's hooks (borrowed) */
    void *data;               /* their argument */
    gw_ws_parser parser;      /* client bytes to messages */
    ws_chunk *out_head;       /* frames not yet written, in order */
    ws_chunk *out_tail;       /* last of them */
    ws_chunk *in_flight;      /* frames of the write in flight (a detached list) */
    size_t out_bytes;         /* bytes queued or in flight */
    char *subprotocol;        /* the one chosen (heap, NUL-terminated), or NULL */
    gw_ws_pmd pmd;            /* permessage-deflate as negotiated (pmd.on false: none) */
    bool open;                /* the 101 is written: frames flow */
    bool owner_gone;          /* on_close ran or the owner closed: no more hooks */
    bool close_sent;          /* our close frame is queued */
    bool close_received;      /* the client's close frame arrived */
    bool ping_out;            /* an idle ping is unanswered */
    bool paused;              /* the owner asked us to stop reading */
};

void gw_ws_config_defaults(gw_ws_config *cfg)
{
    cfg->max_frame_bytes = GW_WS_MAX_FRAME_BYTES;
    cfg->max_message_bytes = GW_WS_MAX_MESSAGE_BYTES;
    cfg->max_output_bytes = GW_WS_MAX_OUTPUT_BYTES;
    cfg->ping_interval_ms = GW_WS_PING_INTERVAL_MS;
    cfg->pong_timeout_ms = GW_WS_PONG_TIMEOUT_MS;
    cfg->close_timeout_ms = GW_WS_CLOSE_TIMEOUT_MS;
    cfg->deflate = GW_WS_DEFLATE;
    cfg->deflate_min_bytes = GW_WS_DEFLATE_MIN_BYTES;
    cfg->deflate_level = GW_WS_DEFLATE_LEVEL;
}

/* ---------------------------------------------------------------------------------- */
/* The handshake.                                                                      */

/* Answers a refused handshake with a detail and extra headers. */
static void refuse(gw_req *req, int status, const char *detail, bool version)
{
    gw_header extra[2] = {{"Sec-WebSocket-Version", 21, GW_WS_VERSION, 2},
                          {"Upgrade", 7, "websocket", 9}};
    gw_http_req *r = (gw_http_req *)req;
    gw__req_answer_detail(r, status, detail, extra, version ? 2 : 0);
}

/* Appends "\r\n" + name + value to the answer. */
static int add_header(br_buf *b, const char *name, const char *value)
{
    int rc = br_buf_append(b, name, strlen(name));
    return rc ? rc : br_buf_append(b, value, strlen(value));
}

/* Writes the 101 into the request's answer buffer. */
static int build_101(gw_http_req *r, const char *accept, const char *proto, const char *ext)
{
    static const char head[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                               "Connection: Upgrade\r\nSec-WebSocket-Accept: ";
    r->resp.len = 0;
    r->resp.max = 1024;
    int rc = br_buf_append(&r->resp, head, sizeof(head) - 1);
    if (rc == 0)
        rc = br_buf_append(&r->resp, accept, GW_WS_ACCEPT_LEN);
    if (rc == 0 && proto[0])
        rc = add_header(&r->resp, "\r\nSec-WebSocket-Protocol: ", proto);
    if (rc == 0 && ext[0])
        rc = add_header(&r->resp, "\r\nSec-WebSocket-Extensions: ", ext);
    if (rc == 0)
        rc = br_buf_append(&r->resp, "\r\n\r\n", 4);
    return rc;
}

void gw__ws_pool_init(gw_http_server *server)
{
    gw_pool_init(&server->ws_conns, sizeof(gw_ws_conn), WS_POOL_CHUNK);
}

gw_ws_conn *gw_req_upgrade(gw_req *req, const char *subprotocols, const gw_ws_config *cfg,
                           const gw_ws_hooks *hooks, void *data, const char **chosen)
{
    gw_http_req *r = (gw_http_req *)req;
    if (chosen)
        *chosen = "";
    if (!r || r->state != GW_REQ_HANDLING)
        return NULL;
    gw_conn *conn = r->conn;
    const gw_header *up = gw_req_header(req, "upgrade");
    const gw_header *co = gw_req_header(req, "connection");
    const gw_header *ver = gw_req_header(req, "sec-websocket-version");
    const gw_header *key = gw_req_header(req, "sec-websocket-key");
    if (strcmp(req->method, "GET") != 0) {
        gw__req_answer_detail(r, 405, "Method Not Allowed: a WebSocket opens with GET", NULL, 0);
        return NULL;
    }
    if (!up || !gw_ws_header_has_token(up->value, up->value_len, "websocket") || !co ||
        !gw_ws_header_has_token(co->value, co->value_len, "upgrade")) {
        refuse(req, 426, "Upgrade Required: this is a WebSocket endpoint", true);
        return NULL;
    }
    if (!ver || ver->value_len != 2 || memcmp(ver->value, GW_WS_VERSION, 2) != 0) {
        refuse(req, 426, "Upgrade Required: Sec-WebSocket-Version must be 13", true);
        return NULL;
    }
    char accept[GW_WS_ACCEPT_LEN + 1];
    if (!key || gw_ws_accept_key(key->value, key->value_len, accept) != 0) {
        refuse(req, 400, "Bad Request: Sec-WebSocket-Key must be 16 bytes in base64", false);
        return NULL;
    }
    /* Nothing may follow the upgrade request on this connection but frames. */
    if (conn->head != r || r->next != NULL || conn->ws) {
        refuse(req, 400, "Bad Request: a request pipelined after a WebSocket upgrade", false);
        return NULL;
    }
    gw_ws_conn *ws = gw_pool_alloc(&conn->server->ws_conns);
    if (!ws) {
        gw__req_answer_detail(r, 500, "Internal Server Error", NULL, 0);
        return NULL;
    }
    const gw_header *offered = gw_req_header(req, "sec-websocket-protocol");
    const char *name;
    size_t name_len;
    if (offered && subprotocols &&
        gw_ws_pick_subprotocol(offered->value, offered->value_len, subprotocols,
                               strlen(subprotocols), &name, &name_len) &&
        (ws->subprotocol = malloc(name_len + 1))) {
        memcpy(ws->subprotocol, name, name_len);
        ws->subprotocol[name_len] = '\0';
    }
    ws->conn = conn;
    ws->cfg = cfg;
    ws->hooks = hooks;
    ws->data = data;
    char ext[GW_WS_PMD_ANSWER_MAX] = "";
    const gw_header *exts = gw_req_header(req, "sec-websocket-extensions");
    if (cfg->deflate && exts)
        gw_ws_pmd_negotiate(exts->value, exts->value_len, &ws->pmd, ext);
    gw_ws_limits lim = {.max_frame = cfg->max_frame_bytes,
                        .max_message = cfg->max_message_bytes,
                        .require_mask = true,
                        .deflate = ws->pmd.on};
    gw_ws_parser_init(&ws->parser, &lim);
    if (build_101(r, accept, ws->subprotocol ? ws->subprotocol : "", ext) != 0) {
        gw_ws_parser_reset(&ws->parser);
        free(ws->subprotocol);
        gw_pool_free(&conn->server->ws_conns, ws);
        gw__req_answer_detail(r, 500, "Internal Server Error", NULL, 0);
        return NULL;
    }
    conn->ws = ws;
    r->close_after = false;
    r->upgrade = true;
    gw__response_count(r, 101, r->resp.len);
    gw__req_filter_done(r, 101, r->resp.len);
    gw__req_answered(r);
    if (chosen && ws->subprotocol)
        *chosen = ws->subprotocol;
    return ws;
}

/* ---------------------------------------------------------------------------------- */
/* Writing.                                                                            */

static void ws_flush(gw_ws_conn *ws);

/* Appends one frame to the output FIFO. */
static int queue_frame(gw_ws_conn *ws, uint8_t opcode, const void *payload, size_t len,
                       bool message)
{
    uint8_t head[GW_WS_MAX_HEADER];
    size_t hl = gw_ws_frame_header(head, true, opcode & 0x0f, len, NULL);
    head[0] |= opcode & GW_WS_RSV1;
    ws_chunk *c = malloc(sizeof(*c) + hl + len);
    if (!c)
        return BR_ENOMEM;
    c->next = NULL;
    c->len = hl + len;
    c->message = message;
    memcpy(c->data, head, hl);
    if (len)
        memcpy(c->data + hl, payload, len);
    if (ws->out_tail)
        ws->out_tail->next = c;
    else
        ws->out_head = c;
    ws->out_tail = c;
    ws->out_bytes += c->len;
    return 0;
}

static void free_chunks(ws_chunk *c)
{
    while (c) {
        ws_chunk *next = c->next;
        free(c);
        c = next;
    }
}

/* Written: frees the frames, tells the owner how many messages left, goes on. */
static void chunks_written(gw_ws_conn *ws, ws_chunk *list)
{
    uint32_t messages = 0;
    for (ws_chunk *c = list; c; c = c->next) {
        ws->out_bytes -= c->len;
        messages += c->message;
    }
    free_chunks(list);
    if (messages && !ws->owner_gone && ws->hooks->on_sent)
        ws->hooks->on_sent(ws->data, ws, messages);
    gw_conn *conn = ws->conn;
    if (conn->closing)
        return;
    if (!ws->out_head && ws->close_sent && ws->close_received) {
        if (!conn->lingering)
            gw__conn_finish(conn);
        return;
    }
    ws_flush(ws);
}

static void on_ws_write(uv_write_t *req, int status)
{
    gw_conn *conn = gw__conn_written(req);
    gw_ws_conn *ws = conn->ws;
    conn->writing = false;
    ws_chunk *list = ws->in_flight;
    ws->in_flight = NULL;
    if (status < 0 || conn->closing) {
        for (ws_chunk *c = list; c; c = c->next)
            ws->out_bytes -= c->len;
        free_chunks(list);
        gw__conn_close(conn);
        return;
    }
    chunks_written(ws, list);
}

static void ws_flush(gw_ws_conn *ws)
{
    gw_conn *conn = ws->conn;
    if (!ws->open || conn->writing || conn->closing || conn->lingering || !ws->out_head)
        return;
    uv_buf_t bufs[WS_WRITE_BATCH];
    unsigned n = 0;
    size_t total = 0;
    ws_chunk *list = ws->out_head, *last = NULL;
    for (ws_chunk *c = list; c && n < WS_WRITE_BATCH; c = c->next) {
        bufs[n++] = uv_buf_init((char *)c->data, (unsigned)c->len);
        total += c->len;
        last = c;
    }
    ws->out_head = last->next;
    if (!ws->out_head)
        ws->out_tail = NULL;
    last->next = NULL;
    int sent = uv_try_write((uv_stream_t *)&conn->tcp, bufs, n);
    if (sent < 0 && sent != UV_EAGAIN) {
        free_chunks(list);
        gw__conn_close(conn);
        return;
    }
    if (sent >= 0 && (size_t)sent == total) {
        chunks_written(ws, list);
        return;
    }
    /* Skip what went out; libuv copies the descriptors, not the bytes. */
    size_t skip = sent > 0 ? (size_t)sent : 0;
    unsigned first = 0;
    while (first < n && skip >= bufs[first].len)
        skip -= bufs[first++].len;
    bufs[first].base += skip;
    bufs[first].len -= skip;
    ws->in_flight = list;
    if (gw__conn_write(conn, bufs + first, n - first, on_ws_write) < 0) {
        ws->in_flight = NULL;
        free_chunks(list);
        gw__conn_close(conn);
        return;
    }
    conn->writing = true;
}

/* The server's deflater for this connection's window, made at first use; NULL when the
 * client allowed too small a window (8: zlib makes 9) or memory ran out. */
static gw_ws_deflater *deflater(gw_ws_conn *ws)
{
    gw_http_server *s = ws->conn->server;
    unsigned bits = ws->pmd.server_bits;
    if (bits < 9 || bits >= sizeof(s->ws_deflaters) / sizeof(s->ws_deflaters[0]))
        return NULL;
    if (!s->ws_deflaters[bits])
        s->ws_deflaters[bits] = gw_ws_deflater_new((int)bits, ws->cfg->deflate_level);
    return s->ws_deflaters[bits];
}

int gw_ws_send(gw_ws_conn *ws, bool text, const void *msg, size_t len)
{
    if (ws->close_sent || ws->conn->closing)
        return BR_ECLOSED;
    if (ws->out_bytes + len + GW_WS_MAX_HEADER > ws->cfg->max_output_bytes)
        return BR_EFULL;
    uint8_t op = text ? GW_WS_OP_TEXT : GW_WS_OP_BINARY;
    gw_ws_deflater *d;
    if (ws->pmd.on && len >= ws->cfg->deflate_min_bytes && (d = deflater(ws))) {
        /* Sent plain when compressing does not make it smaller (RSV1 is per message). */
        br_buf *z = &ws->conn->server->ws_deflated;
        z->len = 0;
        z->max = len;
        int zrc = gw_ws_deflate(d, msg, len, z);
        int rc = zrc == 0 ? queue_frame(ws, op | GW_WS_RSV1, z->data, z->len, true) : 0;
        if (z->cap > WS_DEFLATED_KEEP)
            br_buf_free(z); /* one large message does not pin its size for good */
        if (zrc == 0) {
            if (rc == 0)
                ws_flush(ws);
            return rc;
        }
    }
    int rc = queue_frame(ws, op, msg, len, true);
    if (rc == 0)
        ws_flush(ws);
    return rc;
}

size_t gw_ws_output_bytes(const gw_ws_conn *ws)
{
    return ws->out_bytes;
}

/* Sends our close frame (once) and waits close_timeout_ms for the client's. */
static void send_close(gw_ws_conn *ws, uint16_t code, const char *reason, size_t reason_len)
{
    if (ws->close_sent)
        return;
    ws->close_sent = true;
    uint8_t pl[GW_WS_MAX_CONTROL];
    size_t n = gw_ws_close_payload(pl, code, reason, reason_len);
    if (queue_frame(ws, GW_WS_OP_CLOSE, pl, n, false) != 0) {
        gw__conn_close(ws->conn);
        return;
    }
    gw__conn_set_phase(ws->conn, GW_PHASE_WS_CLOSE, ws->cfg->close_timeout_ms);
    ws_flush(ws);
}

/* The connection is over for the owner: tells it once. */
static void tell_owner(gw_ws_conn *ws, uint16_t code, const char *reason, size_t len)
{
    if (ws->owner_gone)
        return;
    ws->owner_gone = true;
    if (ws->hooks->on_close)
        ws->hooks->on_close(ws->data, ws, code, reason, len);
}

void gw_ws_close(gw_ws_conn *ws, uint16_t code, const char *reason, size_t reason_len)
{
    ws->owner_gone = true;
    if (!gw_ws_close_code_valid(code))
        code = GW_WS_CLOSE_INTERNAL;
    if (ws->conn->closing)
        return;
    send_close(ws, code, reason, reason_len);
}

/* ---------------------------------------------------------------------------------- */
/* Reading.                                                                            */

static void ws_feed(gw_ws_conn *ws, const uint8_t *data, size_t len);

void gw_ws_pause(gw_ws_conn *ws, bool paused)
{
    gw_conn *conn = ws->conn;
    ws->paused = paused;
    if (!ws->open || conn->closing || conn->lingering)
        return;
    if (paused) {
        if (conn->reading)
            uv_read_stop((uv_stream_t *)&conn->tcp);
        conn->reading = false;
        return;
    }
    if (conn->pending_in.len) {
        /* Feeding may pause again and keep a shorter rest in the same buffer. */
        size_t n = conn->pending_in.len;
        conn->pending_in.len = 0;
        ws_feed(ws, conn->pending_in.data, n);
        if (ws->paused || conn->closing)
            return;
    }
    gw__conn_start_reading(conn);
}

/* One event from the parser. */
static void ws_event(gw_ws_conn *ws, const gw_ws_event *ev)
{
    switch (ev->kind) {
    case GW_WS_EV_MESSAGE:
        if (!ws->close_sent && !ws->owner_gone && ws->hooks->on_message)
            ws->hooks->on_message(ws->data, ws, ev->text, ev->data, ev->len);
        break;
    case GW_WS_EV_PING:
        /* A client that pings without reading gets no more than the output limit. */
        if (!ws->close_sent && ws->out_bytes + ev->len < ws->cfg->max_output_bytes &&
            queue_frame(ws, GW_WS_OP_PONG, ev->data, ev->len, false) == 0)
            ws_flush(ws);
        break;
    case GW_WS_EV_PONG:
        break;
    case GW_WS_EV_CLOSE: {
        ws->close_received = true;
        uint16_t code = ev->code == GW_WS_CLOSE_NO_STATUS ? GW_WS_CLOSE_NORMAL : ev->code;
        tell_owner(ws, ev->code, (const char *)ev->data, ev->len);
        if (ws->close_sent) {
            if (!ws->out_head && !ws->conn->writing && !ws->conn->lingering)
                gw__conn_finish(ws->conn);
        } else {
            send_close(ws, code, NULL, 0);
        }
        break;
    }
    case GW_WS_EV_ERROR:
        /* Nothing the client sends now is read (it broke the protocol): the connection
         * ends once our close frame is out. */
        ws->close_received = true;
        tell_owner(ws, ev->code, ev->why, strlen(ev->why));
        send_close(ws, ev->code, ev->why, strlen(ev->why));
        break;
    default:
        break;
    }
}

static void ws_feed(gw_ws_conn *ws, const uint8_t *data, size_t len)
{
    gw_conn *conn = ws->conn;
    size_t at = 0;
    while (at < len && !conn->closing && !conn->lingering) {
        if (ws->paused) {
            br_buf *b = &conn->pending_in;
            b->max = GW_HTTP_READ_BUFFER;
            if ((uint8_t *)data == b->data) {
                memmove(b->data, data + at, len - at);
                b->len = len - at;
            } else if (br_buf_append(b, data + at, len - at) != 0) {
                gw__conn_close(conn);
            }
            return;
        }
        if (ws->parser.done)
            return; /* after a close or an error: discarded */
        gw_ws_event ev;
        size_t used;
        gw_ws_event_kind kind = gw_ws_parser_feed(&ws->parser, data + at, len - at, &used, &ev);
        at += used;
        if (kind != GW_WS_EV_NONE)
            ws_event(ws, &ev);
    }
}

void gw__ws_read(gw_conn *conn, const uint8_t *data, size_t len)
{
    gw_ws_conn *ws = conn->ws;
    ws->ping_out = false;
    if (!ws->close_sent)
        gw__conn_set_phase(conn, GW_PHASE_WS, ws->cfg->ping_interval_ms);
    ws_feed(ws, data, len);
    if (ws->paused && conn->reading) {
        uv_read_stop((uv_stream_t *)&conn->tcp);
        conn->reading = false;
    }
}

/* ---------------------------------------------------------------------------------- */
/* The connection's life.                                                              */

void gw__ws_start(gw_conn *conn)
{
    gw_ws_conn *ws = conn->ws;
    ws->open = true;
    /* No HTTP request follows: the upgrade request's buffers are not kept. */
    gw__conn_release_pool(conn);
    gw__conn_set_phase(conn, GW_PHASE_WS, ws->cfg->ping_interval_ms);
    if (conn->server->draining) {
        gw__ws_going_away(conn);
        return;
    }
    ws_flush(ws);
    gw_ws_pause(ws, ws->paused);
}

void gw__ws_timer(gw_conn *conn)
{
    gw_ws_conn *ws = conn->ws;
    if (conn->phase == GW_PHASE_WS_CLOSE || ws->ping_out) {
        gw__conn_close(conn); /* no close answer, or no sign of life after a ping */
        return;
    }
    ws->ping_out = true;
    gw__conn_set_phase(conn, GW_PHASE_WS, ws->cfg->pong_timeout_ms);
    if (queue_frame(ws, GW_WS_OP_PING, NULL, 0, false) == 0)
        ws_flush(ws);
}

void gw__ws_going_away(gw_conn *conn)
{
    gw_ws_conn *ws = conn->ws;
    static const char why[] = "the server is shutting down";
    tell_owner(ws, GW_WS_CLOSE_GOING_AWAY, why, sizeof(why) - 1);
    send_close(ws, GW_WS_CLOSE_GOING_AWAY, why, sizeof(why) - 1);
}

void gw__ws_closed(gw_conn *conn)
{
    tell_owner(conn->ws, GW_WS_CLOSE_ABNORMAL, "", 0);
}

void gw__ws_free(gw_conn *conn)
{
    gw_ws_conn *ws = conn->ws;
    if (!ws)
        return;
    free_chunks(ws->out_head);
    free_chunks(ws->in_flight);
    gw_ws_parser_reset(&ws->parser);
    free(ws->subprotocol);
    gw_pool_free(&conn->server->ws_conns, ws);
    conn->ws = NULL;
}
