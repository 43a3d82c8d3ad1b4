/*
 * actors_store.h - what an actor state backend does: apply a batch of loads and
 * commits, in order, atomically, off the loop.
 *
 * A batch is applied on a thread-pool thread (never the loop): one transaction, so
 * that N turns' commits cost one fsync (group commit).  Operations are applied in the
 * order given; each gets its own answer.
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

/* The embedded SQLite backend.  NULL (logged) when it cannot be opened. */
gw_actor_backend *gw__actors_sqlite_open(const char *path, bool fsync);
void gw__actors_sqlite_close(gw_actor_backend **self_p);

/* Applies ops[0..n) in one transaction (thread-pool thread). Sets every op's status;
 * when the transaction itself fails every op gets BR_EIO. */
void gw__actors_sqlite_apply(gw_actor_backend *self, gw_actor_op **ops, size_t n);

#endif /* BARISTA_GW_ACTORS_STORE_H */
