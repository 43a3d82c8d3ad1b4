/*
 * http_client.c - the async HTTP client (barista/async.h): libcurl's multi interface
 * driven by the worker's own libuv loop, with no thread of its own.
 *
 * curl tells us which sockets to watch (CURLMOPT_SOCKETFUNCTION: one uv_poll_t per
 * socket) and when to wake it (CURLMOPT_TIMERFUNCTION: one uv_timer_t); we tell curl
 * what happened with curl_multi_socket_action and collect finished transfers with
 * curl_multi_info_read.  One multi handle per worker keeps connections alive between
 * fetches.  A fetch is an operation of its request: when the request ends first, the
 * transfer is removed and its callback never runs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "barista/dl_curl.h"

#include "worker_int.h"

/* Idle connections curl keeps for reuse, across all hosts. */
#define HTTP_MAX_CACHED_CONNECTIONS 64

/* A watched socket. */
typedef struct http_sock {
    uv_poll_t poll;                /* readiness of fd */
    curl_socket_t fd;              /* curl's socket */
    struct br__http *h;            /* the client that watches it */
    struct http_sock *prev, *next; /* in the client's list, for closing */
} http_sock;

struct br__http {
    CURLM *multi;     /* the multi handle: every transfer of this worker */
    uv_timer_t timer; /* curl's timeout */
    br_worker *w;     /* the worker */
    http_sock *socks; /* watched sockets */
};

/* One transfer. */
typedef struct fetch {
    br__op op;                   /* in the request's operations: aborted when it ends */
    CURL *easy;                  /* the transfer */
    br__http *h;                 /* the client it runs on */
    br_req *req;                 /* the request that started it */
    br_result_fn cb;             /* the answer's callback */
    void *arg;                   /* its argument */
    struct curl_slist *headers;  /* request headers, or NULL */
    br_buf body;                 /* the answer's body, at most BR_HTTP_BODY_MAX */
    bool too_big;                /* the body passed its limit */
    uint32_t timeout_ms;         /* the transfer's budget */
    char error[CURL_ERROR_SIZE]; /* curl's message for a failure */
} fetch;

static bool curl_ready;

static void sock_closed(uv_handle_t *h)
{
    free(h->data);
}

static void sock_forget(br__http *h, http_sock *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        h->socks = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->poll.data = s;
    uv_close((uv_handle_t *)&s->poll, sock_closed);
}

static void fetch_free(fetch *f)
{
    curl_easy_cleanup(f->easy);
    curl_slist_free_all(f->headers);
    br_buf_free(&f->body);
    free(f);
}

/* Turns a finished transfer into a br_result and calls back. */
static void fetch_done(fetch *f, CURLcode code)
{
    br_req *req = f->req;
    br_result res;
    memset(&res, 0, sizeof(res));
    res.content_type = res.body = res.detail = (br_str){"", 0};
    char why[CURL_ERROR_SIZE + 96];
    if (code == CURLE_OK) {
        long status = 0;
        char *ct = NULL;
        curl_easy_getinfo(f->easy, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_getinfo(f->easy, CURLINFO_CONTENT_TYPE, &ct);
        res.status = status >= 100 && status <= 599 ? (uint16_t)status : 502;
        char *c = ct ? br_req_strdup(req, br_str_c(ct)) : NULL;
        char *b = f->body.len ? br_req_alloc(req, f->body.len) : NULL;
        if (c)
            res.content_type = br_str_c(c);
        if (b) {
            memcpy(b, f->body.data, f->body.len);
            res.body = (br_str){b, (uint32_t)f->body.len};
        }
        if (f->body.len && !b) {
            res.status = 502;
            res.detail = br_str_c("out of memory keeping the upstream's answer");
        }
    } else if (code == CURLE_OPERATION_TIMEDOUT) {
        snprintf(why, sizeof(why), "upstream timed out: no answer within %u ms",
                 (unsigned)f->timeout_ms);
        res.status = 504;
    } else if (f->too_big) {
        snprintf(why, sizeof(why), "upstream answer is larger than %u bytes",
                 (unsigned)BR_HTTP_BODY_MAX);
        res.status = 502;
    } else {
        snprintf(why, sizeof(why), "upstream unreachable: %s",
                 f->error[0] ? f->error : curl_easy_strerror(code));
        res.status = 502;
    }
    if (code != CURLE_OK) {
        char *d = br_req_strdup(req, br_str_c(why));
        res.detail = br_str_c(d ? d : "upstream failed");
    }
    br_worker *w = f->h->w;
    br_result_fn cb = f->cb;
    void *arg = f->arg;
    fetch_free(f);
    br__watch_enter(w, req->spec);
    cb(req, &res, arg);
    br__watch_leave(w);
}

/* Hands every finished transfer to its callback. */
static void collect(br__http *h)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(h->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        fetch *f = NULL;
        CURLcode code = m->data.result;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&f);
        curl_multi_remove_handle(h->multi, m->easy_handle);
        br__op_unlink(f->req, &f->op);
        fetch_done(f, code);
    }
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    http_sock *s = p->data;
    br__http *client = s->h;
    int flags = 0;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    int running;
    curl_multi_socket_action(client->multi, s->fd, flags, &running);
    collect(client);
}

static void on_timer(uv_timer_t *t)
{
    br__http *h = t->data;
    int running;
    curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    collect(h);
}

