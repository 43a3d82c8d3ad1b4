/*
 * barista/dl.h - the client libraries most processes never use (libpq, libcurl,
 * hiredis), loaded on first use with dlopen rather than linked: a gateway with the
 * SQLite stores, or a worker whose services never call PostgreSQL, HTTP or Redis, never
 * maps them, nor the libraries they pull in (libcrypto, libssl, Kerberos, LDAP, ...),
 * whose pages count in every process's RSS.
 *
 * One table of function pointers per library (barista/dl_pq.h, dl_curl.h,
 * dl_hiredis.h), resolved with dlsym by its load function.  Those headers include the
 * library's own header for its types and then redirect each function the project calls
 * to the table, so code calls PQexec() as before - after its load function returned 0,
 * which the entry points do: the PostgreSQL stores' open functions in the gateway,
 * br_pg_pool_new, br_redis_pool_new and the first br_http_fetch in the workers.
 *
 * Loading is once per process and thread-safe (the first caller loads, the others wait
 * for it); a failure is remembered too, so every later call fails the same way at once.
 * Internal: not part of the installed SDK, whose library keeps these symbols local.
 */
#ifndef BARISTA_DL_H
#define BARISTA_DL_H

#include <stddef.h>

/* Longest message a failed load leaves in its caller's buffer. */
#define BR__DL_ERROR_MAX 512

/* Loads libpq.so.5 (libcurl.so.4, libhiredis.so.0.14) and resolves its table, the
 * first time; then only says how that went.  0, or BR_EIO with a one-line reason in
 * why ("cannot load libpq.so.5 (PostgreSQL client): " and dlerror()'s text), which the
 * caller logs.  Safe from any thread. */
int br__dl_pq_load(char *why, size_t len);
int br__dl_curl_load(char *why, size_t len);
int br__dl_hiredis_load(char *why, size_t len);

/* The sonames loaded (Debian 12's): what the runtime image must carry. */
#define BR__DL_PQ_SONAME      "libpq.so.5"
#define BR__DL_CURL_SONAME    "libcurl.so.4"
#define BR__DL_HIREDIS_SONAME "libhiredis.so.0.14"

#endif
