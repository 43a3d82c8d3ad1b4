/*
 * jobs_handoff.c - JOB_HANDOFF: jobs another gateway of a shared queue gave to a
 * worker, told to this one once that gateway is gone (PROTOCOL.md 5.22, docs/jobs.md
 * "Several gateways on one PostgreSQL queue").
 *
 * A worker whose broker fell silent keeps running the jobs it got from it, and sends
 * what becomes of them - still running, or ended with a result - to the other brokers
 * it is registered with that confirmed BR_FEATURE_JOB_HANDOFF.  The job belongs to the
 * dead gateway until a survivor adopts it, so a handoff is applied only here, and only
 * to a job at the attempt the worker runs:
 *
 *   - a job this gateway holds queued (adopted, not sent again yet) at that attempt:
 *     an ended attempt ends it here as if its JOB_RESULT had come (its workflow goes
 *     on); a running one is held - RUNNING without a worker of ours, its lease renewed
 *     by each handoff, requeued if they stop - so that it is not sent again;
 *   - a job held that way: the same, at its attempt;
 *   - a job this gateway does not hold (not adopted yet): the handoff is parked, and
 *     applied when the job comes in with its owner's other jobs (on_adopted), or
 *     dropped after the job's lease without news.
 *
 * Anything else - a job sent again already, finished, or at another attempt - is
 * dropped: the job runs again or ran already, at-least-once as before.  The attempt a
 * store row shows is the count before the run in flight (JOB.attempt - 1: a JOB is
 * not written), and a job requeued in memory after a lost lease counts the lost
 * attempt: both match.  A failed job counts the attempt that failed: only the next
 * one matches.
 */
#include <stdlib.h>
#include <string.h>

#include "jobs_int.h"

/* One parked handoff: a job not held here yet. */
typedef struct gw_jobs_parked {
    gw_list link;               /* in jobs->parked, oldest news first */
    char id[GW_JOB_ID_MAX + 1]; /* the job's id */
    uint8_t id_len;             /* its length */
    uint32_t attempt;           /* JOB.attempt of the run */
    bool ended;                 /* the attempt ended (outcome, result, error) */
    uint8_t outcome;            /* br_job_outcome */
    br_str result;              /* owned copy, maybe empty */
    br_str error;               /* owned copy, maybe empty */
    int64_t heard_ms;           /* wall clock of the last handoff */
} gw_jobs_parked;

bool gw__jobs_takes_handoffs(void *data)
{
    return gw__jobs_shared(data);
}

static size_t parked_size(const gw_jobs_parked *p)
{
    return sizeof(*p) + p->result.len + p->error.len;
}

static void parked_free(gw_jobs *j, gw_jobs_parked *p)
{
    gw_list_remove(&p->link);
    j->nparked--;
    j->parked_bytes -= parked_size(p);
    free((void *)p->result.ptr);
    free((void *)p->error.ptr);
    free(p);
}

static gw_jobs_parked *parked_find(gw_jobs *j, br_str id)
{
    for (gw_list *l = j->parked.next; l != &j->parked; l = l->next) {
        gw_jobs_parked *p = GW_CONTAINER_OF(l, gw_jobs_parked, link);
        if (p->id_len == id.len && memcmp(p->id, id.ptr, id.len) == 0)
            return p;
    }
    return NULL;
}

static br_str copy_of(br_str s, bool *ok)
{
    if (s.len == 0)
        return (br_str){0};
    char *c = malloc(s.len);
    if (!c) {
        *ok = false;
        return (br_str){0};
    }
    memcpy(c, s.ptr, s.len);
    return (br_str){c, s.len};
}

/* Keeps m for a job not held here (replacing older news of it).  False when it cannot
 * be kept (limits, memory): the job then runs again once adopted. */
static bool park(gw_jobs *j, const br_job_handoff *m)
{
    if (m->job_id.len == 0 || m->job_id.len > GW_JOB_ID_MAX)
        return false;
    gw_jobs_parked *old = parked_find(j, m->job_id);
    if (old && old->ended && !m->ended && old->attempt == m->attempt)
        return true; /* the result is kept: news that it ran is older */
    if (old)
        parked_free(j, old);
    uint32_t error_len = m->error.len < GW_JOBS_ERROR_MAX ? m->error.len : GW_JOBS_ERROR_MAX;
    size_t size = sizeof(gw_jobs_parked) + m->result.len + error_len;
    if (j->nparked >= GW_JOBS_PARKED_MAX || j->parked_bytes + size > GW_JOBS_PARKED_BYTES) {
        gw_log(GW_LOG_WARN, "jobs", "job %.*s: handoff not kept (%zu parked, %zu bytes)",
               (int)m->job_id.len, m->job_id.ptr, j->nparked, j->parked_bytes);
        return false;
    }
    gw_jobs_parked *p = calloc(1, sizeof(*p));
    bool ok = p != NULL;
    if (p) {
        p->result = m->ended ? copy_of(m->result, &ok) : (br_str){0};
        p->error = m->ended ? copy_of((br_str){m->error.ptr, error_len}, &ok) : (br_str){0};
    }
    if (!ok) {
        if (p) {
            free((void *)p->result.ptr);
            free((void *)p->error.ptr);
            free(p);
        }
        return false;
    }
    memcpy(p->id, m->job_id.ptr, m->job_id.len);
    p->id_len = (uint8_t)m->job_id.len;
    p->attempt = m->attempt;
    p->ended = m->ended;
    p->outcome = m->outcome;
    p->heard_ms = gw__jobs_now_ms();
    gw_list_push_back(&j->parked, &p->link);
    j->nparked++;
    j->parked_bytes += parked_size(p);
    return true;
}