/* CURLMOPT_SOCKETFUNCTION: start, change or stop watching a socket. */
static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void)easy;
    br__http *h = userp;
    http_sock *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            uv_poll_stop(&s->poll);
            curl_multi_assign(h->multi, fd, NULL);
            sock_forget(h, s);
        }
        return 0;
    }
    if (!s) {
        s = calloc(1, sizeof(*s));
        if (!s)
            return -1;
        int rc = uv_poll_init_socket(&h->w->loop, &s->poll, fd);
        if (rc != 0) {
            br__log("uv_poll_init_socket: %s", uv_strerror(rc));
            free(s);
            return -1;
        }
        s->fd = fd;
        s->h = h;
        s->poll.data = s;
        s->next = h->socks;
        if (h->socks)
            h->socks->prev = s;
        h->socks = s;
        curl_multi_assign(h->multi, fd, s);
    }
    int events = (what & CURL_POLL_IN ? UV_READABLE : 0) | (what & CURL_POLL_OUT ? UV_WRITABLE : 0);
    uv_poll_start(&s->poll, events, on_poll);
    return 0;
}

/* CURLMOPT_TIMERFUNCTION: when curl wants to be woken; -1 stops the timer.  Even a
 * 0 goes through the timer, since curl must not be re-entered from its callback. */
static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    br__http *h = userp;
    if (timeout_ms < 0)
        uv_timer_stop(&h->timer);
    else
        uv_timer_start(&h->timer, on_timer, (uint64_t)timeout_ms, 0);
    return 0;
}

/* The worker's client, made at its first fetch: *err is BR_EIO when libcurl cannot be
 * loaded (said once in the log: every later fetch fails the same way), else BR_ENOMEM
 * when NULL is returned. */
static br__http *client_of(br_worker *w, int *err)
{
    if (w->http)
        return w->http;
    *err = BR_ENOMEM;
    if (!curl_ready) {
        static bool load_failed; /* the loader remembers why; this only keeps the log short */
        char why[BR__DL_ERROR_MAX];
        if (br__dl_curl_load(why, sizeof(why)) != 0) {
            if (!load_failed)
                br__log("%s", why);
            load_failed = true;
            *err = BR_EIO;
            return NULL;
        }
        CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);
        if (rc != CURLE_OK) {
            br__log("curl_global_init: %s", curl_easy_strerror(rc));
            return NULL;
        }
        curl_ready = true;
    }
    br__http *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->multi = curl_multi_init();
    if (!h->multi) {
        br__log("curl_multi_init failed");
        free(h);
        return NULL;
    }
    h->w = w;
    uv_timer_init(&w->loop, &h->timer);
    h->timer.data = h;
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
    curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS, (long)HTTP_MAX_CACHED_CONNECTIONS);
    w->http = h;
    return h;
}

/* CURLOPT_WRITEFUNCTION: appends to the body, which stops at its max (BR_HTTP_BODY_MAX). */
static size_t on_body(char *data, size_t size, size_t n, void *userp)
{
    fetch *f = userp;
    size_t len = size * n;
    int rc = br_buf_append(&f->body, data, len);
    if (rc == BR_ELIMIT)
        f->too_big = true;
    return rc == 0 ? len : 0; /* 0 makes curl fail the transfer with CURLE_WRITE_ERROR */
}

static void fetch_abort(br__op *op)
{
    fetch *f = (fetch *)op;
    curl_multi_remove_handle(f->h->multi, f->easy);
    fetch_free(f);
}

int br_http_fetch(br_req *req, const br_http_spec *spec, br_result_fn cb, void *arg)
{
    if (!cb || !spec->url || spec->nheaders > BR_HTTP_MAX_HEADERS || req->on_thread || req->ended)
        return BR_EINVAL;
    uint32_t budget = br__req_budget(req, spec->timeout_ms);
    if (budget == 0)
        return BR_ECLOSED;
    int rc;
    br__http *h = client_of(req->worker, &rc);
    if (!h)
        return rc;
    fetch *f = calloc(1, sizeof(*f));
    if (!f)
        return BR_ENOMEM;
    f->body.max = BR_HTTP_BODY_MAX;
    f->easy = curl_easy_init();
    if (!f->easy)
        goto nomem;
    for (size_t i = 0; i < spec->nheaders; i++) {
        struct curl_slist *l = curl_slist_append(f->headers, spec->headers[i]);
        if (!l)
            goto nomem;
        f->headers = l;
    }
    f->h = h;
    f->req = req;
    f->cb = cb;
    f->arg = arg;
    f->timeout_ms = budget;
    CURL *e = f->easy;
    const char *method = spec->method ? spec->method : "GET";
    curl_easy_setopt(e, CURLOPT_URL, spec->url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)budget);
    curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)f);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, f->error);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, f);
    if (f->headers)
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, f->headers);
    if (strcmp(method, "GET") != 0)
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    if (spec->body_len) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)spec->body_len);
        curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, spec->body);
    }
    CURLMcode mc = curl_multi_add_handle(h->multi, e);
    if (mc != CURLM_OK) {
        br__log("curl_multi_add_handle: %s", curl_multi_strerror(mc));
        fetch_free(f);
        return BR_EIO;
    }
    f->op.abort = fetch_abort;
    br__op_link(req, &f->op);
    return 0;
nomem:
    fetch_free(f);
    return BR_ENOMEM;
}

static void client_closed(uv_handle_t *t)
{
    free(t->data);
}

void br__http_close(br_worker *w)
{
    br__http *h = w->http;
    if (!h)
        return;
    /* Every fetch ended with its request; what is left are idle cached connections.
     * Their sockets are closed here, not through the callbacks. */
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, NULL);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, NULL);
    curl_multi_cleanup(h->multi);
    while (h->socks)
        sock_forget(h, h->socks);
    h->timer.data = h;
    uv_close((uv_handle_t *)&h->timer, client_closed);
    w->http = NULL;
}

void br__http_release(br_worker *w)
{
    (void)w;
    if (curl_ready) {
        curl_global_cleanup();
        curl_ready = false;
    }
}
