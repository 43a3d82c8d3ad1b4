/*
 * test_contracts.c - the contracts subsystem: schemas from the wire compiled with their
 * bounds, requests validated and converted the way pydantic v2's lax mode does, and
 * FastAPI's 422 body written exactly.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <stdlib.h>

#include "contracts.h"
#include "contracts_int.h"
#include "json.h"

/* ---------------------------------------------------------------------------------- */
/* Helpers.                                                                            */

/* A route with a body schema (declared in C, encoded as a worker would) and params. */
typedef struct route_fixture {
    br_buf body;      /* the encoded body schema */
    br_buf params[4]; /* encoded param schemas */
    br_param decl[4]; /* declared params */
    br_route route;   /* the route */
    gw_contract *c;   /* compiled */
} route_fixture;

static void fixture_free(route_fixture *f)
{
    br_buf_free(&f->body);
    for (size_t i = 0; i < 4; i++)
        br_buf_free(&f->params[i]);
    gw_contract_destroy(&f->c);
}

static gw_contract *compile_body(route_fixture *f, const br_schema *s)
{
    memset(f, 0, sizeof *f);
    assert_int_equal(br_schema_encode(s, &f->body), 0);
    f->route.body_schema = (br_str){(const char *)f->body.data, (uint32_t)f->body.len};
    f->route.body = BR_BODY_MSGPACK;
    char why[256];
    assert_int_equal(gw_contract_new(&f->route, &f->c, why, sizeof why), 0);
    return f->c;
}

/* Compiles raw msgpack as a body schema; returns the rc and the reason. */
static int compile_raw(const void *mp, size_t len, char *why, size_t cap)
{
    br_route route = {.body = BR_BODY_MSGPACK, .body_schema = {mp, (uint32_t)len}};
    gw_contract *c = NULL;
    int rc = gw_contract_new(&route, &c, why, cap);
    gw_contract_destroy(&c);
    return rc;
}

/* Checks a JSON body against c: the rc, the converted body as JSON and the errors. */
static int check_json(const gw_contract *c, const char *json, char *converted, size_t ccap,
                      char *errors, size_t ecap)
{
    br_buf mp = {0}, out = {0}, errs = {.max = GW_CONTRACT_MAX_ERROR_BODY}, text = {0};
    assert_int_equal(gw_json_to_msgpack(json, strlen(json), &mp, NULL, 0), 0);
    gw_contract_req r = {.has_body = true, .body = {(const char *)mp.data, (uint32_t)mp.len}};
    gw_fill fills[8];
    size_t nfills;
    int rc = gw_contract_check(c, &r, &out, fills, &nfills, &errs);
    converted[0] = errors[0] = '\0';
    if (rc == 0 && out.len) {
        assert_int_equal(gw_msgpack_to_json(out.data, out.len, &text), 0);
        snprintf(converted, ccap, "%.*s", (int)text.len, (const char *)text.data);
    }
    if (rc == BR_EVALUE)
        snprintf(errors, ecap, "%.*s", (int)errs.len, (const char *)errs.data);
    br_buf_free(&mp);
    br_buf_free(&out);
    br_buf_free(&errs);
    br_buf_free(&text);
    return rc;
}

/* ---------------------------------------------------------------------------------- */
/* The model used by most tests.                                                       */

static const char *const colours[] = {"red", "green"};
static const br_schema qty_s = {.type = BR_SCHEMA_INTEGER, BR_GE(1), BR_LE(10)};
static const br_field line_fields[] = {
    {"sku", &(const br_schema){.type = BR_SCHEMA_STRING, .min_length = 2}, true},
    {"qty", &qty_s, true},
};
static const br_schema line_s = {
    .type = BR_SCHEMA_OBJECT, .title = "Line", BR_FIELDS(line_fields), .extra = BR_EXTRA_FORBID};
