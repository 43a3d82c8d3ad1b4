/*
 * jobs_tasks.c - the task table: a task exists while a registered worker announces it.
 *
 * A READY's tasks are declared (jobs_dispatch.c); when the last worker announcing a
 * task is gone, the task is in its grace period (cfg.task_grace_ms) - still
 * submittable, its jobs waiting, so that a restarting worker loses nothing - and then
 * it retires: POST /jobs/{task} answers 404 and a REPLY naming it is refused.  Its
 * unfinished jobs stay queued, in the store, until a worker announcing the task
 * registers again; the record of a retired task stays only while it holds jobs.  At
 * most GW_JOBS_MAX_TASKS tasks exist (live or in grace) at once, and one worker
 * brings at most GW_JOBS_WORKER_TASKS_MAX, so READYs cannot fill the table for good:
 * it empties as their workers leave.
 *
 * A task is public - HTTP clients may submit it - while every worker announcing it
 * marks it public (READY.public_tasks); the last known answer holds through the grace
 * period.  The store records the tasks that exist with their public flag, so that a
 * restarted gateway gives them a grace period of their own while workers reconnect.
 */
#include <stdlib.h>
#include <string.h>

#include "jobs_int.h"

static bool name_ok(br_str name)
{
    return name.len > 0 && name.len <= GW_JOBS_NAME_MAX;
}

gw_jobs_task *gw__jobs_task_find(gw_jobs *j, br_str name)
{
    if (!name_ok(name))
        return NULL;
    for (gw_jobs_task *t = gw_idmap_get(j->bytask, gw__jobs_hash(name)); t; t = t->hash_next)
        if (br_str_eq(name, t->name))
            return t;
    return NULL;
}

gw_jobs_task *gw__jobs_task_open(gw_jobs *j, br_str name)
{
    gw_jobs_task *t = gw__jobs_task_find(j, name);
    return t && t->state != GW_TASK_RETIRED ? t : NULL;
}

gw_jobs_task *gw__jobs_task_public(gw_jobs *j, br_str name)
{
    gw_jobs_task *t = gw__jobs_task_open(j, name);
    return t && t->is_public ? t : NULL;
}

/* A new record in `state`; NULL out of memory. */
static gw_jobs_task *task_new(gw_jobs *j, br_str name, uint8_t state)
{
    if (j->ntasks == j->tasks_cap) {
        size_t cap = j->tasks_cap ? j->tasks_cap * 2 : 16;
        gw_jobs_task **grown = realloc(j->tasks, cap * sizeof(*grown));
        if (!grown)
            return NULL;
        j->tasks = grown;
        j->tasks_cap = cap;
    }
    gw_jobs_task *t = calloc(1, sizeof(*t) + name.len + 1);
    if (!t)
        return NULL;
    t->name = (char *)(t + 1);
    memcpy(t->name, name.ptr, name.len);
    t->name[name.len] = '\0';
    t->hash = gw__jobs_hash(name);
    t->state = state;
    gw_list_init(&t->grace_link);
    gw_list_init(&t->ready);
    gw_list_init(&t->spilled);
    gw_list_init(&t->loading);
    t->hash_next = gw_idmap_take(j->bytask, t->hash);
    if (gw_idmap_put(j->bytask, t->hash, t) != 0) {
        if (t->hash_next)
            gw_idmap_put(j->bytask, t->hash, t->hash_next);
        free(t);
        return NULL;
    }
    t->index = j->ntasks;
    j->tasks[j->ntasks++] = t;
    if (state != GW_TASK_RETIRED)
        j->nexisting++;
    return t;
}

static void task_free(gw_jobs *j, gw_jobs_task *t)
{
    gw_jobs_task *head = gw_idmap_take(j->bytask, t->hash);
    gw_jobs_task **pp = &head;
    while (*pp && *pp != t)
        pp = &(*pp)->hash_next;
    if (*pp)
        *pp = t->hash_next;
    if (head)
        gw_idmap_put(j->bytask, t->hash, head);
    j->tasks[t->index] = j->tasks[--j->ntasks];
    j->tasks[t->index]->index = t->index;
    gw_list_remove(&t->grace_link);
    if (t->state != GW_TASK_RETIRED)
        j->nexisting--;
    free(t);
}

/* The store's record of t follows its state: present with its public flag while it
 * exists, gone once retired.  A lost write only changes what the next start assumes. */
static void record(gw_jobs *j, gw_jobs_task *t)
{
    bool want = t->state != GW_TASK_RETIRED;
    if (want == t->recorded && (!want || t->recorded_public == t->is_public))
        return;
    br_str name = br_str_c(t->name);
    int rc = want ? gw__jobs_store_put_task(j->store, name, t->is_public, NULL, NULL)
                  : gw__jobs_store_delete_task(j->store, name, NULL, NULL);
    if (rc != 0) {
        gw_log(GW_LOG_ERROR, "jobs", "task %s: cannot record it in the store: %s", t->name,
               br_strerror(rc));
        return;
    }
    t->recorded = want;
    t->recorded_public = t->is_public;
}

