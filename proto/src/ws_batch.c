/*
 * ws_batch.c - several WebSocket messages in one frame (see barista/ws_batch.h).
 */
#include <string.h>

#include "barista/mpread.h"
#include "barista/ws_batch.h"
#include "internal.h"

int br_ws_batch_add(br_ws_batch *b, const br_msg *msg, unsigned version)
{
    if (b->buf.len == 0) {
        int rc = br_buf_reserve(&b->buf, BR_WS_BATCH_HEAD);
        if (rc != 0)
            return rc;
        b->buf.len = BR_WS_BATCH_HEAD;
    }
    int rc = br_msg_encode_version(msg, version, &b->buf);
    if (rc == 0)
        b->count++;
    return rc;
}

size_t br_ws_batch_bytes(const br_ws_batch *b)
{
    return b->buf.len > BR_WS_BATCH_HEAD ? b->buf.len - BR_WS_BATCH_HEAD : 0;
}

br_str br_ws_batch_frame(br_ws_batch *b, unsigned version)
{
    size_t n = br_ws_batch_bytes(b);
    if (b->count == 0 || n == 0)
        return (br_str){NULL, 0};
    if (b->count == 1)
        return (br_str){(const char *)b->buf.data + BR_WS_BATCH_HEAD, n};
    /* [version, WS_BATCH, bin 32 of the messages]: always the 32-bit length, so that
     * the header has one size and fits the room kept for it. */
    uint8_t *h = b->buf.data;
    h[0] = 0x93;
    h[1] = (uint8_t)version;
    h[2] = BR_MSG_WS_BATCH;
    h[3] = 0xc6;
    h[4] = (uint8_t)(n >> 24);
    h[5] = (uint8_t)(n >> 16);
    h[6] = (uint8_t)(n >> 8);
    h[7] = (uint8_t)n;
    return (br_str){(const char *)h, b->buf.len};
}

void br_ws_batch_clear(br_ws_batch *b)
{
    b->buf.len = 0;
    b->count = 0;
}

void br_ws_batch_free(br_ws_batch *b)
{
    br_buf_free(&b->buf);
    b->count = 0;
}

int br_ws_batch_next(br_str *rest, br_str *msg)
{
    if (rest->len == 0)
        return 0;
    br_cursor c;
    br_cursor_init(&c, rest->ptr, rest->len);
    int rc = br__cursor_skip_n(&c, 1);
    if (rc != 0)
        return rc;
    size_t used = rest->len - br_cursor_left(&c);
    *msg = (br_str){rest->ptr, used};
    rest->ptr += used;
    rest->len -= used;
    return 1;
}

int br_ws_batch_each(br_decoder *dec, br_str messages,
                     int (*fn)(void *arg, const br_msg *m, br_str bytes), void *arg)
{
    br_str one;
    int rc;
    while ((rc = br_ws_batch_next(&messages, &one)) == 1) {
        br_msg m;
        rc = br_decoder_decode(dec, one.ptr, one.len, &m);
        if (rc == 0 && !br_ws_batch_carries(m.type))
            rc = BR_EMSGTYPE;
        if (rc == 0)
            rc = fn(arg, &m, one);
        if (rc != 0)
            return rc;
    }
    return rc;
}

bool br_ws_batch_carries(unsigned type)
{
    return type == BR_MSG_WS_MESSAGE || type == BR_MSG_WS_CLOSE || type == BR_MSG_WS_CREDIT ||
           type == BR_MSG_WS_GROUP || type == BR_MSG_REQUEST || type == BR_MSG_REPLY;
}

bool br__ws_batch_ok(br_str messages)
{
    if (messages.len == 0 || !messages.ptr)
        return false;
    /* The first message only: a bad one later cuts the batch there (PROTOCOL.md 5.16),
     * which its receiver finds as it goes, without a second walk over the bytes. */
    br_str one;
    unsigned t;
    return br_ws_batch_next(&messages, &one) == 1 && br_msg_peek(one.ptr, one.len, NULL, &t) == 0 &&
           br_ws_batch_carries(t);
}
