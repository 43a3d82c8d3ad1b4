/*
 * test_mpread.c - br_cursor (barista/mpread.h), the bounded msgpack reader: values
 * written by msgpack-c's packer read back in every encoding, every truncation refused,
 * declared counts never believed, nesting bounded, wrong types refused, and a failed
 * read never moves the cursor.
 *
 * Linked with -Wl,--wrap=malloc,calloc,realloc so that a test can check that hostile
 * counts cost no allocation.  Truncated inputs are copied into heap blocks of exactly
 * their size, so that ASan catches a read one byte past the end.
 */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <msgpack.h>

#include "barista/mpread.h"

#include "alloc_count.h"

/* ---------------------------------------------------------------------------------- */
/* Helpers.                                                                           */

/* Bytes written by msgpack-c's packer. */
typedef struct packed {
    msgpack_sbuffer sb; /* the bytes */
    msgpack_packer pk;  /* writes into sb */
} packed;

static void packed_init(packed *p)
{
    msgpack_sbuffer_init(&p->sb);
    msgpack_packer_init(&p->pk, &p->sb, msgpack_sbuffer_write);
}

static void packed_destroy(packed *p)
{
    msgpack_sbuffer_destroy(&p->sb);
}

static br_cursor cursor_of(const packed *p)
{
    br_cursor c;
    br_cursor_init(&c, p->sb.data, p->sb.size);
    return c;
}

/* One value of each msgpack type, in br_mp_type order, written into *p. */
static void pack_one_of(packed *p, br_mp_type t)
{
    switch (t) {
    case BR_MP_NIL:
        msgpack_pack_nil(&p->pk);
        break;
    case BR_MP_BOOL:
        msgpack_pack_true(&p->pk);
        break;
    case BR_MP_INT:
        msgpack_pack_int64(&p->pk, -1000);
        break;
    case BR_MP_FLOAT:
        msgpack_pack_double(&p->pk, 2.5);
        break;
    case BR_MP_STR:
        msgpack_pack_str_with_body(&p->pk, "text", 4);
        break;
    case BR_MP_BIN:
        msgpack_pack_bin_with_body(&p->pk, "\x00\x01", 2);
        break;
    case BR_MP_ARRAY:
        msgpack_pack_array(&p->pk, 1);
        msgpack_pack_int(&p->pk, 1);
        break;
    case BR_MP_MAP:
        msgpack_pack_map(&p->pk, 1);
        msgpack_pack_str_with_body(&p->pk, "k", 1);
        msgpack_pack_int(&p->pk, 1);
        break;
    case BR_MP_EXT:
        msgpack_pack_ext_with_body(&p->pk, "\x07\x08\x09", 3, 5);
        break;
    case BR_MP_NONE:
        break;
    }
}

/* A sample holding every type, nested: the input of the truncation and skip tests. */
static void pack_everything(packed *p)
{
    msgpack_pack_array(&p->pk, 14);
    for (br_mp_type t = BR_MP_NIL; t <= BR_MP_EXT; t++)
        pack_one_of(p, t);
    msgpack_pack_fix_uint64(&p->pk, UINT64_MAX);
    msgpack_pack_fix_int32(&p->pk, INT32_MIN);
    msgpack_pack_float(&p->pk, 0.5f);
    msgpack_pack_map(&p->pk, 2);
    msgpack_pack_str_with_body(&p->pk, "list", 4);
    msgpack_pack_array(&p->pk, 2);
    msgpack_pack_false(&p->pk);
    msgpack_pack_map(&p->pk, 0);
    msgpack_pack_int(&p->pk, 7); /* a key that is not a str */
    msgpack_pack_str_with_body(&p->pk, "seven", 5);
    char big[300];
    memset(big, 'x', sizeof big);
    msgpack_pack_str_with_body(&p->pk, big, sizeof big); /* str 16 */
}

