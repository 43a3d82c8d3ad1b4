/*
 * writer_int.h - the insides of br_writer (barista/writer.h), so that a request can
 * hold one in its arena and point it at its reply body.
 */
#ifndef BARISTA_WORKER_WRITER_INT_H
#define BARISTA_WORKER_WRITER_INT_H

#include "barista/proto.h"
#include "barista/writer.h"

/* An open object or array. */
typedef struct br__wframe {
    uint32_t off;   /* where its 5-byte header sits in the buffer */
    uint32_t count; /* entries written: pairs of an object, elements of an array */
    bool obj;       /* an object (keys and values) rather than an array */
    bool key_due;   /* object: a key was written, its value is due */
} br__wframe;

struct br_writer {
    br_buf *buf;                           /* where the bytes go: own, or a reply body */
    br_buf own;                            /* the buffer of a standalone writer */
    int err;                               /* the first error, sticky */
    unsigned depth;                        /* open containers */
    bool done;                             /* the root value is complete */
    br__wframe stack[BR_WRITER_MAX_DEPTH]; /* open containers, innermost last */
};

/* Prepares w to write one value into buf (not cleared: writing starts at buf->len). */
void br__writer_init(br_writer *w, br_buf *buf);

#endif /* BARISTA_WORKER_WRITER_INT_H */
