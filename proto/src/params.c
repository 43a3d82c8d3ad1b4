/*
 * params.c - how the text of a declared parameter parses as its type (barista/proto.h,
 * "Parameter text").  One definition for both sides: what the gateway's validation
 * accepts is exactly what a worker's typed getters read.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "barista/proto.h"

int br_param_parse_int(br_str s, int64_t *out)
{
    size_t i = 0;
    bool neg = false;
    if (s.len > 0 && (s.ptr[0] == '-' || s.ptr[0] == '+'))
        neg = s.ptr[i++] == '-';
    if (i == s.len)
        return BR_EVALUE;
    /* Accumulate the magnitude, refusing it as soon as it would pass the limit. */
    uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    uint64_t acc = 0;
    for (; i < s.len; i++) {
        unsigned d = (unsigned)(s.ptr[i] - '0');
        if (d > 9 || acc > (limit - d) / 10)
            return BR_EVALUE;
        acc = acc * 10 + d;
    }
    *out = neg ? (int64_t)(0 - acc) : (int64_t)acc;
    return 0;
}

int br_param_parse_float(br_str s, double *out)
{
    char text[BR_PARAM_FLOAT_CHARS];
    if (s.len == 0 || s.len >= sizeof(text))
        return BR_EVALUE;
    /* strtod alone would also take leading blanks, hex, "inf" and "nan". */
    char c = s.ptr[0];
    if (!(c == '-' || c == '+' || c == '.' || (c >= '0' && c <= '9')))
        return BR_EVALUE;
    if (memchr(s.ptr, 'x', s.len) || memchr(s.ptr, 'X', s.len))
        return BR_EVALUE;
    memcpy(text, s.ptr, s.len);
    text[s.len] = '\0';
    char *end;
    double v = strtod(text, &end);
    if (end != text + s.len || !isfinite(v))
        return BR_EVALUE;
    *out = v;
    return 0;
}

/* pydantic's spellings of a boolean, compared ignoring ASCII case. */
static bool is_word(br_str s, const char *const *words, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (strlen(words[i]) == s.len && strncasecmp(words[i], s.ptr, s.len) == 0)
            return true;
    }
    return false;
}

int br_param_parse_bool(br_str s, bool *out)
{
    static const char *const yes[] = {"1", "on", "t", "true", "y", "yes"};
    static const char *const no[] = {"0", "off", "f", "false", "n", "no"};
    if (is_word(s, yes, sizeof(yes) / sizeof(yes[0]))) {
        *out = true;
        return 0;
    }
    if (is_word(s, no, sizeof(no) / sizeof(no[0]))) {
        *out = false;
        return 0;
    }
    return BR_EVALUE;
}
