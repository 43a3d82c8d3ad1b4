/*
 * cursor.c - br_cursor (barista/mpread.h), a bounded, allocation-free reader over the
 * msgpack format: the protocol decoder's reader and everybody else's.
 *
 * Why not msgpack_unpack_next: msgpack-c's unpacker allocates n * sizeof(msgpack_object)
 * for an array that merely declares n entries, before it checks that the bytes exist,
 * so five hostile bytes can ask for gigabytes.  Reading the format directly lets every
 * length and count be checked against the bytes that are really there, costs no
 * allocation at all, and leaves strings pointing into the input.
 */
#include <string.h>

#include "internal.h"

/* Big-endian loads: msgpack stores every multi-byte number in network order. */
static uint16_t load16(const uint8_t *p)
{
    return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static uint32_t load32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t load64(const uint8_t *p)
{
    return (uint64_t)load32(p) << 32 | load32(p + 4);
}

void br_cursor_init(br_cursor *c, const void *ptr, size_t len)
{
    c->p = ptr;
    c->end = len ? c->p + len : c->p; /* no arithmetic on a NULL pointer */
}

size_t br_cursor_left(const br_cursor *c)
{
    return (size_t)(c->end - c->p);
}

br_mp_type br_cursor_peek(const br_cursor *c)
{
    /* The types of the tags 0xc0..0xdf; everything below 0xc0 and above 0xdf is a
     * fixed-size family (fixint, fixmap, fixarray, fixstr, negative fixint). */
    /* clang-format off */
    static const uint8_t tag_type[32] = {
        /* c0 */ BR_MP_NIL,   BR_MP_NONE,  BR_MP_BOOL,  BR_MP_BOOL,
        /* c4 */ BR_MP_BIN,   BR_MP_BIN,   BR_MP_BIN,   BR_MP_EXT,
        /* c8 */ BR_MP_EXT,   BR_MP_EXT,   BR_MP_FLOAT, BR_MP_FLOAT,
        /* cc */ BR_MP_INT,   BR_MP_INT,   BR_MP_INT,   BR_MP_INT,
        /* d0 */ BR_MP_INT,   BR_MP_INT,   BR_MP_INT,   BR_MP_INT,
        /* d4 */ BR_MP_EXT,   BR_MP_EXT,   BR_MP_EXT,   BR_MP_EXT,
        /* d8 */ BR_MP_EXT,   BR_MP_STR,   BR_MP_STR,   BR_MP_STR,
        /* dc */ BR_MP_ARRAY, BR_MP_ARRAY, BR_MP_MAP,   BR_MP_MAP,
    };
    /* clang-format on */
    if (c->p >= c->end)
        return BR_MP_NONE;
    uint8_t b = c->p[0];
    if (b <= 0x7f || b >= 0xe0)
        return BR_MP_INT;
    if (b <= 0x8f)
        return BR_MP_MAP;
    if (b <= 0x9f)
        return BR_MP_ARRAY;
    if (b <= 0xbf)
        return BR_MP_STR;
    return (br_mp_type)tag_type[b - 0xc0];
}

/* Reads the header of an array (fix = 0x90, tag16 = 0xdc) or a map (0x80, 0xde): a
 * fix form holding up to 15 in its low nibble, then the 16- and 32-bit forms. */
static inline int read_count(br_cursor *c, uint32_t *n, uint8_t fix, uint8_t tag16)
{
    size_t left = br_cursor_left(c);
    if (left < 1)
        return BR_ETRUNC;
    uint8_t b = c->p[0];
    if ((b & 0xf0u) == fix) {
        *n = b & 0x0fu;
        c->p += 1;
    } else if (b == tag16) {
        if (left < 3)
            return BR_ETRUNC;
        *n = load16(c->p + 1);
        c->p += 3;
    } else if (b == tag16 + 1) {
        if (left < 5)
            return BR_ETRUNC;
        *n = load32(c->p + 1);
        c->p += 5;
    } else {
        return BR_ETYPE;
    }
    return 0;
}

int br_cursor_array(br_cursor *c, uint32_t *n)
{
    return read_count(c, n, 0x90, 0xdc);
}

int br_cursor_map(br_cursor *c, uint32_t *n)
{
    return read_count(c, n, 0x80, 0xde);
}

/* Reads any msgpack integer as a sign and a magnitude-carrying int64/uint64 pair:
 * *neg tells which of *u (non-negative) or *i (negative) holds the value. */
static int read_int(br_cursor *c, bool *neg, uint64_t *u, int64_t *i)
{
    size_t left = br_cursor_left(c);
    if (left < 1)
        return BR_ETRUNC;
    uint8_t b = c->p[0];
    size_t width;
    *neg = false;
    if (b <= 0x7f) {
        *u = b;
        c->p += 1;
        return 0;
    }
    if (b >= 0xe0) {
        *neg = true;
        *i = (int8_t)b;
        c->p += 1;
        return 0;
    }
    switch (b) {
    case 0xcc:
    case 0xd0:
        width = 1;
        break;
    case 0xcd:
    case 0xd1:
        width = 2;
        break;
    case 0xce:
    case 0xd2:
        width = 4;
        break;
    case 0xcf:
    case 0xd3:
        width = 8;
        break;
    default:
        return BR_ETYPE;
    }
    if (left < 1 + width)
        return BR_ETRUNC;
    const uint8_t *p = c->p + 1;
    uint64_t raw = width == 1 ? p[0] : width == 2 ? load16(p) : width == 4 ? load32(p) : load64(p);
    if (b >= 0xd0) {
        /* Signed: sign-extend from the encoded width. */
        int64_t v = width == 1   ? (int8_t)raw
                    : width == 2 ? (int16_t)raw
                    : width == 4 ? (int32_t)raw
                                 : (int64_t)raw;
        if (v < 0) {
            *neg = true;
            *i = v;
        } else {
            *u = (uint64_t)v;
        }
    } else {
        *u = raw;
    }
    c->p += 1 + width;
    return 0;
}

int br_cursor_uint(br_cursor *c, uint64_t *v)
{
    const uint8_t *start = c->p;
    bool neg;
    int64_t i;
    int rc = read_int(c, &neg, v, &i);
    if (rc == 0 && neg) {
        c->p = start;
        return BR_EVALUE;
    }
    return rc;
}

int br_cursor_int(br_cursor *c, int64_t *v)
{
    const uint8_t *start = c->p;
    bool neg;
    uint64_t u = 0;
    int64_t i = 0;
    int rc = read_int(c, &neg, &u, &i);
    if (rc < 0)
        return rc;
    if (!neg && u > (uint64_t)INT64_MAX) {
        c->p = start;
        return BR_EVALUE;
    }
    *v = neg ? i : (int64_t)u;
    return 0;
}

int br_cursor_double(br_cursor *c, double *v)
{
    size_t left = br_cursor_left(c);
    if (left < 1)
        return BR_ETRUNC;
    uint8_t b = c->p[0];
    if (b == 0xca) {
        if (left < 5)
            return BR_ETRUNC;
        uint32_t bits = load32(c->p + 1);
        float f;
        memcpy(&f, &bits, sizeof f);
        *v = f;
        c->p += 5;
        return 0;
    }
    if (b == 0xcb) {
        if (left < 9)
            return BR_ETRUNC;
        uint64_t bits = load64(c->p + 1);
        memcpy(v, &bits, sizeof *v);
        c->p += 9;
        return 0;
    }
    bool neg;
    uint64_t u = 0;
    int64_t i = 0;
    int rc = read_int(c, &neg, &u, &i);
    if (rc == 0)
        *v = neg ? (double)i : (double)u;
    return rc;
}

int br_cursor_bool(br_cursor *c, bool *v)
{
    if (br_cursor_left(c) < 1)
        return BR_ETRUNC;
    if (c->p[0] != 0xc2 && c->p[0] != 0xc3)
        return BR_ETYPE;
    *v = c->p[0] == 0xc3;
    c->p += 1;
    return 0;
}

int br_cursor_nil(br_cursor *c)
{
    if (br_cursor_left(c) < 1)
        return BR_ETRUNC;
    if (c->p[0] != 0xc0)
        return BR_ETYPE;
    c->p += 1;
    return 0;
}

/* The kinds of raw string read_raw may accept. */
enum { RAW_STR = 1, RAW_BIN = 2 };

/* Reads the header of a str or a bin (as `kinds` allows) and the bytes it declares,
 * checking the length against max before the bytes left. */
static inline int read_raw(br_cursor *c, br_str *s, uint32_t max, unsigned kinds)
{
    size_t left = br_cursor_left(c);
    if (left < 1)
        return BR_ETRUNC;
    uint8_t b = c->p[0];
    size_t hdr;
    uint32_t n;
    if (b >= 0xa0 && b <= 0xbf && (kinds & RAW_STR)) {
        hdr = 1;
        n = b & 0x1fu;
    } else {
        /* str 8/16/32 are 0xd9..0xdb, bin 8/16/32 are 0xc4..0xc6: 1, 2 or 4 length
         * bytes after the tag. */
        unsigned kind;
        if (b >= 0xd9 && b <= 0xdb) {
            kind = RAW_STR;
            hdr = 1u + (1u << (b - 0xd9));
        } else if (b >= 0xc4 && b <= 0xc6) {
            kind = RAW_BIN;
            hdr = 1u + (1u << (b - 0xc4));
        } else {
            return BR_ETYPE;
        }
        if (!(kinds & kind))
            return BR_ETYPE;
        if (left < hdr)
            return BR_ETRUNC;
        n = hdr == 2 ? c->p[1] : hdr == 3 ? load16(c->p + 1) : load32(c->p + 1);
    }
    if (n > max)
        return BR_ELIMIT;
    if (left - hdr < n)
        return BR_ETRUNC;
    s->ptr = (const char *)c->p + hdr;
    s->len = n;
    c->p += hdr + n;
    return 0;
}

int br_cursor_str(br_cursor *c, br_str *s, uint32_t max)
{
    return read_raw(c, s, max, RAW_STR);
}

int br_cursor_bin(br_cursor *c, br_str *s, uint32_t max)
{
    return read_raw(c, s, max, RAW_BIN);
}

int br_cursor_bytes(br_cursor *c, br_str *s, uint32_t max)
{
    return read_raw(c, s, max, RAW_STR | RAW_BIN);
}

/* The size of the value starting at p that is not nested content: *fixed is the bytes
 * of header plus payload, *children the values nested inside it (array elements, map
 * keys and values).  Returns 0, BR_ETRUNC or BR_ETYPE (0xc1, never used). */
static int value_shape(const uint8_t *p, size_t left, uint64_t *fixed, uint64_t *children)
{
    uint8_t b = p[0];
    *children = 0;
    if (b <= 0x7f || b >= 0xe0 || (b >= 0xc0 && b <= 0xc3 && b != 0xc1)) {
        *fixed = 1;
        return 0;
    }
    if (b >= 0x80 && b <= 0x8f) {
        *fixed = 1;
        *children = 2u * (b & 0x0fu);
        return 0;
    }
    if (b >= 0x90 && b <= 0x9f) {
        *fixed = 1;
        *children = b & 0x0fu;
        return 0;
    }
    if (b >= 0xa0 && b <= 0xbf) {
        *fixed = 1u + (b & 0x1fu);
        return 0;
    }
    /* Everything left has a 1-byte tag followed by a length or a fixed payload. */
    static const struct {
        uint8_t lenbytes; /* bytes of big-endian length after the tag, 0 for none */
        uint8_t extra;    /* fixed bytes after the tag (and length), e.g. the ext type */
        uint8_t unit;     /* 0: payload of `length` bytes; 1: `length` children; 2: 2*length */
    } shape[] = {
        [0xc4 - 0xc4] = {1, 0, 0}, [0xc5 - 0xc4] = {2, 0, 0}, [0xc6 - 0xc4] = {4, 0, 0},
        [0xc7 - 0xc4] = {1, 1, 0}, [0xc8 - 0xc4] = {2, 1, 0}, [0xc9 - 0xc4] = {4, 1, 0},
        [0xca - 0xc4] = {0, 4, 0}, [0xcb - 0xc4] = {0, 8, 0}, [0xcc - 0xc4] = {0, 1, 0},
        [0xcd - 0xc4] = {0, 2, 0}, [0xce - 0xc4] = {0, 4, 0}, [0xcf - 0xc4] = {0, 8, 0},
        [0xd0 - 0xc4] = {0, 1, 0}, [0xd1 - 0xc4] = {0, 2, 0}, [0xd2 - 0xc4] = {0, 4, 0},
        [0xd3 - 0xc4] = {0, 8, 0}, [0xd4 - 0xc4] = {0, 2, 0}, [0xd5 - 0xc4] = {0, 3, 0},
        [0xd6 - 0xc4] = {0, 5, 0}, [0xd7 - 0xc4] = {0, 9, 0}, [0xd8 - 0xc4] = {0, 17, 0},
        [0xd9 - 0xc4] = {1, 0, 0}, [0xda - 0xc4] = {2, 0, 0}, [0xdb - 0xc4] = {4, 0, 0},
        [0xdc - 0xc4] = {2, 0, 1}, [0xdd - 0xc4] = {4, 0, 1}, [0xde - 0xc4] = {2, 0, 2},
        [0xdf - 0xc4] = {4, 0, 2},
    };
    if (b == 0xc1)
        return BR_ETYPE;
    unsigned lb = shape[b - 0xc4].lenbytes;
    if (left < 1u + lb)
        return BR_ETRUNC;
    uint64_t len = lb == 0 ? 0 : lb == 1 ? p[1] : lb == 2 ? load16(p + 1) : load32(p + 1);
    *fixed = 1u + lb + shape[b - 0xc4].extra;
    if (shape[b - 0xc4].unit == 0)
        *fixed += len;
    else
        *children = len * shape[b - 0xc4].unit;
    return 0;
}

int br__cursor_skip_n(br_cursor *c, uint64_t n)
{
    const uint8_t *p = c->p;
    uint64_t pending = n;
    while (pending > 0) {
        size_t left = (size_t)(c->end - p);
        /* Every value takes at least one byte: a count beyond the bytes left is a lie. */
        if (pending > left)
            return BR_ETRUNC;
        uint64_t fixed, children;
        int rc = value_shape(p, left, &fixed, &children);
        if (rc < 0)
            return rc;
        if (fixed > left)
            return BR_ETRUNC;
        p += fixed;
        pending = pending - 1 + children;
    }
    c->p = p;
    return 0;
}

/* Skips one value whose containers may nest depth_left more levels.  The recursion is
 * as deep as the nesting, which the caller bounds by BR_CURSOR_MAX_DEPTH.  On failure
 * the cursor is somewhere inside the value; br_cursor_skip puts it back. */
static int skip_value(br_cursor *c, uint32_t depth_left)
{
    size_t left = br_cursor_left(c);
    if (left < 1)
        return BR_ETRUNC;
    uint64_t fixed, children;
    int rc = value_shape(c->p, left, &fixed, &children);
    if (rc < 0)
        return rc;
    if (fixed > left)
        return BR_ETRUNC;
    br_mp_type t = br_cursor_peek(c);
    if ((t == BR_MP_ARRAY || t == BR_MP_MAP) && depth_left == 0)
        return BR_ELIMIT;
    c->p += fixed;
    /* Every value takes at least one byte: a count beyond the bytes left is a lie. */
    if (children > br_cursor_left(c))
        return BR_ETRUNC;
    for (uint64_t i = 0; i < children; i++) {
        rc = skip_value(c, depth_left - 1);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int br_cursor_skip(br_cursor *c, uint32_t max_depth)
{
    const uint8_t *start = c->p;
    int rc = skip_value(c, max_depth < BR_CURSOR_MAX_DEPTH ? max_depth : BR_CURSOR_MAX_DEPTH);
    if (rc < 0)
        c->p = start;
    return rc;
}
