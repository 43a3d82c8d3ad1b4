/*
 * worker_int.h - the worker runtime's insides, shared by worker.c (the connection to
 * the broker: registration, heartbeats, reconnects, drain) and dispatch.c (requests:
 * routing, running handlers, replies, cancels).
 *
 * Brokers and registrations.  A worker serves one broker per endpoint (a link, each
 * with its own DEALER socket).  Every READY on a link starts a new registration
 * (`gen`, unique among all links), and everything in flight remembers the registration
 * it arrived under: its answer goes back on that link, and only while that
 * registration lasts.  Work still running when its registration ends (the broker fell
 * silent, or asked for READY again) is cancelled and becomes an orphan, whose replies
 * are never sent.  The capacity is shared by the links' windows and the orphans
 * (credit.h): a READY announces only the share that is free, and each orphan that
 * finishes frees its slot for whichever link's share is short, with CREDIT.
 * (PROTOCOL.md lets a worker grow its window with CREDIT; announcing slots it cannot
 * serve yet would break the credit contract.)
 */
#ifndef BARISTA_WORKER_INT_H
#define BARISTA_WORKER_INT_H

#include <stdatomic.h>

#include "async_int.h"
#include "barista/curve.h"
#include "barista/turn_end.h"
#include "barista/ws_batch.h"
#include "barista/zsock.h"
#include "registry.h"
#include "request.h"

/* Longest broker id remembered to notice a gateway restart. */
#define BR_BROKER_ID_MAX 128
/* Reconnect backoff: first delay, and the cap it doubles up to. */
#define BR_BACKOFF_FIRST_MS 100
#define BR_BACKOFF_MAX_MS   5000
/* Heartbeats missed before the broker counts as dead. */
#define BR_LIVENESS 3
/* After the drain timeout cancels what is left, how long cancelled work may take. */
#define BR_DRAIN_GRACE_MS 2000
/* How long closing waits for the last replies to leave the socket. */
#define BR_CLOSE_LINGER_MS 1000

/* Job results remembered or waiting to be handed off (handoff.c), at most, their
 * bytes, and how long one waits for a broker that takes it. */
#define BR_HANDOFF_MAX        4096u
#define BR_HANDOFF_BYTES      (16u * 1024u * 1024u)
#define BR_HANDOFF_PENDING_MS 60000u

/* Longest reason br_svc_fail keeps. */
#define BR_SVC_WHY_MAX 256

typedef struct br__actor br__actor;     /* one active actor key (actors.c) */
typedef struct br__actors br__actors;   /* the worker's actor keys (actors.c) */
typedef struct br__handoff br__handoff; /* a job result to hand off (handoff.c) */

/* A hosted service at run time (barista/worker.h's br_svc). */
struct br_svc {
    const br_service_spec *spec; /* its declaration */
    struct br_worker *worker;    /* the worker hosting it */
    void *data;                  /* br_svc_data: spec->data until init replaces it */
    bool ready;                  /* its init succeeded: its fini is due */
    br__arena memory;            /* br_svc_alloc: freed when the worker is destroyed */
    char why[BR_SVC_WHY_MAX];    /* br_svc_fail's reason */
};

/* The value of one service option in this worker (shared by every service that
 * declares the name). */
typedef struct br__option {
    const br_option_spec *spec; /* the first declaration of the name */
    char *value;                /* heap copy, or NULL when unset */
} br__option;

/* Most brokers one worker serves (endpoints given, or addresses one name resolves to). */
#define BR_WORKER_MAX_BROKERS 64
/* A link's address as it sorts among its name's (resolve.c): family, then bytes. */
#define BR_LINK_ADDR_KEY 17

/* Why a link is leaving: it said GOODBYE, and once its broker acknowledged and nothing
 * of its registration runs any more it registers again (YIELD: to hand back slots
 * beyond its share, credit.h) or closes for good (RETIRE: its address left the
 * name's answer, resolve.c). */
typedef enum br__leave { BR_LEAVE_NONE, BR_LEAVE_YIELD, BR_LEAVE_RETIRE } br__leave;

/* One endpoint as given (--connect).  A tcp:// endpoint whose host is a name is a
 * DNS source: the worker resolves it on the loop (uv_getaddrinfo) and keeps one link
 * per address (resolve.c); any other endpoint is one link as it is. */
