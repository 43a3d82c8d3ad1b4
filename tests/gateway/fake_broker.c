/*
 * fake_broker.c - the broker calls the job queue makes, and a worker's messages played
 * through the queue's hooks (fake_broker.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "edge.h"
#include "fake_broker.h"

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---------------------------------------------------------------------------------- */
/* broker.h, as the queue calls it.                                                    */

int gw_broker_attach(gw_broker *self, const gw_broker_hooks *hooks, void *data)
{
    if (!self || !hooks || !data)
        return BR_EINVAL;
    if (self->attach_rc != 0)
        return self->attach_rc;
    if (self->data)
        return BR_ELIMIT; /* one subsystem is all these tests attach */
    self->hooks = *hooks;
    self->data = data;
    self->attaches++;
    return 0;
}

void gw_broker_detach(gw_broker *self, void *data)
{
    if (self->data && self->data == data) {
        self->data = NULL;
        self->hooks = (gw_broker_hooks){0};
        self->detaches++;
    }
}

bool gw_broker_accepting(const gw_broker *self)
{
    return self->accepting;
}

int gw_broker_send_job(gw_broker *self, gw_worker *w, const br_job *m)
{
    if (!self->accepting || w->credit == 0 || !gw_worker_live(w)) {
        self->refused++;
        return BR_EFULL;
    }
    if (self->unsendable.len && m->payload.len == self->unsendable.len &&
        memcmp(m->payload.ptr, self->unsendable.ptr, m->payload.len) == 0)
        return BR_ELIMIT; /* as a message past the limits fails to encode */
    w->credit--;
    w->inflight++;
    if (self->nsent < FAKE_SENT_MAX) {
        sent_job *s = &self->sent[self->nsent];
        s->w = w;
        snprintf(s->id, sizeof(s->id), "%.*s", (int)m->job_id.len, m->job_id.ptr);
        snprintf(s->task, sizeof(s->task), "%.*s", (int)m->task.len, m->task.ptr);
        s->payload_len = m->payload.len;
        if (m->payload.len)
            memcpy(s->payload, m->payload.ptr,
                   m->payload.len < FAKE_PAYLOAD_MAX ? m->payload.len : FAKE_PAYLOAD_MAX);
        s->attempt = m->attempt;
        s->lease_ms = m->lease_ms;
        s->at_ms = now_ms();
    }
    self->nsent++;
    return 0;
}

int gw_broker_send_job_cancel(gw_broker *self, gw_worker *w, br_str job_id)
{
    if (!gw_worker_live(w))
        return BR_ENOTFOUND;
    self->cancels++;
    snprintf(self->cancelled, sizeof(self->cancelled), "%.*s", (int)job_id.len, job_id.ptr);
    return 0;
}

int gw_broker_send_workflow_reply(gw_broker *self, gw_worker *w, const br_workflow_reply *m)
{
    (void)self;
    (void)w;
    (void)m;
    return 0; /* the queue tests send no WORKFLOW */
}

int gw_edge_req_info(const gw_req *req, gw_edge_info *out)
{
    (void)req;
    *out = (gw_edge_info){0};
    return BR_ENOTFOUND;
}

void gw_broker_respond_reply(gw_broker *self, gw_req *req, const br_reply *r, bool want_msgpack)
{
    (void)req;
    (void)r;
    (void)want_msgpack;
    self->responses++;
}

void gw_broker_respond_error(gw_broker *self, gw_req *req, int status, bool retry_after,
                             const char *detail)
{
    (void)req;
    (void)status;
    (void)retry_after;
    (void)detail;
    self->responses++;
}

/* ---------------------------------------------------------------------------------- */
/* Workers.                                                                            */

void fake_broker_init(gw_broker *b)
{
    memset(b, 0, sizeof(*b));
    b->accepting = true;
}

