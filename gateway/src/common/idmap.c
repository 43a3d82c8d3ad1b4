/*
 * idmap.c - open-addressing hash map, u64 -> pointer (see idmap.h).
 */
#include "idmap.h"

#include <stdbool.h>
#include <stdlib.h>

#include <barista/proto.h>

/* Slots allocated at first; the table doubles from here. */
#define IDMAP_INITIAL_SLOTS 1024u

typedef struct slot {
    uint64_t key; /* 0 when the slot is empty */
    void *value;  /* the mapped pointer */
} slot;

struct gw_idmap {
    slot *slots;        /* the table; its size is a power of two */
    size_t mask;        /* number of slots - 1 */
    size_t count;       /* entries present */
    size_t max_entries; /* the named limit on count */
};

/* splitmix64's finaliser: sequential ids spread over the whole table. */
static size_t hash_key(uint64_t key)
{
    key ^= key >> 30;
    key *= 0xbf58476d1ce4e5b9ULL;
    key ^= key >> 27;
    key *= 0x94d049bb133111ebULL;
    key ^= key >> 31;
    return (size_t)key;
}

gw_idmap *gw_idmap_new(size_t max_entries)
{
    if (max_entries == 0)
        return NULL;
    gw_idmap *self = calloc(1, sizeof(*self));
    if (!self)
        return NULL;
    self->slots = calloc(IDMAP_INITIAL_SLOTS, sizeof(slot));
    if (!self->slots) {
        free(self);
        return NULL;
    }
    self->mask = IDMAP_INITIAL_SLOTS - 1;
    self->max_entries = max_entries;
    return self;
}

void gw_idmap_destroy(gw_idmap **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->slots);
    free(*self_p);
    *self_p = NULL;
}

/* The slot holding key, or the empty slot where it would go. */
static size_t find_slot(const gw_idmap *self, uint64_t key)
{
    size_t i = hash_key(key) & self->mask;
    while (self->slots[i].key != 0 && self->slots[i].key != key)
        i = (i + 1) & self->mask;
    return i;
}

/* Doubles the table, re-inserting every entry. */
static int grow(gw_idmap *self)
{
    size_t old_n = self->mask + 1;
    slot *old = self->slots;
    slot *fresh = calloc(old_n * 2, sizeof(slot));
    if (!fresh)
        return BR_ENOMEM;
    self->slots = fresh;
    self->mask = old_n * 2 - 1;
    for (size_t i = 0; i < old_n; i++)
        if (old[i].key != 0)
            self->slots[find_slot(self, old[i].key)] = old[i];
    free(old);
    return 0;
}

int gw_idmap_put(gw_idmap *self, uint64_t key, void *value)
{
    if (key == 0 || !value)
        return BR_EINVAL;
    if (self->count >= self->max_entries)
        return BR_EFULL;
    /* Keep the load under 70 % so that probe runs stay short. */
    if ((self->count + 1) * 10 > (self->mask + 1) * 7) {
        int rc = grow(self);
        if (rc != 0)
            return rc;
    }
    size_t i = find_slot(self, key);
    if (self->slots[i].key == key)
        return BR_EINVAL;
    self->slots[i].key = key;
    self->slots[i].value = value;
    self->count++;
    return 0;
}

void *gw_idmap_get(const gw_idmap *self, uint64_t key)
{
    if (key == 0)
        return NULL;
    size_t i = find_slot(self, key);
    return self->slots[i].key == key ? self->slots[i].value : NULL;
}

void *gw_idmap_take(gw_idmap *self, uint64_t key)
{
    if (key == 0)
        return NULL;
    size_t i = find_slot(self, key);
    if (self->slots[i].key != key)
        return NULL;
    void *value = self->slots[i].value;
    /* Backward-shift deletion: pull later members of the probe run into the hole when
     * the hole lies between their home slot and where they sit, so that lookups never
     * stop early at a gap and no tombstones accumulate. */
    size_t hole = i;
    size_t j = i;
    for (;;) {
        j = (j + 1) & self->mask;
        if (self->slots[j].key == 0)
            break;
        size_t home = hash_key(self->slots[j].key) & self->mask;
        bool movable = hole <= j ? (home <= hole || home > j) : (home <= hole && home > j);
        if (movable) {
            self->slots[hole] = self->slots[j];
            hole = j;
        }
    }
    self->slots[hole].key = 0;
    self->slots[hole].value = NULL;
    self->count--;
    return value;
}

size_t gw_idmap_count(const gw_idmap *self)
{
    return self->count;
}
