/*
 * jobs_payload.c - which job bytes memory holds, and reading the others back from the
 * store.
 *
 * The memory budget (cfg.memory) is split three ways, each part with its own count:
 *   - a quarter for payloads of jobs being written (insert_bytes): a submission that
 *     would pass it is refused (503), since its bytes must be in memory to be written;
 *   - a half for payloads of due jobs waiting for a worker (ready_bytes), and at most
 *     GW_JOBS_TASK_WINDOW of them per task, so that one task nobody runs cannot crowd
 *     the others out;
 *   - a quarter for results and errors of jobs (detail_bytes).
 * Whatever does not fit waits in the store, which holds every payload and result
 * anyway: a delayed or retrying job's payload always (it is read back when the job is
 * due), a due job's payload past its task's window (read back in batches as workers
 * take jobs), a payload once its JOB is sent (a rerun reads it back), and results past
 * their quarter (GET /jobs/{id} reads them).  A due job whose payload is in the store
 * is "spilled"; reading payloads back is a "refill".
 */
#include <stdlib.h>
#include <string.h>

#include "jobs_int.h"

/* ---------------------------------------------------------------------------------- */
/* Payloads.                                                                           */

void gw__jobs_payload_drop(gw_jobs *j, gw_job *job)
{
    size_t len = job->payload.len;
    if (job->payload_in == GW_PAYLOAD_INSERTING) {
        j->insert_bytes -= len;
    } else if (job->payload_in == GW_PAYLOAD_READY) {
        j->ready_bytes -= len;
        job->task->ready_bytes -= len;
    }
    free((void *)job->payload.ptr);
    job->payload = (br_str){NULL, 0};
    job->payload_in = GW_PAYLOAD_NONE;
}

/* True when `len` more payload bytes fit t's window and the ready half of the budget.
 * A task with nothing in its window takes one payload of any size, so that a payload
 * larger than the window still runs. */
static bool ready_fits(const gw_jobs *j, const gw_jobs_task *t, size_t len)
{
    return (t->ready_bytes == 0 || t->ready_bytes + len <= GW_JOBS_TASK_WINDOW) &&
           j->ready_bytes + len <= j->cfg.memory / 2;
}

/* Puts job (payload in memory, or empty) at the back of t's ready queue, counting its
 * payload there. */
static void make_ready(gw_jobs *j, gw_job *job)
{
    gw_jobs_task *t = job->task;
    if (job->payload_in == GW_PAYLOAD_INSERTING) {
        j->insert_bytes -= job->payload.len;
        job->payload_in = GW_PAYLOAD_NONE;
    }
    if (job->payload.len > 0 && job->payload_in == GW_PAYLOAD_NONE) {
        j->ready_bytes += job->payload.len;
        t->ready_bytes += job->payload.len;
        job->payload_in = GW_PAYLOAD_READY;
    }
    gw_list_push_back(&t->ready, &job->link);
    t->nready++;
}

void gw__jobs_spill_front(gw_jobs *j, gw_job *job)
{
    gw__jobs_payload_drop(j, job);
    gw_list_remove(&job->link);
    if (job->payload_len == 0) {
        /* Nothing to read back: it is ready as it is. */
        gw_list_push_front(&job->task->ready, &job->link);
        job->task->nready++;
        return;
    }
    gw_list_push_front(&job->task->spilled, &job->link);
    job->task->nspilled++;
}

void gw__jobs_schedule(gw_jobs *j, gw_job *job)
{
    gw_jobs_task *t = job->task;
    gw_list_remove(&job->link);
    if (job->run_at_ms > gw__jobs_now_ms() && !j->closing) {
        job->timer.when = (uint64_t)job->run_at_ms;
        if (gw_deadline_heap_push(&j->delayed, &job->timer) == 0) {
            gw__jobs_payload_drop(j, job); /* it waits in the store */
            return;
        }
        /* The heap is bounded by GW_JOBS_MAX like the jobs themselves; should it fail
         * to grow, running early beats never running. */
    }
    bool in_memory = job->payload_len == 0 || job->payload.len == job->payload_len;
    /* Jobs already waiting in the store go first: a newer one waits behind them. */
    if (in_memory && t->nspilled == 0 && t->nloading == 0 &&
        (job->payload_in == GW_PAYLOAD_READY || ready_fits(j, t, job->payload.len))) {
        make_ready(j, job);
        return;
    }
    gw__jobs_payload_drop(j, job);
    if (job->payload_len == 0) {
        make_ready(j, job);
        return;
    }
    gw_list_push_back(&t->spilled, &job->link);
    t->nspilled++;
}

