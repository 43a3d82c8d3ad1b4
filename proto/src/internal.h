/*
 * internal.h - what the proto library's source files share and nobody else sees.
 *
 * The field count of each message type, the one range check both directions use so
 * that "valid" means the same thing when a message is written and when it is read, the
 * unbounded skip the decoder needs beside the public msgpack reader (barista/mpread.h),
 * and the decoder's scratch arena.
 */
#ifndef BARISTA_PROTO_INTERNAL_H
#define BARISTA_PROTO_INTERNAL_H

#include "barista/mpread.h"
#include "barista/proto.h"

/* ---------------------------------------------------------------------------------- */
/* encode.c                                                                            */

/* A msgpack-c packer's write target: the buffer and the first error seen while
 * writing.  The first refusal is remembered and every later write fails fast, so one
 * check at the end tells whether everything fit. */
typedef struct br__enc {
    br_buf *buf;     /* where bytes go */
    int err;         /* 0 until a write fails; then that failure */
    uint8_t version; /* the envelope version a message is written in */
} br__enc;

/* The packer callback: msgpack_packer_init(&pk, &enc, br__enc_write). */
int br__enc_write(void *data, const char *bytes, size_t len);

/* ---------------------------------------------------------------------------------- */
/* msg.c                                                                               */

/* How many fields follow version and type in a message of this type (0 for HEARTBEAT
 * and for unknown types). */
uint32_t br__msg_nfields(unsigned type);

/* True for a message type this library knows (the numbering has gaps). */
bool br__msg_known(unsigned type);

/* ---------------------------------------------------------------------------------- */
/* validate.c                                                                          */

/* Checks every range rule of the protocol on a message built in memory: a known type,
 * status 100..599, deadline_ms >= 1, known kinds, parameter places and types, body
 * modes and job outcomes, finite parameter bounds, credit/attempt/lease >= 1, and
 * that no non-empty string or list has a NULL pointer.  Returns 0 or BR_EINVAL. */
int br__msg_validate(const br_msg *msg);
/* Whether `messages` (WS_BATCH.messages) starts with a whole msgpack value that is an
 * envelope of a type a batch carries (ws_batch.c): a batch with nothing usable is
 * invalid.  The rest is checked as it is taken apart (br_ws_batch_each: each message
 * is decoded, and so validated, alone; a bad one ends the batch there). */
bool br__ws_batch_ok(br_str messages);

/* True when s is empty or holds exactly one complete msgpack value no deeper than
 * BR_SCHEMA_WIRE_DEPTH and no longer than BR_SCHEMA_MAX_BYTES: what a schema field may
 * carry (what the value says is the gateway's to judge). */
bool br__schema_bytes_ok(br_str s);

/* ---------------------------------------------------------------------------------- */
/* cursor.c: the bounded msgpack reader is public (barista/mpread.h); this is the one  */
/* piece of it only the decoder needs.                                                 */

/* Skips n complete values of any type and any nesting, without recursion and in time
 * proportional to their bytes.  The decoder skips the extra trailing elements of a
 * record with it: PROTOCOL.md 3.2 says they are ignored "whatever their type", so
 * unlike br_cursor_skip it has no depth bound (it needs none, having no stack). */
int br__cursor_skip_n(br_cursor *c, uint64_t n);

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
