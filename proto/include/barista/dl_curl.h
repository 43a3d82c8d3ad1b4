/*
 * barista/dl_curl.h - libcurl, loaded on first use (see barista/dl.h).  Include it
 * instead of <curl/curl.h>; call br__dl_curl_load() before the first curl function.
 *
 * curl.h's compile-time option checks (typecheck-gcc.h) wrap curl_easy_setopt,
 * curl_easy_getinfo and curl_multi_setopt in macros of the same names; those names now
 * call through the table instead, so the checks are lost here.
 */
#ifndef BARISTA_DL_CURL_H
#define BARISTA_DL_CURL_H

#include <curl/curl.h>

#include "barista/dl.h"

/* clang-format off */
#define BR__DL_CURL_FUNCTIONS(X) \
    X(curl_easy_cleanup) \
    X(curl_easy_getinfo) \
    X(curl_easy_init) \
    X(curl_easy_setopt) \
    X(curl_easy_strerror) \
    X(curl_global_cleanup) \
    X(curl_global_init) \
    X(curl_multi_add_handle) \
    X(curl_multi_assign) \
    X(curl_multi_cleanup) \
    X(curl_multi_info_read) \
    X(curl_multi_init) \
    X(curl_multi_remove_handle) \
    X(curl_multi_setopt) \
    X(curl_multi_socket_action) \
    X(curl_multi_strerror) \
    X(curl_slist_append) \
    X(curl_slist_free_all)
/* clang-format on */

#define BR__DL_FIELD(name) __typeof__(name) *name;
struct br__dl_curl {
    BR__DL_CURL_FUNCTIONS(BR__DL_FIELD)
};
#undef BR__DL_FIELD
extern struct br__dl_curl br__dl_curl;

#ifndef BR__DL_TABLES
#undef curl_easy_setopt
#undef curl_easy_getinfo
#undef curl_multi_setopt
#define curl_easy_cleanup        (br__dl_curl.curl_easy_cleanup)
#define curl_easy_getinfo        (br__dl_curl.curl_easy_getinfo)
#define curl_easy_init           (br__dl_curl.curl_easy_init)
#define curl_easy_setopt         (br__dl_curl.curl_easy_setopt)
#define curl_easy_strerror       (br__dl_curl.curl_easy_strerror)
#define curl_global_cleanup      (br__dl_curl.curl_global_cleanup)
#define curl_global_init         (br__dl_curl.curl_global_init)
#define curl_multi_add_handle    (br__dl_curl.curl_multi_add_handle)
#define curl_multi_assign        (br__dl_curl.curl_multi_assign)
#define curl_multi_cleanup       (br__dl_curl.curl_multi_cleanup)
#define curl_multi_info_read     (br__dl_curl.curl_multi_info_read)
#define curl_multi_init          (br__dl_curl.curl_multi_init)
#define curl_multi_remove_handle (br__dl_curl.curl_multi_remove_handle)
#define curl_multi_setopt        (br__dl_curl.curl_multi_setopt)
#define curl_multi_socket_action (br__dl_curl.curl_multi_socket_action)
#define curl_multi_strerror      (br__dl_curl.curl_multi_strerror)
#define curl_slist_append        (br__dl_curl.curl_slist_append)
#define curl_slist_free_all      (br__dl_curl.curl_slist_free_all)
#endif

#endif
