/*
 * http_timeouts.c - every connection's timeout on one timer.
 *
 * A connection measures one timeout at a time: the phase it is in (idle, reading a
 * head or a body, a stalled write, linger, a WebSocket's silence).  Rather than a
 * uv_timer_t per connection (152 bytes, 1.5 MB at 10,000 connections), each is linked
 * into the server's list for its timeout's length: a connection entering a phase of
 * T ms is appended to the list of T, whose deadlines are then in order because the
 * loop's clock only moves forward.  One timer is armed for the earliest head; when it
 * fires, the expired heads of every list move to the first list and are handled one
 * by one, so a handler may change any connection's phase, its own included.
 *
 * A connection leaving a phase is unlinked (O(1)); the timer is not moved for it and
 * may fire early, which only re-arms it.  Distinct timeouts are few (one per setting
 * in use); past GW_HTTP_TIMEOUT_LISTS - 1 of them the last list takes the rest and
 * keeps its order by walking back from its tail.
 */
#include "http_conn.h"

static gw_conn *conn_of(gw_list *n)
{
    return GW_CONTAINER_OF(n, gw_conn, tlink);
}

/* The list for a timeout of ms: its own, an empty one taken for it, or the last. */
static gw_timeout_list *list_for(gw_http_server *s, uint32_t ms)
{
    gw_timeout_list *empty = NULL;
    for (size_t i = 1; i < GW_HTTP_TIMEOUT_LISTS - 1; i++) {
        gw_timeout_list *l = &s->timeouts[i];
        bool used = !gw_list_empty(&l->conns);
        if (used && l->ms == ms)
            return l;
        if (!used && !empty)
            empty = l;
    }
    if (!empty)
        return &s->timeouts[GW_HTTP_TIMEOUT_LISTS - 1];
    empty->ms = ms;
    return empty;
}

static void on_timeouts(uv_timer_t *t);

static void arm(gw_http_server *s, uint64_t when)
{
    uint64_t now = uv_now(s->loop);
    uv_timer_start(&s->timeouts_timer, on_timeouts, when > now ? when - now : 0, 0);
    s->timeouts_due = when;
}

void gw__conn_set_phase(gw_conn *conn, gw_conn_phase phase, uint32_t ms)
{
    gw_http_server *s = conn->server;
    conn->phase = phase;
    gw_list_remove(&conn->tlink);
    if (phase == GW_PHASE_NONE || conn->closing)
        return;
    conn->deadline = uv_now(s->loop) + ms;
    /* After the last member whose deadline is not later: the tail, but in the last
     * list, which mixes timeouts. */
    gw_list *l = &list_for(s, ms)->conns, *at = l->prev;
    while (at != l && conn_of(at)->deadline > conn->deadline)
        at = at->prev;
    gw_list_push_front(at, &conn->tlink);
    /* A later deadline than the timer's costs nothing: the timer fires, finds nothing
     * due and re-arms.  Only an earlier one restarts it. */
    if (s->timeouts_due == 0 || conn->deadline < s->timeouts_due)
        arm(s, conn->deadline);
}

void gw__timeouts_remove(gw_conn *conn)
{
    gw_list_remove(&conn->tlink);
}

static void on_timeouts(uv_timer_t *t)
{
    gw_http_server *s = t->data;
    uint64_t now = uv_now(s->loop);
    s->timeouts_due = 0;
    gw_list *due = &s->timeouts[0].conns;
    for (size_t i = 1; i < GW_HTTP_TIMEOUT_LISTS; i++) {
        gw_list *l = &s->timeouts[i].conns;
        while (!gw_list_empty(l) && conn_of(l->next)->deadline <= now) {
            gw_list *n = l->next;
            gw_list_remove(n);
            gw_list_push_back(due, n);
        }
    }
    /* A handler may move or close any connection: each is taken off the due list
     * before it is handled, and one another handler moved is no longer on it. */
    while (!gw_list_empty(due)) {
        gw_list *n = due->next;
        gw_list_remove(n);
        gw__conn_timed_out(conn_of(n));
    }
    uint64_t next = 0;
    for (size_t i = 1; i < GW_HTTP_TIMEOUT_LISTS; i++) {
        gw_list *l = &s->timeouts[i].conns;
        if (!gw_list_empty(l) && (next == 0 || conn_of(l->next)->deadline < next))
            next = conn_of(l->next)->deadline;
    }
    if (next && (s->timeouts_due == 0 || next < s->timeouts_due))
        arm(s, next);
}

void gw__timeouts_init(gw_http_server *server)
{
    for (size_t i = 0; i < GW_HTTP_TIMEOUT_LISTS; i++)
        gw_list_init(&server->timeouts[i].conns);
    uv_timer_init(server->loop, &server->timeouts_timer);
    server->timeouts_timer.data = server;
    server->open_handles++;
}
