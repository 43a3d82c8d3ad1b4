/*
 * broker_harness.c - a test's stand-in for the gateway's broker (see broker_harness.h).
 */
#include "broker_harness.h"

#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <msgpack.h>

#define HARNESS_MAX_ARGS  32
#define HARNESS_MAX_QUERY 8
#define HARNESS_HWM       100000

extern char **environ;

long long harness_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int harness_start(harness *h, const char *services, int heartbeat_ms, const char *const *extra)
{
    memset(h, 0, sizeof(*h));
    h->heartbeat_ms = heartbeat_ms;
    h->auto_heartbeat = true;
    h->ctx = zmq_ctx_new();
    h->router = h->ctx ? zmq_socket(h->ctx, ZMQ_ROUTER) : NULL;
    h->dec = br_decoder_new(NULL);
    if (!h->router || !h->dec)
        return -1;
    int zero = 0;
    zmq_setsockopt(h->router, ZMQ_LINGER, &zero, sizeof(zero));
    /* A ROUTER drops what passes its high-water mark; tests send bursts past the
     * default 1000. */
    int hwm = HARNESS_HWM;
    zmq_setsockopt(h->router, ZMQ_SNDHWM, &hwm, sizeof(hwm));
    zmq_setsockopt(h->router, ZMQ_RCVHWM, &hwm, sizeof(hwm));
    if (zmq_bind(h->router, "tcp://127.0.0.1:*") != 0)
        return -1;
    size_t len = sizeof(h->endpoint);
    if (zmq_getsockopt(h->router, ZMQ_LAST_ENDPOINT, h->endpoint, &len) != 0)
        return -1;

    char hb[32];
    snprintf(hb, sizeof(hb), "%d", heartbeat_ms);
    char *argv[HARNESS_MAX_ARGS];
    int argc = 0;
    argv[argc++] = (char *)BARISTA_WORKER_BIN;
    argv[argc++] = (char *)"--services";
    argv[argc++] = (char *)services;
    argv[argc++] = (char *)"--connect";
    argv[argc++] = h->endpoint;
    argv[argc++] = (char *)"--heartbeat-ms";
    argv[argc++] = hb;
    for (size_t i = 0; extra && extra[i] && argc < HARNESS_MAX_ARGS - 1; i++)
        argv[argc++] = (char *)extra[i];
    argv[argc] = NULL;
    pid_t parent = getpid();
    h->pid = fork();
    if (h->pid < 0) {
        fprintf(stderr, "fork: %s\n", strerror(errno));
        h->pid = 0;
        return -1;
    }
    if (h->pid == 0) {
        /* If the test dies without its teardown (a crash, a ctest timeout), the
         * kernel kills the worker too, instead of leaving it reconnecting forever. */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
            _exit(127);
        execv(BARISTA_WORKER_BIN, argv);
        _exit(127);
    }
    h->last_hb_sent = harness_now_ms();
    return 0;
}

int harness_run(const char *const *args, char *out, size_t out_len, int *code)
{
    return harness_run_program(BARISTA_WORKER_BIN, args, out, out_len, code);
}

int harness_run_program(const char *bin, const char *const *args, char *out, size_t out_len,
                        int *code)
{
    char *argv[HARNESS_MAX_ARGS];
    int argc = 0;
    argv[argc++] = (char *)bin;
    for (size_t i = 0; args[i] && argc < HARNESS_MAX_ARGS - 1; i++)
        argv[argc++] = (char *)args[i];
    argv[argc] = NULL;
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    pid_t pid;
    int rc = posix_spawn(&pid, bin, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    if (rc != 0) {
        close(fds[0]);
        return -1;
    }
    size_t len = 0;
    ssize_t n;
    while ((n = read(fds[0], out + len, out_len - 1 - len)) > 0)
        len += (size_t)n;
    out[len] = '\0';
    close(fds[0]);
    int status;
    if (waitpid(pid, &status, 0) != pid)
        return -1;
    *code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return 0;
}

int harness_setup(void **state, harness *h, const char *services, int heartbeat_ms,
                  const char *const *extra)
{
    if (harness_start(h, services, heartbeat_ms, extra) != 0) {
        harness_stop(h);
        return -1;
    }
    *state = h;
    return 0;
}

int harness_teardown(void **state)
{
    harness_stop(*state);
    return 0;
}

int harness_wait_exit(harness *h, int timeout_ms, int *status)
{
    long long until = harness_now_ms() + timeout_ms;
    while (h->pid) {
        pid_t r = waitpid(h->pid, status, WNOHANG);
        if (r == h->pid) {
            h->pid = 0;
            return 0;
        }
        if (r < 0 || harness_now_ms() >= until)
            return -1;
        struct timespec nap = {0, 10 * 1000 * 1000};
        nanosleep(&nap, NULL);
    }
    return -1;
}

bool harness_exited_cleanly(harness *h, int timeout_ms)
{
    int status = 0;
    if (harness_wait_exit(h, timeout_ms, &status) != 0)
        return false;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "worker ended with wait status %#x\n", (unsigned)status);
        return false;
    }
    return true;
}

