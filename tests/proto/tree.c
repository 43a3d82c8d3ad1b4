/*
 * tree.c - editable msgpack-c object trees of valid messages (see tree.h).
 */
#include <stdlib.h>
#include <string.h>

#include "tree.h"

/* Zone memory; the tests cannot go on without it. */
static void *zalloc(tree *t, size_t n)
{
    void *p = msgpack_zone_malloc(t->up.zone, n);
    if (!p)
        abort();
    return p;
}

void tree_from_msg(tree *t, const br_msg *msg)
{
    br_buf buf = {0};
    if (br_msg_encode(msg, &buf) < 0)
        abort(); /* the samples are valid: a failure here is a bug in the test itself */
    msgpack_unpacked_init(&t->up);
    size_t off = 0;
    if (msgpack_unpack_next(&t->up, (const char *)buf.data, buf.len, &off) !=
        MSGPACK_UNPACK_SUCCESS)
        abort();
    /* Strings in the tree point into buf: copy them into the zone before freeing it. */
    size_t n = 0;
    for (msgpack_object *o; (o = tree_nth(t, n)) != NULL; n++) {
        if (o->type == MSGPACK_OBJECT_STR || o->type == MSGPACK_OBJECT_BIN) {
            char *copy = zalloc(t, o->via.str.size + 1);
            if (o->via.str.size)
                memcpy(copy, o->via.str.ptr, o->via.str.size);
            o->via.str.ptr = copy;
        }
    }
    br_buf_free(&buf);
}

void tree_free(tree *t)
{
    msgpack_unpacked_destroy(&t->up);
}

msgpack_object *tree_at(tree *t, const int *path, size_t depth)
{
    msgpack_object *o = &t->up.data;
    for (size_t i = 0; i < depth; i++) {
        if (o->type != MSGPACK_OBJECT_ARRAY || (uint32_t)path[i] >= o->via.array.size)
            abort();
        o = &o->via.array.ptr[path[i]];
    }
    return o;
}

/* Pre-order walk: counts down *n and returns the node where it reaches zero. */
static msgpack_object *walk(msgpack_object *o, size_t *n)
{
    if ((*n)-- == 0)
        return o;
    if (o->type == MSGPACK_OBJECT_ARRAY) {
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            msgpack_object *hit = walk(&o->via.array.ptr[i], n);
            if (hit)
                return hit;
        }
    } else if (o->type == MSGPACK_OBJECT_MAP) {
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            msgpack_object *hit = walk(&o->via.map.ptr[i].key, n);
            if (!hit)
                hit = walk(&o->via.map.ptr[i].val, n);
            if (hit)
                return hit;
        }
    }
    return NULL;
}

msgpack_object *tree_nth(tree *t, size_t n)
{
    return walk(&t->up.data, &n);
}

/* Like walk, and tells whether the node found lies inside a map. */
static msgpack_object *walk_in_map(msgpack_object *o, size_t *n, bool in_map, bool *found_in_map)
{
    if ((*n)-- == 0) {
        *found_in_map = in_map;
        return o;
    }
    if (o->type == MSGPACK_OBJECT_ARRAY) {
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            msgpack_object *hit = walk_in_map(&o->via.array.ptr[i], n, in_map, found_in_map);
            if (hit)
                return hit;
        }
    } else if (o->type == MSGPACK_OBJECT_MAP) {
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            msgpack_object *hit = walk_in_map(&o->via.map.ptr[i].key, n, true, found_in_map);
            if (!hit)
                hit = walk_in_map(&o->via.map.ptr[i].val, n, true, found_in_map);
            if (hit)
                return hit;
        }
    }
    return NULL;
}

bool tree_nth_in_map(tree *t, size_t n)
{
    bool in_map = false;
    walk_in_map(&t->up.data, &n, false, &in_map);
    return in_map;
}

void tree_append(tree *t, const int *path, size_t depth, msgpack_object node)
{
    msgpack_object *a = tree_at(t, path, depth);
    uint32_t n = a->via.array.size;
    msgpack_object *items = zalloc(t, (n + 1) * sizeof *items);
    if (n)
        memcpy(items, a->via.array.ptr, n * sizeof *items);
    items[n] = node;
    a->via.array.ptr = items;
    a->via.array.size = n + 1;
}

msgpack_object tree_future_value(tree *t)
{
    msgpack_object *items = zalloc(t, 3 * sizeof *items);
    msgpack_object_kv *kv = zalloc(t, sizeof *kv);
    kv->key.type = MSGPACK_OBJECT_NIL;
    kv->val.type = MSGPACK_OBJECT_BIN;
    kv->val.via.bin.ptr = "\x01\x02";
    kv->val.via.bin.size = 2;
    items[0] = tree_str("future");
    items[1] = tree_float(2.5);
    items[2].type = MSGPACK_OBJECT_MAP;
    items[2].via.map.ptr = kv;
    items[2].via.map.size = 1;
    msgpack_object o = {.type = MSGPACK_OBJECT_ARRAY};
    o.via.array.ptr = items;
    o.via.array.size = 3;
    return o;
}

static int buf_write(void *data, const char *bytes, size_t len)
{
    br_buf *buf = data;
    if (buf->len + len > buf->cap) {
        size_t cap = (buf->len + len) * 2;
        uint8_t *grown = realloc(buf->data, cap);
        if (!grown)
            abort();
        buf->data = grown;
        buf->cap = cap;
    }
    if (len)
        memcpy(buf->data + buf->len, bytes, len);
    buf->len += len;
    return 0;
}

void tree_pack(const tree *t, br_buf *buf)
{
    msgpack_packer pk;
    buf->len = 0;
    msgpack_packer_init(&pk, buf, buf_write);
    msgpack_pack_object(&pk, t->up.data);
}

msgpack_object tree_uint(uint64_t v)
{
    msgpack_object o = {.type = MSGPACK_OBJECT_POSITIVE_INTEGER};
    o.via.u64 = v;
    return o;
}

msgpack_object tree_int(int64_t v)
{
    msgpack_object o = {.type = MSGPACK_OBJECT_NEGATIVE_INTEGER};
    o.via.i64 = v;
    return o;
}

msgpack_object tree_float(double v)
{
    msgpack_object o = {.type = MSGPACK_OBJECT_FLOAT64};
    o.via.f64 = v;
    return o;
}

msgpack_object tree_str(const char *s)
{
    msgpack_object o = {.type = MSGPACK_OBJECT_STR};
    o.via.str.ptr = s;
    o.via.str.size = (uint32_t)strlen(s);
    return o;
}
