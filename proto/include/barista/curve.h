/*
 * barista/curve.h - ZeroMQ CURVE keys for worker authentication: certificates in
 * CZMQ's format, and the socket options that turn CURVE on.
 *
 * A key pair lives in CZMQ's certificate files (zcert; ZPL, ZeroMQ RFC 4), the format
 * every CZMQ program reads and writes: NAME holds the public key and NAME_secret both
 * keys, each as 40 Z85 characters (RFC 32), with an optional metadata section:
 *
 *     metadata
 *         name = "io-worker"
 *         services = "hello,echo"
 *     curve
 *         public-key = "<40 Z85 characters>"
 *         secret-key = "<40 Z85 characters>"      (NAME_secret only)
 *
 * barista-keygen writes them (zcert_save); the gateway reads its own secret
 * certificate and a directory of workers' public certificates (a zcertstore), and a
 * worker its secret certificate and the gateway's public one.  Files in the key
 * format of earlier versions ("public-key: KEY" lines) are refused with a reason that
 * says so.  Nothing here logs: errors come back as a br_err and a one-line reason.
 */
#ifndef BARISTA_CURVE_H
#define BARISTA_CURVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* CZMQ's certificate (czmq.h, zcert): declared here so that this header needs no
 * CZMQ headers. */
struct _zcert_t;

/* Bytes of a raw CURVE key. */
#define BR_CURVE_KEY_LEN 32
/* Characters of a key in Z85. */
#define BR_CURVE_Z85_LEN 40
/* Longest certificate file read (one holds two keys and a little metadata). */
#define BR_CURVE_CERT_MAX (64 * 1024)
/* Longest path of a certificate: CZMQ builds NAME_secret in a 256-byte buffer. */
#define BR_CURVE_PATH_MAX 240
/* Certificate metadata: a name for log lines, and the services the key may serve
 * ("a,b" or "*"; docs/broker.md). */
#define BR_CURVE_META_NAME     "name"
#define BR_CURVE_META_SERVICES "services"

/* A key pair in Z85, NUL-terminated.  The secret is wiped by br_curve_keypair_wipe. */
typedef struct br_curve_keypair {
    char public_key[BR_CURVE_Z85_LEN + 1]; /* shared with peers */
    char secret_key[BR_CURVE_Z85_LEN + 1]; /* never leaves its owner */
} br_curve_keypair;

/* True when text[0..len) is exactly one well-formed Z85 key (40 characters of the Z85
 * alphabet); the raw key goes to raw when it is not NULL. */
bool br_curve_key_valid(const char *text, size_t len, uint8_t raw[BR_CURVE_KEY_LEN]);

/* The Z85 text of a raw key into out (41 bytes). */
void br_curve_key_z85(const uint8_t raw[BR_CURVE_KEY_LEN], char out[BR_CURVE_Z85_LEN + 1]);

/* A new random key pair (tests; barista-keygen uses zcert_new).  0, or BR_EIO when
 * libzmq has no CURVE support. */
int br_curve_keypair_generate(br_curve_keypair *out);

/* Reads one certificate file.  With need_secret it must hold the secret key, and the
 * public key must be the one the secret key yields (a pasted mismatch is refused).
 * Every key is checked as Z85 (CZMQ's own loader would take a mistyped key as a
 * different one).  0 and *out, which the caller destroys with zcert_destroy; BR_EIO
 * (cannot read: the reason names errno), BR_ELIMIT (larger than BR_CURVE_CERT_MAX) or
 * BR_EVALUE (not a certificate, a bad key, or the old key format) with a reason in
 * why (why_len bytes, NUL-terminated). */
int br_curve_cert_read(const char *path, bool need_secret, struct _zcert_t **out, char *why,
                       size_t why_len);

/* The key pair of a secret certificate file (br_curve_cert_read with need_secret). */
int br_curve_keypair_read(const char *path, br_curve_keypair *out, char *why, size_t why_len);

/* Overwrites the secret key in memory. */
void br_curve_keypair_wipe(br_curve_keypair *kp);

/* A public key given as "KEY" or "@FILE", where FILE is a certificate, public or
 * secret (its public key is taken).  Since '@' is a Z85 character, an argument that is
 * a valid key is always taken as the key.  0, BR_EVALUE, BR_ELIMIT or BR_EIO with the
 * reason in why. */
int br_curve_public_key_load(const char *arg, char out[BR_CURVE_Z85_LEN + 1], char *why,
                             size_t why_len);

/* Makes a ROUTER socket a CURVE server with kp's secret key and ZAP domain `domain`
 * (so that every handshake is put to the ZAP handler).  Call before zmq_bind.  0, or
 * BR_EIO with the failed option in why. */
int br_curve_server_setup(void *zmq_socket, const br_curve_keypair *kp, const char *domain,
                          char *why, size_t why_len);

/* Makes a socket a CURVE client of the server whose public key is server_key (Z85),
 * authenticating with kp.  Call before zmq_connect.  0, or BR_EIO with why. */
int br_curve_client_setup(void *zmq_socket, const char *server_key, const br_curve_keypair *kp,
                          char *why, size_t why_len);

#ifdef __cplusplus
}
#endif

#endif /* BARISTA_CURVE_H */
