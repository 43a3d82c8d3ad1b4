/*
 * dl.c - the client libraries loaded on first use (see barista/dl.h): one loader, and
 * one table of function pointers per library, filled from the library's own list of
 * the functions the project calls.
 */
#define BR__DL_TABLES /* the real names here: the tables are filled, not called */

#include <dlfcn.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>

#include "barista/dl_curl.h"
#include "barista/dl_hiredis.h"
#include "barista/dl_pq.h"
#include "barista/types.h"

struct br__dl_pq br__dl_pq;
struct br__dl_curl br__dl_curl;
struct br__dl_hiredis br__dl_hiredis;

/* Resolves every function of a library's table from its handle; on a miss, names the
 * function it did not find. */
typedef bool (*dl_resolve_fn)(void *handle, const char **missing);

/* One library: where it is, how far its loading got. */
typedef struct dl_lib {
    const char *soname;         /* what dlopen looks for, in the system's library path */
    const char *what;           /* what it is, for the error message */
    dl_resolve_fn resolve;      /* fills its table */
    pthread_mutex_t mu;         /* one loader at a time; the others wait for its answer */
    int state;                  /* 0 not tried yet, 1 loaded, -1 failed (under mu) */
    char why[BR__DL_ERROR_MAX]; /* the failure, once state is -1 */
} dl_lib;

/* dlsym, naming the function in *missing when the library lacks it. */
static void *dl_sym(void *handle, const char *name, const char **missing)
{
    void *f = dlsym(handle, name);
    if (!f)
        *missing = name;
    return f;
}

#define DL_RESOLVE(table, name)                                                                    \
    if (!(table.name = (__typeof__(table.name))dl_sym(handle, #name, missing)))                    \
        return false;

static bool pq_resolve(void *handle, const char **missing)
{
#define PQ_RESOLVE(name) DL_RESOLVE(br__dl_pq, name)
    BR__DL_PQ_FUNCTIONS(PQ_RESOLVE)
    return true;
}

static bool curl_resolve(void *handle, const char **missing)
{
#define CURL_RESOLVE(name) DL_RESOLVE(br__dl_curl, name)
    BR__DL_CURL_FUNCTIONS(CURL_RESOLVE)
    return true;
}

static bool hiredis_resolve(void *handle, const char **missing)
{
#define HIREDIS_RESOLVE(name) DL_RESOLVE(br__dl_hiredis, name)
    BR__DL_HIREDIS_FUNCTIONS(HIREDIS_RESOLVE)
    return true;
}

static dl_lib pq_lib = {
    BR__DL_PQ_SONAME, "PostgreSQL client", pq_resolve, PTHREAD_MUTEX_INITIALIZER, 0, ""};
static dl_lib curl_lib = {
    BR__DL_CURL_SONAME, "HTTP client", curl_resolve, PTHREAD_MUTEX_INITIALIZER, 0, ""};
static dl_lib hiredis_lib = {
    BR__DL_HIREDIS_SONAME, "Redis client", hiredis_resolve, PTHREAD_MUTEX_INITIALIZER, 0, ""};

/* Opens the library and fills its table: 1, or -1 with lib->why set.  A library once
 * opened stays: its table points into it for the rest of the process. */
static int dl_open(dl_lib *lib)
{
    void *handle = dlopen(lib->soname, RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        const char *err = dlerror();
        snprintf(lib->why, sizeof(lib->why), "cannot load %s (%s): %s", lib->soname, lib->what,
                 err ? err : "dlopen failed");
        return -1;
    }
    const char *missing = "?";
    if (!lib->resolve(handle, &missing)) {
        snprintf(lib->why, sizeof(lib->why), "cannot load %s (%s): it has no %s", lib->soname,
                 lib->what, missing);
        dlclose(handle);
        return -1;
    }
    return 1;
}

static int dl_load(dl_lib *lib, char *why, size_t len)
{
    pthread_mutex_lock(&lib->mu);
    if (lib->state == 0)
        lib->state = dl_open(lib);
    int state = lib->state;
    pthread_mutex_unlock(&lib->mu);
    if (state > 0)
        return 0;
    if (why && len)
        snprintf(why, len, "%s", lib->why);
    return BR_EIO;
}

int br__dl_pq_load(char *why, size_t len)
{
    return dl_load(&pq_lib, why, len);
}

int br__dl_curl_load(char *why, size_t len)
{
    return dl_load(&curl_lib, why, len);
}

int br__dl_hiredis_load(char *why, size_t len)
{
    return dl_load(&hiredis_lib, why, len);
}
