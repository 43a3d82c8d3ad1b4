/*
 * jobs_dispatch.c - jobs meet workers: which worker runs which task, JOBs sent under
 * the worker's credit, leases, and what JOB_ACK and JOB_RESULT change.
 *
 * Credit is shared with requests (PROTOCOL.md 8) and counted by the broker alone: a
 * JOB goes out through gw_broker_send_job, which spends one credit; the JOB_RESULT
 * hook tells the broker whether the credit comes back.  Requests come first: whenever
 * credit returns the broker pumps its service queues before it offers the job queue
 * what is left (the credit hook).  A lease is the JOB's send time plus lease_ms; a job whose
 * lease runs out, or whose worker is forgotten, goes back to its queue.  The worker
 * of an expired lease keeps the job's credit until its late JOB_RESULT, which is then
 * ignored - the job may already have run again elsewhere (at-least-once).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobs_int.h"

/* Digits of a job id in a JOB message: a uint64 in decimal. */
#define JOB_ID_CHARS 21

/* ---------------------------------------------------------------------------------- */
/* Workers.                                                                            */

static gw_jobs_worker *worker_find(gw_jobs *j, const gw_worker *w, size_t *index)
{
    for (size_t i = 0; i < j->nworkers; i++)
        if (j->workers[i]->w == w) {
            if (index)
                *index = i;
            return j->workers[i];
        }
    return NULL;
}

static bool runs_task(const gw_jobs_worker *jw, const gw_jobs_task *t)
{
    for (size_t i = 0; i < jw->ntasks; i++)
        if (jw->tasks[i] == t)
            return true;
    return false;
}

static void pump_worker(void *data, gw_worker *w);

static void worker_joined(void *data, gw_worker *w, const br_ready *r)
{
    gw_jobs *j = data;
    if (r->ntasks == 0)
        return;
    if (j->nworkers == j->workers_cap) {
        size_t cap = j->workers_cap ? j->workers_cap * 2 : 16;
        gw_jobs_worker **grown = realloc(j->workers, cap * sizeof(*grown));
        if (!grown) {
            gw_log(GW_LOG_ERROR, "jobs", "worker %s: out of memory: it gets no jobs", w->id);
            return;
        }
        j->workers = grown;
        j->workers_cap = cap;
    }
    gw_jobs_worker *jw = calloc(1, sizeof(*jw) + r->ntasks * sizeof(gw_jobs_task *));
    if (!jw) {
        gw_log(GW_LOG_ERROR, "jobs", "worker %s: out of memory: it gets no jobs", w->id);
        return;
    }
    jw->w = w;
    jw->tasks = (gw_jobs_task **)(jw + 1);
    gw_list_init(&jw->leased);
    for (uint32_t i = 0; i < r->ntasks; i++) {
        gw_jobs_task *t = gw__jobs_task_get(j, r->tasks[i]);
        if (!t)
            gw_log(GW_LOG_WARN, "jobs", "worker %s: task %.*s refused (bad name or too many tasks)",
                   w->id, (int)r->tasks[i].len, r->tasks[i].ptr);
        else if (!runs_task(jw, t))
            jw->tasks[jw->ntasks++] = t;
    }
    j->workers[j->nworkers++] = jw;
    pump_worker(j, w);
}

static void worker_gone(void *data, gw_worker *w)
{
    gw_jobs *j = data;
    size_t index;
    gw_jobs_worker *jw = worker_find(j, w, &index);
    if (!jw)
        return;
    j->workers[index] = j->workers[--j->nworkers];
    while (!gw_list_empty(&jw->leased)) {
        gw_job *job = GW_CONTAINER_OF(jw->leased.next, gw_job, link);
        gw_list_remove(&job->link);
        gw_deadline_heap_remove(&j->leases, &job->timer);
        job->holder = NULL;
        gw__jobs_attempt_ended(j, job, BR_JOB_RETRY, (br_str){0},
                               br_str_c("the worker went away while running it"), true);
    }
    /* The jobs it held go to the other workers of their tasks now.  A worker is only
     * given jobs of the tasks it announced, so those are the queues to pump - however
     * many jobs it held, and in whatever order of tasks. */
    for (size_t i = 0; i < jw->ntasks; i++)
        gw__jobs_pump_task(j, jw->tasks[i]);
    free(jw);
}

