/*
 * workflow.c - workflows asked for by a handler or a task (barista/worker.h): a
 * WORKFLOW to the broker, and the WORKFLOW_REPLY that answers it routed back to the
 * submitter's callback (PROTOCOL.md 5.21).
 *
 * The submissions waiting for their answer are a short list on the worker.  One made
 * by a handler is an operation of its request (async_int.h): when the request ends
 * first it is dropped and its callback never runs; one made by a task is dropped when
 * the job's attempt ends (br__flow_job_ended).  Either way the gateway still makes the
 * workflow: only the answer is not wanted any more.
 */
#include <stdlib.h>
#include <string.h>

#include "async_int.h"
#include "worker_int.h"

/* The most WORKFLOWs one worker has waiting for their answer at once. */
#define FLOWS_MAX 4096u

typedef struct br__flow {
    br__op op;             /* a handler's: in its request's operations */
    struct br__flow *next; /* in the worker's list */
    br_worker *w;          /* the worker whose list holds it */
    br_req *req;           /* the handler's request, or NULL */
    struct br_jobctx *job; /* the task's job, or NULL */
    uint64_t id;           /* the WORKFLOW's id; WORKFLOW_REPLY carries it back */
    uint64_t gen;          /* the registration (broker) it went to */
    br_workflow_fn cb;     /* the answer's callback */
    void *arg;             /* its argument */
} br__flow;

static void flow_unlist(br_worker *w, br__flow *f)
{
    br__flow **pp = &w->flows;
    while (*pp && *pp != f)
        pp = &(*pp)->next;
    if (*pp)
        *pp = f->next;
}

/* The request ended first: forget the submission. */
static void flow_abort(br__op *op)
{
    br__flow *f = (br__flow *)op;
    flow_unlist(f->w, f);
    free(f);
}

int br__flow_send(br_worker *w, uint64_t gen, br_req *req, struct br_jobctx *job, br_str parent_id,
                  br_str identity, const void *canvas, size_t len, br_workflow_fn cb, void *arg)
{
    if (!canvas || len == 0 || !cb)
        return BR_EINVAL;
    if (len > BR_REPLY_BODY_MAX)
        return BR_ELIMIT;
    if (!br__gen_live(w, gen))
        return BR_ECLOSED;
    if (!br_msg_type_in_version(BR_MSG_WORKFLOW, br__gen_version(w, gen)))
        return BR_EVERSION;
    size_t n = 0;
    for (br__flow *f = w->flows; f; f = f->next)
        n++;
    if (n >= FLOWS_MAX)
        return BR_EFULL;
    br__flow *f = calloc(1, sizeof(*f));
    if (!f)
        return BR_ENOMEM;
    *f = (br__flow){
        .w = w, .req = req, .job = job, .id = ++w->flow_next_id, .gen = gen, .cb = cb, .arg = arg};
    br_msg m = {.type = BR_MSG_WORKFLOW,
                .u.workflow = {.id = f->id,
                               .canvas = {canvas, (uint32_t)len},
                               .parent_job = parent_id,
                               .identity = identity}};
    int rc = br__worker_send_gen(w, gen, &m);
    if (rc != 0) {
        free(f);
        return rc == BR_ENOMEM || rc == BR_ELIMIT || rc == BR_EINVAL ? rc : BR_ECLOSED;
    }
    f->next = w->flows;
    w->flows = f;
    if (req) {
        f->op.abort = flow_abort;
        br__op_link(req, &f->op);
    }
    return 0;
}

int br_req_workflow_submit(br_req *req, const void *canvas, size_t len, br_workflow_fn cb,
                           void *arg)
{
    if (!req || req->on_thread || req->ended)
        return BR_EINVAL;
    br_worker *w = req->worker;
    /* A draining worker still asks for the requests it finishes, as it calls. */
    br__link *link = br__worker_call_link(w, req->gen);
    if (!link)
        return BR_ECLOSED;
    return br__flow_send(w, link->gen, req, NULL, (br_str){"", 0}, req->msg.identity, canvas, len,
                         cb, arg);
}

/* Runs f's callback with res and frees f (unlisted and unlinked already). */
static void flow_answer(br_worker *w, br__flow *f, const br_workflow_result *res)
{
    if (f->req)
        br__watch_enter(w, f->req->spec);
    f->cb(res, f->arg);
    if (f->req)
        br__watch_leave(w);
    free(f);
}

void br__flow_reply(br_worker *w, const br_workflow_reply *m)
{
    br__flow *f = w->flows;
    while (f && !(f->id == m->id && f->gen == w->gen))
        f = f->next;
    if (!f)
        return; /* its request or attempt ended: nobody waits */
    flow_unlist(w, f);
    if (f->req)
        br__op_unlink(f->req, &f->op);
    br_workflow_result res = {m->status, m->workflow_id, m->detail};
    flow_answer(w, f, &res);
}

void br__flow_fail_gen(br_worker *w, uint64_t gen)
{
    br_workflow_result res = {502, {"", 0}, br_str_c("the connection to the broker was lost")};
    /* A callback may end its request, which drops that request's other submissions:
     * take one at a time from the list afresh. */
    for (;;) {
        br__flow *f = w->flows;
        while (f && f->gen != gen)
            f = f->next;
        if (!f)
            return;
        flow_unlist(w, f);
        if (f->req)
            br__op_unlink(f->req, &f->op);
        flow_answer(w, f, &res);
    }
}

void br__flow_job_ended(br_worker *w, struct br_jobctx *job)
{
    br__flow **pp = &w->flows;
    while (*pp) {
        br__flow *f = *pp;
        if (f->job == job) {
            *pp = f->next;
            free(f);
        } else {
            pp = &f->next;
        }
    }
}

void br__flow_release(br_worker *w)
{
    while (w->flows) {
        br__flow *f = w->flows;
        w->flows = f->next; /* requests and jobs all ended before: nothing links it */
        free(f);
    }
}
