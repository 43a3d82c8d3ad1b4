/*
 * websockets.c - WebSocket connections as actors on workers (PROTOCOL.md 5.16).
 *
 * A request on a route a service declared as a WebSocket route is validated like any
 * other (intake.c), then placed on one live worker of the service - the one with the
 * fewest connections - for the connection's whole life: the HTTP server answers 101
 * (websocket.h) and the worker gets WS_OPEN.  Whole messages then flow both ways as
 * WS_MESSAGE, each side allowed GW_WS_WINDOW messages per connection that the other
 * has not acknowledged with WS_CREDIT:
 *
 *  - client -> worker: each message forwarded costs one credit; at zero the gateway
 *    stops reading the client (TCP pushes back) until the worker returns credit;
 *  - worker -> client: each message costs one credit, returned when it reached the
 *    socket; a worker that sends past its credit, or a connection whose output passes
 *    max_output_bytes (broadcasts do not wait for credit), is closed with 1008.
 *
 * So a connection holds at most GW_WS_WINDOW messages each way plus its output limit,
 * whatever the speed of its client or its worker.  Groups (WS_GROUP) are names a
 * connection joins; a broadcast goes from the gateway to every member connection of
 * the sender's services, on whichever worker it lives.  A worker that dies closes its
 * connections with 1011, one that drains with 1012, the gateway's shutdown with 1001.
 *
 * To a worker that reads WS_BATCH, the WS_MESSAGE, WS_CREDIT and WS_CLOSE messages of a
 * loop turn go in one frame (batch.c): with many connections, one ZeroMQ message (and
 * one wake-up of the worker) carries the turn's traffic of all of them instead of one
 * each.
 */
#include <stdlib.h>
#include <string.h>

#include "broker_int.h"
#include "websocket.h"
#include "ws_frame.h"

/* Messages either side may have unacknowledged per connection. */
#define GW_WS_WINDOW 16
/* Written messages acknowledged to the worker at once: half the window, so that a
 * worker out of credit (16 outstanding) always has an acknowledgement coming once
 * they are written, and a busy connection costs one WS_CREDIT per 8 messages. */
#define GW_WS_CREDIT_BATCH 8
/* Groups one connection may be in, and the longest group name. */
#define GW_WS_MAX_GROUPS 8
#define GW_WS_GROUP_MAX  64
/* Links carved from one pool chunk (pool.h: away from the handshake's transient
 * blocks). */
#define GW_WS_LINK_CHUNK 64
/* Open WebSocket connections the broker tracks at once. */
#define GW_WS_MAX_CONNS 1000000u

typedef struct gw_ws_link {
    uint64_t id;          /* the connection id in WS_* messages; key in b->websockets */
    gw_broker *b;         /* owner */
    gw_ws_conn *ws;       /* the client's connection */
    gw_worker *worker;    /* where it lives */
    gw_service *service;  /* the service of its route */
    gw_list worker_link;  /* in worker->websockets */
    gw_list all_link;     /* in b->ws_all */
    uint32_t to_worker;   /* messages forwarded and not yet credited back */
    uint32_t from_worker; /* the worker's messages not yet acknowledged to it */
    uint32_t written;     /* of those, the ones on the client's socket */
    bool paused;          /* reading the client is paused for credit */
    uint8_t ngroups;      /* entries used in groups */
    char (*groups)[GW_WS_GROUP_MAX + 1]; /* the groups it is in (GW_WS_MAX_GROUPS, allocated
                                            at the first join: most connections join none) */
} gw_ws_link;

int gw__ws_init(gw_broker *b)
{
    gw_list_init(&b->ws_all);
    gw_pool_init(&b->ws_links, sizeof(gw_ws_link), GW_WS_LINK_CHUNK);
    gw_ws_config_defaults(&b->ws_cfg);
    if (b->cfg.ws)
        b->ws_cfg = *b->cfg.ws;
    b->websockets = gw_idmap_new(GW_WS_MAX_CONNS);
    return b->websockets ? 0 : BR_ENOMEM;
}