typedef struct br__source {
    struct br_worker *w;     /* the worker */
    uint32_t index;          /* in w->sources */
    char *endpoint;          /* as given (owned) */
    char *host;              /* the name to resolve (owned), or NULL: not a DNS source */
    char *port;              /* its port, as given (owned with host) */
    uv_getaddrinfo_t lookup; /* the resolution in flight */
    bool resolving;          /* lookup is in flight */
    bool again;              /* resolve again once lookup ends (asked meanwhile) */
    int last_error;          /* the last resolution's error, to log a change once */
    uint32_t naddrs;         /* addresses of the last answer */
} br__source;

/* One broker the worker serves: its own DEALER socket, registration, heartbeats and
 * reconnects (PROTOCOL.md 6-7), and its window of the shared capacity (credit.h). */
typedef struct br__link {
    struct br_worker *w;              /* the worker */
    uint32_t index;                   /* in w->links */
    bool used;                        /* the slot holds a broker (slots are reused,
                                         never moved: handles point into them) */
    uint32_t source;                  /* the w->sources entry it came from */
    uint8_t addr[BR_LINK_ADDR_KEY];   /* a name's address, its place among the name's
                                         (br__link_before); zero for other sources */
    br__leave leaving;                /* said GOODBYE to leave or re-register */
    uint64_t leave_at;                /* uv_now when it started leaving */
    char *endpoint;                   /* the broker's endpoint (owned) */
    br_zsock *zs;                     /* the DEALER socket, or NULL */
    uint64_t gen;                     /* the current registration (unique among every
                                         link's), 0 while there is none */
    uint32_t window;                  /* slots this broker holds: READY + CREDITs */
    uint32_t credit_owed;             /* CREDIT to send once WELCOME arrives */
    bool registered;                  /* WELCOME received for the current READY */
    bool failed;                      /* lost (silent, refused): waiting to reconnect */
    bool drain_acked;                 /* the broker answered our GOODBYE */
    uint64_t last_send;               /* uv_now of the last message sent */
    uint64_t last_recv;               /* uv_now of the last message received (or READY) */
    uint32_t broker_hb_ms;            /* the broker's heartbeat interval, from WELCOME */
    uint8_t broker_version;           /* WELCOME's protocol version: what we write to
                                         this broker; 0 before the first WELCOME */
    char broker_id[BR_BROKER_ID_MAX]; /* the last WELCOME's broker id ("" before any) */
    bool ws_batch;                    /* WELCOME confirmed WS_BATCH: ws.c batches */
    bool req_batch;                   /* WELCOME confirmed REQ_BATCH: replies batched too */
    bool call_stream;                 /* WELCOME confirmed CALL_STREAM: calls may ask for
                                         a streamed answer (call.c) */
    bool job_handoff;                 /* WELCOME confirmed JOB_HANDOFF: a gateway of a
                                         shared queue (handoff.c) */
    br_ws_batch batch;                /* messages for this broker this turn (batch.c) */
    uint32_t backoff_ms;              /* the next reconnect delay before jitter */
    bool ever_registered;             /* some READY on it was WELCOMEd */
    /* Kept when the slot is reused (br__link_add clears what comes before). */
    bool timer_ready; /* retry is initialised (closed at shutdown) */
    uv_timer_t retry; /* reconnect after backoff */
} br__link;

