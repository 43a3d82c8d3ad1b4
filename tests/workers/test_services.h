/*
 * test_services.h - services that exist only in barista-worker-test, the built-in
 * services' program plus these (worker_test_main.c).
 */
#ifndef BARISTA_TEST_SERVICES_H
#define BARISTA_TEST_SERVICES_H

#include "services.h"

/* io: GET /stall/{block,later,offload}: blocks the loop on purpose (the watchdog). */
extern const br_service_spec br_test_stall_service;

/* io: GET /life: a service with init, data and fini; --life-fail REASON makes its init
 * fail with that reason. */
extern const br_service_spec br_test_life_service;

/* io: /db/...: the PostgreSQL and Redis clients (db_service.c); --test-pg and
 * --test-redis say where the servers are. */
extern const br_service_spec br_test_db_service;

/* cpu: public task `probe`, payload {"sleep_ms": MS, "fail": BOOL, "fatal": BOOL,
 * "progress": BOOL}: sleeps MS (at most 600000; reporting progress every 50 ms with
 * `progress`; stopping with "cancelled while sleeping" when cancelled), then fails
 * with retry ("asked to fail"), fails for good ("asked to fail for good") or succeeds
 * with {"slept_ms": MS, "sub": the subject of the job's identity or ""} - the
 * switches the retry, dead-job, lease, cancel and owner tests need, kept out of the
 * shipped services (job_services.c).  Route POST /probe/enqueue: the body becomes a
 * probe job of the reply, keyed by the X-Probe-Key header.  Tasks `probe-strict`
 * (max_attempts 1, timeout_ms 1000, priority 9) and `probe-slow` (rate 4 per second)
 * run the same handler under per-task policies. */
extern const br_service_spec br_test_probe_service;

/* cpu: task `tick` (internal; calc's handler, so it logs to $BARISTA_TEST_RUNLOG)
 * with two declared schedules (READY.schedules): "fast", every 200 ms with {"add": 1} (catch_up
 * 1000), and "nightly", cron "0 3 * * *".  Hosted only when a test asks for it. */
extern const br_service_spec br_test_ticker_service;

/* io: `public-email`, the built-in `email` task declared public, so that HTTP clients
 * may POST /jobs/email (the shipped `email` is internal, enqueued by signup).  The job
 * integration tests, the chaos test and the job benchmark submit email jobs this way.
 * A copy of br_email_service made on first call (job_services.c). */
const br_service_spec *br_test_public_email_service(void);

/* io: workflows through the SDK (flow_service.c): POST /flow/chain {"n": N} asks for a
 * chain of calc jobs from the handler (202 {"workflow_id"}); public task `fanout`
 * {"n": N} asks for a chord of N calc jobs linked to its job (result {"workflow_id"}). */
extern const br_service_spec br_test_flow_service;

/* io: typed contracts (typed_service.c): body schemas, parameters, declared responses. */
extern const br_service_spec br_test_typed_service;

/* io: GET /cors-sdk, with its own CORS policy (cors_service.c): origin
 * https://sdk.example, GET, header x-sdk, credentials, max age 120 s. */
extern const br_service_spec br_test_cors_service;

/* cpu: GET /peak?ms=N runs N ms and answers {"peak": P, "served": S}, P being the most
 * of its requests that ran at once in the process (peak_service.c). */
extern const br_service_spec br_test_peak_service;

#endif /* BARISTA_TEST_SERVICES_H */
