/*
 * curve.c - CURVE keys, key-pair files and the CURVE socket options (see
 * barista/curve.h).  The authorised-key set is in curve_keyset.c.
 *
 * Key files are small and read whole; their text is parsed line by line with every
 * length checked, since a key file may come from a mounted volume we do not control.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zmq.h>

#include "barista/curve.h"
#include "barista/proto.h"
#include "curve_int.h"

/* The Z85 alphabet (RFC 32), to check text before libzmq decodes it. */
static const char z85_chars[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                ".-:+=^!/*?&<>()[]{}@%$#";

void br__curve_why(char *why, size_t why_len, const char *fmt, ...)
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
    if (len != BR_CURVE_Z85_LEN)
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
    if (zmq_curve_keypair(out->public_key, out->secret_key) != 0)
        return BR_EIO;
    return 0;
}

void br_curve_keypair_wipe(br_curve_keypair *kp)
{
    /* volatile: the compiler may not drop a store to memory freed right after. */
    volatile char *p = kp->secret_key;
    for (size_t i = 0; i < sizeof(kp->secret_key); i++)
        p[i] = 0;
}

int br__curve_next_line(const char **p, const char *end, const char **line, size_t *len)
{
    if (*p >= end)
        return 0;
    const char *nl = memchr(*p, '\n', (size_t)(end - *p));
    const char *stop = nl ? nl : end;
    *line = *p;
    *p = nl ? nl + 1 : end;
    /* Trim white space (and a CR) both ends. */
    while (stop > *line && (stop[-1] == ' ' || stop[-1] == '\t' || stop[-1] == '\r'))
        stop--;
    while (*line < stop && (**line == ' ' || **line == '\t'))
        (*line)++;
    *len = (size_t)(stop - *line);
    return 1;
}

/* Copies a 40-character key into out (41 bytes) after checking it. */
static int take_key(const char *v, size_t len, char out[BR_CURVE_Z85_LEN + 1])
{
    if (!br_curve_key_valid(v, len, NULL))
        return BR_EVALUE;
    memcpy(out, v, len);
    out[len] = '\0';
    return 0;
}

int br_curve_keypair_parse(const char *text, size_t len, br_curve_keypair *out, char *why,
                           size_t why_len)
{
    static const char pub[] = "public-key:", sec[] = "secret-key:";
    const char *p = text, *end = text + len, *line;
    size_t n, lineno = 0;
    bool have_pub = false, have_sec = false;
    memset(out, 0, sizeof(*out));
    while (br__curve_next_line(&p, end, &line, &n)) {
        lineno++;
        if (n == 0 || line[0] == '#')
            continue;
        bool is_pub = n >= sizeof(pub) - 1 && memcmp(line, pub, sizeof(pub) - 1) == 0;
        bool is_sec = n >= sizeof(sec) - 1 && memcmp(line, sec, sizeof(sec) - 1) == 0;
        if (!is_pub && !is_sec) {
            br__curve_why(why, why_len, "line %zu: want \"public-key: KEY\" or \"secret-key: KEY\"",
                          lineno);
            goto bad;
        }
        const char *v = line + sizeof(pub) - 1;
        size_t vlen = n - (sizeof(pub) - 1);
        while (vlen > 0 && (*v == ' ' || *v == '\t'))
            v++, vlen--;
        if ((is_pub && have_pub) || (is_sec && have_sec)) {
            br__curve_why(why, why_len, "line %zu: %s given twice", lineno,
                          is_pub ? "public-key" : "secret-key");
            goto bad;
        }
        if (take_key(v, vlen, is_pub ? out->public_key : out->secret_key) != 0) {
            br__curve_why(why, why_len, "line %zu: not a %d-character Z85 key", lineno,
                          BR_CURVE_Z85_LEN);
            goto bad;
        }
        have_pub |= is_pub;
        have_sec |= is_sec;
    }
    if (!have_pub || !have_sec) {
        br__curve_why(why, why_len, "no %s line", have_pub ? "secret-key" : "public-key");
        goto bad;
    }
    char derived[BR_CURVE_Z85_LEN + 1];
    if (zmq_curve_public(derived, out->secret_key) != 0 || strcmp(derived, out->public_key) != 0) {
        br__curve_why(why, why_len, "the public key does not belong to the secret key");
        goto bad;
    }
    return 0;
bad:
    br_curve_keypair_wipe(out);
    return BR_EVALUE;
}

