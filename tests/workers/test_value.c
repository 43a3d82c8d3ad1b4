/*
 * test_value.c - br_value (barista/value.h), how services read request bodies and job
 * payloads: parsing exactly one value, hostile and broken bytes, typed getters that
 * tell missing from wrong, nested paths, arrays, maps and iteration - and the notes
 * example of the header, as a service author would write it.
 *
 * Linked with -Wl,--wrap=malloc,calloc,realloc so that a test can check that parsing
 * a hostile count costs no allocation.
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

#include "barista/value.h"

#include "alloc_count.h"

/* ---------------------------------------------------------------------------------- */
/* Helpers.                                                                           */

/* Bytes written by msgpack-c's packer: what the gateway makes of a JSON body. */
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

static br_str bytes_of(const packed *p)
{
    return (br_str){p->sb.data, (uint32_t)p->sb.size};
}

static void key(packed *p, const char *k)
{
    msgpack_pack_str_with_body(&p->pk, k, strlen(k));
}

/* Parses *p, which must hold one value. */
static br_value parsed(const packed *p)
{
    br_value v;
    assert_int_equal(br_value_parse(bytes_of(p), &v), 0);
    return v;
}

static void assert_str(br_value v, const char *want)
{
    br_str s;
    assert_int_equal(br_value_str(v, &s), 0);
    assert_int_equal(s.len, strlen(want));
    assert_memory_equal(s.ptr, want, s.len);
}

static void assert_int_value(br_value v, int64_t want)
{
    int64_t got;
    assert_int_equal(br_value_int(v, INT64_MIN, INT64_MAX, &got), 0);
    assert_true(got == want);
}

/* One value of each msgpack type, in br_mp_type order. */
static void pack_one_of(packed *p, br_mp_type t)
{
    switch (t) {
    case BR_MP_NIL:
        msgpack_pack_nil(&p->pk);
        break;
    case BR_MP_BOOL:
        msgpack_pack_false(&p->pk);
        break;
    case BR_MP_INT:
        msgpack_pack_int64(&p->pk, -70000);
        break;
    case BR_MP_FLOAT:
        msgpack_pack_double(&p->pk, 0.25);
        break;
    case BR_MP_STR:
        key(p, "text");
        break;
    case BR_MP_BIN:
        msgpack_pack_bin_with_body(&p->pk, "\x00\xff", 2);
        break;
    case BR_MP_ARRAY:
        msgpack_pack_array(&p->pk, 2);
        msgpack_pack_int(&p->pk, 1);
        msgpack_pack_int(&p->pk, 2);
        break;
    case BR_MP_MAP:
        msgpack_pack_map(&p->pk, 1);
        key(p, "k");
        msgpack_pack_nil(&p->pk);
        break;
    case BR_MP_EXT:
        msgpack_pack_ext_with_body(&p->pk, "\x01", 1, 3);
        break;
    case BR_MP_NONE:
        break;
    }
}

/* {"author": {"name": "ann", "langs": ["c", "go"]}, "items": [{"id": 1}, {"id": 2}],
 *  "0": "zero", "a.b": 5, "empty": [], "none": nil} */
static void pack_document(packed *p)
{
    msgpack_pack_map(&p->pk, 6);
    key(p, "author");
    msgpack_pack_map(&p->pk, 2);
    key(p, "name");
    key(p, "ann");
    key(p, "langs");
    msgpack_pack_array(&p->pk, 2);
    key(p, "c");
    key(p, "go");
    key(p, "items");
    msgpack_pack_array(&p->pk, 2);
    for (int id = 1; id <= 2; id++) {
        msgpack_pack_map(&p->pk, 1);
        key(p, "id");
        msgpack_pack_int(&p->pk, id);
    }
    key(p, "0");
    key(p, "zero");
    key(p, "a.b");
    msgpack_pack_int(&p->pk, 5);
    key(p, "empty");
    msgpack_pack_array(&p->pk, 0);
    key(p, "none");
    msgpack_pack_nil(&p->pk);
}

/* ---------------------------------------------------------------------------------- */
/* Parsing.                                                                           */

