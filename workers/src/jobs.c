/*
 * jobs.c - background jobs inside a worker: the tasks announced in READY, JOB ->
 * JOB_ACK -> the task's handler -> JOB_RESULT, and jobs a reply enqueues.
 *
 * A job spends one slot of the worker's capacity, like a request: it is counted in
 * the in-flight total (so draining waits for it, and a CPU worker runs one thing at
 * a time) and its JOB_RESULT gives the broker its credit back.  A job still running
 * when a new registration starts is an orphan, as a request would be (worker_int.h):
 * its result would reach a broker that no longer leases it to us, so none is sent -
 * the slot returns with CREDIT(1) - and the broker runs the job again
 * (at-least-once).
 *
 * While a job runs, the worker renews its lease with JOB_PROGRESS on its tick
 * (br__jobs_tick): at least every third of the lease, and sooner when the handler
 * reported progress.  So a long task runs once while the worker is alive and heard
 * from; a worker that dies or hangs stops renewing, and the job runs again elsewhere.
 * A CPU task reports from its thread: the report waits in the job (under its lock)
 * for the loop's next tick.  JOB_CANCEL marks the job cancelled; the handler polls
 * br_job_cancelled or, on the loop, hears it through br_job_on_cancel.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker_int.h"

/* Longest error text sent in a JOB_RESULT. */
#define JOB_ERROR_MAX 1024
/* Task policies sent in one TASK_POLICY (the protocol's max_tasks). */
#define BR_WORKER_TASKS_POLICY_MAX 128
/* Longest progress note sent in a JOB_PROGRESS (the gateway keeps 256 bytes). */
#define JOB_NOTE_MAX 256

struct br_jobctx {
    struct br_jobctx *prev, *next; /* in the worker's job list */
    br_worker *worker;             /* the worker running it */
    const br_task_spec *spec;      /* its task */
    br_svc *svc;                   /* the service the task belongs to */
    uint64_t gen;                  /* registration it arrived under */
    uint32_t attempt;              /* JOB.attempt */
    br_str id;                     /* JOB.job_id (in data) */
    br_str task;                   /* JOB.task (in data) */
    br_str payload;                /* JOB.payload (in data) */
    bool on_thread;                /* a CPU task: the handler runs on the thread pool */
    bool ended;                    /* succeed or fail was called */
    uint8_t outcome;               /* br_job_outcome once ended */
    char *result;                  /* heap: msgpack result of a success */
    size_t result_len;             /* bytes at result */
    char error[JOB_ERROR_MAX];     /* error text of a failure */
    uv_work_t work;                /* the thread-pool job of a CPU task */
    uint32_t lease_ms;             /* JOB.lease_ms: renewed at least every third of it */
    uint64_t beat_at;              /* uv_now of the last JOB_PROGRESS sent (or the JOB) */
    bool handoff;                  /* its broker took JOB_HANDOFF (handoff.c) */
    uint64_t handoff_at;           /* orphan: uv_now of the last JOB_HANDOFF sent, 0: none */
    atomic_bool cancelled;         /* JOB_CANCEL arrived */
    void (*on_cancel)(br_jobctx *, void *); /* an I/O task's cancel callback, or NULL */
    void *on_cancel_arg;                    /* its argument */
    uv_mutex_t lock;                        /* guards the report below (a CPU task writes it) */
    bool report;                            /* progress or a note wait to be sent */
    double progress;                        /* reported progress, 0..1; < 0: none */
    char note[JOB_NOTE_MAX];                /* reported note, maybe "" */
    br_str identity;                        /* JOB.identity (in data) */
    char data[];                            /* id, task, payload and identity bytes */
};

static void beat(br_jobctx *jc, uint64_t now);

/* ---------------------------------------------------------------------------------- */
/* Tasks.                                                                              */

