/*
 * ws_handshake.c - Sec-WebSocket-Accept and the header lists of the opening handshake.
 *
 * SHA-1 and base64 come from OpenSSL's libcrypto, already linked by the gateway for
 * its JWT keys; the handshake is the only use of SHA-1, which RFC 6455 fixes.
 */
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "barista/types.h"
#include "ws_handshake.h"

/* The GUID RFC 6455 appends to the key (section 1.3). */
static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/* The value of a base64 character, or -1. */
static int b64_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* The client's key is 16 random bytes in base64: 22 characters whose last carries 2
 * bits (its low 4 bits zero), then "==". */
static bool key_valid(const char *key, size_t len)
{
    if (len != 24 || key[22] != '=' || key[23] != '=')
        return false;
    for (size_t i = 0; i < 22; i++)
        if (b64_value(key[i]) < 0)
            return false;
    return (b64_value(key[21]) & 0x0f) == 0;
}

int gw_ws_accept_key(const char *key, size_t key_len, char out[GW_WS_ACCEPT_LEN + 1])
{
    if (!key_valid(key, key_len))
        return BR_EVALUE;
    char joined[24 + sizeof(ws_guid)];
    memcpy(joined, key, 24);
    memcpy(joined + 24, ws_guid, sizeof(ws_guid) - 1);
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    if (!EVP_Digest(joined, 24 + sizeof(ws_guid) - 1, digest, &dlen, EVP_sha1(), NULL) ||
        dlen != 20)
        return BR_EIO;
    if (EVP_EncodeBlock((unsigned char *)out, digest, 20) != GW_WS_ACCEPT_LEN)
        return BR_EIO;
    return 0;
}

/* Steps through a comma-separated list: the next element (trimmed) of s[*at..len);
 * false at the end. */
static bool next_element(const char *s, size_t len, size_t *at, const char **el, size_t *el_len)
{
    while (*at < len) {
        size_t i = *at;
        while (i < len && s[i] != ',')
            i++;
        size_t b = *at, e = i;
        *at = i < len ? i + 1 : len;
        while (b < e && (s[b] == ' ' || s[b] == '\t'))
            b++;
        while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t'))
            e--;
        if (e > b) {
            *el = s + b;
            *el_len = e - b;
            return true;
        }
    }
    return false;
}

bool gw_ws_header_has_token(const char *value, size_t len, const char *token)
{
    size_t at = 0, tlen = strlen(token), n;
    const char *el;
    while (value && next_element(value, len, &at, &el, &n))
        if (n == tlen && strncasecmp(el, token, n) == 0)
            return true;
    return false;
}

/* True when the space-separated list s[0..len) holds exactly name[0..n). */
static bool word_listed(const char *s, size_t len, const char *name, size_t n)
{
    size_t i = 0;
    while (i < len) {
        while (i < len && s[i] == ' ')
            i++;
        size_t b = i;
        while (i < len && s[i] != ' ')
            i++;
        if (i - b == n && n > 0 && memcmp(s + b, name, n) == 0)
            return true;
    }
    return false;
}

bool gw_ws_pick_subprotocol(const char *offered, size_t offered_len, const char *supported,
                            size_t supported_len, const char **name, size_t *name_len)
{
    size_t at = 0, n;
    const char *el;
    while (offered && supported && next_element(offered, offered_len, &at, &el, &n)) {
        if (word_listed(supported, supported_len, el, n)) {
            *name = el;
            *name_len = n;
            return true;
        }
    }
    return false;
}
