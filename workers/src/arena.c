/*
 * arena.c - request-scoped memory (see arena.h).
 */
#include "arena.h"

#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>

#define ARENA_ALIGN alignof(max_align_t)
/* The first heap chunk when the caller's block runs out; later ones double. */
#define ARENA_FIRST_HEAP_CHUNK 4096

struct br__chunk {
    br__chunk *next;                   /* older chunk */
    alignas(max_align_t) char bytes[]; /* the chunk's memory */
};

static size_t round_up(size_t n)
{
    return (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
}

void br__arena_init(br__arena *a, void *first, size_t len, size_t max)
{
    a->cur = first;
    a->end = first ? (char *)first + len : NULL;
    a->chunks = NULL;
    a->used = len;
    a->next_size = ARENA_FIRST_HEAP_CHUNK;
    a->max = max;
}

/* Starts a heap chunk big enough for n bytes, or fails when max forbids it. */
static int arena_grow(br__arena *a, size_t n)
{
    size_t room = a->used < a->max ? a->max - a->used : 0;
    if (n > room)
        return -1;
    size_t size = a->next_size;
    while (size < n)
        size *= 2;
    if (size > room)
        size = room; /* doubling overshoots near the limit; room still holds n */
    br__chunk *c = malloc(sizeof(*c) + size);
    if (!c)
        return -1;
    c->next = a->chunks;
    a->chunks = c;
    a->cur = c->bytes;
    a->end = c->bytes + size;
    a->used += size;
    a->next_size = size * 2;
    return 0;
}

void *br__arena_alloc(br__arena *a, size_t n)
{
    if (n > a->max)
        return NULL;
    size_t need = round_up(n ? n : 1);
    if (!a->cur || (size_t)(a->end - a->cur) < need) {
        if (arena_grow(a, need) != 0)
            return NULL;
    }
    void *p = a->cur;
    a->cur += need;
    return p;
}

void br__arena_release(br__arena *a)
{
    br__chunk *c = a->chunks;
    while (c) {
        br__chunk *next = c->next;
        free(c);
        c = next;
    }
    a->chunks = NULL;
    a->cur = a->end = NULL;
    a->used = 0;
}
