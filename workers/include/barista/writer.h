/*
 * barista/writer.h - writing structured values (JSON's objects, arrays and scalars)
 * without msgpack-c.  Included by barista/worker.h.
 *
 * A reply body, a job's payload and a job's result are one msgpack value, which the
 * gateway shows its clients as JSON.  A br_writer builds that value call by call, the
 * way the JSON would read:
 *
 *     br_writer *w = br_reply_start(req, 200);
 *     br_w_obj(w);                         {
 *     br_w_key_int(w, "id", 7);              "id": 7,
 *     br_w_key(w, "tags");                   "tags":
 *     br_w_arr(w);                             [
 *     br_w_cstr(w, "a");                         "a"
 *     br_w_end(w);                             ]
 *     br_w_end(w);                         }
 *     br_reply_send(req);
 *
 * or, the same value in one call, br_w_pack(w, "{s:I, s:[s]}", "id", 7, "tags", "a").
 *
 * No counts up front: containers are closed with br_w_end.  Errors are sticky: the
 * first mistake (a key outside an object, a value where a key is due, an unclosed
 * container, nesting past BR_WRITER_MAX_DEPTH, growing past the writer's maximum, no
 * memory) is remembered, later calls do nothing, and br_writer_error (or the reply
 * that sends it, which becomes a 500) reports it.  So a handler writes without
 * checking each call.  Every br_w_ call on a NULL writer does nothing.
 */
#ifndef BARISTA_WRITER_H
#define BARISTA_WRITER_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "barista/types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Deepest nesting of objects and arrays. */
#define BR_WRITER_MAX_DEPTH 32

/* Longest string br_w_strf formats. */
#define BR_WRITER_STRF_MAX 4096

typedef struct br_writer br_writer;

/* A writer on its own (for a job payload or result, or a test's stub answer) whose
 * bytes never grow past max (0: 8 MiB, BR_REPLY_BODY_MAX).  Caller owns the result;
 * NULL when out of memory.  A reply's writer comes from br_reply_start instead. */
br_writer *br_writer_new(size_t max);

/* Destroys *self_p and sets it to NULL; safe on NULL and twice. */
void br_writer_destroy(br_writer **self_p);

/* Forgets what was written and any error, to write a new value. */
void br_writer_reset(br_writer *w);

/* 0 while every call so far was fine; else the first error: BR_EINVAL (a call out of
 * place, or containers left open when the bytes are asked for), BR_ELIMIT (past the
 * maximum or BR_WRITER_MAX_DEPTH) or BR_ENOMEM. */
int br_writer_error(const br_writer *w);

/* The msgpack bytes of the complete value written, valid until the next call on w;
 * the empty string while containers are open or after an error. */
br_str br_writer_bytes(const br_writer *w);

/* Opens an object (then alternate br_w_key and a value) or an array; br_w_end closes
 * the innermost one. */
void br_w_obj(br_writer *w);
void br_w_arr(br_writer *w);
void br_w_end(br_writer *w);

/* The next key of the open object. */
void br_w_key(br_writer *w, const char *key);

/* Scalars.  br_w_str writes s.len bytes (any bytes; the gateway shows invalid UTF-8 as
 * U+FFFD); br_w_cstr a C string (NULL writes null); br_w_strf a printf-formatted string
 * of at most BR_WRITER_STRF_MAX bytes; br_w_float a double (non-finite values become
 * null in JSON). */
void br_w_null(br_writer *w);
void br_w_bool(br_writer *w, bool v);
void br_w_int(br_writer *w, int64_t v);
void br_w_uint(br_writer *w, uint64_t v);
void br_w_float(br_writer *w, double v);
void br_w_str(br_writer *w, br_str s);
void br_w_cstr(br_writer *w, const char *s);
void br_w_strf(br_writer *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* One complete msgpack value as it is (another service's reply, say): BR_EINVAL
 * unless mp holds exactly one well-formed value nested at most BR_CURSOR_MAX_DEPTH
 * (barista/mpread.h) deep. */
void br_w_msgpack(br_writer *w, br_str mp);

/* A key and its value in one call. */
void br_w_key_null(br_writer *w, const char *key);
void br_w_key_bool(br_writer *w, const char *key, bool v);
void br_w_key_int(br_writer *w, const char *key, int64_t v);
void br_w_key_float(br_writer *w, const char *key, double v);
void br_w_key_str(br_writer *w, const char *key, br_str s);
void br_w_key_cstr(br_writer *w, const char *key, const char *s);

/* Writes a whole value from a format, the way jansson's json_pack reads: each character
 * writes one thing and takes its arguments in order -
 *
 *     {  }   an object, and its end         [  ]   an array, and its end
 *     s      a C string (const char *; NULL writes null) - in an object's key place, the key
 *     S      a br_str (as a key too)         m      a br_str holding one msgpack value
 *     i      an int                          I      an int64_t
 *     f      a double                        b      a bool (passed as int)
 *     n      null (no argument)
 *
 * Blanks, ':' and ',' are ignored, for reading.  A character not in this list, or a
 * format that writes something out of place, is a sticky BR_EINVAL. */
void br_w_pack(br_writer *w, const char *fmt, ...);
void br_w_vpack(br_writer *w, const char *fmt, va_list ap);

#ifdef __cplusplus
}
#endif

#endif /* BARISTA_WRITER_H */
