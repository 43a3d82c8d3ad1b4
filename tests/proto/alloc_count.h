/*
 * alloc_count.h - counts the calls to malloc, calloc and realloc a test makes, for the
 * tests that must prove a path allocates nothing (the steady-state decode, the cursor,
 * the worker's value reader).
 *
 * Link alloc_count.c into the test and wrap the three functions at link time:
 *     target_link_libraries(t PRIVATE barista_alloc_count)   (adds the --wrap options)
 * then reset test_allocations, run the path and assert it is still 0.
 */
#ifndef BARISTA_TEST_ALLOC_COUNT_H
#define BARISTA_TEST_ALLOC_COUNT_H

#include <stddef.h>

/* Calls to malloc/calloc/realloc since the test last set it to 0. */
extern size_t test_allocations;

#endif /* BARISTA_TEST_ALLOC_COUNT_H */
