/*
 * services.h - the built-in example services and the table barista-worker picks them
 * from.  Each service is one small file written against the public SDK
 * (barista/worker.h); barista-worker (workers/src/main.c) hosts the table with
 * br_worker_main.
 */
#ifndef BARISTA_SERVICES_H
#define BARISTA_SERVICES_H

#include "barista/worker.h"

extern const br_service_spec br_hello_service;     /* io: GET /hello, GET /hello/{name} */
extern const br_service_spec br_sleep_service;     /* io: GET /sleep?ms=N */
extern const br_service_spec br_echo_service;      /* io: POST /echo */
extern const br_service_spec br_hash_service;      /* cpu: GET /hash?n=N&data=S */
extern const br_service_spec br_dashboard_service; /* io: GET /dashboard */
extern const br_service_spec br_fetch_service;     /* io: GET /fetch */
extern const br_service_spec br_signup_service;    /* io: POST /signup, enqueues `email` */
extern const br_service_spec br_email_service;     /* io: task email (appends to the outbox) */
extern const br_service_spec br_counter_service;   /* io: keyed actor, /counters/{id} */
extern const br_service_spec br_report_service;    /* cpu: task report (hash rounds) */
extern const br_service_spec br_chat_service;      /* io: WebSocket /ws/echo, /chat/{room} */
extern const br_service_spec br_clock_service;     /* io: GET /clock (SSE), /clock/lines */
extern const br_service_spec br_upload_service;    /* io: POST /upload/hash (streamed body) */
extern const br_service_spec br_relay_service;     /* io: GET /relay/gather, /lines, /summary */

/* The clock's /clock/lines parameters `n` (lines to send) and `hold` (keep the stream
 * open after them), which the relay service takes as they are and passes on. */
extern const br_param_spec br_clock_lines_params[2];

/* The outbox file of the email task when BARISTA_OUTBOX is not set. */
#define BR_OUTBOX_DEFAULT "./barista-outbox.txt"

/* The built-in services, in `barista-worker --list` order. */
extern const br_service_spec *const br_builtin_services[];
extern const size_t br_builtin_count;

/* hash's arithmetic, exposed for tests: SHA-256 of data[0..len) into digest, then
 * `more` further rounds, each hashing the previous raw 32-byte digest. */
#define BR_HASH_BYTES 32
void br_hash_first(uint8_t digest[BR_HASH_BYTES], const void *data, size_t len);
void br_hash_more(uint8_t digest[BR_HASH_BYTES], uint64_t more);

#endif /* BARISTA_SERVICES_H */
