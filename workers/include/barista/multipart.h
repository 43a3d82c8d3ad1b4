/*
 * barista/multipart.h - a multipart/form-data parser (RFC 7578) that takes the body in
 * pieces of any size, as a streamed request body delivers it (barista/stream.h), or all
 * at once.
 *
 * Plain fields (parts without a filename) are handed over whole, up to
 * BR_MULTIPART_FIELD_MAX bytes; file parts are streamed: their start, their bytes in
 * pieces, their end - so a file of any size costs the parser a fixed amount of memory
 * (BR_MULTIPART_HEAD_MAX for a part's headers plus a few delimiters).
 *
 *     br_multipart *mp = br_multipart_new(content_type, &handler, state);
 *     ... br_multipart_feed(mp, piece, len) for every piece ...
 *     br_multipart_finish(mp);       // BR_ETRUNC when the closing delimiter is missing
 *     br_multipart_destroy(&mp);
 */
#ifndef BARISTA_MULTIPART_H
#define BARISTA_MULTIPART_H

#include <stddef.h>

#include "barista/types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The most bytes of one part's header block. */
#define BR_MULTIPART_HEAD_MAX (16u * 1024u)

/* The most bytes of one plain field's value. */
#define BR_MULTIPART_FIELD_MAX (64u * 1024u)

/* The longest boundary RFC 2046 allows. */
#define BR_MULTIPART_BOUNDARY_MAX 70

/* What a part's headers say.  The strings are valid during the callback only. */
typedef struct br_multipart_part {
    br_str name;         /* Content-Disposition's name: the form field */
    br_str filename;     /* its filename; empty for a plain field */
    br_str content_type; /* the part's Content-Type; empty when it has none */
} br_multipart_part;

/* The callbacks; each returns 0 to go on, anything else to stop the parse (feed
 * returns it).  Any may be NULL. */
typedef struct br_multipart_handler {
    int (*on_field)(void *arg, const br_multipart_part *part, br_str value);
    int (*on_file_start)(void *arg, const br_multipart_part *part);
    int (*on_file_data)(void *arg, const void *data, size_t len);
    int (*on_file_end)(void *arg);
} br_multipart_handler;

typedef struct br_multipart br_multipart;

/* A parser for a body of `content_type` (multipart/form-data with a boundary parameter,
 * quoted or not).  `handler` is copied; `arg` goes to every callback.  NULL when the
 * type is not multipart/form-data, has no valid boundary, or memory runs out.  Caller
 * owns the result. */
br_multipart *br_multipart_new(br_str content_type, const br_multipart_handler *handler, void *arg);

/* Parses len more bytes of the body.  Returns 0; BR_EVALUE for a malformed body (a part
 * without a name, headers that do not parse); BR_ELIMIT past BR_MULTIPART_HEAD_MAX or
 * BR_MULTIPART_FIELD_MAX; BR_ENOMEM; or a callback's non-zero value.  After an error
 * the parser refuses everything with the same error. */
int br_multipart_feed(br_multipart *self, const void *data, size_t len);

/* The body ended: 0 when its closing delimiter was read, else BR_ETRUNC (or the earlier
 * error). */
int br_multipart_finish(br_multipart *self);

/* Destroys *self_p and sets it to NULL; safe on NULL and twice. */
void br_multipart_destroy(br_multipart **self_p);

#ifdef __cplusplus
}
#endif

#endif /* BARISTA_MULTIPART_H */
