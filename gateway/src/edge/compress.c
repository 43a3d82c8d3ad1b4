/*
 * compress.c - compression both ways: answers compressed with gzip (zlib) or brotli
 * as the client's Accept-Encoding allows, and gzip request bodies inflated under a
 * limit.
 *
 * An answer is compressed when the client accepts a coding (q-values honoured, q=0
 * refusing one), compression is on, the body is at least compress_min_bytes, its
 * media type is one that compresses (text, JSON, XML, JavaScript, SVG, msgpack: an
 * allowlist, so images and archives never are), the request asked for no Range, and
 * the handler set no Content-Encoding of its own.  When the compressed body is not
 * smaller, the original goes.  Answers that could have been compressed carry
 * Vary: Accept-Encoding either way, so that caches keep the versions apart.
 *
 * A request body with Content-Encoding: gzip is inflated into the request's own
 * buffer, stopping as soon as it passes max_inflated_bytes (413): a zip bomb costs
 * the gateway that many bytes and no more.  The handler sees the plain body; the
 * broker forwards it without the Content-Encoding header.
 *
 * The zlib streams are kept between uses (deflateReset/inflateReset): their setup
 * allocates a few hundred KiB, which per request would cost more than compressing a
 * small body.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <brotli/encode.h>
#include <zlib.h>

#include "edge_int.h"
#include "log.h"

/* Bytes the inflated body grows by per step. */
#define INFLATE_STEP (16u * 1024)

/* ---------------------------------------------------------------------------------- */
/* Accept-Encoding.                                                                    */

/* Parses a q-value ("q=0.5") into thousandths; 1000 when absent; -1 when malformed. */
static int parse_q(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    if (p == end)
        return 1000;
    if (*p != ';')
        return -1;
    p++;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    if (end - p < 2 || (p[0] != 'q' && p[0] != 'Q') || p[1] != '=')
        return -1;
    p += 2;
    if (p == end || (*p != '0' && *p != '1'))
        return -1;
    int q = (*p - '0') * 1000;
    p++;
    if (p < end && *p == '.') {
        p++;
        int scale = 100;
        while (p < end && *p >= '0' && *p <= '9' && scale > 0) {
            q += (*p - '0') * scale;
            scale /= 10;
            p++;
        }
    }
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    return p == end && q <= 1000 ? q : -1;
}

edge_coding gw__compress_choose(const char *accept, size_t len)
{
    int q_gzip = -1, q_br = -1, q_star = -1;
    const char *p = accept, *end = accept + len;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == ',' || *p == '\t'))
            p++;
        const char *tok = p;
        while (p < end && *p != ',' && *p != ';' && *p != ' ' && *p != '\t')
            p++;
        size_t n = (size_t)(p - tok);
        const char *params = p;
        while (p < end && *p != ',')
            p++;
        if (n == 0)
            continue;
        int q = parse_q(params, p);
        if (q < 0)
            continue; /* a malformed entry counts as absent */
        if ((n == 4 && strncasecmp(tok, "gzip", 4) == 0) ||
            (n == 6 && strncasecmp(tok, "x-gzip", 6) == 0))
            q_gzip = q;
        else if (n == 2 && strncasecmp(tok, "br", 2) == 0)
            q_br = q;
        else if (n == 1 && *tok == '*')
            q_star = q;
    }
    /* A coding not named takes "*"'s q-value; named ones keep their own (q=0 too). */
    if (q_gzip < 0)
        q_gzip = q_star < 0 ? 0 : q_star;
    if (q_br < 0)
        q_br = q_star < 0 ? 0 : q_star;
    if (q_br > 0 && q_br >= q_gzip)
        return EDGE_BR;
    if (q_gzip > 0)
        return EDGE_GZIP;
    return EDGE_IDENTITY;
}

/* ---------------------------------------------------------------------------------- */
/* Request bodies.                                                                     */

static z_stream *inflater(gw_edge *e)
{
    if (e->inflater)
        return e->inflater;
    z_stream *z = calloc(1, sizeof(*z));
    if (!z)
        return NULL;
    if (inflateInit2(z, 15 + 16) != Z_OK) {
        free(z);
        return NULL;
    }
    e->inflater = z;
    return z;
}

