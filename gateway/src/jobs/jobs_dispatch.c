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

/* True when READY r marks `task` public. */
static bool marked_public(const br_ready *r, br_str task)
{
    for (uint32_t i = 0; i < r->npublic_tasks; i++)
        if (r->public_tasks[i].len == task.len &&
            memcmp(r->public_tasks[i].ptr, task.ptr, task.len) == 0)
            return true;
    return false;
}

/* Adds t to what jw runs. */
static void add_task(gw_jobs_worker *jw, gw_jobs_task *t, bool pub)
{
    jw->is_public[jw->ntasks] = pub;
    jw->tasks[jw->ntasks++] = t;
}

/* Keeps a name refused while the table was full, to declare it once there is room.
 * False when it cannot be kept. */
static bool wait_for_room(gw_jobs_worker *jw, br_str name, bool pub)
{
    char *copy = malloc(name.len + 1);
    if (!copy)
        return false;
    memcpy(copy, name.ptr, name.len);
    copy[name.len] = '\0';
    jw->waiting_public[jw->nwaiting] = pub;
    jw->waiting[jw->nwaiting++] = copy;
    return true;
}

/* Takes w's announced tasks: at most GW_JOBS_WORKER_TASKS_MAX of them (the rest are
 * refused), each declared if the table has room and otherwise kept waiting for room.
 * What is refused or waits is logged once. */
static void declare_tasks(gw_jobs *j, gw_jobs_worker *jw, const br_ready *r)
{
    uint32_t refused = 0, waiting = 0;
    for (uint32_t i = 0; i < r->ntasks; i++) {
        bool dup = false;
        for (size_t k = 0; k < jw->ntasks && !dup; k++)
            dup = br_str_eq(r->tasks[i], jw->tasks[k]->name);
        for (size_t k = 0; k < jw->nwaiting && !dup; k++)
            dup = br_str_eq(r->tasks[i], jw->waiting[k]);
        if (dup)
            continue;
        bool pub = marked_public(r, r->tasks[i]);
        gw_jobs_task *t = NULL;
        bool room = jw->ntasks + jw->nwaiting < GW_JOBS_WORKER_TASKS_MAX;
        if (room && r->tasks[i].len > 0 && r->tasks[i].len <= GW_JOBS_NAME_MAX) {
            t = gw__jobs_task_declare(j, r->tasks[i], pub);
            if (t) {
                add_task(jw, t, pub);
                continue;
            }
            if (wait_for_room(jw, r->tasks[i], pub)) {
                waiting++;
                continue;
            }
        }
        if (refused++ == 0)
            gw_log(GW_LOG_WARN, "jobs",
                   "worker %s: task %.*s refused (a bad name, or past %u tasks from one worker)",
                   jw->w->id, (int)(r->tasks[i].len < 64 ? r->tasks[i].len : 64), r->tasks[i].ptr,
                   GW_JOBS_WORKER_TASKS_MAX);
    }
    if (refused > 1)
        gw_log(GW_LOG_WARN, "jobs", "worker %s: %u of its %u tasks refused", jw->w->id, refused,
               r->ntasks);
    if (waiting > 0)
        gw_log(GW_LOG_WARN, "jobs",
               "worker %s: %u tasks wait for room: %u tasks exist, the most there may be",
               jw->w->id, waiting, GW_JOBS_MAX_TASKS);
}

void gw__jobs_workers_retry(gw_jobs *j)
{
    for (size_t i = 0; i < j->nworkers && j->nexisting < GW_JOBS_MAX_TASKS; i++) {
        gw_jobs_worker *jw = j->workers[i];
        size_t kept = 0;
        for (size_t k = 0; k < jw->nwaiting; k++) {
            gw_jobs_task *t =
                gw__jobs_task_declare(j, br_str_c(jw->waiting[k]), jw->waiting_public[k]);
            if (t) {
                add_task(jw, t, jw->waiting_public[k]);
                free(jw->waiting[k]);
            } else {
                jw->waiting_public[kept] = jw->waiting_public[k];
                jw->waiting[kept++] = jw->waiting[k];
            }
        }
        if (kept != jw->nwaiting) {
            gw_log(GW_LOG_INFO, "jobs", "worker %s: %zu waiting tasks declared", jw->w->id,
                   jw->nwaiting - kept);
            jw->nwaiting = kept;
            pump_worker(j, jw->w);
        }
    }
}

