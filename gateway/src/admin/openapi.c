/*
 * openapi.c - the OpenAPI 3.1 document (openapi.h).
 *
 * Written straight into a buffer as compact JSON: the dynamic part walks the
 * registry (services, then their routes); everything that never changes - the
 * gateway's own routes and FastAPI's error schemas - is literal text.  Routes sharing a
 * template become one path item, found by a scan of the (short) route lists rather
 * than a sort, so that nothing is allocated besides the output.
 */
#include "openapi.h"

#include <stdio.h>
#include <string.h>

#include "json.h"

/* The literal JSON below is laid out by hand: clang-format would scatter it. */
// clang-format off

/* The error responses every announced route may give, unless it declares its own. */
static const struct {
    uint16_t status;
    const char *json;
} route_errors[] = {
    {422, "\"422\":{\"description\":\"Validation Error\",\"content\":{\"application/json\":"
          "{\"schema\":{\"$ref\":\"#/components/schemas/HTTPValidationError\"}}}}"},
    {502, "\"502\":{\"$ref\":\"#/components/responses/BadGateway\"}"},
    {503, "\"503\":{\"$ref\":\"#/components/responses/Unavailable\"}"},
    {504, "\"504\":{\"$ref\":\"#/components/responses/Timeout\"}"},
};

/* A JSON response of the gateway's own routes. */
#define JSON_RESPONSE(code, what)                                                          \
    "\"" code "\":{\"description\":\"" what "\",\"content\":{\"application/json\":"         \
    "{\"schema\":{\"type\":\"object\"}}}}"

/* A gateway route: method "get", tag, summary, responses.  Open to anyone whatever
 * --auth-default says (load balancers and browsers reach them without credentials). */
#define GATEWAY_OP(method, tag, summary, responses)                                        \
    "\"" method "\":{\"tags\":[\"" tag "\"],\"summary\":\"" summary "\",\"security\":[],"     \
    "\"responses\":{" responses "}}"

static const char gateway_paths[] =
    "\"/healthz\":{" GATEWAY_OP("get", "gateway", "Liveness: the gateway's loop runs",
                                JSON_RESPONSE("200", "Alive")) "},"
    "\"/readyz\":{" GATEWAY_OP("get", "gateway",
                               "Readiness: every announced route has a live worker",
                               JSON_RESPONSE("200", "Ready") ","
                               "\"503\":{\"$ref\":\"#/components/responses/Unavailable\"}") "},"
    "\"/metrics\":{" GATEWAY_OP("get", "gateway", "Counters in Prometheus text format 0.0.4",
                                "\"200\":{\"description\":\"Metrics\",\"content\":{"
                                "\"text/plain\":{\"schema\":{\"type\":\"string\"}}}}") "},"
    "\"/openapi.json\":{" GATEWAY_OP("get", "gateway", "This document",
                                     JSON_RESPONSE("200", "OpenAPI 3.1 document")) "},"
    "\"/docs\":{" GATEWAY_OP("get", "gateway", "Interactive documentation of this document",
                             "\"200\":{\"description\":\"HTML page\",\"content\":{"
                             "\"text/html\":{\"schema\":{\"type\":\"string\"}}}}") "}";

static const char jobs_paths[] =
    ",\"/jobs/{task}\":{\"post\":{\"tags\":[\"jobs\"],\"summary\":\"Submit a durable job\","
    "\"description\":\"Only tasks their workers mark public may be submitted; other tasks "
    "are internal (enqueued by services) and answer 404 like unknown ones. An "
    "Idempotency-Key names one job per task.\","
    "\"parameters\":[{\"name\":\"task\",\"in\":\"path\",\"required\":true,"
    "\"schema\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":128}},"
    "{\"name\":\"idempotency-key\",\"in\":\"header\",\"required\":false,"
    "\"schema\":{\"type\":\"string\",\"maxLength\":256}}],"
    "\"requestBody\":{\"description\":\"The job's argument: JSON (stored as msgpack) or "
    "msgpack\",\"content\":{\"application/json\":{\"schema\":{}},"
    "\"application/msgpack\":{\"schema\":{}}}},"
    "\"responses\":{" JSON_RESPONSE("202", "Accepted and durable: job_id and status_url") ","
    "\"404\":{\"description\":\"No such public task\",\"content\":{\"application/json\":"
    "{\"schema\":{\"$ref\":\"#/components/schemas/HTTPError\"}}}},"
    "\"422\":{\"description\":\"Validation Error\",\"content\":{\"application/json\":"
    "{\"schema\":{\"$ref\":\"#/components/schemas/HTTPValidationError\"}}}},"
    "\"503\":{\"$ref\":\"#/components/responses/Unavailable\"}}}},"
    "\"/jobs/{id}\":{\"get\":{\"tags\":[\"jobs\"],\"summary\":\"A job's status and result\","
    "\"parameters\":[{\"name\":\"id\",\"in\":\"path\",\"required\":true,"
    "\"description\":\"The job_id of the 202: 36 hex digits, time-ordered and random "
    "(decimal for jobs stored before ids were random)\","
    "\"schema\":{\"type\":\"string\",\"pattern\":\"^[0-9a-f]{1,36}$\"}}],"
    "\"responses\":{" JSON_RESPONSE("200", "id, task, status, attempts, result") ","
    "\"404\":{\"description\":\"No such job\",\"content\":{\"application/json\":"
    "{\"schema\":{\"$ref\":\"#/components/schemas/HTTPError\"}}}}}}}";

