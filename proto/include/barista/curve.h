/*
 * barista/curve.h - ZeroMQ CURVE keys for worker authentication: key-pair files,
 * authorised-key sets and the socket options that turn CURVE on.
 *
 * Keys are written in Z85 (ZeroMQ's RFC 32 text form of a 32-byte key: 40 characters).
 * Two file formats, both plain text, '#' starting a comment line, blank lines ignored:
 *
 *   key-pair file (barista-keygen writes it, mode 0600; a gateway's or a worker's own):
 *       public-key: <40 Z85 characters>
 *       secret-key: <40 Z85 characters>
 *
 *   authorised-keys file (the gateway's list of workers allowed to register), one key
 *   per line, optionally followed by white space and a name used in log lines:
 *       <40 Z85 characters> [name]
 *   A directory of such files works too: every regular file in it whose name does not
 *   start with '.' is read, so "one key per file" is the same format.
 *
 * Nothing here logs: errors come back as a br_err and a one-line reason in `why`.
 */
#ifndef BARISTA_CURVE_H
#define BARISTA_CURVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bytes of a raw CURVE key. */
#define BR_CURVE_KEY_LEN 32
/* Characters of a key in Z85. */
#define BR_CURVE_Z85_LEN 40
/* Longest key file read (a key-pair file is ~120 bytes; an authorised-keys file with
 * BR_CURVE_MAX_KEYS named keys fits). */
#define BR_CURVE_FILE_MAX (1024 * 1024)
/* Most keys an authorised set holds. */
#define BR_CURVE_MAX_KEYS 4096
/* Most files read from an authorised-keys directory. */
#define BR_CURVE_MAX_FILES 4096
/* Longest key name kept (longer names are cut). */
#define BR_CURVE_NAME_MAX 64

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

/* A new random key pair.  0, or BR_EIO when libzmq has no CURVE support. */
int br_curve_keypair_generate(br_curve_keypair *out);

/* Parses a key-pair file's text (see the top of this header): both keys present once,
 * valid, and the public key the one the secret key yields.  0 or BR_EVALUE with a
 * reason in why (why_len bytes, NUL-terminated). */
int br_curve_keypair_parse(const char *text, size_t len, br_curve_keypair *out, char *why,
                           size_t why_len);

/* Reads and parses a key-pair file.  0; BR_EIO (cannot read: the reason names errno)
 * or BR_EVALUE/BR_ELIMIT (bad content). */
int br_curve_keypair_read(const char *path, br_curve_keypair *out, char *why, size_t why_len);

/* Writes kp as a new key-pair file, mode 0600; refuses to replace an existing file.
 * 0, or BR_EIO with the reason in why. */
int br_curve_keypair_write(const char *path, const br_curve_keypair *kp, char *why, size_t why_len);

/* Overwrites the secret key in memory. */
void br_curve_keypair_wipe(br_curve_keypair *kp);

/* A public key given as "KEY" or "@FILE", where FILE is an authorised-keys style file
 * holding one key, or a key-pair file (its public key is taken).  Since '@' is a Z85
 * character, an argument that is a valid key is always taken as the key.  0, BR_EVALUE or
 * BR_EIO with the reason in why. */
int br_curve_public_key_load(const char *arg, char out[BR_CURVE_Z85_LEN + 1], char *why,
                             size_t why_len);

typedef struct br_curve_keyset br_curve_keyset;

/* An empty authorised-key set.  Caller owns it; NULL when out of memory. */
br_curve_keyset *br_curve_keyset_new(void);

/* Frees *self_p and sets it to NULL; safe on NULL and twice. */
void br_curve_keyset_destroy(br_curve_keyset **self_p);

/* Adds one key (Z85) with a name (may be NULL or empty).  0 (a key already there is
 * kept once); BR_EVALUE for a bad key; BR_ELIMIT past BR_CURVE_MAX_KEYS; BR_ENOMEM. */
int br_curve_keyset_add(br_curve_keyset *self, const char *z85, size_t len, const char *name,
                        size_t name_len);

/* Adds every key of an authorised-keys text; `source` names it in the reason of a bad
 * line ("FILE:LINE: ...").  0, or the first error of br_curve_keyset_add. */
int br_curve_keyset_parse(br_curve_keyset *self, const char *text, size_t len, const char *source,
                          char *why, size_t why_len);

/* Adds the keys of an authorised-keys file, or of every file in a directory (see the
 * top of this header).  0, BR_EIO (unreadable), BR_EVALUE or BR_ELIMIT, with why. */
int br_curve_keyset_load(br_curve_keyset *self, const char *path, char *why, size_t why_len);

/* Keys in the set. */
size_t br_curve_keyset_count(const br_curve_keyset *self);

/* The name of raw key `raw` ("" when it was given none), or NULL when the key is not
 * in the set.  The string lives as long as the set. */
const char *br_curve_keyset_find(const br_curve_keyset *self, const uint8_t raw[BR_CURVE_KEY_LEN]);

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
