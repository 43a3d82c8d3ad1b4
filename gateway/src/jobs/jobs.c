/*
 * jobs.c - the job queue: jobs and tasks in memory, their rows in the store, and the
 * timer that releases delayed jobs, expires leases and deletes old jobs (see
 * jobs_int.h for where a job can be).
 *
 * Every change that must outlive the gateway is a put to the store: the new job (the
 * 202 waits for it), its end, a retry's schedule, and its deletion at expiry.  Leasing
 * a job is not written: a gateway that restarts puts every running job back in the
 * queue anyway, and skipping that write keeps one row per state change a client can
 * see.  The attempt count of an attempt cut short by a gateway crash is lost with it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jobs_int.h"

void gw_jobs_config_defaults(gw_jobs_config *cfg)
{
    *cfg = (gw_jobs_config){
        .db = GW_JOBS_DB,
        .fsync = 0,
        .retention_ms = GW_JOBS_RETENTION_MS,
        .max_attempts = GW_JOBS_MAX_ATTEMPTS,
        .lease_ms = GW_JOBS_LEASE_MS,
        .backoff_ms = GW_JOBS_BACKOFF_MS,
        .backoff_cap_ms = GW_JOBS_BACKOFF_CAP_MS,
        .task_limit = GW_JOBS_TASK_LIMIT,
    };
}

uint64_t gw_jobs_backoff_ms(uint32_t attempt, uint32_t base_ms, uint32_t cap_ms, uint64_t rnd)
{
    uint64_t d = base_ms;
    for (uint32_t i = 1; i < attempt && d < cap_ms; i++)
        d *= 2;
    if (d > cap_ms)
        d = cap_ms;
    return d / 2 + rnd % (d - d / 2 + 1);
}

int64_t gw__jobs_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t next_random(gw_jobs *j)
{
    j->rng ^= j->rng << 13;
    j->rng ^= j->rng >> 7;
    j->rng ^= j->rng << 17;
    return j->rng;
}

/* FNV-1a of an idempotency key; never 0 (the id map's empty mark). */
static uint64_t key_hash(br_str key)
{
    uint64_t h = 14695981039346656037ull;
    for (uint32_t i = 0; i < key.len; i++)
        h = (h ^ (uint8_t)key.ptr[i]) * 1099511628211ull;
    return h ? h : 1;
}

/* Copies s to the heap (an empty string stays NULL).  0 or BR_ENOMEM. */
static int str_dup(br_str *dst, br_str s)
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

static void str_free(br_str *s)
{
    free((void *)s->ptr);
    *s = (br_str){NULL, 0};
}

/* ---------------------------------------------------------------------------------- */
/* Tasks.                                                                              */

gw_jobs_task *gw__jobs_task_find(gw_jobs *j, br_str name)
{
    for (size_t i = 0; i < j->ntasks; i++)
        if (br_str_eq(name, j->tasks[i]->name))
            return j->tasks[i];
    return NULL;
}

/* Adds a task to memory only. */
static gw_jobs_task *task_add(gw_jobs *j, br_str name)
{
    if (name.len == 0 || name.len > GW_JOBS_NAME_MAX || j->ntasks >= GW_JOBS_MAX_TASKS)
        return NULL;
    gw_jobs_task *t = calloc(1, sizeof(*t) + name.len + 1);
    if (!t)
        return NULL;
    t->name = (char *)(t + 1);
    memcpy(t->name, name.ptr, name.len);
    t->name[name.len] = '\0';
    gw_list_init(&t->ready);
    j->tasks[j->ntasks++] = t;
    return t;
}

gw_jobs_task *gw__jobs_task_get(gw_jobs *j, br_str name)
{
    gw_jobs_task *t = gw__jobs_task_find(j, name);
    if (t)
        return t;
    t = task_add(j, name);
    /* Known from now on, across restarts too; a lost write only means a 404 for a
     * task nobody announced yet after the next start. */
    if (t && gw__jobs_store_add_task(j->store, name, NULL, NULL) != 0)
        gw_log(GW_LOG_ERROR, "jobs", "cannot record task %s in the store", t->name);
    return t;
}

