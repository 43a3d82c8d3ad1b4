/*
 * curve.c - CURVE keys and certificates, and the CURVE socket options (see
 * barista/curve.h).
 *
 * Certificates are CZMQ's (zcert): the file is read here, whole and bounded, parsed by
 * CZMQ's ZPL reader (zconfig) and turned into a zcert with its metadata.  zcert_load
 * is not used because it decodes keys without checking them: a mistyped character
 * would silently make a different key.  A certificate may come from a mounted volume
 * we do not control, so every length and key is checked and the old barista key
 * format is recognised and refused with a reason that says what to do.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <czmq.h>
#include <zmq.h>

#include "barista/curve.h"
#include "barista/proto.h"

/* The Z85 alphabet (RFC 32), to check text before libzmq decodes it. */
static const char z85_chars[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                ".-:+=^!/*?&<>()[]{}@%$#";

/* Formats a reason into why (why_len bytes, NUL-terminated); nothing when why is NULL. */
static void set_why(char *why, size_t why_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_why(char *why, size_t why_len, const char *fmt, ...)
{
    if (!why || why_len == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, why_len, fmt, ap);
    va_end(ap);
}

bool br_curve_key_valid(const char *text, size_t len, uint8_t raw[BR_CURVE_KEY_LEN])
{
    char z[BR_CURVE_Z85_LEN + 1];
    uint8_t scratch[BR_CURVE_KEY_LEN];
    if (!text || len != BR_CURVE_Z85_LEN)
        return false;
    for (size_t i = 0; i < len; i++)
        if (text[i] == '\0' || !strchr(z85_chars, text[i]))
            return false;
    memcpy(z, text, len);
    z[len] = '\0';
    return zmq_z85_decode(raw ? raw : scratch, z) != NULL;
}

void br_curve_key_z85(const uint8_t raw[BR_CURVE_KEY_LEN], char out[BR_CURVE_Z85_LEN + 1])
{
    zmq_z85_encode(out, raw, BR_CURVE_KEY_LEN);
}

int br_curve_keypair_generate(br_curve_keypair *out)
{
    return zmq_curve_keypair(out->public_key, out->secret_key) == 0 ? 0 : BR_EIO;
}

/* Overwrites n bytes at p; volatile, so that the compiler may not drop stores to memory
 * that is freed or goes out of scope right after. */
static void wipe(void *p, size_t n)
{
    volatile char *v = p;
    for (size_t i = 0; i < n; i++)
        v[i] = 0;
}

void br_curve_keypair_wipe(br_curve_keypair *kp)
{
    wipe(kp->secret_key, sizeof(kp->secret_key));
}

/* Overwrites and frees a file's text (it may hold a secret key). */
static void free_secret_text(char *text, size_t len)
{
    wipe(text, len);
    free(text);
}

/* Reads a regular file of at most BR_CURVE_CERT_MAX bytes into a new NUL-terminated
 * buffer (free it with free_secret_text).  0; BR_EIO, BR_ELIMIT or BR_ENOMEM with
 * why. */
static int read_file(const char *path, char **text, size_t *len, char *why, size_t why_len)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        set_why(why, why_len, "open(%s): %s", path, strerror(errno));
        return BR_EIO;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        set_why(why, why_len, "%s: not a regular file", path);
        close(fd);
        return BR_EIO;
    }
    if (st.st_size > BR_CURVE_CERT_MAX) {
        set_why(why, why_len, "%s: larger than %d bytes", path, BR_CURVE_CERT_MAX);
        close(fd);
        return BR_ELIMIT;
    }
    char *buf = malloc((size_t)st.st_size + 1);
    size_t got = 0;
    if (!buf) {
        set_why(why, why_len, "%s: out of memory", path);
        close(fd);
        return BR_ENOMEM;
    }
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            set_why(why, why_len, "read(%s): %s", path, r < 0 ? strerror(errno) : "short");
            free_secret_text(buf, got);
            close(fd);
            return BR_EIO;
        }
        got += (size_t)r;
    }
    close(fd);
    buf[got] = '\0';
    *text = buf;
    *len = got;
    return 0;
}

