/*
 * fuzz_broker.c - message sequences from several workers driving the real broker
 * (registry, dispatch, service-to-service calls) and the real job queue.
 *
 * Per input, a fresh gateway core on one loop: a router, gw_broker bound to an ipc://
 * endpoint in a directory of this process, gw_jobs attached with its SQLite store in
 * the same directory.  Three fake workers are DEALER sockets in this process with
 * routing ids w0..w2; the loop is turned with UV_RUN_NOWAIT between their sends, so
 * the broker reads them exactly as it reads remote workers.  Nothing was added to the
 * production sources.  HTTP traffic reaches the broker as CALLs (the broker serves a
 * CALL through the same dispatch and worker selection as an HTTP request).
 *
 * Input: a sequence of operations; byte op picks worker op%3 and kind (op/3)%11:
 *   0 READY a: service s(a&3) (routes GET /s{n}/{x}, POST /s{n}; a&4: also the literal
 *     GET /s0/lit; kind (a>>3)&1; a&0x80: task t(a&3)), capacity from the next byte
 *     (a&0x40: 4294967295)
 *   1 REPLY to the (i%n)-th REQUEST it got, status 100 + j%500, j&0x80: one job t(j&3)
 *   2 CALL id i (small ids, so they repeat), GET /s(j&3)/v, POST /s(j&3) or GET /none
 *   3 CANCEL id i    4 JOB_ACK of its (i%n)-th JOB    5 JOB_RESULT of it, outcome j%3
 *   6 GOODBYE   7 HEARTBEAT   8 CREDIT i (i&0x80: 4294967295)
 *   9 raw bytes (a length byte and that many)   10 i%16 more loop turns
 * Worker w1's READY announces WS_BATCH and REQ_BATCH (PROTOCOL.md 5.16): the broker
 * sends it a turn's REQUESTs in one WS_BATCH, taken apart here message by message.
 *
 * Checked: no crash, leak or UB; everything the broker sends decodes (a WS_BATCH goes
 * only to w1, splits into its messages and carries only REQUESTs and WS_*); after every
 * operation no registered worker holds more credit than GW_CREDIT_MAX; and every CALL
 * a worker made while registered (READY sent, no GOODBYE either way, no raw bytes
 * since, not cancelled) is answered with a REPLY before the GOODBYE of
 * gw_broker_shutdown - by the serving worker, a deadline, a refusal or the shutdown's
 * 503 (a reply and the GOODBYE after it travel the same connection, in order).
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uv.h>
#include <zmq.h>

#include "barista/proto.h"
#include "barista/ws_batch.h"
#include "broker.h"
#include "fuzz.h"
#include "jobs.h"
#include "log.h"
#include "registry.h"
#include "router.h"

#define FZ_WORKERS 3
#define FZ_MAX_IDS 64
/* Turns for the final barrier and the shutdown before an answer counts as lost. */
#define FZ_WAIT_MS 10000u

typedef struct fake {
    void *s;                   /* DEALER */
    bool readied;              /* READY sent, no GOODBYE since */
    uint64_t reqs[FZ_MAX_IDS]; /* REQUEST ids received */
    size_t nreqs;
    char jobs[FZ_MAX_IDS][64]; /* JOB ids received */
    size_t njobs;
    uint64_t calls[FZ_MAX_IDS]; /* CALL ids waiting for a REPLY */
    size_t ncalls;
    bool barrier_done;
} fake;

static struct {
    bool ready;
    uv_loop_t loop;
    void *zctx;
    char dir[64], endpoint[128], db[128];
    br_decoder *dec;
    br_buf out;
    uv_timer_t wake;
    gw_router *router;
    gw_broker *broker;
    gw_jobs *jobs;
    fake w[FZ_WORKERS];
    int closed;
    bool shutting; /* gw_broker_shutdown was called */
} fz;

static void fail(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz_broker: %s: %s\n", what, detail);
    abort();
}

