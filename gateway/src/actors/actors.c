/*
 * actors.c - the actor state store on the loop: queues the broker's loads and
 * commits and applies them in batches on the thread pool, one batch at a time, so
 * that every commit that arrived while a transaction ran goes into the next one (group
 * commit) and answers come back in the order the operations were made.
 *
 * It also keeps the durable reminders: the broker hands it the actors' set and unset
 * requests (hook actor_reminder), and a poll every GW_ACTORS_REMIND_POLL_MS claims the
 * due reminders of the types this gateway serves and gives their ticks to the broker
 * (gw_broker_actor_remind), which runs them as turns of their keys; each tick's
 * outcome moves its reminder on, or lets it be retried.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
    uv_timer_t remind_timer;   /* the reminder poll */
    bool timer_open;           /* remind_timer not closed yet */
    uint32_t claims;           /* CLAIM operations under way */
    uint64_t next_gen;         /* last reminder generation handed out */
};

/* A claimed reminder whose tick the broker runs: what its DONE names. */
typedef struct remind_tick {
    gw_actors *self;
    uint64_t gen;
    size_t type_len, key_len, name_len;
    char bytes[]; /* type, key, name */
} remind_tick;

/* Wall-clock milliseconds since the Unix epoch. */
static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void gw_actors_config_defaults(gw_actors_config *cfg)
{
    *cfg = (gw_actors_config){
        .db = GW_ACTORS_DB, .max_pending = GW_ACTORS_MAX_PENDING, .batch_max = GW_ACTORS_BATCH_MAX};
}

/* Backend-neutral: every backend fills claimed[] with malloc'd strings. */
void gw__actor_op_free_claimed(gw_actor_op *op)
{
    for (size_t i = 0; i < op->nclaimed; i++) {
        free((void *)op->claimed[i].key.ptr);
        free((void *)op->claimed[i].name.ptr);
    }
    free(op->claimed);
    op->claimed = NULL;
    op->nclaimed = 0;
}

static void op_free(gw_actor_op *op)
{
    br_buf_free(&op->state);
    gw__actor_op_free_claimed(op);
    free(op);
}

/* A copy of type, key and name in one allocation with the op. */
static gw_actor_op *op_new_named(br_str type, br_str key, br_str name)
{
    gw_actor_op *op = calloc(1, sizeof(*op) + type.len + key.len + name.len + 3);
    if (!op)
        return NULL;
    char *p = (char *)(op + 1);
    if (type.len)
        memcpy(p, type.ptr, type.len);
    op->type = (br_str){p, type.len};
    p += type.len + 1;
    if (key.len)
        memcpy(p, key.ptr, key.len);
    op->key = (br_str){p, key.len};
    p += key.len + 1;
    if (name.len)
        memcpy(p, name.ptr, name.len);
    op->name = (br_str){p, name.len};
    op->now_ms = wall_ms();
    return op;
}

