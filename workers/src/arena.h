/*
 * arena.h - request-scoped memory: many small allocations, one release.
 *
 * An arena hands out aligned blocks from a chain of chunks.  The first chunk is memory
 * the caller provides (a request embeds it, so a small request costs one malloc in
 * all); later chunks come from malloc and double in size.  Nothing is freed until
 * br__arena_release() frees every chunk at once.  The total never passes `max`.
 */
#ifndef BARISTA_WORKER_ARENA_H
#define BARISTA_WORKER_ARENA_H

#include <stddef.h>

/* A heap chunk; the bytes follow the header. */
typedef struct br__chunk br__chunk;

typedef struct br__arena {
    char *cur;         /* next free byte in the current chunk */
    char *end;         /* one past the current chunk's last byte */
    br__chunk *chunks; /* heap chunks, newest first; the caller's first block is not one */
    size_t used;       /* bytes of every chunk so far, counted against max */
    size_t next_size;  /* size of the next heap chunk */
    size_t max;        /* the arena never holds more than this */
} br__arena;

/* Sets up an arena over first[0..len) (may be NULL and 0), growing up to max bytes in
 * all.  first must be aligned for any type and outlive the arena. */
void br__arena_init(br__arena *a, void *first, size_t len, size_t max);

/* n bytes aligned for any type, or NULL when the arena would pass its max or malloc
 * fails.  n == 0 gives a valid unique pointer. */
void *br__arena_alloc(br__arena *a, size_t n);

/* Frees every heap chunk.  The arena is empty afterwards and may not be used again
 * until br__arena_init.  Safe twice. */
void br__arena_release(br__arena *a);

#endif /* BARISTA_WORKER_ARENA_H */
