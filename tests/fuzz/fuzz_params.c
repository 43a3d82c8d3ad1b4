/*
 * fuzz_params.c - query parsing and declared-parameter validation (params.c) under
 * arbitrary bytes.
 *
 * Byte 0 picks one of the parameter sets below; the rest is split at its first two
 * newlines into a query string, a path parameter value and a header value.  The query
 * is parsed as intake.c does (scratch as long as the query, at most FZ_MAX_PAIRS
 * pairs), then the request is validated.  A 422 body must be JSON (jansson, an
 * independent parser, reads it) shaped {"detail": [{"type", "loc", "msg", "input"},
 * ...]} with one entry at least.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "fuzz.h"
#include "params.h"

/* Query pairs parsed at most (intake.c's limit is of the same order). */
#define FZ_MAX_PAIRS 64

#define P(n, where, t, req, hmin, hmax, lo, hi)                                                    \
    {                                                                                              \
        .name = {n, sizeof(n) - 1}, .in = where, .type = t, .required = req, .has_min = hmin,      \
        .has_max = hmax, .min = lo, .max = hi                                                      \
    }

/* A few declared sets, like the built-in services' (sleep, hash, hello) and one with
 * every type and bound. */
static const br_param set_sleep[] = {P("ms", BR_IN_QUERY, BR_TYPE_INT, true, true, true, 0, 60000)};
static const br_param set_hash[] = {
    P("n", BR_IN_QUERY, BR_TYPE_INT, true, true, false, 1, 0),
    P("data", BR_IN_QUERY, BR_TYPE_STR, true, false, true, 0, 4096),
};
static const br_param set_all[] = {
    P("name", BR_IN_PATH, BR_TYPE_STR, true, true, true, 1, 8),
    P("f", BR_IN_QUERY, BR_TYPE_FLOAT, false, true, true, -1.5, 1e6),
    P("b", BR_IN_QUERY, BR_TYPE_BOOL, false, false, false, 0, 0),
    P("i", BR_IN_QUERY, BR_TYPE_INT, false, true, true, -9.5, 9.5),
    P("s", BR_IN_QUERY, BR_TYPE_STR, false, true, false, 1, 0),
    P("x-token", BR_IN_HEADER, BR_TYPE_STR, true, true, true, 1, 1),
    P("x-n", BR_IN_HEADER, BR_TYPE_INT, false, false, false, 0, 0),
};

static const struct {
    const br_param *decl;
    size_t n;
} sets[] = {{set_sleep, 1}, {set_hash, 2}, {set_all, 7}};

static void fail(const char *what, const char *body, size_t len)
{
    fprintf(stderr, "fuzz_params: %s: %.*s\n", what, (int)(len > 2000 ? 2000 : len), body);
    abort();
}

/* The 422 body must be {"detail": [entries]} and each entry well formed. */
static void check_422(const br_buf *out)
{
    const char *body = (const char *)out->data;
    json_error_t e;
    /* \u0000 is valid JSON (an input with a NUL byte echoed back); jansson wants it
     * allowed explicitly. */
    json_t *doc = json_loadb(body, out->len, JSON_ALLOW_NUL, &e);
    if (!doc)
        fail("the 422 body is not JSON", body, out->len);
    json_t *detail = json_object_get(doc, "detail");
    if (!json_is_array(detail) || json_array_size(detail) == 0)
        fail("the 422 body has no detail list", body, out->len);
    size_t i;
    json_t *entry;
    json_array_foreach(detail, i, entry)
    {
        json_t *loc = json_object_get(entry, "loc");
        if (!json_is_string(json_object_get(entry, "type")) ||
            !json_is_string(json_object_get(entry, "msg")) || !json_is_array(loc) ||
            json_array_size(loc) != 2 || !json_object_get(entry, "input"))
            fail("a 422 entry lacks type, msg, loc or input", body, out->len);
    }
    json_decref(doc);
}

/* Splits [p, end) at the next newline: returns the piece and moves p past it. */
static br_str take_line(const char **p, const char *end)
{
    const char *nl = memchr(*p, '\n', (size_t)(end - *p));
    const char *stop = nl ? nl : end;
    br_str s = {*p, (uint32_t)(stop - *p)};
    *p = nl ? nl + 1 : end;
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 64 * 1024)
        return 0;
    size_t which = data[0] % (sizeof(sets) / sizeof(sets[0]));
    const char *p = (const char *)data + 1, *end = (const char *)data + size;
    br_str query = take_line(&p, end);
    br_str path_value = take_line(&p, end);
    br_str header_value = {p, (uint32_t)(end - p)};

    char *scratch = malloc(query.len + 1);
    br_pair pairs[FZ_MAX_PAIRS];
    size_t npairs = 0;
    if (!scratch)
        abort();
    int rc =
        gw_query_parse(query.ptr, query.len, scratch, query.len + 1, pairs, FZ_MAX_PAIRS, &npairs);
    if (npairs > FZ_MAX_PAIRS)
        fail("more pairs than the limit", query.ptr, query.len);
    if (rc == 0) {
        br_pair path = {br_str_c("name"), path_value};
        br_pair headers[2] = {{br_str_c("X-Token"), header_value}, {br_str_c("x-n"), header_value}};
        br_buf out = {.max = 1024 * 1024};
        rc = gw_params_validate(sets[which].decl, sets[which].n, &path, 1, pairs, npairs, headers,
                                2, &out);
        if (rc == BR_EVALUE)
            check_422(&out);
        else if (rc != 0)
            fail("validation failed without a 422", "", 0);
        else if (out.len != 0)
            fail("a valid request produced a 422 body", (const char *)out.data, out.len);
        br_buf_free(&out);
    }
    free(scratch);
    return 0;
}
