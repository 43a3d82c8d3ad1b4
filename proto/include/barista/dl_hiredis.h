/*
 * barista/dl_hiredis.h - hiredis, loaded on first use (see barista/dl.h).  Include it
 * instead of <hiredis/hiredis.h> and <hiredis/async.h>; call br__dl_hiredis_load()
 * before the first hiredis function.
 */
#ifndef BARISTA_DL_HIREDIS_H
#define BARISTA_DL_HIREDIS_H

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "barista/dl.h"

/* clang-format off */
#define BR__DL_HIREDIS_FUNCTIONS(X) \
    X(redisAsyncCommandArgv) \
    X(redisAsyncConnect) \
    X(redisAsyncConnectUnix) \
    X(redisAsyncFormattedCommand) \
    X(redisAsyncFree) \
    X(redisAsyncHandleRead) \
    X(redisAsyncHandleWrite) \
    X(redisAsyncSetConnectCallback) \
    X(redisAsyncSetDisconnectCallback) \
    X(redisFormatCommandArgv) \
    X(redisFreeCommand)
/* clang-format on */

#define BR__DL_FIELD(name) __typeof__(name) *name;
struct br__dl_hiredis {
    BR__DL_HIREDIS_FUNCTIONS(BR__DL_FIELD)
};
#undef BR__DL_FIELD
extern struct br__dl_hiredis br__dl_hiredis;

#ifndef BR__DL_TABLES
#define redisAsyncCommandArgv           (br__dl_hiredis.redisAsyncCommandArgv)
#define redisAsyncConnect               (br__dl_hiredis.redisAsyncConnect)
#define redisAsyncConnectUnix           (br__dl_hiredis.redisAsyncConnectUnix)
#define redisAsyncFormattedCommand      (br__dl_hiredis.redisAsyncFormattedCommand)
#define redisAsyncFree                  (br__dl_hiredis.redisAsyncFree)
#define redisAsyncHandleRead            (br__dl_hiredis.redisAsyncHandleRead)
#define redisAsyncHandleWrite           (br__dl_hiredis.redisAsyncHandleWrite)
#define redisAsyncSetConnectCallback    (br__dl_hiredis.redisAsyncSetConnectCallback)
#define redisAsyncSetDisconnectCallback (br__dl_hiredis.redisAsyncSetDisconnectCallback)
#define redisFormatCommandArgv          (br__dl_hiredis.redisFormatCommandArgv)
#define redisFreeCommand                (br__dl_hiredis.redisFreeCommand)
#endif

#endif
