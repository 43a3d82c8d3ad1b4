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

/* Reminder operations (gw_actor_op.remind); 0: a state operation (load or commit).
 * Times are wall-clock milliseconds since the Unix epoch, so that they mean the same
 * to every gateway process and after a restart. */
typedef enum gw_remind_op {
    GW_REMIND_NONE = 0,
    GW_REMIND_SET = 1,   /* (type, key, name): first tick at now_ms + due_ms, then every
                            period_ms (0: once); replaces one of the name and starts a new
                            generation.  Only while `epoch` is the key's: else BR_EVALUE */
    GW_REMIND_UNSET = 2, /* removes (type, key, name), under the same fencing */
    GW_REMIND_CLAIM = 3, /* of `type`, at most claim_max reminders that are due (due <=
                            now_ms) and not leased: leased until now_ms + lease_ms and
                            returned in claimed[] - atomically, so that two gateway
                            processes never both claim one */
    GW_REMIND_DONE = 4,  /* the tick of generation `gen` ended: ok - a periodic one is due
                            period_ms after its last due time (never in the past), a one-
                            shot one is removed; not ok - retried at now_ms + lease_ms.
                            A reminder set again since (another gen) is left alone */
} gw_remind_op;

/* One claimed reminder (GW_REMIND_CLAIM's answer); key and name are owned by the op. */
typedef struct gw_actor_reminder {
    br_str key;
    br_str name;
    uint64_t gen; /* its generation: names it in GW_REMIND_DONE */
} gw_actor_reminder;

/* One operation of a batch. */
typedef struct gw_actor_op {
    bool load;                 /* true: load (claim a new epoch, read the state); false: commit */
    uint8_t remind;            /* gw_remind_op; 0: load or commit as `load` says */
    br_str type;               /* actor type (owned by the op) */
    br_str key;                /* actor key (owned by the op) */
    uint64_t epoch;            /* commit: the epoch it was made under; load: the new epoch (out) */
    uint8_t op;                /* commit: br_state_op */
    br_buf state;              /* commit: the new state; load: the state read (out) */
    int status;                /* out: 0; BR_EVALUE (commit fenced); BR_EIO */
    gw_actor_loaded_fn loaded; /* load's callback */
    gw_actor_done_fn done;     /* commit's callback */
    void *ctx;                 /* their argument */
    /* Reminder operations (remind != 0); type and key as above (CLAIM: key empty). */
    br_str name;                /* SET, UNSET, DONE: the reminder's name (owned by the op) */
    uint64_t now_ms;            /* the time the operation was made (wall clock, ms) */
    uint64_t due_ms;            /* SET: the first tick this long after now_ms */
    uint64_t period_ms;         /* SET: then every period_ms; 0: once */
    uint64_t lease_ms;          /* CLAIM: how long a claim holds; DONE (not ok): retry delay */
    uint32_t claim_max;         /* CLAIM: most reminders claimed */
    uint64_t gen;               /* DONE: the generation claimed */
    bool ok;                    /* DONE: the tick's turn succeeded */
    gw_actor_reminder *claimed; /* CLAIM (out): the claimed reminders (malloc'd, owned) */
    size_t nclaimed;            /* CLAIM (out): entries in claimed */
    void (*claimed_fn)(void *ctx, struct gw_actor_op *op); /* CLAIM: told with the op */
} gw_actor_op;

/* Frees what a CLAIM op's answer holds (claimed[] and its strings). */
void gw__actor_op_free_claimed(gw_actor_op *op);

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
 * when the transaction itself fails every op gets BR_EIO.  Every backend applies the
 * reminder operations too (gw_remind_op): a table (type, key, name) -> (due, period,
 * lease, gen), with SET/UNSET fenced by the key's epoch like a commit and CLAIM atomic
 * among processes sharing the store. */
void gw__actors_sqlite_apply(gw_actor_backend *self, gw_actor_op **ops, size_t n);

#endif /* BARISTA_GW_ACTORS_STORE_H */