void gw__jobs_workers_free(gw_jobs *j)
{
    for (size_t i = 0; i < j->nworkers; i++) {
        gw_jobs_worker *jw = j->workers[i];
        while (!gw_list_empty(&jw->leased))
            gw_list_remove(jw->leased.next);
        free(jw);
    }
    free(j->workers);
    j->workers = NULL;
    j->nworkers = j->workers_cap = 0;
}

/* ---------------------------------------------------------------------------------- */
/* Sending.                                                                            */

/* Leases job to jw with a JOB message.  0 or gw_broker_send_job's error. */
static int job_send(gw_jobs *j, gw_job *job, gw_jobs_worker *jw)
{
    char id[JOB_ID_CHARS];
    snprintf(id, sizeof(id), "%llu", (unsigned long long)job->id);
    br_job m = {.job_id = br_str_c(id),
                .task = br_str_c(job->task->name),
                .payload = job->payload,
                .attempt = job->attempts + 1,
                .lease_ms = j->cfg.lease_ms};
    int rc = gw_broker_send_job(j->broker, jw->w, &m);
    if (rc != 0)
        return rc;
    gw_list_remove(&job->link);
    job->task->nready--;
    job->attempts++;
    job->status = GW_JOB_RUNNING;
    job->holder = jw;
    gw_list_push_back(&jw->leased, &job->link);
    jw->nleased++;
    job->timer.when = (uint64_t)(gw__jobs_now_ms() + j->cfg.lease_ms);
    if (gw_deadline_heap_push(&j->leases, &job->timer) != 0)
        gw_log(GW_LOG_WARN, "jobs", "job %llu: lease heap full: its lease will not expire",
               (unsigned long long)job->id);
    return 0;
}

/* Sends the first due job of t to jw.  True when the job left the ready queue - sent,
 * or dead because it can never be sent - so that the caller goes on with the next
 * one; false when the worker took nothing. */
static bool send_one(gw_jobs *j, gw_jobs_task *t, gw_jobs_worker *jw)
{
    gw_job *job = GW_CONTAINER_OF(t->ready.next, gw_job, link);
    int rc = job_send(j, job, jw);
    if (rc == 0)
        return true;
    if (gw_broker_send_failed(rc))
        return false;
    /* It cannot be encoded (a payload past the limits): it never will be. */
    gw_list_remove(&job->link);
    t->nready--;
    job->attempts = j->cfg.max_attempts;
    gw__jobs_attempt_ended(j, job, BR_JOB_FATAL, (br_str){0},
                           br_str_c("the job cannot be sent to a worker"), false);
    return true;
}

/* The live worker running t with the most credit, or NULL. */
static gw_jobs_worker *pick(gw_jobs *j, const gw_jobs_task *t)
{
    gw_jobs_worker *best = NULL;
    for (size_t i = 0; i < j->nworkers; i++) {
        gw_jobs_worker *jw = j->workers[i];
        if (jw->w->credit > 0 && gw_worker_live(jw->w) && runs_task(jw, t) &&
            (!best || jw->w->credit > best->w->credit))
            best = jw;
    }
    return best;
}

void gw__jobs_pump_task(gw_jobs *j, gw_jobs_task *t)
{
    while (!gw_list_empty(&t->ready) && !j->closing && gw_broker_accepting(j->broker)) {
        gw_jobs_worker *jw = pick(j, t);
        if (!jw)
            return;
        send_one(j, t, jw);
    }
}

