/*
 * actors.c - keyed actors inside a worker: one mailbox per active key.
 *
 * The gateway sends every message of a key to one worker (ACTOR_REQUEST).  Here each
 * key has a br__actor: its committed state, its epoch, the turns running and a mailbox
 * of messages waiting, in arrival order.  A non-reentrant type runs one turn per key at
 * a time: a handler that awaits a call or a timer holds its key's turn until it
 * replies, while other keys' messages run on the same loop.  The reply carries the
 * turn's state change (ACTOR_REPLY); a turn that fails (status >= 500, cancelled)
 * changes nothing.  The gateway ends an activation with DEACTIVATE.
 *
 * The next turn of a key starts from the pump below, never from inside the reply of
 * the turn before, so that a key with a long mailbox of handlers that reply at once
 * does not recurse.
 */
#include <stdlib.h>
#include <string.h>

#include "worker_int.h"

/* Buckets of the key table (a power of two). */
#define ACTOR_BUCKETS 16384u

struct br__actor {
    struct br__actor *hnext;   /* next in its bucket */
    const br_actor_spec *spec; /* its type */
    br_svc *svc;               /* the service whose route declared it */
    uint64_t epoch;            /* the activation's epoch */
    bool active;               /* an activation started here (on_activate ran) */
    bool deactivate;           /* DEACTIVATE came while it was busy */
    br_buf state;              /* committed state (one msgpack value), maybe empty */
    unsigned running;          /* turns running */
    br_req *qhead, *qtail;     /* mailbox: messages waiting for their turn */
    struct br__actor *rnext;   /* in the pump's ready list */
    bool ready;                /* in the ready list */
    size_t key_len;            /* bytes of key */
    char key[];                /* the key, NUL-terminated */
};

struct br__actors {
    br__actor *buckets[ACTOR_BUCKETS]; /* by hash of (type, key) */
    br__actor *ready_head;             /* actors whose next turn may start */
    br__actor *ready_tail;
    bool pumping; /* the pump runs (further calls only queue) */
    size_t count; /* actors in the table */
};

static uint64_t hash_of(const char *type, br_str key)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (const char *p = type; *p; p++)
        h = (h ^ (uint8_t)*p) * 0x100000001b3ull;
    h = (h ^ 0xff) * 0x100000001b3ull;
    for (uint32_t i = 0; i < key.len; i++)
        h = (h ^ (uint8_t)key.ptr[i]) * 0x100000001b3ull;
    return h ^ (h >> 29);
}

static br__actor **slot_of(br__actors *t, const br_actor_spec *spec, br_str key)
{
    br__actor **pp = &t->buckets[hash_of(spec->type, key) & (ACTOR_BUCKETS - 1)];
    while (*pp && !((*pp)->spec == spec && (*pp)->key_len == key.len &&
                    memcmp((*pp)->key, key.ptr, key.len) == 0))
        pp = &(*pp)->hnext;
    return pp;
}

void br__actors_release(br_worker *w)
{
    br__actors *t = w->actors;
    if (!t)
        return;
    for (size_t i = 0; i < ACTOR_BUCKETS; i++)
        while (t->buckets[i]) {
            br__actor *a = t->buckets[i];
            t->buckets[i] = a->hnext;
            br_buf_free(&a->state);
            free(a);
        }
    free(t);
    w->actors = NULL;
}

/* Frees a when nothing of it runs or waits. */
static void actor_drop(br_worker *w, br__actor *a)
{
    br__actor **pp = slot_of(w->actors, a->spec, (br_str){a->key, (uint32_t)a->key_len});
    if (*pp != a)
        return;
    if (a->active && a->spec->on_deactivate)
        a->spec->on_deactivate(a->svc, (br_str){a->key, (uint32_t)a->key_len});
    *pp = a->hnext;
    br_buf_free(&a->state);
    free(a);
    w->actors->count--;
}

/* Starts req's turn: an activation takes its state first. */
static void turn_start(br_worker *w, br__actor *a, br_req *req)
{
    a->running++;
    req->ax->started = true;
    if (atomic_load(&req->cancelled)) {
        br__dispatch_replied(req); /* answered 499 at once */
        return;
    }
    if (req->ax->activate) {
        a->state.len = 0;
        if (br_buf_append(&a->state, req->ax->state_in.ptr, req->ax->state_in.len) != 0) {
            br_reply_error(req, 503, "worker is out of memory");
            return;
        }
        a->epoch = req->ax->epoch;
        a->active = true;
        if (a->spec->on_activate)
            a->spec->on_activate(a->svc, (br_str){a->key, (uint32_t)a->key_len},
                                 (br_str){(const char *)a->state.data, (uint32_t)a->state.len});
    }
    br__dispatch_run(w, req);
}

