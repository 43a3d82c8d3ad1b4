/*
 * validate.c - one msgpack value against a compiled schema, converted as it goes.
 *
 * pydantic v2's lax mode decides what is accepted: text that parses as a number is a
 * number, 5.0 is the integer 5 but 5.5 is int_from_float, 0 and 1 are booleans.  Every
 * error is recorded (not only the first), each at its loc, with pydantic's type, msg,
 * input and ctx.  The converted value is written beside: objects keep their declared
 * fields in declaration order with defaults filled in, so that a worker reads typed
 * msgpack with no surprises.
 *
 * An object's keys are found in one pass that notes where each declared field's value
 * is (the last one given wins, as in a Python dict) and a second that validates them
 * in order; the positions live in the schema node (gw_schema.seen), which is safe
 * because the loop validates one request at a time and a schema tree never contains
 * itself.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "contracts_int.h"
#include "json.h"
#include "params.h"
#include "utf8.h"

/* Longest text read as a float (strtod needs a NUL-terminated copy). */
#define GW_TEXT_NUMBER_MAX 128

/* The state of one validation. */
typedef struct vstate {
    br_buf *out; /* converted value, or NULL when only checking */
    gw_errs *e;  /* where errors go */
    int rc;      /* first output failure */
} vstate;

/* ---------------------------------------------------------------------------------- */
/* msgpack output.                                                                     */

static void put(vstate *v, const void *p, size_t n)
{
    br_buf *out = v->out;
    if (!out || v->rc != 0)
        return;
    /* Pieces are a few bytes: copy them straight when they fit (the caller reserved
     * about the input's size), without the growth path. */
    if (n <= out->cap - out->len) {
        memcpy(out->data + out->len, p, n);
        out->len += n;
        return;
    }
    v->rc = br_buf_append(out, p, n);
}

static void put_be(vstate *v, uint8_t type, uint64_t x, size_t n)
{
    uint8_t b[9];
    b[0] = type;
    for (size_t i = 0; i < n; i++)
        b[1 + i] = (uint8_t)(x >> (8 * (n - 1 - i)));
    put(v, b, n + 1);
}

static void put_int(vstate *v, int64_t i)
{
    if (i >= 0 && i < 128) {
        uint8_t b = (uint8_t)i;
        put(v, &b, 1);
    } else if (i < 0 && i >= -32) {
        uint8_t b = (uint8_t)(int8_t)i;
        put(v, &b, 1);
    } else {
        put_be(v, 0xd3, (uint64_t)i, 8);
    }
}

static void put_double(vstate *v, double d)
{
    uint64_t bits;
    memcpy(&bits, &d, sizeof bits);
    put_be(v, 0xcb, bits, 8);
}

static void put_bool(vstate *v, bool b)
{
    uint8_t x = b ? 0xc3 : 0xc2;
    put(v, &x, 1);
}

static void put_str(vstate *v, const char *s, size_t n)
{
    if (n < 32) {
        uint8_t b = (uint8_t)(0xa0 | n);
        put(v, &b, 1);
    } else {
        put_be(v, 0xdb, n, 4);
    }
    put(v, s, n);
}

/* A container header with a 32-bit count, patched once the count is known. */
static size_t put_container(vstate *v, uint8_t type)
{
    size_t at = v->out ? v->out->len : 0;
    put_be(v, type, 0, 4);
    return at;
}

static void patch_count(vstate *v, size_t at, uint32_t n)
{
    if (!v->out || v->rc != 0)
        return;
    for (size_t i = 0; i < 4; i++)
        v->out->data[at + 1 + i] = (uint8_t)(n >> (8 * (3 - i)));
}

/* ---------------------------------------------------------------------------------- */
/* Errors.                                                                             */

static void error(vstate *v, const char *type, const char *msg, const gw_input *in, const char *ctx)
{
    gw__errs_add(v->e, type, msg, in, ctx);
}

