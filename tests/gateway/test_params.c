/*
 * test_params.c - query parsing and FastAPI-style parameter validation.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "json.h"
#include "params.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static br_str S(const char *s)
{
    return br_str_c(s);
}

static br_pair P(const char *name, const char *value)
{
    br_pair p = {S(name), S(value)};
    return p;
}

static void assert_str(br_str got, const char *want)
{
    assert_int_equal(got.len, strlen(want));
    if (got.len)
        assert_memory_equal(got.ptr, want, got.len);
}

/* Parses q with room for max pairs; returns the rc and fills pairs/n. */
static int parse(const char *q, br_pair *pairs, size_t max, size_t *n, char *scratch)
{
    return gw_query_parse(q, strlen(q), scratch, strlen(q), pairs, max, n);
}

/* Parses q and checks it gives exactly the name/value pairs in want (n of them). */
static void expect_pairs(const char *q, const char *const want[][2], size_t n)
{
    char scratch[64];
    br_pair pairs[8];
    size_t got;
    assert_int_equal(parse(q, pairs, 8, &got, scratch), 0);
    assert_int_equal(got, n);
    for (size_t i = 0; i < n; i++) {
        assert_str(pairs[i].name, want[i][0]);
        assert_str(pairs[i].value, want[i][1]);
    }
}

static void query_decodes_escapes_and_plus(void **state)
{
    (void)state;
    static const char *const want[][2] = {
        {"a", "1"}, {"b", "hello world"}, {"c", "A+\xe2\x82\xac"}, {"d_x", "="}};
    expect_pairs("a=1&b=hello+world&c=%41%2b%e2%82%AC&d%5Fx=%3D", want, NELEM(want));
}

static void query_skips_empty_components_and_keeps_bare_names(void **state)
{
    (void)state;
    static const char *const want[][2] = {{"a", "1"}, {"b", ""}, {"", "x"}, {"c", ""}};
    expect_pairs("&&a=1&&b&=x&c=&", want, NELEM(want));
    expect_pairs("", NULL, 0);
    expect_pairs("&&&", NULL, 0);
}

static void query_rejects_bad_escapes_nul_and_invalid_utf8(void **state)
{
    (void)state;
    static const char *const bad[] = {"a=%",      "a=%4",        "a=%zz",   "a=%4g",
                                      "%=1",      "a=%00",       "a%00=1",  "a=%ff",
                                      "a=%c0%af", "a=%ed%a0%80", "a=%e2%82"};
    for (size_t i = 0; i < NELEM(bad); i++) {
        char scratch[64];
        br_pair pairs[4];
        size_t n;
        if (parse(bad[i], pairs, 4, &n, scratch) != BR_EVALUE)
            fail_msg("accepted %s", bad[i]);
    }
}

static void query_refuses_more_than_max_pairs(void **state)
{
    (void)state;
    char scratch[64];
    br_pair pairs[2];
    size_t n;
    assert_int_equal(parse("a&b&c", pairs, 2, &n, scratch), BR_ELIMIT);
    assert_int_equal(n, 2);
    assert_int_equal(parse("a&b&&", pairs, 2, &n, scratch), 0);
    assert_int_equal(n, 2);
}

static void percent_decode_keeps_plus_outside_queries(void **state)
{
    (void)state;
    char out[16];
    size_t n;
    assert_int_equal(gw_percent_decode("a+b%20c", 7, false, out, sizeof out, &n), 0);
    assert_int_equal(n, 5);
    assert_memory_equal(out, "a+b c", 5);
    assert_int_equal(gw_percent_decode("a+b", 3, true, out, sizeof out, &n), 0);
    assert_memory_equal(out, "a b", 3);
    assert_int_equal(gw_percent_decode("abc", 3, false, out, 2, &n), BR_ELIMIT);
    assert_int_equal(gw_percent_decode("%e2%82%ac", 9, false, out, 3, &n), 0);
    assert_int_equal(n, 3);
}

/* ---------------------------------------------------------------------------------- */

static br_param param(const char *name, br_param_in in, br_param_type type, bool required)
{
    br_param p = {.name = S(name), .in = (uint8_t)in, .type = (uint8_t)type, .required = required};
    return p;
}

