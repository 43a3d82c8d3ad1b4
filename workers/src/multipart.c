/*
 * multipart.c - multipart/form-data in pieces (barista/multipart.h).
 *
 * The body is a preamble, then parts each opened by the delimiter CRLF "--" boundary,
 * closed by the delimiter followed by "--".  The input is taken in slices into one
 * buffer (the first delimiter is found by starting the buffer with a CRLF of its own);
 * whatever cannot be decided yet - the tail that may be the start of a delimiter, a
 * header block not complete - stays there, everything else is handed over and
 * dropped.  So the buffer never holds more than a header block or a slice plus a
 * delimiter, whatever the body's size.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "barista/multipart.h"
#include "barista/proto.h"

/* Input taken into the buffer at once. */
#define SLICE (16u * 1024u)
/* Blanks tolerated after a delimiter (RFC 2046's transport padding). */
#define PADDING_MAX 64

typedef enum mp_state {
    MP_PREAMBLE, /* before the first delimiter */
    MP_AFTER,    /* a delimiter was read: "--" (the end) or CRLF (a part) follows */
    MP_HEADERS,  /* a part's header block */
    MP_DATA,     /* a part's content */
    MP_DONE      /* the closing delimiter was read; the epilogue is ignored */
} mp_state;

struct br_multipart {
    br_multipart_handler h;                    /* the callbacks */
    void *arg;                                 /* their argument */
    char delim[4 + BR_MULTIPART_BOUNDARY_MAX]; /* CRLF "--" boundary */
    size_t dlen;                               /* bytes of delim */
    br_buf buf;                                /* input not handed over yet */
    br_buf head;                               /* the part's header block (part points in) */
    br_buf field;                              /* a plain field's value so far */
    br_multipart_part part;                    /* the current part */
    bool is_file;                              /* it has a filename */
    mp_state state;                            /* see mp_state */
    int err;                                   /* the first error; then every call fails */
};

/* The first occurrence of needle in hay, or NULL. */
static const char *find(const char *hay, size_t len, const char *needle, size_t nlen)
{
    while (len >= nlen) {
        const char *p = memchr(hay, needle[0], len - nlen + 1);
        if (!p)
            return NULL;
        if (memcmp(p, needle, nlen) == 0)
            return p;
        len -= (size_t)(p - hay) + 1;
        hay = p + 1;
    }
    return NULL;
}

static bool starts_ci(br_str s, const char *prefix)
{
    size_t n = strlen(prefix);
    return s.len >= n && strncasecmp(s.ptr, prefix, n) == 0;
}

static br_str trim(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    return (br_str){p, (uint32_t)(end - p)};
}

/* Reads a parameter value at *pp (a quoted string, unescaped in place, or a token) up
 * to `end`; *pp moves past it. */
static br_str param_value(char **pp, char *end)
{
    char *p = *pp;
    if (p < end && *p == '"') {
        char *out = ++p, *start = p;
        while (p < end && *p != '"') {
            if (*p == '\\' && p + 1 < end)
                p++;
            *out++ = *p++;
        }
        *pp = p < end ? p + 1 : p;
        return (br_str){start, (uint32_t)(out - start)};
    }
    char *start = p;
    while (p < end && *p != ';')
        p++;
    *pp = p;
    return trim(start, p);
}

/* Content-Disposition: form-data; name="..."; filename="..." */
static void parse_disposition(br_multipart *m, char *p, char *end)
{
    while (p < end) {
        while (p < end && (*p == ';' || *p == ' ' || *p == '\t'))
            p++;
        char *key = p;
        while (p < end && *p != '=' && *p != ';')
            p++;
        br_str k = trim(key, p);
        if (p >= end || *p != '=')
            continue; /* "form-data" itself, or a flag */
        p++;
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        br_str v = param_value(&p, end);
        if (k.len == 4 && strncasecmp(k.ptr, "name", 4) == 0) {
            m->part.name = v;
        } else if (k.len == 8 && strncasecmp(k.ptr, "filename", 8) == 0) {
            m->part.filename = v;
            m->is_file = true;
        }
    }
}

/* Takes the header block buf[0..n) as the new part's.  0 or a br_err. */
static int parse_head(br_multipart *m, size_t n)
{
    m->head.len = 0;
    int rc = br_buf_append(&m->head, m->buf.data, n);
    if (rc != 0)
        return rc;
    memset(&m->part, 0, sizeof(m->part));
    m->is_file = false;
    char *p = (char *)m->head.data, *end = p + n;
    while (p < end) {
        char *eol = (char *)find(p, (size_t)(end - p), "\r\n", 2);
        if (!eol)
            eol = end;
        char *colon = memchr(p, ':', (size_t)(eol - p));
        if (!colon)
            return BR_EVALUE;
        br_str name = trim(p, colon);
        char *value = colon + 1;
        while (value < eol && (*value == ' ' || *value == '\t'))
            value++;
        if (name.len == 19 && starts_ci(name, "content-disposition"))
            parse_disposition(m, value, eol);
        else if (name.len == 12 && starts_ci(name, "content-type"))
            m->part.content_type = trim(value, eol);
        p = eol + 2;
    }
    return m->part.name.len ? 0 : BR_EVALUE;
}

/* Drops the first n bytes of the buffer. */
static void consume(br_multipart *m, size_t n)
{
    memmove(m->buf.data, m->buf.data + n, m->buf.len - n);
    m->buf.len -= n;
}

