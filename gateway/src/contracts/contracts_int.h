/*
 * contracts_int.h - what the contracts subsystem's files share: the compiled schema
 * tree, the error list and the validator's state.
 */
#ifndef BARISTA_GW_CONTRACTS_INT_H
#define BARISTA_GW_CONTRACTS_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <barista/mpread.h>
#include <barista/proto.h>

#include "contracts.h"

typedef struct gw_field gw_field;
typedef struct gw_regex gw_regex;

/* One compiled schema: PROTOCOL.md 5.1.1's map, read once at READY and kept with the
 * route.  Every string is NUL-terminated and owned by the node. */
struct gw_schema {
    uint8_t type;          /* br_schema_type */
    uint8_t format;        /* br_schema_format */
    uint8_t extra;         /* br_schema_extra (objects) */
    bool has_ge, has_gt;   /* numeric bounds present */
    bool has_le, has_lt;   /* likewise */
    bool has_min_len;      /* minLength / minItems present */
    bool has_max_len;      /* maxLength / maxItems present */
    double ge, gt, le, lt; /* the bounds */
    uint32_t min_len;      /* fewest characters / items */
    uint32_t max_len;      /* most characters / items */
    char *title;           /* model name, or NULL */
    char *description;     /* or NULL */
    char *format_name;     /* the format as announced (also unknown ones), or NULL */
    char *pattern;         /* the pattern's text, or NULL */
    gw_regex *re;          /* the compiled pattern, or NULL */
    br_str *enums;         /* enum values (each NUL-terminated in the node) */
    uint32_t nenum;        /* entries in enums */
    uint8_t *def;          /* the default as msgpack bytes, or NULL */
    uint32_t def_len;      /* bytes in def */
    char *def_text;        /* the default as parameter text ("10", "true"), or NULL */
    gw_schema *items;      /* array items, or NULL for any */
    gw_field *fields;      /* object fields, in declaration order */
    uint32_t nfields;      /* entries in fields */
    const uint8_t **seen;  /* validation scratch: where each field's value is in the
                              object being validated (nfields entries) */
};

struct gw_field {
    char *name;        /* the key */
    uint32_t name_len; /* its length */
    gw_schema *schema; /* its schema */
    bool required;     /* absent is `missing` */
};

/* Compiles one schema from msgpack; *out is the caller's (gw__schema_free).  0, or
 * BR_EVALUE with a one-line reason in why. */
int gw__schema_compile(br_str mp, gw_schema **out, char *why, size_t why_len);

/* Frees a compiled schema tree; safe on NULL. */
void gw__schema_free(gw_schema *s);

/* ---------------------------------------------------------------------------------- */
/* regex.c: patterns matched in linear time (see the file comment).                    */

/* Work one request's pattern checks may do, in steps (one thread advanced by one
 * character): some tens of milliseconds of the loop at most.  Past it the request is
 * answered 413. */
#define GW_PATTERN_BUDGET (32u * 1024u * 1024u)

/* Compiles pattern[0..len).  0 and *out (free with gw__regex_free); BR_EVALUE with the
 * reason in why for syntax it does not support or a pattern too complex; BR_ENOMEM. */
int gw__regex_compile(const char *pattern, size_t len, gw_regex **out, char *why, size_t why_len);

void gw__regex_free(gw_regex *re);

/* Searches s[0..len) (UTF-8) for a match anywhere.  1 when found, 0 when not, BR_ELIMIT
 * when it would take more than *budget steps (*budget is decreased by what it took).
 * Not reentrant: the regex holds its own scratch (the loop runs one search at a
 * time). */
int gw__regex_search(gw_regex *re, const char *s, size_t len, uint64_t *budget);

/* ---------------------------------------------------------------------------------- */
/* Errors, written straight into the 422 body as they are found.                       */

/* One element of a loc path: a key or an index. */
typedef struct gw_loc {
    const char *key; /* NULL for an index */
    uint32_t len;    /* key length */
    uint32_t index;  /* the index when key is NULL */
} gw_loc;

