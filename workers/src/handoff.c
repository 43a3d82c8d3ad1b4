/*
 * handoff.c - JOB_HANDOFF: what becomes of jobs whose broker is gone, told to the other
 * brokers of the same queue (PROTOCOL.md 5.22).
 *
 * Gateways sharing a PostgreSQL queue confirm BR_FEATURE_JOB_HANDOFF in WELCOME.  A job
 * from such a broker whose registration ends while it runs is not dropped: its
 * result, when it ends, goes to every other registered broker that confirmed the
 * feature, and while it runs the worker says so to them on its tick (jobs.c), so
 * that the survivor that adopts the dead gateway's jobs neither loses the result nor
 * runs the job again.
 *
 * A result sent to a broker just before it died may never have been read or
 * committed: the worker only learns that its broker is gone some heartbeats later.  So
 * results sent to a broker that confirmed the feature are remembered for the liveness
 * window ((BR_LIVENESS + 1) of its heartbeats); when that registration ends, the ones
 * still remembered are handed off too.  A gateway that did commit them finished the
 * jobs, and the handoff then finds them finished and is dropped.
 *
 * Entries waiting to go out (pending) are sent on the tick to every broker that takes
 * them, then forgotten; with no such broker registered they wait up to
 * BR_HANDOFF_PENDING_MS.  Everything is bounded: BR_HANDOFF_MAX entries and
 * BR_HANDOFF_BYTES of results; beyond, the oldest remembered results go first (their
 * jobs may run twice, as without handoffs).  Loop thread only.
 */
#include <stdlib.h>
#include <string.h>

#include "worker_int.h"

/* One result remembered or waiting to be handed off. */
struct br__handoff {
    struct br__handoff *next; /* in w->handoffs, oldest first */
    uint64_t gen;             /* the registration it was sent under (0: none) */
    bool pending;             /* to be sent on the next tick */
    uint64_t expires;         /* uv_now when it is dropped */
    uint32_t attempt;         /* JOB.attempt */
    uint8_t outcome;          /* br_job_outcome */
    br_str id, result, error; /* in data */
    char data[];              /* id, result and error bytes */
};

static size_t entry_bytes(const br__handoff *h)
{
    return sizeof(*h) + h->id.len + h->result.len + h->error.len;
}

/* Drops every entry for which drop() says so. */
static void prune(br_worker *w, bool (*drop)(const br__handoff *, uint64_t), uint64_t now)
{
    br__handoff **pp = &w->handoffs;
    w->handoffs_tail = NULL;
    while (*pp) {
        br__handoff *h = *pp;
        if (drop(h, now)) {
            *pp = h->next;
            w->nhandoffs--;
            w->handoff_bytes -= entry_bytes(h);
            free(h);
        } else {
            w->handoffs_tail = h;
            pp = &h->next;
        }
    }
}

/* Makes room for `bytes` more: the oldest remembered (not pending) entries go. */
static bool make_room(br_worker *w, size_t bytes)
{
    br__handoff *prev = NULL, *h = w->handoffs;
    while (h && (w->nhandoffs >= BR_HANDOFF_MAX || w->handoff_bytes + bytes > BR_HANDOFF_BYTES)) {
        br__handoff *next = h->next;
        if (h->pending) {
            prev = h;
        } else {
            if (prev)
                prev->next = next;
            else
                w->handoffs = next;
            if (w->handoffs_tail == h)
                w->handoffs_tail = prev;
            w->nhandoffs--;
            w->handoff_bytes -= entry_bytes(h);
            free(h);
        }
        h = next;
    }
    return w->nhandoffs < BR_HANDOFF_MAX && w->handoff_bytes + bytes <= BR_HANDOFF_BYTES;
}

/* Appends an entry; false when it could not be kept (limits, memory). */
static bool add(br_worker *w, uint64_t gen, bool pending, uint64_t ttl_ms, br_str id,
                uint32_t attempt, uint8_t outcome, br_str result, br_str error)
{
    size_t bytes = sizeof(br__handoff) + id.len + result.len + error.len;
    if (!make_room(w, bytes))
        return false;
    br__handoff *h = malloc(bytes);
    if (!h)
        return false;
    *h = (br__handoff){.gen = gen,
                       .pending = pending,
                       .expires = uv_now(&w->loop) + ttl_ms,
                       .attempt = attempt,
                       .outcome = outcome};
    /* id, result and error, one after the other in data. */
    const br_str from[3] = {id, result, error};
    br_str *to[3] = {&h->id, &h->result, &h->error};
    size_t at = 0;
    for (size_t i = 0; i < 3; i++) {
        *to[i] = (br_str){h->data + at, from[i].len};
        if (from[i].len)
            memcpy(h->data + at, from[i].ptr, from[i].len);
        at += from[i].len;
    }
    if (w->handoffs_tail)
        w->handoffs_tail->next = h;
    else
        w->handoffs = h;
    w->handoffs_tail = h;
    w->nhandoffs++;
    w->handoff_bytes += bytes;
    return true;
}

void br__handoff_sent(br_worker *w, uint64_t gen, br_str id, uint32_t attempt, uint8_t outcome,
                      br_str result, br_str error)
{
    br__link *l = br__worker_link(w, gen);
    if (!l || !l->job_handoff)
        return;
    add(w, gen, false, (uint64_t)(BR_LIVENESS + 1) * l->broker_hb_ms, id, attempt, outcome, result,
        error);
}

void br__handoff_orphan(br_worker *w, uint64_t gen, br_str id, uint32_t attempt, uint8_t outcome,
                        br_str result, br_str error)
{
    if (!add(w, gen, true, BR_HANDOFF_PENDING_MS, id, attempt, outcome, result, error))
        br__log("job %.*s: its result is dropped (no room to hand it off)", (int)id.len, id.ptr);
}

void br__handoff_lost(br_worker *w, uint64_t gen)
{
    uint64_t now = uv_now(&w->loop);
    for (br__handoff *h = w->handoffs; h; h = h->next)
        if (h->gen == gen && !h->pending && now < h->expires) {
            h->pending = true;
            h->expires = now + BR_HANDOFF_PENDING_MS;
        }
}

int br__handoff_send(br_worker *w, uint64_t gen, const br_msg *m)
{
    int sent = 0;
    for (uint32_t i = 0; i < w->nlinks; i++) {
        br__link *l = &w->links[i];
        if (l->zs && l->registered && l->job_handoff && l->gen != gen &&
            br__worker_send_gen(w, l->gen, m) == 0)
            sent++;
    }
    return sent;
}

static bool handed(const br__handoff *h, uint64_t now)
{
    return h->gen == 0 || now >= h->expires; /* gen 0: marked as sent */
}

void br__handoff_tick(br_worker *w)
{
    uint64_t now = uv_now(&w->loop);
    for (br__handoff *h = w->handoffs; h; h = h->next) {
        if (!h->pending)
            continue;
        br_msg m = {.type = BR_MSG_JOB_HANDOFF,
                    .u.job_handoff = {.job_id = h->id,
                                      .attempt = h->attempt,
                                      .ended = true,
                                      .outcome = h->outcome,
                                      .result = h->result,
                                      .error = h->error}};
        if (br__handoff_send(w, h->gen, &m) > 0)
            h->gen = 0;
    }
    if (w->handoffs)
        prune(w, handed, now);
}

void br__handoff_release(br_worker *w)
{
    while (w->handoffs) {
        br__handoff *h = w->handoffs;
        w->handoffs = h->next;
        free(h);
    }
    w->handoffs_tail = NULL;
    w->nhandoffs = 0;
    w->handoff_bytes = 0;
}