/* ---------------------------------------------------------------------------------- */
/* Round trips.                                                                       */

static void reads_back_integers_in_every_encoding(void **state)
{
    (void)state;
    static const int64_t signed_values[] = {
        0,
        1,
        127,
        128,
        255,
        256,
        65535,
        65536,
        -1,
        -32,
        -33,
        -128,
        -129,
        -32768,
        -32769,
        INT32_MAX,
        (int64_t)INT32_MAX + 1,
        INT32_MIN,
        (int64_t)INT32_MIN - 1,
        INT64_MAX,
        INT64_MIN,
    };
    for (size_t i = 0; i < sizeof signed_values / sizeof *signed_values; i++) {
        int64_t want = signed_values[i];
        packed p;
        packed_init(&p);
        msgpack_pack_int64(&p.pk, want);
        br_cursor c = cursor_of(&p);
        int64_t got;
        assert_int_equal(br_cursor_peek(&c), BR_MP_INT);
        assert_int_equal(br_cursor_int(&c, &got), 0);
        assert_true(got == want);
        assert_int_equal(br_cursor_left(&c), 0);

        c = cursor_of(&p);
        uint64_t u;
        assert_int_equal(br_cursor_uint(&c, &u), want < 0 ? BR_EVALUE : 0);
        if (want >= 0)
            assert_true(u == (uint64_t)want);

        c = cursor_of(&p);
        double d;
        assert_int_equal(br_cursor_double(&c, &d), 0);
        assert_true(d == (double)want);
        packed_destroy(&p);
    }

    /* Every fixed width, including signed encodings of non-negative values. */
    packed p;
    packed_init(&p);
    msgpack_pack_fix_uint8(&p.pk, 200);
    msgpack_pack_fix_uint16(&p.pk, 60000);
    msgpack_pack_fix_uint32(&p.pk, 4000000000u);
    msgpack_pack_fix_uint64(&p.pk, UINT64_MAX);
    msgpack_pack_fix_int8(&p.pk, -100);
    msgpack_pack_fix_int16(&p.pk, -30000);
    msgpack_pack_fix_int32(&p.pk, -2000000000);
    msgpack_pack_fix_int64(&p.pk, INT64_MIN + 1);
    msgpack_pack_fix_int8(&p.pk, 100);
    msgpack_pack_fix_int64(&p.pk, 5);
    br_cursor c = cursor_of(&p);
    uint64_t u;
    int64_t i;
    assert_int_equal(br_cursor_uint(&c, &u), 0);
    assert_true(u == 200);
    assert_int_equal(br_cursor_uint(&c, &u), 0);
    assert_true(u == 60000);
    assert_int_equal(br_cursor_uint(&c, &u), 0);
    assert_true(u == 4000000000u);
    assert_int_equal(br_cursor_uint(&c, &u), 0);
    assert_true(u == UINT64_MAX);
    assert_int_equal(br_cursor_int(&c, &i), 0);
    assert_true(i == -100);
    assert_int_equal(br_cursor_int(&c, &i), 0);
    assert_true(i == -30000);
    assert_int_equal(br_cursor_int(&c, &i), 0);
    assert_true(i == -2000000000);
    assert_int_equal(br_cursor_int(&c, &i), 0);
    assert_true(i == INT64_MIN + 1);
    assert_int_equal(br_cursor_uint(&c, &u), 0);
    assert_true(u == 100);
    assert_int_equal(br_cursor_uint(&c, &u), 0);
    assert_true(u == 5);
    assert_int_equal(br_cursor_left(&c), 0);
    packed_destroy(&p);
}

