/*
 * params.h - query strings and declared route parameters, checked at the edge.
 *
 * The gateway splits and percent-decodes the query string itself, so workers get clean
 * UTF-8 pairs, and validates every parameter a route declares before the request is
 * dispatched, answering 422 with the same body FastAPI (pydantic v2) would.
 */
#ifndef BARISTA_GW_PARAMS_H
#define BARISTA_GW_PARAMS_H

#include <stdbool.h>
#include <stddef.h>

#include "barista/proto.h"

#include "http.h"

/* Splits a raw query string into pairs, percent-decoding names and values ('+' is a space)
 * into `scratch` (cap bytes; decoded text is never longer than the input, so cap ≥ len
 * always suffices). Empty components ("a=1&&b") are skipped; "a" alone gives value "".
 * 0; BR_EVALUE for a malformed %-escape or decoded NUL; BR_ELIMIT for more than max pairs.
 * Also BR_EVALUE when decoded text is not UTF-8, and BR_ELIMIT when scratch runs out.
 * The pairs point into scratch; *npairs is the count parsed (also on error). */
int gw_query_parse(const char *query, size_t len, char *scratch, size_t cap, br_pair *out,
                   size_t max, size_t *npairs);

/* Parses req's query string as gw_query_parse() does (scratch: cap ≥ query_len + 1
 * bytes) and, when it is malformed, answers req 400: "Too many query parameters" past
 * max pairs, "Malformed query string: bad percent-encoding" otherwise.  0, or the
 * parse error once req was answered. */
int gw_req_query_parse(gw_req *req, char *scratch, size_t cap, br_pair *out, size_t max,
                       size_t *npairs);

/* Percent-decodes src into dst (cap bytes, cap ≥ len suffices); plus_is_space for query
 * text. Sets *outlen. 0 or BR_EVALUE (bad escape, decoded NUL, or invalid UTF-8).
 * BR_ELIMIT when cap is too small. */
int gw_percent_decode(const char *src, size_t len, bool plus_is_space, char *dst, size_t cap,
                      size_t *outlen);

/* Validates a request's path params, query pairs and headers against a route's declared
 * params. 0 when valid. BR_EVALUE when not: `out` receives the complete FastAPI/pydantic-v2
 * style 422 body listing EVERY error, e.g.
 *   {"detail":[{"type":"missing","loc":["query","ms"],"msg":"Field required","input":null}]}
 * types/msgs: missing "Field required"; int_parsing "Input should be a valid integer, unable
 * to parse string as an integer"; float_parsing "Input should be a valid number, unable to
 * parse string as a number"; bool_parsing "Input should be a valid boolean, unable to
 * interpret input"; greater_than_equal "Input should be greater than or equal to N";
 * less_than_equal "Input should be less than or equal to N"; string_too_short "String should
 * have at least N characters"; string_too_long "String should have at most N characters"
 * (N printed as an integer when integral); loc[0] is "path", "query" or "header"; "input" is
 * the received string (or null when missing). Header names compare case-insensitively.
 * A query name given twice: the first value is validated.
 *
 * As pydantic does, the four bound errors also carry "ctx" ({"ge":N}, {"le":N},
 * {"min_length":N}, {"max_length":N}), "character" is singular when N is 1, and string
 * lengths count code points.  Errors are listed in declaration order.  BR_ELIMIT or
 * BR_ENOMEM when the body does not fit out (out->len is then unchanged). */
int gw_params_validate(const br_param *decl, size_t ndecl, const br_pair *path, size_t npath,
                       const br_pair *query, size_t nquery, const br_pair *headers, size_t nheaders,
                       br_buf *out);

/* Validates as gw_params_validate() and, when something breaks a declaration,
 * answers req: 422 with the list of errors, or 500 when that list does not fit in
 * max bytes.  0 when valid (req is not answered); otherwise the error, req answered. */
int gw_req_params_validate(gw_req *req, const br_param *decl, size_t ndecl, const br_pair *path,
                           size_t npath, const br_pair *query, size_t nquery,
                           const br_pair *headers, size_t nheaders, size_t max);

/* A query or header value as a validated BR_TYPE_INT parameter reads it: an optional
 * sign, then decimal digits only, within int64 (pydantic's lax mode).  False for
 * anything else. */
bool gw_param_int(br_str s, int64_t *out);

/* The longest 422 body the gateway writes for a body that is not JSON. */
#define GW_PARAMS_MAX_ERROR_BODY 4096u

/* Answers req 422 the way FastAPI answers a body that is not JSON: type json_invalid
 * at the error's char position.  `err` is gw_json_to_msgpack's reason, "Expecting
 * value: line 1 column 5 (char 4)": the position comes from "(char N)" and ctx.error
 * is the text before ": line".  Returns as gw_req_respond(). */
int gw_req_respond_json_invalid(gw_req *req, const char *err);

#endif /* BARISTA_GW_PARAMS_H */