/* ---------------------------------------------------------------------------------- */
/* Jobs.                                                                               */

gw_job *gw__jobs_find(gw_jobs *j, uint64_t id)
{
    return id ? gw_idmap_get(j->byid, id) : NULL;
}

static gw_job *key_find(gw_jobs *j, br_str key)
{
    uint64_t h = key_hash(key);
    for (gw_job *job = gw_idmap_get(j->bykey, h); job; job = job->idem_next)
        if (job->idem_key.len == key.len && memcmp(job->idem_key.ptr, key.ptr, key.len) == 0)
            return job;
    return NULL;
}

/* Indexes job by id and key.  0 or the id map's error. */
static int job_index(gw_jobs *j, gw_job *job)
{
    int rc = gw_idmap_put(j->byid, job->id, job);
    if (rc != 0 || job->idem_key.len == 0)
        return rc;
    job->idem_hash = key_hash(job->idem_key);
    gw_job *head = gw_idmap_take(j->bykey, job->idem_hash);
    job->idem_next = head;
    rc = gw_idmap_put(j->bykey, job->idem_hash, job);
    if (rc != 0) {
        job->idem_next = NULL;
        if (head)
            gw_idmap_put(j->bykey, job->idem_hash, head);
        gw_idmap_take(j->byid, job->id);
    }
    return rc;
}

static void job_unindex(gw_jobs *j, gw_job *job)
{
    gw_idmap_take(j->byid, job->id);
    if (job->idem_key.len == 0)
        return;
    gw_job *head = gw_idmap_take(j->bykey, job->idem_hash);
    gw_job **pp = &head;
    while (*pp && *pp != job)
        pp = &(*pp)->idem_next;
    if (*pp)
        *pp = job->idem_next;
    if (head)
        gw_idmap_put(j->bykey, job->idem_hash, head);
}

static bool finished(const gw_job *job)
{
    return job->status == GW_JOB_SUCCEEDED || job->status == GW_JOB_DEAD;
}

/* Frees a job that was never indexed. */
static void job_release(gw_job *job)
{
    str_free(&job->payload);
    str_free(&job->idem_key);
    str_free(&job->result);
    str_free(&job->error);
    free(job);
}

/* Allocates a job with its strings copied; not indexed, not linked. */
static gw_job *job_new(gw_jobs_task *t, br_str payload, br_str key)
{
    gw_job *job = calloc(1, sizeof(*job));
    if (!job)
        return NULL;
    job->task = t;
    gw_list_init(&job->link);
    gw_list_init(&job->waiters);
    if (str_dup(&job->payload, payload) != 0 || str_dup(&job->idem_key, key) != 0) {
        job_release(job);
        return NULL;
    }
    return job;
}

/* Takes job off every structure and frees it; its waiters must be gone. */
static void job_free(gw_jobs *j, gw_job *job)
{
    gw_list_remove(&job->link);
    gw_deadline_heap_remove(&j->delayed, &job->timer);
    gw_deadline_heap_remove(&j->leases, &job->timer);
    job_unindex(j, job);
    if (!finished(job) && job->task->unfinished)
        job->task->unfinished--;
    j->njobs--;
    job_release(job);
}

static gw_job_row job_row(const gw_job *job)
{
    return (gw_job_row){
        .id = job->id,
        .task = br_str_c(job->task->name),
        .payload = job->payload,
        .idem_key = job->idem_key,
        .status = job->status,
        .attempts = job->attempts,
        .run_at_ms = job->run_at_ms,
        .updated_ms = job->updated_ms,
        .result = job->result,
        .error = job->error,
    };
}

/* Writes job's current state; nobody waits for it. */
static void job_persist(gw_jobs *j, gw_job *job)
{
    gw_job_row r = job_row(job);
    int rc = gw__jobs_store_put(j->store, &r, NULL, NULL);
    if (rc != 0)
        gw_log(GW_LOG_ERROR, "jobs", "job %llu: gw__jobs_store_put failed: %s",
               (unsigned long long)job->id, br_strerror(rc));
}

