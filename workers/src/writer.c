/*
 * writer.c - structured values as msgpack, call by call (barista/writer.h).
 *
 * Containers are written with a 5-byte header (map32 / array32) whose count is filled
 * in when they close; a small container (at most 15 entries, a few KiB) is then
 * compacted to the one-byte fixmap / fixarray form, so a typical reply is byte for
 * byte what a packer given the counts up front would write.  Compaction moves the
 * container's bytes, so it is limited to small ones: the cost stays linear.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "barista/mpread.h"
#include "barista/worker.h"
#include "writer_int.h"

/* Containers whose content is at most this many bytes are compacted when they close. */
#define COMPACT_MAX_BYTES 4096
/* The header a container is opened with: type byte and a 32-bit count. */
#define HEADER_BYTES 5

void br__writer_init(br_writer *w, br_buf *buf)
{
    w->buf = buf;
    w->buf->len = 0;
    w->err = 0;
    w->depth = 0;
    w->done = false;
}

br_writer *br_writer_new(size_t max)
{
    br_writer *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->own.max = max ? max : BR_REPLY_BODY_MAX;
    br__writer_init(w, &w->own);
    return w;
}

void br_writer_destroy(br_writer **self_p)
{
    if (!self_p || !*self_p)
        return;
    br_buf_free(&(*self_p)->own);
    free(*self_p);
    *self_p = NULL;
}

void br_writer_reset(br_writer *w)
{
    br__writer_init(w, w->buf);
}

int br_writer_error(const br_writer *w)
{
    if (w->err)
        return w->err;
    return w->depth || !w->done ? BR_EINVAL : 0;
}

br_str br_writer_bytes(const br_writer *w)
{
    br_str s = {"", 0};
    if (br_writer_error(w) == 0) {
        s.ptr = (const char *)w->buf->data;
        s.len = (uint32_t)w->buf->len;
    }
    return s;
}

/* ---------------------------------------------------------------------------------- */
/* Bytes.                                                                              */

static void fail(br_writer *w, int err)
{
    if (!w->err)
        w->err = err;
}

static void put(br_writer *w, const void *p, size_t n)
{
    if (w->err)
        return;
    int rc = br_buf_append(w->buf, p, n);
    if (rc != 0)
        fail(w, rc);
}

/* A type byte followed by `width` big-endian bytes of v. */
static void put_be(br_writer *w, uint8_t type, uint64_t v, unsigned width)
{
    uint8_t b[9];
    b[0] = type;
    for (unsigned i = 0; i < width; i++)
        b[1 + i] = (uint8_t)(v >> (8 * (width - 1 - i)));
    put(w, b, 1 + width);
}

/* ---------------------------------------------------------------------------------- */
/* Structure: where a value may go.                                                    */

/* Accounts for one value about to be written; false (and an error) when no value may
 * go here. */
static bool value_slot(br_writer *w)
{
    if (w->err)
        return false;
    if (w->depth == 0) {
        if (w->done) {
            fail(w, BR_EINVAL); /* one root value only */
            return false;
        }
        w->done = true;
        return true;
    }
    br__wframe *f = &w->stack[w->depth - 1];
    if (f->obj) {
        if (!f->key_due) {
            fail(w, BR_EINVAL); /* a value where a key is due */
            return false;
        }
        f->key_due = false;
    }
    f->count++;
    return true;
}

static void open_container(br_writer *w, bool obj)
{
    if (!value_slot(w))
        return;
    if (w->depth == BR_WRITER_MAX_DEPTH) {
        fail(w, BR_ELIMIT);
        return;
    }
    br__wframe *f = &w->stack[w->depth];
    f->off = (uint32_t)w->buf->len;
    f->count = 0;
    f->obj = obj;
    f->key_due = false;
    put_be(w, obj ? 0xdf : 0xdd, 0, 4);
    if (!w->err)
        w->depth++;
}

void br_w_obj(br_writer *w)
{
    if (!w)
        return;
    open_container(w, true);
}

void br_w_arr(br_writer *w)
{
    if (!w)
        return;
    open_container(w, false);
}

