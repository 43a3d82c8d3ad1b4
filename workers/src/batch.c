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
 * A message batched outside the I/O phase (a timer, or the drain zsock.c runs just
 * before the loop polls, which is where a burst of REQUESTs is often read) would wait
 * in the batch until that poll returns - for the next event or timer, up to the zsock
 * safety timer's 250 ms.  So an idle handle runs with the check handle: while it is
 * started the poll does not block, and the check sends the batch in the same turn.
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

static void on_wake(uv_idle_t *h)
{
    (void)h; /* being started is its whole job: the poll does not wait */
}

static void on_flush(uv_check_t *h)
{
    br_worker *w = h->data;
    uv_check_stop(h);
    uv_idle_stop(&w->batch_wake);
    for (uint32_t i = 0; i < w->nlinks; i++)
        if (w->links[i].batch.count)
            br__batch_flush_link(&w->links[i]);
}

void br__batch_close_handles(br_worker *w)
{
    if (!w->batch_flush_init)
        return;
    uv_close((uv_handle_t *)&w->batch_flush, NULL);
    uv_close((uv_handle_t *)&w->batch_wake, NULL);
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
        uv_check_init(&w->loop, &w->batch_flush);
        uv_idle_init(&w->loop, &w->batch_wake);
        w->batch_flush.data = w->batch_wake.data = w;
        w->batch_flush_init = true;
    }
    uv_check_start(&w->batch_flush, on_flush); /* both no-ops while started */
    uv_idle_start(&w->batch_wake, on_wake);
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
