/*
 * ws_batch.h - several WebSocket messages in one frame (WS_BATCH, PROTOCOL.md 5.16).
 *
 * A sender that talks to a peer reading WS_BATCH (BR_FEATURE_WS_BATCH) adds the
 * WS_MESSAGE, WS_CLOSE, WS_CREDIT and WS_GROUP messages it has for that peer - and,
 * with BR_FEATURE_REQ_BATCH agreed too, its REQUESTs (broker) or REPLYs (worker) - to
 * one br_ws_batch during a loop turn and sends the batch once, at the end of the turn:
 * one ZeroMQ message (one wake-up of each side's I/O thread and loop) for all of them.
 * The batch keeps room at its front for the WS_BATCH envelope, so the messages are
 * encoded once, in place, and never copied.  A batch of one message is sent as that
 * message, so that a quiet connection costs what it did without batches.
 *
 * A receiver takes the messages back out of WS_BATCH.messages with
 * br_ws_batch_next and decodes each as the message it is.
 */
#ifndef BARISTA_WS_BATCH_H
#define BARISTA_WS_BATCH_H

#include "barista/proto.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bytes kept at the front of a batch for the envelope: fixarray(3), version, type and
 * a bin 32 header. */
#define BR_WS_BATCH_HEAD 8
/* A sender sends its batch once it holds this many bytes of messages, so that a batch
 * stays far below max_message and one busy turn does not hold the peer's messages
 * back until its end. */
#define BR_WS_BATCH_BYTES (64u * 1024u)

typedef struct br_ws_batch {
    br_buf buf;     /* BR_WS_BATCH_HEAD bytes of room, then the encoded messages */
    uint32_t count; /* messages in buf */
} br_ws_batch;

/* Appends msg, encoded in protocol version `version`.  Returns 0 or br_msg_encode's
 * error (nothing is added then). */
int br_ws_batch_add(br_ws_batch *b, const br_msg *msg, unsigned version);

/* Bytes of messages in b (without the room for the envelope). */
size_t br_ws_batch_bytes(const br_ws_batch *b);

/* The frame that carries every message added since the last clear: the message itself
 * when there is one, else the WS_BATCH (in version `version`) of them all; empty when
 * b holds none.  Points into b: valid until b changes. */
br_str br_ws_batch_frame(br_ws_batch *b, unsigned version);

/* Forgets the messages added (keeps the memory for the next turn). */
void br_ws_batch_clear(br_ws_batch *b);

/* Releases b's memory; safe on a zeroed batch and safe twice. */
void br_ws_batch_free(br_ws_batch *b);

/* Takes the first message off *rest (a received WS_BATCH.messages): 1 with *msg set to
 * its bytes, 0 when rest is empty, or BR_ETRUNC / BR_ETYPE when what is left is not
 * a whole msgpack value (the rest is then unusable: drop it).  Checks no more than that:
 * the caller decodes *msg and must refuse any type br_ws_batch_carries refuses (a
 * WS_BATCH never nests). */
int br_ws_batch_next(br_str *rest, br_str *msg);

/* Whether a message of this type may travel inside a WS_BATCH: the WS_* messages and,
 * between peers that agreed on BR_FEATURE_REQ_BATCH, REQUEST and REPLY. */
bool br_ws_batch_carries(unsigned type);

/* Decodes the messages of a received WS_BATCH (`messages`, bytes of the received frame,
 * not of dec) one by one with dec and calls fn for each, in order, with its bytes (a
 * slice of `messages`, for a receiver that keeps them).  Stops at the first one that
 * does not decode or may not travel in a batch, or for which fn returns non-zero:
 * returns 0 when every message was handed on, else that error or fn's value (what came
 * before was handed on). */
int br_ws_batch_each(br_decoder *dec, br_str messages,
                     int (*fn)(void *arg, const br_msg *m, br_str bytes), void *arg);

#ifdef __cplusplus
}
#endif

#endif /* BARISTA_WS_BATCH_H */
