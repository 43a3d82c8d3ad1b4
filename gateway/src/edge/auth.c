/*
 * auth.c - who is calling: JWT bearer tokens and API keys, checked at the gateway.
 *
 * A route's auth mode (its declaration, or --auth-default) decides: NONE never looks
 * at credentials; OPTIONAL checks them when present (bad ones are a 401, none is an
 * anonymous call); REQUIRED answers 401 without valid credentials and 403 when the
 * caller lacks one of the route's scopes.  The answers have FastAPI's shapes and a
 * WWW-Authenticate header (RFC 6750).
 *
 * Tokens (Authorization: Bearer) are verified by libjwt; what libjwt is given is
 * decided here first, so that neither trick of the JWT literature works:
 *   - alg "none" (and every algorithm but HS256, RS256 and ES256) is refused before
 *     any verification;
 *   - a key is used only for its own family: an HMAC secret for HS256, an RSA key for
 *     RS256, a P-256 key for ES256.  A token that says HS256 is never checked against
 *     an RSA public key's bytes (key confusion), and libjwt's answer must name the
 *     algorithm the header did.
 * Keys come from --jwt-secret-file (HS256), --jwt-public-key-file (PEM) or a JWKS file
 * (RSA, EC P-256 and oct keys, chosen by the token's kid).  exp is required; exp and
 * nbf allow --jwt-leeway of clock skew; iss and aud must match when configured.
 *
 * API keys (X-API-Key) are stored hashed: the file holds SHA-256 digests, so reading
 * it does not give the keys away.  A presented key is hashed and compared with every
 * entry in constant time.
 *
 * The verified caller becomes the request's identity, a msgpack map that travels to
 * the worker (PROTOCOL.md 5.3); the raw credentials stay here unless the route asks.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>
#include <jwt.h>
#include <msgpack.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <sodium.h>

#include "edge_int.h"
#include "json.h"
#include "log.h"

/* Largest key file, JWKS or API key file read. */
#define AUTH_FILE_MAX (1024u * 1024)
/* Longest token looked at; a longer Authorization value is refused. */
#define AUTH_TOKEN_MAX (16u * 1024)
/* Shortest HS256 secret accepted (RFC 7518 3.2: at least the hash's size). */
#define AUTH_SECRET_MIN 32u
/* Longest kid and API key name kept. */
#define AUTH_NAME_MAX 128

typedef enum key_family { KEY_HMAC, KEY_RSA, KEY_EC } key_family;

typedef struct jwt_key {
    char kid[AUTH_NAME_MAX]; /* "" when the key has none */
    key_family family;       /* which algorithm it verifies */
    unsigned char *material; /* HMAC: the secret's bytes */
    size_t len;              /* bytes of material */
    EVP_PKEY *pkey;          /* RSA / EC: the public key, parsed once at start */
} jwt_key;

typedef struct api_key {
    char name[AUTH_NAME_MAX];                     /* who it belongs to: the subject */
    unsigned char hash[crypto_hash_sha256_BYTES]; /* SHA-256 of the key */
    char scopes[GW_EDGE_SUBJECT_MAX];             /* space-separated */
} api_key;

struct edge_auth {
    jwt_key *keys; /* token verification keys */
    size_t nkeys;  /* entries in keys */
    api_key *api;  /* API keys */
    size_t napi;   /* entries in api */
};

/* ---------------------------------------------------------------------------------- */
/* Loading.                                                                            */

/* Reads a whole file (at most AUTH_FILE_MAX bytes), NUL-terminated.  NULL on failure,
 * with the reason in why. */
