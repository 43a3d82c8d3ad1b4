/*
 * json.c - msgpack -> JSON, the hot half of the JSON edge, and the buffer and number
 * helpers both halves share.  (json_parse.c is the other half.)
 *
 * The walker reads the msgpack bytes once, front to back, and appends JSON as it goes.
 * Every length and count read from the input is checked against the bytes that remain
 * before it is used, so a hostile or truncated body fails with BR_EVALUE and never reads
 * past the end.  Recursion is bounded by GW_JSON_MAX_DEPTH.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <barista/mpread.h>

#include "json.h"
#include "utf8.h"

/* Appends one byte; the usual case, with room left, stays inline. */
static inline int put_char(br_buf *out, char c)
{
    if (out->len < out->cap && (out->max == 0 || out->len < out->max)) {
        out->data[out->len++] = (uint8_t)c;
        return 0;
    }
    return br_buf_append(out, &c, 1);
}

/* ---------------------------------------------------------------------------------- */
/* Scalars.                                                                            */

static int put_u64(br_buf *out, uint64_t v, bool negative)
{
    char digits[24];
    size_t i = sizeof digits;
    do {
        digits[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    if (negative)
        digits[--i] = '-';
    return br_buf_append(out, digits + i, sizeof digits - i);
}

static int put_i64(br_buf *out, int64_t v)
{
    /* Negating through uint64 keeps INT64_MIN exact. */
    return v < 0 ? put_u64(out, 0 - (uint64_t)v, true) : put_u64(out, (uint64_t)v, false);
}

/* Powers of ten the fast path scales by; all exact in a double. */
static const double pow10_table[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8};

/* The common case without snprintf: v is m / 10^k for a small k and an integer m below
 * 2^53, so the division is correctly rounded and the decimal text "m with k fraction
 * digits" reads back as v.  Only for magnitudes "%g" prints in fixed notation, so the
 * text matches the slow path's form.  Returns the length written, 0 when it does not
 * apply (the caller then falls back to snprintf). */
static size_t format_decimal_fast(double v, char *buf, size_t cap)
{
    double a = fabs(v);
    if (!(a >= 1e-4 && a < 1e15) || cap < GW_DOUBLE_CHARS)
        return 0;
    for (size_t k = 0; k < sizeof pow10_table / sizeof pow10_table[0]; k++) {
        double scaled = a * pow10_table[k];
        if (scaled >= 9007199254740992.0) /* 2^53 */
            return 0;
        uint64_t m = (uint64_t)scaled;
        if ((double)m != scaled || (double)m / pow10_table[k] != a)
            continue;
        char digits[24];
        size_t nd = 0;
        do {
            digits[nd++] = (char)('0' + m % 10);
            m /= 10;
        } while (m);
        while (nd <= k) /* "0.0001": zeros before the first significant digit */
            digits[nd++] = '0';
        size_t n = 0;
        if (v < 0)
            buf[n++] = '-';
        for (size_t i = nd; i-- > 0;) {
            buf[n++] = digits[i];
            if (i == k && k > 0)
                buf[n++] = '.';
        }
        buf[n] = '\0';
        return n;
    }
    return 0;
}

/* The shortest precision among `from`..`to` whose output reads back as v; the last one
 * always does (17 digits for a double, 9 for a float). */
static size_t format_shortest(double v, bool single, char *buf, size_t cap)
{
    size_t fast = single ? 0 : format_decimal_fast(v, buf, cap);
    if (fast)
        return fast;
    int from = single ? 6 : 15, to = single ? 9 : 17;
    int n = 0;
    for (int prec = from; prec <= to; prec++) {
        n = snprintf(buf, cap, "%.*g", prec, v);
        if (n < 0 || (size_t)n >= cap)
            break;
        if (single ? strtof(buf, NULL) == (float)v : strtod(buf, NULL) == v)
            break;
    }
    return n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
}

size_t gw_format_double(double v, char *buf, size_t cap)
{
    return format_shortest(v, false, buf, cap);
}

static int put_float(br_buf *out, double v, bool single)
{
    if (!isfinite(v))
        return br_buf_append(out, "null", 4);
    char text[GW_DOUBLE_CHARS + 2];
    size_t n = format_shortest(v, single, text, GW_DOUBLE_CHARS);
    /* An integral float keeps a fraction so that it stays a float for the client. */
    if (strpbrk(text, ".e") == NULL) {
        text[n++] = '.';
        text[n++] = '0';
    }
    return br_buf_append(out, text, n);
}

/* ---------------------------------------------------------------------------------- */
/* Strings.                                                                            */

static const char hex_digits[] = "0123456789abcdef";

/* The two-character escape of c, or 0 when c uses the \u00XX form. */
static char short_escape(uint8_t c)
{
    switch (c) {
    case '"':
        return '"';
    case '\\':
        return '\\';
    case '\b':
        return 'b';
    case '\f':
        return 'f';
    case '\n':
        return 'n';
    case '\r':
        return 'r';
    case '\t':
        return 't';
    }
    return 0;
}

/* Appends s as a JSON string literal.  Runs of bytes that need no escaping are copied
 * in one append; invalid UTF-8 bytes each become U+FFFD. */
static int put_string(br_buf *out, const uint8_t *s, size_t len)
{
    /* Most strings need no escaping at all: find the first byte that does, and copy
     * everything before it with one reservation. */
    size_t clean = 0;
    while (clean < len && s[clean] >= 0x20 && s[clean] < 0x80 && s[clean] != '"' &&
           s[clean] != '\\')
        clean++;
    if (clean == len) {
        int rc = br_buf_reserve(out, len + 2);
        if (rc != 0)
            return rc;
        uint8_t *w = out->data + out->len;
        w[0] = '"';
        if (len)
            memcpy(w + 1, s, len);
        w[len + 1] = '"';
        out->len += len + 2;
        return 0;
    }

    int rc = put_char(out, '"');
    size_t run = 0, i = clean;
    while (rc == 0 && i < len) {
        uint8_t c = s[i];
        size_t seq = 1;
        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0x80 && (seq = gw_utf8_seq_len(s + i, len - i)) != 0) {
            i += seq;
            continue;
        }
        rc = br_buf_append(out, s + run, i - run);
        if (rc != 0)
            break;
        if (c >= 0x80) {
            rc = br_buf_append(out, "\xef\xbf\xbd", 3);
        } else if (short_escape(c)) {
            char esc[2] = {'\\', short_escape(c)};
            rc = br_buf_append(out, esc, 2);
        } else {
            char esc[6] = {'\\', 'u', '0', '0', hex_digits[c >> 4], hex_digits[c & 15]};
            rc = br_buf_append(out, esc, 6);
        }
        run = ++i;
    }
    if (rc == 0)
        rc = br_buf_append(out, s + run, len - run);
    if (rc == 0)
        rc = put_char(out, '"');
    return rc;
}

int gw_json_append_string(br_buf *out, const char *s, size_t len)
{
    size_t mark = out->len;
    int rc = put_string(out, (const uint8_t *)s, len);
    if (rc != 0)
        out->len = mark;
    return rc;
}

static const char base64_digits[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Appends bin data as a quoted, padded base64 string. */
static int put_base64(br_buf *out, const uint8_t *s, size_t len)
{
    size_t enc = (len + 2) / 3 * 4;
    int rc = br_buf_reserve(out, enc + 2);
    if (rc != 0)
        return rc;
    char *w = (char *)out->data + out->len;
    *w++ = '"';
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
        *w++ = base64_digits[v >> 18];
        *w++ = base64_digits[(v >> 12) & 63];
        *w++ = base64_digits[(v >> 6) & 63];
        *w++ = base64_digits[v & 63];
    }
    if (i < len) {
        uint32_t v = (uint32_t)s[i] << 16 | (i + 1 < len ? (uint32_t)s[i + 1] << 8 : 0);
        *w++ = base64_digits[v >> 18];
        *w++ = base64_digits[(v >> 12) & 63];
        *w++ = i + 1 < len ? base64_digits[(v >> 6) & 63] : '=';
        *w++ = '=';
    }
    *w++ = '"';
    out->len = (size_t)((uint8_t *)w - out->data);
    return 0;
}

/* ---------------------------------------------------------------------------------- */
/* The walker.                                                                         */

/* The msgpack is read with proto's bounded cursor (barista/mpread.h), the one reader of
 * untrusted msgpack in the project: every length and count is checked against the
 * bytes that are really there before it is believed. */

/* A cursor error as this converter reports it: anything malformed is BR_EVALUE. */
static int malformed(int rc)
{
    return rc == BR_ELIMIT ? BR_ELIMIT : BR_EVALUE;
}

static int walk_value(br_cursor *c, br_buf *out, unsigned depth);

static int walk_array(br_cursor *c, br_buf *out, unsigned depth)
{
    uint32_t count;
    int rc = br_cursor_array(c, &count);
    if (rc != 0)
        return malformed(rc);
    if (depth > GW_JSON_MAX_DEPTH)
        return BR_ELIMIT;
    /* Every element takes at least one byte: a count past the input is a lie. */
    if (count > br_cursor_left(c))
        return BR_EVALUE;
    rc = put_char(out, '[');
    for (uint32_t i = 0; rc == 0 && i < count; i++) {
        if (i > 0)
            rc = put_char(out, ',');
        if (rc == 0)
            rc = walk_value(c, out, depth);
    }
    return rc ? rc : put_char(out, ']');
}

/* A key must be a string or an integer; an integer key is written quoted. */
static int walk_key(br_cursor *c, br_buf *out, unsigned depth)
{
    br_mp_type t = br_cursor_peek(c);
    if (t == BR_MP_STR)
        return walk_value(c, out, depth);
    if (t != BR_MP_INT)
        return BR_EVALUE;
    int rc = put_char(out, '"');
    if (rc == 0)
        rc = walk_value(c, out, depth);
    return rc ? rc : put_char(out, '"');
}

static int walk_map(br_cursor *c, br_buf *out, unsigned depth)
{
    uint32_t count;
    int rc = br_cursor_map(c, &count);
    if (rc != 0)
        return malformed(rc);
    if (depth > GW_JSON_MAX_DEPTH)
        return BR_ELIMIT;
    if (count > br_cursor_left(c) / 2)
        return BR_EVALUE;
    rc = put_char(out, '{');
    for (uint32_t i = 0; rc == 0 && i < count; i++) {
        if (i > 0)
            rc = put_char(out, ',');
        if (rc == 0)
            rc = walk_key(c, out, depth);
        if (rc == 0)
            rc = put_char(out, ':');
        if (rc == 0)
            rc = walk_value(c, out, depth);
    }
    return rc ? rc : put_char(out, '}');
}

/* An integer: signed encodings (negative fixint, int 8-64) are read as int64, the
 * others as uint64, so every msgpack integer prints exactly. */
static int walk_int(br_cursor *c, br_buf *out)
{
    uint8_t b = *c->p;
    if (b >= 0xe0 || (b >= 0xd0 && b <= 0xd3)) {
        int64_t v;
        int rc = br_cursor_int(c, &v);
        return rc ? malformed(rc) : put_i64(out, v);
    }
    uint64_t v;
    int rc = br_cursor_uint(c, &v);
    return rc ? malformed(rc) : put_u64(out, v, false);
}

/* Writes the value at the cursor; depth counts the containers around it. */
static int walk_value(br_cursor *c, br_buf *out, unsigned depth)
{
    br_str s;
    int rc;
    switch (br_cursor_peek(c)) {
    case BR_MP_NIL:
        rc = br_cursor_nil(c);
        return rc ? malformed(rc) : br_buf_append(out, "null", 4);
    case BR_MP_BOOL: {
        bool v;
        rc = br_cursor_bool(c, &v);
        return rc  ? malformed(rc)
               : v ? br_buf_append(out, "true", 4)
                   : br_buf_append(out, "false", 5);
    }
    case BR_MP_INT:
        return walk_int(c, out);
    case BR_MP_FLOAT: {
        bool single = *c->p == 0xca; /* float 32 prints as the shortest float32 */
        double v;
        rc = br_cursor_double(c, &v);
        return rc ? malformed(rc) : put_float(out, v, single);
    }
    case BR_MP_STR:
        rc = br_cursor_str(c, &s, UINT32_MAX);
        return rc ? malformed(rc) : put_string(out, (const uint8_t *)s.ptr, s.len);
    case BR_MP_BIN:
        rc = br_cursor_bin(c, &s, UINT32_MAX);
        return rc ? malformed(rc) : put_base64(out, (const uint8_t *)s.ptr, s.len);
    case BR_MP_ARRAY:
        return walk_array(c, out, depth + 1);
    case BR_MP_MAP:
        return walk_map(c, out, depth + 1);
    case BR_MP_EXT:  /* ext types have no JSON form */
    case BR_MP_NONE: /* the end of the input, or 0xc1, never used */
        break;
    }
    return BR_EVALUE;
}

int gw_msgpack_to_json(const void *mp, size_t len, br_buf *out)
{
    if (len == 0)
        return BR_EVALUE;
    br_cursor c;
    br_cursor_init(&c, mp, len);
    size_t mark = out->len;
    int rc = walk_value(&c, out, 0);
    if (rc == 0 && br_cursor_left(&c) != 0)
        rc = BR_EVALUE;
    if (rc != 0)
        out->len = mark;
    return rc;
}

int gw_json_append_detail(br_buf *out, const char *detail)
{
    size_t at = out->len;
    int rc = br_buf_append(out, "{\"detail\":", 10);
    if (rc == 0)
        rc = gw_json_append_string(out, detail, strlen(detail));
    if (rc == 0)
        rc = br_buf_append(out, "}", 1);
    if (rc != 0)
        out->len = at;
    return rc;
}
