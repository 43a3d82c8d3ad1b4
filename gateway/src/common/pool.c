/*
 * pool.c - fixed-size objects carved from chunks of their own (see pool.h).
 */
#include <stdlib.h>
#include <string.h>

#include "pool.h"

#if defined(__SANITIZE_ADDRESS__)
#define GW_POOL_PLAIN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GW_POOL_PLAIN 1
#endif
#endif

/* A chunk: the link to the next, then per_chunk objects (16-byte aligned). */
#define CHUNK_HEAD 16

void gw_pool_init(gw_pool *p, size_t size, size_t per_chunk)
{
    memset(p, 0, sizeof(*p));
    p->size = (size + 15) & ~(size_t)15;
    p->per_chunk = per_chunk ? per_chunk : 1;
}

#ifdef GW_POOL_PLAIN

void *gw_pool_alloc(gw_pool *p)
{
    void *obj = calloc(1, p->size);
    p->live += obj != NULL;
    return obj;
}

void gw_pool_free(gw_pool *p, void *obj)
{
    p->live -= obj != NULL;
    free(obj);
}

void gw_pool_destroy(gw_pool *p)
{
    (void)p;
}

#else

void *gw_pool_alloc(gw_pool *p)
{
    if (!p->free) {
        char *chunk = malloc(CHUNK_HEAD + p->size * p->per_chunk);
        if (!chunk)
            return NULL;
        *(void **)chunk = p->chunks;
        p->chunks = chunk;
        /* Thread the new objects onto the free list, first one on top. */
        for (size_t i = p->per_chunk; i-- > 0;) {
            void *obj = chunk + CHUNK_HEAD + i * p->size;
            *(void **)obj = p->free;
            p->free = obj;
        }
    }
    void *obj = p->free;
    p->free = *(void **)obj;
    memset(obj, 0, p->size);
    p->live++;
    return obj;
}

void gw_pool_free(gw_pool *p, void *obj)
{
    if (!obj)
        return;
    *(void **)obj = p->free;
    p->free = obj;
    p->live--;
}

void gw_pool_destroy(gw_pool *p)
{
    while (p->chunks) {
        void *next = *(void **)p->chunks;
        free(p->chunks);
        p->chunks = next;
    }
    p->free = NULL;
}

#endif
