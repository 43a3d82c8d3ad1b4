/*
 * http_server.c - the listening socket, the per-turn write scheduling, the cached
 * Date line and graceful shutdown.  Connections themselves live in http_conn.c.
 *
 * Answers are not written where they are produced: a connection with answers due is
 * put on a list, and one check handle (after the poll phase, where reads and broker
 * replies arrive) plus one idle handle (before the next poll, for answers produced by
 * timers) write each listed connection once.  So every answer ready in one loop turn
 * leaves in one uv_write per connection, and the loop never blocks in poll while an
 * answer waits.
 */
/* SO_REUSEPORT is outside POSIX. */
#define _DEFAULT_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <netinet/in.h>
#include <sys/socket.h>

#include "barista/proto.h"
#include "http_conn.h"
#include "log.h"
#include "ws_deflate.h"

void gw_http_config_defaults(gw_http_config *cfg)
{
    *cfg = (gw_http_config){
        .max_url_bytes = GW_HTTP_MAX_URL_BYTES,
        .max_header_bytes = GW_HTTP_MAX_HEADER_BYTES,
        .max_headers = GW_HTTP_MAX_HEADERS,
        .max_body_bytes = GW_HTTP_MAX_BODY_BYTES,
        .header_timeout_ms = GW_HTTP_HEADER_TIMEOUT_MS,
        .body_timeout_ms = GW_HTTP_BODY_TIMEOUT_MS,
        .keepalive_timeout_ms = GW_HTTP_KEEPALIVE_TIMEOUT_MS,
        .send_timeout_ms = GW_HTTP_SEND_TIMEOUT_MS,
        .max_connections = GW_HTTP_MAX_CONNECTIONS,
        .max_pipeline = GW_HTTP_MAX_PIPELINE,
        .max_output_bytes = GW_HTTP_MAX_OUTPUT_BYTES,
        .max_chunk_ext_bytes = GW_HTTP_MAX_CHUNK_EXT_BYTES,
        .max_body_buffer = GW_HTTP_MAX_BODY_BUFFER,
        .backlog = GW_HTTP_BACKLOG,
    };
}

static bool config_valid(const gw_http_config *c)
{
    return c->max_url_bytes && c->max_header_bytes && c->max_headers && c->max_body_bytes &&
           c->header_timeout_ms && c->body_timeout_ms && c->keepalive_timeout_ms &&
           c->send_timeout_ms && c->max_connections && c->max_pipeline && c->max_output_bytes &&
           c->max_chunk_ext_bytes && c->max_body_buffer && c->backlog > 0;
}

gw_http_server *gw_http_server_new(uv_loop_t *loop, gw_router *router, const gw_http_config *config)
{
    if (!loop || !router)
        return NULL;
    if (!config || !config_valid(config)) {
        gw_log(GW_LOG_ERROR, "http", "gw_http_server_new: a limit is zero");
        return NULL;
    }
    gw_http_server *self = calloc(1, sizeof(*self));
    if (!self)
        return NULL;
    self->read_buf = malloc(GW_HTTP_READ_BUFFER);
    self->gather = calloc(config->max_pipeline + 2, sizeof(*self->gather));
    if (!self->read_buf || !self->gather) {
        free(self->read_buf);
        free(self->gather);
        free(self);
        return NULL;
    }
    self->loop = loop;
    self->router = router;
    self->cfg = *config;
    gw__ws_pool_init(self);
    return self;
}

int gw_http_server_set_filter(gw_http_server *self, const gw_http_filter *hooks, void *data)
{
    if (!self)
        return BR_EINVAL;
    self->filter = hooks ? *hooks : (gw_http_filter){0};
    self->filter_data = hooks ? data : NULL;
    self->has_filter = hooks != NULL;
    return 0;
}

