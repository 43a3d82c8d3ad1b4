/*
 * fuzz_ws.c - the WebSocket frame parser (gateway/src/ws/ws_frame.c) under arbitrary
 * client bytes.
 *
 * Input layout: byte 0 bit 0 chooses how the rest is read - 0: as raw bytes from the
 * client; 1: as frame descriptions, each [b0, len, len bytes of payload] where b0 is
 * the frame's first header byte (FIN, RSV, opcode) and the target writes the header
 * and masks the payload, so inputs reach fragmentation, control frames between
 * fragments and UTF-8 across fragments instead of stopping at the mask rule.  Byte 0
 * bit 1 negotiates permessage-deflate: RSV1 then marks compressed messages, which the
 * parser inflates; in mode 1 a FIN data frame with RSV1 has its payload compressed by
 * the target first (ws_deflate.h), so valid DEFLATE streams are inflated too, not
 * only random bytes.  Byte 1 seeds the sizes of the reads the stream is cut into.
 *
 * Checked: the events are the same whether the stream arrives in one read or in
 * pieces; a text message is valid UTF-8; no message passes the message limit and no
 * control payload passes 125 bytes; after CLOSE or ERROR nothing more is consumed; an
 * error's code is 1002, 1007 or 1009; every message, framed again (masked, cut into
 * fragments), parses back to the same message.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "barista/proto.h"
#include "fuzz.h"
#include "utf8.h"
#include "ws_deflate.h"
#include "ws_frame.h"

#define FZ_MAX_FRAME   512
#define FZ_MAX_MESSAGE 1024

static const uint8_t fz_mask[4] = {0xa5, 0x01, 0x7e, 0xc3};

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_ws: %s\n", what);
    abort();
}

static bool fz_deflate; /* this input negotiated permessage-deflate */

static gw_ws_limits fz_limits(void)
{
    gw_ws_limits lim = {.max_frame = FZ_MAX_FRAME,
                        .max_message = FZ_MAX_MESSAGE,
                        .require_mask = true,
                        .deflate = fz_deflate};
    return lim;
}

/* Appends one event to a log so that two runs can be compared byte for byte. */
static void log_event(br_buf *log, const gw_ws_event *ev)
{
    uint8_t rec[8] = {(uint8_t)ev->kind,        ev->text,
                      (uint8_t)(ev->code >> 8), (uint8_t)ev->code,
                      (uint8_t)(ev->len >> 24), (uint8_t)(ev->len >> 16),
                      (uint8_t)(ev->len >> 8),  (uint8_t)ev->len};
    if (br_buf_append(log, rec, sizeof(rec)) != 0 ||
        (ev->len && br_buf_append(log, ev->data, ev->len) != 0))
        fail("out of memory");
}

static void check_event(const gw_ws_event *ev)
{
    switch (ev->kind) {
    case GW_WS_EV_MESSAGE:
        if (ev->len > FZ_MAX_MESSAGE)
            fail("message over the limit");
        if (ev->text && !gw_utf8_valid((const char *)ev->data, ev->len))
            fail("text message that is not UTF-8");
        break;
    case GW_WS_EV_PING:
    case GW_WS_EV_PONG:
        if (ev->len > GW_WS_MAX_CONTROL)
            fail("control payload over 125 bytes");
        break;
    case GW_WS_EV_CLOSE:
        if (ev->code != GW_WS_CLOSE_NO_STATUS && !gw_ws_close_code_valid(ev->code))
            fail("close with a code not allowed");
        if (!gw_utf8_valid((const char *)ev->data, ev->len))
            fail("close reason that is not UTF-8");
        break;
    case GW_WS_EV_ERROR:
        if (ev->code != GW_WS_CLOSE_PROTOCOL && ev->code != GW_WS_CLOSE_BAD_DATA &&
            ev->code != GW_WS_CLOSE_TOO_BIG)
            fail("error with an unexpected close code");
        break;
    default:
        break;
    }
}

/* Parses stream[0..n) in reads of the sizes `seed` picks (0: one read), logging events;
 * every message also goes to `msgs` when it is not NULL. */
