/*
 * params.c - query parsing and FastAPI-style validation of declared parameters.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "json.h"
#include "params.h"
#include "utf8.h"

/* Longest text parsed as a float; longer input is reported as not a number rather than
 * copied somewhere bigger (strtod needs a NUL-terminated copy). */
#define GW_PARAM_FLOAT_CHARS 128

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int gw_percent_decode(const char *src, size_t len, bool plus_is_space, char *dst, size_t cap,
                      size_t *outlen)
{
    size_t n = 0;
    *outlen = 0;
    for (size_t i = 0; i < len; i++) {
        char c = src[i];
        if (c == '%') {
            if (len - i < 3)
                return BR_EVALUE;
            int hi = hex_value(src[i + 1]), lo = hex_value(src[i + 2]);
            if (hi < 0 || lo < 0)
                return BR_EVALUE;
            c = (char)(hi << 4 | lo);
            i += 2;
        } else if (c == '+' && plus_is_space) {
            c = ' ';
        }
        if (c == '\0')
            return BR_EVALUE;
        if (n == cap)
            return BR_ELIMIT;
        dst[n++] = c;
    }
    if (!gw_utf8_valid(dst, n))
        return BR_EVALUE;
    *outlen = n;
    return 0;
}

int gw_query_parse(const char *query, size_t len, char *scratch, size_t cap, br_pair *out,
                   size_t max, size_t *npairs)
{
    *npairs = 0;
    if (len > UINT32_MAX)
        return BR_ELIMIT;
    size_t used = 0;
    size_t start = 0;
    while (start < len) {
        const char *amp = memchr(query + start, '&', len - start);
        size_t end = amp ? (size_t)(amp - query) : len;
        if (end > start) {
            if (*npairs == max)
                return BR_ELIMIT;
            const char *comp = query + start;
            const char *eq = memchr(comp, '=', end - start);
            size_t name_len = eq ? (size_t)(eq - comp) : end - start;
            size_t nlen, vlen = 0;
            int rc = gw_percent_decode(comp, name_len, true, scratch + used, cap - used, &nlen);
            if (rc == 0 && eq)
                rc = gw_percent_decode(eq + 1, end - start - name_len - 1, true,
                                       scratch + used + nlen, cap - used - nlen, &vlen);
            if (rc != 0)
                return rc;
            br_pair *p = &out[(*npairs)++];
            p->name.ptr = scratch + used;
            p->name.len = (uint32_t)nlen;
            p->value.ptr = scratch + used + nlen;
            p->value.len = (uint32_t)vlen;
            used += nlen + vlen;
        }
        start = end + 1;
    }
    return 0;
}

int gw_req_query_parse(gw_req *req, char *scratch, size_t cap, br_pair *out, size_t max,
                       size_t *npairs)
{
    int rc = gw_query_parse(req->query, req->query_len, scratch, cap, out, max, npairs);
    if (rc == BR_ELIMIT)
        gw_req_respond_detail(req, 400, "Too many query parameters");
    else if (rc != 0)
        gw_req_respond_detail(req, 400, "Malformed query string: bad percent-encoding");
    return rc;
}

/* ---------------------------------------------------------------------------------- */
/* Value parsing, pydantic's lax mode for strings as FastAPI applies it.               */

bool gw_param_int(br_str s, int64_t *v)
{
    size_t i = 0;
    bool neg = false;
    if (s.len > 0 && (s.ptr[0] == '-' || s.ptr[0] == '+'))
        neg = s.ptr[i++] == '-';
    if (i == s.len)
        return false;
    uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    uint64_t acc = 0;
    for (; i < s.len; i++) {
        unsigned d = (unsigned)(s.ptr[i] - '0');
        if (d > 9 || acc > (limit - d) / 10)
            return false;
        acc = acc * 10 + d;
    }
    *v = neg ? (int64_t)(0 - acc) : (int64_t)acc;
    return true;
}

/* A finite decimal number, the whole string: no hex forms, no inf/nan, no spaces. */
static bool parse_float(br_str s, double *v)
{
    char text[GW_PARAM_FLOAT_CHARS];
    if (s.len == 0 || s.len >= sizeof text)
        return false;
    char c = s.ptr[0];
    if (!(c == '-' || c == '+' || c == '.' || (c >= '0' && c <= '9')))
        return false;
    if (memchr(s.ptr, 'x', s.len) || memchr(s.ptr, 'X', s.len))
        return false;
    memcpy(text, s.ptr, s.len);
    text[s.len] = '\0';
    char *end;
    *v = strtod(text, &end);
    return end == text + s.len && isfinite(*v);
}

/* pydantic's boolean spellings, compared case-insensitively. */
static const char *const bool_true[] = {"1", "on", "t", "true", "y", "yes"};
static const char *const bool_false[] = {"0", "off", "f", "false", "n", "no"};

