/*
 * async.c - the worker's hooks into the async toolkit: what starts with the loop, what
 * closes with it and what goes when the worker is destroyed (see async_int.h).
 */
#include <stdlib.h>

#include "worker_int.h"

int br__async_open(br_worker *w)
{
    return br__watch_open(w);
}

void br__async_close(br_worker *w)
{
    br__http_close(w);
    br__watch_close(w);
}

void br__async_release(br_worker *w)
{
    br__http_release(w);
    free(w->calls);
    w->calls = NULL;
    br__flow_release(w);
}
