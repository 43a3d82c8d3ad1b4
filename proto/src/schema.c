/*
 * schema.c - declared schemas (barista/schema.h) to the msgpack schema value of
 * PROTOCOL.md 5.1.1.
 *
 * The wire form is a msgpack map with JSON Schema's keyword names, so that a worker in
 * another language can send what its own model library describes and the gateway can
 * publish it in OpenAPI nearly as it came.  The declaration is checked first, in full,
 * so that a service author hears about a bad schema from br_worker_new rather than
 * from a gateway refusing the READY.
 */
#include <errno.h>
#include <math.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"

static const br_field http_error_fields[] = {
    {"detail", &(const br_schema){.type = BR_SCHEMA_STRING}, true},
};

const br_schema br_schema_http_error = {
    .type = BR_SCHEMA_OBJECT,
    .title = "HTTPError",
    BR_FIELDS(http_error_fields),
};

static const char *const type_names[] = {NULL,      "string", "integer", "number",
                                         "boolean", "array",  "object"};
static const char *const format_names[] = {NULL, "uuid", "date", "date-time", "email"};

/* Parses a whole decimal int64 ("+5", "-3"; not " 5" or "5.0"). */
static bool parse_int(const char *s, int64_t *v)
{
    if (!*s || *s == ' ' || *s == '\t')
        return false;
    errno = 0;
    char *end;
    long long x = strtoll(s, &end, 10);
    if (errno || *end || end == s || !(s[0] == '-' || s[0] == '+' || (s[0] >= '0' && s[0] <= '9')))
        return false;
    *v = x;
    return true;
}

static bool parse_number(const char *s, double *v)
{
    if (!*s || *s == ' ' || *s == '\t')
        return false;
    char *end;
    *v = strtod(s, &end);
    return *end == '\0' && end != s && isfinite(*v);
}

static bool parse_bool(const char *s, bool *v)
{
    static const char *const yes[] = {"true", "1", "yes", "on", "t", "y"};
    static const char *const no[] = {"false", "0", "no", "off", "f", "n"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *v = true;
            return true;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *v = false;
            return true;
        }
    }
    return false;
}

static bool in_enum(const br_schema *s, const char *v)
{
    if (s->nenum == 0)
        return true;
    for (size_t i = 0; i < s->nenum; i++)
        if (strcmp(s->enum_values[i], v) == 0)
            return true;
    return false;
}

/* Checks one declaration and, recursively, what it contains; counts its nodes. */
static bool check(const br_schema *s, unsigned depth, size_t *nodes)
{
    if (!s || depth > BR_SCHEMA_MAX_DEPTH || ++*nodes > BR_SCHEMA_MAX_NODES)
        return false;
    if ((unsigned)s->type > BR_SCHEMA_OBJECT || (unsigned)s->format > BR_FORMAT_EMAIL ||
        (unsigned)s->extra > BR_EXTRA_ALLOW)
        return false;
    bool text = s->type == BR_SCHEMA_STRING,
         number = s->type == BR_SCHEMA_INTEGER || s->type == BR_SCHEMA_NUMBER;
    if ((s->format && !text) || (s->pattern && !text) || (s->nenum && !text))
        return false;
    if ((s->min_length || s->max_length) && !text && s->type != BR_SCHEMA_ARRAY)
        return false;
    if (s->max_length && s->min_length > s->max_length)
        return false;
    if ((s->has_ge || s->has_gt || s->has_le || s->has_lt) && !number)
        return false;
    if ((s->has_ge && !isfinite(s->ge)) || (s->has_gt && !isfinite(s->gt)) ||
        (s->has_le && !isfinite(s->le)) || (s->has_lt && !isfinite(s->lt)))
        return false;
    if (s->pattern && strlen(s->pattern) > BR_SCHEMA_MAX_PATTERN)
        return false;
    if (s->nenum > BR_SCHEMA_MAX_ENUM || (s->nenum && !s->enum_values))
        return false;
    for (size_t i = 0; i < s->nenum; i++)
        if (!s->enum_values[i])
            return false;
    if (s->def) {
        int64_t i;
        double d;
        bool b;
        bool ok = s->type == BR_SCHEMA_STRING    ? in_enum(s, s->def)
                  : s->type == BR_SCHEMA_INTEGER ? parse_int(s->def, &i)
                  : s->type == BR_SCHEMA_NUMBER  ? parse_number(s->def, &d)
                  : s->type == BR_SCHEMA_BOOLEAN ? parse_bool(s->def, &b)
                                                 : false;
        if (!ok)
            return false;
    }
    if (s->items && (s->type != BR_SCHEMA_ARRAY || !check(s->items, depth + 1, nodes)))
        return false;
    if (s->nfields > BR_SCHEMA_MAX_FIELDS ||
        (s->nfields && (s->type != BR_SCHEMA_OBJECT || !s->fields)))
        return false;
    for (size_t i = 0; i < s->nfields; i++) {
        const br_field *f = &s->fields[i];
        if (!f->name || !check(f->schema, depth + 1, nodes))
            return false;
        for (size_t j = 0; j < i; j++)
            if (strcmp(s->fields[j].name, f->name) == 0)
                return false;
    }
    return true;
}

