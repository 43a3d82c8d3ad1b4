/*
 * gather.c - several async operations at once, one callback (barista/async.h).
 *
 * A gather lives in its request's arena and its deadline timer is adopted by the
 * request, so both go away with the request and nothing here needs freeing: a branch
 * that completes after the request ended cannot exist (its operation was aborted),
 * and one that completes after the deadline finds the gather finished and is ignored.
 */
#include <stdio.h>
#include <string.h>

#include "worker_int.h"

/* One branch: its outcome and what to cancel at the deadline. */
typedef struct branch {
    struct br_gather *g; /* the gather it belongs to */
    br_call_op *call;    /* the call behind it, or NULL for other operations */
    bool done;           /* its outcome is in results[] */
} branch;

struct br_gather {
    uv_timer_t timer;                 /* the deadline (adopted by the request) */
    br_req *req;                      /* the request it belongs to */
    br_gather_fn cb;                  /* called once at the end */
    void *arg;                        /* its argument */
    uint32_t timeout_ms;              /* the deadline, from br_gather_start */
    size_t n;                         /* branches added */
    size_t pending;                   /* branches not done yet */
    bool started;                     /* br_gather_start ran */
    bool finished;                    /* cb ran (or is running) */
    branch branches[BR_GATHER_MAX];   /* per branch bookkeeping */
    br_result results[BR_GATHER_MAX]; /* per branch outcome, in order */
};

static const br_str empty = {"", 0};

static void set_failure(br_result *r, uint16_t status, br_str detail)
{
    r->status = status;
    r->content_type = empty;
    r->body = empty;
    r->detail = detail;
}

/* Ends the gather: branches still running become 504s and their calls are
 * cancelled, then the callback runs. */
static void finish(br_gather *g)
{
    g->finished = true;
    uv_timer_stop(&g->timer);
    br_str late = br_str_c("deadline passed: the gather stopped waiting");
    char *why = br_req_alloc(g->req, 96);
    if (why) {
        snprintf(why, 96, "deadline passed: no answer within the gather's %u ms",
                 (unsigned)g->timeout_ms);
        late = br_str_c(why);
    }
    for (size_t i = 0; i < g->n; i++) {
        branch *b = &g->branches[i];
        if (b->done)
            continue;
        b->done = true;
        set_failure(&g->results[i], 504, late);
        if (b->call)
            br_call_cancel(b->call);
    }
    g->pending = 0;
    g->cb(g->req, g->results, g->n, g->arg);
}

static void on_deadline(uv_timer_t *t)
{
    br_gather *g = t->data;
    br_worker *w = g->req->worker;
    br__watch_enter(w, g->req->spec);
    finish(g);
    br__watch_leave(w);
}

br_gather *br_gather_new(br_req *req, uint32_t timeout_ms, br_gather_fn cb, void *arg)
{
    if (!cb || req->on_thread || req->ended)
        return NULL;
    br_gather *g = br_req_alloc(req, sizeof(*g));
    if (!g)
        return NULL;
    memset(g, 0, sizeof(*g));
    uv_timer_init(br_req_loop(req), &g->timer);
    if (br_req_adopt(req, (uv_handle_t *)&g->timer) != 0) {
        /* The arena outlives this handle only if the request closes it. */
        uv_close((uv_handle_t *)&g->timer, NULL);
        return NULL;
    }
    g->timer.data = g;
    g->req = req;
    g->cb = cb;
    g->arg = arg;
    g->timeout_ms = timeout_ms;
    return g;
}

/* The next branch, or NULL when full or started. */
static branch *add(br_gather *g, int *index)
{
    if (g->started || g->n == BR_GATHER_MAX)
        return NULL;
    *index = (int)g->n;
    branch *b = &g->branches[g->n++];
    b->g = g;
    g->pending++;
    return b;
}

int br_gather_branch(br_gather *g, void **arg_out)
{
    int index;
    branch *b = add(g, &index);
    if (!b)
        return g->started ? BR_EINVAL : BR_EFULL;
    *arg_out = b;
    return index;
}

int br_gather_call(br_gather *g, const br_call_spec *spec)
{
    int index;
    branch *b = add(g, &index);
    if (!b)
        return g->started ? BR_EINVAL : BR_EFULL;
    /* The callee gets no more time than the gather waits for it. */
    br_call_spec bounded = *spec;
    if (g->timeout_ms && (!bounded.timeout_ms || bounded.timeout_ms > g->timeout_ms))
        bounded.timeout_ms = g->timeout_ms;
    int rc = br_call(g->req, &bounded, br_gather_done, b, &b->call);
    if (rc != 0) {
        /* The branch fails now; the gather carries on with the others. */
        br_result r;
        if (rc == BR_ECLOSED && br_req_remaining_ms(g->req) == 0)
            set_failure(&r, 504, br_str_c("deadline passed before the call started"));
        else if (rc == BR_ECLOSED)
            set_failure(&r, 503, br_str_c("no connection to the broker"));
        else
            set_failure(&r, 500, br_str_c(br_strerror(rc)));
        b->call = NULL;
        br_gather_done(g->req, &r, b);
    }
    return index;
}

void br_gather_done(br_req *req, const br_result *res, void *arg)
{
    (void)req;
    branch *b = arg;
    br_gather *g = b->g;
    if (b->done || g->finished)
        return;
    b->done = true;
    b->call = NULL;
    g->results[b - g->branches] = *res;
    if (--g->pending == 0 && g->started)
        finish(g);
}

int br_gather_start(br_gather *g)
{
    if (g->started)
        return BR_EINVAL;
    g->started = true;
    uint32_t budget = br__req_budget(g->req, g->timeout_ms);
    g->timeout_ms = budget;
    /* With nothing pending the callback still waits for the loop: never from here. */
    uv_timer_start(&g->timer, on_deadline, g->pending ? budget : 0, 0);
    return 0;
}
