/*
 * barista/mpread.h - a bounded, allocation-free reader over msgpack bytes.
 *
 * A br_cursor walks a byte range front to back, one msgpack value (or container
 * header) at a time.  It is the reader the protocol decoder is built on, and the one
 * every other part of Barista uses to read msgpack that came from somewhere else: it
 * never allocates, never reads outside [p, end), and checks every length it reads
 * against the bytes that are really left before believing it.  Strings and byte
 * strings it returns point into the input, so the input must outlive them.
 *
 * Why not msgpack-c's unpacker (msgpack_unpack, msgpack_unpack_next): it allocates for
 * the element count an array or map merely declares, before it checks that the bytes
 * exist, so five hostile bytes can ask for gigabytes.
 *
 * Every reader consumes the value on success and leaves the cursor where it was on
 * failure, and returns 0 or a negative br_err:
 *
 *   BR_ETRUNC  the input ends inside the value (or there is no value left);
 *   BR_ETYPE   the next value has another msgpack type (the reader did not apply);
 *   BR_EVALUE  the type is right but the value does not fit the C type asked for;
 *   BR_ELIMIT  a string is longer than the caller's maximum, or nesting is deeper.
 *
 * Container headers (br_cursor_array, br_cursor_map) return the count the header
 * declares and nothing more: the elements follow and are read one by one.  A declared
 * count is a claim, not a fact - never size an allocation by it without first checking
 * it against br_cursor_left() (every element takes at least one byte) and a limit.
 */
#ifndef BARISTA_MPREAD_H
#define BARISTA_MPREAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "barista/types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The deepest nesting of arrays and maps br_cursor_skip will walk: the same bound as
 * the gateway's JSON conversion, so any body the gateway accepted can be skipped. */
#define BR_CURSOR_MAX_DEPTH 64

/* A position in msgpack bytes.  Plain data: copy it to remember a position, and
 * assign a copy back to rewind. */
typedef struct br_cursor {
    const uint8_t *p;   /* next byte to read */
    const uint8_t *end; /* one past the last byte */
} br_cursor;

/* The msgpack type of a value, as br_cursor_peek sees its first byte. */
typedef enum br_mp_type {
    BR_MP_NONE = 0, /* no value: the end of the input, or the never-used byte 0xc1 */
    BR_MP_NIL,      /* nil */
    BR_MP_BOOL,     /* true or false */
    BR_MP_INT,      /* any integer encoding, signed or not */
    BR_MP_FLOAT,    /* float 32 or float 64 */
    BR_MP_STR,      /* str: text */
    BR_MP_BIN,      /* bin: bytes */
    BR_MP_ARRAY,    /* array */
    BR_MP_MAP,      /* map */
    BR_MP_EXT       /* ext or fixext: an application-defined type */
} br_mp_type;

/* Points *c at ptr[0..len).  ptr may be NULL when len is 0. */
void br_cursor_init(br_cursor *c, const void *ptr, size_t len);

/* Bytes left to read. */
size_t br_cursor_left(const br_cursor *c);

/* The type of the next value, without consuming anything.  BR_MP_NONE when nothing is
 * left or the next byte is 0xc1.  Says nothing about whether the value is complete. */
br_mp_type br_cursor_peek(const br_cursor *c);

/* Consumes a nil.  Returns 0, BR_ETYPE when the next value is something else, or
 * BR_ETRUNC at the end of the input. */
int br_cursor_nil(br_cursor *c);

/* Reads true or false into *v. */
int br_cursor_bool(br_cursor *c, bool *v);

/* Reads an integer in any msgpack integer encoding into *v.  BR_EVALUE for a uint 64
 * above INT64_MAX; BR_ETYPE for a float, even an integral one. */
int br_cursor_int(br_cursor *c, int64_t *v);

/* Reads a non-negative integer in any msgpack integer encoding (including the signed
 * ones holding a non-negative value) into *v.  BR_EVALUE for a negative integer. */
int br_cursor_uint(br_cursor *c, uint64_t *v);

/* Reads a number, encoded as a float 32, a float 64 or any integer, into *v.  Integers
 * beyond 2^53 are rounded to the nearest double. */
int br_cursor_double(br_cursor *c, double *v);

/* Reads a str of at most max bytes; *s points into the input.  BR_ELIMIT when the str
 * is longer than max; BR_ETYPE for a bin. */
int br_cursor_str(br_cursor *c, br_str *s, uint32_t max);

/* Reads a bin of at most max bytes; *s points into the input.  BR_ETYPE for a str. */
int br_cursor_bin(br_cursor *c, br_str *s, uint32_t max);

/* Reads a byte string sent either as bin or as str (the protocol's `bytes`, PROTOCOL.md
 * 3.3), at most max bytes; *s points into the input. */
int br_cursor_bytes(br_cursor *c, br_str *s, uint32_t max);

/* Reads an array header: *n is the element count it declares (see the file comment:
 * a claim, not yet checked against the bytes left).  The elements follow. */
int br_cursor_array(br_cursor *c, uint32_t *n);

/* Reads a map header: *n is the number of key/value pairs it declares; 2 * *n values
 * follow, key first. */
int br_cursor_map(br_cursor *c, uint32_t *n);

/* Skips exactly one complete value of any type, nested arrays and maps included, in
 * time proportional to its bytes.  Nesting is bounded: a scalar has depth 0, a
 * container depth one more than its deepest element, and a value deeper than max_depth
 * is BR_ELIMIT (max_depth above BR_CURSOR_MAX_DEPTH counts as BR_CURSOR_MAX_DEPTH).
 * BR_ETRUNC when the bytes end inside the value, BR_ETYPE on the byte 0xc1. */
int br_cursor_skip(br_cursor *c, uint32_t max_depth);

#ifdef __cplusplus
}
#endif

#endif /* BARISTA_MPREAD_H */