static void type_error(vstate *v, uint8_t type, const gw_input *in)
{
    switch (type) {
    case BR_SCHEMA_STRING:
        error(v, "string_type", "Input should be a valid string", in, NULL);
        break;
    case BR_SCHEMA_INTEGER:
        error(v, "int_type", "Input should be a valid integer", in, NULL);
        break;
    case BR_SCHEMA_NUMBER:
        error(v, "float_type", "Input should be a valid number", in, NULL);
        break;
    case BR_SCHEMA_BOOLEAN:
        error(v, "bool_type", "Input should be a valid boolean", in, NULL);
        break;
    case BR_SCHEMA_ARRAY:
        error(v, "list_type", "Input should be a valid list", in, NULL);
        break;
    default:
        error(v, "dict_type", "Input should be a valid dictionary", in, NULL);
        break;
    }
}

/* Checks a number against the schema's bounds (pydantic's order); false after an
 * error. */
static bool check_bounds(vstate *v, const gw_schema *s, double x, const gw_input *in)
{
    static const char *const types[] = {"greater_than_equal", "greater_than", "less_than_equal",
                                        "less_than"};
    static const char *const words[] = {"greater than or equal to", "greater than",
                                        "less than or equal to", "less than"};
    static const char *const keys[] = {"ge", "gt", "le", "lt"};
    bool has[] = {s->has_ge, s->has_gt, s->has_le, s->has_lt};
    double bound[] = {s->ge, s->gt, s->le, s->lt};
    for (int k = 0; k < 4; k++) {
        bool broken = k == 0   ? x < bound[k]
                      : k == 1 ? x <= bound[k]
                      : k == 2 ? x > bound[k]
                               : x >= bound[k];
        if (!has[k] || !broken)
            continue;
        char num[GW_DOUBLE_CHARS], msg[96], ctx[64];
        gw_format_double(bound[k], num, sizeof num);
        snprintf(msg, sizeof msg, "Input should be %s %s", words[k], num);
        snprintf(ctx, sizeof ctx, "\"%s\":%s", keys[k], num);
        error(v, types[k], msg, in, ctx);
        return false;
    }
    return true;
}

static void length_error(vstate *v, bool too_short, uint32_t bound, const gw_input *in)
{
    char msg[96], ctx[48];
    snprintf(msg, sizeof msg, "String should have at %s %u character%s",
             too_short ? "least" : "most", (unsigned)bound, bound == 1 ? "" : "s");
    snprintf(ctx, sizeof ctx, "\"%s\":%u", too_short ? "min_length" : "max_length",
             (unsigned)bound);
    error(v, too_short ? "string_too_short" : "string_too_long", msg, in, ctx);
}

/* "'a', 'b' or 'c'", as pydantic lists expected values; truncated past the buffer. */
static void expected_list(const gw_schema *s, char *buf, size_t cap)
{
    size_t n = 0;
    buf[0] = '\0';
    for (uint32_t i = 0; i < s->nenum && n + 8 < cap; i++) {
        const char *sep = i == 0 ? "" : i + 1 == s->nenum ? " or " : ", ";
        int w = snprintf(buf + n, cap - n, "%s'%s'", sep, s->enums[i].ptr);
        if (w < 0 || (size_t)w >= cap - n) {
            buf[n] = '\0';
            break;
        }
        n += (size_t)w;
    }
}

