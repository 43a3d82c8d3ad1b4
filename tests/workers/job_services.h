/*
 * job_services.h - test-only job services of barista-worker-test (job_services.c).
 *
 *   public-email  io   the built-in `email` task, declared public: HTTP clients may
 *                      POST /jobs/email (the shipped `email` is internal, enqueued by
 *                      signup).  The job integration tests, the chaos test and the job
 *                      benchmark submit email jobs this way.
 *   probe         cpu  public task `probe`, payload {"sleep_ms": MS, "fail": BOOL,
 *                      "fatal": BOOL}: sleeps MS (at most 600000), then fails with retry
 *                      ("asked to fail"), fails for good ("asked to fail for good") or
 *                      succeeds with {"slept_ms": MS} - the switches the retry, dead-job
 *                      and lease tests need, kept out of the shipped services.
 */
#ifndef BARISTA_TEST_JOB_SERVICES_H
#define BARISTA_TEST_JOB_SERVICES_H

#include <stddef.h>

#include "barista/worker.h"

/* The test job service called name[0..len), or NULL. */
const br_service_spec *test_job_service_find(const char *name, size_t len);

#endif /* BARISTA_TEST_JOB_SERVICES_H */
