/*
 * metrics.c - the Prometheus text exposition of the gateway's counters (metrics.h).
 *
 * A scrape reads each component's stats once and writes lines into one buffer; the
 * hot paths only ever bump integers.  Gauges describe the moment of the scrape.
 */
#include "metrics.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

/* Longest line written at once: a family's HELP, or a sample whose label is a service
 * name (GW_NAME_MAX bytes, at most doubled by escaping). */
#define METRICS_LINE_MAX 1024

/* Appends one printf-formatted line.  0, BR_ELIMIT (a line longer than
 * METRICS_LINE_MAX: a bug, never input) or br_buf_append's error. */
static int appendf(br_buf *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int appendf(br_buf *out, const char *fmt, ...)
{
    char line[METRICS_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(line))
        return BR_ELIMIT;
    return br_buf_append(out, line, (size_t)n);
}

/* The # HELP and # TYPE lines that open a family. */
static int family(br_buf *out, const char *name, const char *type, const char *help)
{
    return appendf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A family holding one unlabelled sample. */
static int single(br_buf *out, const char *name, const char *type, const char *help, uint64_t value)
{
    int rc = family(out, name, type, help);
    return rc ? rc : appendf(out, "%s %llu\n", name, (unsigned long long)value);
}

/* A family holding one unlabelled sample, as a table row. */
typedef struct metric_row {
    const char *name; /* family and sample name */
    const char *type; /* "counter" or "gauge" */
    const char *help; /* the # HELP text */
    uint64_t value;   /* the sample */
} metric_row;

/* Writes n single-sample families. */
static int singles(br_buf *out, const metric_row *rows, size_t n)
{
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = single(out, rows[i].name, rows[i].type, rows[i].help, rows[i].value);
    return rc;
}

#define NELEMS(a) (sizeof(a) / sizeof((a)[0]))

/* Writes s into dst (cap bytes, NUL included) as a label value: backslash, double
 * quote and newline escaped as the format asks.  Truncates rather than overflow. */
static void label_escape(char *dst, size_t cap, const char *s)
{
    size_t o = 0;
    for (; *s && o + 3 < cap; s++) {
        if (*s == '\\' || *s == '"' || *s == '\n') {
            dst[o++] = '\\';
            dst[o++] = *s == '\n' ? 'n' : *s;
        } else {
            dst[o++] = *s;
        }
    }
    dst[o] = '\0';
}

int gw_metrics_http(br_buf *out, const gw_http_stats *st, size_t open_connections)
{
    static const char *const classes[5] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
    int rc = family(out, "barista_http_requests_total", "counter",
                    "HTTP requests answered, by status class.");
    for (int i = 0; i < 5 && rc == 0; i++)
        rc = appendf(out, "barista_http_requests_total{code=\"%s\"} %llu\n", classes[i],
                     (unsigned long long)st->status[i]);
    const metric_row rows[] = {
        {"barista_http_connections_open", "gauge", "Client connections open now.",
         open_connections},
        {"barista_http_connections_accepted_total", "counter",
         "Client connections accepted and served.", st->accepted},
        {"barista_http_connections_rejected_total", "counter",
         "Client connections turned away with 503 at max-connections.", st->rejected},
        {"barista_http_received_bytes_total", "counter", "Bytes read from clients.", st->bytes_in},
        {"barista_http_sent_bytes_total", "counter",
         "Bytes of answers to clients (status line, headers and body).", st->bytes_out},
    };
    if (rc == 0)
        rc = singles(out, rows, NELEMS(rows));
    if (rc == 0)
        rc = family(out, "barista_http_request_duration_seconds", "histogram",
                    "Time from a request's first byte to its answer.");
    uint64_t cumulative = 0;
    for (int i = 0; i < GW_HTTP_DURATION_BUCKETS && rc == 0; i++) {
        cumulative += st->duration[i];
        rc = appendf(out, "barista_http_request_duration_seconds_bucket{le=\"%g\"} %llu\n",
                     gw_http_duration_bounds_us[i] / 1e6, (unsigned long long)cumulative);
    }
    cumulative += st->duration[GW_HTTP_DURATION_BUCKETS];
    if (rc == 0)
        rc = appendf(
            out,
            "barista_http_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n"
            "barista_http_request_duration_seconds_sum %llu.%06llu\n"
            "barista_http_request_duration_seconds_count %llu\n",
            (unsigned long long)cumulative, (unsigned long long)(st->duration_sum_us / 1000000),
            (unsigned long long)(st->duration_sum_us % 1000000), (unsigned long long)cumulative);
    return rc;
}

/* Per-service gauges: live workers (labelled with the service's kind) and queue depth. */
static int services(br_buf *out, const gw_registry *reg)
{
    size_t n = reg ? gw_registry_nservices(reg) : 0;
    char name[2 * GW_NAME_MAX + 1];
    int rc = family(out, "barista_service_workers", "gauge", "Live workers hosting the service.");
    for (size_t i = 0; i < n && rc == 0; i++) {
        const gw_service *s = gw_registry_service(reg, i);
        label_escape(name, sizeof(name), s->name);
        rc = appendf(out, "barista_service_workers{service=\"%s\",kind=\"%s\"} %zu\n", name,
                     gw_kind_name(s->kind), gw_service_live(s));
    }
    if (rc == 0)
        rc = family(out, "barista_service_queued", "gauge",
                    "Requests of the service waiting for worker credit.");
    for (size_t i = 0; i < n && rc == 0; i++) {
        const gw_service *s = gw_registry_service(reg, i);
        label_escape(name, sizeof(name), s->name);
        rc = appendf(out, "barista_service_queued{service=\"%s\"} %zu\n", name, s->nqueued);
    }
    return rc;
}

int gw_metrics_broker(br_buf *out, const gw_broker_stats *st, const gw_registry *reg)
{
    /* Live workers by kind come from the registry; the stats hold only their sum. */
    uint64_t live[2] = {0, 0};
    for (size_t i = 0; reg && i < gw_registry_nworkers(reg); i++) {
        const gw_worker *w = gw_registry_worker(reg, i);
        if (gw_worker_live(w))
            live[w->kind == BR_KIND_CPU]++;
    }
    int rc = family(out, "barista_broker_workers", "gauge", "Live workers, by kind.");
    if (rc == 0)
        rc = appendf(out,
                     "barista_broker_workers{kind=\"io\"} %llu\n"
                     "barista_broker_workers{kind=\"cpu\"} %llu\n",
                     (unsigned long long)live[0], (unsigned long long)live[1]);
    static const int codes[] = {502, 503, 504};
    const uint64_t by_status[] = {st->status_502, st->status_503, st->status_504};
    if (rc == 0)
        rc = family(out, "barista_broker_errors_total", "counter",
                    "Requests the broker answered itself with an error: 502 worker died or "
                    "bad reply, 503 no worker or queue full or shutting down, 504 deadline.");
    for (size_t i = 0; i < NELEMS(codes) && rc == 0; i++)
        rc = appendf(out, "barista_broker_errors_total{code=\"%d\"} %llu\n", codes[i],
                     (unsigned long long)by_status[i]);
    const metric_row rows[] = {
        {"barista_broker_workers_draining", "gauge",
         "Workers that said GOODBYE and still hold requests.", st->workers_draining},
        {"barista_broker_workers_unhealthy", "gauge",
         "Workers sent nothing because they leave CANCELs unanswered.", st->workers_unhealthy},
        {"barista_broker_services", "gauge", "Services registered (retired ones leave).",
         st->services},
        {"barista_broker_inflight", "gauge", "Requests at workers now.", st->inflight},
        {"barista_broker_cancelled", "gauge",
         "Cancelled requests whose worker has not answered yet.", st->cancelled},
        {"barista_broker_inflight_bytes", "gauge", "Bytes of requests at workers, unanswered.",
         st->inflight_bytes},
        {"barista_broker_queued", "gauge", "Requests waiting for worker credit.", st->queued},
        {"barista_broker_dispatched_total", "counter",
         "REQUESTs sent to workers, retries included.", st->dispatched},
        {"barista_broker_replies_total", "counter", "Worker REPLYs delivered to clients.",
         st->replies},
        {"barista_broker_retries_total", "counter", "Requests re-sent after their worker died.",
         st->retries},
        {"barista_broker_cancels_total", "counter", "CANCELs sent (deadline or client gone).",
         st->cancels},
        {"barista_broker_stale_replies_total", "counter",
         "REPLYs for requests no longer waited for, dropped.", st->stale_replies},
        {"barista_broker_bad_messages_total", "counter",
         "Undecodable or misdirected messages, dropped.", st->bad_messages},
        {"barista_broker_workers_joined_total", "counter", "READYs accepted.", st->workers_joined},
        {"barista_broker_workers_refused_total", "counter", "READYs refused with GOODBYE.",
         st->workers_refused},
        {"barista_broker_workers_died_total", "counter",
         "Workers dropped for silence or a lost connection.", st->workers_died},
        {"barista_broker_services_retired_total", "counter",
         "Services retired after their grace period without a worker.", st->services_retired},
        {"barista_actors_active", "gauge", "Actor keys active at a worker now.", st->actors_active},
        {"barista_actors_mailbox_waiting", "gauge",
         "Actor messages waiting at the gateway (state load, a move, credit).", st->actors_queued},
        {"barista_actors_turns_total", "counter", "Actor turns answered (ACTOR_REPLYs).",
         st->actor_turns},
        {"barista_actors_turn_microseconds_total", "counter",
         "Sum of actor turn latencies, ACTOR_REQUEST sent to ACTOR_REPLY received (mean: this "
         "over turns_total).",
         st->actor_turn_us},
        {"barista_actors_activations_total", "counter", "Actor activations started.",
         st->actor_activations},
        {"barista_actors_moves_total", "counter",
         "Actor activations ended because their key moved to another worker.", st->actor_moves},
        {"barista_actors_deactivations_total", "counter", "Actor activations ended idle.",
         st->actor_deactivations},
        {"barista_actors_commits_total", "counter", "Actor state changes made durable.",
         st->actor_commits},
        {"barista_actors_fenced_total", "counter",
         "Actor state changes refused: a stale epoch, or a worker that no longer owns the key.",
         st->actor_fenced},
        {"barista_broker_batches_out_total", "counter",
         "Frames carrying several messages (WS_BATCH: a loop turn's requests and WebSocket "
         "messages for one worker) sent to workers.",
         st->batches_out},
        {"barista_broker_batched_out_total", "counter",
         "Messages sent to workers inside those frames.", st->batched_out},
        {"barista_broker_batches_in_total", "counter",
         "WS_BATCH frames received from workers (a loop turn's replies and WebSocket "
         "messages).",
         st->batches_in},
        {"barista_broker_batched_in_total", "counter",
         "Messages received from workers inside those frames.", st->batched_in},
        {"barista_websocket_opened_total", "counter", "WebSocket connections placed on a worker.",
         st->ws_opened},
        {"barista_websocket_messages_in_total", "counter",
         "WebSocket messages from clients forwarded to workers.", st->ws_messages_in},
        {"barista_websocket_messages_out_total", "counter",
         "WebSocket messages queued for clients (broadcasts included).", st->ws_messages_out},
        {"barista_broker_streams_total", "counter", "Streamed responses started.", st->streams},
        {"barista_broker_streams_cut_total", "counter",
         "Streamed responses that ended without their end (worker died or cut it, idle, "
         "client gone).",
         st->streams_cut},
        {"barista_broker_stream_bytes_total", "counter",
         "Body bytes of streamed responses received from workers.", st->stream_bytes},
        {"barista_call_gather_bytes", "gauge",
         "Bytes the streamed answers being gathered for workers' calls hold now "
         "(--call-gather-total bounds them).",
         st->call_gather_bytes},
        {"barista_call_gather_refused_total", "counter",
         "Gathered calls answered 503 because --call-gather-total was reached.",
         st->call_gather_refused},
    };
    if (rc == 0)
        rc = singles(out, rows, NELEMS(rows));
    return rc ? rc : services(out, reg);
}

int gw_metrics_actor_types(br_buf *out, const gw_actor_type_stats *t, size_t n)
{
    static const struct {
        const char *name, *kind, *help;
        size_t offset;
    } fams[] = {
        {"barista_actor_type_active", "gauge", "Keys of the actor type active at a worker.",
         offsetof(gw_actor_type_stats, active)},
        {"barista_actor_type_mailbox_waiting", "gauge",
         "Messages of the actor type waiting at the gateway.",
         offsetof(gw_actor_type_stats, waiting)},
        {"barista_actor_type_turns_total", "counter", "Turns of the actor type answered.",
         offsetof(gw_actor_type_stats, turns)},
        {"barista_actor_type_turn_microseconds_total", "counter",
         "Sum of the actor type's turn latencies (mean: this over turns_total).",
         offsetof(gw_actor_type_stats, turn_us)},
        {"barista_actor_type_activations_total", "counter", "Activations of the actor type.",
         offsetof(gw_actor_type_stats, activations)},
        {"barista_actor_type_moves_total", "counter",
         "Activations of the actor type ended because their key moved.",
         offsetof(gw_actor_type_stats, moves)},
        {"barista_actor_type_inflight", "gauge",
         "Messages of the actor type at workers, in a turn or in a worker's mailbox.",
         offsetof(gw_actor_type_stats, inflight)},
        {"barista_actor_type_ticks_total", "counter",
         "Timer and reminder ticks sent to keys of the actor type.",
         offsetof(gw_actor_type_stats, ticks)},
    };
    int rc = 0;
    for (size_t f = 0; f < NELEMS(fams) && rc == 0 && n > 0; f++) {
        rc = family(out, fams[f].name, fams[f].kind, fams[f].help);
        for (size_t i = 0; i < n && rc == 0; i++) {
            uint64_t v;
            memcpy(&v, (const char *)&t[i] + fams[f].offset, sizeof(v));
            char name[2 * GW_ACTOR_TYPE_MAX + 1];
            label_escape(name, sizeof(name), t[i].type);
            rc = appendf(out, "%s{type=\"%s\"} %llu\n", fams[f].name, name, (unsigned long long)v);
        }
    }
    /* The turn latency as a Prometheus histogram (cumulative buckets, seconds). */
    static const char hist[] = "barista_actor_type_turn_seconds";
    if (rc == 0 && n > 0)
        rc = family(out, hist, "histogram",
                    "Turn latency of the actor type: ACTOR_REQUEST sent to ACTOR_REPLY received.");
    for (size_t i = 0; i < n && rc == 0; i++) {
        char name[2 * GW_ACTOR_TYPE_MAX + 1];
        label_escape(name, sizeof(name), t[i].type);
        uint64_t cumulative = 0;
        for (size_t b = 0; b < GW_ACTOR_TURN_BUCKETS && rc == 0; b++) {
            cumulative += t[i].turn_hist[b];
            if (b < GW_ACTOR_TURN_BUCKETS - 1)
                rc = appendf(out, "%s_bucket{type=\"%s\",le=\"%g\"} %llu\n", hist, name,
                             (double)gw_actor_turn_bounds_us[b] / 1e6,
                             (unsigned long long)cumulative);
            else
                rc = appendf(out, "%s_bucket{type=\"%s\",le=\"+Inf\"} %llu\n", hist, name,
                             (unsigned long long)cumulative);
        }
        if (rc == 0)
            rc = appendf(out, "%s_sum{type=\"%s\"} %.6f\n%s_count{type=\"%s\"} %llu\n", hist, name,
                         (double)t[i].turn_us / 1e6, hist, name, (unsigned long long)t[i].turns);
    }
    return rc;
}

int gw_metrics_jobs(br_buf *out, const gw_jobs_stats *st)
{
    int rc = family(out, "barista_jobs", "gauge",
                    "Jobs held, by state: ready (due, waiting for a worker), running (leased), "
                    "scheduled (delayed or waiting to retry), finished (succeeded or dead).");
    if (rc == 0)
        rc = appendf(out,
                     "barista_jobs{state=\"ready\"} %llu\nbarista_jobs{state=\"running\"} %llu\n"
                     "barista_jobs{state=\"scheduled\"} %llu\n"
                     "barista_jobs{state=\"finished\"} %llu\n",
                     (unsigned long long)st->ready, (unsigned long long)st->running,
                     (unsigned long long)st->scheduled, (unsigned long long)st->finished);
    const metric_row rows[] = {
        {"barista_jobs_tasks", "gauge",
         "Tasks that exist: announced by a registered worker, or in their grace period.",
         st->tasks},
        {"barista_jobs_memory_bytes", "gauge",
         "Job payload, result and error bytes held in memory (--jobs-memory bounds it).",
         st->memory},
        {"barista_jobs_accepted_total", "counter", "New jobs written down.", st->accepted},
        {"barista_jobs_completed_total", "counter", "Jobs that succeeded.", st->completed},
        {"barista_jobs_retried_total", "counter", "Attempts that ended with the job to run again.",
         st->retried},
        {"barista_jobs_dead_total", "counter", "Jobs that failed for good.", st->dead},
        {"barista_jobs_cancelled_total", "counter", "Jobs cancelled (DELETE /jobs/{id}).",
         st->cancelled},
    };
    return rc ? rc : singles(out, rows, NELEMS(rows));
}

/* One histogram's samples for the task whose escaped name is `task`. */
static int histogram(br_buf *out, const char *name, const char *task, const gw_jobs_hist *h)
{
    int rc = 0;
    uint64_t cumulative = 0;
    for (size_t b = 0; b < GW_JOBS_HIST_BUCKETS && rc == 0; b++) {
        cumulative += h->buckets[b];
        rc = appendf(out, "%s_bucket{task=\"%s\",le=\"%g\"} %llu\n", name, task,
                     gw_jobs_hist_bounds[b], (unsigned long long)cumulative);
    }
    cumulative += h->buckets[GW_JOBS_HIST_BUCKETS];
    if (rc == 0)
        rc = appendf(out,
                     "%s_bucket{task=\"%s\",le=\"+Inf\"} %llu\n%s_sum{task=\"%s\"} %.6f\n"
                     "%s_count{task=\"%s\"} %llu\n",
                     name, task, (unsigned long long)cumulative, name, task, h->sum_s, name, task,
                     (unsigned long long)h->count);
    return rc;
}

/* The per-task families: one pass over the tasks per family, since a family's samples
 * must be together. */
int gw_metrics_jobs_tasks(br_buf *out, const gw_jobs *jobs)
{
    size_t n = gw_jobs_task_count(jobs);
    char task[2 * GW_JOBS_NAME_MAX + 1];
    gw_jobs_task_stats st;
    int rc = family(out, "barista_jobs_task", "gauge",
                    "Unfinished jobs of a task: queued (due, delayed or waiting to retry) or "
                    "running (leased to a worker).");
    for (size_t i = 0; i < n && rc == 0; i++) {
        gw_jobs_task_stats_get(jobs, i, &st);
        label_escape(task, sizeof(task), st.task);
        rc = appendf(out,
                     "barista_jobs_task{task=\"%s\",state=\"queued\"} %llu\n"
                     "barista_jobs_task{task=\"%s\",state=\"running\"} %llu\n",
                     task, (unsigned long long)st.queued, task, (unsigned long long)st.running);
    }
    if (rc == 0)
        rc = family(out, "barista_jobs_task_ended_total", "counter",
                    "Attempts and jobs of a task that ended: succeeded, failed (an attempt, to "
                    "run again), dead, cancelled.");
    for (size_t i = 0; i < n && rc == 0; i++) {
        gw_jobs_task_stats_get(jobs, i, &st);
        label_escape(task, sizeof(task), st.task);
        static const char *const outcomes[] = {"succeeded", "failed", "dead", "cancelled"};
        const uint64_t values[] = {st.succeeded, st.failed, st.dead, st.cancelled};
        for (size_t k = 0; k < NELEMS(outcomes) && rc == 0; k++)
            rc = appendf(out, "barista_jobs_task_ended_total{task=\"%s\",outcome=\"%s\"} %llu\n",
                         task, outcomes[k], (unsigned long long)values[k]);
    }
    static const struct {
        const char *name;
        const char *help;
    } hists[] = {
        {"barista_jobs_queue_latency_seconds",
         "Time from a job being due (submitted, or its delay or backoff over) to its JOB."},
        {"barista_jobs_run_seconds", "Time from a job's JOB to its JOB_RESULT, per attempt."},
    };
    for (size_t k = 0; k < NELEMS(hists) && rc == 0; k++) {
        rc = family(out, hists[k].name, "histogram", hists[k].help);
        for (size_t i = 0; i < n && rc == 0; i++) {
            gw_jobs_task_stats_get(jobs, i, &st);
            label_escape(task, sizeof(task), st.task);
            rc = histogram(out, hists[k].name, task, k == 0 ? &st.queue_latency : &st.run_time);
        }
    }
    return rc;
}

int gw_metrics_supervisor(br_buf *out, const gw_supervisor_stats *st)
{
    const metric_row rows[] = {
        {"barista_supervisor_processes_running", "gauge", "Local worker processes alive now.",
         st->running},
        {"barista_supervisor_restarts_total", "counter",
         "Local worker processes restarted after they exited.", st->restarts},
        {"barista_supervisor_crash_looping", "gauge",
         "Local worker processes marked crash looping now.", st->crash_looping},
    };
    return singles(out, rows, NELEMS(rows));
}

int gw_metrics_render(const gw_metrics_sources *src, br_buf *out)
{
    int rc = 0;
    if (src->http) {
        gw_http_stats st;
        gw_http_server_stats_get(src->http, &st);
        rc = gw_metrics_http(out, &st, gw_http_server_connections(src->http));
    }
    if (rc == 0 && src->broker) {
        gw_broker_stats st;
        gw_broker_stats_get(src->broker, &st);
        rc = gw_metrics_broker(out, &st, gw_broker_registry(src->broker));
    }
    if (rc == 0 && src->broker) {
        gw_actor_type_stats types[GW_BROKER_MAX_ACTOR_TYPES];
        size_t n = gw_broker_actor_types(src->broker, types, GW_BROKER_MAX_ACTOR_TYPES);
        rc = gw_metrics_actor_types(out, types, n);
    }
    if (rc == 0 && src->jobs) {
        gw_jobs_stats st;
        gw_jobs_stats_get(src->jobs, &st);
        rc = gw_metrics_jobs(out, &st);
        if (rc == 0)
            rc = gw_metrics_jobs_tasks(out, src->jobs);
    }
    if (rc == 0 && src->actors) {
        gw_actors_stats st;
        gw_actors_stats_get(src->actors, &st);
        const metric_row rows[] = {
            {"barista_actors_store_pending", "gauge", "Actor loads and commits not yet durable.",
             st.pending},
            {"barista_actors_store_transactions_total", "counter",
             "Actor store transactions (each a group commit).", st.transactions},
            {"barista_actors_reminders_set_total", "counter",
             "Durable reminders set (or set again) by actors.", st.reminders_set},
            {"barista_actors_reminders_fenced_total", "counter",
             "Reminder changes refused: the asking activation was no longer the key's.",
             st.reminders_fenced},
            {"barista_actors_reminder_ticks_total", "counter",
             "Reminder ticks whose turn succeeded.", st.reminder_ticks},
        };
        rc = singles(out, rows, NELEMS(rows));
    }
    if (rc == 0 && src->supervisor) {
        gw_supervisor_stats st;
        gw_supervisor_stats_get(src->supervisor, &st);
        rc = gw_metrics_supervisor(out, &st);
    }
    return rc;
}
