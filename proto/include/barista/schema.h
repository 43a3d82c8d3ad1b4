/*
 * barista/schema.h - typed contracts declared in C: the shape of a request body, a
 * parameter or a response, as static data (FastAPI's pydantic models).
 *
 * A schema is a tree of `static const` structs.  The worker announces it in READY
 * (PROTOCOL.md 5.1, "schema"); the gateway validates and converts every request
 * against it before dispatch, answers 422 in pydantic v2's shape when it breaks, and
 * documents it in /openapi.json.  A handler therefore only ever sees a body that
 * satisfies its schema, with integers as integers and defaults filled in.
 *
 *     static const char *const kinds[] = {"todo", "idea"};
 *     static const br_schema title_s = {.type = BR_SCHEMA_STRING, .min_length = 1,
 *                                       .max_length = 200};
 *     static const br_schema kind_s = {.type = BR_SCHEMA_STRING, BR_ENUM(kinds),
 *                                      .def = "todo"};
 *     static const br_schema prio_s = {.type = BR_SCHEMA_INTEGER, BR_GE(1), BR_LE(5),
 *                                      .def = "3"};
 *     static const br_field note_fields[] = {
 *         {"title", &title_s, true},
 *         {"kind", &kind_s, false},
 *         {"priority", &prio_s, false},
 *     };
 *     static const br_schema note_in = {.type = BR_SCHEMA_OBJECT, .title = "NoteIn",
 *                                       BR_FIELDS(note_fields),
 *                                       .extra = BR_EXTRA_FORBID};
 *
 * Everything here is plain data with no allocation; the runtime reads it and never
 * writes it, and it must outlive the worker.
 */
#ifndef BARISTA_SCHEMA_H
#define BARISTA_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* What a value must be.  JSON Schema's (and OpenAPI's) type names. */
typedef enum br_schema_type {
    BR_SCHEMA_ANY = 0,     /* any JSON value, passed on as it is */
    BR_SCHEMA_STRING = 1,  /* text: min/max_length count characters (code points) */
    BR_SCHEMA_INTEGER = 2, /* a signed 64-bit integer ("5" and 5.0 are converted) */
    BR_SCHEMA_NUMBER = 3,  /* a finite number (integers and numeric text accepted) */
    BR_SCHEMA_BOOLEAN = 4, /* true/false (also 0/1 and pydantic's words as text) */
    BR_SCHEMA_ARRAY = 5,   /* a list of `items`; min/max_length count items */
    BR_SCHEMA_OBJECT = 6   /* named fields (a model), or any map when it has none */
} br_schema_type;

/* A string format the gateway checks (pydantic's UUID, date, datetime, EmailStr). */
typedef enum br_schema_format {
    BR_FORMAT_NONE = 0,
    BR_FORMAT_UUID = 1,      /* 8-4-4-4-12 hex digits (or 32 without hyphens) */
    BR_FORMAT_DATE = 2,      /* YYYY-MM-DD */
    BR_FORMAT_DATE_TIME = 3, /* YYYY-MM-DDTHH:MM[:SS[.frac]][Z|±HH:MM] */
    BR_FORMAT_EMAIL = 4      /* local@domain.tld */
} br_schema_format;

/* What an object does with keys it does not declare (pydantic's `extra`). */
typedef enum br_schema_extra {
    BR_EXTRA_IGNORE = 0, /* dropped before the worker sees the body (pydantic's default) */
    BR_EXTRA_FORBID = 1, /* 422 extra_forbidden */
    BR_EXTRA_ALLOW = 2   /* passed on as they are */
} br_schema_extra;

typedef struct br_field br_field;
typedef struct br_schema br_schema;

/* A schema: the type and the constraints of one value.  Zero fields mean "no
 * constraint", so a designated initializer names only what applies. */
struct br_schema {
    br_schema_type type;            /* what the value must be */
    const char *title;              /* objects: the model's name, its entry in the OpenAPI
                                       document's components/schemas; NULL: described in line */
    const char *description;        /* one paragraph for the docs; may be NULL */
    br_schema_format format;        /* strings: a format to check; BR_FORMAT_NONE for none */
    uint32_t min_length;            /* strings: fewest characters; arrays: fewest items */
    uint32_t max_length;            /* strings: most characters; arrays: most items; 0: none */
    bool has_ge, has_gt;            /* ge / gt apply (numbers) */
    bool has_le, has_lt;            /* le / lt apply (numbers) */
    double ge, gt, le, lt;          /* bounds: >= ge, > gt, <= le, < lt */
    const char *pattern;            /* strings: a regular expression the value must
                                       contain a match of (anchor it: ^...$):
                                       literals, ., [...], ^, $, groups, |,
                                       * + ? {m,n}, \d \w \s (docs/contracts.md);
                                       at most BR_SCHEMA_MAX_PATTERN bytes; NULL
                                       for none */
    const char *const *enum_values; /* strings: the only values allowed; may be NULL */
    size_t nenum;                   /* entries in enum_values */
    const char *def;                /* the default when the value is absent, written as the
                                       parameter text would be ("10", "true", "todo"); for
                                       scalar types only; NULL: no default */
    const br_schema *items;         /* arrays: the schema of every item; NULL: any value */
    const br_field *fields;         /* objects: the declared fields, in order */
    size_t nfields;                 /* entries in fields */
    br_schema_extra extra;          /* objects with fields: what undeclared keys do */
};

/* A field of an object. */
struct br_field {
    const char *name;        /* the key in the JSON object */
    const br_schema *schema; /* its schema (never NULL) */
    bool required;           /* absent means 422 missing; an optional field absent from
                                the body gets its schema's `def` when it has one */
};

/* A response a route declares (FastAPI's status_code, response_model, responses). */
typedef struct br_response_spec {
    uint16_t status;         /* HTTP status, 100..599 */
    const char *description; /* one line for the docs; NULL: the status's reason phrase */
    const br_schema *schema; /* the body's schema; NULL: no body described */
} br_response_spec;

/* Designated-initializer helpers: {.type = BR_SCHEMA_INTEGER, BR_GE(1), BR_LE(5)}. */
#define BR_GE(x)      .has_ge = true, .ge = (x)
#define BR_GT(x)      .has_gt = true, .gt = (x)
#define BR_LE(x)      .has_le = true, .le = (x)
#define BR_LT(x)      .has_lt = true, .lt = (x)
#define BR_ENUM(arr)  .enum_values = (arr), .nenum = sizeof(arr) / sizeof((arr)[0])
#define BR_FIELDS(fs) .fields = (fs), .nfields = sizeof(fs) / sizeof((fs)[0])

/* Bounds every schema must respect; the gateway refuses a READY whose schemas pass
 * them (a schema from the wire is untrusted input). */
#define BR_SCHEMA_MAX_DEPTH   16    /* nesting of objects and arrays */
#define BR_SCHEMA_MAX_NODES   512   /* schemas in one tree, fields and items included */
#define BR_SCHEMA_MAX_FIELDS  128   /* fields of one object */
#define BR_SCHEMA_MAX_ENUM    128   /* values of one enum */
#define BR_SCHEMA_MAX_PATTERN 256   /* bytes of one pattern */
#define BR_SCHEMA_MAX_BYTES   65536 /* bytes of one encoded schema */

/* FastAPI's shape for an error: an object {"detail": string}, named "HTTPError", for a
 * route's declared error responses (404, 409, ...). */
extern const br_schema br_schema_http_error;

#ifdef __cplusplus
}
#endif

#endif /* BARISTA_SCHEMA_H */
