/*
 * formats.c - the string formats a schema can demand: uuid, date, date-time, email.
 *
 * Each check answers with the reason pydantic v2 gives (its uuid, speedate and
 * email-validator wording), so that a 422 reads as FastAPI's would.
 */
#include <stdio.h>
#include <string.h>

#include "contracts_int.h"

static bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* The caller's buffer for a reason that needs formatting. */
typedef struct reason_buf {
    char *text; /* GW_REASON_MAX bytes */
} reason_buf;

static const char *uuid_check(const char *s, size_t len, reason_buf *r)
{
    static const size_t groups[] = {8, 4, 4, 4, 12};
    if (len >= 9 && strncmp(s, "urn:uuid:", 9) == 0) {
        s += 9;
        len -= 9;
    }
    size_t hyphens = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '-') {
            hyphens++;
        } else if (!is_hex(s[i])) {
            snprintf(r->text, GW_REASON_MAX,
                     "invalid character: expected an optional prefix of `urn:uuid:` followed by "
                     "[0-9a-fA-F-], found `%c` at %zu",
                     s[i], i + 1);
            return r->text;
        }
    }
    if (hyphens == 0) {
        if (len == 32)
            return NULL;
        snprintf(r->text, GW_REASON_MAX,
                 "invalid length: expected length 32 for simple format, found %zu", len);
        return r->text;
    }
    if (hyphens != 4) {
        snprintf(r->text, GW_REASON_MAX, "invalid group count: expected 5, found %zu", hyphens + 1);
        return r->text;
    }
    size_t g = 0, run = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || s[i] == '-') {
            if (run != groups[g]) {
                snprintf(r->text, GW_REASON_MAX,
                         "invalid group length in group %zu: expected %zu, found %zu", g, groups[g],
                         run);
                return r->text;
            }
            g++;
            run = 0;
        } else {
            run++;
        }
    }
    return NULL;
}

/* Reads `n` digits at s[*i]; false when one is not a digit. */
static bool digits(const char *s, size_t len, size_t *i, size_t n, int *v)
{
    *v = 0;
    for (size_t k = 0; k < n; k++, (*i)++) {
        if (*i >= len || !is_digit(s[*i]))
            return false;
        *v = *v * 10 + (s[*i] - '0');
    }
    return true;
}

static int days_in(int year, int month)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return month == 2 && leap ? 29 : days[month - 1];
}

/* YYYY-MM-DD at the start of s; *end is where it stops.  NULL or speedate's reason. */
static const char *date_part(const char *s, size_t len, size_t *end)
{
    size_t i = 0;
    int y, m, d;
    if (len < 10)
        return "input is too short";
    if (!digits(s, len, &i, 4, &y))
        return "invalid character in year";
    if (s[i++] != '-')
        return "invalid date separator, expected `-`";
    if (!digits(s, len, &i, 2, &m))
        return "invalid character in month";
    if (s[i++] != '-')
        return "invalid date separator, expected `-`";
    if (!digits(s, len, &i, 2, &d))
        return "invalid character in day";
    if (m < 1 || m > 12)
        return "month value is outside expected range of 1-12";
    if (d < 1 || d > days_in(y, m))
        return "day value is outside expected range";
    *end = i;
    return NULL;
}

static const char *date_check(const char *s, size_t len)
{
    size_t end;
    const char *why = date_part(s, len, &end);
    if (!why && end != len)
        why = "unexpected extra characters at the end of the input";
    return why;
}

/* HH:MM[:SS[.frac]] then Z, z or ±HH[:]MM, or nothing. */
static const char *time_part(const char *s, size_t len, size_t i)
{
    int h, m, sec;
    if (len - i < 5)
        return "input is too short";
    if (!digits(s, len, &i, 2, &h))
        return "invalid character in hour";
    if (s[i++] != ':')
        return "invalid time separator, expected `:`";
    if (!digits(s, len, &i, 2, &m))
        return "invalid character in minute";
    if (h > 23)
        return "hour value is outside expected range of 0-23";
    if (m > 59)
        return "minute value is outside expected range of 0-59";
    if (i < len && s[i] == ':') {
        i++;
        if (!digits(s, len, &i, 2, &sec))
            return "invalid character in second";
        if (sec > 59)
            return "second value is outside expected range of 0-59";
        if (i < len && (s[i] == '.' || s[i] == ',')) {
            size_t start = ++i;
            while (i < len && is_digit(s[i]))
                i++;
            if (i == start)
                return "invalid character in second fraction";
        }
    }
    if (i == len)
        return NULL;
    if (s[i] == 'Z' || s[i] == 'z')
        i++;
    else if (s[i] == '+' || s[i] == '-') {
        int th, tm;
        i++;
        if (!digits(s, len, &i, 2, &th))
            return "invalid timezone hour";
        if (i < len && s[i] == ':')
            i++;
        if (!digits(s, len, &i, 2, &tm))
            return "invalid timezone minute";
        if (th > 23 || tm > 59)
            return "timezone offset must be less than 24 hours";
    } else {
        return "invalid timezone sign";
    }
    return i == len ? NULL : "unexpected extra characters at the end of the input";
}

static const char *datetime_check(const char *s, size_t len)
{
    size_t end;
    const char *why = date_part(s, len, &end);
    if (why || end == len) /* a date alone is midnight, as pydantic accepts it */
        return why;
    if (s[end] != 'T' && s[end] != 't' && s[end] != ' ' && s[end] != '_')
        return "invalid datetime separator, expected `T`, `t`, `_` or space";
    return time_part(s, len, end + 1);
}

static const char *email_check(const char *s, size_t len)
{
    const char *at = memchr(s, '@', len);
    if (!at)
        return "An email address must have an @-sign.";
    if (at == s)
        return "There must be something before the @-sign.";
    size_t domain = len - (size_t)(at - s) - 1;
    if (domain == 0)
        return "There must be something after the @-sign.";
    if (memchr(at + 1, '@', domain))
        return "The part after the @-sign contains invalid characters: '@'.";
    const char *dot = memchr(at + 1, '.', domain);
    if (!dot || at[1] == '.' || s[len - 1] == '.')
        return "The part after the @-sign is not valid. It should have a period.";
    for (const char *p = s; p < s + len; p++)
        if (*p == ' ' || *p == '\t' || *p == '"' || *p == ',' || *p == '<' || *p == '>')
            return "The email address contains invalid characters.";
    return NULL;
}

const char *gw__format_check(uint8_t format, const char *s, size_t len, char *buf,
                             const char **type, const char **prefix)
{
    reason_buf uuid_reason = {buf};
    switch (format) {
    case BR_FORMAT_UUID:
        *type = "uuid_parsing";
        *prefix = "Input should be a valid UUID, ";
        return uuid_check(s, len, &uuid_reason);
    case BR_FORMAT_DATE:
        *type = "date_parsing";
        *prefix = "Input should be a valid date in the format YYYY-MM-DD, ";
        return date_check(s, len);
    case BR_FORMAT_DATE_TIME:
        *type = "datetime_parsing";
        *prefix = "Input should be a valid datetime, ";
        return datetime_check(s, len);
    case BR_FORMAT_EMAIL:
        *type = "value_error";
        *prefix = "value is not a valid email address: ";
        return email_check(s, len);
    default:
        return NULL;
    }
}
