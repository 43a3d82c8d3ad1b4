/*
 * test_multipart.c - the multipart/form-data parser on a real body: one curl made with
 * `curl -F title="Hello, world" -F empty= -F note=@notes.txt;type=text/plain
 * -F blob=@blob.bin -F 'quoted=say "hi"'` (captured in data/curl_form.multipart, its
 * Content-Type beside it), fed whole, a byte at a time and in odd slices; and bodies
 * cut short, with a nameless part, or with a field past the limit.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "barista/multipart.h"
#include "barista/proto.h"

#ifndef TEST_DATA_DIR
#error "TEST_DATA_DIR must name tests/workers/data"
#endif

/* What the callbacks saw, as text: "field NAME=VALUE;", "file NAME FILENAME TYPE
 * BYTES SHA256;". */
typedef struct seen {
    char log[4096];
    size_t len;
    crypto_hash_sha256_state sha;
    size_t bytes;
} seen;

__attribute__((format(printf, 2, 3))) static void say(seen *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(s->log + s->len, sizeof(s->log) - s->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        s->len += (size_t)n;
}

static int on_field(void *arg, const br_multipart_part *p, br_str v)
{
    say(arg, "field %.*s=%.*s;", (int)p->name.len, p->name.ptr, (int)v.len, v.ptr);
    return 0;
}

static int on_file_start(void *arg, const br_multipart_part *p)
{
    seen *s = arg;
    say(s, "file %.*s %.*s %.*s ", (int)p->name.len, p->name.ptr, (int)p->filename.len,
        p->filename.ptr, (int)p->content_type.len, p->content_type.ptr);
    crypto_hash_sha256_init(&s->sha);
    s->bytes = 0;
    return 0;
}

static int on_file_data(void *arg, const void *data, size_t len)
{
    seen *s = arg;
    crypto_hash_sha256_update(&s->sha, data, len);
    s->bytes += len;
    return 0;
}

static int on_file_end(void *arg)
{
    seen *s = arg;
    unsigned char d[32];
    char hex[65];
    crypto_hash_sha256_final(&s->sha, d);
    sodium_bin2hex(hex, sizeof(hex), d, sizeof(d));
    say(s, "%zu %s;", s->bytes, hex);
    return 0;
}

static const br_multipart_handler handler = {on_field, on_file_start, on_file_data, on_file_end};

static char *slurp(const char *name, size_t *len)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", TEST_DATA_DIR, name);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static char buf[1 << 16];
    *len = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    char *out = malloc(*len + 1);
    assert_non_null(out);
    memcpy(out, buf, *len);
    out[*len] = '\0';
    return out;
}

static const char want[] = "field title=Hello, world;"
                           "field empty=;"
                           "file note notes.txt text/plain 36 "
                           "69db8c343a7b5beb0d7a301e935efc81e55a27558f45429071667794b9c58664;"
                           "file blob blob.bin application/octet-stream 5000 "
                           "37c9e177032a809e08fee3acae6fbec912aeb11dd4b85f10fbc0cea5a81dd240;"
                           "field quoted=say \"hi\";";

/* Parses the captured body fed in slices of `step` bytes (0: whole). */
static void parse_in_slices(size_t step)
{
    size_t len, tlen;
    char *body = slurp("curl_form.multipart", &len);
    char *type = slurp("curl_form.multipart.ctype", &tlen);
    while (tlen && (type[tlen - 1] == '\n' || type[tlen - 1] == '\r'))
        type[--tlen] = '\0';
    seen s = {0};
    br_multipart *mp = br_multipart_new(br_str_c(type), &handler, &s);
    assert_non_null(mp);
    for (size_t off = 0; off < len;) {
        size_t n = step == 0 || len - off < step ? len - off : step;
        assert_int_equal(br_multipart_feed(mp, body + off, n), 0);
        off += n;
    }
    assert_int_equal(br_multipart_finish(mp), 0);
    s.log[s.len] = '\0';
    assert_string_equal(s.log, want);
    br_multipart_destroy(&mp);
    br_multipart_destroy(&mp);
    free(body);
    free(type);
}

static void parses_a_curl_form_whole(void **state)
{
    (void)state;
    parse_in_slices(0);
}

static void parses_a_curl_form_a_byte_at_a_time(void **state)
{
    (void)state;
    parse_in_slices(1);
}

static void parses_a_curl_form_in_odd_slices(void **state)
{
    (void)state;
    parse_in_slices(7);
    parse_in_slices(41);
    parse_in_slices(4093);
}

static void a_body_cut_short_is_truncated(void **state)
{
    (void)state;
    seen s = {0};
    static const char body[] =
        "--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--XyZ";
    br_multipart *mp =
        br_multipart_new(br_str_c("multipart/form-data; boundary=\"XyZ\""), &handler, &s);
    assert_non_null(mp);
    assert_int_equal(br_multipart_feed(mp, body, sizeof(body) - 1), 0);
    assert_int_equal(br_multipart_finish(mp), BR_ETRUNC);
    br_multipart_destroy(&mp);
}

static void a_part_without_a_name_is_malformed(void **state)
{
    (void)state;
    seen s = {0};
    static const char body[] = "--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--\r\n";
    br_multipart *mp = br_multipart_new(br_str_c("multipart/form-data; boundary=b"), &handler, &s);
    assert_int_equal(br_multipart_feed(mp, body, sizeof(body) - 1), BR_EVALUE);
    assert_int_equal(br_multipart_finish(mp), BR_EVALUE);
    br_multipart_destroy(&mp);
}

static void a_field_past_the_limit_is_refused(void **state)
{
    (void)state;
    seen s = {0};
    br_multipart *mp = br_multipart_new(br_str_c("multipart/form-data; boundary=b"), &handler, &s);
    static const char head[] = "--b\r\nContent-Disposition: form-data; name=\"big\"\r\n\r\n";
    assert_int_equal(br_multipart_feed(mp, head, sizeof(head) - 1), 0);
    char *big = calloc(1, BR_MULTIPART_FIELD_MAX + 100);
    memset(big, 'x', BR_MULTIPART_FIELD_MAX + 100);
    assert_int_equal(br_multipart_feed(mp, big, BR_MULTIPART_FIELD_MAX + 100), BR_ELIMIT);
    free(big);
    br_multipart_destroy(&mp);
}

static void other_types_and_bad_boundaries_are_refused(void **state)
{
    (void)state;
    assert_null(br_multipart_new(br_str_c("application/json"), &handler, NULL));
    assert_null(br_multipart_new(br_str_c("multipart/form-data"), &handler, NULL));
    assert_null(br_multipart_new(br_str_c("multipart/form-data; boundary="), &handler, NULL));
    char longer[160] = "multipart/form-data; boundary=";
    memset(longer + strlen(longer), 'a', 80);
    assert_null(br_multipart_new(br_str_c(longer), &handler, NULL));
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parses_a_curl_form_whole),
        cmocka_unit_test(parses_a_curl_form_a_byte_at_a_time),
        cmocka_unit_test(parses_a_curl_form_in_odd_slices),
        cmocka_unit_test(a_body_cut_short_is_truncated),
        cmocka_unit_test(a_part_without_a_name_is_malformed),
        cmocka_unit_test(a_field_past_the_limit_is_refused),
        cmocka_unit_test(other_types_and_bad_boundaries_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