static const br_field model_fields[] = {
    {"name", &(const br_schema){.type = BR_SCHEMA_STRING, .max_length = 5}, true},
    {"colour", &(const br_schema){.type = BR_SCHEMA_STRING, BR_ENUM(colours), .def = "red"}, false},
    {"count", &(const br_schema){.type = BR_SCHEMA_INTEGER, .def = "7"}, false},
    {"ratio", &(const br_schema){.type = BR_SCHEMA_NUMBER, BR_LT(1)}, false},
    {"on", &(const br_schema){.type = BR_SCHEMA_BOOLEAN}, false},
    {"lines", &(const br_schema){.type = BR_SCHEMA_ARRAY, .items = &line_s, .max_length = 3},
     false},
};
static const br_schema model_s = {
    .type = BR_SCHEMA_OBJECT, .title = "Model", BR_FIELDS(model_fields)};

static void converts_lax_input_and_fills_defaults_in_declaration_order(void **state)
{
    (void)state;
    route_fixture f;
    gw_contract *c = compile_body(&f, &model_s);
    char conv[512], errs[2048];
    int rc = check_json(c,
                        "{\"on\":\"yes\",\"ratio\":\"0.5\",\"ignored\":[1,{}],\"name\":\"ab\","
                        "\"lines\":[{\"qty\":\"3\",\"sku\":\"xy\"},{\"sku\":\"zz\",\"qty\":2.0}]}",
                        conv, sizeof conv, errs, sizeof errs);
    assert_int_equal(rc, 0);
    assert_string_equal(conv, "{\"name\":\"ab\",\"colour\":\"red\",\"count\":7,\"ratio\":0.5,"
                              "\"on\":true,\"lines\":[{\"sku\":\"xy\",\"qty\":3},"
                              "{\"sku\":\"zz\",\"qty\":2}]}");
    /* The last of a duplicated key wins, as in a Python dict; 1 and 0 are booleans. */
    rc = check_json(c, "{\"name\":\"too long\",\"name\":\"ok\",\"on\":1}", conv, sizeof conv, errs,
                    sizeof errs);
    assert_int_equal(rc, 0);
    assert_string_equal(conv, "{\"name\":\"ok\",\"colour\":\"red\",\"count\":7,\"on\":true}");
    fixture_free(&f);
}

static void writes_every_error_in_fastapis_shape(void **state)
{
    (void)state;
    route_fixture f;
    gw_contract *c = compile_body(&f, &model_s);
    char conv[64], errs[4096];
    int rc = check_json(c,
                        "{\"name\":\"abcdef\",\"colour\":\"blue\",\"count\":1.5,\"ratio\":1,"
                        "\"on\":2,\"lines\":[{\"sku\":\"x\",\"qty\":11,\"extra\":null},{}],"
                        "\"x\":1}",
                        conv, sizeof conv, errs, sizeof errs);
    assert_int_equal(rc, BR_EVALUE);
    assert_string_equal(
        errs,
        "{\"detail\":["
        "{\"type\":\"string_too_long\",\"loc\":[\"body\",\"name\"],\"msg\":\"String should have at "
        "most 5 characters\",\"input\":\"abcdef\",\"ctx\":{\"max_length\":5}},"
        "{\"type\":\"enum\",\"loc\":[\"body\",\"colour\"],\"msg\":\"Input should be 'red' or "
        "'green'\",\"input\":\"blue\",\"ctx\":{\"expected\":\"'red' or 'green'\"}},"
        "{\"type\":\"int_from_float\",\"loc\":[\"body\",\"count\"],\"msg\":\"Input should be a "
        "valid integer, got a number with a fractional part\",\"input\":1.5},"
        "{\"type\":\"less_than\",\"loc\":[\"body\",\"ratio\"],\"msg\":\"Input should be less than "
        "1\",\"input\":1,\"ctx\":{\"lt\":1}},"
        "{\"type\":\"bool_parsing\",\"loc\":[\"body\",\"on\"],\"msg\":\"Input should be a valid "
        "boolean, unable to interpret input\",\"input\":2},"
        "{\"type\":\"string_too_short\",\"loc\":[\"body\",\"lines\",0,\"sku\"],\"msg\":\"String "
        "should have at least 2 characters\",\"input\":\"x\",\"ctx\":{\"min_length\":2}},"
        "{\"type\":\"less_than_equal\",\"loc\":[\"body\",\"lines\",0,\"qty\"],\"msg\":\"Input "
        "should "
        "be less than or equal to 10\",\"input\":11,\"ctx\":{\"le\":10}},"
        "{\"type\":\"extra_forbidden\",\"loc\":[\"body\",\"lines\",0,\"extra\"],\"msg\":\"Extra "
        "inputs are not permitted\",\"input\":null},"
        "{\"type\":\"missing\",\"loc\":[\"body\",\"lines\",1,\"sku\"],\"msg\":\"Field "
        "required\",\"input\":{}},"
        "{\"type\":\"missing\",\"loc\":[\"body\",\"lines\",1,\"qty\"],\"msg\":\"Field "
        "required\",\"input\":{}}]}");
    fixture_free(&f);
}

