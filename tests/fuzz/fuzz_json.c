/*
 * fuzz_json.c - the gateway's JSON edge (json_parse.c, json.c) under arbitrary bytes.
 *
 * Every input is tried both ways:
 *   - as JSON: when gw_json_to_msgpack() accepts it, the msgpack must turn back into
 *     JSON, and that JSON must parse to exactly the same msgpack bytes (the round
 *     trip is stable: integers stay exact, floats print in a form that reads back
 *     equal, strings and key order survive);
 *   - as msgpack: gw_msgpack_to_json() may refuse it, but when it accepts it the text
 *     must be JSON our own parser accepts, with the same stable round trip.
 * ASan and UBSan catch reads outside the input and undefined arithmetic.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "json.h"

/* Ceiling of every buffer: JSON text may be a few times the msgpack it came from
 * (escapes, base64), and inputs stay below 64 KiB. */
#define FZ_JSON_MAX (4u * 1024u * 1024u)

static void fail(const char *what, const void *data, size_t size)
{
    fprintf(stderr, "fuzz_json: %s (input of %zu bytes)\n", what, size);
    (void)data;
    abort();
}

/* JSON -> m1 -> JSON -> m2 with m1 == m2.  `ours`: the JSON came from
 * gw_msgpack_to_json, so it must be accepted. */
static void check_json(const uint8_t *data, size_t size, bool ours)
{
    br_buf m1 = {.max = FZ_JSON_MAX}, j = {.max = FZ_JSON_MAX}, m2 = {.max = FZ_JSON_MAX};
    char err[128];
    int rc = gw_json_to_msgpack((const char *)data, size, &m1, err, sizeof(err));
    if (rc != 0 && ours)
        fail("gw_msgpack_to_json wrote JSON that gw_json_to_msgpack refuses", data, size);
    if (rc != 0) {
        if (m1.len != 0)
            fail("a refused input left bytes in out", data, size);
        if (rc == BR_EVALUE && !memchr(err, '\0', sizeof(err)))
            fail("the error reason is not NUL-terminated", data, size);
        br_buf_free(&m1);
        return;
    }
    if (gw_msgpack_to_json(m1.data, m1.len, &j) != 0)
        fail("msgpack made from valid JSON does not convert back", data, size);
    if (gw_json_to_msgpack((const char *)j.data, j.len, &m2, NULL, 0) != 0)
        fail("JSON we printed does not parse", data, size);
    if (m2.len != m1.len || memcmp(m2.data, m1.data, m1.len) != 0)
        fail("JSON -> msgpack -> JSON -> msgpack changed the value", data, size);
    br_buf_free(&m1);
    br_buf_free(&j);
    br_buf_free(&m2);
}

/* The input as msgpack: any answer but a crash; accepted input prints JSON that
 * passes check_json.  (Only from the second conversion on are values equal: a float32
 * prints in the shortest form that reads back as the same float32, which read as a
 * double is another number.) */
static void as_msgpack(const uint8_t *data, size_t size)
{
    br_buf j = {.max = FZ_JSON_MAX};
    int rc = gw_msgpack_to_json(data, size, &j);
    if (rc == 0)
        check_json(j.data, j.len, true);
    else if (j.len != 0)
        fail("a refused msgpack value left bytes in out", data, size);
    br_buf_free(&j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_json(data, size, false);
    as_msgpack(data, size);
    return 0;
}
