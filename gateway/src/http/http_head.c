/*
 * http_head.c - the line structure of a request head and of trailers (http_head.h).
 *
 * Only line ends are looked at: what lies inside a line (method, target, version,
 * names and values, a stray CR) is llhttp's business, and it is strict about it.  A
 * line is found with memchr, so a typical head costs one call per line.
 */
#include "http_head.h"

#include <string.h>

void gw__head_begin(gw_head_scan *s)
{
    s->state = GW_HEAD_LEAD;
    s->cr = false;
    s->active = true;
    s->trailers = false;
    s->bytes = s->line_start = s->request_line = 0;
}

void gw__head_begin_trailers(gw_head_scan *s)
{
    s->state = GW_HEAD_START;
    s->cr = false;
    s->active = true;
    s->trailers = true;
}

/* The scan proper over [p, end), which holds no byte past the limit. */
static gw_head_result scan(gw_head_scan *s, const char *p, const char *end, const char **stop)
{
    const char *first = p; /* s->bytes counts the bytes before it */
    for (;;) {
        if (p == end) {
            *stop = end;
            return GW_HEAD_MORE;
        }
        switch (s->state) {
        case GW_HEAD_LEAD: /* RFC 9112 2.2: empty lines before a request are ignored */
            if (*p == '\r') {
                s->state = GW_HEAD_LEAD_CR;
                p++;
                break;
            }
            if (*p == '\n') {
                *stop = p;
                return GW_HEAD_BARE_LF;
            }
            s->state = GW_HEAD_LINE;
            s->cr = false;
            s->line_start = s->bytes + (size_t)(p - first);
            break;
        case GW_HEAD_LEAD_CR:
        case GW_HEAD_END_CR:
            if (*p != '\n') {
                *stop = p;
                return GW_HEAD_BARE_CR;
            }
            p++;
            if (s->state == GW_HEAD_END_CR) {
                s->active = false;
                *stop = p;
                return GW_HEAD_DONE;
            }
            s->state = GW_HEAD_LEAD;
            break;
        case GW_HEAD_LINE: {
            const char *lf = memchr(p, '\n', (size_t)(end - p));
            if (!lf) {
                s->cr = end[-1] == '\r';
                p = end;
                break;
            }
            if (!(lf > p ? lf[-1] == '\r' : s->cr)) {
                *stop = lf;
                return GW_HEAD_BARE_LF;
            }
            p = lf + 1;
            s->state = GW_HEAD_START;
            if (!s->request_line && !s->trailers)
                s->request_line = s->bytes + (size_t)(p - first) - s->line_start;
            break;
        }
        case GW_HEAD_START:
            if (*p == '\r') {
                s->state = GW_HEAD_END_CR;
                p++;
                break;
            }
            if (*p == ' ' || *p == '\t') {
                *stop = p;
                return GW_HEAD_FOLD;
            }
            if (*p == '\n') {
                *stop = p;
                return GW_HEAD_BARE_LF;
            }
            s->state = GW_HEAD_LINE;
            s->cr = false;
            break;
        }
    }
}

gw_head_result gw__head_scan(gw_head_scan *s, const char *p, const char *end, size_t max,
                             const char **stop)
{
    size_t room = s->bytes < max ? max - s->bytes : 0;
    size_t avail = (size_t)(end - p);
    const char *limit = avail > room ? p + room : end;
    gw_head_result r = scan(s, p, limit, stop);
    s->bytes += (size_t)(*stop - p);
    if (r == GW_HEAD_MORE && limit < end)
        return GW_HEAD_TOO_LARGE; /* *stop is limit: the first byte over */
    return r;
}

const char *gw__head_error(gw_head_result r, int *status)
{
    *status = 400;
    switch (r) {
    case GW_HEAD_BARE_LF:
        return "Bad Request: a line ends in LF without CR";
    case GW_HEAD_BARE_CR:
        return "Bad Request: CR without LF at the end of a line";
    case GW_HEAD_FOLD:
        return "Bad Request: obsolete line folding in a header";
    case GW_HEAD_TOO_LARGE:
        *status = 431;
        return "Request Header Fields Too Large";
    default:
        return "Bad Request";
    }
}