static void reads_back_floats_doubles_nil_and_booleans(void **state)
{
    (void)state;
    packed p;
    packed_init(&p);
    msgpack_pack_float(&p.pk, 1.5f);
    msgpack_pack_double(&p.pk, -1e300);
    msgpack_pack_nil(&p.pk);
    msgpack_pack_true(&p.pk);
    msgpack_pack_false(&p.pk);
    br_cursor c = cursor_of(&p);
    double d;
    bool b;
    assert_int_equal(br_cursor_peek(&c), BR_MP_FLOAT);
    assert_int_equal(br_cursor_double(&c, &d), 0);
    assert_true(d == 1.5);
    assert_int_equal(br_cursor_double(&c, &d), 0);
    assert_true(d == -1e300);
    assert_int_equal(br_cursor_peek(&c), BR_MP_NIL);
    assert_int_equal(br_cursor_nil(&c), 0);
    assert_int_equal(br_cursor_peek(&c), BR_MP_BOOL);
    assert_int_equal(br_cursor_bool(&c, &b), 0);
    assert_true(b);
    assert_int_equal(br_cursor_bool(&c, &b), 0);
    assert_false(b);
    assert_int_equal(br_cursor_left(&c), 0);
    assert_int_equal(br_cursor_peek(&c), BR_MP_NONE);
    packed_destroy(&p);
}

static void reads_back_str_and_bin_of_every_header_size(void **state)
{
    (void)state;
    static const uint32_t lengths[] = {0, 1, 31, 32, 255, 256, 65535, 65536};
    char *text = malloc(65536);
    assert_non_null(text);
    for (size_t i = 0; i < 65536; i++)
        text[i] = (char)('a' + i % 26);
    for (size_t i = 0; i < sizeof lengths / sizeof *lengths; i++) {
        uint32_t n = lengths[i];
        packed p;
        packed_init(&p);
        msgpack_pack_str_with_body(&p.pk, text, n);
        msgpack_pack_bin_with_body(&p.pk, text, n);
        br_cursor c = cursor_of(&p);
        br_str s;
        assert_int_equal(br_cursor_peek(&c), BR_MP_STR);
        assert_int_equal(br_cursor_str(&c, &s, UINT32_MAX), 0);
        assert_int_equal(s.len, n);
        assert_memory_equal(s.ptr, text, n);
        /* Strings point into the input. */
        assert_true(s.ptr >= p.sb.data && s.ptr + n <= p.sb.data + p.sb.size);
        assert_int_equal(br_cursor_peek(&c), BR_MP_BIN);
        assert_int_equal(br_cursor_bin(&c, &s, UINT32_MAX), 0);
        assert_int_equal(s.len, n);
        assert_memory_equal(s.ptr, text, n);
        assert_int_equal(br_cursor_left(&c), 0);

        /* bytes takes either; a max just under the length is BR_ELIMIT. */
        c = cursor_of(&p);
        assert_int_equal(br_cursor_bytes(&c, &s, n), 0);
        assert_int_equal(br_cursor_bytes(&c, &s, n), 0);
        if (n > 0) {
            c = cursor_of(&p);
            assert_int_equal(br_cursor_str(&c, &s, n - 1), BR_ELIMIT);
            assert_ptr_equal(c.p, p.sb.data);
        }
        packed_destroy(&p);
    }
    free(text);
}

static void reads_array_and_map_headers_of_every_size(void **state)
{
    (void)state;
    static const uint32_t counts[] = {0, 15, 16, 65535, 65536, UINT32_MAX};
    for (size_t i = 0; i < sizeof counts / sizeof *counts; i++) {
        packed p;
        packed_init(&p);
        msgpack_pack_array(&p.pk, counts[i]);
        msgpack_pack_map(&p.pk, counts[i]);
        br_cursor c = cursor_of(&p);
        uint32_t n;
        assert_int_equal(br_cursor_peek(&c), BR_MP_ARRAY);
        assert_int_equal(br_cursor_map(&c, &n), BR_ETYPE);
        assert_int_equal(br_cursor_array(&c, &n), 0);
        assert_int_equal(n, counts[i]);
        assert_int_equal(br_cursor_peek(&c), BR_MP_MAP);
        assert_int_equal(br_cursor_array(&c, &n), BR_ETYPE);
        assert_int_equal(br_cursor_map(&c, &n), 0);
        assert_int_equal(n, counts[i]);
        assert_int_equal(br_cursor_left(&c), 0);
        packed_destroy(&p);
    }
}