/* Hands over n bytes of the current part. */
static int emit(br_multipart *m, const void *data, size_t n)
{
    if (n == 0)
        return 0;
    if (m->is_file)
        return m->h.on_file_data ? m->h.on_file_data(m->arg, data, n) : 0;
    return br_buf_append(&m->field, data, n);
}

static int part_start(br_multipart *m)
{
    m->field.len = 0;
    if (m->is_file && m->h.on_file_start)
        return m->h.on_file_start(m->arg, &m->part);
    return 0;
}

static int part_end(br_multipart *m)
{
    if (m->is_file)
        return m->h.on_file_end ? m->h.on_file_end(m->arg) : 0;
    if (!m->h.on_field)
        return 0;
    return m->h.on_field(m->arg, &m->part,
                         (br_str){(const char *)m->field.data, (uint32_t)m->field.len});
}

/* Moves through the buffer as far as it can.  0 (wants more) or an error. */
static int run(br_multipart *m)
{
    for (;;) {
        const char *b = (const char *)m->buf.data;
        size_t len = m->buf.len;
        int rc = 0;
        switch (m->state) {
        case MP_PREAMBLE:
        case MP_DATA: {
            const char *d = find(b, len, m->delim, m->dlen);
            size_t upto = d ? (size_t)(d - b) : len >= m->dlen ? len - (m->dlen - 1) : 0;
            if (m->state == MP_DATA && (rc = emit(m, b, upto)) != 0)
                return rc;
            if (!d) {
                consume(m, upto);
                return 0;
            }
            if (m->state == MP_DATA && (rc = part_end(m)) != 0)
                return rc;
            consume(m, upto + m->dlen);
            m->state = MP_AFTER;
            break;
        }
        case MP_AFTER: {
            if (len < 2)
                return 0;
            if (b[0] == '-' && b[1] == '-') {
                m->state = MP_DONE;
                break;
            }
            size_t i = 0;
            while (i < len && (b[i] == ' ' || b[i] == '\t'))
                i++;
            if (i > PADDING_MAX)
                return BR_EVALUE;
            if (len - i < 2)
                return 0;
            if (b[i] != '\r' || b[i + 1] != '\n')
                return BR_EVALUE;
            consume(m, i + 2);
            m->state = MP_HEADERS;
            break;
        }
        case MP_HEADERS: {
            size_t n;
            if (len >= 2 && b[0] == '\r' && b[1] == '\n') {
                n = 0; /* no headers: a part without a name, refused below */
            } else {
                const char *e = find(b, len, "\r\n\r\n", 4);
                if (!e)
                    return len > BR_MULTIPART_HEAD_MAX ? BR_ELIMIT : 0;
                n = (size_t)(e - b) + 2;
            }
            if ((rc = parse_head(m, n)) != 0)
                return rc;
            consume(m, n + 2);
            if ((rc = part_start(m)) != 0)
                return rc;
            m->state = MP_DATA;
            break;
        }
        case MP_DONE:
            m->buf.len = 0;
            return 0;
        }
    }
}

br_multipart *br_multipart_new(br_str content_type, const br_multipart_handler *handler, void *arg)
{
    if (!starts_ci(content_type, "multipart/form-data"))
        return NULL;
    const char *p = content_type.ptr, *end = p + content_type.len;
    const char *b = NULL;
    for (const char *q = p; q + 9 <= end; q++)
        if (strncasecmp(q, "boundary=", 9) == 0 && (q == p || q[-1] == ';' || q[-1] == ' ')) {
            b = q + 9;
            break;
        }
    if (!b)
        return NULL;
    size_t blen;
    if (b < end && *b == '"') {
        const char *close = memchr(b + 1, '"', (size_t)(end - b - 1));
        if (!close)
            return NULL;
        blen = (size_t)(close - b - 1);
        b++;
    } else {
        const char *e = b;
        while (e < end && *e != ';' && *e != ' ')
            e++;
        blen = (size_t)(e - b);
    }
    if (blen == 0 || blen > BR_MULTIPART_BOUNDARY_MAX)
        return NULL;
    br_multipart *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    if (handler)
        m->h = *handler;
    m->arg = arg;
    memcpy(m->delim, "\r\n--", 4);
    memcpy(m->delim + 4, b, blen);
    m->dlen = 4 + blen;
    m->buf.max = BR_MULTIPART_HEAD_MAX + SLICE + sizeof(m->delim);
    m->head.max = BR_MULTIPART_HEAD_MAX;
    m->field.max = BR_MULTIPART_FIELD_MAX;
    /* The body's first delimiter has no CRLF before it: give it one. */
    if (br_buf_append(&m->buf, "\r\n", 2) != 0) {
        free(m);
        return NULL;
    }
    return m;
}

int br_multipart_feed(br_multipart *self, const void *data, size_t len)
{
    if (!self || (!data && len))
        return BR_EINVAL;
    const char *p = data;
    while (self->err == 0 && len > 0) {
        size_t n = len < SLICE ? len : SLICE;
        int rc = br_buf_append(&self->buf, p, n);
        if (rc == 0)
            rc = run(self);
        if (rc != 0)
            self->err = rc;
        p += n;
        len -= n;
    }
    return self->err;
}

int br_multipart_finish(br_multipart *self)
{
    if (!self)
        return BR_EINVAL;
    if (self->err)
        return self->err;
    return self->state == MP_DONE ? 0 : BR_ETRUNC;
}

void br_multipart_destroy(br_multipart **self_p)
{
    if (!self_p || !*self_p)
        return;
    br_buf_free(&(*self_p)->buf);
    br_buf_free(&(*self_p)->head);
    br_buf_free(&(*self_p)->field);
    free(*self_p);
    *self_p = NULL;
}