void br_w_end(br_writer *w)
{
    if (!w)
        return;
    if (w->err)
        return;
    if (w->depth == 0 || (w->stack[w->depth - 1].obj && w->stack[w->depth - 1].key_due)) {
        fail(w, BR_EINVAL); /* nothing open, or a key without its value */
        return;
    }
    br__wframe *f = &w->stack[--w->depth];
    uint8_t *h = w->buf->data + f->off;
    size_t content = w->buf->len - f->off - HEADER_BYTES;
    if (f->count <= 15 && content <= COMPACT_MAX_BYTES) {
        h[0] = (uint8_t)((f->obj ? 0x80 : 0x90) | f->count);
        memmove(h + 1, h + HEADER_BYTES, content);
        w->buf->len -= HEADER_BYTES - 1;
        return;
    }
    for (unsigned i = 0; i < 4; i++)
        h[1 + i] = (uint8_t)(f->count >> (8 * (3 - i)));
}

/* A string header and its bytes (also used for keys). */
static void put_str(br_writer *w, const char *p, size_t n)
{
    if (n > UINT32_MAX) {
        fail(w, BR_ELIMIT);
        return;
    }
    if (n <= 31) {
        uint8_t b = (uint8_t)(0xa0 | n);
        put(w, &b, 1);
    } else if (n <= UINT8_MAX) {
        put_be(w, 0xd9, n, 1);
    } else if (n <= UINT16_MAX) {
        put_be(w, 0xda, n, 2);
    } else {
        put_be(w, 0xdb, n, 4);
    }
    if (n)
        put(w, p, n);
}

void br_w_key(br_writer *w, const char *key)
{
    if (!w)
        return;
    if (w->err)
        return;
    br__wframe *f = w->depth ? &w->stack[w->depth - 1] : NULL;
    if (!f || !f->obj || f->key_due || !key) {
        fail(w, BR_EINVAL); /* a key outside an object, or twice in a row */
        return;
    }
    f->key_due = true;
    put_str(w, key, strlen(key));
}

/* ---------------------------------------------------------------------------------- */
/* Scalars.                                                                            */

void br_w_null(br_writer *w)
{
    if (!w)
        return;
    static const uint8_t nil = 0xc0;
    if (value_slot(w))
        put(w, &nil, 1);
}

void br_w_bool(br_writer *w, bool v)
{
    if (!w)
        return;
    uint8_t b = v ? 0xc3 : 0xc2;
    if (value_slot(w))
        put(w, &b, 1);
}

static void put_uint(br_writer *w, uint64_t v)
{
    if (v <= 0x7f) {
        uint8_t b = (uint8_t)v;
        put(w, &b, 1);
    } else if (v <= UINT8_MAX) {
        put_be(w, 0xcc, v, 1);
    } else if (v <= UINT16_MAX) {
        put_be(w, 0xcd, v, 2);
    } else if (v <= UINT32_MAX) {
        put_be(w, 0xce, v, 4);
    } else {
        put_be(w, 0xcf, v, 8);
    }
}

void br_w_uint(br_writer *w, uint64_t v)
{
    if (!w)
        return;
    if (value_slot(w))
        put_uint(w, v);
}

void br_w_int(br_writer *w, int64_t v)
{
    if (!w)
        return;
    if (!value_slot(w))
        return;
    if (v >= 0) {
        put_uint(w, (uint64_t)v);
    } else if (v >= -32) {
        uint8_t b = (uint8_t)(int8_t)v;
        put(w, &b, 1);
    } else if (v >= INT8_MIN) {
        put_be(w, 0xd0, (uint64_t)v, 1);
    } else if (v >= INT16_MIN) {
        put_be(w, 0xd1, (uint64_t)v, 2);
    } else if (v >= INT32_MIN) {
        put_be(w, 0xd2, (uint64_t)v, 4);
    } else {
        put_be(w, 0xd3, (uint64_t)v, 8);
    }
}

void br_w_float(br_writer *w, double v)
{
    if (!w)
        return;
    uint64_t bits;
    memcpy(&bits, &v, sizeof(bits));
    if (value_slot(w))
        put_be(w, 0xcb, bits, 8);
}

