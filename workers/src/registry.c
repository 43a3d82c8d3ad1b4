/*
 * registry.c - a worker's services (see registry.h).
 */
#include "registry.h"

#include <stdio.h>
#include <string.h>

static const char *kind_name(br_kind kind)
{
    return kind == BR_KIND_CPU ? "cpu" : "io";
}

/* True when two routes would claim the same requests. */
static bool same_route(const br_route_spec *a, const br_route_spec *b)
{
    return strcmp(a->method, b->method) == 0 && strcmp(a->path, b->path) == 0;
}

/* Checks routes of services[i] against themselves and every earlier service. */
static int check_routes(const br_service_spec *const *services, size_t i, char *why, size_t why_len)
{
    const br_service_spec *s = services[i];
    for (size_t r = 0; r < s->nroutes; r++) {
        const br_route_spec *route = &s->routes[r];
        if (!route->method || !route->path || (!route->handler && !route->websocket) ||
            route->path[0] != '/' ||
            (route->websocket &&
             (strcmp(route->method, "GET") != 0 || !route->websocket->on_message))) {
            snprintf(why, why_len,
                     "service %s: route %zu needs a method, a path starting "
                     "with '/' and a handler",
                     s->name, r);
            return BR_EINVAL;
        }
        for (size_t j = 0; j <= i; j++) {
            size_t end = j == i ? r : services[j]->nroutes;
            for (size_t k = 0; k < end; k++) {
                if (same_route(route, &services[j]->routes[k])) {
                    snprintf(why, why_len, "%s %s is served by both %s and %s", route->method,
                             route->path, services[j]->name, s->name);
                    return BR_EINVAL;
                }
            }
        }
    }
    return 0;
}

/* A br_str of a C string that may be NULL. */
static br_str opt_str(const char *s)
{
    return br_str_c(s ? s : "");
}

/* The wire form of a service's CORS spec (strings borrowed from the spec). */
static br_cors cors_of(const br_cors_spec *c)
{
    return (br_cors){opt_str(c->origins), opt_str(c->methods),
                     opt_str(c->headers), opt_str(c->expose),
                     c->credentials,      c->max_age_s ? c->max_age_s : BR_CORS_MAX_AGE_S};
}

