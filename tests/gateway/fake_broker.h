/*
 * fake_broker.h - a broker for the job queue's unit tests (test_jobs_queue.c).
 *
 * fake_broker.c defines the calls of broker.h that the job queue makes -
 * gw_broker_attach, gw_broker_detach, gw_broker_accepting, gw_broker_send_job,
 * gw_broker_send_job_cancel, gw_broker_respond_reply, gw_broker_respond_error, and the
 * edge's gw_edge_req_info (no edge: every caller anonymous) - so that a program linking it with
 * the queue and without gw_broker runs the queue against this instead (link-time
 * replacement; tests/gateway/CMakeLists.txt).  struct gw_broker is defined here, in
 * the open, for the tests to read.
 *
 * The fake keeps credit the way broker.c does: a JOB spends one of the worker's
 * credits, a JOB_RESULT the queue settles DONE or LATE gives it back, and credit left
 * over is offered to the queue through its credit hook.  The fake_worker_* calls play
 * a worker's messages, each calling the queue's hook as broker.c does for it.
 */
#ifndef BARISTA_TEST_FAKE_BROKER_H
#define BARISTA_TEST_FAKE_BROKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker.h"
#include "jobs_store.h"
#include "registry.h"

/* JOB messages the fake remembers; more are counted only. */
#define FAKE_SENT_MAX 2048
/* Payload bytes remembered per JOB. */
#define FAKE_PAYLOAD_MAX 32
/* Longest task name remembered per JOB. */
#define FAKE_TASK_MAX 32
/* Workers registered at once. */
#define FAKE_WORKERS_MAX 24
/* Tasks one READY of the fake announces, at most. */
#define FAKE_TASKS_MAX 128

/* A JOB message as the fake sent it. */
typedef struct sent_job {
    gw_worker *w;                   /* the worker it went to */
    char id[GW_JOB_ID_MAX + 1];     /* the job id */
    char task[FAKE_TASK_MAX];       /* task name (truncated) */
    char payload[FAKE_PAYLOAD_MAX]; /* the payload's first bytes */
    uint32_t payload_len;           /* its whole length */
    uint32_t attempt;               /* 1 for the first run */
    uint32_t lease_ms;              /* the lease announced */
    int64_t at_ms;                  /* wall clock (CLOCK_REALTIME, ms) of the send */
} sent_job;

/* The fake broker: zeroed, then fake_broker_init. */
struct gw_broker {
    gw_broker_hooks hooks;                /* what the queue attached */
    void *data;                           /* its data; NULL while nothing is attached */
    int attaches;                         /* attach calls that succeeded */
    int detaches;                         /* detach calls that found the attached data */
    int attach_rc;                        /* what attach answers: 0, or an error */
    bool accepting;                       /* gw_broker_accepting's answer */
    br_str unsendable;                    /* a payload send_job cannot encode */
    sent_job sent[FAKE_SENT_MAX];         /* JOBs sent, in order */
    size_t nsent;                         /* JOBs sent (may pass FAKE_SENT_MAX) */
    unsigned refused;                     /* sends refused: no credit, not live */
    unsigned responses;                   /* respond_reply and respond_error calls */
    unsigned cancels;                     /* JOB_CANCELs sent */
    char cancelled[GW_JOB_ID_MAX + 1];    /* the job id of the last one */
    gw_worker workers[FAKE_WORKERS_MAX];  /* the registry */
    char worker_ids[FAKE_WORKERS_MAX][8]; /* their ids: "w1", "w2", ... */
    size_t nworkers;                      /* entries used */
};

/* A started broker with no worker and nothing attached. */
void fake_broker_init(gw_broker *b);

/* Registers a live worker holding `credit`, as gw_registry_add does (no hook yet:
 * fake_worker_join announces it).  NULL past FAKE_WORKERS_MAX. */
gw_worker *fake_worker_new(gw_broker *b, uint32_t credit);

/* READY: the worker_joined hook with the NULL-terminated `tasks` (at most
 * FAKE_TASKS_MAX), every one internal. */
void fake_worker_join(gw_broker *b, gw_worker *w, const char *const *tasks);

/* READY with `tasks`, of which the NULL-terminated `public_tasks` are marked public. */
void fake_worker_join_public(gw_broker *b, gw_worker *w, const char *const *tasks,
                             const char *const *public_tasks);

/* CREDIT n: adds it, then offers what the worker has to the queue. */
void fake_worker_credit(gw_broker *b, gw_worker *w, uint32_t n);

/* JOB_ACK for job `id`: the job_ack hook's answer. */
bool fake_worker_ack(gw_broker *b, gw_worker *w, const char *id);

/* JOB_RESULT for job `id`: the queue settles the job; DONE and LATE give the credit
 * back and offer it to the queue (broker.c's on_job_result).  The settlement. */
gw_job_settle fake_worker_result(gw_broker *b, gw_worker *w, const char *id, br_job_outcome outcome,
                                 br_str result, const char *error);

/* JOB_PROGRESS for job `id` (progress < 0: none; note NULL: none): the job_progress
 * hook's answer. */
bool fake_worker_progress(gw_broker *b, gw_worker *w, const char *id, double progress,
                          const char *note);

/* TASK_POLICY with one policy: the task_policy hook. */
void fake_worker_policy(gw_broker *b, gw_worker *w, const br_task_policy *p);

/* The worker is forgotten (dead or gone): not live, and the worker_gone hook. */
void fake_worker_gone(gw_broker *b, gw_worker *w);

#endif /* BARISTA_TEST_FAKE_BROKER_H */
