/*
 * fields.c - a request's JSON body read the FastAPI way (barista/worker.h, "Reading a
 * request"): the body parsed once into a br_value (barista/value.h), fields looked up
 * by dotted path, and what is missing or of the wrong type recorded as a 422 item
 * rather than failing on the spot.
 */
#include "request.h"

/* pydantic's words for a value of the wrong type, per getter. */
typedef struct want {
    const char *type; /* error type, e.g. "string_type" */
    const char *msg;  /* its message */
} want;

static const want want_str = {"string_type", "Input should be a valid string"};
static const want want_int = {"int_type", "Input should be a valid integer"};
static const want want_float = {"float_type", "Input should be a valid number"};
static const want want_bool = {"bool_type", "Input should be a valid boolean"};

br_value br_req_json(br_req *req)
{
    if (!req->json_parsed) {
        req->json_parsed = true;
        if (br_str_eq(req->msg.content_type, "application/msgpack") &&
            br_value_parse(req->msg.body, &req->json) != 0)
            req->json = (br_value){NULL, 0};
    }
    return req->json;
}

/* Records why a field could not be read: rc is the typed getter's answer (0: it
 * could; BR_ENOTFOUND: absent, fine for an optional one; else the wrong type). */
static void record(br_req *req, const char *path, int rc, const want *w, bool optional)
{
    if (rc == 0 || (optional && rc == BR_ENOTFOUND))
        return;
    if (rc == BR_ENOTFOUND)
        br_req_invalid(req, "body", path, "Field required", "missing", NULL);
    else
        br_req_invalid(req, "body", path, w->msg, w->type, NULL);
}

/* The field at path, or the missing value. */
static br_value field(br_req *req, const char *path)
{
    return br_value_get(br_req_json(req), path);
}

br_str br_req_field_str(br_req *req, const char *path)
{
    br_str s = {"", 0};
    record(req, path, br_value_str(field(req, path), &s), &want_str, false);
    return s;
}

br_str br_req_field_str_or(br_req *req, const char *path, const char *def)
{
    br_str s = br_str_c(def);
    record(req, path, br_value_str(field(req, path), &s), &want_str, true);
    return s;
}

int64_t br_req_field_int(br_req *req, const char *path)
{
    int64_t v = 0;
    record(req, path, br_value_int(field(req, path), INT64_MIN, INT64_MAX, &v), &want_int, false);
    return v;
}

int64_t br_req_field_int_or(br_req *req, const char *path, int64_t def)
{
    int64_t v = def;
    record(req, path, br_value_int(field(req, path), INT64_MIN, INT64_MAX, &v), &want_int, true);
    return v;
}

double br_req_field_float(br_req *req, const char *path)
{
    double v = 0;
    record(req, path, br_value_double(field(req, path), &v), &want_float, false);
    return v;
}

double br_req_field_float_or(br_req *req, const char *path, double def)
{
    double v = def;
    record(req, path, br_value_double(field(req, path), &v), &want_float, true);
    return v;
}

bool br_req_field_bool(br_req *req, const char *path)
{
    bool v = false;
    record(req, path, br_value_bool(field(req, path), &v), &want_bool, false);
    return v;
}

bool br_req_field_bool_or(br_req *req, const char *path, bool def)
{
    bool v = def;
    record(req, path, br_value_bool(field(req, path), &v), &want_bool, true);
    return v;
}
