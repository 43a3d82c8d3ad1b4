/*
 * upload.c - streamed request bodies: a body of any size hashed as it arrives, in the
 * same memory whatever its length (FastAPI's `async for chunk in request.stream()`).
 *
 *   POST /upload/hash   -> {"bytes": N, "sha256": HEX} of the raw body, up to the
 *                          gateway's --stream-body-max (1 GiB by default)
 *
 * The route declares stream_body: the handler runs once the headers are in and takes
 * the body piece by piece; the worker and the gateway each hold at most a window of
 * it.  A client that leaves mid-body cancels the request.
 */
#include <sodium.h>

#include "services.h"

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
    unsigned char digest[crypto_hash_sha256_BYTES];
    char hex[2 * crypto_hash_sha256_BYTES + 1];
    crypto_hash_sha256_final(&u->sha, digest);
    sodium_bin2hex(hex, sizeof(hex), digest, sizeof(digest));
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

static const br_route_spec routes[] = {
    {.method = "POST",
     .path = "/upload/hash",
     .handler = upload_hash,
     .body = BR_BODY_RAW,
     .stream_body = true,
     .timeout_ms = 60000,
     .summary = "SHA-256 of a streamed body of any size (up to --stream-body-max)"},
};

const br_service_spec br_upload_service = {
    .name = "upload",
    .kind = BR_KIND_IO,
    .summary = "streamed request bodies: a body hashed as it arrives",
    .routes = routes,
    .nroutes = BR_NELEMS(routes),
};
