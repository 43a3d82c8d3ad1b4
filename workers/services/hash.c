/*
 * hash.c - CPU-bound work off the I/O path (a `def` route).
 *
 *   GET /hash?n=N&data=S -> {"digest": HEX, "n": N}
 *
 * HEX is SHA-256 applied N times: round 1 hashes the bytes of S, each later round the
 * previous raw 32-byte digest.  The handler blocks its compute thread for as long as
 * that takes; the worker's loop keeps the broker connection alive meanwhile.
 */
#include <sodium.h>

#include "services.h"

#define HASH_MAX_ROUNDS 10000000
/* Rounds between two looks at br_req_cancelled(). */
#define HASH_CANCEL_STRIDE 65536

void br_hash_first(uint8_t digest[BR_HASH_BYTES], const void *data, size_t len)
{
    /* Idempotent and thread-safe; libsodium wants it before any primitive.  It only
     * fails without an entropy source, which SHA-256 does not use. */
    if (sodium_init() < 0) {
        /* Nothing to do about it: the hash below still works. */
    }
    crypto_hash_sha256(digest, data, len);
}

void br_hash_more(uint8_t digest[BR_HASH_BYTES], uint64_t more)
{
    for (uint64_t i = 0; i < more; i++)
        crypto_hash_sha256(digest, digest, BR_HASH_BYTES);
}

static void hash(br_req *req)
{
    int64_t n;
    br_str data;
    if (br_req_query_int(req, "n", &n) != 0 || n < 1 || n > HASH_MAX_ROUNDS) {
        br_reply_error(req, 422, "n must be an integer from 1 to 10000000");
        return;
    }
    if (br_req_query(req, "data", &data) != 0) {
        br_reply_error(req, 422, "data is required");
        return;
    }
    uint8_t digest[BR_HASH_BYTES];
    br_hash_first(digest, data.ptr, data.len);
    for (int64_t done = 1; done < n; done += HASH_CANCEL_STRIDE) {
        if (br_req_cancelled(req))
            return; /* the runtime answers 499 */
        br_hash_more(digest,
                     (uint64_t)(n - done < HASH_CANCEL_STRIDE ? n - done : HASH_CANCEL_STRIDE));
    }
    char hex[BR_HASH_BYTES * 2 + 1];
    sodium_bin2hex(hex, sizeof(hex), digest, sizeof(digest));
    br_writer *w = br_reply_start(req, 200);
    br_w_obj(w);
    br_w_key_cstr(w, "digest", hex);
    br_w_key_int(w, "n", n);
    br_w_end(w);
    br_reply_send(req);
}

static const br_param_spec params[] = {
    {.name = "n",
     .in = BR_IN_QUERY,
     .type = BR_TYPE_INT,
     .required = true,
     .has_min = true,
     .min = 1,
     .has_max = true,
     .max = HASH_MAX_ROUNDS,
     .summary = "rounds of SHA-256"},
    {.name = "data",
     .in = BR_IN_QUERY,
     .type = BR_TYPE_STR,
     .required = true,
     .summary = "the text the first round hashes"},
};

static const br_route_spec routes[] = {
    {.method = "GET",
     .path = "/hash",
     .handler = hash,
     .summary = "SHA-256, N times",
     .params = params,
     .nparams = BR_NELEMS(params)},
};

const br_service_spec br_hash_service = {
    .name = "hash",
    .kind = BR_KIND_CPU,
    .summary = "CPU-bound work off the I/O path",
    .routes = routes,
    .nroutes = BR_NELEMS(routes),
};
