/*
 * value.c - br_value (barista/value.h): views of msgpack values for service authors.
 *
 * A view is only (ptr, len); every question asked of it opens a br_cursor over those
 * bytes and reads the answer, so there is no tree to build, nothing to allocate and
 * nothing to free.  Lookups walk: a key or an index costs the bytes before it.  That
 * suits request bodies and job payloads, which are read a few fields at a time.
 */
#include <string.h>

#include "barista/value.h"

static const br_value missing = {NULL, 0};

/* A cursor over v's bytes; false (and no cursor) for the missing value. */
static bool open_value(br_value v, br_cursor *c)
{
    if (!v.ptr || v.len == 0)
        return false;
    br_cursor_init(c, v.ptr, v.len);
    return true;
}

int br_value_read(br_cursor *c, br_value *out)
{
    const uint8_t *start = c->p;
    *out = missing;
    int rc = br_cursor_skip(c, BR_VALUE_MAX_DEPTH);
    if (rc < 0)
        return rc;
    size_t len = (size_t)(c->p - start);
    if (len > UINT32_MAX) {
        c->p = start;
        return BR_ELIMIT;
    }
    out->ptr = start;
    out->len = (uint32_t)len;
    return 0;
}

int br_value_parse(br_str bytes, br_value *out)
{
    *out = missing;
    if (bytes.len == 0)
        return BR_ETRUNC;
    br_cursor c;
    br_cursor_init(&c, bytes.ptr, bytes.len);
    int rc = br_value_read(&c, out);
    if (rc == 0 && br_cursor_left(&c) != 0) {
        *out = missing;
        return BR_ETRAILING;
    }
    return rc;
}

br_mp_type br_value_type(br_value v)
{
    br_cursor c;
    return open_value(v, &c) ? br_cursor_peek(&c) : BR_MP_NONE;
}

bool br_value_exists(br_value v)
{
    return br_value_type(v) != BR_MP_NONE;
}

/* ---------------------------------------------------------------------------------- */
/* Looking up.                                                                         */

br_value br_value_key(br_value v, br_str key)
{
    br_cursor c;
    uint32_t n;
    if (!open_value(v, &c) || br_cursor_map(&c, &n) < 0)
        return missing;
    for (uint32_t i = 0; i < n; i++) {
        br_str k;
        int rc = br_cursor_str(&c, &k, UINT32_MAX);
        if (rc == 0 && k.len == key.len && (key.len == 0 || memcmp(k.ptr, key.ptr, key.len) == 0)) {
            br_value found;
            return br_value_read(&c, &found) == 0 ? found : missing;
        }
        if (rc == BR_ETYPE) /* a key of another type: never a match */
            rc = br_cursor_skip(&c, BR_VALUE_MAX_DEPTH);
        if (rc < 0 || br_cursor_skip(&c, BR_VALUE_MAX_DEPTH) < 0)
            return missing;
    }
    return missing;
}

br_value br_value_index(br_value v, uint32_t i)
{
    br_cursor c;
    uint32_t n;
    if (!open_value(v, &c) || br_cursor_array(&c, &n) < 0 || i >= n)
        return missing;
    for (uint32_t k = 0; k < i; k++)
        if (br_cursor_skip(&c, BR_VALUE_MAX_DEPTH) < 0)
            return missing;
    br_value found;
    return br_value_read(&c, &found) == 0 ? found : missing;
}

uint32_t br_value_len(br_value v)
{
    br_cursor c;
    uint32_t n;
    if (!open_value(v, &c))
        return 0;
    if (br_cursor_array(&c, &n) == 0 || br_cursor_map(&c, &n) == 0)
        return n;
    return 0;
}

/* The array index a path segment spells: decimal digits only, at most UINT32_MAX. */
static bool segment_index(const char *s, size_t len, uint32_t *out)
{
    uint64_t v = 0;
    if (len == 0 || len > 10)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > UINT32_MAX)
        return false;
    *out = (uint32_t)v;
    return true;
}

