/*
 * utf8.c - a strict UTF-8 decoder (RFC 3629, table 3-7 of the Unicode standard).
 */
#include "utf8.h"

/* What the lead byte b0 of a multi-byte sequence says: its length and the allowed
 * range of the second byte - the range that excludes overlong forms, surrogates and
 * values past U+10FFFF.  False when b0 leads no sequence. */
static bool lead_info(uint8_t b0, size_t *len, uint8_t *lo, uint8_t *hi)
{
    *lo = 0x80;
    *hi = 0xbf;
    if (b0 >= 0xc2 && b0 <= 0xdf) {
        *len = 2;
    } else if (b0 >= 0xe0 && b0 <= 0xef) {
        *len = 3;
        if (b0 == 0xe0)
            *lo = 0xa0;
        else if (b0 == 0xed)
            *hi = 0x9f;
    } else if (b0 >= 0xf0 && b0 <= 0xf4) {
        *len = 4;
        if (b0 == 0xf0)
            *lo = 0x90;
        else if (b0 == 0xf4)
            *hi = 0x8f;
    } else {
        return false;
    }
    return true;
}

/* True when the n bytes at p (1 <= n <= the sequence's length) are a well-formed start
 * of the sequence p[0] leads. */
static bool seq_prefix_ok(const uint8_t *p, size_t n, uint8_t lo, uint8_t hi)
{
    if (n > 1 && (p[1] < lo || p[1] > hi))
        return false;
    for (size_t i = 2; i < n; i++)
        if ((p[i] & 0xc0) != 0x80)
            return false;
    return true;
}

size_t gw_utf8_seq_len(const uint8_t *p, size_t n)
{
    if (n == 0)
        return 0;
    if (p[0] < 0x80)
        return 1;
    size_t len;
    uint8_t lo, hi;
    if (!lead_info(p[0], &len, &lo, &hi) || n < len || !seq_prefix_ok(p, len, lo, hi))
        return 0;
    return len;
}

bool gw_utf8_valid_prefix(const uint8_t *p, size_t n, size_t *complete)
{
    size_t i = 0;
    while (i < n) {
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        size_t len;
        uint8_t lo, hi;
        if (!lead_info(p[i], &len, &lo, &hi))
            return false;
        size_t have = n - i < len ? n - i : len;
        if (!seq_prefix_ok(p + i, have, lo, hi))
            return false;
        if (have < len)
            break; /* a sequence the next bytes may complete */
        i += len;
    }
    *complete = i;
    return true;
}

bool gw_utf8_valid(const char *s, size_t len)
{
    const uint8_t *p = (const uint8_t *)s;
    size_t i = 0;
    while (i < len) {
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        size_t n = gw_utf8_seq_len(p + i, len - i);
        if (n == 0)
            return false;
        i += n;
    }
    return true;
}

size_t gw_utf8_count(const char *s, size_t len)
{
    size_t count = 0;
    for (size_t i = 0; i < len; i++)
        if (((uint8_t)s[i] & 0xc0) != 0x80)
            count++;
    return count;
}
