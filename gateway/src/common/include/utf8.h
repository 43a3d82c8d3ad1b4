/*
 * utf8.h - UTF-8 validation for text that leaves or enters the gateway.
 *
 * msgpack str values and JSON strings must be UTF-8.  The gateway checks decoded query
 * text before it goes into a REQUEST and repairs worker strings before they go into JSON,
 * both with the one strict decoder here (RFC 3629: no overlong forms, no surrogates,
 * nothing above U+10FFFF).
 */
#ifndef BARISTA_GW_UTF8_H
#define BARISTA_GW_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The length (1..4) of the well-formed UTF-8 sequence at the start of p[0..n), or 0
 * when those bytes do not start one (n == 0 included). */
size_t gw_utf8_seq_len(const uint8_t *p, size_t n);

/* Checks p[0..n) as the start of UTF-8 text that may continue (a WebSocket message
 * arriving in fragments): false at a byte no continuation could make well formed;
 * otherwise true, with *complete set to the bytes that form whole sequences - the rest
 * (at most 3 bytes) is a valid beginning of one. */
bool gw_utf8_valid_prefix(const uint8_t *p, size_t n, size_t *complete);

/* True when s[0..len) is entirely well-formed UTF-8. */
bool gw_utf8_valid(const char *s, size_t len);

/* The number of code points in s[0..len), which must be well-formed UTF-8. */
size_t gw_utf8_count(const char *s, size_t len);

#endif /* BARISTA_GW_UTF8_H */
