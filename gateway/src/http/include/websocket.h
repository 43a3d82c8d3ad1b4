/*
 * websocket.h - WebSocket connections (RFC 6455) as the HTTP server's handlers see them.
 *
 * A handler that routes a request to a WebSocket endpoint calls gw_req_upgrade(): the
 * server checks the opening handshake (answering 400 or 426 itself when it is wrong),
 * sends 101 and turns the connection into a gw_ws_conn.  From then on the server does
 * all framing - masking, fragments, control frames, UTF-8, size limits, ping/pong,
 * idle pings and the close handshake - and the owner sees whole messages through its
 * hooks and sends whole messages with gw_ws_send().  With cfg->deflate the server
 * accepts permessage-deflate (RFC 7692) when the client offers it, inflates the
 * client's compressed messages and compresses the longer ones it sends; the owner sees
 * and sends plain bytes either way.
 *
 * Lifetime: a gw_ws_conn is valid from gw_req_upgrade() until either its on_close hook
 * has run or its owner called gw_ws_close(); after either, the owner never touches it
 * again (the server frees it once the socket is closed).  Server shutdown closes every
 * WebSocket with 1001 (on_close runs with that code).
 */
#ifndef BARISTA_GW_WEBSOCKET_H
#define BARISTA_GW_WEBSOCKET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http.h"

/* Defaults of gw_ws_config (docs/gateway.md, "WebSockets"). */
#define GW_WS_MAX_FRAME_BYTES   (1024u * 1024)
#define GW_WS_MAX_MESSAGE_BYTES (1024u * 1024)
#define GW_WS_MAX_OUTPUT_BYTES  (4u * 1024 * 1024)
#define GW_WS_PING_INTERVAL_MS  30000u
#define GW_WS_PONG_TIMEOUT_MS   10000u
#define GW_WS_CLOSE_TIMEOUT_MS  5000u
#define GW_WS_DEFLATE           true
#define GW_WS_DEFLATE_MIN_BYTES 256u
#define GW_WS_DEFLATE_LEVEL     6

/* The limits and timers of one WebSocket connection. */
typedef struct gw_ws_config {
    size_t max_frame_bytes;    /* payload of one client frame -> close 1009 */
    size_t max_message_bytes;  /* payload of one client message, inflated when compressed
                                  -> close 1009 */
    size_t max_output_bytes;   /* bytes queued for the client; gw_ws_send refuses past it */
    uint32_t ping_interval_ms; /* a connection silent this long is pinged */
    uint32_t pong_timeout_ms;  /* ... and closed when still silent this long after */
    uint32_t close_timeout_ms; /* after our close frame, how long the client's may take */
    bool deflate;              /* accept a client's permessage-deflate offer (RFC 7692) */
    size_t deflate_min_bytes;  /* with it, messages this long or longer are compressed */
    int deflate_level;         /* zlib level of that compression, 1..9 */
} gw_ws_config;

/* Fills *cfg with the defaults above. */
void gw_ws_config_defaults(gw_ws_config *cfg);

typedef struct gw_ws_conn gw_ws_conn;

/* What the owner of a connection is told; `data` is the pointer given at upgrade. */
typedef struct gw_ws_hooks {
    /* A whole message from the client (text is valid UTF-8).  The bytes are valid only
     * during the call. */
    void (*on_message)(void *data, gw_ws_conn *ws, bool text, const uint8_t *msg, size_t len);
    /* Data messages of the owner's that reached the socket since the last call. */
    void (*on_sent)(void *data, gw_ws_conn *ws, uint32_t messages);
    /* The connection is over for the owner: the client closed (its code, 1005 for none),
     * broke the protocol (the code it was closed with), went away (1006), or the server
     * shuts down (1001).  `ws` is invalid once it returns. */
    void (*on_close)(void *data, gw_ws_conn *ws, uint16_t code, const char *reason,
                     size_t reason_len);
} gw_ws_hooks;

/* Answers req with 101 and makes its connection a WebSocket, when the request is a
 * valid opening handshake: GET, `Upgrade: websocket`, `Connection: upgrade`,
 * `Sec-WebSocket-Version: 13` (else 426 with the version), a `Sec-WebSocket-Key` of 16
 * bytes in base64 (else 400); a permessage-deflate offer is answered in
 * Sec-WebSocket-Extensions when cfg->deflate.  `subprotocols` is the space-separated
 * list the endpoint speaks (NULL or "": none); the client's first match is answered in
 * Sec-WebSocket-Protocol.  cfg and hooks are borrowed and must outlive the connection
 * (not copied, so that an idle connection stays small); data is borrowed.  Returns the
 * connection, or NULL when the request was answered with an error instead (or memory
 * ran out: then 500).  *chosen (may be NULL) gets the subprotocol chosen, NUL-terminated ("" for
 * none), valid until the request would have been answered. */
gw_ws_conn *gw_req_upgrade(gw_req *req, const char *subprotocols, const gw_ws_config *cfg,
                           const gw_ws_hooks *hooks, void *data, const char **chosen);

/* Queues one whole message for the client.  Returns 0; BR_EFULL when it would take the
 * queued bytes past max_output_bytes (nothing queued); BR_ECLOSED once the connection is
 * closing; BR_ENOMEM. */
int gw_ws_send(gw_ws_conn *ws, bool text, const void *msg, size_t len);

/* Starts the close handshake with code (1000-1014 except 1004-1006, or 3000-4999; other
 * codes become 1011) and a reason (cut to fit).  The owner lets go of ws: no hook runs
 * for it again. */
void gw_ws_close(gw_ws_conn *ws, uint16_t code, const char *reason, size_t reason_len);

/* Stops (true) or resumes (false) reading the client: flow control when the owner
 * cannot take more messages now. */
void gw_ws_pause(gw_ws_conn *ws, bool paused);

/* Bytes queued for the client and not yet written. */
size_t gw_ws_output_bytes(const gw_ws_conn *ws);

#endif /* BARISTA_GW_WEBSOCKET_H */
