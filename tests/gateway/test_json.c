/*
 * test_json.c - the JSON edge: JSON -> msgpack, msgpack -> JSON, and back again.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "json.h"

/* Converts msgpack bytes to JSON; the result is NUL-terminated in *buf. */
static int mp_to_json(const void *mp, size_t len, br_buf *buf)
{
    int rc = gw_msgpack_to_json(mp, len, buf);
    if (rc == 0) {
        assert_int_equal(gw_buf_append(buf, "", 1), 0);
        buf->len--;
    }
    return rc;
}

/* Asserts that the msgpack bytes give exactly `want`. */
static void expect_json(const void *mp, size_t len, const char *want)
{
    br_buf buf = {0};
    assert_int_equal(mp_to_json(mp, len, &buf), 0);
    assert_string_equal((char *)buf.data, want);
    br_buf_free(&buf);
}

#define EXPECT_JSON(want, ...)                                                            \
    do {                                                                                  \
        const uint8_t mp_[] = {__VA_ARGS__};                                              \
        expect_json(mp_, sizeof mp_, want);                                               \
    } while (0)

#define EXPECT_MP_ERROR(err, ...)                                                         \
    do {                                                                                  \
        const uint8_t mp_[] = {__VA_ARGS__};                                              \
        br_buf buf_ = {0};                                                                \
        assert_int_equal(gw_msgpack_to_json(mp_, sizeof mp_, &buf_), err);                \
        assert_int_equal(buf_.len, 0);                                                    \
        br_buf_free(&buf_);                                                               \
    } while (0)

/* JSON -> msgpack -> JSON must give `want` (the compact form of `json`). */
static void expect_round_trip(const char *json, const char *want)
{
    br_buf mp = {0}, back = {0};
    char err[128];
    assert_int_equal(gw_json_to_msgpack(json, strlen(json), &mp, err, sizeof err), 0);
    assert_string_equal(err, "");
    assert_int_equal(mp_to_json(mp.data, mp.len, &back), 0);
    assert_string_equal((char *)back.data, want);
    br_buf_free(&mp);
    br_buf_free(&back);
}

static void round_trips_nested_document(void **state)
{
    (void)state;
    expect_round_trip("{ \"a\" : [1, 2, {\"b\": null, \"c\": [true, false]}],\n \"d\": {\"e\": \"f\"} }",
                      "{\"a\":[1,2,{\"b\":null,\"c\":[true,false]}],\"d\":{\"e\":\"f\"}}");
    expect_round_trip("{\"z\":1,\"a\":2,\"m\":3}", "{\"z\":1,\"a\":2,\"m\":3}");
    expect_round_trip("\"top-level string\"", "\"top-level string\"");
    expect_round_trip("  42  ", "42");
}

static void round_trips_empty_containers(void **state)
{
    (void)state;
    expect_round_trip("{}", "{}");
    expect_round_trip("[]", "[]");
    expect_round_trip("\"\"", "\"\"");
    expect_round_trip("[[], {}, [[]], {\"\": {}}]", "[[],{},[[]],{\"\":{}}]");
}

