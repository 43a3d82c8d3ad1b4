/*
 * credit.h - how a worker splits its capacity between the brokers it serves
 * (PROTOCOL.md 8, "Several brokers").
 *
 * Every slot of the capacity is in exactly one place: in one broker's window (the
 * credit that broker holds plus what it has outstanding here), held by an orphan (work
 * of a broker session that ended, still running), or free.  A broker's window only
 * grows while its session lives (CREDIT), since each REPLY gives its credit back to
 * the same broker; it shrinks to nothing when the session ends.  So the sum of windows
 * and orphans never passes the capacity, whatever the brokers do, and no request from
 * one broker can run on a slot another one was promised.
 *
 * The plan is pure arithmetic, kept apart from the sockets so that it can be tested
 * on its own (tests/workers/test_credit.c).
 */
#ifndef BARISTA_WORKER_CREDIT_H
#define BARISTA_WORKER_CREDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One broker link as the plan sees it. */
typedef struct br__credit_link {
    bool counted;    /* the link takes a share (it is up, or its share is kept for it) */
    bool open;       /* its session can take credit now (READY sent or about to be) */
    uint32_t window; /* slots the broker holds: credit plus outstanding */
    bool live;       /* registered (WELCOME seen) and not leaving: its window may be
                        handed back by a fresh READY (br__credit_yield) */
} br__credit_link;

/* The share of `capacity` that the link at position `pos` (0-based) of `counted` links
 * should hold: an equal split, the remainder going to the first positions.  With fewer
 * slots than links, only the first `capacity` positions get one (a CPU worker's one
 * slot sits at one broker at a time). */
uint32_t br__credit_share(uint32_t capacity, uint32_t counted, uint32_t pos);

/* Slots neither in a window nor held by an orphan (0 when the windows and orphans
 * already fill the capacity). */
uint32_t br__credit_free(uint32_t capacity, uint32_t orphans, const br__credit_link *links,
                         size_t n);

/* Plans where the free slots go: grant[i] receives the slots to add to link i's window
 * (0 for a link that is not open, or holds its share already).  Positions count the
 * counted links from index `offset` round the array, so that workers with different
 * offsets favour different brokers.  Returns the slots granted in all. */
uint32_t br__credit_plan(uint32_t capacity, uint32_t orphans, size_t offset,
                         const br__credit_link *links, size_t n, uint32_t *grant);

/* Windows only grow while a registration lives, so a slot held by a broker beyond its
 * share (a CPU slot that moved while its own broker was away, or shares that shrank
 * when a broker was added) comes back only when that registration ends.  With no slot
 * free and none held by an orphan, while a live link is short of its share, this picks
 * the live link most over its share (ties: the first in the plan's order) to be
 * re-registered with its share: returns its index, or -1 when nothing needs to move. */
long br__credit_yield(uint32_t capacity, uint32_t orphans, size_t offset,
                      const br__credit_link *links, size_t n);

#endif
