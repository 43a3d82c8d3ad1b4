/*
 * buf.c - br_buf, the growable output buffer: grows geometrically, never past its maximum.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* The first allocation: enough for a typical REQUEST or REPLY envelope, so the usual
 * message costs one malloc on a fresh buffer and none on a reused one. */
#define BR_BUF_INITIAL 512

void br_buf_free(br_buf *buf)
{
    if (!buf)
        return;
    free(buf->data);
    memset(buf, 0, sizeof *buf);
}

int br_buf_reserve(br_buf *buf, size_t n)
{
    size_t max = buf->max ? buf->max : br_limits_default.max_message;
    if (n > max || buf->len > max - n)
        return BR_ELIMIT;
    size_t need = buf->len + n;
    if (need <= buf->cap)
        return 0;
    size_t cap = buf->cap ? buf->cap : BR_BUF_INITIAL;
    while (cap < need)
        cap = cap > max / 2 ? max : cap * 2;
    if (cap > max)
        cap = max;
    uint8_t *grown = realloc(buf->data, cap);
    if (!grown)
        return BR_ENOMEM;
    buf->data = grown;
    buf->cap = cap;
    return 0;
}

int br_buf_append(br_buf *buf, const void *data, size_t n)
{
    int rc = br_buf_reserve(buf, n);
    if (rc == 0 && n > 0) {
        memcpy(buf->data + buf->len, data, n);
        buf->len += n;
    }
    return rc;
}