static void round_trips_unicode_escapes_and_surrogate_pairs(void **state)
{
    (void)state;
    /* Escapes decode to UTF-8 and come back as raw UTF-8; only what must be escaped is. */
    expect_round_trip("\"\\u00e9\\u20ac\\ud83d\\ude00\"", "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"");
    expect_round_trip("\"\xc3\xa9\"", "\"\xc3\xa9\"");
    expect_round_trip("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u0001\\u001f\"",
                      "\"\\\"\\\\/\\b\\f\\n\\r\\t\\u0001\\u001f\"");
    /* NUL is a valid escape and a valid msgpack str byte. */
    expect_round_trip("\"a\\u0000b\"", "\"a\\u0000b\"");
    /* ...except in an object key, which jansson refuses (documented in json.h). */
    br_buf out = {0};
    assert_int_equal(gw_json_to_msgpack("{\"k\\u0000\":1}", 13, &out, NULL, 0), BR_EVALUE);
    br_buf_free(&out);
}

static void round_trips_big_integers(void **state)
{
    (void)state;
    expect_round_trip("[9223372036854775807,-9223372036854775808,0,-1,255,256,65536]",
                      "[9223372036854775807,-9223372036854775808,0,-1,255,256,65536]");
    expect_round_trip("[4294967296,-2147483649,-129,-33]", "[4294967296,-2147483649,-129,-33]");
}

static void round_trips_floats(void **state)
{
    (void)state;
    expect_round_trip("[0.1,-2.5,1.5e300,1e-7,1.0,-0.0,0.30000000000000004,2.2250738585072014e-308]",
                      "[0.1,-2.5,1.5e+300,1e-07,1.0,-0.0,0.30000000000000004,2.2250738585072014e-308]");
    expect_round_trip("[1E2,123456789012345680.0]", "[100.0,1.2345678901234568e+17]");
}

/* Each kind of invalid JSON is BR_EVALUE with a reason that says where. */
static void rejects_invalid_json_with_a_reason(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "", "   ", "[1,2,]", "{\"a\":1,}", "NaN", "[Infinity]", "-Infinity", "{'a':1}",
        "\"unterminated", "\"bad \\x escape\"", "\"\\ud800\"", "\"\\udc00\\ud800\"",
        "\"\xff\"", "\"\xc0\xaf\"", "01", "1.", ".5", "+1", "1 2", "[1] x", "{\"a\" 1}",
        "{a:1}", "[1 2]", "/* c */ 1", "\"tab\there\"", "tru", "nul", "[", "{", "1e400",
        "18446744073709551615", "-9223372036854775809",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        br_buf out = {0};
        char err[128] = "untouched";
        int rc = gw_json_to_msgpack(bad[i], strlen(bad[i]), &out, err, sizeof err);
        if (rc != BR_EVALUE)
            fail_msg("accepted invalid JSON #%zu <%s> (rc %d)", i, bad[i], rc);
        assert_int_equal(out.len, 0);
        assert_non_null(strstr(err, "line 1 column"));
        assert_non_null(strstr(err, "(char "));
        br_buf_free(&out);
    }
}

static void invalid_json_reason_is_truncated_to_errlen(void **state)
{
    (void)state;
    br_buf out = {0};
    char err[8];
    memset(err, 'x', sizeof err);
    assert_int_equal(gw_json_to_msgpack("[1,]", 4, &out, err, sizeof err), BR_EVALUE);
    assert_int_equal(strlen(err), sizeof err - 1);
    assert_int_equal(gw_json_to_msgpack("[1,]", 4, &out, NULL, 0), BR_EVALUE);
    br_buf_free(&out);
}

/* "[[[...]]]" with n brackets each side, in a buffer the caller frees. */
static char *nested_arrays(size_t n)
{
    char *s = malloc(2 * n + 1);
    assert_non_null(s);
    memset(s, '[', n);
    memset(s + n, ']', n);
    s[2 * n] = '\0';
    return s;
}

static void json_nesting_is_limited_to_max_depth(void **state)
{
    (void)state;
    br_buf out = {0};
    char *ok = nested_arrays(GW_JSON_MAX_DEPTH);
    assert_int_equal(gw_json_to_msgpack(ok, strlen(ok), &out, NULL, 0), 0);
    br_buf_free(&out);

    char *deep = nested_arrays(GW_JSON_MAX_DEPTH + 1);
    assert_int_equal(gw_json_to_msgpack(deep, strlen(deep), &out, NULL, 0), BR_ELIMIT);
    assert_int_equal(out.len, 0);

    /* Deeper than jansson's own guard: still a depth refusal, not a crash. */
    char *abyss = nested_arrays(100000);
    assert_int_equal(gw_json_to_msgpack(abyss, strlen(abyss), &out, NULL, 0), BR_ELIMIT);

    const char *objects = "{\"a\":{\"a\":{\"a\":1}}}";
    assert_int_equal(gw_json_to_msgpack(objects, strlen(objects), &out, NULL, 0), 0);
    br_buf_free(&out);
    free(ok);
    free(deep);
    free(abyss);
}

