/*
 * worker_test_main.c - barista-worker-test: the built-in services plus the test-only
 * ones (test_services.h), hosted the way any service program hosts its own.
 */
#include "test_services.h"

/* More than the built-ins and the test services together. */
#define MAX_SERVICES 64
#define NTEST        10

int main(int argc, char **argv)
{
    const br_service_spec *services[MAX_SERVICES];
    size_t n = 0;
    for (size_t i = 0; i < br_builtin_count && n < MAX_SERVICES - NTEST; i++)
        services[n++] = br_builtin_services[i];
    services[n++] = &br_test_stall_service;
    services[n++] = &br_test_life_service;
    services[n++] = &br_test_db_service;
    services[n++] = &br_test_probe_service;
    services[n++] = br_test_public_email_service();
    services[n++] = &br_test_typed_service;
    services[n++] = &br_test_cors_service;
    services[n++] = &br_test_peak_service;
    services[n++] = &br_test_ticker_service;
    services[n++] = &br_test_flow_service;
    return br_worker_main(argc, argv, services, n);
}
