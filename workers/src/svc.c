/*
 * svc.c - services at run time: their data, their init and fini hooks, and the options
 * they declare (see barista/worker.h, "A service at run time", and svc.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "worker_int.h"

/* ---------------------------------------------------------------------------------- */
/* Checking an option's value.                                                         */

int br__option_check(const br_option_spec *o, const char *value, char *why, size_t why_len)
{
    if (o->type == BR_TYPE_INT || o->type == BR_TYPE_FLOAT) {
        double v;
        bool ok;
        if (o->type == BR_TYPE_INT) {
            int64_t i;
            ok = br_param_parse_int(br_str_c(value), &i) == 0;
            v = (double)i;
        } else {
            ok = br_param_parse_float(br_str_c(value), &v) == 0;
        }
        if (!ok || (o->has_min && v < o->min) || (o->has_max && v > o->max)) {
            const char *what = o->type == BR_TYPE_INT ? "an integer" : "a number";
            if (o->has_min && o->has_max)
                snprintf(why, why_len, "want %s from %g to %g", what, o->min, o->max);
            else if (o->has_min)
                snprintf(why, why_len, "want %s of at least %g", what, o->min);
            else if (o->has_max)
                snprintf(why, why_len, "want %s of at most %g", what, o->max);
            else
                snprintf(why, why_len, "want %s", what);
            return BR_EVALUE;
        }
    } else if (o->type == BR_TYPE_BOOL) {
        bool b;
        if (br_param_parse_bool(br_str_c(value), &b) != 0) {
            snprintf(why, why_len, "want true or false");
            return BR_EVALUE;
        }
    }
    const char *reason = o->check ? o->check(value) : NULL;
    if (reason) {
        snprintf(why, why_len, "%s", reason);
        return BR_EVALUE;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------- */
/* The worker's services and options.                                                  */

static br__option *option_find(const br_worker *w, const char *name)
{
    for (size_t i = 0; i < w->noptions; i++) {
        if (strcmp(w->options[i].spec->name, name) == 0)
            return &w->options[i];
    }
    return NULL;
}

static int option_store(br__option *opt, const char *value)
{
    char *copy = NULL;
    if (value) {
        size_t n = strlen(value) + 1;
        if (!(copy = malloc(n)))
            return BR_ENOMEM;
        memcpy(copy, value, n);
    }
    free(opt->value);
    opt->value = copy;
    return 0;
}

int br__svcs_init(br_worker *w, char *why, size_t why_len)
{
    size_t n = w->reg.nservices, nopts = 0;
    w->svcs = calloc(n, sizeof(*w->svcs));
    for (size_t i = 0; i < n; i++)
        nopts += w->reg.services[i]->noptions;
    w->options = nopts ? calloc(nopts, sizeof(*w->options)) : NULL;
    if (!w->svcs || (nopts && !w->options)) {
        snprintf(why, why_len, "out of memory");
        return BR_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        const br_service_spec *s = w->reg.services[i];
        w->svcs[i].spec = s;
        w->svcs[i].worker = w;
        w->svcs[i].data = s->data;
        br__arena_init(&w->svcs[i].memory, NULL, 0, BR_SVC_MEMORY_MAX);
        if (s->data_size && !(w->svcs[i].data = br_svc_alloc(&w->svcs[i], s->data_size))) {
            snprintf(why, why_len, "service %s: no memory for its %zu bytes of data", s->name,
                     s->data_size);
            return BR_ENOMEM;
        }
        for (size_t k = 0; k < s->noptions; k++) {
            const br_option_spec *o = &s->options[k];
            if (!o->name || !*o->name) {
                snprintf(why, why_len, "service %s: option %zu has no name", s->name, k);
                return BR_EINVAL;
            }
            if (option_find(w, o->name))
                continue; /* declared by an earlier service too: one shared value */
            br__option *opt = &w->options[w->noptions++];
            opt->spec = o;
            const char *env = o->env ? getenv(o->env) : NULL;
            const char *value = env && *env ? env : o->def;
            char reason[256];
            if (value && br__option_check(o, value, reason, sizeof(reason)) != 0) {
                snprintf(why, why_len, "bad value for %s: %s (%s)", env && *env ? o->env : o->name,
                         value, reason);
                return BR_EVALUE;
            }
            if (option_store(opt, value) != 0) {
                snprintf(why, why_len, "out of memory");
                return BR_ENOMEM;
            }
        }
    }
    return 0;
}

void br__svcs_release(br_worker *w)
{
    for (size_t i = 0; i < w->noptions; i++)
        free(w->options[i].value);
    free(w->options);
    w->options = NULL;
    w->noptions = 0;
    for (size_t i = 0; w->svcs && i < w->reg.nservices; i++)
        br__arena_release(&w->svcs[i].memory);
    free(w->svcs);
    w->svcs = NULL;
}

int br_worker_set_option(br_worker *w, const char *name, const char *value, char *why,
                         size_t why_len)
{
    char reason[256];
    br__option *opt = option_find(w, name);
    if (!opt) {
        if (why)
            snprintf(why, why_len, "no hosted service has an option %s", name);
        return BR_ENOTFOUND;
    }
    if (value && br__option_check(opt->spec, value, reason, sizeof(reason)) != 0) {
        if (why)
            snprintf(why, why_len, "bad value for --%s: %s (%s)", name, value, reason);
        return BR_EVALUE;
    }
    return option_store(opt, value);
}

/* ---------------------------------------------------------------------------------- */
/* Life cycle.                                                                         */

int br__svcs_start(br_worker *w)
{
    for (size_t i = 0; i < w->reg.nservices; i++) {
        br_svc *svc = &w->svcs[i];
        if (!svc->spec->init) {
            svc->ready = true;
            continue;
        }
        svc->why[0] = '\0';
        int rc = svc->spec->init(svc);
        if (rc != 0) {
            br__log("service %s: init failed: %s", svc->spec->name,
                    svc->why[0] ? svc->why : "(no reason given)");
            br__svcs_stop(w);
            return BR_EINVAL;
        }
        svc->ready = true;
    }
    return 0;
}

void br__svcs_stop(br_worker *w)
{
    for (size_t i = w->reg.nservices; i-- > 0;) {
        br_svc *svc = &w->svcs[i];
        if (!svc->ready)
            continue;
        svc->ready = false;
        if (svc->spec->fini)
            svc->spec->fini(svc);
    }
}

/* ---------------------------------------------------------------------------------- */
/* What a service sees.                                                                */

const char *br_svc_name(const br_svc *svc)
{
    return svc->spec->name;
}

void *br_svc_data(const br_svc *svc)
{
    return svc->data;
}

void br_svc_set_data(br_svc *svc, void *data)
{
    svc->data = data;
}

uv_loop_t *br_svc_loop(const br_svc *svc)
{
    return &svc->worker->loop;
}

void *br_svc_alloc(br_svc *svc, size_t n)
{
    void *p = br__arena_alloc(&svc->memory, n);
    if (p)
        memset(p, 0, n);
    return p;
}

br_str br_svc_copy(br_svc *svc, br_str bytes)
{
    char *p = br_svc_alloc(svc, bytes.len);
    if (!p)
        return (br_str){"", 0};
    if (bytes.len)
        memcpy(p, bytes.ptr, bytes.len);
    return (br_str){p, bytes.len};
}

const char *br_svc_option(const br_svc *svc, const char *name)
{
    const br_service_spec *s = svc->spec;
    for (size_t k = 0; k < s->noptions; k++) {
        if (strcmp(s->options[k].name, name) == 0) {
            const br__option *opt = option_find(svc->worker, name);
            return opt ? opt->value : NULL;
        }
    }
    return NULL;
}

int br_svc_option_int(const br_svc *svc, const char *name, int64_t *out)
{
    const char *v = br_svc_option(svc, name);
    if (!v)
        return BR_ENOTFOUND;
    return br_param_parse_int(br_str_c(v), out);
}

int br_svc_fail(br_svc *svc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(svc->why, sizeof(svc->why), fmt, ap);
    va_end(ap);
    return -1;
}
