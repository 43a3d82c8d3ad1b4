/*
 * schema_compile.c - PROTOCOL.md 5.1.1's schema map, from a worker's READY, into a
 * gw_schema tree the validator walks.
 *
 * The bytes are hostile until proven otherwise: every read goes through br_cursor,
 * nesting and node counts are bounded (BR_SCHEMA_MAX_*), and a pattern is compiled by
 * regex.c, which refuses what it cannot match in linear time and bounds the program.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "contracts_int.h"
#include "json.h"

typedef struct compiler {
    char *why;      /* reason on failure */
    size_t why_len; /* its size */
    size_t nodes;   /* schemas compiled so far */
} compiler;

__attribute__((format(printf, 2, 3))) static int fail(compiler *c, const char *fmt, ...)
{
    if (c->why && c->why_len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->why, c->why_len, fmt, ap);
        va_end(ap);
    }
    return BR_EVALUE;
}

static char *dup_str(br_str s)
{
    char *p = malloc((size_t)s.len + 1);
    if (p) {
        if (s.len)
            memcpy(p, s.ptr, s.len);
        p[s.len] = '\0';
    }
    return p;
}

void gw__schema_free(gw_schema *s)
{
    if (!s)
        return;
    free(s->title);
    free(s->description);
    free(s->format_name);
    free(s->pattern);
    gw__regex_free(s->re);
    for (uint32_t i = 0; i < s->nenum; i++)
        free((char *)s->enums[i].ptr);
    free(s->enums);
    free(s->def);
    free(s->def_text);
    gw__schema_free(s->items);
    for (uint32_t i = 0; i < s->nfields; i++) {
        free(s->fields[i].name);
        gw__schema_free(s->fields[i].schema);
    }
    free(s->fields);
    free(s->seen);
    free(s);
}

static int type_of(br_str name, uint8_t *type)
{
    static const char *const names[] = {"",        "string", "integer", "number",
                                        "boolean", "array",  "object"};
    for (uint8_t i = 1; i < sizeof names / sizeof names[0]; i++)
        if (br_str_eq(name, names[i])) {
            *type = i;
            return 0;
        }
    return BR_EVALUE;
}

static uint8_t format_of(br_str name)
{
    if (br_str_eq(name, "uuid"))
        return BR_FORMAT_UUID;
    if (br_str_eq(name, "date"))
        return BR_FORMAT_DATE;
    if (br_str_eq(name, "date-time"))
        return BR_FORMAT_DATE_TIME;
    if (br_str_eq(name, "email"))
        return BR_FORMAT_EMAIL;
    return BR_FORMAT_NONE; /* documented, not checked */
}

static int compile_pattern(compiler *c, gw_schema *s, br_str text)
{
    if (text.len > BR_SCHEMA_MAX_PATTERN || memchr(text.ptr, '\0', text.len))
        return fail(c, "%s", "a pattern is longer than 256 bytes or holds a NUL");
    if (!(s->pattern = dup_str(text)))
        return BR_ENOMEM;
    char why[160] = "";
    int rc = gw__regex_compile(text.ptr, text.len, &s->re, why, sizeof why);
    if (rc == BR_EVALUE)
        return fail(c, "pattern %s: %s", s->pattern, why);
    return rc;
}

/* A non-negative integer bound (minLength ...). */
static int get_count(compiler *c, br_cursor *cur, uint32_t *v, bool *has, const char *key)
{
    uint64_t x;
    if (br_cursor_uint(cur, &x) != 0 || x > UINT32_MAX)
        return fail(c, "'%s' must be a non-negative integer", key);
    *v = (uint32_t)x;
    *has = true;
    return 0;
}

static int get_number(compiler *c, br_cursor *cur, double *v, bool *has, const char *key)
{
    if (br_cursor_double(cur, v) != 0 || !isfinite(*v))
        return fail(c, "'%s' must be a finite number", key);
    *has = true;
    return 0;
}

