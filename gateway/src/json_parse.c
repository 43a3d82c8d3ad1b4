/*
 * json_parse.c - JSON request bodies -> msgpack, with jansson.
 *
 * jansson parses strictly (RFC 8259: no trailing commas, no NaN, no comments, UTF-8
 * only, surrogate pairs checked) and reports where it failed; we walk its tree once
 * and pack each node with msgpack-c, which picks the smallest encoding of every value.
 * The body is small next to the cost of the request, so a tree per body is fine here;
 * the reply direction, which is hot, is hand-written (json.c).
 */
#include <stdio.h>

#include <jansson.h>
#include <msgpack.h>

#include "json.h"

/* The packer's sink: appends to the caller's buffer and remembers why it stopped. */
typedef struct pack_sink {
    br_buf *out; /* destination */
    int err;     /* first append error, 0 while all went well */
} pack_sink;

static int sink_write(void *data, const char *buf, size_t len)
{
    pack_sink *sink = data;
    if (sink->err == 0)
        sink->err = gw_buf_append(sink->out, buf, len);
    return sink->err ? -1 : 0;
}

/* Packs one jansson node; depth counts the containers around it. */
static int pack_node(msgpack_packer *pk, const json_t *node, unsigned depth)
{
    switch (json_typeof(node)) {
    case JSON_OBJECT: {
        if (depth >= GW_JSON_MAX_DEPTH)
            return BR_ELIMIT;
        int rc = msgpack_pack_map(pk, json_object_size(node));
        /* Iteration follows insertion order, so the worker sees the client's order. */
        for (void *it = json_object_iter((json_t *)node); rc == 0 && it;
             it = json_object_iter_next((json_t *)node, it)) {
            size_t klen = json_object_iter_key_len(it);
            rc = msgpack_pack_str(pk, klen);
            if (rc == 0)
                rc = msgpack_pack_str_body(pk, json_object_iter_key(it), klen);
            if (rc == 0)
                rc = pack_node(pk, json_object_iter_value(it), depth + 1);
        }
        return rc;
    }
    case JSON_ARRAY: {
        if (depth >= GW_JSON_MAX_DEPTH)
            return BR_ELIMIT;
        size_t n = json_array_size(node);
        int rc = msgpack_pack_array(pk, n);
        for (size_t i = 0; rc == 0 && i < n; i++)
            rc = pack_node(pk, json_array_get(node, i), depth + 1);
        return rc;
    }
    case JSON_STRING: {
        size_t n = json_string_length(node);
        int rc = msgpack_pack_str(pk, n);
        return rc ? rc : msgpack_pack_str_body(pk, json_string_value(node), n);
    }
    case JSON_INTEGER: return msgpack_pack_int64(pk, json_integer_value(node));
    case JSON_REAL: return msgpack_pack_double(pk, json_real_value(node));
    case JSON_TRUE: return msgpack_pack_true(pk);
    case JSON_FALSE: return msgpack_pack_false(pk);
    case JSON_NULL: return msgpack_pack_nil(pk);
    }
    return BR_EVALUE;
}

int gw_json_to_msgpack(const char *json, size_t len, br_buf *out, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    json_error_t jerr;
    json_t *root = json_loadb(json ? json : "", len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (!root) {
        /* jansson's own depth guard (2048) sits above ours: still a depth refusal. */
        if (json_error_code(&jerr) == json_error_stack_overflow)
            return BR_ELIMIT;
        if (err && errlen)
            snprintf(err, errlen, "%s: line %d column %d (char %d)", jerr.text, jerr.line,
                     jerr.column, jerr.position);
        return BR_EVALUE;
    }

    size_t mark = out->len;
    pack_sink sink = {out, 0};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sink, sink_write);
    int rc = pack_node(&pk, root, 0);
    json_decref(root);
    if (rc != 0) {
        /* A packer failure is the sink's; otherwise rc is our own depth refusal. */
        rc = sink.err ? sink.err : rc;
        out->len = mark;
    }
    return rc;
}
