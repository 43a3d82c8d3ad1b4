/*
 * http_conn.h - private to the HTTP server: the server, connection and request
 * objects shared by http_server.c (listening, scheduling, shutdown), http_conn.c
 * (reading, writing, timing and closing one connection), http_parse.c (llhttp's
 * callbacks), http_response.c (serialising answers) and http_stats.c (counters).
 * Nothing outside gateway/src/http includes it.
 */
#ifndef BARISTA_GW_HTTP_CONN_H
#define BARISTA_GW_HTTP_CONN_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <llhttp.h>
#include <uv.h>

#include "barista/proto.h"

#include "http.h"
#include "http_head.h"
#include "http_server.h"
#include "list.h"
#include "pool.h"

/* Bytes read from a socket at once; one buffer serves every connection because
 * libuv hands each read to its callback before the next allocation. */
#define GW_HTTP_READ_BUFFER (64 * 1024)

/* Header slots a request object starts with (grown by doubling up to max_headers,
 * then kept with the pooled object). */
#define GW_HTTP_HEADERS_INITIAL 8

/* A request's arena keeps its memory between requests unless it grew past this
 * (a large body); then it is released so idle connections stay small. */
#define GW_HTTP_ARENA_KEEP (16 * 1024)

/* After the last response of a closing connection, how long unread input is drained
 * so that the client sees the response and not a reset. */
#define GW_HTTP_LINGER_MS 2000

/* A chunk size line's shortest form is at most 16 hex digits and CRLF: while one is
 * being read, the count of chunk-line bytes beyond the shortest form may run ahead of
 * its final value by this much. */
#define GW_HTTP_CHUNK_LINE_SLACK 18

/* Lists of connections by timeout (http_timeouts.c): one per distinct timeout in use,
 * the first kept for connections whose timeout is being handled.  More distinct
 * timeouts than lists share the last one, kept in order by a walk from its tail. */
#define GW_HTTP_TIMEOUT_LISTS 16

/* Connections turned away with a 503 that may be in their short goodbye at once;
 * past this an excess connection is closed without an answer. */
#define GW_HTTP_MAX_REJECTING 256

/* Where a request is in its life. */
typedef enum gw_req_state {
    GW_REQ_PARSING,   /* bytes still arriving */
    GW_REQ_HANDLING,  /* handed to a handler, not answered yet */
    GW_REQ_STREAMING, /* answered with a stream that has not ended (http_stream.c) */
    GW_REQ_READY,     /* answered; waiting for earlier answers to go out */
    GW_REQ_WRITING,   /* in the connection's current uv_write */
    GW_REQ_ABORTED    /* its client left before the answer; none is expected */
} gw_req_state;

/* A header's position in the arena while the request is parsed (the arena may move
 * as it grows; pointers are made once it is complete). */
typedef struct gw_hdr_off {
    uint32_t name_off;  /* arena offset of the lower-cased name */
    uint32_t name_len;  /* bytes of the name */
    uint32_t value_off; /* arena offset of the value */
    uint32_t value_len; /* bytes of the trimmed value */
} gw_hdr_off;

struct gw_conn;

/* One request and its answer.  Pooled per connection: the buffers keep their memory
 * from one request to the next, so steady-state serving does not allocate. */
