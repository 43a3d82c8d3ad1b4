/*
 * contract.c - a route's contract (contracts.h): its parameters, body and responses
 * compiled from READY, and the check every request passes before dispatch.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "contracts_int.h"

/* A declared parameter, compiled. */
typedef struct gw_cparam {
    char *name;        /* the name the worker reads it by */
    char *wire;        /* the name clients send: the alias, or name */
    size_t wire_len;   /* bytes in wire */
    size_t name_len;   /* bytes in name */
    uint8_t in;        /* br_param_in */
    bool required;     /* absent is `missing` */
    bool aliased;      /* wire differs from name */
    char *summary;     /* for the docs, maybe "" */
    gw_schema *schema; /* type and refinements */
} gw_cparam;

/* A declared response. */
typedef struct gw_cresponse {
    uint16_t status;   /* HTTP status */
    char *description; /* maybe "" */
    gw_schema *schema; /* body schema, or NULL */
} gw_cresponse;

struct gw_contract {
    gw_cparam *params;       /* in declaration order */
    uint32_t nparams;        /* entries in params */
    gw_schema *body;         /* body schema, or NULL */
    bool form;               /* forms accepted too */
    gw_cresponse *responses; /* declared responses */
    uint32_t nresponses;     /* entries in responses */
    bool has_list_alias;     /* a list parameter has an alias (fills per value) */
};

static char *dup_str(br_str s)
{
    char *p = malloc((size_t)s.len + 1);
    if (p) {
        if (s.len)
            memcpy(p, s.ptr, s.len);
        p[s.len] = '\0';
    }
    return p;
}

void gw_contract_destroy(gw_contract **self_p)
{
    if (!self_p || !*self_p)
        return;
    gw_contract *c = *self_p;
    for (uint32_t i = 0; i < c->nparams; i++) {
        free(c->params[i].name);
        free(c->params[i].wire);
        free(c->params[i].summary);
        gw__schema_free(c->params[i].schema);
    }
    free(c->params);
    gw__schema_free(c->body);
    for (uint32_t i = 0; i < c->nresponses; i++) {
        free(c->responses[i].description);
        gw__schema_free(c->responses[i].schema);
    }
    free(c->responses);
    free(c);
    *self_p = NULL;
}

/* A parameter's schema: its own, completed by the classic type and min/max. */
static int param_schema(const br_param *p, gw_schema **out, char *why, size_t why_len)
{
    static const uint8_t types[] = {BR_SCHEMA_STRING, BR_SCHEMA_INTEGER, BR_SCHEMA_NUMBER,
                                    BR_SCHEMA_BOOLEAN};
    gw_schema *s;
    if (p->schema.len) {
        int rc = gw__schema_compile(p->schema, &s, why, why_len);
        if (rc != 0)
            return rc;
    } else if (!(s = calloc(1, sizeof *s))) {
        return BR_ENOMEM;
    }
    if (s->type == BR_SCHEMA_ANY)
        s->type = p->type <= BR_TYPE_BOOL ? types[p->type] : BR_SCHEMA_STRING;
    gw_schema *scalar = s->type == BR_SCHEMA_ARRAY && s->items ? s->items : s;
    if (s->type == BR_SCHEMA_ARRAY && !s->items) {
        if (!(s->items = calloc(1, sizeof *s->items))) {
            gw__schema_free(s);
            return BR_ENOMEM;
        }
        scalar = s->items;
        scalar->type = BR_SCHEMA_STRING;
    }
    if (scalar->type == BR_SCHEMA_OBJECT || scalar->type == BR_SCHEMA_ARRAY) {
        gw__schema_free(s);
        snprintf(why, why_len, "parameter %.*s: a parameter is a scalar or a list of scalars",
                 (int)p->name.len, p->name.ptr);
        return BR_EVALUE;
    }
    bool text = scalar->type == BR_SCHEMA_STRING;
    if (p->has_min && !(text ? scalar->has_min_len : scalar->has_ge)) {
        if (text) {
            scalar->has_min_len = true;
            scalar->min_len = p->min < 0 ? 0 : (uint32_t)p->min;
        } else {
            scalar->has_ge = true;
            scalar->ge = p->min;
        }
    }
    if (p->has_max && !(text ? scalar->has_max_len : scalar->has_le)) {
        if (text) {
            scalar->has_max_len = true;
            scalar->max_len = p->max < 0 ? 0 : (uint32_t)p->max;
        } else {
            scalar->has_le = true;
            scalar->le = p->max;
        }
    }
    *out = s;
    return 0;
}