/* The credit hook: w may have credit; hands it due jobs of its tasks. */
static void pump_worker(void *data, gw_worker *w)
{
    gw_jobs *j = data;
    gw_jobs_worker *jw = worker_find(j, w, NULL);
    if (!jw || j->closing)
        return;
    /* Round robin over its tasks, so that one busy task does not starve the others. */
    bool sent = true;
    while (sent && w->credit > 0 && gw_worker_live(w)) {
        sent = false;
        for (size_t i = 0; i < jw->ntasks && w->credit > 0 && gw_worker_live(w); i++)
            if (!gw_list_empty(&jw->tasks[i]->ready) && send_one(j, jw->tasks[i], jw))
                sent = true;
    }
}

/* ---------------------------------------------------------------------------------- */
/* Leases and results.                                                                 */

void gw__jobs_lease_expired(gw_jobs *j, gw_job *job)
{
    gw_jobs_worker *jw = job->holder;
    gw_deadline_heap_remove(&j->leases, &job->timer);
    gw_list_remove(&job->link);
    job->holder = NULL;
    if (jw) {
        jw->nleased--;
        jw->stale++;
    }
    gw_log(GW_LOG_WARN, "jobs", "job %llu: lease of %u ms expired at worker %s; requeued",
           (unsigned long long)job->id, j->cfg.lease_ms, jw ? jw->w->id : "?");
    gw__jobs_attempt_ended(j, job, BR_JOB_RETRY, (br_str){0}, br_str_c("lease expired"), true);
    gw__jobs_pump_task(j, job->task);
}

/* The job a message names, if it is leased to w. */
static gw_job *leased_job(gw_jobs *j, gw_worker *w, br_str id_text)
{
    uint64_t id = 0;
    if (id_text.len == 0 || id_text.len >= JOB_ID_CHARS)
        return NULL;
    for (uint32_t i = 0; i < id_text.len; i++) {
        char c = id_text.ptr[i];
        if (c < '0' || c > '9' || id > (UINT64_MAX - 9) / 10)
            return NULL;
        id = id * 10 + (uint64_t)(c - '0');
    }
    gw_job *job = gw__jobs_find(j, id);
    return job && job->holder && job->holder->w == w ? job : NULL;
}

static bool on_ack(void *data, gw_worker *w, const br_job_ack *m)
{
    /* Nothing to change: the lease runs from the JOB.  An ACK for a job not leased
     * to w is stale, and ignored like one. */
    return leased_job(data, w, m->job_id) != NULL;
}

static gw_job_settle on_result(void *data, gw_worker *w, const br_job_result *m)
{
    gw_jobs *j = data;
    gw_jobs_worker *jw = worker_find(j, w, NULL);
    if (!jw)
        return GW_JOB_SETTLE_UNKNOWN;
    gw_job *job = leased_job(j, w, m->job_id);
    if (!job) {
        if (jw->stale == 0)
            return GW_JOB_SETTLE_UNKNOWN; /* credit for nothing we sent */
        jw->stale--; /* an expired lease's late result: only its credit counts */
        return GW_JOB_SETTLE_LATE;
    }
    gw_list_remove(&job->link);
    gw_deadline_heap_remove(&j->leases, &job->timer);
    job->holder = NULL;
    jw->nleased--;
    gw__jobs_attempt_ended(j, job, m->outcome, m->result, m->error, false);
    /* Requeued at once (a lost attempt): other workers with credit may take it now;
     * w's own credit comes back after this returns, and with it the credit hook. */
    if (job->status == GW_JOB_QUEUED)
        gw__jobs_pump_task(j, job->task);
    return GW_JOB_SETTLE_DONE;
}

const gw_broker_hooks gw__jobs_hooks = {
    .worker_joined = worker_joined,
    .worker_gone = worker_gone,
    .credit = pump_worker,
    .job_ack = on_ack,
    .job_result = on_result,
    .reply_jobs = gw__jobs_reply_hold,
};
