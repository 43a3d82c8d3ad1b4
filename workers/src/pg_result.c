/*
 * pg_result.c - reading a query's answer (barista/pg.h): the status a handler can pass
 * on, and typed values read from libpq's text form as they are asked for.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg_int.h"

/* PostgreSQL type OIDs (pg_type.dat) the values map. */
enum {
    OID_BOOL = 16,
    OID_BYTEA = 17,
    OID_INT8 = 20,
    OID_INT2 = 21,
    OID_INT4 = 23,
    OID_OID = 26,
    OID_FLOAT4 = 700,
    OID_FLOAT8 = 701,
};

/* The HTTP status a handler would answer for a server error with this SQLSTATE. */
static uint16_t status_of_sqlstate(const char *s)
{
    if (!s || strlen(s) != 5)
        return 500;
    if (strncmp(s, "23", 2) == 0 || strcmp(s, "25P02") == 0)
        return 409; /* integrity violation; statement in an aborted transaction */
    if (strncmp(s, "22", 2) == 0)
        return 422; /* data exception: the value was refused */
    if (strcmp(s, "57014") == 0)
        return 504; /* query_canceled: statement_timeout or our cancel */
    if (strncmp(s, "08", 2) == 0 || strncmp(s, "53", 2) == 0 || strcmp(s, "40001") == 0 ||
        strcmp(s, "40P01") == 0 || strcmp(s, "57P01") == 0 || strcmp(s, "57P02") == 0 ||
        strcmp(s, "57P03") == 0)
        return 503; /* connection, resources, retryable conflicts, shutting down */
    return 500;
}

void pg__result_fill(br_pg_result *res, PGresult *pg, bool commit, char *why_buf)
{
    ExecStatusType st = PQresultStatus(pg);
    res->detail = br_str_c("");
    res->sqlstate[0] = '\0';
    switch (st) {
    case PGRES_TUPLES_OK:
    case PGRES_SINGLE_TUPLE:
        res->nrows = (uint32_t)PQntuples(pg);
        res->ncols = (uint32_t)PQnfields(pg);
        /* fall through */
    case PGRES_COMMAND_OK: {
        res->status = 200;
        const char *n = PQcmdTuples(pg);
        res->affected = n && *n ? strtoull(n, NULL, 10) : 0;
        if (commit && strcmp(PQcmdStatus(pg), "ROLLBACK") == 0) {
            res->status = 409;
            res->detail = br_str_c("the transaction was rolled back: an earlier statement failed");
        }
        return;
    }
    case PGRES_FATAL_ERROR:
    case PGRES_NONFATAL_ERROR: {
        const char *state = PQresultErrorField(pg, PG_DIAG_SQLSTATE);
        const char *msg = PQresultErrorField(pg, PG_DIAG_MESSAGE_PRIMARY);
        if (state && strlen(state) == 5)
            memcpy(res->sqlstate, state, 6);
        res->status = status_of_sqlstate(state);
        snprintf(why_buf, PG_DETAIL_MAX, "%s", msg ? msg : "the database refused the query");
        res->detail = br_str_c(why_buf);
        return;
    }
    case PGRES_EMPTY_QUERY:
        res->status = 500;
        res->detail = br_str_c("empty query");
        return;
    default:
        res->status = 500;
        snprintf(why_buf, PG_DETAIL_MAX, "unexpected answer from the database: %s",
                 PQresStatus(st));
        res->detail = br_str_c(why_buf);
        return;
    }
}

/* Memory for a decoded value: the request's arena, or a block freed after the
 * br_pg_exec callback. */
static void *value_alloc(const br_pg_result *res, size_t n)
{
    pg_res_impl *impl = (pg_res_impl *)res->impl;
    if (impl->req)
        return br_req_alloc(impl->req, n ? n : 1);
    void **block = malloc(sizeof(void *) + (n ? n : 1));
    if (!block)
        return NULL;
    block[0] = impl->blocks;
    impl->blocks = block;
    return block + 1;
}