static void parses_exactly_one_value_of_every_type(void **state)
{
    (void)state;
    for (br_mp_type t = BR_MP_NIL; t <= BR_MP_EXT; t++) {
        packed p;
        packed_init(&p);
        pack_one_of(&p, t);
        br_value v = parsed(&p);
        assert_int_equal(br_value_type(v), t);
        assert_true(br_value_exists(v));
        assert_ptr_equal(v.ptr, p.sb.data);
        assert_int_equal(v.len, p.sb.size);
        packed_destroy(&p);
    }
}

static void refuses_empty_bodies_and_bytes_after_the_value(void **state)
{
    (void)state;
    br_value v;
    assert_int_equal(br_value_parse((br_str){NULL, 0}, &v), BR_ETRUNC);
    assert_false(br_value_exists(v));
    packed p;
    packed_init(&p);
    msgpack_pack_map(&p.pk, 0);
    msgpack_pack_nil(&p.pk);
    assert_int_equal(br_value_parse(bytes_of(&p), &v), BR_ETRAILING);
    assert_int_equal(br_value_type(v), BR_MP_NONE);
    packed_destroy(&p);
}

static void refuses_every_truncation_without_reading_past_the_end(void **state)
{
    (void)state;
    packed p;
    packed_init(&p);
    pack_document(&p);
    for (size_t len = 0; len < p.sb.size; len++) {
        /* A heap block of exactly len bytes: ASan reports a read one past it. */
        char *cut = malloc(len ? len : 1);
        assert_non_null(cut);
        memcpy(cut, p.sb.data, len);
        br_value v;
        assert_int_equal(br_value_parse((br_str){cut, (uint32_t)len}, &v), BR_ETRUNC);
        assert_false(br_value_exists(v));
        free(cut);
    }
    packed_destroy(&p);
}

static void refuses_a_count_of_2_to_the_32_in_five_bytes_without_allocating(void **state)
{
    (void)state;
    static const uint8_t array32[] = {0xdd, 0xff, 0xff, 0xff, 0xff};
    static const uint8_t map32[] = {0xdf, 0xff, 0xff, 0xff, 0xff};
    br_value v;
    test_allocations = 0;
    assert_int_equal(br_value_parse((br_str){(const char *)array32, 5}, &v), BR_ETRUNC);
    assert_int_equal(br_value_parse((br_str){(const char *)map32, 5}, &v), BR_ETRUNC);

    /* A view made by hand over the same bytes is still read through the bounded
     * cursor: the count is only a claim, and nothing past the five bytes is read. */
    br_value forged = {array32, sizeof array32};
    assert_int_equal(br_value_len(forged), UINT32_MAX);
    assert_false(br_value_exists(br_value_index(forged, 3)));
    br_value_iter it = br_value_items(forged);
    br_value elem;
    assert_false(br_value_next(&it, NULL, &elem));
    assert_int_equal(it.err, BR_ETRUNC);
    forged.ptr = map32;
    assert_false(br_value_exists(br_value_get(forged, "k")));
    assert_int_equal(test_allocations, 0);
}

/* Writes `depth` arrays nested in one another around a 1. */
static void pack_nested(packed *p, unsigned depth)
{
    for (unsigned i = 0; i < depth; i++)
        msgpack_pack_array(&p->pk, 1);
    msgpack_pack_int(&p->pk, 1);
}

static void refuses_nesting_deeper_than_the_gateway_allows(void **state)
{
    (void)state;
    packed p;
    packed_init(&p);
    pack_nested(&p, BR_VALUE_MAX_DEPTH);
    br_value v = parsed(&p);
    char path[2 * BR_VALUE_MAX_DEPTH + 1];
    size_t len = 0;
    for (unsigned i = 0; i < BR_VALUE_MAX_DEPTH; i++) {
        if (i)
            path[len++] = '.';
        path[len++] = '0';
    }
    path[len] = '\0';
    assert_int_value(br_value_get(v, path), 1);
    packed_destroy(&p);

    packed_init(&p);
    pack_nested(&p, BR_VALUE_MAX_DEPTH + 1);
    assert_int_equal(br_value_parse(bytes_of(&p), &v), BR_ELIMIT);
    packed_destroy(&p);
}

