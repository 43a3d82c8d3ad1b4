/*
 * errors.c - FastAPI's 422 body, written one error at a time as validation finds them.
 *
 * Each error is {"type":..,"loc":[..],"msg":..,"input":..[,"ctx":{..}]}, pydantic
 * v2's shape as FastAPI returns it.  The list is bounded (GW_CONTRACT_MAX_ERRORS and
 * the buffer's max): past either it ends with what it has, still a valid 422.
 */
#include <stdio.h>
#include <string.h>

#include "contracts_int.h"
#include "json.h"

void gw__errs_init(gw_errs *e, br_buf *out)
{
    memset(e, 0, sizeof *e);
    e->out = out;
    e->budget = GW_PATTERN_BUDGET;
    e->mark = out->len;
}

void gw__errs_push_key(gw_errs *e, const char *key, size_t len)
{
    if (e->depth < sizeof e->loc / sizeof e->loc[0])
        e->loc[e->depth] = (gw_loc){key, (uint32_t)len, 0};
    e->depth++;
}

void gw__errs_push_index(gw_errs *e, uint32_t index)
{
    if (e->depth < sizeof e->loc / sizeof e->loc[0])
        e->loc[e->depth] = (gw_loc){NULL, 0, index};
    e->depth++;
}

void gw__errs_pop(gw_errs *e)
{
    if (e->depth > 0)
        e->depth--;
}

static int lit(br_buf *out, const char *s)
{
    return br_buf_append(out, s, strlen(s));
}

static int write_loc(gw_errs *e)
{
    br_buf *out = e->out;
    int rc = lit(out, "[");
    size_t n =
        e->depth < sizeof e->loc / sizeof e->loc[0] ? e->depth : sizeof e->loc / sizeof e->loc[0];
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (i > 0)
            rc = lit(out, ",");
        if (rc != 0)
            break;
        if (e->loc[i].key) {
            rc = gw_json_append_string(out, e->loc[i].key, e->loc[i].len);
        } else {
            char num[16];
            snprintf(num, sizeof num, "%u", (unsigned)e->loc[i].index);
            rc = lit(out, num);
        }
    }
    return rc == 0 ? lit(out, "]") : rc;
}

static int write_input(br_buf *out, const gw_input *in)
{
    size_t mark = out->len;
    int rc;
    switch (in->kind) {
    case GW_INPUT_MSGPACK:
        rc = gw_msgpack_to_json(in->ptr, in->len, out);
        if (rc == BR_EVALUE) { /* bin or ext: no JSON form */
            out->len = mark;
            rc = lit(out, "null");
        }
        return rc;
    case GW_INPUT_TEXT:
        return gw_json_append_string(out, in->ptr, in->len);
    default:
        return lit(out, "null");
    }
}

void gw__errs_add(gw_errs *e, const char *type, const char *msg, const gw_input *input,
                  const char *ctx)
{
    if (e->rc != 0 || e->full || e->n >= GW_CONTRACT_MAX_ERRORS) {
        e->full = true;
        return;
    }
    br_buf *out = e->out;
    size_t before = out->len;
    int rc = lit(out, e->n == 0 ? "{\"detail\":[{\"type\":\"" : ",{\"type\":\"");
    if (rc == 0)
        rc = lit(out, type);
    if (rc == 0)
        rc = lit(out, "\",\"loc\":");
    if (rc == 0)
        rc = write_loc(e);
    if (rc == 0)
        rc = lit(out, ",\"msg\":");
    if (rc == 0)
        rc = gw_json_append_string(out, msg, strlen(msg));
    if (rc == 0)
        rc = lit(out, ",\"input\":");
    if (rc == 0)
        rc = write_input(out, input);
    if (rc == 0 && ctx) {
        rc = lit(out, ",\"ctx\":{");
        if (rc == 0)
            rc = lit(out, ctx);
        if (rc == 0)
            rc = lit(out, "}");
    }
    if (rc == 0)
        rc = lit(out, "}");
    if (rc == 0 && out->max && out->max - out->len < 2)
        rc = BR_ELIMIT; /* the closing "]}" must still fit */
    if (rc == 0) {
        e->n++;
        return;
    }
    out->len = before;
    if (rc == BR_ELIMIT && e->n > 0)
        e->full = true; /* the list so far is the answer */
    else
        e->rc = rc;
}

int gw__errs_finish(gw_errs *e)
{
    if (e->rc == 0 && e->n > 0)
        e->rc = lit(e->out, "]}"); /* fits: gw__errs_add keeps two bytes free */
    if (e->rc != 0) {
        e->out->len = e->mark;
        return e->rc;
    }
    return e->n > 0 ? BR_EVALUE : 0;
}