static bool in_words(br_str s, const char *const *words, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strlen(words[i]) == s.len && strncasecmp(words[i], s.ptr, s.len) == 0)
            return true;
    return false;
}

static bool parse_bool(br_str s)
{
    return in_words(s, bool_true, sizeof bool_true / sizeof bool_true[0]) ||
           in_words(s, bool_false, sizeof bool_false / sizeof bool_false[0]);
}

/* ---------------------------------------------------------------------------------- */
/* The 422 body.                                                                       */

/* One error being reported. */
typedef struct param_error {
    const char *type;  /* pydantic error type, e.g. "int_parsing" */
    const char *msg;   /* the human message, complete */
    const char *ctx;   /* ctx key ("ge", "min_length") or NULL for none */
    const char *bound; /* ctx value as JSON number text, when ctx is set */
} param_error;

static const char *const loc_names[] = {"path", "query", "header"};

static int append_c(br_buf *out, const char *s)
{
    return br_buf_append(out, s, strlen(s));
}

/* Appends one {"type":..,"loc":[..],"msg":..,"input":..[,"ctx":{..}]} entry. */
static int append_error(br_buf *out, const br_param *p, const br_pair *found, const param_error *e)
{
    int rc = append_c(out, "{\"type\":\"");
    if (rc == 0)
        rc = append_c(out, e->type);
    if (rc == 0)
        rc = append_c(out, "\",\"loc\":[\"");
    if (rc == 0)
        rc = append_c(out, p->in <= BR_IN_HEADER ? loc_names[p->in] : "unknown");
    if (rc == 0)
        rc = append_c(out, "\",");
    if (rc == 0)
        rc = gw_json_append_string(out, p->name.ptr, p->name.len);
    if (rc == 0)
        rc = append_c(out, "],\"msg\":");
    if (rc == 0)
        rc = gw_json_append_string(out, e->msg, strlen(e->msg));
    if (rc == 0)
        rc = append_c(out, ",\"input\":");
    if (rc == 0)
        rc = found ? gw_json_append_string(out, found->value.ptr, found->value.len)
                   : append_c(out, "null");
    if (rc == 0 && e->ctx) {
        rc = append_c(out, ",\"ctx\":{\"");
        if (rc == 0)
            rc = append_c(out, e->ctx);
        if (rc == 0)
            rc = append_c(out, "\":");
        if (rc == 0)
            rc = append_c(out, e->bound);
        if (rc == 0)
            rc = append_c(out, "}");
    }
    return rc ? rc : append_c(out, "}");
}

/* ---------------------------------------------------------------------------------- */
/* Validation.                                                                         */

static bool names_equal(br_str a, br_str b, bool any_case)
{
    if (a.len != b.len)
        return false;
    if (a.len == 0)
        return true;
    return any_case ? strncasecmp(a.ptr, b.ptr, a.len) == 0 : memcmp(a.ptr, b.ptr, a.len) == 0;
}

/* The first pair named like p in the list p->in selects, or NULL. */
static const br_pair *find_value(const br_param *p, const br_pair *path, size_t npath,
                                 const br_pair *query, size_t nquery, const br_pair *headers,
                                 size_t nheaders)
{
    const br_pair *list = p->in == BR_IN_PATH ? path : p->in == BR_IN_QUERY ? query : headers;
    size_t n = p->in == BR_IN_PATH ? npath : p->in == BR_IN_QUERY ? nquery : nheaders;
    if (p->in > BR_IN_HEADER)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (names_equal(list[i].name, p->name, p->in == BR_IN_HEADER))
            return &list[i];
    return NULL;
}

/* Checks value against [min, max]; fills e (messages in msg/bound) on a violation. */
static bool check_bounds(const br_param *p, double value, bool length, param_error *e, char *msg,
                         size_t msglen, char *bound)
{
    bool low = p->has_min && value < p->min;
    bool high = !low && p->has_max && value > p->max;
    if (!low && !high)
        return true;
    double limit = low ? p->min : p->max;
    gw_format_double(limit, bound, GW_DOUBLE_CHARS);
    if (length) {
        e->type = low ? "string_too_short" : "string_too_long";
        e->ctx = low ? "min_length" : "max_length";
        snprintf(msg, msglen, "String should have at %s %s character%s", low ? "least" : "most",
                 bound, limit == 1 ? "" : "s");
    } else {
        e->type = low ? "greater_than_equal" : "less_than_equal";
        e->ctx = low ? "ge" : "le";
        snprintf(msg, msglen, "Input should be %s than or equal to %s", low ? "greater" : "less",
                 bound);
    }
    e->msg = msg;
    e->bound = bound;
    return false;
}

