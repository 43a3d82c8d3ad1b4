/*
 * broker_harness.h - plays the gateway's broker for tests: a real ZeroMQ ROUTER on an
 * ephemeral tcp port, the real barista-worker binary as a child process, and the proto
 * library to speak to it.
 */
#ifndef BARISTA_TEST_BROKER_HARNESS_H
#define BARISTA_TEST_BROKER_HARNESS_H

#include <stdbool.h>
#include <sys/types.h>

#include <zmq.h>

#include "barista/proto.h"

#define HARNESS_MAX_IDENT    256
#define HARNESS_ENDPOINT_MAX 128

typedef struct harness {
    void *ctx;                              /* ZeroMQ context */
    void *router;                           /* the broker's ROUTER */
    char endpoint[HARNESS_ENDPOINT_MAX];    /* where it listens */
    pid_t pid;                              /* the worker, or 0 */
    unsigned char ident[HARNESS_MAX_IDENT]; /* the worker's routing id (last READY) */
    size_t ident_len;                       /* 0 before the first message */
    br_decoder *dec;                        /* decodes what the worker sends */
    zmq_msg_t frame;                        /* the last message's body; decoded msgs point in */
    bool have_frame;                        /* frame holds a message */
    int heartbeat_ms;                       /* the worker's --heartbeat-ms */
    bool auto_heartbeat;                    /* send HEARTBEAT while waiting */
    long long last_hb_sent;                 /* ms clock of the last one */
    uint32_t welcome_features;              /* WELCOME.features harness_register confirms */
} harness;

/* Binds the ROUTER and starts `barista-worker --services services --connect ...
 * --heartbeat-ms hb` plus the extra arguments (a NULL-terminated array, or NULL).
 * 0 or -1. */
int harness_start(harness *h, const char *services, int heartbeat_ms, const char *const *extra);

/* cmocka fixtures: harness_setup starts h as harness_start does and stores it in
 * *state; harness_teardown stops it. */
int harness_setup(void **state, harness *h, const char *services, int heartbeat_ms,
                  const char *const *extra);
int harness_teardown(void **state);

/* Kills the worker if it still runs (SIGKILL), reaps it, closes everything.  Safe
 * twice and on a harness that failed to start. */
void harness_stop(harness *h);

/* Receives the next message from the worker into *out, waiting at most timeout_ms.
 * Strings in *out stay valid until the next receive.  0, or -1 on timeout. */
int harness_recv(harness *h, br_msg *out, int timeout_ms);

/* Like harness_recv but skips HEARTBEATs (counting them into *heartbeats if not NULL)
 * until a message of `type` arrives; other types fail. */
int harness_expect(harness *h, unsigned type, br_msg *out, int timeout_ms, int *heartbeats);

/* Sends msg, or raw bytes, to the worker.  0 or -1. */
int harness_send(harness *h, const br_msg *msg);
int harness_send_raw(harness *h, const void *data, size_t len);

/* Sends GOODBYE(reason), as a broker that forgot the worker or is stopping does. */
int harness_send_goodbye(harness *h, const char *reason);

/* Receives READY and answers WELCOME(broker_id).  Copies READY's capacity and kind. */
int harness_register(harness *h, const char *broker_id, uint32_t *capacity, uint8_t *kind);

/* Receives the REPLY to `id` (skipping and counting heartbeats as harness_expect
 * does) into *out.  0, or -1 on timeout, another message or another id. */
int harness_expect_reply(harness *h, uint64_t id, br_reply *out, int timeout_ms, int *heartbeats);

/* Sends a REQUEST for service/route with the given path, query pairs (name, value,
 * ..., NULL) and deadline. */
int harness_request(harness *h, uint64_t id, const char *service, const char *method,
                    const char *route, const char *path, uint32_t deadline_ms, ...);

/* Waits up to timeout_ms for the worker to exit; *status is waitpid's.  0 or -1. */
int harness_wait_exit(harness *h, int timeout_ms, int *status);

/* True when the worker exits with status 0 within timeout_ms (ASan makes a leak a
 * non-zero status). */
bool harness_exited_cleanly(harness *h, int timeout_ms);

/* Runs barista-worker with args (NULL-terminated) to completion, without a broker:
 * its stdout and stderr together into out (NUL-terminated, truncated to out_len) and
 * its exit code into *code (-1 if it did not exit normally).  0 or -1. */
int harness_run(const char *const *args, char *out, size_t out_len, int *code);

/* The same for another worker program (a path). */
int harness_run_program(const char *bin, const char *const *args, char *out, size_t out_len,
                        int *code);

/* A monotonic clock in ms. */
long long harness_now_ms(void);

/* True when a msgpack map body holds key with string value `want`. */
bool body_has_str(br_str body, const char *key, const char *want);
/* True when a msgpack map body holds key with integer value `want`. */
bool body_has_int(br_str body, const char *key, long long want);

#endif /* BARISTA_TEST_BROKER_HARNESS_H */
