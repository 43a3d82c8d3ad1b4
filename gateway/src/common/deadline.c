/*
 * deadline.c - binary min-heap of embedded deadline nodes (see deadline.h).
 */
#include "deadline.h"

#include <stdlib.h>

#include <barista/proto.h>

/* Slots allocated on the first insert; the array doubles from here. */
#define DEADLINE_INITIAL_SLOTS 256u

void gw_deadline_heap_init(gw_deadline_heap *self, size_t max)
{
    self->nodes = NULL;
    self->count = 0;
    self->cap = 0;
    self->max = max;
}

void gw_deadline_heap_free(gw_deadline_heap *self)
{
    for (size_t i = 0; i < self->count; i++)
        self->nodes[i]->index = 0;
    free(self->nodes);
    self->nodes = NULL;
    self->count = 0;
    self->cap = 0;
}

/* Puts n at position i and records it there. */
static void place(gw_deadline_heap *self, size_t i, gw_deadline *n)
{
    self->nodes[i] = n;
    n->index = i + 1;
}

static void sift_up(gw_deadline_heap *self, size_t i)
{
    gw_deadline *n = self->nodes[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (self->nodes[parent]->when <= n->when)
            break;
        place(self, i, self->nodes[parent]);
        i = parent;
    }
    place(self, i, n);
}

static void sift_down(gw_deadline_heap *self, size_t i)
{
    gw_deadline *n = self->nodes[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= self->count)
            break;
        if (child + 1 < self->count && self->nodes[child + 1]->when < self->nodes[child]->when)
            child++;
        if (n->when <= self->nodes[child]->when)
            break;
        place(self, i, self->nodes[child]);
        i = child;
    }
    place(self, i, n);
}

int gw_deadline_heap_push(gw_deadline_heap *self, gw_deadline *n)
{
    if (self->count >= self->max)
        return BR_EFULL;
    if (self->count == self->cap) {
        size_t cap = self->cap ? self->cap * 2 : DEADLINE_INITIAL_SLOTS;
        gw_deadline **nodes = realloc(self->nodes, cap * sizeof(*nodes));
        if (!nodes)
            return BR_ENOMEM;
        self->nodes = nodes;
        self->cap = cap;
    }
    self->count++;
    place(self, self->count - 1, n);
    sift_up(self, self->count - 1);
    return 0;
}

void gw_deadline_heap_remove(gw_deadline_heap *self, gw_deadline *n)
{
    if (n->index == 0 || n->index > self->count || self->nodes[n->index - 1] != n)
        return;
    size_t i = n->index - 1;
    n->index = 0;
    self->count--;
    if (i == self->count)
        return;
    /* The last node fills the hole and moves whichever way restores the order. */
    place(self, i, self->nodes[self->count]);
    if (i > 0 && self->nodes[(i - 1) / 2]->when > self->nodes[i]->when)
        sift_up(self, i);
    else
        sift_down(self, i);
}

gw_deadline *gw_deadline_heap_top(const gw_deadline_heap *self)
{
    return self->count ? self->nodes[0] : NULL;
}