gw_jobs_task *gw__jobs_task_declare(gw_jobs *j, br_str name, bool is_public)
{
    if (!name_ok(name))
        return NULL;
    gw_jobs_task *t = gw__jobs_task_find(j, name);
    if (!t || t->state == GW_TASK_RETIRED) {
        if (j->nexisting >= GW_JOBS_MAX_TASKS)
            return NULL;
        if (!t) {
            t = task_new(j, name, GW_TASK_LIVE);
            if (!t)
                return NULL;
        } else {
            t->state = GW_TASK_LIVE;
            j->nexisting++;
        }
    } else if (t->state == GW_TASK_GRACE) {
        t->state = GW_TASK_LIVE;
        gw_list_remove(&t->grace_link);
    }
    t->declarers++;
    if (is_public)
        t->public_declarers++;
    t->is_public = t->public_declarers == t->declarers;
    record(j, t);
    return t;
}

void gw__jobs_task_undeclare(gw_jobs *j, gw_jobs_task *t, bool is_public)
{
    if (t->state != GW_TASK_LIVE || t->declarers == 0)
        return;
    t->declarers--;
    if (is_public && t->public_declarers > 0)
        t->public_declarers--;
    if (t->declarers > 0) {
        t->is_public = t->public_declarers == t->declarers;
        record(j, t);
        return;
    }
    /* The last one: the grace period starts; the public flag keeps its last value.
     * Every grace period is as long, so the list stays in order of its end. */
    t->state = GW_TASK_GRACE;
    t->grace_end_ms = gw__jobs_now_ms() + j->cfg.task_grace_ms;
    gw_list_push_back(&j->grace, &t->grace_link);
}

gw_jobs_task *gw__jobs_task_loaded(gw_jobs *j, br_str name, bool recorded, bool is_public)
{
    gw_jobs_task *t = gw__jobs_task_find(j, name);
    if (t)
        return t;
    if (!name_ok(name)) {
        gw_log(GW_LOG_WARN, "jobs", "a task with an invalid name in the store ignored");
        return NULL;
    }
    if (!recorded)
        return task_new(j, name, GW_TASK_RETIRED); /* it only names jobs */
    if (j->nexisting >= GW_JOBS_MAX_TASKS) {
        gw_log(GW_LOG_WARN, "jobs", "task %.*s from the store retired: %u tasks exist",
               (int)name.len, name.ptr, GW_JOBS_MAX_TASKS);
        gw__jobs_store_delete_task(j->store, name, NULL, NULL);
        return task_new(j, name, GW_TASK_RETIRED);
    }
    t = task_new(j, name, GW_TASK_GRACE);
    if (!t)
        return NULL;
    t->is_public = is_public;
    t->recorded = true;
    t->recorded_public = is_public;
    t->grace_end_ms = gw__jobs_now_ms() + j->cfg.task_grace_ms;
    gw_list_push_back(&j->grace, &t->grace_link);
    return t;
}

void gw__jobs_task_unref(gw_jobs *j, gw_jobs_task *t)
{
    if (!j->destroying && t->state == GW_TASK_RETIRED && t->njobs == 0)
        task_free(j, t);
}

/* The grace period of t ended with no worker back. */
static void retire(gw_jobs *j, gw_jobs_task *t)
{
    gw_list_remove(&t->grace_link);
    t->state = GW_TASK_RETIRED;
    t->is_public = false;
    j->nexisting--;
    record(j, t);
    if (t->unfinished > 0)
        gw_log(GW_LOG_INFO, "jobs",
               "task %s retired: no worker for %u ms; its %zu unfinished jobs wait for one",
               t->name, j->cfg.task_grace_ms, t->unfinished);
    /* Nobody will take its due jobs soon: their payloads wait in the store (back to
     * front, so that the spilled queue keeps their order). */
    for (gw_list *l = t->ready.prev, *prev; l != &t->ready; l = prev) {
        prev = l->prev;
        gw_job *job = GW_CONTAINER_OF(l, gw_job, link);
        if (job->payload_len > 0) {
            t->nready--;
            gw__jobs_spill_front(j, job);
        }
    }
    if (t->njobs == 0)
        task_free(j, t);
}

void gw__jobs_tasks_tick(gw_jobs *j, int64_t now)
{
    bool retired = false;
    while (!gw_list_empty(&j->grace)) {
        gw_jobs_task *t = GW_CONTAINER_OF(j->grace.next, gw_jobs_task, grace_link);
        if (t->grace_end_ms > now)
            break;
        retire(j, t);
        retired = true;
    }
    if (retired)
        gw__jobs_workers_retry(j);
}

void gw__jobs_tasks_free(gw_jobs *j)
{
    for (size_t i = 0; i < j->ntasks; i++)
        free(j->tasks[i]);
    free(j->tasks);
    j->tasks = NULL;
    j->ntasks = j->tasks_cap = j->nexisting = 0;
    gw_list_init(&j->grace);
}
