/*
 * jobs_cron.c - cron expressions for schedules: parsing the five classic fields and
 * finding the next minute that matches, in UTC.
 *
 *   minute hour day-of-month month day-of-week
 *   0-59   0-23 1-31         1-12  0-7 (0 and 7 are Sunday)
 *
 * Each field is `*`, a number, a range `a-b`, any of those with a step `/n`, or a
 * comma-separated list of them.  As in Vixie cron, when both day fields are
 * restricted (neither is `*`) a day matches if either does.  Names (JAN, MON) and the
 * non-standard `L`, `W`, `#` and `?` are refused.
 */
#include <string.h>

#include "jobs_int.h"

int64_t gw__jobs_days_from_civil(int y, int m, int d)
{
    /* Days before March 1 of year y (March-based years put Feb 29 last), then the
     * days into that year. */
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* The civil date of day number `days` since 1970-01-01 (the inverse of the above). */
static void civil_from_days(int64_t days, int *y, int *m, int *d)
{
    days += 719468;
    int64_t era = (days >= 0 ? days : days - 146096) / 146097;
    int64_t doe = days - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yoe + era * 400 + (*m <= 2));
}

/* Reads a number at *p within [lo, hi].  False when there is none or it is out. */
static bool number(const char **p, int lo, int hi, int *out)
{
    const char *s = *p;
    int v = 0, n = 0;
    while (*s >= '0' && *s <= '9' && n < 3) {
        v = v * 10 + (*s++ - '0');
        n++;
    }
    if (n == 0 || v < lo || v > hi)
        return false;
    *p = s;
    *out = v;
    return true;
}

/* Parses one field (up to a blank or the end) into *bits.  *star is set when the
 * field is a bare `*`.  False for a malformed field. */
static bool field(const char **p, int lo, int hi, uint64_t *bits, bool *star)
{
    const char *s = *p;
    *bits = 0;
    *star = s[0] == '*' && (s[1] == ' ' || s[1] == '\t' || s[1] == '\0');
    for (;;) {
        int a, b, step = 1;
        if (*s == '*') {
            a = lo;
            b = hi;
            s++;
        } else {
            if (!number(&s, lo, hi, &a))
                return false;
            b = a;
            if (*s == '-') {
                s++;
                if (!number(&s, lo, hi, &b) || b < a)
                    return false;
            }
        }
        if (*s == '/') {
            s++;
            if (!number(&s, 1, hi - lo + 1, &step))
                return false;
            if (a == b)
                b = hi; /* "5/15": from 5 on, every 15 */
        }
        for (int v = a; v <= b; v += step)
            *bits |= 1ull << v;
        if (*s != ',')
            break;
        s++;
    }
    if (*s != ' ' && *s != '\t' && *s != '\0')
        return false;
    *p = s;
    return true;
}

int gw__jobs_cron_parse(const char *text, gw_jobs_cron *out)
{
    static const struct {
        int lo, hi;
    } range[5] = {{0, 59}, {0, 23}, {1, 31}, {1, 12}, {0, 7}};
    uint64_t bits[5];
    bool star[5];
    const char *p = text;
    for (int i = 0; i < 5; i++) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p || !field(&p, range[i].lo, range[i].hi, &bits[i], &star[i]))
            return BR_EVALUE;
    }
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p)
        return BR_EVALUE;
    if (bits[4] & (1ull << 7))
        bits[4] = (bits[4] | 1ull) & ~(1ull << 7); /* 7 is Sunday too */
    *out = (gw_jobs_cron){.minutes = bits[0],
                          .hours = (uint32_t)bits[1],
                          .mdays = (uint32_t)bits[2],
                          .months = (uint16_t)bits[3],
                          .wdays = (uint8_t)bits[4],
                          .mday_star = star[2],
                          .wday_star = star[4]};
    return 0;
}

/* Whether day y-m-d (weekday wd, 0 = Sunday) matches c's day fields. */
static bool day_matches(const gw_jobs_cron *c, int d, int wd)
{
    bool md = c->mdays & (1u << d), w = c->wdays & (1u << wd);
    if (c->mday_star || c->wday_star)
        return md && w;
    return md || w;
}

int64_t gw__jobs_cron_next(const gw_jobs_cron *c, int64_t after_ms)
{
    /* The first whole minute after `after`; then day by day (at most about five years:
     * "0 0 29 2 *" still finds a leap day), and within a matching day hour by hour and
     * minute by minute. */
    int64_t minute = after_ms >= 0 ? after_ms / 60000 + 1 : 0;
    int64_t day = minute / 1440;
    int first_minute = (int)(minute % 1440);
    for (int n = 0; n < 366 * 5; n++, day++, first_minute = 0) {
        int y, m, d;
        civil_from_days(day, &y, &m, &d);
        int wd = (int)((day % 7 + 11) % 7); /* 1970-01-01 was a Thursday (4) */
        if (!(c->months & (1u << m)) || !day_matches(c, d, wd))
            continue;
        for (int mod = first_minute; mod < 1440; mod++) {
            int h = mod / 60, mi = mod % 60;
            if (!(c->hours & (1u << h))) {
                mod = h * 60 + 59; /* the rest of this hour */
                continue;
            }
            if (c->minutes & (1ull << mi))
                return (day * 1440 + mod) * 60000;
        }
    }
    return -1;
}