static void flush_all(gw_http_server *self)
{
    uv_check_stop(&self->flush_check);
    uv_idle_stop(&self->flush_idle);
    /* Flushing may schedule again (a write completing synchronously never does, but a
     * closing connection may answer); detach the list first. */
    gw_conn *list = self->flush_list;
    self->flush_list = NULL;
    while (list) {
        gw_conn *conn = list;
        list = conn->flush_next;
        conn->flush_next = NULL;
        conn->flush_queued = false;
        gw__conn_flush(conn);
    }
}

static void on_flush_check(uv_check_t *h)
{
    flush_all(h->data);
}

static void on_flush_idle(uv_idle_t *h)
{
    flush_all(h->data);
}

void gw__server_schedule_flush(gw_http_server *self, gw_conn *conn)
{
    if (conn->flush_queued)
        return;
    conn->flush_queued = true;
    conn->flush_next = self->flush_list;
    self->flush_list = conn;
    if (!uv_is_active((uv_handle_t *)&self->flush_check)) {
        uv_check_start(&self->flush_check, on_flush_check);
        uv_idle_start(&self->flush_idle, on_flush_idle);
    }
}

const char *gw__server_date(gw_http_server *self, size_t *len)
{
    uint64_t now = uv_now(self->loop);
    if (self->date_len == 0 || now >= self->date_expires) {
        struct timespec ts;
        struct tm tm;
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        self->date_len =
            strftime(self->date, sizeof(self->date), "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
        /* Valid until the wall clock's next second. */
        self->date_expires = now + (uint64_t)(1000 - ts.tv_nsec / 1000000);
    }
    *len = self->date_len;
    return self->date;
}

static void on_connection(uv_stream_t *listener, int status)
{
    gw_http_server *self = listener->data;
    if (status < 0) {
        /* Out of descriptors repeats on every wakeup; say it once a second. */
        uint64_t now = uv_now(self->loop);
        if (now >= self->accept_log_after) {
            gw_log(GW_LOG_ERROR, "http", "accept failed: %s", uv_strerror(status));
            self->accept_log_after = now + 1000;
        }
        return;
    }
    gw__conn_accept(self, self->nconns >= self->cfg.max_connections);
}

/* Binds the listener on a socket of our own with SO_REUSEPORT set: libuv 1.44 (Debian
 * 12) has no flag for it (UV_TCP_REUSEPORT came in 1.49).  0 or a negative libuv error. */
static int bind_reuseport(uv_tcp_t *listener, const struct sockaddr *addr)
{
    int one = 1;
    socklen_t len =
        addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return uv_translate_sys_error(errno);
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
        bind(fd, addr, len) != 0) {
        int err = uv_translate_sys_error(errno);
        close(fd);
        return err;
    }
    int rc = uv_tcp_open(listener, fd);
    if (rc < 0)
        close(fd);
    return rc;
}

int gw_http_server_start(gw_http_server *self, const struct sockaddr *addr)
{
    if (!self || !addr || self->started)
        return BR_EINVAL;
    int rc = uv_tcp_init(self->loop, &self->listener);
    if (rc < 0) {
        gw_log(GW_LOG_ERROR, "http", "uv_tcp_init failed: %s", uv_strerror(rc));
        return BR_EIO;
    }
    self->listener.data = self;
    uv_check_init(self->loop, &self->flush_check);
    uv_idle_init(self->loop, &self->flush_idle);
    uv_timer_init(self->loop, &self->shutdown_timer);
    self->flush_check.data = self->flush_idle.data = self->shutdown_timer.data = self;
    self->open_handles = 4;
    gw__timeouts_init(self);
    self->started = true;
    const char *call = "uv_tcp_bind";
    if (self->cfg.reuse_port) {
        call = "bind with SO_REUSEPORT";
        rc = bind_reuseport(&self->listener, addr);
    } else
        rc = uv_tcp_bind(&self->listener, addr, 0);
    if (rc == 0) {
        call = "uv_listen";
        rc = uv_listen((uv_stream_t *)&self->listener, self->cfg.backlog, on_connection);
    }
    if (rc < 0) {
        gw_log(GW_LOG_ERROR, "http", "%s failed: %s", call, uv_strerror(rc));
        return BR_EIO;
    }
    return 0;
}