void gw__ws_fini(gw_broker *b)
{
    gw_idmap_destroy(&b->websockets);
    gw_pool_destroy(&b->ws_links);
}

static void link_free(gw_ws_link *l)
{
    gw_idmap_take(l->b->websockets, l->id);
    gw_list_remove(&l->worker_link);
    gw_list_remove(&l->all_link);
    free(l->groups);
    gw_pool_free(&l->b->ws_links, l);
}

/* Sends a WS_* message about a connection to w: in w's batch for this turn when it
 * reads batches (batch.c), else at once.  0, or the error of the encoding or the send. */
static int ws_send(gw_broker *b, gw_worker *w, const br_msg *m)
{
    if (!w->ws_batch)
        return gw__broker_send(b, w, NULL, 0, m);
    return gw__batch_send(b, w, m, NULL);
}

/* Tells the worker the connection is over (unless the worker is gone). */
static void send_close(gw_ws_link *l, uint16_t code, const char *reason, size_t len)
{
    if (!l->worker || l->worker->lost)
        return;
    br_msg m = {.type = BR_MSG_WS_CLOSE,
                .u.ws_close = {.conn = l->id, .code = code, .reason = {reason, len}}};
    ws_send(l->b, l->worker, &m);
}

/* Closes the client's side with code and forgets the link. */
static void link_close(gw_ws_link *l, uint16_t code, const char *reason)
{
    gw_ws_close(l->ws, code, reason, strlen(reason));
    link_free(l);
}

/* ---------------------------------------------------------------------------------- */
/* The client's side (websocket.h hooks).                                              */

static void on_client_message(void *data, gw_ws_conn *ws, bool text, const uint8_t *msg, size_t len)
{
    gw_ws_link *l = data;
    gw_broker *b = l->b;
    br_msg m = {.type = BR_MSG_WS_MESSAGE,
                .u.ws_message = {.conn = l->id, .binary = !text, .data = {(const char *)msg, len}}};
    if (ws_send(b, l->worker, &m) != 0) {
        send_close(l, GW_WS_CLOSE_INTERNAL, "", 0);
        link_close(l, 1011, "the worker could not be reached");
        return;
    }
    b->stats.ws_messages_in++;
    if (++l->to_worker >= GW_WS_WINDOW && !l->paused) {
        l->paused = true;
        gw_ws_pause(ws, true);
    }
}

static void on_client_sent(void *data, gw_ws_conn *ws, uint32_t messages)
{
    gw_ws_link *l = data;
    (void)ws;
    /* Broadcasts are written too but took no credit: at most from_worker count. */
    uint32_t room = l->from_worker - l->written;
    l->written += messages < room ? messages : room;
    if (l->written < GW_WS_CREDIT_BATCH)
        return;
    uint32_t n = l->written;
    l->from_worker -= n;
    l->written = 0;
    br_msg m = {.type = BR_MSG_WS_CREDIT, .u.ws_credit = {.conn = l->id, .credit = n}};
    ws_send(l->b, l->worker, &m);
}

static void on_client_close(void *data, gw_ws_conn *ws, uint16_t code, const char *reason,
                            size_t len)
{
    gw_ws_link *l = data;
    (void)ws;
    send_close(l, code, reason, len);
    link_free(l);
}

static const gw_ws_hooks client_hooks = {
    .on_message = on_client_message,
    .on_sent = on_client_sent,
    .on_close = on_client_close,
};

/* ---------------------------------------------------------------------------------- */
/* Opening.                                                                            */

/* The live worker of s (speaking version 2) with the fewest WebSocket connections;
 * NULL when none. */
static gw_worker *pick_worker(const gw_service *s)
{
    gw_worker *best = NULL;
    size_t best_n = 0;
    for (size_t i = 0; i < s->nworkers; i++) {
        gw_worker *w = s->workers[i];
        /* WS_* messages exist in version 2 only (PROTOCOL.md 14). */
        if (!gw_worker_live(w) || w->proto_version < 2)
            continue;
        if (!best || w->nwebsockets < best_n) {
            best = w;
            best_n = w->nwebsockets;
        }
    }
    return best;
}

