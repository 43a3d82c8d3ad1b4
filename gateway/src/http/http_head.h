/*
 * http_head.h - private to the HTTP server: the line structure of a request's head
 * (empty lines before it, the request line, the header lines, the empty line that
 * ends it) and of a chunked body's trailer section, checked as the bytes arrive.
 *
 * llhttp parses the head; this scanner runs over the same bytes just before llhttp
 * does, for what llhttp 8.1's strict build still lets through or does not count:
 * a bare LF ending the request line or the head, a line folded onto the previous one
 * (obs-fold, including one whose first line holds no value), and the head's total
 * size, whitespace and line ends included.  It also tells http_conn.c where the head
 * ends, so that no byte of a body is mistaken for part of it.
 */
#ifndef BARISTA_GW_HTTP_HEAD_H
#define BARISTA_GW_HTTP_HEAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Where the scanner is in a head. */
typedef enum gw_head_state {
    GW_HEAD_LEAD,    /* before the request line: empty lines (CRLF) are skipped */
    GW_HEAD_LEAD_CR, /* ... a CR of such an empty line was seen */
    GW_HEAD_LINE,    /* inside a line (request line or header line) */
    GW_HEAD_START,   /* at the start of a header line or of the final empty line */
    GW_HEAD_END_CR   /* the CR of the final empty line was seen */
} gw_head_state;

/* What a scan found. */
typedef enum gw_head_result {
    GW_HEAD_MORE,     /* every byte given belongs to the head; it goes on */
    GW_HEAD_DONE,     /* the head ended (stop is just past its last LF) */
    GW_HEAD_BARE_LF,  /* a line ended in LF without CR (stop is at the LF) */
    GW_HEAD_BARE_CR,  /* a CR not followed by LF where a line ends (stop is at the byte) */
    GW_HEAD_FOLD,     /* a header line starts with SP or HTAB: obs-fold (stop at it) */
    GW_HEAD_TOO_LARGE /* the head passed the limit (stop is at the first byte over) */
} gw_head_result;

typedef struct gw_head_scan {
    gw_head_state state; /* see gw_head_state */
    bool cr;             /* in GW_HEAD_LINE: the last byte scanned was CR */
    bool active;         /* a head or trailer section is being read */
    bool trailers;       /* ... and it is a trailer section */
    size_t bytes;        /* bytes of the head (and trailers) so far */
    size_t line_start;   /* where the request line starts (bytes before it) */
    size_t request_line; /* bytes of the request line, CRLF included; 0 until read */
} gw_head_scan;

/* Starts a request head: empty lines, then the request line.  Byte counting restarts. */
void gw__head_begin(gw_head_scan *s);

/* Starts a trailer section (after a chunked body's last chunk): header lines and the
 * empty line, counted on top of the head's bytes. */
void gw__head_begin_trailers(gw_head_scan *s);

/* Scans [p, end) for the head's line structure, with at most max bytes in the whole
 * head.  *stop is set as each result says; for GW_HEAD_MORE it is end.  After
 * GW_HEAD_DONE the scanner is inactive; after an error its state is undefined. */
gw_head_result gw__head_scan(gw_head_scan *s, const char *p, const char *end, size_t max,
                             const char **stop);

/* The 400 (or 431) reason for an error result. */
const char *gw__head_error(gw_head_result r, int *status);

#endif /* BARISTA_GW_HTTP_HEAD_H */