static void peek_names_every_type_without_consuming(void **state)
{
    (void)state;
    for (br_mp_type t = BR_MP_NIL; t <= BR_MP_EXT; t++) {
        packed p;
        packed_init(&p);
        pack_one_of(&p, t);
        br_cursor c = cursor_of(&p);
        assert_int_equal(br_cursor_peek(&c), t);
        assert_ptr_equal(c.p, p.sb.data);
        packed_destroy(&p);
    }
    /* Every fixext size and ext 8 are ext too. */
    for (size_t n = 1; n <= 20; n++) {
        packed p;
        packed_init(&p);
        char body[20] = {0};
        msgpack_pack_ext_with_body(&p.pk, body, n, 1);
        br_cursor c = cursor_of(&p);
        assert_int_equal(br_cursor_peek(&c), BR_MP_EXT);
        assert_int_equal(br_cursor_skip(&c, 0), 0);
        assert_int_equal(br_cursor_left(&c), 0);
        packed_destroy(&p);
    }
    br_cursor empty;
    br_cursor_init(&empty, NULL, 0);
    assert_int_equal(br_cursor_peek(&empty), BR_MP_NONE);
    const uint8_t never_used = 0xc1;
    br_cursor c;
    br_cursor_init(&c, &never_used, 1);
    assert_int_equal(br_cursor_peek(&c), BR_MP_NONE);
}

/* ---------------------------------------------------------------------------------- */
/* Skipping.                                                                          */

static void skip_passes_over_one_whole_value_of_any_type(void **state)
{
    (void)state;
    packed p;
    packed_init(&p);
    pack_everything(&p);
    msgpack_pack_int(&p.pk, 42); /* a second value: skip stops before it */
    br_cursor c = cursor_of(&p);
    assert_int_equal(br_cursor_skip(&c, BR_CURSOR_MAX_DEPTH), 0);
    int64_t v;
    assert_int_equal(br_cursor_int(&c, &v), 0);
    assert_int_equal(v, 42);
    assert_int_equal(br_cursor_left(&c), 0);

    /* Element by element, too. */
    c = cursor_of(&p);
    uint32_t n;
    assert_int_equal(br_cursor_array(&c, &n), 0);
    for (uint32_t i = 0; i < n; i++)
        assert_int_equal(br_cursor_skip(&c, BR_CURSOR_MAX_DEPTH), 0);
    assert_int_equal(br_cursor_int(&c, &v), 0);
    assert_int_equal(br_cursor_left(&c), 0);
    packed_destroy(&p);
}

static void skip_refuses_the_never_used_byte(void **state)
{
    (void)state;
    const uint8_t alone[] = {0xc1};
    const uint8_t inside[] = {0x92, 0x01, 0xc1};
    br_cursor c;
    br_cursor_init(&c, alone, sizeof alone);
    assert_int_equal(br_cursor_skip(&c, 1), BR_ETYPE);
    assert_ptr_equal(c.p, alone);
    br_cursor_init(&c, inside, sizeof inside);
    assert_int_equal(br_cursor_skip(&c, 1), BR_ETYPE);
    assert_ptr_equal(c.p, inside);
}

/* Writes `depth` arrays nested in one another around a 1 (depth 0: just the 1); maps
 * when `maps`, each with the key "k". */
static void pack_nested(packed *p, unsigned depth, bool maps)
{
    for (unsigned i = 0; i < depth; i++) {
        if (maps) {
            msgpack_pack_map(&p->pk, 1);
            msgpack_pack_str_with_body(&p->pk, "k", 1);
        } else {
            msgpack_pack_array(&p->pk, 1);
        }
    }
    msgpack_pack_int(&p->pk, 1);
}

