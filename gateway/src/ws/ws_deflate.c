/*
 * ws_deflate.c - permessage-deflate (RFC 7692): the offer's grammar, bounded inflation
 * of a message, and the shared deflater.
 *
 * An offer is `name *(";" param ["=" value])`, extensions separated by commas, values
 * tokens or quoted strings (RFC 6455, 9.1).  A message's compressed payload is a raw
 * DEFLATE stream whose 00 00 ff ff tail the sender cut (7.2.1); the receiver puts it
 * back and inflates (7.2.2).
 */
#include "ws_deflate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <zlib.h>

/* Output grows by at most this much per inflate step. */
#define WS_INFLATE_STEP (16 * 1024)

/* The raw DEFLATE window every inflater uses: the largest, which reads any window the
 * client chose. */
#define WS_INFLATE_BITS 15

static const uint8_t ws_tail[4] = {0x00, 0x00, 0xff, 0xff};

/* ---------------------------------------------------------------------------------- */
/* Negotiation.                                                                        */

typedef struct cursor {
    const char *p;   /* next byte */
    const char *end; /* end of the header value */
} cursor;

static void skip_blanks(cursor *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t'))
        c->p++;
}

/* A token character (RFC 7230 tchar). */
static bool tchar(char ch)
{
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))
        return true;
    return ch && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

/* Reads a token into [*s, *s + *n); false when there is none. */
static bool read_token(cursor *c, const char **s, size_t *n)
{
    skip_blanks(c);
    *s = c->p;
    while (c->p < c->end && tchar(*c->p))
        c->p++;
    *n = (size_t)(c->p - *s);
    return *n > 0;
}

/* Reads a parameter value, a token or a quoted string (escapes kept: no value this
 * extension accepts contains one, so they only make it invalid). */
static bool read_value(cursor *c, const char **s, size_t *n)
{
    skip_blanks(c);
    if (c->p < c->end && *c->p == '"') {
        *s = ++c->p;
        while (c->p < c->end && *c->p != '"')
            c->p++;
        if (c->p == c->end)
            return false;
        *n = (size_t)(c->p - *s);
        c->p++;
        return true;
    }
    return read_token(c, s, n);
}

static bool is(const char *s, size_t n, const char *word)
{
    return strlen(word) == n && strncasecmp(s, word, n) == 0;
}

/* A window size 8..15 given as its decimal digits; 0 when invalid. */
static unsigned window_bits(const char *s, size_t n)
{
    if (n == 1 && s[0] >= '8' && s[0] <= '9')
        return (unsigned)(s[0] - '0');
    if (n == 2 && s[0] == '1' && s[1] >= '0' && s[1] <= '5')
        return 10u + (unsigned)(s[1] - '0');
    return 0;
}

/* Skips to just past the next comma at this level (or the end). */
static void next_extension(cursor *c)
{
    bool quoted = false;
    while (c->p < c->end && (quoted || *c->p != ',')) {
        if (*c->p == '"')
            quoted = !quoted;
        c->p++;
    }
    if (c->p < c->end)
        c->p++;
}

/* Reads one extension's parameters; true when it is an acceptable permessage-deflate
 * offer (then *bits is its server_max_window_bits, 15 when absent). */
static bool read_offer(cursor *c, unsigned *bits)
{
    const char *s, *v;
    size_t n, vn;
    if (!read_token(c, &s, &n) || !is(s, n, "permessage-deflate"))
        return false;
    bool seen[4] = {false, false, false, false};
    *bits = 15;
    for (;;) {
        skip_blanks(c);
        if (c->p == c->end || *c->p == ',')
            return true;
        if (*c->p != ';' || (c->p++, !read_token(c, &s, &n)))
            return false;
        skip_blanks(c);
        bool has_value = c->p < c->end && *c->p == '=';
        if (has_value && (c->p++, !read_value(c, &v, &vn)))
            return false;
        int which = is(s, n, "server_no_context_takeover")   ? 0
                    : is(s, n, "client_no_context_takeover") ? 1
                    : is(s, n, "server_max_window_bits")     ? 2
                    : is(s, n, "client_max_window_bits")     ? 3
                                                             : -1;
        if (which < 0 || seen[which])
            return false; /* unknown or repeated (7.1): this offer is declined */
        seen[which] = true;
        if (which < 2 && has_value)
            return false;
        if (which == 2 && (!has_value || !(*bits = window_bits(v, vn))))
            return false;
        if (which == 3 && has_value && !window_bits(v, vn))
            return false;
    }
}

