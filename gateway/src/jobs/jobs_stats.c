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
