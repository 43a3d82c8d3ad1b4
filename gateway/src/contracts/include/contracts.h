/*
 * contracts.h - typed contracts at the edge: what a route declares (parameters, a body
 * schema, responses) compiled once at READY, and every request checked and converted
 * against it before dispatch.
 *
 * A schema comes from a worker (PROTOCOL.md 5.1.1) and is untrusted: compiling bounds
 * its depth, size, counts and patterns, and refuses what it cannot check.  Validation
 * follows pydantic v2's lax mode and writes FastAPI's 422 body, every error of the
 * request at once, in the order FastAPI reports them (path, query, header, cookie,
 * then body).  Conversion writes the body the worker receives: declared fields in
 * declaration order, integers as integers, defaults filled in.
 *
 * Everything runs on the gateway's loop; nothing here does I/O.  docs/contracts.md
 * explains the rules and lists every error type.
 */
#ifndef BARISTA_GW_CONTRACTS_H
#define BARISTA_GW_CONTRACTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <barista/proto.h>

/* Deepest nesting of a body the validator follows (the schema's own bound). */
#define GW_CONTRACT_MAX_DEPTH BR_SCHEMA_MAX_DEPTH
/* Most errors one 422 lists; past it the list ends with the errors found so far. */
#define GW_CONTRACT_MAX_ERRORS 256
/* Largest 422 body; an error that would not fit is left out. */
#define GW_CONTRACT_MAX_ERROR_BODY (256u * 1024u)

typedef struct gw_schema gw_schema;
typedef struct gw_contract gw_contract;

/* Compiles what `route` declares: its parameters (with their schemas), its body schema
 * and its responses.  The contract copies everything it needs.  Returns 0 and sets
 * *out (caller owns it); BR_EVALUE with a one-line reason in why for a declaration the
 * gateway cannot accept (for the READY's GOODBYE); BR_ENOMEM. */
int gw_contract_new(const br_route *route, gw_contract **out, char *why, size_t why_len);

/* Frees *self_p and sets it to NULL; safe on NULL and twice. */
void gw_contract_destroy(gw_contract **self_p);

/* What a request brings to the check. */
typedef struct gw_contract_req {
    const br_pair *path;    /* path parameters, decoded */
    size_t npath;           /* entries in path */
    const br_pair *query;   /* query pairs, decoded, in order */
    size_t nquery;          /* entries in query */
    const br_pair *headers; /* request headers (names lower case) */
    size_t nheaders;        /* entries in headers */
    bool has_body;          /* the client sent a body */
    br_str body;            /* the body as msgpack (JSON and forms already converted) */
} gw_contract_req;

/* A pair the gateway adds to the REQUEST after the check: a default, a value under its
 * declared name rather than its alias, or a declared cookie. */
typedef struct gw_fill {
    uint8_t in; /* br_param_in: the list it joins (cookies: REQUEST.cookies) */
    br_pair kv; /* name and value; they point into the contract or the request */
} gw_fill;

/* Most fills one check can produce for a request with npairs query pairs and headers
 * together (size the array passed to gw_contract_check). */
size_t gw_contract_max_fills(const gw_contract *c, size_t npairs);

/* The route's success status: its first declared 2xx, else 200. */
uint16_t gw_contract_success_status(const gw_contract *c);

/* True when the route declares a body schema, and when it also takes forms. */
bool gw_contract_has_body(const gw_contract *c);
bool gw_contract_takes_form(const gw_contract *c);

/* Checks a request.  Writes the converted body to `converted` (when the route has a
 * body schema and a body came) and the pairs to add to fills[0..*nfills).  Returns 0
 * when the request satisfies the contract; BR_EVALUE when it does not - `errors` then
 * holds the complete 422 body, {"detail":[...]}; BR_ETRUNC/BR_ELIMIT for a body that
 * is not one readable msgpack value; BR_ENOMEM/BR_ELIMIT when an output outgrows its
 * buffer; BR_EFULL when matching the request's strings against their patterns would
 * take more than a budget (patterns match in linear time; the budget caps the sum). */
int gw_contract_check(const gw_contract *c, const gw_contract_req *r, br_buf *converted,
                      gw_fill *fills, size_t *nfills, br_buf *errors);

/* Converts an application/x-www-form-urlencoded body (already split into decoded
 * pairs) into the msgpack map the body schema validates: one text value per key (the
 * last one given), or all of them as a list for a field declared as an array.
 * Returns 0 or BR_ELIMIT/BR_ENOMEM. */
int gw_contract_form_to_msgpack(const gw_contract *c, const br_pair *pairs, size_t n, br_buf *out);

/* The debug check of a reply: when the route declares `status` with a schema and the
 * reply is structured, validates it.  Returns 0 when it conforms (or nothing is
 * declared for it), BR_EVALUE with the errors as a JSON list in `errors`. */
int gw_contract_check_reply(const gw_contract *c, uint16_t status, br_str body, br_buf *errors);

/* ---------------------------------------------------------------------------------- */
/* OpenAPI.                                                                            */

/* Named models met while writing schemas, for components/schemas. */
#define GW_MODELS_MAX 256
typedef struct gw_models {
    const gw_schema *list[GW_MODELS_MAX]; /* one schema per title, first one wins */
    size_t n;                             /* entries in list */
} gw_models;

/* Appends a JSON Schema for s; named objects become {"$ref": ...} and are noted in
 * models.  0 or BR_ELIMIT/BR_ENOMEM. */
int gw_schema_openapi(const gw_schema *s, br_buf *out, gw_models *models);

/* Appends the "components/schemas" members of the models noted so far ("Name":{...},
 * each followed by a comma), including models their fields name, except HTTPError,
 * HTTPValidationError and ValidationError, which the document's writer publishes
 * itself.  0 or an error. */
int gw_models_openapi(gw_models *models, br_buf *out);

/* Appends the route's declared parameters as OpenAPI parameter objects, each followed
 * by a comma.  0 or an error. */
int gw_contract_openapi_params(const gw_contract *c, br_buf *out, gw_models *models);

/* True when the route declares a response with this status. */
bool gw_contract_declares_status(const gw_contract *c, uint16_t status);

/* True when the route declares a path parameter with this name. */
bool gw_contract_declares_path(const gw_contract *c, const char *name, size_t len);

/* Appends ,"requestBody":{...} when the route declares a body schema, naming JSON,
 * msgpack and (for forms) urlencoded content.  0 or an error. */
int gw_contract_openapi_body(const gw_contract *c, br_buf *out, gw_models *models);

/* Appends the declared responses as members "201":{...}, each followed by a comma, a
 * 200 "Successful Response" first when the route declares no 2xx.  0 or an error. */
int gw_contract_openapi_responses(const gw_contract *c, br_buf *out, gw_models *models);

#endif /* BARISTA_GW_CONTRACTS_H */
