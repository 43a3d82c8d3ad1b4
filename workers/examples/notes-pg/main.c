/* main.c - the notes-pg program: a worker hosting the notes service (PostgreSQL) and
 * the cache service (Redis); --help lists the worker's options and theirs. */
#include <barista/worker.h>

extern const br_service_spec notes_pg_service, cache_service;

int main(int argc, char **argv)
{
    const br_service_spec *services[] = {&notes_pg_service, &cache_service};
    return br_worker_main(argc, argv, services, BR_NELEMS(services));
}