void harness_stop(harness *h)
{
    if (h->pid) {
        int status;
        kill(h->pid, SIGKILL);
        waitpid(h->pid, &status, 0);
        h->pid = 0;
    }
    if (h->have_frame) {
        zmq_msg_close(&h->frame);
        h->have_frame = false;
    }
    if (h->router) {
        zmq_close(h->router);
        h->router = NULL;
    }
    if (h->ctx) {
        zmq_ctx_term(h->ctx);
        h->ctx = NULL;
    }
    br_decoder_destroy(&h->dec);
}

int harness_send_raw(harness *h, const void *data, size_t len)
{
    if (h->ident_len == 0)
        return -1;
    if (zmq_send(h->router, h->ident, h->ident_len, ZMQ_SNDMORE) < 0)
        return -1;
    return zmq_send(h->router, data, len, 0) < 0 ? -1 : 0;
}

int harness_send(harness *h, const br_msg *msg)
{
    br_buf buf = {0};
    int rc = br_msg_encode(msg, &buf);
    if (rc == 0)
        rc = harness_send_raw(h, buf.data, buf.len);
    br_buf_free(&buf);
    return rc;
}

static void heartbeat_if_due(harness *h)
{
    long long now = harness_now_ms();
    if (!h->auto_heartbeat || h->ident_len == 0 || now - h->last_hb_sent < h->heartbeat_ms / 2)
        return;
    br_msg hb = {.type = BR_MSG_HEARTBEAT};
    harness_send(h, &hb);
    h->last_hb_sent = now;
}

int harness_recv(harness *h, br_msg *out, int timeout_ms)
{
    long long until = harness_now_ms() + timeout_ms;
    for (;;) {
        heartbeat_if_due(h);
        long long left = until - harness_now_ms();
        if (left <= 0)
            return -1;
        int slice = h->heartbeat_ms / 4 > 0 ? h->heartbeat_ms / 4 : 1;
        zmq_pollitem_t item = {h->router, 0, ZMQ_POLLIN, 0};
        int n = zmq_poll(&item, 1, left < slice ? left : slice);
        if (n <= 0)
            continue;
        zmq_msg_t ident;
        zmq_msg_init(&ident);
        if (zmq_msg_recv(&ident, h->router, 0) < 0) {
            zmq_msg_close(&ident);
            return -1;
        }
        if (zmq_msg_size(&ident) <= HARNESS_MAX_IDENT) {
            h->ident_len = zmq_msg_size(&ident);
            memcpy(h->ident, zmq_msg_data(&ident), h->ident_len);
        }
        zmq_msg_close(&ident);
        if (h->have_frame)
            zmq_msg_close(&h->frame);
        zmq_msg_init(&h->frame);
        h->have_frame = true;
        if (zmq_msg_recv(&h->frame, h->router, 0) < 0)
            return -1;
        if (br_decoder_decode(h->dec, zmq_msg_data(&h->frame), zmq_msg_size(&h->frame), out) != 0)
            return -1;
        return 0;
    }
}

int harness_expect(harness *h, unsigned type, br_msg *out, int timeout_ms, int *heartbeats)
{
    long long until = harness_now_ms() + timeout_ms;
    for (;;) {
        long long left = until - harness_now_ms();
        if (left <= 0 || harness_recv(h, out, (int)left) != 0)
            return -1;
        if (out->type == type)
            return 0;
        /* Housekeeping a worker sends on its own: liveness, lease renewals, and its
         * tasks' policies after WELCOME. */
        if (out->type == BR_MSG_JOB_PROGRESS || out->type == BR_MSG_TASK_POLICY)
            continue;
        if (out->type != BR_MSG_HEARTBEAT) {
            fprintf(stderr, "expected %s, got %s\n", br_msg_type_name(type),
                    br_msg_type_name(out->type));
            return -1;
        }
        if (heartbeats)
            (*heartbeats)++;
    }
}

int harness_send_goodbye(harness *h, const char *reason)
{
    br_msg bye = {.type = BR_MSG_GOODBYE};
    bye.u.goodbye.reason = br_str_c(reason);
    return harness_send(h, &bye);
}