struct br_worker {
    uv_loop_t loop;                          /* the worker's one event loop */
    br__registry reg;                        /* services, their READY description, routing */
    char *connect;                           /* broker endpoints as given (owned) */
    br__link *links;                         /* BR_WORKER_MAX_BROKERS slots, one per broker */
    uint32_t nlinks;                         /* slots ever used (some may be free again) */
    uint32_t nused;                          /* slots holding a broker now */
    uint32_t link_seed;                      /* picks the link a short capacity favours
                                                first (link_seed % nlinks, counted in
                                                br__link_before's order) */
    br__source *sources;                     /* the endpoints given (nsources) */
    uint32_t nsources;                       /* entries in sources */
    uint32_t resolve_ms;                     /* how often DNS sources are resolved */
    uv_timer_t resolve_timer;                /* resolves them every resolve_ms */
    bool resolve_ready;                      /* resolve_timer is initialised */
    br__link *cur;                           /* the link whose message is being handled */
    char *id;                                /* worker id (owned) */
    bool curve;                              /* connect with CURVE (the two fields below) */
    char curve_server[BR_CURVE_Z85_LEN + 1]; /* broker's public key, Z85 */
    br_curve_keypair curve_keys;             /* our key pair; the secret wiped on destroy */
    uint32_t capacity;                       /* requests in flight at once: the credit */
    uint32_t heartbeat_ms;                   /* our heartbeat interval */
    uint32_t drain_ms;                       /* drain timeout */
    void *zctx;                              /* ZeroMQ context, created in run (after any fork) */
    br_decoder *dec;                         /* decodes every incoming message */
    br_buf out;                              /* reused encode buffer (loop thread) */
    uv_timer_t tick;                         /* heartbeats and broker liveness */
    uv_timer_t drain_timer;                  /* drain timeout, then the grace after it */
    uv_signal_t sigterm, sigint;             /* start the drain (with handle_signals) */
    bool no_req_batch;                       /* READY leaves BR_FEATURE_REQ_BATCH out */
    bool handle_signals;                     /* SIGTERM and SIGINT drain */
    uv_async_t wake;                         /* br_worker_stop from any thread */
    atomic_bool stop_asked;                  /* br_worker_stop was called */
    bool wake_ready;                         /* wake is open (under wake_lock) */
    uv_mutex_t wake_lock;                    /* guards wake_ready against br_worker_stop */
    bool own_zctx;                           /* zctx is ours to terminate */
    br_svc *svcs;                            /* one per hosted service, in reg order */
    br__option *options;                     /* the hosted services' options */
    size_t noptions;                         /* entries in options */
    uint64_t served;                         /* requests and jobs ended */
    uint64_t recycle_at;                     /* drain once served reaches it (0: never) */
    uint64_t max_rss;                        /* drain once the RSS passes it, bytes (0: never) */
    uint64_t gen;                            /* cur's registration while a message is
                                                handled, else 0 (see file comment) */
    uint64_t gen_next;                       /* the last registration number given */
    bool draining;                           /* SIGTERM seen: GOODBYE sent, no new work */
    bool drain_expired;                      /* the drain timeout cancelled what was left */
    bool closing;                            /* everything is being closed */
    int result;                              /* what br_worker_run returns */
    uint64_t rng;                            /* xorshift state for jitter */
    br_req *head;                            /* in-flight requests, all registrations */
    uint32_t inflight;                       /* entries in the list */
    uint32_t orphans;                        /* of which from earlier registrations */
    br_req **buckets;                        /* in-flight requests by id */
    size_t nbuckets;                         /* a power of two */
    struct br_jobctx *jobs;                  /* jobs in flight (counted in inflight), jobs.c */
    br_str *tasks;                           /* READY.tasks: every hosted service's tasks */
    uint32_t ntasks;                         /* entries in tasks */
    br_str *public_tasks;                    /* READY.public_tasks: those marked is_public,
                                                after tasks in the same allocation */
    uint32_t npublic_tasks;                  /* entries in public_tasks */
    br_schedule_decl *schedules;             /* READY.schedules: every task's (jobs.c) */
    uint32_t nschedules;                     /* entries in schedules */
    uint32_t stall_ms;                       /* watchdog threshold */
    br__calls *calls;           /* calls in flight (call.c), or NULL before the first */
    struct br__flow *flows;     /* WORKFLOWs waiting for their answer (workflow.c) */
    uint64_t flow_next_id;      /* their ids are never reused by a worker */
    br__http *http;             /* the async HTTP client (http_client.c), or NULL */
    br__watch *watch;           /* the loop watchdog (watchdog.c), or NULL */
    br_zsock *curve_monitor;    /* CURVE handshake events (curve_client.c), or NULL */
    void *curve_monitored;      /* the socket the monitor watches (the first link's) */
    uint32_t curve_monitors;    /* monitors opened, for unique endpoints */
    uint64_t curve_logged;      /* uv_now of the last handshake-failure line; 0: none */
    br__actors *actors;         /* actor keys active here (actors.c), or NULL before the first */
    struct br_ws **ws_buckets;  /* WebSocket connections by id (ws.c), or NULL before one */
    size_t nws;                 /* entries in ws_buckets */
    struct br_ws *ws_closed;    /* connections their handlers closed, freed at a safe point */
    br_turn_end batch_flush;    /* sends the links' batches at the end of a loop turn */
    bool batch_flush_init;      /* batch_flush is initialised (at the first batch) */
    br__handoff *handoffs;      /* job results remembered or to hand off, oldest first */
    br__handoff *handoffs_tail; /* the newest, or NULL */
    uint32_t nhandoffs;         /* entries (BR_HANDOFF_MAX) */
    size_t handoff_bytes;       /* their bytes (BR_HANDOFF_BYTES) */
};

