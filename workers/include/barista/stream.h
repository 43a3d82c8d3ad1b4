/*
 * barista/stream.h - streamed responses and Server-Sent Events (Starlette's
 * StreamingResponse and EventSourceResponse).
 *
 * Instead of one br_reply_* call, an I/O handler may start a response with its status
 * and headers (br_stream_start), send the body in pieces (br_stream_write), and end it
 * (br_stream_end).  The client receives the pieces as they come: chunked
 * transfer-coding for HTTP/1.1, a body delimited by the connection's close for
 * HTTP/1.0.  Headers set with br_reply_header before the start go with it; the
 * service's after hook runs at the start.
 *
 * Flow control.  The gateway grants the worker a window of bytes per stream and stops
 * granting while the client reads slowly, so a slow client never grows the gateway's
 * memory.  What the handler writes beyond the window waits in the request, up to
 * BR_STREAM_QUEUE_MAX bytes; past that br_stream_write refuses with BR_EFULL.  A handler
 * that produces faster than its client reads registers br_stream_on_writable and
 * writes more when it is called.
 *
 * Cancellation.  When the client goes away (or the stream idles past the gateway's
 * --stream-idle-timeout), the broker cancels the request: the handler's cancel callback
 * (br_req_on_cancel) runs, br_req_cancelled() turns true, and br_stream_write answers
 * BR_ECLOSED.  The handler stops its work and still ends the request, with
 * br_stream_end or br_stream_abort, exactly as a cancelled buffered request still
 * replies.
 *
 * A stream ends the request like a reply: after br_stream_end or br_stream_abort the
 * handler must not touch `req` again.  I/O handlers only, on the loop thread; a CPU
 * handler gets BR_EINVAL.
 */
#ifndef BARISTA_STREAM_H
#define BARISTA_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "barista/worker.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The most bytes a stream keeps in the worker waiting for the gateway's window. */
#define BR_STREAM_QUEUE_MAX (1024u * 1024u)

/* The most bytes one STREAM_CHUNK carries; longer writes go in several. */
#define BR_STREAM_CHUNK_MAX (64u * 1024u)

/* Starts a streamed response with `status` (200..599, not 204 or 304) and
 * `content_type` (NULL: application/octet-stream).  Returns 0; BR_EINVAL when the
 * request already replied or started a stream, from a CPU handler, on a keyed-actor
 * route (a turn ends with its state commit, which a stream cannot carry), or for a bad
 * status; BR_ENOMEM.  On failure nothing was sent and the handler still owes a reply. */
int br_stream_start(br_req *req, uint16_t status, const char *content_type);

/* Sends len bytes (copied) as the next piece of the body: at once while the window
 * allows, else queued.  Returns 0; BR_EINVAL when no stream is open; BR_ECLOSED once
 * the request was cancelled (the handler ends it); BR_EFULL when the queue would pass
 * BR_STREAM_QUEUE_MAX (nothing was queued: wait for br_stream_on_writable); BR_ENOMEM. */
int br_stream_write(br_req *req, const void *data, size_t len);

/* Ends the stream: the queued bytes go as the window allows, then the end, and the
 * client receives a complete body.  The request ends for the handler now.  Returns 0
 * or BR_EINVAL when no stream is open. */
int br_stream_end(br_req *req);

/* Ends the stream as failed: queued bytes are dropped and the client sees a truncated
 * body (no terminating chunk; the connection closes), never a complete-looking one.
 * `why` (NULL: "aborted") goes to the gateway's log.  Returns as br_stream_end. */
int br_stream_abort(br_req *req, const char *why);

/* Bytes written and not yet sent to the gateway (waiting for window). */
size_t br_stream_queued(const br_req *req);

/* Called on the loop thread when the gateway granted more window and the queue is
 * below half of BR_STREAM_QUEUE_MAX.  It may write, end or abort the stream. */
typedef void (*br_stream_fn)(br_req *req, void *arg);

/* Registers fn(req, arg) (NULL removes it); a later call replaces an earlier one. */
void br_stream_on_writable(br_req *req, br_stream_fn fn, void *arg);

/* ---------------------------------------------------------------------------------- */
/* Server-Sent Events (text/event-stream, the WHATWG HTML standard's format).           */

/* Starts an event stream: status 200, content type text/event-stream, and
 * cache-control: no-cache (plus x-accel-buffering: no, so that proxies in front do not
 * hold events back).  Returns as br_stream_start. */
int br_sse_start(br_req *req);

/* Sends one event.  `id` and `event` (NULL or "" to leave out) must not hold CR or LF;
 * data[0..len) is split into one `data:` line per line (at CRLF, LF or CR), so that a
 * client joins it back with LF.  Returns as br_stream_write, or BR_EINVAL for an id or
 * name with a line break. */
int br_sse_event(br_req *req, const char *id, const char *event, const char *data, size_t len);

/* Asks the client to wait `ms` before reconnecting after the stream ends. */
int br_sse_retry(br_req *req, uint32_t ms);

/* Sends a comment line (`: text`), which clients ignore: a keep-alive through proxies
 * that close idle connections.  `text` (NULL: empty) is split at line breaks. */
int br_sse_comment(br_req *req, const char *text);

/* ---------------------------------------------------------------------------------- */
/* Streamed request bodies: a route declared with .stream_body = true gets its handler  */
/* called once the headers are in, with an empty br_req_body, and the body in pieces.   */
/* The worker grants the gateway a window of BR_BODY_WINDOW bytes and renews it as the  */
/* handler takes pieces, so neither side holds more than that of a body of any size.    */

/* Body bytes a request lets the gateway send ahead of its handler. */
#define BR_BODY_WINDOW (256u * 1024u)

/* A piece of the body (len > 0), in order. */
typedef void (*br_body_fn)(br_req *req, const void *data, size_t len, void *arg);

/* The body ended: complete, or not (the client's body failed; the gateway has answered
 * it, and the request is cancelled: end it with any reply). */
typedef void (*br_body_end_fn)(br_req *req, bool complete, void *arg);

/* Starts taking the body of a stream_body route: on_data for each piece, then on_end
 * once.  Call it from the handler (I/O services).  Returns 0, or BR_EINVAL when the
 * route does not stream its body or it was called before. */
int br_req_body_stream(br_req *req, br_body_fn on_data, br_body_end_fn on_end, void *arg);

#ifdef __cplusplus
}
#endif

#endif /* BARISTA_STREAM_H */
