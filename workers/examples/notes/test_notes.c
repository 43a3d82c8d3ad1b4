/*
 * test_notes.c - the notes service through the SDK's test client (barista/testing.h):
 * its handlers run on a real worker loop behind the real protocol, with no gateway.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <barista/testing.h>

extern const br_service_spec notes_service, wordcount_service;

static void notes_are_created_read_and_listed(void **state)
{
    (void)state;
    const br_service_spec *io[] = {&notes_service};
    br_test *t = br_test_new(io, 1, NULL);
    assert_non_null(t);
    br_test_reply r;
    assert_int_equal(br_test_post(t, "/notes", "{\"title\":\"milk\",\"text\":\"2 litres\"}", &r),
                     0);
    assert_int_equal(r.status, 201);
    assert_string_equal(r.body, "{\"id\":1,\"title\":\"milk\",\"text\":\"2 litres\"}");
    assert_int_equal(br_test_post(t, "/notes", "{\"title\":\"bread\"}", &r), 0);
    assert_string_equal(r.body, "{\"id\":2,\"title\":\"bread\",\"text\":\"\"}");

    assert_int_equal(br_test_get(t, "/notes/2", &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"id\":2,\"title\":\"bread\",\"text\":\"\"}");
    assert_int_equal(br_test_get(t, "/notes/3", &r), 0);
    assert_int_equal(r.status, 404);
    assert_string_equal(r.body, "{\"detail\":\"Note not found\"}");

    assert_int_equal(br_test_get(t, "/notes?limit=1", &r), 0);
    assert_string_equal(r.body, "[{\"id\":1,\"title\":\"milk\",\"text\":\"2 litres\"}]");
    assert_int_equal(br_test_get(t, "/notes", &r), 0);
    assert_string_equal(r.body, "[{\"id\":1,\"title\":\"milk\",\"text\":\"2 litres\"},"
                                "{\"id\":2,\"title\":\"bread\",\"text\":\"\"}]");
    assert_int_equal(br_test_get(t, "/notes?limit=many", &r), 0);
    assert_int_equal(r.status, 422);
    br_test_destroy(&t);
}

static void a_note_needs_a_string_title(void **state)
{
    (void)state;
    const br_service_spec *io[] = {&notes_service};
    br_test *t = br_test_new(io, 1, NULL);
    assert_non_null(t);
    br_test_reply r;
    assert_int_equal(br_test_post(t, "/notes", "{\"text\":\"no title\"}", &r), 0);
    assert_int_equal(r.status, 422);
    assert_string_equal(r.body, "{\"detail\":[{\"type\":\"missing\",\"loc\":[\"body\",\"title\"],"
                                "\"msg\":\"Field required\",\"input\":null}]}");
    assert_int_equal(br_test_post(t, "/notes", "{\"title\":5,\"text\":[]}", &r), 0);
    assert_int_equal(r.status, 422);
    assert_string_equal(r.body,
                        "{\"detail\":[{\"type\":\"string_type\",\"loc\":[\"body\",\"title\"],"
                        "\"msg\":\"Input should be a valid string\",\"input\":null},"
                        "{\"type\":\"string_type\",\"loc\":[\"body\",\"text\"],"
                        "\"msg\":\"Input should be a valid string\",\"input\":null}]}");
    assert_int_equal(br_test_get(t, "/notes", &r), 0);
    assert_string_equal(r.body, "[]");
    br_test_destroy(&t);
}

static void words_are_counted_on_a_cpu_worker(void **state)
{
    (void)state;
    const br_service_spec *cpu[] = {&wordcount_service};
    br_test *t = br_test_new(cpu, 1, NULL);
    assert_non_null(t);
    br_test_reply r;
    assert_int_equal(br_test_post(t, "/notes/wordcount", "{\"text\":\"  two\\twords \"}", &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"words\":2}");
    assert_int_equal(br_test_post(t, "/notes/wordcount", "{}", &r), 0);
    assert_int_equal(r.status, 422);
    br_test_destroy(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(notes_are_created_read_and_listed),
        cmocka_unit_test(a_note_needs_a_string_title),
        cmocka_unit_test(words_are_counted_on_a_cpu_worker),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