static void pack_cstr(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static void pack_key_str(msgpack_packer *pk, const char *key, const char *value)
{
    pack_cstr(pk, key);
    pack_cstr(pk, value);
}

static void pack_key_double(msgpack_packer *pk, const char *key, double v)
{
    pack_cstr(pk, key);
    /* Integral bounds go as integers, so that "ge": 1 reads back as 1, not 1.0. */
    if (v == floor(v) && fabs(v) < 9007199254740992.0)
        msgpack_pack_int64(pk, (int64_t)v);
    else
        msgpack_pack_double(pk, v);
}

static void pack_default(msgpack_packer *pk, const br_schema *s)
{
    int64_t i = 0;
    double d = 0;
    bool b = false;
    pack_cstr(pk, "default");
    switch (s->type) {
    case BR_SCHEMA_INTEGER:
        parse_int(s->def, &i);
        msgpack_pack_int64(pk, i);
        break;
    case BR_SCHEMA_NUMBER:
        parse_number(s->def, &d);
        msgpack_pack_double(pk, d);
        break;
    case BR_SCHEMA_BOOLEAN:
        parse_bool(s->def, &b);
        if (b)
            msgpack_pack_true(pk);
        else
            msgpack_pack_false(pk);
        break;
    default:
        pack_cstr(pk, s->def);
        break;
    }
}

/* The number of keys pack() writes for s. */
static uint32_t nkeys(const br_schema *s)
{
    uint32_t n = s->type != BR_SCHEMA_ANY;
    n += !!s->title + !!s->description + !!s->format + !!s->pattern + !!s->def;
    n += s->min_length > 0;
    n += s->max_length > 0;
    n += s->has_ge + s->has_gt + s->has_le + s->has_lt;
    n += s->nenum > 0;
    n += s->items != NULL;
    if (s->nfields > 0) {
        uint32_t required = 0;
        for (size_t i = 0; i < s->nfields; i++)
            required += s->fields[i].required;
        n += 1 + (required > 0) + (s->extra != BR_EXTRA_IGNORE);
    }
    return n;
}

static void pack(msgpack_packer *pk, const br_schema *s)
{
    bool array = s->type == BR_SCHEMA_ARRAY;
    msgpack_pack_map(pk, nkeys(s));
    if (s->type != BR_SCHEMA_ANY)
        pack_key_str(pk, "type", type_names[s->type]);
    if (s->title)
        pack_key_str(pk, "title", s->title);
    if (s->description)
        pack_key_str(pk, "description", s->description);
    if (s->format)
        pack_key_str(pk, "format", format_names[s->format]);
    if (s->min_length > 0)
        pack_key_double(pk, array ? "minItems" : "minLength", s->min_length);
    if (s->max_length > 0)
        pack_key_double(pk, array ? "maxItems" : "maxLength", s->max_length);
    if (s->has_ge)
        pack_key_double(pk, "minimum", s->ge);
    if (s->has_gt)
        pack_key_double(pk, "exclusiveMinimum", s->gt);
    if (s->has_le)
        pack_key_double(pk, "maximum", s->le);
    if (s->has_lt)
        pack_key_double(pk, "exclusiveMaximum", s->lt);
    if (s->pattern)
        pack_key_str(pk, "pattern", s->pattern);
    if (s->nenum > 0) {
        pack_cstr(pk, "enum");
        msgpack_pack_array(pk, s->nenum);
        for (size_t i = 0; i < s->nenum; i++)
            pack_cstr(pk, s->enum_values[i]);
    }
    if (s->def)
        pack_default(pk, s);
    if (s->items) {
        pack_cstr(pk, "items");
        pack(pk, s->items);
    }
    if (s->nfields == 0)
        return;
    pack_cstr(pk, "properties");
    msgpack_pack_map(pk, s->nfields);
    uint32_t required = 0;
    for (size_t i = 0; i < s->nfields; i++) {
        pack_cstr(pk, s->fields[i].name);
        pack(pk, s->fields[i].schema);
        required += s->fields[i].required;
    }
    if (required > 0) {
        pack_cstr(pk, "required");
        msgpack_pack_array(pk, required);
        for (size_t i = 0; i < s->nfields; i++)
            if (s->fields[i].required)
                pack_cstr(pk, s->fields[i].name);
    }
    if (s->extra != BR_EXTRA_IGNORE) {
        pack_cstr(pk, "additionalProperties");
        if (s->extra == BR_EXTRA_ALLOW)
            msgpack_pack_true(pk);
        else
            msgpack_pack_false(pk);
    }
}

int br_schema_encode(const br_schema *schema, br_buf *buf)
{
    size_t nodes = 0;
    if (!buf || !check(schema, 1, &nodes))
        return BR_EINVAL;
    size_t start = buf->len;
    br__enc e = {buf, 0, BR_PROTO_VERSION};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &e, br__enc_write);
    pack(&pk, schema);
    if (e.err == 0 && buf->len - start > BR_SCHEMA_MAX_BYTES)
        e.err = BR_EINVAL;
    if (e.err < 0)
        buf->len = start;
    return e.err;
}

bool br__schema_bytes_ok(br_str s)
{
    if (s.len == 0)
        return true;
    if (!s.ptr || s.len > BR_SCHEMA_MAX_BYTES)
        return false;
    br_cursor c;
    br_cursor_init(&c, s.ptr, s.len);
    return br_cursor_skip(&c, BR_SCHEMA_WIRE_DEPTH) == 0 && br_cursor_left(&c) == 0;
}