static void cleanup_dir(void)
{
    char p[192];
    const char *files[] = {"jobs.db", "jobs.db-wal", "jobs.db-shm", "jobs.db-journal"};
    for (size_t i = 0; i < sizeof(files) / sizeof(*files); i++) {
        snprintf(p, sizeof(p), "%s/%s", fz.dir, files[i]);
        unlink(p);
    }
    snprintf(p, sizeof(p), "%s/b.sock", fz.dir);
    unlink(p);
    rmdir(fz.dir);
}

static void on_wake(uv_timer_t *t)
{
    (void)t;
}

static void setup(void)
{
    /* FUZZ_BROKER_TRACE=1: the broker's and the job queue's log, to follow an input. */
    gw_log_configure(getenv("FUZZ_BROKER_TRACE") ? GW_LOG_DEBUG : GW_LOG_ERROR, false);
    snprintf(fz.dir, sizeof(fz.dir), "/tmp/fuzz-broker-%ld", (long)getpid());
    snprintf(fz.endpoint, sizeof(fz.endpoint), "ipc://%s/b.sock", fz.dir);
    snprintf(fz.db, sizeof(fz.db), "%s/jobs.db", fz.dir);
    if (uv_loop_init(&fz.loop) != 0 || !(fz.zctx = zmq_ctx_new()) ||
        !(fz.dec = br_decoder_new(NULL)))
        fail("setup", "loop, context or decoder");
    uv_timer_init(&fz.loop, &fz.wake);
    uv_unref((uv_handle_t *)&fz.wake);
    atexit(cleanup_dir);
    fz.ready = true;
}

static bool send_msg(fake *f, const br_msg *m)
{
    fz.out.len = 0;
    if (br_msg_encode(m, &fz.out) != 0)
        return false; /* a message the encoder refuses: no worker can send it */
    if (zmq_send(f->s, fz.out.data, fz.out.len, ZMQ_DONTWAIT) < 0) {
        if (zmq_errno() != EAGAIN)
            fail("zmq_send", zmq_strerror(zmq_errno()));
        return false; /* the high-water mark: not sent */
    }
    return true;
}

static void forget_calls(fake *f)
{
    f->ncalls = 0;
}

static void drop_call(fake *f, uint64_t id)
{
    for (size_t i = 0; i < f->ncalls;)
        if (f->calls[i] == id)
            f->calls[i] = f->calls[--f->ncalls];
        else
            i++;
}

/* One message the broker sent to fake worker i. */
static void on_broker_msg(fake *f, int i, const br_msg *m)
{
    switch (m->type) {
    case BR_MSG_REQUEST:
        if (f->nreqs < FZ_MAX_IDS)
            f->reqs[f->nreqs++] = m->u.request.id;
        break;
    case BR_MSG_REPLY:
        if (m->u.reply.id == UINT64_MAX)
            f->barrier_done = true;
        else
            drop_call(f, m->u.reply.id);
        break;
    case BR_MSG_JOB:
        if (f->njobs < FZ_MAX_IDS)
            snprintf(f->jobs[f->njobs++], sizeof(f->jobs[0]), "%.*s", (int)m->u.job.job_id.len,
                     m->u.job.job_id.ptr);
        break;
    case BR_MSG_GOODBYE:
        /* The shutdown's GOODBYE follows its answers on the same connection. */
        if (fz.shutting && f->ncalls) {
            fprintf(stderr, "fuzz_broker: w%d: call %llu unanswered\n", i,
                    (unsigned long long)f->calls[0]);
            fail("shutdown", "a CALL was never answered");
        }
        f->readied = false;
        forget_calls(f);
        f->barrier_done = true; /* a barrier CALL may be what it refused */
        break;
    default:
        break;
    }
}

/* The messages of a WS_BATCH (to a worker that announced REQ_BATCH), one by one. */
typedef struct batch_ctx {
    fake *f; /* the receiver */
    int i;   /* its index */
} batch_ctx;

static int on_batched(void *arg, const br_msg *m, br_str bytes)
{
    batch_ctx *c = arg;
    (void)bytes;
    if (m->type != BR_MSG_REQUEST && !(m->type >= BR_MSG_WS_FIRST && m->type <= BR_MSG_WS_LAST))
        fail("broker", "batched a message a broker never batches");
    on_broker_msg(c->f, c->i, m);
    return 0;
}

