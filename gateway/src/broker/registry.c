/*
 * registry.c - services, workers and announced routes (see registry.h).
 *
 * Workers and services live in two flat arrays: a gateway serves dozens of them, not
 * thousands, and a linear scan of a short array beats a hash map's bookkeeping here.
 * max_workers bounds the worker array; services are bounded by GW_MAX_SERVICES and
 * leave when the broker retires them.
 *
 * Route ownership is by service, and no two services may claim one request: a READY
 * whose route overlaps a route of another service - some path would match both, as
 * GET /hello/world and GET /hello/{name} do, or HEAD and GET of the same shape - is
 * refused, so that a newcomer can never outrank (shadow) a route that serves already.
 */
#include "registry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "routes.h"

struct gw_registry {
    gw_router *router;        /* where announced routes go (the caller's) */
    gw_handler_fn handler;    /* the handler every announced route gets */
    void *arg;                /* copied into every gw_route_entry */
    gw_worker **workers;      /* registered workers, any order */
    size_t nworkers;          /* entries in workers */
    size_t max_workers;       /* the named limit on nworkers (slots allocated) */
    gw_service **services;    /* every service ever announced, any order */
    size_t nservices;         /* entries in services */
    size_t services_cap;      /* slots allocated in services */
    uint64_t stream_body_cap; /* the most a streamed request body may hold, whatever a
                                 route declares */
    uint64_t removals;        /* workers removed so far (gw_registry_removals) */
};

void gw_registry_set_stream_body_cap(gw_registry *self, uint64_t cap)
{
    self->stream_body_cap = cap;
}

const char *gw_kind_name(unsigned kind)
{
    return kind == BR_KIND_CPU ? "cpu" : "io";
}

gw_registry *gw_registry_new(gw_router *router, gw_handler_fn handler, void *arg,
                             size_t max_workers)
{
    gw_registry *self = calloc(1, sizeof(*self));
    if (!self)
        return NULL;
    /* One slot more than the limit: a peer registering again is added beside its old
     * registration for a moment (gw_registry_add). */
    self->workers = calloc(max_workers + 1, sizeof(gw_worker *));
    if (!self->workers) {
        free(self);
        return NULL;
    }
    self->router = router;
    self->handler = handler;
    self->arg = arg;
    self->max_workers = max_workers;
    return self;
}

/* Frees a worker struct (it is unlinked already). */
static void worker_free(gw_worker *w)
{
    free(w->id);
    free(w->services);
    br_ws_batch_free(&w->batch);
    free(w);
}

static void route_entry_free(gw_route_entry *e)
{
    gw_contract_destroy(&e->contract);
    free(e);
}

/* Unlinks and frees every route of s whose `fresh` flag matches only_fresh (or all of
 * them when all is set), removing each from the router. */
static void service_drop_routes(gw_registry *self, gw_service *s, bool all)
{
    gw_route_entry **pp = &s->routes;
    while (*pp) {
        gw_route_entry *e = *pp;
        if (all || e->fresh) {
            *pp = e->next;
            gw_router_remove(self->router, e->method, e->path);
            route_entry_free(e);
            s->nroutes--;
        } else {
            pp = &e->next;
        }
    }
}

static void service_free(gw_service *s)
{
    free(s->name);
    free(s->workers);
    free(s);
}

void gw_registry_destroy(gw_registry **self_p)
{
    if (!self_p || !*self_p)
        return;
    gw_registry *self = *self_p;
    for (size_t i = 0; i < self->nworkers; i++)
        worker_free(self->workers[i]);
    for (size_t i = 0; i < self->nservices; i++) {
        service_drop_routes(self, self->services[i], true);
        service_free(self->services[i]);
    }
    free(self->workers);
    free(self->services);
    free(self);
    *self_p = NULL;
}

static gw_service *find_service(const gw_registry *self, br_str name)
{
    for (size_t i = 0; i < self->nservices; i++) {
        const char *n = self->services[i]->name;
        if (strlen(n) == name.len && memcmp(n, name.ptr, name.len) == 0)
            return self->services[i];
    }
    return NULL;
}