void gw__jobs_schedule(gw_jobs *j, gw_job *job)
{
    gw_list_remove(&job->link);
    if (job->run_at_ms <= gw__jobs_now_ms() || j->closing) {
        gw_list_push_back(&job->task->ready, &job->link);
        job->task->nready++;
        return;
    }
    job->timer.when = (uint64_t)job->run_at_ms;
    if (gw_deadline_heap_push(&j->delayed, &job->timer) != 0) {
        /* The heap is bounded by GW_JOBS_MAX like the jobs themselves; should it fail
         * to grow, running early beats never running. */
        gw_list_push_back(&job->task->ready, &job->link);
        job->task->nready++;
    }
}

/* Tells every waiter of job. */
static void job_wake(gw_job *job, int status)
{
    while (!gw_list_empty(&job->waiters)) {
        gw_job_waiter *w = GW_CONTAINER_OF(job->waiters.next, gw_job_waiter, link);
        gw_list_remove(&w->link);
        w->ready(w, job, status);
    }
}

/* The first write of a job is done: it may run, and its clients hear of it.  A job
 * whose write failed is dropped: nobody was told it exists. */
static void on_inserted(void *arg, int status)
{
    gw_job *job = arg;
    gw_jobs *j = job->owner;
    if (status != 0) {
        job_wake(job, status);
        job_free(j, job);
        return;
    }
    job->durable = true;
    job_wake(job, 0);
    if (job->status == GW_JOB_QUEUED) {
        gw__jobs_schedule(j, job);
        if (!j->closing)
            gw__jobs_pump_task(j, job->task);
    }
}

/* Makes room at GW_JOBS_MAX: the oldest finished job expires before its time. */
static void expire_oldest(gw_jobs *j)
{
    if (gw_list_empty(&j->finished))
        return;
    gw_job *job = GW_CONTAINER_OF(j->finished.next, gw_job, link);
    if (gw__jobs_store_delete(j->store, job->id, NULL, NULL) == 0)
        job_free(j, job);
}

int gw__jobs_submit(gw_jobs *j, gw_jobs_task *t, br_str payload, br_str key, uint32_t delay_ms,
                    gw_job_waiter *waiter, gw_job **out)
{
    *out = NULL;
    if (key.len > 0) {
        gw_job *old = key_find(j, key);
        if (old) {
            *out = old;
            if (waiter && old->durable)
                waiter->ready(waiter, old, 0);
            else if (waiter)
                gw_list_push_back(&old->waiters, &waiter->link);
            return 0;
        }
    }
    if (j->njobs >= GW_JOBS_MAX)
        expire_oldest(j);
    if (j->njobs >= GW_JOBS_MAX || t->unfinished >= j->cfg.task_limit)
        return BR_EFULL;
    gw_job *job = job_new(t, payload, key);
    if (!job)
        return BR_ENOMEM;
    job->owner = j;
    job->id = ++j->next_id;
    job->status = GW_JOB_QUEUED;
    job->updated_ms = gw__jobs_now_ms();
    job->run_at_ms = job->updated_ms + delay_ms;
    int rc = job_index(j, job);
    if (rc != 0) {
        job_release(job);
        return rc == BR_EFULL ? BR_EFULL : BR_ENOMEM;
    }
    j->njobs++;
    t->unfinished++;
    gw_job_row r = job_row(job);
    rc = gw__jobs_store_put(j->store, &r, on_inserted, job);
    if (rc != 0) {
        job_free(j, job);
        return rc == BR_EFULL ? BR_EFULL : BR_ENOMEM;
    }
    if (waiter)
        gw_list_push_back(&job->waiters, &waiter->link);
    j->stats.accepted++;
    *out = job;
    return 0;
}

/* Replaces job's error text with e (truncated to GW_JOBS_ERROR_MAX). */
static void set_error(gw_job *job, br_str e)
{
    if (e.len > GW_JOBS_ERROR_MAX)
        e.len = GW_JOBS_ERROR_MAX;
    str_free(&job->error);
    if (str_dup(&job->error, e) != 0)
        gw_log(GW_LOG_ERROR, "jobs", "job %llu: out of memory keeping its error",
               (unsigned long long)job->id);
}