static gw_actor_op *op_new(br_str type, br_str key)
{
    return op_new_named(type, key, (br_str){0});
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
        if (op->remind == GW_REMIND_CLAIM) {
            self->claims--;
            op->claimed_fn(op->ctx, op);
        } else if (op->remind) {
            self->stats.reminders_fenced += op->status == BR_EVALUE;
        } else if (op->load) {
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

/* Starts the next batch when none runs and some wait; or, shutting down, idle and with
 * the poll's timer closed, reports done. */
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
        if (self->closing && self->done && !self->timer_open) {
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

static int hook_reminder(void *data, br_str type, br_str key, uint64_t epoch, br_str name, bool set,
                         uint64_t due_ms, uint64_t period_ms)
{
    gw_actors *self = data;
    gw_actor_op *op = op_new_named(type, key, name);
    if (!op)
        return BR_ENOMEM;
    op->remind = set ? GW_REMIND_SET : GW_REMIND_UNSET;
    op->epoch = epoch;
    op->due_ms = due_ms;
    op->period_ms = period_ms;
    /* Unique per set: the wall clock in us, or one more than the last when that is not
     * later - another process's set of the same name gets its own time. */
    uint64_t gen = op->now_ms * 1000u;
    self->next_gen = gen > self->next_gen ? gen : self->next_gen + 1;
    op->gen = self->next_gen;
    self->stats.reminders_set += set;
    return enqueue(self, op);
}

/* A reminder's tick ended: its DONE moves it on (or lets it be retried). */
static void on_tick_done(void *ctx, bool ok)
{
    remind_tick *t = ctx;
    gw_actors *self = t->self;
    br_str type = {t->bytes, (uint32_t)t->type_len};
    br_str key = {t->bytes + t->type_len, (uint32_t)t->key_len};
    br_str name = {t->bytes + t->type_len + t->key_len, (uint32_t)t->name_len};
    uint64_t gen = t->gen;
    gw_actor_op *op = op_new_named(type, key, name);
    free(t);
    if (!op)
        return; /* its lease runs out: tried again then */
    op->remind = GW_REMIND_DONE;
    op->gen = gen;
    op->ok = ok;
    op->lease_ms = GW_ACTORS_REMIND_RETRY_MS;
    self->stats.reminder_ticks += ok;
    (void)enqueue(self, op);
}

/* The claimed reminders of one type: each tick goes to the broker. */
static void on_claimed(void *ctx, gw_actor_op *op)
{
    gw_actors *self = ctx;
    if (op->status != 0 || self->closing)
        return;
    for (size_t i = 0; i < op->nclaimed; i++) {
        const gw_actor_reminder *r = &op->claimed[i];
        remind_tick *t = malloc(sizeof(*t) + op->type.len + r->key.len + r->name.len);
        if (!t)
            continue; /* its lease runs out: tried again then */
        t->self = self;
        t->gen = r->gen;
        t->type_len = op->type.len;
        t->key_len = r->key.len;
        t->name_len = r->name.len;
        memcpy(t->bytes, op->type.ptr, op->type.len);
        memcpy(t->bytes + op->type.len, r->key.ptr, r->key.len);
        memcpy(t->bytes + op->type.len + r->key.len, r->name.ptr, r->name.len);
        int rc = gw_broker_actor_remind(self->broker, op->type, r->key, r->name, on_tick_done, t);
        if (rc != 0)
            on_tick_done(t, false);
    }
}

/* Every GW_ACTORS_REMIND_POLL_MS: claims the due reminders of the served types. */
static void on_remind_poll(uv_timer_t *timer)
{
    gw_actors *self = timer->data;
    if (self->closing || self->claims > 0)
        return; /* the last poll's claims are still under way */
    const char *types[GW_BROKER_MAX_ACTOR_TYPES];
    size_t n = gw_broker_actor_types_served(self->broker, types, GW_BROKER_MAX_ACTOR_TYPES);
    if (n > GW_BROKER_MAX_ACTOR_TYPES)
        n = GW_BROKER_MAX_ACTOR_TYPES;
    for (size_t i = 0; i < n; i++) {
        gw_actor_op *op = op_new(br_str_c(types[i]), (br_str){0});
        if (!op)
            return;
        op->remind = GW_REMIND_CLAIM;
        op->claim_max = GW_ACTORS_REMIND_CLAIM_MAX;
        op->lease_ms = GW_ACTORS_REMIND_LEASE_MS;
        op->claimed_fn = on_claimed;
        op->ctx = self;
        self->claims++; /* before: a failed batch answers at once */
        if (enqueue(self, op) != 0) {
            self->claims--;
            return;
        }
    }
}

static void on_timer_closed(uv_handle_t *handle)
{
    gw_actors *self = handle->data;
    self->timer_open = false;
    start_batch(self); /* reports done when idle */
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
    static const gw_broker_hooks hooks = {
        .actor_load = hook_load, .actor_commit = hook_commit, .actor_reminder = hook_reminder};
    if (!self->queue || !self->batch || !self->backend ||
        gw_broker_attach(broker, &hooks, self) != 0) {
        gw_log(GW_LOG_ERROR, "actors", "cannot set up the actor state store (%s)",
               gw__actors_store_is_pg(cfg->db) ? "PostgreSQL" : cfg->db);
        gw_actors_destroy(&self);
        return NULL;
    }
    self->cfg.db = NULL; /* the caller's string: not kept */
    uv_timer_init(loop, &self->remind_timer);
    self->remind_timer.data = self;
    self->timer_open = true;
    uv_timer_start(&self->remind_timer, on_remind_poll, GW_ACTORS_REMIND_POLL_MS,
                   GW_ACTORS_REMIND_POLL_MS);
    return self;
}

void gw_actors_shutdown(gw_actors *self, void (*done)(void *arg), void *arg)
{
    if (!self || self->closing)
        return;
    self->closing = true;
    self->done = done;
    self->done_arg = arg;
    if (self->timer_open && !uv_is_closing((uv_handle_t *)&self->remind_timer)) {
        uv_timer_stop(&self->remind_timer);
        uv_close((uv_handle_t *)&self->remind_timer, on_timer_closed);
    }
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