static void reports_wrong_types_by_the_expected_type(void **state)
{
    (void)state;
    route_fixture f;
    gw_contract *c = compile_body(&f, &model_s);
    char conv[64], errs[4096];
    assert_int_equal(check_json(c,
                                "{\"name\":1,\"count\":\"x\",\"ratio\":null,\"on\":[],"
                                "\"lines\":{}}",
                                conv, sizeof conv, errs, sizeof errs),
                     BR_EVALUE);
    assert_non_null(strstr(errs, "\"type\":\"string_type\",\"loc\":[\"body\",\"name\"]"));
    assert_non_null(strstr(errs, "\"type\":\"int_parsing\",\"loc\":[\"body\",\"count\"]"));
    assert_non_null(strstr(errs, "\"type\":\"float_type\",\"loc\":[\"body\",\"ratio\"]"));
    assert_non_null(strstr(errs, "\"type\":\"bool_type\",\"loc\":[\"body\",\"on\"]"));
    assert_non_null(strstr(errs, "\"type\":\"list_type\",\"loc\":[\"body\",\"lines\"],\"msg\":"
                                 "\"Input should be a valid list\",\"input\":{}"));
    assert_int_equal(check_json(c, "\"text\"", conv, sizeof conv, errs, sizeof errs), BR_EVALUE);
    assert_string_equal(errs, "{\"detail\":[{\"type\":\"model_attributes_type\",\"loc\":[\"body\"],"
                              "\"msg\":\"Input should be a valid dictionary or object to extract "
                              "fields from\",\"input\":\"text\"}]}");
    fixture_free(&f);
}

static void checks_formats_with_pydantics_reasons(void **state)
{
    (void)state;
    const br_field fields[] = {
        {"u", &(const br_schema){.type = BR_SCHEMA_STRING, .format = BR_FORMAT_UUID}, false},
        {"d", &(const br_schema){.type = BR_SCHEMA_STRING, .format = BR_FORMAT_DATE}, false},
        {"t", &(const br_schema){.type = BR_SCHEMA_STRING, .format = BR_FORMAT_DATE_TIME}, false},
        {"e", &(const br_schema){.type = BR_SCHEMA_STRING, .format = BR_FORMAT_EMAIL}, false},
    };
    const br_schema s = {.type = BR_SCHEMA_OBJECT, BR_FIELDS(fields)};
    route_fixture f;
    gw_contract *c = compile_body(&f, &s);
    char conv[512], errs[4096];
    assert_int_equal(check_json(c,
                                "{\"u\":\"urn:uuid:12345678123456781234567812345678\","
                                "\"d\":\"2024-02-29\",\"t\":\"2024-02-29T23:59:59.5+01:00\","
                                "\"e\":\"a.b@example.org\"}",
                                conv, sizeof conv, errs, sizeof errs),
                     0);
    assert_int_equal(check_json(c, "{\"t\":\"2024-01-01\"}", conv, sizeof conv, errs, sizeof errs),
                     0);
    static const struct {
        const char *json, *want;
    } bad[] = {
        {"{\"u\":\"1234\"}", "invalid length: expected length 32 for simple format, found 4"},
        {"{\"u\":\"12345678-1234-5678-1234\"}", "invalid group count: expected 5, found 4"},
        {"{\"u\":\"12345678-123-5678-1234-567812345678\"}",
         "invalid group length in group 1: expected 4, found 3"},
        {"{\"d\":\"2023-02-29\"}", "day value is outside expected range"},
        {"{\"d\":\"2023-1-01\"}", "input is too short"},
        {"{\"d\":\"2023-01-01x\"}", "unexpected extra characters at the end of the input"},
        {"{\"t\":\"2023-01-01T25:00\"}", "hour value is outside expected range of 0-23"},
        {"{\"t\":\"2023-01-01T10:00#\"}", "invalid timezone sign"},
        {"{\"e\":\"nobody\"}", "An email address must have an @-sign."},
        {"{\"e\":\"@x.org\"}", "There must be something before the @-sign."},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(check_json(c, bad[i].json, conv, sizeof conv, errs, sizeof errs),
                         BR_EVALUE);
        if (!strstr(errs, bad[i].want))
            fail_msg("%s: %s", bad[i].json, errs);
    }
    fixture_free(&f);
}

