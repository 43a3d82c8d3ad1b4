/*
 * registry.h - a worker's services: checking they can share a process, describing
 * them for READY, and finding the route a REQUEST names.
 */
#ifndef BARISTA_WORKER_REGISTRY_H
#define BARISTA_WORKER_REGISTRY_H

#include "arena.h"
#include "barista/proto.h"
#include "barista/worker.h"

/* The services of one worker and their READY description. */
typedef struct br__registry {
    const br_service_spec *const *services; /* copy of the caller's array (in arena); the
                                               specs themselves are not owned */
    size_t nservices;                       /* entries in services */
    br_kind kind;                           /* the kind they all share */
    br_service *wire;                       /* READY's services, built in arena */
    br__arena arena;                        /* owns wire and everything it points to */
} br__registry;

/* Most bytes the READY description of all services may take. */
#define BR_REGISTRY_MAX_BYTES (1024u * 1024u)

/* Checks the services (see br_services_check) and builds their READY description into
 * *reg.  Returns 0, BR_EINVAL with the reason in why, or BR_ENOMEM. */
int br__registry_init(br__registry *reg, const br_service_spec *const *services, size_t n,
                      char *why, size_t why_len);

/* Frees what br__registry_init built; safe twice. */
void br__registry_release(br__registry *reg);

/* The route of `service` whose method and template are those of the REQUEST, or NULL;
 * *svc (when not NULL) receives the service's index in reg->services. */
const br_route_spec *br__registry_route(const br__registry *reg, br_str service, br_str method,
                                        br_str route, size_t *svc);

/* The first route of `service` that declares actor type `type`, or NULL: the route
 * whose actor spec serves a timer tick or a direct call of the type (route empty). */
const br_route_spec *br__registry_actor_route(const br__registry *reg, br_str service, br_str type,
                                              size_t *svc);

#endif /* BARISTA_WORKER_REGISTRY_H */