static int get_text(compiler *c, br_cursor *cur, char **out, const char *key)
{
    br_str s;
    if (br_cursor_str(cur, &s, BR_SCHEMA_MAX_BYTES) != 0)
        return fail(c, "'%s' must be text", key);
    free(*out);
    return (*out = dup_str(s)) ? 0 : BR_ENOMEM;
}

static int get_enum(compiler *c, br_cursor *cur, gw_schema *s)
{
    uint32_t n;
    if (br_cursor_array(cur, &n) != 0 || n > BR_SCHEMA_MAX_ENUM || n > br_cursor_left(cur) ||
        s->enums)
        return fail(c, "%s", "'enum' must be one list of at most 128 strings");
    if (n == 0)
        return 0;
    if (!(s->enums = calloc(n, sizeof *s->enums)))
        return BR_ENOMEM;
    for (uint32_t i = 0; i < n; i++) {
        br_str v;
        if (br_cursor_str(cur, &v, BR_SCHEMA_MAX_BYTES) != 0)
            return fail(c, "%s", "'enum' values must be strings");
        char *copy = dup_str(v);
        if (!copy)
            return BR_ENOMEM;
        s->enums[s->nenum++] = (br_str){copy, v.len};
    }
    return 0;
}

/* Renders a scalar default as the text a parameter would carry. */
static int default_text(gw_schema *s)
{
    br_cursor cur;
    br_cursor_init(&cur, s->def, s->def_len);
    char buf[GW_DOUBLE_CHARS + 8];
    br_str text;
    int64_t i;
    double d;
    bool b;
    switch (br_cursor_peek(&cur)) {
    case BR_MP_STR:
        if (br_cursor_str(&cur, &text, BR_SCHEMA_MAX_BYTES) != 0)
            return 0;
        return (s->def_text = dup_str(text)) ? 0 : BR_ENOMEM;
    case BR_MP_INT:
        if (br_cursor_int(&cur, &i) != 0)
            return 0;
        snprintf(buf, sizeof buf, "%lld", (long long)i);
        break;
    case BR_MP_FLOAT:
        br_cursor_double(&cur, &d);
        gw_format_double(d, buf, sizeof buf);
        break;
    case BR_MP_BOOL:
        br_cursor_bool(&cur, &b);
        snprintf(buf, sizeof buf, "%s", b ? "true" : "false");
        break;
    default:
        return 0; /* lists and objects have no text form: documented, not filled in */
    }
    return (s->def_text = dup_str(br_str_c(buf))) ? 0 : BR_ENOMEM;
}

static int get_default(compiler *c, br_cursor *cur, gw_schema *s)
{
    const uint8_t *start = cur->p;
    if (br_cursor_skip(cur, BR_SCHEMA_MAX_DEPTH) != 0 || s->def)
        return fail(c, "%s", "'default' must be one value");
    s->def_len = (uint32_t)(cur->p - start);
    if (!(s->def = malloc(s->def_len)))
        return BR_ENOMEM;
    memcpy(s->def, start, s->def_len);
    return default_text(s);
}

static int compile_node(compiler *c, br_cursor *cur, unsigned depth, gw_schema **out);