static br_param bounded(br_param p, bool has_min, double min, bool has_max, double max)
{
    p.has_min = has_min;
    p.min = min;
    p.has_max = has_max;
    p.max = max;
    return p;
}

/* Validates one query value against one declaration; returns the rc, body in *out. */
static int check_query(br_param decl, const char *value, br_buf *out)
{
    br_pair q = P(decl.name.ptr, value);
    return gw_params_validate(&decl, 1, NULL, 0, &q, value ? 1 : 0, NULL, 0, out);
}

/* Each of good[] validates against decl; each of bad[] is a 422. */
static void expect_accepts_and_refuses(br_param decl, const char *const *good, size_t ngood,
                                       const char *const *bad, size_t nbad)
{
    br_buf out = {0};
    for (size_t i = 0; i < ngood; i++)
        if (check_query(decl, good[i], &out) != 0)
            fail_msg("refused <%s>", good[i]);
    for (size_t i = 0; i < nbad; i++) {
        out.len = 0;
        if (check_query(decl, bad[i], &out) != BR_EVALUE)
            fail_msg("accepted <%s>", bad[i]);
    }
    br_buf_free(&out);
}

static void expect_body(const br_buf *out, const char *want)
{
    assert_int_equal(out->len, strlen(want));
    assert_memory_equal(out->data, want, out->len);
}

/* value for decl is a 422 whose body is exactly `want`. */
static void expect_query_error(br_param decl, const char *value, const char *want)
{
    br_buf out = {0};
    assert_int_equal(check_query(decl, value, &out), BR_EVALUE);
    expect_body(&out, want);
    br_buf_free(&out);
}

static void missing_required_param_gives_exact_fastapi_body(void **state)
{
    (void)state;
    br_buf out = {0};
    assert_int_equal(check_query(param("ms", BR_IN_QUERY, BR_TYPE_INT, true), NULL, &out),
                     BR_EVALUE);
    expect_body(&out, "{\"detail\":[{\"type\":\"missing\",\"loc\":[\"query\",\"ms\"],"
                      "\"msg\":\"Field required\",\"input\":null}]}");
    br_buf_free(&out);
}

static void missing_optional_param_is_valid_and_writes_nothing(void **state)
{
    (void)state;
    br_buf out = {0};
    assert_int_equal(check_query(param("ms", BR_IN_QUERY, BR_TYPE_INT, false), NULL, &out), 0);
    assert_int_equal(out.len, 0);
    assert_int_equal(gw_params_validate(NULL, 0, NULL, 0, NULL, 0, NULL, 0, &out), 0);
    br_buf_free(&out);
}

static void int_parsing_accepts_signed_decimal_within_int64(void **state)
{
    (void)state;
    static const char *const good[] = {
        "0", "-5", "+7", "007", "9223372036854775807", "-9223372036854775808"};
    static const char *const bad[] = {
        "",     "-",   "+",   "1.0",  " 1", "1 ", "9223372036854775808", "-9223372036854775809",
        "0x10", "1e3", "abc", "1_000"};
    br_param decl = param("n", BR_IN_QUERY, BR_TYPE_INT, true);
    expect_accepts_and_refuses(decl, good, NELEM(good), bad, NELEM(bad));
    expect_query_error(decl, "abc",
                       "{\"detail\":[{\"type\":\"int_parsing\",\"loc\":[\"query\",\"n\"],"
                       "\"msg\":\"Input should be a valid integer, unable to parse string as an "
                       "integer\",\"input\":\"abc\"}]}");
}

static void float_parsing_accepts_finite_decimals_only(void **state)
{
    (void)state;
    static const char *const good[] = {"1.5", "-0.25", "3", "1e3", ".5", "+2.", "1E-2"};
    static const char *const bad[] = {"",      "nan", "inf",   "-Infinity", "1.5x",
                                      "0x1p3", " 1",  "1e999", "abc",       "1,5"};
    br_param decl = param("x", BR_IN_QUERY, BR_TYPE_FLOAT, true);
    expect_accepts_and_refuses(decl, good, NELEM(good), bad, NELEM(bad));
    expect_query_error(decl, "nan",
                       "{\"detail\":[{\"type\":\"float_parsing\",\"loc\":[\"query\",\"x\"],"
                       "\"msg\":\"Input should be a valid number, unable to parse string as a "
                       "number\",\"input\":\"nan\"}]}");
}