static int compile_params(gw_contract *c, const br_route *route, char *why, size_t why_len)
{
    if (route->nparams == 0)
        return 0;
    if (!(c->params = calloc(route->nparams, sizeof *c->params)))
        return BR_ENOMEM;
    for (uint32_t i = 0; i < route->nparams; i++) {
        const br_param *p = &route->params[i];
        gw_cparam *cp = &c->params[i];
        c->nparams++;
        br_str wire = p->alias.len ? p->alias : p->name;
        if (!(cp->name = dup_str(p->name)) || !(cp->wire = dup_str(wire)) ||
            !(cp->summary = dup_str(p->summary)))
            return BR_ENOMEM;
        cp->name_len = p->name.len;
        cp->wire_len = wire.len;
        cp->in = p->in;
        cp->required = p->required || p->in == BR_IN_PATH;
        cp->aliased = p->alias.len > 0 && !br_str_eq(p->name, cp->wire);
        char inner[200];
        int rc = param_schema(p, &cp->schema, inner, sizeof inner);
        if (rc != 0) {
            snprintf(why, why_len, "parameter %s: %s", cp->name, inner);
            return rc;
        }
        if (cp->aliased && cp->schema->type == BR_SCHEMA_ARRAY)
            c->has_list_alias = true;
    }
    return 0;
}

int gw_contract_new(const br_route *route, gw_contract **out, char *why, size_t why_len)
{
    *out = NULL;
    if (why_len)
        why[0] = '\0';
    gw_contract *c = calloc(1, sizeof *c);
    if (!c)
        return BR_ENOMEM;
    char inner[200] = "";
    int rc = compile_params(c, route, why, why_len);
    if (rc == 0 && route->body_schema.len && route->body != BR_BODY_MSGPACK) {
        snprintf(why, why_len, "a body schema needs body mode MSGPACK");
        rc = BR_EVALUE;
    }
    if (rc == 0 && route->body_schema.len) {
        rc = gw__schema_compile(route->body_schema, &c->body, inner, sizeof inner);
        if (rc != 0)
            snprintf(why, why_len, "body schema: %s", inner);
    }
    c->form = route->body_form && c->body;
    if (rc == 0 && route->nresponses) {
        if (!(c->responses = calloc(route->nresponses, sizeof *c->responses)))
            rc = BR_ENOMEM;
        for (uint32_t i = 0; rc == 0 && i < route->nresponses; i++) {
            const br_response *r = &route->responses[i];
            gw_cresponse *cr = &c->responses[i];
            c->nresponses++;
            cr->status = r->status;
            if (!(cr->description = dup_str(r->description)))
                rc = BR_ENOMEM;
            else if (r->schema.len &&
                     (rc = gw__schema_compile(r->schema, &cr->schema, inner, sizeof inner)) != 0)
                snprintf(why, why_len, "response %u: %s", (unsigned)r->status, inner);
        }
    }
    if (rc != 0) {
        gw_contract_destroy(&c);
        return rc == BR_ENOMEM ? rc : BR_EVALUE;
    }
    *out = c;
    return 0;
}

size_t gw_contract_max_fills(const gw_contract *c, size_t npairs)
{
    return c ? c->nparams + (c->has_list_alias ? npairs : 0) : 0;
}

bool gw_contract_has_body(const gw_contract *c)
{
    return c && c->body;
}

bool gw_contract_takes_form(const gw_contract *c)
{
    return c && c->form;
}

uint16_t gw_contract_success_status(const gw_contract *c)
{
    for (uint32_t i = 0; c && i < c->nresponses; i++)
        if (c->responses[i].status >= 200 && c->responses[i].status < 300)
            return c->responses[i].status;
    return 200;
}

