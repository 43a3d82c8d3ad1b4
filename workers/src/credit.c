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

uint32_t br__credit_plan(uint32_t capacity, uint32_t orphans, size_t offset,
                         const br__credit_link *links, size_t n, uint32_t *grant)
{
    uint32_t counted = 0;
    for (size_t i = 0; i < n; i++) {
        grant[i] = 0;
        counted += links[i].counted ? 1 : 0;
    }
    uint32_t spare = br__credit_free(capacity, orphans, links, n);
    uint32_t given = 0, pos = 0;
    for (size_t k = 0; k < n && spare > 0; k++) {
        size_t i = (offset + k) % n;
        if (!links[i].counted)
            continue;
        uint32_t share = br__credit_share(capacity, counted, pos++);
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