void pg__res_impl_free_blocks(pg_res_impl *impl)
{
    void **b = impl->blocks;
    while (b) {
        void **next = b[0];
        free(b);
        b = next;
    }
    impl->blocks = NULL;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* bytea's text form: "\x" and hex (the default), or the older escape form. */
static br_str decode_bytea(const br_pg_result *res, const char *s, size_t len)
{
    if (len >= 2 && s[0] == '\\' && s[1] == 'x') {
        size_t n = (len - 2) / 2;
        unsigned char *out = value_alloc(res, n);
        if (!out)
            return (br_str){"", 0};
        for (size_t i = 0; i < n; i++) {
            int hi = hexval(s[2 + 2 * i]), lo = hexval(s[3 + 2 * i]);
            if (hi < 0 || lo < 0)
                return (br_str){"", 0};
            out[i] = (unsigned char)(hi << 4 | lo);
        }
        return (br_str){(const char *)out, (uint32_t)n};
    }
    size_t n = 0;
    unsigned char *raw = PQunescapeBytea((const unsigned char *)s, &n);
    if (!raw)
        return (br_str){"", 0};
    char *out = value_alloc(res, n);
    if (out && n)
        memcpy(out, raw, n);
    PQfreemem(raw);
    return out ? (br_str){out, (uint32_t)n} : (br_str){"", 0};
}

br_pg_value br_pg_get(const br_pg_result *res, uint32_t row, uint32_t col)
{
    br_pg_value v = br_pg_null();
    const pg_res_impl *impl = res ? res->impl : NULL;
    if (!impl || !impl->pg || row >= res->nrows || col >= res->ncols)
        return v;
    PGresult *pg = impl->pg;
    v.oid = (uint32_t)PQftype(pg, (int)col);
    if (PQgetisnull(pg, (int)row, (int)col))
        return v;
    const char *s = PQgetvalue(pg, (int)row, (int)col);
    size_t len = (size_t)PQgetlength(pg, (int)row, (int)col);
    switch (v.oid) {
    case OID_BOOL:
        v.type = BR_PG_BOOL;
        v.v.b = s[0] == 't';
        break;
    case OID_INT8:
    case OID_INT2:
    case OID_INT4:
    case OID_OID:
        v.type = BR_PG_INT;
        v.v.i = strtoll(s, NULL, 10);
        break;
    case OID_FLOAT4:
    case OID_FLOAT8:
        v.type = BR_PG_FLOAT;
        v.v.f = strtod(s, NULL); /* also reads NaN, Infinity and -Infinity */
        break;
    case OID_BYTEA:
        v.type = BR_PG_BYTES;
        v.v.s = decode_bytea(res, s, len);
        break;
    default:
        v.type = BR_PG_TEXT;
        v.v.s = (br_str){s, (uint32_t)len};
        break;
    }
    return v;
}

br_str br_pg_col_name(const br_pg_result *res, uint32_t col)
{
    const pg_res_impl *impl = res ? res->impl : NULL;
    if (!impl || !impl->pg || col >= res->ncols)
        return br_str_c("");
    return br_str_c(PQfname(impl->pg, (int)col));
}

uint32_t br_pg_col_type(const br_pg_result *res, uint32_t col)
{
    const pg_res_impl *impl = res ? res->impl : NULL;
    if (!impl || !impl->pg || col >= res->ncols)
        return 0;
    return (uint32_t)PQftype(impl->pg, (int)col);
}

int br_pg_col(const br_pg_result *res, const char *name)
{
    const pg_res_impl *impl = res ? res->impl : NULL;
    if (!impl || !impl->pg || !name)
        return -1;
    /* Exact names: PQfnumber would fold case as SQL identifiers do. */
    for (uint32_t i = 0; i < res->ncols; i++)
        if (strcmp(PQfname(impl->pg, (int)i), name) == 0)
            return (int)i;
    return -1;
}

static void write_value(br_writer *w, br_pg_value v)
{
    switch (v.type) {
    case BR_PG_BOOL:
        br_w_bool(w, v.v.b);
        break;
    case BR_PG_INT:
        br_w_int(w, v.v.i);
        break;
    case BR_PG_FLOAT:
        br_w_float(w, v.v.f);
        break;
    case BR_PG_TEXT:
    case BR_PG_BYTES:
        br_w_str(w, v.v.s);
        break;
    default:
        br_w_null(w);
        break;
    }
}

void br_pg_write_row(br_writer *w, const br_pg_result *res, uint32_t row)
{
    const pg_res_impl *impl = res ? res->impl : NULL;
    if (!impl || !impl->pg || row >= res->nrows) {
        br_w_null(w);
        return;
    }
    br_w_obj(w);
    for (uint32_t c = 0; c < res->ncols; c++) {
        br_w_key(w, PQfname(impl->pg, (int)c));
        write_value(w, br_pg_get(res, row, c));
    }
    br_w_end(w);
}

void br_pg_write_rows(br_writer *w, const br_pg_result *res)
{
    br_w_arr(w);
    for (uint32_t r = 0; res && r < res->nrows; r++)
        br_pg_write_row(w, res, r);
    br_w_end(w);
}

int br_pg_reply_error(br_req *req, const br_pg_result *res)
{
    uint16_t status = res->status == 200 ? 500 : res->status;
    if (status == 503)
        br_reply_header(req, "retry-after", "1");
    char *detail = br_req_strdup(req, res->detail);
    return br_reply_error(req, status, detail ? detail : "database error");
}
