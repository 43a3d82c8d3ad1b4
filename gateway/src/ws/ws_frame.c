/*
 * ws_frame.c - the WebSocket frame parser and encoder (RFC 6455, section 5).
 *
 * The parser reads a frame header into a small fixed buffer, then the payload: data
 * frames straight into the message buffer (unmasked there, UTF-8 checked as each piece
 * lands), control frames into a 125-byte buffer of their own, since a ping may arrive
 * between the fragments of a message.  Lengths from the wire are checked against the
 * limits before a byte of memory is reserved for them.  A compressed message
 * (permessage-deflate) is assembled compressed, then inflated whole into a second
 * buffer under the same message limit, and its UTF-8 checked there.
 */
#include <stdlib.h>
#include <string.h>

#include "utf8.h"
#include "ws_deflate.h"
#include "ws_frame.h"

/* A message buffer larger than this is released before the next message. */
#define GW_WS_MSG_KEEP (4 * 1024)

void gw_ws_parser_init(gw_ws_parser *p, const gw_ws_limits *lim)
{
    memset(p, 0, sizeof(*p));
    p->lim = *lim;
    p->msg.max = lim->max_message ? (size_t)lim->max_message : 1;
    p->plain.max = p->msg.max;
}

void gw_ws_parser_reset(gw_ws_parser *p)
{
    br_buf_free(&p->msg);
    br_buf_free(&p->plain);
    free(p->ctl);
    gw_ws_limits lim = p->lim;
    gw_ws_parser_init(p, &lim);
}

size_t gw_ws_parser_memory(const gw_ws_parser *p)
{
    return p->msg.cap + p->plain.cap;
}

/* An idle connection should not keep the memory of its largest message. */
static void trim(br_buf *b)
{
    b->len = 0;
    if (b->cap > GW_WS_MSG_KEEP) {
        size_t max = b->max;
        br_buf_free(b);
        b->max = max;
    }
}

void gw_ws_mask(uint8_t *p, size_t n, const uint8_t mask[4], uint64_t offset)
{
    size_t k = (size_t)(offset & 3);
    for (size_t i = 0; i < n; i++, k = (k + 1) & 3)
        p[i] ^= mask[k];
}

size_t gw_ws_frame_header(uint8_t out[GW_WS_MAX_HEADER], bool fin, uint8_t opcode, uint64_t len,
                          const uint8_t *mask)
{
    size_t n = 2;
    out[0] = (uint8_t)((fin ? 0x80 : 0) | (opcode & 0x0f));
    uint8_t m = mask ? 0x80 : 0;
    if (len < 126) {
        out[1] = (uint8_t)(m | len);
    } else if (len <= 0xffff) {
        out[1] = m | 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        n = 4;
    } else {
        out[1] = m | 127;
        for (int i = 0; i < 8; i++)
            out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
        n = 10;
    }
    if (mask) {
        memcpy(out + n, mask, 4);
        n += 4;
    }
    return n;
}

bool gw_ws_close_code_valid(uint32_t code)
{
    if (code >= 3000 && code <= 4999)
        return true;
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014);
}

size_t gw_ws_close_payload(uint8_t out[GW_WS_MAX_CONTROL], uint16_t code, const char *reason,
                           size_t reason_len)
{
    out[0] = (uint8_t)(code >> 8);
    out[1] = (uint8_t)code;
    size_t n = reason_len;
    if (n > GW_WS_MAX_CONTROL - 2) {
        /* Cut at a code point boundary so the reason stays UTF-8. */
        n = GW_WS_MAX_CONTROL - 2;
        while (n > 0 && ((uint8_t)reason[n] & 0xc0) == 0x80)
            n--;
    }
    if (n)
        memcpy(out + 2, reason, n);
    return 2 + n;
}

static gw_ws_event_kind fail(gw_ws_parser *p, gw_ws_event *ev, uint16_t code, const char *why)
{
    p->done = true;
    ev->kind = GW_WS_EV_ERROR;
    ev->code = code;
    ev->why = why;
    ev->data = NULL;
    ev->len = 0;
    return GW_WS_EV_ERROR;
}

/* Bytes of header needed given what is read so far (2 until the length byte is in). */
static size_t header_need(const gw_ws_parser *p)
{
    if (p->head_len < 2)
        return 2;
    size_t n = 2;
    uint8_t l = p->head[1] & 0x7f;
    if (l == 126)
        n += 2;
    else if (l == 127)
        n += 8;
    if (p->head[1] & 0x80)
        n += 4;
    return n;
}

