/*
 * actors_store.h - what an actor state backend does: apply a batch of loads and
 * commits, in order, atomically, off the loop.
 *
 * A batch is applied on a thread-pool thread (never the loop): one transaction, so
 * that N turns' commits cost one fsync (group commit).  Operations are applied in the
 * order given; each gets its own answer.
 *
 * A backend is a table of hooks (gw_actor_backend_ops) chosen by the store's name:
 * a postgres:// or postgresql:// URL opens the PostgreSQL one (actors_pg.c), anything
 * else is a SQLite file (actors_sqlite.c).  Epochs live in the database, so several
 * gateways can share a PostgreSQL store and still fence each other's stale commits.
 */
#ifndef BARISTA_GW_ACTORS_STORE_H
#define BARISTA_GW_ACTORS_STORE_H

#include <barista/proto.h>

#include "actors.h"

/* One operation of a batch. */
typedef struct gw_actor_op {
    bool load;                 /* true: load (claim a new epoch, read the state); false: commit */
    br_str type;               /* actor type (owned by the op) */
    br_str key;                /* actor key (owned by the op) */
    uint64_t epoch;            /* commit: the epoch it was made under; load: the new epoch (out) */
    uint8_t op;                /* commit: br_state_op */
    br_buf state;              /* commit: the new state; load: the state read (out) */
    int status;                /* out: 0; BR_EVALUE (commit fenced); BR_EIO */
    gw_actor_loaded_fn loaded; /* load's callback */
    gw_actor_done_fn done;     /* commit's callback */
    void *ctx;                 /* their argument */
} gw_actor_op;

typedef struct gw_actor_backend gw_actor_backend;

/* A backend's hooks. */
typedef struct gw_actor_backend_ops {
    /* Applies ops[0..n) in one transaction (thread-pool thread). Sets every op's
     * status; when the transaction itself fails every op gets BR_EIO. */
    void (*apply)(gw_actor_backend *self, gw_actor_op **ops, size_t n);
    /* Closes the connection or file and frees self. */
    void (*close)(gw_actor_backend *self);
} gw_actor_backend_ops;

/* Every backend's struct starts with this. */
struct gw_actor_backend {
    const gw_actor_backend_ops *ops; /* the backend's hooks */
};

/* True when db names a PostgreSQL database (a postgres:// or postgresql:// URL). */
bool gw__actors_store_is_pg(const char *db);

/* Opens the backend db names (see above).  NULL (logged) when it cannot be opened.
 * fsync applies to SQLite; a PostgreSQL commit is as durable as the server's
 * synchronous_commit says (on by default). */
gw_actor_backend *gw__actors_store_open(const char *db, bool fsync);

static inline void gw__actors_store_apply(gw_actor_backend *self, gw_actor_op **ops, size_t n)
{
    self->ops->apply(self, ops, n);
}

/* Frees *self_p and sets it to NULL; safe on NULL and twice. */
static inline void gw__actors_store_close(gw_actor_backend **self_p)
{
    if (self_p && *self_p) {
        (*self_p)->ops->close(*self_p);
        *self_p = NULL;
    }
}

/* The PostgreSQL backend: db is a libpq URL.  The table is created when missing.
 * NULL (logged) when the server cannot be reached. */
gw_actor_backend *gw__actors_pg_open(const char *url);

/* The embedded SQLite backend.  NULL (logged) when it cannot be opened. */
gw_actor_backend *gw__actors_sqlite_open(const char *path, bool fsync);
void gw__actors_sqlite_close(gw_actor_backend **self_p);

/* Applies ops[0..n) in one transaction (thread-pool thread). Sets every op's status;
 * when the transaction itself fails every op gets BR_EIO. */
void gw__actors_sqlite_apply(gw_actor_backend *self, gw_actor_op **ops, size_t n);

#endif /* BARISTA_GW_ACTORS_STORE_H */
