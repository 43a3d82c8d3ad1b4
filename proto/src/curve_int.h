/*
 * curve_int.h - what curve.c and curve_keyset.c share (key files and their lines).
 */
#ifndef BARISTA_PROTO_CURVE_INT_H
#define BARISTA_PROTO_CURVE_INT_H

#include <stddef.h>

/* Formats a reason into why (why_len bytes, NUL-terminated); nothing when why is NULL. */
void br__curve_why(char *why, size_t why_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Reads a regular file of at most BR_CURVE_FILE_MAX bytes into a new NUL-terminated
 * buffer (caller frees *text).  0; BR_EIO, BR_ELIMIT or BR_ENOMEM with why. */
int br__curve_read_file(const char *path, char **text, size_t *len, char *why, size_t why_len);

/* The next line of [*p, end) with white space and a CR trimmed both ends; advances *p.
 * 1, or 0 at the end. */
int br__curve_next_line(const char **p, const char *end, const char **line, size_t *len);

#endif /* BARISTA_PROTO_CURVE_INT_H */