typedef struct gw_http_req {
    gw_req pub;               /* what handlers see; first, so a gw_req* converts back */
    struct gw_conn *conn;     /* the connection it arrived on */
    struct gw_http_req *next; /* next in the connection's queue or free list */
    gw_req_state state;       /* see gw_req_state */
    br_buf arena;             /* target, header names and values, body, NUL-separated;
                                 max set per request (http_parse.c) */
    br_buf resp;              /* the serialised answer; max set as it is built */
    gw_header *hdrs;          /* header slots: positions (gw__hdr_off) while parsing,
                                 pointers once complete (pub.headers) */
    size_t nhdrs;             /* headers used */
    size_t hdr_cap;           /* entries allocated in offs and hdrs */
    size_t url_len;           /* bytes of the request target at the arena's start */
    size_t body_off;          /* arena offset of the body */
    size_t body_len;          /* body bytes so far */
    gw_abort_fn abort_fn;     /* told if the request dies unanswered */
    void *abort_arg;          /* abort_fn's argument */
    bool head;                /* HEAD: answer without a body */
    bool http10;              /* HTTP/1.0 request (answers say keep-alive explicitly) */
    bool keep_alive;          /* the connection may carry another request after this */
    bool close_after;         /* the connection closes once this answer is written */
    bool continue_pending;    /* owes the client "100 Continue" before the body */
    bool headers_done;        /* headers complete; body (if any) being read */
    bool upgrade;             /* answered 101: the connection becomes a WebSocket */
    size_t held;              /* arena bytes counted in conn->input_bytes */
    size_t buffered;          /* body bytes counted in the server's body_bytes */
    /* A streamed answer (http_stream.c).  Its framed bytes collect in sbuf; a flush
     * swaps sbuf and resp and writes resp, so that nothing moves under a write. */
    br_buf sbuf;                 /* stream bytes not yet handed to a write */
    gw_stream_drain_fn drain_fn; /* told when a write of stream bytes completed */
    void *drain_arg;             /* drain_fn's argument */
    size_t stream_bytes;         /* bytes of the whole answer so far (for the filter) */
    int stream_status;           /* the stream's status */
    bool stream_chunked;         /* chunked framing; else delimited by the close */
    bool stream_ended;           /* gw_req_stream_end was called */
    bool stream_inflight;        /* resp holds stream bytes in the current write */
    bool stream_filtered;        /* the filter's on_stream_data transforms the bytes */
    /* A streamed request body (http_body.c): handled from its headers on. */
    gw_body_fn body_fn;  /* the consumer, or NULL before it registered */
    void *body_arg;      /* its argument */
    uint64_t body_max;   /* the route's cap on the body */
    uint64_t body_seen;  /* body bytes read so far */
    bool body_streaming; /* the body is being read and streamed to body_fn */
    bool body_paused;    /* the consumer paused it */
} gw_http_req;

/* Header i's position while r is parsed.  Positions live in the memory of the header
 * slots (a gw_hdr_off is half a gw_header), so a request needs no second array;
 * req_finish turns them into pointers in place. */
static inline gw_hdr_off *gw__hdr_off(gw_http_req *r, size_t i)
{
    return (gw_hdr_off *)(void *)r->hdrs + i;
}
_Static_assert(2 * sizeof(gw_hdr_off) <= sizeof(gw_header), "header positions fit the slots");

/* What the connection's timeout is measuring (one at a time; http_timeouts.c). */
typedef enum gw_conn_phase {
    GW_PHASE_NONE,    /* waiting on handlers: no client timeout */
    GW_PHASE_IDLE,    /* between requests (keep-alive) or before the first byte */
    GW_PHASE_HEADERS, /* reading a request's line and headers */
    GW_PHASE_BODY,    /* reading a body */
    GW_PHASE_SEND,    /* a write is waiting on the client */
    GW_PHASE_LINGER,  /* last answer sent; draining input before closing */
    GW_PHASE_WS,      /* a WebSocket: silence until the next ping (or the pong's wait) */
    GW_PHASE_WS_CLOSE /* a WebSocket: our close frame sent, waiting for the client's */
} gw_conn_phase;

