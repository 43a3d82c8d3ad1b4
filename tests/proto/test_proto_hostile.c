/*
 * test_proto_hostile.c - the decoder against input written to hurt it: every
 * truncation of every valid message, declared counts and lengths with nothing behind
 * them, random bytes and mutated messages.  The decoder must answer with an error (or
 * a message that survives a round trip), never crash, and never allocate for a count
 * the bytes cannot back (ASan would abort the run on a multi-gigabyte request).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "samples.h"

/* A fixed-seed xorshift64 generator: the same inputs on every run. */
static uint64_t rng_state = 0x5eed5eed5eed5eedull;

static uint32_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}

/* The largest mutated message: the typical samples are a few hundred bytes. */
#define MUTANT_MAX 4096

static int decode_bytes(const br_limits *lim, const void *buf, size_t len)
{
    br_decoder *d = br_decoder_new(lim);
    assert_non_null(d);
    br_msg out;
    int rc = br_decoder_decode(d, buf, len, &out);
    br_decoder_destroy(&d);
    return rc;
}

static void rejects_every_truncation_of_every_message(void **state)
{
    static const sample_shape shapes[] = {SAMPLE_TYPICAL, SAMPLE_EMPTY, SAMPLE_MAXIMAL};
    br_decoder *d = br_decoder_new(NULL);
    for (size_t s = 0; s < 3; s++) {
        for (unsigned type = 1; type <= BR_MSG_TYPE_MAX; type++) {
            if (!br_msg_type_known(type))
                continue;
            br_msg m, out;
            br_buf buf = {0};
            sample_msg(type, shapes[s], &m);
            assert_int_equal(br_msg_encode(&m, &buf), 0);
            /* Maximal messages are long: every 61st cut, and every cut near the end. */
            size_t stride = shapes[s] == SAMPLE_MAXIMAL ? 61 : 1;
            for (size_t cut = 0; cut < buf.len; cut++) {
                if (cut % stride != 0 && cut + 64 < buf.len)
                    continue;
                int rc = br_decoder_decode(d, buf.data, cut, &out);
                if (rc != BR_ETRUNC)
                    fail_msg("%s cut at %zu of %zu: %s", br_msg_type_name(type), cut, buf.len,
                             br_strerror(rc));
                assert_int_equal(out.type, 0);
            }
            br_buf_free(&buf);
        }
    }
    br_decoder_destroy(&d);
}

static void refuses_huge_declared_counts_without_allocating(void **state)
{
    /* Under the default limits the answer is BR_ELIMIT or BR_ETRUNC; with every limit at
     * its maximum only the bytes left stand between the count and an allocation. */
    br_limits open = {UINT32_MAX, UINT32_MAX, UINT32_MAX, UINT32_MAX, UINT32_MAX,
                      UINT32_MAX, UINT32_MAX, UINT32_MAX, UINT32_MAX};
    size_t n = 0;
    for (const sample_hostile *h; (h = sample_hostile_get(n)) != NULL; n++) {
        int rc = decode_bytes(NULL, h->bytes, h->len);
        if (rc != BR_ELIMIT && rc != BR_ETRUNC)
            fail_msg("%s: %s under default limits", h->what, br_strerror(rc));
        rc = decode_bytes(&open, h->bytes, h->len);
        if (rc != BR_ETRUNC)
            fail_msg("%s: %s with open limits", h->what, br_strerror(rc));
    }
    assert_true(n > 10);
}

static void rejects_unused_and_reserved_bytes(void **state)
{
    /* 0xc1 is never used by msgpack; a HEARTBEAT carrying it as an extra is broken. */
    assert_int_equal(decode_bytes(NULL, "\x93\x01\x06\xc1", 4), BR_ETYPE);
    assert_int_equal(decode_bytes(NULL, "\xc1", 1), BR_ETYPE);
    assert_int_equal(decode_bytes(NULL, "\x06", 1), BR_ETYPE);
}