static char *read_file(const char *path, const char *option, size_t *len, char *why, size_t cap)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(why, cap, "%s %s: %s", option, path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(AUTH_FILE_MAX + 1);
    size_t n = buf ? fread(buf, 1, AUTH_FILE_MAX + 1, f) : 0;
    fclose(f);
    if (!buf || n > AUTH_FILE_MAX) {
        snprintf(why, cap, "%s %s: %s", option, path, buf ? "larger than 1 MiB" : "out of memory");
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

static jwt_key *key_add(struct edge_auth *a)
{
    jwt_key *grown = realloc(a->keys, (a->nkeys + 1) * sizeof(*grown));
    if (!grown)
        return NULL;
    a->keys = grown;
    jwt_key *k = &a->keys[a->nkeys++];
    memset(k, 0, sizeof(*k));
    return k;
}

/* The family of a public key: RSA, or EC on P-256.  0 or -1 for anything else. */
static int key_family_of(EVP_PKEY *pk, key_family *out)
{
    if (EVP_PKEY_is_a(pk, "RSA")) {
        *out = KEY_RSA;
        return 0;
    }
    char group[64];
    size_t glen = 0;
    if (EVP_PKEY_is_a(pk, "EC") &&
        EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                       &glen) == 1 &&
        strcmp(group, "prime256v1") == 0) {
        *out = KEY_EC;
        return 0;
    }
    return -1;
}

/* A PEM public key, parsed; NULL when it is none. */
static EVP_PKEY *pem_key(const char *pem, size_t len)
{
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    EVP_PKEY *pk = bio ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    return pk;
}

/* base64url (no padding) text -> bytes.  Returns the length, or -1. */
static long b64url(const char *text, size_t len, unsigned char *out, size_t cap)
{
    size_t n = 0;
    if (sodium_base642bin(out, cap, text, len, NULL, &n, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0)
        return -1;
    return (long)n;
}

/* A JWK's base64url member as a BIGNUM (caller frees); NULL when absent or bad. */
static BIGNUM *jwk_bn(json_t *jwk, const char *name)
{
    const char *s = json_string_value(json_object_get(jwk, name));
    unsigned char buf[1024];
    long n = s ? b64url(s, strlen(s), buf, sizeof(buf)) : -1;
    return n > 0 ? BN_bin2bn(buf, (int)n, NULL) : NULL;
}

/* An RSA JWK (n, e) as a public key. */
static EVP_PKEY *jwk_rsa(json_t *jwk)
{
    BIGNUM *n = jwk_bn(jwk, "n"), *e = jwk_bn(jwk, "e");
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    EVP_PKEY *pk = NULL;
    if (!n || !e || !bld || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) ||
        !(params = OSSL_PARAM_BLD_to_param(bld)) ||
        !(ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL)) ||
        EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, params) != 1)
        pk = NULL;
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(n);
    BN_free(e);
    return pk;
}

/* An EC P-256 JWK (x, y) as a public key. */
static EVP_PKEY *jwk_ec(json_t *jwk)
{
    const char *crv = json_string_value(json_object_get(jwk, "crv"));
    const char *x = json_string_value(json_object_get(jwk, "x"));
    const char *y = json_string_value(json_object_get(jwk, "y"));
    unsigned char point[65];
    if (!crv || strcmp(crv, "P-256") != 0 || !x || !y ||
        b64url(x, strlen(x), point + 1, 32) != 32 || b64url(y, strlen(y), point + 33, 32) != 32)
        return NULL;
    point[0] = 0x04; /* uncompressed */
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)"prime256v1", 0),
        OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point)),
        OSSL_PARAM_construct_end()};
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    EVP_PKEY *pk = NULL;
    if (!ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, params) != 1)
        pk = NULL;
    EVP_PKEY_CTX_free(ctx);
    return pk;
}

