/*
 * zsock.c - a ZeroMQ socket driven by a libuv loop (see barista/zsock.h).
 *
 * The one rule that matters: ZMQ_FD only reports edges, and any zmq_send or
 * getsockopt(ZMQ_EVENTS) may consume an edge.  So we never trust the poll callback
 * alone: we drain whenever the fd fires, before the loop blocks again after a send made
 * outside a drain, on the next turn after a batch that stopped because it was full, and
 * from a slow safety timer.  A drain ends only when a non-blocking receive says EAGAIN:
 * libzmq processes every pending command before it answers EAGAIN, so that is the same
 * "nothing pending" as ZMQ_EVENTS without a poll(2) of the mailbox per message.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include "barista/proto.h"
#include "barista/zsock.h"

struct br_zsock {
    void *sock;           /* the ZeroMQ socket, owned; NULL once closed */
    uv_poll_t poll;       /* readable edges of ZMQ_FD */
    uv_idle_t again;      /* a drain on the next loop turn (a full batch) */
    uv_prepare_t recheck; /* a drain before the loop blocks (after sends) */
    uv_timer_t safety;    /* a drain every BR_ZSOCK_SAFETY_MS, in case an edge was lost */
    br_zsock_recv_fn on_recv;
    void *arg;             /* on_recv's argument */
    int draining;          /* inside drain(): sends need no extra wake-up */
    int again_active;      /* `again` is started */
    int recheck_active;    /* `recheck` is started */
    int open_handles;      /* libuv handles not yet closed */
    unsigned long dropped; /* messages with too many frames */
    void (*done)(void *);  /* br_zsock_close's callback */
    void *done_arg;
};

static void wake_next_turn(br_zsock *zs);

/* Receives one whole multipart message into frames[]; returns the number of frames
 * (0 when nothing was pending: EAGAIN after libzmq processed its pending commands), or
 * -1 when the message had too many frames and was dropped. */