gw_worker *fake_worker_new(gw_broker *b, uint32_t credit)
{
    if (b->nworkers >= FAKE_WORKERS_MAX)
        return NULL;
    size_t i = b->nworkers++;
    gw_worker *w = &b->workers[i];
    memset(w, 0, sizeof(*w));
    snprintf(b->worker_ids[i], sizeof(b->worker_ids[i]), "w%zu", i + 1);
    w->id = b->worker_ids[i];
    w->credit = credit;
    gw_list_init(&w->exchanges);
    gw_list_init(&w->outgoing);
    return w;
}

/* Fills names from the NULL-terminated list (at most FAKE_TASKS_MAX); the count. */
static uint32_t names_of(const char *const *list, br_str *names)
{
    uint32_t n = 0;
    while (list && n < FAKE_TASKS_MAX && list[n]) {
        names[n] = br_str_c(list[n]);
        n++;
    }
    return n;
}

void fake_worker_join_public(gw_broker *b, gw_worker *w, const char *const *tasks,
                             const char *const *public_tasks)
{
    br_str names[FAKE_TASKS_MAX], pub[FAKE_TASKS_MAX];
    br_ready r = {.worker_id = br_str_c(w->id),
                  .kind = BR_KIND_IO,
                  .capacity = w->credit,
                  .heartbeat_ms = 1000,
                  .tasks = names,
                  .public_tasks = pub};
    r.ntasks = names_of(tasks, names);
    r.npublic_tasks = names_of(public_tasks, pub);
    if (b->data && b->hooks.worker_joined)
        b->hooks.worker_joined(b->data, w, &r);
}

void fake_worker_join(gw_broker *b, gw_worker *w, const char *const *tasks)
{
    fake_worker_join_public(b, w, tasks, NULL);
}

/* Credit left over goes to the attached queue (gw__broker_offer_credit). */
static void offer_credit(gw_broker *b, gw_worker *w)
{
    if (w->credit > 0 && gw_worker_live(w) && b->data && b->hooks.credit)
        b->hooks.credit(b->data, w);
}

void fake_worker_credit(gw_broker *b, gw_worker *w, uint32_t n)
{
    w->credit += n;
    offer_credit(b, w);
}

bool fake_worker_ack(gw_broker *b, gw_worker *w, const char *id)
{
    br_job_ack m = {.job_id = br_str_c(id)};
    return b->data && b->hooks.job_ack && b->hooks.job_ack(b->data, w, &m);
}

gw_job_settle fake_worker_result(gw_broker *b, gw_worker *w, const char *id, br_job_outcome outcome,
                                 br_str result, const char *error)
{
    br_job_result m = {
        .job_id = br_str_c(id), .outcome = outcome, .result = result, .error = br_str_c(error)};
    gw_job_settle s = GW_JOB_SETTLE_UNKNOWN;
    if (b->data && b->hooks.job_result)
        s = b->hooks.job_result(b->data, w, &m);
    if (s == GW_JOB_SETTLE_UNKNOWN)
        return s; /* credit for nothing sent: ignored */
    if (w->credit < GW_CREDIT_MAX)
        w->credit++;
    if (w->inflight)
        w->inflight--;
    offer_credit(b, w);
    return s;
}

bool fake_worker_progress(gw_broker *b, gw_worker *w, const char *id, double progress,
                          const char *note)
{
    br_job_progress m = {.job_id = br_str_c(id),
                         .has_progress = progress >= 0,
                         .progress = progress,
                         .note = br_str_c(note)};
    return b->data && b->hooks.job_progress && b->hooks.job_progress(b->data, w, &m);
}

void fake_worker_policy(gw_broker *b, gw_worker *w, const br_task_policy *p)
{
    br_task_policies m = {(br_task_policy *)p, 1};
    if (b->data && b->hooks.task_policy)
        b->hooks.task_policy(b->data, w, &m);
}

void fake_worker_gone(gw_broker *b, gw_worker *w)
{
    w->lost = true;
    if (b->data && b->hooks.worker_gone)
        b->hooks.worker_gone(b->data, w);
}
