/*
 * openapi_schema.c - compiled schemas and contracts back into the JSON Schema of an
 * OpenAPI 3.1 document.
 *
 * Named objects (a title) are written once, under components/schemas, and referred to
 * with $ref everywhere else, as FastAPI does for pydantic models.  Component names are
 * the title with every character OpenAPI does not allow in a component key replaced by
 * '_'; the first model with a name wins when two services reuse it.
 */
#include <stdio.h>
#include <string.h>

#include "contracts_int.h"
#include "json.h"

/* Appends until the first failure, which it keeps. */
typedef struct jw {
    br_buf *out;
    int rc;
} jw;

static void lit(jw *w, const char *s)
{
    if (w->rc == 0)
        w->rc = br_buf_append(w->out, s, strlen(s));
}

static void str(jw *w, const char *s, size_t n)
{
    if (w->rc == 0)
        w->rc = gw_json_append_string(w->out, s, n);
}

static void cstr(jw *w, const char *s)
{
    str(w, s, strlen(s));
}

static void num(jw *w, const char *key, double v)
{
    char buf[GW_DOUBLE_CHARS];
    gw_format_double(v, buf, sizeof buf);
    lit(w, ",\"");
    lit(w, key);
    lit(w, "\":");
    lit(w, buf);
}

/* The component key of a title: [A-Za-z0-9._-] kept, anything else '_'. */
static void component_name(const char *title, char *out, size_t cap)
{
    size_t n = 0;
    for (; title[n] && n + 1 < cap; n++) {
        char c = title[n];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '-' || c == '_';
        out[n] = ok ? c : '_';
    }
    out[n] = '\0';
}

static bool is_model(const gw_schema *s)
{
    return s->type == BR_SCHEMA_OBJECT && s->title && s->nfields > 0;
}

static void note_model(const gw_schema *s, gw_models *models)
{
    for (size_t i = 0; i < models->n; i++)
        if (strcmp(models->list[i]->title, s->title) == 0)
            return;
    if (models->n < GW_MODELS_MAX)
        models->list[models->n++] = s;
}

static void schema(jw *w, const gw_schema *s, gw_models *models, bool inline_model);

static void schema_body(jw *w, const gw_schema *s, gw_models *models)
{
    static const char *const types[] = {NULL,      "string", "integer", "number",
                                        "boolean", "array",  "object"};
    bool first = true;
    lit(w, "{");
#define SEP() (first ? (first = false, "") : ",")
    if (s->type != BR_SCHEMA_ANY) {
        lit(w, SEP());
        lit(w, "\"type\":\"");
        lit(w, types[s->type]);
        lit(w, "\"");
    }
    if (s->title) {
        lit(w, SEP());
        lit(w, "\"title\":");
        cstr(w, s->title);
    }
    if (s->description) {
        lit(w, SEP());
        lit(w, "\"description\":");
        cstr(w, s->description);
    }
    if (s->format_name) {
        lit(w, SEP());
        lit(w, "\"format\":");
        cstr(w, s->format_name);
    }
    /* The bound members below start with a comma: bounds come only with a type
     * (schema_compile.c refuses them otherwise), so a member came before. */
    bool array = s->type == BR_SCHEMA_ARRAY;
    if (s->has_min_len)
        num(w, array ? "minItems" : "minLength", s->min_len);
    if (s->has_max_len)
        num(w, array ? "maxItems" : "maxLength", s->max_len);
    if (s->has_ge)
        num(w, "minimum", s->ge);
    if (s->has_gt)
        num(w, "exclusiveMinimum", s->gt);
    if (s->has_le)
        num(w, "maximum", s->le);
    if (s->has_lt)
        num(w, "exclusiveMaximum", s->lt);
    if (s->pattern) {
        lit(w, SEP());
        lit(w, "\"pattern\":");
        cstr(w, s->pattern);
    }
    if (s->nenum) {
        lit(w, SEP());
        lit(w, "\"enum\":[");
        for (uint32_t i = 0; i < s->nenum; i++) {
            if (i)
                lit(w, ",");
            str(w, s->enums[i].ptr, s->enums[i].len);
        }
        lit(w, "]");
    }
    if (s->def) {
        lit(w, SEP());
        lit(w, "\"default\":");
        if (w->rc == 0 && gw_msgpack_to_json(s->def, s->def_len, w->out) != 0)
            lit(w, "null");
    }
    if (s->items) {
        lit(w, SEP());
        lit(w, "\"items\":");
        schema(w, s->items, models, false);
    }
    if (s->nfields) {
        lit(w, SEP());
        lit(w, "\"properties\":{");
        size_t required = 0;
        for (uint32_t i = 0; i < s->nfields; i++) {
            if (i)
                lit(w, ",");
            str(w, s->fields[i].name, s->fields[i].name_len);
            lit(w, ":");
            schema(w, s->fields[i].schema, models, false);
            required += s->fields[i].required;
        }
        lit(w, "}");
        if (required) {
            lit(w, ",\"required\":[");
            bool any = false;
            for (uint32_t i = 0; i < s->nfields; i++) {
                if (!s->fields[i].required)
                    continue;
                if (any)
                    lit(w, ",");
                any = true;
                str(w, s->fields[i].name, s->fields[i].name_len);
            }
            lit(w, "]");
        }
        if (s->extra == BR_EXTRA_FORBID)
            lit(w, ",\"additionalProperties\":false");
        else if (s->extra == BR_EXTRA_ALLOW)
            lit(w, ",\"additionalProperties\":true");
    }
#undef SEP
    lit(w, "}");
}