/* True when the value is acceptable; otherwise describes the error in e. */
static bool check_value(const br_param *p, br_str v, param_error *e, char *msg, size_t msglen,
                        char *bound)
{
    int64_t i;
    double d;
    switch (p->type) {
    case BR_TYPE_STR:
        return check_bounds(p, (double)gw_utf8_count(v.ptr, v.len), true, e, msg, msglen, bound);
    case BR_TYPE_INT:
        if (gw_param_int(v, &i))
            return check_bounds(p, (double)i, false, e, msg, msglen, bound);
        e->type = "int_parsing";
        e->msg = "Input should be a valid integer, unable to parse string as an integer";
        return false;
    case BR_TYPE_FLOAT:
        if (parse_float(v, &d))
            return check_bounds(p, d, false, e, msg, msglen, bound);
        e->type = "float_parsing";
        e->msg = "Input should be a valid number, unable to parse string as a number";
        return false;
    case BR_TYPE_BOOL:
        if (parse_bool(v))
            return true;
        e->type = "bool_parsing";
        e->msg = "Input should be a valid boolean, unable to interpret input";
        return false;
    }
    return true; /* an unknown type has nothing to check */
}

int gw_params_validate(const br_param *decl, size_t ndecl, const br_pair *path, size_t npath,
                       const br_pair *query, size_t nquery, const br_pair *headers, size_t nheaders,
                       br_buf *out)
{
    size_t mark = out->len;
    size_t nerrors = 0;
    int rc = 0;
    for (size_t k = 0; k < ndecl && rc == 0; k++) {
        const br_param *p = &decl[k];
        const br_pair *found = find_value(p, path, npath, query, nquery, headers, nheaders);
        param_error e = {0};
        char msg[128], bound[GW_DOUBLE_CHARS];
        if (!found) {
            if (!p->required)
                continue;
            e.type = "missing";
            e.msg = "Field required";
        } else if (check_value(p, found->value, &e, msg, sizeof msg, bound)) {
            continue;
        }
        rc = append_c(out, nerrors++ == 0 ? "{\"detail\":[" : ",");
        if (rc == 0)
            rc = append_error(out, p, found, &e);
    }
    if (rc == 0 && nerrors > 0)
        rc = append_c(out, "]}");
    if (rc != 0) {
        out->len = mark;
        return rc;
    }
    return nerrors > 0 ? BR_EVALUE : 0;
}

int gw_req_params_validate(gw_req *req, const br_param *decl, size_t ndecl, const br_pair *path,
                           size_t npath, const br_pair *query, size_t nquery,
                           const br_pair *headers, size_t nheaders, size_t max)
{
    br_buf detail = {.max = max};
    int rc =
        gw_params_validate(decl, ndecl, path, npath, query, nquery, headers, nheaders, &detail);
    if (rc == BR_EVALUE)
        gw_req_respond(req, 422, NULL, 0, "application/json", detail.data, detail.len);
    else if (rc != 0) /* the list of errors did not fit */
        gw_req_respond_detail(req, 500, "Internal Server Error");
    br_buf_free(&detail);
    return rc;
}

/* ---------------------------------------------------------------------------------- */
/* A body that is not JSON.                                                            */

/* Appends the NUL-terminated pieces to out; 0 or the first error. */
static int append_all(br_buf *out, const char *const *pieces, size_t n)
{
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = br_buf_append(out, pieces[i], strlen(pieces[i]));
    return rc;
}

/* FastAPI's answer to a body that is not JSON: 422 json_invalid at the error's char
 * position.  `err` is the converter's reason, "Expecting value: line 1 column 5 (char
 * 4)": the position comes from "(char N)" and ctx.error is the text before ": line". */
int gw_req_respond_json_invalid(gw_req *req, const char *err)
{
    const char *pos = strstr(err, "(char ");
    char at[24];
    snprintf(at, sizeof(at), "%lu", pos ? strtoul(pos + 6, NULL, 10) : 0ul);
    const char *cut = strstr(err, ": line");
    br_buf body = {.max = GW_PARAMS_MAX_ERROR_BODY};
    const char *const head[] = {"{\"detail\":[{\"type\":\"json_invalid\",\"loc\":[\"body\",", at,
                                "],\"msg\":\"JSON decode error\",\"input\":{},\"ctx\":{\"error\":"};
    int rc;
    if (append_all(&body, head, 3) == 0 &&
        gw_json_append_string(&body, err, cut ? (size_t)(cut - err) : strlen(err)) == 0 &&
        br_buf_append(&body, "}}]}", 4) == 0)
        rc = gw_req_respond(req, 422, NULL, 0, "application/json", body.data, body.len);
    else
        rc = gw_req_respond_detail(req, 422, "JSON decode error");
    br_buf_free(&body);
    return rc;
}