int br__jobs_init(br_worker *w)
{
    size_t n = 0, nsched = 0;
    for (size_t i = 0; i < w->reg.nservices; i++) {
        n += w->reg.services[i]->ntasks;
        for (size_t t = 0; t < w->reg.services[i]->ntasks; t++)
            nsched += w->reg.services[i]->tasks[t].nschedules;
    }
    if (n == 0)
        return 0;
    /* tasks and, behind them, public_tasks: one allocation. */
    w->tasks = calloc(2 * n, sizeof(*w->tasks));
    if (!w->tasks)
        return BR_ENOMEM;
    if (nsched > 0 && !(w->schedules = calloc(nsched, sizeof(*w->schedules)))) {
        free(w->tasks);
        w->tasks = NULL;
        return BR_ENOMEM;
    }
    w->public_tasks = w->tasks + n;
    for (size_t i = 0; i < w->reg.nservices; i++) {
        const br_service_spec *s = w->reg.services[i];
        for (size_t t = 0; t < s->ntasks; t++) {
            w->tasks[w->ntasks++] = br_str_c(s->tasks[t].name);
            if (s->tasks[t].is_public)
                w->public_tasks[w->npublic_tasks++] = br_str_c(s->tasks[t].name);
            for (size_t k = 0; k < s->tasks[t].nschedules; k++) {
                const br_schedule_spec *sc = &s->tasks[t].schedules[k];
                w->schedules[w->nschedules++] = (br_schedule_decl){
                    .name = br_str_c(sc->name),
                    .task = br_str_c(s->tasks[t].name),
                    .payload = {sc->payload, sc->payload ? (uint32_t)sc->payload_len : 0},
                    .interval_ms = sc->interval_ms,
                    .cron = br_str_c(sc->cron),
                    .catch_up = sc->catch_up};
            }
        }
    }
    return 0;
}

void br__jobs_release(br_worker *w)
{
    free(w->tasks);
    free(w->schedules);
    w->tasks = NULL;
    w->schedules = NULL;
    w->nschedules = 0;
    w->public_tasks = NULL;
    w->ntasks = 0;
    w->npublic_tasks = 0;
}

/* The task called name, or NULL; *svc receives its service's index. */
static const br_task_spec *task_find(const br_worker *w, br_str name, size_t *svc)
{
    for (size_t i = 0; i < w->reg.nservices; i++) {
        const br_service_spec *s = w->reg.services[i];
        for (size_t t = 0; t < s->ntasks; t++) {
            if (br_str_eq(name, s->tasks[t].name)) {
                *svc = i;
                return &s->tasks[t];
            }
        }
    }
    return NULL;
}

/* ---------------------------------------------------------------------------------- */
/* Results.                                                                            */

/* JOB_RESULT for a job that never got a context. */
static void result_now(br_worker *w, br_str id, uint8_t outcome, const char *error)
{
    br_msg m = {.type = BR_MSG_JOB_RESULT,
                .u.job_result = {.job_id = id, .outcome = outcome, .error = br_str_c(error)}};
    br__worker_send(w, &m);
}

/* The attempt ended: its result goes to the broker when the registration it came
 * under is current; an orphan gives its slot back instead.  Loop thread. */
static void complete(br_jobctx *jc)
{
    br_worker *w = jc->worker;
    br__flow_job_ended(w, jc); /* its workflows' answers are not wanted any more */
    if (jc->prev)
        jc->prev->next = jc->next;
    else
        w->jobs = jc->next;
    if (jc->next)
        jc->next->prev = jc->prev;
    w->inflight--;
    w->served++;
    if (!jc->ended) {
        jc->outcome = BR_JOB_RETRY;
        snprintf(jc->error, sizeof(jc->error), "the task returned without a result");
    }
    if (br__gen_live(w, jc->gen)) {
        /* A CPU task's last report waits for the tick: it goes before the result. */
        uv_mutex_lock(&jc->lock);
        bool report = jc->report;
        uv_mutex_unlock(&jc->lock);
        if (report)
            beat(jc, uv_now(&w->loop));
        br_msg m = {.type = BR_MSG_JOB_RESULT,
                    .u.job_result = {.job_id = jc->id,
                                     .outcome = jc->outcome,
                                     .result = {jc->result, (uint32_t)jc->result_len},
                                     .error = br_str_c(jc->error)}};
        int rc = br__worker_send_gen(w, jc->gen, &m);
        if (rc == 0 && jc->handoff)
            br__handoff_sent(w, jc->gen, jc->id, jc->attempt, jc->outcome,
                             (br_str){jc->result, (uint32_t)jc->result_len}, br_str_c(jc->error));
        if (rc == BR_ELIMIT || rc == BR_EINVAL || rc == BR_ENOMEM) {
            br_msg retry = {.type = BR_MSG_JOB_RESULT,
                            .u.job_result = {.job_id = jc->id,
                                             .outcome = BR_JOB_RETRY,
                                             .error = br_str_c("the result could not be encoded")}};
            br__worker_send_gen(w, jc->gen, &retry);
        }
    } else {
        if (jc->handoff)
            br__handoff_orphan(w, jc->gen, jc->id, jc->attempt, jc->outcome,
                               (br_str){jc->result, (uint32_t)jc->result_len}, br_str_c(jc->error));
        br__worker_orphan_done(w);
    }
    free(jc->result);
    uv_mutex_destroy(&jc->lock);
    free(jc);
    br__worker_request_done(w);
}