static void json_to_msgpack_respects_buffer_max(void **state)
{
    (void)state;
    const char *json = "{\"message\":\"hello world\"}";
    br_buf out = {.max = 10};
    assert_int_equal(gw_json_to_msgpack(json, strlen(json), &out, NULL, 0), BR_ELIMIT);
    assert_int_equal(out.len, 0);
    /* 1 + 8 + 12 bytes exactly fit. */
    out.max = 21;
    assert_int_equal(gw_json_to_msgpack(json, strlen(json), &out, NULL, 0), 0);
    assert_int_equal(out.len, 21);
    /* Appends after what is there, and leaves it alone on failure. */
    assert_int_equal(gw_json_to_msgpack("1", 1, &out, NULL, 0), BR_ELIMIT);
    assert_int_equal(out.len, 21);
    br_buf_free(&out);
}

static void msgpack_scalars_become_json(void **state)
{
    (void)state;
    EXPECT_JSON("0", 0x00);
    EXPECT_JSON("127", 0x7f);
    EXPECT_JSON("-1", 0xff);
    EXPECT_JSON("-32", 0xe0);
    EXPECT_JSON("null", 0xc0);
    EXPECT_JSON("false", 0xc2);
    EXPECT_JSON("true", 0xc3);
    EXPECT_JSON("255", 0xcc, 0xff);
    EXPECT_JSON("65535", 0xcd, 0xff, 0xff);
    EXPECT_JSON("4294967295", 0xce, 0xff, 0xff, 0xff, 0xff);
    EXPECT_JSON("18446744073709551615", 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff);
    EXPECT_JSON("-128", 0xd0, 0x80);
    EXPECT_JSON("127", 0xd0, 0x7f);
    EXPECT_JSON("-32768", 0xd1, 0x80, 0x00);
    EXPECT_JSON("-2147483648", 0xd2, 0x80, 0x00, 0x00, 0x00);
    EXPECT_JSON("-9223372036854775808", 0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0);
    EXPECT_JSON("9223372036854775807", 0xd3, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff);
    EXPECT_JSON("1.5", 0xca, 0x3f, 0xc0, 0x00, 0x00);
    EXPECT_JSON("0.1", 0xca, 0x3d, 0xcc, 0xcc, 0xcd); /* float32 0.1 prints as 0.1 */
    EXPECT_JSON("0.1", 0xcb, 0x3f, 0xb9, 0x99, 0x99, 0x99, 0x99, 0x99, 0x9a);
    EXPECT_JSON("2.0", 0xcb, 0x40, 0x00, 0, 0, 0, 0, 0, 0);
    EXPECT_JSON("null", 0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0);    /* NaN */
    EXPECT_JSON("null", 0xcb, 0xff, 0xf0, 0, 0, 0, 0, 0, 0);    /* -inf */
    EXPECT_JSON("null", 0xca, 0x7f, 0x80, 0x00, 0x00);          /* float32 inf */
}