/* The entry registered for method + template (exact text), in any service. */
static gw_route_entry *find_route(const gw_registry *self, br_str method, br_str path)
{
    for (size_t i = 0; i < self->nservices; i++)
        for (gw_route_entry *e = self->services[i]->routes; e; e = e->next)
            if (br_str_eq(method, e->method) && br_str_eq(path, e->path))
                return e;
    return NULL;
}

/* True when s is 1..max bytes of printable ASCII without spaces. */
static bool name_ok(br_str s, size_t max)
{
    if (s.len == 0 || s.len > max)
        return false;
    for (uint32_t i = 0; i < s.len; i++)
        if (s.ptr[i] <= ' ' || s.ptr[i] > '~')
            return false;
    return true;
}

static bool method_ok(br_str m)
{
    if (m.len == 0 || m.len > GW_METHOD_MAX)
        return false;
    for (uint32_t i = 0; i < m.len; i++)
        if (m.ptr[i] < 'A' || m.ptr[i] > 'Z')
            return false;
    return true;
}

/* One segment of a route template: literal text, or a parameter "{name}" that
 * matches any non-empty segment. */
typedef struct tseg {
    const char *text; /* literal text (parameters: unused) */
    size_t len;       /* its bytes */
    bool param;       /* "{...}" */
} tseg;

/* Splits a template at '/' as the router does ("/" has no segment, "/a/" has "a" and
 * ""); -1 when it has more than GW_ROUTE_MAX_SEGMENTS (the router refuses those). */
static int split_template(const char *t, size_t len, tseg *out)
{
    int n = 0;
    size_t start = 1;
    if (len <= 1)
        return 0;
    for (size_t i = 1; i <= len; i++) {
        if (i < len && t[i] != '/')
            continue;
        if (n == GW_ROUTE_MAX_SEGMENTS)
            return -1;
        size_t seg = i - start;
        out[n].text = t + start;
        out[n].len = seg;
        out[n].param = seg >= 3 && t[start] == '{' && t[i - 1] == '}';
        n++;
        start = i + 1;
    }
    return n;
}

/* True when one request could match both templates: as many segments, and at each
 * place equal literals or a parameter facing a parameter or a non-empty literal. */
static bool templates_overlap(const char *a, size_t alen, const char *b, size_t blen)
{
    tseg x[GW_ROUTE_MAX_SEGMENTS], y[GW_ROUTE_MAX_SEGMENTS];
    int nx = split_template(a, alen, x), ny = split_template(b, blen, y);
    if (nx < 0 || ny < 0 || nx != ny)
        return false;
    for (int i = 0; i < nx; i++) {
        if (x[i].param && y[i].param)
            continue;
        if (x[i].param || y[i].param) {
            if ((x[i].param ? y[i].len : x[i].len) == 0)
                return false;
            continue;
        }
        if (x[i].len != y[i].len || memcmp(x[i].text, y[i].text, x[i].len) != 0)
            return false;
    }
    return true;
}

/* True when requests of one method can reach a route of the other: the same method,
 * or GET and HEAD (a HEAD request takes the GET route when there is no HEAD one). */
static bool methods_meet(br_str a, br_str b)
{
    if (a.len == b.len && memcmp(a.ptr, b.ptr, a.len) == 0)
        return true;
    return (br_str_eq(a, "GET") && br_str_eq(b, "HEAD")) ||
           (br_str_eq(a, "HEAD") && br_str_eq(b, "GET"));
}

/* True when routes a and b could take the same request. */
static bool routes_overlap(br_str am, br_str ap, br_str bm, br_str bp)
{
    return methods_meet(am, bm) && templates_overlap(ap.ptr, ap.len, bp.ptr, bp.len);
}

/* Refuses route rt of service `name` when it overlaps a route of another registered
 * service: BR_EVALUE with the reason, else 0. */
static int check_overlap_registered(const gw_registry *self, br_str name, const br_route *rt,
                                    char *reason, size_t cap)
{
    for (size_t i = 0; i < self->nservices; i++) {
        const gw_service *o = self->services[i];
        if (br_str_eq(name, o->name))
            continue;
        for (const gw_route_entry *e = o->routes; e; e = e->next) {
            br_str em = br_str_c(e->method), ep = br_str_c(e->path);
            if (!routes_overlap(rt->method, rt->path, em, ep))
                continue;
            if (br_str_eq(rt->method, e->method) && br_str_eq(rt->path, e->path))
                snprintf(reason, cap, "route %s %s is owned by service '%s'", e->method, e->path,
                         o->name);
            else
                snprintf(reason, cap, "route %.*s %.*s overlaps %s %s of service '%s'",
                         (int)rt->method.len, rt->method.ptr, (int)rt->path.len, rt->path.ptr,
                         e->method, e->path, o->name);
            return BR_EVALUE;
        }
    }
    return 0;
}