int br_job_succeed(br_jobctx *job, const void *result, size_t len)
{
    if (job->ended)
        return BR_EINVAL;
    job->ended = true;
    job->outcome = BR_JOB_OK;
    int rc = 0;
    if (len > BR_REPLY_BODY_MAX) {
        rc = BR_ELIMIT;
    } else if (len > 0) {
        job->result = malloc(len);
        if (job->result) {
            memcpy(job->result, result, len);
            job->result_len = len;
        } else {
            rc = BR_ENOMEM;
        }
    }
    if (rc != 0) {
        job->outcome = BR_JOB_RETRY;
        snprintf(job->error, sizeof(job->error), "result not kept: %s", br_strerror(rc));
    }
    if (!job->on_thread)
        complete(job);
    return rc;
}

int br_job_fail(br_jobctx *job, bool retry, const char *error)
{
    if (job->ended)
        return BR_EINVAL;
    job->ended = true;
    job->outcome = retry ? BR_JOB_RETRY : BR_JOB_FATAL;
    snprintf(job->error, sizeof(job->error), "%s", error ? error : "failed");
    if (!job->on_thread)
        complete(job);
    return 0;
}

/* ---------------------------------------------------------------------------------- */
/* Running.                                                                            */

static void cpu_work(uv_work_t *work)
{
    br_jobctx *jc = work->data;
    jc->spec->handler(jc);
}

static void cpu_after(uv_work_t *work, int status)
{
    (void)status; /* nothing calls uv_cancel */
    complete(work->data);
}

/* Copies s to *cursor. */
static br_str copy_in(br_str s, char **cursor)
{
    br_str out = {*cursor, s.len};
    if (s.len)
        memcpy(*cursor, s.ptr, s.len);
    (*cursor)[s.len] = '\0';
    *cursor += s.len + 1;
    return out;
}

void br__jobs_run(br_worker *w, const br_job *m)
{
    size_t svc = 0;
    const br_task_spec *spec = task_find(w, m->task, &svc);
    if (!spec) {
        result_now(w, m->job_id, BR_JOB_FATAL, "this worker does not run that task");
        return;
    }
    if (w->inflight >= w->capacity || (w->reg.kind == BR_KIND_CPU && w->inflight)) {
        /* More than the credit allows: a broken broker (the windows and the orphans
         * never add up to more than the capacity, credit.h). */
        result_now(w, m->job_id, BR_JOB_RETRY, "worker is at capacity");
        return;
    }
    br_jobctx *jc =
        calloc(1, sizeof(*jc) + m->job_id.len + m->task.len + m->payload.len + m->identity.len + 4);
    if (!jc || uv_mutex_init(&jc->lock) != 0) {
        free(jc);
        br__log("job %.*s: out of memory", (int)m->job_id.len, m->job_id.ptr);
        result_now(w, m->job_id, BR_JOB_RETRY, "worker is out of memory");
        return;
    }
    char *cursor = jc->data;
    jc->id = copy_in(m->job_id, &cursor);
    jc->task = copy_in(m->task, &cursor);
    jc->payload = copy_in(m->payload, &cursor);
    jc->identity = copy_in(m->identity, &cursor);
    jc->lease_ms = m->lease_ms;
    jc->beat_at = uv_now(&w->loop);
    jc->progress = -1;
    atomic_init(&jc->cancelled, false);
    jc->worker = w;
    jc->spec = spec;
    jc->svc = &w->svcs[svc];
    jc->attempt = m->attempt;
    jc->gen = w->gen;
    br__link *link = br__worker_link(w, w->gen);
    jc->handoff = link && link->job_handoff;
    jc->next = w->jobs;
    if (w->jobs)
        w->jobs->prev = jc;
    w->jobs = jc;
    w->inflight++;
    br_msg ack = {.type = BR_MSG_JOB_ACK, .u.job_ack = {.job_id = jc->id}};
    br__worker_send(w, &ack);
    if (w->reg.kind == BR_KIND_CPU) {
        jc->on_thread = true;
        jc->work.data = jc;
        int rc = uv_queue_work(&w->loop, &jc->work, cpu_work, cpu_after);
        if (rc != 0) {
            br__log("uv_queue_work: %s", uv_strerror(rc));
            jc->on_thread = false;
            br_job_fail(jc, true, "worker cannot start the computation");
        }
        return;
    }
    spec->handler(jc);
}

