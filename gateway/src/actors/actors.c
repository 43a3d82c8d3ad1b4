/*
 * actors.c - the actor state store on the loop: queues the broker's loads and
 * commits and applies them in batches on the thread pool, one batch at a time, so
 * that every commit that arrived while a transaction ran goes into the next one (group
 * commit) and answers come back in the order the operations were made.
 */
#include <stdlib.h>
#include <string.h>

#include "actors_store.h"
#include "log.h"

struct gw_actors {
    uv_loop_t *loop;           /* the gateway's loop */
    gw_broker *broker;         /* attached to */
    gw_actors_config cfg;      /* a copy of the caller's */
    gw_actor_backend *backend; /* the store */
    gw_actor_op **queue;       /* operations waiting, in order (a ring) */
    size_t qhead, qlen, qcap;  /* ring position, length, capacity (max_pending) */
    gw_actor_op **batch;       /* the batch under way (batch_max slots) */
    size_t nbatch;             /* entries in batch; 0 when none runs */
    uv_work_t work;            /* the thread-pool job of the batch */
    bool closing;              /* shutdown was called */
    void (*done)(void *arg);   /* shutdown's callback, once idle */
    void *done_arg;            /* its argument */
    gw_actors_stats stats;     /* counters */
};

void gw_actors_config_defaults(gw_actors_config *cfg)
{
    *cfg = (gw_actors_config){
        .db = GW_ACTORS_DB, .max_pending = GW_ACTORS_MAX_PENDING, .batch_max = GW_ACTORS_BATCH_MAX};
}

static void op_free(gw_actor_op *op)
{
    br_buf_free(&op->state);
    free(op);
}

/* A copy of type, key (and state) in one allocation with the op. */
static gw_actor_op *op_new(br_str type, br_str key)
{
    gw_actor_op *op = calloc(1, sizeof(*op) + type.len + key.len + 2);
    if (!op)
        return NULL;
    char *p = (char *)(op + 1);
    memcpy(p, type.ptr, type.len);
    op->type = (br_str){p, type.len};
    p += type.len + 1;
    if (key.len)
        memcpy(p, key.ptr, key.len);
    op->key = (br_str){p, key.len};
    return op;
}

static void start_batch(gw_actors *self);

bool gw__actors_store_is_pg(const char *db)
{
    return strncmp(db, "postgres://", 11) == 0 || strncmp(db, "postgresql://", 13) == 0;
}

gw_actor_backend *gw__actors_store_open(const char *db, bool fsync)
{
    return gw__actors_store_is_pg(db) ? gw__actors_pg_open(db) : gw__actors_sqlite_open(db, fsync);
}

static void on_work(uv_work_t *work)
{
    gw_actors *self = work->data;
    gw__actors_store_apply(self->backend, self->batch, self->nbatch);
}

static void on_after(uv_work_t *work, int status)
{
    gw_actors *self = work->data;
    (void)status;
    /* nbatch stays set while the callbacks run: what they queue waits for the next
     * batch instead of refilling the array being walked here. */
    size_t n = self->nbatch;
    self->stats.transactions++;
    for (size_t i = 0; i < n; i++) {
        gw_actor_op *op = self->batch[i];
        if (op->load) {
            self->stats.loads += op->status == 0;
            op->loaded(op->ctx, op->status, op->epoch,
                       (br_str){(const char *)op->state.data, (uint32_t)op->state.len});
        } else {
            self->stats.commits += op->status == 0 && op->op != BR_STATE_KEEP;
            self->stats.fenced += op->status == BR_EVALUE;
            op->done(op->ctx, op->status);
        }
        op_free(op);
    }
    self->nbatch = 0;
    start_batch(self);
}

/* Starts the next batch when none runs and some wait; or, shutting down and idle,
 * reports done. */