/* An error answer of the broker's, {"detail": "..."}. */
#define ERROR_RESPONSE(what)                                                               \
    "{\"description\":\"" what "\",\"content\":{\"application/json\":{\"schema\":"          \
    "{\"$ref\":\"#/components/schemas/HTTPError\"}}}}"

static const char components[] =
    "\"ValidationError\":{\"title\":\"ValidationError\",\"type\":\"object\","
    "\"properties\":{\"loc\":{\"title\":\"Location\",\"type\":\"array\",\"items\":"
    "{\"anyOf\":[{\"type\":\"string\"},{\"type\":\"integer\"}]}},"
    "\"msg\":{\"title\":\"Message\",\"type\":\"string\"},"
    "\"type\":{\"title\":\"Error Type\",\"type\":\"string\"}},"
    "\"required\":[\"loc\",\"msg\",\"type\"]},"
    "\"HTTPValidationError\":{\"title\":\"HTTPValidationError\",\"type\":\"object\","
    "\"properties\":{\"detail\":{\"title\":\"Detail\",\"type\":\"array\",\"items\":"
    "{\"$ref\":\"#/components/schemas/ValidationError\"}}}},"
    "\"HTTPError\":{\"title\":\"HTTPError\",\"type\":\"object\",\"properties\":"
    "{\"detail\":{\"title\":\"Detail\",\"type\":\"string\"}},\"required\":[\"detail\"]}},"
    "\"responses\":{"
    "\"BadGateway\":" ERROR_RESPONSE("The worker died mid-request or answered badly") ","
    "\"Unavailable\":{\"description\":\"No live worker, a full queue or shutting down: "
    "retry after Retry-After seconds\",\"headers\":{\"Retry-After\":{\"schema\":"
    "{\"type\":\"integer\"}}},\"content\":{\"application/json\":{\"schema\":"
    "{\"$ref\":\"#/components/schemas/HTTPError\"}}}},"
    "\"Timeout\":" ERROR_RESPONSE("The request's deadline passed") "},"
    "\"securitySchemes\":{"
    "\"bearerAuth\":{\"type\":\"http\",\"scheme\":\"bearer\",\"bearerFormat\":\"JWT\"},"
    "\"apiKeyAuth\":{\"type\":\"apiKey\",\"in\":\"header\",\"name\":\"X-API-Key\"}}}";

// clang-format on

/* Appends to a buffer until the first failure, which it keeps: one check at the end
 * instead of one per piece. */
typedef struct writer {
    br_buf *out;          /* destination */
    int rc;               /* first error, or 0 */
    gw_models *models;    /* named models met so far, for components/schemas */
    uint8_t auth_default; /* br_auth_mode of routes that declare none */
} writer;

/* Appends what a contracts.h writer produces, keeping the first failure. */
static void keep(writer *w, int rc)
{
    if (w->rc == 0)
        w->rc = rc;
}

/* Drops a trailing comma the list writers leave. */
static void uncomma(writer *w)
{
    if (w->rc == 0 && w->out->len > 0 && w->out->data[w->out->len - 1] == ',')
        w->out->len--;
}

static void put(writer *w, const char *s, size_t n)
{
    if (w->rc == 0)
        w->rc = br_buf_append(w->out, s, n);
}

static void lit(writer *w, const char *s)
{
    put(w, s, strlen(s));
}

static void str(writer *w, const char *s, size_t n)
{
    if (w->rc == 0)
        w->rc = gw_json_append_string(w->out, s, n);
}

/* The OpenAPI field name of an HTTP method ("get"), or NULL when it has none. */
static const char *method_field(const char *method)
{
    static const char *const known[][2] = {
        {"GET", "get"},         {"PUT", "put"},   {"POST", "post"},   {"DELETE", "delete"},
        {"OPTIONS", "options"}, {"HEAD", "head"}, {"PATCH", "patch"}, {"TRACE", "trace"}};
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (strcmp(method, known[i][0]) == 0)
            return known[i][1];
    return NULL;
}

/* The parameters array: the declared ones (contracts.h), then every template
 * parameter left undeclared (OpenAPI wants each {name} of a path described), as a
 * string. */