typedef struct gw_conn {
    uv_tcp_t tcp;                  /* the client socket (first: handle->data aside) */
    gw_list tlink;                 /* in one of server->timeouts while a phase times out */
    llhttp_t parser;               /* llhttp, strict; data points back here */
    struct gw_http_server *server; /* owner */
    struct gw_conn *prev, *next;   /* the server's list of connections */
    struct gw_conn *flush_next;    /* the server's list of connections with answers due */
    gw_http_req *head, *tail;      /* requests in arrival order (answers go in this order) */
    gw_http_req *parsing;          /* the request being read (the tail), or NULL */
    gw_http_req *free_reqs;        /* pooled request objects */
    size_t nqueued;                /* requests in the queue past parsing */
    size_t nfree;                  /* objects in the pool */
    size_t output_bytes;           /* answer bytes ready or being written */
    size_t input_bytes;            /* bytes of parsed requests not yet written back */
    br_buf pending_in;             /* input read but not parsed while reading is paused
                                      (max GW_HTTP_READ_BUFFER), or a 503 being sent */
    gw_conn_phase phase;           /* what the timeout measures */
    uint64_t deadline;             /* loop time (ms) when the phase times out */
    gw_head_scan scan;             /* line structure and size of the head being read */
    int64_t chunk_excess;          /* chunked body: bytes of its lines beyond the shortest
                                      form so far (max_chunk_ext_bytes); may dip below 0
                                      while a chunk's data is read */
    int err_status;                /* status a failing parser callback asked for */
    const char *err_detail;        /* and its reason (static string) */
    int host_count;                /* Host headers in the current request */
    bool expect_continue;          /* current request sent Expect: 100-continue */
    bool transfer_encoding;        /* current request has a Transfer-Encoding header */
    bool connection_close;         /* ... its Connection header lists "close" */
    bool connection_keep_alive;    /* ... its Connection header lists "keep-alive" */
    bool chunk_lines;              /* reading a chunked body's chunks (not its trailers) */
    bool field_open;               /* a header name is being read */
    bool failed;                   /* an error answer is queued; nothing more is parsed */
    bool lingering;                /* last answer sent; input is discarded until EOF */
    bool peer_eof;                 /* the client shut down its side: answer what is ready,
                                      then close */
    bool reading;                  /* uv_read_start is in effect */
    bool writing;                  /* a uv_write (gw__conn_write) is in flight */
    bool want_close;               /* read no more requests; close after the last answer */
    bool flush_queued;             /* on the server's flush list */
    bool closing;                  /* uv_close called; waiting for handle callbacks */
    bool rejecting;                /* a turned-away connection (503) - not counted */
    bool upgrade_req;              /* the last request asked for an Upgrade: input after it
                                      is kept for the protocol it may switch to */
    struct gw_ws_conn *ws;         /* a WebSocket once its upgrade was granted (ws_conn.c) */
    int open_handles;              /* tcp handle not yet closed */
    union {                        /* the client's address (zeroed when unknown): a */
        struct sockaddr sa;        /* TCP peer is IPv4 or IPv6, so this is a fifth */
        struct sockaddr_in in;     /* of a sockaddr_storage */
        struct sockaddr_in6 in6;
    } peer;
} gw_conn;

/* Connections in deadline order, earliest first.  Every connection in a list of one
 * timeout was appended at now + ms, and the loop's clock never goes back, so appending
 * keeps the order: one timer for all of them, and O(1) to add or remove. */
typedef struct gw_timeout_list {
    uint32_t ms;   /* the timeout of its connections (last list: mixed) */
    gw_list conns; /* gw_conn.tlink, earliest first */
} gw_timeout_list;