/* job ended for good: on the finished list until it expires. */
static void job_finish(gw_jobs *j, gw_job *job, uint8_t status)
{
    job->status = status;
    if (status == GW_JOB_SUCCEEDED)
        j->stats.completed++;
    else
        j->stats.dead++;
    if (job->task->unfinished)
        job->task->unfinished--;
    gw_list_remove(&job->link);
    gw_list_push_back(&j->finished, &job->link);
}

void gw__jobs_attempt_ended(gw_jobs *j, gw_job *job, int outcome, br_str result, br_str error,
                            bool lost)
{
    job->updated_ms = gw__jobs_now_ms();
    set_error(job, error);
    if (outcome == BR_JOB_OK) {
        str_free(&job->result);
        if (str_dup(&job->result, result) != 0)
            set_error(job, br_str_c("out of memory keeping the result"));
        job_finish(j, job, GW_JOB_SUCCEEDED);
    } else if (outcome == BR_JOB_FATAL || job->attempts >= j->cfg.max_attempts) {
        job_finish(j, job, GW_JOB_DEAD);
    } else if (lost) {
        j->stats.retried++;
        /* The worker went away with it: nothing says the job is at fault, so it runs
         * again at once (at the front: it has waited already). */
        job->status = GW_JOB_QUEUED;
        job->run_at_ms = job->updated_ms;
        gw_list_remove(&job->link);
        gw_list_push_front(&job->task->ready, &job->link);
        job->task->nready++;
        return; /* not written: a restart requeues it just the same */
    } else {
        j->stats.retried++;
        job->status = GW_JOB_FAILED;
        job->run_at_ms =
            job->updated_ms + (int64_t)gw_jobs_backoff_ms(job->attempts, j->cfg.backoff_ms,
                                                          j->cfg.backoff_cap_ms, next_random(j));
        gw__jobs_schedule(j, job);
    }
    job_persist(j, job);
}

/* ---------------------------------------------------------------------------------- */
/* The timer.                                                                          */

static void on_tick(uv_timer_t *timer)
{
    gw_jobs *j = timer->data;
    int64_t now = gw__jobs_now_ms();
    gw_deadline *top;
    /* Delayed and failed jobs whose time has come join their ready queues. */
    gw_jobs_task *touched[GW_JOBS_MAX_TASKS];
    size_t ntouched = 0;
    while ((top = gw_deadline_heap_top(&j->delayed)) && (int64_t)top->when <= now) {
        gw_job *job = GW_CONTAINER_OF(top, gw_job, timer);
        gw_deadline_heap_remove(&j->delayed, top);
        gw__jobs_schedule(j, job);
        bool seen = false;
        for (size_t i = 0; i < ntouched && !seen; i++)
            seen = touched[i] == job->task;
        if (!seen)
            touched[ntouched++] = job->task;
    }
    while ((top = gw_deadline_heap_top(&j->leases)) && (int64_t)top->when <= now)
        gw__jobs_lease_expired(j, GW_CONTAINER_OF(top, gw_job, timer));
    for (size_t i = 0; i < ntouched; i++)
        gw__jobs_pump_task(j, touched[i]);
    /* Finished jobs past their retention are forgotten, here and in the store. */
    for (unsigned n = 0; n < GW_JOBS_EXPIRE_BATCH && !gw_list_empty(&j->finished); n++) {
        gw_job *job = GW_CONTAINER_OF(j->finished.next, gw_job, link);
        if (job->updated_ms + (int64_t)j->cfg.retention_ms > now)
            break;
        if (gw__jobs_store_delete(j->store, job->id, NULL, NULL) != 0)
            break; /* the store is busy: next tick */
        job_free(j, job);
    }
}

/* ---------------------------------------------------------------------------------- */
/* Loading, life cycle.                                                                */

