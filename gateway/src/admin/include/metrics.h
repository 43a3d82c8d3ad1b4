/*
 * metrics.h - GET /metrics: the gateway's counters in Prometheus text format 0.0.4.
 *
 * Every component counts for itself, in plain integers on the loop thread (the HTTP
 * server, the broker, the job queue, the supervisor); this module only reads them
 * when scraped and writes families named barista_<component>_<what>, each with its
 * # HELP and # TYPE lines, counters ending in _total.  docs/gateway.md lists them.
 *
 * The section writers take the components' stats structs, so that the text can be
 * produced (and tested) from any numbers; gw_metrics_render() gathers them.
 */
#ifndef BARISTA_GW_METRICS_H
#define BARISTA_GW_METRICS_H

#include <stddef.h>

#include <barista/proto.h>

#include "broker.h"
#include "http_server.h"
#include "actors.h"
#include "jobs.h"
#include "registry.h"
#include "supervisor.h"

/* The Content-Type of the exposition format. */
#define GW_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Where the numbers come from.  A NULL component is left out (no supervisor outside
 * local mode); every pointer is borrowed. */
typedef struct gw_metrics_sources {
    const gw_http_server *http;      /* connections, requests, bytes, durations */
    const gw_broker *broker;         /* workers, services, dispatch outcomes */
    const gw_jobs *jobs;             /* the durable job queue */
    const gw_actors *actors;         /* the keyed actors' state store */
    const gw_supervisor *supervisor; /* local mode's worker processes */
} gw_metrics_sources;

/* Appends the HTTP families: answers by status class, connections (open, accepted,
 * rejected), bytes each way and the request duration histogram (seconds, the buckets
 * of gw_http_duration_bounds_us).  0 or br_buf_append's error (nothing is undone:
 * the caller discards out on failure). */
int gw_metrics_http(br_buf *out, const gw_http_stats *st, size_t open_connections);

/* Appends the broker families from st, and per service (from reg, which may be NULL)
 * its live workers and queue depth, labelled service="NAME" (escaped). 0 or an
 * append error. */
int gw_metrics_broker(br_buf *out, const gw_broker_stats *st, const gw_registry *reg);

/* Appends the job queue families. 0 or an append error. */
int gw_metrics_jobs(br_buf *out, const gw_jobs_stats *st);

/* The per-actor-type families, one series per type (label `type`). */
int gw_metrics_actor_types(br_buf *out, const gw_actor_type_stats *t, size_t n);
/* Appends the per-task job families: queued and running gauges, ended counters by
 * outcome, and the queue-latency and run-time histograms, labelled task="NAME"
 * (escaped).  0 or an append error. */
int gw_metrics_jobs_tasks(br_buf *out, const gw_jobs *jobs);

/* Appends the supervisor families. 0 or an append error. */
int gw_metrics_supervisor(br_buf *out, const gw_supervisor_stats *st);

/* Appends every family of the components src has. 0 or an append error. */
int gw_metrics_render(const gw_metrics_sources *src, br_buf *out);

#endif /* BARISTA_GW_METRICS_H */