/* Refuses a READY whose own services overlap each other. */
static int check_overlap_within(const br_ready *r, char *reason, size_t cap)
{
    for (uint32_t i = 0; i < r->nservices; i++)
        for (uint32_t j = i + 1; j < r->nservices; j++) {
            const br_service *a = &r->services[i], *b = &r->services[j];
            if (a->name.len == b->name.len && memcmp(a->name.ptr, b->name.ptr, a->name.len) == 0)
                continue;
            for (uint32_t k = 0; k < a->nroutes; k++)
                for (uint32_t l = 0; l < b->nroutes; l++)
                    if (routes_overlap(a->routes[k].method, a->routes[k].path, b->routes[l].method,
                                       b->routes[l].path)) {
                        snprintf(reason, cap,
                                 "route %.*s %.*s of service '%.*s' overlaps %.*s "
                                 "%.*s of service '%.*s'",
                                 (int)a->routes[k].method.len, a->routes[k].method.ptr,
                                 (int)a->routes[k].path.len, a->routes[k].path.ptr,
                                 (int)a->name.len, a->name.ptr, (int)b->routes[l].method.len,
                                 b->routes[l].method.ptr, (int)b->routes[l].path.len,
                                 b->routes[l].path.ptr, (int)b->name.len, b->name.ptr);
                        return BR_EVALUE;
                    }
        }
    return 0;
}

/* Checks everything about a READY that does not need the router: kinds, names, route
 * ownership and overlaps, and room for its new services.  0, or BR_EVALUE / BR_EFULL
 * with reason set. */
static int check_ready(const gw_registry *self, const br_ready *r, char *reason, size_t cap)
{
    if (r->kind != BR_KIND_IO && r->kind != BR_KIND_CPU) {
        snprintf(reason, cap, "unknown worker kind %u", (unsigned)r->kind);
        return BR_EVALUE;
    }
    size_t unknown = 0;
    for (uint32_t i = 0; i < r->nservices; i++)
        unknown += find_service(self, r->services[i].name) == NULL;
    if (unknown > GW_MAX_SERVICES - self->nservices) {
        snprintf(reason, cap, "too many services (limit %d)", GW_MAX_SERVICES);
        return BR_EFULL;
    }
    for (uint32_t i = 0; i < r->nservices; i++) {
        const br_service *s = &r->services[i];
        if (!name_ok(s->name, GW_NAME_MAX)) {
            snprintf(reason, cap, "malformed service name");
            return BR_EVALUE;
        }
        if (s->kind != r->kind) {
            snprintf(reason, cap, "mixed kinds: service '%.*s' is %s in a %s worker",
                     (int)s->name.len, s->name.ptr, gw_kind_name(s->kind), gw_kind_name(r->kind));
            return BR_EVALUE;
        }
        const gw_service *known = find_service(self, s->name);
        if (known && known->kind != s->kind) {
            snprintf(reason, cap, "service '%s' is already registered as %s", known->name,
                     gw_kind_name(known->kind));
            return BR_EVALUE;
        }
        for (uint32_t j = 0; j < s->nroutes; j++) {
            const br_route *rt = &s->routes[j];
            if (!method_ok(rt->method) || !name_ok(rt->path, GW_TEMPLATE_MAX) ||
                rt->path.ptr[0] != '/' || rt->body > BR_BODY_MSGPACK) {
                snprintf(reason, cap, "malformed route in service '%.*s'", (int)s->name.len,
                         s->name.ptr);
                return BR_EVALUE;
            }
            if (gw_routes_reserved(rt->method, rt->path)) {
                snprintf(reason, cap, "route %.*s %.*s is reserved for the gateway",
                         (int)rt->method.len, rt->method.ptr, (int)rt->path.len, rt->path.ptr);
                return BR_EVALUE;
            }
            int rc = check_overlap_registered(self, s->name, rt, reason, cap);
            if (rc != 0)
                return rc;
        }
    }
    return check_overlap_within(r, reason, cap);
}