/* One refill: the jobs whose payloads are being read, in spilled order. */
typedef struct refill {
    gw_jobs *owner;     /* the queue */
    gw_jobs_task *task; /* whose jobs */
    size_t n;           /* entries in jobs */
    size_t reserved;    /* payload bytes counted in ready_bytes for them */
    gw_job *jobs[];     /* on task->loading until the read is back */
} refill;

/* Puts the jobs of a refill that failed back at the front of spilled, in order. */
static void unload(gw_jobs *j, refill *b)
{
    gw_jobs_task *t = b->task;
    for (size_t i = b->n; i-- > 0;) {
        gw_job *job = b->jobs[i];
        gw_list_remove(&job->link);
        t->nloading--;
        job->loading = false;
        gw_list_push_front(&t->spilled, &job->link);
        t->nspilled++;
        if (job->cancel_wanted) {
            job->cancel_wanted = false;
            gw__jobs_cancel(j, job);
        }
    }
    j->ready_bytes -= b->reserved;
    t->ready_bytes -= b->reserved;
    j->refill_wanted = true; /* the next tick tries again */
}

static void on_loaded(void *arg, int status, const gw_job_row *rows, size_t n)
{
    refill *b = arg;
    gw_jobs *j = b->owner;
    gw_jobs_task *t = b->task;
    if (status != 0 || n != b->n) {
        gw_log(GW_LOG_ERROR, "jobs", "task %s: reading %zu payloads back failed: %s", t->name, b->n,
               br_strerror(status));
        unload(j, b);
        free(b);
        return;
    }
    /* The reservation ends; each payload is counted as it joins the ready queue. */
    j->ready_bytes -= b->reserved;
    t->ready_bytes -= b->reserved;
    for (size_t i = 0; i < b->n; i++) {
        gw_job *job = b->jobs[i];
        gw_list_remove(&job->link);
        t->nloading--;
        job->loading = false;
        if (job->cancel_wanted) {
            /* DELETE came while its payload was read: it ends here, from spilled. */
            job->cancel_wanted = false;
            gw_list_push_back(&t->spilled, &job->link);
            t->nspilled++;
            gw__jobs_cancel(j, job);
            continue;
        }
        br_str p = rows[i].payload;
        if (rows[i].seq == 0) {
            /* The store lost the row: the job can never run. */
            gw__jobs_attempt_ended(j, job, BR_JOB_FATAL, (br_str){0},
                                   br_str_c("its payload is missing from the store"), false);
            continue;
        }
        char *copy = p.len && t->state != GW_TASK_RETIRED ? malloc(p.len) : NULL;
        if (p.len && !copy) {
            /* Out of memory, or its task retired meanwhile (no worker will take it):
             * it waits in the store. */
            gw_list_push_back(&t->spilled, &job->link);
            t->nspilled++;
            j->refill_wanted = j->refill_wanted || t->state != GW_TASK_RETIRED;
            continue;
        }
        if (p.len)
            memcpy(copy, p.ptr, p.len);
        job->payload = (br_str){copy, p.len};
        job->payload_len = p.len;
        make_ready(j, job);
    }
    free(b);
    if (!j->closing)
        gw__jobs_pump_task(j, t);
}