/* True when text looks like a key file of barista before certificates: a
 * "public-key:" or "secret-key:" line, or a line that starts with a bare Z85 key (an
 * authorised-keys line).  Such a file is not a certificate; saying so beats a ZPL
 * syntax error. */
static bool old_format(const char *text, size_t len)
{
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *stop = nl ? nl : end;
        while (p < stop && (*p == ' ' || *p == '\t'))
            p++;
        size_t n = (size_t)(stop - p), k = 0;
        while (k < n && p[k] != ' ' && p[k] != '\t' && p[k] != '\r')
            k++;
        if ((n >= 11 && (memcmp(p, "public-key:", 11) == 0 || memcmp(p, "secret-key:", 11) == 0)) ||
            br_curve_key_valid(p, k, NULL))
            return true;
        p = nl ? nl + 1 : end;
    }
    return false;
}

/* The key at `path` (e.g. "curve/public-key") of a parsed certificate, checked.  0 and
 * raw filled; BR_EVALUE with why naming `what` when missing or malformed. */
static int cert_key(zconfig_t *root, const char *path, const char *file, const char *what,
                    uint8_t raw[BR_CURVE_KEY_LEN], char *why, size_t why_len)
{
    const char *text = zconfig_get(root, path, NULL);
    if (!text || !text[0]) {
        set_why(why, why_len, "%s: no %s in its curve section", file, what);
        return BR_EVALUE;
    }
    if (!br_curve_key_valid(text, strlen(text), raw)) {
        set_why(why, why_len, "%s: the %s is not %d Z85 characters", file, what, BR_CURVE_Z85_LEN);
        return BR_EVALUE;
    }
    return 0;
}

int br_curve_cert_read(const char *path, bool need_secret, zcert_t **out, char *why, size_t why_len)
{
    char *text = NULL;
    size_t len = 0;
    zconfig_t *root = NULL;
    uint8_t pub[BR_CURVE_KEY_LEN], sec[BR_CURVE_KEY_LEN];
    int rc;
    *out = NULL;
    memset(sec, 0, sizeof(sec));
    if (strlen(path) > BR_CURVE_PATH_MAX) {
        set_why(why, why_len, "%.64s...: path longer than %d bytes", path, BR_CURVE_PATH_MAX);
        return BR_EINVAL;
    }
    if ((rc = read_file(path, &text, &len, why, why_len)) != 0)
        return rc;
    rc = BR_EVALUE;
    if (old_format(text, len)) {
        set_why(why, why_len,
                "%s is a key file of the format before certificates; make a certificate with "
                "barista-keygen (docs/broker.md, \"Keys\")",
                path);
        goto done;
    }
    root = zconfig_str_load(text);
    if (!root || !zconfig_locate(root, "curve")) {
        set_why(why, why_len, "%s: not a ZeroMQ certificate (no curve section)", path);
        goto done;
    }
    if (cert_key(root, "curve/public-key", path, "public-key", pub, why, why_len) != 0)
        goto done;
    if (need_secret) {
        char sec_z85[BR_CURVE_Z85_LEN + 1], pub_z85[BR_CURVE_Z85_LEN + 1];
        char derived[BR_CURVE_Z85_LEN + 1];
        if (cert_key(root, "curve/secret-key", path, "secret-key", sec, why, why_len) != 0)
            goto done;
        br_curve_key_z85(sec, sec_z85);
        br_curve_key_z85(pub, pub_z85);
        bool match = zmq_curve_public(derived, sec_z85) == 0 && strcmp(derived, pub_z85) == 0;
        wipe(sec_z85, sizeof(sec_z85));
        if (!match) {
            set_why(why, why_len, "%s: the public key does not belong to the secret key", path);
            goto done;
        }
    }
    *out = zcert_new_from(pub, sec);
    if (!*out) {
        set_why(why, why_len, "%s: out of memory", path);
        rc = BR_ENOMEM;
        goto done;
    }
    zconfig_t *meta = zconfig_locate(root, "metadata");
    for (zconfig_t *item = meta ? zconfig_child(meta) : NULL; item; item = zconfig_next(item)) {
        const char *value = zconfig_value(item);
        zcert_set_meta(*out, zconfig_name(item), "%s", value ? value : "");
    }
    rc = 0;
done:
    wipe(sec, sizeof(sec));
    zconfig_destroy(&root);
    free_secret_text(text, len);
    return rc;
}