static void msgpack_strings_and_bins_become_json(void **state)
{
    (void)state;
    EXPECT_JSON("\"\"", 0xa0);
    EXPECT_JSON("\"hi\"", 0xa2, 'h', 'i');
    EXPECT_JSON("\"hi\"", 0xd9, 0x02, 'h', 'i');
    EXPECT_JSON("\"hi\"", 0xda, 0x00, 0x02, 'h', 'i');
    EXPECT_JSON("\"hi\"", 0xdb, 0x00, 0x00, 0x00, 0x02, 'h', 'i');
    EXPECT_JSON("\"a\\\"b\\\\c\\n\\u0000\x7f\"", 0xa8, 'a', '"', 'b', '\\', 'c', '\n', 0, 0x7f);
    /* Invalid UTF-8 becomes U+FFFD per bad byte; valid multibyte text passes through. */
    EXPECT_JSON("\"a\xef\xbf\xbd" "b\"", 0xa3, 'a', 0xff, 'b');
    EXPECT_JSON("\"\xef\xbf\xbd\xef\xbf\xbd\"", 0xa2, 0xc0, 0xaf);       /* overlong */
    EXPECT_JSON("\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"", 0xa3, 0xed, 0xa0, 0x80); /* surrogate */
    EXPECT_JSON("\"\xef\xbf\xbd\"", 0xa1, 0xe2);                         /* cut short */
    EXPECT_JSON("\"\xe2\x82\xac\xf0\x9f\x98\x80\"", 0xa7, 0xe2, 0x82, 0xac, 0xf0, 0x9f, 0x98, 0x80);
    EXPECT_JSON("\"\"", 0xc4, 0x00);
    EXPECT_JSON("\"AQ==\"", 0xc4, 0x01, 0x01);
    EXPECT_JSON("\"AQI=\"", 0xc5, 0x00, 0x02, 0x01, 0x02);
    EXPECT_JSON("\"AQID\"", 0xc6, 0x00, 0x00, 0x00, 0x03, 0x01, 0x02, 0x03);
    EXPECT_JSON("\"+/+/\"", 0xc4, 0x03, 0xfb, 0xff, 0xbf);
}

static void msgpack_containers_become_json(void **state)
{
    (void)state;
    EXPECT_JSON("[]", 0x90);
    EXPECT_JSON("{}", 0x80);
    EXPECT_JSON("[1,[2],{}]", 0x93, 0x01, 0x91, 0x02, 0x80);
    EXPECT_JSON("[1,2]", 0xdc, 0x00, 0x02, 0x01, 0x02);
    EXPECT_JSON("[1]", 0xdd, 0x00, 0x00, 0x00, 0x01, 0x01);
    EXPECT_JSON("{\"a\":1,\"b\":[]}", 0x82, 0xa1, 'a', 0x01, 0xa1, 'b', 0x90);
    EXPECT_JSON("{\"a\":null}", 0xde, 0x00, 0x01, 0xa1, 'a', 0xc0);
    EXPECT_JSON("{\"a\":true}", 0xdf, 0x00, 0x00, 0x00, 0x01, 0xd9, 0x01, 'a', 0xc3);
    /* Integer keys become strings. */
    EXPECT_JSON("{\"1\":\"x\",\"-5\":0,\"300\":0,\"-200\":0}", 0x84, 0x01, 0xa1, 'x', 0xfb, 0x00,
                0xcd, 0x01, 0x2c, 0x00, 0xd1, 0xff, 0x38, 0x00);
}

static void msgpack_without_a_json_form_is_rejected(void **state)
{
    (void)state;
    EXPECT_MP_ERROR(BR_EVALUE, 0xd4, 0x01, 0x00);                 /* fixext 1 */
    EXPECT_MP_ERROR(BR_EVALUE, 0xd8, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    EXPECT_MP_ERROR(BR_EVALUE, 0xc7, 0x01, 0x05, 0x00);           /* ext 8 */
    EXPECT_MP_ERROR(BR_EVALUE, 0x91, 0xd6, 0xff, 0, 0, 0, 0);      /* timestamp in array */
    EXPECT_MP_ERROR(BR_EVALUE, 0xc1);                             /* never used */
    EXPECT_MP_ERROR(BR_EVALUE, 0x81, 0xc0, 0x01);                 /* nil key */
    EXPECT_MP_ERROR(BR_EVALUE, 0x81, 0x90, 0x01);                 /* array key */
    EXPECT_MP_ERROR(BR_EVALUE, 0x81, 0xc3, 0x01);                 /* bool key */
    EXPECT_MP_ERROR(BR_EVALUE, 0x81, 0xcb, 0, 0, 0, 0, 0, 0, 0, 0, 0x01); /* float key */
    EXPECT_MP_ERROR(BR_EVALUE, 0x81, 0xc4, 0x00, 0x01);           /* bin key */
    EXPECT_MP_ERROR(BR_EVALUE, 0x01, 0x02);                       /* trailing bytes */
    EXPECT_MP_ERROR(BR_EVALUE, 0xdd, 0xff, 0xff, 0xff, 0xff, 0x01); /* count past the input */
    EXPECT_MP_ERROR(BR_EVALUE, 0xdf, 0x00, 0x00, 0x00, 0x02, 0xa1, 'a', 0x01);
    EXPECT_MP_ERROR(BR_EVALUE, 0xdb, 0xff, 0xff, 0xff, 0xff, 'a');
    EXPECT_MP_ERROR(BR_EVALUE, 0xc6, 0x80, 0x00, 0x00, 0x00, 0x00);
    br_buf buf = {0};
    assert_int_equal(gw_msgpack_to_json(NULL, 0, &buf), BR_EVALUE);
}

/* A document touching every type; every proper prefix of it is truncated input. */
static void truncated_msgpack_fails_at_every_length(void **state)
{
    (void)state;
    const uint8_t doc[] = {
        0x8a, 0xa1, 'a', 0x93, 0x01, 0xd1, 0xff, 0x38, 0xcf, 0, 0, 0, 1, 0, 0, 0, 0,
        0xa1, 'b', 0xcb, 0x3f, 0xb9, 0x99, 0x99, 0x99, 0x99, 0x99, 0x9a,
        0xa1, 'c', 0xca, 0x3f, 0xc0, 0x00, 0x00,
        0xd9, 0x01, 'd', 0xda, 0x00, 0x03, 'x', 'y', 'z',
        0xa1, 'e', 0xc5, 0x00, 0x02, 0x01, 0x02,
        0xa1, 'f', 0xdc, 0x00, 0x02, 0xc0, 0xc3,
        0xa1, 'g', 0xde, 0x00, 0x01, 0x07, 0xc2,
        0xa1, 'h', 0xdb, 0x00, 0x00, 0x00, 0x01, 'q',
        0xa1, 'i', 0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0,
        0x05, 0xce, 0x00, 0x01, 0x00, 0x00,
    };
    expect_json(doc, sizeof doc,
                "{\"a\":[1,-200,4294967296],\"b\":0.1,\"c\":1.5,\"d\":\"xyz\",\"e\":\"AQI=\","
                "\"f\":[null,true],\"g\":{\"7\":false},\"h\":\"q\",\"i\":-9223372036854775808,"
                "\"5\":65536}");
    for (size_t len = 0; len < sizeof doc; len++) {
        br_buf buf = {0};
        int rc = gw_msgpack_to_json(doc, len, &buf);
        if (rc != BR_EVALUE)
            fail_msg("prefix of %zu bytes gave %d", len, rc);
        assert_int_equal(buf.len, 0);
        br_buf_free(&buf);
    }
}

static void msgpack_nesting_is_limited_to_max_depth(void **state)
{
    (void)state;
    uint8_t mp[GW_JSON_MAX_DEPTH];
    memset(mp, 0x91, sizeof mp);
    mp[GW_JSON_MAX_DEPTH - 1] = 0x90; /* 64 arrays, the innermost empty */
    br_buf buf = {0};
    assert_int_equal(mp_to_json(mp, sizeof mp, &buf), 0);
    assert_int_equal(buf.len, 2 * GW_JSON_MAX_DEPTH);
    br_buf_free(&buf);

    uint8_t deeper[GW_JSON_MAX_DEPTH + 1];
    memset(deeper, 0x91, sizeof deeper);
    deeper[GW_JSON_MAX_DEPTH] = 0x90;
    assert_int_equal(gw_msgpack_to_json(deeper, sizeof deeper, &buf), BR_ELIMIT);
    assert_int_equal(buf.len, 0);
    br_buf_free(&buf);
}

static void msgpack_to_json_respects_buffer_max(void **state)
{
    (void)state;
    const uint8_t mp[] = {0x81, 0xa7, 'm', 'e', 's', 's', 'a', 'g', 'e', 0xab, 'h', 'e', 'l',
                          'l', 'o', ' ', 'w', 'o', 'r', 'l', 'd'};
    const char *want = "{\"message\":\"hello world\"}";
    br_buf buf = {.max = strlen(want) - 1};
    assert_int_equal(gw_msgpack_to_json(mp, sizeof mp, &buf), BR_ELIMIT);
    assert_int_equal(buf.len, 0);
    buf.max = strlen(want);
    assert_int_equal(gw_msgpack_to_json(mp, sizeof mp, &buf), 0);
    assert_memory_equal(buf.data, want, strlen(want));
    /* A bin whose base64 would not fit is refused, not truncated. */
    const uint8_t bin[] = {0xc4, 0x03, 1, 2, 3};
    assert_int_equal(gw_msgpack_to_json(bin, sizeof bin, &buf), BR_ELIMIT);
    assert_int_equal(buf.len, strlen(want));
    br_buf_free(&buf);
}

static void appends_json_string_literals(void **state)
{
    (void)state;
    br_buf buf = {0};
    assert_int_equal(gw_json_append_string(&buf, "x", 1), 0);
    assert_int_equal(gw_json_append_string(&buf, "a\tb\x01\"\xfe", 6), 0);
    assert_int_equal(gw_json_append_string(&buf, NULL, 0), 0);
    const char *want = "\"x\"\"a\\tb\\u0001\\\"\xef\xbf\xbd\"\"\"";
    assert_int_equal(buf.len, strlen(want));
    assert_memory_equal(buf.data, want, buf.len);
    buf.max = buf.len + 3;
    assert_int_equal(gw_json_append_string(&buf, "abcd", 4), BR_ELIMIT);
    assert_int_equal(buf.len, strlen(want));
    br_buf_free(&buf);
}

static void formats_doubles_in_shortest_form(void **state)
{
    (void)state;
    char text[GW_DOUBLE_CHARS];
    gw_format_double(10.0, text, sizeof text);
    assert_string_equal(text, "10");
    gw_format_double(0.5, text, sizeof text);
    assert_string_equal(text, "0.5");
    gw_format_double(1.0 / 3, text, sizeof text);
    assert_string_equal(text, "0.3333333333333333");
    gw_format_double(-1e100, text, sizeof text);
    assert_string_equal(text, "-1e+100");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trips_nested_document),
        cmocka_unit_test(round_trips_empty_containers),
        cmocka_unit_test(round_trips_unicode_escapes_and_surrogate_pairs),
        cmocka_unit_test(round_trips_big_integers),
        cmocka_unit_test(round_trips_floats),
        cmocka_unit_test(rejects_invalid_json_with_a_reason),
        cmocka_unit_test(invalid_json_reason_is_truncated_to_errlen),
        cmocka_unit_test(json_nesting_is_limited_to_max_depth),
        cmocka_unit_test(json_to_msgpack_respects_buffer_max),
        cmocka_unit_test(msgpack_scalars_become_json),
        cmocka_unit_test(msgpack_strings_and_bins_become_json),
        cmocka_unit_test(msgpack_containers_become_json),
        cmocka_unit_test(msgpack_without_a_json_form_is_rejected),
        cmocka_unit_test(truncated_msgpack_fails_at_every_length),
        cmocka_unit_test(msgpack_nesting_is_limited_to_max_depth),
        cmocka_unit_test(msgpack_to_json_respects_buffer_max),
        cmocka_unit_test(appends_json_string_literals),
        cmocka_unit_test(formats_doubles_in_shortest_form),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
