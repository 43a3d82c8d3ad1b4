/*
 * actors.c - keyed actors in the broker: placement, activations, epochs, commits.
 *
 * A route that declares an actor type sends each request to the actor named by one of
 * its path parameters.  The broker keeps one gw_activation per key it has seen
 * recently; it says where the key is active (at most one worker), under which epoch
 * (the fencing token the state store hands out), how many of its messages are at that
 * worker, and which wait.  Placement is rendezvous hashing over the live workers of the
 * service (registry.c): while membership is stable a key stays put; when it changes,
 * the keys whose owner changed move - but only once the old owner has answered every
 * message it holds for the key (or has been declared dead), so that two workers never
 * run turns of one key at once.  Messages that arrive meanwhile wait in the key's
 * queue, bounded, under their deadlines.
 *
 * The first message of an activation carries the key's committed state, loaded by the
 * attached store, which also gives the activation a new epoch; a turn's ACTOR_REPLY
 * carries its state change back, and the client gets the reply once the store has made
 * the change durable - and only when the change's epoch is still the key's (fencing).
 * Replies of one key reach their clients in turn order: a reply without a change waits
 * behind the key's pending commits.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker_int.h"
#include "json.h"

const uint64_t gw_actor_turn_bounds_us[GW_ACTOR_TURN_BUCKETS - 1] = {
    100, 250, 500, 1000, 2000, 5000, 10000, 25000, 100000, 1000000, 10000000};

/* Most volatile timers one activation holds. */
#define ACTOR_TIMERS_MAX 64
/* Longest budget of a tick's turn (ms): the reminder's claim outlasts it. */
#define ACTOR_TICK_BUDGET_MAX_MS 10000u

/* Hash of (type, key): the activation map's key (collisions are chained). */
static uint64_t actor_hash(const char *type, size_t type_len, const char *key, size_t key_len)
{
    return gw_placement_score(type, type_len, key, key_len, "");
}

static gw_activation *activation_find(gw_broker *b, const char *type, size_t type_len,
                                      const char *key, size_t key_len, uint64_t h)
{
    for (gw_activation *a = gw_idmap_get(b->actors, h); a; a = a->next_same)
        if (a->type_len == type_len && a->key_len == key_len &&
            memcmp(a->type, type, type_len) == 0 && memcmp(a->key, key, key_len) == 0)
            return a;
    return NULL;
}

/* The counters of `type`: found, or a new slot, or the last slot when all are taken. */
static gw_actor_type_stats *type_stats(gw_broker *b, const char *type)
{
    for (size_t i = 0; i < b->nactor_types; i++)
        if (strncmp(b->actor_types[i].type, type, GW_ACTOR_TYPE_MAX) == 0)
            return &b->actor_types[i];
    if (b->nactor_types == GW_BROKER_MAX_ACTOR_TYPES)
        return &b->actor_types[GW_BROKER_MAX_ACTOR_TYPES - 1];
    gw_actor_type_stats *t = &b->actor_types[b->nactor_types++];
    snprintf(t->type, sizeof(t->type), "%s", type);
    return t;
}

size_t gw_broker_actor_types(const gw_broker *self, gw_actor_type_stats *out, size_t cap)
{
    size_t n = self->nactor_types < cap ? self->nactor_types : cap;
    memcpy(out, self->actor_types, n * sizeof(*out));
    for (size_t i = 0; i < n; i++)
        out[i].active = out[i].waiting = out[i].inflight = 0;
    for (const gw_list *l = self->actors_all.next; l != &self->actors_all; l = l->next) {
        const gw_activation *a = GW_CONTAINER_OF(l, gw_activation, all_link);
        size_t i = (size_t)(a->tstats - self->actor_types);
        if (i < n) {
            out[i].active += a->worker != NULL;
            out[i].waiting += a->nqueued;
            out[i].inflight += a->inflight;
        }
    }
    return self->nactor_types;
}

/* The activation record of (route's type, key), created when missing; NULL when out
 * of memory or at max_actors. */
