/*
 * credit.c - the split of a worker's capacity between its brokers (credit.h).
 */
#include "credit.h"

uint32_t br__credit_share(uint32_t capacity, uint32_t counted, uint32_t pos)
{
    if (counted == 0 || pos >= counted)
        return 0;
    return capacity / counted + (pos < capacity % counted ? 1 : 0);
}

uint32_t br__credit_free(uint32_t capacity, uint32_t orphans, const br__credit_link *links,
                         size_t n)
{
    uint64_t used = orphans;
    for (size_t i = 0; i < n; i++)
        used += links[i].window;
    return used >= capacity ? 0 : capacity - (uint32_t)used;
}

/* The share of the link at links[i] in the plan's order: positions count the counted
 * links from `offset` round the array. */
static uint32_t share_of(uint32_t capacity, size_t offset, const br__credit_link *links, size_t n,
                         size_t i)
{
    uint32_t counted = 0, pos = 0;
    for (size_t k = 0; k < n; k++) {
        size_t j = (offset + k) % n;
        if (!links[j].counted)
            continue;
        if (j == i)
            pos = counted;
        counted++;
    }
    return links[i].counted ? br__credit_share(capacity, counted, pos) : 0;
}

uint32_t br__credit_plan(uint32_t capacity, uint32_t orphans, size_t offset,
                         const br__credit_link *links, size_t n, uint32_t *grant)
{
    for (size_t i = 0; i < n; i++)
        grant[i] = 0;
    uint32_t spare = br__credit_free(capacity, orphans, links, n);
    uint32_t given = 0;
    for (size_t k = 0; k < n && spare > 0; k++) {
        size_t i = (offset + k) % n;
        uint32_t share = share_of(capacity, offset, links, n, i);
        if (!links[i].open || links[i].window >= share)
            continue;
        uint32_t g = share - links[i].window;
        if (g > spare)
            g = spare;
        grant[i] = g;
        spare -= g;
        given += g;
    }
    return given;
}

long br__credit_yield(uint32_t capacity, uint32_t orphans, size_t offset,
                      const br__credit_link *links, size_t n)
{
    if (orphans > 0 || br__credit_free(capacity, orphans, links, n) > 0)
        return -1; /* slots will free up without taking any back */
    bool short_one = false;
    long pick = -1;
    uint32_t most = 0;
    for (size_t k = 0; k < n; k++) {
        size_t i = (offset + k) % n;
        if (!links[i].live)
            continue;
        uint32_t share = share_of(capacity, offset, links, n, i);
        if (links[i].open && links[i].window < share)
            short_one = true;
        if (links[i].window > share && links[i].window - share > most) {
            most = links[i].window - share;
            pick = (long)i;
        }
    }
    return short_one ? pick : -1;
}