/* Copies a br_str into *cursor as a NUL-terminated string and advances the cursor. */
static const char *copy_str(char **cursor, br_str s)
{
    char *dst = *cursor;
    if (s.len)
        memcpy(dst, s.ptr, s.len);
    dst[s.len] = '\0';
    *cursor += s.len + 1;
    return dst;
}

/* A deep copy of a declared route in one allocation: the entry, its params array,
 * then every string. */
static gw_route_entry *route_entry_new(const br_route *r, const br_service *decl, gw_service *s,
                                       void *arg, uint64_t stream_cap)
{
    size_t size = sizeof(gw_route_entry) + r->nparams * sizeof(br_param);
    size += r->method.len + r->path.len + r->summary.len + r->scopes.len + 4;
    size += r->actor_type.len + r->actor_key.len + 2;
    const br_cors *c = decl->has_cors ? &decl->cors : NULL;
    if (c)
        size += c->origins.len + c->methods.len + c->headers.len + c->expose.len + 4;
    size += r->subprotocols.len + 1;
    for (uint32_t i = 0; i < r->nparams; i++)
        size += r->params[i].name.len + r->params[i].summary.len;
    gw_route_entry *e = calloc(1, size);
    if (!e)
        return NULL;
    e->params = (br_param *)(void *)(e + 1);
    char *cursor = (char *)(e->params + r->nparams);
    e->service = s;
    e->arg = arg;
    e->method = copy_str(&cursor, r->method);
    e->path = copy_str(&cursor, r->path);
    e->summary = copy_str(&cursor, r->summary);
    e->timeout_ms = r->timeout_ms;
    e->body = r->body;
    e->policy.auth = r->auth;
    e->policy.scopes = copy_str(&cursor, r->scopes);
    e->policy.service = s->name;
    e->policy.forward_token = r->forward_token;
    e->actor_type = copy_str(&cursor, r->actor_type);
    e->actor_key = copy_str(&cursor, r->actor_key);
    e->actor_idle_ms = r->actor_idle_ms;
    if (c) {
        /* The service's CORS, copied per route like its scopes: the route owns what the
         * router points at, whatever later workers of the service declare. */
        e->cors.origins = copy_str(&cursor, c->origins);
        e->cors.methods = copy_str(&cursor, c->methods);
        e->cors.headers = copy_str(&cursor, c->headers);
        e->cors.expose = copy_str(&cursor, c->expose);
        e->cors.credentials = c->credentials;
        e->cors.max_age_s = c->max_age_s;
        e->policy.cors = &e->cors;
    }
    e->websocket = r->websocket;
    e->subprotocols = copy_str(&cursor, r->subprotocols);
    if (r->stream_body && r->body == BR_BODY_RAW)
        e->policy.stream_body_max =
            r->body_max && r->body_max < stream_cap ? r->body_max : stream_cap;
    e->nparams = r->nparams;
    for (uint32_t i = 0; i < r->nparams; i++) {
        e->params[i] = r->params[i];
        /* Names and summaries are copied without a NUL: br_str carries the length. */
        e->params[i].name.ptr = cursor;
        memcpy(cursor, r->params[i].name.ptr, r->params[i].name.len);
        cursor += r->params[i].name.len;
        e->params[i].summary.ptr = cursor;
        if (r->params[i].summary.len)
            memcpy(cursor, r->params[i].summary.ptr, r->params[i].summary.len);
        cursor += r->params[i].summary.len;
    }
    return e;
}

/* Makes room for one more pointer in the array arr_p points at (a T ** for any object
 * type T; *cap slots, n used), doubling from `first`.  0 or BR_ENOMEM. */
static int grow_ptrs(void *arr_p, size_t n, size_t *cap, size_t first)
{
    void **arr;
    memcpy(&arr, arr_p, sizeof(arr));
    if (n < *cap)
        return 0;
    size_t want = *cap ? *cap * 2 : first;
    void **grown = realloc(arr, want * sizeof(*grown));
    if (!grown)
        return BR_ENOMEM;
    memcpy(arr_p, &grown, sizeof(grown));
    *cap = want;
    return 0;
}