static gw_activation *activation_get(gw_broker *b, const gw_route_entry *e, br_str key)
{
    size_t type_len = strlen(e->actor_type);
    uint64_t h = actor_hash(e->actor_type, type_len, key.ptr, key.len);
    gw_activation *a = activation_find(b, e->actor_type, type_len, key.ptr, key.len, h);
    if (a)
        return a;
    if (b->nactors >= b->cfg.max_actors)
        return NULL;
    a = calloc(1, sizeof(*a) + type_len + key.len + 2);
    if (!a)
        return NULL;
    a->broker = b;
    a->hash = h;
    a->service = e->service;
    a->idle_ms = e->actor_idle_ms ? e->actor_idle_ms : b->cfg.actor_idle_ms;
    a->tstats = type_stats(b, e->actor_type);
    a->type = (char *)(a + 1);
    memcpy(a->type, e->actor_type, type_len + 1);
    a->type_len = type_len;
    a->key = a->type + type_len + 1;
    memcpy(a->key, key.ptr, key.len);
    a->key[key.len] = '\0';
    a->key_len = key.len;
    gw_list_init(&a->queue);
    gw_list_init(&a->link);
    gw_list_init(&a->wait_link);
    gw_list_init(&a->all_link);
    gw_list_init(&a->timers);
    a->next_same = gw_idmap_take(b->actors, h);
    if (gw_idmap_put(b->actors, h, a) != 0) {
        if (a->next_same)
            gw_idmap_put(b->actors, h, a->next_same);
        free(a);
        return NULL;
    }
    gw_list_push_back(&b->actors_all, &a->all_link);
    b->nactors++;
    return a;
}

static void timer_free(gw_actor_timer *t);

static void activation_free(gw_activation *a)
{
    gw_broker *b = a->broker;
    while (!gw_list_empty(&a->timers))
        timer_free(GW_CONTAINER_OF(a->timers.next, gw_actor_timer, link));
    gw_activation *head = gw_idmap_take(b->actors, a->hash);
    gw_activation **pp = &head;
    while (*pp && *pp != a)
        pp = &(*pp)->next_same;
    if (*pp)
        *pp = a->next_same;
    if (head)
        gw_idmap_put(b->actors, a->hash, head); /* a slot just freed: cannot fail */
    gw_list_remove(&a->link);
    gw_list_remove(&a->wait_link);
    gw_list_remove(&a->all_link);
    br_buf_free(&a->state);
    b->nactors--;
    free(a);
}

/* Ends a's activation at its worker: DEACTIVATE when the worker is still there.  Its
 * volatile timers end with it. */
static void activation_end(gw_activation *a, bool tell)
{
    gw_broker *b = a->broker;
    while (!gw_list_empty(&a->timers))
        timer_free(GW_CONTAINER_OF(a->timers.next, gw_actor_timer, link));
    if (a->worker && tell) {
        br_msg m = {.type = BR_MSG_DEACTIVATE,
                    .u.deactivate = {.actor_type = {a->type, (uint32_t)a->type_len},
                                     .key = {a->key, (uint32_t)a->key_len},
                                     .epoch = a->epoch}};
        gw__broker_send(b, a->worker, NULL, 0, &m);
    }
    gw_list_remove(&a->link);
    a->worker = NULL;
    a->stale = false;
}

static const gw_broker_hooks *store_hooks(gw_broker *b, void **data)
{
    for (size_t i = 0; i < GW_BROKER_MAX_ATTACHED; i++)
        if (b->hooks_data[i] && b->hooks[i].actor_load && b->hooks[i].actor_commit) {
            *data = b->hooks_data[i];
            return &b->hooks[i];
        }
    return NULL;
}

static void advance(gw_activation *a);

/* Answers every message queued for a with a broker error. */
static void fail_queue(gw_activation *a, int status, const char *detail)
{
    while (!gw_list_empty(&a->queue))
        gw__exchange_fail(GW_CONTAINER_OF(a->queue.next, gw_exchange, link), status, true, detail);
}

static void on_loaded(void *ctx, int status, uint64_t epoch, br_str state)
{
    gw_activation *a = ctx;
    a->loading = false;
    if (a->broker->closing)
        return;
    if (status != 0 || br_buf_append(&a->state, state.ptr, state.len) != 0) {
        gw_log(GW_LOG_ERROR, "actors", "loading actor %s/%s failed: %s", a->type, a->key,
               br_strerror(status ? status : BR_ENOMEM));
        fail_queue(a, 503, "Service Unavailable: the actor's state could not be loaded");
        return;
    }
    a->epoch = epoch;
    a->have_state = true;
    advance(a);
}