static void reads_values_one_after_another_from_a_cursor(void **state)
{
    (void)state;
    packed p;
    packed_init(&p);
    pack_document(&p);
    msgpack_pack_int(&p.pk, 9);
    br_cursor c;
    br_cursor_init(&c, p.sb.data, p.sb.size);
    br_value doc, nine;
    assert_int_equal(br_value_read(&c, &doc), 0);
    assert_str(br_value_get(doc, "author.name"), "ann");
    assert_int_equal(br_value_read(&c, &nine), 0);
    assert_int_value(nine, 9);
    assert_int_equal(br_value_read(&c, &nine), BR_ETRUNC);
    assert_false(br_value_exists(nine));
    packed_destroy(&p);
}

/* ---------------------------------------------------------------------------------- */
/* Typed getters.                                                                     */

static void typed_getters_read_every_type(void **state)
{
    (void)state;
    packed p;
    packed_init(&p);
    msgpack_pack_array(&p.pk, 8);
    key(&p, "héllo");
    msgpack_pack_bin_with_body(&p.pk, "\x00\x01\x02", 3);
    msgpack_pack_int64(&p.pk, INT64_MIN);
    msgpack_pack_uint64(&p.pk, UINT64_MAX);
    msgpack_pack_float(&p.pk, 1.5f);
    msgpack_pack_true(&p.pk);
    msgpack_pack_nil(&p.pk);
    msgpack_pack_int(&p.pk, 3);
    br_value v = parsed(&p);

    assert_str(br_value_index(v, 0), "héllo");
    br_str s;
    assert_int_equal(br_value_bin(br_value_index(v, 1), &s), 0);
    assert_int_equal(s.len, 3);
    assert_memory_equal(s.ptr, "\x00\x01\x02", 3);
    /* Strings point into the parsed bytes. */
    assert_true(s.ptr > p.sb.data && s.ptr + s.len <= p.sb.data + p.sb.size);
    assert_int_value(br_value_index(v, 2), INT64_MIN);
    uint64_t u;
    assert_int_equal(br_value_uint(br_value_index(v, 3), &u), 0);
    assert_true(u == UINT64_MAX);
    double d;
    assert_int_equal(br_value_double(br_value_index(v, 4), &d), 0);
    assert_true(d == 1.5);
    bool b = false;
    assert_int_equal(br_value_bool(br_value_index(v, 5), &b), 0);
    assert_true(b);
    assert_true(br_value_is_nil(br_value_index(v, 6)));
    assert_true(br_value_exists(br_value_index(v, 6)));
    /* A JSON number without a fraction arrives as an integer; double takes it. */
    assert_int_equal(br_value_double(br_value_index(v, 7), &d), 0);
    assert_true(d == 3.0);
    packed_destroy(&p);
}

/* Calls the getter `which` on v; returns its answer. */
static int get_as(int which, br_value v)
{
    br_str s;
    int64_t i;
    uint64_t u;
    double d;
    bool b;
    switch (which) {
    case 0:
        return br_value_str(v, &s);
    case 1:
        return br_value_bin(v, &s);
    case 2:
        return br_value_int(v, INT64_MIN, INT64_MAX, &i);
    case 3:
        return br_value_uint(v, &u);
    case 4:
        return br_value_double(v, &d);
    default:
        return br_value_bool(v, &b);
    }
}

static void getters_tell_missing_from_wrong_type(void **state)
{
    (void)state;
    /* The type each getter takes (double takes integers too). */
    static const br_mp_type takes[] = {BR_MP_STR, BR_MP_BIN,   BR_MP_INT,
                                       BR_MP_INT, BR_MP_FLOAT, BR_MP_BOOL};
    for (br_mp_type t = BR_MP_NIL; t <= BR_MP_EXT; t++) {
        packed p;
        packed_init(&p);
        pack_one_of(&p, t);
        br_value v = parsed(&p);
        for (int g = 0; g < 6; g++) {
            bool fits = takes[g] == t || (g == 4 && t == BR_MP_INT);
            int want = fits ? (g == 3 ? BR_EVALUE : 0) : BR_ETYPE; /* -70000 is no uint */
            if (get_as(g, v) != want)
                fail_msg("getter %d on type %d: %d, expected %d", g, (int)t, get_as(g, v), want);
        }
        assert_int_equal(br_value_is_nil(v), t == BR_MP_NIL);
        packed_destroy(&p);
    }
    br_value none = br_value_get((br_value){NULL, 0}, "anything");
    for (int g = 0; g < 6; g++)
        assert_int_equal(get_as(g, none), BR_ENOTFOUND);
    assert_false(br_value_is_nil(none));
    assert_int_equal(br_value_type(none), BR_MP_NONE);

    /* A failed getter leaves *out alone. */
    packed p;
    packed_init(&p);
    key(&p, "not a number");
    int64_t i = 41;
    assert_int_equal(br_value_int(parsed(&p), 0, 100, &i), BR_ETYPE);
    assert_int_equal(i, 41);
    packed_destroy(&p);
}

