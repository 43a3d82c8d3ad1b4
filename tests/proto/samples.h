/*
 * samples.h - valid protocol messages of every type, and message equality, shared by
 * the proto tests, the fuzz corpus generator and the benchmark.
 *
 * The messages point into static storage inside samples.c: a later call may reuse it,
 * so use one sample before asking for the next of the same shape.
 */
#ifndef BARISTA_TESTS_SAMPLES_H
#define BARISTA_TESTS_SAMPLES_H

#include <stdbool.h>
#include <stddef.h>

#include "barista/proto.h"

/* Which flavour of a sample to build. */
typedef enum sample_shape {
    SAMPLE_TYPICAL, /* what the platform sends every day: a few headers, two services */
    SAMPLE_EMPTY,   /* every string and list empty, every number at its smallest valid */
    SAMPLE_MAXIMAL  /* every list exactly at br_limits_default's bound */
} sample_shape;

/* Fills *msg with a valid message of `type` (1..BR_MSG_TYPE_MAX, or a stream type
 * BR_MSG_STREAM_FIRST..BR_MSG_STREAM_LAST) in the given shape. */
void sample_msg(unsigned type, sample_shape shape, br_msg *msg);

/* An input that declares a count or a length of about four billion (array32, str32,
 * bin32, map32, ext32 headers) at some field, with nothing behind it. */
typedef struct sample_hostile {
    const char *what;  /* which field, for failure messages and file names */
    const char *bytes; /* the input */
    size_t len;        /* its length */
} sample_hostile;

/* The i-th hostile input, or NULL past the last. */
const sample_hostile *sample_hostile_get(size_t i);

/* True when a and b carry the same type and the same field values (strings compared
 * by content, lists element by element). */
bool sample_equal(const br_msg *a, const br_msg *b);

/* What sample_decode_check returns when the decoder broke a promise. */
#define SAMPLE_BROKEN (-1000)

/* The property the fuzzer and the hostile-input tests check on arbitrary bytes: decode
 * them; on failure the message must come back zeroed; on success the message must
 * encode again, and decoding that encoding must give an equal message.  Returns the
 * first decode's result (0 or a negative br_err), or SAMPLE_BROKEN. */
int sample_decode_check(const void *buf, size_t len);

#endif /* BARISTA_TESTS_SAMPLES_H */