bool gw_contract_declares_status(const gw_contract *c, uint16_t status)
{
    for (uint32_t i = 0; c && i < c->nresponses; i++)
        if (c->responses[i].status == status)
            return true;
    return false;
}

size_t gw__contract_nparams(const gw_contract *c)
{
    return c->nparams;
}

void gw__contract_param(const gw_contract *c, size_t i, gw_cparam_view *v)
{
    const gw_cparam *p = &c->params[i];
    *v = (gw_cparam_view){p->wire, p->in, p->required, p->summary, p->schema};
}

const gw_schema *gw__contract_body(const gw_contract *c)
{
    return c->body;
}

size_t gw__contract_nresponses(const gw_contract *c)
{
    return c->nresponses;
}

void gw__contract_response(const gw_contract *c, size_t i, uint16_t *status,
                           const char **description, const gw_schema **schema)
{
    *status = c->responses[i].status;
    *description = c->responses[i].description;
    *schema = c->responses[i].schema;
}

/* ---------------------------------------------------------------------------------- */
/* Checking a request.                                                                 */

static bool name_eq(br_str a, const char *b, size_t blen, bool any_case)
{
    if (a.len != blen)
        return false;
    return blen == 0 || (any_case ? strncasecmp(a.ptr, b, blen) == 0 : memcmp(a.ptr, b, blen) == 0);
}

/* The next cookie of a Cookie header value after *pos: "a=1; b=2". */
static bool next_cookie(br_str h, size_t *pos, br_pair *out)
{
    while (*pos < h.len) {
        size_t start = *pos;
        while (*pos < h.len && h.ptr[*pos] != ';')
            (*pos)++;
        size_t end = *pos;
        if (*pos < h.len)
            (*pos)++;
        while (start < end && (h.ptr[start] == ' ' || h.ptr[start] == '\t'))
            start++;
        while (end > start && (h.ptr[end - 1] == ' ' || h.ptr[end - 1] == '\t'))
            end--;
        const char *eq = memchr(h.ptr + start, '=', end - start);
        if (!eq || eq == h.ptr + start)
            continue;
        const char *v = eq + 1;
        size_t vlen = (size_t)(h.ptr + end - v);
        if (vlen >= 2 && v[0] == '"' && v[vlen - 1] == '"') {
            v++;
            vlen -= 2;
        }
        out->name = (br_str){h.ptr + start, (uint32_t)(eq - h.ptr - start)};
        out->value = (br_str){v, (uint32_t)vlen};
        return true;
    }
    return false;
}

/* The values a request gives for p: calls fn for each (all of them for a list, the
 * first otherwise) and returns how many there were. */
static size_t each_value(const gw_cparam *p, const gw_contract_req *r, bool all,
                         void (*fn)(void *arg, br_str v, size_t i), void *arg)
{
    size_t n = 0;
    const br_pair *list = p->in == BR_IN_PATH    ? r->path
                          : p->in == BR_IN_QUERY ? r->query
                                                 : r->headers;
    size_t count = p->in == BR_IN_PATH ? r->npath : p->in == BR_IN_QUERY ? r->nquery : r->nheaders;
    if (p->in == BR_IN_COOKIE) {
        for (size_t i = 0; i < r->nheaders; i++) {
            if (!name_eq(r->headers[i].name, "cookie", 6, true))
                continue;
            size_t pos = 0;
            br_pair ck;
            while (next_cookie(r->headers[i].value, &pos, &ck))
                if (name_eq(ck.name, p->wire, p->wire_len, false)) {
                    fn(arg, ck.value, n++);
                    if (!all)
                        return n;
                }
        }
        return n;
    }
    for (size_t i = 0; i < count; i++) {
        if (!name_eq(list[i].name, p->wire, p->wire_len, p->in == BR_IN_HEADER))
            continue;
        fn(arg, list[i].value, n++);
        if (!all)
            return n;
    }
    return n;
}

/* The state of checking one parameter. */
typedef struct pcheck {
    const gw_cparam *p; /* the parameter */
    gw_errs *e;         /* errors */
    gw_fill *fills;     /* where added pairs go */
    size_t *nfills;     /* entries used */
    size_t cap;         /* entries available */
    int rc;             /* BR_EFULL once the pattern budget ran out */
} pcheck;

