/*
 * test_schema.c - declared schemas (barista/schema.h) become PROTOCOL.md 5.1.1's
 * msgpack value, bad declarations are refused, and the decoder bounds what a READY
 * carries in its schema fields.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <msgpack.h>

#include "barista/proto.h"
#include "samples.h"

/* The encoding of s, printed by msgpack-c (an independent reader) into out. */
static void print_schema(const br_schema *s, char *out, size_t cap)
{
    br_buf buf = {0};
    assert_int_equal(br_schema_encode(s, &buf), 0);
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    assert_int_equal(msgpack_unpack_next(&up, (const char *)buf.data, buf.len, &off),
                     MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(off, buf.len);
    msgpack_object_print_buffer(out, cap, up.data);
    msgpack_unpacked_destroy(&up);
    br_buf_free(&buf);
}

static const char *const kinds[] = {"todo", "idea"};
static const br_schema title_s = {.type = BR_SCHEMA_STRING, .min_length = 1, .max_length = 200};
static const br_schema kind_s = {.type = BR_SCHEMA_STRING, BR_ENUM(kinds), .def = "todo"};
static const br_schema prio_s = {.type = BR_SCHEMA_INTEGER, BR_GE(1), BR_LT(5.5), .def = "3"};
static const br_schema tags_s = {
    .type = BR_SCHEMA_ARRAY,
    .items = &(const br_schema){.type = BR_SCHEMA_STRING, .pattern = "^[a-z]+$"},
    .max_length = 8};
static const br_field note_fields[] = {
    {"title", &title_s, true},
    {"kind", &kind_s, false},
    {"priority", &prio_s, false},
    {"tags", &tags_s, false},
    {"id", &(const br_schema){.type = BR_SCHEMA_STRING, .format = BR_FORMAT_UUID}, true},
};
static const br_schema note_s = {
    .type = BR_SCHEMA_OBJECT, .title = "NoteIn", BR_FIELDS(note_fields), .extra = BR_EXTRA_FORBID};

static void encodes_a_model_with_json_schema_keywords(void **state)
{
    (void)state;
    char text[2048];
    print_schema(&note_s, text, sizeof text);
    assert_string_equal(
        text,
        "{\"type\"=>\"object\", \"title\"=>\"NoteIn\", \"properties\"=>{\"title\"=>{\"type\"=>"
        "\"string\", \"minLength\"=>1, \"maxLength\"=>200}, \"kind\"=>{\"type\"=>\"string\", "
        "\"enum\"=>[\"todo\", \"idea\"], \"default\"=>\"todo\"}, \"priority\"=>{\"type\"=>"
        "\"integer\", \"minimum\"=>1, \"exclusiveMaximum\"=>5.500000, \"default\"=>3}, \"tags\"=>"
        "{\"type\"=>\"array\", \"maxItems\"=>8, \"items\"=>{\"type\"=>\"string\", "
        "\"pattern\"=>\"^[a-z]+$\"}}, \"id\"=>{\"type\"=>\"string\", \"format\"=>\"uuid\"}}, "
        "\"required\"=>[\"title\", \"id\"], \"additionalProperties\"=>false}");
}

static void encodes_typed_defaults_and_the_error_model(void **state)
{
    (void)state;
    char text[512];
    print_schema(&(const br_schema){.type = BR_SCHEMA_BOOLEAN, .def = "yes"}, text, sizeof text);
    assert_string_equal(text, "{\"type\"=>\"boolean\", \"default\"=>true}");
    print_schema(&(const br_schema){.type = BR_SCHEMA_NUMBER, .def = "0.25"}, text, sizeof text);
    assert_string_equal(text, "{\"type\"=>\"number\", \"default\"=>0.250000}");
    print_schema(&(const br_schema){0}, text, sizeof text);
    assert_string_equal(text, "{}");
    print_schema(&br_schema_http_error, text, sizeof text);
    assert_string_equal(text, "{\"type\"=>\"object\", \"title\"=>\"HTTPError\", \"properties\"=>"
                              "{\"detail\"=>{\"type\"=>\"string\"}}, \"required\"=>[\"detail\"]}");
}

static void refuses_declarations_that_break_the_rules(void **state)
{
    (void)state;
    static const char *const one[] = {"a"};
    static const br_field null_schema[] = {{"x", NULL, true}};
    static const br_field twice[] = {{"x", &title_s, true}, {"x", &title_s, false}};
    char long_pattern[BR_SCHEMA_MAX_PATTERN + 2];
    memset(long_pattern, 'a', sizeof long_pattern - 1);
    long_pattern[sizeof long_pattern - 1] = '\0';
    const br_schema bad[] = {
        {.type = (br_schema_type)7},
        {.type = BR_SCHEMA_INTEGER, .format = BR_FORMAT_UUID},
        {.type = BR_SCHEMA_STRING, .min_length = 5, .max_length = 4},
        {.type = BR_SCHEMA_STRING, BR_GE(1)},
        {.type = BR_SCHEMA_INTEGER, BR_LE(1.0 / 0.0)},
        {.type = BR_SCHEMA_INTEGER, .def = "3.5"},
        {.type = BR_SCHEMA_BOOLEAN, .def = "maybe"},
        {.type = BR_SCHEMA_STRING, BR_ENUM(one), .def = "b"},
        {.type = BR_SCHEMA_ARRAY, .def = "[]"},
        {.type = BR_SCHEMA_STRING, .pattern = long_pattern},
        {.type = BR_SCHEMA_OBJECT, BR_FIELDS(null_schema)},
        {.type = BR_SCHEMA_OBJECT, BR_FIELDS(twice)},
        {.type = BR_SCHEMA_STRING, .items = &title_s},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        br_buf buf = {0};
        if (br_schema_encode(&bad[i], &buf) != BR_EINVAL)
            fail_msg("declaration %zu accepted", i);
        assert_int_equal(buf.len, 0);
        br_buf_free(&buf);
    }
    br_buf buf = {0};
    assert_int_equal(br_schema_encode(NULL, &buf), BR_EINVAL);
}

static void refuses_schemas_nested_too_deep(void **state)
{
    (void)state;
    br_schema levels[BR_SCHEMA_MAX_DEPTH + 1];
    for (size_t i = 0; i <= BR_SCHEMA_MAX_DEPTH; i++)
        levels[i] = (br_schema){.type = BR_SCHEMA_ARRAY, .items = i ? &levels[i - 1] : NULL};
    br_buf buf = {0};
    assert_int_equal(br_schema_encode(&levels[BR_SCHEMA_MAX_DEPTH - 1], &buf), 0);
    buf.len = 0;
    assert_int_equal(br_schema_encode(&levels[BR_SCHEMA_MAX_DEPTH], &buf), BR_EINVAL);
    br_buf_free(&buf);
}

/* A READY whose one route carries `schema` as its body schema, encoded by hand. */
static int decode_with_body_schema(const char *schema, size_t len)
{
    br_msg m;
    sample_msg(BR_MSG_READY, SAMPLE_TYPICAL, &m);
    br_route route = m.u.ready.services[0].routes[0];
    br_service service = m.u.ready.services[0];
    route.body_schema = (br_str){NULL, 0};
    service.routes = &route;
    service.nroutes = 1;
    m.u.ready.services = &service;
    m.u.ready.nservices = 1;
    br_buf buf = {0};
    assert_int_equal(br_msg_encode(&m, &buf), 0);
    /* The route's body_schema is encoded as nil (0xc0), the only nil of the message
     * after the params' bounds: replace the last nil before the responses with the
     * given bytes. */
    size_t at = buf.len;
    while (at > 0 && buf.data[at - 1] != 0xc0)
        at--;
    assert_true(at > 0);
    br_buf out = {0};
    br_buf_append(&out, buf.data, at - 1);
    br_buf_append(&out, schema, len);
    br_buf_append(&out, buf.data + at, buf.len - at);
    br_decoder *d = br_decoder_new(NULL);
    br_msg got;
    int rc = br_decoder_decode(d, out.data, out.len, &got);
    if (rc == 0)
        assert_int_equal(got.u.ready.services[0].routes[0].body_schema.len, len);
    br_decoder_destroy(&d);
    br_buf_free(&buf);
    br_buf_free(&out);
    return rc;
}

static void decoder_keeps_schemas_as_bounded_msgpack_maps(void **state)
{
    (void)state;
    assert_int_equal(decode_with_body_schema("\x81\xa4type\xa6string", 13), 0);
    /* Not a map. */
    assert_int_equal(decode_with_body_schema("\xa6string", 7), BR_ETYPE);
    /* A map that claims more than it holds eats the fields after it: refused (what
     * the decoder meets first decides the error). */
    assert_true(decode_with_body_schema("\x82\xa4type", 6) < 0);
    /* Deeper than BR_SCHEMA_WIRE_DEPTH: nested single-entry maps. */
    char deep[2 * 64 + 1];
    size_t n = 0;
    for (int i = 0; i < 40; i++) {
        deep[n++] = (char)0x81;
        deep[n++] = (char)0xa0;
    }
    deep[n++] = (char)0xc0;
    assert_int_equal(decode_with_body_schema(deep, n), BR_ELIMIT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(encodes_a_model_with_json_schema_keywords),
        cmocka_unit_test(encodes_typed_defaults_and_the_error_model),
        cmocka_unit_test(refuses_declarations_that_break_the_rules),
        cmocka_unit_test(refuses_schemas_nested_too_deep),
        cmocka_unit_test(decoder_keeps_schemas_as_bounded_msgpack_maps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