static void int_getter_enforces_its_inclusive_range(void **state)
{
    (void)state;
    packed p;
    packed_init(&p);
    msgpack_pack_array(&p.pk, 5);
    msgpack_pack_int(&p.pk, 1);
    msgpack_pack_int(&p.pk, 60000);
    msgpack_pack_int(&p.pk, 0);
    msgpack_pack_uint64(&p.pk, (uint64_t)INT64_MAX + 1);
    msgpack_pack_double(&p.pk, 3.0);
    br_value v = parsed(&p);
    int64_t i;
    assert_int_equal(br_value_int(br_value_index(v, 0), 1, 60000, &i), 0);
    assert_int_equal(br_value_int(br_value_index(v, 1), 1, 60000, &i), 0);
    assert_int_equal(i, 60000);
    assert_int_equal(br_value_int(br_value_index(v, 2), 1, 60000, &i), BR_EVALUE);
    assert_int_equal(br_value_int(br_value_index(v, 1), 1, 59999, &i), BR_EVALUE);
    assert_int_equal(br_value_int(br_value_index(v, 3), INT64_MIN, INT64_MAX, &i), BR_EVALUE);
    /* An integral float is still a float. */
    assert_int_equal(br_value_int(br_value_index(v, 4), INT64_MIN, INT64_MAX, &i), BR_ETYPE);
    packed_destroy(&p);
}

/* ---------------------------------------------------------------------------------- */
/* Lookups.                                                                           */

static void follows_nested_paths_through_maps_and_arrays(void **state)
{
    (void)state;
    packed p;
    packed_init(&p);
    pack_document(&p);
    br_value doc = parsed(&p);
    assert_str(br_value_get(doc, "author.name"), "ann");
    assert_str(br_value_get(doc, "author.langs.1"), "go");
    assert_int_value(br_value_get(doc, "items.1.id"), 2);
    assert_int_value(br_value_get(br_value_get(doc, "items"), "0.id"), 1);
    /* In a map a digit segment is a key. */
    assert_str(br_value_get(doc, "0"), "zero");
    /* NULL and "" are the value itself. */
    assert_ptr_equal(br_value_get(doc, NULL).ptr, doc.ptr);
    assert_int_equal(br_value_get(doc, "").len, doc.len);
    /* A key holding a dot is reached with br_value_key. */
    assert_false(br_value_exists(br_value_get(doc, "a.b")));
    assert_int_value(br_value_key(doc, br_str_c("a.b")), 5);
    assert_true(br_value_is_nil(br_value_get(doc, "none")));
    packed_destroy(&p);
}

static void paths_that_lead_nowhere_are_missing(void **state)
{
    (void)state;
    packed p;
    packed_init(&p);
    pack_document(&p);
    br_value doc = parsed(&p);
    static const char *const nowhere[] = {
        "author.age",       /* no such key */
        "author.age.more",  /* and nothing below it */
        "items.2",          /* past the end */
        "items.x",          /* not an index */
        "items.-1",         /* not an index either */
        "items.4294967296", /* past UINT32_MAX */
        "author.name.0",    /* a str has no elements */
        "author.",          /* an empty key */
        "empty.0",          /* an empty array */
        "none.x",           /* nil has no keys */
        "Author.name",      /* keys are exact bytes */
    };
    for (size_t i = 0; i < sizeof nowhere / sizeof *nowhere; i++) {
        br_value v = br_value_get(doc, nowhere[i]);
        if (br_value_exists(v))
            fail_msg("path %s found something", nowhere[i]);
        br_str s;
        assert_int_equal(br_value_str(v, &s), BR_ENOTFOUND);
    }
    packed_destroy(&p);
}

