/*
 * barista/types.h - the vocabulary every Barista header shares: the project's error
 * codes, byte strings, name/value pairs, and the small enums a service declaration and
 * the wire protocol both use (the kind of a service, where a parameter is read from,
 * what it must parse as, what a route does with a body).
 *
 * It is the only part of the protocol a service author sees: barista/worker.h includes
 * this header, never barista/proto.h.
 */
#ifndef BARISTA_TYPES_H
#define BARISTA_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Longest name of a keyed actor's timer or reminder, in bytes (PROTOCOL.md 5.20). */
#define BR_ACTOR_TIMER_NAME_MAX 128

/* ---------------------------------------------------------------------------------- */
/* Errors: one enum for the whole project.  Functions return 0 or one of these.        */

typedef enum br_err {
    BR_OK = 0,
    BR_ENOMEM = -1,    /* an allocation failed */
    BR_ETRUNC = -2,    /* the input ended inside a value */
    BR_ETYPE = -3,     /* a field has the wrong msgpack type */
    BR_ELIMIT = -4,    /* a length or count is over its br_limits bound */
    BR_EVERSION = -5,  /* the message speaks another protocol version */
    BR_EMSGTYPE = -6,  /* unknown message type */
    BR_EVALUE = -7,    /* a field's value is out of its range */
    BR_ETRAILING = -8, /* bytes follow the message */
    BR_EINVAL = -9,    /* the caller passed an invalid argument (programmer error) */
    BR_EIO = -10,      /* an operating-system call failed (see errno) */
    BR_ECLOSED = -11,  /* the object is closed or shutting down */
    BR_EFULL = -12,    /* a bounded queue or buffer is full */
    BR_ENOTFOUND = -13 /* no such thing */
} br_err;

/* A static English description of err, never NULL. */
const char *br_strerror(int err);

/* ---------------------------------------------------------------------------------- */
/* Value types.                                                                        */

/* A byte string that is not NUL-terminated.  In decoded messages it points into the
 * decoded buffer; in messages to encode it points wherever the caller likes. */
typedef struct br_str {
    const char *ptr; /* first byte; may be NULL when len is 0 */
    uint32_t len;    /* number of bytes */
} br_str;

/* Builds a br_str from a NUL-terminated C string (NULL gives the empty string). */
br_str br_str_c(const char *s);
/* True when s holds exactly the bytes of the C string c. */
bool br_str_eq(br_str s, const char *c);

/* A name/value pair: a header, a query parameter or a path parameter. */
typedef struct br_pair {
    br_str name;
    br_str value;
} br_pair;

/* The two kinds of work a service or a worker does (FastAPI's async def and def). */
typedef enum br_kind {
    BR_KIND_IO = 0, /* async: many requests in flight on one event loop */
    BR_KIND_CPU = 1 /* blocking: one request at a time per process */
} br_kind;

/* Where a declared route parameter is read from. */
typedef enum br_param_in {
    BR_IN_PATH = 0,
    BR_IN_QUERY = 1,
    BR_IN_HEADER = 2,
    BR_IN_COOKIE = 3 /* a cookie of the Cookie header, delivered in REQUEST.cookies */
} br_param_in;

/* The type a declared parameter must parse as. */
typedef enum br_param_type {
    BR_TYPE_STR = 0,   /* any UTF-8 text; min/max bound its length in bytes */
    BR_TYPE_INT = 1,   /* a signed 64-bit decimal integer; min/max bound its value */
    BR_TYPE_FLOAT = 2, /* a finite decimal number; min/max bound its value */
    BR_TYPE_BOOL = 3   /* true/false/1/0/yes/no/on/off; min/max unused */
} br_param_type;

/* What a route does with a request body. */
typedef enum br_body_mode {
    BR_BODY_NONE = 0,   /* the route takes no body */
    BR_BODY_RAW = 1,    /* the bytes as the client sent them, with their content type */
    BR_BODY_MSGPACK = 2 /* JSON bodies are converted to msgpack by the gateway */
} br_body_mode;

/* Who may call a route (checked by the gateway before dispatch; PROTOCOL.md 5.1). */
typedef enum br_auth_mode {
    BR_AUTH_DEFAULT = 0,  /* whatever the gateway's --auth-default says */
    BR_AUTH_NONE = 1,     /* anyone; credentials are not even looked at */
    BR_AUTH_OPTIONAL = 2, /* anyone; valid credentials give an identity, bad ones a 401 */
    BR_AUTH_REQUIRED = 3  /* only callers with valid credentials (401) holding the scopes (403) */
} br_auth_mode;

#ifdef __cplusplus
}
#endif

#endif /* BARISTA_TYPES_H */
