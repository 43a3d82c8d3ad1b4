/*
 * barista/zsock.h - a ZeroMQ socket driven by a libuv loop.
 *
 * ZeroMQ exposes one file descriptor per socket (ZMQ_FD) that signals edge-triggered
 * "something changed", not "a message is waiting".  br_zsock turns it into plain
 * callbacks: every readable edge, every loop turn that sent (checked once, before the
 * loop blocks) and a slow safety timer lead to a drain that receives until a
 * non-blocking receive finds nothing pending, at most BR_ZSOCK_BATCH messages per loop
 * turn so that one busy peer cannot starve the loop.
 * Sends never block (ZMQ_DONTWAIT).  The receive callback may send and may close the
 * socket.
 */
#ifndef BARISTA_ZSOCK_H
#define BARISTA_ZSOCK_H

#include <stddef.h>

#include <uv.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Messages received per drain before yielding to the rest of the loop. */
#define BR_ZSOCK_BATCH 256
/* Frames kept of one multipart message; a message with more is dropped whole.  8: a
 * ZAP request for CURVE (RFC 27) has 7. */
#define BR_ZSOCK_MAX_FRAMES 8
/* Period of the safety timer that drains even if an edge was missed. */
#define BR_ZSOCK_SAFETY_MS 250

/* One frame of a received message; valid only during the receive callback. */
typedef struct br_zframe {
    const void *data; /* the frame's bytes */
    size_t len;       /* how many */
    const void *msg;  /* its zmq_msg_t, for zmq_msg_gets ("User-Id" of a CURVE peer);
                         NULL where a frame did not come from a socket */
} br_zframe;

typedef struct br_zsock br_zsock;

/* Called once per received message.  For a ROUTER socket frames[0] is the peer's
 * routing id. */
typedef void (*br_zsock_recv_fn)(br_zsock *zs, const br_zframe *frames, size_t nframes, void *arg);

/* Wraps zmq_socket (taking ownership: it is closed by br_zsock_close) and starts
 * receiving on loop.  Returns NULL (socket untouched, errno logged) on failure. */
br_zsock *br_zsock_new(uv_loop_t *loop, void *zmq_socket, br_zsock_recv_fn on_recv, void *arg);

/* Sends one message without blocking: [ident, data] when ident is not NULL (ROUTER),
 * else [data].  Returns 0; BR_EFULL when the peer's high-water mark is reached;
 * BR_ENOTFOUND when a ROUTER with ZMQ_ROUTER_MANDATORY has no such peer; BR_ECLOSED
 * after br_zsock_close; BR_EIO otherwise (errno set). */
int br_zsock_send(br_zsock *zs, const void *ident, size_t ident_len, const void *data, size_t len);

/* The wrapped socket, for setsockopt/getsockopt.  Never close it directly. */
void *br_zsock_socket(br_zsock *zs);

/* Messages dropped because they had more than BR_ZSOCK_MAX_FRAMES frames. */
unsigned long br_zsock_dropped(const br_zsock *zs);

/* Stops receiving, closes the ZeroMQ socket at once and the libuv handles
 * asynchronously; done(arg) runs (if not NULL) when they are closed, after which zs is
 * freed.  Safe to call from the receive callback; further calls are ignored. */
void br_zsock_close(br_zsock *zs, void (*done)(void *arg), void *arg);

#ifdef __cplusplus
}
#endif

#endif /* BARISTA_ZSOCK_H */
