/*
 * test_writer.c - br_writer: the msgpack it writes (byte for byte, smallest encodings,
 * small containers compacted), and the sticky errors that turn a malformed value into
 * an error rather than bad bytes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "barista/worker.h"

static void expect_bytes(br_writer *w, const unsigned char *want, size_t n)
{
    assert_int_equal(br_writer_error(w), 0);
    br_str got = br_writer_bytes(w);
    assert_int_equal(got.len, n);
    assert_memory_equal(got.ptr, want, n);
}

static void a_small_object_is_written_as_a_packer_would(void **state)
{
    (void)state;
    br_writer *w = br_writer_new(0);
    br_w_obj(w);
    br_w_key_cstr(w, "message", "hi");
    br_w_key_int(w, "n", -1);
    br_w_key(w, "tags");
    br_w_arr(w);
    br_w_bool(w, true);
    br_w_null(w);
    br_w_end(w);
    br_w_end(w);
    static const unsigned char want[] = {0x83, 0xa7, 'm', 'e', 's',  's',  'a',  'g',
                                         'e',  0xa2, 'h', 'i', 0xa1, 'n',  0xff, 0xa4,
                                         't',  'a',  'g', 's', 0x92, 0xc3, 0xc0};
    expect_bytes(w, want, sizeof(want));
    br_writer_destroy(&w);
    br_writer_destroy(&w); /* safe twice */
}

