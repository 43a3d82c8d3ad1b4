/*
 * ws.c - WebSocket connections on a worker (barista/worker.h, "WebSockets";
 * PROTOCOL.md 5.16).
 *
 * A connection arrives as WS_OPEN on a route declared with br_route_spec.websocket and
 * stays here until WS_CLOSE (either way).  Its opening data (path, parameters, headers)
 * is copied into one allocation with the connection.  Flow control is the protocol's
 * credit per connection: the gateway grants 16 messages at first and one more for each
 * message it has written to the client; a send without credit waits in the
 * connection's queue (at most BR_WS_QUEUE_MAX messages, then BR_EFULL).  Incoming
 * messages are acknowledged with WS_CREDIT in batches of BR_WS_CREDIT_BATCH once their
 * callback has returned.  A connection closed by its handler is kept, off the table,
 * until the next message from the broker, so that it stays valid until the callback
 * that closed it returns.
 *
 * To a broker that reads WS_BATCH (WELCOME.features), the WS_MESSAGE, WS_CREDIT,
 * WS_CLOSE and WS_GROUP messages of a loop turn go out in one frame
 * (barista/ws_batch.h), sent by a check handle at the end of the turn or before any
 * other message to that broker: one ZeroMQ message for a whole drain's worth of echoes.
 */
#include <stdlib.h>
#include <string.h>

#include "worker_int.h"

/* The gateway's initial window per connection (PROTOCOL.md 5.16). */
#define BR_WS_WINDOW 16
/* Incoming messages acknowledged at once. */
#define BR_WS_CREDIT_BATCH 8
/* Buckets of the connection table (a power of two). */
#define BR_WS_BUCKETS 4096

typedef struct br__ws_out {
    struct br__ws_out *next; /* next queued message */
    bool binary;             /* binary or text */
    size_t len;              /* bytes at data */
    char data[];             /* the payload */
} br__ws_out;

struct br_ws {
    uint64_t id;            /* the connection id (unique within its broker) */
    uint64_t gen;           /* the registration it was opened under: its broker */
    br_worker *w;           /* the worker */
    br_svc *svc;            /* its service */
    const br_ws_spec *spec; /* its route's callbacks */
    void *state;            /* br_ws_state */
    struct br_ws *next;     /* next in its bucket, or in the closed list */
    uint32_t credit;        /* messages the gateway lets us send now */
    uint32_t owed;          /* incoming messages not yet acknowledged */
    br__ws_out *out_head;   /* messages waiting for credit */
    br__ws_out *out_tail;   /* the last of them */
    uint32_t nout;          /* entries in the queue */
    bool closed;            /* closed by the handler: waiting to be freed */
    br_str path;            /* the opening request's path (copied) */
    br_str subprotocol;     /* the subprotocol chosen (copied) */
    br_str identity;        /* the verified caller (copied) */
    br_pair *pairs;         /* params, then query, then headers (copied) */
    uint32_t nparams, nquery, nheaders;
};

static size_t bucket_of(uint64_t id)
{
    return (size_t)(id * 0x9e3779b97f4a7c15ull >> 52) & (BR_WS_BUCKETS - 1);
}

static br_ws *find(const br_worker *w, uint64_t id)
{
    if (!w->ws_buckets)
        return NULL;
    for (br_ws *ws = w->ws_buckets[bucket_of(id)]; ws; ws = ws->next)
        if (ws->id == id && ws->gen == w->gen)
            return ws;
    return NULL;
}

static void unlink_ws(br_worker *w, br_ws *ws)
{
    for (br_ws **pp = &w->ws_buckets[bucket_of(ws->id)]; *pp; pp = &(*pp)->next) {
        if (*pp == ws) {
            *pp = ws->next;
            w->nws--;
            return;
        }
    }
}

static void ws_free(br_ws *ws)
{
    for (br__ws_out *o = ws->out_head, *next; o; o = next) {
        next = o->next;
        free(o);
    }
    free(ws);
}

/* Frees the connections handlers closed (a safe point: no callback runs). */
static void reap(br_worker *w)
{
    while (w->ws_closed) {
        br_ws *ws = w->ws_closed;
        w->ws_closed = ws->next;
        ws_free(ws);
    }
}

