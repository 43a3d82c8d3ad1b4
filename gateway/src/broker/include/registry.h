/*
 * registry.h - the broker's book of services, workers and the routes they announced.
 *
 * A worker's READY is checked here as a whole (one kind per service; a route belongs to
 * one service, and no service's route may overlap another's) and either accepted - its
 * new routes added to the gateway's router, each pointing at a gw_route_entry that
 * holds a copy of the declaration - or refused with a reason for the GOODBYE.  Routes
 * outlive the workers that announced them for a while: when the last worker of a
 * service leaves, its routes stay and answer 503 until one returns, or until the
 * broker retires the service (gw_registry_retire) after its grace period.
 *
 * The registry does no I/O.  It knows which workers are live and how much credit each
 * has, and picks the least loaded one; sending is the broker's business.
 */
#ifndef BARISTA_GW_REGISTRY_H
#define BARISTA_GW_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <barista/proto.h>
#include <barista/ws_batch.h>

#include "contracts.h"
#include "list.h"
#include "router.h"

/* Longest ZeroMQ routing id (ZMTP caps it at 255 bytes). */
#define GW_IDENT_MAX 255
/* Longest service name, worker id and route method a READY may carry. */
#define GW_NAME_MAX   128
#define GW_METHOD_MAX 16
/* Longest route template. */
#define GW_TEMPLATE_MAX 1024
/* Longest heartbeat interval a worker may announce: its liveness is judged on at
 * most this, so that a worker cannot make itself immortal. */
#define GW_HEARTBEAT_MAX 60000u
/* Most services the registry knows at once.  Services (and their routes) outlive their
 * workers, so without this a peer joining again and again with new names would grow
 * the table, and every scan of it, without bound. */
#define GW_MAX_SERVICES 1024
/* Most credit the registry records for a READY; the broker caps it further at its
 * max_worker_credit. */
#define GW_CREDIT_MAX 1000000u
/* Characters of a worker's CURVE public key in Z85. */
#define GW_KEY_LEN 40

typedef struct gw_service gw_service;
typedef struct gw_worker gw_worker;

/* A route as the router's route_data: a copy of what the first worker declared. */
typedef struct gw_route_entry {
    gw_service *service;         /* the owning service */
    void *arg;                   /* the registry's handler argument (the broker) */
    const char *method;          /* "GET" (NUL-terminated, in this allocation) */
    const char *path;            /* template "/hello/{name}" (likewise) */
    const char *summary;         /* OpenAPI summary, maybe "" (likewise) */
    uint32_t timeout_ms;         /* the route's deadline; 0 = the broker's default */
    uint8_t body;                /* br_body_mode */
    br_param *params;            /* declared parameters; strings in this allocation */
    uint32_t nparams;            /* entries in params */
    gw_route_policy policy;      /* auth and scopes for the edge (strings in this
                                    allocation); the router points at it */
    gw_cors_policy cors;         /* the service's CORS (strings in this allocation);
                                    policy.cors points here when it declared one */
    gw_contract *contract;       /* the declaration compiled (contracts.h) */
    const char *actor_type;      /* keyed actor route: its actor type; "" otherwise
                                    (in this allocation) */
    const char *actor_key;       /* the path parameter that is the actor's key (likewise) */
    uint32_t actor_idle_ms;      /* idle time before deactivation; 0: the broker's */
    bool websocket;              /* a WebSocket route (websockets.c) */
    const char *subprotocols;    /* its space-separated subprotocols (in this allocation) */
    bool fresh;                  /* added by the READY being registered (rollback) */
    struct gw_route_entry *next; /* the service's next route */
} gw_route_entry;

struct gw_service {
    char *name;             /* unique service name */
    uint8_t kind;           /* br_kind, fixed by the first worker that announced it */
    gw_route_entry *routes; /* its routes, newest first */
    size_t nroutes;         /* entries in routes */
    gw_worker **workers;    /* registered workers hosting it, draining ones included */
    size_t nworkers;        /* entries in workers */
    size_t workers_cap;     /* slots allocated in workers */
    gw_list queue;          /* requests waiting for credit, oldest first (broker's) */
    size_t nqueued;         /* entries in queue */
    size_t npending;        /* its requests the broker holds, queued + in flight (broker's) */
    uint64_t empty_since;   /* loop time its last worker left; 0 while it has one */
    bool fresh;             /* created by the READY being registered (rollback) */
};

struct gw_worker {
    uint8_t ident[GW_IDENT_MAX]; /* ZeroMQ routing id */
    size_t ident_len;            /* bytes in ident */
    char *id;                    /* the worker_id it announced */
    uint8_t kind;                /* br_kind */
    uint32_t credit;             /* requests it can still take */
    uint32_t inflight;           /* requests and jobs sent to it and not yet answered,
                                    cancelled ones included */
    size_t bytes;                /* bytes of requests sent to it and not yet answered */
    uint32_t ncancelled;         /* cancelled requests it has not answered yet */
    gw_list cancelled;           /* those, oldest first (broker's gw_cancelled) */
    bool unhealthy;              /* left a CANCEL unanswered past the grace: no new work */
    char key[GW_KEY_LEN + 1];    /* its CURVE public key (Z85); "" without CURVE */
    uint32_t heartbeat_ms;       /* its announced heartbeat, capped at GW_HEARTBEAT_MAX */
    uint8_t proto_version;       /* the protocol version of its READY: every message to
                                    it is written in that one, and version-2 message
                                    types never reach a version-1 worker */
    bool draining;               /* sent GOODBYE: no new work, forget at inflight 0 */
    bool lost;                   /* a send found it gone: no new work, reap it */
    uint64_t last_recv;          /* loop time (ms) of its last message */
    uint64_t last_send;          /* loop time (ms) of our last message to it */
    gw_service **services;       /* the services it hosts */
    size_t nservices;            /* entries in services */
    gw_list exchanges;           /* exchanges in flight at it (broker's) */
    gw_list outgoing;            /* CALLs it made that it still waits for (broker's) */
    gw_list actors;              /* actor activations placed at it (broker's actors.c) */
    gw_list actors_waiting;      /* activations waiting for its credit (likewise) */
    gw_list websockets;          /* WebSocket connections placed on it (broker's) */
    size_t nwebsockets;          /* entries in websockets */
    bool ws_batch;               /* it reads WS_BATCH (READY.features) */
    bool call_stream;            /* it reads CALL_STREAM_* (READY.features): its CALLs may
                                    ask for a streamed answer */
    bool req_batch;              /* REQUESTs go in its batch too (READY.features bit 8) */
    br_ws_batch batch;           /* messages for it this loop turn (broker's batch.c) */
};

