/*
 * batch.c - the messages of one loop turn for one broker, in one frame (PROTOCOL.md
 * 5.16, WS_BATCH).
 *
 * To a broker that confirmed WS_BATCH in WELCOME, the WebSocket messages of a loop turn
 * (ws.c) - and, when it confirmed BR_FEATURE_REQ_BATCH, the turn's REPLYs (dispatch.c)
 * - are encoded into the link's batch (barista/ws_batch.h) and sent as one ZeroMQ
 * message by a check handle at the end of the turn.  Any other message on the link
 * sends the batch first (link_send), so the broker sees what we send in the order we
 * sent it; a batch of one message is that message.  A broker that batches sends us its
 * turn's REQUESTs the same way: a burst of requests arrives in one zmq_recv, their
 * replies leave in one zmq_send.
 *
 * A batch adds no latency past the end of the turn (barista/turn_end.h), also when it
 * was filled before the loop's poll - in a timer, or in the drain zsock.c runs just
 * before it, which is where a burst of REQUESTs is often read.
 */
#include "worker_int.h"

void br__batch_flush_link(br__link *l)
{
    br_str f = br_ws_batch_frame(&l->batch, l->broker_version);
    if (f.len)
        br__link_send_frame(l, f);
    br_ws_batch_clear(&l->batch);
}

void br__batch_forget_link(br__link *l)
{
    br_ws_batch_clear(&l->batch);
    l->ws_batch = false;
    l->req_batch = false;
}

static void on_turn_end(void *arg)
{
    br_worker *w = arg;
    for (uint32_t i = 0; i < w->nlinks; i++)
        if (w->links[i].batch.count)
            br__batch_flush_link(&w->links[i]);
}

void br__batch_close_handles(br_worker *w)
{
    if (!w->batch_flush_init)
        return;
    br_turn_end_close(&w->batch_flush, NULL);
    w->batch_flush_init = false;
}

int br__batch_send(br__link *l, const br_msg *m)
{
    br_worker *w = l->w;
    if (br_ws_batch_bytes(&l->batch) >= BR_WS_BATCH_BYTES)
        br__batch_flush_link(l);
    int rc = br_ws_batch_add(&l->batch, m, l->broker_version);
    if (rc != 0) {
        br__log("br_msg_encode(%s): %s", br_msg_type_name(m->type), br_strerror(rc));
        return rc;
    }
    if (!w->batch_flush_init) {
        br_turn_end_init(&w->batch_flush, &w->loop, on_turn_end, w);
        w->batch_flush_init = true;
    }
    br_turn_end_arm(&w->batch_flush);
    return 0;
}

/* The batch's bytes are the received frame's, not the decoder's, so decoding its
 * messages one by one with the worker's decoder leaves them intact. */
static int batched(void *arg, const br_msg *m, br_str bytes)
{
    br__link *l = arg;
    /* REQUESTs travel batched only from a broker that agreed to, REPLYs only to one
     * (PROTOCOL.md 5.16). */
    if ((m->type == BR_MSG_REQUEST && !l->req_batch) || m->type == BR_MSG_REPLY)
        return BR_EMSGTYPE;
    br__worker_handle_msg(l, m, bytes);
    return 0;
}

void br__batch_recv(br__link *l, br_str messages)
{
    int rc = br_ws_batch_each(l->w->dec, messages, batched, l);
    if (rc < 0)
        br__log("dropped the rest of a WS_BATCH: %s", br_strerror(rc));
}