static int load_jwks(struct edge_auth *a, const char *path, char *why, size_t cap)
{
    size_t len;
    char *text = read_file(path, "--jwks-file", &len, why, cap);
    if (!text)
        return -1;
    json_error_t err;
    json_t *doc = json_loadb(text, len, 0, &err);
    free(text);
    json_t *keys = json_object_get(doc, "keys");
    if (!json_is_array(keys)) {
        snprintf(why, cap, "--jwks-file %s: not a JWKS document (no \"keys\" array)", path);
        json_decref(doc);
        return -1;
    }
    size_t i;
    json_t *jwk;
    json_array_foreach(keys, i, jwk)
    {
        const char *kty = json_string_value(json_object_get(jwk, "kty"));
        const char *kid = json_string_value(json_object_get(jwk, "kid"));
        const char *use = json_string_value(json_object_get(jwk, "use"));
        if (use && strcmp(use, "sig") != 0)
            continue; /* an encryption key is not for verifying tokens */
        jwt_key *k = key_add(a);
        if (!k) {
            snprintf(why, cap, "--jwks-file: out of memory");
            json_decref(doc);
            return -1;
        }
        snprintf(k->kid, sizeof(k->kid), "%s", kid ? kid : "");
        EVP_PKEY *pk = NULL;
        if (kty && strcmp(kty, "RSA") == 0 && (pk = jwk_rsa(jwk))) {
            k->family = KEY_RSA;
        } else if (kty && strcmp(kty, "EC") == 0 && (pk = jwk_ec(jwk))) {
            k->family = KEY_EC;
        } else if (kty && strcmp(kty, "oct") == 0) {
            const char *kv = json_string_value(json_object_get(jwk, "k"));
            size_t klen = kv ? strlen(kv) : 0;
            k->family = KEY_HMAC;
            k->material = malloc(klen + 1);
            long n = k->material ? b64url(kv, klen, k->material, klen + 1) : -1;
            if (n < (long)AUTH_SECRET_MIN) {
                snprintf(why, cap,
                         "--jwks-file %s: key %zu: oct key missing or shorter than %u bytes", path,
                         i, AUTH_SECRET_MIN);
                json_decref(doc);
                return -1;
            }
            k->len = (size_t)n;
            continue;
        } else {
            snprintf(why, cap,
                     "--jwks-file %s: key %zu: unsupported or malformed (RSA, EC P-256 "
                     "and oct keys are)",
                     path, i);
            json_decref(doc);
            return -1;
        }
        k->pkey = pk;
    }
    json_decref(doc);
    return 0;
}

/* Parses 64 hex digits into 32 bytes.  0 or -1. */
static int parse_hash(const char *hex, size_t len, unsigned char *out)
{
    size_t n = 0;
    if (len != 2 * crypto_hash_sha256_BYTES ||
        sodium_hex2bin(out, crypto_hash_sha256_BYTES, hex, len, NULL, &n, NULL) != 0 ||
        n != crypto_hash_sha256_BYTES)
        return -1;
    return 0;
}

static int load_api_keys(struct edge_auth *a, const char *path, char *why, size_t cap)
{
    size_t len;
    char *text = read_file(path, "--api-keys-file", &len, why, cap);
    if (!text)
        return -1;
    int lineno = 0, rc = 0;
    for (char *line = text, *next; line && *line; line = next) {
        lineno++;
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        char *save = NULL;
        char *name = strtok_r(line, " \t\r", &save);
        if (!name || name[0] == '#')
            continue;
        char *hash = strtok_r(NULL, " \t\r", &save);
        api_key *grown = realloc(a->api, (a->napi + 1) * sizeof(*grown));
        if (!grown) {
            snprintf(why, cap, "--api-keys-file: out of memory");
            rc = -1;
            break;
        }
        a->api = grown;
        api_key *k = &a->api[a->napi];
        memset(k, 0, sizeof(*k));
        if (!hash || strlen(name) >= sizeof(k->name) || parse_hash(hash, strlen(hash), k->hash)) {
            snprintf(why, cap, "--api-keys-file %s:%d: want \"NAME SHA256-HEX [SCOPE...]\"", path,
                     lineno);
            rc = -1;
            break;
        }
        snprintf(k->name, sizeof(k->name), "%s", name);
        for (char *s; (s = strtok_r(NULL, " \t\r", &save));) {
            size_t used = strlen(k->scopes);
            if (used + strlen(s) + 2 > sizeof(k->scopes))
                break;
            snprintf(k->scopes + used, sizeof(k->scopes) - used, "%s%s", used ? " " : "", s);
        }
        a->napi++;
    }
    free(text);
    return rc;
}