/* Sends JOB_PROGRESS for jc with what it reported (if anything).  Loop thread.  A
 * broker speaking protocol version 1 has no JOB_PROGRESS: it gets nothing (its leases
 * run from the JOB, as they always did there). */
static void beat(br_jobctx *jc, uint64_t now)
{
    if (!br_msg_type_in_version(BR_MSG_JOB_PROGRESS, br__gen_version(jc->worker, jc->gen)))
        return;
    br_msg m = {.type = BR_MSG_JOB_PROGRESS, .u.job_progress = {.job_id = jc->id}};
    char note[JOB_NOTE_MAX];
    uv_mutex_lock(&jc->lock);
    if (jc->report) {
        m.u.job_progress.has_progress = jc->progress >= 0;
        m.u.job_progress.progress = jc->progress;
        memcpy(note, jc->note, sizeof(note));
        m.u.job_progress.note = br_str_c(note);
        jc->report = false;
    }
    uv_mutex_unlock(&jc->lock);
    jc->beat_at = now;
    br__worker_send_gen(jc->worker, jc->gen, &m);
}

void br__jobs_tick(br_worker *w)
{
    uint64_t now = uv_now(&w->loop);
    for (br_jobctx *jc = w->jobs; jc; jc = jc->next) {
        if (jc->ended)
            continue;
        if (!br__gen_live(w, jc->gen)) {
            /* An orphan's lease belongs to a broker that forgot it; the gateway that
             * adopts it hears that it runs on (handoff.c). */
            if (jc->handoff && (!jc->handoff_at || now - jc->handoff_at >= jc->lease_ms / 3)) {
                br_msg m = {.type = BR_MSG_JOB_HANDOFF,
                            .u.job_handoff = {.job_id = jc->id, .attempt = jc->attempt}};
                if (br__handoff_send(w, jc->gen, &m) > 0)
                    jc->handoff_at = now;
            }
            continue;
        }
        bool report;
        uv_mutex_lock(&jc->lock);
        report = jc->report;
        uv_mutex_unlock(&jc->lock);
        if (report || now - jc->beat_at >= jc->lease_ms / 3)
            beat(jc, now);
    }
}

void br__jobs_cancel(br_worker *w, br_str id)
{
    for (br_jobctx *jc = w->jobs; jc; jc = jc->next)
        if (jc->gen == w->gen && br_str_eq(id, jc->id.ptr) && jc->id.len == id.len) {
            atomic_store(&jc->cancelled, true);
            if (jc->on_cancel && !jc->ended)
                jc->on_cancel(jc, jc->on_cancel_arg);
            return;
        }
}

int br_job_report(br_jobctx *job, double progress, const char *note)
{
    if (job->ended || (progress >= 0 && !(progress <= 1)))
        return BR_EINVAL;
    uv_mutex_lock(&job->lock);
    job->report = true;
    job->progress = progress < 0 ? -1 : progress;
    snprintf(job->note, sizeof(job->note), "%s", note ? note : "");
    uv_mutex_unlock(&job->lock);
    /* On the loop (an I/O task, maybe in a long loop of its own) it goes now; from a
     * CPU task's thread the loop's next tick sends it. */
    if (!job->on_thread)
        beat(job, uv_now(&job->worker->loop));
    return 0;
}

bool br_job_cancelled(const br_jobctx *job)
{
    return atomic_load(&((br_jobctx *)job)->cancelled);
}