/* Checks a string value; true when it conforms. */
static bool check_string(vstate *v, const gw_schema *s, br_str t, const gw_input *in)
{
    if (s->nenum) {
        for (uint32_t i = 0; i < s->nenum; i++)
            if (s->enums[i].len == t.len && memcmp(s->enums[i].ptr, t.ptr, t.len) == 0)
                return true;
        char expected[512], msg[560], ctx[1100];
        expected_list(s, expected, sizeof expected);
        snprintf(msg, sizeof msg, "Input should be %s", expected);
        br_buf cbuf = {.max = sizeof ctx - 1};
        if (br_buf_append(&cbuf, "\"expected\":", 11) == 0 &&
            gw_json_append_string(&cbuf, expected, strlen(expected)) == 0) {
            memcpy(ctx, cbuf.data, cbuf.len);
            ctx[cbuf.len] = '\0';
        } else {
            ctx[0] = '\0';
        }
        br_buf_free(&cbuf);
        error(v, "enum", msg, in, ctx[0] ? ctx : NULL);
        return false;
    }
    /* A string has at most as many characters as bytes and at least a quarter as
     * many: count them only when the bytes leave the answer open. */
    bool count = (s->has_max_len && t.len > s->max_len) ||
                 (s->has_min_len && (t.len < s->min_len || t.len / 4 < s->min_len));
    if (count) {
        size_t chars = gw_utf8_count(t.ptr, t.len);
        if (s->has_min_len && chars < s->min_len) {
            length_error(v, true, s->min_len, in);
            return false;
        }
        if (s->has_max_len && chars > s->max_len) {
            length_error(v, false, s->max_len, in);
            return false;
        }
    }
    if (s->re) {
        int found = gw__regex_search(s->re, t.ptr, t.len, &v->e->budget);
        if (found < 0) {
            v->rc = BR_EFULL; /* the request's pattern budget ran out: 413 */
            return false;
        }
        bool match = found == 1;
        if (!match) {
            char msg[BR_SCHEMA_MAX_PATTERN + 40];
            snprintf(msg, sizeof msg, "String should match pattern '%s'", s->pattern);
            br_buf cbuf = {0};
            int rc = br_buf_append(&cbuf, "\"pattern\":", 10);
            if (rc == 0)
                rc = gw_json_append_string(&cbuf, s->pattern, strlen(s->pattern));
            if (rc == 0)
                rc = br_buf_append(&cbuf, "", 1);
            error(v, "string_pattern_mismatch", msg, in, rc == 0 ? (char *)cbuf.data : NULL);
            br_buf_free(&cbuf);
            return false;
        }
    }
    if (s->format) {
        const char *type, *prefix;
        char reason[GW_REASON_MAX];
        const char *why = gw__format_check(s->format, t.ptr, t.len, reason, &type, &prefix);
        if (why) {
            char msg[GW_REASON_MAX + 80];
            snprintf(msg, sizeof msg, "%s%s", prefix, why);
            br_buf cbuf = {0};
            int rc =
                br_buf_append(&cbuf, s->format == BR_FORMAT_EMAIL ? "\"reason\":" : "\"error\":",
                              s->format == BR_FORMAT_EMAIL ? 9 : 8);
            if (rc == 0)
                rc = gw_json_append_string(&cbuf, why, strlen(why));
            if (rc == 0)
                rc = br_buf_append(&cbuf, "", 1);
            error(v, type, msg, in, rc == 0 ? (char *)cbuf.data : NULL);
            br_buf_free(&cbuf);
            return false;
        }
    }
    return true;
}

/* ---------------------------------------------------------------------------------- */
/* Scalars from each input type.                                                       */

static bool parse_number_text(br_str t, double *d)
{
    char buf[GW_TEXT_NUMBER_MAX];
    size_t b = 0, e = t.len;
    while (b < e && (t.ptr[b] == ' ' || t.ptr[b] == '\t'))
        b++;
    while (e > b && (t.ptr[e - 1] == ' ' || t.ptr[e - 1] == '\t'))
        e--;
    if (e == b || e - b >= sizeof buf)
        return false;
    memcpy(buf, t.ptr + b, e - b);
    buf[e - b] = '\0';
    if (!((buf[0] >= '0' && buf[0] <= '9') || buf[0] == '-' || buf[0] == '+' || buf[0] == '.'))
        return false; /* strtod would take "inf", "nan" and hex */
    for (size_t i = 0; buf[i]; i++)
        if (buf[i] == 'x' || buf[i] == 'X')
            return false;
    char *end;
    *d = strtod(buf, &end);
    return *end == '\0' && isfinite(*d);
}

static bool parse_bool_text(br_str t, bool *b)
{
    static const char *const yes[] = {"true", "1", "yes", "on", "t", "y"};
    static const char *const no[] = {"false", "0", "no", "off", "f", "n"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        if (t.len == strlen(yes[i]) && strncasecmp(t.ptr, yes[i], t.len) == 0) {
            *b = true;
            return true;
        }
        if (t.len == strlen(no[i]) && strncasecmp(t.ptr, no[i], t.len) == 0) {
            *b = false;
            return true;
        }
    }
    return false;
}