/* Frees jw and the names it kept. */
static void worker_free(gw_jobs_worker *jw)
{
    for (size_t k = 0; k < jw->nwaiting; k++)
        free(jw->waiting[k]);
    free(jw);
}

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
    /* Room for its tasks, declared or waiting: pointers first, then the flags. */
    size_t max = r->ntasks < GW_JOBS_WORKER_TASKS_MAX ? r->ntasks : GW_JOBS_WORKER_TASKS_MAX;
    gw_jobs_worker *jw = calloc(1, sizeof(*jw) + max * 2 * (sizeof(void *) + sizeof(bool)));
    if (!jw) {
        gw_log(GW_LOG_ERROR, "jobs", "worker %s: out of memory: it gets no jobs", w->id);
        return;
    }
    jw->w = w;
    jw->tasks = (gw_jobs_task **)(jw + 1);
    jw->waiting = (char **)(jw->tasks + max);
    jw->is_public = (bool *)(jw->waiting + max);
    jw->waiting_public = jw->is_public + max;
    gw_list_init(&jw->leased);
    declare_tasks(j, jw, r);
    gw__jobs_schedules_declare(j, r);
    j->workers[j->nworkers++] = jw;
    pump_worker(j, w);
}

static void worker_gone(void *data, gw_worker *w)
{
    gw_jobs *j = data;
    gw__jobs_flow_worker_gone(j, w);
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
        job->task->nrunning--;
        gw__jobs_attempt_ended(j, job, BR_JOB_RETRY, (br_str){0},
                               br_str_c("the worker went away while running it"), true);
    }
    /* Its tasks may start their grace period; the jobs it held go to the other
     * workers of their tasks now.  A worker is only given jobs of the tasks it
     * announced, so those are the queues to pump - however many jobs it held, and in
     * whatever order of tasks.  (A task only retires on the timer, so none is freed
     * here.) */
    for (size_t i = 0; i < jw->ntasks; i++)
        gw__jobs_task_undeclare(j, jw->tasks[i], jw->is_public[i]);
    for (size_t i = 0; i < jw->ntasks; i++)
        gw__jobs_pump_task(j, jw->tasks[i]);
    worker_free(jw);
}

void gw__jobs_workers_free(gw_jobs *j)
{
    for (size_t i = 0; i < j->nworkers; i++) {
        gw_jobs_worker *jw = j->workers[i];
        while (!gw_list_empty(&jw->leased))
            gw_list_remove(jw->leased.next);
        worker_free(jw);
    }
    free(j->workers);
    j->workers = NULL;
    j->nworkers = j->workers_cap = 0;
}

/* ---------------------------------------------------------------------------------- */
/* Sending.                                                                            */

/* Leases job to jw with a JOB message.  0 or gw_broker_send_job's error.  The payload
 * leaves memory with the JOB: the store has it for a rerun. */
static int job_send(gw_jobs *j, gw_job *job, gw_jobs_worker *jw)
{
    br_job m = {.job_id = {job->id, job->id_len},
                .task = br_str_c(job->task->name),
                .payload = job->payload,
                .attempt = job->attempts + 1,
                .lease_ms = gw__jobs_lease_ms(j, job->task),
                .identity = job->identity};
    int rc = gw_broker_send_job(j->broker, jw->w, &m);
    if (rc != 0)
        return rc;
    gw_list_remove(&job->link);
    job->task->nready--;
    gw__jobs_payload_drop(j, job);
    job->attempts++;
    job->status = GW_JOB_RUNNING;
    job->holder = jw;
    job->task->nrunning++;
    job->sent_ms = gw__jobs_now_ms();
    gw__jobs_hist_observe(&job->task->queue_latency, job->sent_ms - job->run_at_ms);
    gw_list_push_back(&jw->leased, &job->link);
    jw->nleased++;
    job->timer.when = (uint64_t)(job->sent_ms + gw__jobs_lease_ms(j, job->task));
    if (gw_deadline_heap_push(&j->leases, &job->timer) != 0)
        gw_log(GW_LOG_WARN, "jobs", "job %s: lease heap full: its lease will not expire", job->id);
    if (job->task->policy.rate > 0)
        job->task->tokens -= 1;
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
    gw__jobs_payload_drop(j, job);
    job->attempts = j->cfg.max_attempts;
    gw__jobs_attempt_ended(j, job, BR_JOB_FATAL, (br_str){0},
                           br_str_c("the job cannot be sent to a worker"), false);
    return true;
}

