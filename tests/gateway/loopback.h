/*
 * loopback.h - the client side of the gateway tests that run a real server on a loop
 * in one thread and talk to it from another: a blocking loopback connection.
 */
#ifndef BARISTA_TESTS_LOOPBACK_H
#define BARISTA_TESTS_LOOPBACK_H

#include <stddef.h>

/* A blocking TCP connection to 127.0.0.1:port whose reads give up after timeout_s
 * seconds; -1 when it cannot connect.  No cmocka calls: it runs on client threads. */
int loopback_connect(int port, int timeout_s);

/* Writes all of p[0..len), stopping quietly at the first error (the reads that follow
 * show what was missed). */
void loopback_send_all(int fd, const void *p, size_t len);

#endif /* BARISTA_TESTS_LOOPBACK_H */
