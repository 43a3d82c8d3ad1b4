/*
 * deadline.h - a min-heap of deadlines, for one timer driving many requests.
 *
 * Ten thousand requests in flight must not mean ten thousand timers: the broker keeps
 * every request's deadline in this heap and arms a single uv_timer for the earliest.
 * Nodes are embedded in the caller's structs (no allocation per insert) and remember
 * their heap position, so that removing a finished request is O(log n).
 */
#ifndef BARISTA_GW_DEADLINE_H
#define BARISTA_GW_DEADLINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A heap member, embedded in the struct whose deadline it carries. */
typedef struct gw_deadline {
    uint64_t when; /* absolute time (the caller's clock, e.g. uv_now) */
    size_t index;  /* position in the heap + 1; 0 when not in a heap */
} gw_deadline;

typedef struct gw_deadline_heap {
    gw_deadline **nodes; /* the binary heap, earliest first */
    size_t count;        /* nodes in the heap */
    size_t cap;          /* slots allocated */
    size_t max;          /* the named limit on count */
} gw_deadline_heap;

/* Initialises an empty heap holding at most max nodes; never fails (it allocates on
 * first insert). */
void gw_deadline_heap_init(gw_deadline_heap *self, size_t max);

/* Frees the heap's array (not the nodes); safe twice. */
void gw_deadline_heap_free(gw_deadline_heap *self);

/* Inserts n (not already in a heap) with n->when set.  0; BR_EFULL at max;
 * BR_ENOMEM. */
int gw_deadline_heap_push(gw_deadline_heap *self, gw_deadline *n);

/* Removes n if it is in the heap; safe to call on a node that is not. */
void gw_deadline_heap_remove(gw_deadline_heap *self, gw_deadline *n);

/* The earliest node, or NULL when empty. */
gw_deadline *gw_deadline_heap_top(const gw_deadline_heap *self);

/* True when n is in a heap. */
static inline bool gw_deadline_pending(const gw_deadline *n)
{
    return n->index != 0;
}

#endif /* BARISTA_GW_DEADLINE_H */