int br_services_check(const br_service_spec *const *services, size_t n, char *why, size_t why_len)
{
    if (n == 0) {
        snprintf(why, why_len, "no service to run");
        return BR_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        const br_service_spec *s = services[i];
        if (!s->name || !*s->name || ((s->nroutes == 0 || !s->routes) && s->ntasks == 0)) {
            snprintf(why, why_len, "service %zu needs a name and a route or a task", i);
            return BR_EINVAL;
        }
        if (s->kind != BR_KIND_IO && s->kind != BR_KIND_CPU) {
            snprintf(why, why_len, "service %s has an unknown kind", s->name);
            return BR_EINVAL;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(services[j]->name, s->name) == 0) {
                snprintf(why, why_len, "service %s is listed twice", s->name);
                return BR_EINVAL;
            }
            if (services[j]->kind != s->kind) {
                snprintf(why, why_len,
                         "cannot host %s (%s) and %s (%s) in one process: "
                         "a worker runs io services or cpu services, not both",
                         services[j]->name, kind_name(services[j]->kind), s->name,
                         kind_name(s->kind));
                return BR_EINVAL;
            }
        }
        if (s->cors) {
            br_cors c = cors_of(s->cors);
            const char *bad = br_cors_check(&c);
            if (bad) {
                snprintf(why, why_len, "service %s: %s", s->name, bad);
                return BR_EINVAL;
            }
        }
        int rc = check_routes(services, i, why, why_len);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Encodes a declared schema into the arena for READY.  0, or BR_EINVAL (the
 * declaration breaks barista/schema.h's rules) or BR_ENOMEM. */
static int describe_schema(br__arena *a, const br_schema *schema, br_str *out)
{
    *out = (br_str){0};
    if (!schema)
        return 0;
    br_buf buf = {.max = BR_SCHEMA_MAX_BYTES};
    int rc = br_schema_encode(schema, &buf);
    if (rc == 0) {
        char *copy = br__arena_alloc(a, buf.len);
        if (copy) {
            memcpy(copy, buf.data, buf.len);
            *out = (br_str){copy, (uint32_t)buf.len};
        } else {
            rc = BR_ENOMEM;
        }
    }
    br_buf_free(&buf);
    return rc == BR_ELIMIT ? BR_EINVAL : rc;
}

static int describe_param(br__arena *a, br_param *p, const br_param_spec *spec)
{
    memset(p, 0, sizeof(*p));
    p->name = opt_str(spec->name);
    p->in = (uint8_t)spec->in;
    p->type = (uint8_t)spec->type;
    p->required = spec->required;
    p->has_min = spec->has_min;
    p->has_max = spec->has_max;
    p->min = spec->min;
    p->max = spec->max;
    p->summary = opt_str(spec->summary);
    p->alias = opt_str(spec->alias);
    return describe_schema(a, spec->schema, &p->schema);
}

static int describe_route(br__arena *a, br_route *r, const br_route_spec *spec)
{
    memset(r, 0, sizeof(*r));
    r->method = br_str_c(spec->method);
    r->path = br_str_c(spec->path);
    r->timeout_ms = spec->timeout_ms;
    r->body = (uint8_t)spec->body;
    r->summary = opt_str(spec->summary);
    r->auth = (uint8_t)spec->auth;
    r->scopes = opt_str(spec->scopes);
    r->forward_token = spec->forward_token;
    r->nparams = (uint32_t)spec->nparams;
    if (spec->body_schema && spec->body != BR_BODY_MSGPACK)
        return BR_EINVAL; /* the gateway validates and converts MSGPACK bodies only */
    int rc = describe_schema(a, spec->body_schema, &r->body_schema);
    if (rc != 0)
        return rc;
    r->body_form = spec->body_form;
    if (spec->actor) {
        if (!spec->actor->type || !spec->actor->type[0] || !spec->actor->key_param ||
            !spec->actor->key_param[0])
            return BR_EINVAL;
        r->actor_type = br_str_c(spec->actor->type);
        r->actor_key = br_str_c(spec->actor->key_param);
        r->actor_idle_ms = spec->actor->idle_ms;
        r->actor_reentrant = spec->actor->reentrant;
    }
    if (spec->websocket) {
        r->websocket = true;
        r->subprotocols = opt_str(spec->websocket->subprotocols);
    }
    r->stream_body = spec->stream_body;
    r->body_max = spec->body_max;
    if (spec->nresponses > 0) {
        if (spec->nresponses > BR_MAX_RESPONSES || !spec->responses)
            return BR_EINVAL;
        r->responses = br__arena_alloc(a, spec->nresponses * sizeof(*r->responses));
        if (!r->responses)
            return BR_ENOMEM;
        r->nresponses = (uint32_t)spec->nresponses;
        for (size_t i = 0; i < spec->nresponses; i++) {
            const br_response_spec *rs = &spec->responses[i];
            if (rs->status < 100 || rs->status > 599)
                return BR_EINVAL;
            r->responses[i].status = rs->status;
            r->responses[i].description = opt_str(rs->description);
            rc = describe_schema(a, rs->schema, &r->responses[i].schema);
            if (rc != 0)
                return rc;
        }
    }
    if (spec->nparams == 0)
        return 0;
    r->params = br__arena_alloc(a, spec->nparams * sizeof(*r->params));
    if (!r->params)
        return BR_ENOMEM;
    for (size_t i = 0; i < spec->nparams; i++) {
        rc = describe_param(a, &r->params[i], &spec->params[i]);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int br__registry_init(br__registry *reg, const br_service_spec *const *services, size_t n,
                      char *why, size_t why_len)
{
    memset(reg, 0, sizeof(*reg));
    int rc = br_services_check(services, n, why, why_len);
    if (rc != 0)
        return rc;
    reg->nservices = n;
    reg->kind = services[0]->kind;
    br__arena_init(&reg->arena, NULL, 0, BR_REGISTRY_MAX_BYTES);
    /* The caller's array may be short-lived; the specs it points to may not. */
    const br_service_spec **copy = br__arena_alloc(&reg->arena, n * sizeof(*copy));
    reg->wire = br__arena_alloc(&reg->arena, n * sizeof(*reg->wire));
    if (!copy || !reg->wire)
        goto nomem;
    memcpy(copy, services, n * sizeof(*copy));
    reg->services = copy;
    for (size_t i = 0; i < n; i++) {
        const br_service_spec *s = services[i];
        br_service *w = &reg->wire[i];
        w->name = br_str_c(s->name);
        w->kind = (uint8_t)s->kind;
        w->nroutes = (uint32_t)s->nroutes;
        w->routes = NULL; /* a service may only run tasks */
        w->has_cors = s->cors != NULL;
        w->cors = s->cors ? cors_of(s->cors) : (br_cors){.credentials = false};
        if (s->nroutes > 0 &&
            !(w->routes = br__arena_alloc(&reg->arena, s->nroutes * sizeof(*w->routes))))
            goto nomem;
        for (size_t r = 0; r < s->nroutes; r++) {
            rc = describe_route(&reg->arena, &w->routes[r], &s->routes[r]);
            if (rc == BR_EINVAL) {
                snprintf(why, why_len,
                         "service %s: %s %s declares a schema or a response that breaks "
                         "barista/schema.h's rules",
                         s->name, s->routes[r].method, s->routes[r].path);
                br__registry_release(reg);
                return rc;
            }
            if (rc != 0)
                goto nomem;
        }
    }
    return 0;
nomem:
    snprintf(why, why_len, "out of memory describing the services");
    br__registry_release(reg);
    return BR_ENOMEM;
}

void br__registry_release(br__registry *reg)
{
    br__arena_release(&reg->arena);
    reg->wire = NULL;
}

const br_route_spec *br__registry_route(const br__registry *reg, br_str service, br_str method,
                                        br_str route, size_t *svc)
{
    for (size_t i = 0; i < reg->nservices; i++) {
        const br_service_spec *s = reg->services[i];
        if (!br_str_eq(service, s->name))
            continue;
        for (size_t r = 0; r < s->nroutes; r++) {
            if (br_str_eq(method, s->routes[r].method) && br_str_eq(route, s->routes[r].path)) {
                if (svc)
                    *svc = i;
                return &s->routes[r];
            }
        }
    }
    /* HTTP serves HEAD wherever it serves GET; the gateway drops the body. */
    if (br_str_eq(method, "HEAD"))
        return br__registry_route(reg, service, br_str_c("GET"), route, svc);
    return NULL;
}

const br_route_spec *br__registry_actor_route(const br__registry *reg, br_str service, br_str type,
                                              size_t *svc)
{
    for (size_t i = 0; i < reg->nservices; i++) {
        const br_service_spec *s = reg->services[i];
        if (!br_str_eq(service, s->name))
            continue;
        for (size_t r = 0; r < s->nroutes; r++)
            if (s->routes[r].actor && br_str_eq(type, s->routes[r].actor->type)) {
                if (svc)
                    *svc = i;
                return &s->routes[r];
            }
    }
    return NULL;
}
