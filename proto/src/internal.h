/*
 * internal.h - what the proto library's source files share and nobody else sees.
 *
 * Three pieces: the growable-buffer primitive the encoder writes through, the bounded
 * msgpack reader the decoder is built on, and the one range check both directions use
 * so that "valid" means the same thing when a message is written and when it is read.
 */
#ifndef BARISTA_PROTO_INTERNAL_H
#define BARISTA_PROTO_INTERNAL_H

#include "barista/proto.h"

/* ---------------------------------------------------------------------------------- */
/* buf.c                                                                               */

/* ---------------------------------------------------------------------------------- */
/* msg.c                                                                               */

/* How many fields follow version and type in a message of this type (0 for HEARTBEAT
 * and for unknown types). */
uint32_t br__msg_nfields(unsigned type);

/* ---------------------------------------------------------------------------------- */
/* validate.c                                                                          */

/* Checks every range rule of the protocol on a message built in memory: a known type,
 * status 100..599, deadline_ms >= 1, known kinds, parameter places and types, body
 * modes and job outcomes, finite parameter bounds, credit/attempt/lease >= 1, and
 * that no non-empty string or list has a NULL pointer.  Returns 0 or BR_EINVAL. */
int br__msg_validate(const br_msg *msg);

/* ---------------------------------------------------------------------------------- */
/* cursor.c: a bounded reader over msgpack bytes.  It never allocates, never reads     */
/* past `end`, and checks every declared length against the bytes left before         */
/* believing it.  Every reader consumes the value on success and leaves the cursor    */
/* where it was on failure.                                                            */

typedef struct br__cur {
    const uint8_t *p;   /* next byte to read */
    const uint8_t *end; /* one past the last byte */
} br__cur;

/* Bytes left to read. */
size_t br__cur_left(const br__cur *c);

/* Reads an array header: *n is its declared element count.  BR_ETYPE when the next
 * value is not an array, BR_ETRUNC when the header is cut short. */
int br__cur_array(br__cur *c, uint32_t *n);

/* Reads a non-negative integer in any msgpack integer encoding.  A negative integer is
 * BR_EVALUE, any other type BR_ETYPE. */
int br__cur_uint(br__cur *c, uint64_t *v);

/* Reads a number encoded as a msgpack float or integer. */
int br__cur_number(br__cur *c, double *v);

/* Reads true or false. */
int br__cur_bool(br__cur *c, bool *v);

/* Consumes a nil and returns 1, or returns 0 and consumes nothing when the next value
 * is something else (or BR_ETRUNC at the end of the input). */
int br__cur_nil(br__cur *c);

/* Reads a msgpack str of at most max bytes into *s, pointing into the input.
 * BR_ELIMIT when longer than max. */
int br__cur_str(br__cur *c, br_str *s, uint32_t max);

/* Reads a byte string: msgpack bin or str, at most max bytes. */
int br__cur_bytes(br__cur *c, br_str *s, uint32_t max);

/* Skips n complete values of any type (nested arrays and maps included) without
 * recursion; used for the extra trailing elements that newer peers may add. */
int br__cur_skip(br__cur *c, uint64_t n);

/* ---------------------------------------------------------------------------------- */
/* scratch.c: the decoder's arena for decoded arrays.  Allocations are bump-pointer    */
/* and freed all at once by br__scratch_reset; after a reset the arena keeps one       */
/* block big enough for what the last message needed (up to BR_SCRATCH_KEEP), so the  */
/* steady state allocates nothing.                                                     */

typedef struct br__block br__block;

typedef struct br__scratch {
    br__block *head; /* newest block; allocations come from it */
    size_t total;    /* bytes held in all blocks */
} br__scratch;

/* Prepares an empty arena with one block of `initial` bytes; BR_ENOMEM on failure. */
int br__scratch_init(br__scratch *s, size_t initial);

/* Returns n zeroed bytes aligned for any type, or NULL when out of memory. */
void *br__scratch_alloc(br__scratch *s, size_t n);

/* Forgets every allocation; keeps (coalesced) memory for the next message. */
void br__scratch_reset(br__scratch *s);

/* Frees every block. */
void br__scratch_free(br__scratch *s);

#endif /* BARISTA_PROTO_INTERNAL_H */