void gw__jobs_refill(gw_jobs *j, gw_jobs_task *t)
{
    if (t->nspilled == 0 || t->nloading > 0 || j->closing)
        return;
    /* Read back only what a worker will take, and before the ready queue runs dry
     * rather than once it has. */
    if (t->nready >= GW_JOBS_LOAD_BATCH || t->ready_bytes >= GW_JOBS_TASK_WINDOW / 2 ||
        !gw__jobs_task_has_worker(j, t))
        return;
    size_t n = 0, bytes = 0;
    for (gw_list *l = t->spilled.next; l != &t->spilled && n < GW_JOBS_LOAD_BATCH; l = l->next) {
        gw_job *job = GW_CONTAINER_OF(l, gw_job, link);
        size_t len = job->payload_len;
        bool fits =
            (t->ready_bytes + bytes == 0 || t->ready_bytes + bytes + len <= GW_JOBS_TASK_WINDOW) &&
            j->ready_bytes + bytes + len <= j->cfg.memory / 2;
        if (!fits)
            break;
        n++;
        bytes += len;
    }
    if (n == 0) {
        j->refill_wanted = true; /* memory is full: the next tick tries again */
        return;
    }
    refill *b = malloc(sizeof(*b) + n * sizeof(gw_job *));
    uint64_t *seqs = malloc(n * sizeof(*seqs));
    if (!b || !seqs) {
        free(b);
        free(seqs);
        j->refill_wanted = true;
        return;
    }
    *b = (refill){.owner = j, .task = t, .n = n, .reserved = bytes};
    for (size_t i = 0; i < n; i++) {
        gw_job *job = GW_CONTAINER_OF(t->spilled.next, gw_job, link);
        gw_list_remove(&job->link);
        t->nspilled--;
        gw_list_push_back(&t->loading, &job->link);
        t->nloading++;
        job->loading = true;
        b->jobs[i] = job;
        seqs[i] = job->seq;
    }
    j->ready_bytes += bytes;
    t->ready_bytes += bytes;
    int rc = gw__jobs_store_read(j->store, seqs, n, GW_JOBS_READ_PAYLOAD, on_loaded, b);
    free(seqs);
    if (rc != 0) {
        unload(j, b);
        free(b);
    }
}

/* ---------------------------------------------------------------------------------- */
/* Results and errors.                                                                 */

void gw__jobs_detail_drop(gw_jobs *j, gw_job *job)
{
    j->detail_bytes -= job->result.len + job->error.len;
    free((void *)job->result.ptr);
    free((void *)job->error.ptr);
    job->result = (br_str){NULL, 0};
    job->error = (br_str){NULL, 0};
}

static int dup_str(br_str *dst, br_str s)
{
    *dst = (br_str){NULL, 0};
    if (s.len == 0)
        return 0;
    char *p = malloc(s.len);
    if (!p)
        return BR_ENOMEM;
    memcpy(p, s.ptr, s.len);
    *dst = (br_str){p, s.len};
    return 0;
}

void gw__jobs_detail_set(gw_jobs *j, gw_job *job, br_str result, br_str error)
{
    gw__jobs_detail_drop(j, job);
    if (error.len > GW_JOBS_ERROR_MAX)
        error.len = GW_JOBS_ERROR_MAX;
    size_t len = (size_t)result.len + error.len;
    job->detail_on_disk = false;
    if (len == 0)
        return;
    if (j->detail_bytes + len > j->cfg.memory / 4 || dup_str(&job->result, result) != 0 ||
        dup_str(&job->error, error) != 0) {
        free((void *)job->result.ptr);
        job->result = (br_str){NULL, 0};
        job->detail_on_disk = true; /* the store's copy is the one */
        return;
    }
    j->detail_bytes += len;
}

/* A GET's read of a result the store keeps. */
typedef struct detail_read {
    gw_jobs *owner;         /* the queue */
    gw_jobs_detail_fn done; /* the caller's callback */
    void *arg;              /* its argument */
    uint64_t seq;           /* the job, to find it again */
} detail_read;

static void on_detail(void *arg, int status, const gw_job_row *rows, size_t n)
{
    detail_read *d = arg;
    gw_jobs *j = d->owner;
    j->reads--;
    gw_job *job = gw__jobs_find_seq(j, d->seq);
    br_str result = {0}, error = {0};
    if (status == 0 && n == 1 && rows[0].seq != 0) {
        result = rows[0].result;
        error = rows[0].error;
    } else if (status == 0) {
        job = NULL; /* expired meanwhile */
    }
    d->done(d->arg, job, result, error, status);
    free(d);
}

int gw__jobs_detail_read(gw_jobs *j, gw_job *job, gw_jobs_detail_fn done, void *arg)
{
    if (j->reads >= GW_JOBS_READS_MAX)
        return BR_EFULL;
    detail_read *d = malloc(sizeof(*d));
    if (!d)
        return BR_ENOMEM;
    *d = (detail_read){.owner = j, .done = done, .arg = arg, .seq = job->seq};
    int rc = gw__jobs_store_read(j->store, &d->seq, 1, GW_JOBS_READ_DETAIL, on_detail, d);
    if (rc != 0) {
        free(d);
        return rc;
    }
    j->reads++;
    return 0;
}