/* Gives a its state and a new epoch: from the store (asynchronously: a->loading), or,
 * without one, empty state and the next epoch at once. */
static void start_load(gw_activation *a)
{
    void *data;
    const gw_broker_hooks *h = store_hooks(a->broker, &data);
    a->state.len = 0;
    if (!h) {
        a->epoch++;
        a->have_state = true;
        return;
    }
    a->loading = true;
    int rc = h->actor_load(data, (br_str){a->type, (uint32_t)a->type_len},
                           (br_str){a->key, (uint32_t)a->key_len}, on_loaded, a);
    if (rc != 0) {
        a->loading = false;
        fail_queue(a, 503, "Service Unavailable: the actor state store is full");
    }
}

/* Sends queued message c to w as ACTOR_REQUEST.  0 or gw__exchange_send's error. */
static int send_one(gw_activation *a, gw_exchange *c, gw_worker *w)
{
    bool activate = a->worker == NULL;
    br_msg m = {.type = BR_MSG_ACTOR_REQUEST};
    br_actor_request *r = &m.u.actor_request;
    r->actor_type = (br_str){a->type, (uint32_t)a->type_len};
    r->key = (br_str){a->key, (uint32_t)a->key_len};
    r->epoch = a->epoch;
    r->activate = activate;
    if (activate)
        r->state = (br_str){(const char *)a->state.data, (uint32_t)a->state.len};
    gw__exchange_fill_request(c, &r->req);
    int rc = gw__exchange_send(c, w, &m);
    if (rc != 0)
        return rc;
    c->ax->sent = true;
    c->ax->sent_ns = uv_hrtime();
    a->inflight++;
    if (activate) {
        a->worker = w;
        a->have_state = false;
        gw_list_push_back(&w->actors, &a->link);
        a->broker->stats.actor_activations++;
        a->tstats->activations++;
        br_buf_free(&a->state);
    }
    return 0;
}

/* Moves a's queue forward as far as placement, moves, loads and credit allow. */
static void advance(gw_activation *a)
{
    gw_broker *b = a->broker;
    while (!gw_list_empty(&a->queue) && !a->loading && !b->closing) {
        gw_worker *owner = gw_registry_place(a->service, a->type, a->type_len, a->key, a->key_len);
        if (!owner) {
            char detail[GW_DETAIL_MAX];
            snprintf(detail, sizeof(detail), "Service '%s' is unavailable: no live worker",
                     a->service->name);
            fail_queue(a, 503, detail);
            return;
        }
        if (a->worker && (a->worker != owner || a->stale)) {
            /* The key moves (or must start again): once the old owner let go of it. */
            if (a->inflight > 0 || a->commits > 0)
                return;
            b->stats.actor_moves++;
            a->tstats->moves++;
            activation_end(a, true);
        }
        if (!a->worker && !a->have_state) {
            start_load(a);
            continue;
        }
        if (owner->credit == 0 || owner->bytes >= b->cfg.max_worker_bytes) {
            gw_list_remove(&a->wait_link);
            gw_list_push_back(&owner->actors_waiting, &a->wait_link);
            return;
        }
        gw_exchange *c = GW_CONTAINER_OF(a->queue.next, gw_exchange, link);
        gw_list_remove(&c->link);
        c->ax->queued = false;
        a->nqueued--;
        int rc = send_one(a, c, owner);
        if (rc == 0)
            continue;
        if (gw_broker_send_failed(rc)) {
            /* owner is marked lost now: placement picks another one. */
            gw_list_push_front(&a->queue, &c->link);
            c->ax->queued = true;
            a->nqueued++;
            continue;
        }
        gw__exchange_fail(c, rc == BR_ELIMIT ? 413 : 500, false,
                          rc == BR_ELIMIT ? "Request Entity Too Large" : "Internal Server Error");
    }
}

/* The actor's key: the value of the route's key parameter. */
static bool exchange_key(const gw_exchange *c, br_str *key)
{
    const char *name = c->route->actor_key;
    for (uint32_t i = 0; i < c->nparams; i++)
        if (br_str_eq(c->params[i].name, name)) {
            *key = c->params[i].value;
            return true;
        }
    return false;
}

