/*
 * barista/value.h - reading structured data: request bodies and job payloads.
 *
 * The gateway turns a JSON request body into msgpack before a worker sees it, and a
 * job's payload is msgpack too.  A br_value is a view of one msgpack value inside
 * those bytes: it points into them, allocates nothing, and stays valid as long as
 * they do (a request body: until the request ends; a payload: until the attempt ends).
 *
 * Parse the bytes once with br_value_parse, which checks that they hold exactly one
 * complete value nested at most BR_VALUE_MAX_DEPTH deep.  Then look values up by path
 * and read them with the typed getters:
 *
 *     // POST /notes {"title": "groceries", "tags": ["home", "weekly"]}
 *     br_value body, tag;
 *     br_str title, name;
 *     if (br_value_parse(br_req_body(req), &body) != 0 ||
 *         br_value_str(br_value_get(body, "title"), &title) != 0) {
 *         br_reply_error(req, 422, "title must be a string");
 *         return;
 *     }
 *     br_value_iter it = br_value_items(br_value_get(body, "tags"));
 *     while (br_value_next(&it, NULL, &tag))
 *         if (br_value_str(tag, &name) == 0)
 *             ... one tag ...
 *
 * A lookup that finds nothing does not fail on the spot: it returns the *missing*
 * value (type BR_MP_NONE), every lookup in a missing value is missing too, and a typed
 * getter on it answers BR_ENOTFOUND.  So a chain of lookups needs one check, at the
 * end, and that check still tells "absent" (BR_ENOTFOUND) from "present but not what
 * was asked for" (BR_ETYPE, BR_EVALUE) - FastAPI's "missing" and "type" errors.
 *
 * Every function here reads through proto's bounded br_cursor (barista/mpread.h), so
 * none of them reads outside the value, even on a view not made by br_value_parse.
 */
#ifndef BARISTA_VALUE_H
#define BARISTA_VALUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "barista/mpread.h"
#include "barista/types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The deepest nesting of arrays and maps br_value_parse accepts (a scalar has depth
 * 0): the gateway's own bound on JSON bodies, so any body it forwards parses. */
#define BR_VALUE_MAX_DEPTH BR_CURSOR_MAX_DEPTH

/* A view of one complete msgpack value.  Plain data, cheap to copy and pass by value.
 * {NULL, 0} is the missing value. */
typedef struct br_value {
    const uint8_t *ptr; /* the value's first byte, in the caller's buffer; NULL if missing */
    uint32_t len;       /* the bytes of the whole value, header and contents */
} br_value;

/* Checks that bytes holds exactly one msgpack value - complete, nested at most
 * BR_VALUE_MAX_DEPTH deep, nothing after it - and sets *out to a view of it.  Reads
 * every byte once and allocates nothing; a count the bytes cannot hold is refused
 * without being believed.  Returns 0; BR_ETRUNC when bytes are empty or end inside the
 * value; BR_ETRAILING when bytes follow it; BR_ELIMIT when it nests too deep; BR_ETYPE
 * on the never-used byte 0xc1.  On failure *out is the missing value. */
int br_value_parse(br_str bytes, br_value *out);

/* Reads the one value at *c as a view (nested at most BR_VALUE_MAX_DEPTH deep) and
 * moves c past it; for a value among others, e.g. in a stream of values.  Returns 0 or
 * the errors of br_cursor_skip; on failure c does not move and *out is missing. */
int br_value_read(br_cursor *c, br_value *out);

/* The value's msgpack type; BR_MP_NONE for the missing value. */
br_mp_type br_value_type(br_value v);

/* True unless v is the missing value (a nil is a value: it exists). */
bool br_value_exists(br_value v);

/* ---------------------------------------------------------------------------------- */
/* Looking up.  Each returns the missing value when there is nothing to return.        */

/* Follows a path of segments separated by '.' from v: in a map a segment is a key (the
 * first str key with exactly those bytes), in an array a decimal index from 0 ("tags.1",
 * "items.0.id").  NULL or "" is v itself.  Missing when a segment is not found, indexes
 * past the end, or meets something that is neither map nor array.  A key that holds a
 * '.' is reached with br_value_key. */
br_value br_value_get(br_value v, const char *path);

/* The value of the first str key equal to key's bytes in map v; missing when v is not
 * a map or has no such key.  Keys of other types never match. */
br_value br_value_key(br_value v, br_str key);

/* Element i (from 0) of array v; missing when v is not an array or i is past its end.
 * It walks the elements before i: to visit them all, iterate instead. */
br_value br_value_index(br_value v, uint32_t i);

/* The number of elements of an array, or of key/value pairs of a map; 0 for anything
 * else.  On a view not made by br_value_parse (or br_value_read) this is only what the
 * header declares. */
uint32_t br_value_len(br_value v);

/* ---------------------------------------------------------------------------------- */
/* Typed getters.  Each returns 0 and sets *out, or leaves *out alone and returns      */
/* BR_ENOTFOUND for the missing value, BR_ETYPE for a value of another type, or        */
/* BR_EVALUE for one of the right type out of range.                                   */

/* A str; *out points into the value's bytes (not NUL-terminated: br_req_strdup makes
 * a C string).  A bin is BR_ETYPE. */
int br_value_str(br_value v, br_str *out);

/* A bin; *out points into the value's bytes.  A str is BR_ETYPE. */
int br_value_bin(br_value v, br_str *out);

/* An integer from min to max inclusive (INT64_MIN, INT64_MAX for any int64).  A float
 * is BR_ETYPE, even 3.0: JSON's 3 arrives as an integer, 3.0 as a float. */
int br_value_int(br_value v, int64_t min, int64_t max, int64_t *out);

/* A non-negative integer, up to UINT64_MAX; a negative one is BR_EVALUE. */
int br_value_uint(br_value v, uint64_t *out);

/* A number: a float, or an integer converted to the nearest double. */
int br_value_double(br_value v, double *out);

/* true or false. */
int br_value_bool(br_value v, bool *out);

/* True when v is nil (JSON's null); false for the missing value and everything else. */
bool br_value_is_nil(br_value v);

/* ---------------------------------------------------------------------------------- */
/* Iterating over an array's elements or a map's pairs, in order.                      */

/* Where an iteration is.  Plain data on the caller's stack; see br_value_items. */
typedef struct br_value_iter {
    br_cursor cur; /* the next element (or key) */
    uint32_t left; /* elements or pairs not yet returned */
    bool map;      /* over a map: each step has a key */
    int err;       /* 0, or why the iteration ended early or never started */
} br_value_iter;

/* Starts an iteration over v.  Over anything but an array or a map it returns nothing,
 * with err BR_ENOTFOUND (missing) or BR_ETYPE (another type), so a loop over an
 * optional list needs no check first. */
br_value_iter br_value_items(br_value v);

/* Returns the next element and true, or false at the end.  Over a map *key and *val are
 * the next pair; over an array *val is the next element and *key is set missing.  key
 * and val may be NULL when not wanted.  Stops early, with it->err set, only on bytes
 * that br_value_parse would have refused. */
bool br_value_next(br_value_iter *it, br_value *key, br_value *val);

#ifdef __cplusplus
}
#endif

#endif /* BARISTA_VALUE_H */