int gw__auth_init(gw_edge *e, char *why, size_t cap)
{
    const gw_edge_config *c = &e->cfg;
    bool any = (c->jwt_secret_file && *c->jwt_secret_file) ||
               (c->jwt_public_key_file && *c->jwt_public_key_file) ||
               (c->jwks_file && *c->jwks_file) || (c->api_keys_file && *c->api_keys_file);
    if (!any) {
        if (c->auth_default != BR_AUTH_NONE)
            gw_log(GW_LOG_WARN, "edge",
                   "--auth-default is not none but no key is configured: every request to a "
                   "route that requires authentication is answered 401");
        return 0;
    }
    if (sodium_init() < 0) {
        snprintf(why, cap, "edge: sodium_init failed");
        return -1;
    }
    struct edge_auth *a = calloc(1, sizeof(*a));
    if (!a) {
        snprintf(why, cap, "edge: out of memory");
        return -1;
    }
    e->auth = a;
    size_t len;
    if (c->jwt_secret_file && *c->jwt_secret_file) {
        char *s = read_file(c->jwt_secret_file, "--jwt-secret-file", &len, why, cap);
        if (!s)
            return -1;
        while (len && (s[len - 1] == '\n' || s[len - 1] == '\r'))
            len--;
        jwt_key *k = key_add(a);
        if (!k || len < AUTH_SECRET_MIN) {
            snprintf(why, cap, "--jwt-secret-file %s: %s", c->jwt_secret_file,
                     k ? "shorter than 32 bytes" : "out of memory");
            free(s);
            return -1;
        }
        k->family = KEY_HMAC;
        k->material = (unsigned char *)s;
        k->len = len;
    }
    if (c->jwt_public_key_file && *c->jwt_public_key_file) {
        char *pem = read_file(c->jwt_public_key_file, "--jwt-public-key-file", &len, why, cap);
        if (!pem)
            return -1;
        key_family fam;
        EVP_PKEY *pk = pem_key(pem, len);
        free(pem);
        jwt_key *k = pk && key_family_of(pk, &fam) == 0 ? key_add(a) : NULL;
        if (!k) {
            snprintf(why, cap, "--jwt-public-key-file %s: not a PEM RSA or EC P-256 public key",
                     c->jwt_public_key_file);
            EVP_PKEY_free(pk);
            return -1;
        }
        k->family = fam;
        k->pkey = pk;
    }
    if (c->jwks_file && *c->jwks_file && load_jwks(a, c->jwks_file, why, cap) != 0)
        return -1;
    if (c->api_keys_file && *c->api_keys_file && load_api_keys(a, c->api_keys_file, why, cap) != 0)
        return -1;
    gw_log(GW_LOG_INFO, "edge", "authentication: %zu token keys, %zu API keys; default %s",
           a->nkeys, a->napi,
           c->auth_default == BR_AUTH_REQUIRED   ? "required"
           : c->auth_default == BR_AUTH_OPTIONAL ? "optional"
                                                 : "none");
    return 0;
}

void gw__auth_free(gw_edge *e)
{
    struct edge_auth *a = e->auth;
    if (!a)
        return;
    for (size_t i = 0; i < a->nkeys; i++) {
        free(a->keys[i].material);
        EVP_PKEY_free(a->keys[i].pkey);
    }
    free(a->keys);
    free(a->api);
    free(a);
    e->auth = NULL;
}

/* ---------------------------------------------------------------------------------- */
/* The identity handed to the worker.                                                  */

static int buf_write(void *data, const char *bytes, size_t len)
{
    return br_buf_append(data, bytes, len) == 0 ? 0 : -1;
}