static void add_fill(pcheck *pc, uint8_t in, br_str name, br_str value)
{
    if (*pc->nfills < pc->cap)
        pc->fills[(*pc->nfills)++] = (gw_fill){in, {name, value}};
}

static void check_one(void *arg, br_str v, size_t i)
{
    pcheck *pc = arg;
    const gw_cparam *p = pc->p;
    bool list = p->schema->type == BR_SCHEMA_ARRAY;
    if (list)
        gw__errs_push_index(pc->e, (uint32_t)i);
    if (pc->rc == 0)
        pc->rc = gw__validate_text(list ? p->schema->items : p->schema, v, pc->e);
    if (list)
        gw__errs_pop(pc->e);
    br_str name = {p->name, (uint32_t)p->name_len};
    if (p->aliased || p->in == BR_IN_COOKIE)
        add_fill(pc, p->in, name, v);
}

static int check_param(const gw_cparam *p, const gw_contract_req *r, gw_errs *e, gw_fill *fills,
                       size_t *nfills, size_t cap)
{
    static const char *const places[] = {"path", "query", "header", "cookie"};
    pcheck pc = {p, e, fills, nfills, cap, 0};
    const char *where = places[p->in <= BR_IN_COOKIE ? p->in : 1];
    gw__errs_push_key(e, where, strlen(where));
    gw__errs_push_key(e, p->wire, p->wire_len);
    bool list = p->schema->type == BR_SCHEMA_ARRAY;
    size_t n = each_value(p, r, list, check_one, &pc);
    if (n == 0 && p->required) {
        gw_input none = {GW_INPUT_NULL, NULL, 0};
        gw__errs_add(e, "missing", "Field required", &none, NULL);
    } else if (n == 0 && p->schema->def_text) {
        br_str name = {p->name, (uint32_t)p->name_len};
        add_fill(&pc, p->in, name, br_str_c(p->schema->def_text));
    } else if (list && (p->schema->has_min_len || p->schema->has_max_len)) {
        bool short_ = p->schema->has_min_len && n < p->schema->min_len;
        bool long_ = p->schema->has_max_len && n > p->schema->max_len;
        if (short_ || long_) {
            char msg[128], ctx[128];
            uint32_t bound = short_ ? p->schema->min_len : p->schema->max_len;
            snprintf(msg, sizeof msg, "List should have at %s %u item%s after validation, not %zu",
                     short_ ? "least" : "most", (unsigned)bound, bound == 1 ? "" : "s", n);
            snprintf(ctx, sizeof ctx, "\"field_type\":\"List\",\"%s\":%u,\"actual_length\":%zu",
                     short_ ? "min_length" : "max_length", (unsigned)bound, n);
            gw_input none = {GW_INPUT_NULL, NULL, 0};
            gw__errs_add(e, short_ ? "too_short" : "too_long", msg, &none, ctx);
        }
    }
    gw__errs_pop(e);
    gw__errs_pop(e);
    return pc.rc;
}

int gw_contract_check(const gw_contract *c, const gw_contract_req *r, br_buf *converted,
                      gw_fill *fills, size_t *nfills, br_buf *errors)
{
    gw_errs e;
    gw__errs_init(&e, errors);
    *nfills = 0;
    size_t cap = gw_contract_max_fills(c, r->nquery + r->nheaders);
    /* FastAPI's order: path, query, header and cookie parameters, then the body. */
    for (uint8_t in = BR_IN_PATH; in <= BR_IN_COOKIE; in++)
        for (uint32_t i = 0; i < c->nparams; i++)
            if (c->params[i].in == in &&
                check_param(&c->params[i], r, &e, fills, nfills, cap) != 0) {
                errors->len = e.mark;
                return BR_EFULL;
            }
    if (c->body) {
        gw__errs_push_key(&e, "body", 4);
        if (!r->has_body) {
            gw_input none = {GW_INPUT_NULL, NULL, 0};
            gw__errs_add(&e, "missing", "Field required", &none, NULL);
        } else {
            br_cursor cur;
            br_cursor_init(&cur, r->body.ptr, r->body.len);
            /* The converted body is about the input's size: one allocation up front. */
            int rc = converted ? br_buf_reserve(converted, (size_t)r->body.len + 256) : 0;
            if (rc == 0)
                rc = gw__validate(c->body, &cur, converted, &e);
            if (rc == 0 && br_cursor_left(&cur) != 0)
                rc = BR_ETRAILING;
            if (rc != 0) {
                errors->len = e.mark;
                return rc;
            }
        }
        gw__errs_pop(&e);
    }
    return gw__errs_finish(&e);
}