/* Starts the turns that may start, for every actor in the ready list. */
static void pump(br_worker *w)
{
    br__actors *t = w->actors;
    if (t->pumping)
        return;
    t->pumping = true;
    while (t->ready_head) {
        br__actor *a = t->ready_head;
        t->ready_head = a->rnext;
        if (!t->ready_head)
            t->ready_tail = NULL;
        a->ready = false;
        while (a->qhead && (a->running == 0 || a->spec->reentrant)) {
            br_req *req = a->qhead;
            a->qhead = req->ax->qnext;
            if (!a->qhead)
                a->qtail = NULL;
            turn_start(w, a, req);
        }
        if (a->deactivate && a->running == 0 && !a->qhead)
            actor_drop(w, a);
    }
    t->pumping = false;
}

static void make_ready(br__actors *t, br__actor *a)
{
    if (a->ready)
        return;
    a->ready = true;
    a->rnext = NULL;
    if (t->ready_tail)
        t->ready_tail->rnext = a;
    else
        t->ready_head = a;
    t->ready_tail = a;
}

int br__actors_enqueue(br_worker *w, br_req *req, const br_actor_request *m)
{
    const br_actor_spec *spec = req->spec->actor;
    if (!spec || !br_str_eq(m->actor_type, spec->type))
        return BR_EINVAL;
    if (!w->actors && !(w->actors = calloc(1, sizeof(*w->actors))))
        return BR_ENOMEM;
    /* The request's actor part: only actor requests pay for it. */
    if (!req->ax) {
        if (!(req->ax = br_req_alloc(req, sizeof(*req->ax))))
            return BR_ENOMEM;
        memset(req->ax, 0, sizeof(*req->ax));
    }
    br__actors *t = w->actors;
    br__actor **pp = slot_of(t, spec, m->key);
    br__actor *a = *pp;
    if (!a) {
        a = calloc(1, sizeof(*a) + m->key.len + 1);
        if (!a)
            return BR_ENOMEM;
        a->spec = spec;
        a->svc = req->svc;
        a->key_len = m->key.len;
        memcpy(a->key, m->key.ptr, m->key.len);
        *pp = a;
        t->count++;
    }
    if (m->activate && m->state.len) {
        char *copy = br_req_alloc(req, m->state.len);
        if (!copy)
            return BR_ENOMEM;
        memcpy(copy, m->state.ptr, m->state.len);
        req->ax->state_in = (br_str){copy, m->state.len};
    }
    req->actor = a;
    req->ax->epoch = m->epoch;
    req->ax->activate = m->activate;
    a->deactivate = false;
    req->ax->qnext = NULL;
    if (a->qtail)
        a->qtail->ax->qnext = req;
    else
        a->qhead = req;
    a->qtail = req;
    make_ready(t, a);
    pump(w);
    return 0;
}

void br__actors_reply(br_req *req, br_actor_reply *out)
{
    br__actor *a = req->actor;
    br__req_actor *x = req->ax;
    out->epoch = x->epoch;
    out->op = BR_STATE_KEEP;
    bool ok = !atomic_load(&req->cancelled) && req->ended && req->status < 500;
    if (!ok || x->turn_op == BR_STATE_KEEP || !x->started)
        return;
    out->op = x->turn_op;
    if (x->turn_op == BR_STATE_SET)
        out->state = (br_str){(const char *)x->turn_state.data, (uint32_t)x->turn_state.len};
    /* The change is the actor's from now on (a later turn sees it). */
    a->state.len = 0;
    if (x->turn_op == BR_STATE_SET &&
        br_buf_append(&a->state, x->turn_state.data, x->turn_state.len) != 0)
        out->op = BR_STATE_KEEP;
}

void br__actors_turn_done(br_worker *w, br_req *req)
{
    br__actor *a = req->actor;
    if (req->ax->started)
        a->running--;
    else {
        /* Ended before its turn (a new registration cancelled it): out of the mailbox. */
        br_req **pp = &a->qhead;
        while (*pp && *pp != req)
            pp = &(*pp)->ax->qnext;
        if (*pp) {
            *pp = req->ax->qnext;
            if (a->qtail == req) {
                a->qtail = NULL;
                for (br_req *r = a->qhead; r; r = r->ax->qnext)
                    a->qtail = r;
            }
        }
    }
    req->actor = NULL;
    make_ready(w->actors, a);
    pump(w);
}