int br__curve_read_file(const char *path, char **text, size_t *len, char *why, size_t why_len)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        br__curve_why(why, why_len, "open(%s): %s", path, strerror(errno));
        return BR_EIO;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        br__curve_why(why, why_len, "%s: not a regular file", path);
        close(fd);
        return BR_EIO;
    }
    if (st.st_size > BR_CURVE_FILE_MAX) {
        br__curve_why(why, why_len, "%s: larger than %d bytes", path, BR_CURVE_FILE_MAX);
        close(fd);
        return BR_ELIMIT;
    }
    char *buf = malloc((size_t)st.st_size + 1);
    size_t got = 0;
    if (!buf) {
        close(fd);
        return BR_ENOMEM;
    }
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            br__curve_why(why, why_len, "read(%s): %s", path, r < 0 ? strerror(errno) : "short");
            free(buf);
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

/* Wipes and frees a file's text that may hold a secret key. */
static void free_secret_text(char *text, size_t len)
{
    volatile char *p = text;
    for (size_t i = 0; i < len; i++)
        p[i] = 0;
    free(text);
}

int br_curve_keypair_read(const char *path, br_curve_keypair *out, char *why, size_t why_len)
{
    char *text;
    size_t len;
    char inner[160];
    int rc = br__curve_read_file(path, &text, &len, why, why_len);
    if (rc != 0)
        return rc;
    rc = br_curve_keypair_parse(text, len, out, inner, sizeof(inner));
    free_secret_text(text, len);
    if (rc != 0)
        br__curve_why(why, why_len, "%s: %s", path, inner);
    return rc;
}

int br_curve_keypair_write(const char *path, const br_curve_keypair *kp, char *why, size_t why_len)
{
    char text[256];
    int n = snprintf(text, sizeof(text),
                     "# Barista CURVE key pair (ZeroMQ CURVE, Z85).  Keep it secret: mode 0600.\n"
                     "public-key: %s\nsecret-key: %s\n",
                     kp->public_key, kp->secret_key);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        br__curve_why(why, why_len, "open(%s): %s", path, strerror(errno));
        return BR_EIO;
    }
    size_t done = 0;
    while (done < (size_t)n) {
        ssize_t w = write(fd, text + done, (size_t)n - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            br__curve_why(why, why_len, "write(%s): %s", path, strerror(errno));
            close(fd);
            unlink(path);
            return BR_EIO;
        }
        done += (size_t)w;
    }
    volatile char *p = text;
    for (size_t i = 0; i < sizeof(text); i++)
        p[i] = 0;
    if (fsync(fd) != 0 || close(fd) != 0) {
        br__curve_why(why, why_len, "fsync/close(%s): %s", path, strerror(errno));
        unlink(path);
        return BR_EIO;
    }
    return 0;
}

int br_curve_public_key_load(const char *arg, char out[BR_CURVE_Z85_LEN + 1], char *why,
                             size_t why_len)
{
    static const char pub[] = "public-key:";
    /* '@' is a Z85 character too: a valid key is a key even when it starts with one. */
    if (take_key(arg, strlen(arg), out) == 0)
        return 0;
    if (arg[0] != '@') {
        br__curve_why(why, why_len, "not a %d-character Z85 key (or @FILE)", BR_CURVE_Z85_LEN);
        return BR_EVALUE;
    }
    char *text;
    size_t len;
    int rc = br__curve_read_file(arg + 1, &text, &len, why, why_len);
    if (rc != 0)
        return rc;
    const char *p = text, *end = text + len, *line;
    size_t n;
    rc = BR_EVALUE;
    br__curve_why(why, why_len, "%s: no key in it", arg + 1);
    while (br__curve_next_line(&p, end, &line, &n)) {
        if (n == 0 || line[0] == '#')
            continue;
        if (n >= sizeof(pub) - 1 && memcmp(line, pub, sizeof(pub) - 1) == 0) {
            line += sizeof(pub) - 1;
            n -= sizeof(pub) - 1;
            while (n > 0 && (*line == ' ' || *line == '\t'))
                line++, n--;
        } else {
            size_t k = 0; /* "KEY [name]": the first word */
            while (k < n && line[k] != ' ' && line[k] != '\t')
                k++;
            n = k;
        }
        if (take_key(line, n, out) == 0)
            rc = 0;
        else
            br__curve_why(why, why_len, "%s: not a %d-character Z85 key", arg + 1,
                          BR_CURVE_Z85_LEN);
        break;
    }
    /* A key-pair file also holds the secret key. */
    free_secret_text(text, len);
    return rc;
}

/* Sets one socket option, naming it in why on failure. */
static int set_opt(void *sock, int opt, const void *val, size_t len, const char *name, char *why,
                   size_t why_len)
{
    if (zmq_setsockopt(sock, opt, val, len) == 0)
        return 0;
    br__curve_why(why, why_len, "zmq_setsockopt(%s): %s", name, zmq_strerror(zmq_errno()));
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