static void a_body_that_is_not_msgpack_is_not_a_422(void **state)
{
    (void)state;
    route_fixture f;
    gw_contract *c = compile_body(&f, &model_s);
    static const char truncated[] = "\x82\xa4name";
    gw_contract_req r = {.has_body = true, .body = {truncated, sizeof truncated - 1}};
    br_buf out = {0}, errs = {0};
    gw_fill fills[4];
    size_t n;
    assert_int_equal(gw_contract_check(c, &r, &out, fills, &n, &errs), BR_ETRUNC);
    assert_int_equal(errs.len, 0);
    br_buf_free(&out);
    br_buf_free(&errs);
    fixture_free(&f);
}

/* ---------------------------------------------------------------------------------- */
/* Hostile schemas.                                                                    */

static void refuses_hostile_schemas_with_a_reason(void **state)
{
    (void)state;
    char why[256];
    /* A body schema on a route whose body is not converted. */
    br_route raw = {.body = BR_BODY_RAW, .body_schema = {"\x80", 1}};
    gw_contract *c = NULL;
    assert_int_equal(gw_contract_new(&raw, &c, why, sizeof why), BR_EVALUE);
    assert_null(c);
    assert_string_equal(why, "a body schema needs body mode MSGPACK");
    /* Not a map; an unknown type; a list of bounds; a NUL in a pattern. */
    assert_int_equal(compile_raw("\x91\x01", 2, why, sizeof why), BR_EVALUE);
    assert_string_equal(why, "body schema: a schema must be a map");
    assert_int_equal(compile_raw("\x81\xa4type\xa4"
                                 "date",
                                 11, why, sizeof why),
                     BR_EVALUE);
    assert_int_equal(compile_raw("\x82\xa4type\xa6string\xa9minLength\xff", 24, why, sizeof why),
                     BR_EVALUE);
    assert_non_null(strstr(why, "minLength"));
    /* Nested deeper than BR_SCHEMA_MAX_DEPTH: {"items": {"items": ...}}. */
    char deep[BR_SCHEMA_MAX_DEPTH * 7 + 8];
    size_t n = 0;
    for (int i = 0; i <= BR_SCHEMA_MAX_DEPTH; i++) {
        memcpy(deep + n, "\x81\xa5items", 7);
        n += 7;
    }
    deep[n++] = (char)0x80;
    assert_int_equal(compile_raw(deep, n, why, sizeof why), BR_EVALUE);
    assert_non_null(strstr(why, "deeper"));
    /* Patterns the matcher refuses: a back-reference, a count above 100, a group left
     * open, lookaround, a POSIX class, repetitions that expand past the program's
     * bound. */
    static const char *const patterns[] = {"(a)\\1", "(a{0,1000})", "(unclosed",
                                           "(?=a)b", "[[:alpha:]]", "((a{100}){100}){10}"};
    for (size_t i = 0; i < sizeof patterns / sizeof patterns[0]; i++) {
        br_buf buf = {0};
        /* {"type":"string","pattern":P} by hand: br_schema_encode would refuse none. */
        br_buf_append(&buf, "\x82\xa4type\xa6string\xa7pattern\xd9", 22);
        uint8_t len = (uint8_t)strlen(patterns[i]);
        br_buf_append(&buf, &len, 1);
        br_buf_append(&buf, patterns[i], len);
        if (compile_raw(buf.data, buf.len, why, sizeof why) != BR_EVALUE)
            fail_msg("pattern %s accepted", patterns[i]);
        if (!strstr(why, "pattern"))
            fail_msg("pattern %s: reason %s", patterns[i], why);
        br_buf_free(&buf);
    }
}