/* ---------------------------------------------------------------------------------- */
/* Opening: one allocation for the connection and a copy of what WS_OPEN carried.      */

static size_t pairs_bytes(const br_pair *p, uint32_t n)
{
    size_t total = 0;
    for (uint32_t i = 0; i < n; i++)
        total += p[i].name.len + p[i].value.len;
    return total;
}

static br_str copy_into(char **cursor, br_str s)
{
    br_str out = {*cursor, s.len};
    if (s.len)
        memcpy(*cursor, s.ptr, s.len);
    *cursor += s.len;
    return out;
}

static void copy_pairs(char **cursor, br_pair *dst, const br_pair *src, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        dst[i].name = copy_into(cursor, src[i].name);
        dst[i].value = copy_into(cursor, src[i].value);
    }
}

static void on_open(br_worker *w, const br_msg_ws_open *m)
{
    size_t svc_index;
    const br_route_spec *route =
        br__registry_route(&w->reg, m->service, br_str_c("GET"), m->route, &svc_index);
    br_msg refuse = {.type = BR_MSG_WS_CLOSE,
                     .u.ws_close = {.conn = m->conn,
                                    .code = 1011,
                                    .reason = br_str_c("no such WebSocket route here")}};
    if (!route || !route->websocket || find(w, m->conn)) {
        br__worker_send(w, &refuse);
        return;
    }
    if (!w->ws_buckets && !(w->ws_buckets = calloc(BR_WS_BUCKETS, sizeof(*w->ws_buckets)))) {
        br__worker_send(w, &refuse);
        return;
    }
    uint32_t npairs = m->nparams + m->nquery + m->nheaders;
    size_t size = sizeof(br_ws) + npairs * sizeof(br_pair) + m->path.len + m->subprotocol.len +
                  m->identity.len + pairs_bytes(m->params, m->nparams) +
                  pairs_bytes(m->query, m->nquery) + pairs_bytes(m->headers, m->nheaders);
    br_ws *ws = calloc(1, size);
    if (!ws) {
        br__worker_send(w, &refuse);
        return;
    }
    ws->id = m->conn;
    ws->gen = w->gen;
    ws->w = w;
    ws->svc = &w->svcs[svc_index];
    ws->spec = route->websocket;
    ws->credit = BR_WS_WINDOW;
    ws->pairs = (br_pair *)(void *)(ws + 1);
    char *cursor = (char *)(ws->pairs + npairs);
    ws->path = copy_into(&cursor, m->path);
    ws->subprotocol = copy_into(&cursor, m->subprotocol);
    ws->identity = copy_into(&cursor, m->identity);
    copy_pairs(&cursor, ws->pairs, m->params, m->nparams);
    copy_pairs(&cursor, ws->pairs + m->nparams, m->query, m->nquery);
    copy_pairs(&cursor, ws->pairs + m->nparams + m->nquery, m->headers, m->nheaders);
    ws->nparams = m->nparams;
    ws->nquery = m->nquery;
    ws->nheaders = m->nheaders;
    size_t b = bucket_of(ws->id);
    ws->next = w->ws_buckets[b];
    w->ws_buckets[b] = ws;
    w->nws++;
    if (ws->spec->on_open)
        ws->spec->on_open(ws);
}

/* ---------------------------------------------------------------------------------- */
/* Sending: batched per loop turn and broker when the broker reads WS_BATCH.           */

/* Sends a WS_* message on registration gen's link: into the link's batch for this turn
 * when its broker reads batches (batch.c), else at once.  0 or an error (BR_ECLOSED: no
 * such registration any more). */
static int send_msg(br_worker *w, uint64_t gen, const br_msg *m)
{
    br__link *l = br__worker_link(w, gen);
    if (!l)
        return BR_ECLOSED;
    if (!l->ws_batch || !l->registered || w->closing)
        return br__worker_send_gen(w, gen, m);
    return br__batch_send(l, m);
}

static int send_now(br_ws *ws, bool binary, const void *data, size_t len)
{
    br_msg m = {.type = BR_MSG_WS_MESSAGE,
                .u.ws_message = {.conn = ws->id, .binary = binary, .data = {data, len}}};
    ws->credit--;
    return send_msg(ws->w, ws->gen, &m);
}