static void skip_refuses_nesting_deeper_than_its_bound(void **state)
{
    (void)state;
    for (int maps = 0; maps <= 1; maps++) {
        for (unsigned depth = 0; depth <= BR_CURSOR_MAX_DEPTH + 1; depth++) {
            packed p;
            packed_init(&p);
            pack_nested(&p, depth, maps);
            br_cursor c = cursor_of(&p);
            /* Exactly deep enough passes; one level less does not. */
            if (depth > 0) {
                assert_int_equal(br_cursor_skip(&c, depth - 1), BR_ELIMIT);
                assert_ptr_equal(c.p, p.sb.data);
            }
            /* Any bound above the maximum counts as the maximum. */
            int want = depth <= BR_CURSOR_MAX_DEPTH ? 0 : BR_ELIMIT;
            assert_int_equal(br_cursor_skip(&c, UINT32_MAX), want);
            if (want == 0) {
                assert_int_equal(br_cursor_left(&c), 0);
                c = cursor_of(&p);
                assert_int_equal(br_cursor_skip(&c, depth), 0);
            } else {
                assert_ptr_equal(c.p, p.sb.data);
            }
            packed_destroy(&p);
        }
    }
    /* An empty container is a level too. */
    const uint8_t empty_array = 0x90;
    br_cursor c;
    br_cursor_init(&c, &empty_array, 1);
    assert_int_equal(br_cursor_skip(&c, 0), BR_ELIMIT);
    assert_int_equal(br_cursor_skip(&c, 1), 0);
}

/* ---------------------------------------------------------------------------------- */
/* Hostile and broken input.                                                          */

/* Reads every element of the pack_everything sample with the reader for its type,
 * returning the first error. */
static int read_everything(br_cursor *c)
{
    uint32_t n, m;
    int64_t i;
    uint64_t u;
    double d;
    bool b;
    br_str s;
    int rc;
    if ((rc = br_cursor_array(c, &n)) || (rc = br_cursor_nil(c)) || (rc = br_cursor_bool(c, &b)) ||
        (rc = br_cursor_int(c, &i)) || (rc = br_cursor_double(c, &d)) ||
        (rc = br_cursor_str(c, &s, UINT32_MAX)) || (rc = br_cursor_bin(c, &s, UINT32_MAX)) ||
        (rc = br_cursor_array(c, &m)) || (rc = br_cursor_uint(c, &u)) ||
        (rc = br_cursor_map(c, &m)) || (rc = br_cursor_str(c, &s, UINT32_MAX)) ||
        (rc = br_cursor_int(c, &i)) || (rc = br_cursor_skip(c, 0)) ||
        (rc = br_cursor_uint(c, &u)) || (rc = br_cursor_int(c, &i)) ||
        (rc = br_cursor_double(c, &d)) || (rc = br_cursor_map(c, &m)) ||
        (rc = br_cursor_str(c, &s, UINT32_MAX)) || (rc = br_cursor_skip(c, 2)) ||
        (rc = br_cursor_int(c, &i)) || (rc = br_cursor_str(c, &s, UINT32_MAX)) ||
        (rc = br_cursor_str(c, &s, UINT32_MAX)))
        return rc;
    return 0;
}

static void refuses_every_truncation_without_reading_past_the_end(void **state)
{
    (void)state;
    packed p;
    packed_init(&p);
    pack_everything(&p);
    br_cursor whole = cursor_of(&p);
    assert_int_equal(read_everything(&whole), 0);
    assert_int_equal(br_cursor_left(&whole), 0);
    for (size_t len = 0; len < p.sb.size; len++) {
        /* A heap block of exactly len bytes: ASan reports a read one past it. */
        uint8_t *cut = malloc(len ? len : 1);
        assert_non_null(cut);
        memcpy(cut, p.sb.data, len);
        br_cursor c;
        br_cursor_init(&c, cut, len);
        assert_int_equal(br_cursor_skip(&c, BR_CURSOR_MAX_DEPTH), BR_ETRUNC);
        assert_ptr_equal(c.p, cut);
        assert_int_equal(read_everything(&c), BR_ETRUNC);
        free(cut);
    }
    packed_destroy(&p);
}