void gw__actors_route(gw_exchange *c, bool front)
{
    gw_broker *b = c->broker;
    br_str key;
    gw_exchange_actor *x = c->ax; /* made with c: its route is an actor type's */
    if (!x->actor) {
        if (x->direct)
            key = x->direct_key;
        else if (!exchange_key(c, &key)) {
            gw__exchange_fail(c, 500, false, "Internal Server Error: the actor key is missing");
            return;
        }
        x->actor = activation_get(b, c->route, key);
        if (!x->actor) {
            gw__exchange_fail(c, 503, true, "Service Unavailable: too many active actors");
            return;
        }
    }
    gw_activation *a = x->actor;
    if (!front && a->nqueued >= b->cfg.actor_queue_limit) {
        char detail[GW_DETAIL_MAX];
        snprintf(detail, sizeof(detail),
                 "Actor '%s' is overloaded: %zu messages for key '%s' are waiting already", a->type,
                 a->nqueued, a->key);
        gw__exchange_fail(c, 503, true, detail);
        return;
    }
    if (front)
        gw_list_push_front(&a->queue, &c->link);
    else
        gw_list_push_back(&a->queue, &c->link);
    x->queued = true;
    a->nqueued++;
    a->last_used = uv_now(b->loop);
    advance(a);
}

void gw__actors_exchange_gone(gw_exchange *c)
{
    gw_exchange_actor *x = c->ax;
    if (x->sent)
        x->actor->inflight--;
    if (x->queued)
        x->actor->nqueued--;
    x->sent = false;
    x->queued = false;
}

/* After a commit (or its refusal): the held reply goes to whoever waits. */
static void on_committed(void *ctx, int status)
{
    gw_exchange *c = ctx;
    gw_broker *b = c->broker;
    gw_activation *a = c->ax->actor;
    a->commits--;
    c->committing = false;
    if (status == 0 && c->ax->state_op != BR_STATE_KEEP)
        b->stats.actor_commits++;
    if (status == BR_EVALUE) {
        b->stats.actor_fenced++;
        a->stale = true;
    }
    br_msg m;
    if (b->closing || !gw__exchange_waited(c)) {
        gw__exchange_free(c);
    } else if (status == 0 &&
               br_decoder_decode(b->decoder, c->ax->held.data, c->ax->held.len, &m) == 0) {
        gw__exchange_deliver(c, NULL, &m.u.actor_reply.reply);
    } else if (status == BR_EVALUE) {
        gw__exchange_fail(c, 409, false,
                          "Conflict: the actor moved before its state change was committed");
    } else {
        gw__exchange_fail(c, 503, true, "Service Unavailable: the actor's state was not saved");
    }
    if (!b->closing)
        advance(a);
}

void gw__actors_reply(gw_broker *b, gw_worker *w, const br_actor_reply *ar, const void *frame,
                      size_t frame_len)
{
    gw_exchange *c = gw_idmap_get(b->exchanges, ar->reply.id);
    if (!c || c->worker != w || !gw__exchange_actor(c)) {
        /* Stale: nothing of it is committed. */
        if (ar->op != BR_STATE_KEEP)
            b->stats.actor_fenced++;
        gw__dispatch_reply(b, w, &ar->reply);
        return;
    }
    gw_activation *a = c->ax->actor;
    uint64_t turn_us = (uv_hrtime() - c->ax->sent_ns) / 1000;
    b->stats.actor_turns++;
    b->stats.actor_turn_us += turn_us;
    a->tstats->turns++;
    a->tstats->turn_us += turn_us;
    size_t bucket = 0;
    while (bucket < GW_ACTOR_TURN_BUCKETS - 1 && turn_us > gw_actor_turn_bounds_us[bucket])
        bucket++;
    a->tstats->turn_hist[bucket]++;
    a->last_used = uv_now(b->loop);
    gw__exchange_returned(c);
    void *data;
    const gw_broker_hooks *h = store_hooks(b, &data);
    bool fenced = ar->epoch != a->epoch || a->worker != w;
    if (ar->op != BR_STATE_KEEP && fenced) {
        b->stats.actor_fenced++;
        a->stale = true;
        gw__exchange_fail(c, 409, false, "Conflict: the actor moved; its state change was refused");
    } else if (h && (ar->op != BR_STATE_KEEP || a->commits > 0)) {
        /* Held until durable (or, without a change, until the changes before it are). */
        c->ax->held.len = 0;
        int rc = br_buf_append(&c->ax->held, frame, frame_len);
        if (rc == 0)
            rc = h->actor_commit(data, (br_str){a->type, (uint32_t)a->type_len},
                                 (br_str){a->key, (uint32_t)a->key_len}, ar->epoch, ar->op,
                                 ar->state, on_committed, c);
        if (rc == 0) {
            c->committing = true;
            c->ax->state_op = ar->op;
            a->commits++;
        } else {
            a->stale = true; /* the worker's state now differs from the store's */
            gw__exchange_fail(c, 503, true, "Service Unavailable: the actor state store is full");
        }
    } else {
        gw__exchange_deliver(c, w, &ar->reply);
    }
    advance(a);
    gw__dispatch_after_reply(b, w);
}

