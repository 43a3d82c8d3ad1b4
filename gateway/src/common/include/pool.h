/*
 * pool.h - fixed-size objects carved from chunks of their own.
 *
 * A WebSocket's long-lived state is allocated during its handshake, between blocks of
 * the handshake's transient memory (the request, its arena, the broker's exchange, the
 * 101 answer) that are freed a moment later.  From malloc, each long-lived block then
 * pins a page full of sub-page holes, and 10,000 idle connections hold a heap twice
 * the size of what they use (docs/benchmarks.md, idle connections).  A pool keeps
 * objects of one size together in chunks of many, away from the transient blocks,
 * and reuses freed ones first.  Chunks are kept until the pool is destroyed: the
 * memory is bounded by the most objects live at once (each owner's own limit).
 *
 * Under AddressSanitizer every object is its own calloc/free, so that use after free
 * and leaks are still caught per object.
 */
#ifndef BARISTA_GW_POOL_H
#define BARISTA_GW_POOL_H

#include <stddef.h>

typedef struct gw_pool {
    size_t size;      /* bytes per object, rounded up to a multiple of 16 */
    size_t per_chunk; /* objects carved from each chunk */
    void *free;       /* free objects, linked through their first word */
    void *chunks;     /* chunks allocated, linked through their first word */
    size_t live;      /* objects handed out and not yet freed */
} gw_pool;

/* Prepares an empty pool of objects of `size` bytes, per_chunk of them a chunk. */
void gw_pool_init(gw_pool *p, size_t size, size_t per_chunk);

/* A zeroed object, or NULL when out of memory. */
void *gw_pool_alloc(gw_pool *p);

/* Gives obj (from gw_pool_alloc of p, or NULL) back. */
void gw_pool_free(gw_pool *p, void *obj);

/* Releases every chunk; no object of the pool may be used afterwards.  Safe twice. */
void gw_pool_destroy(gw_pool *p);

#endif /* BARISTA_GW_POOL_H */