static void run(const uint8_t *stream, size_t n, unsigned seed, br_buf *log)
{
    gw_ws_limits lim = fz_limits();
    gw_ws_parser p;
    gw_ws_parser_init(&p, &lim);
    size_t at = 0;
    bool over = false;
    unsigned s = seed;
    while (at < n) {
        size_t piece = n - at;
        if (seed) {
            s = s * 1103515245u + 12345u;
            piece = 1 + (s >> 16) % 64;
            if (piece > n - at)
                piece = n - at;
        }
        size_t off = 0;
        while (off < piece) {
            gw_ws_event ev;
            size_t used;
            gw_ws_event_kind kind =
                gw_ws_parser_feed(&p, stream + at + off, piece - off, &used, &ev);
            if (over && used)
                fail("bytes consumed after a close or an error");
            off += used;
            if (kind != GW_WS_EV_NONE) {
                check_event(&ev);
                log_event(log, &ev);
                if (kind == GW_WS_EV_MESSAGE) {
                    /* Framed again, masked, in fragments of 100: the same message. */
                    static uint8_t again[FZ_MAX_MESSAGE * 2 + 256];
                    size_t an = 0, left = ev.len, done = 0;
                    do {
                        size_t fl = left > 100 ? 100 : left;
                        uint8_t op =
                            done == 0 ? (ev.text ? GW_WS_OP_TEXT : GW_WS_OP_BINARY) : GW_WS_OP_CONT;
                        an += gw_ws_frame_header(again + an, fl == left, op, fl, fz_mask);
                        memcpy(again + an, ev.data + done, fl);
                        gw_ws_mask(again + an, fl, fz_mask, 0);
                        an += fl;
                        done += fl;
                        left -= fl;
                    } while (left);
                    gw_ws_parser q;
                    gw_ws_parser_init(&q, &lim);
                    gw_ws_event ev2;
                    size_t used2;
                    if (gw_ws_parser_feed(&q, again, an, &used2, &ev2) != GW_WS_EV_MESSAGE ||
                        used2 != an || ev2.len != ev.len || ev2.text != ev.text ||
                        (ev.len && memcmp(ev2.data, ev.data, ev.len) != 0))
                        fail("a message framed again does not parse back");
                    gw_ws_parser_reset(&q);
                }
                if (kind == GW_WS_EV_CLOSE || kind == GW_WS_EV_ERROR)
                    over = true;
            } else if (off < piece) {
                if (!over)
                    fail("input left over without an event");
                break;
            }
        }
        at += piece;
    }
    gw_ws_parser_reset(&p);
}

/* Mode 1: frame descriptions to a masked byte stream (out has room for 4 * n + 16). */
static size_t build_frames(const uint8_t *in, size_t n, uint8_t *out, gw_ws_deflater *d)
{
    size_t i = 0, o = 0;
    br_buf z = {0};
    while (i + 2 <= n) {
        uint8_t b0 = in[i], len = in[i + 1];
        i += 2;
        if (len > n - i)
            len = (uint8_t)(n - i);
        const uint8_t *pl = in + i;
        size_t pn = len;
        uint8_t op = b0 & 0x0f;
        z.len = 0;
        z.max = len;
        /* Compressed only when that makes it smaller, so the stream never outgrows out. */
        if (d && (b0 & 0xf0) == (0x80 | GW_WS_RSV1) &&
            (op == GW_WS_OP_TEXT || op == GW_WS_OP_BINARY) && gw_ws_deflate(d, pl, len, &z) == 0) {
            pl = z.data;
            pn = z.len;
        }
        uint8_t h[GW_WS_MAX_HEADER];
        size_t hl = gw_ws_frame_header(h, (b0 & 0x80) != 0, op, pn, fz_mask);
        h[0] = b0; /* RSV bits as given */
        memcpy(out + o, h, hl);
        o += hl;
        memcpy(out + o, pl, pn);
        gw_ws_mask(out + o, pn, fz_mask, 0);
        o += pn;
        i += len;
    }
    br_buf_free(&z);
    return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    const uint8_t *stream = data + 2;
    size_t n = size - 2;
    uint8_t *built = NULL;
    fz_deflate = (data[0] & 2) != 0;
    if (data[0] & 1) {
        /* Each description of 2 bytes becomes at most 6 bytes of header. */
        built = malloc(n * 4 + 16);
        gw_ws_deflater *d = fz_deflate ? gw_ws_deflater_new(15, 6) : NULL;
        if (!built || (fz_deflate && !d)) {
            free(built);
            gw_ws_deflater_destroy(&d);
            return 0;
        }
        n = build_frames(stream, n, built, d);
        gw_ws_deflater_destroy(&d);
        stream = built;
    }
    br_buf whole = {0}, pieces = {0};
    whole.max = pieces.max = 1u << 26;
    run(stream, n, 0, &whole);
    run(stream, n, data[1] | 1u, &pieces);
    if (whole.len != pieces.len || (whole.len && memcmp(whole.data, pieces.data, whole.len) != 0))
        fail("events differ with the read boundaries");
    br_buf_free(&whole);
    br_buf_free(&pieces);
    free(built);
    return 0;
}