int gw_contract_check_reply(const gw_contract *c, uint16_t status, br_str body, br_buf *errors)
{
    const gw_schema *s = NULL;
    for (uint32_t i = 0; c && i < c->nresponses; i++)
        if (c->responses[i].status == status)
            s = c->responses[i].schema;
    if (!s)
        return 0;
    gw_errs e;
    gw__errs_init(&e, errors);
    gw__errs_push_key(&e, "response", 8);
    br_cursor cur;
    br_cursor_init(&cur, body.ptr, body.len);
    int rc = gw__validate(s, &cur, NULL, &e);
    if (rc != 0) {
        errors->len = e.mark;
        return BR_EVALUE;
    }
    return gw__errs_finish(&e);
}

/* ---------------------------------------------------------------------------------- */
/* Forms.                                                                              */

static void pack_be(br_buf *out, int *rc, uint8_t type, uint32_t n)
{
    uint8_t b[5] = {type, (uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
    if (*rc == 0)
        *rc = br_buf_append(out, b, 5);
}

static void pack_text(br_buf *out, int *rc, br_str s)
{
    pack_be(out, rc, 0xdb, s.len);
    if (*rc == 0)
        *rc = br_buf_append(out, s.ptr, s.len);
}

int gw_contract_form_to_msgpack(const gw_contract *c, const br_pair *pairs, size_t n, br_buf *out)
{
    size_t mark = out->len;
    int rc = 0;
    uint32_t count = 0;
    size_t header = out->len;
    pack_be(out, &rc, 0xdf, 0);
    for (size_t i = 0; i < n && rc == 0; i++) {
        bool later = false; /* a later pair with the same name wins (or joins a list) */
        for (size_t j = i + 1; j < n && !later; j++)
            later = pairs[j].name.len == pairs[i].name.len &&
                    memcmp(pairs[j].name.ptr, pairs[i].name.ptr, pairs[i].name.len) == 0;
        if (later)
            continue;
        int f = -1;
        for (uint32_t k = 0; c->body && k < c->body->nfields; k++)
            if (c->body->fields[k].name_len == pairs[i].name.len &&
                memcmp(c->body->fields[k].name, pairs[i].name.ptr, pairs[i].name.len) == 0)
                f = (int)k;
        pack_text(out, &rc, pairs[i].name);
        count++;
        if (f >= 0 && c->body->fields[f].schema->type == BR_SCHEMA_ARRAY) {
            uint32_t m = 0;
            for (size_t j = 0; j <= i; j++)
                m += pairs[j].name.len == pairs[i].name.len &&
                     memcmp(pairs[j].name.ptr, pairs[i].name.ptr, pairs[i].name.len) == 0;
            pack_be(out, &rc, 0xdd, m);
            for (size_t j = 0; j <= i; j++)
                if (pairs[j].name.len == pairs[i].name.len &&
                    memcmp(pairs[j].name.ptr, pairs[i].name.ptr, pairs[i].name.len) == 0)
                    pack_text(out, &rc, pairs[j].value);
        } else {
            pack_text(out, &rc, pairs[i].value);
        }
    }
    if (rc != 0) {
        out->len = mark;
        return rc;
    }
    uint8_t *h = out->data + header;
    h[1] = (uint8_t)(count >> 24);
    h[2] = (uint8_t)(count >> 16);
    h[3] = (uint8_t)(count >> 8);
    h[4] = (uint8_t)count;
    return 0;
}