/* The header is complete: checks it against the rules and the limits. */
static gw_ws_event_kind header_done(gw_ws_parser *p, gw_ws_event *ev)
{
    uint8_t b0 = p->head[0], b1 = p->head[1];
    p->fin = (b0 & 0x80) != 0;
    p->opcode = b0 & 0x0f;
    /* RSV1 is permessage-deflate's, on a message's first frame only (RFC 7692, 6.1). */
    bool rsv1 = p->lim.deflate && (b0 & 0x70) == GW_WS_RSV1 &&
                (p->opcode == GW_WS_OP_TEXT || p->opcode == GW_WS_OP_BINARY);
    if ((b0 & 0x70) && !rsv1)
        return fail(p, ev, GW_WS_CLOSE_PROTOCOL, "reserved bits set without an extension");
    bool masked = (b1 & 0x80) != 0;
    if (!masked && p->lim.require_mask)
        return fail(p, ev, GW_WS_CLOSE_PROTOCOL, "unmasked client frame");
    uint64_t len = b1 & 0x7f;
    size_t at = 2;
    if (len == 126) {
        len = ((uint64_t)p->head[2] << 8) | p->head[3];
        at = 4;
        if (len < 126)
            return fail(p, ev, GW_WS_CLOSE_PROTOCOL, "length not in its shortest form");
    } else if (len == 127) {
        len = 0;
        for (int i = 0; i < 8; i++)
            len = (len << 8) | p->head[2 + i];
        at = 10;
        if (len >> 63)
            return fail(p, ev, GW_WS_CLOSE_PROTOCOL, "length with its top bit set");
        if (len <= 0xffff)
            return fail(p, ev, GW_WS_CLOSE_PROTOCOL, "length not in its shortest form");
    }
    if (masked)
        memcpy(p->mask, p->head + at, 4);
    else
        memset(p->mask, 0, 4);
    p->frame_len = len;
    p->frame_got = 0;

    switch (p->opcode) {
    case GW_WS_OP_CLOSE:
    case GW_WS_OP_PING:
    case GW_WS_OP_PONG:
        if (!p->fin)
            return fail(p, ev, GW_WS_CLOSE_PROTOCOL, "fragmented control frame");
        if (len > GW_WS_MAX_CONTROL)
            return fail(p, ev, GW_WS_CLOSE_PROTOCOL, "control frame over 125 bytes");
        if (len && !p->ctl && !(p->ctl = malloc(GW_WS_MAX_CONTROL)))
            return fail(p, ev, GW_WS_CLOSE_TOO_BIG, "control frame buffer could not be had");
        break;
    case GW_WS_OP_TEXT:
    case GW_WS_OP_BINARY:
        if (p->msg_op)
            return fail(p, ev, GW_WS_CLOSE_PROTOCOL, "new message inside a fragmented one");
        p->msg_op = p->opcode;
        p->msg_deflated = rsv1;
        trim(&p->msg);
        trim(&p->plain);
        p->utf8_ok = 0;
        break;
    case GW_WS_OP_CONT:
        if (!p->msg_op)
            return fail(p, ev, GW_WS_CLOSE_PROTOCOL, "continuation without a message");
        break;
    default:
        return fail(p, ev, GW_WS_CLOSE_PROTOCOL, "unknown opcode");
    }
    if (p->opcode < GW_WS_OP_CLOSE) {
        if (len > p->lim.max_frame)
            return fail(p, ev, GW_WS_CLOSE_TOO_BIG, "frame over the frame size limit");
        if (len > p->lim.max_message - p->msg.len)
            return fail(p, ev, GW_WS_CLOSE_TOO_BIG, "message over the message size limit");
    }
    p->in_frame = true;
    return GW_WS_EV_NONE;
}

/* A data frame's payload bytes arrived: unmask them into the message and check UTF-8. */
static gw_ws_event_kind data_bytes(gw_ws_parser *p, const uint8_t *data, size_t n, gw_ws_event *ev)
{
    size_t at = p->msg.len;
    if (br_buf_append(&p->msg, data, n) != 0)
        return fail(p, ev, GW_WS_CLOSE_TOO_BIG, "message buffer could not grow");
    gw_ws_mask(p->msg.data + at, n, p->mask, p->frame_got);
    if (p->msg_op == GW_WS_OP_TEXT && !p->msg_deflated) {
        size_t complete;
        if (!gw_utf8_valid_prefix(p->msg.data + p->utf8_ok, p->msg.len - p->utf8_ok, &complete))
            return fail(p, ev, GW_WS_CLOSE_BAD_DATA, "text that is not UTF-8");
        p->utf8_ok += complete;
    }
    return GW_WS_EV_NONE;
}