typedef struct gw_registry gw_registry;

/* Creates an empty registry that adds routes to `router` with `handler` and passes
 * `arg` in every gw_route_entry; at most max_workers workers at once.  Caller owns the
 * result (the router stays the caller's); NULL when out of memory. */
/* The most bytes a streamed request body may have (a route may declare less); 0, the
 * default, turns streamed bodies off: such routes are buffered. */
void gw_registry_set_stream_body_cap(gw_registry *self, uint64_t cap);

gw_registry *gw_registry_new(gw_router *router, gw_handler_fn handler, void *arg,
                             size_t max_workers);

/* Removes every route it added from the router and frees services, entries and
 * workers; sets *self_p to NULL; safe on NULL and twice.  The broker must have
 * emptied every queue and in-flight list first. */
void gw_registry_destroy(gw_registry **self_p);

/* Registers the worker at routing id `ident` from its READY.  On success *out is the
 * new worker, holding capacity credit (at most GW_CREDIT_MAX), last_recv = last_send
 * = now.  Returns 0; BR_EVALUE when the READY is refused - a one-line reason is
 * written to `reason` (mixed kinds, a service announced with another kind, a route
 * owned by another service or overlapping one of another service's, a malformed name
 * or template); BR_EFULL at max_workers, or when the new services would pass
 * GW_MAX_SERVICES (reason set); BR_ENOMEM.  Nothing changes unless it returns 0.
 * When `ident` is registered already (the peer registering again), the new worker is
 * added beside the old one, which the caller then removes: max_workers counts the
 * two once, and gw_registry_find finds the old one until it is removed. */
int gw_registry_add(gw_registry *self, const void *ident, size_t ident_len, const br_ready *ready,
                    uint64_t now, gw_worker **out, char *reason, size_t reason_cap);

/* The worker with this routing id, or NULL. */
gw_worker *gw_registry_find(const gw_registry *self, const void *ident, size_t ident_len);

/* How many workers gw_registry_remove has removed: a caller holding a gw_worker across
 * calls that may remove one looks it up again only when this moved. */
uint64_t gw_registry_removals(const gw_registry *self);

/* Forgets w: unlinks it from its services and frees it; a service left without any
 * worker is marked empty since `now`.  Its calls and outgoing lists must be empty. */
void gw_registry_remove(gw_registry *self, gw_worker *w, uint64_t now);

/* Retires s: its routes leave the router and it is freed.  It must have no worker and
 * no request.  Iteration order of services changes. */
void gw_registry_retire(gw_registry *self, gw_service *s);

/* True when w may be given new requests: not draining, not lost, not unhealthy. */
static inline bool gw_worker_live(const gw_worker *w)
{
    return !w->draining && !w->lost && !w->unhealthy;
}

/* The live worker of s with the most free credit among those with fewer than
 * max_bytes of requests in flight, or NULL when none qualifies. */
gw_worker *gw_registry_pick(const gw_service *s, size_t max_bytes);

/* Rendezvous (highest random weight) placement of the actor `key` of `type`: the
 * live worker of s speaking protocol version 2 or later whose score for (type, key, worker id) is
 * highest, or NULL when s has no live worker.  While the live set is stable a key always gets the
 * same worker; when a worker joins or leaves only the keys it wins or held move (about 1/N of
 * them).  Credit is not considered: a key waits for its worker. */
gw_worker *gw_registry_place(const gw_service *s, const char *type, size_t type_len,
                             const char *key, size_t key_len);

/* The rendezvous score of worker id `worker` for (type, key): a 64-bit hash. */
uint64_t gw_placement_score(const char *type, size_t type_len, const char *key, size_t key_len,
                            const char *worker);

/* Number of live workers hosting s. */
size_t gw_service_live(const gw_service *s);

/* True when at least one worker is live and every current service that has routes has
 * a live worker (the gateway's /readyz); retired services are gone from the book. */
bool gw_registry_ready(const gw_registry *self);

/* Iteration: counts and the i-th worker / service (i < count; order changes when
 * workers are removed). */
size_t gw_registry_nworkers(const gw_registry *self);
gw_worker *gw_registry_worker(const gw_registry *self, size_t i);
size_t gw_registry_nservices(const gw_registry *self);
gw_service *gw_registry_service(const gw_registry *self, size_t i);

/* The name of a br_kind: "io" or "cpu". */
const char *gw_kind_name(unsigned kind);

#endif /* BARISTA_GW_REGISTRY_H */