static void from_text(vstate *v, const gw_schema *s, br_str t, const gw_input *in)
{
    int64_t i;
    double d;
    bool b;
    switch (s->type) {
    case BR_SCHEMA_INTEGER:
        if (!gw_param_int(t, &i)) {
            error(v, "int_parsing",
                  "Input should be a valid integer, unable to parse string as an integer", in,
                  NULL);
            return;
        }
        if (check_bounds(v, s, (double)i, in))
            put_int(v, i);
        return;
    case BR_SCHEMA_NUMBER:
        if (!parse_number_text(t, &d)) {
            error(v, "float_parsing",
                  "Input should be a valid number, unable to parse string as a number", in, NULL);
            return;
        }
        if (check_bounds(v, s, d, in))
            put_double(v, d);
        return;
    case BR_SCHEMA_BOOLEAN:
        if (!parse_bool_text(t, &b)) {
            error(v, "bool_parsing", "Input should be a valid boolean, unable to interpret input",
                  in, NULL);
            return;
        }
        put_bool(v, b);
        return;
    case BR_SCHEMA_STRING:
    case BR_SCHEMA_ANY:
        if (check_string(v, s, t, in))
            put_str(v, t.ptr, t.len);
        return;
    default:
        type_error(v, s->type, in);
        return;
    }
}

static void bool_from_number(vstate *v, double x, const gw_input *in)
{
    if (x == 0 || x == 1)
        put_bool(v, x == 1);
    else
        error(v, "bool_parsing", "Input should be a valid boolean, unable to interpret input", in,
              NULL);
}

static void from_int(vstate *v, const gw_schema *s, int64_t i, const gw_input *in)
{
    switch (s->type) {
    case BR_SCHEMA_INTEGER:
        if (check_bounds(v, s, (double)i, in))
            put_int(v, i);
        return;
    case BR_SCHEMA_NUMBER:
        if (check_bounds(v, s, (double)i, in))
            put_double(v, (double)i);
        return;
    case BR_SCHEMA_BOOLEAN:
        bool_from_number(v, (double)i, in);
        return;
    default:
        type_error(v, s->type, in);
        return;
    }
}

static void from_float(vstate *v, const gw_schema *s, double d, const gw_input *in)
{
    switch (s->type) {
    case BR_SCHEMA_INTEGER:
        if (!isfinite(d)) {
            error(v, "finite_number", "Input should be a finite number", in, NULL);
        } else if (d != floor(d)) {
            error(v, "int_from_float",
                  "Input should be a valid integer, got a number with a fractional part", in, NULL);
        } else if (d < -9223372036854775808.0 || d >= 9223372036854775808.0) {
            error(v, "int_parsing_size",
                  "Unable to parse input string as an integer, exceeded maximum size", in, NULL);
        } else if (check_bounds(v, s, d, in)) {
            put_int(v, (int64_t)d);
        }
        return;
    case BR_SCHEMA_NUMBER:
        if (!isfinite(d))
            error(v, "finite_number", "Input should be a finite number", in, NULL);
        else if (check_bounds(v, s, d, in))
            put_double(v, d);
        return;
    case BR_SCHEMA_BOOLEAN:
        bool_from_number(v, d, in);
        return;
    default:
        type_error(v, s->type, in);
        return;
    }
}

static void from_bool(vstate *v, const gw_schema *s, bool b, const gw_input *in)
{
    switch (s->type) {
    case BR_SCHEMA_BOOLEAN:
        put_bool(v, b);
        return;
    case BR_SCHEMA_INTEGER:
        if (check_bounds(v, s, b, in))
            put_int(v, b);
        return;
    case BR_SCHEMA_NUMBER:
        if (check_bounds(v, s, b, in))
            put_double(v, b);
        return;
    default:
        type_error(v, s->type, in);
        return;
    }
}

/* ---------------------------------------------------------------------------------- */
/* Containers.                                                                         */

static int value(vstate *v, const gw_schema *s, br_cursor *in);

/* Skips one value of the client's (any depth up to the JSON bound). */
static int skip(br_cursor *in)
{
    return br_cursor_skip(in, GW_JSON_MAX_DEPTH);
}

static int copy_value(vstate *v, br_cursor *in)
{
    const uint8_t *start = in->p;
    int rc = skip(in);
    if (rc == 0)
        put(v, start, (size_t)(in->p - start));
    return rc;
}

