/*
 * batch.c - the messages of one loop turn for one worker, in one frame (PROTOCOL.md
 * 5.16, WS_BATCH).
 *
 * To a worker that reads WS_BATCH, the WebSocket messages of a loop turn - and, when it
 * agreed on BR_FEATURE_REQ_BATCH, the turn's REQUESTs - are encoded into the worker's
 * batch (barista/ws_batch.h) and sent as one ZeroMQ message by a check handle once the
 * turn's reads and writes are done.  Any other message to that worker (CANCEL, a
 * STREAM_CHUNK, HEARTBEAT...) sends the batch first (gw__broker_send), so what the
 * worker sees keeps the order we sent it in; a batch of one message is that message.
 * One frame per turn instead of one per request saves a zmq_send, the I/O thread's
 * wake-up and the worker's zmq_recv for each message after the first: most of the
 * hop's system time at load.  A batch adds no latency past the end of the current turn
 * (barista/turn_end.h: also when it was filled before the loop's poll).
 *
 * A worker's batches come back the same way: each message in it is handled as if it
 * had come alone.
 */
#include <string.h>

#include "broker_int.h"

static void on_turn_end(void *arg)
{
    gw_broker *b = arg;
    for (size_t i = 0; i < gw_registry_nworkers(b->reg); i++) {
        gw_worker *w = gw_registry_worker(b->reg, i);
        if (w && w->batch.count)
            gw__batch_flush(b, w);
    }
}

void gw__batch_start(gw_broker *b)
{
    br_turn_end_init(&b->batch_flush, b->loop, on_turn_end, b);
}

/* Both handles' close: their data is the br_turn_end, whose arg is the broker. */
static void on_batch_closed(uv_handle_t *h)
{
    br_turn_end *t = h->data;
    gw__broker_handle_closed(t->arg);
}

void gw__batch_close_handles(gw_broker *b)
{
    br_turn_end_close(&b->batch_flush, on_batch_closed);
}

void gw__batch_flush(gw_broker *b, gw_worker *w)
{
    uint32_t n = w->batch.count;
    br_str f = br_ws_batch_frame(&w->batch, w->proto_version);
    int rc = BR_ECLOSED;
    if (f.len && b->zs && !w->lost)
        rc = br_zsock_send(b->zs, w->ident, w->ident_len, f.ptr, f.len);
    if (f.len && rc == 0) {
        w->last_send = uv_now(b->loop);
        if (n > 1) {
            b->stats.batches_out++;
            b->stats.batched_out += n;
        }
    } else if (f.len && !w->lost) {
        gw_log(GW_LOG_ERROR, "broker",
               "br_zsock_send(WS_BATCH) to worker %s failed: %s; dropping the worker", w->id,
               br_strerror(rc));
        w->lost = true;
    }
    br_ws_batch_clear(&w->batch);
}

int gw__batch_send(gw_broker *b, gw_worker *w, const br_msg *m, size_t *bytes)
{
    if (!b->zs || w->lost)
        return BR_ECLOSED;
    if (br_ws_batch_bytes(&w->batch) >= BR_WS_BATCH_BYTES) {
        gw__batch_flush(b, w);
        if (w->lost)
            return BR_ECLOSED; /* the caller may still pick another worker */
    }
    size_t before = w->batch.buf.len;
    int rc = br_ws_batch_add(&w->batch, m, w->proto_version);
    if (rc != 0) {
        gw_log(GW_LOG_ERROR, "broker", "br_msg_encode(%s) failed: %s", br_msg_type_name(m->type),
               br_strerror(rc));
        return rc;
    }
    if (bytes)
        *bytes = w->batch.buf.len - (before ? before : BR_WS_BATCH_HEAD);
    br_turn_end_arm(&b->batch_flush);
    return 0;
}

/* Handing a received batch's messages on.  A message may end the worker's registration
 * (the last REPLY of a draining worker forgets it), so after one that removed a worker
 * the sender is looked up again by its routing id, and the rest dropped once it is
 * gone. */
typedef struct batch_ctx {
    gw_broker *b;                /* the broker */
    gw_worker *w;                /* the sender, while it is registered */
    uint8_t ident[GW_IDENT_MAX]; /* its routing id */
    size_t ident_len;            /* bytes of ident */
    uint64_t removals;           /* gw_registry_removals when w was last known good */
} batch_ctx;

static int batched(void *arg, const br_msg *m, br_str bytes)
{
    batch_ctx *ctx = arg;
    (void)bytes;
    /* REPLYs travel batched only from a worker that agreed to, REQUESTs only to one
     * (PROTOCOL.md 5.16). */
    if ((m->type == BR_MSG_REPLY && !ctx->w->req_batch) || m->type == BR_MSG_REQUEST)
        return BR_EMSGTYPE;
    ctx->b->stats.batched_in++;
    gw__broker_worker_msg(ctx->b, ctx->w, m);
    uint64_t removals = gw_registry_removals(ctx->b->reg);
    if (removals != ctx->removals) { /* some worker went: maybe this one */
        ctx->removals = removals;
        ctx->w = gw_registry_find(ctx->b->reg, ctx->ident, ctx->ident_len);
    }
    return ctx->w ? 0 : BR_ECLOSED;
}

void gw__batch_recv(gw_broker *b, gw_worker *w, br_str messages)
{
    batch_ctx ctx = {
        .b = b, .w = w, .ident_len = w->ident_len, .removals = gw_registry_removals(b->reg)};
    memcpy(ctx.ident, w->ident, w->ident_len);
    b->stats.batches_in++;
    int rc = br_ws_batch_each(b->decoder, messages, batched, &ctx);
    if (rc < 0 && rc != BR_ECLOSED) {
        b->stats.bad_messages++;
        gw_log(GW_LOG_WARN, "broker", "worker %s: rest of a WS_BATCH dropped: %s", ctx.w->id,
               br_strerror(rc));
    }
}