void gw__actors_credit(gw_broker *b, gw_worker *w)
{
    (void)b;
    while (!gw_list_empty(&w->actors_waiting) && w->credit > 0 && gw_worker_live(w)) {
        gw_activation *a = GW_CONTAINER_OF(w->actors_waiting.next, gw_activation, wait_link);
        gw_list_remove(&a->wait_link);
        advance(a);
    }
}

void gw__actors_worker_gone(gw_broker *b, gw_worker *w)
{
    (void)b;
    gw_list moved;
    gw_list_init(&moved);
    while (!gw_list_empty(&w->actors)) {
        gw_activation *a = GW_CONTAINER_OF(w->actors.next, gw_activation, link);
        activation_end(a, false);
        b->stats.actor_moves++;
        a->tstats->moves++;
        gw_list_remove(&a->wait_link);
        gw_list_push_back(&moved, &a->wait_link);
    }
    while (!gw_list_empty(&w->actors_waiting)) {
        gw_list *n = w->actors_waiting.next;
        gw_list_remove(n);
        gw_list_push_back(&moved, n);
    }
    while (!gw_list_empty(&moved)) {
        gw_activation *a = GW_CONTAINER_OF(moved.next, gw_activation, wait_link);
        gw_list_remove(&a->wait_link);
        advance(a);
    }
}

void gw__actors_tick(gw_broker *b, uint64_t now)
{
    gw_list *n = b->actors_all.next;
    while (n != &b->actors_all) {
        gw_activation *a = GW_CONTAINER_OF(n, gw_activation, all_link);
        n = n->next;
        if (a->nqueued > 0 && gw_list_empty(&a->wait_link)) {
            advance(a); /* one that waited for a move whose last turn was cancelled */
            continue;
        }
        if (a->nqueued > 0 || a->inflight > 0 || a->commits > 0 || a->loading ||
            now - a->last_used < a->idle_ms)
            continue;
        if (a->worker)
            b->stats.actor_deactivations++;
        activation_end(a, true);
        activation_free(a);
    }
}

void gw__actors_free_all(gw_broker *b)
{
    while (!gw_list_empty(&b->actors_all))
        activation_free(GW_CONTAINER_OF(b->actors_all.next, gw_activation, all_link));
}

void gw__actors_stats(const gw_broker *b, gw_broker_stats *out)
{
    out->actors_active = 0;
    out->actors_queued = 0;
    for (const gw_list *n = b->actors_all.next; n != &b->actors_all; n = n->next) {
        const gw_activation *a = GW_CONTAINER_OF(n, gw_activation, all_link);
        out->actors_active += a->worker != NULL;
        out->actors_queued += a->nqueued;
    }
}

