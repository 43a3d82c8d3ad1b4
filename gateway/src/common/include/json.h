/*
 * json.h - the gateway's JSON edge: JSON request bodies become msgpack for workers, and
 * msgpack reply bodies become JSON for clients.
 *
 * Workers never see JSON (DESIGN.md, principle 6).  Both directions are single passes
 * that never allocate per element: JSON -> msgpack (every JSON request body) is a strict
 * RFC 8259 parser writing msgpack as it reads, and msgpack -> JSON (every structured
 * reply) is a walker over the msgpack bytes.
 * Both append to a br_buf and never let it grow past its max; on failure out->len is
 * left as it was.
 */
#ifndef BARISTA_GW_JSON_H
#define BARISTA_GW_JSON_H

#include <stddef.h>

#include "barista/proto.h"

/* Deepest nesting of arrays and objects either direction accepts. */
#define GW_JSON_MAX_DEPTH 64

/* Bytes gw_format_double() may write, NUL included. */
#define GW_DOUBLE_CHARS 32

/* JSON text -> one msgpack value appended to out. 0; BR_EVALUE for invalid JSON, with a
 * one-line reason (e.g. "Expecting value: line 1 column 5 (char 4)"-style, position
 * included) written into err (NUL-terminated, truncated to errlen); BR_ELIMIT when nesting
 * is deeper than GW_JSON_MAX_DEPTH (64) or out would pass out->max.  Reasons use Python's
 * json wording and coordinates ("Expecting ',' delimiter: line 1 column 9 (char 8)").
 * Integers from -2^63 to 2^64-1 stay exact integers (smallest msgpack encoding); other
 * integers, numbers that overflow a double, and numbers longer than 511 characters are
 * BR_EVALUE; a fraction or exponent makes a float64.  Objects keep their key order
 * (duplicate keys are passed on as they are); err may be NULL. */
int gw_json_to_msgpack(const char *json, size_t len, br_buf *out, char *err, size_t errlen);

/* One msgpack value -> compact JSON text appended to out. Maps whose keys are strings (int
 * keys become strings), arrays, nil/bool/ints/floats (non-finite -> null), str (escaped,
 * invalid UTF-8 replaced by U+FFFD), bin (as a base64 string), ext -> BR_EVALUE. 0;
 * BR_EVALUE malformed or trailing bytes; BR_ELIMIT depth > 64 or size > out->max.
 * Floats print in their shortest round-trip form, with ".0" when integral (as Python
 * does), float32 values in the shortest form that reads back as the same float. */
int gw_msgpack_to_json(const void *mp, size_t len, br_buf *out);

/* Appends s as a JSON string literal, quotes included. 0 or BR_ELIMIT/BR_ENOMEM.
 * Escapes as gw_msgpack_to_json does (invalid UTF-8 becomes U+FFFD). */
int gw_json_append_string(br_buf *out, const char *s, size_t len);

/* Appends FastAPI's error body {"detail":DETAIL}, DETAIL escaped as above.  0 or
 * BR_ELIMIT/BR_ENOMEM (out->len left as it was). */
int gw_json_append_detail(br_buf *out, const char *detail);

/* Writes v into buf (cap >= GW_DOUBLE_CHARS) in the shortest "%g" form that reads back
 * as exactly v: "0.1", "10", "1e+100", "-0"; "inf"/"nan" for non-finite values (callers
 * writing JSON map those to null).  Returns the length written, NUL excluded. */
size_t gw_format_double(double v, char *buf, size_t cap);

#endif /* BARISTA_GW_JSON_H */
