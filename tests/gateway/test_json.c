/*
 * test_json.c - the JSON edge: JSON -> msgpack, msgpack -> JSON, and back again.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <msgpack.h>

#include "json.h"

/* Converts msgpack bytes to JSON; the result is NUL-terminated in *buf. */
static int mp_to_json(const void *mp, size_t len, br_buf *buf)
{
    int rc = gw_msgpack_to_json(mp, len, buf);
    if (rc == 0) {
        assert_int_equal(br_buf_append(buf, "", 1), 0);
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

#define EXPECT_JSON(want, ...)                                                                     \
    do {                                                                                           \
        const uint8_t mp_[] = {__VA_ARGS__};                                                       \
        expect_json(mp_, sizeof mp_, want);                                                        \
    } while (0)

#define EXPECT_MP_ERROR(err, ...)                                                                  \
    do {                                                                                           \
        const uint8_t mp_[] = {__VA_ARGS__};                                                       \
        br_buf buf_ = {0};                                                                         \
        assert_int_equal(gw_msgpack_to_json(mp_, sizeof mp_, &buf_), err);                         \
        assert_int_equal(buf_.len, 0);                                                             \
        br_buf_free(&buf_);                                                                        \
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
    expect_round_trip(
        "{ \"a\" : [1, 2, {\"b\": null, \"c\": [true, false]}],\n \"d\": {\"e\": \"f\"} }",
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
    expect_round_trip("\"\\u00e9\\u20ac\\ud83d\\ude00\"",
                      "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"");
    expect_round_trip("\"\xc3\xa9\"", "\"\xc3\xa9\"");
    expect_round_trip("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u0001\\u001f\"",
                      "\"\\\"\\\\/\\b\\f\\n\\r\\t\\u0001\\u001f\"");
    /* NUL is a valid escape and a valid msgpack str byte. */
    expect_round_trip("\"a\\u0000b\"", "\"a\\u0000b\"");
    expect_round_trip("{\"k\\u0000\":1}", "{\"k\\u0000\":1}");
}

static void round_trips_big_integers(void **state)
{
    (void)state;
    expect_round_trip("[9223372036854775807,-9223372036854775808,0,-1,255,256,65536]",
                      "[9223372036854775807,-9223372036854775808,0,-1,255,256,65536]");
    expect_round_trip("[4294967296,-2147483649,-129,-33]", "[4294967296,-2147483649,-129,-33]");
    expect_round_trip("[18446744073709551615,-0,0]", "[18446744073709551615,0,0]");
}

static void round_trips_floats(void **state)
{
    (void)state;
    expect_round_trip(
        "[0.1,-2.5,1.5e300,1e-7,1.0,-0.0,0.30000000000000004,2.2250738585072014e-308]",
        "[0.1,-2.5,1.5e+300,1e-07,1.0,-0.0,0.30000000000000004,2.2250738585072014e-308]");
    expect_round_trip("[1E2,123456789012345680.0]", "[100.0,1.2345678901234568e+17]");
}

/* Each kind of invalid JSON is BR_EVALUE with a reason that says where. */
static void rejects_invalid_json_with_a_reason(void **state)
{
    (void)state;
    /* clang-format off */
    static const char *const bad[] = {
        "", "   ", "[1,2,]", "{\"a\":1,}", "NaN", "[Infinity]", "-Infinity", "{'a':1}",
        "\"unterminated", "\"bad \\x escape\"", "\"\\ud800\"", "\"\\udc00\\ud800\"",
        "\"\xff\"", "\"\xc0\xaf\"", "01", "1.", ".5", "+1", "1 2", "[1] x", "{\"a\" 1}",
        "{a:1}", "[1 2]", "/* c */ 1", "\"tab\there\"", "tru", "nul", "[", "{", "1e400",
        "18446744073709551616", "-9223372036854775809", "[1,2", "{\"a\":1", "\"\\u12\"",
        "\"\\ud83d x\"", "\"\\ud83d\\u0041\"", "-", "-a", "1e", "1e+", "[-]", "\"\x01\"", "\"\\",
    };
    /* clang-format on */
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

/* The reasons read like Python's json module, with its line, column and char index. */
static void invalid_json_reasons_match_python(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        {"", "Expecting value: line 1 column 1 (char 0)"},
        {"[1,2,]", "Expecting value: line 1 column 6 (char 5)"},
        {"{\"a\" 1}", "Expecting ':' delimiter: line 1 column 6 (char 5)"},
        {"[1 2]", "Expecting ',' delimiter: line 1 column 4 (char 3)"},
        {"{\"a\":1,}",
         "Expecting property name enclosed in double quotes: line 1 column 8 (char 7)"},
        {"[1]\n x", "Extra data: line 2 column 2 (char 5)"},
        {"\"abc", "Unterminated string starting at: line 1 column 1 (char 0)"},
        {"[\"\xc3\xa9\", x]", "Expecting value: line 1 column 7 (char 6)"},
        {"\"a\tb\"", "Invalid control character at: line 1 column 3 (char 2)"},
        {"NaN", "Expecting value: line 1 column 1 (char 0)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        br_buf out = {0};
        char err[128];
        assert_int_equal(
            gw_json_to_msgpack(cases[i][0], strlen(cases[i][0]), &out, err, sizeof err), BR_EVALUE);
        assert_string_equal(err, cases[i][1]);
        br_buf_free(&out);
    }
}

/* Integers get the smallest encoding, exactly as msgpack-c's packer (what workers use)
 * writes them; that keeps bodies byte-identical whichever side encoded them. */
static void integers_encode_like_msgpack_c(void **state)
{
    (void)state;
    static const int64_t values[] = {
        0,         1,  127, 128, 255,  256,  65535,  65536,  4294967295,    4294967296,
        INT64_MAX, -1, -32, -33, -128, -129, -32768, -32769, -2147483648LL, -2147483649LL,
        INT64_MIN};
    char json[64];
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        snprintf(json, sizeof json, "%lld", (long long)values[i]);
        br_buf ours = {0};
        assert_int_equal(gw_json_to_msgpack(json, strlen(json), &ours, NULL, 0), 0);
        msgpack_sbuffer theirs;
        msgpack_sbuffer_init(&theirs);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &theirs, msgpack_sbuffer_write);
        msgpack_pack_int64(&pk, values[i]);
        assert_int_equal(ours.len, theirs.size);
        assert_memory_equal(ours.data, theirs.data, ours.len);
        msgpack_sbuffer_destroy(&theirs);
        br_buf_free(&ours);
    }
}

/* Builds "[0,1,...,n-1]" or "{"0":0,...}" into buf (which the caller frees). */
static char *big_container(size_t n, bool object)
{
    size_t cap = n * 24 + 8, len = 0;
    char *s = malloc(cap);
    assert_non_null(s);
    s[len++] = object ? '{' : '[';
    for (size_t i = 0; i < n; i++) {
        int w = object ? snprintf(s + len, cap - len, "%s\"%zu\":%zu", i ? "," : "", i, i)
                       : snprintf(s + len, cap - len, "%s%zu", i ? "," : "", i);
        len += (size_t)w;
    }
    s[len++] = object ? '}' : ']';
    s[len] = '\0';
    return s;
}

/* Containers past 15 and 65535 entries widen their header after the fact. */
static void round_trips_large_containers(void **state)
{
    (void)state;
    static const size_t sizes[] = {15, 16, 300, 65535, 65536, 70000};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        for (int object = 0; object <= 1; object++) {
            char *doc = big_container(sizes[k], object);
            /* Nested twice inside a small container, so moves shift later data too. */
            size_t n = 2 * strlen(doc) + 16;
            char *nested = malloc(n);
            assert_non_null(nested);
            snprintf(nested, n, "[1,%s,[%s],2]", doc, doc);
            br_buf mp = {0}, back = {0};
            assert_int_equal(gw_json_to_msgpack(nested, strlen(nested), &mp, NULL, 0), 0);
            assert_int_equal(gw_msgpack_to_json(mp.data, mp.len, &back), 0);
            assert_int_equal(back.len, strlen(nested));
            assert_memory_equal(back.data, nested, back.len);
            br_buf_free(&mp);
            br_buf_free(&back);
            free(nested);
            free(doc);
        }
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
    EXPECT_JSON("null", 0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0); /* NaN */
    EXPECT_JSON("null", 0xcb, 0xff, 0xf0, 0, 0, 0, 0, 0, 0); /* -inf */
    EXPECT_JSON("null", 0xca, 0x7f, 0x80, 0x00, 0x00);       /* float32 inf */
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
    EXPECT_JSON("\"a\xef\xbf\xbd"
                "b\"",
                0xa3, 'a', 0xff, 'b');
    EXPECT_JSON("\"\xef\xbf\xbd\xef\xbf\xbd\"", 0xa2, 0xc0, 0xaf);                   /* overlong */
    EXPECT_JSON("\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"", 0xa3, 0xed, 0xa0, 0x80); /* surrogate */
    EXPECT_JSON("\"\xef\xbf\xbd\"", 0xa1, 0xe2);                                     /* cut short */
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
    EXPECT_MP_ERROR(BR_EVALUE, 0xd4, 0x01, 0x00); /* fixext 1 */
    EXPECT_MP_ERROR(BR_EVALUE, 0xd8, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    EXPECT_MP_ERROR(BR_EVALUE, 0xc7, 0x01, 0x05, 0x00);                   /* ext 8 */
    EXPECT_MP_ERROR(BR_EVALUE, 0x91, 0xd6, 0xff, 0, 0, 0, 0);             /* timestamp in array */
    EXPECT_MP_ERROR(BR_EVALUE, 0xc1);                                     /* never used */
    EXPECT_MP_ERROR(BR_EVALUE, 0x81, 0xc0, 0x01);                         /* nil key */
    EXPECT_MP_ERROR(BR_EVALUE, 0x81, 0x90, 0x01);                         /* array key */
    EXPECT_MP_ERROR(BR_EVALUE, 0x81, 0xc3, 0x01);                         /* bool key */
    EXPECT_MP_ERROR(BR_EVALUE, 0x81, 0xcb, 0, 0, 0, 0, 0, 0, 0, 0, 0x01); /* float key */
    EXPECT_MP_ERROR(BR_EVALUE, 0x81, 0xc4, 0x00, 0x01);                   /* bin key */
    EXPECT_MP_ERROR(BR_EVALUE, 0x01, 0x02);                               /* trailing bytes */
    EXPECT_MP_ERROR(BR_EVALUE, 0xdd, 0xff, 0xff, 0xff, 0xff, 0x01);       /* count past the input */
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
        0x8a, 0xa1, 'a',  0x93, 0x01, 0xd1, 0xff, 0x38, 0xcf, 0,    0,    0,    1,    0,    0,
        0,    0,    0xa1, 'b',  0xcb, 0x3f, 0xb9, 0x99, 0x99, 0x99, 0x99, 0x99, 0x9a, 0xa1, 'c',
        0xca, 0x3f, 0xc0, 0x00, 0x00, 0xd9, 0x01, 'd',  0xda, 0x00, 0x03, 'x',  'y',  'z',  0xa1,
        'e',  0xc5, 0x00, 0x02, 0x01, 0x02, 0xa1, 'f',  0xdc, 0x00, 0x02, 0xc0, 0xc3, 0xa1, 'g',
        0xde, 0x00, 0x01, 0x07, 0xc2, 0xa1, 'h',  0xdb, 0x00, 0x00, 0x00, 0x01, 'q',  0xa1, 'i',
        0xd3, 0x80, 0,    0,    0,    0,    0,    0,    0,    0x05, 0xce, 0x00, 0x01, 0x00, 0x00,
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
    const uint8_t mp[] = {0x81, 0xa7, 'm', 'e', 's', 's', 'a', 'g', 'e', 0xab, 'h',
                          'e',  'l',  'l', 'o', ' ', 'w', 'o', 'r', 'l', 'd'};
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

/* Every double must print in a form that reads back as exactly itself: decimal-looking
 * values (the fast path), random bit patterns, and the edges between the two paths. */
static void formatted_doubles_read_back_exactly(void **state)
{
    (void)state;
    static const double edges[] = {1e-4,
                                   0.00010000000000000002,
                                   9.999999999999999e-5,
                                   999999999999999.9,
                                   1e15,
                                   9007199254740991.0,
                                   9007199254740992.0,
                                   0.1,
                                   0.2,
                                   0.3,
                                   1.1,
                                   4.35,
                                   123.456,
                                   -48.8566,
                                   2.3522,
                                   1e-8,
                                   12345678.12345678,
                                   0.0,
                                   -0.0};
    char text[GW_DOUBLE_CHARS];
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++) {
        gw_format_double(edges[i], text, sizeof text);
        if (strtod(text, NULL) != edges[i] || signbit(strtod(text, NULL)) != signbit(edges[i]))
            fail_msg("%.17g printed as %s", edges[i], text);
    }
    gw_format_double(0.0001, text, sizeof text);
    assert_string_equal(text, "0.0001");
    gw_format_double(-123.456, text, sizeof text);
    assert_string_equal(text, "-123.456");
    gw_format_double(100.0, text, sizeof text);
    assert_string_equal(text, "100");

    uint64_t x = 0x9e3779b97f4a7c15u;
    for (int i = 0; i < 20000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        double d;
        if (i % 2) {
            memcpy(&d, &x, sizeof d);
            if (!isfinite(d))
                continue;
        } else { /* short decimals such as 1234.5678 */
            d = (double)(x % 100000000) / (double)(1u << (x >> 60));
            d = (double)(int64_t)(d * 1000) / 1000;
        }
        gw_format_double(d, text, sizeof text);
        if (strtod(text, NULL) != d)
            fail_msg("%.17g printed as %s", d, text);
    }
}

/* A small xorshift generator: the mutation tests are reproducible. */
static uint64_t next_random(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/* Mutated JSON never crashes the parser (ASan watches), and whatever it accepts is
 * well-formed msgpack whose JSON form parses back to the very same msgpack. */
static void mutated_json_is_refused_or_round_trips(void **state)
{
    (void)state;
    static const char seed[] =
        "{\"a\":[1,-2,3.5e2,true,false,null,\"x\\n\\u00e9\\ud83d\\ude00\"],\"b\":{\"c\":"
        "[[],{}],\"d\":\"\xc3\xa9t\xc3\xa9\"},\"e\":18446744073709551615,\"f\":-0.0}";
    static const char alphabet[] = "{}[],:\"\\0123456789-+.eEtrufalsn \t\nu\x80\xc3\xff";
    char doc[sizeof seed + 8];
    uint64_t x = 0x2545f4914f6cdd1du;
    size_t accepted = 0;
    for (int round = 0; round < 20000; round++) {
        size_t len = sizeof seed - 1;
        memcpy(doc, seed, len);
        for (int m = 0; m < 1 + (int)(next_random(&x) % 3); m++) {
            size_t at = next_random(&x) % len;
            char c = alphabet[next_random(&x) % (sizeof alphabet - 1)];
            switch (next_random(&x) % 3) {
            case 0:
                doc[at] = c;
                break; /* replace */
            case 1:
                memmove(doc + at, doc + at + 1, len - at - 1);
                len--;
                break; /* delete */
            default:   /* insert */
                if (len < sizeof doc) {
                    memmove(doc + at + 1, doc + at, len - at);
                    doc[at] = c;
                    len++;
                }
            }
        }
        br_buf mp = {0}, json = {0}, again = {0};
        int rc = gw_json_to_msgpack(doc, len, &mp, NULL, 0);
        if (rc == 0) {
            accepted++;
            assert_int_equal(gw_msgpack_to_json(mp.data, mp.len, &json), 0);
            assert_int_equal(gw_json_to_msgpack((char *)json.data, json.len, &again, NULL, 0), 0);
            assert_int_equal(again.len, mp.len);
            assert_memory_equal(again.data, mp.data, mp.len);
        } else {
            assert_true(rc == BR_EVALUE || rc == BR_ELIMIT);
        }
        br_buf_free(&mp);
        br_buf_free(&json);
        br_buf_free(&again);
    }
    assert_true(accepted > 500); /* the mutations do reach the accepting paths */
}

/* Random bytes never crash the walker, and what it accepts is JSON our parser reads. */
static void random_msgpack_is_refused_or_valid_json(void **state)
{
    (void)state;
    /* Type bytes weighted towards short, valid-looking values. */
    static const uint8_t bytes[] = {0x00, 0x7f, 0xe0, 0xff, 0x90, 0x91, 0x92, 0x80, 0x81,
                                    0xa0, 0xa1, 0xa3, 0xc0, 0xc2, 0xc3, 0xcc, 0xd0, 0xd9,
                                    0xca, 0xcb, 0xc4, 0xdc, 0xde, 'a',  0xc3, 0x80, 0xed};
    uint8_t mp[24];
    uint64_t x = 0x9e3779b97f4a7c15u;
    size_t accepted = 0;
    for (int round = 0; round < 50000; round++) {
        size_t len = 1 + next_random(&x) % sizeof mp;
        for (size_t i = 0; i < len; i++)
            mp[i] = next_random(&x) % 4 ? bytes[next_random(&x) % sizeof bytes]
                                        : (uint8_t)next_random(&x);
        br_buf json = {0}, back = {0};
        int rc = gw_msgpack_to_json(mp, len, &json);
        if (rc == 0) {
            accepted++;
            assert_int_equal(gw_json_to_msgpack((char *)json.data, json.len, &back, NULL, 0), 0);
        } else {
            assert_true(rc == BR_EVALUE || rc == BR_ELIMIT);
        }
        br_buf_free(&json);
        br_buf_free(&back);
    }
    assert_true(accepted > 500);
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
        cmocka_unit_test(invalid_json_reasons_match_python),
        cmocka_unit_test(integers_encode_like_msgpack_c),
        cmocka_unit_test(round_trips_large_containers),
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
        cmocka_unit_test(mutated_json_is_refused_or_round_trips),
        cmocka_unit_test(random_msgpack_is_refused_or_valid_json),
        cmocka_unit_test(formatted_doubles_read_back_exactly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