/* Inflates req's gzip body into er->inflated_body.  0; BR_ELIMIT past the limit;
 * BR_EVALUE for a corrupt stream; BR_ENOMEM. */
static int inflate_body(gw_edge *e, const gw_req *req, edge_req *er)
{
    z_stream *z = inflater(e);
    if (!z)
        return BR_ENOMEM;
    inflateReset(z);
    edge_req_bufs *bufs = gw__edge_req_bufs(er);
    if (!bufs)
        return BR_ENOMEM;
    br_buf *out = &bufs->inflated_body;
    out->len = 0;
    out->max = e->cfg.max_inflated_bytes;
    z->next_in = (Bytef *)(uintptr_t)req->body;
    z->avail_in = (uInt)req->body_len;
    for (;;) {
        if (out->len == out->max)
            return BR_ELIMIT;
        size_t step = out->max - out->len < INFLATE_STEP ? out->max - out->len : INFLATE_STEP;
        int rc = br_buf_reserve(out, step);
        if (rc != 0)
            return rc;
        z->next_out = out->data + out->len;
        z->avail_out = (uInt)step;
        int zr = inflate(z, Z_NO_FLUSH);
        out->len += step - z->avail_out;
        if (zr == Z_STREAM_END)
            /* Bytes after the gzip member (a second member, garbage) are refused. */
            return z->avail_in == 0 ? 0 : BR_EVALUE;
        if (zr == Z_BUF_ERROR && z->avail_in == 0)
            return BR_EVALUE; /* the stream ended early */
        if (zr != Z_OK && zr != Z_BUF_ERROR)
            return zr == Z_MEM_ERROR ? BR_ENOMEM : BR_EVALUE;
    }
}

bool gw__compress_request(gw_edge *e, gw_req *req, edge_req *er)
{
    er->coding = EDGE_IDENTITY;
    if (e->cfg.compress && !gw_req_header(req, "range")) {
        const gw_header *ae = gw_req_header(req, "accept-encoding");
        if (ae)
            er->coding = (uint8_t)gw__compress_choose(ae->value, ae->value_len);
    }
    const gw_header *ce = gw_req_header(req, "content-encoding");
    if (!ce || !req->match.route || req->body_len == 0 ||
        (ce->value_len == 8 && strncasecmp(ce->value, "identity", 8) == 0))
        return false;
    if (!((ce->value_len == 4 && strncasecmp(ce->value, "gzip", 4) == 0) ||
          (ce->value_len == 6 && strncasecmp(ce->value, "x-gzip", 6) == 0))) {
        gw__edge_refuse(req, 415, "Unsupported Media Type: Content-Encoding must be gzip", NULL, 0);
        return true;
    }
    int rc = inflate_body(e, req, er);
    if (rc == BR_ELIMIT) {
        char detail[GW_DETAIL_MAX];
        snprintf(detail, sizeof(detail), "Content Too Large: the gzip body inflates past %zu bytes",
                 e->cfg.max_inflated_bytes);
        gw__edge_refuse(req, 413, detail, NULL, 0);
        return true;
    }
    if (rc != 0) {
        if (rc == BR_ENOMEM)
            gw_req_respond_error(req, 503, true, "Service Unavailable: out of memory");
        else
            gw__edge_refuse(req, 400, "Bad Request: the gzip body is corrupt", NULL, 0);
        return true;
    }
    er->inflated = true;
    gw_req_set_body(req, (const char *)er->bufs->inflated_body.data, er->bufs->inflated_body.len);
    return false;
}

/* ---------------------------------------------------------------------------------- */
/* Answers.                                                                            */

/* True for media types worth compressing (parameters ignored). */
static bool compressible(const char *ct)
{
    if (!ct)
        return false;
    size_t n = 0;
    while (ct[n] && ct[n] != ';' && ct[n] != ' ')
        n++;
    static const char *const exact[] = {"application/json",        "application/javascript",
                                        "application/xml",         "application/msgpack",
                                        "application/x-msgpack",   "image/svg+xml",
                                        "application/problem+json"};
    for (size_t i = 0; i < sizeof(exact) / sizeof(exact[0]); i++)
        if (strlen(exact[i]) == n && strncasecmp(ct, exact[i], n) == 0)
            return true;
    if (n > 5 && strncasecmp(ct, "text/", 5) == 0)
        return true;
    return (n > 5 && strncasecmp(ct + n - 5, "+json", 5) == 0) ||
           (n > 4 && strncasecmp(ct + n - 4, "+xml", 4) == 0);
}

