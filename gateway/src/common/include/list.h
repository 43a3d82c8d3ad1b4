/*
 * list.h - an intrusive doubly-linked list.
 *
 * The broker keeps each request on exactly one list at a time (its service's queue or
 * its worker's in-flight list) and must move it in O(1) when a worker dies or a client
 * goes away; embedding the links in the request avoids an allocation per move.  A list
 * is a sentinel node whose next/prev point to itself when empty.
 */
#ifndef BARISTA_GW_LIST_H
#define BARISTA_GW_LIST_H

#include <stdbool.h>
#include <stddef.h>

typedef struct gw_list {
    struct gw_list *next; /* following node, or the sentinel */
    struct gw_list *prev; /* preceding node, or the sentinel */
} gw_list;

/* The struct that embeds `ptr` as member `field` (for list nodes and deadline nodes). */
#define GW_CONTAINER_OF(ptr, type, field) ((type *)(void *)((char *)(ptr)-offsetof(type, field)))

/* Makes `l` an empty list (or an unlinked node). */
static inline void gw_list_init(gw_list *l)
{
    l->next = l;
    l->prev = l;
}

static inline bool gw_list_empty(const gw_list *l)
{
    return l->next == l;
}

/* Links `n` after `at`. */
static inline void gw_list__link(gw_list *at, gw_list *n)
{
    n->prev = at;
    n->next = at->next;
    at->next->prev = n;
    at->next = n;
}

static inline void gw_list_push_back(gw_list *l, gw_list *n)
{
    gw_list__link(l->prev, n);
}

static inline void gw_list_push_front(gw_list *l, gw_list *n)
{
    gw_list__link(l, n);
}

/* Unlinks `n` from whatever list holds it and leaves it unlinked; safe on an unlinked
 * node. */
static inline void gw_list_remove(gw_list *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    gw_list_init(n);
}

#endif /* BARISTA_GW_LIST_H */