void gw__ws_open(gw_exchange *c)
{
    gw_broker *b = c->broker;
    gw_req *req = c->req;
    gw_route_entry *e = c->route;
    gw_worker *w = pick_worker(e->service);
    if (!w) {
        gw__exchange_fail(c, 503, true, "Service Unavailable: no live worker");
        return;
    }
    gw_ws_link *l = gw_pool_alloc(&b->ws_links);
    if (!l) {
        gw__exchange_fail(c, 503, true, "Service Unavailable: out of memory");
        return;
    }
    l->b = b;
    l->id = ++b->next_ws_id;
    l->worker = w;
    l->service = e->service;
    gw_list_init(&l->worker_link);
    gw_list_init(&l->all_link);
    if (gw_idmap_put(b->websockets, l->id, l) != 0) {
        gw_pool_free(&b->ws_links, l);
        gw__exchange_fail(c, 503, true, "Service Unavailable: too many WebSocket connections");
        return;
    }
    /* The exchange answers nothing from here: the upgrade answers the request. */
    gw__exchange_detach(c);
    const char *chosen = "";
    l->ws = gw_req_upgrade(req, e->subprotocols, &b->ws_cfg, &client_hooks, l, &chosen);
    if (!l->ws) {
        gw_idmap_take(b->websockets, l->id);
        gw_pool_free(&b->ws_links, l);
        gw__exchange_free(c);
        return;
    }
    gw_list_push_back(&w->websockets, &l->worker_link);
    gw_list_push_back(&b->ws_all, &l->all_link);
    w->nwebsockets++;
    b->stats.ws_opened++;
    br_msg m = {.type = BR_MSG_WS_OPEN,
                .u.ws_open = {.conn = l->id,
                              .service = br_str_c(e->service->name),
                              .route = br_str_c(e->path),
                              .path = c->path,
                              .params = c->params,
                              .nparams = c->nparams,
                              .query = c->query,
                              .nquery = c->nquery,
                              .headers = c->headers,
                              .nheaders = c->nheaders,
                              .subprotocol = br_str_c(chosen),
                              .identity = c->identity,
                              .request_id = c->request_id}};
    int rc = gw__broker_send(b, w, w->ident, w->ident_len, &m);
    gw__exchange_free(c);
    if (rc != 0)
        link_close(l, GW_WS_CLOSE_INTERNAL, "the worker could not be reached");
}

/* ---------------------------------------------------------------------------------- */
/* The worker's side.                                                                  */

/* The link `id` if it lives on w. */
static gw_ws_link *worker_link(gw_broker *b, gw_worker *w, uint64_t id)
{
    gw_ws_link *l = gw_idmap_get(b->websockets, id);
    return l && l->worker == w ? l : NULL;
}

/* Queues a message for the client; a client that cannot take it is closed. */
static bool deliver(gw_ws_link *l, bool binary, br_str data)
{
    int rc = gw_ws_send(l->ws, !binary, data.ptr, data.len);
    if (rc == 0) {
        l->b->stats.ws_messages_out++;
        return true;
    }
    static const char why[] = "the client does not read fast enough";
    send_close(l, GW_WS_CLOSE_POLICY, why, sizeof(why) - 1);
    link_close(l, GW_WS_CLOSE_POLICY, why);
    return false;
}

static bool in_group(const gw_ws_link *l, br_str g)
{
    for (uint8_t i = 0; i < l->ngroups; i++)
        if (strlen(l->groups[i]) == g.len && memcmp(l->groups[i], g.ptr, g.len) == 0)
            return true;
    return false;
}

static bool serves(const gw_worker *w, const gw_service *s)
{
    for (size_t i = 0; i < w->nservices; i++)
        if (w->services[i] == s)
            return true;
    return false;
}