void br__actors_new_registration(br_worker *w)
{
    if (!w->actors)
        return;
    for (size_t i = 0; i < ACTOR_BUCKETS; i++) {
        br__actor *a = w->actors->buckets[i];
        while (a) {
            br__actor *next = a->hnext;
            if (a->running == 0 && !a->qhead && !a->ready)
                actor_drop(w, a);
            else
                a->deactivate = true; /* once what runs or waits is done */
            a = next;
        }
    }
}

void br__actors_deactivate(br_worker *w, const br_deactivate *m)
{
    if (!w->actors)
        return;
    for (size_t i = 0; i < ACTOR_BUCKETS; i++)
        for (br__actor *a = w->actors->buckets[i]; a; a = a->hnext)
            if (br_str_eq(m->actor_type, a->spec->type) && a->key_len == m->key.len &&
                memcmp(a->key, m->key.ptr, m->key.len) == 0) {
                if (a->epoch != m->epoch)
                    return; /* a newer activation already */
                a->deactivate = true;
                make_ready(w->actors, a);
                pump(w);
                return;
            }
}

/* ---------------------------------------------------------------------------------- */
/* The state API.                                                                      */

br_str br_actor_key(const br_req *req)
{
    return req->actor ? (br_str){req->actor->key, (uint32_t)req->actor->key_len} : br_str_c("");
}

br_str br_actor_state(const br_req *req)
{
    if (!req->actor || req->ax->turn_op == BR_STATE_DELETE)
        return br_str_c("");
    if (req->ax->turn_op == BR_STATE_SET)
        return (br_str){(const char *)req->ax->turn_state.data, (uint32_t)req->ax->turn_state.len};
    return (br_str){(const char *)req->actor->state.data, (uint32_t)req->actor->state.len};
}

int br_actor_set_state(br_req *req, const void *state, size_t len)
{
    if (!req->actor)
        return BR_EINVAL;
    req->ax->turn_state.len = 0;
    int rc = br_buf_append(&req->ax->turn_state, state, len);
    if (rc == 0)
        req->ax->turn_op = BR_STATE_SET;
    return rc;
}

int br_actor_delete_state(br_req *req)
{
    if (!req->actor)
        return BR_EINVAL;
    req->ax->turn_op = BR_STATE_DELETE;
    req->ax->turn_state.len = 0;
    return 0;
}

/* ---------------------------------------------------------------------------------- */
/* Timers and reminders: kept and fired by the gateway (ACTOR_TIMER), so that a tick
 * is a turn like any message - queued behind the key's messages, its state change
 * committed and fenced with the reply - and a reminder outlives this worker.          */

static int send_timer(br_req *req, const char *name, bool start, bool durable, uint64_t due_ms,
                      uint64_t period_ms)
{
    br_worker *w = req->worker;
    if (!req->actor || !req->ax->started || req->ended || !name || !name[0] ||
        strlen(name) > BR_ACTOR_TIMER_NAME_MAX)
        return BR_EINVAL;
    if (!br__gen_live(w, req->gen))
        return BR_ECLOSED; /* the activation belongs to a broker session that is over */
    br__actor *a = req->actor;
    br_msg m = {.type = BR_MSG_ACTOR_TIMER,
                .u.actor_timer = {.actor_type = br_str_c(a->spec->type),
                                  .key = {a->key, (uint32_t)a->key_len},
                                  .epoch = req->ax->epoch,
                                  .name = br_str_c(name),
                                  .start = start,
                                  .durable = durable,
                                  .due_ms = due_ms,
                                  .period_ms = period_ms}};
    int rc = br__worker_send_gen(w, req->gen, &m);
    return rc == 0 || rc == BR_EINVAL || rc == BR_ENOMEM ? rc : BR_ECLOSED;
}

int br_actor_timer_start(br_req *req, const char *name, uint64_t due_ms, uint64_t period_ms)
{
    return send_timer(req, name, true, false, due_ms, period_ms);
}

int br_actor_timer_stop(br_req *req, const char *name)
{
    return send_timer(req, name, false, false, 0, 0);
}

int br_actor_reminder_set(br_req *req, const char *name, uint64_t due_ms, uint64_t period_ms)
{
    return send_timer(req, name, true, true, due_ms, period_ms);
}

int br_actor_reminder_unset(br_req *req, const char *name)
{
    return send_timer(req, name, false, true, 0, 0);
}

br_str br_actor_tick_name(const br_req *req)
{
    return req->actor && req->msg.tick_kind ? req->msg.tick_name : br_str_c("");
}

bool br_actor_tick_is_reminder(const br_req *req)
{
    return req->actor && req->msg.tick_kind == BR_TICK_REMINDER;
}