static void start_batch(gw_actors *self)
{
    if (self->nbatch > 0)
        return;
    while (self->qlen > 0 && self->nbatch < self->cfg.batch_max) {
        self->batch[self->nbatch++] = self->queue[self->qhead];
        self->qhead = (self->qhead + 1) % self->qcap;
        self->qlen--;
    }
    if (self->nbatch == 0) {
        if (self->closing && self->done) {
            void (*done)(void *) = self->done;
            self->done = NULL;
            done(self->done_arg);
        }
        return;
    }
    self->work.data = self;
    int rc = uv_queue_work(self->loop, &self->work, on_work, on_after);
    if (rc != 0) {
        gw_log(GW_LOG_ERROR, "actors", "uv_queue_work failed: %s", uv_strerror(rc));
        for (size_t i = 0; i < self->nbatch; i++)
            self->batch[i]->status = BR_EIO;
        on_after(&self->work, rc); /* answers them all failed */
    }
}

static int enqueue(gw_actors *self, gw_actor_op *op)
{
    if (self->closing || self->qlen == self->qcap) {
        op_free(op);
        return self->closing ? BR_ECLOSED : BR_EFULL;
    }
    self->queue[(self->qhead + self->qlen) % self->qcap] = op;
    self->qlen++;
    start_batch(self);
    return 0;
}

static int hook_load(void *data, br_str type, br_str key, gw_actor_loaded_fn cb, void *ctx)
{
    gw_actor_op *op = op_new(type, key);
    if (!op)
        return BR_ENOMEM;
    op->load = true;
    op->loaded = cb;
    op->ctx = ctx;
    return enqueue(data, op);
}

static int hook_commit(void *data, br_str type, br_str key, uint64_t epoch, uint8_t kind,
                       br_str state, gw_actor_done_fn cb, void *ctx)
{
    gw_actor_op *op = op_new(type, key);
    if (!op)
        return BR_ENOMEM;
    op->epoch = epoch;
    op->op = kind;
    op->done = cb;
    op->ctx = ctx;
    if (kind == BR_STATE_SET && br_buf_append(&op->state, state.ptr, state.len) != 0) {
        op_free(op);
        return BR_ENOMEM;
    }
    return enqueue(data, op);
}

gw_actors *gw_actors_new(uv_loop_t *loop, gw_broker *broker, const gw_actors_config *cfg)
{
    if (!cfg || !cfg->db || !cfg->max_pending || !cfg->batch_max)
        return NULL;
    gw_actors *self = calloc(1, sizeof(*self));
    if (!self)
        return NULL;
    self->loop = loop;
    self->broker = broker;
    self->cfg = *cfg;
    self->qcap = cfg->max_pending;
    self->queue = calloc(self->qcap, sizeof(*self->queue));
    self->batch = calloc(cfg->batch_max, sizeof(*self->batch));
    self->backend = gw__actors_store_open(cfg->db, cfg->fsync);
    static const gw_broker_hooks hooks = {.actor_load = hook_load, .actor_commit = hook_commit};
    if (!self->queue || !self->batch || !self->backend ||
        gw_broker_attach(broker, &hooks, self) != 0) {
        gw_log(GW_LOG_ERROR, "actors", "cannot set up the actor state store (%s)",
               gw__actors_store_is_pg(cfg->db) ? "PostgreSQL" : cfg->db);
        gw_actors_destroy(&self);
        return NULL;
    }
    self->cfg.db = NULL; /* the caller's string: not kept */
    return self;
}

void gw_actors_shutdown(gw_actors *self, void (*done)(void *arg), void *arg)
{
    if (!self || self->closing)
        return;
    self->closing = true;
    self->done = done;
    self->done_arg = arg;
    start_batch(self);
}

void gw_actors_destroy(gw_actors **self_p)
{
    if (!self_p || !*self_p)
        return;
    gw_actors *self = *self_p;
    gw_broker_detach(self->broker, self);
    for (size_t i = 0; self->queue && i < self->qlen; i++)
        op_free(self->queue[(self->qhead + i) % self->qcap]);
    gw__actors_store_close(&self->backend);
    free(self->queue);
    free(self->batch);
    free(self);
    *self_p = NULL;
}

void gw_actors_stats_get(const gw_actors *self, gw_actors_stats *out)
{
    *out = self->stats;
    out->pending = self->qlen + self->nbatch;
}
