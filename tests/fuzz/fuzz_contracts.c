/*
 * fuzz_contracts.c - the contracts subsystem (gateway/src/contracts) under arbitrary
 * bytes: schemas from a hostile worker, and bodies from a hostile client.
 *
 * Byte 0 picks the mode.  Even: the next two bytes (little-endian) are the length of
 * a schema, which follows as msgpack, and the rest is a msgpack body; the schema is
 * compiled as a route's body schema and, when the gateway accepts it, the body is
 * checked against it.  Odd: the rest is a JSON body, converted as intake.c does and
 * checked against a fixed model with every kind of field (nested objects, lists,
 * enum, pattern, formats, bounds, defaults, extra keys forbidden).  Whatever comes in:
 * a 422 body must be JSON (jansson, an independent parser, reads it) shaped
 * {"detail": [{"type", "loc": ["body", ...], "msg", "input"}, ...]} (integers read as
 * reals, as jansson has no uint64; a body whose input has a key holding a NUL is left
 * unchecked, as jansson cannot hold one), and an accepted body must convert to
 * exactly one msgpack value.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <barista/mpread.h>
#include <jansson.h>

#include "contracts.h"
#include "fuzz.h"
#include "json.h"

static void fail(const char *what, const void *body, size_t len)
{
    fprintf(stderr, "fuzz_contracts: %s: %.*s\n", what, (int)(len > 2000 ? 2000 : len),
            (const char *)body);
    abort();
}

static const char *const levels[] = {"low", "normal", "high"};
static const br_schema line = {
    .type = BR_SCHEMA_OBJECT,
    .title = "Line",
    .fields =
        (const br_field[]){
            {"sku", &(const br_schema){.type = BR_SCHEMA_STRING, .pattern = "^[A-Z]{2}\\d+$"},
             true},
            {"qty", &(const br_schema){.type = BR_SCHEMA_INTEGER, BR_GE(1), BR_LT(100)}, true},
            {"note", &(const br_schema){.type = BR_SCHEMA_STRING, .max_length = 8}, false},
        },
    .nfields = 3,
    .extra = BR_EXTRA_FORBID,
};
static const br_field model_fields[] = {
    {"name", &(const br_schema){.type = BR_SCHEMA_STRING, .min_length = 1, .max_length = 5}, true},
    {"lines", &(const br_schema){.type = BR_SCHEMA_ARRAY, .items = &line, .max_length = 4}, true},
    {"level", &(const br_schema){.type = BR_SCHEMA_STRING, BR_ENUM(levels), .def = "low"}, false},
    {"ratio", &(const br_schema){.type = BR_SCHEMA_NUMBER, BR_GT(0), BR_LE(1)}, false},
    {"on", &(const br_schema){.type = BR_SCHEMA_BOOLEAN, .def = "false"}, false},
    {"id", &(const br_schema){.type = BR_SCHEMA_STRING, .format = BR_FORMAT_UUID}, false},
    {"day", &(const br_schema){.type = BR_SCHEMA_STRING, .format = BR_FORMAT_DATE}, false},
    {"at", &(const br_schema){.type = BR_SCHEMA_STRING, .format = BR_FORMAT_DATE_TIME}, false},
    {"mail", &(const br_schema){.type = BR_SCHEMA_STRING, .format = BR_FORMAT_EMAIL}, false},
    {"meta", &(const br_schema){.type = BR_SCHEMA_OBJECT}, false},
    {"any", &(const br_schema){0}, false},
};
static const br_schema model = {
    .type = BR_SCHEMA_OBJECT, .title = "Model", BR_FIELDS(model_fields), .extra = BR_EXTRA_FORBID};

static void check_422(const br_buf *out)
{
    json_error_t e;
    json_t *doc =
        json_loadb((const char *)out->data, out->len, JSON_ALLOW_NUL | JSON_DECODE_INT_AS_REAL, &e);
    /* jansson cannot hold a key with a NUL (valid JSON: an input echoed back may have
     * one); the rest of such a body is not checked. */
    if (!doc && strstr(e.text, "NUL byte in object key"))
        return;
    if (!doc) {
        fprintf(stderr, "fuzz_contracts: jansson: %s at %d\n", e.text, e.position);
        fail("the 422 body is not JSON", out->data, out->len);
    }
    json_t *detail = json_object_get(doc, "detail");
    if (!json_is_array(detail) || json_array_size(detail) == 0)
        fail("the 422 body has no detail list", out->data, out->len);
    size_t i;
    json_t *entry;
    json_array_foreach(detail, i, entry)
    {
        json_t *loc = json_object_get(entry, "loc");
        if (!json_is_string(json_object_get(entry, "type")) ||
            !json_is_string(json_object_get(entry, "msg")) || !json_is_array(loc) ||
            json_array_size(loc) < 1 || !json_object_get(entry, "input") ||
            strcmp(json_string_value(json_array_get(loc, 0))
                       ? json_string_value(json_array_get(loc, 0))
                       : "",
                   "body") != 0)
            fail("a 422 entry lacks type, msg, loc or input", out->data, out->len);
    }
    json_decref(doc);
}

static void check(const gw_contract *c, br_str body)
{
    br_buf out = {.max = 1024 * 1024}, errors = {.max = GW_CONTRACT_MAX_ERROR_BODY};
    gw_contract_req r = {.has_body = true, .body = body};
    gw_fill fills[1];
    size_t nfills = 0;
    int rc = gw_contract_check(c, &r, &out, fills, &nfills, &errors);
    if (rc == BR_EVALUE) {
        check_422(&errors);
    } else if (rc == 0 && gw_contract_has_body(c)) {
        br_cursor cur;
        br_cursor_init(&cur, out.data, out.len);
        if (br_cursor_skip(&cur, BR_CURSOR_MAX_DEPTH) != 0 || br_cursor_left(&cur) != 0)
            fail("the converted body is not one msgpack value", "", 0);
        if (errors.len != 0)
            fail("an accepted body left errors", errors.data, errors.len);
    } else if (rc != 0 && errors.len != 0) {
        fail("a refused body left errors", errors.data, errors.len);
    }
    br_buf_free(&out);
    br_buf_free(&errors);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 64 * 1024)
        return 0;
    gw_contract *c = NULL;
    char why[256];
    br_buf schema = {0}, mp = {0};
    if (data[0] % 2 == 0) {
        if (size < 3)
            return 0;
        size_t len = (size_t)data[1] | (size_t)data[2] << 8;
        if (len > size - 3)
            len = size - 3;
        br_route route = {.body = BR_BODY_MSGPACK,
                          .body_schema = {(const char *)data + 3, (uint32_t)len}};
        if (gw_contract_new(&route, &c, why, sizeof why) == 0)
            check(c, (br_str){(const char *)data + 3 + len, (uint32_t)(size - 3 - len)});
        else if (why[0] == '\0')
            fail("a refused schema has no reason", "", 0);
    } else {
        if (br_schema_encode(&model, &schema) != 0)
            abort();
        br_route route = {.body = BR_BODY_MSGPACK,
                          .body_schema = {(const char *)schema.data, (uint32_t)schema.len}};
        if (gw_contract_new(&route, &c, why, sizeof why) != 0)
            fail("the fixed model does not compile", why, strlen(why));
        if (gw_json_to_msgpack((const char *)data + 1, size - 1, &mp, NULL, 0) == 0)
            check(c, (br_str){(const char *)mp.data, (uint32_t)mp.len});
    }
    gw_contract_destroy(&c);
    br_buf_free(&schema);
    br_buf_free(&mp);
    return 0;
}