/* Reads everything the broker sent to every fake worker. */
static void drain(void)
{
    /* A batch may pass BR_WS_BATCH_BYTES by one message. */
    static uint8_t buf[4 * BR_WS_BATCH_BYTES];
    for (int i = 0; i < FZ_WORKERS; i++) {
        fake *f = &fz.w[i];
        for (;;) {
            int n = zmq_recv(f->s, buf, sizeof(buf), ZMQ_DONTWAIT);
            if (n < 0)
                break;
            if (n > (int)sizeof(buf))
                fail("broker", "a message longer than 256 KiB");
            br_msg m;
            if (br_decoder_decode(fz.dec, buf, (size_t)n, &m) != 0)
                fail("broker", "sent a message that does not decode");
            if (m.type == BR_MSG_WS_BATCH) {
                if (i % 2 == 0)
                    fail("broker", "sent a WS_BATCH to a worker that did not announce it");
                batch_ctx c = {f, i};
                if (br_ws_batch_each(fz.dec, m.u.ws_batch.messages, on_batched, &c) != 0)
                    fail("broker", "sent a WS_BATCH that does not split into its messages");
            } else {
                on_broker_msg(f, i, &m);
            }
        }
    }
}

static void turn(void)
{
    drain();
    uv_run(&fz.loop, UV_RUN_NOWAIT);
    drain();
}

static void check_credit(void)
{
    const gw_registry *reg = gw_broker_registry(fz.broker);
    for (size_t i = 0; i < gw_registry_nworkers(reg); i++) {
        const gw_worker *w = gw_registry_worker(reg, i);
        if (w && w->credit > GW_CREDIT_MAX)
            fail("registry", "a worker holds more credit than GW_CREDIT_MAX");
    }
}

static const char *const svc_names[] = {"s0", "s1", "s2", "s3"};
static const char *const tasks[] = {"t0", "t1", "t2", "t3"};

static void op_ready(fake *f, uint8_t a, uint8_t cap)
{
    char get[16], post[8];
    snprintf(get, sizeof(get), "/s%u/{x}", a & 3);
    snprintf(post, sizeof(post), "/s%u", a & 3);
    br_param x = {.name = br_str_c("x"), .in = BR_IN_PATH, .type = BR_TYPE_STR, .required = true};
    br_route routes[3] = {
        {.method = br_str_c("GET"), .path = br_str_c(get), .params = &x, .nparams = 1},
        {.method = br_str_c("POST"), .path = br_str_c(post), .body = BR_BODY_RAW},
        {.method = br_str_c("GET"), .path = br_str_c("/s0/lit")},
    };
    br_service s = {.name = br_str_c(svc_names[a & 3]),
                    .kind = (uint8_t)((a >> 3) & 1),
                    .routes = routes,
                    .nroutes = (a & 4) ? 3 : 2};
    br_str task = br_str_c(tasks[a & 3]);
    br_msg m = {.type = BR_MSG_READY};
    char id[16];
    snprintf(id, sizeof(id), "w%d", (int)(f - fz.w));
    m.u.ready = (br_ready){.worker_id = br_str_c(id),
                           .kind = s.kind,
                           .capacity = (a & 0x40) ? UINT32_MAX : cap,
                           .heartbeat_ms = 60000,
                           .services = &s,
                           .nservices = 1,
                           .tasks = (a & 0x80) ? &task : NULL,
                           .ntasks = (a & 0x80) ? 1 : 0};
    /* The odd workers read batches: the broker's REQUESTs reach them in WS_BATCH. */
    if ((f - fz.w) % 2)
        m.u.ready.features = BR_FEATURE_WS_BATCH | BR_FEATURE_REQ_BATCH;
    send_msg(f, &m);
    forget_calls(f); /* registering again forgets the calls of the old registration */
    f->readied = true;
}

