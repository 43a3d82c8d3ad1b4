/*
 * ws_deflate.h - the permessage-deflate extension (RFC 7692): the handshake's offer and
 * answer, inflating a client's compressed message under a size bound, and deflating
 * the gateway's messages.
 *
 * The gateway always answers with server_no_context_takeover and
 * client_no_context_takeover (7.1.1): neither side keeps an LZ77 window between
 * messages, so an idle connection holds no zlib state at all (a kept window costs
 * 32 KiB to inflate and about 256 KiB to deflate, per connection), a message is
 * inflated with a stream made for it, and one deflater per process serves every
 * connection.  The price is a worse ratio on streams of small similar messages.
 */
#ifndef BARISTA_GW_WS_DEFLATE_H
#define BARISTA_GW_WS_DEFLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "barista/proto.h"

/* The longest Sec-WebSocket-Extensions answer gw_ws_pmd_negotiate writes, NUL included. */
#define GW_WS_PMD_ANSWER_MAX 128

/* What a handshake agreed on. */
typedef struct gw_ws_pmd {
    bool on;             /* permessage-deflate is in use on the connection */
    uint8_t server_bits; /* the largest LZ77 window the gateway may compress with
                            (server_max_window_bits, 8..15; 15 when not asked) */
} gw_ws_pmd;

/* Reads the client's Sec-WebSocket-Extensions value (`offers`, may be NULL) and accepts
 * the first permessage-deflate offer whose parameters are all known, given once and
 * valid (server_no_context_takeover, client_no_context_takeover, server_max_window_bits
 * 8..15, client_max_window_bits with no value or 8..15); other extensions are ignored.
 * On success fills *out and writes the answer's value into `answer` and returns true;
 * else returns false and the connection goes on without compression. */
bool gw_ws_pmd_negotiate(const char *offers, size_t len, gw_ws_pmd *out,
                         char answer[GW_WS_PMD_ANSWER_MAX]);

/* Inflates one whole compressed message (its frames' payloads together, without the
 * 00 00 ff ff tail the sender removed) into out, which must be empty; out->max bounds the
 * result.  Returns 0; BR_ELIMIT when the message inflates past out->max (close 1009,
 * whatever the ratio: a zip bomb stops at the bound); BR_EVALUE when the bytes are not
 * a valid deflate stream (close 1007); BR_ENOMEM. */
int gw_ws_inflate(const uint8_t *in, size_t len, br_buf *out);

/* A deflater shared by every connection of a process: each message is compressed from
 * an empty window (no context takeover). */
typedef struct gw_ws_deflater gw_ws_deflater;

/* A deflater of window `bits` (9..15) at zlib level `level` (1..9); NULL when memory
 * runs out. */
gw_ws_deflater *gw_ws_deflater_new(int bits, int level);

/* Frees *d and NULLs it; safe on NULL and twice. */
void gw_ws_deflater_destroy(gw_ws_deflater **d);

/* Compresses msg[0..len) as one message into out (appended, tail removed, ready to be
 * the payload of a frame with RSV1 set).  Returns 0; BR_EFULL when the result would not
 * be smaller than the message (send it as it is); BR_ENOMEM. */
int gw_ws_deflate(gw_ws_deflater *d, const uint8_t *msg, size_t len, br_buf *out);

#endif /* BARISTA_GW_WS_DEFLATE_H */
