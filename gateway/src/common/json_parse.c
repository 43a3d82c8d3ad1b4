/*
 * json_parse.c - JSON request bodies -> msgpack, in one pass.
 *
 * A strict RFC 8259 parser that writes msgpack as it reads: no tree, no allocation
 * besides the output buffer.  Strict means: one value with optional whitespace around
 * it; no trailing commas, comments, single quotes, NaN/Infinity, leading zeros or
 * '+'; strings are UTF-8 without raw control characters, and \u escapes must pair
 * their surrogates.  Errors read like Python's json module ("Expecting ',' delimiter:
 * line 1 column 9 (char 8)"), which is what FastAPI users are used to.
 *
 * msgpack puts a container's count before its elements, and the count is known only
 * at the closing bracket.  Each container first gets a one-byte header (fixarray,
 * fixmap: up to 15 entries, the usual case); a bigger one widens its header at the
 * close by moving its body up 2 or 4 bytes.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "utf8.h"

/* Longest number text accepted; strtod needs a NUL-terminated copy. */
#define GW_JSON_MAX_NUMBER 512

/* Parser state. */
typedef struct jparse {
    const uint8_t *s; /* the JSON text */
    size_t len;       /* its length */
    size_t pos;       /* next byte to read */
    br_buf *out;      /* where msgpack goes */
    char *err;        /* reason on failure; may be NULL */
    size_t errlen;    /* size of err */
} jparse;

/* Records why parsing failed at byte `at`, in Python's words and coordinates (line,
 * column and char count code points, not bytes), and returns BR_EVALUE. */
static int fail(jparse *p, size_t at, const char *what)
{
    if (!p->err || p->errlen == 0)
        return BR_EVALUE;
    size_t line = 1, col = 1, chars = 0;
    for (size_t i = 0; i < at && i < p->len; i++) {
        if ((p->s[i] & 0xc0) == 0x80)
            continue; /* UTF-8 continuation byte: same character */
        chars++;
        col++;
        if (p->s[i] == '\n') {
            line++;
            col = 1;
        }
    }
    snprintf(p->err, p->errlen, "%s: line %zu column %zu (char %zu)", what, line, col, chars);
    return BR_EVALUE;
}

static void skip_space(jparse *p)
{
    while (p->pos < p->len && (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' ||
                               p->s[p->pos] == '\n' || p->s[p->pos] == '\r'))
        p->pos++;
}

/* ---------------------------------------------------------------------------------- */
/* msgpack output.                                                                     */

/* Appends a type byte followed by the low `n` bytes of v, big-endian. */
static int put_be(br_buf *out, uint8_t type, uint64_t v, size_t n)
{
    uint8_t b[9];
    b[0] = type;
    for (size_t i = 0; i < n; i++)
        b[1 + i] = (uint8_t)(v >> (8 * (n - 1 - i)));
    return br_buf_append(out, b, n + 1);
}

/* The smallest msgpack encoding of an integer, as msgpack-c's packer chooses it. */
static int put_int(br_buf *out, bool negative, uint64_t magnitude)
{
    if (!negative) {
        if (magnitude <= 0x7f)
            return put_be(out, (uint8_t)magnitude, 0, 0);
        if (magnitude <= 0xff)
            return put_be(out, 0xcc, magnitude, 1);
        if (magnitude <= 0xffff)
            return put_be(out, 0xcd, magnitude, 2);
        if (magnitude <= 0xffffffff)
            return put_be(out, 0xce, magnitude, 4);
        return put_be(out, 0xcf, magnitude, 8);
    }
    uint64_t v = 0 - magnitude; /* two's complement of -magnitude */
    if (magnitude <= 32)
        return put_be(out, (uint8_t)v, 0, 0);
    if (magnitude <= 0x80)
        return put_be(out, 0xd0, v, 1);
    if (magnitude <= 0x8000)
        return put_be(out, 0xd1, v, 2);
    if (magnitude <= 0x80000000)
        return put_be(out, 0xd2, v, 4);
    return put_be(out, 0xd3, v, 8);
}