static void key_lookup_takes_the_first_str_key_and_skips_other_types(void **state)
{
    (void)state;
    packed p;
    packed_init(&p);
    msgpack_pack_map(&p.pk, 5);
    msgpack_pack_int(&p.pk, 1);
    key(&p, "an int key");
    msgpack_pack_array(&p.pk, 1); /* an array key, whose bytes spell nothing */
    msgpack_pack_nil(&p.pk);
    key(&p, "an array key");
    msgpack_pack_bin_with_body(&p.pk, "k", 1); /* a bin key equal to "k" */
    key(&p, "a bin key");
    key(&p, "k");
    key(&p, "first");
    key(&p, "k");
    key(&p, "second");
    br_value v = parsed(&p);
    assert_str(br_value_key(v, br_str_c("k")), "first");
    assert_false(br_value_exists(br_value_key(v, br_str_c(""))));
    assert_false(br_value_exists(br_value_get(v, "1")));
    packed_destroy(&p);

    /* Only maps have keys. */
    packed_init(&p);
    pack_one_of(&p, BR_MP_ARRAY);
    assert_false(br_value_exists(br_value_key(parsed(&p), br_str_c("0"))));
    packed_destroy(&p);
}

/* ---------------------------------------------------------------------------------- */
/* Arrays, maps and iteration.                                                        */

static void arrays_have_a_length_an_index_and_an_iteration(void **state)
{
    (void)state;
    packed p;
    packed_init(&p);
    msgpack_pack_array(&p.pk, 5);
    msgpack_pack_int(&p.pk, 10);
    key(&p, "x");
    pack_one_of(&p, BR_MP_ARRAY);
    msgpack_pack_map(&p.pk, 0);
    msgpack_pack_nil(&p.pk);
    br_value v = parsed(&p);
    static const br_mp_type types[] = {BR_MP_INT, BR_MP_STR, BR_MP_ARRAY, BR_MP_MAP, BR_MP_NIL};
    assert_int_equal(br_value_len(v), 5);
    for (uint32_t i = 0; i < 5; i++)
        assert_int_equal(br_value_type(br_value_index(v, i)), types[i]);
    assert_false(br_value_exists(br_value_index(v, 5)));
    assert_int_equal(br_value_len(br_value_index(v, 2)), 2);
    assert_int_equal(br_value_len(br_value_index(v, 3)), 0);
    assert_int_equal(br_value_len(br_value_index(v, 0)), 0); /* not a container */

    uint32_t seen = 0;
    br_value k = {(const uint8_t *)"junk", 4}, e;
    for (br_value_iter it = br_value_items(v); br_value_next(&it, &k, &e); seen++) {
        assert_int_equal(br_value_type(e), types[seen]);
        assert_false(br_value_exists(k)); /* array elements have no key */
        assert_ptr_equal(e.ptr, br_value_index(v, seen).ptr);
    }
    assert_int_equal(seen, 5);
    packed_destroy(&p);
}

static void iterates_map_pairs_in_order(void **state)
{
    (void)state;
    packed p;
    packed_init(&p);
    pack_document(&p);
    br_value doc = parsed(&p);
    static const char *const keys[] = {"author", "items", "0", "a.b", "empty", "none"};
    assert_int_equal(br_value_len(doc), 6);
    br_value_iter it = br_value_items(doc);
    br_value k, v;
    for (size_t i = 0; i < 6; i++) {
        assert_true(br_value_next(&it, &k, &v));
        assert_str(k, keys[i]);
        assert_ptr_equal(v.ptr, br_value_key(doc, br_str_c(keys[i])).ptr);
    }
    assert_false(br_value_next(&it, &k, &v));
    assert_int_equal(it.err, 0);

    /* Keys and values are optional. */
    it = br_value_items(br_value_get(doc, "author"));
    assert_true(br_value_next(&it, NULL, &v));
    assert_str(v, "ann");
    assert_true(br_value_next(&it, &k, NULL));
    assert_str(k, "langs");
    assert_false(br_value_next(&it, NULL, NULL));
    packed_destroy(&p);
}

static void iteration_over_anything_else_returns_nothing(void **state)
{
    (void)state;
    packed p;
    packed_init(&p);
    pack_document(&p);
    br_value doc = parsed(&p), e;
    br_value_iter it = br_value_items(br_value_get(doc, "tags"));
    assert_false(br_value_next(&it, NULL, &e));
    assert_int_equal(it.err, BR_ENOTFOUND);
    it = br_value_items(br_value_get(doc, "author.name"));
    assert_false(br_value_next(&it, NULL, &e));
    assert_int_equal(it.err, BR_ETYPE);
    it = br_value_items(br_value_get(doc, "empty"));
    assert_false(br_value_next(&it, NULL, &e));
    assert_int_equal(it.err, 0);
    packed_destroy(&p);
}