static void schema(jw *w, const gw_schema *s, gw_models *models, bool inline_model)
{
    if (is_model(s) && !inline_model) {
        char name[256];
        component_name(s->title, name, sizeof name);
        note_model(s, models);
        lit(w, "{\"$ref\":\"#/components/schemas/");
        lit(w, name);
        lit(w, "\"}");
        return;
    }
    schema_body(w, s, models);
}

int gw_schema_openapi(const gw_schema *s, br_buf *out, gw_models *models)
{
    jw w = {out, 0};
    schema(&w, s, models, false);
    return w.rc;
}

int gw_models_openapi(gw_models *models, br_buf *out)
{
    jw w = {out, 0};
    /* Writing a model may note more (its fields' models): the count grows meanwhile. */
    for (size_t i = 0; i < models->n && w.rc == 0; i++) {
        /* The gateway publishes these itself (br_schema_http_error is its HTTPError). */
        const char *t = models->list[i]->title;
        if (strcmp(t, "HTTPError") == 0 || strcmp(t, "HTTPValidationError") == 0 ||
            strcmp(t, "ValidationError") == 0)
            continue;
        char name[256];
        component_name(models->list[i]->title, name, sizeof name);
        cstr(&w, name);
        lit(&w, ":");
        schema(&w, models->list[i], models, true);
        lit(&w, ",");
    }
    return w.rc;
}

/* ---------------------------------------------------------------------------------- */
/* Operations.                                                                         */

int gw_contract_openapi_params(const gw_contract *c, br_buf *out, gw_models *models)
{
    static const char *const places[] = {"path", "query", "header", "cookie"};
    jw w = {out, 0};
    for (size_t i = 0; c && i < gw__contract_nparams(c); i++) {
        gw_cparam_view p;
        gw__contract_param(c, i, &p);
        lit(&w, "{\"name\":");
        cstr(&w, p.wire);
        lit(&w, ",\"in\":\"");
        lit(&w, places[p.in <= BR_IN_COOKIE ? p.in : 1]);
        lit(&w,
            p.required ? "\",\"required\":true,\"schema\":" : "\",\"required\":false,\"schema\":");
        schema(&w, p.schema, models, false);
        if (p.summary[0]) {
            lit(&w, ",\"description\":");
            cstr(&w, p.summary);
        }
        lit(&w, "},");
    }
    return w.rc;
}

bool gw_contract_declares_path(const gw_contract *c, const char *name, size_t len)
{
    for (size_t i = 0; c && i < gw__contract_nparams(c); i++) {
        gw_cparam_view p;
        gw__contract_param(c, i, &p);
        if (p.in == BR_IN_PATH && strlen(p.wire) == len && memcmp(p.wire, name, len) == 0)
            return true;
    }
    return false;
}

int gw_contract_openapi_body(const gw_contract *c, br_buf *out, gw_models *models)
{
    const gw_schema *s = c ? gw__contract_body(c) : NULL;
    if (!s)
        return 0;
    jw w = {out, 0};
    const char *types[] = {"application/json", "application/msgpack",
                           "application/x-www-form-urlencoded"};
    size_t n = gw_contract_takes_form(c) ? 3 : 2;
    lit(&w, ",\"requestBody\":{\"required\":true,\"content\":{");
    for (size_t i = 0; i < n; i++) {
        lit(&w, i ? ",\"" : "\"");
        lit(&w, types[i]);
        lit(&w, "\":{\"schema\":");
        schema(&w, s, models, false);
        lit(&w, "}");
    }
    lit(&w, "}}");
    return w.rc;
}

static const char *reason(uint16_t status)
{
    switch (status) {
    case 200:
        return "Successful Response";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 409:
        return "Conflict";
    case 422:
        return "Validation Error";
    default:
        return "Response";
    }
}

int gw_contract_openapi_responses(const gw_contract *c, br_buf *out, gw_models *models)
{
    jw w = {out, 0};
    bool success = false;
    size_t n = c ? gw__contract_nresponses(c) : 0;
    for (size_t i = 0; i < n; i++) {
        uint16_t status;
        const char *d;
        const gw_schema *s;
        gw__contract_response(c, i, &status, &d, &s);
        success |= status >= 200 && status < 300;
    }
    if (!success)
        lit(&w, "\"200\":{\"description\":\"Successful Response\",\"content\":"
                "{\"application/json\":{\"schema\":{}}}},");
    for (size_t i = 0; i < n; i++) {
        uint16_t status;
        const char *d;
        const gw_schema *s;
        char code[16];
        gw__contract_response(c, i, &status, &d, &s);
        snprintf(code, sizeof code, "\"%u\":", (unsigned)status);
        lit(&w, code);
        lit(&w, "{\"description\":");
        cstr(&w, d[0] ? d : reason(status));
        if (s && status != 204 && status != 304) {
            lit(&w, ",\"content\":{\"application/json\":{\"schema\":");
            schema(&w, s, models, false);
            lit(&w, "}}");
        }
        lit(&w, "},");
    }
    return w.rc;
}