int gw_http_server_address(const gw_http_server *self, struct sockaddr_storage *out)
{
    int len = (int)sizeof(*out);
    if (!self || !self->started)
        return BR_EINVAL;
    int rc = uv_tcp_getsockname(&self->listener, (struct sockaddr *)out, &len);
    return rc < 0 ? BR_EIO : 0;
}

size_t gw_http_server_connections(const gw_http_server *self)
{
    return self ? self->nconns : 0;
}

static void on_server_handle_closed(uv_handle_t *h)
{
    gw_http_server *self = h->data;
    if (--self->open_handles == 0 && self->done)
        self->done(self->done_arg);
}

/* Once draining and the last connection is gone, the server's own handles close. */
static void maybe_finish(gw_http_server *self)
{
    if (!self->draining || self->conns || self->nrejecting ||
        uv_is_closing((uv_handle_t *)&self->flush_check))
        return;
    uv_close((uv_handle_t *)&self->flush_check, on_server_handle_closed);
    uv_close((uv_handle_t *)&self->flush_idle, on_server_handle_closed);
    uv_close((uv_handle_t *)&self->shutdown_timer, on_server_handle_closed);
    uv_close((uv_handle_t *)&self->timeouts_timer, on_server_handle_closed);
}

void gw__server_conn_closed(gw_http_server *self, gw_conn *conn)
{
    if (conn->rejecting) {
        self->nrejecting--;
    } else {
        if (conn->prev)
            conn->prev->next = conn->next;
        else
            self->conns = conn->next;
        if (conn->next)
            conn->next->prev = conn->prev;
        self->nconns--;
    }
    maybe_finish(self);
}

static void on_shutdown_timeout(uv_timer_t *t)
{
    gw_http_server *self = t->data;
    if (!self->forced) {
        /* First expiry: give up on pending requests; answer them and close.  A last
         * short grace lets those answers leave before the hard close below. */
        self->forced = true;
        for (gw_conn *c = self->conns, *next; c; c = next) {
            next = c->next;
            gw__conn_force_close(c);
        }
        uv_timer_start(&self->shutdown_timer, on_shutdown_timeout, GW_HTTP_LINGER_MS, 0);
        return;
    }
    for (gw_conn *c = self->conns, *next; c; c = next) {
        next = c->next;
        gw__conn_close(c);
    }
}

int gw_http_server_shutdown(gw_http_server *self, uint32_t timeout_ms, void (*done)(void *arg),
                            void *arg)
{
    if (!self)
        return BR_EINVAL;
    if (self->draining)
        return BR_ECLOSED;
    self->draining = true;
    self->done = done;
    self->done_arg = arg;
    if (!self->started) {
        if (done)
            done(arg);
        return 0;
    }
    uv_close((uv_handle_t *)&self->listener, on_server_handle_closed);
    uv_timer_start(&self->shutdown_timer, on_shutdown_timeout, timeout_ms, 0);
    for (gw_conn *c = self->conns, *next; c; c = next) {
        next = c->next;
        gw__conn_drain(c);
    }
    maybe_finish(self);
    return 0;
}

void gw_http_server_destroy(gw_http_server **self_p)
{
    if (!self_p || !*self_p)
        return;
    gw_http_server *self = *self_p;
    free(self->read_buf);
    br_buf_free(&self->stream_tmp);
    for (size_t i = 0; i < sizeof(self->ws_deflaters) / sizeof(self->ws_deflaters[0]); i++)
        gw_ws_deflater_destroy(&self->ws_deflaters[i]);
    br_buf_free(&self->ws_deflated);
    gw_pool_destroy(&self->ws_conns);
    free(self->gather);
    free(self);
    *self_p = NULL;
}
