/*
 * ws_frame.h - WebSocket framing (RFC 6455, section 5): a parser that turns a client's
 * bytes into whole messages and control frames, and the encoder for the frames the
 * gateway sends.
 *
 * The parser is pure: no I/O, no loop.  It enforces every rule a server must: client
 * frames are masked, no reserved bits (RSV1 only on the first frame of a compressed
 * message when permessage-deflate was negotiated), no unknown opcode,
 * control frames of at most 125 bytes and never fragmented, continuation frames only
 * inside a fragmented message and data frames never inside one, minimal length
 * encodings, text that is UTF-8 (checked as it arrives, across fragments, so an invalid
 * byte fails at once; a compressed one once inflated), and the configured frame and
 * message sizes, the inflated size of a compressed message included.  A violation ends
 * the parser with the close code the connection must be closed with (1002, 1007 or
 * 1009).
 */
#ifndef BARISTA_GW_WS_FRAME_H
#define BARISTA_GW_WS_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "barista/proto.h"

/* Opcodes (RFC 6455, 5.2). */
enum {
    GW_WS_OP_CONT = 0x0,
    GW_WS_OP_TEXT = 0x1,
    GW_WS_OP_BINARY = 0x2,
    GW_WS_OP_CLOSE = 0x8,
    GW_WS_OP_PING = 0x9,
    GW_WS_OP_PONG = 0xa
};

/* Close codes the gateway uses (RFC 6455, 7.4.1; 1012 from the IANA registry). */
enum {
    GW_WS_CLOSE_NORMAL = 1000,
    GW_WS_CLOSE_GOING_AWAY = 1001,
    GW_WS_CLOSE_PROTOCOL = 1002,
    GW_WS_CLOSE_NO_STATUS = 1005, /* never sent: a close frame without a payload */
    GW_WS_CLOSE_ABNORMAL = 1006,  /* never sent: the connection ended without one */
    GW_WS_CLOSE_BAD_DATA = 1007,
    GW_WS_CLOSE_POLICY = 1008,
    GW_WS_CLOSE_TOO_BIG = 1009,
    GW_WS_CLOSE_INTERNAL = 1011,
    GW_WS_CLOSE_RESTART = 1012
};

/* The largest control frame payload (5.5). */
#define GW_WS_MAX_CONTROL 125

/* The first header byte's RSV1 bit: a compressed message (RFC 7692, 6). */
#define GW_WS_RSV1 0x40

/* The longest frame header: 2 bytes, 8 of extended length, 4 of mask. */
#define GW_WS_MAX_HEADER 14

/* What one step of the parser produced. */
typedef enum gw_ws_event_kind {
    GW_WS_EV_NONE = 0, /* all input consumed, nothing complete: feed more */
    GW_WS_EV_MESSAGE,  /* a whole text or binary message */
    GW_WS_EV_PING,     /* a ping; answer with a pong of the same payload */
    GW_WS_EV_PONG,     /* a pong */
    GW_WS_EV_CLOSE,    /* the peer's close frame (code and reason checked) */
    GW_WS_EV_ERROR     /* the peer broke the protocol: close with `code`; the parser is done */
} gw_ws_event_kind;

typedef struct gw_ws_event {
    gw_ws_event_kind kind; /* see gw_ws_event_kind */
    bool text;             /* MESSAGE: a text message (valid UTF-8) rather than binary */
    const uint8_t *data;   /* MESSAGE, PING, PONG: the payload; CLOSE: the reason.  Valid
                              until the next call on the parser */
    size_t len;            /* bytes at data */
    uint16_t code;         /* CLOSE: the peer's code (1005 when it gave none); ERROR: the
                              code to close with */
    const char *why;       /* ERROR: a static description, for logs */
} gw_ws_event;

/* The parser's limits. */
typedef struct gw_ws_limits {
    uint64_t max_frame;   /* payload bytes of one frame; larger -> 1009 */
    uint64_t max_message; /* payload bytes of one whole message; larger -> 1009 */
    bool require_mask;    /* frames must be masked (a server reading a client) -> 1002 */
    bool deflate;         /* permessage-deflate was negotiated: RSV1 marks a compressed
                             message, inflated (no context takeover) up to max_message;
                             else RSV1 -> 1002.  Bad DEFLATE data -> 1007 */
} gw_ws_limits;

typedef struct gw_ws_parser {
    gw_ws_limits lim;               /* as given */
    uint8_t head[GW_WS_MAX_HEADER]; /* the frame header being read */
    size_t head_len;                /* bytes in head */
    bool in_frame;                  /* a header is complete; its payload is being read */
    bool fin;                       /* the current frame's FIN bit */
    uint8_t opcode;                 /* the current frame's opcode */
    uint8_t mask[4];                /* its masking key (zeros when unmasked) */
    uint64_t frame_len;             /* its payload length */
    uint64_t frame_got;             /* payload bytes read so far */
    uint8_t msg_op;                 /* TEXT or BINARY while a message is assembled, else 0 */
    br_buf msg;                     /* the message's payload so far (max: max_message) */
    size_t utf8_ok;                 /* bytes of msg known to be complete UTF-8 sequences */
    bool msg_deflated;              /* the message being assembled is compressed (RSV1) */
    br_buf plain;                   /* a compressed message, inflated (max: max_message) */
    uint8_t *ctl;                   /* a control frame's payload (GW_WS_MAX_CONTROL bytes,
                                       allocated at the first control frame that has one:
                                       idle connections do without) */
    bool done;                      /* a close frame or an error was returned */
} gw_ws_parser;

/* Starts a parser with `lim` (copied).  The parser owns memory until
 * gw_ws_parser_reset(). */
void gw_ws_parser_init(gw_ws_parser *p, const gw_ws_limits *lim);

/* Releases the parser's memory; it may be initialised again. */
void gw_ws_parser_reset(gw_ws_parser *p);

/* Bytes of memory the parser holds now (the partial message's buffer and the last
 * inflated one). */
size_t gw_ws_parser_memory(const gw_ws_parser *p);

/* Reads from data[0..len) until one event is complete or the input ends; *used gets the
 * bytes consumed (call again with the rest).  Returns the event's kind (also in ev):
 * NONE when all of it was consumed without completing anything.  After CLOSE or ERROR
 * the parser consumes nothing more.  A message's payload is unmasked in place in the
 * parser's buffer; ev->data stays valid until the next call. */
gw_ws_event_kind gw_ws_parser_feed(gw_ws_parser *p, const uint8_t *data, size_t len, size_t *used,
                                   gw_ws_event *ev);

/* Writes a frame header for an unmasked (server) frame, or a masked one when mask is not
 * NULL, into out; returns its length (2..14). */
size_t gw_ws_frame_header(uint8_t out[GW_WS_MAX_HEADER], bool fin, uint8_t opcode, uint64_t len,
                          const uint8_t *mask);

/* XORs p[0..n) with mask, starting at the mask byte `offset % 4` (masking and unmasking
 * are the same operation). */
void gw_ws_mask(uint8_t *p, size_t n, const uint8_t mask[4], uint64_t offset);

/* True when `code` may appear in a close frame on the wire (1000-1003, 1007-1014,
 * 3000-4999). */
bool gw_ws_close_code_valid(uint32_t code);

/* Writes a close payload (code, then reason cut to fit 125 bytes at a UTF-8 boundary)
 * into out; returns its length. */
size_t gw_ws_close_payload(uint8_t out[GW_WS_MAX_CONTROL], uint16_t code, const char *reason,
                           size_t reason_len);

#endif /* BARISTA_GW_WS_FRAME_H */