static void op_call(fake *f, uint64_t id, uint8_t j)
{
    char path[16];
    br_msg m = {.type = BR_MSG_CALL};
    br_request *r = &m.u.request;
    r->id = id;
    r->deadline_ms = 30000;
    switch (j % 3) {
    case 0:
        snprintf(path, sizeof(path), "/s%u/v", j & 3);
        r->method = br_str_c("GET");
        break;
    case 1:
        snprintf(path, sizeof(path), "/s%u", j & 3);
        r->method = br_str_c("POST");
        r->content_type = br_str_c("text/plain");
        r->body = br_str_c("body");
        break;
    default:
        snprintf(path, sizeof(path), "/none");
        r->method = br_str_c("GET");
        break;
    }
    r->path = br_str_c(path);
    if (send_msg(f, &m) && f->readied && f->ncalls < FZ_MAX_IDS && id != UINT64_MAX)
        f->calls[f->ncalls++] = id;
}

static void run_op(const uint8_t **p, const uint8_t *end)
{
    uint8_t op = *(*p)++;
    fake *f = &fz.w[op % FZ_WORKERS];
    uint8_t a = *p < end ? *(*p)++ : 0;
    uint8_t b = *p < end ? *(*p)++ : 0;
    br_msg m = {0};
    switch ((op / FZ_WORKERS) % 11) {
    case 0:
        op_ready(f, a, b);
        break;
    case 1:
        if (!f->nreqs)
            return;
        m.type = BR_MSG_REPLY;
        m.u.reply.id = f->reqs[a % f->nreqs];
        m.u.reply.status = (uint16_t)(100 + b % 500);
        br_job_spec js = {.task = br_str_c(tasks[b & 3]), .payload = br_str_c("\xc0")};
        if (b & 0x80) {
            m.u.reply.jobs = &js;
            m.u.reply.njobs = 1;
        }
        send_msg(f, &m);
        break;
    case 2:
        op_call(f, a, b);
        break;
    case 3:
        m.type = BR_MSG_CANCEL;
        m.u.cancel.id = a;
        send_msg(f, &m);
        drop_call(f, a);
        break;
    case 4:
    case 5:
        if (!f->njobs)
            return;
        if ((op / FZ_WORKERS) % 11 == 4) {
            m.type = BR_MSG_JOB_ACK;
            m.u.job_ack.job_id = br_str_c(f->jobs[a % f->njobs]);
        } else {
            m.type = BR_MSG_JOB_RESULT;
            m.u.job_result.job_id = br_str_c(f->jobs[a % f->njobs]);
            m.u.job_result.outcome = (uint8_t)(b % 3);
            m.u.job_result.result = br_str_c("\xc0");
        }
        send_msg(f, &m);
        break;
    case 6:
        m.type = BR_MSG_GOODBYE;
        send_msg(f, &m);
        f->readied = false;
        forget_calls(f);
        break;
    case 7:
        m.type = BR_MSG_HEARTBEAT;
        send_msg(f, &m);
        break;
    case 8:
        m.type = BR_MSG_CREDIT;
        m.u.credit.credit = (a & 0x80) ? UINT32_MAX : a;
        send_msg(f, &m);
        break;
    case 9: {
        size_t len = a;
        (*p)--; /* b is the first raw byte */
        if (len > (size_t)(end - *p))
            len = (size_t)(end - *p);
        zmq_send(f->s, *p, len, ZMQ_DONTWAIT);
        *p += len;
        f->readied = false;
        forget_calls(f);
        break;
    }
    default:
        (*p)--;
        for (int i = 0; i < (a & 15); i++)
            turn();
        break;
    }
}

static bool all_barriers(void)
{
    for (int i = 0; i < FZ_WORKERS; i++)
        if (fz.w[i].readied && !fz.w[i].barrier_done)
            return false;
    return true;
}

/* Turns the loop (1 ms at most per turn) until done(); after wait_ms it fails, or
 * with what NULL returns false. */