/* Finds or creates (marked fresh) the service for a declaration. */
static gw_service *service_get(gw_registry *self, const br_service *decl)
{
    gw_service *s = find_service(self, decl->name);
    if (s)
        return s;
    if (grow_ptrs(&self->services, self->nservices, &self->services_cap, 16) != 0)
        return NULL;
    s = calloc(1, sizeof(*s));
    if (!s || !(s->name = malloc(decl->name.len + 1))) {
        free(s);
        return NULL;
    }
    memcpy(s->name, decl->name.ptr, decl->name.len);
    s->name[decl->name.len] = '\0';
    s->kind = decl->kind;
    s->fresh = true;
    gw_list_init(&s->queue);
    self->services[self->nservices++] = s;
    return s;
}

/* True when template `path` has the segment {name}. */
static bool template_has_param(br_str path, br_str name)
{
    for (uint32_t i = 0; i + name.len + 2 <= path.len; i++)
        if (path.ptr[i] == '{' && path.ptr[i + name.len + 1] == '}' &&
            memcmp(path.ptr + i + 1, name.ptr, name.len) == 0)
            return true;
    return false;
}

/* Adds the routes of decl that s lacks, to s and to the router. */
static int service_add_routes(gw_registry *self, gw_service *s, const br_service *decl,
                              char *reason, size_t cap)
{
    for (uint32_t j = 0; j < decl->nroutes; j++) {
        const br_route *rt = &decl->routes[j];
        const gw_route_entry *known = find_route(self, rt->method, rt->path);
        if (known && known->service == s)
            continue; /* a later worker of the service: the first declaration stands */
        if (known) {
            snprintf(reason, cap, "route %s %s is owned by service '%s'", known->method,
                     known->path, known->service->name);
            return BR_EVALUE;
        }
        if (rt->actor_type.len > 0 && !template_has_param(rt->path, rt->actor_key)) {
            snprintf(reason, cap, "actor route %.*s %.*s has no path parameter {%.*s}",
                     (int)rt->method.len, rt->method.ptr, (int)rt->path.len, rt->path.ptr,
                     (int)rt->actor_key.len, rt->actor_key.ptr);
            return BR_EVALUE;
        }
        gw_route_entry *e = route_entry_new(rt, decl, s, self->arg, self->stream_body_cap);
        if (!e)
            return BR_ENOMEM;
        char why[256];
        int rc = gw_contract_new(rt, &e->contract, why, sizeof why);
        if (rc != 0) {
            snprintf(reason, cap, "route %s %s: %s", e->method, e->path,
                     rc == BR_ENOMEM ? "out of memory" : why);
            free(e);
            return rc;
        }
        rc = gw_router_add(self->router, e->method, e->path, self->handler, e);
        if (rc == 0)
            rc = gw_router_set_policy(self->router, e->method, e->path, &e->policy);
        if (rc != 0) {
            snprintf(reason, cap, "route %s %s refused by the router: %s", e->method, e->path,
                     rc == BR_EFULL ? "it conflicts with an existing route" : br_strerror(rc));
            route_entry_free(e);
            return rc == BR_ENOMEM ? BR_ENOMEM : BR_EVALUE;
        }
        e->fresh = true;
        e->next = s->routes;
        s->routes = e;
        s->nroutes++;
    }
    return 0;
}

/* Undoes a failed registration: fresh routes leave the router, fresh services go. */
static void rollback(gw_registry *self)
{
    size_t kept = 0;
    for (size_t i = 0; i < self->nservices; i++) {
        gw_service *s = self->services[i];
        service_drop_routes(self, s, s->fresh);
        if (s->fresh)
            service_free(s);
        else
            self->services[kept++] = s;
    }
    self->nservices = kept;
}

/* Clears the fresh marks once a registration has succeeded. */
static void commit(gw_registry *self)
{
    for (size_t i = 0; i < self->nservices; i++) {
        self->services[i]->fresh = false;
        for (gw_route_entry *e = self->services[i]->routes; e; e = e->next)
            e->fresh = false;
    }
}

/* Appends w to s's worker array. */
static int service_link(gw_service *s, gw_worker *w)
{
    int rc = grow_ptrs(&s->workers, s->nworkers, &s->workers_cap, 4);
    if (rc != 0)
        return rc;
    s->workers[s->nworkers++] = w;
    s->empty_since = 0;
    return 0;
}

