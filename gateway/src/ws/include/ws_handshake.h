/*
 * ws_handshake.h - the pieces of the WebSocket opening handshake (RFC 6455, 4.2) that
 * need no connection: the Sec-WebSocket-Accept value, header token lists, and the
 * choice of a subprotocol.
 */
#ifndef BARISTA_GW_WS_HANDSHAKE_H
#define BARISTA_GW_WS_HANDSHAKE_H

#include <stdbool.h>
#include <stddef.h>

/* Characters of a Sec-WebSocket-Accept value (base64 of a SHA-1 digest). */
#define GW_WS_ACCEPT_LEN 28

/* The only protocol version served (answered 426 with it otherwise). */
#define GW_WS_VERSION "13"

/* Computes the Sec-WebSocket-Accept answer to the client's Sec-WebSocket-Key into out
 * (NUL-terminated).  Returns 0; BR_EVALUE when key is not the base64 text of 16 bytes
 * (the client is answered 400); BR_EIO when the digest failed. */
int gw_ws_accept_key(const char *key, size_t key_len, char out[GW_WS_ACCEPT_LEN + 1]);

/* True when the comma-separated header value lists `token` (compared without case, blanks
 * around elements ignored): `Connection: keep-alive, Upgrade` lists "upgrade". */
bool gw_ws_header_has_token(const char *value, size_t len, const char *token);

/* Chooses the subprotocol: the first one the client lists in Sec-WebSocket-Protocol
 * (`offered`, comma-separated; may be NULL) that the route supports (`supported`, a
 * space-separated list).  Returns true with *name and *name_len pointing into `offered`,
 * or false when they share none (the connection then goes on without one). */
bool gw_ws_pick_subprotocol(const char *offered, size_t offered_len, const char *supported,
                            size_t supported_len, const char **name, size_t *name_len);

#endif /* BARISTA_GW_WS_HANDSHAKE_H */