static void bool_parsing_accepts_pydantic_spellings_in_any_case(void **state)
{
    (void)state;
    static const char *const good[] = {"true", "False", "1", "0", "yes", "NO",
                                       "on",   "Off",   "t", "F", "y",   "n"};
    static const char *const bad[] = {"", "2", "maybe", "tru", "yess", "none"};
    br_param decl = param("b", BR_IN_QUERY, BR_TYPE_BOOL, true);
    expect_accepts_and_refuses(decl, good, NELEM(good), bad, NELEM(bad));
    expect_query_error(decl, "maybe",
                       "{\"detail\":[{\"type\":\"bool_parsing\",\"loc\":[\"query\",\"b\"],"
                       "\"msg\":\"Input should be a valid boolean, unable to interpret input\","
                       "\"input\":\"maybe\"}]}");
}

static void numeric_bounds_give_ge_and_le_errors(void **state)
{
    (void)state;
    br_param ms = bounded(param("ms", BR_IN_QUERY, BR_TYPE_INT, true), true, 0, true, 60000);
    br_buf out = {0};
    assert_int_equal(check_query(ms, "0", &out), 0);
    assert_int_equal(check_query(ms, "60000", &out), 0);
    expect_query_error(ms, "-1",
                       "{\"detail\":[{\"type\":\"greater_than_equal\",\"loc\":[\"query\",\"ms\"],"
                       "\"msg\":\"Input should be greater than or equal to 0\",\"input\":\"-1\","
                       "\"ctx\":{\"ge\":0}}]}");
    expect_query_error(
        ms, "60001",
        "{\"detail\":[{\"type\":\"less_than_equal\",\"loc\":[\"query\",\"ms\"],"
        "\"msg\":\"Input should be less than or equal to 60000\",\"input\":\"60001\","
        "\"ctx\":{\"le\":60000}}]}");

    br_param ratio = bounded(param("r", BR_IN_QUERY, BR_TYPE_FLOAT, true), true, 0.5, false, 0);
    expect_query_error(
        ratio, "0.25",
        "{\"detail\":[{\"type\":\"greater_than_equal\",\"loc\":[\"query\",\"r\"],"
        "\"msg\":\"Input should be greater than or equal to 0.5\",\"input\":\"0.25\","
        "\"ctx\":{\"ge\":0.5}}]}");
    assert_int_equal(check_query(ratio, "1e6", &out), 0);
    assert_int_equal(out.len, 0);
    br_buf_free(&out);
}

static void string_lengths_count_characters(void **state)
{
    (void)state;
    br_param name = bounded(param("name", BR_IN_PATH, BR_TYPE_STR, true), true, 1, true, 3);
    br_pair path = P("name", "");
    br_buf out = {0};
    assert_int_equal(gw_params_validate(&name, 1, &path, 1, NULL, 0, NULL, 0, &out), BR_EVALUE);
    expect_body(&out, "{\"detail\":[{\"type\":\"string_too_short\",\"loc\":[\"path\",\"name\"],"
                      "\"msg\":\"String should have at least 1 character\",\"input\":\"\","
                      "\"ctx\":{\"min_length\":1}}]}");
    out.len = 0;
    path = P("name", "abcd");
    assert_int_equal(gw_params_validate(&name, 1, &path, 1, NULL, 0, NULL, 0, &out), BR_EVALUE);
    expect_body(&out, "{\"detail\":[{\"type\":\"string_too_long\",\"loc\":[\"path\",\"name\"],"
                      "\"msg\":\"String should have at most 3 characters\",\"input\":\"abcd\","
                      "\"ctx\":{\"max_length\":3}}]}");
    /* Three code points in six bytes is within max 3. */
    path = P("name", "\xc3\xa9\xc3\xa9\xc3\xa9");
    assert_int_equal(gw_params_validate(&name, 1, &path, 1, NULL, 0, NULL, 0, &out), 0);
    br_buf_free(&out);
}