static void service_unlink(gw_service *s, const gw_worker *w)
{
    for (size_t i = 0; i < s->nworkers; i++) {
        if (s->workers[i] == w) {
            s->workers[i] = s->workers[--s->nworkers];
            return;
        }
    }
}

static gw_worker *worker_new(const void *ident, size_t ident_len, const br_ready *r, uint64_t now)
{
    gw_worker *w = calloc(1, sizeof(*w));
    if (!w)
        return NULL;
    w->id = malloc(r->worker_id.len + 1);
    w->services = calloc(r->nservices ? r->nservices : 1, sizeof(gw_service *));
    if (!w->id || !w->services) {
        worker_free(w);
        return NULL;
    }
    if (r->worker_id.len)
        memcpy(w->id, r->worker_id.ptr, r->worker_id.len);
    w->id[r->worker_id.len] = '\0';
    memcpy(w->ident, ident, ident_len);
    w->ident_len = ident_len;
    w->kind = r->kind;
    w->credit = r->capacity < GW_CREDIT_MAX ? r->capacity : GW_CREDIT_MAX;
    w->heartbeat_ms = r->heartbeat_ms < GW_HEARTBEAT_MAX ? r->heartbeat_ms : GW_HEARTBEAT_MAX;
    w->proto_version = BR_PROTO_VERSION_MIN; /* the broker sets the READY's version */
    w->last_recv = now;
    w->last_send = now;
    gw_list_init(&w->exchanges);
    gw_list_init(&w->outgoing);
    gw_list_init(&w->websockets);
    gw_list_init(&w->cancelled);
    gw_list_init(&w->actors);
    gw_list_init(&w->actors_waiting);
    return w;
}

int gw_registry_add(gw_registry *self, const void *ident, size_t ident_len, const br_ready *ready,
                    uint64_t now, gw_worker **out, char *reason, size_t reason_cap)
{
    *out = NULL;
    if (ident_len == 0 || ident_len > GW_IDENT_MAX) {
        snprintf(reason, reason_cap, "bad routing id");
        return BR_EVALUE;
    }
    if (ready->worker_id.len > GW_NAME_MAX) {
        snprintf(reason, reason_cap, "worker_id longer than %d bytes", GW_NAME_MAX);
        return BR_EVALUE;
    }
    /* A peer registering again is added beside its old registration, which the
     * caller removes at once: the two count as one. */
    size_t limit = self->max_workers + (gw_registry_find(self, ident, ident_len) ? 1 : 0);
    if (self->nworkers >= limit) {
        snprintf(reason, reason_cap, "too many workers (limit %zu)", self->max_workers);
        return BR_EFULL;
    }
    int rc = check_ready(self, ready, reason, reason_cap);
    if (rc != 0)
        return rc;
    gw_worker *w = worker_new(ident, ident_len, ready, now);
    if (!w)
        return BR_ENOMEM;
    for (uint32_t i = 0; i < ready->nservices && rc == 0; i++) {
        gw_service *s = service_get(self, &ready->services[i]);
        if (!s) {
            rc = BR_ENOMEM;
            break;
        }
        rc = service_add_routes(self, s, &ready->services[i], reason, reason_cap);
        /* A READY naming one service twice lists it once in the worker. */
        bool listed = false;
        for (size_t k = 0; k < w->nservices; k++)
            listed = listed || w->services[k] == s;
        if (!listed)
            w->services[w->nservices++] = s;
    }
    for (size_t k = 0; k < w->nservices && rc == 0; k++)
        rc = service_link(w->services[k], w);
    if (rc != 0) {
        for (size_t k = 0; k < w->nservices; k++)
            service_unlink(w->services[k], w);
        rollback(self);
        worker_free(w);
        return rc;
    }
    commit(self);
    self->workers[self->nworkers++] = w;
    *out = w;
    return 0;
}

gw_worker *gw_registry_find(const gw_registry *self, const void *ident, size_t ident_len)
{
    for (size_t i = 0; i < self->nworkers; i++) {
        gw_worker *w = self->workers[i];
        if (w->ident_len == ident_len && memcmp(w->ident, ident, ident_len) == 0)
            return w;
    }
    return NULL;
}