struct gw_http_server {
    uv_loop_t *loop;           /* the one loop */
    gw_router *router;         /* borrowed */
    gw_http_config cfg;        /* limits */
    uv_tcp_t listener;         /* the listening socket */
    uv_check_t flush_check;    /* writes answers after the poll phase ... */
    uv_idle_t flush_idle;      /* ... or before the next poll when answered from a timer */
    uv_timer_t shutdown_timer; /* shutdown timeout */
    uv_timer_t timeouts_timer; /* every connection's timeout: armed for the earliest */
    uint64_t timeouts_due;     /* loop time it is armed for (0: not armed) */
    gw_timeout_list timeouts[GW_HTTP_TIMEOUT_LISTS]; /* [0]: timed out, being handled */
    gw_conn *conns;                                  /* open connections */
    gw_conn *flush_list;                             /* connections with answers due this turn */
    size_t nconns;                                   /* counted connections */
    size_t nrejecting;                               /* turned-away connections closing */
    size_t body_bytes;         /* request body bytes held by every connection together
                                  (cfg.max_body_buffer) */
    char *read_buf;            /* GW_HTTP_READ_BUFFER bytes shared by every read */
    bool read_buf_busy;        /* read_buf handed to libuv and not yet returned */
    uv_buf_t *gather;          /* max_pipeline + 2 entries: one flush's gather list, shared
                                  by every connection (uv_write copies it) */
    char date[64];             /* "Date: ...\r\n", formatted once per second */
    size_t date_len;           /* bytes of date */
    uint64_t date_expires;     /* loop time when date must be formatted again */
    uint64_t accept_log_after; /* loop time before which accept errors are not logged */
    bool started;              /* listener initialised */
    bool draining;             /* shutdown began */
    bool forced;               /* shutdown timeout passed */
    int open_handles;          /* server handles not yet closed */
    void (*done)(void *);      /* shutdown's completion callback */
    void *done_arg;            /* its argument */
    gw_http_stats stats;       /* counters for GET /metrics */
    br_buf stream_tmp;         /* a stream's bytes as the filter transformed them (framed
                                  into the request's sbuf at once) */
    struct gw_ws_deflater *ws_deflaters[16]; /* permessage-deflate: one per window size
                                                (9..15), made at first use and shared by
                                                every WebSocket (no context takeover) */
    br_buf ws_deflated;                      /* a WebSocket message being compressed */
    gw_pool ws_conns;                        /* every WebSocket's state (ws_conn.c) */
    gw_http_filter filter;                   /* the filter's hooks; all NULL without one */
    void *filter_data;                       /* their data */
    bool has_filter;                         /* a filter is installed */
};

/* http_conn.c */
/* A request object from the connection's pool (or the heap), reset.  NULL: no memory. */
gw_http_req *gw__req_get(gw_conn *conn);
/* Frees the pooled request objects (a connection that will read no more requests). */
void gw__conn_release_pool(gw_conn *conn);
/* Appends r to the connection's queue of requests. */
void gw__conn_push(gw_conn *conn, gw_http_req *r);
/* http_timeouts.c */
/* Starts measuring `phase`, timing out ms from now (NONE: no timeout). */
void gw__conn_set_phase(gw_conn *conn, gw_conn_phase phase, uint32_t ms);
/* Takes conn out of the timeout lists (a closing connection). */
void gw__timeouts_remove(gw_conn *conn);
/* Prepares the server's timeout timer (a starting server; one more open handle). */
void gw__timeouts_init(gw_http_server *server);
/* http_conn.c: conn's phase timed out (it is in no timeout list). */
void gw__conn_timed_out(gw_conn *conn);
/* True while another request may be parsed (no close pending, queue and output below
 * their limits). */
bool gw__conn_can_parse(const gw_conn *conn);
/* Accepts one connection from the listener; counts it unless `reject`, in which case
 * it only answers 503 and closes. */
void gw__conn_accept(gw_http_server *server, bool reject);
/* Starts a uv_write of bufs[0..n) on the connection's socket with a write request made
 * for it, whose data is conn.  cb owns the request and frees it (gw__conn_written).
 * Returns 0 or a libuv error (UV_ENOMEM when no request could be made). */
int gw__conn_write(gw_conn *conn, const uv_buf_t *bufs, unsigned n, uv_write_cb cb);
/* In a gw__conn_write callback: frees the write request and returns its connection. */
gw_conn *gw__conn_written(uv_write_t *req);
/* Writes whatever answers are due, in order, in one uv_write. */
void gw__conn_flush(gw_conn *conn);
/* Server shutdown: closes the connection if idle, else lets it finish and close. */
void gw__conn_drain(gw_conn *conn);
/* Shutdown timeout: aborts unanswered requests, answers them 503, closes. */
void gw__conn_force_close(gw_conn *conn);
/* Closes at once: aborts unanswered requests, closes the handles, frees on close. */
void gw__conn_close(gw_conn *conn);
/* The last bytes are out: sends FIN, then drains input for a while before closing. */
void gw__conn_finish(gw_conn *conn);
/* Starts reading the socket (no-op while reading or closing). */
void gw__conn_start_reading(gw_conn *conn);