static bool pump_for(bool (*done)(void), const char *what, uint64_t wait_ms)
{
    uint64_t start = uv_hrtime();
    for (;;) {
        drain();
        if (done())
            return true;
        if ((uv_hrtime() - start) / 1000000u > wait_ms) {
            if (!what)
                return false;
            fail("no answer", what);
        }
        uv_ref((uv_handle_t *)&fz.wake);
        uv_timer_start(&fz.wake, on_wake, 1, 0);
        uv_run(&fz.loop, UV_RUN_ONCE);
        uv_unref((uv_handle_t *)&fz.wake);
    }
}

static void pump(bool (*done)(void), const char *what)
{
    pump_for(done, what, FZ_WAIT_MS);
}

static bool all_goodbyes(void)
{
    for (int i = 0; i < FZ_WORKERS; i++)
        if (fz.w[i].readied)
            return false;
    return true;
}

static void on_closed(void *arg)
{
    (void)arg;
    fz.closed++;
}

static bool broker_closed(void)
{
    return fz.closed >= 1;
}

static bool jobs_closed(void)
{
    return fz.closed >= 2;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!fz.ready)
        setup();
    cleanup_dir();
    if (mkdir(fz.dir, 0700) != 0)
        fail("mkdir", fz.dir);
    fz.router = gw_router_new();
    gw_broker_config bc;
    gw_broker_config_defaults(&bc);
    bc.endpoint = fz.endpoint;
    bc.heartbeat_ms = 60000;
    gw_jobs_config jc;
    gw_jobs_config_defaults(&jc);
    jc.db = fz.db;
    if (!fz.router || !(fz.broker = gw_broker_new(&fz.loop, fz.router, &bc)) ||
        !(fz.jobs = gw_jobs_new(&fz.loop, fz.router, fz.broker, &jc)) ||
        gw_broker_start(fz.broker) != 0)
        fail("setup", "router, broker or jobs");
    int zero = 0;
    for (int i = 0; i < FZ_WORKERS; i++) {
        fake *f = &fz.w[i];
        memset(f, 0, sizeof(*f));
        char id[4] = {'w', (char)('0' + i), 0};
        if (!(f->s = zmq_socket(fz.zctx, ZMQ_DEALER)) ||
            zmq_setsockopt(f->s, ZMQ_LINGER, &zero, sizeof(zero)) != 0 ||
            zmq_setsockopt(f->s, ZMQ_ROUTING_ID, id, 2) != 0 || zmq_connect(f->s, fz.endpoint) != 0)
            fail("setup", "DEALER");
    }

    const uint8_t *p = data, *end = data + size;
    for (int ops = 0; p < end && ops < 256; ops++) {
        run_op(&p, end);
        turn();
        check_credit();
    }

    /* The barrier: each registered worker's last CALL (GET /none, id 2^64-1) is
     * answered after everything it sent before. */
    for (int i = 0; i < FZ_WORKERS; i++)
        if (fz.w[i].readied)
            op_call(&fz.w[i], UINT64_MAX, 2);
    pump(all_barriers, "the barrier CALL");
    check_credit();

    fz.closed = 0;
    fz.shutting = true;
    gw_broker_shutdown(fz.broker, on_closed, NULL);
    pump(broker_closed, "the broker's shutdown");
    gw_jobs_shutdown(fz.jobs, on_closed, NULL);
    pump(jobs_closed, "the job queue's shutdown");
    /* Every registered worker gets GOODBYE after its answers (drain checks them).  The
     * broker gives what it sends at shutdown 200 ms (BROKER_SHUTDOWN_LINGER_MS) to
     * leave; on a loaded machine a GOODBYE may not make it, and then neither may the
     * answers before it: that worker is not checked. */
    pump_for(all_goodbyes, NULL, 2000);
    fz.shutting = false;
    gw_jobs_destroy(&fz.jobs);
    gw_broker_destroy(&fz.broker);
    gw_router_destroy(&fz.router);
    for (int i = 0; i < FZ_WORKERS; i++)
        zmq_close(fz.w[i].s);
    while (uv_run(&fz.loop, UV_RUN_NOWAIT) != 0)
        ;
    cleanup_dir();
    return 0;
}