static void pack_text(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

/* {"kind":KIND,"sub":SUB,"scopes":[...],"claims":CLAIMS} into er->identity; claims is
 * JSON text (converted to msgpack) or NULL for {"name": SUB}. */
static int build_identity(edge_req *er, const char *kind, const char *sub, const char *scopes,
                          const char *claims_json)
{
    edge_req_bufs *bufs = gw__edge_req_bufs(er);
    if (!bufs)
        return BR_ENOMEM;
    br_buf *b = &bufs->identity;
    b->len = 0;
    b->max = 64 * 1024;
    msgpack_packer pk;
    msgpack_packer_init(&pk, b, buf_write);
    msgpack_pack_map(&pk, 4);
    pack_text(&pk, "kind");
    pack_text(&pk, kind);
    pack_text(&pk, "sub");
    pack_text(&pk, sub);
    pack_text(&pk, "scopes");
    size_t n = 0;
    for (const char *p = scopes; *p;) {
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        n++;
        while (*p && *p != ' ')
            p++;
    }
    msgpack_pack_array(&pk, n);
    for (const char *p = scopes; *p;) {
        while (*p == ' ')
            p++;
        const char *s = p;
        while (*p && *p != ' ')
            p++;
        if (p > s) {
            msgpack_pack_str(&pk, (size_t)(p - s));
            msgpack_pack_str_body(&pk, s, (size_t)(p - s));
        }
    }
    pack_text(&pk, "claims");
    if (claims_json)
        return gw_json_to_msgpack(claims_json, strlen(claims_json), b, NULL, 0);
    msgpack_pack_map(&pk, 1);
    pack_text(&pk, "name");
    pack_text(&pk, sub);
    return 0;
}

/* ---------------------------------------------------------------------------------- */
/* Verification.                                                                       */

/* Why credentials were refused: the detail's tail and the WWW-Authenticate error. */
typedef struct refusal {
    const char *why; /* "token expired", ... */
} refusal;

static bool has_scope(const char *held, const char *want, size_t n)
{
    for (const char *p = held; *p;) {
        while (*p == ' ')
            p++;
        const char *s = p;
        while (*p && *p != ' ')
            p++;
        if ((size_t)(p - s) == n && memcmp(s, want, n) == 0)
            return true;
    }
    return false;
}

/* The scopes of a claims object: "scope" (space-separated, OAuth 2) or "scp" (a list
 * or a string), written space-separated into out. */
static void claim_scopes(json_t *claims, char *out, size_t cap)
{
    out[0] = '\0';
    json_t *s = json_object_get(claims, "scope");
    if (!s)
        s = json_object_get(claims, "scp");
    if (json_is_string(s)) {
        snprintf(out, cap, "%s", json_string_value(s));
        return;
    }
    size_t i, used = 0;
    json_t *v;
    json_array_foreach(s, i, v)
    {
        const char *t = json_string_value(v);
        if (!t || used + strlen(t) + 2 > cap)
            continue;
        used += (size_t)snprintf(out + used, cap - used, "%s%s", used ? " " : "", t);
    }
}

static bool aud_matches(json_t *aud, const char *want)
{
    if (json_is_string(aud))
        return strcmp(json_string_value(aud), want) == 0;
    size_t i;
    json_t *v;
    json_array_foreach(aud, i, v) if (json_is_string(v) &&
                                      strcmp(json_string_value(v), want) == 0) return true;
    return false;
}

/* Picks the key for a token's alg and kid: only keys of the algorithm's family. */
static const jwt_key *pick_key(const struct edge_auth *a, key_family fam, const char *kid)
{
    const jwt_key *any = NULL;
    for (size_t i = 0; i < a->nkeys; i++) {
        const jwt_key *k = &a->keys[i];
        if (k->family != fam)
            continue;
        if (kid && k->kid[0])
            if (strcmp(kid, k->kid) == 0)
                return k;
        if (!any && (!kid || !k->kid[0]))
            any = k;
    }
    return any;
}

/* Verifies an RS256 or ES256 signature over the token's signing input with the key
 * parsed at start (OpenSSL's EVP; libjwt would parse the PEM again on every call, which
 * costs ten times the verification itself).  True when it holds. */
static bool verify_asym(const jwt_key *k, const char *input, size_t input_len, const char *sig64,
                        size_t sig64_len)
{
    unsigned char sig[1024], der[80];
    long n = b64url(sig64, sig64_len, sig, sizeof(sig));
    if (n <= 0)
        return false;
    const unsigned char *use = sig;
    size_t use_len = (size_t)n;
    if (k->family == KEY_EC) {
        /* JWS carries r || s; OpenSSL wants the DER ECDSA-Sig-Value. */
        if (n != 64)
            return false;
        ECDSA_SIG *es = ECDSA_SIG_new();
        BIGNUM *r = BN_bin2bn(sig, 32, NULL), *sv = BN_bin2bn(sig + 32, 32, NULL);
        if (!es || !r || !sv || ECDSA_SIG_set0(es, r, sv) != 1) {
            ECDSA_SIG_free(es);
            BN_free(r);
            BN_free(sv);
            return false;
        }
        unsigned char *p = der;
        int dl = i2d_ECDSA_SIG(es, NULL) <= (int)sizeof(der) ? i2d_ECDSA_SIG(es, &p) : -1;
        ECDSA_SIG_free(es);
        if (dl <= 0)
            return false;
        use = der;
        use_len = (size_t)dl;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok = ctx && EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, k->pkey) == 1 &&
              EVP_DigestVerify(ctx, use, use_len, (const unsigned char *)input, input_len) == 1;
    EVP_MD_CTX_free(ctx);
    return ok;
}

/* Verifies a bearer token; on success fills er's subject and identity and writes the
 * caller's scopes into `scopes`.  NULL on success, else why it was refused. */
static const char *verify_jwt(gw_edge *e, const char *token, edge_req *er, char *scopes,
                              size_t scopes_cap)
{
    const struct edge_auth *a = e->auth;
    size_t tlen = strlen(token);
    const char *end = token + tlen;
    const char *dot1 = memchr(token, '.', tlen);
    const char *dot2 = dot1 ? memchr(dot1 + 1, '.', (size_t)(end - dot1 - 1)) : NULL;
    if (!a || a->nkeys == 0)
        return "no token keys are configured";
    if (tlen > AUTH_TOKEN_MAX || !dot2 || memchr(dot2 + 1, '.', (size_t)(end - dot2 - 1)))
        return "malformed token";
    unsigned char head[1024];
    long hlen = b64url(token, (size_t)(dot1 - token), head, sizeof(head) - 1);
    json_error_t jerr;
    json_t *hdr = hlen > 0 ? json_loadb((const char *)head, (size_t)hlen, 0, &jerr) : NULL;
    const char *alg = json_string_value(json_object_get(hdr, "alg"));
    const char *kid = json_string_value(json_object_get(hdr, "kid"));
    const char *why = NULL;
    key_family fam = KEY_HMAC;
    if (!hdr)
        why = "malformed token";
    else if (!alg || strcasecmp(alg, "none") == 0)
        why = "unsigned tokens are refused";
    else if (strcmp(alg, "HS256") == 0)
        fam = KEY_HMAC;
    else if (strcmp(alg, "RS256") == 0)
        fam = KEY_RSA;
    else if (strcmp(alg, "ES256") == 0)
        fam = KEY_EC;
    else
        why = "unsupported algorithm";
    const jwt_key *k = why ? NULL : pick_key(a, fam, kid);
    json_decref(hdr);
    if (!why && !k)
        why = "no key for the token's algorithm";
    if (!why && fam == KEY_HMAC) {
        /* libjwt checks the HMAC, and must agree on the algorithm. */
        jwt_t *jwt = NULL;
        if (jwt_decode(&jwt, token, k->material, (int)k->len) != 0 || !jwt)
            why = "signature verification failed";
        else if (jwt_get_alg(jwt) != JWT_ALG_HS256)
            why = "algorithm mismatch";
        jwt_free(jwt);
    } else if (!why &&
               !verify_asym(k, token, (size_t)(dot2 - token), dot2 + 1, (size_t)(end - dot2 - 1))) {
        why = "signature verification failed";
    }
    if (why)
        return why;
    /* The claims, now that the signature over them holds. */
    size_t plen64 = (size_t)(dot2 - dot1 - 1);
    char *payload = malloc(plen64 + 1);
    long plen = payload ? b64url(dot1 + 1, plen64, (unsigned char *)payload, plen64) : -1;
    json_t *claims = plen > 0 ? json_loadb(payload, (size_t)plen, 0, &jerr) : NULL;
    time_t now = time(NULL);
    long long leeway = e->cfg.jwt_leeway_s;
    json_t *exp = json_object_get(claims, "exp"), *nbf = json_object_get(claims, "nbf");
    const char *iss = json_string_value(json_object_get(claims, "iss"));
    const char *sub = json_string_value(json_object_get(claims, "sub"));
    if (!json_is_object(claims))
        why = "malformed claims";
    else if (!json_is_number(exp))
        why = "token has no exp";
    else if ((double)now >= json_number_value(exp) + (double)leeway)
        why = "token expired";
    else if (nbf && (!json_is_number(nbf) || (double)now + (double)leeway < json_number_value(nbf)))
        why = "token not valid yet";
    else if (*e->cfg.jwt_issuer && (!iss || strcmp(iss, e->cfg.jwt_issuer) != 0))
        why = "wrong issuer";
    else if (*e->cfg.jwt_audience &&
             !aud_matches(json_object_get(claims, "aud"), e->cfg.jwt_audience))
        why = "wrong audience";
    if (!why) {
        int rc;
        claim_scopes(claims, scopes, scopes_cap);
        payload[plen] = '\0';
        if (gw__edge_set_subject(er, sub ? sub : "") != 0)
            why = "out of memory";
        else if ((rc = build_identity(er, "jwt", er->subject ? er->subject : "", scopes,
                                      payload)) != 0)
            why = rc == BR_ENOMEM ? "out of memory" : "claims too large";
    }
    json_decref(claims);
    free(payload);
    return why;
}

/* Checks an API key; on success fills er and the key's scopes.  NULL or why not. */
static const char *verify_api_key(gw_edge *e, const gw_header *h, edge_req *er, char *scopes,
                                  size_t cap)
{
    const struct edge_auth *a = e->auth;
    if (!a || a->napi == 0)
        return "no API keys are configured";
    unsigned char digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(digest, (const unsigned char *)h->value, h->value_len);
    const api_key *found = NULL;
    for (size_t i = 0; i < a->napi; i++)
        if (sodium_memcmp(digest, a->api[i].hash, sizeof(digest)) == 0 && !found)
            found = &a->api[i];
    if (!found)
        return "unknown API key";
    if (gw__edge_set_subject(er, found->name) != 0)
        return "out of memory";
    snprintf(scopes, cap, "%s", found->scopes);
    int rc = build_identity(er, "api_key", found->name, found->scopes, NULL);
    if (rc != 0)
        return rc == BR_ENOMEM ? "out of memory" : "identity too large";
    return NULL;
}

bool gw__auth_request(gw_edge *e, gw_req *req, edge_req *er)
{
    const gw_route *route = req->match.route;
    if (er->bufs)
        er->bufs->identity.len = 0;
    if (!route)
        return false;
    const gw_route_policy *pol = route->policy;
    er->drop_auth = !(pol && pol->forward_token);
    uint8_t mode = pol && pol->auth != BR_AUTH_DEFAULT ? pol->auth : e->cfg.auth_default;
    if (mode == BR_AUTH_NONE)
        return false;
    const gw_header *authz = gw_req_header(req, "authorization");
    const gw_header *apikey = gw_req_header(req, "x-api-key");
    const char *token = NULL;
    if (authz && authz->value_len > 7 && strncasecmp(authz->value, "Bearer ", 7) == 0) {
        token = authz->value + 7;
        while (*token == ' ')
            token++;
    }
    if (!token && !apikey) {
        if (mode != BR_AUTH_REQUIRED)
            return false;
        static const gw_header www = {"WWW-Authenticate", 16, "Bearer", 6};
        gw__edge_refuse(req, 401, "Not authenticated", &www, 1);
        return true;
    }
    char scopes[GW_EDGE_SUBJECT_MAX];
    scopes[0] = '\0';
    const char *why = token ? verify_jwt(e, token, er, scopes, sizeof(scopes))
                            : verify_api_key(e, apikey, er, scopes, sizeof(scopes));
    if (why) {
        gw__edge_set_subject(er, NULL);
        if (er->bufs)
            er->bufs->identity.len = 0;
        char detail[GW_DETAIL_MAX], challenge[GW_DETAIL_MAX];
        snprintf(detail, sizeof(detail), "Could not validate credentials: %s", why);
        snprintf(challenge, sizeof(challenge),
                 "Bearer error=\"invalid_token\", error_description=\"%s\"", why);
        gw_header www = {"WWW-Authenticate", 16, challenge, strlen(challenge)};
        gw__edge_refuse(req, 401, detail, &www, 1);
        return true;
    }
    const char *need = pol && pol->scopes ? pol->scopes : "";
    for (const char *p = need; *p;) {
        while (*p == ' ')
            p++;
        const char *s = p;
        while (*p && *p != ' ')
            p++;
        if (p > s && !has_scope(scopes, s, (size_t)(p - s))) {
            char challenge[GW_DETAIL_MAX];
            snprintf(challenge, sizeof(challenge),
                     "Bearer error=\"insufficient_scope\", scope=\"%s\"", need);
            gw_header www = {"WWW-Authenticate", 16, challenge, strlen(challenge)};
            gw__edge_refuse(req, 403, "Not enough permissions", &www, 1);
            return true;
        }
    }
    return false;
}