/* Encodes msg and sends it to the broker whose message is being handled (w->cur), or
 * outside a message to the first registered one; drops it (logging why) when there is
 * no socket or the send fails.  Returns 0 or a negative br_err. */
int br__worker_send(br_worker *w, const br_msg *msg);

/* Sends msg on the link whose current registration is gen: BR_ECLOSED when that
 * registration is over. */
int br__worker_send_gen(br_worker *w, uint64_t gen, const br_msg *msg);

/* True while registration gen lasts (its answers still go out). */
bool br__gen_live(const br_worker *w, uint64_t gen);

/* The protocol version spoken under registration gen (BR_PROTO_VERSION before its
 * WELCOME, 0 when it is over). */
uint8_t br__gen_version(const br_worker *w, uint64_t gen);

/* A registration may call now: the link a call of a request under gen goes out on
 * (gen's own when live, else any registered one), or NULL. */
br__link *br__worker_call_link(br_worker *w, uint64_t gen);

/* resolve.c: parses w->connect into sources and makes the links of those that need
 * no resolution (prefer_first: the first link gets a short capacity).  0, or BR_EINVAL
 * / BR_ENOMEM after logging why. */
int br__sources_init(br_worker *w, bool prefer_first);
void br__sources_release(br_worker *w);

/* resolve.c: starts resolving the DNS sources, now and every resolve_ms; stop ends it
 * (closing the timer, cancelling what can be).  Loop thread. */
void br__sources_start(br_worker *w);
void br__sources_stop(br_worker *w);

/* resolve.c: the order the capacity is planned in (credit.h's positions): a link
 * before those of later endpoints in --connect, a name's addresses by address (IPv4
 * before IPv6), free slots last - never the order the links were made in, which is
 * the order the lookups answered. */
bool br__link_before(const br__link *a, const br__link *b);

/* resolve.c: resolve source `index` again soon (a link of it fell silent: the name
 * may point elsewhere now). */
void br__sources_resolve(br_worker *w, uint32_t index);

/* A new link to `endpoint` (copied) for source `source`, not connected yet; NULL when
 * every slot is taken or memory ran out (logged). */
br__link *br__link_add(br_worker *w, uint32_t source, const char *endpoint);

/* Connects a link made while the loop runs (its READY announces its share of what is
 * free: add every new link before opening any, so that they share it). */
void br__link_open(br__link *l);

/* l's address is gone: it stops taking work and closes once what it holds is done (at
 * once when it is not connected). */
void br__link_retire(br__link *l);

/* An orphan (work whose registration ended) finished: its slot is free again. */
void br__worker_orphan_done(br_worker *w);

/* ws.c: handles a WS_* message; false when m is of another type. */
bool br__ws_handle(br_worker *w, const br_msg *m);
/* ws.c: every connection of registration gen (0: of every one) is over (the broker
 * session ended): on_close(1006). */
void br__ws_drop_gen(br_worker *w, uint64_t gen);
/* ws.c: drop_all, then the table's memory. */
void br__ws_release(br_worker *w);
/* batch.c: adds m to l's batch for this loop turn (l's broker reads WS_BATCH; a REPLY
 * only when it agreed on BR_FEATURE_REQ_BATCH), sent as one frame at the end of the
 * turn or before any other message on l.  0 or the encoder's error (nothing added). */
int br__batch_send(br__link *l, const br_msg *m);
/* batch.c: sends the messages batched for l's broker now (one frame). */
void br__batch_flush_link(br__link *l);
/* batch.c: l's registration ended: what was batched for it is dropped. */
void br__batch_forget_link(br__link *l);
/* batch.c: closes the batch flush handle (shutdown). */
void br__batch_close_handles(br_worker *w);
/* worker.c: one message from l's broker, decoded from `bytes` (its whole envelope). */
void br__worker_handle_msg(br__link *l, const br_msg *msg, br_str bytes);
/* batch.c: a WS_BATCH from l's broker: each message in it handed to
 * br__worker_handle_msg as if it had come alone, in order. */
void br__batch_recv(br__link *l, br_str messages);

/* The link of registration gen while it has a socket, or NULL. */
br__link *br__worker_link(br_worker *w, uint64_t gen);
/* Sends one already encoded frame on l.  0 or br_zsock_send's error (logged). */
int br__link_send_frame(br__link *l, br_str frame);

/* Called by the dispatcher whenever the in-flight count drops. */
void br__worker_request_done(br_worker *w);

