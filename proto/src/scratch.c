/*
 * scratch.c - the decoder's arena: decoded arrays live here until the next decode.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* The most memory an idle decoder keeps between messages.  A message that needed more
 * (a very large READY) gets its blocks freed at the next reset, so one big message does
 * not pin its memory for the life of the process. */
#define BR_SCRATCH_KEEP (256u * 1024u)

/* One block of arena memory; `data` is aligned for any type. */
struct br__block {
    br__block *next;    /* the block allocated before this one */
    size_t cap;         /* bytes in data */
    size_t used;        /* bytes handed out */
    max_align_t data[]; /* the memory itself */
};

static br__block *block_new(size_t cap, br__block *next)
{
    br__block *b = malloc(sizeof *b + cap);
    if (!b)
        return NULL;
    b->next = next;
    b->cap = cap;
    b->used = 0;
    return b;
}

static void blocks_free(br__block *b)
{
    while (b) {
        br__block *next = b->next;
        free(b);
        b = next;
    }
}

int br__scratch_init(br__scratch *s, size_t initial)
{
    s->head = block_new(initial, NULL);
    s->total = s->head ? initial : 0;
    return s->head ? 0 : BR_ENOMEM;
}

void *br__scratch_alloc(br__scratch *s, size_t n)
{
    const size_t align = sizeof(max_align_t);
    if (n > SIZE_MAX / 2)
        return NULL;
    n = (n + align - 1) / align * align;
    br__block *b = s->head;
    if (!b || b->cap - b->used < n) {
        size_t cap = b && b->cap * 2 > n ? b->cap * 2 : n;
        b = block_new(cap, s->head);
        if (!b)
            return NULL;
        s->head = b;
        s->total += cap;
    }
    void *p = (char *)b->data + b->used;
    b->used += n;
    memset(p, 0, n);
    return p;
}

void br__scratch_reset(br__scratch *s)
{
    if (!s->head)
        return;
    if (!s->head->next && s->total <= BR_SCRATCH_KEEP) {
        s->head->used = 0;
        return;
    }
    /* Several blocks, or too much: replace them by one block of the combined size, so
     * that the next message like this one fits without another malloc. */
    size_t total = s->total;
    blocks_free(s->head);
    s->head = NULL;
    s->total = 0;
    if (total <= BR_SCRATCH_KEEP)
        (void)br__scratch_init(s, total); /* on failure, alloc starts a block later */
}

void br__scratch_free(br__scratch *s)
{
    blocks_free(s->head);
    s->head = NULL;
    s->total = 0;
}