static void matches_patterns_like_a_search(void **state)
{
    (void)state;
    static const struct {
        const char *pattern, *text;
        int want;
    } cases[] = {
        {"abc", "xxabcxx", 1},
        {"^abc", "xabc", 0},
        {"abc$", "abcx", 0},
        {"^a.c$",
         "a\xc3\xa9"
         "c",
         1},
        {"^[a-c]+$", "abcab", 1},
        {"^[a-c]+$", "abd", 0},
        {"^[^a-c]+$", "xyz\xc3\xa9", 1},
        {"^\\d{3}-\\d{2,4}$", "123-4567", 1},
        {"^\\d{3}-\\d{2,4}$", "123-45678", 0},
        {"^(ab|cd)*e$", "abcdabe", 1},
        {"^(ab|cd)*e$", "abce", 0},
        {"^colou?r$", "color", 1},
        {"^x{2,}$", "x", 0},
        {"^x{2,}$", "xxxx", 1},
        {"^\\w+@\\w+\\.com$", "a_1@b.com", 1},
        {"^\\s*$", " \t ", 1},
        {"^(?:a|b)+?$", "abba", 1},
        {"^[]a]+$", "]a]", 1},
        {"^[-a]+$", "-a-", 1},
        {"\\.", "a.b", 1},
        {"\\.", "ab", 0},
        {"", "anything", 1},
        {"^$", "", 1},
        {"a|", "zzz", 1},
        {"(a|aa)*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaac", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        gw_regex *re = NULL;
        char why[128];
        if (gw__regex_compile(cases[i].pattern, strlen(cases[i].pattern), &re, why, sizeof why) !=
            0)
            fail_msg("%s: %s", cases[i].pattern, why);
        uint64_t budget = 1000000;
        int got = gw__regex_search(re, cases[i].text, strlen(cases[i].text), &budget);
        if (got != cases[i].want)
            fail_msg("%s on %s: %d", cases[i].pattern, cases[i].text, got);
        gw__regex_free(re);
    }
}

static void pattern_matching_is_linear_and_budgeted(void **state)
{
    (void)state;
    /* glibc's regexec takes seconds for this on 64 KiB; a Thompson NFA a few steps per
     * character. */
    gw_regex *re = NULL;
    char why[128];
    assert_int_equal(gw__regex_compile("(a|aa)*b", 8, &re, why, sizeof why), 0);
    size_t n = 64 * 1024;
    char *text = malloc(n);
    assert_non_null(text);
    memset(text, 'a', n);
    uint64_t budget = GW_PATTERN_BUDGET;
    assert_int_equal(gw__regex_search(re, text, n, &budget), 0);
    assert_true(GW_PATTERN_BUDGET - budget < 8 * n);
    gw__regex_free(re);
    /* A wide pattern over long strings: the request's budget runs out, and the check
     * says so instead of stalling the loop. */
    assert_int_equal(gw__regex_compile("(x?){100}y", 10, &re, why, sizeof why), 0);
    budget = 1000;
    assert_int_equal(gw__regex_search(re, text, n, &budget), BR_ELIMIT);
    gw__regex_free(re);
    free(text);
}

static void translates_digit_classes_in_patterns(void **state)
{
    (void)state;
    const br_field fields[] = {
        {"code", &(const br_schema){.type = BR_SCHEMA_STRING, .pattern = "^\\d{3}-[\\d]x\\D$"},
         true},
    };
    const br_schema s = {.type = BR_SCHEMA_OBJECT, BR_FIELDS(fields)};
    route_fixture f;
    gw_contract *c = compile_body(&f, &s);
    char conv[128], errs[1024];
    assert_int_equal(check_json(c, "{\"code\":\"123-4xa\"}", conv, sizeof conv, errs, sizeof errs),
                     0);
    assert_int_equal(check_json(c, "{\"code\":\"12-4x1\"}", conv, sizeof conv, errs, sizeof errs),
                     BR_EVALUE);
    assert_non_null(strstr(errs, "String should match pattern '^\\\\d{3}-[\\\\d]x\\\\D$'"));
    fixture_free(&f);
}

/* ---------------------------------------------------------------------------------- */
/* Parameters.                                                                         */

static void parameters_get_defaults_aliases_lists_and_cookies(void **state)
{
    (void)state;
    static const char *const kinds[] = {"a", "b"};
    const br_schema kind_s = {.type = BR_SCHEMA_STRING, BR_ENUM(kinds), .def = "b"};
    const br_schema tags_s = {.type = BR_SCHEMA_ARRAY,
                              .max_length = 2,
                              .items = &(const br_schema){.type = BR_SCHEMA_INTEGER, BR_GE(0)}};
    route_fixture f;
    memset(&f, 0, sizeof f);
    assert_int_equal(br_schema_encode(&kind_s, &f.params[0]), 0);
    assert_int_equal(br_schema_encode(&tags_s, &f.params[1]), 0);
    f.decl[0] = (br_param){.name = br_str_c("kind"),
                           .in = BR_IN_QUERY,
                           .schema = {(const char *)f.params[0].data, (uint32_t)f.params[0].len}};
    f.decl[1] = (br_param){.name = br_str_c("ids"),
                           .in = BR_IN_QUERY,
                           .schema = {(const char *)f.params[1].data, (uint32_t)f.params[1].len}};
    f.decl[2] = (br_param){.name = br_str_c("request_id"),
                           .in = BR_IN_HEADER,
                           .alias = br_str_c("X-Request-Id"),
                           .required = true};
    f.decl[3] = (br_param){
        .name = br_str_c("sid"), .in = BR_IN_COOKIE, .type = BR_TYPE_INT, .required = true};
    f.route.params = f.decl;
    f.route.nparams = 4;
    char why[256];
    assert_int_equal(gw_contract_new(&f.route, &f.c, why, sizeof why), 0);

    br_pair query[] = {{br_str_c("ids"), br_str_c("1")}, {br_str_c("ids"), br_str_c("2")}};
    br_pair headers[] = {{br_str_c("x-request-id"), br_str_c("r9")},
                         {br_str_c("cookie"), br_str_c("a=1; sid=\"42\"")}};
    gw_contract_req r = {.query = query, .nquery = 2, .headers = headers, .nheaders = 2};
    gw_fill fills[16];
    size_t n;
    br_buf out = {0}, errs = {.max = 65536};
    assert_true(gw_contract_max_fills(f.c, 4) <= 16);
    assert_int_equal(gw_contract_check(f.c, &r, &out, fills, &n, &errs), 0);
    assert_int_equal(n, 3);
    assert_int_equal(fills[0].in, BR_IN_QUERY);
    assert_true(br_str_eq(fills[0].kv.name, "kind") && br_str_eq(fills[0].kv.value, "b"));
    assert_int_equal(fills[1].in, BR_IN_HEADER);
    assert_true(br_str_eq(fills[1].kv.name, "request_id") && br_str_eq(fills[1].kv.value, "r9"));
    assert_int_equal(fills[2].in, BR_IN_COOKIE);
    assert_true(br_str_eq(fills[2].kv.name, "sid") && br_str_eq(fills[2].kv.value, "42"));

    br_pair bad_query[] = {{br_str_c("kind"), br_str_c("c")},
                           {br_str_c("ids"), br_str_c("-1")},
                           {br_str_c("ids"), br_str_c("x")},
                           {br_str_c("ids"), br_str_c("3")}};
    gw_contract_req bad = {.query = bad_query, .nquery = 4};
    assert_int_equal(gw_contract_check(f.c, &bad, &out, fills, &n, &errs), BR_EVALUE);
    br_buf_append(&errs, "", 1);
    assert_string_equal(
        (const char *)errs.data,
        "{\"detail\":["
        "{\"type\":\"enum\",\"loc\":[\"query\",\"kind\"],\"msg\":\"Input should be 'a' or "
        "'b'\",\"input\":\"c\",\"ctx\":{\"expected\":\"'a' or 'b'\"}},"
        "{\"type\":\"greater_than_equal\",\"loc\":[\"query\",\"ids\",0],\"msg\":\"Input should be "
        "greater than or equal to 0\",\"input\":\"-1\",\"ctx\":{\"ge\":0}},"
        "{\"type\":\"int_parsing\",\"loc\":[\"query\",\"ids\",1],\"msg\":\"Input should be a valid "
        "integer, unable to parse string as an integer\",\"input\":\"x\"},"
        "{\"type\":\"too_long\",\"loc\":[\"query\",\"ids\"],\"msg\":\"List should have at most 2 "
        "items after validation, not 3\",\"input\":null,\"ctx\":{\"field_type\":\"List\","
        "\"max_length\":2,\"actual_length\":3}},"
        "{\"type\":\"missing\",\"loc\":[\"header\",\"X-Request-Id\"],\"msg\":\"Field required\","
        "\"input\":null},"
        "{\"type\":\"missing\",\"loc\":[\"cookie\",\"sid\"],\"msg\":\"Field required\","
        "\"input\":null}]}");
    br_buf_free(&out);
    br_buf_free(&errs);
    fixture_free(&f);
}

static void forms_become_the_map_the_schema_validates(void **state)
{
    (void)state;
    const br_field fields[] = {
        {"n", &(const br_schema){.type = BR_SCHEMA_INTEGER}, true},
        {"t",
         &(const br_schema){.type = BR_SCHEMA_ARRAY,
                            .items = &(const br_schema){.type = BR_SCHEMA_STRING}},
         false},
    };
    const br_schema s = {.type = BR_SCHEMA_OBJECT, BR_FIELDS(fields)};
    route_fixture f;
    gw_contract *c = compile_body(&f, &s);
    br_pair pairs[] = {{br_str_c("n"), br_str_c("1")},
                       {br_str_c("t"), br_str_c("x")},
                       {br_str_c("n"), br_str_c("2")},
                       {br_str_c("t"), br_str_c("y")}};
    br_buf mp = {0}, json = {0};
    assert_int_equal(gw_contract_form_to_msgpack(c, pairs, 4, &mp), 0);
    assert_int_equal(gw_msgpack_to_json(mp.data, mp.len, &json), 0);
    br_buf_append(&json, "", 1);
    assert_string_equal((const char *)json.data, "{\"n\":\"2\",\"t\":[\"x\",\"y\"]}");
    br_buf_free(&mp);
    br_buf_free(&json);
    fixture_free(&f);
}

/* ---------------------------------------------------------------------------------- */
/* Replies and OpenAPI.                                                                */

static void checks_replies_against_the_declared_status(void **state)
{
    (void)state;
    route_fixture f;
    memset(&f, 0, sizeof f);
    assert_int_equal(br_schema_encode(&line_s, &f.body), 0);
    br_response resp[] = {{201, br_str_c(""), {(const char *)f.body.data, (uint32_t)f.body.len}}};
    f.route.responses = resp;
    f.route.nresponses = 1;
    char why[256];
    assert_int_equal(gw_contract_new(&f.route, &f.c, why, sizeof why), 0);
    assert_int_equal(gw_contract_success_status(f.c), 201);
    static const char good[] = "\x82\xa3sku\xa2xy\xa3qty\x01";
    static const char bad[] = "\x81\xa3sku\x05";
    br_buf errs = {0};
    assert_int_equal(gw_contract_check_reply(f.c, 201, (br_str){good, sizeof good - 1}, &errs), 0);
    assert_int_equal(gw_contract_check_reply(f.c, 500, (br_str){bad, sizeof bad - 1}, &errs), 0);
    assert_int_equal(gw_contract_check_reply(f.c, 201, (br_str){bad, sizeof bad - 1}, &errs),
                     BR_EVALUE);
    br_buf_append(&errs, "", 1);
    assert_non_null(strstr((const char *)errs.data, "\"loc\":[\"response\",\"sku\"]"));
    assert_non_null(strstr((const char *)errs.data, "\"loc\":[\"response\",\"qty\"]"));
    br_buf_free(&errs);
    fixture_free(&f);
}

static void openapi_refers_to_named_models_once(void **state)
{
    (void)state;
    route_fixture f;
    gw_contract *c = compile_body(&f, &model_s);
    br_buf out = {0};
    gw_models models = {0};
    assert_int_equal(gw_contract_openapi_body(c, &out, &models), 0);
    br_buf_append(&out, "", 1);
    assert_string_equal((const char *)out.data,
                        ",\"requestBody\":{\"required\":true,\"content\":{\"application/json\":"
                        "{\"schema\":{\"$ref\":\"#/components/schemas/Model\"}},"
                        "\"application/msgpack\":{\"schema\":{\"$ref\":\"#/components/schemas/"
                        "Model\"}}}}");
    out.len = 0;
    assert_int_equal(gw_models_openapi(&models, &out), 0);
    br_buf_append(&out, "", 1);
    assert_int_equal(models.n, 2);
    assert_string_equal(
        (const char *)out.data,
        "\"Model\":{\"type\":\"object\",\"title\":\"Model\",\"properties\":{\"name\":{\"type\":"
        "\"string\",\"maxLength\":5},\"colour\":{\"type\":\"string\",\"enum\":[\"red\",\"green\"],"
        "\"default\":\"red\"},\"count\":{\"type\":\"integer\",\"default\":7},\"ratio\":{\"type\":"
        "\"number\",\"exclusiveMaximum\":1},\"on\":{\"type\":\"boolean\"},\"lines\":{\"type\":"
        "\"array\",\"maxItems\":3,\"items\":{\"$ref\":\"#/components/schemas/Line\"}}},"
        "\"required\":[\"name\"]},"
        "\"Line\":{\"type\":\"object\",\"title\":\"Line\",\"properties\":{\"sku\":{\"type\":"
        "\"string\",\"minLength\":2},\"qty\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":10}},"
        "\"required\":[\"sku\",\"qty\"],\"additionalProperties\":false},");
    br_buf_free(&out);
    fixture_free(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(converts_lax_input_and_fills_defaults_in_declaration_order),
        cmocka_unit_test(writes_every_error_in_fastapis_shape),
        cmocka_unit_test(reports_wrong_types_by_the_expected_type),
        cmocka_unit_test(checks_formats_with_pydantics_reasons),
        cmocka_unit_test(a_body_that_is_not_msgpack_is_not_a_422),
        cmocka_unit_test(refuses_hostile_schemas_with_a_reason),
        cmocka_unit_test(translates_digit_classes_in_patterns),
        cmocka_unit_test(matches_patterns_like_a_search),
        cmocka_unit_test(pattern_matching_is_linear_and_budgeted),
        cmocka_unit_test(parameters_get_defaults_aliases_lists_and_cookies),
        cmocka_unit_test(forms_become_the_map_the_schema_validates),
        cmocka_unit_test(checks_replies_against_the_declared_status),
        cmocka_unit_test(openapi_refers_to_named_models_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