/* Dispatcher: table of in-flight requests; sized for capacity.  0 or BR_ENOMEM. */
int br__dispatch_init(br_worker *w);
void br__dispatch_release(br_worker *w);

/* Handles a decoded REQUEST whose strings point into frame[0..len); with `actor` (an
 * ACTOR_REQUEST, m its request) the handler runs in its key's turn. */
void br__dispatch_request(br_worker *w, const br_request *m, const void *frame, size_t len,
                          const br_actor_request *actor);

/* Runs req's handler now (an I/O request whose actor turn has come). */
void br__dispatch_run(br_worker *w, br_req *req);

/* actors.c: puts req (an actor route's request) in its key's mailbox and starts the
 * turns that may start.  0, BR_EINVAL (not an actor route of that type), BR_ENOMEM. */
int br__actors_enqueue(br_worker *w, br_req *req, const br_actor_request *m);

/* actors.c: the state commit of req's turn, for its ACTOR_REPLY; the actor's state
 * takes the change. */
void br__actors_reply(br_req *req, br_actor_reply *out);

/* actors.c: req's turn (or its wait) ended: the key's next message may run. */
void br__actors_turn_done(br_worker *w, br_req *req);

/* actors.c: DEACTIVATE: the key's activation ends once its mailbox is empty. */
void br__actors_deactivate(br_worker *w, const br_deactivate *m);

/* actors.c: a new registration began: activations of the old broker session with
 * nothing running or waiting end (the gateway activates them again, with their
 * committed state, when their keys come back). */
void br__actors_new_registration(br_worker *w);

/* actors.c: frees every actor key (worker destroyed). */
void br__actors_release(br_worker *w);

/* The current registration's request `id` in flight, or NULL. */
br_req *br__dispatch_find(br_worker *w, uint64_t id);

/* stream.c: a piece of a request's streamed body, and its end. */
void br__stream_body_chunk(br_worker *w, uint64_t id, br_str data);
void br__stream_body_end(br_worker *w, uint64_t id, br_str error);

/* stream.c: STREAM_WINDOW(id, bytes) from the broker. */
void br__stream_window(br_worker *w, uint64_t id, uint32_t bytes);

/* stream.c: the end message of a streamed request that is complete (STREAM_END with
 * its error, "cancelled" after a cancel), for the dispatcher to send. */
void br__stream_end_msg(br_req *req, br_msg *out);

/* Cancels the current registration's request `id`, if it is in flight. */
void br__dispatch_cancel(br_worker *w, uint64_t id);

/* Cancels every request in flight (drain timeout). */
void br__dispatch_cancel_all(br_worker *w);

/* Requests and jobs of registration gen still in flight. */
uint32_t br__dispatch_count_gen(br_worker *w, uint64_t gen);

/* Registration gen ended: cancels its requests and jobs in flight, and returns how
 * many of them still run (orphans now; each calls br__worker_orphan_done when it ends). */
uint32_t br__dispatch_registration_lost(br_worker *w, uint64_t gen);

/* jobs.c: READY's task list from the services (0 or BR_ENOMEM), and its release. */
int br__jobs_init(br_worker *w);
void br__jobs_release(br_worker *w);

/* jobs.c: runs a decoded JOB (its strings are copied): JOB_ACK, then the task. */
void br__jobs_run(br_worker *w, const br_job *m);

/* jobs.c: registration gen ended: the jobs it holds still running become orphans
 * (counted in the result). */
uint32_t br__jobs_registration_lost(br_worker *w, uint64_t gen);

/* jobs.c: the worker's tick: renews the leases of running jobs (JOB_PROGRESS at least
 * every third of a lease) and sends what their handlers reported. */
void br__jobs_tick(br_worker *w);

/* jobs.c: after WELCOME, TASK_POLICY with the policies the tasks declare (none when
 * no task declares one, or the broker speaks protocol version 1). */
void br__jobs_send_policies(br_worker *w);

/* jobs.c: JOB_CANCEL for the job `id`: marks it, and calls its cancel callback. */
void br__jobs_cancel(br_worker *w, br_str id);

/* handoff.c: a result was sent under registration gen: remembered for the liveness
 * window when its broker takes handoffs. */
void br__handoff_sent(br_worker *w, uint64_t gen, br_str id, uint32_t attempt, uint8_t outcome,
                      br_str result, br_str error);
/* handoff.c: an orphan's result (its registration gen ended; its broker took
 * handoffs): handed off on the next tick. */
void br__handoff_orphan(br_worker *w, uint64_t gen, br_str id, uint32_t attempt, uint8_t outcome,
                        br_str result, br_str error);