static void parameters(writer *w, const gw_route_entry *e)
{
    lit(w, ",\"parameters\":[");
    if (w->rc == 0)
        keep(w, gw_contract_openapi_params(e->contract, w->out, w->models));
    for (const char *open = strchr(e->path, '{'); open; open = strchr(open + 1, '{')) {
        const char *close = strchr(open, '}');
        if (!close)
            break;
        size_t n = (size_t)(close - open - 1);
        if (gw_contract_declares_path(e->contract, open + 1, n))
            continue;
        lit(w, "{\"name\":");
        str(w, open + 1, n);
        lit(w, ",\"in\":\"path\",\"required\":true,\"schema\":{\"type\":\"string\"}},");
    }
    uncomma(w);
    lit(w, "]");
}

/* The responses object: the declared ones (a 200 when none is a success), then the
 * gateway's errors the route does not declare itself (401/403 on routes that take
 * credentials). */
static void responses(writer *w, const gw_route_entry *e)
{
    lit(w, ",\"responses\":{");
    if (w->rc == 0)
        keep(w, gw_contract_openapi_responses(e->contract, w->out, w->models));
    for (size_t i = 0; i < sizeof route_errors / sizeof route_errors[0]; i++) {
        if (gw_contract_declares_status(e->contract, route_errors[i].status))
            continue;
        lit(w, route_errors[i].json);
        lit(w, ",");
    }
    bool auth = e->policy.auth == BR_AUTH_REQUIRED || e->policy.auth == BR_AUTH_OPTIONAL;
    if (auth && !gw_contract_declares_status(e->contract, 401))
        lit(w, "\"401\":" ERROR_RESPONSE("Missing or invalid credentials (WWW-Authenticate)") ",");
    if (e->policy.auth == BR_AUTH_REQUIRED && !gw_contract_declares_status(e->contract, 403))
        lit(w, "\"403\":" ERROR_RESPONSE("The credentials lack a required scope") ",");
    uncomma(w);
    lit(w, "}");
}

/* "hello_get__hello__name_": the service, the method and the template with every
 * character but letters and digits replaced by '_' (FastAPI's scheme). */
static void operation_id(writer *w, const gw_route_entry *e)
{
    char id[GW_NAME_MAX + GW_METHOD_MAX + GW_TEMPLATE_MAX + 3];
    int n = snprintf(id, sizeof(id), "%s_%s_%s", e->service->name, e->method, e->path);
    if (n < 0 || (size_t)n >= sizeof(id))
        return;
    size_t skip = strlen(e->service->name) + 1; /* the service name stays as it is */
    for (size_t i = skip; i < (size_t)n; i++) {
        char c = id[i];
        if (c >= 'A' && c <= 'Z')
            id[i] = (char)(c - 'A' + 'a');
        else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
            id[i] = '_';
    }
    lit(w, ",\"operationId\":");
    str(w, id, (size_t)n);
}

/* A security requirement list for an auth mode: a bearer token with the scopes (a
 * space-separated list; NULL for none) or an API key; OPTIONAL adds the empty
 * requirement (anonymous calls allowed); NONE is the empty list. */
static void requirements(writer *w, uint8_t auth, const char *scopes)
{
    if (auth != BR_AUTH_REQUIRED && auth != BR_AUTH_OPTIONAL) {
        lit(w, "[]");
        return;
    }
    lit(w, "[{\"bearerAuth\":[");
    const char *p = scopes ? scopes : "";
    bool first = true;
    while (*p) {
        while (*p == ' ')
            p++;
        const char *s = p;
        while (*p && *p != ' ')
            p++;
        if (p > s) {
            if (!first)
                lit(w, ",");
            first = false;
            str(w, s, (size_t)(p - s));
        }
    }
    lit(w, "]},{\"apiKeyAuth\":[]}");
    if (auth == BR_AUTH_OPTIONAL)
        lit(w, ",{}");
    lit(w, "]");
}

/* The route's declared authentication (edge).  A route that declares none follows
 * --auth-default: the document's top-level security says it, unless the route names
 * scopes, which need a requirement of their own. */
static void security(writer *w, const gw_route_entry *e)
{
    uint8_t auth = e->policy.auth;
    if (auth == BR_AUTH_DEFAULT && e->policy.scopes && e->policy.scopes[0])
        auth = w->auth_default;
    if (auth == BR_AUTH_DEFAULT)
        return;
    lit(w, ",\"security\":");
    requirements(w, auth, e->policy.scopes);
}