/* The offending value an error shows as "input". */
typedef enum gw_input_kind {
    GW_INPUT_NULL = 0,    /* null: nothing was sent */
    GW_INPUT_MSGPACK = 1, /* one msgpack value, shown as JSON */
    GW_INPUT_TEXT = 2     /* text, shown as a JSON string */
} gw_input_kind;

typedef struct gw_input {
    gw_input_kind kind; /* how to read ptr */
    const void *ptr;    /* the bytes */
    size_t len;         /* their length */
} gw_input;

/* The loc path and the error list of one validation. */
typedef struct gw_errs {
    br_buf *out;                           /* {"detail":[ ... being written */
    size_t mark;                           /* out->len before the first error */
    size_t n;                              /* errors written */
    int rc;                                /* first write failure, or 0 */
    bool full;                             /* the list reached its bound */
    uint64_t budget;                       /* pattern-matching steps left */
    gw_loc loc[GW_CONTRACT_MAX_DEPTH + 4]; /* the current path */
    size_t depth;                          /* entries used in loc */
} gw_errs;

/* Starts an error list writing into out (nothing is written until the first error). */
void gw__errs_init(gw_errs *e, br_buf *out);

/* Pushes a key or an index on the loc path (silently ignored past the bound). */
void gw__errs_push_key(gw_errs *e, const char *key, size_t len);
void gw__errs_push_index(gw_errs *e, uint32_t index);
void gw__errs_pop(gw_errs *e);

/* Appends one error: type, the current loc, msg, input and ctx (a JSON object's
 * members without braces, or NULL). */
void gw__errs_add(gw_errs *e, const char *type, const char *msg, const gw_input *input,
                  const char *ctx);

/* Closes the list ("]}") when it has errors.  Returns 0 when there were none,
 * BR_EVALUE when out holds a complete 422 body, or the write failure (out->len reset). */
int gw__errs_finish(gw_errs *e);

/* ---------------------------------------------------------------------------------- */
/* Validation.                                                                         */

/* Validates the msgpack value at *in against s, consuming it, and writes the converted
 * value to out (when out is not NULL); errors go to e at e's current loc.  Returns 0,
 * or a negative br_err for input that is not msgpack at all (truncated, too deep) - a
 * 400's business, not a 422's - an output that outgrew its buffer, or BR_EFULL when
 * the request's pattern budget (GW_PATTERN_BUDGET) ran out. */
int gw__validate(const gw_schema *s, br_cursor *in, br_buf *out, gw_errs *e);

/* Validates parameter text against a scalar schema (lax: "5" is an int); errors go to
 * e at its current loc with the text as input.  Nothing is written.  0, or BR_EFULL
 * when the request's pattern budget ran out. */
int gw__validate_text(const gw_schema *s, br_str text, gw_errs *e);

/* Bytes of a format error's reason. */
#define GW_REASON_MAX 160

/* Checks text in a string format; NULL when it is fine, else the error's reason in
 * pydantic's words (static text, or formatted into buf, GW_REASON_MAX bytes), and
 * *type / *prefix the error type and message prefix. */
const char *gw__format_check(uint8_t format, const char *s, size_t len, char *buf,
                             const char **type, const char **prefix);

/* ---------------------------------------------------------------------------------- */
/* contract.c: the parts of a contract the OpenAPI writer needs.                       */

/* A declared parameter as the document shows it. */
typedef struct gw_cparam_view {
    const char *wire;        /* the name clients send */
    uint8_t in;              /* br_param_in */
    bool required;           /* must be sent */
    const char *summary;     /* maybe "" */
    const gw_schema *schema; /* its schema */
} gw_cparam_view;

size_t gw__contract_nparams(const gw_contract *c);
void gw__contract_param(const gw_contract *c, size_t i, gw_cparam_view *v);
const gw_schema *gw__contract_body(const gw_contract *c);
size_t gw__contract_nresponses(const gw_contract *c);
void gw__contract_response(const gw_contract *c, size_t i, uint16_t *status,
                           const char **description, const gw_schema **schema);

#endif /* BARISTA_GW_CONTRACTS_INT_H */