static void load_task(br_str name, void *arg)
{
    gw_jobs *j = arg;
    if (!gw__jobs_task_find(j, name) && !task_add(j, name))
        gw_log(GW_LOG_WARN, "jobs", "task %.*s from the store ignored", (int)name.len, name.ptr);
}

/* One row of the store becomes a job in memory.  A running job's lease died with the
 * gateway that gave it: it is queued again. */
static void load_row(const gw_job_row *r, void *arg)
{
    gw_jobs *j = arg;
    gw_jobs_task *t = gw__jobs_task_find(j, r->task);
    if (!t)
        t = task_add(j, r->task);
    gw_job *job = t ? job_new(t, r->payload, r->idem_key) : NULL;
    if (!job || str_dup(&job->result, r->result) != 0 || str_dup(&job->error, r->error) != 0) {
        gw_log(GW_LOG_ERROR, "jobs", "job %llu from the store dropped: out of memory",
               (unsigned long long)r->id);
        if (job)
            job_release(job);
        return;
    }
    job->owner = j;
    job->id = r->id;
    job->status = r->status == GW_JOB_RUNNING ? GW_JOB_QUEUED : r->status;
    job->attempts = r->attempts;
    job->run_at_ms = r->run_at_ms;
    job->updated_ms = r->updated_ms;
    job->durable = true;
    if (job_index(j, job) != 0) {
        gw_log(GW_LOG_WARN, "jobs", "job %llu from the store dropped: index full",
               (unsigned long long)r->id);
        job_release(job);
        return;
    }
    j->njobs++;
    if (r->id > j->next_id)
        j->next_id = r->id;
    if (finished(job)) {
        gw_list_push_back(&j->finished, &job->link);
    } else {
        t->unfinished++;
        gw__jobs_schedule(j, job);
    }
}

/* True when there is a store path and every field that bounds something is set
 * (fsync 0 is a choice). */
static bool config_valid(const gw_jobs_config *c)
{
    return c->db && c->db[0] && c->retention_ms && c->max_attempts && c->lease_ms &&
           c->backoff_ms && c->backoff_cap_ms && c->task_limit;
}

static void on_abandoned(void *arg)
{
    gw_jobs *j = arg;
    gw_jobs_destroy(&j);
}

/* A start that failed once the store and the timer were open: both close on the loop
 * and the queue frees itself after (a handle may only be freed once closed).  The
 * routes leave at once, since the caller may destroy the router before the loop runs
 * again.  NULL, for gw_jobs_new to return. */
static gw_jobs *abandon(gw_jobs *j)
{
    gw__jobs_routes_remove(j);
    gw_jobs_shutdown(j, on_abandoned, j);
    return NULL;
}