bool gw_ws_pmd_negotiate(const char *offers, size_t len, gw_ws_pmd *out,
                         char answer[GW_WS_PMD_ANSWER_MAX])
{
    memset(out, 0, sizeof(*out));
    answer[0] = '\0';
    if (!offers)
        return false;
    cursor c = {offers, offers + len};
    while (c.p < c.end) {
        unsigned bits;
        if (read_offer(&c, &bits)) {
            out->on = true;
            out->server_bits = (uint8_t)bits;
            /* The server's window is the client's to limit: echoed when it asked. */
            if (bits < 15)
                snprintf(answer, GW_WS_PMD_ANSWER_MAX,
                         "permessage-deflate; server_no_context_takeover; "
                         "client_no_context_takeover; server_max_window_bits=%u",
                         bits);
            else
                snprintf(answer, GW_WS_PMD_ANSWER_MAX,
                         "permessage-deflate; server_no_context_takeover; "
                         "client_no_context_takeover");
            return true;
        }
        next_extension(&c);
    }
    return false;
}

/* ---------------------------------------------------------------------------------- */
/* Inflating.                                                                          */

/* One inflate step into out (or into a probe byte once out is at its bound); *zr gets
 * zlib's answer.  Returns 0, BR_ELIMIT when output passed the bound, or BR_ENOMEM. */
static int inflate_step(z_stream *z, br_buf *out, int *zr)
{
    uint8_t probe;
    size_t room = out->max - out->len;
    size_t step = room < WS_INFLATE_STEP ? room : WS_INFLATE_STEP;
    if (step) {
        if (br_buf_reserve(out, step) != 0)
            return BR_ENOMEM;
        z->next_out = out->data + out->len;
        z->avail_out = (uInt)step;
    } else {
        z->next_out = &probe;
        z->avail_out = 1;
    }
    *zr = inflate(z, Z_SYNC_FLUSH);
    size_t made = (step ? step : 1) - z->avail_out;
    if (!step && made)
        return BR_ELIMIT;
    out->len += made;
    return 0;
}

int gw_ws_inflate(const uint8_t *in, size_t len, br_buf *out)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    if (inflateInit2(&z, -WS_INFLATE_BITS) != Z_OK)
        return BR_ENOMEM;
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)len;
    bool tail = false;
    int rc = 0, zr = Z_OK;
    for (;;) {
        if (z.avail_in == 0 && !tail) {
            z.next_in = (Bytef *)ws_tail;
            z.avail_in = sizeof(ws_tail);
            tail = true;
        }
        if ((rc = inflate_step(&z, out, &zr)) != 0)
            break;
        if (zr == Z_STREAM_END) {
            /* A final block may end the message; only (part of) the tail may follow. */
            if (!tail && z.avail_in)
                rc = BR_EVALUE;
            break;
        }
        if (zr == Z_MEM_ERROR) {
            rc = BR_ENOMEM;
            break;
        }
        if (zr != Z_OK && zr != Z_BUF_ERROR) {
            rc = BR_EVALUE; /* Z_DATA_ERROR: not a DEFLATE stream */
            break;
        }
        /* Everything read and room left over: the whole message is out. */
        if (tail && z.avail_in == 0 && z.avail_out != 0)
            break;
        if (zr == Z_BUF_ERROR && z.avail_out != 0) {
            rc = BR_EVALUE; /* no progress with input and room to write */
            break;
        }
    }
    inflateEnd(&z);
    return rc;
}

/* ---------------------------------------------------------------------------------- */
/* Deflating.                                                                          */

struct gw_ws_deflater {
    z_stream z; /* raw deflate, reset before each message */
};

gw_ws_deflater *gw_ws_deflater_new(int bits, int level)
{
    gw_ws_deflater *d = calloc(1, sizeof(*d));
    if (!d)
        return NULL;
    /* memLevel 8 is zlib's default; windowBits 9..15 (8 is made 9 by zlib anyway). */
    if (deflateInit2(&d->z, level, Z_DEFLATED, -bits, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        free(d);
        return NULL;
    }
    return d;
}

void gw_ws_deflater_destroy(gw_ws_deflater **dp)
{
    if (!dp || !*dp)
        return;
    deflateEnd(&(*dp)->z);
    free(*dp);
    *dp = NULL;
}

int gw_ws_deflate(gw_ws_deflater *d, const uint8_t *msg, size_t len, br_buf *out)
{
    size_t start = out->len;
    if (deflateReset(&d->z) != Z_OK)
        return BR_ENOMEM;
    d->z.next_in = (Bytef *)msg;
    d->z.avail_in = (uInt)len;
    /* Not worth it unless at least the tail's 4 bytes are saved. */
    size_t cap = len;
    if (br_buf_reserve(out, cap) != 0)
        return BR_ENOMEM;
    d->z.next_out = out->data + start;
    d->z.avail_out = (uInt)cap;
    int zr = deflate(&d->z, Z_SYNC_FLUSH);
    if (zr != Z_OK || d->z.avail_in != 0 || d->z.avail_out == 0)
        return BR_EFULL; /* no room: it does not shrink (or zlib failed: send it plain) */
    size_t made = cap - d->z.avail_out;
    if (made < sizeof(ws_tail) || memcmp(out->data + start + made - 4, ws_tail, 4) != 0)
        return BR_EFULL;
    out->len = start + made - sizeof(ws_tail);
    return 0;
}
