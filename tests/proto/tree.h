/*
 * tree.h - a valid encoded message as an editable msgpack-c object tree, for tests that
 * need a message that is wrong in exactly one place (a type, a value, an extra element)
 * which br_msg_encode would refuse to write.
 *
 * msgpack-c's unpacker is only ever given bytes our own encoder produced, so the
 * unbounded allocations that keep it out of the decoder cannot happen here.
 */
#ifndef BARISTA_TESTS_TREE_H
#define BARISTA_TESTS_TREE_H

#include <msgpack.h>

#include "barista/proto.h"

/* An unpacked message and the zone its nodes live in. */
typedef struct tree {
    msgpack_unpacked up; /* up.data is the root; up.zone owns every node */
} tree;

/* Encodes msg (which must be valid) and unpacks it into *t. */
void tree_from_msg(tree *t, const br_msg *msg);

/* Releases the tree. */
void tree_free(tree *t);

/* The node reached by following array indices from the root. */
msgpack_object *tree_at(tree *t, const int *path, size_t depth);

/* The n-th node of the tree in pre-order (the root is 0), or NULL past the end. */
msgpack_object *tree_nth(tree *t, size_t n);

/* True when the n-th node lies inside a msgpack map: in the protocol, only inside a
 * schema (PROTOCOL.md 5.1.1), whose content the decoder does not interpret. */
bool tree_nth_in_map(tree *t, size_t n);

/* Appends `node` to the array at `path`. */
void tree_append(tree *t, const int *path, size_t depth, msgpack_object node);

/* A nested value a newer peer might add: ["future", 2.5, {nil: bin}]. */
msgpack_object tree_future_value(tree *t);

/* Packs the tree into buf (cleared first). */
void tree_pack(const tree *t, br_buf *buf);

/* Node constructors. */
msgpack_object tree_uint(uint64_t v);
msgpack_object tree_int(int64_t v);
msgpack_object tree_float(double v);
msgpack_object tree_str(const char *s);

#endif /* BARISTA_TESTS_TREE_H */