static int recv_message(br_zsock *zs, zmq_msg_t *frames)
{
    int n = 0;
    int more = 1;
    while (more) {
        zmq_msg_t *m = &frames[n < BR_ZSOCK_MAX_FRAMES ? n : BR_ZSOCK_MAX_FRAMES];
        zmq_msg_init(m);
        if (zmq_msg_recv(m, zs->sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(m);
            if (errno != EAGAIN && errno != EINTR)
                fprintf(stderr, "barista: zmq_msg_recv: %s\n", zmq_strerror(errno));
            /* Multipart messages arrive whole, so this happens only on the first frame. */
            for (int i = 0; i < n && i < BR_ZSOCK_MAX_FRAMES; i++)
                zmq_msg_close(&frames[i]);
            return 0;
        }
        more = zmq_msg_more(m);
        if (n >= BR_ZSOCK_MAX_FRAMES)
            zmq_msg_close(m); /* the spare slot: discard the excess frame */
        n++;
    }
    if (n > BR_ZSOCK_MAX_FRAMES) {
        for (int i = 0; i < BR_ZSOCK_MAX_FRAMES; i++)
            zmq_msg_close(&frames[i]);
        zs->dropped++;
        return -1;
    }
    return n;
}

static void drain(br_zsock *zs)
{
    zmq_msg_t frames[BR_ZSOCK_MAX_FRAMES + 1];
    br_zframe view[BR_ZSOCK_MAX_FRAMES];
    int budget = BR_ZSOCK_BATCH;

    if (zs->draining || zs->sock == NULL)
        return;
    zs->draining = 1;
    while (zs->sock != NULL && budget > 0) {
        int n = recv_message(zs, frames);
        if (n == 0)
            break;
        budget--;
        if (n < 0)
            continue;
        for (int i = 0; i < n; i++) {
            view[i].data = zmq_msg_data(&frames[i]);
            view[i].len = zmq_msg_size(&frames[i]);
            view[i].msg = &frames[i];
        }
        zs->on_recv(zs, view, (size_t)n, zs->arg);
        for (int i = 0; i < n; i++)
            zmq_msg_close(&frames[i]);
    }
    zs->draining = 0;
    /* A full batch leaves work behind: finish it on the next turn, after the rest of
     * the loop had its share. */
    if (zs->sock != NULL && budget == 0)
        wake_next_turn(zs);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    drain(h->data);
}

static void on_again(uv_idle_t *h)
{
    br_zsock *zs = h->data;
    uv_idle_stop(h);
    zs->again_active = 0;
    drain(zs);
}

static void on_recheck(uv_prepare_t *h)
{
    br_zsock *zs = h->data;
    uv_prepare_stop(h);
    zs->recheck_active = 0;
    drain(zs);
}

static void on_safety(uv_timer_t *h)
{
    drain(h->data);
}

/* After a send outside a drain: drain once more before the loop blocks in poll, in the
 * same turn, so that every send of this turn shares one check.  A prepare handle, unlike
 * an idle one, does not make the loop poll again with a zero timeout. */
static void recheck_before_poll(br_zsock *zs)
{
    if (!zs->recheck_active && zs->sock != NULL) {
        uv_prepare_start(&zs->recheck, on_recheck);
        zs->recheck_active = 1;
    }
}

static void wake_next_turn(br_zsock *zs)
{
    if (!zs->again_active && zs->sock != NULL) {
        uv_idle_start(&zs->again, on_again);
        zs->again_active = 1;
    }
}

br_zsock *br_zsock_new(uv_loop_t *loop, void *zmq_socket, br_zsock_recv_fn on_recv, void *arg)
{
    int fd;
    size_t len = sizeof(fd);
    br_zsock *zs;

    if (zmq_getsockopt(zmq_socket, ZMQ_FD, &fd, &len) != 0) {
        fprintf(stderr, "barista: zmq_getsockopt(ZMQ_FD): %s\n", zmq_strerror(errno));
        return NULL;
    }
    zs = calloc(1, sizeof(*zs));
    if (zs == NULL)
        return NULL;
    zs->sock = zmq_socket;
    zs->on_recv = on_recv;
    zs->arg = arg;
    if (uv_poll_init(loop, &zs->poll, fd) != 0) {
        fprintf(stderr, "barista: uv_poll_init on ZMQ_FD failed\n");
        free(zs);
        return NULL;
    }
    uv_idle_init(loop, &zs->again);
    uv_prepare_init(loop, &zs->recheck);
    uv_timer_init(loop, &zs->safety);
    zs->poll.data = zs->again.data = zs->recheck.data = zs->safety.data = zs;
    zs->open_handles = 4;
    uv_poll_start(&zs->poll, UV_READABLE, on_poll);
    uv_timer_start(&zs->safety, on_safety, BR_ZSOCK_SAFETY_MS, BR_ZSOCK_SAFETY_MS);
    /* Messages may have arrived before the poll was armed, and their edge is gone. */
    wake_next_turn(zs);
    return zs;
}

int br_zsock_send(br_zsock *zs, const void *ident, size_t ident_len, const void *data, size_t len)
{
    if (zs->sock == NULL)
        return BR_ECLOSED;
    if (ident != NULL && zmq_send(zs->sock, ident, ident_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
        goto fail;
    if (zmq_send(zs->sock, data, len, ZMQ_DONTWAIT) < 0)
        goto fail;
    if (!zs->draining)
        recheck_before_poll(zs);
    return 0;

fail:
    if (!zs->draining)
        recheck_before_poll(zs);
    if (errno == EAGAIN)
        return BR_EFULL;
    if (errno == EHOSTUNREACH)
        return BR_ENOTFOUND;
    return BR_EIO;
}

void *br_zsock_socket(br_zsock *zs)
{
    return zs->sock;
}

unsigned long br_zsock_dropped(const br_zsock *zs)
{
    return zs->dropped;
}

static void on_handle_closed(uv_handle_t *h)
{
    br_zsock *zs = h->data;
    if (--zs->open_handles > 0)
        return;
    if (zs->done != NULL)
        zs->done(zs->done_arg);
    free(zs);
}

void br_zsock_close(br_zsock *zs, void (*done)(void *arg), void *arg)
{
    if (zs == NULL || zs->sock == NULL)
        return;
    zs->done = done;
    zs->done_arg = arg;
    /* Stop watching the fd before ZeroMQ closes it. */
    uv_poll_stop(&zs->poll);
    zmq_close(zs->sock);
    zs->sock = NULL;
    uv_close((uv_handle_t *)&zs->poll, on_handle_closed);
    uv_close((uv_handle_t *)&zs->again, on_handle_closed);
    uv_close((uv_handle_t *)&zs->recheck, on_handle_closed);
    uv_close((uv_handle_t *)&zs->safety, on_handle_closed);
}