static int ws_send(br_ws *ws, bool binary, const void *data, size_t len)
{
    if (ws->closed)
        return BR_ECLOSED;
    if (ws->credit > 0 && !ws->out_head)
        return send_now(ws, binary, data, len);
    if (ws->nout >= BR_WS_QUEUE_MAX)
        return BR_EFULL;
    br__ws_out *o = malloc(sizeof(*o) + len);
    if (!o)
        return BR_ENOMEM;
    o->next = NULL;
    o->binary = binary;
    o->len = len;
    if (len)
        memcpy(o->data, data, len);
    if (ws->out_tail)
        ws->out_tail->next = o;
    else
        ws->out_head = o;
    ws->out_tail = o;
    ws->nout++;
    return 0;
}

int br_ws_send_text(br_ws *ws, const char *text, size_t len)
{
    return ws_send(ws, false, text, len);
}

int br_ws_send_binary(br_ws *ws, const void *data, size_t len)
{
    return ws_send(ws, true, data, len);
}

static void on_credit(br_ws *ws, uint32_t n)
{
    ws->credit = n > UINT32_MAX - ws->credit ? UINT32_MAX : ws->credit + n;
    while (ws->credit > 0 && ws->out_head && !ws->closed) {
        br__ws_out *o = ws->out_head;
        ws->out_head = o->next;
        if (!ws->out_head)
            ws->out_tail = NULL;
        ws->nout--;
        send_now(ws, o->binary, o->data, o->len);
        free(o);
    }
}

int br_ws_close(br_ws *ws, uint16_t code, const char *reason)
{
    if (ws->closed)
        return BR_ECLOSED;
    size_t len = reason ? strlen(reason) : 0;
    if (len > 123)
        len = 123; /* the gateway cuts at a code point */
    if (code < 1000 || code > 4999)
        code = 1011;
    br_msg m = {.type = BR_MSG_WS_CLOSE,
                .u.ws_close = {.conn = ws->id, .code = code, .reason = {reason, len}}};
    send_msg(ws->w, ws->gen, &m);
    ws->closed = true;
    unlink_ws(ws->w, ws);
    ws->next = ws->w->ws_closed;
    ws->w->ws_closed = ws;
    return 0;
}

/* Sends a WS_GROUP on registration gen's connection (a connection's groups live at its
 * own broker). */
static int group_op(br_worker *w, uint64_t gen, uint8_t op, const char *group, uint64_t conn,
                    bool binary, const void *data, size_t len)
{
    if (!group || !*group || strlen(group) > 64)
        return BR_EINVAL;
    br_msg m = {.type = BR_MSG_WS_GROUP,
                .u.ws_group = {.op = op,
                               .group = br_str_c(group),
                               .conn = conn,
                               .binary = binary,
                               .data = {data, len}}};
    return send_msg(w, gen, &m);
}

int br_ws_join(br_ws *ws, const char *group)
{
    return ws->closed ? BR_ECLOSED
                      : group_op(ws->w, ws->gen, BR_WS_JOIN, group, ws->id, false, NULL, 0);
}

int br_ws_leave(br_ws *ws, const char *group)
{
    return ws->closed ? BR_ECLOSED
                      : group_op(ws->w, ws->gen, BR_WS_LEAVE, group, ws->id, false, NULL, 0);
}

int br_ws_broadcast(br_svc *svc, const char *group, bool binary, const void *data, size_t len,
                    const br_ws *except)
{
    /* A group's members may be connections of every broker: each broker delivers to
     * its own, so the broadcast goes to each (`except` only means something at its own). */
    br_worker *w = svc->worker;
    if (!group || !*group || strlen(group) > 64)
        return BR_EINVAL;
    int rc = BR_ECLOSED;
    for (uint32_t i = 0; i < w->nlinks; i++) {
        const br__link *l = &w->links[i];
        if (!l->zs || !l->gen || !l->registered)
            continue;
        uint64_t conn = except && except->gen == l->gen ? except->id : 0;
        int r = group_op(w, l->gen, BR_WS_BROADCAST, group, conn, binary, data, len);
        if (rc != 0)
            rc = r;
    }
    return rc;
}