br_value br_value_get(br_value v, const char *path)
{
    if (!path || !*path)
        return v;
    for (;;) {
        const char *dot = strchr(path, '.');
        size_t len = dot ? (size_t)(dot - path) : strlen(path);
        uint32_t i;
        br_mp_type t = br_value_type(v);
        if (t == BR_MP_MAP && len <= UINT32_MAX)
            v = br_value_key(v, (br_str){path, (uint32_t)len});
        else if (t == BR_MP_ARRAY && segment_index(path, len, &i))
            v = br_value_index(v, i);
        else
            return missing;
        if (!dot)
            return v;
        path = dot + 1;
    }
}

/* ---------------------------------------------------------------------------------- */
/* Typed getters.                                                                      */

int br_value_str(br_value v, br_str *out)
{
    br_cursor c;
    br_str s;
    if (!open_value(v, &c))
        return BR_ENOTFOUND;
    int rc = br_cursor_str(&c, &s, UINT32_MAX);
    if (rc == 0)
        *out = s;
    return rc;
}

int br_value_bin(br_value v, br_str *out)
{
    br_cursor c;
    br_str s;
    if (!open_value(v, &c))
        return BR_ENOTFOUND;
    int rc = br_cursor_bin(&c, &s, UINT32_MAX);
    if (rc == 0)
        *out = s;
    return rc;
}

int br_value_int(br_value v, int64_t min, int64_t max, int64_t *out)
{
    br_cursor c;
    int64_t x;
    if (!open_value(v, &c))
        return BR_ENOTFOUND;
    int rc = br_cursor_int(&c, &x);
    if (rc == 0 && (x < min || x > max))
        rc = BR_EVALUE;
    if (rc == 0)
        *out = x;
    return rc;
}

int br_value_uint(br_value v, uint64_t *out)
{
    br_cursor c;
    uint64_t x;
    if (!open_value(v, &c))
        return BR_ENOTFOUND;
    int rc = br_cursor_uint(&c, &x);
    if (rc == 0)
        *out = x;
    return rc;
}

int br_value_double(br_value v, double *out)
{
    br_cursor c;
    double x;
    if (!open_value(v, &c))
        return BR_ENOTFOUND;
    int rc = br_cursor_double(&c, &x);
    if (rc == 0)
        *out = x;
    return rc;
}

int br_value_bool(br_value v, bool *out)
{
    br_cursor c;
    bool x;
    if (!open_value(v, &c))
        return BR_ENOTFOUND;
    int rc = br_cursor_bool(&c, &x);
    if (rc == 0)
        *out = x;
    return rc;
}

bool br_value_is_nil(br_value v)
{
    return br_value_type(v) == BR_MP_NIL;
}

/* ---------------------------------------------------------------------------------- */
/* Iterating.                                                                          */

br_value_iter br_value_items(br_value v)
{
    br_value_iter it;
    memset(&it, 0, sizeof it);
    if (!open_value(v, &it.cur)) {
        it.err = BR_ENOTFOUND;
        return it;
    }
    br_mp_type t = br_cursor_peek(&it.cur);
    int rc = t == BR_MP_ARRAY ? br_cursor_array(&it.cur, &it.left)
             : t == BR_MP_MAP ? br_cursor_map(&it.cur, &it.left)
                              : BR_ETYPE;
    if (rc < 0) {
        it.left = 0;
        it.err = rc;
    }
    it.map = t == BR_MP_MAP;
    return it;
}

bool br_value_next(br_value_iter *it, br_value *key, br_value *val)
{
    br_value k = missing, v;
    if (it->left == 0 || it->err)
        return false;
    int rc = it->map ? br_value_read(&it->cur, &k) : 0;
    if (rc == 0)
        rc = br_value_read(&it->cur, &v);
    if (rc < 0) {
        it->err = rc;
        it->left = 0;
        return false;
    }
    it->left--;
    if (key)
        *key = k;
    if (val)
        *val = v;
    return true;
}
