/*
 * test_curve.c - CURVE certificates: files written by CZMQ's zcert (what barista-keygen
 * uses) read back with their metadata; a secret certificate gives a key pair; keys are
 * checked as Z85 and a public key that does not belong to the secret key is refused;
 * the key files of the format before certificates are refused with a reason saying
 * so; public keys load from text and from either certificate file.
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
#include <czmq.h>

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
    snprintf(out, cap, "%s/%s", f->dir, name);
}

static void write_text(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    assert_int_equal(fputs(text, fp) >= 0, 1);
    assert_int_equal(fclose(fp), 0);
}

/* Saves a new zcert as f->dir/name (and name_secret); returns it (caller destroys). */
static zcert_t *saved_cert(const fixture *f, const char *name, const char *services)
{
    char path[128];
    zcert_t *cert = zcert_new();
    assert_non_null(cert);
    zcert_set_meta(cert, "name", "%s", name);
    if (services)
        zcert_set_meta(cert, "services", "%s", services);
    path_of(f, name, path, sizeof(path));
    assert_int_equal(zcert_save(cert, path), 0);
    return cert;
}

static void reads_czmq_certificates_with_their_metadata(void **state)
{
    fixture *f = *state;
    zcert_t *orig = saved_cert(f, "io", "hello,echo");
    char path[128], secret[128], why[256];
    path_of(f, "io", path, sizeof(path));
    path_of(f, "io_secret", secret, sizeof(secret));
    zcert_t *pub = NULL, *sec = NULL;
    assert_int_equal(br_curve_cert_read(path, false, &pub, why, sizeof(why)), 0);
    assert_string_equal(zcert_public_txt(pub), zcert_public_txt(orig));
    assert_string_equal(zcert_meta(pub, "services"), "hello,echo");
    assert_string_equal(zcert_meta(pub, "name"), "io");
    /* The public file has no secret: refused where one is needed. */
    assert_int_equal(br_curve_cert_read(path, true, &sec, why, sizeof(why)), BR_EVALUE);
    assert_null(sec);
    assert_non_null(strstr(why, "no secret-key"));
    assert_int_equal(br_curve_cert_read(secret, true, &sec, why, sizeof(why)), 0);
    assert_true(zcert_eq(sec, orig));
    br_curve_keypair kp;
    assert_int_equal(br_curve_keypair_read(secret, &kp, why, sizeof(why)), 0);
    assert_string_equal(kp.public_key, zcert_public_txt(orig));
    assert_string_equal(kp.secret_key, zcert_secret_txt(orig));
    br_curve_keypair_wipe(&kp);
    assert_int_equal(kp.secret_key[0], 0);
    /* The secret file is private. */
    struct stat st;
    assert_int_equal(stat(secret, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    zcert_destroy(&pub);
    zcert_destroy(&sec);
    zcert_destroy(&orig);
}

static void refuses_bad_certificates_with_a_reason(void **state)
{
    fixture *f = *state;
    br_curve_keypair a, b;
    assert_int_equal(br_curve_keypair_generate(&a), 0);
    assert_int_equal(br_curve_keypair_generate(&b), 0);
    char mismatch[256], typo[256], old[256];
    snprintf(mismatch, sizeof(mismatch),
             "curve\n    public-key = \"%s\"\n    secret-key = \"%s\"\n", a.public_key,
             b.secret_key);
    /* One character outside Z85: CZMQ's own loader would take it as another key. */
    snprintf(typo, sizeof(typo), "curve\n    public-key = \"%.39s~\"\n", a.public_key);
    snprintf(old, sizeof(old), "public-key: %s\nsecret-key: %s\n", a.public_key, a.secret_key);
    static const char *const because[] = {"does not belong",     "not 40 Z85",
                                          "before certificates", "before certificates",
                                          "no curve section",    "no public-key"};
    char oldlist[128];
    snprintf(oldlist, sizeof(oldlist), "%s io-worker\n", b.public_key);
    const char *texts[] = {mismatch,
                           typo,
                           old,
                           oldlist,
                           "metadata\n    name = \"x\"\n",
                           "curve\n    secret-key = \"x\"\n"};
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        char path[128], why[512];
        snprintf(path, sizeof(path), "%s/bad%zu", f->dir, i);
        write_text(path, texts[i]);
        zcert_t *cert = NULL;
        assert_int_equal(br_curve_cert_read(path, true, &cert, why, sizeof(why)), BR_EVALUE);
        assert_null(cert);
        assert_non_null(strstr(why, because[i]));
        assert_non_null(strstr(why, path));
    }
    char why[256], path[128];
    zcert_t *cert = NULL;
    path_of(f, "missing", path, sizeof(path));
    assert_int_equal(br_curve_cert_read(path, false, &cert, why, sizeof(why)), BR_EIO);
    assert_non_null(strstr(why, "No such file"));
    path_of(f, "huge", path, sizeof(path));
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    for (int i = 0; i <= BR_CURVE_CERT_MAX / 8; i++)
        fputs("# pad  \n", fp);
    fclose(fp);
    assert_int_equal(br_curve_cert_read(path, false, &cert, why, sizeof(why)), BR_ELIMIT);
    assert_int_equal(br_curve_cert_read(f->dir, false, &cert, why, sizeof(why)), BR_EIO);
}

static void validates_z85_keys_exactly(void **state)
{
    (void)state;
    br_curve_keypair kp;
    uint8_t raw[BR_CURVE_KEY_LEN];
    char back[BR_CURVE_Z85_LEN + 1];
    assert_int_equal(br_curve_keypair_generate(&kp), 0);
    assert_true(br_curve_key_valid(kp.public_key, BR_CURVE_Z85_LEN, raw));
    br_curve_key_z85(raw, back);
    assert_string_equal(back, kp.public_key);
    assert_false(br_curve_key_valid(kp.public_key, BR_CURVE_Z85_LEN - 1, NULL));
    char bad[BR_CURVE_Z85_LEN + 1];
    memcpy(bad, kp.public_key, sizeof(bad));
    bad[7] = ' ';
    assert_false(br_curve_key_valid(bad, BR_CURVE_Z85_LEN, NULL));
    bad[7] = '\0';
    assert_false(br_curve_key_valid(bad, BR_CURVE_Z85_LEN, NULL));
}

static void loads_a_public_key_from_text_or_either_certificate(void **state)
{
    fixture *f = *state;
    zcert_t *orig = saved_cert(f, "gw", NULL);
    char out[BR_CURVE_Z85_LEN + 1], why[256], arg[160];
    assert_int_equal(br_curve_public_key_load(zcert_public_txt(orig), out, why, sizeof(why)), 0);
    assert_string_equal(out, zcert_public_txt(orig));
    snprintf(arg, sizeof(arg), "@%s/gw", f->dir);
    assert_int_equal(br_curve_public_key_load(arg, out, why, sizeof(why)), 0);
    assert_string_equal(out, zcert_public_txt(orig));
    snprintf(arg, sizeof(arg), "@%s/gw_secret", f->dir);
    memset(out, 0, sizeof(out));
    assert_int_equal(br_curve_public_key_load(arg, out, why, sizeof(why)), 0);
    assert_string_equal(out, zcert_public_txt(orig));
    assert_int_equal(br_curve_public_key_load("short", out, why, sizeof(why)), BR_EVALUE);
    snprintf(arg, sizeof(arg), "@%s/nothing", f->dir);
    assert_int_equal(br_curve_public_key_load(arg, out, why, sizeof(why)), BR_EIO);
    zcert_destroy(&orig);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(reads_czmq_certificates_with_their_metadata, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(refuses_bad_certificates_with_a_reason, setup, teardown),
        cmocka_unit_test(validates_z85_keys_exactly),
        cmocka_unit_test_setup_teardown(loads_a_public_key_from_text_or_either_certificate, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