uint64_t gw_registry_removals(const gw_registry *self)
{
    return self->removals;
}

void gw_registry_remove(gw_registry *self, gw_worker *w, uint64_t now)
{
    self->removals++;
    for (size_t k = 0; k < w->nservices; k++) {
        service_unlink(w->services[k], w);
        if (w->services[k]->nworkers == 0)
            w->services[k]->empty_since = now ? now : 1;
    }
    for (size_t i = 0; i < self->nworkers; i++) {
        if (self->workers[i] == w) {
            self->workers[i] = self->workers[--self->nworkers];
            break;
        }
    }
    worker_free(w);
}

void gw_registry_retire(gw_registry *self, gw_service *s)
{
    for (size_t i = 0; i < self->nservices; i++) {
        if (self->services[i] == s) {
            self->services[i] = self->services[--self->nservices];
            break;
        }
    }
    service_drop_routes(self, s, true);
    service_free(s);
}

gw_worker *gw_registry_pick(const gw_service *s, size_t max_bytes)
{
    gw_worker *best = NULL;
    for (size_t i = 0; i < s->nworkers; i++) {
        gw_worker *w = s->workers[i];
        if (gw_worker_live(w) && w->credit > 0 && w->bytes < max_bytes &&
            (!best || w->credit > best->credit))
            best = w;
    }
    return best;
}

/* FNV-1a over bytes, continuing from h. */
static uint64_t fnv1a(uint64_t h, const void *data, size_t len)
{
    const uint8_t *p = data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

uint64_t gw_placement_score(const char *type, size_t type_len, const char *key, size_t key_len,
                            const char *worker)
{
    /* Lengths go in too, so that ("ab", "c") and ("a", "bc") differ. */
    uint64_t lens[2] = {type_len, key_len};
    uint64_t h = fnv1a(0xcbf29ce484222325ull, lens, sizeof(lens));
    h = fnv1a(h, type, type_len);
    h = fnv1a(h, key, key_len);
    h = fnv1a(h, worker, strlen(worker));
    /* FNV's low bits mix poorly for similar inputs: a splitmix64 finalizer spreads
     * every input bit over the score, which rendezvous hashing needs to be fair. */
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebull;
    h ^= h >> 31;
    return h;
}

gw_worker *gw_registry_place(const gw_service *s, const char *type, size_t type_len,
                             const char *key, size_t key_len)
{
    gw_worker *best = NULL;
    uint64_t best_score = 0;
    for (size_t i = 0; i < s->nworkers; i++) {
        gw_worker *w = s->workers[i];
        /* ACTOR_REQUEST exists from version 2 on: a version-1 worker gets no key. */
        if (!gw_worker_live(w) || w->proto_version < 2)
            continue;
        uint64_t score = gw_placement_score(type, type_len, key, key_len, w->id);
        /* Ties (astronomically rare) go to the smaller id, so the choice never
         * depends on the order of s->workers. */
        if (!best || score > best_score || (score == best_score && strcmp(w->id, best->id) < 0)) {
            best = w;
            best_score = score;
        }
    }
    return best;
}

size_t gw_service_live(const gw_service *s)
{
    size_t n = 0;
    for (size_t i = 0; i < s->nworkers; i++)
        n += gw_worker_live(s->workers[i]);
    return n;
}

bool gw_registry_ready(const gw_registry *self)
{
    bool any_live = false;
    for (size_t i = 0; i < self->nworkers; i++)
        any_live = any_live || gw_worker_live(self->workers[i]);
    if (!any_live)
        return false;
    for (size_t i = 0; i < self->nservices; i++)
        if (self->services[i]->nroutes > 0 && gw_service_live(self->services[i]) == 0)
            return false;
    return true;
}

size_t gw_registry_nworkers(const gw_registry *self)
{
    return self->nworkers;
}

gw_worker *gw_registry_worker(const gw_registry *self, size_t i)
{
    return i < self->nworkers ? self->workers[i] : NULL;
}

size_t gw_registry_nservices(const gw_registry *self)
{
    return self->nservices;
}

gw_service *gw_registry_service(const gw_registry *self, size_t i)
{
    return i < self->nservices ? self->services[i] : NULL;
}