static void on_group(gw_broker *b, gw_worker *w, const br_msg_ws_group *g)
{
    if (g->op == BR_WS_BROADCAST) {
        for (gw_list *n = b->ws_all.next, *next; n != &b->ws_all; n = next) {
            next = n->next;
            gw_ws_link *l = GW_CONTAINER_OF(n, gw_ws_link, all_link);
            if (l->id != g->conn && serves(w, l->service) && in_group(l, g->group))
                deliver(l, g->binary, g->data);
        }
        return;
    }
    gw_ws_link *l = worker_link(b, w, g->conn);
    if (!l || g->group.len > GW_WS_GROUP_MAX)
        return;
    bool member = in_group(l, g->group);
    if (g->op == BR_WS_JOIN && !l->groups &&
        !(l->groups = calloc(GW_WS_MAX_GROUPS, sizeof(*l->groups))))
        return;
    if (g->op == BR_WS_JOIN && !member && l->ngroups < GW_WS_MAX_GROUPS) {
        memcpy(l->groups[l->ngroups], g->group.ptr, g->group.len);
        l->groups[l->ngroups][g->group.len] = '\0';
        l->ngroups++;
    } else if (g->op == BR_WS_LEAVE && member) {
        for (uint8_t i = 0; i < l->ngroups; i++) {
            if (strlen(l->groups[i]) == g->group.len &&
                memcmp(l->groups[i], g->group.ptr, g->group.len) == 0) {
                memcpy(l->groups[i], l->groups[l->ngroups - 1], sizeof(l->groups[i]));
                l->ngroups--;
                break;
            }
        }
    }
}

bool gw__ws_worker_msg(gw_broker *b, gw_worker *w, const br_msg *m)
{
    gw_ws_link *l;
    switch (m->type) {
    case BR_MSG_WS_MESSAGE:
        if (!(l = worker_link(b, w, m->u.ws_message.conn)))
            return true; /* closed meanwhile: dropped */
        if (l->from_worker >= GW_WS_WINDOW) {
            static const char why[] = "the worker sent past its credit";
            send_close(l, GW_WS_CLOSE_POLICY, why, sizeof(why) - 1);
            link_close(l, GW_WS_CLOSE_INTERNAL, why);
            return true;
        }
        if (deliver(l, m->u.ws_message.binary, m->u.ws_message.data))
            l->from_worker++;
        return true;
    case BR_MSG_WS_CLOSE:
        if ((l = worker_link(b, w, m->u.ws_close.conn))) {
            gw_ws_close(l->ws, m->u.ws_close.code, m->u.ws_close.reason.ptr,
                        m->u.ws_close.reason.len);
            link_free(l);
        }
        return true;
    case BR_MSG_WS_CREDIT:
        if ((l = worker_link(b, w, m->u.ws_credit.conn))) {
            uint32_t n = m->u.ws_credit.credit;
            l->to_worker -= n < l->to_worker ? n : l->to_worker;
            if (l->paused && l->to_worker < GW_WS_WINDOW) {
                l->paused = false;
                gw_ws_pause(l->ws, false);
            }
        }
        return true;
    case BR_MSG_WS_GROUP:
        on_group(b, w, &m->u.ws_group);
        return true;
    default:
        return false;
    }
}

void gw__ws_worker_gone(gw_broker *b, gw_worker *w, bool drained)
{
    while (!gw_list_empty(&w->websockets)) {
        gw_ws_link *l = GW_CONTAINER_OF(w->websockets.next, gw_ws_link, worker_link);
        if (drained)
            send_close(l, GW_WS_CLOSE_RESTART, "", 0);
        link_close(l, drained ? GW_WS_CLOSE_RESTART : GW_WS_CLOSE_INTERNAL,
                   drained ? "the service is restarting" : "the worker went away");
        w->nwebsockets--;
    }
    w->nwebsockets = 0;
    /* The closes of a draining worker's connections go now; a lost one's nowhere. */
    gw__batch_flush(b, w);
}

void gw__ws_close_all(gw_broker *b)
{
    while (!gw_list_empty(&b->ws_all)) {
        gw_ws_link *l = GW_CONTAINER_OF(b->ws_all.next, gw_ws_link, all_link);
        if (l->worker)
            l->worker->nwebsockets--;
        link_close(l, GW_WS_CLOSE_GOING_AWAY, "the gateway is shutting down");
    }
}