static int put_str_header(br_buf *out, size_t n)
{
    if (n <= 31)
        return put_be(out, (uint8_t)(0xa0 | n), 0, 0);
    if (n <= 0xff)
        return put_be(out, 0xd9, n, 1);
    if (n <= 0xffff)
        return put_be(out, 0xda, n, 2);
    return put_be(out, 0xdb, n, 4);
}

/* Writes the final header of the container whose one-byte placeholder is at `at`.
 * fix: the fixarray/fixmap base; wide: the 16-bit type byte (the 32-bit one follows). */
static int close_container(br_buf *out, size_t at, size_t count, uint8_t fix, uint8_t wide)
{
    if (count <= 15) {
        out->data[at] = (uint8_t)(fix | count);
        return 0;
    }
    if (count > 0xffffffff)
        return BR_ELIMIT;
    size_t extra = count <= 0xffff ? 2 : 4;
    static const uint8_t pad[4];
    int rc = br_buf_append(out, pad, extra);
    if (rc != 0)
        return rc;
    uint8_t *h = out->data + at;
    memmove(h + 1 + extra, h + 1, out->len - extra - at - 1);
    h[0] = extra == 2 ? wide : (uint8_t)(wide + 1);
    for (size_t i = 0; i < extra; i++)
        h[1 + i] = (uint8_t)(count >> (8 * (extra - 1 - i)));
    return 0;
}

/* ---------------------------------------------------------------------------------- */
/* Values.                                                                             */

static int parse_value(jparse *p, unsigned depth);

static int hex4(const uint8_t *s, unsigned *v)
{
    unsigned x = 0;
    for (int i = 0; i < 4; i++) {
        uint8_t c = s[i];
        unsigned d = c >= '0' && c <= '9'   ? (unsigned)(c - '0')
                     : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                     : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10)
                                            : 16u;
        if (d == 16)
            return -1;
        x = x << 4 | d;
    }
    *v = x;
    return 0;
}

/* Reads the escape at s[*i] (just after the backslash) and writes its UTF-8 bytes to
 * dst (when not NULL); returns their count, or 0 after recording the error. */