static void operation(writer *w, const char *field, const gw_route_entry *e)
{
    char num[48]; /* the timeout member: 24 bytes and a uint32 */
    const gw_service *s = e->service;
    lit(w, "\"");
    lit(w, field);
    lit(w, "\":{\"tags\":[");
    str(w, s->name, strlen(s->name));
    lit(w, "]");
    if (e->summary[0]) {
        lit(w, ",\"summary\":");
        str(w, e->summary, strlen(e->summary));
    }
    operation_id(w, e);
    parameters(w, e);
    if (gw_contract_has_body(e->contract))
        keep(w, w->rc ? 0 : gw_contract_openapi_body(e->contract, w->out, w->models));
    else if (e->body == BR_BODY_RAW)
        lit(w, ",\"requestBody\":{\"description\":\"Passed to the worker as sent, with its "
               "content type\",\"content\":{\"*/*\":{\"schema\":{}}}}");
    else if (e->body == BR_BODY_MSGPACK)
        lit(w, ",\"requestBody\":{\"description\":\"JSON (converted to msgpack for the "
               "worker) or msgpack\",\"content\":{\"application/json\":{\"schema\":{}},"
               "\"application/msgpack\":{\"schema\":{}}}}");
    security(w, e);
    responses(w, e);
    lit(w, gw_service_live(s) > 0 ? ",\"x-barista-available\":true"
                                  : ",\"x-barista-available\":false");
    lit(w, ",\"x-barista-kind\":\"");
    lit(w, gw_kind_name(s->kind));
    lit(w, "\"");
    if (e->timeout_ms) {
        snprintf(num, sizeof(num), ",\"x-barista-timeout-ms\":%u", (unsigned)e->timeout_ms);
        lit(w, num);
    }
    lit(w, "}");
}

/* True when e is the first route with its template in the registry's order. */
static bool first_with_path(const gw_registry *reg, const gw_route_entry *e)
{
    for (size_t i = 0; i < gw_registry_nservices(reg); i++)
        for (const gw_route_entry *f = gw_registry_service(reg, i)->routes; f; f = f->next) {
            if (f == e)
                return true;
            if (strcmp(f->path, e->path) == 0)
                return false;
        }
    return true;
}

/* One path item: every route with e's template, whichever service announced it. */
static void path_item(writer *w, const gw_registry *reg, const gw_route_entry *e)
{
    bool first = true;
    str(w, e->path, strlen(e->path));
    lit(w, ":{");
    for (size_t i = 0; i < gw_registry_nservices(reg); i++)
        for (const gw_route_entry *f = gw_registry_service(reg, i)->routes; f; f = f->next) {
            const char *field = method_field(f->method);
            if (!field || strcmp(f->path, e->path) != 0)
                continue;
            if (!first)
                lit(w, ",");
            first = false;
            operation(w, field, f);
        }
    lit(w, "},");
}

static void tags(writer *w, const gw_registry *reg, bool with_jobs)
{
    char desc[96];
    lit(w, "\"tags\":[");
    for (size_t i = 0; reg && i < gw_registry_nservices(reg); i++) {
        const gw_service *s = gw_registry_service(reg, i);
        if (s->nroutes == 0)
            continue; /* runs tasks only: nothing of it is in the document */
        size_t live = gw_service_live(s);
        snprintf(desc, sizeof(desc), "%s service, %zu live worker%s", gw_kind_name(s->kind), live,
                 live == 1 ? "" : "s");
        lit(w, "{\"name\":");
        str(w, s->name, strlen(s->name));
        lit(w, ",\"description\":");
        str(w, desc, strlen(desc));
        lit(w, "},");
    }
    lit(w, "{\"name\":\"gateway\",\"description\":\"The gateway's own routes\"}");
    if (with_jobs)
        lit(w, ",{\"name\":\"jobs\",\"description\":\"Durable background jobs\"}");
    lit(w, "],");
}

int gw__openapi_render(const gw_registry *reg, bool with_jobs, uint8_t auth_default, br_buf *out)
{
    gw_models models = {0};
    writer w = {out, 0, &models, auth_default};
    lit(&w, "{\"openapi\":\"3.1.0\",\"info\":{\"title\":\"Barista\",\"version\":\"0.1.0\","
            "\"description\":\"The routes live workers announced, and the gateway's "
            "own.\"},");
    tags(&w, reg, with_jobs);
    lit(&w, "\"paths\":{");
    for (size_t i = 0; reg && i < gw_registry_nservices(reg); i++)
        for (const gw_route_entry *e = gw_registry_service(reg, i)->routes; e; e = e->next)
            if (first_with_path(reg, e))
                path_item(&w, reg, e);
    lit(&w, gateway_paths);
    if (with_jobs)
        lit(&w, jobs_paths);
    lit(&w, "},\"components\":{\"schemas\":{");
    if (w.rc == 0)
        keep(&w, gw_models_openapi(&models, out));
    lit(&w, components);
    if (auth_default == BR_AUTH_REQUIRED || auth_default == BR_AUTH_OPTIONAL) {
        lit(&w, ",\"security\":");
        requirements(&w, auth_default, NULL);
    }
    lit(&w, "}");
    return w.rc;
}