static void integers_take_their_smallest_encoding(void **state)
{
    (void)state;
    br_writer *w = br_writer_new(0);
    br_w_arr(w);
    br_w_int(w, 127);
    br_w_int(w, 128);
    br_w_int(w, 65536);
    br_w_int(w, -33);
    br_w_int(w, INT64_MIN);
    br_w_uint(w, UINT64_MAX);
    br_w_end(w);
    static const unsigned char want[] = {0x96, 0x7f, 0xcc, 0x80, 0xce, 0x00, 0x01, 0x00, 0x00, 0xd0,
                                         0xdf, 0xd3, 0x80, 0,    0,    0,    0,    0,    0,    0,
                                         0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    expect_bytes(w, want, sizeof(want));
    br_writer_destroy(&w);
}

static void big_containers_keep_a_32_bit_count(void **state)
{
    (void)state;
    br_writer *w = br_writer_new(0);
    br_w_arr(w);
    for (int i = 0; i < 20; i++)
        br_w_int(w, i);
    br_w_end(w);
    br_str b = br_writer_bytes(w);
    assert_int_equal(b.len, 5 + 20);
    static const unsigned char head[] = {0xdd, 0, 0, 0, 20};
    assert_memory_equal(b.ptr, head, sizeof(head));
    br_writer_destroy(&w);
}

static void strings_and_formatted_strings(void **state)
{
    (void)state;
    br_writer *w = br_writer_new(0);
    char long_text[300];
    memset(long_text, 'x', sizeof(long_text) - 1);
    long_text[sizeof(long_text) - 1] = '\0';
    br_w_arr(w);
    br_w_strf(w, "hello %s", "ada");
    br_w_cstr(w, long_text);
    br_w_cstr(w, NULL);
    br_w_end(w);
    br_str b = br_writer_bytes(w);
    assert_int_equal(b.len, 1 + 1 + 9 + 3 + 299 + 1);
    assert_memory_equal(b.ptr, "\x93\xa9hello ada\xda\x01\x2b", 14);
    assert_int_equal((unsigned char)b.ptr[b.len - 1], 0xc0);
    br_writer_destroy(&w);
}

static void a_valid_msgpack_value_is_copied_in_and_junk_refused(void **state)
{
    (void)state;
    br_writer *w = br_writer_new(0);
    br_w_obj(w);
    br_w_key(w, "inner");
    br_w_msgpack(w, (br_str){"\x81\xa1x\x01", 4});
    br_w_end(w);
    expect_bytes(w, (const unsigned char *)"\x81\xa5inner\x81\xa1x\x01", 11);
    br_writer_reset(w);
    br_w_msgpack(w, (br_str){"\x92\x01", 2}); /* an array missing an element */
    assert_int_equal(br_writer_error(w), BR_EINVAL);
    br_writer_destroy(&w);
}

static void misplaced_calls_are_sticky_errors(void **state)
{
    (void)state;
    br_writer *w = br_writer_new(0);
    br_w_obj(w);
    br_w_int(w, 1); /* a value where a key is due */
    assert_int_equal(br_writer_error(w), BR_EINVAL);
    br_w_end(w);
    assert_int_equal(br_writer_error(w), BR_EINVAL);
    assert_int_equal(br_writer_bytes(w).len, 0);

    br_writer_reset(w);
    br_w_key(w, "k"); /* a key outside an object */
    assert_int_equal(br_writer_error(w), BR_EINVAL);

    br_writer_reset(w);
    br_w_int(w, 1);
    br_w_int(w, 2); /* a second root value */
    assert_int_equal(br_writer_error(w), BR_EINVAL);

    br_writer_reset(w);
    br_w_obj(w); /* left open */
    assert_int_equal(br_writer_error(w), BR_EINVAL);
    assert_int_equal(br_writer_bytes(w).len, 0);

    br_writer_reset(w);
    for (int i = 0; i <= BR_WRITER_MAX_DEPTH; i++)
        br_w_arr(w);
    assert_int_equal(br_writer_error(w), BR_ELIMIT);
    br_writer_destroy(&w);
}

static void a_writer_never_grows_past_its_maximum(void **state)
{
    (void)state;
    br_writer *w = br_writer_new(64);
    br_w_arr(w);
    for (int i = 0; i < 100; i++)
        br_w_int(w, 1000);
    br_w_end(w);
    assert_int_equal(br_writer_error(w), BR_ELIMIT);
    br_writer_destroy(&w);
}

static void a_format_writes_the_same_bytes_as_the_calls(void **state)
{
    (void)state;
    br_writer *calls = br_writer_new(0), *packed = br_writer_new(0);
    br_w_obj(calls);
    br_w_key_int(calls, "id", 7);
    br_w_key_str(calls, "title", br_str_c("milk"));
    br_w_key(calls, "tags");
    br_w_arr(calls);
    br_w_cstr(calls, "a");
    br_w_null(calls);
    br_w_bool(calls, true);
    br_w_float(calls, 0.5);
    br_w_end(calls);
    br_w_key(calls, "raw");
    br_w_msgpack(calls, (br_str){"\x01", 1});
    br_w_end(calls);
    br_w_pack(packed, "{s:I, S:S, s:[s, n, b, f], s:m}", "id", (int64_t)7, br_str_c("title"),
              br_str_c("milk"), "tags", "a", 1, 0.5, "raw", (br_str){"\x01", 1});
    br_str a = br_writer_bytes(calls), b = br_writer_bytes(packed);
    assert_int_equal(br_writer_error(packed), 0);
    assert_int_equal(a.len, b.len);
    assert_memory_equal(a.ptr, b.ptr, a.len);

    br_writer_reset(packed);
    br_w_pack(packed, "{s:i]", "n", 1); /* a mismatched close */
    assert_int_equal(br_writer_error(packed), BR_EINVAL);
    br_writer_reset(packed);
    br_w_pack(packed, "[x]");
    assert_int_equal(br_writer_error(packed), BR_EINVAL);
    br_w_pack(NULL, "[i]", 1); /* a NULL writer: nothing happens */
    br_writer_destroy(&calls);
    br_writer_destroy(&packed);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_small_object_is_written_as_a_packer_would),
        cmocka_unit_test(integers_take_their_smallest_encoding),
        cmocka_unit_test(big_containers_keep_a_32_bit_count),
        cmocka_unit_test(strings_and_formatted_strings),
        cmocka_unit_test(a_valid_msgpack_value_is_copied_in_and_junk_refused),
        cmocka_unit_test(misplaced_calls_are_sticky_errors),
        cmocka_unit_test(a_writer_never_grows_past_its_maximum),
        cmocka_unit_test(a_format_writes_the_same_bytes_as_the_calls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