int gw_broker_actors_json(const gw_broker *self, br_buf *out)
{
    char line[512];
    int rc = br_buf_append(out, "{\"services\":[", 13);
    bool first_service = true;
    for (size_t i = 0; rc == 0 && i < gw_registry_nservices(self->reg); i++) {
        const gw_service *s = gw_registry_service(self->reg, i);
        bool actor = false;
        for (const gw_route_entry *e = s->routes; e; e = e->next)
            actor = actor || e->actor_type[0] != '\0';
        if (!actor)
            continue;
        snprintf(line, sizeof(line), "%s{\"service\":", first_service ? "" : ",");
        first_service = false;
        rc = br_buf_append(out, line, strlen(line));
        if (rc == 0)
            rc = gw_json_append_string(out, s->name, strlen(s->name));
        if (rc == 0)
            rc = br_buf_append(out, ",\"workers\":[", 12);
        bool first = true;
        for (size_t j = 0; rc == 0 && j < s->nworkers; j++) {
            const gw_worker *w = s->workers[j];
            size_t n = 0;
            for (const gw_list *l = w->actors.next; l != &w->actors; l = l->next)
                n++;
            snprintf(line, sizeof(line), "%s{\"id\":", first ? "" : ",");
            first = false;
            rc = br_buf_append(out, line, strlen(line));
            if (rc == 0)
                rc = gw_json_append_string(out, w->id, strlen(w->id));
            snprintf(line, sizeof(line), ",\"live\":%s,\"active_actors\":%zu}",
                     gw_worker_live(w) ? "true" : "false", n);
            if (rc == 0)
                rc = br_buf_append(out, line, strlen(line));
        }
        if (rc == 0)
            rc = br_buf_append(out, "]}", 2);
    }
    /* Per actor type: its gauges and counters. */
    gw_actor_type_stats types[GW_BROKER_MAX_ACTOR_TYPES];
    size_t ntypes = gw_broker_actor_types(self, types, GW_BROKER_MAX_ACTOR_TYPES);
    if (ntypes > GW_BROKER_MAX_ACTOR_TYPES)
        ntypes = GW_BROKER_MAX_ACTOR_TYPES;
    if (rc == 0)
        rc = br_buf_append(out, "],\"types\":[", 11);
    for (size_t i = 0; rc == 0 && i < ntypes; i++) {
        const gw_actor_type_stats *t = &types[i];
        rc = br_buf_append(out, i ? ",{\"type\":" : "{\"type\":", i ? 9 : 8);
        if (rc == 0)
            rc = gw_json_append_string(out, t->type, strlen(t->type));
        snprintf(line, sizeof(line),
                 ",\"active\":%llu,\"waiting\":%llu,\"inflight\":%llu,\"activations\":%llu,"
                 "\"moves\":%llu,\"turns\":%llu,\"ticks\":%llu}",
                 (unsigned long long)t->active, (unsigned long long)t->waiting,
                 (unsigned long long)t->inflight, (unsigned long long)t->activations,
                 (unsigned long long)t->moves, (unsigned long long)t->turns,
                 (unsigned long long)t->ticks);
        if (rc == 0)
            rc = br_buf_append(out, line, strlen(line));
    }
    gw_broker_stats st = {0};
    gw__actors_stats(self, &st);
    snprintf(line, sizeof(line),
             "],\"tracked\":%zu,\"active\":%llu,\"queued\":%llu,\"activations\":%llu,"
             "\"moves\":%llu,\"deactivations\":%llu,\"fenced\":%llu}",
             self->nactors, (unsigned long long)st.actors_active,
             (unsigned long long)st.actors_queued,
             (unsigned long long)self->stats.actor_activations,
             (unsigned long long)self->stats.actor_moves,
             (unsigned long long)self->stats.actor_deactivations,
             (unsigned long long)self->stats.actor_fenced);
    if (rc == 0)
        rc = br_buf_append(out, line, strlen(line));
    return rc;
}

/* ---------------------------------------------------------------------------------- */
/* Timers, reminders and direct calls.  A tick is an exchange the broker itself waits
 * for: it goes through the key's queue like a client's message, so it runs as a turn
 * in order with them, and its state change is committed and fenced like theirs.     */

gw_route_entry *gw__actors_type_route(gw_broker *b, br_str type)
{
    gw_route_entry *found = NULL;
    for (size_t i = 0; i < gw_registry_nservices(b->reg); i++) {
        gw_service *s = gw_registry_service(b->reg, i);
        for (gw_route_entry *e = s->routes; e; e = e->next) {
            if (!br_str_eq(type, e->actor_type))
                continue;
            if (gw_service_live(s) > 0)
                return e;
            if (!found)
                found = e;
            break;
        }
    }
    return found;
}

size_t gw_broker_actor_types_served(const gw_broker *self, const char **out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < gw_registry_nservices(self->reg); i++) {
        const gw_service *s = gw_registry_service(self->reg, i);
        for (const gw_route_entry *e = s->routes; e; e = e->next) {
            if (!e->actor_type[0])
                continue;
            bool seen = false;
            for (size_t j = 0; j < n && j < cap && !seen; j++)
                seen = strcmp(out[j], e->actor_type) == 0;
            if (seen)
                continue;
            if (n < cap)
                out[n] = e->actor_type;
            n++;
        }
    }
    return n;
}