/* The lease of a held job starts again from now. */
static void hold_renew(gw_jobs *j, gw_job *job)
{
    if (gw_deadline_pending(&job->timer))
        gw_deadline_heap_remove(&j->leases, &job->timer);
    job->timer.when = (uint64_t)(gw__jobs_now_ms() + gw__jobs_lease_ms(j, job->task));
    if (gw_deadline_heap_push(&j->leases, &job->timer) != 0)
        gw_log(GW_LOG_WARN, "jobs", "job %s: lease heap full: its lease will not expire", job->id);
}

/* Applies news of attempt `attempt` of job.  True when it was for this job's attempt
 * (applied), false when the job moved on (sent again, finished, another attempt). */
static bool apply(gw_jobs *j, gw_job *job, uint32_t attempt, bool ended, uint8_t outcome,
                  br_str result, br_str error)
{
    if (job->held && job->status == GW_JOB_RUNNING && job->attempts == attempt) {
        if (!ended) {
            hold_renew(j, job);
            return true;
        }
        gw_deadline_heap_remove(&j->leases, &job->timer);
        job->held = false;
        job->task->nrunning--;
    } else if ((job->status == GW_JOB_QUEUED || job->status == GW_JOB_FAILED) && job->durable &&
               !job->loading && !job->holder && !job->held &&
               (attempt == job->attempts + 1 ||
                (attempt == job->attempts && job->status == GW_JOB_QUEUED))) {
        gw__jobs_unqueue(j, job);
        job->attempts = attempt;
        if (!ended) {
            job->status = GW_JOB_RUNNING;
            job->held = true;
            job->task->nrunning++;
            job->sent_ms = gw__jobs_now_ms();
            hold_renew(j, job);
            gw_log(GW_LOG_INFO, "jobs",
                   "job %s: attempt %u runs on at a worker of a gateway gone; held", job->id,
                   attempt);
            return true;
        }
    } else {
        return false;
    }
    gw_log(GW_LOG_INFO, "jobs", "job %s: attempt %u ended at a worker of a gateway gone", job->id,
           attempt);
    gw__jobs_attempt_ended(j, job, outcome, result, error, false);
    if (job->status == GW_JOB_QUEUED)
        gw__jobs_pump_task(j, job->task);
    return true;
}

bool gw__jobs_on_handoff(void *data, gw_worker *w, const br_job_handoff *m)
{
    gw_jobs *j = data;
    (void)w;
    if (!gw__jobs_takes_handoffs(j) || j->closing)
        return false;
    gw_job *job = gw__jobs_find(j, m->job_id);
    if (job)
        return apply(j, job, m->attempt, m->ended, m->outcome, m->result, m->error);
    return park(j, m);
}

void gw__jobs_handoffs_adopted(gw_jobs *j)
{
    gw_list *l = j->parked.next;
    while (l != &j->parked) {
        gw_jobs_parked *p = GW_CONTAINER_OF(l, gw_jobs_parked, link);
        l = l->next;
        gw_job *job = gw__jobs_find(j, (br_str){p->id, p->id_len});
        if (!job)
            continue; /* another gateway's still, or not adopted yet */
        apply(j, job, p->attempt, p->ended, p->outcome, p->result, p->error);
        parked_free(j, p);
    }
}

void gw__jobs_handoffs_tick(gw_jobs *j, int64_t now)
{
    while (!gw_list_empty(&j->parked)) {
        gw_jobs_parked *p = GW_CONTAINER_OF(j->parked.next, gw_jobs_parked, link);
        if (p->heard_ms + (int64_t)j->cfg.lease_ms > now)
            break;
        parked_free(j, p);
    }
}

void gw__jobs_handoffs_free(gw_jobs *j)
{
    while (!gw_list_empty(&j->parked))
        parked_free(j, GW_CONTAINER_OF(j->parked.next, gw_jobs_parked, link));
}
