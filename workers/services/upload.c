/*
 * upload.c - streamed request bodies: a body of any size hashed as it arrives, in the
 * same memory whatever its length (FastAPI's `async for chunk in request.stream()`).
 *
 *   POST /upload/hash   -> {"bytes": N, "sha256": HEX} of the raw body, up to the
 *                          gateway's --stream-body-max (1 GiB by default)
 *   POST /upload/form   -> {"parts": [{"name", "value"} for a field, {"name",
 *                          "filename", "content_type", "bytes", "sha256"} for a file]}
 *                          of a multipart/form-data body, files hashed as they stream
 *
 * The route declares stream_body: the handler runs once the headers are in and takes
 * the body piece by piece; the worker and the gateway each hold at most a window of
 * it.  A client that leaves mid-body cancels the request.
 */
#include <sodium.h>

#include "barista/multipart.h"
#include "services.h"

/* A SHA-256 digest in hex, with its NUL. */
#define HEX_LEN (2 * crypto_hash_sha256_BYTES + 1)

static void finish_hex(crypto_hash_sha256_state *sha, char hex[HEX_LEN])
{
    unsigned char digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_final(sha, digest);
    sodium_bin2hex(hex, HEX_LEN, digest, sizeof(digest));
}

/* One upload being hashed; lives in the request's arena. */
typedef struct upload {
    crypto_hash_sha256_state sha; /* the digest so far */
    uint64_t bytes;               /* body bytes so far */
} upload;

static void upload_data(br_req *req, const void *data, size_t len, void *arg)
{
    upload *u = arg;
    (void)req;
    crypto_hash_sha256_update(&u->sha, data, len);
    u->bytes += len;
}

static void upload_end(br_req *req, bool complete, void *arg)
{
    upload *u = arg;
    if (!complete) {
        br_reply_status(req, 499); /* the gateway answered the client already */
        return;
    }
    char hex[HEX_LEN];
    finish_hex(&u->sha, hex);
    br_reply_pack(req, 200, "{sI ss}", "bytes", (int64_t)u->bytes, "sha256", hex);
}

static void upload_hash(br_req *req)
{
    upload *u = br_req_alloc(req, sizeof(*u));
    if (!u || sodium_init() < 0) {
        br_reply_error(req, 500, "cannot start hashing");
        return;
    }
    crypto_hash_sha256_init(&u->sha);
    u->bytes = 0;
    if (br_req_body_stream(req, upload_data, upload_end, u) != 0)
        br_reply_error(req, 500, "the body is not streamed");
}

/* One form being read; lives in the request's arena.  The reply is written as the
 * parts arrive. */
typedef struct form {
    br_multipart *mp;             /* the parser (heap: destroyed at the end) */
    br_writer *w;                 /* the reply's writer, inside {"parts": [ */
    crypto_hash_sha256_state sha; /* the current file's digest */
    uint64_t bytes;               /* the current file's bytes */
} form;

static int form_field(void *arg, const br_multipart_part *part, br_str value)
{
    form *f = arg;
    br_w_obj(f->w);
    br_w_key_str(f->w, "name", part->name);
    br_w_key_str(f->w, "value", value);
    br_w_end(f->w);
    return 0;
}

static int form_file_start(void *arg, const br_multipart_part *part)
{
    form *f = arg;
    br_w_obj(f->w);
    br_w_key_str(f->w, "name", part->name);
    br_w_key_str(f->w, "filename", part->filename);
    br_w_key_str(f->w, "content_type", part->content_type);
    crypto_hash_sha256_init(&f->sha);
    f->bytes = 0;
    return 0;
}

static int form_file_data(void *arg, const void *data, size_t len)
{
    form *f = arg;
    crypto_hash_sha256_update(&f->sha, data, len);
    f->bytes += len;
    return 0;
}

static int form_file_end(void *arg)
{
    form *f = arg;
    char hex[HEX_LEN];
    finish_hex(&f->sha, hex);
    br_w_key_int(f->w, "bytes", (int64_t)f->bytes);
    br_w_key_cstr(f->w, "sha256", hex);
    br_w_end(f->w);
    return 0;
}

static const br_multipart_handler form_handler = {
    .on_field = form_field,
    .on_file_start = form_file_start,
    .on_file_data = form_file_data,
    .on_file_end = form_file_end,
};

static void form_data(br_req *req, const void *data, size_t len, void *arg)
{
    form *f = arg;
    (void)req;
    br_multipart_feed(f->mp, data, len); /* an error is sticky: reported at the end */
}

static void form_end(br_req *req, bool complete, void *arg)
{
    form *f = arg;
    int rc = br_multipart_finish(f->mp);
    br_multipart_destroy(&f->mp);
    if (!complete) {
        br_reply_status(req, 499);
    } else if (rc != 0) {
        br_reply_errorf(req, 400, "malformed multipart body: %s", br_strerror(rc));
    } else {
        br_w_end(f->w);
        br_w_end(f->w);
        br_reply_send(req);
    }
}

static void upload_form(br_req *req)
{
    form *f = br_req_alloc(req, sizeof(*f));
    br_str ct = br_req_content_type(req);
    if (!f || sodium_init() < 0) {
        br_reply_error(req, 500, "cannot read the form");
        return;
    }
    f->mp = br_multipart_new(ct, &form_handler, f);
    if (!f->mp) {
        br_reply_error(req, 415, "want multipart/form-data with a boundary");
        return;
    }
    f->w = br_reply_start(req, 200);
    br_w_obj(f->w);
    br_w_key(f->w, "parts");
    br_w_arr(f->w);
    if (br_req_body_stream(req, form_data, form_end, f) != 0) {
        br_multipart_destroy(&f->mp);
        br_reply_error(req, 500, "the body is not streamed");
    }
}

static const br_route_spec routes[] = {
    {.method = "POST",
     .path = "/upload/hash",
     .handler = upload_hash,
     .body = BR_BODY_RAW,
     .stream_body = true,
     .timeout_ms = 60000,
     .summary = "SHA-256 of a streamed body of any size (up to --stream-body-max)"},
    {.method = "POST",
     .path = "/upload/form",
     .handler = upload_form,
     .body = BR_BODY_RAW,
     .stream_body = true,
     .timeout_ms = 60000,
     .summary = "A multipart/form-data body: fields back, files hashed as they stream"},
};

const br_service_spec br_upload_service = {
    .name = "upload",
    .kind = BR_KIND_IO,
    .summary = "streamed request bodies: a body hashed as it arrives",
    .routes = routes,
    .nroutes = BR_NELEMS(routes),
};