/* A tick exchange for route e's actor type: no client, the broker waits for it. */
static gw_exchange *tick_new(gw_broker *b, gw_route_entry *e, uint8_t kind, br_str name)
{
    gw_exchange *c = calloc(1, sizeof(*c) + sizeof(gw_exchange_actor) + name.len + 1);
    if (!c)
        return NULL;
    c->broker = b;
    c->route = e;
    gw_list_init(&c->link);
    gw_list_init(&c->caller_link);
    c->ax = (gw_exchange_actor *)(void *)(c + 1);
    char *p = (char *)(c->ax + 1);
    memcpy(p, name.ptr, name.len);
    c->ax->tick_name = (br_str){p, name.len};
    c->tick_kind = kind;
    c->path = br_str_c("");
    c->idempotent = true; /* a tick whose worker died goes to the key's next owner */
    gw__exchange_trace(c, br_str_c(""));
    return c;
}

static uint32_t tick_budget(gw_broker *b, gw_route_entry *e)
{
    uint32_t budget = gw__route_budget(b, e);
    return budget < ACTOR_TICK_BUDGET_MAX_MS ? budget : ACTOR_TICK_BUDGET_MAX_MS;
}

void gw__actors_tick_answered(gw_exchange *c, int status)
{
    if (!c->tick_kind)
        return;
    c->tick_kind = 0;
    gw_exchange_actor *x = c->ax; /* a tick has its actor part */
    if (x->timer) {
        x->timer->tick = NULL;
        x->timer = NULL;
    }
    gw_actor_tick_fn done = x->tick_done;
    x->tick_done = NULL;
    if (done)
        done(x->tick_ctx, status < 500 && status != 409);
}

int gw_broker_actor_remind(gw_broker *self, br_str type, br_str key, br_str name,
                           gw_actor_tick_fn done, void *ctx)
{
    if (self->closing || !self->started)
        return BR_ECLOSED;
    gw_route_entry *e = gw__actors_type_route(self, type);
    if (!e)
        return BR_ENOTFOUND;
    gw_activation *a = activation_get(self, e, key);
    if (!a)
        return BR_ENOMEM;
    gw_exchange *c = tick_new(self, e, BR_TICK_REMINDER, name);
    if (!c)
        return BR_ENOMEM;
    c->ax->actor = a;
    c->ax->tick_done = done;
    c->ax->tick_ctx = ctx;
    a->tstats->ticks++;
    gw__exchange_admit(c, tick_budget(self, e));
    return 0;
}

static void timers_arm(gw_broker *b)
{
    if (b->closing || !b->started)
        return;
    uint64_t now = uv_now(b->loop), next = UINT64_MAX;
    for (gw_list *n = b->actor_timers.next; n != &b->actor_timers; n = n->next) {
        const gw_actor_timer *t = GW_CONTAINER_OF(n, gw_actor_timer, all_link);
        if (t->due < next)
            next = t->due;
    }
    if (next == UINT64_MAX)
        uv_timer_stop(&b->actor_timer);
    else
        uv_timer_start(&b->actor_timer, gw__actors_on_timer, next > now ? next - now : 0, 0);
}

/* Frees t; a tick of it that waits in its key's queue is dropped (the timer is gone),
 * one at a worker runs on. */
static void timer_free(gw_actor_timer *t)
{
    gw_exchange *c = t->tick;
    if (c) {
        c->ax->timer = NULL;
        if (c->ax->queued) {
            c->tick_kind = 0;
            gw__exchange_free(c);
        }
    }
    gw_list_remove(&t->link);
    gw_list_remove(&t->all_link);
    t->actor->ntimers--;
    free(t);
}

static gw_actor_timer *timer_find(gw_activation *a, br_str name)
{
    for (gw_list *n = a->timers.next; n != &a->timers; n = n->next) {
        gw_actor_timer *t = GW_CONTAINER_OF(n, gw_actor_timer, link);
        if (t->name_len == name.len && memcmp(t->name, name.ptr, name.len) == 0)
            return t;
    }
    return NULL;
}