/* The message's last frame is read: checks it (inflating it into p->plain first when
 * compressed) and hands it out. */
static gw_ws_event_kind message_done(gw_ws_parser *p, gw_ws_event *ev)
{
    const br_buf *m = &p->msg;
    bool text = p->msg_op == GW_WS_OP_TEXT;
    if (p->msg_deflated) {
        p->plain.len = 0;
        int rc = gw_ws_inflate(p->msg.data, p->msg.len, &p->plain);
        if (rc == BR_EVALUE)
            return fail(p, ev, GW_WS_CLOSE_BAD_DATA, "compressed data that does not inflate");
        if (rc != 0)
            return fail(p, ev, GW_WS_CLOSE_TOO_BIG, "message inflates over the message size limit");
        if (text && !gw_utf8_valid((const char *)p->plain.data, p->plain.len))
            return fail(p, ev, GW_WS_CLOSE_BAD_DATA, "text that is not UTF-8");
        m = &p->plain;
    } else if (text && p->utf8_ok != p->msg.len) {
        return fail(p, ev, GW_WS_CLOSE_BAD_DATA, "text ends inside a UTF-8 sequence");
    }
    ev->kind = GW_WS_EV_MESSAGE;
    ev->text = text;
    ev->data = m->data;
    ev->len = m->len;
    p->msg_op = 0;
    return GW_WS_EV_MESSAGE;
}

/* A whole frame is read: completes a message or a control frame. */
static gw_ws_event_kind frame_done(gw_ws_parser *p, gw_ws_event *ev)
{
    p->in_frame = false;
    p->head_len = 0;
    memset(ev, 0, sizeof(*ev));
    if (p->opcode < GW_WS_OP_CLOSE) {
        return p->fin ? message_done(p, ev) : GW_WS_EV_NONE;
    }
    size_t n = (size_t)p->frame_len;
    if (n) /* p->ctl exists whenever n > 0 (header_done) */
        gw_ws_mask(p->ctl, n, p->mask, 0);
    const uint8_t *ctl = n ? p->ctl : (const uint8_t *)"";
    if (p->opcode == GW_WS_OP_PING || p->opcode == GW_WS_OP_PONG) {
        ev->kind = p->opcode == GW_WS_OP_PING ? GW_WS_EV_PING : GW_WS_EV_PONG;
        ev->data = ctl;
        ev->len = n;
        return ev->kind;
    }
    /* Close: no payload, or a valid code and a UTF-8 reason. */
    if (n == 1)
        return fail(p, ev, GW_WS_CLOSE_PROTOCOL, "close frame of one byte");
    ev->code = GW_WS_CLOSE_NO_STATUS;
    if (n >= 2) {
        uint16_t code = (uint16_t)((ctl[0] << 8) | ctl[1]);
        if (!gw_ws_close_code_valid(code))
            return fail(p, ev, GW_WS_CLOSE_PROTOCOL, "close code not allowed on the wire");
        if (!gw_utf8_valid((const char *)ctl + 2, n - 2))
            return fail(p, ev, GW_WS_CLOSE_BAD_DATA, "close reason that is not UTF-8");
        ev->code = code;
        ev->data = ctl + 2;
        ev->len = n - 2;
    }
    p->done = true;
    ev->kind = GW_WS_EV_CLOSE;
    return GW_WS_EV_CLOSE;
}

gw_ws_event_kind gw_ws_parser_feed(gw_ws_parser *p, const uint8_t *data, size_t len, size_t *used,
                                   gw_ws_event *ev)
{
    size_t i = 0;
    memset(ev, 0, sizeof(*ev));
    while (i < len && !p->done) {
        if (!p->in_frame) {
            size_t need = header_need(p);
            while (p->head_len < need && i < len) {
                p->head[p->head_len++] = data[i++];
                need = header_need(p);
            }
            if (p->head_len < need)
                break;
            if (header_done(p, ev) == GW_WS_EV_ERROR)
                break;
            if (p->frame_len > 0)
                continue;
        } else {
            uint64_t left = p->frame_len - p->frame_got;
            size_t n = len - i < left ? len - i : (size_t)left;
            if (p->opcode >= GW_WS_OP_CLOSE)
                memcpy(p->ctl + p->frame_got, data + i, n);
            else if (data_bytes(p, data + i, n, ev) == GW_WS_EV_ERROR)
                break;
            p->frame_got += n;
            i += n;
            if (p->frame_got < p->frame_len)
                continue;
        }
        if (frame_done(p, ev) != GW_WS_EV_NONE)
            break;
    }
    *used = i;
    return ev->kind;
}
