/*
 * payload.c - reading the msgpack maps that job payloads and request bodies carry.
 */
#include <string.h>

#include "services.h"

int br_payload_unpack(br_str mp, msgpack_zone *zone, msgpack_object *out)
{
    size_t off = 0;
    if (mp.len == 0 || msgpack_unpack(mp.ptr, mp.len, &off, zone, out) != MSGPACK_UNPACK_SUCCESS ||
        off != mp.len)
        return BR_EVALUE;
    return 0;
}

const msgpack_object *br_payload_get(const msgpack_object *obj, const char *key)
{
    if (obj->type != MSGPACK_OBJECT_MAP)
        return NULL;
    size_t n = strlen(key);
    for (uint32_t i = 0; i < obj->via.map.size; i++) {
        const msgpack_object *k = &obj->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
            memcmp(k->via.str.ptr, key, n) == 0)
            return &obj->via.map.ptr[i].val;
    }
    return NULL;
}