static void refuses_a_count_of_2_to_the_32_in_five_bytes_without_allocating(void **state)
{
    (void)state;
    const uint8_t array32[] = {0xdd, 0xff, 0xff, 0xff, 0xff};
    const uint8_t map32[] = {0xdf, 0xff, 0xff, 0xff, 0xff};
    const uint8_t str32[] = {0xdb, 0xff, 0xff, 0xff, 0xff};
    const uint8_t bin32[] = {0xc6, 0xff, 0xff, 0xff, 0xff};
    const uint8_t ext32[] = {0xc9, 0xff, 0xff, 0xff, 0xff, 0x01};
    br_cursor c;
    uint32_t n;
    br_str s;
    test_allocations = 0;

    br_cursor_init(&c, array32, sizeof array32);
    assert_int_equal(br_cursor_skip(&c, BR_CURSOR_MAX_DEPTH), BR_ETRUNC);
    assert_ptr_equal(c.p, array32);
    /* The header alone reads: the count is a claim the caller checks against left. */
    assert_int_equal(br_cursor_array(&c, &n), 0);
    assert_int_equal(n, UINT32_MAX);
    assert_true(n > br_cursor_left(&c));

    br_cursor_init(&c, map32, sizeof map32);
    assert_int_equal(br_cursor_skip(&c, BR_CURSOR_MAX_DEPTH), BR_ETRUNC);
    assert_int_equal(br_cursor_map(&c, &n), 0);
    assert_int_equal(n, UINT32_MAX);

    br_cursor_init(&c, str32, sizeof str32);
    assert_int_equal(br_cursor_str(&c, &s, UINT32_MAX), BR_ETRUNC);
    assert_int_equal(br_cursor_skip(&c, 0), BR_ETRUNC);
    br_cursor_init(&c, bin32, sizeof bin32);
    assert_int_equal(br_cursor_bin(&c, &s, UINT32_MAX), BR_ETRUNC);
    assert_int_equal(br_cursor_skip(&c, 0), BR_ETRUNC);
    br_cursor_init(&c, ext32, sizeof ext32);
    assert_int_equal(br_cursor_skip(&c, 0), BR_ETRUNC);

    /* Nested: [{"k": array32 claiming 2^32 - 1 elements}]. */
    const uint8_t nested[] = {0x91, 0x81, 0xa1, 'k', 0xdd, 0xff, 0xff, 0xff, 0xff};
    br_cursor_init(&c, nested, sizeof nested);
    assert_int_equal(br_cursor_skip(&c, BR_CURSOR_MAX_DEPTH), BR_ETRUNC);
    assert_int_equal(test_allocations, 0);
}

/* One reader, adapted to a common shape. */
typedef struct reader {
    const char *name; /* for failure messages */
    br_mp_type takes; /* the type it reads */
    int (*read)(br_cursor *c);
} reader;

static int read_nil(br_cursor *c)
{
    return br_cursor_nil(c);
}
static int read_bool(br_cursor *c)
{
    bool v;
    return br_cursor_bool(c, &v);
}
static int read_int(br_cursor *c)
{
    int64_t v;
    return br_cursor_int(c, &v);
}
static int read_str(br_cursor *c)
{
    br_str v;
    return br_cursor_str(c, &v, UINT32_MAX);
}
static int read_bin(br_cursor *c)
{
    br_str v;
    return br_cursor_bin(c, &v, UINT32_MAX);
}
static int read_array(br_cursor *c)
{
    uint32_t v;
    return br_cursor_array(c, &v);
}
static int read_map(br_cursor *c)
{
    uint32_t v;
    return br_cursor_map(c, &v);
}