static bool has_header(const gw_http_answer *a, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < a->nextra; i++)
        if (a->extra[i].name_len == n && strncasecmp(a->extra[i].name, name, n) == 0)
            return true;
    return false;
}

static int gzip_into(gw_edge *e, const void *in, size_t len, br_buf *out)
{
    z_stream *z = e->deflater;
    if (!z) {
        if (!(z = calloc(1, sizeof(*z))))
            return BR_ENOMEM;
        if (deflateInit2(z, (int)e->cfg.gzip_level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) !=
            Z_OK) {
            free(z);
            return BR_ENOMEM;
        }
        e->deflater = z;
    }
    deflateReset(z);
    size_t bound = deflateBound(z, (uLong)len) + 32;
    out->len = 0;
    int rc = br_buf_reserve(out, bound);
    if (rc != 0)
        return rc;
    z->next_in = (Bytef *)(uintptr_t)in;
    z->avail_in = (uInt)len;
    z->next_out = out->data;
    z->avail_out = (uInt)bound;
    if (deflate(z, Z_FINISH) != Z_STREAM_END)
        return BR_EVALUE;
    out->len = bound - z->avail_out;
    return 0;
}

static int brotli_into(gw_edge *e, const void *in, size_t len, br_buf *out)
{
    size_t bound = BrotliEncoderMaxCompressedSize(len);
    if (bound == 0)
        return BR_ELIMIT;
    out->len = 0;
    int rc = br_buf_reserve(out, bound);
    if (rc != 0)
        return rc;
    size_t n = bound;
    if (!BrotliEncoderCompress((int)e->cfg.brotli_quality, BROTLI_DEFAULT_WINDOW,
                               BROTLI_MODE_GENERIC, len, in, &n, out->data))
        return BR_EVALUE;
    out->len = n;
    return 0;
}

/* ---------------------------------------------------------------------------------- */
/* Streamed answers: one compressor per stream, flushed after every chunk so that an    */
/* event is never held back waiting for more.  Smaller windows than for whole answers:  */
/* a compressor lives as long as its stream, and a gateway may hold thousands.          */

/* zlib: 4 KiB window and memLevel 5, about 40 KiB per stream (deflate's own formula:
 * 2^(wbits+2) + 2^(memLevel+9), plus its state). */
#define STREAM_GZIP_WBITS 12
#define STREAM_GZIP_MEM   5
/* brotli: 64 KiB window. */
#define STREAM_BROTLI_LGWIN 16

static int stream_open(gw_edge *e, edge_req *er)
{
    gw__compress_stream_free(er);
    if (er->coding == EDGE_BR) {
        BrotliEncoderState *s = BrotliEncoderCreateInstance(NULL, NULL, NULL);
        if (!s)
            return BR_ENOMEM;
        BrotliEncoderSetParameter(s, BROTLI_PARAM_QUALITY, e->cfg.brotli_quality);
        BrotliEncoderSetParameter(s, BROTLI_PARAM_LGWIN, STREAM_BROTLI_LGWIN);
        er->zstream = s;
    } else {
        z_stream *z = calloc(1, sizeof(*z));
        if (!z)
            return BR_ENOMEM;
        if (deflateInit2(z, (int)e->cfg.gzip_level, Z_DEFLATED, STREAM_GZIP_WBITS + 16,
                         STREAM_GZIP_MEM, Z_DEFAULT_STRATEGY) != Z_OK) {
            free(z);
            return BR_ENOMEM;
        }
        er->zstream = z;
    }
    er->zcoding = er->coding;
    return 0;
}

void gw__compress_stream_free(edge_req *er)
{
    if (!er->zstream)
        return;
    if (er->zcoding == EDGE_BR) {
        BrotliEncoderDestroyInstance(er->zstream);
    } else {
        deflateEnd(er->zstream);
        free(er->zstream);
    }
    er->zstream = NULL;
}

