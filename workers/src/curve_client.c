/*
 * curve_client.c - the worker's side of CURVE: its keys on the DEALER, and saying
 * why it cannot register.
 *
 * A refused CURVE handshake closes the connection inside libzmq: the worker would
 * only see a silent broker.  A ZeroMQ socket monitor (a PAIR socket on an inproc
 * endpoint, driven by the loop like any other) reports the failed handshakes, and
 * the worker logs them, at most once per CURVE_LOG_INTERVAL_MS since libzmq retries
 * the connection every reconnect interval.
 */
#include <stdio.h>
#include <string.h>

#include <zmq.h>

#include "worker_int.h"

/* Handshake failures are logged at most this often. */
#define CURVE_LOG_INTERVAL_MS 10000

/* A monitor event: [u16 event, u32 value] then the endpoint. */
static void on_event(br_zsock *zs, const br_zframe *f, size_t n, void *arg)
{
    br_worker *w = arg;
    uint16_t event;
    uint32_t value;
    (void)zs;
    if (n != 2 || f[0].len != sizeof(event) + sizeof(value))
        return;
    memcpy(&event, f[0].data, sizeof(event));
    memcpy(&value, (const char *)f[0].data + sizeof(event), sizeof(value));
    if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
        w->curve_logged = 0; /* a later failure is news again */
        return;
    }
    uint64_t now = uv_now(&w->loop);
    if (w->curve_logged && now - w->curve_logged < CURVE_LOG_INTERVAL_MS)
        return;
    w->curve_logged = now ? now : 1;
    if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
        br__log("the broker refused our CURVE key %s (ZAP status %u): it is not in the "
                "gateway's authorised keys; retrying",
                w->curve_keys.public_key, value);
    else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL ||
             event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL)
        br__log("CURVE handshake with %.*s failed (%s %s): is --curve-server-key the gateway's "
                "public key, and does the gateway require CURVE?",
                (int)(f[1].len < 128 ? f[1].len : 128), (const char *)f[1].data,
                event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL ? "protocol error" : "connection:",
                event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL ? "" : zmq_strerror((int)value));
}

/* Starts the monitor; failures are logged and leave the worker without it. */
static void monitor_open(br_worker *w, void *sock)
{
    char endpoint[64];
    snprintf(endpoint, sizeof(endpoint), "inproc://barista-curve-monitor-%u", w->curve_monitors++);
    int events = ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                 ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH;
    if (zmq_socket_monitor(sock, endpoint, events) != 0) {
        br__log("zmq_socket_monitor: %s (CURVE failures will not be explained)",
                zmq_strerror(zmq_errno()));
        return;
    }
    void *pair = zmq_socket(w->zctx, ZMQ_PAIR);
    int zero = 0;
    if (!pair || zmq_setsockopt(pair, ZMQ_LINGER, &zero, sizeof(zero)) != 0 ||
        zmq_connect(pair, endpoint) != 0) {
        br__log("monitor socket for %s: %s", endpoint, zmq_strerror(zmq_errno()));
        goto fail;
    }
    w->curve_monitor = br_zsock_new(&w->loop, pair, on_event, w);
    if (w->curve_monitor) {
        w->curve_monitored = sock;
        return;
    }
fail:
    if (pair)
        zmq_close(pair);
    zmq_socket_monitor(sock, NULL, 0);
}

int br__curve_client_open(br_worker *w, void *sock)
{
    char why[256];
    if (br_curve_client_setup(sock, w->curve_server, &w->curve_keys, why, sizeof(why)) != 0) {
        br__log("%s", why);
        return -1;
    }
    /* One monitor explains a refused key: it watches the first socket that opens (a
     * worker serving several brokers presents the same key to each). */
    if (!w->curve_monitor)
        monitor_open(w, sock);
    return 0;
}

void br__curve_client_close(br_worker *w, void *sock)
{
    if (!w->curve_monitor || sock != w->curve_monitored)
        return;
    zmq_socket_monitor(sock, NULL, 0);
    br_zsock_close(w->curve_monitor, NULL, NULL);
    w->curve_monitor = NULL;
    w->curve_monitored = NULL;
}
