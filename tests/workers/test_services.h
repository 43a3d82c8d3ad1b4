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

/* io: typed contracts (typed_service.c): body schemas, parameters, declared responses. */
extern const br_service_spec br_test_typed_service;

#endif /* BARISTA_TEST_SERVICES_H */
