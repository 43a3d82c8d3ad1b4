/*
 * main.c - barista-worker: the built-in services (workers/services/), hosted by the
 * SDK's br_worker_main like any other service program.
 */
#include "services.h"

int main(int argc, char **argv)
{
    return br_worker_main(argc, argv, br_builtin_services, br_builtin_count);
}