void br_w_str(br_writer *w, br_str s)
{
    if (!w)
        return;
    if (value_slot(w))
        put_str(w, s.ptr, s.len);
}

void br_w_cstr(br_writer *w, const char *s)
{
    if (!w)
        return;
    if (!s) {
        br_w_null(w);
        return;
    }
    if (value_slot(w))
        put_str(w, s, strlen(s));
}

void br_w_strf(br_writer *w, const char *fmt, ...)
{
    if (!w)
        return;
    char text[BR_WRITER_STRF_MAX + 1];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    if (n < 0 || n > BR_WRITER_STRF_MAX) {
        fail(w, BR_ELIMIT);
        return;
    }
    if (value_slot(w))
        put_str(w, text, (size_t)n);
}

void br_w_msgpack(br_writer *w, br_str mp)
{
    if (!w)
        return;
    if (w->err)
        return;
    br_cursor c;
    br_cursor_init(&c, mp.ptr, mp.len);
    if (mp.len == 0 || br_cursor_skip(&c, BR_CURSOR_MAX_DEPTH) != 0 || br_cursor_left(&c) != 0) {
        fail(w, BR_EINVAL);
        return;
    }
    if (value_slot(w))
        put(w, mp.ptr, mp.len);
}

/* ---------------------------------------------------------------------------------- */
/* Keys with their values.                                                             */

void br_w_key_null(br_writer *w, const char *key)
{
    br_w_key(w, key);
    br_w_null(w);
}

void br_w_key_bool(br_writer *w, const char *key, bool v)
{
    br_w_key(w, key);
    br_w_bool(w, v);
}

void br_w_key_int(br_writer *w, const char *key, int64_t v)
{
    br_w_key(w, key);
    br_w_int(w, v);
}

void br_w_key_float(br_writer *w, const char *key, double v)
{
    br_w_key(w, key);
    br_w_float(w, v);
}

void br_w_key_str(br_writer *w, const char *key, br_str s)
{
    br_w_key(w, key);
    br_w_str(w, s);
}

void br_w_key_cstr(br_writer *w, const char *key, const char *s)
{
    br_w_key(w, key);
    br_w_cstr(w, s);
}

/* ---------------------------------------------------------------------------------- */
/* Formats.                                                                            */

/* True when the next thing written is a key of the innermost object. */
static bool key_due(const br_writer *w)
{
    return w->depth && w->stack[w->depth - 1].obj && !w->stack[w->depth - 1].key_due;
}

void br_w_vpack(br_writer *w, const char *fmt, va_list ap)
{
    for (const char *p = fmt; w && !w->err && *p; p++) {
        switch (*p) {
        case ' ':
        case '\t':
        case ':':
        case ',':
            break;
        case '{':
            br_w_obj(w);
            break;
        case '[':
            br_w_arr(w);
            break;
        case '}':
        case ']':
            if (!w->depth || w->stack[w->depth - 1].obj != (*p == '}'))
                fail(w, BR_EINVAL);
            br_w_end(w);
            break;
        case 's': {
            const char *v = va_arg(ap, const char *);
            if (key_due(w))
                br_w_key(w, v);
            else
                br_w_cstr(w, v);
            break;
        }
        case 'S': {
            br_str v = va_arg(ap, br_str);
            if (key_due(w)) {
                br__wframe *f = &w->stack[w->depth - 1];
                f->key_due = true;
                put_str(w, v.ptr, v.len);
            } else {
                br_w_str(w, v);
            }
            break;
        }
        case 'm':
            br_w_msgpack(w, va_arg(ap, br_str));
            break;
        case 'i':
            br_w_int(w, va_arg(ap, int));
            break;
        case 'I':
            br_w_int(w, va_arg(ap, int64_t));
            break;
        case 'f':
            br_w_float(w, va_arg(ap, double));
            break;
        case 'b':
            br_w_bool(w, va_arg(ap, int) != 0);
            break;
        case 'n':
            br_w_null(w);
            break;
        default:
            fail(w, BR_EINVAL);
            break;
        }
    }
}

void br_w_pack(br_writer *w, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    br_w_vpack(w, fmt, ap);
    va_end(ap);
}