static int get_properties(compiler *c, br_cursor *cur, gw_schema *s, unsigned depth)
{
    uint32_t n;
    if (br_cursor_map(cur, &n) != 0 || n > BR_SCHEMA_MAX_FIELDS || n > br_cursor_left(cur) ||
        s->fields)
        return fail(c, "%s", "'properties' must be one map of at most 128 fields");
    if (n == 0)
        return 0;
    if (!(s->fields = calloc(n, sizeof *s->fields)) || !(s->seen = calloc(n, sizeof *s->seen)))
        return BR_ENOMEM;
    for (uint32_t i = 0; i < n; i++) {
        br_str name;
        if (br_cursor_str(cur, &name, BR_SCHEMA_MAX_BYTES) != 0)
            return fail(c, "%s", "a property name must be text");
        for (uint32_t j = 0; j < s->nfields; j++)
            if (s->fields[j].name_len == name.len &&
                memcmp(s->fields[j].name, name.ptr, name.len) == 0)
                return fail(c, "%s", "a property is declared twice");
        gw_field *f = &s->fields[s->nfields];
        if (!(f->name = dup_str(name)))
            return BR_ENOMEM;
        f->name_len = name.len;
        s->nfields++;
        int rc = compile_node(c, cur, depth + 1, &f->schema);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Marks the fields named in a "required" list (read after "properties"). */
static int apply_required(compiler *c, br_cursor cur, gw_schema *s)
{
    uint32_t n;
    if (br_cursor_array(&cur, &n) != 0 || n > BR_SCHEMA_MAX_FIELDS)
        return fail(c, "%s", "'required' must be a list of field names");
    for (uint32_t i = 0; i < n; i++) {
        br_str name;
        if (br_cursor_str(&cur, &name, BR_SCHEMA_MAX_BYTES) != 0)
            return fail(c, "%s", "'required' must be a list of field names");
        bool found = false;
        for (uint32_t j = 0; j < s->nfields; j++) {
            gw_field *f = &s->fields[j];
            if (f->name_len == name.len && memcmp(f->name, name.ptr, name.len) == 0)
                found = f->required = true;
        }
        if (!found)
            return fail(c, "%s", "'required' names a field 'properties' does not declare");
    }
    return 0;
}

/* Reads one key's value into s.  *required is where a "required" list starts. */
static int compile_key(compiler *c, br_cursor *cur, br_str key, gw_schema *s, unsigned depth,
                       br_cursor *required, bool *has_required)
{
    br_str text;
    bool has;
    if (br_str_eq(key, "type")) {
        if (br_cursor_str(cur, &text, 32) != 0 || type_of(text, &s->type) != 0)
            return fail(c, "%s",
                        "'type' must be string, integer, number, boolean, array or object");
        return 0;
    }
    if (br_str_eq(key, "title"))
        return get_text(c, cur, &s->title, "title");
    if (br_str_eq(key, "description"))
        return get_text(c, cur, &s->description, "description");
    if (br_str_eq(key, "format")) {
        int rc = get_text(c, cur, &s->format_name, "format");
        if (rc == 0)
            s->format = format_of(br_str_c(s->format_name));
        return rc;
    }
    if (br_str_eq(key, "minLength") || br_str_eq(key, "minItems"))
        return get_count(c, cur, &s->min_len, &s->has_min_len, "minLength");
    if (br_str_eq(key, "maxLength") || br_str_eq(key, "maxItems"))
        return get_count(c, cur, &s->max_len, &s->has_max_len, "maxLength");
    if (br_str_eq(key, "minimum"))
        return get_number(c, cur, &s->ge, &s->has_ge, "minimum");
    if (br_str_eq(key, "exclusiveMinimum"))
        return get_number(c, cur, &s->gt, &s->has_gt, "exclusiveMinimum");
    if (br_str_eq(key, "maximum"))
        return get_number(c, cur, &s->le, &s->has_le, "maximum");
    if (br_str_eq(key, "exclusiveMaximum"))
        return get_number(c, cur, &s->lt, &s->has_lt, "exclusiveMaximum");
    if (br_str_eq(key, "pattern")) {
        if (br_cursor_str(cur, &text, BR_SCHEMA_MAX_BYTES) != 0 || s->pattern)
            return fail(c, "%s", "'pattern' must be text");
        return compile_pattern(c, s, text);
    }
    if (br_str_eq(key, "enum"))
        return get_enum(c, cur, s);
    if (br_str_eq(key, "default"))
        return get_default(c, cur, s);
    if (br_str_eq(key, "items")) {
        if (s->items)
            return fail(c, "%s", "'items' is given twice");
        return compile_node(c, cur, depth + 1, &s->items);
    }
    if (br_str_eq(key, "properties"))
        return get_properties(c, cur, s, depth);
    if (br_str_eq(key, "required")) {
        *required = *cur;
        *has_required = true;
        return br_cursor_skip(cur, 2) == 0 ? 0 : fail(c, "%s", "'required' must be a list");
    }
    if (br_str_eq(key, "additionalProperties")) {
        if (br_cursor_bool(cur, &has) != 0)
            return fail(c, "%s", "'additionalProperties' must be true or false");
        s->extra = has ? BR_EXTRA_ALLOW : BR_EXTRA_FORBID;
        return 0;
    }
    /* A key this gateway does not know: ignored, as PROTOCOL.md says. */
    return br_cursor_skip(cur, BR_SCHEMA_WIRE_DEPTH) == 0 ? 0 : BR_EVALUE;
}

/* Checks that the keys make sense together. */
static int check_node(compiler *c, const gw_schema *s)
{
    bool text = s->type == BR_SCHEMA_STRING;
    bool number = s->type == BR_SCHEMA_INTEGER || s->type == BR_SCHEMA_NUMBER;
    if ((s->re || s->nenum || s->format) && !text)
        return fail(c, "%s", "pattern, enum and format apply to strings only");
    if ((s->has_ge || s->has_gt || s->has_le || s->has_lt) && !number)
        return fail(c, "%s", "minimum and maximum apply to integers and numbers only");
    if ((s->has_min_len || s->has_max_len) && !text && s->type != BR_SCHEMA_ARRAY)
        return fail(c, "%s", "length bounds apply to strings and arrays only");
    if (s->has_min_len && s->has_max_len && s->min_len > s->max_len)
        return fail(c, "%s", "a minimum length is above the maximum");
    if (s->items && s->type != BR_SCHEMA_ARRAY)
        return fail(c, "%s", "'items' applies to arrays only");
    if (s->nfields && s->type != BR_SCHEMA_OBJECT)
        return fail(c, "%s", "'properties' applies to objects only");
    return 0;
}

static int compile_node(compiler *c, br_cursor *cur, unsigned depth, gw_schema **out)
{
    *out = NULL;
    uint32_t n;
    if (depth > BR_SCHEMA_MAX_DEPTH)
        return fail(c, "%s", "a schema nests deeper than 16 levels");
    if (++c->nodes > BR_SCHEMA_MAX_NODES)
        return fail(c, "%s", "a schema holds more than 512 schemas");
    if (br_cursor_map(cur, &n) != 0 || n > br_cursor_left(cur))
        return fail(c, "%s", "a schema must be a map");
    gw_schema *s = calloc(1, sizeof *s);
    if (!s)
        return BR_ENOMEM;
    *out = s;
    br_cursor required = {0};
    bool has_required = false;
    for (uint32_t i = 0; i < n; i++) {
        br_str key;
        if (br_cursor_str(cur, &key, 64) != 0)
            return fail(c, "%s", "schema keys must be short text");
        int rc = compile_key(c, cur, key, s, depth, &required, &has_required);
        if (rc != 0) {
            if (rc == BR_EVALUE && c->why && c->why[0] == '\0')
                fail(c, "%s", "a schema value is malformed");
            return rc;
        }
    }
    if (has_required) {
        int rc = apply_required(c, required, s);
        if (rc != 0)
            return rc;
    }
    return check_node(c, s);
}

int gw__schema_compile(br_str mp, gw_schema **out, char *why, size_t why_len)
{
    compiler c = {why, why_len, 0};
    if (why && why_len)
        why[0] = '\0';
    br_cursor cur;
    br_cursor_init(&cur, mp.ptr, mp.len);
    int rc = compile_node(&c, &cur, 1, out);
    if (rc == 0 && br_cursor_left(&cur) != 0)
        rc = fail(&c, "%s", "bytes follow the schema");
    if (rc != 0) {
        gw__schema_free(*out);
        *out = NULL;
    }
    return rc;
}