int harness_expect_reply(harness *h, uint64_t id, br_reply *out, int timeout_ms, int *heartbeats)
{
    br_msg m;
    if (harness_expect(h, BR_MSG_REPLY, &m, timeout_ms, heartbeats) != 0)
        return -1;
    if (m.u.reply.id != id) {
        fprintf(stderr, "expected the reply to %llu, got %llu\n", (unsigned long long)id,
                (unsigned long long)m.u.reply.id);
        return -1;
    }
    *out = m.u.reply;
    return 0;
}

/* The shortest broker heartbeat period the harness announces in WELCOME. */
#define HARNESS_MIN_BROKER_HB_MS 500u

int harness_register(harness *h, const char *broker_id, uint32_t *capacity, uint8_t *kind)
{
    br_msg m;
    if (harness_expect(h, BR_MSG_READY, &m, 10000, NULL) != 0)
        return -1;
    if (capacity)
        *capacity = m.u.ready.capacity;
    if (kind)
        *kind = m.u.ready.kind;
    br_msg w = {.type = BR_MSG_WELCOME};
    w.u.welcome.broker_id = br_str_c(broker_id);
    w.u.welcome.features = m.u.ready.features & h->welcome_features;
    /* The harness heartbeats every heartbeat_ms / 2 while it waits, but it is one
     * thread of a test that may not run for a few hundred ms on a loaded machine (ASan,
     * other tests, a hash on the other core): it announces a broker period of at least
     * HARNESS_MIN_BROKER_HB_MS, so the worker gives up on it only after three of those. */
    uint32_t period = (uint32_t)h->heartbeat_ms;
    w.u.welcome.heartbeat_ms =
        period > HARNESS_MIN_BROKER_HB_MS ? period : HARNESS_MIN_BROKER_HB_MS;
    return harness_send(h, &w);
}

int harness_request(harness *h, uint64_t id, const char *service, const char *method,
                    const char *route, const char *path, uint32_t deadline_ms, ...)
{
    br_pair query[HARNESS_MAX_QUERY];
    uint32_t nquery = 0;
    va_list ap;
    va_start(ap, deadline_ms);
    const char *name;
    while ((name = va_arg(ap, const char *)) != NULL && nquery < HARNESS_MAX_QUERY) {
        query[nquery].name = br_str_c(name);
        query[nquery].value = br_str_c(va_arg(ap, const char *));
        nquery++;
    }
    va_end(ap);
    br_msg m = {.type = BR_MSG_REQUEST};
    br_request *r = &m.u.request;
    r->id = id;
    r->service = br_str_c(service);
    r->method = br_str_c(method);
    r->route = br_str_c(route);
    r->path = br_str_c(path);
    r->query = nquery ? query : NULL;
    r->nquery = nquery;
    r->deadline_ms = deadline_ms;
    return harness_send(h, &m);
}

/* Finds key in a msgpack map body; the unpacked object lives in *zone's memory. */
static bool body_lookup(br_str body, const char *key, msgpack_zone *zone, msgpack_object *val)
{
    msgpack_object obj;
    size_t off = 0;
    if (msgpack_unpack(body.ptr, body.len, &off, zone, &obj) != MSGPACK_UNPACK_SUCCESS ||
        obj.type != MSGPACK_OBJECT_MAP)
        return false;
    for (uint32_t i = 0; i < obj.via.map.size; i++) {
        msgpack_object k = obj.via.map.ptr[i].key;
        if (k.type == MSGPACK_OBJECT_STR && k.via.str.size == strlen(key) &&
            memcmp(k.via.str.ptr, key, k.via.str.size) == 0) {
            *val = obj.via.map.ptr[i].val;
            return true;
        }
    }
    return false;
}

bool body_has_str(br_str body, const char *key, const char *want)
{
    msgpack_zone zone;
    msgpack_zone_init(&zone, 1024);
    msgpack_object v;
    bool ok = body_lookup(body, key, &zone, &v) && v.type == MSGPACK_OBJECT_STR &&
              v.via.str.size == strlen(want) && memcmp(v.via.str.ptr, want, v.via.str.size) == 0;
    msgpack_zone_destroy(&zone);
    return ok;
}

bool body_has_int(br_str body, const char *key, long long want)
{
    msgpack_zone zone;
    msgpack_zone_init(&zone, 1024);
    msgpack_object v;
    bool ok =
        body_lookup(body, key, &zone, &v) &&
        ((v.type == MSGPACK_OBJECT_POSITIVE_INTEGER && want >= 0 && v.via.u64 == (uint64_t)want) ||
         (v.type == MSGPACK_OBJECT_NEGATIVE_INTEGER && v.via.i64 == want));
    msgpack_zone_destroy(&zone);
    return ok;
}