static void readers_refuse_other_types_and_leave_the_cursor_alone(void **state)
{
    (void)state;
    static const reader readers[] = {
        {"nil", BR_MP_NIL, read_nil}, {"bool", BR_MP_BOOL, read_bool},
        {"int", BR_MP_INT, read_int}, {"str", BR_MP_STR, read_str},
        {"bin", BR_MP_BIN, read_bin}, {"array", BR_MP_ARRAY, read_array},
        {"map", BR_MP_MAP, read_map},
    };
    for (br_mp_type t = BR_MP_NIL; t <= BR_MP_EXT; t++) {
        packed p;
        packed_init(&p);
        pack_one_of(&p, t);
        for (size_t r = 0; r < sizeof readers / sizeof *readers; r++) {
            br_cursor c = cursor_of(&p);
            int want = readers[r].takes == t ? 0 : BR_ETYPE;
            int got = readers[r].read(&c);
            if (got != want)
                fail_msg("reader %s on type %d: %d, expected %d", readers[r].name, (int)t, got,
                         want);
            if (got != 0)
                assert_ptr_equal(c.p, p.sb.data);
        }
        /* double reads floats and integers, nothing else. */
        br_cursor c = cursor_of(&p);
        double d;
        assert_int_equal(br_cursor_double(&c, &d),
                         t == BR_MP_FLOAT || t == BR_MP_INT ? 0 : BR_ETYPE);
        packed_destroy(&p);
    }
    /* Every reader on nothing at all. */
    br_cursor empty;
    br_cursor_init(&empty, NULL, 0);
    for (size_t r = 0; r < sizeof readers / sizeof *readers; r++)
        assert_int_equal(readers[r].read(&empty), BR_ETRUNC);
}

static void integer_readers_refuse_values_that_do_not_fit(void **state)
{
    (void)state;
    packed p;
    packed_init(&p);
    msgpack_pack_uint64(&p.pk, (uint64_t)INT64_MAX + 1);
    msgpack_pack_int64(&p.pk, -1);
    br_cursor c = cursor_of(&p);
    int64_t i = 7;
    uint64_t u = 7;
    assert_int_equal(br_cursor_int(&c, &i), BR_EVALUE);
    assert_ptr_equal(c.p, p.sb.data);
    assert_int_equal(i, 7);
    assert_int_equal(br_cursor_uint(&c, &u), 0);
    assert_true(u == (uint64_t)INT64_MAX + 1);
    const uint8_t *at = c.p;
    assert_int_equal(br_cursor_uint(&c, &u), BR_EVALUE);
    assert_ptr_equal(c.p, at);
    assert_int_equal(br_cursor_int(&c, &i), 0);
    assert_int_equal(i, -1);
    packed_destroy(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reads_back_integers_in_every_encoding),
        cmocka_unit_test(reads_back_floats_doubles_nil_and_booleans),
        cmocka_unit_test(reads_back_str_and_bin_of_every_header_size),
        cmocka_unit_test(reads_array_and_map_headers_of_every_size),
        cmocka_unit_test(peek_names_every_type_without_consuming),
        cmocka_unit_test(skip_passes_over_one_whole_value_of_any_type),
        cmocka_unit_test(skip_refuses_the_never_used_byte),
        cmocka_unit_test(skip_refuses_nesting_deeper_than_its_bound),
        cmocka_unit_test(refuses_every_truncation_without_reading_past_the_end),
        cmocka_unit_test(refuses_a_count_of_2_to_the_32_in_five_bytes_without_allocating),
        cmocka_unit_test(readers_refuse_other_types_and_leave_the_cursor_alone),
        cmocka_unit_test(integer_readers_refuse_values_that_do_not_fit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