/* The index of the field named key, or -1. */
static int find_field(const gw_schema *s, br_str key)
{
    for (uint32_t i = 0; i < s->nfields; i++)
        if (s->fields[i].name_len == key.len && memcmp(s->fields[i].name, key.ptr, key.len) == 0)
            return (int)i;
    return -1;
}

static int object(vstate *v, const gw_schema *s, br_cursor *in)
{
    const uint8_t *start = in->p;
    uint32_t n;
    if (br_cursor_map(in, &n) != 0) {
        int rc = skip(in);
        gw_input whole = {GW_INPUT_MSGPACK, start, (size_t)(in->p - start)};
        if (rc == 0) {
            if (s->nfields)
                error(v, "model_attributes_type",
                      "Input should be a valid dictionary or object to extract fields from", &whole,
                      NULL);
            else
                type_error(v, BR_SCHEMA_OBJECT, &whole);
        }
        return rc;
    }
    if (s->nfields == 0) { /* a free-form map: any keys, any values */
        *in = (br_cursor){start, in->end};
        return copy_value(v, in);
    }
    if (n > br_cursor_left(in))
        return BR_ETRUNC;
    memset(s->seen, 0, s->nfields * sizeof *s->seen);
    uint32_t extras = 0;
    for (uint32_t k = 0; k < n; k++) {
        br_str key = {0};
        bool text = br_cursor_peek(in) == BR_MP_STR;
        int rc = text ? br_cursor_str(in, &key, UINT32_MAX) : skip(in);
        if (rc != 0)
            return rc;
        const uint8_t *at = in->p;
        if ((rc = skip(in)) != 0)
            return rc;
        int f = text ? find_field(s, key) : -1;
        if (f >= 0)
            s->seen[f] = at;
        else if (s->extra != BR_EXTRA_IGNORE && text)
            extras++;
    }
    const uint8_t *end = in->p;
    size_t header = put_container(v, 0xdf);
    uint32_t count = 0;
    for (uint32_t i = 0; i < s->nfields; i++) {
        const gw_field *f = &s->fields[i];
        const uint8_t *at = s->seen[i];
        if (!at && f->required) {
            gw_input whole = {GW_INPUT_MSGPACK, start, (size_t)(end - start)};
            gw__errs_push_key(v->e, f->name, f->name_len);
            error(v, "missing", "Field required", &whole, NULL);
            gw__errs_pop(v->e);
            continue;
        }
        if (!at && !f->schema->def)
            continue;
        put_str(v, f->name, f->name_len);
        count++;
        if (!at) {
            put(v, f->schema->def, f->schema->def_len);
            continue;
        }
        br_cursor c = {at, end};
        gw__errs_push_key(v->e, f->name, f->name_len);
        int rc = value(v, f->schema, &c);
        gw__errs_pop(v->e);
        if (rc != 0)
            return rc;
    }
    /* Undeclared keys, after the declared fields as pydantic reports them: errors when
     * forbidden, kept as they came when allowed. */
    br_cursor c = {start, end};
    br_cursor_map(&c, &n);
    for (uint32_t k = 0; extras > 0 && k < n; k++) {
        const uint8_t *key_at = c.p;
        br_str key = {0};
        bool text = br_cursor_peek(&c) == BR_MP_STR && br_cursor_str(&c, &key, UINT32_MAX) == 0;
        if (!text)
            skip(&c);
        const uint8_t *val_at = c.p;
        skip(&c);
        if (!text || find_field(s, key) >= 0)
            continue;
        extras--;
        if (s->extra == BR_EXTRA_FORBID) {
            gw_input val = {GW_INPUT_MSGPACK, val_at, (size_t)(c.p - val_at)};
            gw__errs_push_key(v->e, key.ptr, key.len);
            error(v, "extra_forbidden", "Extra inputs are not permitted", &val, NULL);
            gw__errs_pop(v->e);
        } else {
            put(v, key_at, (size_t)(c.p - key_at));
            count++;
        }
    }
    patch_count(v, header, count);
    return 0;
}