static void lists_every_error_in_declaration_order(void **state)
{
    (void)state;
    br_param decl[] = {
        param("id", BR_IN_PATH, BR_TYPE_INT, true),
        param("q", BR_IN_QUERY, BR_TYPE_STR, true),
        param("X-Debug", BR_IN_HEADER, BR_TYPE_BOOL, false),
        param("limit", BR_IN_QUERY, BR_TYPE_INT, false),
        param("ok", BR_IN_QUERY, BR_TYPE_STR, false),
    };
    br_pair path[] = {P("id", "x\"y")};
    br_pair query[] = {P("ok", "fine"), P("limit", "10")};
    br_pair headers[] = {P("host", "h"), P("x-debug", "perhaps")};
    br_buf out = {0};
    assert_int_equal(gw_params_validate(decl, NELEM(decl), path, 1, query, 2, headers, 2, &out),
                     BR_EVALUE);
    expect_body(
        &out, "{\"detail\":["
              "{\"type\":\"int_parsing\",\"loc\":[\"path\",\"id\"],\"msg\":\"Input should be a "
              "valid integer, unable to parse string as an integer\",\"input\":\"x\\\"y\"},"
              "{\"type\":\"missing\",\"loc\":[\"query\",\"q\"],\"msg\":\"Field required\","
              "\"input\":null},"
              "{\"type\":\"bool_parsing\",\"loc\":[\"header\",\"X-Debug\"],\"msg\":\"Input should "
              "be a valid boolean, unable to interpret input\",\"input\":\"perhaps\"}]}");
    br_buf_free(&out);
}

static void header_names_match_in_any_case(void **state)
{
    (void)state;
    br_param decl = param("X-Token", BR_IN_HEADER, BR_TYPE_STR, true);
    br_pair headers[] = {P("x-token", "secret")};
    br_buf out = {0};
    assert_int_equal(gw_params_validate(&decl, 1, NULL, 0, NULL, 0, headers, 1, &out), 0);
    /* Query names do not: "Ms" is not "ms". */
    br_param ms = param("ms", BR_IN_QUERY, BR_TYPE_INT, true);
    br_pair query[] = {P("Ms", "5")};
    assert_int_equal(gw_params_validate(&ms, 1, NULL, 0, query, 1, NULL, 0, &out), BR_EVALUE);
    br_buf_free(&out);
}

static void repeated_query_name_validates_the_first_value(void **state)
{
    (void)state;
    br_param ms = param("ms", BR_IN_QUERY, BR_TYPE_INT, true);
    br_pair first_bad[] = {P("ms", "abc"), P("ms", "5")};
    br_pair first_good[] = {P("ms", "5"), P("ms", "abc")};
    br_buf out = {0};
    assert_int_equal(gw_params_validate(&ms, 1, NULL, 0, first_bad, 2, NULL, 0, &out), BR_EVALUE);
    assert_int_equal(gw_params_validate(&ms, 1, NULL, 0, first_good, 2, NULL, 0, &out), 0);
    br_buf_free(&out);
}

static void error_body_respects_buffer_max(void **state)
{
    (void)state;
    br_buf out = {.max = 40};
    assert_int_equal(br_buf_append(&out, "kept", 4), 0);
    assert_int_equal(check_query(param("ms", BR_IN_QUERY, BR_TYPE_INT, true), NULL, &out),
                     BR_ELIMIT);
    assert_int_equal(out.len, 4);
    br_buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(query_decodes_escapes_and_plus),
        cmocka_unit_test(query_skips_empty_components_and_keeps_bare_names),
        cmocka_unit_test(query_rejects_bad_escapes_nul_and_invalid_utf8),
        cmocka_unit_test(query_refuses_more_than_max_pairs),
        cmocka_unit_test(percent_decode_keeps_plus_outside_queries),
        cmocka_unit_test(missing_required_param_gives_exact_fastapi_body),
        cmocka_unit_test(missing_optional_param_is_valid_and_writes_nothing),
        cmocka_unit_test(int_parsing_accepts_signed_decimal_within_int64),
        cmocka_unit_test(float_parsing_accepts_finite_decimals_only),
        cmocka_unit_test(bool_parsing_accepts_pydantic_spellings_in_any_case),
        cmocka_unit_test(numeric_bounds_give_ge_and_le_errors),
        cmocka_unit_test(string_lengths_count_characters),
        cmocka_unit_test(lists_every_error_in_declaration_order),
        cmocka_unit_test(header_names_match_in_any_case),
        cmocka_unit_test(repeated_query_name_validates_the_first_value),
        cmocka_unit_test(error_body_respects_buffer_max),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