/* handoff.c: registration gen ended: the results remembered from it are handed off. */
void br__handoff_lost(br_worker *w, uint64_t gen);
/* handoff.c: sends m to every registered broker that takes handoffs but gen's; how
 * many took it. */
int br__handoff_send(br_worker *w, uint64_t gen, const br_msg *m);
/* handoff.c: the tick: pending results go out; old ones are forgotten. */
void br__handoff_tick(br_worker *w);
/* handoff.c: frees every entry (worker destroyed). */
void br__handoff_release(br_worker *w);

/* workflow.c: sends WORKFLOW for a handler's request (req) or a task's job (parent_id
 * its id, job its context) under registration gen; cb hears WORKFLOW_REPLY.  As
 * br_req_workflow_submit. */
int br__flow_send(br_worker *w, uint64_t gen, br_req *req, struct br_jobctx *job, br_str parent_id,
                  br_str identity, const void *canvas, size_t len, br_workflow_fn cb, void *arg);

/* workflow.c: WORKFLOW_REPLY from the broker: its submitter's callback runs. */
void br__flow_reply(br_worker *w, const br_workflow_reply *m);

/* workflow.c: registration gen ended: its WORKFLOWs' callbacks get 502. */
void br__flow_fail_gen(br_worker *w, uint64_t gen);

/* workflow.c: frees what is left of the list (worker destroyed). */
void br__flow_release(br_worker *w);

/* workflow.c: job's attempt ended: its WORKFLOWs' callbacks will not run. */
void br__flow_job_ended(br_worker *w, struct br_jobctx *job);

/* Logs to stderr with the process's prefix, "NAME[pid]: " (NAME: br__log_name). */
void br__log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The program name log lines start with ("barista-worker" until set; br_worker_main
 * sets it from argv[0] once, before any thread starts). */
void br__log_name(const char *name);

/* Creates a worker like br_worker_new with the CURVE keys already loaded (keys NULL:
 * no CURVE); `server_key` is the broker's Z85 public key.  The keys are copied. */
br_worker *br__worker_new(const br_service_spec *const *services, size_t n,
                          const br_worker_options *options, const char *server_key,
                          const br_curve_keypair *keys);

/* br_worker_run in three steps, for a caller that drives the loop itself (the test
 * client): open initialises the loop and the handles, runs every init and connects
 * (zctx: a ZeroMQ context to use, e.g. for inproc://; NULL: one of our own); the caller
 * then runs w->loop until it has no more handles; close returns what run would. */
int br__worker_open(br_worker *w, void *zctx);
int br__worker_close(br_worker *w);

/* worker.c: closes every handle of the worker (after the services' fini, unless the
 * drain gave up on stuck requests).  Loop thread; a second call does nothing. */
void br__worker_shutdown(br_worker *w);

/* worker.c: the worker's tick, four times per heartbeat interval: heartbeats, broker
 * liveness, job leases, recycling by memory. */
void br__worker_tick(uv_timer_t *t);

/* Starts the drain (GOODBYE, in-flight work finishes, then everything closes), logging
 * why; a second call does nothing.  Loop thread. */
void br__worker_drain(br_worker *w, const char *why);

/* svc.c: the services' run-time state and their options (from the environment and the
 * defaults, checked).  0, or BR_EINVAL / BR_EVALUE / BR_ENOMEM with the reason in why. */
int br__svcs_init(br_worker *w, char *why, size_t why_len);
void br__svcs_release(br_worker *w);

/* svc.c: runs every init in order (0, or BR_EINVAL after logging the failure and
 * running the fini of those set up), and every fini in reverse order. */
int br__svcs_start(br_worker *w);
void br__svcs_stop(br_worker *w);

/* svc.c: checks value against an option's type, bounds and check function.  0, or
 * BR_EVALUE with a short "want ..." reason in why. */
int br__option_check(const br_option_spec *o, const char *value, char *why, size_t why_len);

/* curve_client.c: makes the DEALER `sock` a CURVE client with w's keys and starts
 * reporting its failed handshakes (call before zmq_connect).  0, or -1 when an option
 * cannot be set (logged); a monitor that fails to start is logged and ignored. */
int br__curve_client_open(br_worker *w, void *sock);

/* curve_client.c: stops the handshake monitor of `sock`, before the socket closes. */
void br__curve_client_close(br_worker *w, void *sock);

#endif /* BARISTA_WORKER_INT_H */