static void list_length_error(vstate *v, bool too_short, uint32_t bound, uint32_t actual,
                              const gw_input *in)
{
    char msg[128], ctx[128];
    snprintf(msg, sizeof msg, "List should have at %s %u item%s after validation, not %u",
             too_short ? "least" : "most", (unsigned)bound, bound == 1 ? "" : "s",
             (unsigned)actual);
    snprintf(ctx, sizeof ctx, "\"field_type\":\"List\",\"%s\":%u,\"actual_length\":%u",
             too_short ? "min_length" : "max_length", (unsigned)bound, (unsigned)actual);
    error(v, too_short ? "too_short" : "too_long", msg, in, ctx);
}

static int array(vstate *v, const gw_schema *s, br_cursor *in)
{
    const uint8_t *start = in->p;
    uint32_t n;
    if (br_cursor_array(in, &n) != 0) {
        int rc = skip(in);
        gw_input whole = {GW_INPUT_MSGPACK, start, (size_t)(in->p - start)};
        if (rc == 0)
            type_error(v, BR_SCHEMA_ARRAY, &whole);
        return rc;
    }
    if (n > br_cursor_left(in))
        return BR_ETRUNC;
    if (s->has_max_len && n > s->max_len) {
        *in = (br_cursor){start, in->end};
        int rc = skip(in);
        gw_input whole = {GW_INPUT_MSGPACK, start, (size_t)(in->p - start)};
        if (rc == 0)
            list_length_error(v, false, s->max_len, n, &whole);
        return rc;
    }
    size_t header = put_container(v, 0xdd);
    for (uint32_t i = 0; i < n; i++) {
        gw__errs_push_index(v->e, i);
        int rc = s->items ? value(v, s->items, in) : copy_value(v, in);
        gw__errs_pop(v->e);
        if (rc != 0)
            return rc;
    }
    patch_count(v, header, n);
    if (s->has_min_len && n < s->min_len) {
        gw_input whole = {GW_INPUT_MSGPACK, start, (size_t)(in->p - start)};
        list_length_error(v, true, s->min_len, n, &whole);
    }
    return 0;
}

static int value(vstate *v, const gw_schema *s, br_cursor *in)
{
    if (s->type == BR_SCHEMA_OBJECT)
        return object(v, s, in);
    if (s->type == BR_SCHEMA_ARRAY)
        return array(v, s, in);
    const uint8_t *start = in->p;
    br_mp_type t = br_cursor_peek(in);
    if (s->type == BR_SCHEMA_ANY && t != BR_MP_STR)
        return copy_value(v, in);
    int64_t i;
    uint64_t u;
    double d;
    bool b;
    br_str text;
    int rc;
    switch (t) {
    case BR_MP_STR:
        if ((rc = br_cursor_str(in, &text, UINT32_MAX)) != 0)
            return rc;
        break;
    case BR_MP_INT:
        rc = br_cursor_int(in, &i);
        if (rc == BR_EVALUE && br_cursor_uint(in, &u) == 0) { /* above INT64_MAX */
            d = (double)u;
            t = BR_MP_FLOAT;
            rc = 0;
        }
        if (rc != 0)
            return rc;
        break;
    case BR_MP_FLOAT:
        if ((rc = br_cursor_double(in, &d)) != 0)
            return rc;
        break;
    case BR_MP_BOOL:
        if ((rc = br_cursor_bool(in, &b)) != 0)
            return rc;
        break;
    default:
        if ((rc = skip(in)) != 0)
            return rc;
        break;
    }
    gw_input input = {GW_INPUT_MSGPACK, start, (size_t)(in->p - start)};
    switch (t) {
    case BR_MP_STR:
        from_text(v, s, text, &input);
        break;
    case BR_MP_INT:
        from_int(v, s, i, &input);
        break;
    case BR_MP_FLOAT:
        from_float(v, s, d, &input);
        break;
    case BR_MP_BOOL:
        from_bool(v, s, b, &input);
        break;
    default:
        type_error(v, s->type, &input);
        break;
    }
    return v->rc;
}

int gw__validate(const gw_schema *s, br_cursor *in, br_buf *out, gw_errs *e)
{
    vstate v = {out, e, 0};
    int rc = value(&v, s, in);
    return rc != 0 ? rc : v.rc;
}

int gw__validate_text(const gw_schema *s, br_str text, gw_errs *e)
{
    vstate v = {NULL, e, 0};
    gw_input input = {GW_INPUT_TEXT, text.ptr, text.len};
    from_text(&v, s, text, &input);
    return v.rc;
}
