/* main.c - the notes program: a worker hosting the notes services (--help lists the
 * worker's options; --services notes or --services wordcount picks one kind). */
#include <barista/worker.h>

extern const br_service_spec notes_service, wordcount_service;

int main(int argc, char **argv)
{
    const br_service_spec *services[] = {&notes_service, &wordcount_service};
    return br_worker_main(argc, argv, services, BR_NELEMS(services));
}
