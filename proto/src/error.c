/*
 * error.c - the project-wide error codes and the small br_str helpers.
 */
#include <string.h>

#include "barista/proto.h"

const char *br_strerror(int err)
{
    switch (err) {
    case BR_OK:
        return "success";
    case BR_ENOMEM:
        return "out of memory";
    case BR_ETRUNC:
        return "message truncated";
    case BR_ETYPE:
        return "field has the wrong type";
    case BR_ELIMIT:
        return "length or count over its limit";
    case BR_EVERSION:
        return "unsupported protocol version";
    case BR_EMSGTYPE:
        return "unknown message type";
    case BR_EVALUE:
        return "field value out of range";
    case BR_ETRAILING:
        return "trailing bytes after message";
    case BR_EINVAL:
        return "invalid argument";
    case BR_EIO:
        return "system call failed";
    case BR_ECLOSED:
        return "closed";
    case BR_EFULL:
        return "queue full";
    case BR_ENOTFOUND:
        return "not found";
    }
    return "unknown error";
}

br_str br_str_c(const char *s)
{
    br_str out = {s, s ? (uint32_t)strlen(s) : 0};
    return out;
}

bool br_str_eq(br_str s, const char *c)
{
    size_t n = strlen(c);
    return s.len == n && (n == 0 || memcmp(s.ptr, c, n) == 0);
}