/* Rate limits: a token bucket per task, refilled at policy.rate per second and
 * holding at most one second's worth (at least one token).  The gateway is the one
 * place that sends JOBs, so the limit holds across all the task's workers. */
static bool may_send(gw_jobs *j, gw_jobs_task *t)
{
    double rate = t->policy.rate;
    if (rate <= 0)
        return true;
    int64_t now = gw__jobs_now_ms();
    double cap = rate > 1 ? rate : 1;
    t->tokens += (double)(now - t->tokens_ms) * rate / 1000.0;
    if (t->tokens > cap)
        t->tokens = cap;
    t->tokens_ms = now;
    if (t->tokens >= 1)
        return true;
    j->rate_waiting = true; /* the tick tries again */
    return false;
}

bool gw__jobs_rate_waiting(gw_jobs *j, gw_jobs_task *t)
{
    (void)j;
    return t->policy.rate > 0 && t->nready > 0;
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

bool gw__jobs_task_has_worker(gw_jobs *j, const gw_jobs_task *t)
{
    for (size_t i = 0; i < j->nworkers; i++)
        if (gw_worker_live(j->workers[i]->w) && runs_task(j->workers[i], t))
            return true;
    return false;
}

void gw__jobs_pump_task(gw_jobs *j, gw_jobs_task *t)
{
    while (!gw_list_empty(&t->ready) && !j->closing && gw_broker_accepting(j->broker) &&
           may_send(j, t)) {
        gw_jobs_worker *jw = pick(j, t);
        if (!jw)
            break;
        send_one(j, t, jw);
    }
    gw__jobs_refill(j, t);
}

/* The credit hook: w may have credit; hands it due jobs of its tasks. */
static void pump_worker(void *data, gw_worker *w)
{
    gw_jobs *j = data;
    gw_jobs_worker *jw = worker_find(j, w, NULL);
    if (!jw || j->closing)
        return;
    /* The highest priority first; round robin among equals, so that one busy task
     * does not starve the others; a task out of tokens waits. */
    while (w->credit > 0 && gw_worker_live(w) && jw->ntasks > 0) {
        size_t best = jw->ntasks;
        for (size_t k = 0; k < jw->ntasks; k++) {
            size_t i = (jw->next + k) % jw->ntasks;
            gw_jobs_task *t = jw->tasks[i];
            if (!gw_list_empty(&t->ready) &&
                (best == jw->ntasks || t->policy.priority > jw->tasks[best]->policy.priority) &&
                may_send(j, t))
                best = i;
        }
        if (best == jw->ntasks || !send_one(j, jw->tasks[best], jw))
            break;
        jw->next = best + 1;
    }
    /* Due jobs whose payloads wait in the store are read back for it. */
    for (size_t i = 0; i < jw->ntasks; i++)
        gw__jobs_refill(j, jw->tasks[i]);
}

/* ---------------------------------------------------------------------------------- */
/* Leases and results.                                                                 */

void gw__jobs_lease_expired(gw_jobs *j, gw_job *job)
{
    gw_jobs_worker *jw = job->holder;
    gw_deadline_heap_remove(&j->leases, &job->timer);
    gw_list_remove(&job->link);
    job->holder = NULL;
    job->held = false;
    job->task->nrunning--;
    if (jw) {
        jw->nleased--;
        jw->stale++;
    }
    gw_log(GW_LOG_WARN, "jobs", "job %s: lease of %u ms expired at worker %s; requeued", job->id,
           gw__jobs_lease_ms(j, job->task), jw ? jw->w->id : "?");
    gw__jobs_attempt_ended(j, job, BR_JOB_RETRY, (br_str){0}, br_str_c("lease expired"), true);
    gw__jobs_pump_task(j, job->task);
}

/* The job a message names, if it is leased to w. */
static gw_job *leased_job(gw_jobs *j, gw_worker *w, br_str id)
{
    gw_job *job = gw__jobs_find(j, id);
    return job && job->holder && job->holder->w == w ? job : NULL;
}

void gw__jobs_send_cancel(gw_jobs *j, gw_job *job)
{
    if (!job->holder)
        return;
    int rc = gw_broker_send_job_cancel(j->broker, job->holder->w, (br_str){job->id, job->id_len});
    if (rc != 0)
        gw_log(GW_LOG_WARN, "jobs", "job %s: JOB_CANCEL to worker %s not sent: %s", job->id,
               job->holder->w->id, br_strerror(rc));
}

/* JOB_PROGRESS: the worker is running the job - its lease starts again from now - and
 * may say how far it got. */
static bool on_progress(void *data, gw_worker *w, const br_job_progress *m)
{
    gw_jobs *j = data;
    gw_job *job = leased_job(j, w, m->job_id);
    if (!job)
        return false;
    gw_deadline_heap_remove(&j->leases, &job->timer);
    job->timer.when = (uint64_t)(gw__jobs_now_ms() + gw__jobs_lease_ms(j, job->task));
    if (gw_deadline_heap_push(&j->leases, &job->timer) != 0)
        gw_log(GW_LOG_WARN, "jobs", "job %s: lease heap full: its lease will not expire", job->id);
    if (m->has_progress)
        job->progress = (float)(m->progress < 0 ? 0 : m->progress > 1 ? 1 : m->progress);
    if (m->note.len > 0) {
        uint32_t len = m->note.len < GW_JOBS_NOTE_MAX ? m->note.len : GW_JOBS_NOTE_MAX;
        char *note = malloc(len + 1);
        if (note) {
            memcpy(note, m->note.ptr, len);
            note[len] = '\0';
            free(job->note);
            job->note = note;
        }
    }
    return true;
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
    job->task->nrunning--;
    gw__jobs_hist_observe(&job->task->run_time, gw__jobs_now_ms() - job->sent_ms);
    gw__jobs_attempt_ended(j, job, m->outcome, m->result, m->error, false);
    /* Requeued at once (a lost attempt): other workers with credit may take it now;
     * w's own credit comes back after this returns, and with it the credit hook. */
    if (job->status == GW_JOB_QUEUED)
        gw__jobs_pump_task(j, job->task);
    return GW_JOB_SETTLE_DONE;
}

void gw__jobs_timeouts(gw_jobs *j, int64_t now)
{
    for (size_t i = 0; i < j->nworkers; i++)
        for (gw_list *l = j->workers[i]->leased.next; l != &j->workers[i]->leased; l = l->next) {
            gw_job *job = GW_CONTAINER_OF(l, gw_job, link);
            uint32_t timeout = job->task->policy.timeout_ms;
            if (timeout && !job->timed_out && now - job->sent_ms > (int64_t)timeout) {
                job->timed_out = true;
                gw_log(GW_LOG_WARN, "jobs", "job %s: ran past its timeout of %u ms; cancelling",
                       job->id, timeout);
                gw__jobs_send_cancel(j, job);
            }
        }
}

/* TASK_POLICY: what w says of the tasks it announced becomes their policy (the last
 * worker to say wins: a task's workers are expected to run the same code). */
static void on_policy(void *data, gw_worker *w, const br_task_policies *m)
{
    gw_jobs *j = data;
    gw_jobs_worker *jw = worker_find(j, w, NULL);
    for (uint32_t i = 0; jw && i < m->npolicies; i++) {
        const br_task_policy *p = &m->policies[i];
        for (size_t k = 0; k < jw->ntasks; k++) {
            gw_jobs_task *t = jw->tasks[k];
            if (!br_str_eq(p->task, t->name))
                continue;
            /* A new rate starts with a full bucket; the same rate from another worker
             * of the task leaves the bucket as it is. */
            if (t->policy.rate != p->rate) {
                t->tokens = p->rate > 1 ? p->rate : 1;
                t->tokens_ms = gw__jobs_now_ms();
            }
            t->policy = *p;
            t->policy.task = (br_str){NULL, 0};
            gw_log(GW_LOG_INFO, "jobs",
                   "task %s: max attempts %u, backoff %u..%u ms, lease %u ms, queue limit %u, "
                   "timeout %u ms, priority %d, rate %g/s (0: the gateway's)",
                   t->name, p->max_attempts, p->backoff_ms, p->backoff_cap_ms, p->lease_ms,
                   p->queue_limit, p->timeout_ms, (int)p->priority, p->rate);
        }
    }
}

const gw_broker_hooks gw__jobs_hooks = {
    .worker_joined = worker_joined,
    .worker_gone = worker_gone,
    .credit = pump_worker,
    .job_ack = on_ack,
    .job_result = on_result,
    .reply_jobs = gw__jobs_reply_hold,
    .job_progress = on_progress,
    .task_policy = on_policy,
    .workflow = gw__jobs_flow_submit,
    .takes_handoffs = gw__jobs_takes_handoffs,
    .job_handoff = gw__jobs_on_handoff,
};