static int stream_gzip(z_stream *z, const void *in, size_t len, bool final, br_buf *out)
{
    z->next_in = (Bytef *)(uintptr_t)in;
    z->avail_in = (uInt)len;
    int flush = final ? Z_FINISH : Z_SYNC_FLUSH;
    for (;;) {
        size_t room = deflateBound(z, (uLong)z->avail_in) + 64;
        int rc = br_buf_reserve(out, room);
        if (rc != 0)
            return rc;
        z->next_out = out->data + out->len;
        z->avail_out = (uInt)room;
        int zr = deflate(z, flush);
        out->len += room - z->avail_out;
        if (zr == Z_STREAM_END || (!final && z->avail_in == 0 && z->avail_out > 0))
            return 0;
        if (zr != Z_OK && zr != Z_BUF_ERROR)
            return BR_EVALUE;
    }
}

static int stream_brotli(BrotliEncoderState *s, const void *in, size_t len, bool final, br_buf *out)
{
    const uint8_t *next_in = in;
    size_t avail_in = len;
    BrotliEncoderOperation op = final ? BROTLI_OPERATION_FINISH : BROTLI_OPERATION_FLUSH;
    do {
        size_t room = len + 1024;
        int rc = br_buf_reserve(out, room);
        if (rc != 0)
            return rc;
        uint8_t *next_out = out->data + out->len;
        size_t avail_out = room;
        if (!BrotliEncoderCompressStream(s, op, &avail_in, &next_in, &avail_out, &next_out, NULL))
            return BR_EVALUE;
        out->len += room - avail_out;
    } while (avail_in > 0 || BrotliEncoderHasMoreOutput(s) ||
             (final && !BrotliEncoderIsFinished(s)));
    return 0;
}

int gw__compress_stream(gw_edge *e, edge_req *er, const void *in, size_t len, bool final,
                        br_buf *out)
{
    (void)e;
    if (!er->zstream)
        return BR_EINVAL;
    out->len = 0;
    if (er->zcoding == EDGE_BR)
        return stream_brotli(er->zstream, in, len, final, out);
    return stream_gzip(er->zstream, in, len, final, out);
}

void gw__compress_answer(gw_edge *e, edge_req *er, gw_http_answer *a, bool *vary)
{
    *vary = false;
    if (!e->cfg.compress || a->status < 200 || a->status == 204 || a->status == 304 ||
        a->status == 206 || (!a->stream && a->body_len < e->cfg.compress_min_bytes) ||
        !compressible(a->content_type) || has_header(a, "content-encoding") ||
        has_header(a, "content-range"))
        return;
    *vary = true;
    if (er->coding == EDGE_IDENTITY)
        return;
    if (a->stream) {
        /* Its size is unknown: compressed chunk by chunk (gw__compress_stream). */
        if (stream_open(e, er) == 0)
            gw__edge_add_header(a, "Content-Encoding", er->coding == EDGE_BR ? "br" : "gzip",
                                er->coding == EDGE_BR ? 2 : 4);
        return;
    }
    br_buf *out = &e->zbuf;
    out->max = GW_EDGE_ZBUF_MAX; /* br_buf_free (edge.c, after a large answer) clears it */
    int rc = er->coding == EDGE_BR ? brotli_into(e, a->body, a->body_len, out)
                                   : gzip_into(e, a->body, a->body_len, out);
    if (rc != 0) {
        gw_log(GW_LOG_WARN, "edge", "request %s: compressing %zu bytes failed (%s); sent as is",
               er->id, a->body_len, br_strerror(rc));
        return;
    }
    if (out->len >= a->body_len)
        return;
    a->body = out->data;
    a->body_len = out->len;
    if (er->coding == EDGE_BR)
        gw__edge_add_header(a, "Content-Encoding", "br", 2);
    else
        gw__edge_add_header(a, "Content-Encoding", "gzip", 4);
}

void gw__compress_free(gw_edge *e)
{
    if (e->deflater) {
        deflateEnd(e->deflater);
        free(e->deflater);
        e->deflater = NULL;
    }
    if (e->inflater) {
        inflateEnd(e->inflater);
        free(e->inflater);
        e->inflater = NULL;
    }
}