/* Sends timer t's tick through its key's queue. */
static void timer_fire(gw_broker *b, gw_actor_timer *t)
{
    gw_activation *a = t->actor;
    gw_route_entry *e = gw__actors_type_route(b, (br_str){a->type, (uint32_t)a->type_len});
    gw_exchange *c =
        e ? tick_new(b, e, BR_TICK_TIMER, (br_str){t->name, (uint32_t)t->name_len}) : NULL;
    if (!c)
        return;
    c->ax->actor = a;
    c->ax->timer = t;
    t->tick = c;
    a->tstats->ticks++;
    gw__exchange_admit(c, tick_budget(b, e));
}

void gw__actors_on_timer(uv_timer_t *timer)
{
    gw_broker *b = timer->data;
    uint64_t now = uv_now(b->loop);
    gw_list due;
    gw_list_init(&due);
    /* The due ones first move to a list of their own: firing one may free others (a
     * failed admit can end its activation's queue, never its timers, but stay safe). */
    gw_list *n = b->actor_timers.next;
    while (n != &b->actor_timers) {
        gw_actor_timer *t = GW_CONTAINER_OF(n, gw_actor_timer, all_link);
        n = n->next;
        if (t->due > now)
            continue;
        gw_list_remove(&t->all_link);
        gw_list_push_back(&due, &t->all_link);
    }
    while (!gw_list_empty(&due)) {
        gw_actor_timer *t = GW_CONTAINER_OF(due.next, gw_actor_timer, all_link);
        gw_list_remove(&t->all_link);
        gw_list_push_back(&b->actor_timers, &t->all_link);
        /* A periodic timer whose last tick has not run yet skips this one. */
        if (!t->tick)
            timer_fire(b, t);
        if (t->period_ms == 0) {
            if (t->tick) { /* its tick runs on without it */
                t->tick->ax->timer = NULL;
                t->tick = NULL;
            }
            timer_free(t);
            continue;
        }
        t->due += t->period_ms;
        if (t->due <= now)
            t->due = now + t->period_ms;
    }
    timers_arm(b);
}

void gw__actors_timer_msg(gw_broker *b, gw_worker *w, const br_actor_timer *m)
{
    uint64_t h = actor_hash(m->actor_type.ptr, m->actor_type.len, m->key.ptr, m->key.len);
    gw_activation *a =
        activation_find(b, m->actor_type.ptr, m->actor_type.len, m->key.ptr, m->key.len, h);
    if (!a || a->worker != w || a->epoch != m->epoch) {
        /* From an activation that is over: like its commits, refused. */
        b->stats.actor_fenced++;
        return;
    }
    if (m->durable) {
        void *data;
        const gw_broker_hooks *hk = store_hooks(b, &data);
        if (!hk || !hk->actor_reminder ||
            hk->actor_reminder(data, m->actor_type, m->key, m->epoch, m->name, m->start, m->due_ms,
                               m->period_ms) != 0)
            gw_log(GW_LOG_WARN, "actors", "reminder %.*s of actor %s/%s was not %s: no store",
                   (int)m->name.len, m->name.ptr, a->type, a->key, m->start ? "set" : "unset");
        return;
    }
    gw_actor_timer *t = timer_find(a, m->name);
    if (!m->start) {
        if (t)
            timer_free(t);
        timers_arm(b);
        return;
    }
    if (!t) {
        if (a->ntimers >= ACTOR_TIMERS_MAX) {
            gw_log(GW_LOG_WARN, "actors", "actor %s/%s has %d timers: timer %.*s refused", a->type,
                   a->key, ACTOR_TIMERS_MAX, (int)m->name.len, m->name.ptr);
            return;
        }
        t = calloc(1, sizeof(*t) + m->name.len + 1);
        if (!t)
            return;
        t->actor = a;
        t->name_len = m->name.len;
        memcpy(t->name, m->name.ptr, m->name.len);
        gw_list_push_back(&a->timers, &t->link);
        gw_list_push_back(&b->actor_timers, &t->all_link);
        a->ntimers++;
    }
    uint64_t due = m->due_ms > UINT32_MAX ? UINT32_MAX : m->due_ms;
    t->due = uv_now(b->loop) + due;
    t->period_ms = m->period_ms > UINT32_MAX ? UINT32_MAX : m->period_ms;
    timers_arm(b);
}