/* ---------------------------------------------------------------------------------- */
/* Accessors.                                                                          */

uint64_t br_ws_id(const br_ws *ws)
{
    return ws->id;
}

br_svc *br_ws_svc(const br_ws *ws)
{
    return ws->svc;
}

void *br_ws_data(const br_ws *ws)
{
    return ws->svc->data;
}

void br_ws_set_state(br_ws *ws, void *state)
{
    ws->state = state;
}

void *br_ws_state(const br_ws *ws)
{
    return ws->state;
}

br_str br_ws_subprotocol(const br_ws *ws)
{
    return ws->subprotocol;
}

br_str br_ws_identity(const br_ws *ws)
{
    return ws->identity;
}

br_str br_ws_path(const br_ws *ws)
{
    return ws->path;
}

static int lookup(const br_pair *p, uint32_t n, const char *name, br_str *out)
{
    for (uint32_t i = 0; i < n; i++) {
        if (br_str_eq(p[i].name, name)) {
            *out = p[i].value;
            return 0;
        }
    }
    *out = (br_str){0};
    return BR_ENOTFOUND;
}

int br_ws_param(const br_ws *ws, const char *name, br_str *out)
{
    return lookup(ws->pairs, ws->nparams, name, out);
}

int br_ws_query(const br_ws *ws, const char *name, br_str *out)
{
    return lookup(ws->pairs + ws->nparams, ws->nquery, name, out);
}

int br_ws_header(const br_ws *ws, const char *name, br_str *out)
{
    return lookup(ws->pairs + ws->nparams + ws->nquery, ws->nheaders, name, out);
}

/* ---------------------------------------------------------------------------------- */
/* Messages from the broker.                                                           */

/* The connection is over from the gateway's side: on_close, then freed. */
static void gone(br_worker *w, br_ws *ws, uint16_t code, br_str reason)
{
    unlink_ws(w, ws);
    ws->closed = true;
    if (ws->spec->on_close)
        ws->spec->on_close(ws, code, reason);
    ws_free(ws);
}

bool br__ws_handle(br_worker *w, const br_msg *m)
{
    reap(w);
    br_ws *ws;
    switch (m->type) {
    case BR_MSG_WS_OPEN:
        on_open(w, &m->u.ws_open);
        return true;
    case BR_MSG_WS_MESSAGE:
        if (!(ws = find(w, m->u.ws_message.conn)))
            return true;
        ws->spec->on_message(ws, m->u.ws_message.binary, m->u.ws_message.data);
        if (!ws->closed && ++ws->owed >= BR_WS_CREDIT_BATCH) {
            br_msg c = {.type = BR_MSG_WS_CREDIT,
                        .u.ws_credit = {.conn = ws->id, .credit = ws->owed}};
            ws->owed = 0;
            send_msg(w, ws->gen, &c);
        }
        return true;
    case BR_MSG_WS_CLOSE:
        if ((ws = find(w, m->u.ws_close.conn)))
            gone(w, ws, m->u.ws_close.code, m->u.ws_close.reason);
        return true;
    case BR_MSG_WS_CREDIT:
        if ((ws = find(w, m->u.ws_credit.conn)))
            on_credit(ws, m->u.ws_credit.credit);
        return true;
    default:
        return false;
    }
}

void br__ws_drop_gen(br_worker *w, uint64_t gen)
{
    reap(w);
    for (size_t b = 0; w->ws_buckets && b < BR_WS_BUCKETS; b++) {
        br_ws *ws = w->ws_buckets[b];
        while (ws) {
            /* gone() unlinks ws: start the bucket again after it. */
            if (gen == 0 || ws->gen == gen) {
                gone(w, ws, 1006, br_str_c("the broker went away"));
                ws = w->ws_buckets[b];
            } else {
                ws = ws->next;
            }
        }
    }
}

void br__ws_release(br_worker *w)
{
    br__ws_drop_gen(w, 0);
    free(w->ws_buckets);
    w->ws_buckets = NULL;
}
