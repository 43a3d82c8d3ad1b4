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

static void unlink_conn(gw_http_server *s, gw_conn *conn)
{
    gw_timeout_list *l = &s->timeouts[conn->tlist - 1];
    if (conn->tprev)
        conn->tprev->tnext = conn->tnext;
    else
        l->head = conn->tnext;
    if (conn->tnext)
        conn->tnext->tprev = conn->tprev;
    else
        l->tail = conn->tprev;
    conn->tprev = conn->tnext = NULL;
    conn->tlist = 0;
}

/* Links conn into list i: after the last member whose deadline is not later, or, with
 * `append`, at the end. */
static void link_conn(gw_http_server *s, size_t i, gw_conn *conn, bool append)
{
    gw_timeout_list *l = &s->timeouts[i];
    gw_conn *after = l->tail;
    while (!append && after && after->deadline > conn->deadline)
        after = after->tprev;
    conn->tprev = after;
    conn->tnext = after ? after->tnext : l->head;
    if (conn->tnext)
        conn->tnext->tprev = conn;
    else
        l->tail = conn;
    if (after)
        after->tnext = conn;
    else
        l->head = conn;
    conn->tlist = (uint8_t)(i + 1);
}

/* The list for a timeout of ms: its own, an empty one taken for it, or the last. */
static size_t list_for(gw_http_server *s, uint32_t ms)
{
    size_t empty = 0;
    for (size_t i = 1; i < GW_HTTP_TIMEOUT_LISTS - 1; i++) {
        if (s->timeouts[i].head && s->timeouts[i].ms == ms)
            return i;
        if (!empty && !s->timeouts[i].head)
            empty = i;
    }
    if (!empty)
        return GW_HTTP_TIMEOUT_LISTS - 1;
    s->timeouts[empty].ms = ms;
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
    if (conn->tlist)
        unlink_conn(s, conn);
    if (phase == GW_PHASE_NONE || conn->closing)
        return;
    conn->deadline = uv_now(s->loop) + ms;
    link_conn(s, list_for(s, ms), conn, false);
    /* A later deadline than the timer's costs nothing: the timer fires, finds nothing
     * due and re-arms.  Only an earlier one restarts it. */
    if (s->timeouts_due == 0 || conn->deadline < s->timeouts_due)
        arm(s, conn->deadline);
}

void gw__timeouts_remove(gw_conn *conn)
{
    if (conn->tlist)
        unlink_conn(conn->server, conn);
}

static void on_timeouts(uv_timer_t *t)
{
    gw_http_server *s = t->data;
    uint64_t now = uv_now(s->loop);
    s->timeouts_due = 0;
    gw_timeout_list *due = &s->timeouts[0];
    for (size_t i = 1; i < GW_HTTP_TIMEOUT_LISTS; i++) {
        gw_conn *c;
        while ((c = s->timeouts[i].head) && c->deadline <= now) {
            unlink_conn(s, c);
            link_conn(s, 0, c, true);
        }
    }
    /* A handler may move or close any connection: each is taken off the due list
     * before it is handled, and one another handler moved is no longer on it. */
    gw_conn *c;
    while ((c = due->head)) {
        unlink_conn(s, c);
        gw__conn_timed_out(c);
    }
    uint64_t next = 0;
    for (size_t i = 1; i < GW_HTTP_TIMEOUT_LISTS; i++) {
        gw_conn *head = s->timeouts[i].head;
        if (head && (next == 0 || head->deadline < next))
            next = head->deadline;
    }
    if (next && (s->timeouts_due == 0 || next < s->timeouts_due))
        arm(s, next);
}

void gw__timeouts_init(gw_http_server *server)
{
    uv_timer_init(server->loop, &server->timeouts_timer);
    server->timeouts_timer.data = server;
    server->open_handles++;
}
