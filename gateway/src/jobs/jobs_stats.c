/*
 * jobs_stats.c - the job queue's numbers for GET /metrics (see gw_jobs_stats_get).
 *
 * Counters are bumped where jobs change (jobs.c); the gauges are derived here from
 * counts the queue keeps anyway, so that nothing walks the jobs themselves: a scrape
 * costs one pass over tasks and workers, however many jobs are held.
 */
#include <string.h>

#include "jobs_int.h"

void gw_jobs_stats_get(const gw_jobs *self, gw_jobs_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (!self)
        return;
    *out = self->stats;
    uint64_t unfinished = 0;
    out->ready = 0;
    for (size_t i = 0; i < self->ntasks; i++) {
        const gw_jobs_task *t = self->tasks[i];
        unfinished += t->unfinished;
        out->ready += t->nready + t->nspilled + t->nloading;
    }
    out->running = 0;
    for (size_t i = 0; i < self->nworkers; i++)
        out->running += self->workers[i]->nleased;
    out->tasks = (unsigned)self->nexisting;
    out->memory = self->insert_bytes + self->ready_bytes + self->detail_bytes;
    out->held = self->njobs;
    out->finished = self->njobs > unfinished ? self->njobs - unfinished : 0;
    uint64_t busy = out->ready + out->running;
    out->scheduled = unfinished > busy ? unfinished - busy : 0;
}

const double gw_jobs_hist_bounds[GW_JOBS_HIST_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                                          1,     2.5,  5,     10,   30,  60,   300};

void gw__jobs_hist_observe(gw_jobs_hist *h, int64_t ms)
{
    double s = ms > 0 ? (double)ms / 1000.0 : 0;
    size_t b = 0;
    while (b < GW_JOBS_HIST_BUCKETS && s > gw_jobs_hist_bounds[b])
        b++;
    h->buckets[b]++;
    h->count++;
    h->sum_s += s;
}

size_t gw_jobs_task_count(const gw_jobs *self)
{
    return self ? self->ntasks : 0;
}

void gw_jobs_task_stats_get(const gw_jobs *self, size_t i, gw_jobs_task_stats *out)
{
    const gw_jobs_task *t = self->tasks[i];
    *out = (gw_jobs_task_stats){
        .task = t->name,
        .queued = t->unfinished > t->nrunning ? t->unfinished - t->nrunning : 0,
        .running = t->nrunning,
        .succeeded = t->nsucceeded,
        .failed = t->nfailed,
        .dead = t->ndead,
        .cancelled = t->ncancelled,
        .queue_latency = t->queue_latency,
        .run_time = t->run_time,
    };
}