int br_curve_keypair_read(const char *path, br_curve_keypair *out, char *why, size_t why_len)
{
    zcert_t *cert;
    memset(out, 0, sizeof(*out));
    int rc = br_curve_cert_read(path, true, &cert, why, why_len);
    if (rc != 0)
        return rc;
    memcpy(out->public_key, zcert_public_txt(cert), BR_CURVE_Z85_LEN + 1);
    memcpy(out->secret_key, zcert_secret_txt(cert), BR_CURVE_Z85_LEN + 1);
    zcert_destroy(&cert);
    return 0;
}

int br_curve_public_key_load(const char *arg, char out[BR_CURVE_Z85_LEN + 1], char *why,
                             size_t why_len)
{
    /* '@' is a Z85 character too: a valid key is a key even when it starts with one. */
    if (br_curve_key_valid(arg, strlen(arg), NULL)) {
        memcpy(out, arg, BR_CURVE_Z85_LEN + 1);
        return 0;
    }
    if (arg[0] != '@') {
        set_why(why, why_len, "not a %d-character Z85 key (or @FILE, a certificate)",
                BR_CURVE_Z85_LEN);
        return BR_EVALUE;
    }
    zcert_t *cert;
    int rc = br_curve_cert_read(arg + 1, false, &cert, why, why_len);
    if (rc != 0)
        return rc;
    memcpy(out, zcert_public_txt(cert), BR_CURVE_Z85_LEN + 1);
    zcert_destroy(&cert);
    return 0;
}

/* Sets one socket option, naming it in why on failure. */
static int set_opt(void *sock, int opt, const void *val, size_t len, const char *name, char *why,
                   size_t why_len)
{
    if (zmq_setsockopt(sock, opt, val, len) == 0)
        return 0;
    set_why(why, why_len, "zmq_setsockopt(%s): %s", name, zmq_strerror(zmq_errno()));
    return BR_EIO;
}

int br_curve_server_setup(void *zmq_socket, const br_curve_keypair *kp, const char *domain,
                          char *why, size_t why_len)
{
    int one = 1;
    if (set_opt(zmq_socket, ZMQ_CURVE_SERVER, &one, sizeof(one), "ZMQ_CURVE_SERVER", why,
                why_len) != 0 ||
        set_opt(zmq_socket, ZMQ_CURVE_SECRETKEY, kp->secret_key, BR_CURVE_Z85_LEN + 1,
                "ZMQ_CURVE_SECRETKEY", why, why_len) != 0 ||
        set_opt(zmq_socket, ZMQ_ZAP_DOMAIN, domain, strlen(domain), "ZMQ_ZAP_DOMAIN", why,
                why_len) != 0)
        return BR_EIO;
    return 0;
}

int br_curve_client_setup(void *zmq_socket, const char *server_key, const br_curve_keypair *kp,
                          char *why, size_t why_len)
{
    if (set_opt(zmq_socket, ZMQ_CURVE_SERVERKEY, server_key, BR_CURVE_Z85_LEN + 1,
                "ZMQ_CURVE_SERVERKEY", why, why_len) != 0 ||
        set_opt(zmq_socket, ZMQ_CURVE_PUBLICKEY, kp->public_key, BR_CURVE_Z85_LEN + 1,
                "ZMQ_CURVE_PUBLICKEY", why, why_len) != 0 ||
        set_opt(zmq_socket, ZMQ_CURVE_SECRETKEY, kp->secret_key, BR_CURVE_Z85_LEN + 1,
                "ZMQ_CURVE_SECRETKEY", why, why_len) != 0)
        return BR_EIO;
    return 0;
}