static void survives_random_bytes(void **state)
{
    uint8_t buf[64];
    size_t decoded = 0;
    for (int i = 0; i < 20000; i++) {
        size_t len = rng() % sizeof buf;
        for (size_t j = 0; j < len; j++)
            buf[j] = (uint8_t)rng();
        /* Half the inputs start like a message so that they get past the header. */
        if (i % 2 && len >= 3) {
            buf[0] = (uint8_t)(0x90 | (rng() % 16));
            buf[1] = 0x01;
            do
                buf[2] = (uint8_t)(1 + rng() % BR_MSG_TYPE_MAX);
            while (!br_msg_type_known(buf[2]));
        }
        int rc = sample_decode_check(buf, len);
        if (rc == SAMPLE_BROKEN)
            fail_msg("random input %d broke the decoder's promise", i);
        decoded += rc == 0;
    }
    /* A few random inputs are valid messages (HEARTBEATs and CANCELs, mostly). */
    assert_true(decoded > 0);
}

/* Bytes that mean something to msgpack: array, map and string headers, nil, the unused
 * 0xc1, widest integers. */
static const uint8_t interesting[] = {0x00, 0x7f, 0x80, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1,
                                      0xc4, 0xcc, 0xcf, 0xd3, 0xdb, 0xdd, 0xdf, 0xe0, 0xff};

/* Applies one random mutation to buf[0..*len): flip a bit, insert a byte, delete a
 * byte or overwrite one with an interesting value. */
static void mutate(uint8_t *buf, size_t *len)
{
    size_t at = *len ? rng() % *len : 0;
    switch (rng() % 4) {
    case 0:
        if (*len)
            buf[at] ^= (uint8_t)(1u << (rng() % 8));
        break;
    case 1:
        if (*len < MUTANT_MAX) {
            memmove(buf + at + 1, buf + at, *len - at);
            buf[at] = rng() % 2 ? (uint8_t)rng() : interesting[rng() % sizeof interesting];
            (*len)++;
        }
        break;
    case 2:
        if (*len) {
            memmove(buf + at, buf + at + 1, *len - at - 1);
            (*len)--;
        }
        break;
    default:
        if (*len)
            buf[at] = interesting[rng() % sizeof interesting];
        break;
    }
}

static void survives_mutations_of_valid_messages(void **state)
{
    static uint8_t mutant[MUTANT_MAX];
    size_t tried = 0;
    for (int shape = SAMPLE_TYPICAL; shape <= SAMPLE_EMPTY; shape++) {
        for (unsigned type = 1; type <= BR_MSG_TYPE_MAX; type++) {
            if (!br_msg_type_known(type))
                continue;
            br_msg m;
            br_buf buf = {0};
            sample_msg(type, (sample_shape)shape, &m);
            assert_int_equal(br_msg_encode(&m, &buf), 0);
            assert_true(buf.len < MUTANT_MAX / 2);
            for (int i = 0; i < 400; i++) {
                size_t len = buf.len;
                memcpy(mutant, buf.data, len);
                for (uint32_t k = 1 + rng() % 3; k > 0; k--)
                    mutate(mutant, &len);
                if (sample_decode_check(mutant, len) == SAMPLE_BROKEN)
                    fail_msg("%s mutant %d broke the decoder's promise", br_msg_type_name(type), i);
                tried++;
            }
            br_buf_free(&buf);
        }
    }
    size_t known = 0;
    for (unsigned type = 1; type <= BR_MSG_TYPE_MAX; type++)
        known += br_msg_type_known(type);
    assert_int_equal(tried, 2 * known * 400);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rejects_every_truncation_of_every_message),
        cmocka_unit_test(refuses_huge_declared_counts_without_allocating),
        cmocka_unit_test(rejects_unused_and_reserved_bytes),
        cmocka_unit_test(survives_random_bytes),
        cmocka_unit_test(survives_mutations_of_valid_messages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