/* ws_conn.c: the connection after its 101. */
/* The 101 is written: frames flow from now on. */
void gw__ws_start(gw_conn *conn);
/* Bytes read from a WebSocket connection. */
void gw__ws_read(gw_conn *conn, const uint8_t *data, size_t len);
/* The timer of a WS phase fired. */
void gw__ws_timer(gw_conn *conn);
/* Server shutdown: closes with 1001. */
void gw__ws_going_away(gw_conn *conn);
/* The socket is closing: tells the owner (1006) if it was not told yet. */
void gw__ws_closed(gw_conn *conn);
/* Frees the WebSocket state of a connection being freed. */
void gw__ws_free(gw_conn *conn);
/* Prepares the server's pool of WebSocket states (a new server). */
void gw__ws_pool_init(struct gw_http_server *server);

/* http_parse.c: llhttp's callbacks; parser.data is the gw_conn. */
extern const llhttp_settings_t gw__parser_settings;

/* http_server.c */
/* Puts conn on the list of connections whose answers are written this loop turn. */
void gw__server_schedule_flush(gw_http_server *server, gw_conn *conn);
/* The cached "Date: ...\r\n" line. */
const char *gw__server_date(gw_http_server *server, size_t *len);
/* A connection finished closing; frees nothing, only accounting and shutdown. */
void gw__server_conn_closed(gw_http_server *server, gw_conn *conn);

/* http_response.c */
/* How an answer's body is delimited. */
typedef enum gw_framing {
    GW_FRAME_LENGTH,  /* Content-Length: the body follows in full */
    GW_FRAME_CHUNKED, /* Transfer-Encoding: chunked (a stream to an HTTP/1.1 client) */
    GW_FRAME_CLOSE    /* by the connection's close (a stream to an HTTP/1.0 client) */
} gw_framing;
/* Serialises a streamed answer's status line and headers into `out` (emptied first),
 * after the filter's on_answer saw them.  Returns 0 or BR_ENOMEM. */
int gw__response_stream_head(gw_http_req *req, int status, const gw_header *extra, size_t nextra,
                             const char *content_type, gw_framing framing, br_buf *out);
/* http_body.c: a piece of r's streamed body, or its end (data NULL; status 0 or the
 * failure's).  The end stops the streaming. */
void gw__body_deliver(gw_http_req *r, const char *data, size_t len, int status);
/* http_conn.c: the consumer resumed a paused body: feed what was kept, read again. */
void gw__conn_body_resume(gw_conn *conn);
/* http_stream.c: a write that held stream bytes of r completed. */
void gw__stream_written(gw_http_req *r);
/* Serialises an answer into req->resp (the connection's keep-alive decision applied).
 * Returns 0 or BR_ENOMEM. */
int gw__response_build(gw_http_req *req, int status, const gw_header *extra, size_t nextra,
                       const char *content_type, const void *body, size_t body_len);
/* Builds {"detail": ...} for an error the server itself answers. */
int gw__response_detail(gw_http_req *req, int status, const char *detail, const gw_header *extra,
                        size_t nextra);
/* The request answered: marks it ready and schedules the write. */
void gw__req_answered(gw_http_req *req);
/* Counts an answer of `status` and `bytes` to req in the server's stats. */
void gw__response_count(gw_http_req *req, int status, size_t bytes);
/* The request is over (answered: its status and bytes; aborted: 499, 0): tells the
 * filter, once. */
void gw__req_filter_done(gw_http_req *req, int status, size_t bytes);
/* Answers a request the server itself refuses ({"detail": ...}); on failure to build
 * the answer the connection closes. */
void gw__req_answer_detail(gw_http_req *r, int status, const char *detail, const gw_header *extra,
                           size_t nextra);

#endif /* BARISTA_GW_HTTP_CONN_H */