/* ---------------------------------------------------------------------------------- */
/* The header's example.                                                              */

/* What a notes service does with POST /notes {"title": ..., "tags": [...]}: returns 0
 * and fills title and tags (at most max), or a negative br_err for a 422. */
static int read_note(br_str body, br_str *title, br_str *tags, size_t max, size_t *ntags)
{
    br_value note, tag;
    int rc;
    if ((rc = br_value_parse(body, &note)) != 0 ||
        (rc = br_value_str(br_value_get(note, "title"), title)) != 0)
        return rc;
    *ntags = 0;
    br_value_iter it = br_value_items(br_value_get(note, "tags"));
    while (br_value_next(&it, NULL, &tag) && *ntags < max)
        if ((rc = br_value_str(tag, &tags[(*ntags)++])) != 0)
            return rc;
    return it.err == BR_ETYPE ? BR_ETYPE : 0; /* tags may be absent, not another type */
}

static void reads_the_notes_example_in_a_few_lines(void **state)
{
    (void)state;
    packed p;
    packed_init(&p);
    msgpack_pack_map(&p.pk, 2);
    key(&p, "title");
    key(&p, "groceries");
    key(&p, "tags");
    msgpack_pack_array(&p.pk, 2);
    key(&p, "home");
    key(&p, "weekly");
    br_str title, tags[8];
    size_t ntags;
    assert_int_equal(read_note(bytes_of(&p), &title, tags, 8, &ntags), 0);
    assert_true(br_str_eq(title, "groceries"));
    assert_int_equal(ntags, 2);
    assert_true(br_str_eq(tags[0], "home"));
    assert_true(br_str_eq(tags[1], "weekly"));
    packed_destroy(&p);

    /* No title: missing.  A number for a title: wrong type.  No tags: fine. */
    packed_init(&p);
    msgpack_pack_map(&p.pk, 1);
    key(&p, "tags");
    msgpack_pack_array(&p.pk, 0);
    assert_int_equal(read_note(bytes_of(&p), &title, tags, 8, &ntags), BR_ENOTFOUND);
    packed_destroy(&p);
    packed_init(&p);
    msgpack_pack_map(&p.pk, 1);
    key(&p, "title");
    msgpack_pack_int(&p.pk, 5);
    assert_int_equal(read_note(bytes_of(&p), &title, tags, 8, &ntags), BR_ETYPE);
    packed_destroy(&p);
    packed_init(&p);
    msgpack_pack_map(&p.pk, 1);
    key(&p, "title");
    key(&p, "untagged");
    assert_int_equal(read_note(bytes_of(&p), &title, tags, 8, &ntags), 0);
    assert_int_equal(ntags, 0);
    packed_destroy(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parses_exactly_one_value_of_every_type),
        cmocka_unit_test(refuses_empty_bodies_and_bytes_after_the_value),
        cmocka_unit_test(refuses_every_truncation_without_reading_past_the_end),
        cmocka_unit_test(refuses_a_count_of_2_to_the_32_in_five_bytes_without_allocating),
        cmocka_unit_test(refuses_nesting_deeper_than_the_gateway_allows),
        cmocka_unit_test(reads_values_one_after_another_from_a_cursor),
        cmocka_unit_test(typed_getters_read_every_type),
        cmocka_unit_test(getters_tell_missing_from_wrong_type),
        cmocka_unit_test(int_getter_enforces_its_inclusive_range),
        cmocka_unit_test(follows_nested_paths_through_maps_and_arrays),
        cmocka_unit_test(paths_that_lead_nowhere_are_missing),
        cmocka_unit_test(key_lookup_takes_the_first_str_key_and_skips_other_types),
        cmocka_unit_test(arrays_have_a_length_an_index_and_an_iteration),
        cmocka_unit_test(iterates_map_pairs_in_order),
        cmocka_unit_test(iteration_over_anything_else_returns_nothing),
        cmocka_unit_test(reads_the_notes_example_in_a_few_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
