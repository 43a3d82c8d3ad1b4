/*
 * idmap.h - a hash map from 64-bit request ids to pointers.
 *
 * The broker looks every REPLY up by its id; with tens of thousands of requests in
 * flight that must be O(1).  Open addressing with linear probing and backward-shift
 * deletion keeps the table one flat array with no tombstones.  Key 0 is reserved (it
 * marks an empty slot): the broker's ids start at 1.
 */
#ifndef BARISTA_GW_IDMAP_H
#define BARISTA_GW_IDMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct gw_idmap gw_idmap;

/* Creates an empty map that holds at most max_entries entries (its named limit).
 * Caller owns the result; NULL when out of memory or max_entries is 0. */
gw_idmap *gw_idmap_new(size_t max_entries);

/* Destroys *self_p (not the values) and sets it to NULL; safe on NULL and twice. */
void gw_idmap_destroy(gw_idmap **self_p);

/* Maps key (not 0) to value (not NULL).  Returns 0; BR_EINVAL for key 0, NULL value or
 * a key already present; BR_EFULL at max_entries; BR_ENOMEM when growing fails. */
int gw_idmap_put(gw_idmap *self, uint64_t key, void *value);

/* The value for key, or NULL. */
void *gw_idmap_get(const gw_idmap *self, uint64_t key);

/* Removes key and returns its value, or NULL when absent. */
void *gw_idmap_take(gw_idmap *self, uint64_t key);

/* Number of entries. */
size_t gw_idmap_count(const gw_idmap *self);

#endif /* BARISTA_GW_IDMAP_H */
