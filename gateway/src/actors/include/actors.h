/*
 * actors.h - the keyed actors' state store, attached to the broker.
 *
 * The broker places actor keys and runs their turns (broker/actors.c); this subsystem
 * keeps their state durable.  It attaches to the broker the two store hooks
 * (gw_broker_hooks.actor_load, .actor_commit) and answers them from a store backend:
 * the embedded SQLite one here (actors_sqlite.c), behind the small interface in
 * actors_store.h that a networked backend (PostgreSQL) implements too.
 *
 * It keeps the actors' durable reminders too, and polls for the due ones (actors.c).
 *
 * Fencing lives in the store, not only in the broker: each activation claims a new
 * epoch (the stored epoch + 1) when its state is loaded, and a commit is applied only
 * when its epoch is still the key's.  A worker that lost its key - paused past its
 * liveness, say - and comes back cannot overwrite the state of the activation that
 * replaced it, whichever gateway it reaches.
 */
#ifndef BARISTA_GW_ACTORS_H
#define BARISTA_GW_ACTORS_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "broker.h"

/* Defaults of gw_actors_config. */
#define GW_ACTORS_DB          "./barista-actors.db"
#define GW_ACTORS_MAX_PENDING 200000u
#define GW_ACTORS_BATCH_MAX   8192u
/* Reminders: how often the store is polled for due ones, most claimed per type and
 * poll, how long a claim holds (longer than a tick's turn may take: 10 s), and how
 * soon a failed tick is tried again. */
#define GW_ACTORS_REMIND_POLL_MS   250u
#define GW_ACTORS_REMIND_CLAIM_MAX 256u
#define GW_ACTORS_REMIND_LEASE_MS  15000u
#define GW_ACTORS_REMIND_RETRY_MS  1000u

typedef struct gw_actors_config {
    const char *db;       /* SQLite file (created; WAL mode); ":memory:" for none */
    bool fsync;           /* fsync every group commit (survives power loss); false:
                             survives process kills (WAL, synchronous=NORMAL) */
    uint32_t max_pending; /* loads and commits waiting, at most; 200000 */
    uint32_t batch_max;   /* operations in one transaction (group commit); 8192 */
} gw_actors_config;

void gw_actors_config_defaults(gw_actors_config *cfg);

typedef struct gw_actors gw_actors;

/* Opens the store and attaches it to broker.  NULL (logged) when the file cannot be
 * opened or memory runs out.  Caller owns the result. */
gw_actors *gw_actors_new(uv_loop_t *loop, gw_broker *broker, const gw_actors_config *cfg);

/* Stops taking operations; done(arg) runs once those under way have finished. */
void gw_actors_shutdown(gw_actors *self, void (*done)(void *arg), void *arg);

/* Detaches from the broker and closes the store; *self_p = NULL; safe twice.  Only
 * after shutdown's done (or before anything was queued). */
void gw_actors_destroy(gw_actors **self_p);

/* Counters for /metrics. */
typedef struct gw_actors_stats {
    uint64_t loads;            /* activations loaded */
    uint64_t commits;          /* state changes written */
    uint64_t fenced;           /* commits refused for a stale epoch */
    uint64_t transactions;     /* group commits */
    uint64_t pending;          /* gauge: operations waiting or under way */
    uint64_t reminders_set;    /* reminders set (or set again) by actors */
    uint64_t reminders_fenced; /* reminder changes refused for a stale epoch */
    uint64_t reminder_ticks;   /* reminder ticks whose turn succeeded */
} gw_actors_stats;

void gw_actors_stats_get(const gw_actors *self, gw_actors_stats *out);

#endif /* BARISTA_GW_ACTORS_H */