gw_jobs *gw_jobs_new(uv_loop_t *loop, gw_router *router, gw_broker *broker,
                     const gw_jobs_config *cfg)
{
    if (!cfg || !config_valid(cfg)) {
        gw_log(GW_LOG_ERROR, "jobs", "gw_jobs_new: no store path or a zero limit");
        return NULL;
    }
    gw_jobs *j = calloc(1, sizeof(*j));
    if (!j)
        return NULL;
    j->cfg = *cfg;
    j->loop = loop;
    j->router = router;
    j->broker = broker;
    j->db = strdup(j->cfg.db);
    j->cfg.db = j->db;
    j->byid = gw_idmap_new(GW_JOBS_MAX);
    j->bykey = gw_idmap_new(GW_JOBS_MAX);
    gw_deadline_heap_init(&j->delayed, GW_JOBS_MAX);
    gw_deadline_heap_init(&j->leases, GW_JOBS_MAX);
    gw_list_init(&j->finished);
    j->scratch.max = br_limits_default.max_message;
    j->rng = ((uint64_t)gw__jobs_now_ms() * 0x9E3779B97F4A7C15ull) | 1;
    if (!j->db || !j->byid || !j->bykey) {
        gw_log(GW_LOG_ERROR, "jobs", "gw_jobs_new: out of memory");
        gw_jobs_destroy(&j);
        return NULL;
    }
    j->store =
        gw__jobs_sqlite_open(loop, j->db, j->cfg.fsync ? GW_JOBS_SYNC_FULL : GW_JOBS_SYNC_NORMAL);
    if (!j->store) {
        gw_log(GW_LOG_ERROR, "jobs", "cannot open the job store %s", j->db);
        gw_jobs_destroy(&j);
        return NULL;
    }
    /* From here the store and the timer are handles on the loop: a failure must close
     * them there (abandon), never free them under it. */
    uv_timer_init(loop, &j->tick);
    j->tick.data = j;
    if (gw__jobs_store_load(j->store, load_row, load_task, j) != 0) {
        gw_log(GW_LOG_ERROR, "jobs", "cannot read the job store %s", j->db);
        return abandon(j);
    }
    if (gw__jobs_routes_add(j) != 0) {
        gw_log(GW_LOG_ERROR, "jobs", "cannot add the /jobs routes");
        return abandon(j);
    }
    if (gw_broker_attach(broker, &gw__jobs_hooks, j) != 0) {
        gw_log(GW_LOG_ERROR, "jobs", "cannot attach to the broker");
        return abandon(j);
    }
    uv_timer_start(&j->tick, on_tick, GW_JOBS_TICK_MS, GW_JOBS_TICK_MS);
    gw_log(GW_LOG_INFO, "jobs", "store %s: %zu jobs, %zu tasks, next id %llu", j->db, j->njobs,
           j->ntasks, (unsigned long long)j->next_id + 1);
    return j;
}

/* The timer or the store has closed; close's callback runs after both. */
static void close_step_done(gw_jobs *j)
{
    if (--j->closes_pending == 0 && j->done)
        j->done(j->done_arg);
}

static void on_store_closed(void *arg)
{
    close_step_done(arg);
}

static void on_tick_closed(uv_handle_t *h)
{
    close_step_done(h->data);
}

void gw_jobs_shutdown(gw_jobs *self, void (*done)(void *arg), void *arg)
{
    if (self->closing)
        return;
    self->closing = true;
    self->done = done;
    self->done_arg = arg;
    gw_broker_detach(self->broker, self);
    /* Both start closing now, not the store after the timer: a caller that sweeps the
     * loop's leftover handles right after this call (main.c on a failed start) must
     * not find the store's handle open and close it under the store. */
    self->closes_pending = 2;
    uv_timer_stop(&self->tick);
    uv_close((uv_handle_t *)&self->tick, on_tick_closed);
    gw__jobs_store_shutdown(self->store, on_store_closed, self);
}

void gw_jobs_destroy(gw_jobs **self_p)
{
    if (!self_p || !*self_p)
        return;
    gw_jobs *j = *self_p;
    gw__jobs_routes_remove(j);
    gw__jobs_workers_free(j);
    /* Every durable job is on the finished list, a ready queue, the delayed heap or
     * the lease heap (jobs_int.h); the store ran every insert's callback at close. */
    gw_deadline *top;
    while ((top = gw_deadline_heap_top(&j->delayed)))
        job_free(j, GW_CONTAINER_OF(top, gw_job, timer));
    while ((top = gw_deadline_heap_top(&j->leases)))
        job_free(j, GW_CONTAINER_OF(top, gw_job, timer));
    while (!gw_list_empty(&j->finished))
        job_free(j, GW_CONTAINER_OF(j->finished.next, gw_job, link));
    for (size_t i = 0; i < j->ntasks; i++)
        while (!gw_list_empty(&j->tasks[i]->ready))
            job_free(j, GW_CONTAINER_OF(j->tasks[i]->ready.next, gw_job, link));
    for (size_t i = 0; i < j->ntasks; i++)
        free(j->tasks[i]);
    gw__jobs_store_destroy(&j->store);
    gw_idmap_destroy(&j->byid);
    gw_idmap_destroy(&j->bykey);
    gw_deadline_heap_free(&j->delayed);
    gw_deadline_heap_free(&j->leases);
    br_buf_free(&j->scratch);
    free(j->db);
    free(j);
    *self_p = NULL;
}