static size_t decode_escape(jparse *p, size_t *i, uint8_t *dst, int *rc)
{
    static const char simple_in[] = "\"\\/bfnrt";
    static const char simple_out[] = "\"\\/\b\f\n\r\t";
    size_t at = *i;
    if (at >= p->len) {
        *rc = fail(p, at - 1, "Invalid \\escape");
        return 0;
    }
    const char *hit = p->s[at] ? strchr(simple_in, p->s[at]) : NULL;
    if (hit) {
        if (dst)
            dst[0] = (uint8_t)simple_out[hit - simple_in];
        *i = at + 1;
        return 1;
    }
    unsigned cp, lo;
    if (p->s[at] != 'u') {
        *rc = fail(p, at - 1, "Invalid \\escape");
        return 0;
    }
    if (p->len - at < 5 || hex4(p->s + at + 1, &cp) != 0) {
        *rc = fail(p, at - 1, "Invalid \\uXXXX escape");
        return 0;
    }
    *i = at + 5;
    if (cp >= 0xdc00 && cp <= 0xdfff) {
        *rc = fail(p, at - 1, "Invalid \\uXXXX escape: lone low surrogate");
        return 0;
    }
    if (cp >= 0xd800 && cp <= 0xdbff) {
        /* A high surrogate must be followed by an escaped low one. */
        if (p->len - *i < 6 || p->s[*i] != '\\' || p->s[*i + 1] != 'u' ||
            hex4(p->s + *i + 2, &lo) != 0 || lo < 0xdc00 || lo > 0xdfff) {
            *rc = fail(p, at - 1, "Invalid \\uXXXX escape: unpaired high surrogate");
            return 0;
        }
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        *i += 6;
    }
    uint8_t b[4];
    size_t n;
    if (cp < 0x80) {
        b[0] = (uint8_t)cp;
        n = 1;
    } else if (cp < 0x800) {
        b[0] = (uint8_t)(0xc0 | cp >> 6);
        b[1] = (uint8_t)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        b[0] = (uint8_t)(0xe0 | cp >> 12);
        b[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
        b[2] = (uint8_t)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        b[0] = (uint8_t)(0xf0 | cp >> 18);
        b[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
        b[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
        b[3] = (uint8_t)(0x80 | (cp & 0x3f));
        n = 4;
    }
    if (dst)
        memcpy(dst, b, n);
    return n;
}

/* Walks the string whose opening quote is at p->pos.  With dst NULL it only validates
 * and measures (*decoded, *end = index after the closing quote); with dst it writes the
 * decoded bytes, which the measuring pass proved valid. */
static int walk_string(jparse *p, uint8_t *dst, size_t *decoded, size_t *end)
{
    size_t i = p->pos + 1, n = 0;
    int rc = 0;
    while (i < p->len) {
        uint8_t c = p->s[i];
        if (c == '"') {
            *decoded = n;
            *end = i + 1;
            return 0;
        }
        if (c == '\\') {
            i++;
            size_t k = decode_escape(p, &i, dst ? dst + n : NULL, &rc);
            if (k == 0)
                return rc;
            n += k;
            continue;
        }
        if (c < 0x20)
            return fail(p, i, "Invalid control character at");
        size_t k = c < 0x80 ? 1 : gw_utf8_seq_len(p->s + i, p->len - i);
        if (k == 0)
            return fail(p, i, "Invalid UTF-8");
        if (dst)
            memcpy(dst + n, p->s + i, k);
        n += k;
        i += k;
    }
    return fail(p, p->pos, "Unterminated string starting at");
}

static int parse_string(jparse *p)
{
    size_t decoded, end;
    int rc = walk_string(p, NULL, &decoded, &end);
    if (rc == 0)
        rc = put_str_header(p->out, decoded);
    if (rc != 0)
        return rc;
    if (decoded == end - p->pos - 2) {
        /* No escapes: the text between the quotes is the string. */
        rc = br_buf_append(p->out, p->s + p->pos + 1, decoded);
    } else {
        size_t mark = p->out->len;
        rc = br_buf_append(p->out, p->s + p->pos + 1, decoded); /* reserves the room */
        if (rc == 0)
            rc = walk_string(p, p->out->data + mark, &decoded, &end);
    }
    p->pos = end;
    return rc;
}

static int parse_number(jparse *p)
{
    const uint8_t *s = p->s;
    size_t start = p->pos, i = start;
    bool negative = i < p->len && s[i] == '-';
    if (negative)
        i++;
    if (i >= p->len || s[i] < '0' || s[i] > '9')
        return fail(p, start, "Expecting value");
    uint64_t mag = 0;
    bool overflow = false;
    if (s[i] == '0') {
        i++;
    } else {
        for (; i < p->len && s[i] >= '0' && s[i] <= '9'; i++) {
            unsigned d = (unsigned)(s[i] - '0');
            overflow |= mag > (UINT64_MAX - d) / 10;
            mag = mag * 10 + d;
        }
    }
    bool integral = true;
    if (i < p->len && s[i] == '.') {
        integral = false;
        size_t digits = ++i;
        while (i < p->len && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == digits)
            return fail(p, start, "Expecting value");
    }
    if (i < p->len && (s[i] == 'e' || s[i] == 'E')) {
        integral = false;
        i++;
        if (i < p->len && (s[i] == '+' || s[i] == '-'))
            i++;
        size_t digits = i;
        while (i < p->len && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == digits)
            return fail(p, start, "Expecting value");
    }
    p->pos = i;
    if (integral) {
        if (overflow || (negative && mag > (uint64_t)INT64_MAX + 1))
            return fail(p, start, "Integer out of range");
        return put_int(p->out, negative && mag != 0, mag);
    }
    char text[GW_JSON_MAX_NUMBER];
    if (i - start >= sizeof text)
        return fail(p, start, "Number too long");
    memcpy(text, s + start, i - start);
    text[i - start] = '\0';
    double d = strtod(text, NULL);
    if (!isfinite(d))
        return fail(p, start, "Number out of range");
    uint64_t bits;
    memcpy(&bits, &d, sizeof bits);
    return put_be(p->out, 0xcb, bits, 8);
}

/* Matches the literal word at p->pos and appends its one msgpack byte. */
static int parse_literal(jparse *p, const char *word, uint8_t byte)
{
    size_t n = strlen(word);
    if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n) != 0)
        return fail(p, p->pos, "Expecting value");
    p->pos += n;
    return put_be(p->out, byte, 0, 0);
}

/* Parses an array or an object (`object` says which); p->pos is at the bracket. */
static int parse_container(jparse *p, bool object, unsigned depth)
{
    if (depth > GW_JSON_MAX_DEPTH) {
        if (p->err && p->errlen)
            snprintf(p->err, p->errlen, "Nesting deeper than %d", GW_JSON_MAX_DEPTH);
        return BR_ELIMIT;
    }
    size_t header = p->out->len;
    int rc = put_be(p->out, 0, 0, 0);
    if (rc != 0)
        return rc;
    char close = object ? '}' : ']';
    size_t count = 0;
    p->pos++;
    skip_space(p);
    if (p->pos < p->len && p->s[p->pos] == close) {
        p->pos++;
        return close_container(p->out, header, 0, object ? 0x80 : 0x90, object ? 0xde : 0xdc);
    }
    for (;;) {
        if (object) {
            if (p->pos >= p->len || p->s[p->pos] != '"')
                return fail(p, p->pos, "Expecting property name enclosed in double quotes");
            if ((rc = parse_string(p)) != 0)
                return rc;
            skip_space(p);
            if (p->pos >= p->len || p->s[p->pos] != ':')
                return fail(p, p->pos, "Expecting ':' delimiter");
            p->pos++;
            skip_space(p);
        }
        if ((rc = parse_value(p, depth)) != 0)
            return rc;
        count++;
        skip_space(p);
        if (p->pos < p->len && p->s[p->pos] == close) {
            p->pos++;
            return close_container(p->out, header, count, object ? 0x80 : 0x90,
                                   object ? 0xde : 0xdc);
        }
        if (p->pos >= p->len || p->s[p->pos] != ',')
            return fail(p, p->pos, "Expecting ',' delimiter");
        p->pos++;
        skip_space(p);
    }
}

/* Parses the value at p->pos (whitespace already skipped); depth counts the containers
 * around it. */
static int parse_value(jparse *p, unsigned depth)
{
    if (p->pos >= p->len)
        return fail(p, p->pos, "Expecting value");
    switch (p->s[p->pos]) {
    case '{':
        return parse_container(p, true, depth + 1);
    case '[':
        return parse_container(p, false, depth + 1);
    case '"':
        return parse_string(p);
    case 't':
        return parse_literal(p, "true", 0xc3);
    case 'f':
        return parse_literal(p, "false", 0xc2);
    case 'n':
        return parse_literal(p, "null", 0xc0);
    default:
        return parse_number(p);
    }
}

int gw_json_to_msgpack(const char *json, size_t len, br_buf *out, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    jparse p = {(const uint8_t *)(json ? json : ""), json ? len : 0, 0, out, err, errlen};
    size_t mark = out->len;
    skip_space(&p);
    int rc = parse_value(&p, 0);
    if (rc == 0) {
        skip_space(&p);
        if (p.pos != p.len)
            rc = fail(&p, p.pos, "Extra data");
    }
    if (rc != 0)
        out->len = mark;
    return rc;
}
