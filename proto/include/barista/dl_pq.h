/*
 * barista/dl_pq.h - libpq, loaded on first use (see barista/dl.h).  Include it instead
 * of <libpq-fe.h>; call br__dl_pq_load() before the first PQ function.
 *
 * BR__DL_PQ_FUNCTIONS lists every libpq function the gateway's stores and the workers'
 * pg client call; a function missing from it fails to link (the binaries do not link
 * libpq), one listed but missing from the library fails the load.
 */
#ifndef BARISTA_DL_PQ_H
#define BARISTA_DL_PQ_H

#include <libpq-fe.h>

#include "barista/dl.h"

/* clang-format off */
#define BR__DL_PQ_FUNCTIONS(X) \
    X(PQcancel) \
    X(PQclear) \
    X(PQcmdStatus) \
    X(PQcmdTuples) \
    X(PQconnectPoll) \
    X(PQconnectStartParams) \
    X(PQconnectdb) \
    X(PQconninfoFree) \
    X(PQconninfoParse) \
    X(PQconsumeInput) \
    X(PQenterPipelineMode) \
    X(PQerrorMessage) \
    X(PQescapeIdentifier) \
    X(PQexec) \
    X(PQexecParams) \
    X(PQexecPrepared) \
    X(PQexitPipelineMode) \
    X(PQfinish) \
    X(PQflush) \
    X(PQfname) \
    X(PQfnumber) \
    X(PQfreeCancel) \
    X(PQfreemem) \
    X(PQftype) \
    X(PQgetCancel) \
    X(PQgetCopyData) \
    X(PQgetResult) \
    X(PQgetisnull) \
    X(PQgetlength) \
    X(PQgetvalue) \
    X(PQisBusy) \
    X(PQnfields) \
    X(PQnotifies) \
    X(PQntuples) \
    X(PQpipelineSync) \
    X(PQprepare) \
    X(PQputCopyEnd) \
    X(PQresStatus) \
    X(PQreset) \
    X(PQresultErrorField) \
    X(PQresultErrorMessage) \
    X(PQresultMemorySize) \
    X(PQresultStatus) \
    X(PQsendQuery) \
    X(PQsendQueryParams) \
    X(PQsendQueryPrepared) \
    X(PQsetNoticeProcessor) \
    X(PQsetSingleRowMode) \
    X(PQsetnonblocking) \
    X(PQsocket) \
    X(PQstatus) \
    X(PQtransactionStatus) \
    X(PQunescapeBytea)
/* clang-format on */

/* The table: one pointer per function, typed from libpq-fe.h's own prototype. */
#define BR__DL_FIELD(name) __typeof__(name) *name;
struct br__dl_pq {
    BR__DL_PQ_FUNCTIONS(BR__DL_FIELD)
};
#undef BR__DL_FIELD
extern struct br__dl_pq br__dl_pq;

#ifndef BR__DL_TABLES /* dl.c fills the tables and sees the real names */
#define PQcancel             (br__dl_pq.PQcancel)
#define PQclear              (br__dl_pq.PQclear)
#define PQcmdStatus          (br__dl_pq.PQcmdStatus)
#define PQcmdTuples          (br__dl_pq.PQcmdTuples)
#define PQconnectPoll        (br__dl_pq.PQconnectPoll)
#define PQconnectStartParams (br__dl_pq.PQconnectStartParams)
#define PQconnectdb          (br__dl_pq.PQconnectdb)
#define PQconninfoFree       (br__dl_pq.PQconninfoFree)
#define PQconninfoParse      (br__dl_pq.PQconninfoParse)
#define PQconsumeInput       (br__dl_pq.PQconsumeInput)
#define PQenterPipelineMode  (br__dl_pq.PQenterPipelineMode)
#define PQerrorMessage       (br__dl_pq.PQerrorMessage)
#define PQescapeIdentifier   (br__dl_pq.PQescapeIdentifier)
#define PQexec               (br__dl_pq.PQexec)
#define PQexecParams         (br__dl_pq.PQexecParams)
#define PQexecPrepared       (br__dl_pq.PQexecPrepared)
#define PQexitPipelineMode   (br__dl_pq.PQexitPipelineMode)
#define PQfinish             (br__dl_pq.PQfinish)
#define PQflush              (br__dl_pq.PQflush)
#define PQfname              (br__dl_pq.PQfname)
#define PQfnumber            (br__dl_pq.PQfnumber)
#define PQfreeCancel         (br__dl_pq.PQfreeCancel)
#define PQfreemem            (br__dl_pq.PQfreemem)
#define PQftype              (br__dl_pq.PQftype)
#define PQgetCancel          (br__dl_pq.PQgetCancel)
#define PQgetCopyData        (br__dl_pq.PQgetCopyData)
#define PQgetResult          (br__dl_pq.PQgetResult)
#define PQgetisnull          (br__dl_pq.PQgetisnull)
#define PQgetlength          (br__dl_pq.PQgetlength)
#define PQgetvalue           (br__dl_pq.PQgetvalue)
#define PQisBusy             (br__dl_pq.PQisBusy)
#define PQnfields            (br__dl_pq.PQnfields)
#define PQnotifies           (br__dl_pq.PQnotifies)
#define PQntuples            (br__dl_pq.PQntuples)
#define PQpipelineSync       (br__dl_pq.PQpipelineSync)
#define PQprepare            (br__dl_pq.PQprepare)
#define PQputCopyEnd         (br__dl_pq.PQputCopyEnd)
#define PQresStatus          (br__dl_pq.PQresStatus)
#define PQreset              (br__dl_pq.PQreset)
#define PQresultErrorField   (br__dl_pq.PQresultErrorField)
#define PQresultErrorMessage (br__dl_pq.PQresultErrorMessage)
#define PQresultMemorySize   (br__dl_pq.PQresultMemorySize)
#define PQresultStatus       (br__dl_pq.PQresultStatus)
#define PQsendQuery          (br__dl_pq.PQsendQuery)
#define PQsendQueryParams    (br__dl_pq.PQsendQueryParams)
#define PQsendQueryPrepared  (br__dl_pq.PQsendQueryPrepared)
#define PQsetNoticeProcessor (br__dl_pq.PQsetNoticeProcessor)
#define PQsetSingleRowMode   (br__dl_pq.PQsetSingleRowMode)
#define PQsetnonblocking     (br__dl_pq.PQsetnonblocking)
#define PQsocket             (br__dl_pq.PQsocket)
#define PQstatus             (br__dl_pq.PQstatus)
#define PQtransactionStatus  (br__dl_pq.PQtransactionStatus)
#define PQunescapeBytea      (br__dl_pq.PQunescapeBytea)
#endif

#endif