void br_job_on_cancel(br_jobctx *job, void (*fn)(br_jobctx *job, void *arg), void *arg)
{
    job->on_cancel = fn;
    job->on_cancel_arg = arg;
}

br_str br_job_identity(const br_jobctx *job)
{
    return job->identity;
}

int br_job_workflow_submit(br_jobctx *job, const void *canvas, size_t len, br_workflow_fn cb,
                           void *arg)
{
    if (!job || job->on_thread || job->ended)
        return BR_EINVAL;
    /* It goes to the broker that leased the job: that gateway links the two. */
    return br__flow_send(job->worker, job->gen, NULL, job, job->id, (br_str){"", 0}, canvas, len,
                         cb, arg);
}

void br__jobs_send_policies(br_worker *w)
{
    if (!br_msg_type_in_version(BR_MSG_TASK_POLICY, br__gen_version(w, w->gen)))
        return;
    br_task_policy p[BR_WORKER_TASKS_POLICY_MAX];
    uint32_t n = 0;
    for (size_t i = 0; i < w->reg.nservices; i++) {
        const br_service_spec *s = w->reg.services[i];
        for (size_t k = 0; k < s->ntasks && n < BR_WORKER_TASKS_POLICY_MAX; k++) {
            const br_task_spec *t = &s->tasks[k];
            if (!t->max_attempts && !t->backoff_ms && !t->backoff_cap_ms && !t->lease_ms &&
                !t->queue_limit && !t->timeout_ms && !t->priority && !(t->rate > 0))
                continue;
            p[n++] =
                (br_task_policy){br_str_c(t->name), t->max_attempts, t->backoff_ms,
                                 t->backoff_cap_ms, t->lease_ms,     t->queue_limit,
                                 t->timeout_ms,     t->priority,     t->rate > 0 ? t->rate : 0};
        }
    }
    if (n == 0)
        return;
    br_msg m = {.type = BR_MSG_TASK_POLICY, .u.task_policy = {p, n}};
    br__worker_send(w, &m);
}

uint32_t br__jobs_registration_lost(br_worker *w, uint64_t gen)
{
    uint32_t n = 0;
    for (br_jobctx *jc = w->jobs; jc; jc = jc->next)
        if (jc->gen == gen)
            n++;
    return n;
}

/* ---------------------------------------------------------------------------------- */
/* Reading a job.                                                                      */

br_str br_job_id(const br_jobctx *job)
{
    return job->id;
}

br_str br_job_task(const br_jobctx *job)
{
    return job->task;
}

uint32_t br_job_attempt(const br_jobctx *job)
{
    return job->attempt;
}

br_str br_job_payload(const br_jobctx *job)
{
    return job->payload;
}

uv_loop_t *br_job_loop(const br_jobctx *job)
{
    return &job->worker->loop;
}

br_svc *br_job_svc(const br_jobctx *job)
{
    return job->svc;
}

void *br_job_data(const br_jobctx *job)
{
    return job->svc->data;
}

/* ---------------------------------------------------------------------------------- */
/* Jobs a reply enqueues.                                                              */

int br_reply_add_job(br_req *req, const char *task, const void *payload, size_t payload_len,
                     const char *idempotency_key, uint32_t delay_ms)
{
    if (!task || !*task || req->ended)
        return BR_EINVAL;
    if (req->njobs >= BR_REPLY_MAX_JOBS)
        return BR_EFULL;
    if (!req->jobs) {
        req->jobs = br_req_alloc(req, BR_REPLY_MAX_JOBS * sizeof(*req->jobs));
        if (!req->jobs)
            return BR_ENOMEM;
    }
    static const char nil = (char)0xc0;
    if (!payload || payload_len == 0) {
        payload = &nil;
        payload_len = 1;
    }
    char *p = br_req_alloc(req, payload_len);
    char *t = br_req_strdup(req, br_str_c(task));
    char *k = br_req_strdup(req, br_str_c(idempotency_key));
    if (!p || !t || !k)
        return BR_ENOMEM;
    memcpy(p, payload, payload_len);
    br_job_spec *s = &req->jobs[req->njobs++];
    s->task = br_str_c(t);
    s->payload = (br_str){p, (uint32_t)payload_len};
    s->idempotency_key = br_str_c(k);
    s->delay_ms = delay_ms;
    return 0;
}
