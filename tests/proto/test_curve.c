/*
 * test_curve.c - CURVE key files: key pairs written by barista-keygen's code read back,
 * every malformed key-pair file is refused with the line at fault, public keys load
 * from text and from both file formats, and authorised-key sets load from files and
 * directories within their limits.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "barista/curve.h"
#include "barista/proto.h"

typedef struct fixture {
    char dir[64]; /* a fresh temporary directory */
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/barista-curve-XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    int rc = system(cmd);
    free(f);
    return rc == 0 ? 0 : -1;
}

/* f->dir/name into out. */
static void path_of(const fixture *f, const char *name, char *out, size_t cap)
{
    assert_true((size_t)snprintf(out, cap, "%s/%s", f->dir, name) < cap);
}

static void write_text(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    assert_int_equal(fputs(text, fp) >= 0, 1);
    assert_int_equal(fclose(fp), 0);
}

/* A valid key pair as file text, with extra text around it. */
static void keypair_text(const br_curve_keypair *kp, const char *pub_prefix, char *out, size_t cap)
{
    snprintf(out, cap, "# comment\r\n\r\n%spublic-key: %s\r\n  secret-key:\t%s  \r\n", pub_prefix,
             kp->public_key, kp->secret_key);
}

static void round_trips_a_key_pair_file_with_mode_0600(void **state)
{
    fixture *f = *state;
    char path[128], why[256];
    br_curve_keypair kp, back;
    struct stat st;
    path_of(f, "pair.key", path, sizeof(path));
    assert_int_equal(br_curve_keypair_generate(&kp), 0);
    assert_int_equal(br_curve_keypair_write(path, &kp, why, sizeof(why)), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(br_curve_keypair_read(path, &back, why, sizeof(why)), 0);
    assert_string_equal(back.public_key, kp.public_key);
    assert_string_equal(back.secret_key, kp.secret_key);
    br_curve_keypair_wipe(&back);
    assert_int_equal(back.secret_key[0], '\0');
}

static void never_replaces_an_existing_key_pair_file(void **state)
{
    fixture *f = *state;
    char path[128], why[256];
    br_curve_keypair kp, back;
    path_of(f, "pair.key", path, sizeof(path));
    write_text(path, "keep me\n");
    assert_int_equal(br_curve_keypair_generate(&kp), 0);
    assert_int_equal(br_curve_keypair_write(path, &kp, why, sizeof(why)), BR_EIO);
    assert_non_null(strstr(why, "File exists"));
    assert_int_equal(br_curve_keypair_read(path, &back, why, sizeof(why)), BR_EVALUE);
}

static void accepts_comments_blank_lines_crlf_and_spacing(void **state)
{
    char text[512], why[256];
    br_curve_keypair kp, back;
    assert_int_equal(br_curve_keypair_generate(&kp), 0);
    keypair_text(&kp, "", text, sizeof(text));
    assert_int_equal(br_curve_keypair_parse(text, strlen(text), &back, why, sizeof(why)), 0);
    assert_string_equal(back.public_key, kp.public_key);
}

/* tmpl with 1, 2 and 3 replaced by kp's public key, secret key and public key less its
 * last character. */
static void fill(char *out, size_t cap, const char *tmpl, const br_curve_keypair *kp)
{
    size_t n = 0;
    for (const char *t = tmpl; *t; t++) {
        const char *put = *t == '1' || *t == '3' ? kp->public_key : *t == '2' ? kp->secret_key : t;
        size_t len = *t == '1' || *t == '2' ? BR_CURVE_Z85_LEN
                     : *t == '3'            ? BR_CURVE_Z85_LEN - 1
                                            : 1;
        assert_true(n + len < cap);
        memcpy(out + n, put, len);
        n += len;
    }
    out[n] = '\0';
}

static void refuses_malformed_key_pair_files_naming_the_line(void **state)
{
    char text[512], why[256];
    br_curve_keypair kp, other, back;
    assert_int_equal(br_curve_keypair_generate(&kp), 0);
    assert_int_equal(br_curve_keypair_generate(&other), 0);
    static const struct {
        const char *tmpl; /* 1: the public key, 2: the secret key, 3: 1 less a character */
        const char *want; /* in the reason */
    } cases[] = {
        {"public-key: 1\n#2\n", "no secret-key line"},
        {"#1\nsecret-key: 2\n", "no public-key line"},
        {"public-key: 1\nsecret-key: 2\nsecret-key: x\n", "line 3: secret-key given twice"},
        {"public-key: 1\nsecret: 2\n", "line 2: want"},
        {"public-key: 1\nsecret-key: 2!\n", "line 2: not a 40-character Z85 key"},
        {"public-key: 3\nsecret-key: 2\n", "line 1: not a 40-character Z85 key"},
        {"public-key: 1 \"\nsecret-key: 2\n", "line 1: not a 40-character Z85 key"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        fill(text, sizeof(text), cases[i].tmpl, &kp);
        assert_int_equal(br_curve_keypair_parse(text, strlen(text), &back, why, sizeof(why)),
                         BR_EVALUE);
        if (!strstr(why, cases[i].want))
            fail_msg("case %zu: reason \"%s\" lacks \"%s\"", i, why, cases[i].want);
        assert_int_equal(back.secret_key[0], '\0'); /* nothing half-parsed is left */
    }
    /* Two valid keys that are not a pair. */
    snprintf(text, sizeof(text), "public-key: %s\nsecret-key: %s\n", other.public_key,
             kp.secret_key);
    assert_int_equal(br_curve_keypair_parse(text, strlen(text), &back, why, sizeof(why)),
                     BR_EVALUE);
    assert_non_null(strstr(why, "does not belong"));
}

static void validates_z85_keys_exactly(void **state)
{
    br_curve_keypair kp;
    uint8_t raw[BR_CURVE_KEY_LEN];
    char z85[BR_CURVE_Z85_LEN + 1], bad[BR_CURVE_Z85_LEN + 1];
    assert_int_equal(br_curve_keypair_generate(&kp), 0);
    assert_true(br_curve_key_valid(kp.public_key, BR_CURVE_Z85_LEN, raw));
    br_curve_key_z85(raw, z85);
    assert_string_equal(z85, kp.public_key);
    assert_false(br_curve_key_valid(kp.public_key, BR_CURVE_Z85_LEN - 1, NULL));
    assert_false(br_curve_key_valid("", 0, NULL));
    memcpy(bad, kp.public_key, sizeof(bad));
    bad[7] = '"'; /* not in the Z85 alphabet */
    assert_false(br_curve_key_valid(bad, BR_CURVE_Z85_LEN, NULL));
    bad[7] = '\0';
    assert_false(br_curve_key_valid(bad, BR_CURVE_Z85_LEN, NULL));
    /* Z85 "#####" is past 2^32 - 1: valid characters, not a key. */
    memset(bad, '#', BR_CURVE_Z85_LEN);
    assert_false(br_curve_key_valid(bad, BR_CURVE_Z85_LEN, NULL));
}

static void loads_a_public_key_from_text_or_either_file_format(void **state)
{
    fixture *f = *state;
    char pair[128], list[128], empty[128], arg[160], why[256], out[BR_CURVE_Z85_LEN + 1];
    char text[512];
    br_curve_keypair kp;
    assert_int_equal(br_curve_keypair_generate(&kp), 0);
    assert_int_equal(br_curve_public_key_load(kp.public_key, out, why, sizeof(why)), 0);
    assert_string_equal(out, kp.public_key);

    path_of(f, "gw.key", pair, sizeof(pair));
    assert_int_equal(br_curve_keypair_write(pair, &kp, why, sizeof(why)), 0);
    snprintf(arg, sizeof(arg), "@%s", pair);
    memset(out, 0, sizeof(out));
    assert_int_equal(br_curve_public_key_load(arg, out, why, sizeof(why)), 0);
    assert_string_equal(out, kp.public_key);

    path_of(f, "gw.pub", list, sizeof(list));
    snprintf(text, sizeof(text), "# the gateway\n%s gateway-1\n", kp.public_key);
    write_text(list, text);
    snprintf(arg, sizeof(arg), "@%s", list);
    memset(out, 0, sizeof(out));
    assert_int_equal(br_curve_public_key_load(arg, out, why, sizeof(why)), 0);
    assert_string_equal(out, kp.public_key);

    path_of(f, "empty", empty, sizeof(empty));
    write_text(empty, "# nothing\n\n");
    snprintf(arg, sizeof(arg), "@%s", empty);
    assert_int_equal(br_curve_public_key_load(arg, out, why, sizeof(why)), BR_EVALUE);
    assert_non_null(strstr(why, "no key"));
    assert_int_equal(br_curve_public_key_load("@/nonexistent/x", out, why, sizeof(why)), BR_EIO);
    assert_int_equal(br_curve_public_key_load("short", out, why, sizeof(why)), BR_EVALUE);
    /* A key that starts with '@' is a key, not a file name. */
    uint8_t raw[BR_CURVE_KEY_LEN] = {0};
    char at_key[BR_CURVE_Z85_LEN + 1];
    for (raw[0] = 0; raw[0] < 255; raw[0]++) {
        br_curve_key_z85(raw, at_key);
        if (at_key[0] == '@')
            break;
    }
    assert_int_equal(at_key[0], '@');
    assert_int_equal(br_curve_public_key_load(at_key, out, why, sizeof(why)), 0);
    assert_string_equal(out, at_key);
}

static void finds_authorised_keys_by_name_and_refuses_others(void **state)
{
    br_curve_keypair a, b, c;
    uint8_t raw[BR_CURVE_KEY_LEN];
    char text[512], why[256];
    assert_int_equal(br_curve_keypair_generate(&a), 0);
    assert_int_equal(br_curve_keypair_generate(&b), 0);
    assert_int_equal(br_curve_keypair_generate(&c), 0);
    snprintf(text, sizeof(text), "# workers\n%s  io-worker 1\r\n\n%s\n%s duplicate\n", a.public_key,
             b.public_key, a.public_key);
    br_curve_keyset *set = br_curve_keyset_new();
    assert_non_null(set);
    assert_int_equal(br_curve_keyset_parse(set, text, strlen(text), "keys", why, sizeof(why)), 0);
    assert_int_equal(br_curve_keyset_count(set), 2);
    assert_true(br_curve_key_valid(a.public_key, BR_CURVE_Z85_LEN, raw));
    assert_string_equal(br_curve_keyset_find(set, raw), "io-worker 1");
    assert_true(br_curve_key_valid(b.public_key, BR_CURVE_Z85_LEN, raw));
    assert_string_equal(br_curve_keyset_find(set, raw), "");
    assert_true(br_curve_key_valid(c.public_key, BR_CURVE_Z85_LEN, raw));
    assert_null(br_curve_keyset_find(set, raw));
    /* A secret key is a valid Z85 key too, but no public key of ours. */
    assert_true(br_curve_key_valid(a.secret_key, BR_CURVE_Z85_LEN, raw));
    assert_null(br_curve_keyset_find(set, raw));

    snprintf(text, sizeof(text), "%s\npublic-key: %s\n", c.public_key, c.public_key);
    assert_int_equal(br_curve_keyset_parse(set, text, strlen(text), "more", why, sizeof(why)),
                     BR_EVALUE);
    assert_non_null(strstr(why, "more:2: want a 40-character Z85 key"));
    br_curve_keyset_destroy(&set);
    br_curve_keyset_destroy(&set);
    assert_null(set);
}

static void an_empty_set_finds_nothing(void **state)
{
    uint8_t raw[BR_CURVE_KEY_LEN] = {1};
    char why[64];
    br_curve_keyset *set = br_curve_keyset_new();
    assert_non_null(set);
    assert_null(br_curve_keyset_find(set, raw));
    assert_int_equal(br_curve_keyset_parse(set, "# none\n", 7, "empty", why, sizeof(why)), 0);
    assert_null(br_curve_keyset_find(set, raw));
    br_curve_keyset_destroy(&set);
}

static void caps_an_authorised_set_at_its_limit(void **state)
{
    br_curve_keyset *set = br_curve_keyset_new();
    uint8_t raw[BR_CURVE_KEY_LEN] = {0};
    char z85[BR_CURVE_Z85_LEN + 1];
    assert_non_null(set);
    for (uint32_t i = 0; i <= BR_CURVE_MAX_KEYS; i++) {
        memcpy(raw, &i, sizeof(i));
        br_curve_key_z85(raw, z85);
        int rc = br_curve_keyset_add(set, z85, BR_CURVE_Z85_LEN, "k", 1);
        assert_int_equal(rc, i < BR_CURVE_MAX_KEYS ? 0 : BR_ELIMIT);
    }
    assert_int_equal(br_curve_keyset_count(set), BR_CURVE_MAX_KEYS);
    br_curve_keyset_destroy(&set);
}

static void loads_every_visible_file_of_a_directory(void **state)
{
    fixture *f = *state;
    char path[160], text[256], why[256];
    br_curve_keypair k[4];
    uint8_t raw[BR_CURVE_KEY_LEN];
    for (int i = 0; i < 4; i++)
        assert_int_equal(br_curve_keypair_generate(&k[i]), 0);
    path_of(f, "w1.pub", path, sizeof(path));
    snprintf(text, sizeof(text), "%s worker-1\n", k[0].public_key);
    write_text(path, text);
    path_of(f, "w2", path, sizeof(path));
    snprintf(text, sizeof(text), "%s", k[1].public_key); /* no final newline */
    write_text(path, text);
    path_of(f, ".hidden", path, sizeof(path));
    snprintf(text, sizeof(text), "%s\n", k[2].public_key);
    write_text(path, text);
    path_of(f, "sub", path, sizeof(path));
    assert_int_equal(mkdir(path, 0700), 0);
    path_of(f, "sub/w4", path, sizeof(path));
    snprintf(text, sizeof(text), "%s\n", k[3].public_key);
    write_text(path, text);

    br_curve_keyset *set = br_curve_keyset_new();
    assert_non_null(set);
    assert_int_equal(br_curve_keyset_load(set, f->dir, why, sizeof(why)), 0);
    assert_int_equal(br_curve_keyset_count(set), 2);
    assert_true(br_curve_key_valid(k[0].public_key, BR_CURVE_Z85_LEN, raw));
    assert_string_equal(br_curve_keyset_find(set, raw), "worker-1");
    assert_true(br_curve_key_valid(k[1].public_key, BR_CURVE_Z85_LEN, raw));
    assert_non_null(br_curve_keyset_find(set, raw));
    assert_true(br_curve_key_valid(k[2].public_key, BR_CURVE_Z85_LEN, raw));
    assert_null(br_curve_keyset_find(set, raw));

    /* One bad file fails the whole load, naming the file and line. */
    path_of(f, "w3", path, sizeof(path));
    write_text(path, "\nnot-a-key\n");
    assert_int_equal(br_curve_keyset_load(set, f->dir, why, sizeof(why)), BR_EVALUE);
    assert_non_null(strstr(why, "w3:2:"));
    br_curve_keyset_destroy(&set);
}

static void refuses_missing_and_oversized_files(void **state)
{
    fixture *f = *state;
    char path[128], why[256];
    br_curve_keypair kp;
    br_curve_keyset *set = br_curve_keyset_new();
    assert_non_null(set);
    assert_int_equal(br_curve_keyset_load(set, "/nonexistent/keys", why, sizeof(why)), BR_EIO);
    assert_non_null(strstr(why, "/nonexistent/keys"));
    path_of(f, "big", path, sizeof(path));
    write_text(path, "x");
    assert_int_equal(truncate(path, BR_CURVE_FILE_MAX + 1), 0);
    assert_int_equal(br_curve_keyset_load(set, path, why, sizeof(why)), BR_ELIMIT);
    assert_int_equal(br_curve_keypair_read(path, &kp, why, sizeof(why)), BR_ELIMIT);
    assert_int_equal(br_curve_keypair_read(f->dir, &kp, why, sizeof(why)), BR_EIO);
    assert_int_equal(br_curve_keyset_count(set), 0);
    br_curve_keyset_destroy(&set);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(round_trips_a_key_pair_file_with_mode_0600, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(never_replaces_an_existing_key_pair_file, setup, teardown),
        cmocka_unit_test(accepts_comments_blank_lines_crlf_and_spacing),
        cmocka_unit_test(refuses_malformed_key_pair_files_naming_the_line),
        cmocka_unit_test(validates_z85_keys_exactly),
        cmocka_unit_test_setup_teardown(loads_a_public_key_from_text_or_either_file_format, setup,
                                        teardown),
        cmocka_unit_test(finds_authorised_keys_by_name_and_refuses_others),
        cmocka_unit_test(an_empty_set_finds_nothing),
        cmocka_unit_test(caps_an_authorised_set_at_its_limit),
        cmocka_unit_test_setup_teardown(loads_every_visible_file_of_a_directory, setup, teardown),
        cmocka_unit_test_setup_teardown(refuses_missing_and_oversized_files, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
